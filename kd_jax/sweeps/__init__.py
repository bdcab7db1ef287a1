"""A figure's sweep: trials, launchers, teacher-only jobs, tables/CSV and plots."""
