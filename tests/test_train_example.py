"""The Flax training example: one jitted step per method, metrics, and a short run that learns."""

from __future__ import annotations

import gzip
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "examples"))

import data as data_lib  # noqa: E402
import demo  # noqa: E402
import legacy_demo  # noqa: E402
import models  # noqa: E402
import results_table  # noqa: E402
import train  # noqa: E402

import jaxmix  # noqa: E402

B, S, K = 8, 16, 10
# erm and manifold are the example's own; every one-call jaxmix method found by signature
# (fmix, resizemix, ... once merged) is checked too.
METHODS = ["erm", "manifold"] + train.available_methods()


def _batch(seed=0):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return jax.random.normal(k1, (B, S, S, 1)), jax.random.randint(k2, (B,), 0, K)


def _state(width=4):
  model = models.ResNet(num_classes=K, width=width)
  return train.create_state(model, jax.random.key(0), (S, S, 1), optax.constant_schedule(1e-2))


def test_required_methods_are_found():
  for m in ("mixup", "cutmix", "mixup_cutmix"):
    assert m in METHODS
  with pytest.raises(ValueError, match="not a jaxmix mixing method"):
    train.make_mixer("sample_mixup", K)
  with pytest.raises(ValueError, match="not a jaxmix mixing method"):
    train.make_mixer("no_such_method", K)


# make test steps the core methods; the contract suite covers every method's mixing, so the train step
# for the rest runs in make test-slow.
CORE = ("erm", "manifold", "mixup", "cutmix", "mixup_cutmix")


@pytest.mark.parametrize(
  "method", [m if m in CORE else pytest.param(m, marks=pytest.mark.slow) for m in METHODS]
)
def test_one_jitted_step_per_method(method):
  state = _state()
  x, y = _batch()
  step = train.make_train_step(train.make_mixer(method, K, off_step=1))
  before = jax.tree_util.tree_map(np.asarray, state.params)
  key = jax.random.key(1)
  for _ in range(3):  # crosses off_step: mixing switches off without a retrace
    state, metrics = step(state, key, x, y)
    assert np.isfinite(metrics["loss"])
  assert step.traces == 1
  assert int(state.step) == 3
  changed = jax.tree_util.tree_map(lambda a, b: not np.allclose(a, b), before, state.params)
  assert any(jax.tree_util.tree_leaves(changed))


def test_mixer_outputs_soft_targets_with_label_mass_one():
  x, y = _batch()
  for method in ("erm", "mixup", "cutmix", "manifold"):
    mixed, targets, plan = jax.jit(train.make_mixer(method, K))(jax.random.key(3), jnp.int32(0), x, y)
    assert mixed.shape == x.shape and targets.shape == (B, K)
    np.testing.assert_allclose(targets.sum(-1), 1.0, atol=1e-5)
    assert (plan is not None) == (method == "manifold")
  # ERM gives one-hot targets and leaves the images alone.
  mixed, targets, _ = train.make_mixer("erm", K)(jax.random.key(3), 0, x, y)
  np.testing.assert_array_equal(mixed, x)
  np.testing.assert_array_equal(targets, jax.nn.one_hot(y, K))


def test_bce_loss_step():
  state = _state()
  x, y = _batch()
  step = train.make_train_step(train.make_mixer("cutmix", K), loss="bce")
  state, metrics = step(state, jax.random.key(0), x, y)
  assert np.isfinite(metrics["loss"])


def test_nnx_resnet_manifold_step():
  model = models.NNXResNet(in_channels=1, num_classes=K, width=4, rngs=nnx.Rngs(0))
  opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
  x, y = _batch()
  traces = []

  @nnx.jit
  def step(model, opt, key):
    traces.append(1)
    mix = jaxmix.sample_manifold(key, B, layers=models.NUM_MIX_LAYERS)
    targets = jaxmix.mix_labels(mix, y, num_classes=K)
    loss, grads = nnx.value_and_grad(lambda m: optax.softmax_cross_entropy(m(x, mix), targets).mean())(model)
    opt.update(model, grads)
    return loss, mix.layer

  layers = set()
  for seed in range(8):
    loss, layer = step(model, opt, jax.random.key(seed))
    assert np.isfinite(loss)
    layers.add(int(layer))
  assert len(traces) == 1
  assert len(layers) > 1
  model.eval()
  assert model(x).shape == (B, K)


def test_calibration_metrics():
  labels = np.array([0, 1, 1, 0])
  probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
  m = train.calibration(probs, labels, num_bins=15)
  assert m["accuracy"] == pytest.approx(0.5)
  assert m["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.3, 0.4])))
  # By hand: conf 0.9 (right), 0.8 (right), 0.7 (wrong), 0.6 (wrong), each alone in its bin.
  assert m["ece"] == pytest.approx((0.1 + 0.2 + 0.7 + 0.6) / 4)
  assert sum(m["bins"]["count"]) == 4
  perfect = train.calibration(np.eye(3), np.arange(3))
  assert perfect["ece"] == pytest.approx(0.0) and perfect["accuracy"] == 1.0


def test_read_idx_roundtrip(tmp_path):
  arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  path = str(tmp_path / "x-idx3-ubyte.gz")
  header = bytes([0, 0, 8, 3]) + np.array(arr.shape, ">i4").tobytes()
  with gzip.open(path, "wb") as f:
    f.write(header + arr.tobytes())
  np.testing.assert_array_equal(data_lib.read_idx(path), arr)
  assert not data_lib.has_fashion_mnist(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
    data_lib.load("fashion_mnist", str(tmp_path))


def test_short_digits_training_beats_chance(tmp_path):
  out = str(tmp_path / "run.json")
  result = train.main(
    ["--method", "mixup", "--dataset", "digits", "--epochs", "4", "--batch-size", "64", "--width", "8",
     "--seed", "0", "--out", out, "--no-progress"]
  )  # fmt: skip
  assert result["dataset"] == "digits" and result["traces"] == 1
  assert result["accuracy"] > 0.6  # chance is 0.1
  with open(out) as f:
    saved = json.load(f)
  assert {"accuracy", "nll", "ece"} <= set(saved)
  assert os.path.getsize(out[:-5] + ".png") > 1000


PNG = b"\x89PNG\r\n\x1a\n"


def test_legacy_demo_prints_its_table_and_writes_its_png(tmp_path, capsys):
  png = tmp_path / "sub" / "legacy.png"
  legacy_demo.main(
    ["--methods", "erm", "--epochs", "1", "--train-subset", "64", "--no-progress", "--out", str(png)]
  )
  out = capsys.readouterr().out
  assert "| erm " in out and out.splitlines()[-1] == f"wrote {png}"
  assert png.read_bytes()[:8] == PNG


def _fake_run(method, seed, acc):
  return {"method": method, "seed": seed, "accuracy": acc, "nll": 1 - acc, "ece": 0.05, "alpha": 1.0,
          "method_kwargs": {}, "dataset": "toy", "test_size": 10, "train_size": 20, "epochs": 1,
          "batch_size": 4, "steps": 5, "width": 4, "lr": 1e-3, "train_seconds": 1.0}  # fmt: skip


def test_results_table_writes_the_table_and_its_png(tmp_path, capsys):
  runs = tmp_path / "runs"
  runs.mkdir()
  for seed in range(2):
    for method, acc in (("mixup", 0.6), ("erm", 0.7)):
      (runs / f"{method}_s{seed}.json").write_text(json.dumps(_fake_run(method, seed, acc + 0.01 * seed)))
  md = tmp_path / "table.md"
  results_table.main(["table", "--results-dir", str(runs), "--out", str(md)])
  rows = [line for line in md.read_text().splitlines() if line.startswith("| ")]
  assert rows[1].startswith("| erm |") and rows[2].startswith("| mixup |")  # ORDER, not file order
  assert md.with_suffix(".png").read_bytes()[:8] == PNG
  assert capsys.readouterr().out.splitlines()[-1] == f"wrote {md} and {md.with_suffix('.png')}"


def test_demo_plot_and_fallback_pass_their_options(tmp_path, monkeypatch):
  record = lambda acc: {"test": {"accuracy": acc, "nll": 1.0, "ece": 0.1}}  # noqa: E731
  demo.plot(
    {"aug": [record(0.5), record(0.6)], "cutmix": [record(0.7), record(0.8)]}, str(tmp_path / "d.png")
  )
  assert (tmp_path / "d.png").read_bytes()[:8] == PNG
  # Without Fashion-MNIST the demo runs the digits table, passing --no-progress on.
  calls = []
  monkeypatch.setattr(legacy_demo, "main", calls.append)
  assert demo.main(["--data-dir", str(tmp_path), "--no-progress"]) == 0
  assert calls == [["--no-progress"]]


def test_nnx_api_trains_end_to_end():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(96, S, S, 1)).astype(np.float32)
  y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int32)  # a learnable rule
  ds = data_lib.Dataset("toy", x[:64], y[:64], x[64:], y[64:], ("a", "b"))
  # manifold: the plan goes into the NNX model; the mixer is the linen example's own
  result = train.train("manifold", data=ds, epochs=2, batch_size=16, width=4, progress=False, api="nnx")
  assert result["api"] == "nnx" and result["traces"] == 1 and result["steps"] == 8
  assert 0.0 <= result["accuracy"] <= 1.0 and np.isfinite(result["nll"])
  assert all(np.isfinite(result["train_loss_per_epoch"]))
  with pytest.raises(ValueError, match="api must be 'linen' or 'nnx'"):
    train.train("manifold", data=ds, epochs=1, api="jax")


def test_nnx_step_advances_and_does_not_retrace():
  model = models.NNXResNet(in_channels=1, num_classes=K, width=4, rngs=nnx.Rngs(0))
  opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
  step = train.make_nnx_train_step(train.make_mixer("mixup", K, off_step=1))
  x, y = _batch()
  before = nnx.state(model, nnx.Param)
  before = jax.tree_util.tree_map(np.array, before)
  for _ in range(3):  # crosses off_step without a retrace
    assert np.isfinite(step(model, opt, jax.random.key(0), x, y)["loss"])
  assert step.traces == 1 and int(opt.step[...]) == 3
  after = jax.tree_util.tree_map(np.array, nnx.state(model, nnx.Param))
  changed = jax.tree_util.tree_map(lambda a, b: not np.allclose(a, b), before, after)
  assert any(jax.tree_util.tree_leaves(changed))
