"""Fast checks of the ViT example (examples/vit.py): the model's attention, the runner and its report."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import models  # noqa: E402
import vit  # noqa: E402


def test_vit_returns_the_cls_attention_over_the_patch_tokens():
  model = models.ViT(num_classes=10, dim=8, depth=1, heads=2)
  x = jnp.linspace(0, 1, 2 * 28 * 28).reshape(2, 28, 28, 1)
  params = model.init(jax.random.key(0), x)
  logits, attention = model.apply(params, x)
  assert logits.shape == (2, 10)
  assert attention.shape == (2, 2, 49)  # 7 x 7 patch tokens, the CLS column left out
  # a softmax row over 50 tokens without its CLS entry: positive, summing to less than one
  assert bool(jnp.all(attention > 0)) and bool(jnp.all(attention.sum(-1) < 1))


def _fake_raw(n_train=400, n_test=100):
  rng = np.random.default_rng(0)
  y_train = rng.integers(0, 10, n_train).astype(np.int32)
  y_test = rng.integers(0, 10, n_test).astype(np.int32)
  # images carry their class as brightness, so a few steps learn something
  x_train = (rng.random((n_train, 28, 28, 1)) * 0.1 + y_train[:, None, None, None] / 10).astype(np.float32)
  x_test = (rng.random((n_test, 28, 28, 1)) * 0.1 + y_test[:, None, None, None] / 10).astype(np.float32)
  return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def test_runner_stores_each_run_resumes_and_reports(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(vit.study, "load_raw", lambda data_dir: _fake_raw())
  tiny = ["--size", "300", "--steps", "2", "--dim", "8", "--depth", "1", "--heads", "1", "--seeds", "2"]
  argv = ["run", *tiny, "--methods", "aug", "transmix", "--out", str(tmp_path), "--no-progress"]
  assert vit.main(argv) == 0
  runs = sorted(os.listdir(tmp_path / "runs"))
  assert runs == sorted(f"{m}-n300-t2-d8x1-s{s}.json" for m in ("aug", "transmix") for s in (0, 1))
  with open(tmp_path / "runs" / runs[0]) as f:
    record = json.load(f)
  assert record["train_size"] + record["val_size"] == 300
  assert 0.0 <= record["test"]["accuracy"] <= 1.0 and np.isfinite(record["test"]["nll"])
  table = (tmp_path / "vit.md").read_text()
  assert "| transmix |" in table and "| aug |" in table
  assert (tmp_path / "vit.png").stat().st_size > 0
  # a second call finds every run stored and trains nothing
  monkeypatch.setattr(vit, "train_and_evaluate", lambda *a, **k: pytest.fail("re-ran a stored run"))
  capsys.readouterr()
  assert vit.main(argv) == 0
  assert "0 runs to do, 4 stored" in capsys.readouterr().out


def test_report_needs_the_baseline_with_all_its_seeds(tmp_path):
  args = vit.parse_args(["report", "--seeds", "2", "--out", str(tmp_path)])
  with pytest.raises(ValueError, match="baseline 'aug'"):
    vit.render({}, args)


def test_make_targets_refuses_an_unknown_method():
  with pytest.raises(ValueError, match="method must be one of"):
    vit.make_targets("cutout")
