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

K = 5


def _maps(seed, b=6, h=8, w=12, k=K, ignore=None):
  rng = np.random.default_rng(seed)
  m = rng.integers(0, k, (b, h, w)).astype(np.int32)
  if ignore is not None:
    m[rng.random((b, h, w)) < 0.2] = ignore
  return jnp.asarray(m)


def _id_image(b, h, w):
  """A float image whose every pixel is unique, so the source of each output pixel can be read back."""
  return jnp.arange(b * h * w, dtype=jnp.float32).reshape(b, h, w) + 1.0


def _plan(i, b, h, w):
  key = jax.random.key(3)
  if i == 0:
    return jaxmix.sample_cutmix(key, b, (h, w), mode="elem")
  if i == 1:
    return jaxmix.sample_cutmix(key, b, (h, w), pairing="permute", mode="elem")
  if i == 3:
    return jaxmix.segmentation.sample_classmix(key, _maps(1, b, h, w), num_classes=K)
  # A hand-made binary mask plan (an FMix-like blob): a disk from the partner.
  rows, cols = np.mgrid[:h, :w]
  disk = ((rows - h / 2) ** 2 + (cols - w / 3) ** 2 > (h / 3) ** 2).astype(np.float32)
  mask = jnp.broadcast_to(jnp.asarray(disk), (b, h, w))
  return plan_lib.Plan(
    lam=mask.mean((1, 2)),
    index=jnp.arange(b)[::-1],
    blend=jnp.ones(b),
    mask=mask,
    pairing="flip",
    spatial_shape=(h, w),
  )


@pytest.mark.parametrize("plan_i", range(4))
def test_hard_maps_follow_the_image_mask(plan_i):
  b, h, w = 5, 8, 12
  plan = _plan(plan_i, b, h, w)
  maps = _maps(0, b, h, w)
  ids = _id_image(b, h, w)
  mixed_ids = jaxmix.apply(plan, ids)
  partner_ids = jnp.take(ids, plan.index, axis=0)
  from_partner = (mixed_ids == partner_ids) & (partner_ids != ids)
  assert (from_partner | (mixed_ids == ids)).all()  # binary plans copy pixels
  out = jaxmix.segmentation.mix_label_maps(plan, maps)
  assert out.dtype == maps.dtype
  expected = jnp.where(from_partner, jnp.take(maps, plan.index, axis=0), maps)
  np.testing.assert_array_equal(out, expected)
  np.testing.assert_array_equal(jax.jit(jaxmix.segmentation.mix_label_maps)(plan, maps), out)
  # Soft maps of a binary plan are the one-hot of the hard map.
  soft = jaxmix.segmentation.mix_label_maps(plan, maps, num_classes=K, soft=True)
  np.testing.assert_allclose(soft, jax.nn.one_hot(out, K))


@settings(max_examples=examples(15), deadline=None)
@given(seed=st.integers(0, 2**16), alpha=st.floats(0.1, 4.0))
def test_hard_values_come_from_a_source(seed, alpha):
  b, h, w = 4, 6, 7
  key = jax.random.key(seed)
  maps = _maps(seed, b, h, w, k=50) * 3 + 1  # sparse values: a blend would invent new ones
  for plan in (
    jaxmix.sample_mixup_cutmix(key, b, (h, w), mixup_alpha=alpha, cutmix_alpha=alpha, mode="elem"),
    jaxmix.segmentation.sample_classmix(key, maps, num_classes=200),
  ):
    out = jaxmix.segmentation.mix_label_maps(plan, maps, dominant=True)
    partner = jnp.take(maps, plan.index, axis=0)
    assert ((out == maps) | (out == partner)).all()


def test_mixup_plan_hard_map_is_an_error_unless_dominant():
  b, h, w = 4, 6, 6
  maps = _maps(0, b, h, w)
  plan = jaxmix.sample_mixup(jax.random.key(0), b, alpha=1.0, mode="elem")
  with pytest.raises(ValueError, match="soft=True"):
    jaxmix.segmentation.mix_label_maps(plan, maps)
  out = jaxmix.segmentation.mix_label_maps(plan, maps, dominant=True)
  expected = jnp.where((plan.lam >= 0.5)[:, None, None], maps, jnp.take(maps, plan.index, axis=0))
  np.testing.assert_array_equal(out, expected)
  soft = jaxmix.segmentation.mix_label_maps(plan, maps, soft=True, num_classes=K)
  hot = jax.nn.one_hot(maps, K)
  lam = plan.lam[:, None, None, None]
  np.testing.assert_allclose(soft, lam * hot + (1 - lam) * jnp.take(hot, plan.index, axis=0), atol=1e-6)
  np.testing.assert_allclose(soft.sum(-1), 1.0, atol=1e-6)


def test_ignore_index_soft_and_float_maps():
  b, h, w = 4, 6, 8
  maps = _maps(0, b, h, w, ignore=255)
  plan = jaxmix.sample_cutmix(jax.random.key(1), b, (h, w), mode="elem")
  soft = jaxmix.segmentation.mix_label_maps(plan, maps, soft=True, num_classes=K, ignore_index=255)
  hard = jaxmix.segmentation.mix_label_maps(plan, maps, ignore_index=255)
  # Ignored pixels stay ignored in hard maps and carry no mass in soft ones.
  np.testing.assert_allclose(soft.sum(-1), (hard != 255).astype(np.float32))
  # An ignore_index inside [0, K) is zeroed too.
  soft0 = jaxmix.segmentation.mix_label_maps(plan, maps, soft=True, num_classes=K, ignore_index=0)
  np.testing.assert_allclose(soft0.sum(-1), ((hard != 0) & (hard != 255)).astype(np.float32))
  probs = jax.nn.softmax(jax.random.normal(jax.random.key(2), (b, h, w, K)))
  mixed = jaxmix.segmentation.mix_label_maps(plan, probs.astype(jnp.bfloat16))
  assert mixed.dtype == jnp.bfloat16 and mixed.shape == probs.shape
  np.testing.assert_allclose(jaxmix.segmentation.mix_label_maps(plan, probs), jaxmix.apply(plan, probs))


def test_plan_types_follow_the_plan_protocol():
  """A user's plan type that implements jaxmix.PlanLike mixes label maps; anything else is refused."""

  class Wrapped(jaxmix.PlanLike):
    def __init__(self, plan):
      self.p, self.lam, self.spatial_shape = plan, plan.lam, plan.spatial_shape
      self.index, self.pairing = plan.index, plan.pairing

    def mix_leaf(self, x, data_format):
      return self.p.mix_leaf(x, data_format)

    def own_weight(self):
      return self.p.own_weight()

  class Duck:  # the members, but not the protocol's defaults or its name
    def __init__(self, plan):
      self.p, self.lam, self.spatial_shape = plan, plan.lam, plan.spatial_shape

  b, h, w = 5, 6, 9
  maps = _maps(4, b, h, w)
  for plan in (_plan(i, b, h, w) for i in range(3)):
    np.testing.assert_array_equal(
      jaxmix.segmentation.mix_label_maps(Wrapped(plan), maps), jaxmix.segmentation.mix_label_maps(plan, maps)
    )
  with pytest.raises(TypeError, match="plan must be a jaxmix plan"):
    jaxmix.segmentation.mix_label_maps(Duck(_plan(0, b, h, w)), maps)
  for bad in (None, {"lam": jnp.ones(b)}):
    with pytest.raises(TypeError, match="got (NoneType|dict)"):
      jaxmix.segmentation.mix_label_maps(bad, maps)
  # A k-way plan has no single partner: its missing own weight is a clear error, not a probe.
  multi = jaxmix.sample_multimix(jax.random.key(0), b, k=3)
  with pytest.raises(TypeError, match="not a two-source plan"):
    jaxmix.segmentation.mix_label_maps(multi, maps)


def test_label_map_errors():
  plan = jaxmix.sample_cutmix(jax.random.key(0), 2, (4, 4))
  with pytest.raises(ValueError, match=r"\[B, H, W\]"):
    jaxmix.segmentation.mix_label_maps(plan, jnp.zeros((2, 4, 4, 1), jnp.int32))
  with pytest.raises(ValueError, match=r"\[B, H, W, K\]"):
    jaxmix.segmentation.mix_label_maps(plan, jnp.zeros((2, 4, 4)))
  with pytest.raises(ValueError, match="spatial shape"):
    jaxmix.segmentation.mix_label_maps(plan, jnp.zeros((2, 4, 5), jnp.int32))
  with pytest.raises(ValueError, match="batch size"):
    jaxmix.segmentation.mix_label_maps(plan, jnp.zeros((3, 4, 4), jnp.int32))
  with pytest.raises(ValueError, match="num_classes"):
    jaxmix.segmentation.mix_label_maps(plan, jnp.zeros((2, 4, 4), jnp.int32), soft=True)
  with pytest.raises(TypeError, match="maps must be"):
    jaxmix.segmentation.mix_label_maps(plan, jnp.zeros((2, 4, 4), bool))


# ClassMix ---------------------------------------------------------------------------------------


@settings(max_examples=examples(15), deadline=None)
@given(seed=st.integers(0, 2**16), pairing=st.sampled_from(["flip", "roll", "permute"]))
def test_classmix_pastes_half_the_partner_classes(seed, pairing):
  b, h, w = 5, 6, 8
  ignore = 255
  maps = np.array(_maps(seed, b, h, w, ignore=ignore))
  maps[0] = ignore  # a map with no class at all pastes nothing
  plan = jaxmix.segmentation.sample_classmix(
    jax.random.key(seed), jnp.asarray(maps), num_classes=K, ignore_index=ignore, pairing=pairing
  )
  mask = np.asarray(plan.mask)
  index = np.asarray(plan.index)
  assert set(np.unique(mask)) <= {0.0, 1.0}
  np.testing.assert_allclose(plan.lam, mask.mean((1, 2)), rtol=1e-6)
  for i in range(b):
    j = index[i]
    pasted = mask[i] == 0
    src = maps[j]
    if j == i:
      assert not pasted.any() and plan.lam[i] == 1
      continue
    present = set(np.unique(src)) - {ignore}
    chosen = set(np.unique(src[pasted]))
    assert ignore not in chosen
    assert len(chosen) == (len(present) + 1) // 2
    # All pixels of a chosen class are pasted, no pixel of another class.
    np.testing.assert_array_equal(pasted, np.isin(src, list(chosen)))
  images = jnp.asarray(np.random.default_rng(seed).random((b, h, w, 3)), jnp.float32)
  mixed = jaxmix.apply(plan, images)
  np.testing.assert_allclose(mixed, np.where(mask[..., None] == 1, images, np.asarray(images)[index]))
  out = jaxmix.segmentation.mix_label_maps(plan, jnp.asarray(maps), ignore_index=ignore)
  np.testing.assert_array_equal(out, np.where(mask == 1, maps, maps[index]))


def test_classmix_one_call_jit_vmap_prob_and_traces():
  b, h, w = 4, 6, 6
  maps = _maps(7, b, h, w)
  images = jax.random.uniform(jax.random.key(0), (b, h, w, 3))
  key = jax.random.key(5)
  fn = lambda k, p: jaxmix.segmentation.classmix(k, images, maps, num_classes=K, prob=p)  # noqa: E731
  out = fn(key, 1.0)
  jitted = jax.jit(fn)
  chex.assert_trees_all_close(jitted(key, 1.0), out)
  keys = jax.random.split(key, 3)
  batched = jax.vmap(lambda k: fn(k, 1.0))(keys)
  for i in range(3):
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x, i=i: x[i], batched), jitted(keys[i], 1.0))
  img0, maps0 = jitted(key, 0.0)  # prob is traced: no retrace, and prob 0 is the identity
  np.testing.assert_array_equal(maps0, maps)
  np.testing.assert_allclose(img0, images)
  assert jitted._cache_size() == 1
  soft_images, soft = jaxmix.segmentation.classmix(key, images, maps, num_classes=K, soft=True)
  np.testing.assert_allclose(soft, jax.nn.one_hot(out[1], K))


def test_classmix_errors():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="label_maps"):
    jaxmix.segmentation.sample_classmix(key, jnp.zeros((2, 4, 4)), num_classes=3)
  with pytest.raises(ValueError, match="num_classes"):
    jaxmix.segmentation.sample_classmix(key, jnp.zeros((2, 4, 4), jnp.int32), num_classes=0)
  with pytest.raises(TypeError, match="ignore_index"):
    jaxmix.segmentation.sample_classmix(key, jnp.zeros((2, 4, 4), jnp.int32), num_classes=3, ignore_index=1.5)
  with pytest.raises(ValueError, match="prob"):
    jaxmix.segmentation.sample_classmix(key, jnp.zeros((2, 4, 4), jnp.int32), num_classes=3, prob=2.0)


# Paired targets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["mixup", "cutmix"])
def test_paired_targets_share_lambda_and_partners(method):
  """(clean, noisy) with noisy = 2·clean + 1: any convex mix with shared weights keeps the relation."""
  key = jax.random.key(11)
  clean = jax.random.uniform(jax.random.key(1), (6, 8, 8, 3))
  noisy = 2.0 * clean + 1.0
  fn = getattr(jaxmix, method)
  (mc, mn), _ = fn(key, (clean, noisy), mode="elem", pairing="permute")
  np.testing.assert_allclose(mn, 2.0 * mc + 1.0, rtol=1e-5, atol=1e-5)
  assert not np.allclose(mc, clean)  # something was mixed
  # A different key for one of the two would break the relation.
  (other, _), _ = fn(jax.random.key(12), (clean, noisy), mode="elem", pairing="permute")
  assert not np.allclose(mn, 2.0 * other + 1.0, atol=1e-3)
