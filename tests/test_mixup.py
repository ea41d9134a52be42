"""MixUp: every output is exactly λ x_i + (1 - λ) x_partner for the plan's partners."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from core_helpers import CANON
from core_helpers import CANON_ODD
from core_helpers import COMBOS
from core_helpers import MODES
from core_helpers import PAIRINGS
from core_helpers import call
from core_helpers import examples
from core_helpers import expected_index
from core_helpers import method_and_plan
from core_helpers import random_images
from core_helpers import reference_mix
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix

SETTINGS = settings(max_examples=examples(8), deadline=None)


def _check_mixup(key, x, labels, num_classes, use_jit, cheap=False, **kwargs):
  """Runs mixup and checks it against the plan sampled with the same key."""
  batch = x.shape[0]
  out, y, plan = call(
    method_and_plan, use_jit, key, x, labels, name="mixup", num_classes=num_classes, cheap=cheap, **kwargs
  )
  lam, index = np.asarray(plan.lam), np.asarray(plan.index)
  assert out.shape == x.shape and out.dtype == x.dtype
  assert plan.region is None and plan.mask is None
  np.testing.assert_array_equal(plan.blend, plan.lam)  # MixUp's own share is its blend weight
  assert np.all((lam >= 0) & (lam <= 1))
  np.testing.assert_allclose(out, reference_mix(plan, x), rtol=1e-5, atol=1e-5)
  # Outputs lie between their two sources.
  xs, xp = np.asarray(x), np.asarray(x)[index]
  assert np.all(np.asarray(out) >= np.minimum(xs, xp) - 1e-5)
  assert np.all(np.asarray(out) <= np.maximum(xs, xp) + 1e-5)
  if labels is not None:
    hot = np.eye(num_classes)[np.asarray(labels)]
    np.testing.assert_allclose(y, lam[:, None] * hot + (1 - lam[:, None]) * hot[index], atol=1e-6)
  pairing = kwargs.get("pairing", "flip")
  if pairing != "permute":
    np.testing.assert_array_equal(index, expected_index(pairing, batch))
  if kwargs.get("mode", "batch") == "batch" and batch:
    mixed = index != np.arange(batch)
    assert len(set(lam[mixed].tolist())) <= 1  # one λ for the batch
  return plan


@pytest.mark.parametrize("mode,pairing", COMBOS)
@pytest.mark.parametrize("shape", [CANON, CANON_ODD])
def test_mixup_is_the_planned_blend(mode, pairing, shape):
  x = random_images(1, shape)
  labels = jnp.arange(shape[0]) % 3
  plan = _check_mixup(jax.random.key(5), x, labels, 3, False, mode=mode, pairing=pairing, alpha=1.0)
  assert np.any(np.asarray(plan.lam) < 1)


@pytest.mark.parametrize("mode,pairing", [("batch", "flip"), ("elem", "permute")])
def test_mixup_under_jit_equals_eager(mode, pairing):
  x = random_images(1, CANON)
  labels = jnp.arange(6)
  key = jax.random.key(7)
  eager = jaxmix.mixup(key, x, labels, num_classes=6, mode=mode, pairing=pairing)
  plan = _check_mixup(key, x, labels, 6, True, mode=mode, pairing=pairing)
  jitted = call(
    method_and_plan, True, key, x, labels, name="mixup", num_classes=6, mode=mode, pairing=pairing
  )
  for a, b in zip(eager, jitted[:2], strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  assert np.any(np.asarray(plan.lam) < 1)


@SETTINGS
@given(
  batch=st.integers(0, 9),
  feature_shape=st.sampled_from([(3,), (4, 5), (2, 3, 1)]),
  mode=st.sampled_from(MODES),
  pairing=st.sampled_from(PAIRINGS),
  alpha=st.floats(0.0, 4.0),
  prob=st.sampled_from([0.0, 0.5, 1.0]),
  seed=st.integers(0, 2**16),
)
def test_mixup_any_batch_and_rank(batch, feature_shape, mode, pairing, alpha, prob, seed):
  if mode == "pair" and pairing == "roll" and batch > 2:
    return
  x = random_images(seed, (batch,) + feature_shape)
  labels = jnp.arange(batch) % 4
  key = jax.random.key(seed)
  plan = _check_mixup(key, x, labels, 4, True, cheap=True, mode=mode, pairing=pairing, alpha=alpha, prob=prob)
  lam, index = np.asarray(plan.lam), np.asarray(plan.index)
  alone = index == np.arange(batch)
  np.testing.assert_array_equal(lam[alone], 1.0)  # e.g. the middle sample of an odd batch under flip
  if alpha == 0 or prob == 0:
    np.testing.assert_array_equal(lam, 1.0)


@pytest.mark.parametrize("alpha", [0.4, 1.0])
def test_batch_lambda_follows_beta(alpha):
  keys = jax.random.split(jax.random.key(2024), 2000)
  lam_of = jax.jit(jax.vmap(lambda k, a: jaxmix.sample_mixup(k, 2, alpha=a).lam[0], in_axes=(0, None)))
  lam = np.asarray(lam_of(keys, alpha))
  result = scipy.stats.kstest(lam, scipy.stats.beta(alpha, alpha).cdf)
  assert result.pvalue > 1e-3, result
  # And not some other Beta: the test has power.
  other = 2.0 if alpha < 1 else 0.3
  assert scipy.stats.kstest(lam, scipy.stats.beta(other, other).cdf).pvalue < 1e-3


@pytest.mark.parametrize("use_jit", [False, True])
def test_mixup_features_rank_two(use_jit):
  x = random_images(3, (6, 5))
  out, y = call(jaxmix.mixup, use_jit, jax.random.key(0), x, jnp.arange(6), num_classes=6, cheap=use_jit)
  assert out.shape == (6, 5) and y.shape == (6, 6)
  plan = call(jaxmix.sample_mixup, False, jax.random.key(0), batch_size=6, cheap=use_jit)
  np.testing.assert_allclose(out, reference_mix(plan, x), rtol=1e-5, atol=1e-6)
  # timm's switch with CutMix statically off also takes features.
  out2, _ = call(
    jaxmix.mixup_cutmix, use_jit, jax.random.key(0), x, static=("cutmix_alpha",), cutmix_alpha=0.0
  )
  assert out2.shape == (6, 5)


def test_mixup_gradient_has_lambda_structure():
  x = random_images(4, CANON)
  key = jax.random.key(9)
  plan = jaxmix.sample_mixup(key, 6, mode="elem", pairing="permute")
  lam, index = np.asarray(plan.lam), np.asarray(plan.index)
  w = jnp.arange(1.0, 7.0)  # a different weight per output sample

  def loss(x):
    out, _ = jaxmix.mixup(key, x, mode="elem", pairing="permute")
    return jnp.sum(out * w[:, None, None, None])

  g = np.asarray(jax.grad(loss)(x))
  assert np.all(np.isfinite(g))
  # d loss / d x_i = λ_i w_i + Σ_{j: partner(j) = i} (1 - λ_j) w_j
  expected = lam * np.asarray(w)
  np.add.at(expected, index, (1 - lam) * np.asarray(w))
  np.testing.assert_allclose(g, np.broadcast_to(expected[:, None, None, None], g.shape), rtol=1e-5)
