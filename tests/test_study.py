"""Fast checks of the regime-study runner (examples/study.py): noise, splits, metrics, resume, report."""

import argparse
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import study  # noqa: E402


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4, 1.0])
def test_flip_labels_exact_rate_seeded_never_true(rate):
  labels = np.random.default_rng(0).integers(0, 10, 1000).astype(np.int32)
  before = labels.copy()
  noisy, flipped = study.flip_labels(3, labels, rate, 10)
  assert flipped.sum() == round(rate * 1000)
  assert np.all(noisy[flipped] != labels[flipped])
  assert np.all(noisy[~flipped] == labels[~flipped])
  assert noisy.dtype == labels.dtype and np.array_equal(labels, before)
  again, _ = study.flip_labels(3, labels, rate, 10)
  assert np.array_equal(noisy, again)
  if 0 < rate < 1:
    other, _ = study.flip_labels(4, labels, rate, 10)
    assert not np.array_equal(noisy, other)


def test_flip_labels_refuses_bad_rate():
  with pytest.raises(ValueError, match="rate"):
    study.flip_labels(0, np.zeros(4, np.int32), 1.5, 10)


@pytest.mark.parametrize("size", [1000, 5000, 60000])
def test_split_disjoint_and_sized(size):
  train, val = study.split(1, 60000, size)
  assert len(train) + len(val) == size and len(val) == study.val_size(size)
  assert not set(train.tolist()) & set(val.tolist())
  assert np.array_equal(study.split(1, 60000, size)[0], train)


def test_corruptions_keep_shape_dtype_and_grow_with_severity():
  x = np.random.default_rng(0).uniform(0.2, 0.8, (4, 28, 28, 1)).astype(np.float32)
  for kind, low, high in study.CORRUPTIONS:
    a, b = study.corrupt(x, kind, low), study.corrupt(x, kind, high)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert 0 < np.abs(a - x).mean() < np.abs(b - x).mean(), kind


def test_calibration_on_hand_computed_input():
  probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
  labels = np.array([0, 1, 1, 1])
  m = study.calibration(probs, labels, num_bins=2)
  assert m["accuracy"] == pytest.approx(0.75)
  assert m["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.7, 0.8])))
  # all confidences fall in the upper bin: |mean confidence 0.75 - accuracy 0.75| = 0
  assert m["ece"] == pytest.approx(0.0, abs=1e-12)
  m = study.calibration(np.array([[0.9, 0.1], [0.8, 0.2]]), np.array([1, 0]), num_bins=2)
  assert m["ece"] == pytest.approx(abs(0.85 - 0.5))


def _fake(cfg, acc=0.5):
  return {
    "config": {
      "key": cfg.key,
      "method": cfg.method,
      "alpha": cfg.alpha,
      "size": cfg.size,
      "width": cfg.width,
      "steps": cfg.steps or study.steps_for(cfg.size),
    },
    "test": {
      "accuracy": acc,
      "nll": 1.0,
      "ece": 0.1,
      "bins": {"count": [10, 30], "accuracy": [0.4, acc], "confidence": [0.3, 0.8]},
    },
    "val": {"accuracy": acc},
    "corrupt_mean": acc,
    "memorised": 0.1,
  }


def _store(out, cfg, acc=0.5):
  study.write_json(os.path.join(out, "runs", cfg.key + ".json"), _fake(cfg, acc))


def test_runner_resumes_without_rerunning(tmp_path):
  out = str(tmp_path)
  kw = dict(sizes=[1000], noises=[0.0], methods=["aug", "mixup"], seeds=2)
  first = [c for c in study.grid(study.load_results(out), **kw)]
  assert any(not isinstance(c, study.Config) for c in first)  # mixup waits for its α search
  for a, acc in zip(study.ALPHAS, [0.1, 0.9, 0.2, 0.3], strict=True):
    _store(out, study.Config(1000, 0.0, "mixup", a, 0), acc)
  _store(out, study.Config(1000, 0.0, "aug", None, 0))
  results = study.load_results(out)
  todo = [c for c in dict.fromkeys(study.grid(results, **kw)) if c.key not in results]
  # what is left: aug seed 1 and mixup seed 1 at the α with the best validation accuracy (0.5)
  assert [c.key for c in todo] == [
    study.Config(1000, 0.0, "aug", None, 1).key,
    study.Config(1000, 0.0, "mixup", 0.5, 1).key,
  ]


def test_report_refuses_cells_with_too_few_seeds(tmp_path, capsys):
  out = str(tmp_path)
  for s in range(3):
    _store(out, study.Config(1000, 0.0, "aug", None, s), 0.5 + 0.01 * s)
    _store(out, study.Config(1000, 0.0, "erm", None, s), 0.4)
  _store(out, study.Config(1000, 0.0, "resizemix", None, 0), 0.9)  # one seed only
  # A run of another variant (width 16, 4 000 steps) does not make this variant's 5 000 cells "missing".
  _store(out, study.Config(5000, 0.0, "aug", None, 0, 16, 4000), 0.9)
  study.report(argparse.Namespace(out=out, seeds=3))
  text = open(os.path.join(out, "study.md")).read()
  table = [line for line in text.splitlines() if line.startswith("| ")]
  assert any(line.startswith("| aug |") for line in table)
  assert not any(line.startswith("| resizemix |") for line in table)
  assert "n=1000 noise=0 resizemix" in text
  assert "mixup" not in text  # no run of it stored here: not listed as missing
  assert "n=5000" not in text
  json.dumps(text)  # plain text


def test_report_draws_gain_and_reliability_figures(tmp_path):
  out = str(tmp_path)
  for s in range(3):
    _store(out, study.Config(1000, 0.4, "aug", None, s), 0.50 + 0.01 * s)
    _store(out, study.Config(1000, 0.4, "resizemix", None, s), 0.60 + 0.01 * s)  # +10 pts, paired
  study.report(argparse.Namespace(out=out, seeds=3))
  text = open(os.path.join(out, "study.md")).read()
  assert "![" in text and "gain.png" in text and "reliability.png" in text
  assert "1,000 images, 40 % noise: resizemix +10.00 pts" in text
  for name in ("gain.png", "reliability.png"):
    with open(os.path.join(out, name), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_report_keeps_longer_training_runs_apart_from_the_grid(tmp_path):
  out = str(tmp_path)
  for s in range(3):
    _store(out, study.Config(5000, 0.0, "aug", None, s), 0.80)
    _store(out, study.Config(5000, 0.0, "aug", None, s, steps=4000), 0.85 + 0.01 * s)
    _store(out, study.Config(5000, 0.0, "resizemix", None, s, steps=4000), 0.90 + 0.01 * s)
    _store(out, study.Config(5000, 0.0, "aug", None, s, width=16, steps=4000), 0.70)
    _store(out, study.Config(5000, 0.0, "resizemix", None, s, width=16, steps=4000), 0.75 - 0.01 * s)
  study.report(argparse.Namespace(out=out, seeds=3))
  text = open(os.path.join(out, "study.md")).read()
  grid, longer = text.split("## Recipe check: 4000 steps instead of the rule's (`run --steps 4000`)")
  longer, wider = longer.split(
    "## Recipe check: 4000 steps instead of the rule's, ResNet width 16 instead of 8 "
    "(`run --steps 4000 --width 16`)"
  )
  assert "| aug | — | 80.00 ± 0.00" in grid and "resizemix" not in grid.split("Cells not yet")[0]
  assert "| aug | — | 86.00 ± 0.58" in longer and "70.00" not in longer
  assert "| resizemix | — | 91.00 ± 0.58 (Δ +5.00 ± 0.00)" in longer
  assert "| resizemix | — | 74.00 ± 0.58 (Δ +4.00 ± 0.58)" in wider


def test_report_rewrites_the_readme_summary_between_its_markers(tmp_path):
  out = str(tmp_path)
  for s in range(3):
    _store(out, study.Config(1000, 0.4, "aug", None, s), 0.50 + 0.01 * s)
    _store(out, study.Config(1000, 0.4, "resizemix", None, s), 0.60 + 0.02 * s)  # +10, +11, +12
    _store(out, study.Config(1000, 0.4, "erm", None, s), 0.9)  # a baseline, never "best mixer"
  readme = tmp_path / "README.md"
  readme.write_text(f"intro\n{study.README_BEGIN}\nstale numbers\n{study.README_END}\noutro\n")
  study.report(argparse.Namespace(out=out, seeds=3, readme=str(readme)))
  text = readme.read_text()
  assert text.startswith("intro\n") and text.endswith("outro\n") and "stale" not in text
  row = next(line for line in text.splitlines() if line.startswith("| 1,000 |"))
  assert row.startswith("| 1,000 | 40 % | 1000 (rule) | resizemix (1 tried) | +11.00 ± 0.58 | **win** |")
  readme.write_text("no markers\n")
  with pytest.raises(ValueError, match="no study-summary markers"):
    study.report(argparse.Namespace(out=out, seeds=3, readme=str(readme)))


def test_mean_confidence_comes_from_the_ece_bins():
  record = _fake(study.Config(1000, 0.0, "aug", None, 0))  # bins: 10 at 0.3, 30 at 0.8
  assert study._metric(record, "confidence") == pytest.approx((10 * 0.3 + 30 * 0.8) / 40)


def test_report_uses_every_stored_seed_and_pairs_only_common_ones(tmp_path):
  out = str(tmp_path)
  for s in range(5):  # aug has seeds 0-4, resizemix 0-3 and 6 (a gap: seed 6 is not counted)
    _store(out, study.Config(1000, 0.0, "aug", None, s), 0.50 + 0.01 * s)
  for s in (0, 1, 2, 3, 6):
    _store(out, study.Config(1000, 0.0, "resizemix", None, s), 0.60 + 0.02 * s)
  readme = tmp_path / "README.md"
  readme.write_text(f"{study.README_BEGIN}\n{study.README_END}\n")
  study.report(argparse.Namespace(out=out, seeds=3, readme=str(readme)))
  text = open(os.path.join(out, "study.md")).read()
  assert "| aug (5 seeds) | — | 52.00 ± 0.71" in text
  # resizemix: seeds 0-3, paired with aug's seeds 0-3: differences 10, 11, 12, 13
  assert "| resizemix (4 seeds) | — | 63.00 ± 1.29 (Δ +11.50 ± 0.65)" in text
  row = next(line for line in readme.read_text().splitlines() if line.startswith("| 1,000 |"))
  assert row.startswith(
    "| 1,000 | 0 % | 1000 (rule), 4 seeds | resizemix (1 tried) | +11.50 ± 0.65 | **win** "
  )


def test_temperature_scaling_recovers_a_known_temperature():
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 2, (20000, 5))
  p_true = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  labels = np.array([rng.choice(5, p=p) for p in p_true])
  overconfident = study.with_temperature(p_true, 0.5)  # logits ×2
  t = study.fit_temperature(overconfident, labels)
  assert t == pytest.approx(2.0, rel=0.05)
  np.testing.assert_allclose(study.with_temperature(overconfident, t), p_true, atol=0.03)
  np.testing.assert_allclose(study.with_temperature(p_true, 1.0), p_true, atol=1e-12)
  before = study.calibration(overconfident, labels)
  after = study.calibration(study.with_temperature(overconfident, t), labels)
  assert after["nll"] < before["nll"] and after["ece"] < before["ece"] / 3


def test_alpha_from_reuses_another_studys_alpha_search(tmp_path, monkeypatch):
  first, second = str(tmp_path / "first"), str(tmp_path / "second")
  for a, acc in zip(study.ALPHAS, [0.1, 0.9, 0.2, 0.3], strict=True):  # α search: 0.5 wins
    _store(first, study.Config(1000, 0.0, "mixup", a, 0), acc)
  done = []

  def fake_train(cfg, raw, corrupted, bar=None):
    done.append(cfg.key)
    ece = 0.01 if cfg.method == "mixup" else 0.03
    return _fake(cfg) | {"test_ts": {"temperature": 1.0, "nll": 0.5, "ece": ece}}

  monkeypatch.setattr(study, "train_and_evaluate", fake_train)
  monkeypatch.setattr(study, "load_raw", lambda data_dir: {"x_test": np.zeros((2, 28, 28, 1), np.float32)})
  monkeypatch.setattr(study, "CORRUPTIONS", ())
  monkeypatch.setattr(study, "ALPHA_SOURCE", None)
  args = argparse.Namespace(
    out=second, data_dir="", sizes=[1000], noises=[0.0], methods=["aug", "mixup"], seeds=3, width=8,
    steps=0, dry_run=False, seconds_per_step=0.0, seconds_per_eval=0.0, no_progress=True,
    alpha_from=first,
  )
  study.run(args)
  # no α search in the second study: the cells' runs at the first study's α (0.5), seeds 0-2
  assert sorted(done) == sorted(
    [study.Config(1000, 0.0, "aug", None, s).key for s in range(3)]
    + [study.Config(1000, 0.0, "mixup", 0.5, s).key for s in range(3)]
  )
  study.run(args)
  assert len(done) == 6  # resumes: nothing left
  study.report(argparse.Namespace(out=second, seeds=3, alpha_from=first))
  text = open(os.path.join(second, "study.md")).read()
  head = next(line for line in text.splitlines() if line.startswith("| method |"))
  assert "| ECE % | NLL after TS | ECE % after TS |" in head
  row = next(line for line in text.splitlines() if line.startswith("| mixup |"))
  assert row.startswith("| mixup | 0.5 | 50.00 ± 0.00 (Δ +0.00 ± 0.00) |")
  assert "| 1.00 ± 0.00 (Δ -2.00 ± 0.00) |" in row  # ECE after TS: 1 % against aug's 3 %
