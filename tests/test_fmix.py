import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import examples
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix
from jaxmix._src.methods import fmix as fmix_lib

KEY = jax.random.key(0)


def _batch(b=4, h=8, w=10, c=3, dtype=jnp.float32):
  x = jax.random.uniform(jax.random.key(1), (b, h, w, c)) * 255
  return x.astype(dtype)


def _partner(x):
  return x[::-1]


# --- FMix-specific ---------------------------------------------------------


def test_binarise_has_exactly_num_ones_and_num_is_floor_or_ceil():
  n, h, w = 64, 6, 7
  keys = jax.random.split(KEY, 3)
  grey = fmix_lib.fmix_grey_map(keys[0], (h, w), num=n)
  lam = jax.random.uniform(keys[1], (n,))
  num = fmix_lib.num_ones(keys[2], lam, h * w)
  mask = fmix_lib.binarise(grey, num, lam)
  target = np.asarray(lam, np.float32) * np.float32(h * w)
  num = np.asarray(num)
  assert set(np.unique(np.asarray(mask))) <= {0.0, 1.0}
  np.testing.assert_array_equal(np.asarray(mask).sum((1, 2)), num)
  assert np.all((num == np.floor(target)) | (num == np.ceil(target)))
  # Both roundings occur (each with probability 1/2 where they differ).
  differ = np.floor(target) != np.ceil(target)
  assert np.any(num[differ] == np.floor(target[differ])) and np.any(num[differ] == np.ceil(target[differ]))


def test_binarise_takes_the_highest_pixels_and_breaks_ties_like_a_stable_sort():
  n, h, w = 40, 9, 11
  grey = fmix_lib.fmix_grey_map(KEY, (h, w), num=n)
  tied = jnp.round(grey * 6) / 6  # many ties
  num = jax.random.randint(jax.random.key(2), (n,), 0, h * w + 1)
  for g in (grey, tied):
    flat = g.reshape(n, -1)
    fast = fmix_lib._top_k_mask(flat, num)
    order = np.argsort(-np.asarray(flat), axis=1, kind="stable")
    expect = np.zeros(flat.shape, bool)
    for i in range(n):
      expect[i, order[i, : int(num[i])]] = True
    np.testing.assert_array_equal(np.asarray(fast), expect)


def test_soft_edges_ramp_and_keep_the_mean():
  n, h, w = 16, 10, 10
  grey = fmix_lib.fmix_grey_map(KEY, (h, w), num=n)
  lam = jnp.full((n,), 0.4)
  num = jnp.full((n,), 40, jnp.int32)
  mask = np.asarray(fmix_lib.binarise(grey, num, lam, 0.1))
  soft = int(h * w * 0.1)
  assert mask.min() >= 0 and mask.max() <= 1
  np.testing.assert_allclose(mask.mean((1, 2)), 0.4, atol=1e-6)
  between = ((mask > 0) & (mask < 1)).sum((1, 2))
  np.testing.assert_array_equal(between, 2 * soft - 2)  # linspace(1, 0, 2·soft) minus its ends
  # Rank order: soft pixels sit between the ones and the zeros of the grey map.
  g = np.asarray(grey)
  for i in range(n):
    soft_vals = g[i][(mask[i] > 0) & (mask[i] < 1)]
    assert soft_vals.max() <= g[i][mask[i] == 1].min() and soft_vals.min() >= g[i][mask[i] == 0].max()


def test_low_frequency_energy_grows_with_decay_power():
  h = w = 32
  fy = np.fft.fftfreq(h)[:, None]
  fx = np.fft.fftfreq(w)[None, :]
  f = np.sqrt(fy**2 + fx**2)
  low = (f > 0) & (f <= 0.1)
  fractions = []
  for decay in (0.5, 1.5, 3.0, 5.0):
    grey = np.asarray(jaxmix.fmix_grey_map(KEY, (h, w), decay_power=decay, num=32))
    power = np.abs(np.fft.fft2(grey - grey.mean((1, 2), keepdims=True))) ** 2
    fractions.append((power[:, low].sum(-1) / power.sum((1, 2))).mean())
  assert np.all(np.diff(fractions) > 0), fractions
  assert fractions[-1] > 0.9 and fractions[0] < 0.5


def test_grey_map_is_normalised_and_shaped():
  g = jaxmix.fmix_grey_map(KEY, (7, 9))
  assert g.shape == (7, 9) and g.dtype == jnp.float32
  assert float(g.min()) == 0.0 and float(g.max()) == 1.0
  assert jaxmix.fmix_grey_map(KEY, (7, 9), num=3).shape == (3, 7, 9)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_lam_is_the_count_of_own_pixels(mode):
  plan = jaxmix.sample_fmix(KEY, 6, (8, 10), mode=mode)
  own = np.asarray(plan.own_weight())
  assert set(np.unique(own)) <= {0.0, 1.0}
  np.testing.assert_allclose(np.asarray(plan.lam), own.sum((1, 2)) / 80, atol=1e-6)
  expect_lead = 1 if mode == "batch" else 6
  assert plan.mask.shape == (expect_lead, 8, 10)


def test_reformulate_draws_beta_alpha_plus_one():
  # elem mode: one independent λ per sample.
  lam = jaxmix.sample_fmix(KEY, 400, (16, 16), reformulate=True, mode="elem").lam
  assert abs(float(lam.mean()) - 2 / 3) < 0.04  # mean of Beta(2, 1)
  lam = jaxmix.sample_fmix(KEY, 400, (16, 16), mode="elem").lam
  assert abs(float(lam.mean()) - 0.5) < 0.04


def test_max_soft_lam_is_the_mean_weight():
  plan = jaxmix.sample_fmix(KEY, 4, (12, 12), max_soft=0.2, mode="elem")
  own = np.asarray(plan.own_weight())
  assert ((own > 0) & (own < 1)).any()
  np.testing.assert_allclose(np.asarray(plan.lam), own.mean((1, 2)), atol=1e-6)


# --- the shared contract ---------------------------------------------------


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("max_soft", [0.0, 0.1])
def test_label_weight_is_the_own_share_of_the_output(mode, max_soft):
  b, h, w = 6, 8, 10
  # Sample i is the constant i + 1: the output's mean reveals the own share.
  x = jnp.broadcast_to(jnp.arange(1.0, b + 1)[:, None, None, None], (b, h, w, 1))
  labels = jnp.arange(b)
  out, y = jaxmix.fmix(KEY, x, labels, num_classes=b, mode=mode, max_soft=max_soft)
  plan = jaxmix.sample_fmix(KEY, b, (h, w), mode=mode, max_soft=max_soft)
  own = (np.asarray(out).mean((1, 2, 3)) - np.arange(b, 0, -1)) / (np.arange(1, b + 1) - np.arange(b, 0, -1))
  np.testing.assert_allclose(own, np.asarray(plan.lam), atol=1e-5)
  np.testing.assert_allclose(np.asarray(y)[np.arange(b), labels], np.asarray(plan.lam), atol=1e-6)
  np.testing.assert_allclose(np.asarray(y).sum(1), 1.0, atol=1e-6)


@pytest.mark.slow  # one compile per drawn configuration
@settings(max_examples=examples(8), deadline=None)
@given(
  b=st.integers(1, 5),
  h=st.integers(1, 9),
  w=st.integers(1, 9),
  mode=st.sampled_from(["batch", "pair", "elem"]),
  pairing=st.sampled_from(["flip", "roll", "permute"]),
  seed=st.integers(0, 2**16),
)
def test_outputs_between_sources_and_masks_in_unit_interval(b, h, w, mode, pairing, seed):
  if mode == "pair" and pairing == "roll" and b > 2:
    return
  key = jax.random.key(seed)
  plan = jaxmix.sample_fmix(key, b, (h, w), mode=mode, pairing=pairing, max_soft=0.1)
  own = np.asarray(plan.own_weight())
  assert own.min() >= 0 and own.max() <= 1
  np.testing.assert_allclose(np.asarray(plan.lam), own.mean((1, 2)), atol=1e-5)
  x = jax.random.normal(jax.random.key(seed + 1), (b, h, w, 2))
  out = np.asarray(jaxmix.apply(plan, x))
  partner = np.asarray(x)[np.asarray(plan.index)]
  lo, hi = np.minimum(x, partner), np.maximum(x, partner)
  assert np.all(out >= lo - 1e-5) and np.all(out <= hi + 1e-5)


def test_vmap_over_keys_equals_loop():
  keys = jax.random.split(KEY, 3)
  x = _batch()
  fn = lambda k: jaxmix.fmix(k, x, mode="elem", max_soft=0.05)[0]
  stacked = jax.vmap(fn)(keys)
  for i, k in enumerate(keys):
    np.testing.assert_allclose(stacked[i], fn(k), atol=1e-4)


def test_off_switches_return_inputs():
  x = _batch()
  np.testing.assert_array_equal(jaxmix.fmix(KEY, x, alpha=0.0)[0], x)
  np.testing.assert_array_equal(jaxmix.fmix(KEY, x, prob=0.0, mode="elem")[0], x)


def test_bad_input_errors():
  x = _batch()
  with pytest.raises(ValueError, match="mode"):
    jaxmix.fmix(KEY, x, mode="pixel")
  with pytest.raises(ValueError, match="max_soft"):
    jaxmix.fmix(KEY, x, max_soft=1.5)
  with pytest.raises(ValueError, match="alpha"):
    jaxmix.fmix(KEY, x, alpha=-1.0)
  with pytest.raises(ValueError, match="spatial"):
    jaxmix.fmix(KEY, jnp.ones((4, 5)))
  with pytest.raises(ValueError, match="spatial_shape"):
    jaxmix.sample_fmix(KEY, 4, (8,))
