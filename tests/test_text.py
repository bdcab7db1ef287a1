"""Text modality: tokenizer, vocabulary, the BiLSTM against a numpy LSTM, padding invariance,
KD loss / metrics / ensembles on text logits, and an end-to-end run on a generated corpus."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax import config as config_lib
from kd_jax.kd import ensemble, losses, metrics
from kd_jax.runner import experiment
from kd_jax.train import modeling
from kd_jax.core.batch import Batch
from kd_jax.data import text
from kd_jax.core.errors import ConfigError
from kd_jax.models import get_model


# ------------------------------------------------------------------ tokenizer and vocabulary


def test_basic_english_case_and_punctuation():
  got = text.basic_english('This Film, "Heat" (1995), is GREAT! Isn\'t it?<br />Yes; no: ok.')
  assert got == ["this", "film", ",", "heat", "(", "1995", ")", ",", "is", "great", "!", "isn",
                 "'", "t", "it", "?", "yes", "no", "ok", "."]


def test_vocab_min_freq_order_unknown_and_truncation():
  docs = [["b", "a", "a"], ["a", "b", "c"], ["b", "a", "d"]]  # a:4 b:3 c:1 d:1
  assert text.build_vocab(docs, 1) == ["<pad>", "<unk>", "a", "b", "c", "d"]  # ties by name
  vocab = text.build_vocab(docs, 2)
  assert vocab == ["<pad>", "<unk>", "a", "b"]
  ids = text.encode([["a", "zzz", "b", "c"], ["b"], []], vocab, max_len=3)
  np.testing.assert_array_equal(ids, [[2, 1, 3], [3, 0, 0], [0, 0, 0]])
  np.testing.assert_array_equal(text.lengths_of(jnp.asarray(ids)), [3, 1, 0])


def test_encode_corpus_builds_vocab_on_train_only():
  out = text.encode_corpus(["good good film", "good film"], ["awful awful awful"], 4, 2)
  assert out["vocab"] == ["<pad>", "<unk>", "good", "film"]
  np.testing.assert_array_equal(out["test_tokens"], [[1, 1, 1, 0]])


def test_text_params_and_augment_are_checked():
  with pytest.raises(ConfigError, match="data.text.max_len"):
    text.check_text_params(0, 10)
  with pytest.raises(ConfigError, match="no augmentation"):
    text.token_prepare("flip")


# ------------------------------------------------------------------ BiLSTM vs numpy


def _sig(x):
  return 1.0 / (1.0 + np.exp(-x))


def _np_direction(p, xs):
  """PyTorch LSTM equations over a list of input vectors; returns every hidden state."""
  h = np.zeros(p["w_hh"].shape[0]); c = np.zeros_like(h)
  out = []
  for x in xs:
    z = x @ p["w_ih"] + h @ p["w_hh"] + p["b_ih"] + p["b_hh"]
    i, f, g, o = np.split(z, 4)
    c = _sig(f) * c + _sig(i) * np.tanh(g)
    h = _sig(o) * np.tanh(c)
    out.append(h)
  return out


def _np_bilstm(params, tokens, length, depth):
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  xs = [p["Embed_0"]["embedding"][t] for t in tokens[:length]]  # true tokens only
  for layer in range(depth):
    fwd = _np_direction(p[f"l{layer}_fwd"], xs)
    bwd = _np_direction(p[f"l{layer}_bwd"], xs[::-1])[::-1]
    xs = [np.concatenate([a, b]) for a, b in zip(fwd, bwd)]
  final = np.concatenate([fwd[-1], bwd[0]])
  return final @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]


@pytest.mark.parametrize("depth", [1, 2])
def test_bilstm_equals_numpy_lstm_on_padded_batch(depth):
  model = get_model("bilstm", 3, vocab_size=20, embedding_size=5, lstm_cell_size=4, depth=depth)
  params = model.init(jax.random.key(depth), jnp.zeros((1, 7)))["params"]
  rng = np.random.default_rng(0)
  lengths = np.array([7, 3, 1, 5])
  tokens = rng.integers(2, 20, size=(4, 7)).astype(np.int32)
  tokens[np.arange(7)[None, :] >= lengths[:, None]] = 0
  got = np.asarray(model.apply({"params": params}, (jnp.asarray(tokens), jnp.asarray(lengths))))
  want = np.stack([_np_bilstm(params, tokens[b], lengths[b], depth) for b in range(4)])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_pytorch_parameterisation_two_biases_and_init_bounds():
  model = get_model("bilstm", 2, vocab_size=10, embedding_size=6, lstm_cell_size=25)
  p = model.init(jax.random.key(0), jnp.zeros((1, 4)))["params"]
  assert set(p["l0_fwd"]) == {"w_ih", "w_hh", "b_ih", "b_hh"}
  assert p["l0_fwd"]["w_hh"].shape == (25, 100)
  for leaf in jax.tree.leaves(p["l0_fwd"]):
    assert float(jnp.max(jnp.abs(leaf))) <= 1 / 5  # U(−1/√H, 1/√H), H = 25


def test_padding_never_changes_a_prediction():
  model = get_model("bilstm", 2, vocab_size=30, embedding_size=6, lstm_cell_size=5, depth=2)
  params = {"params": model.init(jax.random.key(1), jnp.zeros((1, 6)))["params"]}
  rng = np.random.default_rng(1)
  lengths = np.array([6, 2, 4])
  tokens = rng.integers(2, 30, size=(3, 6)).astype(np.int32)
  tokens[np.arange(6)[None, :] >= lengths[:, None]] = 0
  base = np.asarray(model.apply(params, (jnp.asarray(tokens), jnp.asarray(lengths))))
  # Longer padding, and garbage in the padded positions (masked by the lengths): same logits.
  longer = np.concatenate([tokens, rng.integers(0, 30, size=(3, 9)).astype(np.int32)], axis=1)
  longer[np.arange(15)[None, :] >= lengths[:, None]] = rng.integers(0, 30)
  got = np.asarray(model.apply(params, (jnp.asarray(longer), jnp.asarray(lengths))))
  np.testing.assert_allclose(got, base, rtol=1e-5, atol=1e-6)
  # A row alone, unpadded: the same logits as in the padded batch.
  for b in (1,):
    alone = model.apply(params, (jnp.asarray(tokens[b:b + 1, :lengths[b]]),
                                 jnp.asarray(lengths[b:b + 1])))
    np.testing.assert_allclose(np.asarray(alone)[0], base[b], rtol=1e-5, atol=1e-6)


def test_token_prepare_passes_lengths_to_the_model():
  tokens = jnp.asarray([[5, 6, 0], [7, 0, 0]], jnp.int32)
  batch = Batch(inputs=tokens, labels=jnp.zeros((2,), jnp.int32), mask=jnp.ones((2,), bool))
  (x, lengths), real = text.token_prepare("")(batch, jax.random.key(0))
  np.testing.assert_array_equal(lengths, [2, 1])
  assert bool(real.all())
  given = batch.replace(lengths=jnp.asarray([3, 3], jnp.int32))  # a pipeline's lengths win
  np.testing.assert_array_equal(text.token_prepare("")(given, jax.random.key(0))[0][1], [3, 3])


# ------------------------------------------------------------------ KD, metrics, ensembles


def test_ensemble_kd_loss_and_metrics_on_text_logits():
  model = get_model("bilstm", 2, vocab_size=15, embedding_size=4, lstm_cell_size=3)
  members = modeling.init_variables(model, 0, 1, 3, (5,))
  student = modeling.member(modeling.init_variables(model, 9, 2, 1, (5,)), 0)
  rng = np.random.default_rng(2)
  tokens = jnp.asarray(rng.integers(2, 15, size=(6, 5)), jnp.int32)
  lengths = jnp.asarray([5, 4, 3, 2, 1, 5], jnp.int32)
  labels = jnp.asarray([0, 1, 1, 0, 1, 0], jnp.int32)
  x = (tokens, lengths)
  stacked = ensemble.apply_members(lambda v, y: model.apply(modeling.as_flax(v), y), members, x)
  each = np.stack([np.asarray(model.apply(modeling.as_flax(modeling.member(members, i)), x))
                   for i in range(3)])
  np.testing.assert_allclose(stacked, each, rtol=1e-6, atol=1e-6)
  p = np.exp(each - each.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)
  logp_t = np.log(p.mean(0))
  np.testing.assert_allclose(ensemble.ensemble_logprobs(stacked), logp_t, rtol=1e-5, atol=1e-6)
  z_s = np.asarray(model.apply(modeling.as_flax(student), x), np.float64)
  logq = z_s - np.log(np.exp(z_s).sum(-1, keepdims=True))
  kd = -(np.exp(logp_t) * logq).sum(-1)  # τ = 1, α = 0
  got = losses.distill_loss(jnp.asarray(z_s, jnp.float32), jnp.asarray(logp_t, jnp.float32),
                            labels, jnp.ones((6,), bool), 1.0, 0.0)
  np.testing.assert_allclose(got, kd, rtol=1e-5)
  agree = 100 * np.mean(logp_t.argmax(-1) == z_s.argmax(-1))
  kl = np.mean((np.exp(logp_t) * (logp_t - logq)).sum(-1))
  np.testing.assert_allclose(metrics.agreement(jnp.asarray(logp_t), jnp.asarray(z_s)), agree)
  np.testing.assert_allclose(metrics.kl_divergence(jnp.asarray(logp_t), jnp.asarray(z_s)), kl, rtol=1e-4)


# ------------------------------------------------------------------ end to end


def _corpus(root, n_train=60, n_test=20):
  """Reviews whose sentiment words decide the label, with shared neutral filler."""
  rng = np.random.default_rng(0)
  words = {"pos": ["good", "great", "fine", "superb"], "neg": ["bad", "awful", "dull", "poor"]}
  filler = ["the", "movie", "plot", "was", "actor", "and", "film", "a"]
  for split, n in (("train", n_train), ("test", n_test)):
    for cls in ("neg", "pos"):
      (root / split / cls).mkdir(parents=True)
      for i in range(n // 2):
        toks = list(rng.choice(filler, rng.integers(2, 8))) + list(rng.choice(words[cls], 2))
        rng.shuffle(toks)
        (root / split / cls / f"{i}.txt").write_text(" ".join(toks).capitalize() + ".")
  (root / "train" / "unsup").mkdir()
  (root / "train" / "unsup" / "0.txt").write_text("unlabelled, skipped")


def test_end_to_end_text_run(tmp_path):
  _corpus(tmp_path / "corpus")
  c = config_lib.base_config()
  c.data.source, c.data.path = "text_folder", str(tmp_path / "corpus")
  c.data.cache_dir = str(tmp_path / "cache")
  c.data.text.max_len, c.data.text.min_freq = 12, 2
  c.data.distill_pool = "teacher"
  model = config_lib.model_config("bilstm", embedding_size=8, lstm_cell_size=8)
  for s in (c.teacher, c.distill):
    s.model = model
    s.epochs, s.batch_size, s.eval_every = 6, 12, 6
    s.optim = config_lib.optim_config(name="adam", lr=0.03, weight_decay=0.0)
  c.teacher.ensemble_size, c.distill.teacher_members = 2, 2
  c.teacher.evals = ("test", "members")
  c.distill.evals = ("test", "train")
  c.distill.temperature = 1.0
  c.teacher.store = str(tmp_path / "store")
  c.run.tensorboard, c.run.checkpoint_every = False, 6
  results = experiment.run(config_lib.lock(c), tmp_path / "run")
  test = results["splits"]["test"]
  assert results["sizes"]["vocab_size"] == 2 + 4 + 4 + 8 + 1  # + "." ; "unsup" text skipped
  assert test["teacher_acc"] >= 90 and test["student_acc"] >= 90  # the words decide the label
  assert test["agreement"] >= 90
  saved = json.loads((tmp_path / "run" / "results.json").read_text())
  assert saved["splits"]["test"]["agreement"] == test["agreement"]


def test_unprepared_imdb_is_one_line_naming_the_command(tmp_path):
  """tfds_text on a dataset that was never built: the one-line error with the command that
  prepares it, where training will read it (no download is attempted)."""
  from kd_jax.data import sources
  with pytest.raises(ConfigError) as err:
    sources.load_source({"source": "tfds_text", "name": "imdb_reviews",
                         "data_dir": str(tmp_path)})
  msg = str(err.value)
  assert "\n" not in msg
  assert msg.startswith("data.name='imdb_reviews': the tfds dataset is not prepared in")
  assert (f'pip install -e ".[prepare]" && tfds build imdb_reviews/plain_text '
          f"--data_dir={tmp_path} --file_format=array_record") in msg
