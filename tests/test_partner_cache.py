"""PartnerCache: mmdetection's CachedMosaic / CachedMixUp buffer as a pytree (issue 17, items 5 and 8)."""

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
H, W, N = 4, 5, 2
_update = jax.jit(D.update_partner_cache, static_argnames="random_pop")
_draw = jax.jit(D.draw_partners)


def batch(ids):
  """Images that are the constant id (ids start at 1: 0 marks an empty slot), boxes of class id."""
  ids = jnp.asarray(ids, jnp.int32)
  images = jnp.broadcast_to(ids[:, None, None, None], (len(ids), H, W, 1)).astype(jnp.float32)
  boxes = jnp.tile(jnp.array([[[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]]]), (len(ids), 1, 1))
  classes = jnp.stack([ids, jnp.full_like(ids, -1)], axis=1)
  valid = classes >= 0
  return images, D.BoxTargets(boxes, classes, valid, valid.astype(jnp.float32))


def slot_ids(cache):
  return np.asarray(cache.images[:, 0, 0, 0]).astype(int)


def test_init_is_empty_and_shaped_like_the_batch():
  images, t = batch([1, 2, 3])
  cache = D.init_partner_cache(images, t, 40)
  assert cache.size == 40 and int(cache.count) == 0 and int(cache.position) == 0
  assert cache.images.shape == (40, H, W, 1) and cache.images.dtype == images.dtype
  assert cache.targets.boxes.shape == (40, N, 4) and not cache.targets.valid.any()
  assert (cache.targets.classes == -1).all()
  # A pytree: it goes through jit and tree_map as a train-state field does.
  chex.assert_trees_all_equal(jax.jit(lambda c: c)(cache), cache)


@pytest.mark.parametrize("b,size", [(3, 5), (4, 4), (7, 3)])
def test_ring_buffer_order(b, size):
  """random_pop=False: fill in order, then replace the oldest (mmdetection's pop(0))."""
  cache = D.init_partner_cache(*batch(np.arange(1, b + 1)), size)
  fifo = []
  for step in range(4):
    ids = np.arange(1, b + 1) + 100 * step
    cache = _update(jax.random.key(step), cache, *batch(ids), random_pop=False)
    fifo = (fifo + list(ids))[-size:]
    assert int(cache.count) == min(size, b * (step + 1))
    got = slot_ids(cache)[: int(cache.count)]
    # The ring's contents, oldest first, start at `position` once full.
    start = int(cache.position) if int(cache.count) == size else 0
    np.testing.assert_array_equal(np.roll(got, -start), fifo)
    np.testing.assert_array_equal(np.asarray(cache.targets.classes[: int(cache.count), 0]), got)


def test_random_pop_matches_mmdetection_list_semantics():
  """random_pop=True: append, then pop a uniformly random one of the size + 1 (the slot draws are
  reproduced from the key: randint(key, (B,), 0, size + 1))."""
  size, b = 4, 3
  cache = D.init_partner_cache(*batch([1, 2, 3]), size)
  slots = [0] * size
  count = 0
  for step in range(5):
    ids = np.arange(1, b + 1) + 10 * step
    key = jax.random.key(step)
    draws = np.asarray(jax.random.randint(key, (b,), 0, size + 1))
    for k, new in enumerate(ids):
      if count < size:
        slots[count] = new
        count += 1
      elif draws[k] < size:
        slots[draws[k]] = new
    cache = _update(key, cache, *batch(ids))
    np.testing.assert_array_equal(slot_ids(cache), slots)
    assert int(cache.count) == count


@settings(max_examples=examples(12), deadline=None)
@given(
  b=st.sampled_from([1, 2, 5]),
  size=st.sampled_from([1, 3, 8]),
  steps=st.integers(0, 3),
  seed=st.integers(0, 2**16),
)
def test_partners_never_come_from_an_empty_slot(b, size, steps, seed):
  cache = D.init_partner_cache(*batch(np.arange(1, b + 1)), size)
  for step in range(steps):
    cache = _update(jax.random.key(seed + step), cache, *batch(np.arange(1, b + 1) + 10 * (step + 1)))
  images, t = batch(np.arange(1, b + 1))
  count = int(cache.count)
  for k in range(4):
    p_images, p_t, source = _draw(jax.random.key(seed * 7 + k), cache, images, t)
    source = np.asarray(source)
    assert ((source >= 0) & (source < b + count)).all()
    if b - 1 + count > 0:
      assert (source != np.arange(b)).all()  # never the sample itself while another candidate exists
    # Every partner is a real sample (ids > 0), with its own boxes.
    ids = np.asarray(p_images[:, 0, 0, 0])
    assert (ids > 0).all()
    np.testing.assert_array_equal(np.asarray(p_t.classes[:, 0]), ids)


def test_draws_cover_batch_and_cache_uniformly():
  b, size = 2, 6
  cache = D.init_partner_cache(*batch([1, 2]), size)
  cache = _update(jax.random.key(0), cache, *batch([11, 12, 13]))
  images, t = batch([1, 2])
  keys = jax.random.split(jax.random.key(1), 600)
  sources = np.asarray(jax.vmap(lambda k: _draw(k, cache, images, t)[2])(keys))[:, 0]
  # Sample 0 draws from sample 1 and the 3 filled slots: 1/4 each.
  counts = np.bincount(sources, minlength=b + size)
  assert counts[0] == 0 and counts[b + 3 :].sum() == 0
  np.testing.assert_allclose(counts[[1, 2, 3, 4]] / 600, 0.25, atol=0.06)


def test_same_key_same_cache_and_partners_feed_the_presets():
  images, t = batch([1, 2, 3, 4])
  cache = D.init_partner_cache(images, t, 5)
  a = _update(jax.random.key(3), cache, *batch([5, 6, 7, 8]))
  chex.assert_trees_all_equal(a, _update(jax.random.key(3), cache, *batch([5, 6, 7, 8])))
  partners = _draw(jax.random.key(4), a, images, t)
  boxes, classes, valid = t.boxes, t.classes, t.valid
  for fn in (D.yolox_mixup, D.ultralytics_mixup):
    mixed, out = fn(jax.random.key(5), images, boxes, classes, valid, partners=partners)
    assert mixed.shape == images.shape and out.boxes.shape == (4, 2 * N, 4)
    # The partner rows name the drawn partner.
    np.testing.assert_array_equal(out.classes[:, N], partners[1].classes[:, 0])


def test_wrong_cache_raises_naming_the_argument():
  images, t = batch([1, 2])
  cache = D.init_partner_cache(images, t, 3)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="cache"):
    D.draw_partners(key, cache, images[:, :2], t)
  with pytest.raises(ValueError, match="cache"):
    D.update_partner_cache(key, cache, images.astype(jnp.uint8), t)
  wide = D.BoxTargets(*(jnp.concatenate([x, x], axis=1) for x in (t.boxes, t.classes, t.valid, t.weights)))
  with pytest.raises(ValueError, match="cache"):
    D.update_partner_cache(key, cache, images, wide)
  with pytest.raises(TypeError, match="cache"):
    D.draw_partners(key, {"images": images}, images, t)
  with pytest.raises(TypeError, match="targets"):
    D.update_partner_cache(key, cache, images, (t.boxes, t.classes))
  with pytest.raises(ValueError, match="size"):
    D.init_partner_cache(images, t, 0)
