"""Integer leaves wider than float32's 24-bit mantissa (int32 ids, uint32 hashes).

Plans that select pixels copy them in the leaf's own dtype, so values above
2**24 come back exact; plans that blend refuse such leaves with a clear error
instead of rounding them through float32.

Each test mixes a pytree of a float32 "paint" (every pixel holds its own
sample and position, below 2**24, so float32 holds it exactly) and an integer
leaf ``top - paint`` (values near the top of the dtype). The integer output
must be ``top - paint_out`` everywhere: the same source pixel, undamaged.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix

B, H, W = 4, 16, 16
KEY = jax.random.key(3)


def _tree(dtype):
  paint = np.arange(B * H * W, dtype=np.int64).reshape(B, H, W)
  top = np.iinfo(dtype).max
  return jnp.asarray(paint[..., None], jnp.float32), jnp.asarray(top - paint, dtype), top


def _check_exact(out_paint, out_ids, paint, ids, top):
  out_paint, out_ids = np.asarray(out_paint), np.asarray(out_ids)
  expected = top - out_paint[..., 0].astype(np.int64)
  assert out_ids.dtype == np.asarray(ids).dtype
  np.testing.assert_array_equal(out_ids.astype(np.int64), expected)
  assert np.any(out_paint != np.asarray(paint)), "nothing was mixed: the test would be vacuous"


SALIENCY = jax.random.uniform(jax.random.key(0), (B, H, W))
FEATURES = jax.random.uniform(jax.random.key(1), (B, 4, 4))
SELECTING = {
  "cutmix": lambda k, t: jaxmix.cutmix(k, t, mode="elem"),
  "cutmix_batch": lambda k, t: jaxmix.cutmix(k, t),
  "mixup_cutmix_without_mixup": lambda k, t: jaxmix.mixup_cutmix(
    k, t, mixup_alpha=0.0, cutmix_alpha=1.0, mode="elem"
  ),
  "fmix": lambda k, t: jaxmix.fmix(k, t, mode="elem"),
  "gridmix": lambda k, t: jaxmix.gridmix(k, t, mode="elem"),
  "saliencymix": lambda k, t: jaxmix.saliencymix(k, t, saliency=SALIENCY),
  "attentive_cutmix": lambda k, t: jaxmix.attentive_cutmix(k, t, features=FEATURES, top_k=4),
  "specmix": lambda k, t: jaxmix.specmix(k, t),
  "resizemix_nearest": lambda k, t: jaxmix.resizemix(k, t, mode="elem", interpolation="nearest"),
  "resizemix_nearest_exact": lambda k, t: jaxmix.resizemix(k, t, mode="elem", interpolation="nearest-exact"),
  "choose_cutmix_fmix": lambda k, t: jaxmix.choose(k, t, methods=("cutmix", "fmix"), mode="elem"),
  "classmix": lambda k, t: jaxmix.segmentation.classmix(
    k, t, (jnp.arange(B * H * W).reshape(B, H, W) // 37) % 3, num_classes=3
  ),
}


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint32])
@pytest.mark.parametrize("name", sorted(SELECTING))
def test_selecting_plans_keep_wide_integers_exact(name, dtype):
  paint, ids, top = _tree(dtype)
  (out_paint, out_ids), _ = SELECTING[name](KEY, (paint, ids))
  _check_exact(out_paint, out_ids, paint, ids, top)


def test_selecting_plans_keep_wide_integers_exact_under_jit():
  paint, ids, top = _tree(jnp.int32)
  (out_paint, out_ids), _ = jax.jit(SELECTING["cutmix"])(KEY, (paint, ids))
  _check_exact(out_paint, out_ids, paint, ids, top)


def test_resizemix_bilinear_reads_integer_leaves_with_nearest_exact():
  paint, ids, top = _tree(jnp.int32)
  plan = jaxmix.sample_resizemix(KEY, B, (H, W), mode="elem", interpolation="bilinear")
  out_ids = jaxmix.apply(plan, ids)
  out_paint = jaxmix.apply(plan.replace(interpolation="nearest-exact"), paint)
  _check_exact(out_paint, out_ids, paint, ids, top)


def test_selecting_plan_copies_float_pixels_so_nan_stays_where_it_is():
  """Sample 0 is all NaN: only the pixels copied from it are NaN (in a blend, 0·NaN would
  spread it over its partner's whole image)."""
  x = jnp.zeros((B, H, W, 1)).at[0].set(jnp.nan)
  plan = jaxmix.sample_cutmix(KEY, B, (H, W), mode="elem")
  out = np.asarray(jaxmix.apply(plan, x))[..., 0]
  own = np.asarray(plan.own_weight()) > 0.5
  index = np.asarray(plan.index)
  source = np.where(own, np.arange(B)[:, None, None], index[:, None, None])
  np.testing.assert_array_equal(np.isnan(out), source == 0)
  np.testing.assert_array_equal(out[source != 0], 0.0)
  assert np.any(own[index == 0]) and np.any(~own[index == 0])


BLENDING = {
  "mixup": lambda k, t: jaxmix.mixup(k, t),
  "mixup_prob_zero": lambda k, t: jaxmix.mixup(k, t, prob=0.0),
  "mixup_cutmix": lambda k, t: jaxmix.mixup_cutmix(k, t, mixup_alpha=1.0, cutmix_alpha=1.0),
  "fmix_soft": lambda k, t: jaxmix.fmix(k, t, max_soft=0.2),
  "smoothmix": lambda k, t: jaxmix.smoothmix(k, t),
  "multimix": lambda k, t: jaxmix.multimix(k, t),
  "choose_mixup_cutmix": lambda k, t: jaxmix.choose(k, t, methods=("mixup", "cutmix")),
}


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint32])
@pytest.mark.parametrize("name", sorted(BLENDING))
def test_blending_plans_refuse_wide_integers(name, dtype):
  paint, ids, _ = _tree(dtype)
  with pytest.raises(ValueError, match=rf"{jnp.dtype(dtype).name} leaf of shape \({B}, {H}, {W}\).*2\*\*24"):
    BLENDING[name](KEY, (paint, ids))


def test_blending_refusal_happens_at_trace_time_with_traced_max_soft():
  paint, ids, _ = _tree(jnp.int32)
  f = jax.jit(lambda k, t, s: jaxmix.fmix(k, t, max_soft=s))
  with pytest.raises(ValueError, match="int32 leaf"):
    f(KEY, (paint, ids), 0.0)  # a traced max_soft may blend, so it is refused even at 0


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.int16, jnp.uint16])
def test_blending_plans_still_round_narrow_integers(dtype):
  """8- and 16-bit values are exact in float32: blended, rounded and clipped, as before."""
  x = jnp.asarray(np.random.default_rng(0).integers(0, 200, (B, H, W, 3)), dtype)
  out, _ = jaxmix.mixup(KEY, x)
  plan = jaxmix.sample_mixup(KEY, B)
  ref = jaxmix.apply(plan, x.astype(jnp.float32))
  assert out.dtype == dtype
  np.testing.assert_array_equal(out, np.clip(np.round(np.asarray(ref)), 0, 200).astype(dtype))
