"""Loss mixing from sparse labels (``jaxmix.losses.mixed_loss`` / ``label_pair``).

It must equal softmax cross-entropy on the dense mixed soft targets (``mix_labels``,
``sequence.mix_token_labels``, ``segmentation.mix_label_maps``) for class ids, per-token labels and
per-pixel maps, build no ``[B, T, V]`` / ``[B, H, W, K]`` array of its own, and differ from dense
targets exactly where the loss is not linear in its target (timm's thresholded BCE).
"""

from unittest import mock

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from core_helpers import cheap_beta
from core_helpers import examples
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix
from jaxmix._src.core import sampling
from jaxmix.losses import label_pair
from jaxmix.losses import mixed_loss
from jaxmix.losses import threshold_targets

CE = optax.softmax_cross_entropy_with_integer_labels
BCE = optax.sigmoid_binary_cross_entropy


@pytest.fixture(autouse=True)
def _cheap_beta():
  """Beta(1, 1) for λ (compiles in a fraction of the time): λ's law is not under test here."""
  with mock.patch.object(sampling, "beta", cheap_beta):
    yield


def dense_ce(logits, targets):
  return -(targets * jax.nn.log_softmax(logits)).sum(-1)


def logits_of(shape, seed=0):
  return jax.random.normal(jax.random.key(seed), shape) * 2.0


def hot(y, k, valid=None):
  out = jax.nn.one_hot(y, k)
  return out if valid is None else out * valid[..., None]


# --- class ids [B] -------------------------------------------------------------------------------------


def test_hand_computed_case():
  # p = (1/4, 3/4) and (3/4, 1/4); labels 0 and 1 flipped with λ = 0.6: every sample's own class has
  # loss ln 4 and its partner's ln(4/3).
  logits = jnp.log(jnp.array([[1.0, 3.0], [3.0, 1.0]]))
  plan = jaxmix.Plan(lam=jnp.full(2, 0.6), index=jnp.array([1, 0]), blend=jnp.full(2, 0.6))
  expected = 0.6 * np.log(4) + 0.4 * np.log(4 / 3)
  np.testing.assert_allclose(mixed_loss(CE, logits, plan, jnp.array([0, 1])), expected, rtol=1e-6)
  y_a, y_b, w = label_pair(plan, jnp.array([0, 1]))
  np.testing.assert_array_equal(y_b, [1, 0])
  np.testing.assert_allclose(w, [0.6, 0.6])


@pytest.mark.parametrize(
  ("make", "b"),
  [
    (lambda k, b: jaxmix.sample_mixup(k, b, mode="elem"), 6),
    (lambda k, b: jaxmix.sample_cutmix(k, b, (8, 9), mode="elem", pairing="permute"), 6),
    (lambda k, b: jaxmix.sample_fmix(k, b, (8, 9), mode="elem"), 5),
    (lambda k, b: jaxmix.sample_resizemix(k, b, (8, 9)), 6),
  ],
)
def test_class_ids_equal_dense_soft_targets(make, b):
  k = 7
  labels = jnp.arange(b) % k

  @jax.jit  # one program: cheaper to compile than op by op (jit == eager is tested below)
  def both(key, logits):
    plan = make(key, b)
    dense = lambda lg: dense_ce(lg, jaxmix.mix_labels(plan, labels, num_classes=k)).mean()
    mixed = lambda lg: mixed_loss(CE, lg, plan, labels)
    # The gradients agree too: a train step may use either form.
    return mixed(logits), dense(logits), jax.grad(mixed)(logits), jax.grad(dense)(logits)

  got, dense, g, g_dense = both(jax.random.key(3), logits_of((b, k)))
  np.testing.assert_allclose(got, dense, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(g, g_dense, atol=1e-6)


def test_jit_equals_eager_and_no_retrace_when_the_plan_changes():
  b, k = 6, 5
  labels, logits = jnp.arange(b) % k, logits_of((b, k))
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(logits, plan, labels):
    return mixed_loss(CE, logits, plan, labels)

  for seed in range(3):
    plan = jaxmix.sample_mixup(jax.random.key(seed), b, mode="elem")
    np.testing.assert_allclose(f(logits, plan, labels), mixed_loss(CE, logits, plan, labels), rtol=1e-6)


def test_reductions():
  b, h, w, k = 3, 4, 5, 6

  @jax.jit
  def all_of_them(key):
    plan = jaxmix.sample_cutmix(key, b, (h, w), mode="elem")
    maps = jax.random.randint(jax.random.key(1), (b, h, w), 0, k).at[:, 0].set(255)
    logits = logits_of((b, h, w, k))
    loss = lambda y, **kw: mixed_loss(CE, logits, plan, y, ignore_index=255, **kw)
    _, y_b, wt = label_pair(plan, maps)
    mass = (wt * (maps != 255) + (1 - wt) * (y_b != 255)).sum()
    nothing = loss(jnp.full((b, h, w), 255))
    return loss(maps, reduction="none"), loss(maps, reduction="sum"), loss(maps), mass, nothing

  none, total, mean, mass, nothing = all_of_them(jax.random.key(0))
  assert none.shape == (b, h, w) and none.dtype == jnp.float32
  np.testing.assert_allclose(total, none.sum(), rtol=1e-6)
  np.testing.assert_allclose(mean, total / mass, rtol=1e-6)
  assert float(nothing) == 0.0  # nothing labelled: a mean over nothing is 0, not NaN


# --- per-token labels [B, T] ---------------------------------------------------------------------------


def test_tokens_with_a_sequence_plan_equal_mix_token_labels():
  b, t, v = 4, 6, 11
  mask = jnp.arange(t)[None] < jnp.array([6, 3, 5, 2])[:, None]
  plan = jaxmix.sequence.sample_mixup(jax.random.key(2), mask, alpha=1.0, mode="elem")
  labels = jnp.where(mask, jax.random.randint(jax.random.key(3), (b, t), 0, v), 0)
  logits = logits_of((b, t, v))
  targets = jaxmix.sequence.mix_token_labels(plan, labels, num_classes=v)
  dense = (dense_ce(logits, targets) * plan.mask).sum() / plan.mask.sum()
  got = mixed_loss(CE, logits, plan, labels, where=plan.mask)
  np.testing.assert_allclose(got, dense, rtol=1e-6)
  np.testing.assert_allclose(
    jax.jit(lambda p: mixed_loss(CE, logits, p, labels, where=p.mask))(plan), got, rtol=1e-6
  )


def test_tokens_with_ignore_index_by_hand():
  b, t, v = 4, 5, 9
  mask = jnp.arange(t)[None] < jnp.array([5, 2, 4, 3])[:, None]
  plan = jaxmix.sequence.sample_mixup(jax.random.key(4), mask, alpha=1.0, mode="elem")
  ids = jax.random.randint(jax.random.key(5), (b, t), 0, v)
  labels = jnp.where(mask, ids, -100)  # Hugging Face's padding label
  logits = logits_of((b, t, v))
  w, va = plan.token_weight, labels != -100
  y_b, vb = labels[::-1], va[::-1]  # flip pairing
  targets = w[..., None] * hot(labels, v, va) + (1 - w[..., None]) * hot(y_b, v, vb)
  dense = dense_ce(logits, targets).sum() / targets.sum()
  np.testing.assert_allclose(mixed_loss(CE, logits, plan, labels, ignore_index=-100), dense, rtol=1e-6)


def test_tokens_under_a_whole_sample_blend():
  b, t, v = 4, 3, 6
  plan = jaxmix.sample_mixup(jax.random.key(6), b, mode="elem")
  labels = jax.random.randint(jax.random.key(7), (b, t), 0, v)
  logits = logits_of((b, t, v))
  lam = plan.lam[:, None, None]
  targets = lam * hot(labels, v) + (1 - lam) * hot(labels[::-1], v)
  np.testing.assert_allclose(
    mixed_loss(CE, logits, plan, labels), dense_ce(logits, targets).mean(), rtol=1e-6
  )


# --- per-pixel maps [B, H, W] --------------------------------------------------------------------------


@pytest.mark.parametrize(
  "make",
  [
    lambda k, b, hw: jaxmix.sample_cutmix(k, b, hw, mode="elem"),
    lambda k, b, hw: jaxmix.sample_mixup(k, b, mode="elem"),
    lambda k, b, hw: jaxmix.sample_smoothmix(k, b, hw, mode="elem"),
  ],
  ids=["cutmix", "mixup", "smoothmix"],
)
def test_pixel_maps_equal_mix_label_maps(make):
  b, h, w, k = 4, 6, 7, 5
  plan = make(jax.random.key(8), b, (h, w))
  maps = jax.random.randint(jax.random.key(9), (b, h, w), 0, k).at[:, :, :2].set(255)
  logits = logits_of((b, h, w, k))
  targets = jaxmix.segmentation.mix_label_maps(plan, maps, num_classes=k, soft=True, ignore_index=255)
  dense = dense_ce(logits, targets).sum() / targets.sum()  # each pixel weighted by its labelled mass
  got = mixed_loss(CE, logits, plan, maps, ignore_index=255, num_classes=k)
  np.testing.assert_allclose(got, dense, rtol=1e-6)
  np.testing.assert_allclose(
    jax.jit(lambda p: mixed_loss(CE, logits, p, maps, ignore_index=255))(plan), got, rtol=1e-6
  )


@settings(max_examples=examples(3), deadline=None, derandomize=True)
@given(b=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5), k=st.integers(2, 4))
def test_pixel_maps_any_shape(b, h, w, k):
  @jax.jit  # one program per shape: cheaper to compile than op by op
  def both(key):
    plan = jaxmix.sample_cutmix(key, b, (h, w), mode="elem")
    maps = jax.random.randint(jax.random.fold_in(key, 1), (b, h, w), 0, k)
    logits = jax.random.normal(jax.random.fold_in(key, 2), (b, h, w, k))
    targets = jaxmix.segmentation.mix_label_maps(plan, maps, num_classes=k, soft=True)
    return mixed_loss(CE, logits, plan, maps), dense_ce(logits, targets).mean()

  got, dense = both(jax.random.key(b + h + w + k))
  np.testing.assert_allclose(got, dense, rtol=1e-6, atol=1e-6)


# --- nothing of the size of a dense target is built ----------------------------------------------------


def _shapes_outside(jaxpr, skip_name):
  """Every output shape of every equation, recursing into sub-jaxprs except calls named `skip_name`."""
  shapes = []
  for eqn in jaxpr.eqns:
    if eqn.params.get("name") == skip_name:
      shapes += [tuple(v.aval.shape) for v in eqn.outvars]
      continue
    shapes += [tuple(v.aval.shape) for v in eqn.outvars if hasattr(v.aval, "shape")]
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          shapes += _shapes_outside(inner, skip_name)
  return shapes


@pytest.mark.parametrize("case", ["tokens", "pixels"])
def test_no_dense_target_in_the_jaxpr(case):
  # loss_fn is jitted so its own internals (log-softmax over V) stay inside one call: everything else in
  # the program is mixed_loss's, and none of it may have the shape of the logits (a dense target).
  ce = jax.jit(CE)
  if case == "tokens":
    b, t, v = 3, 5, 11
    plan = jaxmix.sequence.sample_mixup(jax.random.key(0), jnp.ones((b, t), bool), mode="elem")
    labels, big = jnp.zeros((b, t), jnp.int32), (b, t, v)
    dense = lambda p, y: jaxmix.sequence.mix_token_labels(p, y, num_classes=v)
  else:
    b, h, w, k = 2, 5, 6, 7
    plan = jaxmix.sample_cutmix(jax.random.key(0), b, (h, w), mode="elem")
    labels, big = jnp.zeros((b, h, w), jnp.int32), (b, h, w, k)
    dense = lambda p, y: jaxmix.segmentation.mix_label_maps(p, y, num_classes=k, soft=True, ignore_index=255)
  logits = jnp.zeros(big)
  jaxpr = jax.make_jaxpr(lambda lg, p, y: mixed_loss(ce, lg, p, y, ignore_index=255))(logits, plan, labels)
  shapes = _shapes_outside(jaxpr.jaxpr, "softmax_cross_entropy_with_integer_labels")
  assert shapes and big not in shapes, shapes
  # The check sees a dense target where one is built.
  assert big in _shapes_outside(jax.make_jaxpr(dense)(plan, labels).jaxpr, None)


# --- BCE: equal to dense targets while linear in the target, different with timm's threshold ------------


def test_bce_equals_dense_targets_but_thresholded_bce_does_not():
  b, k = 6, 5
  y = jnp.asarray(np.random.default_rng(0).integers(0, 2, (b, k)), jnp.float32)
  plan = jaxmix.sample_mixup(jax.random.key(11), b, mode="elem")
  logits = logits_of((b, k))
  mixed = jaxmix.mix_labels(plan, y)
  # BCE is linear in its target, so mixing the losses is mixing the targets.
  np.testing.assert_allclose(mixed_loss(BCE, logits, plan, y), BCE(logits, mixed).mean(), rtol=1e-6)
  # timm's BinaryCrossEntropy(target_threshold=0.2): the threshold of the mixed target is not the mix of
  # the thresholded sources (a class at weight 0.3 counts fully in the dense target, 0.3 in the mix).
  t = 0.2
  thresholded = lambda lg, target: BCE(lg, threshold_targets(target, threshold=t))
  loss_mixed = mixed_loss(thresholded, logits, plan, y)
  dense = BCE(logits, threshold_targets(mixed, threshold=t)).mean()
  assert abs(float(loss_mixed) - float(dense)) > 1e-3, (loss_mixed, dense)


# --- errors ---------------------------------------------------------------------------------------------


def _plan(b=4):
  return jaxmix.sample_mixup(jax.random.key(0), b)


LOGITS = jnp.zeros((4, 5))


@pytest.mark.parametrize(
  ("call", "error", "match"),
  [
    (
      lambda: mixed_loss(CE, LOGITS, _plan(), jnp.arange(4), ignore_index=3, num_classes=5),
      ValueError,
      "ignore_index=3",
    ),
    (lambda: mixed_loss(CE, LOGITS, _plan(), jnp.arange(4), ignore_index=1.5), TypeError, "ignore_index"),
    (
      lambda: mixed_loss(BCE, LOGITS, _plan(), jnp.zeros((4, 5)), ignore_index=-1),
      ValueError,
      "ignore_index",
    ),
    (lambda: mixed_loss(CE, LOGITS, _plan(), jnp.arange(4), reduction="avg"), ValueError, "reduction"),
    (lambda: mixed_loss("ce", LOGITS, _plan(), jnp.arange(4)), TypeError, "loss_fn"),
    (lambda: mixed_loss(lambda lg, y: jnp.sum(lg), LOGITS, _plan(), jnp.arange(4)), ValueError, "loss_fn"),
    (lambda: mixed_loss(CE, LOGITS, _plan(), jnp.arange(3)), ValueError, "batch size"),
    (lambda: mixed_loss(CE, LOGITS, _plan(), jnp.zeros((4, 2, 2, 2), jnp.int32)), ValueError, "labels"),
    (lambda: mixed_loss(CE, LOGITS, _plan(), jnp.zeros(4, bool)), TypeError, "labels"),
    (lambda: mixed_loss(CE, LOGITS, _plan(), np.array([0, 1, 7, 2]), num_classes=5), ValueError, "labels"),
    (lambda: mixed_loss(CE, LOGITS, _plan(), jnp.arange(4), where=jnp.ones(3, bool)), ValueError, "where"),
    (lambda: mixed_loss(CE, LOGITS, {"lam": 1}, jnp.arange(4)), TypeError, "plan"),
    (
      lambda: label_pair(jaxmix.sample_multimix(jax.random.key(0), 4), jnp.arange(4)),
      TypeError,
      "two-source",
    ),
    (
      lambda: label_pair(jaxmix.sample_cutmix(jax.random.key(0), 4, (3, 3)), jnp.zeros((4, 6), jnp.int32)),
      ValueError,
      "per-token",
    ),
    (
      lambda: label_pair(jaxmix.sample_cutmix(jax.random.key(0), 4, (3, 3)), jnp.zeros((4, 2, 3), jnp.int32)),
      ValueError,
      "spatial shape",
    ),
    (
      lambda: label_pair(
        jaxmix.sequence.sample_mixup(jax.random.key(0), jnp.ones((4, 3))), jnp.zeros((4, 5), jnp.int32)
      ),
      ValueError,
      "T = 3",
    ),
  ],
)
def test_bad_input_names_the_argument(call, error, match):
  with pytest.raises(error, match=match):
    call()


def test_manifold_plan_points_to_its_inner_plan():
  mix = jaxmix.sample_manifold(jax.random.key(0), 4, layers=2)
  with pytest.raises(TypeError, match=r"mix\.plan"):
    mixed_loss(CE, LOGITS, mix, jnp.arange(4))
  expected = dense_ce(LOGITS, jaxmix.mix_labels(mix, jnp.arange(4), num_classes=5)).mean()
  np.testing.assert_allclose(mixed_loss(CE, LOGITS, mix.plan, jnp.arange(4)), expected, rtol=1e-6)
