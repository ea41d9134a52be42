"""Fast checks of examples/detection.py: the AP metric, the scenes, the mixing, the runner and its report."""

import json
import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import detection  # noqa: E402


def _fake_raw(n_train=60, n_test=20):
  """Random "items": a filled rectangle of random size on a 28 × 28 black square."""
  rng = np.random.default_rng(0)

  def items(n):
    x = np.zeros((n, 28, 28, 1), np.float32)
    for i in range(n):
      y0, x0 = rng.integers(0, 10, 2)
      y1, x1 = rng.integers(18, 28, 2)
      x[i, y0:y1, x0:x1, 0] = rng.uniform(0.5, 1.0)
    return x

  return {
    "x_train": items(n_train),
    "y_train": rng.integers(0, 10, n_train).astype(np.int32),
    "x_test": items(n_test),
    "y_test": rng.integers(0, 10, n_test).astype(np.int32),
  }


# ------------------------------------------------------------------------------------ the AP metric


def test_average_precision_of_perfect_detections_is_one():
  assert detection.average_precision(np.array([0.9, 0.8, 0.1]), np.array([True, True, True]), 3) == 1.0


def test_average_precision_of_a_known_pr_curve():
  # ranked hits T, F, T with 2 ground-truth boxes: (recall, precision) = (0.5, 1), (0.5, 0.5), (1, 2/3);
  # all-point interpolation: 0.5 · 1 + 0.5 · 2/3
  ap = detection.average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2)
  assert ap == pytest.approx(0.5 + 0.5 * 2 / 3)
  # a box never found caps recall at 1/2; unsorted scores are sorted first
  ap = detection.average_precision(np.array([0.2, 0.9]), np.array([False, True]), 2)
  assert ap == pytest.approx(0.5)
  assert detection.average_precision(np.array([]), np.array([], bool), 3) == 0.0


def test_mean_ap_counts_a_duplicate_detection_as_a_false_positive():
  gt_boxes = np.array([[[0, 0, 10, 10], [20, 20, 30, 30]]], np.float32)
  gt_classes = np.array([[0, 1]], np.int32)
  perfect = (gt_boxes[0], np.array([0.9, 0.8]), np.array([0, 1]))
  m, aps = detection.mean_ap([perfect], gt_boxes, gt_classes)
  assert m == 1.0 and aps == {0: 1.0, 1: 1.0}
  # two objects of class 0; the first found twice: ranked T, F (the duplicate), T
  gt2 = np.array([[[0, 0, 10, 10], [50, 50, 60, 60]]], np.float32)
  boxes = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [50, 50, 60, 60]], np.float32)
  dets = (boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 0]))
  m, aps = detection.mean_ap([dets], gt2, np.array([[0, 0]], np.int32))
  assert aps[0] == pytest.approx(0.5 + 0.5 * 2 / 3)
  # without the duplicate: perfect
  kept = (boxes[[0, 2]], np.array([0.9, 0.7]), np.array([0, 0]))
  m, aps = detection.mean_ap([kept], gt2, np.array([[0, 0]]))
  assert aps[0] == 1.0


def test_mean_ap_ignores_low_iou_wrong_class_and_absent_classes():
  gt_boxes = np.array([[[0, 0, 10, 10], [0, 0, 0, 0]]], np.float32)
  gt_classes = np.array([[2, -1]], np.int32)
  dets = (np.array([[0, 0, 10, 4], [0, 0, 10, 10]], np.float32), np.array([0.9, 0.8]), np.array([2, 3]))
  m, aps = detection.mean_ap([dets], gt_boxes, gt_classes)
  assert aps == {2: 0.0} and m == 0.0  # IoU 0.4 < 0.5, and class 3 (no ground truth) is not averaged


# ------------------------------------------------------------------------------------ the scenes


def test_scenes_are_seeded_with_tight_boxes_inside_the_canvas():
  raw = _fake_raw()
  items, labels = raw["x_train"][..., 0], raw["y_train"]
  a = detection.make_scenes(items, labels, 12, [0, 1])
  b = detection.make_scenes(items, labels, 12, [0, 1])
  c = detection.make_scenes(items, labels, 12, [1, 1])
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a["images"], c["images"])
  side = detection.SIDE
  assert a["images"].shape == (12, side, side, 1) and 0 <= a["images"].min() and a["images"].max() <= 1
  valid = a["classes"] >= 0
  assert valid[:, 0].all() and (valid.sum(1) <= detection.MAX_ITEMS).all()
  assert set(np.unique(a["classes"][valid])) <= set(range(len(detection.CLASS_NAMES)))
  for i in range(12):
    for k in np.nonzero(valid[i])[0]:
      x1, y1, x2, y2 = a["boxes"][i, k]
      assert 0 <= x1 < x2 <= side and 0 <= y1 < y2 <= side
      rows, cols = np.nonzero(a["masks"][i] == k + 1)
      tight = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
      np.testing.assert_array_equal([x1, y1, x2, y2], tight)
      assert detection.ITEM_SIDE[0] - 2 <= max(x2 - x1, y2 - y1) <= detection.ITEM_SIDE[1]
    assert a["masks"][i].max() == valid[i].sum()  # no mask id without its box row


@pytest.mark.parametrize("method", detection.METHODS)
def test_mixing_gives_fixed_size_weighted_targets(method):
  raw = _fake_raw()
  s = detection.make_scenes(raw["x_train"][..., 0], raw["y_train"], 8, [0, 1])
  mix = jax.jit(detection.make_mix(method))
  images, t = mix(jax.random.key(1), s["images"], s["boxes"], s["classes"], s["masks"], 1.0)
  assert images.shape == s["images"].shape and t.boxes.shape == (8, detection.MAX_BOXES, 4)
  assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
  w = np.asarray(t.weights)
  assert ((w > 0) == np.asarray(t.valid)).all() and w.max() <= 1.0
  if method == "none":
    np.testing.assert_array_equal(images, s["images"])
    assert int(t.valid.sum()) == int((s["classes"] >= 0).sum())
  # with prob 0 (the last steps) nothing is mixed
  images0, t0 = mix(jax.random.key(1), s["images"], s["boxes"], s["classes"], s["masks"], 0.0)
  np.testing.assert_allclose(images0, s["images"], atol=1e-6)
  assert int(t0.valid.sum()) == int((s["classes"] >= 0).sum())


def test_loss_box_weights_scale_the_positive_and_l1_terms():
  import jax.numpy as jnp

  raw = _fake_raw()
  s = detection.make_scenes(raw["x_train"][..., 0], raw["y_train"], 4, [0, 1])
  _, t = detection.make_mix("none")(jax.random.key(0), s["images"], s["boxes"], s["classes"], s["masks"])
  g = detection.SIDE // detection.STRIDE
  c = len(detection.CLASS_NAMES)
  outputs = (jnp.full((4, g, g, c), -2.19), jnp.zeros((4, g, g, 2)), jnp.zeros((4, g, g, 2)))
  loss, (focal, size, offset) = detection.centernet_loss(outputs, t)
  assert np.isfinite(float(loss)) and float(size) > 1.0 and float(focal) > 0.1
  # halving every weight: the size and offset terms are weighted means, so unchanged; the focal term's
  # positives halve with its normaliser but its (unweighted) negatives do not, so it grows
  half = type(t)(t.boxes, t.classes, t.valid, t.weights * 0.5)
  _, (focal_h, size_h, offset_h) = detection.centernet_loss(outputs, half)
  np.testing.assert_allclose([size_h, offset_h], [size, offset], rtol=1e-5)
  assert float(focal_h) > float(focal)


# ------------------------------------------------------------------------------------ the runner


def test_runner_stores_each_run_resumes_and_reports(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(detection.study, "load_raw", lambda data_dir: _fake_raw())
  monkeypatch.setattr(detection, "VAL_SIZE", 8)
  tiny = ["--size", "16", "--steps", "2", "--width", "4", "--test-size", "8", "--seeds", "2"]
  argv = ["run", *tiny, "--methods", "none", "copy_paste", "--out", str(tmp_path), "--no-progress"]
  assert detection.main(argv) == 0
  runs = sorted(os.listdir(tmp_path / "runs"))
  assert runs == sorted(f"{m}-n16-t2-w4-e8-s{s}.json" for m in ("none", "copy_paste") for s in (0, 1))
  with open(tmp_path / "runs" / runs[0]) as f:
    record = json.load(f)
  assert record["config"]["steps"] == 2 and record["config"]["seed"] in (0, 1)
  assert 0.0 <= record["test"]["map50"] <= 1.0 and 0.0 <= record["val"]["map50"] <= 1.0
  assert [s for s, _ in record["val_map"]] == [1, 2] and len(record["train_loss"]) == 2
  assert {"jax", "flax", "jaxmix", "commit"} <= set(record["versions"])
  table = (tmp_path / "detection-n16-t2-w4-e8.md").read_text()
  assert "| copy_paste |" in table and "| none |" in table and "Not shown" not in table
  for png in ("detection-n16-t2-w4-e8.png", "canvases.png"):
    assert (tmp_path / png).stat().st_size > 0
  # a second call finds every run stored and trains nothing
  monkeypatch.setattr(detection, "train_and_evaluate", lambda *a, **k: pytest.fail("re-ran a stored run"))
  capsys.readouterr()
  assert detection.main(argv) == 0
  assert "0 runs to do, 4 stored" in capsys.readouterr().out
  # a method with fewer seeds than asked is left out of the table and named
  os.remove(tmp_path / "runs" / "copy_paste-n16-t2-w4-e8-s1.json")
  assert detection.main(["report", *tiny, "--methods", "none", "copy_paste", "--out", str(tmp_path)]) == 0
  table = (tmp_path / "detection-n16-t2-w4-e8.md").read_text()
  assert "| copy_paste |" not in table and "Not shown (fewer than 2 seeds stored): copy_paste." in table
  # and the baseline missing a seed refuses the table
  os.remove(tmp_path / "runs" / "none-n16-t2-w4-e8-s1.json")
  with pytest.raises(ValueError, match="baseline 'none'"):
    detection.main(["report", *tiny, "--methods", "none", "copy_paste", "--out", str(tmp_path)])


def test_report_is_named_after_a_shape_that_is_not_the_default():
  assert detection.report_stem(detection.parse_args(["report"])) == "detection"
  assert detection.report_stem(detection.parse_args(["report", "--steps", "1600"])) == (
    "detection-n500-t1600-w16-e500"
  )


def test_report_needs_the_baseline_with_all_its_seeds(tmp_path):
  args = detection.parse_args(["report", "--seeds", "2", "--out", str(tmp_path)])
  with pytest.raises(ValueError, match="baseline 'none'"):
    detection.render({}, args)


def test_make_mix_refuses_an_unknown_method():
  with pytest.raises(ValueError, match="method must be one of"):
    detection.make_mix("cutmix")
