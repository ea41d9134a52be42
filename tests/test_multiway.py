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
from jaxmix._src.methods import multiway

KEY = jax.random.key(0)
PAIRINGS = ["roll", "flip", "permute"]


def _batch(b=6, shape=(4, 4, 2), seed=1):
  return jax.random.uniform(jax.random.key(seed), (b,) + shape)


@settings(max_examples=examples(10), deadline=None)
@given(
  b=st.integers(1, 7),
  k=st.integers(2, 5),
  pairing=st.sampled_from(PAIRINGS),
  mode=st.sampled_from(["batch", "elem"]),
  sort=st.booleans(),
  seed=st.integers(0, 1000),
)
def test_weights_sum_to_one_and_labels_keep_mass(b, k, pairing, mode, sort, seed):
  key = jax.random.key(seed)
  plan = jaxmix.sample_multimix(key, b, k=k, alpha=0.7, mode=mode, pairing=pairing, sort_weights=sort)
  chex.assert_shape(plan.weights, (b, k))
  np.testing.assert_allclose(plan.weights.sum(1), 1.0, atol=1e-5)
  assert np.all(np.asarray(plan.weights) >= 0)
  np.testing.assert_array_equal(plan.indices[:, 0], np.arange(b))
  # No partner slot that is the sample itself keeps weight: lam is the exact own share.
  own = np.asarray(plan.indices)[:, 1:] == np.arange(b)[:, None]
  assert np.all(np.asarray(plan.weights)[:, 1:][own] == 0)
  labels = jax.random.randint(key, (b,), 0, 5)
  targets = jaxmix.mix_labels(plan, labels, num_classes=5)
  np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-5)
  # Own-class mass is at least lam (exactly lam when no partner shares the class).
  own_mass = np.asarray(targets)[np.arange(b), np.asarray(labels)]
  assert np.all(own_mass >= np.asarray(plan.lam) - 1e-5)


@pytest.mark.parametrize("pairing", PAIRINGS)
def test_output_is_weighted_sum_of_indexed_sources(pairing):
  x = _batch(7)
  plan = jaxmix.sample_multimix(KEY, 7, k=4, alpha=1.0, mode="elem", pairing=pairing)
  got = jaxmix.apply(plan, x)
  idx, w = np.asarray(plan.indices), np.asarray(plan.weights)
  want = np.einsum("bk,bk...->b...", w, np.asarray(x)[idx])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pairing", ["roll", "flip", "permute"])
@pytest.mark.parametrize("b", [5, 6])
def test_k2_equals_mixup_exactly(pairing, b):
  x = _batch(b)
  labels = jnp.arange(b) % 3
  mix_plan = jaxmix.sample_mixup(jax.random.key(3), b, alpha=0.4, mode="elem", pairing=pairing)
  index = mix_plan.index
  multi = multiway.merge_self_slots(
    jaxmix.MultiPlan(
      weights=jnp.stack([mix_plan.lam, 1.0 - mix_plan.lam], axis=1),
      indices=jnp.stack([jnp.arange(b, dtype=jnp.int32), index], axis=1),
      pairing=pairing,
    )
  )
  if pairing != "permute":
    np.testing.assert_array_equal(multi.indices, multiway.multi_indices(KEY, b, 2, pairing))
  np.testing.assert_array_equal(jaxmix.apply(multi, x), jaxmix.apply(mix_plan, x))
  np.testing.assert_array_equal(
    jaxmix.mix_labels(multi, labels, num_classes=3), jaxmix.mix_labels(mix_plan, labels, num_classes=3)
  )
  np.testing.assert_array_equal(multi.lam, mix_plan.lam)


def test_k2_dirichlet_is_beta_in_distribution():
  plan = jaxmix.sample_multimix(KEY, 4000, k=2, alpha=0.5, mode="elem")
  lam = np.asarray(plan.lam)
  # Beta(0.5, 0.5): mean 1/2, variance 1/8.
  assert abs(lam.mean() - 0.5) < 0.03
  assert abs(lam.var() - 0.125) < 0.01


def test_sort_weights_keeps_largest_on_self():
  plan = jaxmix.sample_multimix(KEY, 64, k=4, alpha=1.0, mode="elem", sort_weights=True)
  w = np.asarray(plan.weights)
  assert np.all(w[:, 0] == w.max(1))
  assert np.all(np.diff(w, axis=1) <= 0)


def test_alpha_zero_and_prob_zero_leave_batch_unchanged():
  x = _batch()
  for kwargs in ({"alpha": 0.0}, {"prob": 0.0}):
    out, _ = jaxmix.multimix(KEY, x, k=3, **kwargs)
    np.testing.assert_array_equal(out, x)


def test_roll_and_flip_are_slices_not_gathers():
  x = _batch(8)
  for pairing in ("roll", "flip"):
    hlo = jax.jit(lambda k, x, p=pairing: jaxmix.multimix(k, x, k=3, pairing=p)[0]).lower(KEY, x).as_text()
    assert "gather" not in hlo


def test_jit_vmap_and_retrace_in_batch_mode():
  # test_contract.py runs these in elem mode (and dtypes and pytrees, the same MultiPlan in both modes).
  x = _batch(6)
  y = jnp.arange(6) % 4
  fn = lambda key, x, alpha: jaxmix.multimix(key, x, y, k=3, alpha=alpha, num_classes=4)
  out, t = fn(KEY, x, 1.0)
  jout, jt = jax.jit(fn)(KEY, x, 1.0)
  np.testing.assert_allclose(out, jout, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(t, jt, rtol=1e-6, atol=1e-6)
  keys = jax.random.split(KEY, 3)
  vout, _ = jax.vmap(fn, in_axes=(0, None, None))(keys, x, 1.0)
  for i in range(3):
    np.testing.assert_allclose(vout[i], fn(keys[i], x, 1.0)[0], rtol=1e-5, atol=1e-6)
  # no retrace when alpha changes
  counted = chex.assert_max_traces(n=1)(lambda key, x, a: jaxmix.multimix(key, x, k=3, alpha=a)[0])
  counted = jax.jit(counted)
  counted(KEY, x, 0.5)
  counted(KEY, x, 2.0)


def test_grad_through_inputs():
  x = _batch(4)
  g = jax.grad(lambda x: jaxmix.multimix(KEY, x, k=3)[0].sum())(x)
  np.testing.assert_allclose(g, jnp.ones_like(x), rtol=1e-5)  # weights sum to 1 over the batch columns


def test_bad_inputs():
  with pytest.raises(ValueError, match="k"):
    jaxmix.sample_multimix(KEY, 4, k=1)
  with pytest.raises(ValueError, match="k"):
    jaxmix.sample_multimix(KEY, 4, k=2.5)
  with pytest.raises(ValueError, match="mode"):
    jaxmix.sample_multimix(KEY, 4, mode="pair")
  with pytest.raises(ValueError, match="alpha"):
    jaxmix.sample_multimix(KEY, 4, alpha=-1.0)
  plan = jaxmix.sample_multimix(KEY, 4)
  with pytest.raises(ValueError, match="batch size"):
    jaxmix.apply(plan, _batch(5))


def test_augment_per_sample_with_dm_pix_then_mixup_in_one_jit():
  pix = pytest.importorskip("dm_pix")

  def augment(key, image):
    k_flip, k_crop, k_bright = jax.random.split(key, 3)
    image = pix.random_flip_left_right(k_flip, image)
    image = jnp.pad(image, ((2, 2), (2, 2), (0, 0)), mode="reflect")
    image = pix.random_crop(k_crop, image, (8, 8, 3))
    return pix.random_brightness(k_bright, image, 0.2)

  @jax.jit
  def prepare(key, images, labels):
    k_aug, k_mix = jax.random.split(key)
    images = jaxmix.augment_per_sample(k_aug, augment, images)
    return jaxmix.mixup(k_mix, images, labels, alpha=0.4, num_classes=4), images

  images = jax.random.uniform(jax.random.key(5), (6, 8, 8, 3))
  labels = jnp.arange(6) % 4
  (mixed, targets), augmented = prepare(KEY, images, labels)
  chex.assert_shape(mixed, images.shape)
  np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-6)
  # Each sample drew its own augmentation: the same key per sample would not.
  per_sample = [augment(k, images[i]) for i, k in enumerate(jax.random.split(jax.random.split(KEY)[0], 6))]
  np.testing.assert_allclose(augmented, jnp.stack(per_sample), rtol=1e-5, atol=1e-6)
  assert not np.allclose(augmented[0] - images[0], augmented[1] - images[1])
  # The mix is the mix of the augmented batch.
  want, _ = jaxmix.mixup(jax.random.split(KEY)[1], augmented, labels, alpha=0.4, num_classes=4)
  np.testing.assert_allclose(mixed, want, rtol=1e-5, atol=1e-6)
