import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from core_helpers import examples
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix

KEY = jax.random.key(0)


def _ids(b, hw=(6, 6)):
  """Images whose every pixel is the sample's id (exact under any copy)."""
  return jnp.arange(b, dtype=jnp.float32)[:, None, None, None] * jnp.ones((b,) + hw + (1,))


# ---------------------------------------------------------------- MixMatch rule


@settings(max_examples=examples(8), deadline=None)
@given(seed=st.integers(0, 1000), b=st.integers(1, 7))
def test_keep_larger_share_on_mixup_plan(seed, b):
  key = jax.random.key(seed)
  plan = jaxmix.sample_mixup(key, b, alpha=1.0, mode="elem")
  new = jaxmix.keep_larger_share(plan)
  np.testing.assert_allclose(new.lam, np.maximum(plan.lam, 1 - plan.lam), rtol=1e-6)
  assert np.all(np.asarray(new.lam) >= 0.5)
  x = jax.random.normal(key, (b, 3))
  out = jaxmix.apply(new, x)
  lam = np.asarray(new.lam)[:, None]
  np.testing.assert_allclose(out, lam * x + (1 - lam) * jnp.flip(x, 0), rtol=1e-5, atol=1e-6)
  y = jaxmix.mix_labels(new, jnp.arange(b), num_classes=b)
  np.testing.assert_allclose(y[np.arange(b), np.arange(b)] >= 0.5, True)


@settings(max_examples=examples(8), deadline=None)
@given(seed=st.integers(0, 1000), method=st.sampled_from(["cutmix", "mixup_cutmix"]))
def test_keep_larger_share_on_box_plans_is_exact(seed, method):
  key = jax.random.key(seed)
  b = 5
  if method == "cutmix":
    plan = jaxmix.sample_cutmix(key, b, (6, 6), mode="elem")
  else:
    plan = jaxmix.sample_mixup_cutmix(key, b, (6, 6), cutmix_alpha=1.0, mode="elem")
  new = jaxmix.keep_larger_share(plan)
  assert new.region is None and new.mask.shape == (b, 6, 6)
  np.testing.assert_allclose(new.lam, np.maximum(plan.lam, 1 - plan.lam), rtol=1e-5)
  # λ' is the exact own share of the new own-weight map.
  np.testing.assert_allclose(new.lam, new.own_weight().mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
  x = _ids(b)
  out = np.asarray(jaxmix.apply(new, x))[..., 0]
  w = np.asarray(new.own_weight())
  want = w * np.arange(b)[:, None, None] + (1 - w) * np.arange(b)[::-1][:, None, None]
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
  "sample_fn,kwargs",
  [(jaxmix.sample_mixup, {"alpha": 1.0, "mode": "elem"}), (jaxmix.sample_cutmix, {"mode": "elem"})],
)
def test_with_plan_transform_on_mixup_and_cutmix(sample_fn, kwargs):
  fn = jaxmix.with_plan_transform(sample_fn, jaxmix.keep_larger_share)
  x = _ids(6)
  labels = jnp.arange(6)
  out, y = jax.jit(lambda k: fn(k, x, labels, num_classes=6, **kwargs))(KEY)
  assert np.all(np.asarray(y)[np.arange(6), np.arange(6)] >= 0.5 - 1e-6)
  args = (KEY, 6, (6, 6)) if sample_fn is jaxmix.sample_cutmix else (KEY, 6)
  plan = jaxmix.keep_larger_share(sample_fn(*args, **kwargs))
  np.testing.assert_allclose(out, jaxmix.apply(plan, x), rtol=1e-6)
  np.testing.assert_allclose(y, jaxmix.mix_labels(plan, labels, num_classes=6), rtol=1e-6)
  # The contract: key first, options keyword-only.
  params = list(inspect.signature(fn).parameters.values())
  assert params[0].name == "key"
  assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[3:])


def test_keep_larger_share_on_multiplan_and_bad_plan():
  plan = jaxmix.sample_multimix(KEY, 16, k=4, alpha=1.0, mode="elem")
  new = jaxmix.keep_larger_share(plan)
  w, w2 = np.asarray(plan.weights), np.asarray(new.weights)
  np.testing.assert_allclose(w2[:, 0], w.max(1))
  np.testing.assert_allclose(np.sort(w2, 1), np.sort(w, 1))
  seq = jaxmix.sequence.sample_mixup(KEY, jnp.ones((4, 5), bool))
  with pytest.raises(TypeError, match="keep_larger_share"):
    jaxmix.keep_larger_share(seq)


# ---------------------------------------------------------------- RegMixup


def test_regmixup_is_clean_then_mixed():
  x = jax.random.normal(KEY, (6, 4, 4, 3))
  tree = {"img": x, "aux": x[..., 0].astype(jnp.bfloat16)}
  labels = jnp.arange(6) % 4
  assert inspect.signature(jaxmix.regmixup).parameters["alpha"].default == 10.0
  fn = lambda key, alpha: jaxmix.regmixup(key, tree, labels, alpha=alpha, num_classes=4, label_smoothing=0.1)
  out, y = jax.jit(fn)(KEY, 10.0)
  mixed, ym = jaxmix.mixup(KEY, tree, labels, alpha=10.0, num_classes=4, label_smoothing=0.1)
  for name in tree:
    assert out[name].shape[0] == 12 and out[name].dtype == tree[name].dtype
    np.testing.assert_array_equal(out[name][:6], tree[name])
    np.testing.assert_allclose(out[name][6:], mixed[name], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y[:6], jaxmix.one_hot(labels, 4, label_smoothing=0.1), rtol=1e-6)
  np.testing.assert_allclose(y[6:], ym, rtol=1e-6)
  # Large α keeps λ near 1/2.
  lam = jaxmix.sample_mixup(KEY, 512, alpha=10.0, mode="elem").lam
  assert abs(float(lam.mean()) - 0.5) < 0.03 and float(lam.std()) < 0.15
  keys = jax.random.split(KEY, 2)
  vout, vy = jax.vmap(fn, in_axes=(0, None))(keys, 20.0)
  assert vy.shape == (2, 12, 4)
  np.testing.assert_allclose(vy[1], fn(keys[1], 20.0)[1], rtol=1e-6)


# ---------------------------------------------------------------- Remix


def test_remix_rule_on_constructed_counts():
  # Pairs under flip (B = 6): (0,5), (1,4), (2,3). Classes: 0 is head (300), 1 is tail (10), 2 mid (100).
  counts = jnp.array([300.0, 10.0, 100.0])
  labels = jnp.array([0, 0, 2, 2, 1, 1])
  lam = jnp.array([0.3, 0.8, 0.5, 0.5, 0.6, 0.9])
  plan = jaxmix.Plan(lam=lam, index=jnp.arange(6)[::-1], blend=lam, pairing="flip")
  got = np.asarray(jaxmix.remix_lam(plan, labels, counts).lam)
  # i=0: head vs tail (30 >= 3), λ = 0.3 < τ -> 0.
  # i=1: head vs tail, λ = 0.8 >= τ -> stays 0.8.
  # i=2,3: 100 vs 100, ratio 1 -> stays λ.
  # i=4: tail vs head (1/30 <= 1/3), 1 - λ = 0.4 < τ -> 1.
  # i=5: tail vs head, 1 - λ = 0.1 < τ -> 1.
  np.testing.assert_allclose(got, [0.0, 0.8, 0.5, 0.5, 1.0, 1.0], rtol=1e-6)
  # κ = 40 turns the rule off for 30x imbalance; τ traced under jit.
  off = jax.jit(lambda k, t: jaxmix.remix_lam(plan, labels, counts, kappa=k, tau=t).lam)(40.0, 0.5)
  np.testing.assert_allclose(off, lam, rtol=1e-6)
  # One-hot float labels give the same.
  soft = jaxmix.remix_lam(plan, jax.nn.one_hot(labels, 3), counts).lam
  np.testing.assert_allclose(soft, got, rtol=1e-6)


def test_remix_one_call_follows_rule_and_mixes_inputs_as_plan():
  counts = jnp.array([1000.0, 5.0])
  labels = jnp.array([0, 0, 0, 1, 1, 1])
  x = _ids(6)
  fn = lambda key: jaxmix.remix(key, x, labels, class_counts=counts, num_classes=2, mode="elem", alpha=1.0)
  out, y = jax.jit(fn)(KEY)
  plan = jaxmix.sample_mixup(KEY, 6, mode="elem", alpha=1.0)
  np.testing.assert_allclose(out, jaxmix.apply(plan, x), rtol=1e-6)  # inputs: plain MixUp
  lam = np.asarray(plan.lam)
  want = np.where(lam < 0.5, 0.0, lam)[:3]  # head samples paired with tail ones
  np.testing.assert_allclose(np.asarray(y)[:3, 0], want, rtol=1e-6)
  np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)
  out_c, y_c = jaxmix.remix(KEY, x, labels, class_counts=counts, num_classes=2, method="cutmix")
  np.testing.assert_allclose(y_c.sum(1), 1.0, atol=1e-6)
  keys = jax.random.split(KEY, 3)
  _, vy = jax.vmap(fn)(keys)
  for i in range(3):
    np.testing.assert_allclose(vy[i], fn(keys[i])[1], rtol=1e-6)


def test_remix_bad_inputs():
  plan = jaxmix.sample_mixup(KEY, 4)
  with pytest.raises(ValueError, match="class_counts"):
    jaxmix.remix_lam(plan, jnp.arange(4), jnp.ones((2, 2)))
  with pytest.raises(ValueError, match="class_counts"):
    jaxmix.remix_lam(plan, jnp.ones((4, 3)), jnp.ones(5))
  with pytest.raises(ValueError, match="tau"):
    jaxmix.remix_lam(plan, jnp.arange(4), jnp.ones(4), tau=2.0)
  with pytest.raises(TypeError, match="Plan"):
    jaxmix.remix_lam(jaxmix.sample_multimix(KEY, 4), jnp.arange(4), jnp.ones(4))
  with pytest.raises(ValueError, match="method"):
    jaxmix.remix(KEY, _ids(4), jnp.arange(4), class_counts=jnp.ones(4), method="fmix", num_classes=4)


# ---------------------------------------------------------------- multi-label


def test_multi_hot_targets_mix_and_train_with_bce():
  b, k = 6, 5
  multi_hot = (jax.random.uniform(KEY, (b, k)) < 0.4).astype(jnp.float32)
  x = jax.random.normal(KEY, (b, 8))
  mixed, y = jaxmix.mixup(KEY, x, multi_hot, alpha=1.0, mode="elem")
  plan = jaxmix.sample_mixup(KEY, b, alpha=1.0, mode="elem")
  lam = plan.lam[:, None]
  np.testing.assert_allclose(y, lam * multi_hot + (1 - lam) * jnp.flip(multi_hot, 0), rtol=1e-6)
  # Row mass is the λ-weighted number of positive classes; every entry stays in [0, 1].
  np.testing.assert_allclose(
    y.sum(1), lam[:, 0] * multi_hot.sum(1) + (1 - lam[:, 0]) * multi_hot.sum(1)[::-1], rtol=1e-5
  )
  assert np.all((np.asarray(y) >= 0) & (np.asarray(y) <= 1))

  # BCE with optax on a linear model: a gradient step lowers the loss on the mixed batch.
  w = jnp.zeros((8, k))

  def loss_fn(w):
    return optax.sigmoid_binary_cross_entropy(mixed @ w, y).mean()

  loss0, grad = jax.value_and_grad(loss_fn)(w)
  chex.assert_shape(grad, w.shape)
  assert np.isclose(loss0, np.log(2.0), rtol=1e-5)  # zero logits
  assert loss_fn(w - 0.5 * grad) < loss0
