"""The λ sampler: exact Beta draws without jax.random.gamma's per-element loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxmix._src.core import sampling


@pytest.mark.parametrize("a, b", [(0.2, 0.2), (0.4, 0.4), (1.0, 1.0), (2.0, 2.0), (2.0, 1.0), (0.5, 3.0)])
def test_beta_matches_scipy(a, b):
  """Chi-square over 20 equiprobable bins. (A KS test would fail for small α through float32
  alone: Beta(0.2, 0.2) puts ~2% of its mass within 6e-8 of 1, which rounds to exactly 1.0.)"""
  n = 20000
  lam = np.asarray(jax.jit(sampling.beta, static_argnums=2)(jax.random.key(0), a, (n,), b))
  assert np.all((lam >= 0) & (lam <= 1)) and np.isfinite(lam).all()
  edges = scipy.stats.beta(a, b).ppf(np.linspace(0, 1, 21))
  edges[0], edges[-1] = -np.inf, np.inf
  counts = np.histogram(lam, edges)[0]
  assert scipy.stats.chisquare(counts, np.full(20, n / 20)).pvalue > 1e-3


@pytest.mark.parametrize("a", [0.05, 0.3, 1.0, 4.0])
def test_log_gamma_with_one_candidate_per_round_is_still_exact(a):
  """With one candidate a round, 0.5-5% of draws are rejected in the first round and come from the loop."""
  shape = (20000,)
  key = jax.random.key(1)
  one = np.asarray(jax.jit(sampling.log_gamma, static_argnums=(2, 3))(key, a, shape, 1))
  four = np.asarray(jax.jit(sampling.log_gamma, static_argnums=(2, 3))(key, a, shape, 4))
  a_ = jnp.full(shape, a, jnp.float32)
  d = jnp.where(a_ < 1, a_ + 1, a_) - 1 / 3
  first, accepted, extra = sampling._candidates(jax.random.split(key)[0], d, 1, extra=1)
  accepted = np.asarray(accepted)
  assert 0.002 < 1 - accepted.mean() < 0.1
  boost = np.where(a < 1, np.log1p(-np.asarray(extra[0])) / a, 0.0)
  kept = np.log(np.asarray(d)) + np.asarray(first) + boost
  # Accepted draws are the first round's; the others were redrawn.
  np.testing.assert_allclose(one[accepted], kept[accepted], rtol=1e-6, atol=1e-6)
  assert np.all(one[~accepted] != kept[~accepted])
  for drawn in (one, four):
    assert np.isfinite(drawn).all()
    # In float64: Gamma(0.05) draws below 1e-45 are common and would underflow in float32.
    assert scipy.stats.kstest(np.exp(drawn.astype(np.float64)), scipy.stats.gamma(a).cdf).pvalue > 1e-3


def test_alpha_off_and_traced_alpha():
  sample = jax.jit(lambda k, a: sampling.beta(k, a, (64,)))
  np.testing.assert_array_equal(sample(jax.random.key(0), 0.0), 1.0)
  for a in (0.1, 1.0, 7.0):
    lam = sample(jax.random.key(0), a)
    assert lam.dtype == jnp.float32 and not np.all(np.asarray(lam) == 1.0)
  assert sample._cache_size() == 1


def test_tiny_alpha_gives_lambda_at_the_ends_without_nans():
  lam = np.asarray(sampling.beta(jax.random.key(3), 0.01, (5000,)))
  assert np.isfinite(lam).all()
  assert np.mean((lam < 1e-3) | (lam > 1 - 1e-3)) > 0.9
  assert 0.4 < np.mean(lam > 0.5) < 0.6


@pytest.mark.parametrize(
  "key",
  [
    jax.random.key(0),
    jax.random.PRNGKey(7),
    jax.random.split(jax.random.key(3))[1],
    jax.random.key(1, impl="rbg"),
  ],
  ids=["typed", "legacy", "split", "rbg"],
)
@pytest.mark.parametrize("shape", [(1,), (2, 3, 5), (2, 4, 16, 9)])
def test_normal_is_jax_random_normal_bit_for_bit(key, shape):
  """The unrolled threefry (or the fallback for other PRNGs) gives jax.random.normal's bits, jitted or not."""
  want = np.asarray(jax.random.normal(key, shape, jnp.float32))
  np.testing.assert_array_equal(np.asarray(sampling.normal(key, shape)), want)
  np.testing.assert_array_equal(np.asarray(jax.jit(sampling.normal, static_argnums=1)(key, shape)), want)


def test_normal_under_vmap_and_in_the_non_partitionable_mode():
  keys = jax.random.split(jax.random.key(5), 3)
  want = jax.vmap(lambda k: jax.random.normal(k, (4, 6)))(keys)
  np.testing.assert_array_equal(jax.vmap(lambda k: sampling.normal(k, (4, 6)))(keys), want)
  with jax.threefry_partitionable(False):
    want = jax.random.normal(keys[0], (4, 6))
    np.testing.assert_array_equal(sampling.normal(keys[0], (4, 6)), want)
