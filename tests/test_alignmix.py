"""AlignMix (jaxmix.guided): feature maps aligned by entropic optimal transport, then interpolated.

Checked against a NumPy float64 transcription of the official algorithm (shashankvkt/AlignMixup_CVPR22,
``utils/OT.py`` and ``mixup_aligned``): the squared-distance cost, the log-domain Sinkhorn updates, the
two directions ``λ·A + (1 − λ)·A'Rᵀ`` and ``λ·AR + (1 − λ)·A'``; the plan's marginals; alignment undoing
a permutation; no NaN on zero, identical or large features; λ and labels; the identity when off; one
compile for every draw, α and ε; jit, vmap, grad; a Flax train step; the errors.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from core_helpers import examples
from flax import linen as nn
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix

guided = jaxmix.guided
B, H, W, C, K = 4, 3, 3, 5, 3
LABELS = jnp.arange(B) % K


def _features(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape)


def _logsumexp(x, axis):
  top = x.max(axis=axis, keepdims=True)
  return (top + np.log(np.exp(x - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def reference_log_plan(a, b, epsilon, iterations):
  """The official log-domain Sinkhorn (``SinkhornDistance.forward``) in float64, without its early stop
  and its 1e-8 inside the log of the marginals."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  cost = ((a[..., :, None, :] - b[..., None, :, :]) ** 2).sum(-1)
  n, m = cost.shape[-2:]
  u, v = np.zeros(cost.shape[:-1]), np.zeros(cost.shape[:-2] + (m,))

  def modified(u, v):
    return (-cost + u[..., :, None] + v[..., None, :]) / epsilon

  for _ in range(iterations):
    u = epsilon * (np.log(1 / n) - _logsumexp(modified(u, v), -1)) + u
    v = epsilon * (np.log(1 / m) - _logsumexp(np.swapaxes(modified(u, v), -1, -2), -1)) + v
  return modified(u, v)


def reference_alignmix(h, mix):
  """``mixup_aligned`` on `h` `[B, H, W, C]` with the plan's partners, λ and direction (float64)."""
  h = np.asarray(h, np.float64)
  a = h.reshape(h.shape[0], -1, h.shape[-1])
  index = np.asarray(mix.plan.index)
  b = a[index]
  log_p = reference_log_plan(a, b, float(mix.epsilon), mix.iterations)
  p = np.exp(log_p)
  rows = p / p.sum(-1, keepdims=True)  # R = r·P with its rows made exact
  cols = p / p.sum(-2, keepdims=True)
  lam = np.asarray(mix.plan.blend, np.float64)[:, None, None]
  if bool(mix.align_partner):
    out = lam * a + (1 - lam) * rows @ b  # Ã = A'·Rᵀ
  else:
    out = lam * np.swapaxes(cols, -1, -2) @ a + (1 - lam) * b  # Ã' = A·R
  keep = (np.asarray(mix.plan.blend) == 1) | (index == np.arange(len(index)))
  out = np.where(keep[:, None, None], a, out)
  return out.reshape(h.shape)


def _mix(seed=0, **kw):
  return guided.sample_alignmix(jax.random.key(seed), B, **kw)


def _mix_at(layer, seed=0, **kw):
  """A plan whose chosen layer is `layer` and whose partners are not all the samples themselves."""
  for s in range(seed, seed + 100):
    mix = _mix(s, **kw)
    if int(mix.layer) == layer and not (np.asarray(mix.plan.index) == np.arange(B)).all():
      return mix
  raise AssertionError(f"no draw picked layer {layer}")


# --- the transport ---------------------------------------------------------------------------------------


@settings(max_examples=examples(6), deadline=None)
@given(
  n=st.integers(1, 6),
  m=st.integers(1, 6),
  c=st.integers(1, 4),
  lead=st.sampled_from([(), (2,)]),
  seed=st.integers(0, 2**16),
)
def test_plan_marginals_are_uniform(n, m, c, lead, seed):
  a = _features(seed, lead + (n, c))
  b = _features(seed + 1, lead + (m, c))
  # 3 000 iterations: at 300 some draws were still 0.2 % off (CI, seed 15190); over 300 random draws the
  # worst row-sum error at 3 000 was 9e-7.
  p = np.asarray(guided.transport_plan(a, b, epsilon=1.0, iterations=3000), np.float64)
  assert p.shape == lead + (n, m) and (p >= 0).all()
  np.testing.assert_allclose(p.sum(-2), np.full(lead + (m,), 1 / m), rtol=1e-5)  # the last update: exact
  np.testing.assert_allclose(p.sum(-1), np.full(lead + (n,), 1 / n), rtol=1e-3)  # near convergence


def test_plan_matches_the_official_updates():
  a, b = _features(0, (2, 9, 4)), _features(1, (2, 7, 4))
  for epsilon, iterations in [(0.1, 100), (1.0, 7)]:
    ours = guided.transport_plan(a, b, epsilon=epsilon, iterations=iterations)
    np.testing.assert_allclose(ours, np.exp(reference_log_plan(a, b, epsilon, iterations)), atol=1e-5)


def test_identical_maps_align_to_themselves():
  a = _features(2, (9, C), scale=2.0)
  p = guided.transport_plan(a, a, epsilon=0.1)
  np.testing.assert_allclose(p, np.eye(9) / 9, atol=1e-4)  # distinct rows: the identity matching
  np.testing.assert_allclose(guided.sinkhorn_align(a, a, epsilon=0.1), a, atol=1e-4)


@settings(max_examples=examples(8), deadline=None)
@given(perm=st.permutations(list(range(9))), seed=st.integers(0, 2**16))
def test_aligning_a_permuted_copy_recovers_it(perm, seed):
  a = _features(seed, (9, C), scale=2.0)
  moved = guided.sinkhorn_align(a, a[np.asarray(perm)], epsilon=0.01)
  np.testing.assert_allclose(moved, a, atol=1e-4)
  # Swapping the arguments moves A onto the permuted positions.
  permuted = a[np.asarray(perm)]
  np.testing.assert_allclose(guided.sinkhorn_align(permuted, a, epsilon=0.01), permuted, atol=1e-4)


@pytest.mark.parametrize("scale", [0.0, 1.0, 1e3])
def test_no_nan_for_zero_identical_or_large_features(scale):
  a = _features(3, (2, 9, C), scale=scale)
  for b in (a, _features(4, (2, 9, C), scale=scale)):
    p = guided.transport_plan(a, b, epsilon=0.1)
    moved = guided.sinkhorn_align(a, b, epsilon=0.1)
    grads = jax.grad(lambda a, b: guided.sinkhorn_align(a, b, epsilon=0.1).sum(), argnums=(0, 1))(a, b)
    assert np.isfinite(p).all() and np.isfinite(moved).all()
    assert all(np.isfinite(g).all() for g in grads)
  if scale == 0.0:
    np.testing.assert_allclose(guided.transport_plan(a, a), np.full((2, 9, 9), 1 / 81), atol=1e-7)


def test_transport_vmap_and_jit_agree_with_a_loop():
  a, b = _features(5, (3, 9, C)), _features(6, (3, 7, C))
  batched = guided.sinkhorn_align(a, b, epsilon=0.5)
  mapped = jax.vmap(lambda x, y: guided.sinkhorn_align(x, y, epsilon=0.5))(a, b)
  jitted = jax.jit(lambda x, y, e: guided.sinkhorn_align(x, y, epsilon=e))(a, b, 0.5)
  loop = np.stack([guided.sinkhorn_align(a[i], b[i], epsilon=0.5) for i in range(3)])
  for got in (batched, mapped, jitted):
    np.testing.assert_allclose(got, loop, atol=1e-5)


def test_transport_does_not_retrace_on_epsilon():
  a, b = _features(7, (9, C)), _features(8, (9, C))
  traces = {"n": 0}

  @jax.jit
  def f(a, b, epsilon):
    traces["n"] += 1
    return guided.transport_plan(a, b, epsilon=epsilon, iterations=20)

  for epsilon in (0.05, 0.1, 1.0):
    f(a, b, epsilon)
  assert traces["n"] == 1


def test_ott_jax_agrees_if_installed():
  pytest.importorskip("ott")  # optional; not a dependency
  from ott.geometry import pointcloud
  from ott.problems.linear import linear_problem
  from ott.solvers.linear import sinkhorn

  a, b = _features(9, (9, C)), _features(10, (7, C))
  geom = pointcloud.PointCloud(a, b, epsilon=0.5)
  out = sinkhorn.Sinkhorn(threshold=1e-9, max_iterations=2000)(linear_problem.LinearProblem(geom))
  np.testing.assert_allclose(guided.transport_plan(a, b, epsilon=0.5, iterations=2000), out.matrix, atol=1e-5)


# --- the plan and the mix inside the model ---------------------------------------------------------------


def test_lambda_in_unit_interval_and_labels_follow_partners():
  for seed, alpha in enumerate([0.2, 1.0, 2.0, 8.0]):
    mix = _mix(seed, alpha=alpha, mode="elem", pairing="permute")
    lam = np.asarray(mix.lam)
    assert ((lam >= 0) & (lam <= 1)).all()
    y = jaxmix.mix_labels(mix, LABELS, num_classes=K)
    onehot = np.eye(K)[np.asarray(LABELS)]
    expected = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[np.asarray(mix.plan.index)]
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_defaults_are_the_official_recipe():
  mix = _mix()
  assert mix.layers == (0, 1) and mix.iterations == 100
  np.testing.assert_allclose(mix.epsilon, 0.1)
  layers = [int(_mix(s).layer) for s in range(40)]
  directions = [bool(_mix(s).align_partner) for s in range(40)]
  assert set(layers) == {0, 1} and set(directions) == {True, False}


@pytest.mark.parametrize("align", ["partner", "sample"])
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_aligned_point_matches_the_reference(align, mode):
  h = _features(11, (B, H, W, C), scale=2.0)
  mix = _mix_at(1, alpha=2.0, epsilon=0.5, iterations=50, align=align, mode=mode, pairing="permute")
  out = guided.alignmix_point(h, mix, 1)
  np.testing.assert_allclose(out, reference_alignmix(h, mix), atol=1e-4)
  assert out.shape == h.shape and out.dtype == h.dtype
  assert not np.allclose(out, h)


def test_input_point_is_plain_mixup():
  x = _features(12, (B, 8, 8, 3))
  mix = _mix_at(0)
  np.testing.assert_array_equal(guided.alignmix_point(x, mix, 0), jaxmix.apply(mix.plan, x))
  np.testing.assert_array_equal(jaxmix.apply(mix.plan, x), mix.at(0, x))


@pytest.mark.parametrize("align", ["partner", "sample"])
def test_identity_when_switched_off(align):
  h = _features(13, (B, H, W, C))
  off = _mix_at(1, prob=0.0, align=align)
  np.testing.assert_array_equal(guided.alignmix_point(h, off, 1), h)
  np.testing.assert_array_equal(guided.alignmix_point(h, off, 0), h)
  not_chosen = _mix_at(0, align=align)
  np.testing.assert_array_equal(guided.alignmix_point(h, not_chosen, 1), h)
  chosen = _mix_at(1, align=align)
  np.testing.assert_array_equal(guided.alignmix_point(h, chosen, 0), h)
  np.testing.assert_array_equal(guided.alignmix_point(h, None, 1), h)


def test_self_pair_of_an_odd_batch_is_unchanged():
  h = _features(14, (5, H, W, C))
  mix = guided.sample_alignmix(jax.random.key(0), 5, layers=(1,), align="sample")  # flip: 2 pairs with 2
  out = guided.alignmix_point(h, mix, 1)
  np.testing.assert_array_equal(out[2], h[2])


def test_nchw_and_tokens_agree_with_nhwc():
  h = _features(15, (B, H, W, C))
  mix = _mix_at(1, epsilon=0.5)
  nhwc = guided.alignmix_point(h, mix, 1)
  nchw = guided.alignmix_point(jnp.moveaxis(h, -1, 1), mix, 1, data_format="NCHW")
  tokens = guided.alignmix_point(h.reshape(B, H * W, C), mix, 1)
  np.testing.assert_allclose(jnp.moveaxis(nchw, 1, -1), nhwc, atol=1e-6)
  np.testing.assert_allclose(tokens.reshape(h.shape), nhwc, atol=1e-6)


def test_bfloat16_stays_bfloat16():
  h = _features(16, (B, H, W, C)).astype(jnp.bfloat16)
  out = guided.alignmix_point(h, _mix_at(1), 1)
  assert out.dtype == jnp.bfloat16 and np.isfinite(np.asarray(out, np.float32)).all()


def test_jit_equals_eager_and_compiles_once():
  h = _features(17, (B, H, W, C))
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(key, alpha, prob, epsilon, h):
    mix = guided.sample_alignmix(key, B, alpha=alpha, prob=prob, epsilon=epsilon, iterations=30)
    return mix, guided.alignmix_point(guided.alignmix_point(h, mix, 0), mix, 1)

  for seed, (alpha, prob, epsilon) in enumerate([(2.0, 1.0, 0.1), (0.5, 0.5, 0.3), (1.0, 1.0, 1.0)] * 2):
    mix, out = run(jax.random.key(seed), alpha, prob, epsilon, h)
    eager_mix = guided.sample_alignmix(
      jax.random.key(seed), B, alpha=alpha, prob=prob, epsilon=epsilon, iterations=30
    )
    eager = guided.alignmix_point(guided.alignmix_point(h, eager_mix, 0), eager_mix, 1)
    np.testing.assert_allclose(out, eager, atol=1e-5)
    np.testing.assert_array_equal(mix.layer, eager_mix.layer)


def test_vmap_over_keys_agrees_with_a_loop():
  h = _features(18, (B, H, W, C))
  keys = jax.random.split(jax.random.key(19), 3)

  def one(key):
    mix = guided.sample_alignmix(key, B, layers=(1, 2), epsilon=0.5, iterations=30)
    return guided.alignmix_point(guided.alignmix_point(h, mix, 1), mix, 2)

  mapped = jax.jit(jax.vmap(one))(keys)
  loop = jax.jit(one)
  np.testing.assert_allclose(mapped, np.stack([loop(k) for k in keys]), atol=1e-5)


def test_gradient_flows_to_the_features_not_through_the_plan():
  h = _features(20, (B, H, W, C))
  mix = _mix_at(1, epsilon=0.5, iterations=30, align="partner")
  grad = jax.grad(lambda h: guided.alignmix_point(h, mix, 1).sum())(h)
  assert np.isfinite(grad).all()
  # With the plan held fixed the mix is linear in h, so its gradient is that of the linear map.
  log_p = jax.lax.stop_gradient(jnp.log(guided.transport_plan(
    h.reshape(B, -1, C), h.reshape(B, -1, C)[mix.plan.index], epsilon=0.5, iterations=30)))
  rows = jax.nn.softmax(log_p, -1)

  def linear(h):
    a = h.reshape(B, -1, C)
    lam = mix.plan.blend[:, None, None]
    return (lam * a + (1 - lam) * rows @ a[mix.plan.index]).sum()

  np.testing.assert_allclose(grad, jax.grad(linear)(h), atol=1e-4)


class TinyNet(nn.Module):
  @nn.compact
  def __call__(self, x, mix=None):
    x = guided.alignmix_point(x, mix, 0)
    h = nn.relu(nn.Conv(8, (3, 3), strides=2)(x))  # [B, 4, 4, 8]: the last feature map
    h = guided.alignmix_point(h, mix, 1)
    return nn.Dense(K)(h.mean((1, 2)))


def test_flax_linen_trains_one_step_under_jit():
  model = TinyNet()
  x = _features(21, (B, 8, 8, 3))
  params = model.init(jax.random.key(0), x)
  opt = optax.sgd(0.1)
  state = opt.init(params)

  @jax.jit
  def step(params, state, key):
    mix = guided.sample_alignmix(key, B)

    def loss_fn(params):
      logits = model.apply(params, x, mix)
      return optax.softmax_cross_entropy(logits, jaxmix.mix_labels(mix, LABELS, num_classes=K)).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss, mix.layer

  layers = set()
  for seed in range(4):
    new_params, state, loss, layer = step(params, state, jax.random.key(seed))
    layers.add(int(layer))
    assert np.isfinite(loss)
    changed = jax.tree_util.tree_map(lambda a, b: not np.allclose(a, b), params, new_params)
    assert any(jax.tree_util.tree_leaves(changed))
    params = new_params
  assert model.apply(params, x).shape == (B, K)  # evaluation: no mix


# --- errors ----------------------------------------------------------------------------------------------

SAMPLE = lambda **kw: guided.sample_alignmix(jax.random.key(0), B, **kw)  # noqa: E731
A9 = jnp.ones((9, C))
H3 = jnp.ones((B, 3, C))
KEY = jax.random.key(0)


@pytest.mark.parametrize(
  "call, error, name",
  [
    (lambda: SAMPLE(epsilon=0.0), ValueError, "epsilon"),
    (lambda: SAMPLE(epsilon=-1.0), ValueError, "epsilon"),
    (lambda: SAMPLE(epsilon=jnp.ones(2)), ValueError, "epsilon"),
    (lambda: SAMPLE(iterations=0), ValueError, "iterations"),
    (lambda: SAMPLE(iterations=2.5), TypeError, "iterations"),
    (lambda: SAMPLE(align="both"), ValueError, "align"),
    (lambda: SAMPLE(layers=0), ValueError, "layers"),
    (lambda: SAMPLE(alpha=-1.0), ValueError, "alpha"),
    (lambda: SAMPLE(prob=2.0), ValueError, "prob"),
    (lambda: guided.sample_alignmix(jax.random.key(0), -1), ValueError, "batch_size"),
    (lambda: guided.transport_plan(jnp.ones(9), A9), ValueError, "features_a"),
    (lambda: guided.transport_plan(A9, jnp.ones((9, C + 1))), ValueError, "features_b"),
    (lambda: guided.transport_plan(A9, jnp.ones((0, C))), ValueError, "features_b"),
    (lambda: guided.transport_plan(A9, A9 > 0), TypeError, "features_b"),
    (lambda: guided.sinkhorn_align(jnp.ones((2, 9, C)), A9), ValueError, "features_a"),
    (lambda: guided.sinkhorn_align(A9, A9, epsilon=0), ValueError, "epsilon"),
    (lambda: guided.alignmix_point(jnp.ones((B, 3, 3, C)), _mix(), 2), ValueError, "i=2"),
    (lambda: guided.alignmix_point(jnp.ones((B, 3, 3, C)), _mix(), True), TypeError, "i must"),
    (lambda: guided.alignmix_point(jnp.ones((B + 1, 3, 3, C)), _mix(), 1), ValueError, "h must"),
    (lambda: guided.alignmix_point(jnp.ones((B, C)), _mix(), 1), ValueError, "h must"),
    (lambda: guided.alignmix_point(jnp.ones((B, 3, 3, C), jnp.int32), _mix(), 1), TypeError, "h must"),
    (lambda: guided.alignmix_point((jnp.ones((B, 3, C)),), _mix(), 1), TypeError, "h must"),
    (lambda: guided.alignmix_point(H3, jaxmix.sample_manifold(KEY, B), 1), TypeError, "AlignMixPlan"),
    (lambda: guided.alignmix_point(H3, _mix(), 1, data_format="NWHC"), ValueError, "data_format"),
  ],
)
def test_bad_input_raises_naming_the_argument(call, error, name):
  with pytest.raises(error, match=name):
    call()


def test_apply_on_the_plan_itself_is_a_type_error():
  with pytest.raises(TypeError, match="AlignMixPlan"):
    jaxmix.apply(_mix(), jnp.ones((B, 3, 3, C)))


def test_integer_features_align_to_floats():
  a = jnp.arange(12).reshape(4, 3)
  moved = guided.sinkhorn_align(a, a[::-1], epsilon=0.01)
  assert moved.dtype == jnp.float32
  np.testing.assert_allclose(moved, a, atol=1e-4)


def test_row_normalised_plan_is_the_official_assignment_at_convergence():
  """The official ``R = r·P``: equal to the row-normalised plan once the rows have converged."""
  a, b = _features(22, (16, C)), _features(23, (16, C))
  p = np.exp(reference_log_plan(a, b, 1.0, 500))
  official = 16 * p @ np.asarray(b, np.float64)
  np.testing.assert_allclose(guided.sinkhorn_align(a, b, epsilon=1.0, iterations=500), official, atol=1e-4)
