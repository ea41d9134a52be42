"""jaxmix.restoration: one plan for LR/HR pairs (apply_scaled), CutBlur, MoA (issue 18, items 2 and 3)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix
from jaxmix import restoration
from jaxmix._src.core import regions
from jaxmix._src.families import restoration as impl
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
  _, floats, _ = _mixed("cutmix", (1, 3), jnp.float32)
  for leaf, ref, s in zip(leaves, floats, (1, 3), strict=True):
    assert leaf.dtype == dtype and leaf.shape == (B, s * H, s * W, 2)
    np.testing.assert_array_equal(np.asarray(leaf).astype(np.float32), np.asarray(ref))  # copies, exact


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


# --- MoA -----------------------------------------------------------------------------------------------

MOA_SIZE = 8
# moa under jit (the options traced, as a train_step passes them): one compile per shape and dtype.
MOA = jax.jit(restoration.moa, static_argnames=("return_mask", "data_format"))
DRAWS = jax.jit(impl._moa_draws, static_argnums=(0, 2))


def draws_of(op, key, alpha, prob=1.0):
  return impl._moa_draws(op, key, PAIR, jnp.float32(alpha), jnp.float32(prob), 1.2, 1.0, 255.0)


def moa_pair(dtype=jnp.float32, seed=0):
  rng = np.random.RandomState(seed)
  hr = rng.uniform(0, 255, (B, MOA_SIZE, MOA_SIZE, 3)).astype(np.float32)
  lr = rng.uniform(0, 255, (B, MOA_SIZE, MOA_SIZE, 3)).astype(np.float32)
  return jnp.asarray(lr, dtype), jnp.asarray(hr, dtype)


def official(op, d, im1, im2):
  """A NumPy transcription of the official ``augments.py`` op (im1 = HR, im2 = LR upsampled, NHWC here)
  given its draws ``d``; returns ``(im1, im2, mask)``."""
  im1, im2 = im1.copy(), im2.copy()
  mask = np.ones(im2.shape[:3], np.float32)
  if not d["on"]:
    return im1, im2, mask
  if op == "blend":
    c = d["colour"][:, None, None, :]
    return d["v"] * im1 + (1 - d["v"]) * c, d["v"] * im2 + (1 - d["v"]) * c, mask
  if op == "rgb":
    return im1[..., d["perm"]], im2[..., d["perm"]], mask
  if op == "mixup":
    r = d["index"]
    return d["v"] * im1 + (1 - d["v"]) * im1[r], d["v"] * im2 + (1 - d["v"]) * im2[r], mask
  if op == "cutout":
    keep = d["keep"].astype(np.float32)
    return im1, im2 * keep[..., None], keep
  t, b, left, right = d["region"]
  if op == "cutmix":
    r = d["index"]
    im2[:, t:b, left:right] = im2[r, t:b, left:right]
    im1[:, t:b, left:right] = im1[r, t:b, left:right]
    return im1, im2, mask
  if op == "cutmixup":
    r, v = d["index"], d["v"]
    aug2, aug1 = v * im2 + (1 - v) * im2[r], v * im1 + (1 - v) * im1[r]
    if d["mix_inside"]:
      im2[:, t:b, left:right] = aug2[:, t:b, left:right]
      im1[:, t:b, left:right] = aug1[:, t:b, left:right]
      return im1, im2, mask
    aug2[:, t:b, left:right] = im2[:, t:b, left:right]
    aug1[:, t:b, left:right] = im1[:, t:b, left:right]
    return aug1, aug2, mask
  assert op == "cutblur"
  if d["hr_inside"]:
    im2[:, t:b, left:right] = im1[:, t:b, left:right]
    return im1, im2, mask
  aug = im1.copy()
  aug[:, t:b, left:right] = im2[:, t:b, left:right]
  return im1, aug, mask


PAIR = impl._Pair(B, (MOA_SIZE, MOA_SIZE), 3, "NHWC")


@pytest.mark.parametrize("op", impl.MOA_OPS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_op_matches_a_numpy_transcription_of_the_official(op, seed):
  lr, hr = moa_pair(seed=seed)
  i = impl.MOA_OPS.index(op)
  alpha = impl.MOA_ALPHAS[i] if op != "cutout" else 0.3  # the official 0.001 drops ~no pixel of 8 x 8
  key = jax.random.key(seed)
  draws = draws_of(op, key, alpha)
  got = impl._moa_apply(op, draws, hr, lr, PAIR)
  want = official(op, jax.tree_util.tree_map(np.asarray, draws), np.asarray(hr), np.asarray(lr))
  for g, w in zip(got, want, strict=True):
    np.testing.assert_allclose(np.asarray(g), w, rtol=1e-5, atol=1e-3)
  assert bool(draws["on"])
  # moa with all the weight on this op runs exactly this op (its draws from the second half of the key)
  weights = [0.0] * 7
  weights[i] = 1.0
  alphas = list(impl.MOA_ALPHAS)
  alphas[i] = alpha
  lr_aug, hr_aug, mask = MOA(key, lr, hr, weights=weights, alphas=alphas, return_mask=True)
  draws = draws_of(op, jax.random.split(key)[1], alpha)
  want = official(op, jax.tree_util.tree_map(np.asarray, draws), np.asarray(hr), np.asarray(lr))
  for g, w in zip((hr_aug, lr_aug, mask), want, strict=True):
    np.testing.assert_allclose(np.asarray(g), w, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("op", impl.MOA_OPS)
def test_each_op_in_nchw_matches_nhwc(op):
  lr, hr = moa_pair(seed=4)
  draws = draws_of(op, jax.random.key(4), 0.3 if op == "cutout" else impl.MOA_ALPHAS[impl.MOA_OPS.index(op)])
  a = impl._moa_apply(op, draws, hr, lr, PAIR)
  nchw = PAIR._replace(data_format="NCHW")
  b = impl._moa_apply(op, draws, hr.transpose(0, 3, 1, 2), lr.transpose(0, 3, 1, 2), nchw)
  np.testing.assert_allclose(np.asarray(a[0]), np.asarray(b[0]).transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-4)
  np.testing.assert_allclose(np.asarray(a[1]), np.asarray(b[1]).transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-4)
  np.testing.assert_array_equal(np.asarray(a[2]), np.asarray(b[2]))


def test_op_draws_follow_the_official_rules():
  keys = jax.random.split(KEY, 400)
  blend = jax.vmap(lambda k: draws_of("blend", k, 0.6))(keys)
  assert 0.6 <= float(blend["v"].min()) and float(blend["v"].max()) <= 1.0
  assert 0.0 <= float(blend["colour"].min()) and float(blend["colour"].max()) <= 255.0
  cut = jax.vmap(lambda k: draws_of("cutout", k, 0.25))(keys)
  assert abs(1 - float(cut["keep"].mean()) - 0.25) < 0.01
  side = jax.vmap(lambda k: draws_of("cutmix", k, 0.7))(keys)
  sides = np.asarray(side["region"][:, 1] - side["region"][:, 0])
  assert set(np.unique(sides)) <= {5, 6}  # int(8 * (0.7 ± 0.03))
  half = jax.vmap(lambda k: draws_of("cutmixup", k, 0.7, prob=0.5))(keys)
  assert abs(float(half["on"].mean()) - 0.5) < 0.1 and abs(float(half["mix_inside"].mean()) - 0.5) < 0.1


@pytest.mark.parametrize("weights", [None, (0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4)])
def test_op_frequencies_match_the_weights(weights):
  n = 7000
  w = impl._op_weights(weights)
  ops = np.asarray(jax.vmap(lambda k: impl.draw_op(k, w))(jax.random.split(KEY, n)))
  counts = np.bincount(ops, minlength=7)
  expected = n * np.asarray(w) / float(np.sum(w))
  chi2 = float(((counts - expected) ** 2 / expected).sum())
  assert chi2 < 22.5, (counts, expected)  # chi-square, 6 degrees of freedom: p = 0.001


def test_moa_runs_the_op_it_draws():
  lr, hr = moa_pair(seed=7)
  seen = set()
  for seed in range(8):
    key = jax.random.key(seed)
    k_op, k_draw = jax.random.split(key)
    op = impl.MOA_OPS[int(impl.draw_op(k_op, jnp.ones(7)))]
    seen.add(op)
    i = impl.MOA_OPS.index(op)
    draws = DRAWS(op, k_draw, PAIR, jnp.float32(impl.MOA_ALPHAS[i]), 1.0, 1.2, 1.0, 255.0)
    want = official(op, jax.tree_util.tree_map(np.asarray, draws), np.asarray(hr), np.asarray(lr))
    got = MOA(key, lr, hr, return_mask=True)
    for g, w in zip((got[1], got[0], got[2]), want, strict=True):
      np.testing.assert_allclose(np.asarray(g), w, rtol=1e-5, atol=1e-3)
  assert len(seen) >= 4, seen


def test_moa_compiles_once_and_is_pure():
  lr, hr = moa_pair()
  traces = []

  @jax.jit
  def f(key, weights, probs, alphas, aux_alpha):
    traces.append(1)
    return restoration.moa(key, lr, hr, weights=weights, probs=probs, alphas=alphas, aux_alpha=aux_alpha)

  a = f(KEY, jnp.ones(7), jnp.ones(7), jnp.asarray(impl.MOA_ALPHAS), 1.2)
  f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
  f(jax.random.key(5), f32(np.arange(7)), f32(np.full(7, 0.5)), f32(np.full(7, 0.3)), 0.4)
  assert len(traces) == 1
  b = restoration.moa(KEY, lr, hr)
  for x, y in zip(a, b, strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-4)
  c = restoration.moa(KEY, lr, hr)
  for x, y in zip(b, c, strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_moa_keeps_dtypes_and_probs_zero_is_the_identity():
  lr, hr = moa_pair(jnp.uint8)
  for seed in range(4):
    out = MOA(jax.random.key(seed), lr, hr, probs=(0.0,) * 7)
    np.testing.assert_array_equal(np.asarray(out[0]), np.asarray(lr))
    np.testing.assert_array_equal(np.asarray(out[1]), np.asarray(hr))
  out = MOA(KEY, lr, hr)
  assert out[0].dtype == out[1].dtype == jnp.uint8
  lr, hr = moa_pair(jnp.bfloat16)
  out = jax.eval_shape(lambda: restoration.moa(KEY, lr, hr))  # bf16 stays bf16 (no compile)
  assert out[0].dtype == out[1].dtype == jnp.bfloat16


def test_moa_nchw_matches_nhwc():
  lr, hr = moa_pair()
  # The options of the transcription test above, so that the NHWC program is shared with it.
  opts = dict(weights=[1.0 / 7] * 7, alphas=list(impl.MOA_ALPHAS), return_mask=True)
  for seed in range(3):
    key = jax.random.key(seed)
    a = MOA(key, lr, hr, **opts)
    b = MOA(key, lr.transpose(0, 3, 1, 2), hr.transpose(0, 3, 1, 2), data_format="NCHW", **opts)
    np.testing.assert_allclose(np.asarray(a[0]), np.asarray(b[0]).transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(np.asarray(a[1]), np.asarray(b[1]).transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(a[2]), np.asarray(b[2]))


@pytest.mark.parametrize(
  "kwargs, error, match",
  [
    (dict(weights=(1.0, 1.0)), ValueError, "weights must be 7"),
    (dict(weights=(-1.0,) + (1.0,) * 6), ValueError, "weights must be 7"),
    (dict(probs=(1.5,) + (1.0,) * 6), ValueError, r"probs\[0\] \(blend\)"),
    (dict(alphas=(0.6, 1.0, 1.2, 1.5, 0.7, 0.7, 0.7)), ValueError, r"alphas\[3\] \(cutout\)"),
    (dict(alphas=(0.6, 1.0, -1.0, 0.1, 0.7, 0.7, 0.7)), ValueError, r"alphas\[2\] \(mixup\)"),
    (dict(aux_prob=2.0), ValueError, "aux_prob"),
    (dict(hr=jnp.zeros((B, 16, 16, 3))), ValueError, "lr and hr must have the same shape"),
    (dict(lr=jnp.zeros((B, 8, 8)), hr=jnp.zeros((B, 8, 8))), ValueError, "rank 4"),
    (dict(lr=jnp.zeros((B, 8, 8, 3), jnp.int32), hr=jnp.zeros((B, 8, 8, 3), jnp.int32)), ValueError, "int32"),
  ],
)
def test_moa_bad_input(kwargs, error, match):
  lr, hr = moa_pair()
  args = dict(lr=lr, hr=hr)
  args.update(kwargs)
  with pytest.raises(error, match=match):
    restoration.moa(KEY, **args)
