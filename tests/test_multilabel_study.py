"""Fast checks of the multi-label study (examples/multilabel_study.py): corruption, canvases, metrics,
an end-to-end run, resume and the report's refusal of incomplete cells."""

import argparse
import dataclasses
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import multilabel_study as ms  # noqa: E402


def _raw(n_train=600, n_test=200, seed=0):
  """Synthetic items: class c is an image of constant brightness (c + 1) / 10, so canvases are learnable."""
  rng = np.random.default_rng(seed)
  y_tr = rng.integers(0, 10, n_train).astype(np.int32)
  y_te = rng.integers(0, 10, n_test).astype(np.int32)

  def images(y):
    value = ((y + 1) / 10.0).astype(np.float32)[:, None, None, None]
    return np.broadcast_to(value, (len(y), 28, 28, 1)).copy()

  return {"x_train": images(y_tr), "y_train": y_tr, "x_test": images(y_te), "y_test": y_te}


SIZES = {"items": 400, "train": 64, "val": 16, "test": 32}


@pytest.mark.parametrize("drop, add", [(0.0, 0.0), (0.1, 0.1), (0.3, 0.3), (0.1, 0.3), (1.0, 0.0)])
def test_corruption_rates_exact_and_seeded(drop, add):
  y = (np.random.default_rng(0).random((500, 10)) < 0.3).astype(np.float32)
  before = y.copy()
  noisy, changed = ms.corrupt_multi_hot(5, y, drop, add)
  pos, neg = y > 0.5, y < 0.5
  assert (changed & pos).sum() == round(drop * pos.sum())
  assert (changed & neg).sum() == round(add * neg.sum())
  assert np.all(noisy[changed] == 1 - y[changed]) and np.all(noisy[~changed] == y[~changed])
  assert np.array_equal(y, before) and noisy.dtype == np.float32
  again, _ = ms.corrupt_multi_hot(5, y, drop, add)
  assert np.array_equal(noisy, again)
  if 0 < drop < 1:
    other, _ = ms.corrupt_multi_hot(6, y, drop, add)
    assert not np.array_equal(noisy, other)


def test_corruption_refuses_bad_rates():
  with pytest.raises(ValueError, match="add"):
    ms.corrupt_multi_hot(0, np.zeros((2, 3)), 0.1, 1.5)


def test_canvases_carry_the_classes_present_and_test_labels_stay_clean():
  raw = _raw()
  clean = ms.make_data(1, 0.0, raw, SIZES)
  noisy = ms.make_data(1, 0.3, raw, SIZES)
  for x, y in ((clean["x_train"], clean["y_train"]), (clean["x_test"], clean["y_test"])):
    assert x.shape[1:] == (56, 56, 1)
    for img, row in zip(x, y, strict=True):
      tiles = [img[:28, :28], img[:28, 28:], img[28:, :28], img[28:, 28:]]
      present = {int(round(t[0, 0, 0] * 10)) - 1 for t in tiles}
      assert set(np.flatnonzero(row)) == present
  # same seed: same canvases; corruption touches training and validation labels only
  assert np.array_equal(clean["x_train"], noisy["x_train"])
  assert np.array_equal(clean["y_train"], noisy["y_train_clean"])
  assert np.array_equal(clean["y_test"], noisy["y_test"])
  assert np.array_equal(noisy["y_train"] != noisy["y_train_clean"], noisy["changed_train"])
  assert noisy["changed_train"].any() and not np.array_equal(clean["y_val"], noisy["y_val"])
  assert np.array_equal(ms.make_data(2, 0.0, raw, SIZES)["y_test"], clean["y_test"])  # fixed test set


def test_metrics_on_hand_computed_inputs():
  y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
  p = np.array([[0.9, 0.2], [0.6, 0.4], [0.3, 0.8], [0.1, 0.7]])
  m = ms.metrics(p, y)
  # class 0: ranking 0.9(+), 0.6(-), 0.3(+), 0.1(-): AP = (1/1 + 2/3) / 2; AUC = 3/4
  # class 1: ranking 0.8(+), 0.7(-), 0.4(+), 0.2(-): AP = (1 + 2/3) / 2; AUC = 3/4
  assert m["ap_per_class"] == pytest.approx([5 / 6, 5 / 6])
  assert m["mAP"] == pytest.approx(5 / 6)
  assert m["auc"] == pytest.approx(0.75)
  # at 0.5, class 0: predicted {0, 1}, true {0, 2}: tp 1, fp 1, fn 1 -> F1 1/2
  #          class 1: predicted {2, 3}, true {1, 2}: tp 1, fp 1, fn 1 -> F1 1/2
  assert m["macro_f1"] == pytest.approx(0.5)
  assert m["micro_f1"] == pytest.approx(0.5)
  perfect = ms.metrics(y.astype(np.float64), y)
  assert perfect["mAP"] == perfect["macro_f1"] == perfect["micro_f1"] == perfect["auc"] == 1.0
  assert ms.roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5  # ties count half
  assert np.isnan(ms.roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def _args(out, **kw):
  base = dict(
    command="run",
    out=out,
    data_dir="unused",
    noises=[0.1],
    methods=["erm", "mixup"],
    seeds=1,
    steps=3,
    width=2,
    items=SIZES["items"],
    train_canvases=SIZES["train"],
    val_canvases=SIZES["val"],
    test_canvases=SIZES["test"],
    dry_run=False,
    flow_beta=None,
    seconds_per_step=0.01,
    seconds_per_eval=1.0,
    no_progress=True,
  )
  return argparse.Namespace(**(base | kw))


def test_end_to_end_run_then_resume_runs_nothing(tmp_path, monkeypatch):
  monkeypatch.setattr(ms, "load_items", lambda data_dir: _raw())
  out = str(tmp_path)
  assert ms.run(_args(out)) == 0
  results = ms.load_results(out)
  assert sorted(results) == ["noise0.1-erm-w2-t3-s0", "noise0.1-mixup-w2-t3-s0"]
  rec = results["noise0.1-mixup-w2-t3-s0"]
  assert rec["config"]["alpha"] == 1.0 and rec["data"]["test_canvases"] == SIZES["test"]
  for name in ("mAP", "macro_f1", "micro_f1", "auc"):
    assert 0.0 <= rec["test"][name] <= 1.0
  assert 0.0 <= rec["memorised"] <= 1.0 and rec["versions"]["commit"]
  json.dumps(rec)

  def boom(*a, **k):
    raise AssertionError("a finished run was trained again")

  monkeypatch.setattr(ms, "train_and_evaluate", boom)
  assert ms.run(_args(out)) == 0


def _store(out, cfg, m=0.5, val=0.5):
  test = {"mAP": m, "macro_f1": m, "micro_f1": m, "auc": m, "ap_per_class": [m] * 10}
  record = {
    "config": dataclasses.asdict(cfg) | {"key": cfg.key, "alpha": cfg.alpha},
    "data": {"test_canvases": 100},
    "test": test,
    "val": {"mAP": val},
    "memorised": 0.2,
    "train_seconds": 1.0,
  }
  ms.write_json(os.path.join(out, "runs", cfg.key + ".json"), record)


def test_grid_searches_beta_first_then_uses_the_best_on_validation(tmp_path):
  out = str(tmp_path)
  kw = dict(noises=[0.0], methods=["erm", "flow"], seeds=2, steps=5, width=2)
  first = list(ms.grid(ms.load_results(out), **kw))
  assert [c.beta for c in first[:3]] == list(ms.BETAS) and (0.0, "flow", 0) in first
  for b, val in zip(ms.BETAS, [0.3, 0.1, 0.2], strict=True):
    _store(out, ms.Config(ms.BETA_NOISE, "flow", 0, b, 5, 2), val=val)
  todo = [c for c in ms.grid(ms.load_results(out), **kw)][3:]
  assert {c.beta for c in todo if c.method == "flow"} == {ms.BETAS[0]}


def test_report_refuses_cells_with_too_few_seeds_and_shows_paired_deltas(tmp_path, monkeypatch):
  monkeypatch.setattr(ms, "load_items", lambda data_dir: _raw())
  out = str(tmp_path)
  for s in range(3):
    _store(out, ms.Config(0.1, "erm", s, None, 5, 2), 0.50 + 0.01 * s)
    _store(out, ms.Config(0.1, "mixup", s, None, 5, 2), 0.60 + 0.01 * s)  # +10 pts, paired
  _store(out, ms.Config(0.1, "manifold", 0, None, 5, 2), 0.9)  # one seed only
  for b, val in zip(ms.BETAS, [0.1, 0.3, 0.2], strict=True):  # β search: the second wins
    _store(out, ms.Config(ms.BETA_NOISE, "flow", 0, b, 5, 2), 0.40, val=val)
  for s in (1, 2):
    _store(out, ms.Config(0.1, "flow", s, ms.BETAS[1], 5, 2), 0.40 + 0.01 * s)
  for s in range(3):  # a check beside the grid (run --flow-beta 0)
    _store(out, ms.Config(0.1, "flow", s, 0.0, 5, 2), 0.45 + 0.01 * s)
  args = argparse.Namespace(out=out, seeds=3, steps=5, width=2, data_dir="unused", no_canvases=False)
  assert ms.report(args) == 0
  text = open(os.path.join(out, "multilabel.md")).read()
  table = [line for line in text.splitlines() if line.startswith("| ")]
  assert any(line.startswith("| erm |") for line in table)
  assert any(line.startswith("| mixup |") and "(Δ +10.00 ± 0.00)" in line for line in table)
  assert not any(line.startswith("| manifold |") for line in table)
  assert "noise 0.1 manifold" in text and "noise 0.1 flow" not in text
  assert any(line.startswith("| flow |") and f"β {ms.BETAS[1]:g}" in line for line in table)
  assert "| 10 % | flow − mixup | -20.00 ± 0.00 |" in text
  assert any(line.startswith("| flow (check) | α 1, β 0 |") for line in table)
  assert "| 10 % | flow − flow at β 0 | -5.00 ± 0.00 |" in text
  for name in ("results.png", "canvases.png"):
    with open(os.path.join(out, name), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
