"""Mask methods on videos and volumes (issue 18, item 1): rank-5 leaves, tubes and cuboids.

A *tube* is a 2-D plan laid on the H, W of every frame of ``[B, T, H, W, C]``
(the default for rank 5); a *cuboid* is a 3-D plan over (T, H, W) or (D, H, W)
(``spatial_axes=(1, 2, 3)`` or a 3-D ``spatial_shape``). Painted-voxel tests: each
sample is filled with its own index, so a mixed voxel tells which source it came from.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix

B, T, H, W, C = 4, 3, 8, 9, 2
VIDEO = (B, T, H, W, C)
CUBOID = (1, 2, 3)
TUBE = (2, 3)
MASK_METHODS = ("cutmix", "fmix", "gridmix", "smoothmix", "resizemix")
CUBOID_METHODS = MASK_METHODS
# Methods whose every voxel is a copy of one source (SmoothMix blends).
SELECTING = ("cutmix", "fmix", "gridmix", "resizemix")
# GridMix's default grid_size (2, 7) needs every side >= 7; the clips here have T = 3 frames.
CUBOID_OPTIONS = {"gridmix": {"grid_size": (2, T)}}


def cuboid_options(name):
  return CUBOID_OPTIONS.get(name, {})


def painted(shape=VIDEO):
  """Sample i is constant i + 1 everywhere (so 0 never appears)."""
  return jnp.broadcast_to(
    jnp.arange(1, shape[0] + 1, dtype=jnp.float32).reshape((-1,) + (1,) * (len(shape) - 1)), shape
  )


def noise(seed, shape=VIDEO):
  return jax.random.uniform(jax.random.key(seed), shape) * 255.0


def one_call(name, key, x, labels=None, **kw):
  return getattr(jaxmix, name)(key, x, labels, num_classes=None if labels is None else B, **kw)


@pytest.mark.parametrize("name", CUBOID_METHODS)
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_cuboid_lam_is_the_voxel_share(name, mode):
  x = painted()
  sample = getattr(jaxmix, f"sample_{name}")
  for seed in range(3):
    plan = sample(jax.random.key(seed), B, (T, H, W), mode=mode, **cuboid_options(name))
    out = np.asarray(jaxmix.apply(plan, x))
    partner_value = np.asarray(plan.index)[:, None, None, None, None] + 1.0
    if name in SELECTING:
      own = out == np.asarray(x)
      # Every voxel comes from the sample itself or its partner, the same on every channel.
      assert np.all(own | (out == partner_value))
      np.testing.assert_array_equal(own[..., 0], own[..., 1])
      share = own[..., 0].mean(axis=(1, 2, 3))
    else:
      # A blend: each voxel's own weight read back from the painted values (self-pairs are unmixed).
      own_value = np.asarray(x)
      gap = np.where(own_value == partner_value, 1.0, own_value - partner_value)
      weight = np.where(own_value == partner_value, 1.0, (out - partner_value) / gap)
      assert weight.min() >= -1e-6 and weight.max() <= 1 + 1e-6
      np.testing.assert_allclose(weight[..., 0], weight[..., 1], atol=1e-6)
      share = weight[..., 0].mean(axis=(1, 2, 3))
    np.testing.assert_allclose(plan.lam, share, atol=1e-5)
    # The one-call form agrees, and its soft labels carry the same weights.
    got, y = one_call(
      name, jax.random.key(seed), x, jnp.arange(B), mode=mode, spatial_axes=CUBOID, **cuboid_options(name)
    )
    np.testing.assert_array_equal(got, out)
    np.testing.assert_allclose(y[np.arange(B), np.arange(B)] + 0.0, np.where(
      np.asarray(plan.index) == np.arange(B), 1.0, share), atol=1e-5)


def test_cutmix_cuboid_is_a_box_with_cube_root_sides():
  x = painted()
  for seed in range(4):
    plan = jaxmix.sample_cutmix(jax.random.key(seed), B, (T, H, W), mode="elem", correct_lam=False)
    assert plan.region.shape == (B, 6)
    out = np.asarray(jaxmix.apply(plan, x))[..., 0]
    for i in range(B):
      if int(plan.index[i]) == i:
        continue
      f, b, t, bo, le, r = (int(v) for v in plan.region[i])
      box = np.zeros((T, H, W), bool)
      box[f:b, t:bo, le:r] = True
      np.testing.assert_array_equal(out[i] != i + 1, box)
  # Sides are int(S·∛(1 - λ)): λ = 7/8 halves every side of an 8 × 8 × 8 volume (64 of 512 voxels).
  from jaxmix._src.methods import cutmix as cutmix_lib

  box, lam = cutmix_lib.draw_boxes(jax.random.key(0), jnp.array([0.875]), (8, 8, 8), correct_lam=False)
  f, b, t, bo, le, r = (int(v) for v in box[0])
  assert (b - f, bo - t, r - le) == (4, 4, 4)
  np.testing.assert_allclose(lam, [1 - 64 / 512])


@pytest.mark.parametrize("name", CUBOID_METHODS)
def test_cuboid_masks_vary_across_depth(name):
  # Painted samples are constant, so a tube would give the same mixed frame at every t.
  x = painted()
  varies = False
  for seed in range(4):
    out, _ = one_call(name, jax.random.key(seed), x, spatial_axes=CUBOID, mode="elem", **cuboid_options(name))
    out = np.asarray(out)[..., 0]
    varies |= any(not np.array_equal(out[i, 0], out[i, t]) for i in range(B) for t in range(1, T))
  assert varies


def test_gridmix_cuboid_cells_are_constant_and_cut_every_axis():
  d, h, w = 6, 9, 12
  plan = jaxmix.sample_gridmix(jax.random.key(2), 16, (d, h, w), grid_size=3, mode="elem")
  partner = 1.0 - np.asarray(plan.own_weight())
  assert partner.shape == (16, d, h, w)
  cells = [np.arange(s) * 3 // s for s in (d, h, w)]
  seen = set()
  for m in partner:
    for i in range(3):
      for j in range(3):
        for k in range(3):
          cell = m[np.ix_(cells[0] == i, cells[1] == j, cells[2] == k)]
          assert cell.min() == cell.max()
          seen.add((i, cell.min()))
  # Cells at every depth are both taken and kept: the grid cuts D too.
  assert seen == {(i, v) for i in range(3) for v in (0.0, 1.0)}
  # A hole takes the first corner cube of side hole · cell: 1/8 of a chosen cell at hole = 0.5.
  plan = jaxmix.sample_gridmix(
    jax.random.key(3), 4, (8, 8, 8), grid_size=2, cell_prob=1.0, hole=0.5, mode="elem"
  )
  partner = 1.0 - np.asarray(plan.own_weight())
  expected = np.zeros((8, 8, 8))
  for corner in np.ndindex(2, 2, 2):
    expected[tuple(slice(4 * c, 4 * c + 2) for c in corner)] = 1.0
  np.testing.assert_array_equal(partner, np.broadcast_to(expected, partner.shape))
  np.testing.assert_allclose(plan.lam, 1 - 1 / 8)


def test_smoothmix_cuboid_gaussian_has_one_sigma_share_per_axis():
  d, h, w = 6, 10, 14
  for seed in range(3):
    plan = jaxmix.sample_smoothmix(jax.random.key(seed), 4, (d, h, w), mode="elem")
    g = 1.0 - np.asarray(plan.own_weight(), np.float64)
    for m in g:
      centre = np.unravel_index(np.argmax(m), m.shape)
      np.testing.assert_allclose(m[centre], 1.0, atol=1e-6)
      shares = []
      for axis, size in enumerate((d, h, w)):
        line = np.moveaxis(m, axis, 0)[(slice(None),) + tuple(c for a, c in enumerate(centre) if a != axis)]
        x = np.arange(size) - centre[axis]
        far = np.flatnonzero(x != 0)[0]
        sigma = abs(x[far]) / np.sqrt(-2 * np.log(line[far]))
        shares.append(sigma / size)
        # The profile along each axis is the Gaussian of that σ (the mask is separable).
        np.testing.assert_allclose(line, np.exp(-(x**2) / (2 * sigma**2)), rtol=1e-4, atol=1e-6)
      # σ = s · (D, H, W) with one s ~ U(0.25, 0.5) for all three axes.
      np.testing.assert_allclose(shares, shares[0], rtol=1e-3)
      assert 0.25 - 1e-4 <= shares[0] <= 0.5 + 1e-4


@pytest.mark.parametrize("interpolation", ["nearest-exact", "bilinear"])
def test_resizemix_cuboid_holds_the_whole_partner_resized(interpolation):
  d, h, w = 6, 10, 12
  x = noise(11, (B, d, h, w, C))
  for seed in range(3):
    plan = jaxmix.sample_resizemix(
      jax.random.key(seed), B, (d, h, w), mode="elem", interpolation=interpolation
    )
    assert plan.region.shape == (B, 6)
    out = np.asarray(jaxmix.apply(plan, x))
    for i in range(B):
      f, b, t, bo, le, r = (int(v) for v in plan.region[i])
      inside = np.zeros((d, h, w), bool)
      inside[f:b, t:bo, le:r] = True
      np.testing.assert_array_equal(out[i][~inside], np.asarray(x)[i][~inside])
      np.testing.assert_allclose(plan.lam[i], 1 - inside.mean(), atol=1e-6)
      if not inside.any():
        continue
      # jax.image.resize: half-pixel centres, as torch's nearest-exact and (tri)linear without antialiasing.
      partner = x[int(plan.index[i])]
      ref = jax.image.resize(
        partner, (b - f, bo - t, r - le, C), "nearest" if interpolation == "nearest-exact" else "linear",
        antialias=False,
      )
      np.testing.assert_allclose(out[i, f:b, t:bo, le:r], ref, rtol=1e-5, atol=1e-3)
  # Unclipped cuboids have sides int(τ·S) with one τ for all three axes.
  for seed in range(20):
    plan = jaxmix.sample_resizemix(jax.random.key(seed), 8, (d, h, w), mode="elem", scale_range=(0.3, 0.9))
    for box in np.asarray(plan.region):
      sides = box[1::2] - box[::2]
      if box[0] == 0 or box[2] == 0 or box[4] == 0 or box[1] == d or box[3] == h or box[5] == w:
        continue  # clipped
      sizes = np.array([d, h, w])
      assert (sides / sizes).max() <= ((sides + 1) / sizes).min()


@pytest.mark.parametrize("name", MASK_METHODS)
@pytest.mark.parametrize("spatial_axes", [None, TUBE])
def test_tube_masks_are_identical_across_frames(name, spatial_axes):
  x = noise(0)
  for seed in range(2):
    key = jax.random.key(seed)
    out, _ = one_call(name, key, x, mode="elem", spatial_axes=spatial_axes)
    # The same 2-D plan on every frame: each frame is mixed as the image it is.
    plan = getattr(jaxmix, f"sample_{name}")(key, B, (H, W), mode="elem")
    for t in range(T):
      np.testing.assert_allclose(out[:, t], jaxmix.apply(plan, x[:, t]), rtol=1e-6, atol=1e-4)
    own = np.asarray(jaxmix.apply(plan, painted()))[..., 0] == np.asarray(painted())[..., 0]
    for t in range(1, T):
      np.testing.assert_array_equal(own[:, 0], own[:, t])


def test_tube_is_the_default_and_nchw_equals_nhwc():
  x = noise(1)
  key = jax.random.key(3)
  for name in MASK_METHODS:
    default, y1 = one_call(name, key, x, jnp.arange(B))
    tube, y2 = one_call(name, key, x, jnp.arange(B), spatial_axes=TUBE)
    chex.assert_trees_all_equal((default, y1), (tube, y2))
    nchw, _ = one_call(name, key, jnp.moveaxis(x, -1, 1), data_format="NCHW")
    np.testing.assert_allclose(jnp.moveaxis(nchw, 1, -1), default, rtol=1e-6, atol=1e-4)
  for name in CUBOID_METHODS:
    opts = cuboid_options(name)
    cuboid, _ = one_call(name, key, x, spatial_axes=CUBOID, **opts)
    nchw, _ = one_call(name, key, jnp.moveaxis(x, -1, 1), data_format="NCHW", spatial_axes=(2, 3, 4), **opts)
    np.testing.assert_allclose(jnp.moveaxis(nchw, 1, -1), cuboid, rtol=1e-6, atol=1e-4)
    # A 3-D plan's default axes on rank 5 are the three before the channels.
    plan = getattr(jaxmix, f"sample_{name}")(key, B, (T, H, W), **opts)
    np.testing.assert_array_equal(jaxmix.apply(plan, x), cuboid)


def test_rank4_spatial_axes_equal_the_default():
  x = noise(2, (B, H, W, C))
  key = jax.random.key(5)
  for name in MASK_METHODS:
    chex.assert_trees_all_equal(one_call(name, key, x), one_call(name, key, x, spatial_axes=(1, 2)))


def test_volume_without_channels():
  # [B, D, H, W] with a 3-D plan: the leaf's axes 1, 2, 3 by default.
  x = painted((B, T, H, W))
  plan = jaxmix.sample_cutmix(jax.random.key(1), B, (T, H, W), mode="elem")
  out = np.asarray(jaxmix.apply(plan, x))
  np.testing.assert_allclose((out == np.asarray(x)).mean(axis=(1, 2, 3)), plan.lam, atol=1e-6)


@pytest.mark.parametrize("name", CUBOID_METHODS)
@pytest.mark.parametrize("spatial_axes", [TUBE, CUBOID])
def test_jit_equals_eager(name, spatial_axes):
  x, labels = noise(3), jnp.arange(B)

  def f(key):
    return one_call(name, key, x, labels, mode="elem", spatial_axes=spatial_axes, **cuboid_options(name))

  chex.assert_trees_all_close(jax.jit(f)(jax.random.key(7)), f(jax.random.key(7)), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", CUBOID_METHODS)
def test_vmap_over_keys_equals_loop(name):
  x, labels = noise(4), jnp.arange(B)
  keys = jax.random.split(jax.random.key(8), 3)

  def f(key):
    return one_call(name, key, x, labels, mode="elem", spatial_axes=CUBOID, **cuboid_options(name))

  batched = jax.jit(jax.vmap(f))(keys)
  for i in range(3):
    chex.assert_trees_all_close(jax.tree.map(lambda t, i=i: t[i], batched), f(keys[i]), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", MASK_METHODS + ("mixup",))
@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.bfloat16])
def test_dtype_kept(name, dtype):
  x = jnp.round(noise(5)).astype(dtype)
  kw = {} if name == "mixup" else {"spatial_axes": CUBOID, **cuboid_options(name)}
  out, _ = one_call(name, jax.random.key(9), x, mode="elem", **kw)
  ref, _ = one_call(name, jax.random.key(9), x.astype(jnp.float32), mode="elem", **kw)
  assert out.dtype == dtype and out.shape == x.shape
  if dtype == jnp.uint8:
    assert np.abs(np.asarray(out, np.float64) - np.clip(np.round(np.asarray(ref)), 0, 255)).max() <= 1
  else:
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("name", SELECTING)
@pytest.mark.parametrize("spatial_axes", [TUBE, CUBOID])
def test_video_and_voxel_label_map_follow_one_plan(name, spatial_axes):
  # int32 ids are exact under plans that select voxels; SmoothMix blends, so it refuses them (test_contract
  # covers its float and uint8 leaves).
  video = jnp.round(noise(6))
  seg = video[..., 0].astype(jnp.int32)  # a per-voxel label map [B, T, H, W]
  opts = cuboid_options(name) if spatial_axes == CUBOID else {}
  out, y = one_call(name, jax.random.key(10), {"video": video, "seg": seg}, jnp.arange(B), mode="elem",
                    spatial_axes=spatial_axes, **opts)
  assert out["seg"].dtype == jnp.int32
  np.testing.assert_array_equal(out["seg"], out["video"][..., 0].astype(jnp.int32))
  alone, y_alone = one_call(
    name, jax.random.key(10), video, jnp.arange(B), mode="elem", spatial_axes=spatial_axes, **opts
  )
  np.testing.assert_array_equal(out["video"], alone)
  np.testing.assert_array_equal(y, y_alone)


@pytest.mark.parametrize("spatial_axes", [None, CUBOID])
def test_mixup_cutmix_on_videos(spatial_axes):
  x = painted()
  for seed in range(3):
    key = jax.random.key(seed)
    out, y = jaxmix.mixup_cutmix(key, x, jnp.arange(B), num_classes=B, mixup_alpha=1.0, cutmix_alpha=1.0,
                                 mode="elem", spatial_axes=spatial_axes)
    # Each voxel is a weighted mean of the sample and its partner: the mean value is the label-weighted one.
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3, 4)), y @ jnp.arange(1, B + 1.0), rtol=1e-5)
    if spatial_axes is None:
      plan = jaxmix.sample_mixup_cutmix(key, B, (H, W), mixup_alpha=1.0, cutmix_alpha=1.0, mode="elem")
      for t in range(T):
        np.testing.assert_array_equal(out[:, t], jaxmix.apply(plan, x[:, t]))


def test_mixup_mixes_any_rank():
  x = noise(7)
  out, y = jaxmix.mixup(jax.random.key(1), x, jnp.arange(B), num_classes=B)
  plan = jaxmix.sample_mixup(jax.random.key(1), B)
  lam = np.asarray(plan.lam)[:, None, None, None, None]
  np.testing.assert_allclose(out, lam * x + (1 - lam) * x[np.asarray(plan.index)], rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize(
  ("kwargs", "error", "match"),
  [
    (dict(spatial_axes=(0, 1)), ValueError, "spatial_axes must be distinct, increasing axes >= 1"),
    (dict(spatial_axes=(3, 2)), ValueError, "spatial_axes must be distinct"),
    (dict(spatial_axes=(2, 2)), ValueError, "spatial_axes must be distinct"),
    (dict(spatial_axes=(2, 5)), ValueError, r"spatial_axes=\(2, 5\) names axis 5, but inputs has shape"),
    (dict(spatial_axes="hw"), TypeError, "spatial_axes must be a tuple of ints"),
    (dict(spatial_axes=(1, 2, 3, 4)), ValueError, "names 4 axes, but this method draws masks of 2 or 3"),
  ],
)
def test_bad_spatial_axes(kwargs, error, match):
  with pytest.raises(error, match=match):
    jaxmix.cutmix(jax.random.key(0), noise(0), **kwargs)


def test_bad_inputs_errors():
  key = jax.random.key(0)
  for name in MASK_METHODS:
    # Four axes, or an axis the leaves do not have, name spatial_axes.
    with pytest.raises(ValueError, match=r"spatial_axes=\(1, 2, 3, 4\) names 4 axes.*2 or 3 spatial dims"):
      one_call(name, key, noise(0), spatial_axes=(1, 2, 3, 4))
    with pytest.raises(ValueError, match=r"spatial_axes=\(1, 2, 5\) names axis 5, but inputs has shape"):
      one_call(name, key, noise(0), spatial_axes=(1, 2, 5))
  # GridMix's grid must fit the shortest side of the cuboid (T = 3 here), as it fits min(H, W) in 2-D.
  with pytest.raises(ValueError, match=r"grid_size must satisfy .*min\(D, H, W\) = 3, got \(2, 7\)"):
    jaxmix.gridmix(key, noise(0), spatial_axes=CUBOID)
  # Leaves that disagree on the spatial axes.
  with pytest.raises(ValueError, match=r"Every leaf of inputs must share the spatial shape"):
    jaxmix.cutmix(key, {"a": noise(0), "b": noise(0, (B, T + 1, H, W, C))}, spatial_axes=CUBOID)
  with pytest.raises(ValueError, match=r"Every leaf of inputs must share the spatial shape"):
    jaxmix.fmix(key, {"a": noise(0), "b": noise(0, (B, T, H + 1, W, C))})
  # A label map without a channel axis beside a video: the error says to name the axes.
  with pytest.raises(ValueError, match=r"share the spatial shape \(H, W\).*spatial_axes=\(2, 3\) for tubes"):
    jaxmix.cutmix(key, {"video": noise(0), "seg": noise(0)[..., 0]})
  # Rank 6 has no default axes.
  with pytest.raises(ValueError, match=r"video/volume batch of rank 5.*spatial_axes="):
    jaxmix.cutmix(key, noise(0, (B, 2, T, H, W, C)))
  # A plan for another shape, or another number of axes.
  plan = jaxmix.sample_cutmix(key, B, (T, H, W))
  with pytest.raises(ValueError, match=r"tree has spatial shape \(3, 9, 8\) but the plan was sampled"):
    jaxmix.apply(plan, noise(0, (B, T, W, H, C)))
  with pytest.raises(ValueError, match=r"spatial_axes=\(2, 3\) names 2 axes but the plan has 3 spatial dims"):
    jaxmix.apply(plan, noise(0), spatial_axes=TUBE)
  # A 4-D spatial_shape, and a 3-D one for a 2-D sampler.
  with pytest.raises(ValueError, match="spatial_shape must be"):
    jaxmix.sample_cutmix(key, B, (2, T, H, W))
  for name in ("gridmix", "smoothmix", "resizemix"):
    with pytest.raises(ValueError, match="spatial_shape must be"):
      getattr(jaxmix, f"sample_{name}")(key, B, (2, T, H, W))
  with pytest.raises(ValueError, match="spatial_shape must be"):
    jaxmix.sample_specmix(key, B, (T, H, W))
  # Image-only plans refuse spatial_axes, and image-only methods refuse rank 5 as before.
  plan = jaxmix.sample_mosaic(key, B, (H, W))
  with pytest.raises(ValueError, match="spatial_axes=.* cannot be used with a MosaicPlan"):
    jaxmix.apply(plan, noise(0), spatial_axes=TUBE)
  # SaliencyMix's built-in map is 2-D: videos and volumes need an explicit saliency (tests below).
  with pytest.raises(ValueError, match="saliency is required for videos and volumes"):
    jaxmix.saliencymix(key, noise(0))


# A traced option of each method that changes the cuboid without changing a shape.
TRACED_OPTIONS = {
  "gridmix": ("cell_prob", 0.3, 0.7),
  "smoothmix": ("sigma_range", (0.2, 0.3), (0.3, 0.5)),
  "resizemix": ("scale_range", (0.2, 0.5), (0.5, 0.9)),
}


@pytest.mark.parametrize("name", sorted(TRACED_OPTIONS))
def test_cuboid_traced_options_do_not_retrace(name):
  option, first, second = TRACED_OPTIONS[name]
  x = noise(12)
  chex.clear_trace_counter()  # chex counts traces per function body, across the parameters

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(key, value):
    opts = {option: value, **cuboid_options(name)}
    return one_call(name, key, x, mode="elem", spatial_axes=CUBOID, **opts)[0]

  key = jax.random.key(4)
  out_first = f(key, jax.tree.map(jnp.float32, first))
  out_second = f(key, jax.tree.map(jnp.float32, second))
  assert not np.array_equal(out_first, out_second)


# The guided methods (issue 18, item 1): SaliencyMix and Attentive CutMix take their data at the rank of
# the plan: a map [B, h, w] gives tubes (the default on rank 5), a volume [B, d, h, w] gives cuboids.
GUIDED = ("saliencymix", "attentive_cutmix")


def guided_data(name, spatial_shape, seed=0, grid=None):
  """The data a guided method draws from, at the rank of `spatial_shape` (saliency at full size by
  default, features on a grid of at most 3 cells per axis, which does not divide H or W)."""
  key = jax.random.key(100 + seed)
  if name == "saliencymix":
    return {"saliency": jax.random.uniform(key, (B, *(grid or spatial_shape)))}
  return {"features": jax.random.uniform(key, (B, *(grid or tuple(min(3, s) for s in spatial_shape))))}


def _own_share(plan, x):
  out = np.asarray(jaxmix.apply(plan, x))
  own = out == np.asarray(x)
  partner_value = np.asarray(plan.index).reshape((-1,) + (1,) * (x.ndim - 1)) + 1.0
  assert np.all(own | (out == partner_value))  # every voxel is a copy of one of the two sources
  return out, own


@pytest.mark.parametrize("name", GUIDED)
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_guided_cuboid_lam_is_the_voxel_share(name, mode):
  x = painted()
  sample = getattr(jaxmix, f"sample_{name}")
  for seed in range(3):
    data = guided_data(name, (T, H, W), seed)
    plan = sample(jax.random.key(seed), B, (T, H, W), mode=mode, **data)
    out, own = _own_share(plan, x)
    np.testing.assert_array_equal(own[..., 0], own[..., 1])
    share = own[..., 0].mean(axis=(1, 2, 3))
    np.testing.assert_allclose(plan.lam, share, atol=1e-6)
    got, y = one_call(name, jax.random.key(seed), x, jnp.arange(B), mode=mode, spatial_axes=CUBOID, **data)
    np.testing.assert_array_equal(got, out)
    np.testing.assert_allclose(
      np.diagonal(np.asarray(y)), np.where(np.asarray(plan.index) == np.arange(B), 1.0, share), atol=1e-6
    )


@pytest.mark.parametrize("name", GUIDED)
@pytest.mark.parametrize("spatial_axes", [None, TUBE])
def test_guided_tubes_are_identical_across_frames(name, spatial_axes):
  x = noise(20)
  for seed in range(2):
    key, data = jax.random.key(seed), guided_data(name, (H, W), seed)
    out, y = one_call(name, key, x, jnp.arange(B), mode="elem", spatial_axes=spatial_axes, **data)
    plan = getattr(jaxmix, f"sample_{name}")(key, B, (H, W), mode="elem", **data)
    for t in range(T):
      np.testing.assert_array_equal(out[:, t], jaxmix.apply(plan, x[:, t]))
    np.testing.assert_allclose(y, jaxmix.mix_labels(plan, jnp.arange(B), num_classes=B), atol=1e-6)
    _, own = _own_share(plan, painted())
    for t in range(1, T):
      np.testing.assert_array_equal(own[:, 0], own[:, t])
  # NCHW videos get the same tube.
  data = guided_data(name, (H, W))
  nchw, _ = one_call(name, jax.random.key(0), jnp.moveaxis(x, -1, 1), data_format="NCHW", **data)
  np.testing.assert_array_equal(jnp.moveaxis(nchw, 1, -1), one_call(name, jax.random.key(0), x, **data)[0])


@pytest.mark.parametrize("name", GUIDED)
def test_guided_cuboids_vary_along_depth(name):
  x = painted()
  varies = False
  for seed in range(4):
    data = guided_data(name, (T, H, W), seed)
    out, _ = one_call(name, jax.random.key(seed), x, spatial_axes=CUBOID, mode="elem", **data)
    out = np.asarray(out)[..., 0]
    varies |= any(not np.array_equal(out[i, 0], out[i, t]) for i in range(B) for t in range(1, T))
  assert varies


@pytest.mark.parametrize("grid", [None, (2, 3, 4)])  # a volume at full size, or on a coarse grid
def test_saliencymix_cuboid_is_centred_on_the_partners_peak_voxel(grid):
  d, h, w = 6, 10, 12
  rng = np.random.RandomState(0)
  checked = 0
  for seed in range(6):
    shape = grid or (d, h, w)
    sal = rng.uniform(size=(B, *shape)).astype(np.float32) * 0.5
    peaks = [tuple(rng.randint(0, s) for s in shape) for _ in range(B)]
    for i, p in enumerate(peaks):
      sal[(i, *p)] = 1.0
    plan = jaxmix.sample_saliencymix(
      jax.random.key(seed), B, (d, h, w), saliency=jnp.asarray(sal), mode="elem"
    )
    assert plan.region.shape == (B, 6)
    for i in range(B):
      j = int(plan.index[i])
      if j == i:
        continue
      # The centre in voxels: the peak voxel itself, or the voxel holding its cell's centre.
      centre = [int(np.floor((c + 0.5) * s / g)) for c, s, g in zip(peaks[j], (d, h, w), shape, strict=True)]
      box = np.asarray(plan.region[i])
      starts, stops = box[::2], box[1::2]
      sides = stops - starts
      if sides.min() == 0:
        continue
      # The peak lies in the cuboid; on every axis the box is [c - cut//2, c - cut//2 + cut) clipped.
      assert np.all((starts <= centre) & (np.asarray(centre) < stops)), (box, centre)
      for a, (c, size) in enumerate(zip(centre, (d, h, w), strict=True)):
        if 0 < starts[a] and stops[a] < size:
          assert starts[a] == c - sides[a] // 2
      inside = np.zeros((d, h, w), bool)
      inside[starts[0] : stops[0], starts[1] : stops[1], starts[2] : stops[2]] = True
      np.testing.assert_allclose(plan.lam[i], 1 - inside.mean(), atol=1e-6)
      checked += 1
  assert checked >= 10
  # Unclipped cuboids have sides int(S·∛(1 - λ)), one ratio on every axis.
  sal = jnp.zeros((B, d, h, w)).at[:, d // 2, h // 2, w // 2].set(1.0)
  for seed in range(10):
    plan = jaxmix.sample_saliencymix(jax.random.key(seed), B, (d, h, w), saliency=sal, mode="elem")
    for box in np.asarray(plan.region):
      sides, sizes = box[1::2] - box[::2], np.array([d, h, w])
      if box[0] == 0 or box[2] == 0 or box[4] == 0 or box[1] == d or box[3] == h or box[5] == w:
        continue
      assert (sides / sizes).max() <= ((sides + 1) / sizes).min()


def test_attentive_cuboid_pastes_the_partners_top_k_cells():
  from jaxmix._src.methods.attentive import cell_of

  d, h, w = 5, 8, 9
  grid = (2, 3, 3)  # cells of unequal sizes on every axis
  x = painted((B, d, h, w, C))
  for seed in range(3):
    feats = jax.random.uniform(jax.random.key(seed), (B, *grid))
    plan = jaxmix.sample_attentive_cutmix(jax.random.key(seed), B, (d, h, w), features=feats, top_k=4)
    out, own = _own_share(plan, x)
    cells = np.ix_(*(cell_of(s, g) for s, g in zip((d, h, w), grid, strict=True)))
    for i in range(B):
      j = int(plan.index[i])
      if j == i:
        continue
      top = np.argsort(-np.asarray(feats[j]).reshape(-1), kind="stable")[:4]
      chosen = np.zeros(grid, bool).reshape(-1)
      chosen[top] = True
      expected = chosen.reshape(grid)[cells]
      np.testing.assert_array_equal(~own[i, ..., 0], expected)
      np.testing.assert_allclose(plan.lam[i], 1 - expected.mean(), atol=1e-6)


@pytest.mark.parametrize("name", GUIDED)
def test_guided_jit_equals_eager_vmap_and_rank4_axes(name):
  x, labels = noise(21), jnp.arange(B)
  data = guided_data(name, (T, H, W))

  def f(key):
    return one_call(name, key, x, labels, mode="elem", spatial_axes=CUBOID, **data)

  chex.assert_trees_all_close(jax.jit(f)(jax.random.key(7)), f(jax.random.key(7)), rtol=1e-6, atol=1e-4)
  keys = jax.random.split(jax.random.key(8), 2)
  batched = jax.jit(jax.vmap(f))(keys)
  for i in range(2):
    chex.assert_trees_all_close(jax.tree.map(lambda t, i=i: t[i], batched), f(keys[i]), rtol=1e-6, atol=1e-4)
  # Rank 4 with spatial_axes=(1, 2) is the default (also for SaliencyMix's built-in map).
  image = noise(22, (B, H, W, C))
  data = guided_data(name, (H, W))
  chex.assert_trees_all_equal(one_call(name, jax.random.key(5), image, **data),
                              one_call(name, jax.random.key(5), image, spatial_axes=(1, 2), **data))
  if name == "saliencymix":
    chex.assert_trees_all_equal(jaxmix.saliencymix(jax.random.key(5), image),
                                jaxmix.saliencymix(jax.random.key(5), image, spatial_axes=(1, 2)))


@pytest.mark.parametrize(("name", "option"), [("saliencymix", "alpha"), ("attentive_cutmix", "prob")])
def test_guided_cuboid_traced_options_do_not_retrace(name, option):
  x = noise(23)
  data = guided_data(name, (T, H, W))
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(key, value):
    return one_call(name, key, x, mode="elem", spatial_axes=CUBOID, **{option: value}, **data)[0]

  key = jax.random.key(4)
  first, second = f(key, jnp.float32(1.0)), f(key, jnp.float32(0.0))  # 0 turns mixing off
  assert not np.array_equal(first, second)
  np.testing.assert_array_equal(second, x)


def test_guided_bad_inputs_errors():
  key, x = jax.random.key(0), noise(0)
  sal2, sal3 = guided_data("saliencymix", (H, W)), guided_data("saliencymix", (T, H, W))
  feat2, feat3 = guided_data("attentive_cutmix", (H, W)), guided_data("attentive_cutmix", (T, H, W))
  for name, data in (("saliencymix", sal3), ("attentive_cutmix", feat3)):
    with pytest.raises(ValueError, match=r"spatial_axes=\(1, 2, 3, 4\) names 4 axes.*2 or 3 spatial dims"):
      one_call(name, key, x, spatial_axes=(1, 2, 3, 4), **data)
    with pytest.raises(ValueError, match=r"spatial_axes=\(1, 2, 5\) names axis 5, but inputs has shape"):
      one_call(name, key, x, spatial_axes=(1, 2, 5), **data)
    with pytest.raises(ValueError, match="spatial_axes must be distinct"):
      one_call(name, key, x, spatial_axes=(3, 2), **data)
  # A volume where a tube's map is expected, and a map where a cuboid's volume is expected, name the data.
  with pytest.raises(ValueError, match=r"saliency must be \[B, h, w\].*axes=\(1, 2, 3\).*\(4, 3, 8, 9"):
    jaxmix.saliencymix(key, x, **sal3)
  with pytest.raises(ValueError, match=r"saliency must be \[B, d, h, w\].*draws tubes.*shape \(4, 8, 9\)"):
    jaxmix.saliencymix(key, x, spatial_axes=CUBOID, **sal2)
  with pytest.raises(ValueError, match=r"saliency must be \[B, d, h, w\]"):
    jaxmix.sample_saliencymix(key, B, (T, H, W), **sal2)
  with pytest.raises(ValueError, match=r"features must be \[B, h, w\].*spatial_axes=\(1, 2, 3\)"):
    jaxmix.attentive_cutmix(key, x, **feat3)
  with pytest.raises(ValueError, match=r"features must be \[B, d, h, w\].*draws tubes"):
    jaxmix.attentive_cutmix(key, x, spatial_axes=CUBOID, **feat2)
  with pytest.raises(ValueError, match=r"features must be \[B, d, h, w\].*mean\(-1\)"):
    jaxmix.sample_attentive_cutmix(key, B, (T, H, W), features=jnp.ones((B, 2, 2, 2, 5)))
  with pytest.raises(ValueError, match=r"features grid \(4, 2, 2\) is finer than the volumes \(3, 8, 9\)"):
    jaxmix.attentive_cutmix(key, x, spatial_axes=CUBOID, features=jnp.ones((B, 4, 2, 2)))
  with pytest.raises(ValueError, match=r"top_k must be an int in \[1, d·h·w\] = \[1, 27\]"):
    jaxmix.attentive_cutmix(key, x, spatial_axes=CUBOID, top_k=28, **feat3)
  # The built-in map is 2-D: rank 5, or axes other than the images' (H, W), need an explicit saliency.
  with pytest.raises(ValueError, match=r"saliency is required for videos and volumes.*video.mean\(axis=1\)"):
    jaxmix.saliencymix(key, x)
  with pytest.raises(ValueError, match="saliency is required for videos and volumes"):
    jaxmix.saliencymix(key, x, spatial_axes=CUBOID)
  with pytest.raises(ValueError, match="saliency is required for videos and volumes"):
    jaxmix.saliencymix(key, noise(0, (B, H, W, C)), spatial_axes=(1, 3))
