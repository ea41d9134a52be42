"""Labels: timm's smoothed one-hot, and soft labels that keep each row's mass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import call
from core_helpers import examples
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix

SETTINGS = settings(max_examples=examples(15), deadline=None)


@SETTINGS
@given(
  batch=st.integers(0, 9),
  num_classes=st.integers(1, 7),
  smoothing=st.floats(0.0, 1.0),
  seed=st.integers(0, 2**16),
  use_jit=st.booleans(),
)
def test_one_hot_values(batch, num_classes, smoothing, seed, use_jit):
  labels = np.random.default_rng(seed).integers(0, num_classes, size=batch)
  y = np.asarray(
    call(jaxmix.one_hot, use_jit, jnp.asarray(labels), num_classes=num_classes, label_smoothing=smoothing)
  )
  assert y.dtype == np.float32 and y.shape == (batch, num_classes)
  off, on = smoothing / num_classes, 1 - smoothing + smoothing / num_classes
  hot = labels[:, None] == np.arange(num_classes)
  np.testing.assert_allclose(y[hot], on, atol=1e-6)
  np.testing.assert_allclose(y[~hot], off, atol=1e-6)
  np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)


def test_one_hot_example_from_docstring():
  y = jaxmix.one_hot(jnp.array([0, 2]), 3, label_smoothing=0.3)
  np.testing.assert_allclose(y, [[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]], atol=1e-6)


def _label_kinds(batch, k, rng):
  """int ids, one-hot, soft (rows sum to 1) and multi-hot float targets."""
  ids = rng.integers(0, k, size=batch)
  soft = rng.random((batch, k))
  soft /= soft.sum(-1, keepdims=True)
  multi = (rng.random((batch, k)) < 0.5).astype(np.float32)
  return {
    "int": jnp.asarray(ids, jnp.int32),
    "one_hot": jnp.asarray(np.eye(k)[ids], jnp.float32),
    "soft": jnp.asarray(soft, jnp.float32),
    "multi_hot": jnp.asarray(multi, jnp.float32),
  }


def _plan(batch, seed):
  """A plan with random λ in (0, 1) and a random pairing (mix_labels reads only these)."""
  rng = np.random.default_rng(seed)
  lam = jnp.asarray(rng.uniform(0.05, 0.95, batch), jnp.float32)
  index = jnp.asarray(rng.permutation(batch), jnp.int32)
  return jaxmix.Plan(lam=lam, index=index, blend=lam, pairing="permute")


@pytest.mark.parametrize("use_jit", [False, True])
def test_mix_labels_keeps_row_mass(use_jit):
  batch, k = 6, 5
  plan = _plan(batch, 1)
  lam, index = np.asarray(plan.lam), np.asarray(plan.index)
  for kind, labels in _label_kinds(batch, k, np.random.default_rng(0)).items():
    for smoothing in (0.0, 0.2):
      y = call(jaxmix.mix_labels, use_jit, plan, labels, num_classes=k, label_smoothing=smoothing)
      assert y.dtype == jnp.float32 and y.shape == (batch, k), kind
      y = np.asarray(y)
      src = np.asarray(jaxmix.one_hot(labels, k)) if kind == "int" else np.asarray(labels, np.float64)
      src = src * (1 - smoothing) + smoothing / k
      mass = src.sum(-1)
      np.testing.assert_allclose(y.sum(-1), lam * mass + (1 - lam) * mass[index], rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(y, lam[:, None] * src + (1 - lam[:, None]) * src[index], atol=1e-6)
      if kind in ("int", "one_hot", "soft"):
        np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)


def test_mix_labels_output_is_float32_for_any_float_input():
  plan = _plan(4, 2)
  for dtype in (jnp.bfloat16, jnp.float16, jnp.float32):
    y = jaxmix.mix_labels(plan, jnp.eye(4, dtype=dtype))
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-2)


def test_mix_labels_none_is_none():
  plan = _plan(4, 3)
  assert jaxmix.mix_labels(plan, None) is None


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_])
def test_integer_and_bool_multi_hot_rows_mix_like_float_rows(dtype):
  multi_hot = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
  plan = jaxmix.sample_mixup(jax.random.key(0), 4, alpha=1.0)
  want = jaxmix.mix_labels(plan, jnp.asarray(multi_hot, jnp.float32), label_smoothing=0.1)
  got = jax.jit(lambda y: jaxmix.mix_labels(plan, y, label_smoothing=0.1))(jnp.asarray(multi_hot, dtype))
  np.testing.assert_allclose(got, want, atol=1e-7)
  assert got.dtype == jnp.float32
  images = jax.random.normal(jax.random.key(2), (4, 8, 8, 1))
  _, targets = jaxmix.cutmix(jax.random.key(1), images, jnp.asarray(multi_hot, dtype))
  _, float_targets = jaxmix.cutmix(jax.random.key(1), images, jnp.asarray(multi_hot, jnp.float32))
  np.testing.assert_array_equal(targets, float_targets)
  with pytest.raises(ValueError, match="labels.*multi-hot rows.*0/1"):
    jaxmix.mix_labels(plan, np.array([[2, 0, 1]] * 4, np.int32))
