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

KEY = jax.random.key(0)


def _bands(mask_row):
  """Decomposes a [T, F] 0/1 own-mask into (time rows fully taken, freq cols fully taken)."""
  taken = 1 - np.asarray(mask_row)
  rows = taken.all(axis=1)
  cols = taken.all(axis=0)
  return rows, cols, taken


@settings(max_examples=examples(12), deadline=None)
@given(
  t=st.integers(4, 24),
  f=st.integers(4, 16),
  gamma=st.floats(0.0, 0.6),
  mt=st.integers(0, 3),
  mf=st.integers(0, 3),
  seed=st.integers(0, 1000),
)
def test_specmix_masks_are_time_and_frequency_bands(t, f, gamma, mt, mf, seed):
  plan = jaxmix.sample_specmix(
    jax.random.key(seed), 4, (t, f), gamma=gamma, max_time_bands=mt, max_freq_bands=mf, mode="elem"
  )
  mask = np.asarray(plan.mask)
  chex.assert_shape(plan.mask, (4, t, f))
  assert set(np.unique(mask)) <= {0.0, 1.0}
  for b in range(4):
    rows, cols, taken = _bands(mask[b])
    # Taken bins are exactly the union of whole time rows and whole frequency columns.
    np.testing.assert_array_equal(taken.astype(bool), rows[:, None] | cols[None, :])
    # At most `max` bands per axis, each at most floor(gamma * size) long.
    for flags, most, size in ((rows, mt, t), (cols, mf, f)):
      if flags.all():
        continue  # the other axis covers everything; the bands cannot be told apart
      runs = np.diff(np.concatenate([[0], flags.astype(int), [0]]))
      starts, ends = np.where(runs == 1)[0], np.where(runs == -1)[0]
      assert len(starts) <= most
      # Overlapping bands merge; the union of n bands is at most n * max width.
      assert (ends - starts).sum() <= most * int(np.floor(np.float32(gamma) * size))
  # λ is the exact kept fraction.
  np.testing.assert_allclose(plan.lam, mask.mean(axis=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize("layout", ["TF", "TFC", "CTF"])
def test_specmix_bands_on_the_right_axes(layout):
  t, f = 12, 8
  base = jnp.arange(4, dtype=jnp.float32)[:, None, None] * jnp.ones((4, t, f))
  if layout == "TF":
    specs, fmt = base, "NHWC"
  elif layout == "TFC":
    specs, fmt = jnp.stack([base, base + 10], -1), "NHWC"
  else:
    specs, fmt = jnp.stack([base, base + 10], 1), "NCHW"
  labels = jnp.arange(4)
  out, y = jaxmix.specmix(KEY, specs, labels, num_classes=4, mode="elem", data_format=fmt)
  plan = jaxmix.sample_specmix(KEY, 4, (t, f), mode="elem")
  m = np.asarray(plan.mask)
  o = np.asarray(out)
  first = {"TF": o, "TFC": o[..., 0], "CTF": o[:, 0]}[layout]
  partner = np.asarray(plan.index)
  want = np.where(m > 0, np.arange(4)[:, None, None], partner[:, None, None])
  np.testing.assert_array_equal(first, want)
  if layout != "TF":
    second = o[..., 1] if layout == "TFC" else o[:, 1]
    np.testing.assert_array_equal(second, want + 10)
  np.testing.assert_allclose(y[np.arange(4), np.arange(4)], plan.lam, rtol=1e-6)
  np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)


def test_specmix_batch_mode_mask_shared_and_prob_zero():
  plan = jaxmix.sample_specmix(KEY, 6, (10, 10))
  assert plan.mask.shape == (1, 10, 10)
  specs = jax.random.normal(KEY, (6, 10, 10))
  out, _ = jaxmix.specmix(KEY, specs, prob=0.0)
  np.testing.assert_array_equal(out, specs)


def test_specmix_jit_vmap_retrace_dtype():
  specs = jax.random.normal(KEY, (4, 10, 8, 1))
  fn = lambda key, gamma: jaxmix.specmix(key, specs, jnp.arange(4), gamma=gamma, num_classes=4)
  out, y = fn(KEY, 0.3)
  jout, jy = jax.jit(fn)(KEY, 0.3)
  np.testing.assert_allclose(out, jout, rtol=1e-6)
  np.testing.assert_allclose(y, jy, rtol=1e-6)
  keys = jax.random.split(KEY, 3)
  vout, _ = jax.vmap(fn, in_axes=(0, None))(keys, 0.3)
  for i in range(3):
    np.testing.assert_allclose(vout[i], fn(keys[i], 0.3)[0], rtol=1e-6)
  counted = jax.jit(chex.assert_max_traces(n=1)(lambda key, g: jaxmix.specmix(key, specs, gamma=g)[0]))
  counted(KEY, 0.2)
  counted(KEY, 0.5)
  out16, _ = jaxmix.specmix(KEY, specs.astype(jnp.bfloat16))
  assert out16.dtype == jnp.bfloat16


def test_specmix_bad_inputs():
  with pytest.raises(ValueError, match="gamma"):
    jaxmix.sample_specmix(KEY, 4, (8, 8), gamma=1.5)
  with pytest.raises(ValueError, match="max_time_bands"):
    jaxmix.sample_specmix(KEY, 4, (8, 8), max_time_bands=-1)
  with pytest.raises(ValueError, match="max_freq_bands"):
    jaxmix.sample_specmix(KEY, 4, (8, 8), max_freq_bands=1.5)
  with pytest.raises(ValueError, match="spatial"):
    jaxmix.specmix(KEY, jnp.zeros((4, 16)))


@pytest.mark.parametrize("shape", [(6, 32), (6, 32, 2), (6, 10, 8), (6, 10, 8, 1)])
def test_audio_mixup_on_waveforms_and_spectrograms(shape):
  x = jax.random.normal(KEY, shape)
  labels = jnp.arange(6) % 3
  out, y = jax.jit(lambda k: jaxmix.audio_mixup(k, x, labels, alpha=0.4, num_classes=3))(KEY)
  plan = jaxmix.sample_mixup(KEY, 6, alpha=0.4)
  lam = plan.lam.reshape((-1,) + (1,) * (len(shape) - 1))
  np.testing.assert_allclose(out, lam * x + (1 - lam) * jnp.flip(x, 0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)
  with pytest.raises(ValueError, match="waveforms"):
    jaxmix.audio_mixup(KEY, jnp.zeros((6,)))
