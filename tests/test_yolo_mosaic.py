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


@pytest.mark.parametrize("form", ["crop", "yolo4"])
def test_mmyolo_87_mosaic_with_prob_then_mixup_keeps_shapes_and_boxes(form):
  """mmyolo #87: Mosaic with prob < 1 followed by MixUp. Samples that skipped the mosaic and those that did
  not come out with one static shape, through detection MixUp and YOLOX MixUp alike, and every valid box
  is inside the image, with its class, and weighted; the skipped samples keep their own boxes."""
  b, h, w, n = 6, 32, 32, 2
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (b, h, w, 3)), jnp.uint8)
  boxes, _ = _random_boxes(b, h, w, n)
  classes = jnp.arange(b * n, dtype=jnp.int32).reshape(b, n)
  opts = {} if form == "crop" else {"canvas_scale": 2.0, "affine": TWIST}
  k1, k2, k3 = jax.random.split(jax.random.key(3), 3)

  @jax.jit
  def chain(k1, k2, k3):
    m, t = jaxmix.detection.mosaic(k1, x, boxes, classes, prob=0.5, **opts)
    a, ta = jaxmix.detection.mixup(k2, m, t.boxes, t.classes, t.valid)
    y, ty = jaxmix.detection.yolox_mixup(k3, m, t.boxes, t.classes, t.valid)
    return m, t, a, ta, y, ty

  m, t, a, ta, y, ty = chain(k1, k2, k3)
  _, on = _expected_tiles(k1, form, b, h, w, 0.5)
  assert on.any() and (~on).any()
  np.testing.assert_array_equal(np.asarray(m)[~on], np.asarray(x)[~on])
  np.testing.assert_allclose(np.asarray(t.boxes)[~on, :n], np.asarray(boxes)[~on])
  assert np.asarray(t.valid)[~on, :n].all() and not np.asarray(t.valid)[~on, n:].any()
  assert t.boxes.shape == (b, 4 * n, 4)
  for out, tt in ((m, t), (a, ta), (y, ty)):
    assert out.shape == x.shape and out.dtype == x.dtype
    assert tt.boxes.shape == (b, tt.classes.shape[1], 4) and tt.valid.shape == tt.classes.shape
    v = np.asarray(tt.valid)
    bx = np.asarray(tt.boxes)[v]
    assert (bx[:, :2] >= 0).all() and (bx[:, 2] <= w).all() and (bx[:, 3] <= h).all()
    assert (bx[:, :2] < bx[:, 2:]).all()
    assert ((np.asarray(tt.classes)[v] >= 0) & (np.asarray(tt.classes)[v] < b * n)).all()
    assert (np.asarray(tt.weights)[v] > 0).all() and (np.asarray(tt.weights)[~v] == 0).all()
  for tt in (ta, ty):  # the mix keeps the mosaic's boxes first, the partner's after: [B, 8N]
    assert tt.boxes.shape == (b, 8 * n, 4)
    own = np.asarray(tt.valid)[:, : 4 * n]
    assert (own <= np.asarray(t.valid)).all()
    np.testing.assert_array_equal(np.asarray(tt.classes)[:, : 4 * n][own], np.asarray(t.classes)[own])


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32])
def test_dtype_kept_and_same_key_same_output(dtype):
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3))).astype(dtype)
  boxes, classes = _random_boxes(4, 16, 16, 2)
  a, ta = jaxmix.detection.mosaic(jax.random.key(0), x, boxes, classes, affine=TWIST)
  b, tb = jaxmix.detection.mosaic(jax.random.key(0), x, boxes, classes, affine=TWIST)
  assert a.dtype == dtype and a.shape == x.shape
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_array_equal(np.asarray(ta.boxes), np.asarray(tb.boxes))



@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize(
  "dtype, ch", [(jnp.uint8, 3), (jnp.uint8, 4), (jnp.int8, 2), (jnp.uint16, 2), (jnp.bfloat16, 2)]
)
def test_packed_pixels_match_channel_by_channel(dtype, ch, interpolation):
  """Small pixels (ch · itemsize <= 4 bytes) are gathered as one 32-bit word per tap; each channel comes
  out bit for bit as the same warp gives it on that channel alone (one channel: a row gather)."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.integers(-128, 256, (5, 18, 22, ch)) % (128 if dtype == jnp.int8 else 256))
  x = (x - (64 if dtype == jnp.int8 else 0)).astype(dtype)
  if dtype == jnp.bfloat16:
    x = x * jnp.asarray(0.37, dtype)
  boxes, classes = _random_boxes(5, 18, 22, 2)
  twist = Affine(degrees=20.0, translate=0.2, scale=0.5, shear=5.0, perspective=0.001)
  for tiles in (1, 4, 9):
    kw = dict(affine=twist, interpolation=interpolation, fill_value=7.5, prob=0.7)
    if tiles == 1:
      fn = functools.partial(jaxmix.detection.random_affine, **kw)
    else:
      fn = functools.partial(jaxmix.detection.mosaic, tiles=tiles, **kw)
    out, _ = fn(jax.random.key(tiles), x, boxes, classes)
    for c in range(ch):
      one, _ = fn(jax.random.key(tiles), x[..., c : c + 1], boxes, classes)
      np.testing.assert_array_equal(
        np.asarray(out[..., c : c + 1].astype(jnp.float32)), np.asarray(one.astype(jnp.float32))
      )

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


# --- partners from a PartnerCache (mmdetection's CachedMosaic) -------------------------------------------


def _constant_batch(ids, h=16, w=16):
  """Images that are the constant id (uint8), one box over the whole image of class id."""
  ids = jnp.asarray(ids, jnp.int32)
  images = jnp.broadcast_to(ids[:, None, None, None], (len(ids), h, w, 1)).astype(jnp.uint8)
  boxes = jnp.tile(jnp.array([[[0.0, 0.0, float(w), float(h)]]]), (len(ids), 1, 1))
  classes = ids[:, None]
  valid = jnp.ones_like(classes, bool)
  return images, jaxmix.detection.BoxTargets(boxes, classes, valid, valid.astype(jnp.float32))


def _filled_cache(batch_ids, cache_ids):
  """A cache holding the constant images `cache_ids` (slot s holds cache_ids[s])."""
  images, t = _constant_batch(batch_ids)
  cache = jaxmix.detection.init_partner_cache(images, t, len(cache_ids))
  c_images, c_t = _constant_batch(cache_ids)
  return cache.replace(
    images=c_images, targets=c_t, count=jnp.int32(len(cache_ids)), position=jnp.int32(0)
  )


def _draws(cache, images, t, n):
  return [jaxmix.detection.draw_partners(k, cache, images, t) for k in jax.random.split(jax.random.key(1), n)]


def _expected_tiles(key, form, b, h, w, prob):
  """int [B, H, W]: the slot each output pixel shows (-1: the fill), and whether each sample is mixed."""
  ys, xs = np.mgrid[0:h, 0:w]
  slot = np.zeros((b, h, w), int)
  if form == "crop":
    plan = jaxmix.sample_mosaic(key, b, (h, w), prob=prob)
    for i in range(b):
      cy, cx = np.asarray(plan.center[i])
      slot[i] = (ys >= cy) * 2 + (xs >= cx)
    return slot, np.asarray(plan.center[:, 0]) < h
  tiles = 4 if form == "yolo4" else 9
  warp = ad._sample_warp(key, b, (h, w), tiles, 2.0, ad.IDENTITY, prob, "roll", True)
  n = 2 if tiles == 4 else 3
  layout = np.asarray(ad._LAYOUTS[tiles])
  for i in range(b):
    ox, oy = np.asarray(warp.offset[i]).astype(int)
    on = bool(warp.on[i])
    gx = xs + (w // 2 if on else 0) + ox  # the identity affine maps output x to canvas x + s/2
    gy = ys + (h // 2 if on else 0) + oy
    inside = (gx >= 0) & (gx < n * w) & (gy >= 0) & (gy < n * h)
    if on:
      inside &= (gx - ox >= 0) & (gx - ox < 2 * w) & (gy - oy >= 0) & (gy - oy < 2 * h)
    r, c = np.clip(gy // h, 0, n - 1), np.clip(gx // w, 0, n - 1)
    slot[i] = np.where(inside, layout[r, c], -1)
  return slot, np.asarray(warp.on)


@pytest.mark.parametrize("form", ["crop", "yolo4", pytest.param("yolo9", marks=SLOW)])
def test_partners_from_a_cache_fill_every_tile_as_drawn(form):
  """Every tile shows the batch sample or the cache slot draw_partners picked; boxes follow their tile."""
  b, h, w = 4, 16, 16
  tiles = 9 if form == "yolo9" else 4
  batch_ids, cache_ids = [1, 2, 3, 4], [11, 12, 13, 14, 15, 16]
  images, t = _constant_batch(batch_ids)
  cache = _filled_cache(batch_ids, cache_ids)
  keys = jax.random.split(jax.random.key(1), tiles - 1)
  draws = [jaxmix.detection.draw_partners(k, cache, images, t) for k in keys]
  all_ids = np.array(batch_ids + cache_ids)
  slot_id = np.stack([np.array(batch_ids)] + [all_ids[np.asarray(d[2])] for d in draws], axis=1)  # [B, tiles]
  assert (slot_id[:, 1:] > 10).any()  # some tile came from the cache
  key = jax.random.key(2)
  opts = {} if form == "crop" else {"tiles": tiles, "canvas_scale": 2.0, "interpolation": "nearest"}
  fn = functools.partial(jaxmix.detection.mosaic, **opts)
  out, tt = jax.jit(fn)(key, images, t.boxes, t.classes, t.valid, partners=draws)
  slot, _ = _expected_tiles(key, form, b, h, w, 1.0)
  tile_id = np.take_along_axis(slot_id, np.maximum(slot, 0).reshape(b, -1), 1).reshape(slot.shape)
  want = np.where(slot >= 0, tile_id, 114)
  np.testing.assert_array_equal(np.asarray(out)[..., 0], want)
  # Boxes: each valid output box is its tile's region, of its tile's class.
  valid = np.asarray(tt.valid)
  assert valid.any()
  for i in range(b):
    for k in np.flatnonzero(valid[i]):
      cls = int(tt.classes[i, k])
      assert cls == slot_id[i, k]  # one box per image: output box k comes from slot k
      ys, xs = np.nonzero(slot[i] == k)  # the tile's region (two tiles may show the same partner)
      np.testing.assert_allclose(np.asarray(tt.boxes[i, k]), [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
  if form == "crop":  # jit == eager (the YOLO form's is test_jit_matches_eager), same key, same output
    eout, et = fn(key, images, t.boxes, t.classes, t.valid, partners=draws)
    np.testing.assert_array_equal(np.asarray(eout), np.asarray(out))
    np.testing.assert_array_equal(np.asarray(et.valid), valid)
    np.testing.assert_allclose(np.asarray(et.boxes), np.asarray(tt.boxes))


@pytest.mark.parametrize("form", ["crop", "yolo4"])
def test_partners_prob_leaves_skipped_samples_unchanged(form):
  images, t = _constant_batch([1, 2, 3, 4, 5, 6])
  cache = _filled_cache([1, 2, 3, 4, 5, 6], [11, 12, 13])
  draws = _draws(cache, images, t, 3)
  key = jax.random.key(3)  # samples 1 and 3 skip the mosaic
  opts = {} if form == "crop" else {"canvas_scale": 2.0, "affine": TWIST}
  fn = functools.partial(jaxmix.detection.mosaic, prob=0.5, partners=draws, **opts)
  out, tt = fn(key, images, t.boxes, t.classes, t.valid)
  _, on = _expected_tiles(key, form, 6, 16, 16, 0.5)
  assert on.any() and (~on).any()
  np.testing.assert_array_equal(np.asarray(out)[~on], np.asarray(images)[~on])
  np.testing.assert_allclose(np.asarray(tt.boxes)[~on, :1], np.asarray(t.boxes)[~on])
  assert np.asarray(tt.valid)[~on, 0].all() and not np.asarray(tt.valid)[~on, 1:].any()
  assert not np.array_equal(np.asarray(out)[on], np.asarray(images)[on])


def test_partners_vmap_over_keys_matches_a_loop():
  images, t = _constant_batch([1, 2])
  cache = _filled_cache([1, 2], [11, 12, 13])
  draws = _draws(cache, images, t, 3)
  fn = lambda k: jaxmix.detection.mosaic(k, images, t.boxes, t.classes, t.valid, partners=draws)[0]
  keys = jax.random.split(jax.random.key(0), 2)
  np.testing.assert_array_equal(np.asarray(jax.vmap(fn)(keys)), np.stack([np.asarray(fn(k)) for k in keys]))


def test_bad_partners_name_the_argument():
  images, t = _constant_batch([1, 2])
  cache = _filled_cache([1, 2], [11, 12])
  one = jaxmix.detection.draw_partners(jax.random.key(0), cache, images, t)
  call = functools.partial(jaxmix.detection.mosaic, jax.random.key(0), images, t.boxes, t.classes, t.valid)
  with pytest.raises(ValueError, match="partners must be a list of 3 partner draws.*single draw"):
    call(partners=one)
  with pytest.raises(ValueError, match="partners must be a list of 8 partner draws.*3 draws"):
    call(partners=[one] * 3, tiles=9)
  with pytest.raises(ValueError, match=r"partners\[1\]\[0\] has a leaf of shape"):
    call(partners=[one, (images[:, :8], one[1]), one])
  with pytest.raises(ValueError, match=r"partners\[2\]\[0\] has a leaf of dtype"):
    call(partners=[one, one, (images.astype(jnp.float32), one[1])], canvas_scale=2.0)


# --- center_range in the YOLO form ------------------------------------------------------------------------


def test_center_range_yolo_form_matches_the_crop_form_split():
  """On the 2s canvas, the YOLO form's centre s/2 + U(lo, hi)·s is the crop form's split floor(U(lo, hi)·s):
  a fixed centre gives the same mosaic in both forms (roll pairing, identity affine, no fill in view)."""
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (4, 16, 20, 3)), jnp.uint8)
  boxes, classes = _random_boxes(4, 16, 20, 2)
  for c in (0.5, 0.25):
    crop, _ = jaxmix.detection.mosaic(jax.random.key(0), x, boxes, classes, center_range=(c, c))
    yolo, _ = jaxmix.detection.mosaic(
      jax.random.key(1), x, boxes, classes, center_range=(c, c), canvas_scale=2.0, interpolation="nearest"
    )
    np.testing.assert_array_equal(np.asarray(yolo), np.asarray(crop))


@pytest.mark.parametrize("tiles", [4, 9])
def test_center_range_narrows_the_yolo_placement(tiles):
  key = jax.random.key(3)
  wide = ad._sample_warp(key, 64, (16, 16), tiles, 2.0, ad.IDENTITY, 1.0, "roll")
  same = ad._sample_warp(key, 64, (16, 16), tiles, 2.0, ad.IDENTITY, 1.0, "roll", False, (0.0, 1.0))
  narrow = ad._sample_warp(key, 64, (16, 16), tiles, 2.0, ad.IDENTITY, 1.0, "roll", False, (0.25, 0.75))
  np.testing.assert_array_equal(np.asarray(same.offset), np.asarray(wide.offset))  # the default is unchanged
  off = np.asarray(narrow.offset)
  # 4 tiles: centre = s - offset in [s/2 + s/4, s/2 + 3s/4] = [12, 20]; 9 tiles: offset in [s/4, 3s/4].
  placed = 16 - off if tiles == 4 else off  # the 4-tile centre is s - offset
  lo, hi = (12, 20) if tiles == 4 else (4, 12)
  assert ((placed >= lo) & (placed <= hi)).all()
  assert np.ptp(np.asarray(wide.offset)) > np.ptp(off)


@pytest.mark.parametrize("center_range", [(0.8, 0.2), (-0.1, 1.0), (0.0, 1.5), (0.5,)])
def test_bad_center_range_names_it_in_the_yolo_form(center_range):
  x = jnp.zeros((2, 8, 8, 3), jnp.uint8)
  boxes, classes = _random_boxes(2, 8, 8, 1)
  with pytest.raises(ValueError, match="center_range"):
    jaxmix.detection.mosaic(jax.random.key(0), x, boxes, classes, tiles=9, center_range=center_range)


def test_center_range_is_traced_in_the_yolo_form():
  traces = []
  x = jnp.zeros((2, 16, 16, 3), jnp.uint8)
  boxes, classes = _random_boxes(2, 16, 16, 2)

  @jax.jit
  def step(key, lo, hi):
    traces.append(1)
    return jaxmix.detection.mosaic(key, x, boxes, classes, canvas_scale=2.0, center_range=(lo, hi))

  for lo in (0.1, 0.2):
    step(jax.random.key(0), lo, 0.9)
  assert len(traces) == 1


def test_partners_with_output_size_are_resized_with_the_batch():
  images, t = _constant_batch([1, 2])
  cache = _filled_cache([1, 2], [11, 12, 13])
  draws = _draws(cache, images, t, 3)
  call = functools.partial(jaxmix.detection.mosaic, jax.random.key(0))
  out, tt = call(images, t.boxes, t.classes, t.valid, output_size=(8, 8), partners=draws)
  small = [(jnp.asarray(d[0])[:, ::2, ::2], d[1].replace(boxes=d[1].boxes / 2)) for d in draws]
  want, wt = call(images[:, ::2, ::2], t.boxes / 2, t.classes, t.valid, partners=small)
  assert out.shape == (2, 8, 8, 1)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(want))
  np.testing.assert_array_equal(np.asarray(tt.valid), np.asarray(wt.valid))
  np.testing.assert_allclose(np.asarray(tt.boxes), np.asarray(wt.boxes))


# --- one fill per leaf -------------------------------------------------------------------------------------


def test_fill_value_per_leaf_gives_a_label_map_its_own_fill():
  """The image reads 114 and the int label map 255 (mmdetection's pad_val / seg_pad_val) where no tile
  is, in the same pixels (nearest: one map for both leaves)."""
  x = jnp.asarray(np.random.default_rng(0).integers(0, 100, (4, 16, 16, 3)), jnp.uint8)
  seg = jnp.asarray(np.random.default_rng(1).integers(0, 5, (4, 16, 16)), jnp.int32)
  boxes, classes = _random_boxes(4, 16, 16, 2)
  affine = Affine(translate=0.0, scale=0.9)
  images, fill = {"image": x, "seg": seg}, {"image": 114, "seg": 255}
  fn = jax.jit(functools.partial(jaxmix.detection.mosaic, affine=affine, interpolation="nearest"))
  out, _ = fn(jax.random.key(0), images, boxes, classes, fill_value=fill)
  filled = np.asarray(out["seg"]) == 255
  assert filled.any() and (~filled).any()
  np.testing.assert_array_equal((np.asarray(out["image"]) == 114).all(-1), filled)
  assert set(np.unique(np.asarray(out["seg"])[~filled])) <= {0, 1, 2, 3, 4}
  # random_affine takes the per-leaf form too.
  warped, _ = jaxmix.detection.random_affine(
    jax.random.key(0), images, boxes, classes, affine=affine, interpolation="nearest", fill_value=fill
  )
  filled = np.asarray(warped["seg"]) == 255
  assert filled.any()
  np.testing.assert_array_equal((np.asarray(warped["image"]) == 114).all(-1), filled)


@pytest.mark.parametrize(
  ("fill_value", "error"),
  [({"image": 114}, ValueError), ({"image": 114, "seg": jnp.ones(3)}, ValueError), ("grey", TypeError)],
)
def test_bad_fill_value_names_it(fill_value, error):
  x = jnp.zeros((2, 8, 8, 3), jnp.uint8)
  images = {"image": x, "seg": jnp.zeros((2, 8, 8), jnp.int32)}
  boxes, classes = _random_boxes(2, 8, 8, 1)
  for kw in ({}, {"tiles": 9}):  # both forms check it
    with pytest.raises(error, match="fill_value"):
      jaxmix.detection.mosaic(jax.random.key(0), images, boxes, classes, fill_value=fill_value, **kw)
