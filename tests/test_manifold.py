"""Manifold Mixup: the layer is traced, mixing happens at exactly the chosen layer, labels share λ."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import jaxmix

B, H, W, C = 6, 8, 8, 3
NUM_CLASSES = 5


class SowNet(nn.Module):
  """Three eligible points; sows the state leaving each point."""

  @nn.compact
  def __call__(self, x, mix=None):
    x = jaxmix.manifold_point(x, mix, 0)
    self.sow("intermediates", "h0", x)
    x = nn.tanh(nn.Conv(4, (3, 3))(x))
    x = jaxmix.manifold_point(x, mix, 1)
    self.sow("intermediates", "h1", x)
    x = nn.tanh(nn.Conv(4, (3, 3), strides=2)(x))
    x = jaxmix.manifold_point(x, mix, 2)
    self.sow("intermediates", "h2", x)
    return nn.Dense(NUM_CLASSES)(x.mean((1, 2)))


class NNXNet(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(C, 4, (3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(4, 4, (3, 3), strides=2, rngs=rngs)
    self.head = nnx.Linear(4, NUM_CLASSES, rngs=rngs)

  def __call__(self, x, mix=None):
    """Returns the logits and the state leaving each point (no sow: its NNX API differs across versions)."""
    h0 = jaxmix.manifold_point(x, mix, 0)
    h1 = jaxmix.manifold_point(nnx.tanh(self.conv1(h0)), mix, 1)
    h2 = jaxmix.manifold_point(nnx.tanh(self.conv2(h1)), mix, 2)
    return self.head(h2.mean((1, 2))), [h0, h1, h2]


def _images(seed=0):
  return jax.random.normal(jax.random.key(seed), (B, H, W, C))


def _check_mixed_only_at_layer(clean, mixed, mix):
  """States before the chosen layer equal the clean run; at it, they equal apply(plan, clean)."""
  layer = int(mix.layer)
  for i in range(layer):
    # Two compiled programs: equal up to float rounding (a mix would differ by O(1)).
    np.testing.assert_allclose(mixed[i], clean[i], rtol=1e-6, atol=1e-6)
  expected = jaxmix.apply(mix.plan, clean[layer])
  np.testing.assert_allclose(mixed[layer], expected, rtol=1e-5, atol=1e-5)
  assert not np.allclose(mixed[layer], clean[layer])


def test_linen_mixes_at_every_eligible_layer_without_retracing():
  model = SowNet()
  x = _images()
  params = model.init(jax.random.key(1), x)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(params, key, x):
    mix = jaxmix.sample_manifold(key, B, layers=3, alpha=2.0)
    _, state = model.apply(params, x, mix, mutable=["intermediates"])
    return mix, [state["intermediates"][f"h{i}"][0] for i in range(3)]

  _, clean_state = model.apply(params, x, None, mutable=["intermediates"])
  clean = [clean_state["intermediates"][f"h{i}"][0] for i in range(3)]
  seen = set()
  for seed in range(30):
    mix, hidden = run(params, jax.random.key(seed), x)
    _check_mixed_only_at_layer(clean, hidden, mix)
    seen.add(int(mix.layer))
  assert seen == {0, 1, 2}
  chex.clear_trace_counter()


def test_nnx_mixes_at_every_eligible_layer_without_retracing():
  model = NNXNet(nnx.Rngs(0))
  x = _images()
  traces = []

  @nnx.jit
  def run(model, key, x):
    traces.append(1)
    mix = jaxmix.sample_manifold(key, B, layers=3, alpha=2.0)
    return mix, model(x, mix)[1]

  clean = model(x)[1]
  seen = set()
  for seed in range(30):
    mix, hidden = run(model, jax.random.key(seed), x)
    _check_mixed_only_at_layer(clean, hidden, mix)
    seen.add(int(mix.layer))
  assert seen == {0, 1, 2}
  assert len(traces) == 1


def test_labels_and_hidden_state_share_lambda_and_partners():
  x = _images()
  labels = jnp.arange(B) % NUM_CLASSES
  for seed in range(5):
    mix = jaxmix.sample_manifold(jax.random.key(seed), B, layers=(0,), alpha=1.0)
    lam = mix.lam
    out = jaxmix.manifold_point(x, mix, 0)
    np.testing.assert_allclose(
      out, lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[::-1], atol=1e-6
    )
    targets = jaxmix.mix_labels(mix, labels, num_classes=NUM_CLASSES)
    onehot = jax.nn.one_hot(labels, NUM_CLASSES)
    np.testing.assert_allclose(targets, lam[:, None] * onehot + (1 - lam[:, None]) * onehot[::-1], atol=1e-6)
    np.testing.assert_allclose(targets.sum(-1), 1.0, atol=1e-6)


def test_elem_mode_and_custom_layers():
  seen = set()
  for seed in range(40):
    mix = jaxmix.sample_manifold(jax.random.key(seed), B, layers=(0, 3, 7), mode="elem", pairing="permute")
    seen.add(int(mix.layer))
    assert mix.layers == (0, 3, 7)
    assert mix.lam.shape == (B,)
  assert seen == {0, 3, 7}


def test_traced_alpha_and_prob_do_not_retrace_and_take_effect():
  x = _images()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(key, alpha, prob):
    mix = jaxmix.sample_manifold(key, B, layers=1, alpha=alpha, prob=prob)
    return jaxmix.manifold_point(x, mix, 0), mix.lam

  key = jax.random.key(3)
  out, lam = run(key, 0.0, 1.0)  # alpha 0: no mixing
  np.testing.assert_array_equal(out, x)
  np.testing.assert_array_equal(lam, 1.0)
  out, lam = run(key, 2.0, 0.0)  # prob 0: no mixing
  np.testing.assert_array_equal(lam, 1.0)
  out, lam = run(key, 2.0, 1.0)
  assert np.all(lam < 1.0)
  assert not np.allclose(out, x)
  chex.clear_trace_counter()


def test_none_plan_is_identity_and_pytrees_mix_together():
  x = _images()
  assert jaxmix.manifold_point(x, None, 0) is x
  mix = jaxmix.sample_manifold(jax.random.key(0), B, layers=2)
  tree = {"a": x, "b": x[..., 0]}
  out = jaxmix.manifold_point(tree, mix, int(mix.layer))
  np.testing.assert_allclose(out["a"][..., 0], out["b"], atol=1e-6)
  other = 1 - int(mix.layer)
  untouched = mix.at(other, tree)
  np.testing.assert_array_equal(untouched["a"], x)


def test_jit_matches_eager_and_grad_flows():
  model = SowNet()
  x = _images()
  params = model.init(jax.random.key(1), x)
  labels = jnp.arange(B) % NUM_CLASSES

  def loss(params, key):
    mix = jaxmix.sample_manifold(key, B, layers=3)
    logits = model.apply(params, x, mix)
    return (
      -(jax.nn.log_softmax(logits) * jaxmix.mix_labels(mix, labels, num_classes=NUM_CLASSES)).sum(-1).mean()
    )

  key = jax.random.key(7)
  np.testing.assert_allclose(jax.jit(loss)(params, key), loss(params, key), rtol=1e-5)
  grads = jax.jit(jax.grad(loss))(params, key)
  leaves = jax.tree_util.tree_leaves(grads)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert any(np.any(g != 0) for g in leaves)


def test_bad_input_errors():
  mix = jaxmix.sample_manifold(jax.random.key(0), B, layers=2)
  x = _images()
  with pytest.raises(ValueError, match="eligible layers"):
    jaxmix.manifold_point(x, mix, 5)
  with pytest.raises(TypeError, match="static int"):
    jaxmix.manifold_point(x, mix, jnp.int32(0))
  with pytest.raises(TypeError, match="ManifoldPlan"):
    jaxmix.manifold_point(x, mix.plan, 0)
  with pytest.raises(ValueError, match="batch size"):
    jaxmix.manifold_point(x[:3], mix, 0)
  with pytest.raises(ValueError, match="layers"):
    jaxmix.sample_manifold(jax.random.key(0), B, layers=0)
  with pytest.raises(ValueError, match="layers"):
    jaxmix.sample_manifold(jax.random.key(0), B, layers=(1, 1))
  with pytest.raises(ValueError, match="alpha"):
    jaxmix.sample_manifold(jax.random.key(0), B, alpha=-1.0)
  with pytest.raises(TypeError, match="key"):
    jaxmix.sample_manifold(0, B)
