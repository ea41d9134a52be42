"""C-Mixup (jaxmix.regression): kernel partners, exact λ mixing of inputs and targets, traced bandwidth.

The registry's contract suite (tests/test_contract.py) covers the plan layer like every method's; here
are C-Mixup's own properties: the partner distribution is the Gaussian kernel of the target distance
(χ² goodness of fit over many draws), a sample never draws itself unless asked, inputs and regression
targets are blended with the same λ, and bad input is refused naming the argument.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxmix
from jaxmix._src.methods import c_mixup as c_mixup_lib

sample_c_mixup = jaxmix.regression.sample_c_mixup
c_mixup = jaxmix.regression.c_mixup

# A small fixed target set: near and far pairs (each with one nearest neighbour), every kernel weight
# large enough for a χ² test at the bandwidths used.
Y = np.array([0.0, 0.2, 0.5, 1.2, 1.5, 2.0], np.float32)
B = Y.shape[0]
DRAWS = 3000


def kernel_probabilities(y, bandwidth, include_self=False):
  """P(partner = j | i) from the paper's formula, in float64 NumPy."""
  y = np.asarray(y, np.float64).reshape(len(y), -1)
  d2 = ((y[:, None, :] - y[None, :, :]) ** 2).sum(-1)
  w = np.exp(-d2 / (2 * bandwidth**2))
  if not include_self:
    np.fill_diagonal(w, 0.0)
  return w / w.sum(1, keepdims=True)


@jax.jit
def partner_draws(keys, targets, bandwidth):
  return jax.vmap(lambda k: sample_c_mixup(k, targets.shape[0], targets=targets, bandwidth=bandwidth).index)(
    keys
  )


def partner_counts(targets, bandwidth, seed=0):
  keys = jax.random.split(jax.random.key(seed), DRAWS)
  index = np.asarray(partner_draws(keys, jnp.asarray(targets), jnp.float32(bandwidth)))
  b = index.shape[1]
  return np.stack([np.bincount(index[:, i], minlength=b) for i in range(b)])


@pytest.mark.parametrize("bandwidth", [0.7, 1.5])
def test_partner_distribution_matches_the_kernel(bandwidth):
  counts = partner_counts(Y, bandwidth)
  p = kernel_probabilities(Y, bandwidth)
  assert np.all(np.diag(counts) == 0)
  chi2, dof = 0.0, 0
  for i in range(B):
    others = np.arange(B) != i
    expected = DRAWS * p[i, others]
    assert expected.min() >= 5, expected  # the χ² approximation holds
    chi2 += stats.chisquare(counts[i, others], expected).statistic
    dof += B - 2
  # One test over all rows (independent draws per row): a false alarm once in 10⁴ runs.
  assert stats.chi2.sf(chi2, dof) > 1e-4, (chi2, dof)


def test_partner_distribution_of_vector_targets_uses_the_euclidean_distance():
  y = np.stack([Y, Y[::-1] * 0.5], axis=1)  # [B, 2]
  counts = partner_counts(y, 1.0, seed=1)
  p = kernel_probabilities(y, 1.0)
  chi2 = sum(
    stats.chisquare(counts[i, np.arange(B) != i], DRAWS * p[i, np.arange(B) != i]).statistic for i in range(B)
  )
  assert stats.chi2.sf(chi2, B * (B - 2)) > 1e-4, chi2


def test_self_is_never_drawn_and_include_self_follows_the_official_rates():
  for b in (2, 3, 7):
    keys = jax.random.split(jax.random.key(b), 200)
    index = np.asarray(partner_draws(keys, jnp.asarray(np.linspace(0, 1, b), jnp.float32), jnp.float32(0.3)))
    assert not np.any(index == np.arange(b)), b
  # include_self: the official rates, where i itself has the largest kernel weight; a self draw is unmixed.
  draw = jax.jit(
    jax.vmap(lambda k: sample_c_mixup(k, B, targets=jnp.asarray(Y), bandwidth=0.5, include_self=True))
  )
  plans = draw(jax.random.split(jax.random.key(5), DRAWS))
  index, lam = np.asarray(plans.index), np.asarray(plans.lam)
  p = kernel_probabilities(Y, 0.5, include_self=True)
  self_rate = (index == np.arange(B)).mean(0)
  np.testing.assert_allclose(self_rate, np.diag(p), atol=4 * np.sqrt(0.25 / DRAWS))
  assert np.all(lam[index == np.arange(B)] == 1.0)


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("target_shape", [(B,), (B, 3)])
def test_inputs_and_targets_are_blended_with_the_same_lambda(mode, target_shape):
  key = jax.random.key(3)
  x = jax.random.normal(jax.random.key(1), (B, 4, 5, 2))
  y = jax.random.normal(jax.random.key(2), target_shape)
  plan = sample_c_mixup(key, B, targets=y, bandwidth=1.0, mode=mode)
  lam, j = np.asarray(plan.lam), np.asarray(plan.index)
  assert np.all((lam > 0) & (lam < 1))
  if mode == "batch":
    assert np.all(lam == lam[0])
  else:
    assert len(np.unique(lam)) == B
  x_mixed, y_mixed = jaxmix.apply(plan, (x, y))
  x, y = np.asarray(x), np.asarray(y)
  want_x = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[j]
  lam_y = lam.reshape((B,) + (1,) * (y.ndim - 1))
  np.testing.assert_allclose(x_mixed, want_x, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(y_mixed, lam_y * y + (1 - lam_y) * y[j], rtol=1e-6, atol=1e-6)
  # The one-call form is the plan layer.
  got = c_mixup(key, jnp.asarray(x), jnp.asarray(y), bandwidth=1.0, mode=mode)
  chex.assert_trees_all_close(got, (x_mixed, y_mixed), rtol=1e-6, atol=1e-6)


def test_dtypes_are_kept():
  x = jnp.ones((B, 3), jnp.bfloat16)
  y = jnp.asarray(Y, jnp.bfloat16)
  x_mixed, y_mixed = c_mixup(jax.random.key(0), x, y)
  assert x_mixed.dtype == jnp.bfloat16 and y_mixed.dtype == jnp.bfloat16 and y_mixed.shape == (B,)


def test_bandwidth_and_alpha_are_traced_no_retrace():
  x, y = jnp.ones((B, 3)), jnp.asarray(Y)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(key, bandwidth, alpha, prob):
    return c_mixup(key, x, y, bandwidth=bandwidth, alpha=alpha, prob=prob)

  for i, (bw, alpha, prob) in enumerate([(1.0, 2.0, 1.0), (0.1, 0.4, 0.5), (5.0, 1.0, 0.0)]):
    f(jax.random.key(i), bw, alpha, prob)


def test_bandwidth_limits():
  y = jnp.asarray(Y)
  keys = jax.random.split(jax.random.key(7), 64)
  # σ → 0: the nearest target (Y's nearest neighbours are unique).
  index = np.asarray(partner_draws(keys, y, jnp.float32(1e-6)))
  d = np.abs(Y[:, None] - Y[None, :]) + np.diag(np.full(B, np.inf))
  np.testing.assert_array_equal(index, np.broadcast_to(d.argmin(1), index.shape))
  # σ = inf: uniform over the others.
  logits = c_mixup_lib.partner_logits(y, jnp.inf)
  np.testing.assert_array_equal(np.isinf(logits), np.eye(B, dtype=bool))
  np.testing.assert_array_equal(np.where(np.eye(B, dtype=bool), 0.0, logits), 0.0)
  # A traced σ <= 0 or NaN cannot raise: it turns mixing off.
  off = jax.jit(lambda bw: sample_c_mixup(jax.random.key(0), B, targets=y, bandwidth=bw).lam)
  for bw in (0.0, -1.0, np.nan):
    np.testing.assert_array_equal(off(jnp.float32(bw)), 1.0)


def test_a_nan_target_leaves_the_other_rows_alone():
  y = jnp.asarray(Y).at[2].set(jnp.nan)
  logits = np.asarray(c_mixup_lib.partner_logits(y, 1.0))
  others = np.delete(np.arange(B), 2)
  assert np.all(logits[2] == -np.inf) and np.all(logits[others, 2] == -np.inf)
  assert np.all(np.isfinite(logits[np.ix_(others, others)][~np.eye(B - 1, dtype=bool)]))
  plan = sample_c_mixup(jax.random.key(0), B, targets=y)
  assert plan.index[2] == 2 and plan.lam[2] == 1.0 and not np.any(np.asarray(plan.index)[others] == 2)


def test_jit_equals_eager_and_vmap_equals_loop():
  x, y = jax.random.normal(jax.random.key(1), (B, 3)), jnp.asarray(Y)
  fn = lambda k: c_mixup(k, x, y, bandwidth=0.7, mode="elem")  # noqa: E731
  key = jax.random.key(11)
  chex.assert_trees_all_close(jax.jit(fn)(key), fn(key), rtol=1e-6, atol=1e-6)
  keys = jax.random.split(key, 3)
  batched = jax.jit(jax.vmap(fn))(keys)
  for i in range(3):
    chex.assert_trees_all_close(jax.tree.map(lambda t, i=i: t[i], batched), fn(keys[i]), rtol=1e-6, atol=1e-6)


def test_batch_of_one_and_empty_batch():
  x_mixed, y_mixed = c_mixup(jax.random.key(0), jnp.ones((1, 3)), jnp.array([2.0]))
  np.testing.assert_array_equal(y_mixed, [2.0])
  x_mixed, y_mixed = c_mixup(jax.random.key(0), jnp.ones((0, 3)), jnp.zeros((0, 2)))
  assert x_mixed.shape == (0, 3) and y_mixed.shape == (0, 2)


@pytest.mark.parametrize(
  "kwargs, error, name",
  [
    (dict(bandwidth=0.0), ValueError, "bandwidth"),
    (dict(bandwidth=-0.5), ValueError, "bandwidth"),
    (dict(targets=jnp.zeros((B + 1,))), ValueError, "targets"),
    (dict(targets=jnp.zeros((B, 2, 2))), ValueError, "targets"),
    (dict(targets=jnp.arange(B)), TypeError, "targets"),
    (dict(targets=jnp.zeros((B,), bool)), TypeError, "targets"),
    (dict(mode="pair"), ValueError, "mode"),
    (dict(pairing="flip"), ValueError, "pairing"),
    (dict(alpha=-1.0), ValueError, "alpha"),
    (dict(prob=1.5), ValueError, "prob"),
    (dict(include_self=1), TypeError, "include_self"),
  ],
)
def test_bad_input_names_the_argument(kwargs, error, name):
  call = dict(targets=jnp.asarray(Y)) | kwargs
  with pytest.raises(error, match=name):
    sample_c_mixup(jax.random.key(0), B, **call)
  if "pairing" not in kwargs:
    targets = call.pop("targets")
    with pytest.raises(error, match=name):
      c_mixup(jax.random.key(0), jnp.ones((B, 3)), targets, **call)


def test_registered_with_targets_required():
  spec = jaxmix.SAMPLERS["c_mixup"]
  assert spec.sample is sample_c_mixup and spec.requires == ("targets",) and spec.namespace == "regression"
  assert spec.two_source and spec.modes == ("batch", "elem")
