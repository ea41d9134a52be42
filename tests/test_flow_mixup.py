"""Flow-Mixup: two flows from one plan, multi-hot targets that follow the partners, the hidden-state
constraint, one compile, identity when off, clear errors, and the linen/NNX example."""

from __future__ import annotations

import os
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax import nnx

import jaxmix
from jaxmix.flow_mixup import FlowPlan
from jaxmix.flow_mixup import flow_constraint
from jaxmix.flow_mixup import flow_inputs
from jaxmix.flow_mixup import flow_targets
from jaxmix.flow_mixup import sample_flow_mixup

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "examples"))

import data as data_lib  # noqa: E402
import flow_mixup as example  # noqa: E402

B, H, W, C, K = 4, 8, 8, 2, 5


def _x(seed=0):
  return jax.random.normal(jax.random.key(seed), (B, H, W, C))


def _multi_hot():
  return jnp.array([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [1, 0, 0, 1, 1], [0, 1, 0, 0, 1]], jnp.float32)


class Net(nn.Module):
  """Two constrained points (BatchNorm in between, as in the example)."""

  @nn.compact
  def __call__(self, x, train=True, mix=None):
    x = flow_inputs(x, mix)
    x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Conv(3, (3, 3), 2)(x)))
    if mix is not None:
      self.sow("intermediates", "flow", x)
    x = nn.tanh(nn.Conv(4, (3, 3))(x))
    if mix is not None:
      self.sow("intermediates", "flow", x)
    return nn.Dense(K)(x.mean((1, 2)))


def _loss(variables, x, y, mix, beta=1.0):
  logits, new = Net().apply(variables, x, True, mix, mutable=["batch_stats", "intermediates"])
  bce = optax.sigmoid_binary_cross_entropy(logits, flow_targets(mix, y)).mean()
  return bce + beta * flow_constraint(mix, new.get("intermediates", {}).get("flow", ()))


def test_two_flows_clean_rows_untouched_mixed_rows_are_the_plans_mixup():
  x = _x()
  mix = sample_flow_mixup(jax.random.key(1), B, alpha=1.0)
  assert isinstance(mix, FlowPlan) and isinstance(mix, jaxmix.PlanLike)
  both = flow_inputs(x, mix)
  assert both.shape == (2 * B, H, W, C) and both.dtype == x.dtype
  np.testing.assert_array_equal(both[:B], x)
  np.testing.assert_allclose(both[B:], jaxmix.apply(mix.plan, x), rtol=1e-6)
  lam = mix.lam[:, None, None, None]
  np.testing.assert_allclose(both[B:], lam * x + (1 - lam) * x[mix.plan.index], rtol=1e-5, atol=1e-6)
  # A pytree: every leaf gets the same partners and λ.
  a, b = flow_inputs((x, 2 * x), mix)
  np.testing.assert_allclose(b, 2 * a, rtol=1e-6)


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_multi_hot_targets_follow_the_partners_per_class(mode):
  y = _multi_hot()
  mix = sample_flow_mixup(jax.random.key(2), B, alpha=1.0, mode=mode, pairing="permute")
  t = flow_targets(mix, y)
  assert t.shape == (2 * B, K) and t.dtype == jnp.float32
  np.testing.assert_array_equal(t[:B], y)
  lam = np.asarray(mix.lam)[:, None]
  idx = np.asarray(mix.plan.index)
  np.testing.assert_allclose(t[B:], lam * y + (1 - lam) * np.asarray(y)[idx], rtol=1e-6)
  assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
  # The mixed rows are what jaxmix.mix_labels gives for the same plan.
  np.testing.assert_allclose(t[B:], jaxmix.mix_labels(mix, y), rtol=1e-6)


def test_integer_ids_need_num_classes():
  ids = jnp.array([0, 3, 4, 1])
  mix = sample_flow_mixup(jax.random.key(3), B)
  t = flow_targets(mix, ids, num_classes=K)
  np.testing.assert_allclose(t.sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_array_equal(t[:B], jax.nn.one_hot(ids, K))
  with pytest.raises(ValueError, match="num_classes is required"):
    flow_targets(mix, ids)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_constraint_is_zero_for_linear_maps_and_positive_otherwise(mode):
  mix = sample_flow_mixup(jax.random.key(4), B, alpha=1.0, mode=mode)
  h = flow_inputs(_x(), mix)
  w = jax.random.normal(jax.random.key(5), (C, 3))
  linear = [h, h @ w, 3.0 * h.mean((1, 2))]
  np.testing.assert_allclose(flow_constraint(mix, linear), 0.0, atol=1e-6)
  c = flow_constraint(mix, jnp.tanh(5 * h))
  assert c.shape == () and c.dtype == jnp.float32 and float(c) > 1e-3
  # Scale-invariant: rescaling the features leaves the constraint as it was.
  np.testing.assert_allclose(flow_constraint(mix, 100.0 * jnp.tanh(5 * h)), c, rtol=1e-5)


def test_stop_gradient_moves_only_the_mixed_flow():
  mix = sample_flow_mixup(jax.random.key(6), B, alpha=1.0)
  h = jnp.tanh(flow_inputs(_x(), mix))
  g = jax.grad(lambda h: flow_constraint(mix, h, stop_gradient=True))(h)
  np.testing.assert_array_equal(g[:B], 0.0)
  assert float(jnp.abs(g[B:]).sum()) > 0
  g_both = jax.grad(lambda h: flow_constraint(mix, h))(h)
  assert float(jnp.abs(g_both[:B]).sum()) > 0


def test_off_is_the_identity():
  x, y = _x(), _multi_hot()
  variables = Net().init(jax.random.key(0), x, False)
  assert flow_inputs(x, None) is x
  np.testing.assert_array_equal(flow_targets(None, y), y)
  assert float(flow_constraint(None, [x])) == 0.0

  # prob = 0: the mixed flow is a copy of the clean one, so the loss and its gradient are
  # those of plain training (BatchNorm sees a duplicated batch: the same statistics).
  @jax.jit
  def losses_and_grads(key):
    grad = lambda mix: jax.value_and_grad(lambda p: _loss({**variables, "params": p}, x, y, mix))
    plans = [sample_flow_mixup(key, B, prob=0.0)]
    return grad(None)(variables["params"]), [grad(m)(variables["params"]) for m in plans], plans

  (plain, g_plain), off, plans = losses_and_grads(jax.random.key(7))
  for (loss, grads), mix in zip(off, plans, strict=True):
    np.testing.assert_array_equal(mix.lam, 1.0)
    np.testing.assert_allclose(loss, plain, rtol=1e-6)
    chex.assert_trees_all_close(grads, g_plain, rtol=1e-5, atol=1e-6)


def test_one_compile_across_lambda_alpha_prob_and_steps():
  x, y = _x(), _multi_hot()
  variables = Net().init(jax.random.key(0), x, False)
  traces = []

  @jax.jit
  def step(key, alpha, prob):
    traces.append(1)
    mix = sample_flow_mixup(key, B, alpha=alpha, prob=prob)
    return jax.value_and_grad(lambda p: _loss({**variables, "params": p}, x, y, mix))(variables["params"])

  losses = []
  for i, (alpha, prob) in enumerate([(1.0, 1.0), (0.2, 1.0), (4.0, 0.5), (1.0, 0.0)]):
    loss, grads = step(jax.random.key(i), alpha, prob)
    losses.append(float(loss))
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))
  assert len(traces) == 1
  assert len(set(losses)) > 1


def test_errors_name_the_argument():
  x = _x()
  mix = sample_flow_mixup(jax.random.key(0), B)
  with pytest.raises(TypeError, match="mix must be a FlowPlan"):
    flow_inputs(x, jaxmix.sample_mixup(jax.random.key(0), B))
  with pytest.raises(TypeError, match="mix must be a FlowPlan"):
    flow_targets("plan", _multi_hot())
  with pytest.raises(ValueError, match="x has batch size 3"):
    flow_inputs(x[:3], mix)
  with pytest.raises(ValueError, match="labels have batch size 3"):
    flow_targets(mix, _multi_hot()[:3])
  with pytest.raises(ValueError, match=r"states\[1\] must have a leading axis of 2B = 8.*\(4, 3\)"):
    flow_constraint(mix, [jnp.zeros((8, 3)), jnp.zeros((4, 3))])
  with pytest.raises(TypeError, match="states.* must be a float hidden state.*int32"):
    flow_constraint(mix, jnp.zeros((8, 3), jnp.int32))
  with pytest.raises(ValueError, match="states must hold at least one hidden state"):
    flow_constraint(mix, ())
  with pytest.raises(TypeError, match="batch_size"):
    sample_flow_mixup(jax.random.key(0), 4.0)
  with pytest.raises(ValueError, match="mode"):
    sample_flow_mixup(jax.random.key(0), B, mode="row")
  # Errors come at trace time, under jit too.
  with pytest.raises(ValueError, match="leading axis of 2B"):
    jax.jit(lambda h: flow_constraint(sample_flow_mixup(jax.random.key(0), B), h))(jnp.zeros((4, 3)))


def test_nnx_capture_collects_the_states():
  class NNXNet(nnx.Module):
    def __init__(self, rngs):
      self.conv = nnx.Conv(C, 3, (3, 3), rngs=rngs)
      self.head = nnx.Linear(3, K, rngs=rngs)

    def __call__(self, x, mix=None):
      x = nnx.tanh(self.conv(flow_inputs(x, mix)))
      if mix is not None:
        self.sow(nnx.Intermediate, "flow", x)
      return self.head(x.mean((1, 2)))

  model = NNXNet(nnx.Rngs(0))
  mix = sample_flow_mixup(jax.random.key(1), B)

  def loss_fn(model):
    logits, inter = nnx.capture(model, nnx.Intermediate)(_x(), mix)
    bce = optax.sigmoid_binary_cross_entropy(logits, flow_targets(mix, _multi_hot())).mean()
    return bce + flow_constraint(mix, inter["flow"].get_value())

  loss, grads = nnx.value_and_grad(loss_fn)(model)
  assert np.isfinite(float(loss))
  assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(nnx.state(grads)))
  assert model(_x()).shape == (B, K)  # evaluation: the plain network


def test_example_metrics():
  probs = np.array([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6]])
  y = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
  m = example.multilabel_metrics(probs, y)
  # Class 0: ranks 1 (pos), 2 (neg), 3 (pos): AP = (1 + 2/3) / 2. Class 1: 0.7 (pos), 0.6 (pos): AP = 1.
  np.testing.assert_allclose(m["mAP"], ((1 + 2 / 3) / 2 + 1) / 2)
  # F1 at 0.5: class 0 tp=1 fp=1 fn=1 -> 0.5; class 1 tp=2 -> 1.
  np.testing.assert_allclose(m["macro_f1"], 0.75)
  x, yy = example.make_canvases(np.random.default_rng(0), np.ones((6, 4, 4, 1)), np.arange(6) % 3, 5, 3)
  assert x.shape == (5, 8, 8, 1) and yy.shape == (5, 3)
  assert ((yy.sum(-1) >= 1) & (yy.sum(-1) <= 3)).all()


def _tiny():
  rng = np.random.default_rng(0)
  return data_lib.Dataset(
    "tiny",
    rng.normal(size=(20, 8, 8, 1)).astype(np.float32),
    rng.integers(0, 4, 20).astype(np.int32),
    rng.normal(size=(12, 8, 8, 1)).astype(np.float32),
    rng.integers(0, 4, 12).astype(np.int32),
    ("a", "b", "c", "d"),
  )


@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_example_runs_two_steps(api):
  out = example.train_and_evaluate(
    _tiny(), api=api, steps=2, batch_size=4, width=2, test_size=8, log_every=0, progress=False
  )
  assert 0.0 <= out["mAP"] <= 1.0 and 0.0 <= out["macro_f1"] <= 1.0
  assert np.isfinite(out["final_loss"])
  assert [len(v) for v in out["history"].values()] == [2, 2, 2] and len(out["ap_per_class"]) == 4
  assert out["history"]["loss"][-1] == out["final_loss"]


def test_example_main_writes_its_png(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(example.data_lib, "load", lambda *args: _tiny())
  png = tmp_path / "sub" / "flow.png"
  argv = ["--steps", "2", "--batch-size", "4", "--width", "2", "--test-size", "8", "--no-progress"]
  assert example.main(argv + ["--out", str(png)]) == 0
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert capsys.readouterr().out.splitlines()[-1] == f"wrote {png}"
