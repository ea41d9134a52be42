"""Fast checks of examples/restoration.py: the pairs, the mixing, the runner and its report."""

import json
import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import restoration  # noqa: E402


def _fake_raw(n_train=64, n_test=20):
  rng = np.random.default_rng(0)
  return {
    "x_train": rng.random((n_train, 28, 28, 1)).astype(np.float32),
    "y_train": rng.integers(0, 10, n_train).astype(np.int32),
    "x_test": rng.random((n_test, 28, 28, 1)).astype(np.float32),
    "y_test": rng.integers(0, 10, n_test).astype(np.int32),
  }


def test_pairs_are_area_averages_upsampled_nearest():
  hr = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 1)
  lr, target = restoration.make_pairs(hr)
  assert lr.shape == target.shape == hr.shape
  np.testing.assert_array_equal(target, hr)
  # the top-left 2 x 2 block of the first image is 0, 1, 4, 5: its mean fills the block
  np.testing.assert_allclose(lr[0, :2, :2, 0], np.full((2, 2), 2.5))
  np.testing.assert_allclose(lr.mean(), hr.mean(), rtol=1e-6)


@pytest.mark.parametrize("method", restoration.METHODS)
def test_mixing_keeps_shapes_and_the_pixel_range(method):
  lr, hr = restoration.make_pairs(_fake_raw()["x_train"][:8])
  out_lr, out_hr, mask = jax.jit(restoration.make_mix(method))(jax.random.key(1), lr, hr)
  assert out_lr.shape == out_hr.shape == lr.shape and mask.shape == lr.shape[:3]
  assert 0.0 <= float(out_lr.min()) and float(out_lr.max()) <= 1.0
  if method == "none":
    np.testing.assert_array_equal(out_lr, lr)
  if method == "cutblur":
    np.testing.assert_array_equal(out_hr, hr)  # CutBlur leaves the target alone
    assert bool(np.all((out_lr == lr) | (out_lr == hr)))  # and copies each input pixel from LR or HR


def test_runner_stores_each_run_resumes_and_reports(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(restoration.study, "load_raw", lambda data_dir: _fake_raw())
  tiny = ["--size", "40", "--steps", "2", "--width", "4", "--blocks", "1", "--test-size", "10"]
  tiny += ["--seeds", "2"]
  argv = ["run", *tiny, "--methods", "none", "cutblur", "--out", str(tmp_path), "--no-progress"]
  assert restoration.main(argv) == 0
  runs = sorted(os.listdir(tmp_path / "runs"))
  assert runs == sorted(f"{m}-n40-t2-w4x1-e10-s{s}.json" for m in ("none", "cutblur") for s in (0, 1))
  with open(tmp_path / "runs" / runs[0]) as f:
    record = json.load(f)
  assert record["config"]["steps"] == 2 and record["config"]["seed"] in (0, 1)
  assert np.isfinite(record["test"]["psnr"]) and -1.0 <= record["test"]["ssim"] <= 1.0
  assert set(record["reference"]) == {"nearest", "bicubic"}
  assert {"jax", "flax", "jaxmix", "commit"} <= set(record["versions"])
  table = (tmp_path / "restoration.md").read_text()
  assert "| cutblur |" in table and "| none |" in table and "| bicubic upsampling" in table
  assert "Not shown (fewer than 2 seeds stored): " not in table
  for png in ("restoration.png", "pairs.png"):
    assert (tmp_path / png).stat().st_size > 0
  # a second call finds every run stored and trains nothing
  monkeypatch.setattr(restoration, "train_and_evaluate", lambda *a, **k: pytest.fail("re-ran a stored run"))
  capsys.readouterr()
  assert restoration.main(argv) == 0
  assert "0 runs to do, 4 stored" in capsys.readouterr().out
  # a method with fewer seeds than asked is left out of the table and named
  os.remove(tmp_path / "runs" / "cutblur-n40-t2-w4x1-e10-s1.json")
  assert restoration.main(["report", *tiny, "--methods", "none", "cutblur", "--out", str(tmp_path)]) == 0
  table = (tmp_path / "restoration.md").read_text()
  assert "| cutblur |" not in table and "Not shown (fewer than 2 seeds stored): cutblur." in table


def test_report_needs_the_baseline_with_all_its_seeds(tmp_path):
  args = restoration.parse_args(["report", "--seeds", "2", "--out", str(tmp_path)])
  with pytest.raises(ValueError, match="baseline 'none'"):
    restoration.render({}, args)


def test_make_mix_refuses_an_unknown_method():
  with pytest.raises(ValueError, match="method must be one of"):
    restoration.make_mix("cutout")
