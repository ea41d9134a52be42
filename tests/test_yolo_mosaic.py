"""The YOLO Mosaic (tiles 4 | 9, a 2s canvas, an affine back to s) and random_affine.

Painted instances check the boxes against the pixels; the identity affine is checked against a NumPy
canvas built as ultralytics builds it; the regressions are peers' reported bugs (issue 17, item 7).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix
from jaxmix._src.families import affine_detection as ad

Affine = jaxmix.detection.Affine
TWIST = Affine(degrees=10.0, translate=0.1, scale=0.3, shear=4.0)


def _painted(b: int, h: int, w: int, n: int, seed: int = 0):
  """float32 images whose box j of image i is painted with id i·n + j + 1 (0 the background)."""
  rng = np.random.default_rng(seed)
  img = np.zeros((b, h, w, 1), np.float32)
  boxes = np.zeros((b, n, 4), np.float32)
  ids = np.zeros((b, n), np.int32)
  for i in range(b):
    for j in range(n):
      bw, bh = rng.integers(6, w // 2), rng.integers(6, h // 2)
      x1, y1 = rng.integers(0, w - bw), rng.integers(0, h - bh)
      boxes[i, j] = (x1, y1, x1 + bw, y1 + bh)
      ids[i, j] = i * n + j + 1
  # Later boxes are painted over earlier ones: an instance's pixels are a subset of its box.
  for i in range(b):
    for j in range(n):
      x1, y1, x2, y2 = boxes[i, j].astype(int)
      img[i, y1:y2, x1:x2, 0] = ids[i, j]
  return jnp.asarray(img), jnp.asarray(boxes), jnp.asarray(ids)


@pytest.mark.parametrize("tiles", [4, 9])
def test_painted_instances(tiles):
  """Every valid box covers the pixels of its instance within one pixel; none is without pixels."""
  img, boxes, ids = _painted(tiles, 40, 56, 2)  # B = tiles: every slot a different image (roll)
  out, t = jaxmix.detection.mosaic(
    jax.random.key(3), img, boxes, ids, tiles=tiles, affine=TWIST, interpolation="nearest", fill_value=-1.0
  )
  out = np.asarray(out)[..., 0]
  for i in range(out.shape[0]):
    for j in np.flatnonzero(np.asarray(t.valid[i])):
      inst = int(t.classes[i, j])
      ys, xs = np.nonzero(out[i] == inst)
      assert xs.size > 0, (i, j, inst)
      x1, y1, x2, y2 = np.asarray(t.boxes[i, j])
      assert xs.min() >= x1 - 1 and xs.max() + 1 <= x2 + 1, (i, j, xs.min(), xs.max(), x1, x2)
      assert ys.min() >= y1 - 1 and ys.max() + 1 <= y2 + 1, (i, j, ys.min(), ys.max(), y1, y2)


def _canvas_reference(key, images, tiles):
  """The central s × s crop of ultralytics' 2s × 2s canvas (fill 114), built in NumPy."""
  b, h, w, c = images.shape
  warp = ad._sample_warp(key, b, (h, w), tiles, 2.0, ad.IDENTITY, 1.0, "roll")
  n = 2 if tiles == 4 else 3
  layout = ad._LAYOUTS[tiles]
  x = np.asarray(images)
  out = np.zeros_like(x)
  for i in range(b):
    grid = np.full((n * h, n * w, c), 114, x.dtype)
    for r in range(n):
      for col in range(n):
        grid[r * h : (r + 1) * h, col * w : (col + 1) * w] = x[int(warp.index[i, layout[r][col]])]
    ox, oy = (int(v) for v in np.asarray(warp.offset[i]))
    big = np.full((n * h + 4 * h, n * w + 4 * w, c), 114, x.dtype)  # room for a negative offset
    big[2 * h : 2 * h + n * h, 2 * w : 2 * w + n * w] = grid
    canvas = big[2 * h + oy : 2 * h + oy + 2 * h, 2 * w + ox : 2 * w + ox + 2 * w]
    out[i] = canvas[h // 2 : h // 2 + h, w // 2 : w // 2 + w]
  return out


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
  ("tiles", "interpolation"),
  [
    (4, "bilinear"),
    (9, "nearest"),
    pytest.param(4, "nearest", marks=SLOW),
    pytest.param(9, "bilinear", marks=SLOW),
  ],
)
def test_identity_affine_is_the_canvas_crop(tiles, interpolation):
  key = jax.random.key(5)
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (3, 16, 24, 3)), jnp.uint8)
  boxes = jnp.array([[[1.0, 1.0, 9.0, 7.0]]] * 3)
  out, _ = jaxmix.detection.mosaic(
    key, x, boxes, jnp.zeros((3, 1), jnp.int32), tiles=tiles, affine=None, canvas_scale=2.0,
    interpolation=interpolation,
  )
  np.testing.assert_array_equal(np.asarray(out), _canvas_reference(key, x, tiles))


def _random_boxes(b, h, w, n, seed=0, small=False):
  rng = np.random.default_rng(seed)
  lo = 1 if small else 4
  hi = 6 if small else min(h, w) // 2
  xy = rng.uniform(0, [w - hi, h - hi], (b, n, 2))
  wh = rng.uniform(lo, hi, (b, n, 2))
  return jnp.asarray(np.concatenate([xy, xy + wh], -1), jnp.float32), jnp.zeros((b, n), jnp.int32)


@pytest.mark.parametrize("tiles", [pytest.param(4, marks=SLOW), 9])
def test_boxes_clipped_to_the_output_and_not_too_thin(tiles):
  """ultralytics #18627 (9 tiles clipped to 2s, not s) and YOLOv5 #8673 (slivers kept)."""
  h, w = 24, 40
  x = jnp.zeros((6, h, w, 3), jnp.uint8)
  boxes, classes = _random_boxes(6, h, w, 12, small=True)
  for seed in range(3):
    out, t = jaxmix.detection.mosaic(
      jax.random.key(seed), x, boxes, classes, tiles=tiles, affine=TWIST, min_size=2.5
    )
    assert out.shape == x.shape
    b = np.asarray(t.boxes)[np.asarray(t.valid)]
    assert b.size
    assert (b >= 0).all() and (b[:, [0, 2]] <= w).all() and (b[:, [1, 3]] <= h).all()
    assert (b[:, 2] - b[:, 0] > 2.5).all() and (b[:, 3] - b[:, 1] > 2.5).all()
    assert t.boxes.shape == (6, tiles * 12, 4)


def test_h_ne_w_keeps_shape_and_boxes():
  """kornia #4438: a non-square batch keeps its shape; the boxes stay in the image, in their format."""
  h, w = 20, 36
  x = jnp.ones((4, h, w, 3), jnp.float32)
  boxes, classes = _random_boxes(4, h, w, 3)
  norm = jaxmix.detection.normalize_boxes(jaxmix.detection.convert_boxes(boxes, "xyxy", "cxcywh"), (h, w))
  key = jax.random.key(1)
  out, t = jaxmix.detection.mosaic(key, x, boxes, classes, affine=TWIST)
  _, tn = jaxmix.detection.mosaic(key, x, norm, classes, affine=TWIST, box_format="cxcywh", normalized=True)
  assert out.shape == (4, h, w, 3)
  back = jaxmix.detection.denormalize_boxes(tn.boxes, (h, w))
  back = jaxmix.detection.convert_boxes(back, "cxcywh", "xyxy")
  v = np.asarray(t.valid)
  np.testing.assert_array_equal(v, np.asarray(tn.valid))
  np.testing.assert_allclose(np.asarray(back)[v], np.asarray(t.boxes)[v], atol=1e-3)


@pytest.mark.parametrize("tiles", [4, pytest.param(9, marks=SLOW)])
def test_prob_leaves_unselected_samples_untouched(tiles):
  """kornia #4652: a sample left out keeps its pixels and its boxes, whatever the other samples do."""
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, 16, 20, 3)), jnp.uint8)
  boxes, classes = _random_boxes(8, 16, 20, 2)
  out, t = jaxmix.detection.mosaic(jax.random.key(2), x, boxes, classes, tiles=tiles, affine=TWIST, prob=0.5)
  warp = ad._sample_warp(jax.random.key(2), 8, (16, 20), tiles, 2.0, TWIST, 0.5, "roll")
  off = ~np.asarray(warp.on)
  assert off.any() and (~off).any()
  np.testing.assert_array_equal(np.asarray(out)[off], np.asarray(x)[off])
  np.testing.assert_array_equal(np.asarray(t.boxes)[off, :2], np.asarray(boxes)[off])
  assert np.asarray(t.valid)[off, :2].all() and not np.asarray(t.valid)[off, 2:].any()


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32])
def test_dtype_kept_and_same_key_same_output(dtype):
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3))).astype(dtype)
  boxes, classes = _random_boxes(4, 16, 16, 2)
  a, ta = jaxmix.detection.mosaic(jax.random.key(0), x, boxes, classes, affine=TWIST)
  b, tb = jaxmix.detection.mosaic(jax.random.key(0), x, boxes, classes, affine=TWIST)
  assert a.dtype == dtype and a.shape == x.shape
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_array_equal(np.asarray(ta.boxes), np.asarray(tb.boxes))


def test_no_retrace_when_a_magnitude_changes():
  traces = []
  x = jnp.zeros((2, 16, 16, 3), jnp.uint8)
  boxes, classes = _random_boxes(2, 16, 16, 2)

  @jax.jit
  def step(key, affine, prob):
    traces.append(1)
    return jaxmix.detection.mosaic(key, x, boxes, classes, tiles=9, affine=affine, prob=prob)

  for i in range(3):
    affine = Affine(degrees=1.0 + i, translate=0.1, scale=0.1 * i, shear=float(i), perspective=0.0)
    step(jax.random.key(i), affine, 0.5)
  assert len(traces) == 1


def test_random_affine():
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (4, 16, 24, 3)), jnp.uint8)
  boxes, classes = _random_boxes(4, 16, 24, 3)
  same, t = jaxmix.detection.random_affine(jax.random.key(0), x, boxes, classes, affine=None)
  np.testing.assert_array_equal(np.asarray(same), np.asarray(x))
  np.testing.assert_allclose(np.asarray(t.boxes), np.asarray(boxes), atol=1e-4)
  out, t = jaxmix.detection.random_affine(jax.random.key(0), x, boxes, classes, affine={"degrees": 20.0})
  assert out.shape == x.shape and out.dtype == x.dtype and t.boxes.shape == (4, 3, 4)
  assert not np.array_equal(np.asarray(out), np.asarray(x))


@pytest.mark.parametrize(
  ("kwargs", "error", "name"),
  [
    ({"tiles": 5}, ValueError, "tiles"),
    ({"canvas_scale": 0.5}, ValueError, "canvas_scale"),
    ({"tiles": 9, "canvas_scale": 3.5}, ValueError, "canvas_scale"),
    ({"affine": {"rotate": 1.0}}, ValueError, "affine"),
    ({"affine": Affine(scale=1.5)}, ValueError, "affine.scale"),
    ({"affine": Affine(degrees=-1.0)}, ValueError, "affine.degrees"),
    ({"affine": "yolo"}, TypeError, "affine"),
    ({"affine": None, "canvas_scale": 2.0, "interpolation": "cubic"}, ValueError, "interpolation"),
    ({"tiles": 9, "prob": 1.5}, ValueError, "prob"),
  ],
)
def test_bad_input_names_the_argument(kwargs, error, name):
  x = jnp.zeros((2, 8, 8, 3), jnp.uint8)
  boxes, classes = _random_boxes(2, 8, 8, 1)
  with pytest.raises(error, match=name):
    jaxmix.detection.mosaic(jax.random.key(0), x, boxes, classes, **kwargs)


def test_bad_boxes_name_the_argument():
  x = jnp.zeros((2, 8, 8, 3), jnp.uint8)
  with pytest.raises(ValueError, match="boxes"):
    jaxmix.detection.mosaic(jax.random.key(0), x, jnp.zeros((2, 3)), jnp.zeros((2, 1), jnp.int32), tiles=9)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(3, 16, 24, 3), (2, 17, 13, 1)])
@pytest.mark.parametrize("tiles", [4, 9])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_jit_matches_eager(shape, tiles, interpolation):
  x = jnp.asarray(np.random.default_rng(0).random(shape), jnp.float32)
  boxes, classes = _random_boxes(shape[0], shape[1], shape[2], 2)
  affine = TWIST.replace(perspective=0.0005)
  fn = functools.partial(jaxmix.detection.mosaic, tiles=tiles, affine=affine, interpolation=interpolation)
  a, ta = fn(jax.random.key(0), x, boxes, classes)
  b, tb = jax.jit(fn)(jax.random.key(0), x, boxes, classes)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
  np.testing.assert_array_equal(np.asarray(ta.valid), np.asarray(tb.valid))
  np.testing.assert_allclose(np.asarray(ta.boxes), np.asarray(tb.boxes), atol=1e-3)


def test_nchw_and_pytrees_follow_the_same_map():
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (4, 12, 20, 3)), jnp.uint8)
  ids = jnp.asarray(np.random.default_rng(1).integers(0, 5, (4, 12, 20)), jnp.int32)
  boxes, classes = _random_boxes(4, 12, 20, 2)
  key = jax.random.key(4)
  kw = {"tiles": 9, "affine": TWIST}
  out, _ = jaxmix.detection.mosaic(key, {"image": x, "ids": ids}, boxes, classes, **kw)
  nchw, _ = jaxmix.detection.mosaic(key, jnp.moveaxis(x, -1, 1), boxes, classes, data_format="NCHW", **kw)
  np.testing.assert_array_equal(np.asarray(jnp.moveaxis(nchw, 1, -1)), np.asarray(out["image"]))
  assert out["ids"].dtype == jnp.int32 and set(np.unique(out["ids"])) <= {0, 1, 2, 3, 4, 114}


def _ultralytics_boxes(warp, boxes, h, w, tiles):
  """ultralytics' bookkeeping in NumPy: tile shift, clip to the canvas, drop empty, apply_bboxes
  (xy @ M.T over the four corners, min/max), clip to the output, box_candidates(box1 · s, box2)."""
  layout = ad._LAYOUTS[tiles]
  n = len(layout)
  hc, wc = warp.canvas
  m = np.asarray(warp.matrix, np.float64)
  out_b = np.zeros((boxes.shape[0], tiles * boxes.shape[1], 4))
  out_v = np.zeros((boxes.shape[0], tiles * boxes.shape[1]), bool)
  nb = boxes.shape[1]
  for i in range(boxes.shape[0]):
    for r in range(n):
      for c in range(n):
        slot = layout[r][c]
        src = int(warp.index[i, slot])
        ox, oy = np.asarray(warp.offset[i], np.float64)
        b = np.asarray(boxes[src], np.float64) + [c * w - ox, r * h - oy] * 2
        b = np.clip(b, 0, [wc, hc, wc, hc])
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        xy = np.ones((nb * 4, 3))
        xy[:, :2] = b[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(nb * 4, 2)
        xy = xy @ m[i].T
        xy = (xy[:, :2] / xy[:, 2:3]).reshape(nb, 8)
        x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
        new = np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], 1).clip(0, [w, h, w, h])
        z = float(warp.zoom[i])
        w1, h1 = (b[:, 2] - b[:, 0]) * z, (b[:, 3] - b[:, 1]) * z
        w2, h2 = new[:, 2] - new[:, 0], new[:, 3] - new[:, 1]
        ar = np.maximum(w2 / (h2 + 1e-16), h2 / (w2 + 1e-16))
        good = (w2 > 2) & (h2 > 2) & (w2 * h2 / (w1 * h1 + 1e-16) > 0.1) & (ar < 100)
        rows = slice(slot * nb, (slot + 1) * nb)
        out_v[i, rows] = keep & good
        out_b[i, rows] = np.where((keep & good)[:, None], new, 0)
  return out_b, out_v


@pytest.mark.parametrize("tiles", [4, 9])
def test_boxes_match_ultralytics_bookkeeping(tiles):
  h, w = 24, 32
  boxes, classes = _random_boxes(9, h, w, 4, seed=3)
  affine = TWIST.replace(perspective=0.0005)
  key = jax.random.key(7)
  x = jnp.zeros((9, h, w, 3), jnp.uint8)
  _, t = jaxmix.detection.mosaic(key, x, boxes, classes, tiles=tiles, affine=affine)
  warp = ad._sample_warp(key, 9, (h, w), tiles, 2.0, affine, 1.0, "roll")
  want_b, want_v = _ultralytics_boxes(warp, np.asarray(boxes), h, w, tiles)
  got_v = np.asarray(t.valid)
  assert want_v.any()
  # Float32 against float64: a box right at a threshold may flip; allow one.
  assert (got_v != want_v).sum() <= 1
  both = got_v & want_v
  np.testing.assert_allclose(np.asarray(t.boxes)[both], want_b[both], atol=2e-3)
