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

N = 3


def painted(seed, b, h, w, n=N):
  """Each box painted as a filled rectangle whose colour (channel 0) is unique in the batch."""
  rng = np.random.default_rng(seed)
  images = np.zeros((b, h, w, 2), np.float32)
  images[..., 1] = np.arange(b)[:, None, None] + 100
  boxes = np.zeros((b, n, 4), np.float32)
  classes = np.full((b, n), -1, np.int32)
  for i in range(b):
    for j in range(n - 1):
      band = w // (n - 1)
      x1 = j * band + rng.integers(0, band // 2)
      x2 = rng.integers(x1 + 1, (j + 1) * band + 1)
      y1 = rng.integers(0, h - 1)
      y2 = rng.integers(y1 + 1, h + 1)
      boxes[i, j] = [x1, y1, x2, y2]
      classes[i, j] = j
      images[i, y1:y2, x1:x2, 0] = i * n + j + 1
  return jnp.asarray(images), jnp.asarray(boxes), jnp.asarray(classes)


def canvas_reference(images, index, center):
  """YOLOv5-style: paste the four images on a big canvas around the centre, then crop."""
  b, h, w = images.shape[:3]
  out = np.zeros_like(images)
  for i in range(b):
    cy, cx = center[i]
    canvas = np.zeros((3 * h, 3 * w) + images.shape[3:], images.dtype)
    yc, xc = h + cy, w + cx  # the centre in canvas coordinates
    corners = [(yc - h, xc - w), (yc - h, xc), (yc, xc - w), (yc, xc)]  # top-left of each slot's image
    for slot, (y0, x0) in enumerate(corners):
      img = images[index[i, slot]]
      region = canvas[y0 : y0 + h, x0 : x0 + w]
      # Only the part of the image in its own quadrant is pasted.
      rows = (np.arange(y0, y0 + h) < yc) if slot < 2 else (np.arange(y0, y0 + h) >= yc)
      cols = (np.arange(x0, x0 + w) < xc) if slot % 2 == 0 else (np.arange(x0, x0 + w) >= xc)
      keep = rows[:, None] & cols[None, :]
      region[keep] = img[keep]
    out[i] = canvas[h : 2 * h, w : 2 * w]
  return out


_mosaic = jax.jit(jaxmix.detection.mosaic, static_argnames=("pairing",))
_sample = jax.jit(jaxmix.sample_mosaic, static_argnums=(1, 2), static_argnames=("pairing",))


@settings(max_examples=examples(10), deadline=None)
@given(
  seed=st.integers(0, 2**16),
  hw=st.sampled_from([(9, 16), (16, 7)]),
  pairing=st.sampled_from(["roll", "permute"]),
)
def test_boxes_sit_on_their_pixels(seed, hw, pairing):
  """Non-square images: every kept box still covers pixels of its own colour, and only those."""
  h, w = hw
  b = 5
  images, boxes, classes = painted(seed, b, h, w)
  key = jax.random.key(seed)
  out, t = _mosaic(key, images, boxes, classes, pairing=pairing)
  plan = _sample(key, b, (h, w), pairing=pairing)
  out, index, center = np.asarray(out), np.asarray(plan.index), np.asarray(plan.center)
  np.testing.assert_array_equal(out, canvas_reference(np.asarray(images), index, center))
  ob, ov = np.asarray(t.boxes), np.asarray(t.valid)
  assert ob.shape == (b, 4 * N, 4)
  assert (ob[..., [0, 2]] >= 0).all() and (ob[..., [0, 2]] <= w).all()
  assert (ob[..., [1, 3]] >= 0).all() and (ob[..., [1, 3]] <= h).all()
  np.testing.assert_array_equal(t.weights, ov.astype(np.float32))
  for i in range(b):
    for m in range(4 * N):
      slot, j = divmod(m, N)
      src = index[i, slot]
      assert t.classes[i, m] == classes[src, j]
      x1, y1, x2, y2 = ob[i, m].astype(int)
      colour = out[i, y1:y2, x1:x2, 0] == src * N + j + 1
      cy, cx = center[i]
      rows = slice(0, cy) if slot < 2 else slice(cy, h)
      cols = slice(0, cx) if slot % 2 == 0 else slice(cx, w)
      shown = (out[i, rows, cols, 0] == src * N + j + 1).sum()  # the same source may fill two slots
      orig = np.asarray(boxes[src, j])
      area = (orig[2] - orig[0]) * (orig[3] - orig[1])
      expect = classes[src, j] >= 0 and shown >= 0.1 * area and shown > 0
      whole = shown == area
      expect = expect and (whole or (x2 - x1 >= 2 and y2 - y1 >= 2))
      assert ov[i, m] == expect, (i, m, shown, area)
      if ov[i, m]:
        assert colour.all()
        assert colour.sum() == shown  # the box covers every visible pixel of its rectangle


def test_labels_are_area_weighted_and_maps_exact():
  b, h, w = 6, 8, 10
  plan = jaxmix.sample_mosaic(jax.random.key(1), b, (h, w), pairing="permute")
  shares = plan.shares()
  np.testing.assert_allclose(shares.sum(1), 1.0, rtol=1e-6)
  # λ is the own share: slot 0 (area cy·cx) and any other slot whose random source is the sample itself.
  own = np.asarray(plan.index) == np.arange(b)[:, None]
  assert own[:, 1:].any(), "the key should draw a sample as one of its own sources"
  np.testing.assert_allclose(plan.lam, np.where(own, shares, 0).sum(1), rtol=1e-6)
  cy, cx = np.asarray(plan.center).T
  np.testing.assert_allclose(np.asarray(shares)[:, 0], cy * cx / (h * w), rtol=1e-6)
  labels = jnp.arange(b) % 4
  y = jaxmix.mix_labels(plan, labels, num_classes=4)
  hot = np.eye(4)[np.asarray(labels)]
  expected = sum(np.asarray(shares)[:, k, None] * hot[np.asarray(plan.index)[:, k]] for k in range(4))
  np.testing.assert_allclose(y, expected, atol=1e-6)
  # The soft labels equal each class's share of the output pixels.
  label_image = jnp.broadcast_to(labels[:, None, None], (b, h, w)).astype(jnp.int32)
  mixed = jaxmix.segmentation.mix_label_maps(plan, label_image)
  pixel_share = np.stack([(np.asarray(mixed) == c).mean((1, 2)) for c in range(4)], axis=1)
  np.testing.assert_allclose(y, pixel_share, atol=1e-6)
  maps = jax.random.randint(jax.random.key(2), (b, h, w), 0, 1000)
  out = jaxmix.segmentation.mix_label_maps(plan, maps)
  np.testing.assert_array_equal(out, jaxmix.apply(plan, maps))
  idx = np.asarray(plan.index)
  for i in range(b):
    assert np.isin(np.asarray(out[i]), np.asarray(maps)[idx[i]]).all()
  soft = jaxmix.segmentation.mix_label_maps(plan, maps % 5, soft=True, num_classes=5)
  np.testing.assert_array_equal(soft, jax.nn.one_hot(out % 5, 5))


def test_prob_zero_is_identity_and_layouts():
  b, h, w = 4, 6, 10
  images, boxes, classes = painted(3, b, h, w)
  key = jax.random.key(0)
  out, t = jaxmix.detection.mosaic(key, images, boxes, classes, prob=0.0)
  np.testing.assert_array_equal(out, images)
  np.testing.assert_array_equal(t.boxes[:, :N], boxes)
  np.testing.assert_array_equal(t.valid[:, :N], classes >= 0)
  assert not t.valid[:, N:].any()
  nchw, _ = jaxmix.detection.mosaic(key, images.transpose(0, 3, 1, 2), boxes, classes, data_format="NCHW")
  nhwc, _ = jaxmix.detection.mosaic(key, images, boxes, classes)
  np.testing.assert_array_equal(nchw.transpose(0, 2, 3, 1), nhwc)


def test_jit_vmap_traced_options_and_formats():
  b, h, w = 4, 8, 12
  images, boxes, classes = painted(4, b, h, w)
  key = jax.random.key(5)
  fn = lambda k, lo, v: jaxmix.detection.mosaic(
    k, images, boxes, classes, center_range=(lo, 0.9), min_visibility=v
  )  # noqa: E731
  jitted = jax.jit(fn)
  chex.assert_trees_all_close(jitted(key, 0.1, 0.2), fn(key, 0.1, 0.2))
  jitted(key, 0.5, 0.4)
  assert jitted._cache_size() == 1
  keys = jax.random.split(key, 3)
  batched = jax.vmap(lambda k: fn(k, 0.1, 0.2))(keys)
  for i in range(3):
    chex.assert_trees_all_close(
      jax.tree_util.tree_map(lambda x, i=i: x[i], batched), jitted(keys[i], 0.1, 0.2)
    )
  ref = jaxmix.detection.mosaic(key, images, boxes, classes)[1]
  yolo = jaxmix.detection.normalize_boxes(jaxmix.detection.convert_boxes(boxes, "xyxy", "cxcywh"), (h, w))
  got = jaxmix.detection.mosaic(key, images, yolo, classes, box_format="cxcywh", normalized=True)[1]
  np.testing.assert_array_equal(got.valid, ref.valid)
  back = jaxmix.detection.convert_boxes(
    jaxmix.detection.denormalize_boxes(got.boxes, (h, w)), "cxcywh", "xyxy"
  )
  np.testing.assert_allclose(np.asarray(back)[ref.valid], np.asarray(ref.boxes)[ref.valid], atol=1e-4)


def test_output_size_resizes_images_and_boxes():
  b, h, w = 3, 6, 8
  images, boxes, classes = painted(6, b, h, w)
  key = jax.random.key(1)
  out, t = jaxmix.detection.mosaic(key, images, boxes, classes, output_size=(12, 24), prob=0.0)
  assert out.shape == (b, 12, 24, 2)
  np.testing.assert_allclose(t.boxes[:, :N], np.asarray(boxes) * np.array([3, 2, 3, 2]))
  # Nearest-neighbour upscaling by whole factors keeps every box on its colour.
  same = jaxmix.detection.mosaic(key, images, boxes, classes, output_size=(h, w))
  chex.assert_trees_all_close(same, jaxmix.detection.mosaic(key, images, boxes, classes))
  maps = jnp.zeros((b, h, w), jnp.int32) + 7
  (_, m), _ = jaxmix.detection.mosaic(key, (images, maps), boxes, classes, output_size=(9, 9))
  assert m.shape == (b, 9, 9) and (m == 7).all()


def test_errors():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="pairing"):
    jaxmix.sample_mosaic(key, 4, (8, 8), pairing="flip")
  with pytest.raises(ValueError, match="center_range"):
    jaxmix.sample_mosaic(key, 4, (8, 8), center_range=(0.8, 0.2))
  with pytest.raises(ValueError, match="center_range"):
    jaxmix.sample_mosaic(key, 4, (8, 8), center_range=(0.0, 1.5))
  with pytest.raises(ValueError, match="spatial_shape"):
    jaxmix.sample_mosaic(key, 4, (8,))
  plan = jaxmix.sample_cutmix(key, 2, (4, 4))
  with pytest.raises(TypeError, match="MosaicPlan"):
    jaxmix.detection.mosaic_boxes(plan, jnp.zeros((2, 1, 4)), jnp.zeros((2, 1), jnp.int32))
  images = jnp.zeros((2, 4, 4, 3))
  with pytest.raises(ValueError, match="disagree"):
    jaxmix.detection.mosaic(key, images, jnp.zeros((2, 3, 4)), jnp.zeros((2, 2), jnp.int32))
  with pytest.raises(ValueError, match="box_format"):
    jaxmix.detection.mosaic(
      key, images, jnp.zeros((2, 3, 4)), jnp.zeros((2, 3), jnp.int32), box_format="yolo"
    )
  with pytest.raises(ValueError, match="spatial shape"):
    jaxmix.apply(jaxmix.sample_mosaic(key, 2, (4, 5)), images)


def test_integer_leaves_are_copied_exactly_in_their_own_dtype():
  """Mosaic only copies pixels, so int32 ids beyond float32's 2**24 come through unchanged."""
  b, h, w = 4, 6, 10
  ids = (2**31 - 1 - jnp.arange(b * h * w, dtype=jnp.int32)).reshape(b, h, w)
  plan = jaxmix.sample_mosaic(jax.random.key(3), b, (h, w))
  out = jaxmix.apply(plan, ids)
  assert out.dtype == jnp.int32
  assert set(np.asarray(out).ravel()) <= set(np.asarray(ids).ravel())
  np.testing.assert_array_equal(out, plan.mix_leaf(ids, "NHWC"))
  np.testing.assert_array_equal(
    jaxmix.apply(plan, ids.astype(jnp.float32)), plan.mix_leaf(ids.astype(jnp.float32), "NHWC")
  )
