"""YOLOX and ultralytics MixUp presets (issue 17, item 3) and their regression tests (items 7, 8)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import examples
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix

D = jaxmix.detection
N = 3
STATIC = ("pairing", "method", "box_format", "normalized", "data_format")
_yolox = jax.jit(D.yolox_mixup, static_argnames=STATIC)
_ultra = jax.jit(D.ultralytics_mixup, static_argnames=tuple(s for s in STATIC if s != "method"))


def painted(seed, b, h, w, n=N):
  """Boxes painted as rectangles of a colour unique in the batch (channel 0), background 0.

  Row j of image i has colour i * n + j + 1 and lives in its own vertical band, so boxes never overlap;
  the last row is padding. Boxes are at least 2 px wide (one band is w // (n − 1) ≥ 4 px).
  """
  rng = np.random.default_rng(seed)
  images = np.zeros((b, h, w, 2), np.float32)
  images[..., 1] = 0.25
  boxes = np.zeros((b, n, 4), np.float32)
  classes = np.full((b, n), -1, np.int32)
  band = w // (n - 1)
  for i in range(b):
    for j in range(n - 1):
      x1 = j * band + rng.integers(0, band // 2)
      x2 = rng.integers(x1 + 2, (j + 1) * band + 1)
      y1 = rng.integers(0, h - 2)
      y2 = rng.integers(y1 + 2, h + 1)
      boxes[i, j] = [x1, y1, x2, y2]
      classes[i, j] = i  # the class names the source image
      images[i, y1:y2, x1:x2, 0] = i * n + j + 1
  return jnp.asarray(images), jnp.asarray(boxes), jnp.asarray(classes)


@settings(max_examples=examples(12), deadline=None)
@given(seed=st.integers(0, 2**16), pairing=st.sampled_from(["flip", "permute"]))
def test_yolox_partner_boxes_cover_their_pixels(seed, pairing):
  """Painted instances (nearest resampling, fill 0 = the background): every valid partner box holds
  pixels of its instance, and every pixel of a kept instance lies in its box (within the one pixel that
  int(H·j) against H·j leaves); own boxes are unchanged."""
  b, h, w = 4, 24, 30
  images, boxes, classes = painted(seed, b, h, w)
  mixed, t = _yolox(jax.random.key(seed), images, boxes, classes, pairing=pairing, method="nearest")
  mixed, images = np.asarray(mixed), np.asarray(images)
  out_boxes, out_valid, out_classes = (np.asarray(a) for a in (t.boxes, t.valid, t.classes))
  np.testing.assert_array_equal(out_boxes[:, :N], boxes)
  for i in range(b):
    applied = out_valid[i, N:].any()
    if not applied:
      np.testing.assert_array_equal(mixed[i], images[i])
      continue
    canvas = 2 * mixed[i, ..., 0] - images[i, ..., 0]  # exact: small integers and halves
    for m in range(N, 2 * N):
      if not out_valid[i, m]:
        continue
      src, j = out_classes[i, m], m - N
      assert 0 <= src < b and src != i
      rows, cols = np.nonzero(canvas == src * N + j + 1)
      assert rows.size, (i, m)  # no box without visible pixels
      x1, y1, x2, y2 = out_boxes[i, m]
      assert (cols >= x1 - 1).all() and (cols + 1 <= x2 + 1).all(), (i, m, x1, x2, cols)
      assert (rows >= y1 - 1).all() and (rows + 1 <= y2 + 1).all(), (i, m, y1, y2, rows)
      assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
      assert x2 - x1 > 5 and y2 - y1 > 5  # YOLOX's box_candidates(wh_thr=5)


def test_yolox_label_mass_and_weights():
  b, h, w = 6, 24, 30
  images, boxes, classes = painted(1, b, h, w)
  _, t = _yolox(jax.random.key(2), images, boxes, classes, mixup_scale=(1.0, 1.0))
  valid, weights = np.asarray(t.valid), np.asarray(t.weights)
  applied = valid[:, N:].any(1)
  assert applied.any()
  own = np.asarray(classes) >= 0
  np.testing.assert_array_equal(weights[:, :N], np.where(own, np.where(applied, 0.5, 1.0)[:, None], 0))
  np.testing.assert_array_equal(weights[:, N:], np.where(valid[:, N:], 0.5, 0.0))
  # Each sample's content: its own share plus the partner's share is 1.
  np.testing.assert_array_equal(weights[:, 0] + np.where(applied, 0.5, 0.0), 1.0)


def test_ultralytics_is_beta_32_mixup_with_label_mass_one():
  b, h, w = 64, 8, 8
  images = jnp.broadcast_to(jnp.arange(b, dtype=jnp.float32)[:, None, None, None], (b, h, w, 1))
  boxes = jnp.tile(jnp.array([[[0.0, 0.0, 4.0, 4.0]]]), (b, 1, 1))
  classes = jnp.zeros((b, 1), jnp.int32)
  _, t = _ultra(jax.random.key(0), images, boxes, classes)
  lam = np.asarray(t.weights[:, 0])
  np.testing.assert_allclose(lam + np.asarray(t.weights[:, 1]), 1.0, atol=1e-6)
  # Beta(32, 32): mean 0.5, sd 1 / (2·sqrt(65)) ≈ 0.062.
  assert abs(lam.mean() - 0.5) < 0.05 and 0.03 < lam.std() < 0.1
  _, ref = D.mixup(jax.random.key(0), images, boxes, classes, alpha=32.0)
  np.testing.assert_allclose(t.weights, ref.weights)


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32])
@pytest.mark.parametrize("fn", [_yolox, _ultra], ids=["yolox", "ultralytics"])
def test_dtype_kept_and_same_key_same_output(fn, dtype):
  images, boxes, classes = painted(3, 4, 16, 20)
  images = (images * 9).astype(dtype)
  a, ta = fn(jax.random.key(5), images, boxes, classes)
  b, tb = fn(jax.random.key(5), images, boxes, classes)
  assert a.dtype == dtype and a.shape == images.shape and ta.boxes.shape == (4, 2 * N, 4)
  chex.assert_trees_all_equal((a, ta), (b, tb))


@pytest.mark.parametrize("fn", [D.yolox_mixup, D.ultralytics_mixup], ids=["yolox", "ultralytics"])
def test_jit_equals_eager(fn):
  images, boxes, classes = painted(4, 4, 16, 20)
  eager = fn(jax.random.key(6), images, boxes, classes)
  jitted = (_yolox if fn is D.yolox_mixup else _ultra)(jax.random.key(6), images, boxes, classes)
  chex.assert_trees_all_close(eager, jitted, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(1, 9, 9), (3, 20, 11), (5, 7, 33)])
@pytest.mark.parametrize("method", ["linear", "nearest"])
def test_yolox_jit_equals_eager_over_shapes(shape, method):
  b, h, w = shape
  images, boxes, classes = painted(7, b, h, max(w, 4))
  eager = D.yolox_mixup(jax.random.key(8), images, boxes, classes, method=method, pairing="permute")
  jitted = _yolox(jax.random.key(8), images, boxes, classes, method=method, pairing="permute")
  chex.assert_trees_all_close(eager, jitted, atol=1e-5)


def _left_box_batch(b, h=16, w=32):
  """Every image has one box on its left half, painted, so a flip moves it to the right half."""
  images = jnp.zeros((b, h, w, 1)).at[:, 2:14, 2:12].set(1.0)
  boxes = jnp.tile(jnp.array([[[2.0, 2.0, 12.0, 14.0]]]), (b, 1, 1))
  return images, boxes, jnp.arange(b, dtype=jnp.int32)[:, None]


def test_probability_p_gives_rate_p_and_zero_never_applies_or_flips():
  """mmdetection #9336: the flip / mix probability p gives rate p, and p = 0 never flips or mixes."""
  b = 400
  images, boxes, classes = _left_box_batch(b)
  unit = dict(mixup_scale=(1.0, 1.0))
  for p in (0.0, 0.3, 1.0):
    mixed, t = _yolox(jax.random.key(9), images, boxes, classes, prob=p, **unit)
    applied = np.asarray(t.valid[:, 1])
    assert abs(applied.mean() - p) < 0.08, (p, applied.mean())
    if p == 0:
      np.testing.assert_array_equal(mixed, images)
      assert not np.asarray(t.weights[:, 1]).any()
    _, t = _yolox(jax.random.key(10), images, boxes, classes, flip_prob=p, **unit)
    flipped = np.asarray(t.boxes[:, 1, 0]) >= 16  # the left box lands on the right half
    assert abs(flipped.mean() - p) < 0.08, (p, flipped.mean())
  _, t = _ultra(jax.random.key(11), images, boxes, classes, prob=0.0)
  assert not np.asarray(t.valid[:, 1]).any()


@pytest.mark.parametrize("b", [1, 2, 7])
def test_partner_indices_in_range(b):
  """mmdetection #6266: a partner is always one of the B samples (the class names the source)."""
  images, boxes, _ = _left_box_batch(b)
  classes = jnp.arange(b, dtype=jnp.int32)[:, None]
  for pairing in ("flip", "roll", "permute"):
    _, t = _yolox(jax.random.key(b), images, boxes, classes, pairing=pairing, mixup_scale=(1.0, 1.0))
    src = np.asarray(t.classes[:, 1])
    assert ((src >= 0) & (src < b)).all()
    # A sample that is its own partner is left unmixed.
    assert not np.asarray(t.valid[:, 1])[src == np.arange(b)].any()


def test_bad_input_raises_naming_the_argument():
  images, boxes, classes = painted(0, 2, 12, 12)
  with pytest.raises(ValueError, match="method"):
    D.yolox_mixup(jax.random.key(0), images, boxes, classes, method="cubic")
  with pytest.raises(ValueError, match="mixup_scale"):
    D.yolox_mixup(jax.random.key(0), images, boxes, classes, mixup_scale=1.5)
  with pytest.raises(ValueError, match="flip_prob"):
    D.yolox_mixup(jax.random.key(0), images, boxes, classes, flip_prob=1.5)
  with pytest.raises(ValueError, match="boxes"):
    D.yolox_mixup(jax.random.key(0), images, boxes[:1], classes)
  t = D.BoxTargets(boxes, classes, classes >= 0, jnp.ones(classes.shape))
  with pytest.raises(ValueError, match="partners"):
    D.yolox_mixup(jax.random.key(0), images, boxes, classes, partners=(images[:, :5], t))
  with pytest.raises(ValueError, match="partners"):
    D.ultralytics_mixup(jax.random.key(0), images, boxes, classes, partners=images)


def test_traced_magnitudes_do_not_retrace():
  traces = []

  def fn(key, images, boxes, classes, **kw):
    traces.append(1)
    return D.yolox_mixup(key, images, boxes, classes, **kw)

  f = jax.jit(fn)
  images, boxes, classes = painted(2, 2, 12, 12)
  for scale, p, flip, fill in [((0.5, 1.5), 1.0, 0.5, 0.0), ((0.8, 1.2), 0.3, 0.0, 114.0)]:
    f(jax.random.key(0), images, boxes, classes, mixup_scale=scale, prob=p, flip_prob=flip, fill_value=fill)
  assert len(traces) == 1
