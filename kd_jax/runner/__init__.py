"""One experiment: teachers, the student, remedies, the GAN store, FID, analyses, run identity and validation."""
