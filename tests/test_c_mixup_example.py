"""The C-Mixup regression example (examples/c_mixup_regression.py) with tiny settings: it runs, picks its
hyperparameters on the validation split, and writes its table, records and figure."""

from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "examples"))

import c_mixup_regression as example  # noqa: E402


def test_example_runs_and_writes_its_report(tmp_path):
  out = tmp_path / "c_mixup-regression.md"
  records = example.main(
    ["--seeds", "2", "--epochs", "2", "--hidden", "8", "--no-progress", "--out", str(out)]
  )
  assert set(records["results"]) == set(example.METHODS)
  for method, r in records["results"].items():
    assert len(r["test_rmse"]) == 2 and np.all(np.isfinite(r["test_rmse"]))
    # Chosen on validation: the grid point with the lowest mean validation RMSE.
    chosen = int(np.argmin(r["grid_val"]))
    assert tuple(r["grid"][chosen]) == (r["alpha"], r["bandwidth"]), method
    assert len(r["grid"]) == len(example.grid(method))
  text = out.read_text()
  assert "| c_mixup |" in text and "paired Δ vs ERM" in text
  assert json.loads((tmp_path / "c_mixup-regression.json").read_text())["config"]["seeds"] == 2
  assert (tmp_path / "c_mixup-regression.png").stat().st_size > 1000
