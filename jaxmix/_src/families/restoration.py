"""Restoration pairs: one plan for leaves of several resolutions, CutBlur, and MoA.

Yoo, Ahn and Sohn, "Rethinking Data Augmentation for Image Super-resolution: A
Comprehensive Analysis and a New Strategy", CVPR 2020; official code
github.com/clovaai/cutblur (``augments.py``, ``option.py``, ``solver.py``).
The official code is read for its algorithm and defaults; nothing is copied.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import regions
from jaxmix._src.core import sampling
from jaxmix._src.core import validation

CUTBLUR_MODES = ("batch", "elem")


# --- scale-aware plans -------------------------------------------------------------------------------


def _factors(path: str, hw: tuple[int, int], plan_hw: tuple[int, int]) -> tuple[int, int]:
  """The integer factor of each spatial axis of a leaf of spatial shape `hw` over the plan's."""
  ok = all(h >= p and h % p == 0 for h, p in zip(hw, plan_hw, strict=True))
  if not ok:
    raise ValueError(
      f"apply_scaled: {path} has spatial shape {hw}, which is not an integer multiple (>= 1) of the plan's "
      f"spatial shape {plan_hw}; every leaf of tree must be s times the plan's (H, W) on each axis for "
      "an integer s (e.g. an LR input (h, w) and its x4 HR target (4h, 4w)). Draw the plan at the "
      "smallest leaf's resolution."
    )
  return hw[0] // plan_hw[0], hw[1] // plan_hw[1]


def _scale_plan(plan: plan_lib.Plan, factors: tuple[int, int]) -> plan_lib.Plan:
  """`plan` at `factors` times its resolution: regions scaled, masks repeated (nearest), λ unchanged."""
  sy, sx = factors
  if (sy, sx) == (1, 1):
    return plan
  assert plan.spatial_shape is not None  # apply_scaled passes only plans with a spatial shape
  h, w = plan.spatial_shape
  region = plan.region
  if region is not None:
    region = region * jnp.asarray([sy, sy, sx, sx], region.dtype)
  mask = plan.mask
  if mask is not None:
    mask = jnp.repeat(jnp.repeat(mask, sy, axis=1), sx, axis=2)
  return plan.replace(region=region, mask=mask, spatial_shape=(h * sy, w * sx))


def apply_scaled(plan: Any, tree: Any, *, data_format: str = "NHWC") -> Any:
  """Applies one plan to leaves whose resolutions differ by integer factors (LR/HR pairs).

  Draw the plan at the smallest leaf's (H, W), e.g. the LR input's ``(h, w)``;
  a leaf of spatial shape ``(s·h, t·w)`` (integers s, t >= 1) gets the
  plan's region scaled by s rows and t columns (a CutMix box ``(top, bottom,
  left, right)`` becomes ``(s·top, s·bottom, t·left, t·right)``) and its
  mask repeated s × t times (nearest upsampling: FMix, GridMix, ...). Every
  HR pixel then comes from the source of its LR parent pixel, so the pair
  stays aligned, and each sample's own share is the same in every leaf:
  ``plan.lam`` holds for all of them. A blend (MixUp) has no region and no
  mask, so it applies unchanged to leaves of any size. Dtypes are kept as
  :func:`jaxmix.apply` keeps them (uint8 included).

  This is a function of the family rather than a ``scale`` option of
  :func:`jaxmix.apply`: the core's contract (every leaf shares the plan's
  (H, W), anything else is an error) stays as it is, and scaling needs only
  the fields of a two-source :class:`jaxmix.Plan`, so no plan type has to
  learn about resolutions. Other plan types with a spatial shape (ResizeMix,
  Mosaic) are applied only to leaves of the plan's own shape.

  Args:
    plan: a plan from a ``sample_*`` function, drawn at the smallest leaf's
      (H, W) (or with no spatial shape, e.g. MixUp's).
    tree: an array or pytree of arrays sharing the batch axis; each leaf
      ``[B, H, W]`` or rank 4 in `data_format` with (H, W) an integer
      multiple of the plan's.
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` for rank-4 leaves.

  Returns:
    A pytree like `tree` with mixed leaves of the same shapes and dtypes.

  Raises:
    ValueError: a leaf smaller than the plan, or not an integer multiple of
      it (the message names the leaf and both shapes).
    TypeError: a plan with a spatial shape that is not a two-source
      :class:`jaxmix.Plan`, given a leaf of another size.

  Example:
    >>> plan = jaxmix.sample_cutmix(key, 8, (8, 8), alpha=1.0)       # at the LR size
    >>> lr, hr = jaxmix.restoration.apply_scaled(plan, (lr, hr))     # hr: [8, 32, 32, 3]
    >>> lr.shape, hr.shape
    ((8, 8, 8, 3), (8, 32, 32, 3))
  """
  plan_lib.check_plan(plan)
  validation.check_choice("data_format", data_format, validation.DATA_FORMATS)
  batch = validation.batch_size_of(tree, "tree")
  if batch != plan.batch_size:
    raise ValueError(f"tree has batch size {batch} but the plan was sampled for {plan.batch_size}.")
  if plan.spatial_shape is None:
    return plan_lib.apply(plan, tree, data_format=data_format)
  plan_hw = tuple(plan.spatial_shape)
  named = validation.leaves_with_names(tree, "tree")
  out = []
  for path, leaf in named:
    validation.check_array(
      path,
      leaf,
      rank={3, 4},
      message="apply_scaled mixes spatial regions, so {name} must be [B, H, W] or rank 4 "
      f"({data_format}); got shape {{shape}}.",
    )
    shape = np.shape(leaf)
    hw = tuple(shape[a] for a in validation.spatial_axes(len(shape), data_format))
    factors = _factors(path, hw, plan_hw)
    if factors != (1, 1) and not isinstance(plan, plan_lib.Plan):
      raise TypeError(
        f"apply_scaled: {path} has spatial shape {hw} but the plan, a {type(plan).__name__}, is drawn for "
        f"{plan_hw}; only a two-source jaxmix.Plan (MixUp, CutMix, FMix, GridMix, ...) can be scaled."
      )
    out.append(plan_lib.apply(_scale_plan(plan, factors), leaf, data_format=data_format))
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(tree), out)


# --- CutBlur -----------------------------------------------------------------------------------------


@struct.dataclass
class CutBlurPlan:
  """Where CutBlur pastes, for a pair of the same size (an upsampled LR input and its HR target).

  Not a two-source :class:`jaxmix.Plan` (each sample mixes with its own pair,
  not with a partner): apply it with :func:`apply_cutblur`.

  Attributes:
    lam: float32 `[B]`, each sample's exact share of LR pixels in its output.
    region: int32 `[B, 4]` (top, bottom, left, right), half-open: the patch.
    hr_inside: bool `[B]`: True pastes the HR patch into the LR input; False
      makes the output the HR image with the LR patch pasted in.
    spatial_shape: (H, W) the regions refer to (static).
  """

  lam: jax.Array
  region: jax.Array
  hr_inside: jax.Array
  spatial_shape: tuple[int, int] = struct.field(pytree_node=False, default=(1, 1))

  @property
  def batch_size(self) -> int:
    return self.lam.shape[0]


def _check_alpha(alpha: Any, name: str = "alpha") -> None:
  """A static side ratio must be in (0, 1]; a traced one is clipped (≤ 0 or NaN turns the op off)."""
  if validation.is_static_number(alpha) and not 0 < float(alpha) <= 1:
    raise ValueError(f"{name} must be in (0, 1] (the patch's side as a share of the image's), got {alpha!r}.")


def draw_patch(
  key: jax.Array, n: int, alpha: jax.typing.ArrayLike, spatial_shape: tuple[int, int]
) -> jax.Array:
  """int32 `[n, 4]` patches of the official CutBlur/CutMix rule (clovaai/cutblur ``augments.py``).

  Side ratio ``r = α + 0.01·N(0, 1)``, sides ``int(H·r)``, ``int(W·r)``, the
  patch placed uniformly wholly inside the image. ``r`` is clipped to [0, 1]
  (the official code crashes when ``r > 1`` makes a side exceed the image).
  """
  h, w = spatial_shape
  k_r, k_y, k_x = jax.random.split(key, 3)
  ratio = jax.random.normal(k_r, (n,)) * 0.01 + jnp.asarray(alpha, jnp.float32)
  ratio = jnp.clip(jnp.nan_to_num(ratio, nan=0.0), 0.0, 1.0)
  cut_h, cut_w = regions.scaled_sides(ratio, spatial_shape)
  top = jax.random.randint(k_y, (n,), 0, h - cut_h + 1)
  left = jax.random.randint(k_x, (n,), 0, w - cut_w + 1)
  return jnp.stack([top, top + cut_h, left, left + cut_w], axis=-1).astype(jnp.int32)


def sample_cutblur(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int],
  *,
  alpha: jax.typing.ArrayLike = 0.7,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
) -> CutBlurPlan:
  """Samples CutBlur (Yoo et al., CVPR 2020): where the HR and LR images of a pair swap a patch.

  Follows ``cutblur`` in the official ``augments.py`` (clovaai/cutblur):
  with probability `prob` a patch of side ratio ``α + 0.01·N(0, 1)``
  (sides ``int(H·r)``, ``int(W·r)``) is placed uniformly wholly inside the
  image, and with probability 1/2 the HR patch is pasted into the LR input,
  else the output is the HR image with the LR patch pasted in. α = 0.7 is the
  official MoA default (``option.py``; the function's own default is 1.0
  there, which the official code cannot draw above ``r > 1``: here ``r`` is
  clipped to [0, 1]). The official draws one patch per batch (``mode="batch"``);
  ``mode="elem"`` draws one patch and one side per sample.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) of the pair, HR size (static).
    alpha: side ratio of the patch, in (0, 1]. Traced (a traced value ≤ 0 or
      NaN turns CutBlur off, as the official ``alpha <= 0``).
    prob: probability that a batch (sample) is cut at all. Traced.
    mode: ``"batch"`` (official) or ``"elem"``. Static.

  Returns:
    A :class:`CutBlurPlan`.

  Example:
    >>> plan = jaxmix.restoration.sample_cutblur(key, 8, (32, 32))
    >>> plan.region.shape
    (8, 4)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  spatial_shape = validation.check_spatial_shape(spatial_shape)
  validation.check_choice("mode", mode, CUTBLUR_MODES)
  _check_alpha(alpha)
  validation.check_unit_interval("prob", prob)
  n = 1 if mode == "batch" else batch_size
  k_gate, k_side, k_patch = jax.random.split(key, 3)
  on = sampling.gate(k_gate, prob, (n,)) & (jnp.asarray(alpha, jnp.float32) > 0)
  hr_inside = jax.random.uniform(k_side, (n,)) > 0.5
  region = draw_patch(k_patch, n, alpha, spatial_shape)
  region = jnp.where(on[:, None], region, 0)
  hr_inside = hr_inside | ~on  # off: an empty patch of HR in the LR input, the identity
  h, w = spatial_shape
  area = ((region[:, 1] - region[:, 0]) * (region[:, 3] - region[:, 2])).astype(jnp.float32) / (h * w)
  lam = jnp.where(hr_inside, 1.0 - area, area)
  b = (batch_size,)
  return CutBlurPlan(
    lam=jnp.broadcast_to(lam, b),
    region=jnp.broadcast_to(region, b + (4,)),
    hr_inside=jnp.broadcast_to(hr_inside, b),
    spatial_shape=spatial_shape,
  )


def _check_pair(lr: Any, hr: Any, data_format: str, rank: set[int]) -> tuple[int, int]:
  """lr and hr of the same shape and dtype, of a rank in `rank`; their (H, W)."""
  validation.check_choice("data_format", data_format, validation.DATA_FORMATS)
  for name, x in (("lr", lr), ("hr", hr)):
    validation.check_array(name, x, has_axis=0, message="{name} must have a leading batch axis, got a scalar")
    validation.check_numeric_leaf(name, x)
    validation.check_array(
      name,
      x,
      rank=rank,
      message=f"{{name}} must be an image batch of rank {' or '.join(map(str, sorted(rank)))} "
      f"({data_format}), got shape {{shape}}.",
    )
  if np.shape(lr) != np.shape(hr):
    raise ValueError(
      f"lr and hr must have the same shape (the LR input upsampled to the HR size, as the official "
      f"CutBlur code does), got lr {np.shape(lr)} and hr {np.shape(hr)}."
    )
  if jnp.result_type(lr) != jnp.result_type(hr):
    raise TypeError(
      f"lr and hr must have the same dtype, got lr {jnp.result_type(lr)} and hr {jnp.result_type(hr)}."
    )
  shape = np.shape(lr)
  rows, cols = validation.spatial_axes(len(shape), data_format)
  if min(shape[rows], shape[cols]) < 1:
    raise ValueError(f"lr and hr must have at least one pixel, got shape {shape} ({data_format}).")
  return shape[rows], shape[cols]


def apply_cutblur(plan: CutBlurPlan, lr: Any, hr: Any, *, data_format: str = "NHWC") -> jax.Array:
  """The LR input with CutBlur's patch swapped with its HR target (the target itself is unchanged).

  Every output pixel is a copy of an LR or an HR pixel, in the inputs' dtype.

  Args:
    plan: from :func:`sample_cutblur`, drawn for the pair's (H, W).
    lr: the LR input upsampled to the HR size, ``[B, H, W]`` or rank 4.
    hr: the HR target, of the same shape and dtype as `lr`.
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.

  Returns:
    The augmented input, of `lr`'s shape and dtype.
  """
  if not isinstance(plan, CutBlurPlan):
    raise TypeError(f"plan must be a CutBlurPlan (from sample_cutblur), got {type(plan).__name__}.")
  hw = _check_pair(lr, hr, data_format, {3, 4})
  if tuple(hw) != tuple(plan.spatial_shape):
    raise ValueError(f"lr has spatial shape {hw} but the plan was sampled for {tuple(plan.spatial_shape)}.")
  if np.shape(lr)[0] != plan.batch_size:
    raise ValueError(f"lr has batch size {np.shape(lr)[0]} but the plan was sampled for {plan.batch_size}.")
  lr, hr = jnp.asarray(lr), jnp.asarray(hr)
  inside = regions.region_mask(plan.region, plan.spatial_shape)
  take_hr = jnp.where(plan.hr_inside[:, None, None], inside, ~inside)
  return jnp.where(regions.expand_spatial(take_hr, lr.ndim, data_format), hr, lr)


def cutblur(
  key: jax.Array,
  lr: Any,
  hr: Any,
  *,
  alpha: jax.typing.ArrayLike = 0.7,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  data_format: str = "NHWC",
) -> tuple[jax.Array, jax.Array]:
  """CutBlur (Yoo et al., CVPR 2020): cut an HR patch into the LR input, or the LR patch into the HR image.

  The pair must have one size: upsample the LR input to the HR size first
  (the official ``solver.py`` does so with nearest interpolation before any
  augmentation). See :func:`sample_cutblur` for the draw and the official
  defaults. The target comes back unchanged; the model learns to leave HR
  regions of its input alone and to super-resolve the rest.

  Args:
    key: PRNG key.
    lr: the LR input upsampled to the HR size, ``[B, H, W]`` or rank 4.
    hr: the HR target, of the same shape and dtype.
    alpha, prob, mode: as in :func:`sample_cutblur`.
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.

  Returns:
    ``(lr_aug, hr)``.

  Example:
    >>> lr_aug, hr = jaxmix.restoration.cutblur(key, lr_up, hr, alpha=0.7)
    >>> lr_aug.shape == hr.shape
    True
  """
  hw = _check_pair(lr, hr, data_format, {3, 4})
  plan = sample_cutblur(key, np.shape(lr)[0], hw, alpha=alpha, prob=prob, mode=mode)
  return apply_cutblur(plan, lr, hr, data_format=data_format), jnp.asarray(hr)
