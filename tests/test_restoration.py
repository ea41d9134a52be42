"""jaxmix.restoration: one plan for LR/HR pairs (apply_scaled), CutBlur, MoA (issue 18, items 2 and 3)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix
from jaxmix import restoration
from jaxmix._src.core import regions
from jaxmix._src.families.restoration import _scale_plan

KEY = jax.random.key(0)
B, H, W = 4, 8, 6  # LR size (non-square); B even so that flip pairs never meet themselves


def painted(s, dtype=jnp.float32, c=2, fmt="NHWC"):
  """A batch at s times the LR size, every pixel painted with its sample's id (1 + b)."""
  ids = (1 + np.arange(B, dtype=np.float32))[:, None, None, None]
  shape = (B, c, s * H, s * W) if fmt == "NCHW" else (B, s * H, s * W, c)
  return jnp.asarray(np.broadcast_to(ids, shape), dtype)


SAMPLERS = {
  "cutmix": functools.partial(jaxmix.sample_cutmix, alpha=1.0, mode="elem"),
  "fmix": functools.partial(jaxmix.sample_fmix, mode="elem"),
  "fmix_soft": functools.partial(jaxmix.sample_fmix, mode="elem", max_soft=0.3),
  "gridmix": functools.partial(jaxmix.sample_gridmix, grid_size=(2, 3), mode="batch"),
  "mixup_cutmix": functools.partial(jaxmix.sample_mixup_cutmix, cutmix_alpha=1.0, mode="elem"),
}


@functools.cache
def _mixed(name, factors, dtype):
  plan = SAMPLERS[name](KEY, B, (H, W))
  tree = tuple(painted(s, dtype) for s in factors)
  return plan, restoration.apply_scaled(plan, tree), jax.jit(restoration.apply_scaled)(plan, tree)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_hr_pixel_comes_from_its_lr_parents_source(name):
  plan, (lr, *hrs), jitted = _mixed(name, (1, 2, 3, 4), jnp.float32)
  lr = np.asarray(lr)
  for s, hr in zip((2, 3, 4), hrs, strict=True):
    parent = np.repeat(np.repeat(lr, s, axis=1), s, axis=2)
    np.testing.assert_array_equal(np.asarray(hr), parent, err_msg=f"factor {s}")
  for a, b in zip(jax.tree_util.tree_leaves((lr, *hrs)), jax.tree_util.tree_leaves(jitted), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # jit == eager


@pytest.mark.parametrize("name", ["cutmix", "fmix", "gridmix"])
def test_lam_is_the_own_share_in_every_leaf(name):
  plan, leaves, _ = _mixed(name, (1, 2, 3, 4), jnp.float32)
  own = (1 + np.arange(B))[:, None, None]
  assert 0.0 < float(np.min(plan.lam)) or float(np.max(plan.lam)) < 1.0  # something was mixed
  for leaf in leaves:
    share = (np.asarray(leaf)[..., 0] == own).mean(axis=(1, 2))
    np.testing.assert_allclose(share, np.asarray(plan.lam), atol=1e-6)


def test_region_is_exactly_s_times_the_lr_one():
  plan = jaxmix.sample_cutmix(KEY, B, (H, W), alpha=1.0, mode="elem")
  for s in (2, 3, 4):
    scaled = _scale_plan(plan, (s, s))
    np.testing.assert_array_equal(np.asarray(scaled.region), s * np.asarray(plan.region))
    assert scaled.spatial_shape == (s * H, s * W)


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.bfloat16, jnp.int32])
def test_dtypes_are_kept(dtype):
  plan, leaves, _ = _mixed("cutmix", (1, 3), dtype)
  for leaf, s in zip(leaves, (1, 3), strict=True):
    assert leaf.dtype == dtype and leaf.shape == (B, s * H, s * W, 2)


def test_blend_applies_to_any_size_and_keeps_uint8():
  plan = jaxmix.sample_mixup(KEY, B, alpha=1.0)
  x = jax.random.uniform(jax.random.key(1), (B, 2 * H, 2 * W, 3)) * 255
  lr, hr = restoration.apply_scaled(plan, (x[:, ::2, ::2].astype(jnp.uint8), x.astype(jnp.uint8)))
  assert lr.dtype == hr.dtype == jnp.uint8 and hr.shape == (B, 2 * H, 2 * W, 3)
  np.testing.assert_array_equal(np.asarray(hr), np.asarray(jaxmix.apply(plan, x.astype(jnp.uint8))))


def test_nchw_and_rank_3_leaves():
  plan = SAMPLERS["cutmix"](KEY, B, (H, W))
  tree = (painted(1, fmt="NCHW"), painted(2, fmt="NCHW"))
  lr, hr = restoration.apply_scaled(plan, tree, data_format="NCHW")
  np.testing.assert_array_equal(np.asarray(hr), np.repeat(np.repeat(np.asarray(lr), 2, 2), 2, 3))
  maps = restoration.apply_scaled(plan, painted(2)[..., 0])
  np.testing.assert_array_equal(np.asarray(maps), np.asarray(hr)[:, 0])


@pytest.mark.parametrize(
  "shape, match",
  [
    ((B, 2 * H + 1, 2 * W, 2), r"tree\[1\] has spatial shape \(17, 12\).*\(8, 6\)"),
    ((B, H // 2, W, 2), r"tree\[1\] has spatial shape \(4, 6\).*\(8, 6\)"),
    ((B, 3 * H, W + W // 2, 2), r"tree\[1\] has spatial shape \(24, 9\)"),
  ],
)
def test_non_integer_factors_and_small_leaves_are_refused(shape, match):
  plan = SAMPLERS["cutmix"](KEY, B, (H, W))
  with pytest.raises(ValueError, match=match):
    restoration.apply_scaled(plan, (painted(1), jnp.zeros(shape)))


def test_other_plan_types_only_at_their_own_size():
  plan = jaxmix.sample_resizemix(KEY, B, (H, W))
  assert restoration.apply_scaled(plan, painted(1)).shape == (B, H, W, 2)
  with pytest.raises(TypeError, match="only a two-source jaxmix.Plan"):
    restoration.apply_scaled(plan, (painted(1), painted(2)))
  with pytest.raises(ValueError, match="batch size"):
    restoration.apply_scaled(plan, painted(1)[:2])


# --- CutBlur -------------------------------------------------------------------------------------------

HR_SIZE = 16


def pair(dtype=jnp.float32, b=B, c=3):
  lr = jnp.full((b, HR_SIZE, HR_SIZE, c), 10, dtype)
  hr = jnp.full((b, HR_SIZE, HR_SIZE, c), 200, dtype)
  return lr, hr


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_cutblur_outside_the_patch_is_the_pairs_own_content(mode):
  lr, hr = pair()
  lr = lr + jnp.arange(HR_SIZE, dtype=jnp.float32)[None, :, None, None]  # distinct pixels
  key = jax.random.key(3)
  plan = restoration.sample_cutblur(key, B, (HR_SIZE, HR_SIZE), mode=mode)
  out, hr_out = restoration.cutblur(key, lr, hr, mode=mode)
  np.testing.assert_array_equal(np.asarray(hr_out), np.asarray(hr))
  inside = np.asarray(regions.region_mask(plan.region, (HR_SIZE, HR_SIZE)))[..., None]
  hr_in = np.asarray(plan.hr_inside)[:, None, None, None]
  lr_np, hr_np, out = np.asarray(lr), np.asarray(hr), np.asarray(out)
  # HR patch in LR: outside the patch the LR input, inside the HR pixels; else the reverse.
  want = np.where(hr_in, np.where(inside, hr_np, lr_np), np.where(inside, lr_np, hr_np))
  np.testing.assert_array_equal(out, want)
  assert inside.any()
  side = (np.asarray(plan.region)[:, 1] - np.asarray(plan.region)[:, 0]) / HR_SIZE
  assert np.all(np.abs(side - 0.7) < 0.1)
  np.testing.assert_allclose(np.asarray(plan.lam), (out == lr_np).mean(axis=(1, 2, 3)))
  if mode == "batch":
    assert len(set(map(tuple, np.asarray(plan.region)))) == 1


def test_cutblur_chooses_each_side_half_the_time():
  plans = jax.vmap(lambda k: restoration.sample_cutblur(k, 1, (HR_SIZE, HR_SIZE)))(
    jax.random.split(KEY, 2000)
  )
  assert abs(float(plans.hr_inside.mean()) - 0.5) < 0.05


def test_cutblur_prob_zero_same_key_and_jit():
  lr, hr = pair(jnp.uint8)
  out, _ = restoration.cutblur(KEY, lr, hr, prob=0.0)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(lr))
  a, _ = restoration.cutblur(KEY, lr, hr, alpha=0.5)
  b, _ = restoration.cutblur(KEY, lr, hr, alpha=0.5)
  traces = []

  @jax.jit
  def f(key, alpha, prob):
    traces.append(1)
    return restoration.cutblur(key, lr, hr, alpha=alpha, prob=prob)[0]

  c = f(KEY, 0.5, 1.0)
  f(KEY, 0.9, 0.5)
  assert len(traces) == 1
  assert a.dtype == jnp.uint8
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(c))


def test_cutblur_nchw():
  lr, hr = pair()
  out_nhwc, _ = restoration.cutblur(KEY, lr, hr)
  out_nchw, _ = restoration.cutblur(
    KEY, lr.transpose(0, 3, 1, 2), hr.transpose(0, 3, 1, 2), data_format="NCHW"
  )
  np.testing.assert_array_equal(np.asarray(out_nchw), np.asarray(out_nhwc).transpose(0, 3, 1, 2))


@pytest.mark.parametrize(
  "kwargs, error, match",
  [
    (dict(hr=jnp.zeros((B, 8, 8, 3))), ValueError, r"lr and hr must have the same shape.*\(4, 8, 8, 3\)"),
    (dict(hr=jnp.zeros((B, HR_SIZE, HR_SIZE, 3), jnp.uint8)), TypeError, "same dtype"),
    (dict(alpha=0.0), ValueError, "alpha must be in"),
    (dict(alpha=1.5), ValueError, "alpha must be in"),
    (dict(prob=1.5), ValueError, "prob"),
    (dict(mode="pair"), ValueError, "mode"),
    (dict(lr=jnp.zeros((B, HR_SIZE))), ValueError, "lr must be an image batch"),
  ],
)
def test_cutblur_bad_input(kwargs, error, match):
  lr, hr = pair()
  args = dict(lr=lr, hr=hr)
  args.update(kwargs)
  with pytest.raises(error, match=match):
    restoration.cutblur(KEY, **args)
