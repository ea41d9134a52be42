"""The grain input-pipeline example: reproducible per-epoch shuffles, per-record augmentation, and
a jitted step fed from it."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "examples"))

import data as data_lib  # noqa: E402
import grain_pipeline as gp  # noqa: E402

N, S = 12, 8


def _arrays(seed=0):
  x = np.random.default_rng(seed).normal(size=(N, S, S, 1)).astype(np.float32)
  return x, np.arange(N, dtype=np.int32)  # label = record id, to follow records through the pipeline


def _labels(batches):
  return [b["label"].tolist() for b in batches]


def test_every_epoch_is_its_own_permutation_of_all_records():
  x, y = _arrays()
  batches = list(gp.pipeline(x, y, batch_size=4, seed=0, num_epochs=3, augment=False))
  assert len(batches) == 9 and all(b["image"].shape == (4, S, S, 1) for b in batches)
  epochs = [sum(_labels(batches[3 * e : 3 * e + 3]), []) for e in range(3)]
  for order in epochs:
    assert sorted(order) == list(range(N))
  assert len({tuple(order) for order in epochs}) == 3
  # without augmentation a record is its own image
  for b in batches:
    np.testing.assert_array_equal(b["image"], x[b["label"]])


def test_same_seed_same_batches_and_other_seed_other_batches():
  x, y = _arrays()
  a = list(gp.pipeline(x, y, batch_size=4, seed=7, num_epochs=2))
  b = list(gp.pipeline(x, y, batch_size=4, seed=7, num_epochs=2))
  c = list(gp.pipeline(x, y, batch_size=4, seed=8, num_epochs=2))
  for u, v in zip(a, b, strict=True):
    np.testing.assert_array_equal(u["image"], v["image"])
    np.testing.assert_array_equal(u["label"], v["label"])
  assert _labels(a) != _labels(c)


def test_crop_flip_is_a_padded_shift_and_an_optional_mirror():
  x, y = _arrays()
  batches = list(gp.pipeline(x, y, batch_size=N, seed=0, num_epochs=4))
  flipped = 0
  for b in batches:
    for image, label in zip(b["image"], b["label"], strict=True):
      src = x[label]
      padded = np.pad(src, ((2, 2), (2, 2), (0, 0)), constant_values=src.min())
      views = [padded[t : t + S, l : l + S] for t in range(5) for l in range(5)]  # noqa: E741
      plain = any(np.array_equal(image, v) for v in views)
      mirrored = any(np.array_equal(image, v[:, ::-1]) for v in views)
      assert plain or mirrored, "not a crop of the padded record (or its mirror)"
      flipped += mirrored and not plain
  assert 0 < flipped < 4 * N  # both branches taken over 48 draws


def test_two_steps_train_from_the_pipeline_with_one_compile(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 16, 16, 1)).astype(np.float32)
  y = rng.integers(0, 10, 64).astype(np.int32)
  ds = data_lib.Dataset("toy", x[:48], y[:48], x[48:], y[48:], tuple("abcdefghij"))
  result = gp.train("cutmix", data=ds, epochs=1, batch_size=16, width=4, max_steps=2, progress=False)
  assert result["steps"] == 2 and result["traces"] == 1
  assert all(np.isfinite(result["loss"])) and 0.0 <= result["accuracy"] <= 1.0
  json.dumps(result)
  out = tmp_path / "r.json"
  gp.plot_losses(result, str(out.with_suffix(".png")))
  assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_records_refuse_mismatched_lengths():
  with pytest.raises(ValueError, match="images and labels differ in length"):
    gp.Records(np.zeros((3, 2, 2, 1)), np.zeros(2))
