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
from jaxmix._src.methods import smoothmix as smoothmix_lib

KEY = jax.random.key(0)
SHAPES = ["gaussian", "square"]


def _batch(b=4, h=8, w=10, c=3, dtype=jnp.float32):
  x = jax.random.uniform(jax.random.key(1), (b, h, w, c)) * 255
  return x.astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_orientation_own_zeros_partner_ones(shape, mode):
  # Sample 0 is all 0 and its partner (flip) all 1: the output's mean is the
  # partner's share 1 - λ; sample 1 is the mirror case, mean = λ. OpenMixup
  # gets this backwards (it reports the partner's share as λ).
  x = jnp.stack([jnp.zeros((12, 12, 3)), jnp.ones((12, 12, 3))])
  for seed in range(5):
    key = jax.random.key(seed)
    out, y = jaxmix.smoothmix(key, x, jnp.array([0, 1]), num_classes=2, shape=shape, mode=mode)
    plan = jaxmix.sample_smoothmix(key, 2, (12, 12), shape=shape, mode=mode)
    lam = np.asarray(plan.lam)
    means = np.asarray(out).mean((1, 2, 3))
    np.testing.assert_allclose(means[0], 1 - lam[0], atol=1e-5)
    np.testing.assert_allclose(means[1], lam[1], atol=1e-5)
    np.testing.assert_allclose(np.asarray(y)[:, 0], [lam[0], 1 - lam[1]], atol=1e-6)
    assert 0 < lam[0] < 1


def test_gaussian_mask_matches_the_formula():
  h, w = 16, 12
  g = np.asarray(smoothmix_lib.partner_masks(KEY, 8, (h, w), sigma_range=(0.25, 0.5)))
  for m in g:
    cy, cx = np.unravel_index(np.argmax(m), m.shape)
    assert m[cy, cx] == pytest.approx(1.0)
    # Recover σ along each axis from a neighbour and check it is s·(H, W) for one s in [0.25, 0.5].
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    logm = np.log(np.maximum(m, 1e-30))
    d2h = (rows - cy) ** 2 + 0 * cols
    d2w = (cols - cx) ** 2 + 0 * rows
    a = np.linalg.lstsq(np.stack([d2h.ravel(), d2w.ravel()], 1), logm.ravel(), rcond=None)[0]
    sh, sw = np.sqrt(-1 / (2 * a[0])) / h, np.sqrt(-1 / (2 * a[1])) / w
    assert sh == pytest.approx(sw, rel=1e-3)
    assert 0.25 - 1e-4 <= sh <= 0.5 + 1e-4


def test_square_mask_is_a_soft_box():
  m = np.asarray(smoothmix_lib.partner_masks(KEY, 16, (20, 20), shape="square", edge=0.2))
  for mm in m:
    if mm.max() == 0:
      continue
    # Separable and monotone away from the peak along each axis.
    row = mm[np.argmax(mm.max(1))]
    peak = np.argmax(row)
    assert np.all(np.diff(row[peak:]) <= 1e-6) and np.all(np.diff(row[: peak + 1]) >= -1e-6)
    assert ((mm > 0) & (mm < 1)).any()


@pytest.mark.parametrize("shape", SHAPES)
@settings(max_examples=examples(6), deadline=None)
@given(
  b=st.integers(1, 5),
  h=st.integers(1, 9),
  w=st.integers(1, 9),
  mode=st.sampled_from(["batch", "pair", "elem"]),
  pairing=st.sampled_from(["flip", "roll", "permute"]),
  seed=st.integers(0, 2**16),
)
def test_outputs_between_sources_and_lam_is_mean_weight(shape, b, h, w, mode, pairing, seed):
  if mode == "pair" and pairing == "roll" and b > 2:
    return
  key = jax.random.key(seed)
  plan = jaxmix.sample_smoothmix(key, b, (h, w), shape=shape, mode=mode, pairing=pairing)
  own = np.asarray(plan.own_weight())
  assert own.min() >= 0 and own.max() <= 1
  np.testing.assert_allclose(np.asarray(plan.lam), own.mean((1, 2)), atol=1e-5)
  x = jax.random.normal(jax.random.key(seed + 1), (b, h, w, 2))
  out = np.asarray(jaxmix.apply(plan, x))
  partner = np.asarray(x)[np.asarray(plan.index)]
  assert np.all(out >= np.minimum(x, partner) - 1e-5) and np.all(out <= np.maximum(x, partner) + 1e-5)


def test_sigma_range_controls_the_share():
  small = jaxmix.sample_smoothmix(KEY, 200, (32, 32), sigma_range=(0.1, 0.1), mode="elem").lam
  large = jaxmix.sample_smoothmix(KEY, 200, (32, 32), sigma_range=(0.5, 0.5), mode="elem").lam
  assert float(small.mean()) > float(large.mean()) + 0.2


def test_same_key_same_output_jit_and_vmap():
  x = _batch()
  fn = lambda k: jaxmix.smoothmix(k, x, mode="elem", shape="square")[0]
  np.testing.assert_array_equal(fn(KEY), fn(KEY))
  np.testing.assert_allclose(jax.jit(fn)(KEY), fn(KEY), atol=1e-3)
  keys = jax.random.split(KEY, 3)
  stacked = jax.vmap(fn)(keys)
  for i, k in enumerate(keys):
    np.testing.assert_allclose(stacked[i], fn(k), atol=1e-3)


def test_off_switches_return_inputs():
  x = _batch()
  np.testing.assert_array_equal(jaxmix.smoothmix(KEY, x, prob=0.0)[0], x)
  np.testing.assert_array_equal(jaxmix.smoothmix(KEY, x, shape="square", alpha=0.0)[0], x)


def test_no_retrace_when_traced_options_change():
  x = _batch()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(key, alpha, edge, lo, prob):
    return jaxmix.smoothmix(key, x, shape="square", alpha=alpha, edge=edge, sigma_range=(lo, 0.5), prob=prob)

  for a, e, lo, p in [(1.0, 0.1, 0.25, 1.0), (0.3, 0.3, 0.3, 0.5)]:
    f(KEY, a, e, lo, p)


def test_bad_input_errors():
  x = _batch()
  with pytest.raises(ValueError, match="shape"):
    jaxmix.smoothmix(KEY, x, shape="circle")
  with pytest.raises(ValueError, match="sigma_range"):
    jaxmix.smoothmix(KEY, x, sigma_range=(0.5, 0.25))
  with pytest.raises(ValueError, match="prob"):
    jaxmix.smoothmix(KEY, x, prob=2.0)
