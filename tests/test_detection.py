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
from jaxmix._src.core import plan as plan_lib

N = 3


def painted(seed, b, h, w, n=N):
  """Images with each box painted as a filled rectangle of a colour unique in the batch.

  Boxes have integer corners and never overlap within an image; row n of
  image i has colour i * n + n_row + 1 in channel 0, the background is 0.
  The last row of every image is padding.
  """
  rng = np.random.default_rng(seed)
  images = np.zeros((b, h, w, 2), np.float32)
  images[..., 1] = 0.5
  boxes = np.zeros((b, n, 4), np.float32)
  classes = np.full((b, n), -1, np.int32)
  for i in range(b):
    for j in range(n - 1):
      # Box j lives in its own vertical band of the image, so boxes never overlap.
      band = w // (n - 1)
      x1 = j * band + rng.integers(0, band // 2)
      x2 = rng.integers(x1 + 1, (j + 1) * band + 1)
      y1 = rng.integers(0, h - 1)
      y2 = rng.integers(y1 + 1, h + 1)
      boxes[i, j] = [x1, y1, x2, y2]
      classes[i, j] = rng.integers(0, 7)
      images[i, y1:y2, x1:x2, 0] = i * n + j + 1
  return jnp.asarray(images), jnp.asarray(boxes), jnp.asarray(classes)


def check_against_pixels(mixed, targets, boxes, classes, index, min_visibility=0.1, min_size=2.0):
  """Brute force: every box's visibility, validity and tight extent read back from the pixel colours."""
  mixed, index = np.asarray(mixed), np.asarray(index)
  out_boxes, out_valid = np.asarray(targets.boxes), np.asarray(targets.valid)
  b, n = classes.shape
  h, w = mixed.shape[1:3]
  assert (out_boxes[..., [0, 2]] >= 0).all() and (out_boxes[..., [0, 2]] <= w).all()
  assert (out_boxes[..., [1, 3]] >= 0).all() and (out_boxes[..., [1, 3]] <= h).all()
  for i in range(b):
    for m in range(2 * n):
      src = i if m < n else index[i]
      j = m % n
      np.testing.assert_array_equal(targets.classes[i, m], classes[src, j])
      if classes[src, j] < 0 or (m >= n and src == i):
        assert not out_valid[i, m]
        continue
      x1, y1, x2, y2 = np.asarray(boxes[src, j]).astype(int)
      shows = mixed[i, y1:y2, x1:x2, 0] == src * n + j + 1
      frac = shows.mean()
      if shows.any():
        rows, cols = np.nonzero(shows)
        tight = [x1 + cols.min(), y1 + rows.min(), x1 + cols.max() + 1, y1 + rows.max() + 1]
      else:
        tight = [0, 0, 0, 0]
      whole = tight == [x1, y1, x2, y2]
      big = tight[2] - tight[0] >= min_size and tight[3] - tight[1] >= min_size
      keep = frac >= min_visibility and (whole or big)
      assert out_valid[i, m] == keep, (i, m, frac, tight)
      if keep:
        np.testing.assert_allclose(out_boxes[i, m], tight)
        assert targets.weights[i, m] == 1.0
      else:
        assert targets.weights[i, m] == 0.0


_cutmix_det = jax.jit(jaxmix.detection.cutmix, static_argnames="pairing")
_sample_cutmix = jax.jit(jaxmix.sample_cutmix, static_argnums=(1, 2), static_argnames=("mode", "pairing"))


@settings(max_examples=examples(10), deadline=None)
@given(seed=st.integers(0, 2**16), pairing=st.sampled_from(["flip", "permute"]), b=st.sampled_from([1, 5]))
def test_cutmix_boxes_match_the_pixels(seed, pairing, b):
  h, w = 10, 17  # non-square on purpose
  images, boxes, classes = painted(seed, b, h, w)
  key = jax.random.key(seed)
  mixed, t = _cutmix_det(key, images, boxes, classes, pairing=pairing)
  plan = _sample_cutmix(key, b, (h, w), mode="elem", pairing=pairing)
  np.testing.assert_allclose(mixed, jaxmix.apply(plan, images))
  check_against_pixels(mixed, t, boxes, classes, plan.index)


@pytest.mark.parametrize("shape", ["disk", "stripes"])
def test_mask_plan_boxes_match_the_pixels(shape):
  """A hand-made binary mask plan (as FMix produces): the same rule, tight boxes of the visible part."""
  b, h, w = 4, 12, 16
  images, boxes, classes = painted(1, b, h, w)
  rows, cols = np.mgrid[:h, :w]
  if shape == "disk":
    region = (rows - 6) ** 2 + (cols - 8) ** 2 <= 20
  else:
    region = (cols // 3) % 2 == 0
  mask = jnp.asarray(np.where(region, 0.0, 1.0)[None].repeat(b, 0), jnp.float32)
  plan = plan_lib.Plan(
    lam=mask.mean((1, 2)),
    index=jnp.array([1, 0, 3, 2]),
    blend=jnp.ones(b),
    mask=mask,
    pairing="permute",
    spatial_shape=(h, w),
  )
  mixed = jaxmix.apply(plan, images)
  for vis in (0.1, 0.5):
    t = jaxmix.detection.mix_boxes(plan, boxes, classes, min_visibility=vis)
    check_against_pixels(mixed, t, boxes, classes, plan.index, min_visibility=vis)


def test_classmix_plan_boxes_match_the_pixels():
  b, h, w = 4, 9, 14
  images, boxes, classes = painted(2, b, h, w)
  seg = jax.random.randint(jax.random.key(0), (b, h, w), 0, 3)
  plan = jaxmix.segmentation.sample_classmix(jax.random.key(1), seg, num_classes=3)
  check_against_pixels(
    jaxmix.apply(plan, images), jaxmix.detection.mix_boxes(plan, boxes, classes), boxes, classes, plan.index
  )


_mix_boxes = jax.jit(jaxmix.detection.mix_boxes)


@settings(max_examples=examples(10), deadline=None)
@given(
  seed=st.integers(0, 2**16),
  pairing=st.sampled_from(["flip", "permute"]),
  mixup_alpha=st.sampled_from([0.0, 1.0]),
)
def test_box_plans_take_the_separable_path_with_the_same_result(seed, pairing, mixup_alpha):
  """Box plans (CutMix, the switch) are summed by rows and columns; a mask plan of the same
  weights goes through the per-pixel sums. Both must give the same targets, fractional boxes included.
  (B = 5: with flip the middle sample is its own partner.)"""
  b, h, w = 5, 11, 18
  key_plan, key_boxes = jax.random.split(jax.random.key(seed))
  plan = jaxmix.sample_mixup_cutmix(
    key_plan, b, (h, w), mixup_alpha=mixup_alpha, cutmix_alpha=1.0, mode="elem", pairing=pairing
  )
  as_mask = plan_lib.Plan(
    lam=plan.lam,
    index=plan.index,
    blend=jnp.ones(b),
    mask=plan.own_weight(),
    pairing=pairing,
    spatial_shape=(h, w),
  )
  corners = jax.random.uniform(key_boxes, (b, 6, 4)) * jnp.array([w, h, w, h])
  boxes = jnp.concatenate(
    [jnp.minimum(corners[..., :2], corners[..., 2:]), jnp.maximum(corners[..., :2], corners[..., 2:])], -1
  )
  classes = jnp.arange(b * 6, dtype=jnp.int32).reshape(b, 6) % 4 - (jnp.arange(6) == 5)
  fast = _mix_boxes(plan, boxes, classes, min_visibility=0.3, min_size=1.5)
  dense = _mix_boxes(as_mask, boxes, classes, min_visibility=0.3, min_size=1.5)
  np.testing.assert_array_equal(fast.valid, dense.valid)
  np.testing.assert_allclose(fast.boxes, dense.boxes, atol=1e-4)
  np.testing.assert_allclose(fast.weights, dense.weights, atol=1e-5)
  np.testing.assert_array_equal(fast.classes, dense.classes)


@pytest.mark.parametrize("b", [4, 5])
def test_mixup_detection_weights_equal_image_weights(b):
  h, w = 6, 10
  images = jnp.broadcast_to(jnp.arange(1, b + 1, dtype=jnp.float32)[:, None, None, None], (b, h, w, 3))
  _, boxes, classes = painted(3, b, h, w)
  key = jax.random.key(4)
  mixed, t = jaxmix.detection.mixup(key, images, boxes, classes)
  plan = jaxmix.sample_mixup(key, b, alpha=1.5, mode="elem")
  index = np.asarray(plan.index)
  own = np.arange(1, b + 1, dtype=np.float32)
  m = np.asarray(mixed[:, 0, 0, 0])
  lam = np.where(
    index == np.arange(b), 1.0, (m - own[index]) / np.where(index == np.arange(b), 1, own - own[index])
  )
  valid = np.asarray(classes >= 0)
  np.testing.assert_allclose(t.weights[:, :N], np.where(valid, lam[:, None], 0), atol=1e-5)
  self_pair = (index == np.arange(b))[:, None]
  np.testing.assert_allclose(
    t.weights[:, N:], np.where(valid[index] & ~self_pair, 1 - lam[:, None], 0), atol=1e-5
  )
  # Boxes do not move; the partner's set is appended; a self pair keeps its boxes once.
  np.testing.assert_array_equal(t.boxes[:, :N], boxes)
  np.testing.assert_array_equal(t.boxes[:, N:], np.asarray(boxes)[index])
  np.testing.assert_array_equal(
    t.valid.sum(1), valid.sum(1) + np.where(self_pair[:, 0], 0, valid[index].sum(1))
  )
  if b % 2:
    assert not t.valid[b // 2, N:].any() and (t.weights[b // 2, :N][valid[b // 2]] == 1).all()


def test_mixup_cutmix_switch_plan():
  b, h, w = 6, 8, 8
  images, boxes, classes = painted(5, b, h, w)
  plan = jaxmix.sample_mixup_cutmix(
    jax.random.key(2), b, (h, w), mixup_alpha=1.0, cutmix_alpha=1.0, mode="elem"
  )
  t = jaxmix.detection.mix_boxes(plan, boxes, classes)
  is_mix = np.asarray(plan.blend < 1)
  valid = np.asarray(classes >= 0)
  # MixUp samples keep every box with weights λ and 1 − λ.
  lam = np.asarray(plan.lam)[:, None]
  np.testing.assert_allclose(np.asarray(t.weights[:, :N])[is_mix], np.where(valid, lam, 0)[is_mix], atol=1e-6)
  cut = np.asarray(t.weights)[~is_mix]
  assert set(np.unique(cut)) <= {0.0, 1.0}


def test_formats_and_normalisation_agree():
  b, h, w = 4, 10, 14
  images, boxes, classes = painted(6, b, h, w)
  plan = jaxmix.sample_cutmix(jax.random.key(3), b, (h, w), mode="elem")
  ref = jaxmix.detection.mix_boxes(plan, boxes, classes)
  cxcywh = jaxmix.detection.normalize_boxes(jaxmix.detection.convert_boxes(boxes, "xyxy", "cxcywh"), (h, w))
  got = jaxmix.detection.mix_boxes(plan, cxcywh, classes, box_format="cxcywh", normalized=True)
  np.testing.assert_array_equal(got.valid, ref.valid)
  back = jaxmix.detection.convert_boxes(
    jaxmix.detection.denormalize_boxes(got.boxes, (h, w)), "cxcywh", "xyxy"
  )
  np.testing.assert_allclose(np.asarray(back)[ref.valid], np.asarray(ref.boxes)[ref.valid], atol=1e-4)
  # A MixUp plan knows no image size: normalised boxes pass through in their own units.
  mix = jaxmix.detection.mix_boxes(
    jaxmix.sample_mixup(jax.random.key(0), b), cxcywh, classes, box_format="cxcywh", normalized=True
  )
  np.testing.assert_allclose(mix.boxes[:, :N], cxcywh, atol=1e-6)


@pytest.mark.parametrize("noise", [2e-6, -2e-6])
def test_float_noise_on_box_edges_changes_no_validity(noise):
  """Edges a few ulps off an integer (as a normalised round trip leaves them) count as that integer:
  validity is that of the exact boxes and the boxes move by no more than the noise."""
  b, h, w = 4, 10, 14
  images, boxes, classes = painted(6, b, h, w)
  for seed in range(4):
    plan = jaxmix.sample_cutmix(jax.random.key(seed), b, (h, w), mode="elem")
    ref = jaxmix.detection.mix_boxes(plan, boxes, classes)
    got = jaxmix.detection.mix_boxes(plan, boxes + jnp.array([-noise, -noise, noise, noise]), classes)
    np.testing.assert_array_equal(got.valid, ref.valid)
    np.testing.assert_allclose(got.boxes, ref.boxes, atol=1e-5)


def test_jit_vmap_and_traced_thresholds():
  b, h, w = 4, 8, 12
  images, boxes, classes = painted(7, b, h, w)
  fn = lambda k, v: jaxmix.detection.cutmix(k, images, boxes, classes, min_visibility=v)  # noqa: E731
  key = jax.random.key(9)
  jitted = jax.jit(fn)
  chex.assert_trees_all_close(jitted(key, 0.3), fn(key, 0.3))
  jitted(key, 0.6)
  assert jitted._cache_size() == 1
  keys = jax.random.split(key, 3)
  out = jax.vmap(lambda k: fn(k, 0.1))(keys)
  for i in range(3):
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x, i=i: x[i], out), jitted(keys[i], 0.1))
  mix = jax.jit(jaxmix.detection.mixup)(key, images, boxes, classes)
  chex.assert_trees_all_close(mix, jaxmix.detection.mixup(key, images, boxes, classes))


def test_errors():
  images = jnp.zeros((2, 4, 4, 3))
  boxes, classes = jnp.zeros((2, 3, 4)), jnp.zeros((2, 3), jnp.int32)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match=r"\[B, N, 4\]"):
    jaxmix.detection.mixup(key, images, jnp.zeros((2, 3, 5)), classes)
  with pytest.raises(ValueError, match=r"\[B, N, 4\]"):
    jaxmix.detection.cutmix(key, images, jnp.zeros((2, 4)), classes)
  with pytest.raises(ValueError, match="disagree"):
    jaxmix.detection.cutmix(key, images, boxes, jnp.zeros((2, 2), jnp.int32))
  with pytest.raises(ValueError, match="box_format"):
    jaxmix.detection.mixup(key, images, boxes, classes, box_format="xyxy_abs")
  with pytest.raises(ValueError, match="batch size"):
    jaxmix.detection.mixup(key, images, jnp.zeros((3, 3, 4)), jnp.zeros((3, 3), jnp.int32))
  with pytest.raises(ValueError, match="min_visibility"):
    jaxmix.detection.cutmix(key, images, boxes, classes, min_visibility=1.5)
  plan = jaxmix.sample_cutmix(key, 2, (4, 4))
  with pytest.raises(ValueError, match="differs"):
    jaxmix.detection.mix_boxes(plan, boxes, classes, spatial_shape=(4, 5))
