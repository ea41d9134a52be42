import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxmix

KEY = jax.random.key(0)
MIXUP = functools.partial(jaxmix.sample_mixup, alpha=1.0)
CUTMIX = functools.partial(jaxmix.sample_cutmix, alpha=1.0)


def _batch(b=4, h=8, w=8, c=3, dtype=jnp.float32):
  x = jax.random.uniform(jax.random.key(1), (b, h, w, c)) * 255
  return x.astype(dtype)


def _kind(plan):
  """Which method made each sample (works on stacked plans): 0 blend, 1 box, 2 mask, 3 none."""
  blend = np.asarray(plan.blend)
  boxed = np.zeros(blend.shape, bool)
  if plan.region is not None:
    box = np.asarray(plan.region)
    boxed = (box[..., 1] > box[..., 0]) & (box[..., 3] > box[..., 2])
  masked = np.zeros(blend.shape, bool)
  if plan.mask is not None:
    masked = np.broadcast_to(np.asarray(plan.mask).min((-2, -1)) < 1, blend.shape)
  return np.select([blend < 1, boxed, masked], [0, 1, 2], 3)


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_method_frequencies_match_weights(mode):
  weights = jnp.array([0.2, 0.5, 0.3])
  methods = (
    MIXUP,
    functools.partial(jaxmix.sample_cutmix, cutmix_minmax=(0.3, 0.6)),  # never an empty box
    functools.partial(jaxmix.sample_gridmix, grid_size=2, cell_prob=1.0, hole=0.5),  # always a mask
  )
  if mode == "batch":
    keys = jax.random.split(KEY, 300)
    plans = jax.vmap(lambda k: jaxmix.sample_choose(k, 2, (8, 8), methods=methods, weights=weights))(keys)
    kinds = _kind(plans)
    assert np.all(kinds == kinds[:, :1])
    kinds = kinds[:, 0]
  else:
    kinds = _kind(jaxmix.sample_choose(KEY, 1200, (8, 8), methods=methods, weights=weights, mode="elem"))
  assert not np.any(kinds == 3)
  counts = np.array([(kinds == i).sum() for i in range(3)])
  expect = np.asarray(weights) * counts.sum()
  assert stats.chisquare(counts, expect).pvalue > 1e-3, counts


def test_timm_switch_is_the_two_method_case():
  p = 0.3
  methods = (MIXUP, CUTMIX)
  ours = jaxmix.sample_choose(
    KEY, 3000, (16, 16), methods=methods, weights=jnp.array([1 - p, p]), mode="elem"
  )
  timm = jaxmix.sample_mixup_cutmix(
    jax.random.key(1), 3000, (16, 16), mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=p, mode="elem"
  )

  def boxed(plans):
    box = np.asarray(plans.region)
    return ((box[..., 1] > box[..., 0]) & (box[..., 3] > box[..., 2])).ravel()

  a, b = boxed(ours), boxed(timm)
  assert abs(a.mean() - p) < 0.03 and abs(b.mean() - p) < 0.03
  table = [[a.sum(), (~a).sum()], [b.sum(), (~b).sum()]]
  assert stats.chi2_contingency(table).pvalue > 1e-3
  # The λ distributions agree too.
  assert stats.ks_2samp(np.asarray(ours.lam).ravel(), np.asarray(timm.lam).ravel()).pvalue > 1e-3
  # Same plan structure: no mask, so the cheap blend-and-box path is kept.
  assert ours.mask is None and timm.mask is None


def test_mixup_and_cutmix_keep_the_cheap_form_in_batch_mode():
  plan = jaxmix.sample_choose(KEY, 4, (8, 8), methods=("mixup", "cutmix"))
  assert plan.mask is None and plan.region is not None
  plan = jaxmix.sample_choose(KEY, 4, (8, 8), methods=("mixup", "fmix"))
  assert plan.region is None and plan.mask.shape == (1, 8, 8)
  plan = jaxmix.sample_choose(KEY, 4, None, methods=("mixup",))
  assert plan.region is None and plan.mask is None


_choose = jax.jit(jaxmix.choose, static_argnames=("methods", "mode", "num_classes"))
_sample_choose = jax.jit(jaxmix.sample_choose, static_argnums=(1, 2), static_argnames=("methods", "mode"))


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_label_weight_is_the_own_share(mode):
  b, h, w = 6, 8, 8
  x = jnp.broadcast_to(jnp.arange(1.0, b + 1)[:, None, None, None], (b, h, w, 1))
  labels = jnp.arange(b)
  methods = ("mixup", "cutmix", "fmix", "smoothmix", "gridmix")
  for seed in range(6):
    key = jax.random.key(seed)
    out, y = _choose(key, x, labels, methods=methods, mode=mode, num_classes=b)
    plan = _sample_choose(key, b, (h, w), methods=methods, mode=mode)
    est = (np.asarray(out).mean((1, 2, 3)) - np.arange(b, 0, -1)) / (
      np.arange(1, b + 1) - np.arange(b, 0, -1)
    )
    np.testing.assert_allclose(est, np.asarray(plan.lam), atol=1e-5)
    np.testing.assert_allclose(np.asarray(y)[np.arange(b), labels], np.asarray(plan.lam), atol=1e-6)
    np.testing.assert_allclose(np.asarray(plan.own_weight()).mean((1, 2)), np.asarray(plan.lam), atol=1e-5)


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_one_trace_when_weights_and_prob_change(mode):
  chex.clear_trace_counter()
  x = _batch()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(key, weights, prob):
    return jaxmix.choose(key, x, methods=("mixup", "cutmix", "fmix"), weights=weights, prob=prob, mode=mode)

  for w, p in [([1.0, 0.0, 0.0], 1.0), ([0.2, 0.3, 0.5], 0.5), ([0.0, 0.0, 1.0], 0.9)]:
    f(KEY, jnp.array(w), p)


def test_zero_weights_never_chosen_and_prob_zero_is_identity():
  x = _batch()
  keys = jax.random.split(KEY, 50)
  plans = jax.vmap(
    lambda k: jaxmix.sample_choose(k, 4, (8, 8), methods=(MIXUP, CUTMIX), weights=jnp.array([0.0, 1.0]))
  )(keys)
  assert np.all(np.asarray(plans.blend) == 1.0)
  np.testing.assert_array_equal(jaxmix.choose(KEY, x, methods=("mixup", "fmix"), prob=0.0)[0], x)


def test_same_key_jit_vmap_and_permute_pairing():
  x = _batch(b=5)
  fn = lambda k: jaxmix.choose(k, x, methods=("mixup", "cutmix", "gridmix"), mode="elem", pairing="permute")[
    0
  ]
  np.testing.assert_array_equal(fn(KEY), fn(KEY))
  np.testing.assert_allclose(jax.jit(fn)(KEY), fn(KEY), atol=1e-3)
  keys = jax.random.split(KEY, 3)
  stacked = jax.vmap(fn)(keys)
  for i, k in enumerate(keys):
    np.testing.assert_allclose(stacked[i], fn(k), atol=1e-3)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.uint8])
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_dtype_kept(dtype, mode):
  x = _batch(dtype=dtype)
  out, y = jaxmix.choose(KEY, x, jnp.arange(4), methods=("mixup", "smoothmix"), mode=mode, num_classes=4)
  assert out.dtype == dtype and out.shape == x.shape and y.dtype == jnp.float32


def test_pytree_inputs_share_the_plan():
  img = _batch(c=1)
  seg = img[..., 0]
  for mode in ("batch", "elem"):
    out = jaxmix.choose(KEY, {"img": img, "seg": seg}, methods=("cutmix", "fmix", "gridmix"), mode=mode)[0]
    np.testing.assert_allclose(out["img"][..., 0], out["seg"], atol=1e-4)


def test_non_spatial_inputs_with_mixup_only():
  feats = jnp.ones((4, 16))
  out, _ = jaxmix.choose(KEY, feats, methods=("mixup",))
  assert out.shape == feats.shape


def test_bad_input_errors():
  x = _batch()
  with pytest.raises(ValueError, match="weights"):
    jaxmix.choose(KEY, x, methods=("mixup", "cutmix"), weights=[1.0])
  with pytest.raises(ValueError, match="weights"):
    jaxmix.choose(KEY, x, methods=("mixup", "cutmix"), weights=[-1.0, 2.0])
  with pytest.raises(ValueError, match="methods"):
    jaxmix.choose(KEY, x, methods=())
  with pytest.raises(ValueError, match="unknown method"):
    jaxmix.choose(KEY, x, methods=("nomix",))
  with pytest.raises(ValueError, match="mode"):
    jaxmix.choose(KEY, x, methods=("mixup",), mode="pair")
  with pytest.raises(TypeError, match="Plan"):
    jaxmix.choose(KEY, x, methods=(lambda key, batch_size, spatial_shape, **kw: None,))
  with pytest.raises(ValueError, match="spatial_shape"):
    jaxmix.sample_choose(KEY, 4, None, methods=("cutmix",))
