"""Split metrics and CKA against float64 numpy references written here."""
from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from kd_jax.kd import cka, metrics
from kd_jax.core.errors import ConfigError

KEYS = {"student_acc", "teacher_acc", "agreement", "kl", "student_nll", "teacher_nll",
        "student_ece", "teacher_ece"}


def np_log_softmax(z):
  z = np.asarray(z, np.float64)
  m = z.max(-1, keepdims=True)
  return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def np_ece(conf, correct, nb):
  """Σ_b (n_b/N)|acc_b − conf_b| with bins (b/nb, (b+1)/nb] against float32 edges."""
  edges = (np.arange(1, nb) / nb).astype(np.float32).astype(np.float64)
  b = np.searchsorted(edges, conf, side="left")
  total = 0.0
  for k in range(nb):
    sel = b == k
    if sel.any():
      total += sel.sum() / len(conf) * abs(correct[sel].mean() - conf[sel].mean())
  return total


def np_metrics(t, s, y, mask, nb=10):
  keep = np.asarray(mask, bool)
  lab = keep & (y >= 0)
  lt, ls = np_log_softmax(t), np_log_softmax(s)
  pt = np.exp(lt)
  pred_t, pred_s = np.argmax(t, -1), np.argmax(s, -1)
  kl_rows = np.where(pt > 0, pt * (lt - ls), 0.0).sum(-1)
  out = {"agreement": 100 * np.mean(pred_t[keep] == pred_s[keep]), "kl": kl_rows[keep].mean()}
  for name, pred, lp in (("student", pred_s, ls), ("teacher", pred_t, lt)):
    if not lab.any():
      out.update({f"{name}_{k}": np.nan for k in ("acc", "nll", "ece")})
      continue
    yl = y[lab]
    correct = (pred[lab] == yl).astype(np.float64)
    out[f"{name}_acc"] = 100 * correct.mean()
    out[f"{name}_nll"] = -lp[lab, yl].mean()
    out[f"{name}_ece"] = np_ece(np.exp(lp[lab]).max(-1), correct, nb)
  return out


def _split(n=37, c=5, seed=0):
  """Random logits with ties, extreme and peaked rows, and missing labels."""
  rng = np.random.default_rng(seed)
  s = (rng.normal(size=(n, c)) * 2).astype(np.float32)
  t_logits = (rng.normal(size=(n, c)) * 2).astype(np.float32)
  s[:8] = rng.integers(0, 2, size=(8, c))  # many ties in the student
  t_logits[4:10] = rng.integers(0, 2, size=(6, c))  # and in the teacher
  s[10] = 0.0
  s[10, 1] = 1e4
  s[11] = -1e4
  s[11, 3] = 1e4
  t_logits[12] = 1e4 * np.sign(rng.normal(size=c))
  t_logits[13] = -1e4
  t_logits[13, 0] = 1e4
  t = np.asarray(jax.nn.log_softmax(t_logits), np.float32)  # teacher log-probs, ties kept
  y = rng.integers(0, c, size=n).astype(np.int32)
  y[[1, 6, 12, 20]] = -1
  return t, s, y


def _assert_metrics(got, ref, tol=2e-5):
  assert set(got) == KEYS
  for k in KEYS:
    np.testing.assert_allclose(got[k], ref[k], rtol=tol, atol=tol, err_msg=k)


def test_whole_split_against_numpy():
  t, s, y = _split()
  mask = np.ones(len(y), bool)
  got = metrics.finalize(metrics.split_sums(t, s, y, mask))
  _assert_metrics(got, np_metrics(t, s, y, mask))
  assert all(isinstance(v, float) for v in got.values())
  assert 0.0 < got["agreement"] < 100.0 and 0.0 <= got["student_ece"] <= 1.0


@pytest.mark.parametrize("num_bins", [10, 4])
def test_uneven_padded_batches_sum_to_the_whole_split(num_bins):
  t, s, y = _split(seed=1)
  n, bs = len(y), 16
  step = jax.jit(metrics.split_sums, static_argnames="num_bins")
  rng = np.random.default_rng(9)
  total = None
  for start in range(0, n, bs):
    sl = slice(start, min(start + bs, n))
    k = sl.stop - sl.start
    pad = bs - k
    # Padding rows are garbage (extreme logits, real-looking labels) that the mask must hide.
    tb = np.concatenate([t[sl], rng.normal(size=(pad, t.shape[1])).astype(np.float32) * 1e4])
    sb = np.concatenate([s[sl], rng.normal(size=(pad, s.shape[1])).astype(np.float32) * 1e4])
    yb = np.concatenate([y[sl], np.zeros(pad, np.int32)])
    mb = np.arange(bs) < k
    sums = step(tb, sb, yb, mb, num_bins=num_bins)
    total = sums if total is None else metrics.add_sums(total, sums)
  got = metrics.finalize(total)
  _assert_metrics(got, np_metrics(t, s, y, np.ones(n, bool), nb=num_bins))
  assert int(total["n"]) == n and int(total["n_labeled"]) == int((y >= 0).sum())


def test_exact_sum_differs_from_mean_of_batch_means():
  # Batch 1: one correct example; batch 2: three wrong ones. Exact accuracy 25%, not 50%.
  eye = np.eye(3, dtype=np.float32) * 5
  b1 = metrics.split_sums(eye[:1], eye[:1], np.array([0]), np.ones(1))
  b2 = metrics.split_sums(eye[:3], eye[:3], np.array([1, 2, 0]), np.ones(3))
  exact = metrics.finalize(metrics.add_sums(b1, b2))["student_acc"]
  per_batch = np.mean([metrics.finalize(b)["student_acc"] for b in (b1, b2)])
  assert exact == pytest.approx(25.0) and per_batch == pytest.approx(50.0)


def test_psum_across_devices_equals_whole_split():
  t, s, y = _split(n=37, seed=2)
  pad = 3  # 40 rows over 4 devices
  tp = np.concatenate([t, np.zeros((pad, t.shape[1]), np.float32)])
  sp = np.concatenate([s, np.ones((pad, s.shape[1]), np.float32)])
  yp = np.concatenate([y, np.zeros(pad, np.int32)])
  mp = np.arange(40) < 37
  mesh = jax.make_mesh((4,), ("data",))
  spec = jax.sharding.PartitionSpec("data")
  fn = jax.jit(jax.shard_map(lambda *a: jax.lax.psum(metrics.split_sums(*a), "data"),
                             mesh=mesh, in_specs=spec, out_specs=jax.sharding.PartitionSpec()))
  shard = lambda a: jax.device_put(a, jax.sharding.NamedSharding(mesh, spec))
  got = metrics.finalize(fn(*map(shard, (tp, sp, yp, mp))))
  _assert_metrics(got, np_metrics(t, s, y, np.ones(37, bool)))


def test_unlabeled_split_gives_nan_label_metrics_and_counts_agreement():
  t, s, _ = _split(seed=3)
  y = np.full(len(t), -1, np.int32)
  got = metrics.finalize(metrics.split_sums(t, s, y, np.ones(len(t))))
  for k in ("student_acc", "teacher_acc", "student_nll", "teacher_nll", "student_ece",
            "teacher_ece"):
    assert np.isnan(got[k]), k
  ref = np_metrics(t, s, y, np.ones(len(t), bool))
  assert got["agreement"] == pytest.approx(ref["agreement"])
  assert got["kl"] == pytest.approx(ref["kl"], rel=1e-5)
  # Same through the jit-able path and with labels omitted.
  jitted = jax.jit(lambda a, b: metrics.compute_metrics(metrics.split_sums(a, b)))(t, s)
  assert np.isnan(float(jitted["student_acc"]))
  assert float(jitted["agreement"]) == pytest.approx(ref["agreement"])


def test_convenience_functions_against_numpy():
  t, s, y = _split(seed=4)
  full = np.ones(len(y), bool)
  ref_s = np_metrics(s, s, y, full)
  np.testing.assert_allclose(metrics.accuracy(s, y), ref_s["student_acc"], rtol=1e-6)
  np.testing.assert_allclose(metrics.nll(s, y), ref_s["student_nll"], rtol=1e-5)
  np.testing.assert_allclose(metrics.ece(s, y), ref_s["student_ece"], atol=1e-6)
  lab = y >= 0
  conf = np.exp(np_log_softmax(s)).max(-1)[lab]
  correct = (np.argmax(s, -1) == y)[lab].astype(float)
  np.testing.assert_allclose(metrics.ece(s, y, num_bins=15), np_ece(conf, correct, 15),
                             atol=1e-6)
  np.testing.assert_allclose(metrics.agreement(t, s),
                             100 * np.mean(np.argmax(t, -1) == np.argmax(s, -1)), rtol=1e-6)
  np.testing.assert_allclose(metrics.kl_divergence(t, s), np_metrics(t, s, y, full)["kl"],
                             rtol=1e-5)
  assert float(metrics.kl_divergence(t, t)) == pytest.approx(0.0, abs=1e-6)


def test_ties_use_the_first_index():
  logits = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0]], np.float32)
  np.testing.assert_allclose(metrics.accuracy(logits, np.array([0, 1, 0])), 100.0)
  np.testing.assert_allclose(metrics.accuracy(logits, np.array([1, 2, 2])), 0.0)
  other = logits[:, ::-1].copy()  # same ties, mirrored: first index now points elsewhere
  np.testing.assert_allclose(metrics.agreement(logits, other), 100 / 3, rtol=1e-6)


def test_bin_index_edges_go_to_the_lower_bin():
  up = lambda v: np.nextafter(np.float32(v), np.float32(2))
  conf = np.array([0.0, 0.1, up(0.1), 0.5, up(0.5), 1.0, 0.95, 0.05, 0.2], np.float32)
  np.testing.assert_array_equal(metrics.bin_index(conf, 10), [0, 0, 1, 4, 5, 9, 9, 0, 1])


def test_confidences_on_edges_from_logits():
  z = np.full((3, 10), -1e4, np.float32)
  z[0] = 0.0  # uniform: confidence exactly float32(0.1)
  z[1, :2] = 0.0  # two-way tie: exactly 0.5
  z[2, 4] = 1e4  # certain: exactly 1.0
  sums = metrics.split_sums(z, z, np.array([0, 0, 4]), np.ones(3))
  np.testing.assert_array_equal(sums["student_bin_count"], [1, 0, 0, 0, 1, 0, 0, 0, 0, 1])
  np.testing.assert_array_equal(sums["teacher_bin_count"], [1, 0, 0, 0, 1, 0, 0, 0, 0, 1])
  # All correct: ECE = (0.9 + 0.5 + 0) / 3.
  assert metrics.finalize(sums)["student_ece"] == pytest.approx(1.4 / 3, abs=1e-6)


def test_ece_closed_form_depends_on_edge_rule():
  # conf 0.5 (correct) and 0.45 (wrong) share bin (0.4, 0.5]: ECE = |0.5 − 0.475| = 0.025.
  # Had 0.5 gone to the upper bin, ECE would be 0.5·0.5 + 0.5·0.45 = 0.475.
  # Log-probabilities as logits: softmax gives back 0.5 exactly and 0.45 to float rounding.
  logits = np.log(np.array([[0.5, 0.25, 0.25], [0.45, 0.3, 0.25]], np.float32))
  got = metrics.ece(logits, np.array([0, 1]))
  assert float(got) == pytest.approx(0.025, abs=1e-6)
  assert float(metrics.ece(logits, np.array([0, -1]))) == pytest.approx(0.5, abs=1e-6)


# ----------------------------------------------------------------------------- CKA


def np_hsic(k, l):
  n = k.shape[0]
  h = np.eye(n) - np.ones((n, n)) / n
  return np.trace(k @ h @ l @ h) / (n - 1) ** 2


def np_cka(k, l):
  return np_hsic(k, l) / np.sqrt(np_hsic(k, k) * np_hsic(l, l))


def np_linear_cka(x, y):
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  return np_cka(x @ x.T, y @ y.T)


def np_rbf_cka(x, y, frac=0.5):
  def gram(a):
    d = pdist(np.asarray(a, np.float64))
    sigma = frac * np.median(d)
    return np.exp(-squareform(d) ** 2 / (2 * sigma**2))
  return np_cka(gram(x), gram(y))


def _features(n, d1, d2, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d1)).astype(np.float32)
  mix = rng.normal(size=(d1, d2)).astype(np.float32)
  y = (np.tanh(x @ mix) + 0.5 * rng.normal(size=(n, d2))).astype(np.float32)
  return x, y


@pytest.mark.parametrize("n,d1,d2", [(20, 50, 30), (200, 8, 5)])  # Gram and feature-space paths
def test_linear_cka_against_numpy(n, d1, d2):
  x, y = _features(n, d1, d2)
  got = float(cka.linear_cka(x, y))
  ref = np_linear_cka(x, y)
  assert 0.05 < ref < 0.95
  assert got == pytest.approx(ref, abs=1e-5)
  assert float(cka.linear_cka(x, x)) == pytest.approx(1.0, abs=1e-5)


def test_linear_cka_invariances_and_offsets():
  x, y = _features(60, 12, 7, seed=1)
  base = float(cka.linear_cka(x, y))
  q, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(12, 12)))
  rotated = (x @ q * 3.7).astype(np.float32)
  assert float(cka.linear_cka(rotated, y)) == pytest.approx(base, abs=1e-5)
  assert float(cka.linear_cka(x, rotated)) == pytest.approx(1.0, abs=1e-5)
  # A large common offset (e.g. positive ReLU features) must not hurt float32 precision.
  assert float(cka.linear_cka(x + 100.0, y - 50.0)) == pytest.approx(base, abs=1e-4)
  assert base == pytest.approx(np_linear_cka(x, y), abs=1e-5)


def test_rbf_cka_against_numpy():
  x, y = _features(31, 10, 6, seed=2)
  for frac in (0.5, 1.0):
    got = float(cka.rbf_cka(x, y, sigma_frac=frac))
    ref = np_rbf_cka(x, y, frac)
    assert 0.05 < ref < 0.99
    assert got == pytest.approx(ref, abs=1e-5)
  assert float(cka.rbf_cka(x, x)) == pytest.approx(1.0, abs=1e-5)
  with pytest.raises(ConfigError, match="sigma_frac"):
    cka.rbf_cka(x, y, sigma_frac=0.0)


def test_flatten_features_and_feature_maps():
  rng = np.random.default_rng(3)
  fx = rng.normal(size=(16, 4, 4, 3)).astype(np.float32)
  fy = rng.normal(size=(16, 2, 2, 8)).astype(np.float32)
  flat = cka.flatten_features(fx)
  np.testing.assert_array_equal(flat, fx.reshape(16, 48))
  ref = np_linear_cka(fx.reshape(16, -1), fy.reshape(16, -1))
  assert float(cka.linear_cka(fx, fy)) == pytest.approx(ref, abs=1e-5)
