"""Multi-hot targets: smoothing (timm's, Keras's and a prior's rule), timm's BCE threshold, and multi-hot
rows through every one-call method and ``jaxmix.mix_labels``."""

from unittest import mock

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import cheap_beta
from core_helpers import examples
from core_helpers import registry_options
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix
from jaxmix._src.core import sampling
from jaxmix.losses import smooth_multi_hot
from jaxmix.losses import threshold_targets

Y = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], np.float32)


def test_uniform_is_timms_rule_and_mix_labels_smoothing():
  s, k = 0.3, 4
  out = smooth_multi_hot(Y, smoothing=s)
  # timm mixup_target / BinaryCrossEntropy: off = s/K, on = 1 - s + s/K.
  np.testing.assert_allclose(out, np.where(Y == 1, 1 - s + s / k, s / k), rtol=1e-6)
  # One-hot rows: jaxmix.one_hot; float rows: what mix_labels(label_smoothing=s) does before mixing.
  np.testing.assert_allclose(
    smooth_multi_hot(jax.nn.one_hot(jnp.array([2, 0]), k), smoothing=s),
    jaxmix.one_hot(jnp.array([2, 0]), k, label_smoothing=s),
    rtol=1e-6,
  )
  identity = jaxmix.Plan(lam=jnp.ones(3), index=jnp.arange(3), blend=jnp.ones(3))
  np.testing.assert_allclose(jaxmix.mix_labels(identity, Y, label_smoothing=s), out, rtol=1e-6)


def test_half_and_prior_by_hand():
  np.testing.assert_allclose(
    smooth_multi_hot(Y[:1], smoothing=0.2, toward="half"), [[0.9, 0.1, 0.1, 0.9]], rtol=1e-6
  )
  prior = np.array([0.5, 0.25, 0.0, 1.0], np.float32)
  np.testing.assert_allclose(
    smooth_multi_hot(Y[:1], smoothing=0.2, toward=prior), [[0.9, 0.05, 0.0, 1.0]], rtol=1e-6
  )
  # s = 0 is the identity; s = 1 is the target q itself.
  np.testing.assert_array_equal(smooth_multi_hot(Y, smoothing=0.0, toward="half"), Y)
  full = smooth_multi_hot(Y, smoothing=1.0, toward=prior)
  np.testing.assert_allclose(full, np.broadcast_to(prior, Y.shape))


def test_int_bool_and_list_inputs_give_float32():
  for y in (Y.astype(np.int32), Y.astype(bool), Y.tolist()):
    out = smooth_multi_hot(y, smoothing=0.1, toward="half")
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, Y * 0.9 + 0.05, rtol=1e-6)


@pytest.mark.parametrize("toward", ["uniform", "half", "prior"])
def test_jit_equals_eager_and_no_retrace_when_values_change(toward):
  prior = jnp.array([0.1, 0.2, 0.3, 0.4])
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(y, s, p):
    return smooth_multi_hot(y, smoothing=s, toward=p if toward == "prior" else toward)

  for s, p in ((0.1, prior), (0.25, prior * 2), (0.0, prior / 2)):
    eager = smooth_multi_hot(Y, smoothing=s, toward=p if toward == "prior" else toward)
    np.testing.assert_allclose(f(Y, s, p), eager, rtol=1e-6)


def test_threshold_is_strictly_greater_like_timm():
  mixed = np.array([[0.7, 0.3, 0.0], [0.2, 0.2, 0.6]], np.float32)
  np.testing.assert_array_equal(threshold_targets(mixed, threshold=0.2), [[1, 1, 0], [0, 0, 1]])
  # torch's target.gt(t): a target equal to t becomes 0.
  np.testing.assert_array_equal(threshold_targets(mixed, threshold=0.3), [[1, 0, 0], [0, 0, 1]])
  np.testing.assert_array_equal(threshold_targets(mixed, threshold=0.0), mixed > 0)
  np.testing.assert_array_equal(threshold_targets(mixed, threshold=1.0), np.zeros_like(mixed))
  assert threshold_targets(mixed, threshold=0.5).dtype == jnp.float32


def test_threshold_jit_equals_eager_and_no_retrace():
  mixed = jax.random.uniform(jax.random.key(0), (5, 7))
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(y, t):
    return threshold_targets(y, threshold=t)

  for t in (0.1, 0.5, 0.9):
    np.testing.assert_array_equal(f(mixed, t), threshold_targets(mixed, threshold=t))


def test_smoothing_then_mixing_then_threshold_is_timms_bce_target():
  # timm: mixup_target (smoothing before mixing) then BinaryCrossEntropy's target.gt(t).
  s, t, lam = 0.1, 0.2, 0.7
  plan = jaxmix.Plan(lam=jnp.full(3, lam), index=jnp.array([2, 1, 0]), blend=jnp.full(3, lam))
  mixed = jaxmix.mix_labels(plan, smooth_multi_hot(Y, smoothing=s))
  y_b = Y[::-1]
  on, off = 1 - s + s / 4, s / 4
  expected = lam * np.where(Y == 1, on, off) + (1 - lam) * np.where(y_b == 1, on, off)
  expected[1] = np.where(Y[1] == 1, on, off)  # the middle of an odd batch is its own partner
  np.testing.assert_allclose(mixed, expected, rtol=1e-6)
  np.testing.assert_array_equal(threshold_targets(mixed, threshold=t), expected > t)


@pytest.mark.parametrize(
  ("call", "match"),
  [
    (lambda: smooth_multi_hot(Y * 0.5, smoothing=0.1), "targets must be multi-hot"),
    (lambda: smooth_multi_hot(np.full((2, 3), 2), smoothing=0.1), "targets must be multi-hot"),
    (lambda: smooth_multi_hot(np.array([0, 3, 1]), smoothing=0.1), "targets must be"),
    (lambda: smooth_multi_hot(Y, smoothing=1.5), "smoothing"),
    (lambda: smooth_multi_hot(Y, smoothing=-0.1), "smoothing"),
    (lambda: smooth_multi_hot(Y, smoothing=0.1, toward="zero"), "toward"),
    (lambda: smooth_multi_hot(Y, smoothing=0.1, toward=np.ones(3)), r"toward.*\[K\] = \[4\]"),
    (lambda: smooth_multi_hot(Y, smoothing=0.1, toward=np.array([0, 0, 2, 0.5])), "toward"),
    (lambda: threshold_targets(Y, threshold=1.5), "threshold"),
    (lambda: threshold_targets(Y, threshold=-0.5), "threshold"),
    (lambda: threshold_targets(Y, threshold=float("nan")), "threshold"),
    (lambda: threshold_targets(np.ones(3), threshold=0.5), "targets"),
  ],
)
def test_bad_values_are_value_errors_naming_the_argument(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_bad_dtypes_are_type_errors():
  with pytest.raises(TypeError, match="targets"):
    smooth_multi_hot(Y.astype(np.complex64), smoothing=0.1)
  with pytest.raises(TypeError, match="targets"):
    threshold_targets("abc", threshold=0.5)


def test_traced_targets_are_taken_as_given():
  # Under jit the values cannot be read without a host sync: the documented rule is no check there.
  out = jax.jit(lambda y: smooth_multi_hot(y, smoothing=0.0))(Y * 0.5)
  np.testing.assert_allclose(out, Y * 0.5)


@settings(max_examples=examples(6), deadline=None, derandomize=True)
@given(b=st.integers(1, 4), k=st.integers(1, 5), s=st.floats(0, 1), seed=st.integers(0, 9))
def test_rows_stay_in_unit_interval_and_ordered(b, k, s, seed):
  y = np.random.default_rng(seed).integers(0, 2, (b, k)).astype(np.float32)
  for toward in ("uniform", "half"):
    out = np.asarray(smooth_multi_hot(y, smoothing=s, toward=toward))
    assert out.shape == (b, k) and np.all(out >= 0) and np.all(out <= 1 + 1e-6)
    # A present class never ends below an absent one.
    if (y == 1).any() and (y == 0).any():
      assert out[y == 1].min() >= out[y == 0].max() - 1e-6


# --- multi-hot rows through every one-call method and mix_labels ------------------------------------

ONE_CALL = [n for n, s in jaxmix.SAMPLERS.items() if s.mix is not None]
SHAPE = (6, 8, 9, 2)


@pytest.mark.parametrize("name", ONE_CALL)
def test_every_one_call_method_mixes_multi_hot_rows(name):
  # Mixing is linear in the labels: with the identity as labels (sample i is class i) each mixed row is
  # its sources' shares S, and the mixed multi-hot rows must be S @ Y, whatever the method.
  spec = jaxmix.SAMPLERS[name]
  b = SHAPE[0]
  y = np.random.default_rng(0).integers(0, 2, (b, 5)).astype(np.float32)
  x = jax.random.uniform(jax.random.key(1), SHAPE)
  opts = registry_options(name, b, SHAPE[1:3])
  labels = {"multi": y, "eye": np.eye(b, dtype=np.float32)}
  with mock.patch.object(sampling, "beta", cheap_beta):  # Beta(1, 1): λ's law is not under test here
    _, out = jax.jit(lambda key, x, labels: spec.mix(key, x, labels, **opts))(jax.random.key(2), x, labels)
  assert out["multi"].shape == (b, 5) and out["multi"].dtype == jnp.float32
  np.testing.assert_allclose(out["multi"], out["eye"] @ y, atol=1e-6)
  assert np.all(np.asarray(out["multi"]) >= 0) and np.all(np.asarray(out["multi"]) <= 1 + 1e-6)


def test_mix_labels_mixes_multi_hot_rows_by_hand():
  plan = jaxmix.Plan(lam=jnp.array([0.75, 1.0, 0.75]), index=jnp.array([2, 1, 0]), blend=jnp.ones(3))
  out = jaxmix.mix_labels(plan, Y)
  np.testing.assert_allclose(out, [[0.75, 0, 0, 0.75], [0, 1, 0, 0], [0.25, 0, 0, 0.25]])
