"""Restoration pairs: one plan for leaves of several resolutions, CutBlur, and MoA.

Yoo, Ahn and Sohn, "Rethinking Data Augmentation for Image Super-resolution: A
Comprehensive Analysis and a New Strategy", CVPR 2020; official code
github.com/clovaai/cutblur (``augments.py``, ``option.py``, ``solver.py``).
The official code is read for its algorithm and defaults; nothing is copied.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

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
  official MoA default (``option.py``). The official function's own default
  is 1.0, with which it fails whenever ``r > 1`` makes a side longer than the
  image; here ``r`` is clipped to [0, 1]. The official draws one patch per
  batch (``mode="batch"``); ``mode="elem"`` draws one patch and one side per
  sample (not in the official code).

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


# --- MoA: a mixture of augmentations -------------------------------------------------------------------

MOA_OPS = ("blend", "rgb", "mixup", "cutout", "cutmix", "cutmixup", "cutblur")
# clovaai/cutblur option.py, --use_moa: probs 1.0 each; alphas per op; aux (CutMixup's MixUp) prob 1, α 1.2.
MOA_PROBS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
MOA_ALPHAS = (0.6, 1.0, 1.2, 0.001, 0.7, 0.7, 0.7)
# The ops whose alpha is a share in [0, 1]: blend's lowest weight, cutout's drop rate, the patch side ratios.
_UNIT_ALPHAS = ("blend", "cutout", "cutmix", "cutmixup", "cutblur")


class _Pair(NamedTuple):
  """Static facts of a pair: batch size, (H, W), channels, data format."""

  batch: int
  hw: tuple[int, int]
  channels: int
  data_format: str


def _channels_shape(pair: _Pair) -> tuple[int, ...]:
  """Where a per-sample, per-channel value broadcasts against an image: `[B, 1, 1, C]` or `[B, C, 1, 1]`."""
  if pair.data_format == "NHWC":
    return (pair.batch, 1, 1, pair.channels)
  return (pair.batch, pair.channels, 1, 1)


def _moa_draws(
  op: str,
  key: jax.Array,
  pair: _Pair,
  alpha: jax.Array,
  prob: jax.Array,
  aux_alpha: jax.Array,
  aux_prob: jax.Array,
  max_value: jax.Array,
) -> dict[str, jax.Array]:
  """The random draws of one MoA op, one per batch as in the official ``augments.py`` (cutout: per pixel).

  ``on``: the op happens (``U < prob`` and, where the op has one, ``alpha > 0``).
  """
  k_gate, k1, k2, k3, k4, k5 = jax.random.split(key, 6)
  on = sampling.gate(k_gate, prob, ())
  alpha_on = alpha > 0
  b = pair.batch
  if op == "blend":
    # v ~ U(alpha, 1), one per batch; a constant colour ~ U(0, max_value) per sample and channel.
    v = alpha + (1.0 - alpha) * jax.random.uniform(k1, ())
    colour = jax.random.uniform(k2, (b, pair.channels)) * max_value
    return dict(on=on & alpha_on, v=v, colour=colour)
  if op == "rgb":
    return dict(on=on, perm=jax.random.permutation(k1, pair.channels).astype(jnp.int32))
  if op == "mixup":
    v = sampling.beta(k1, alpha, ())
    return dict(on=on & alpha_on, v=v, index=sampling.partner_index(k2, b, "permute"))
  if op == "cutout":
    # Each LR pixel (all channels) is zeroed with probability alpha.
    return dict(on=on & alpha_on, keep=jax.random.uniform(k1, (b,) + pair.hw) >= alpha)
  region = draw_patch(k1, 1, alpha, pair.hw)[0]
  if op == "cutmix":
    return dict(on=on & alpha_on, region=region, index=sampling.partner_index(k2, b, "permute"))
  if op == "cutmixup":
    mix_on = sampling.gate(k3, aux_prob, ()) & (aux_alpha > 0)
    v = jnp.where(mix_on, sampling.beta(k4, aux_alpha, ()), 0.0)  # MixUp off: the partner itself
    return dict(
      on=on & alpha_on,
      region=region,
      index=sampling.partner_index(k2, b, "permute"),
      v=v,
      mix_inside=jax.random.uniform(k5, ()) > 0.5,
    )
  assert op == "cutblur", op
  return dict(on=on & alpha_on, region=region, hr_inside=jax.random.uniform(k2, ()) > 0.5)


def _moa_apply(
  op: str, draws: dict[str, jax.Array], hr: jax.Array, lr: jax.Array, pair: _Pair
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One MoA op on a float pair of one size: ``(hr, lr, loss_mask)``, the mask float32 `[B, H, W]`."""
  b, fmt = pair.batch, pair.data_format
  on = draws["on"]
  ones = jnp.ones((b,) + pair.hw, jnp.float32)
  if op == "blend":
    colour = draws["colour"].reshape(_channels_shape(pair)).astype(hr.dtype)
    v = draws["v"].astype(hr.dtype)
    hr_b, lr_b = v * hr + (1 - v) * colour, v * lr + (1 - v) * colour
    return jnp.where(on, hr_b, hr), jnp.where(on, lr_b, lr), ones
  if op == "rgb":
    axis = 3 if fmt == "NHWC" else 1
    perm = draws["perm"]
    return (
      jnp.where(on, jnp.take(hr, perm, axis=axis), hr),
      jnp.where(on, jnp.take(lr, perm, axis=axis), lr),
      ones,
    )
  if op == "cutout":
    keep = draws["keep"] | ~on
    return hr, jnp.where(regions.expand_spatial(keep, lr.ndim, fmt), lr, 0), keep.astype(jnp.float32)
  if op == "cutblur":
    region = jnp.where(on, draws["region"], 0)
    hr_inside = draws["hr_inside"] | ~on
    h, w = pair.hw
    cut = CutBlurPlan(
      lam=jnp.ones((b,), jnp.float32),  # not read by apply_cutblur
      region=jnp.broadcast_to(region, (b, 4)),
      hr_inside=jnp.broadcast_to(hr_inside, (b,)),
      spatial_shape=(h, w),
    )
    return hr, apply_cutblur(cut, lr, hr, data_format=fmt), ones
  # MixUp, CutMix and CutMixup are two-source jaxmix plans, applied to HR and LR with the same partners.
  index = draws["index"]
  plan: plan_lib.Plan
  if op == "mixup":
    v = jnp.where(on, draws["v"], 1.0)
    lam = jnp.full((b,), v, jnp.float32)
    plan = plan_lib.Plan(lam=lam, index=index, blend=lam, pairing="permute")
  elif op == "cutmix":
    region = jnp.where(on, draws["region"], 0)
    plan = plan_lib.Plan(
      lam=jnp.ones((b,), jnp.float32),  # labels are not mixed here
      index=index,
      blend=jnp.ones((b,), jnp.float32),
      region=jnp.broadcast_to(region, (b, 4)),
      pairing="permute",
      spatial_shape=pair.hw,
      selects_pixels=True,
    )
  else:
    assert op == "cutmixup", op
    inside = regions.region_mask(draws["region"][None], pair.hw)
    v = draws["v"]
    own = jnp.where(draws["mix_inside"], jnp.where(inside, v, 1.0), jnp.where(inside, 1.0, v))
    own = jnp.where(on, own, 1.0)
    plan = plan_lib.mask_plan(own, index, mode="batch", pairing="permute")
  hr_m, lr_m = plan_lib.apply(plan, (hr, lr), data_format=fmt)
  return hr_m, lr_m, ones


def _op_weights(weights: Any) -> jax.Array:
  num = len(MOA_OPS)
  if weights is None:
    return jnp.ones((num,), jnp.float32)
  if isinstance(weights, (list, tuple)) and all(validation.is_static_number(w) for w in weights):
    if len(weights) != num or any(not w >= 0 for w in weights) or sum(weights) <= 0:
      raise ValueError(
        f"weights must be {num} non-negative numbers (one per op of {MOA_OPS}) with a positive sum, "
        f"got {weights!r}."
      )
  weights = jnp.asarray(weights, jnp.float32)
  if weights.shape != (num,):
    raise ValueError(f"weights must have shape ({num},), one per op of {MOA_OPS}, got shape {weights.shape}.")
  return weights


def _per_op(name: str, values: Any, unit: tuple[str, ...]) -> jax.Array:
  """`values`: one number per op; static ones checked (in [0, 1] for the ops in `unit`, else >= 0)."""
  num = len(MOA_OPS)
  if isinstance(values, (list, tuple)) and all(validation.is_static_number(v) for v in values):
    if len(values) != num:
      raise ValueError(f"{name} must have {num} values, one per op of {MOA_OPS}, got {values!r}.")
    for op, v in zip(MOA_OPS, values, strict=True):
      top = 1.0 if op in unit else float("inf")
      if not 0 <= v <= top:
        raise ValueError(f"{name}[{MOA_OPS.index(op)}] ({op}) must be in [0, {top}], got {v!r}.")
  values = jnp.asarray(values, jnp.float32)
  if values.shape != (num,):
    raise ValueError(f"{name} must have shape ({num},), one per op of {MOA_OPS}, got shape {values.shape}.")
  return values


def draw_op(key: jax.Array, weights: jax.Array) -> jax.Array:
  """The index (int32 scalar) of the MoA op of one step, with probabilities ∝ `weights`."""
  logits = jnp.where(weights > 0, jnp.log(jnp.where(weights > 0, weights, 1.0)), -jnp.inf)
  return jax.random.categorical(key, logits).astype(jnp.int32)


def _to_dtype(x: jax.Array, dtype: Any) -> jax.Array:
  if jnp.issubdtype(dtype, jnp.floating):
    return x.astype(dtype)
  info = jnp.iinfo(dtype)
  return jnp.clip(jnp.round(x), info.min, info.max).astype(dtype)


def moa(
  key: jax.Array,
  lr: Any,
  hr: Any,
  *,
  weights: jax.typing.ArrayLike | None = None,
  probs: Any = MOA_PROBS,
  alphas: Any = MOA_ALPHAS,
  aux_prob: jax.typing.ArrayLike = 1.0,
  aux_alpha: jax.typing.ArrayLike = 1.2,
  max_value: jax.typing.ArrayLike = 255.0,
  return_mask: bool = False,
  data_format: str = "NHWC",
) -> tuple[jax.Array, ...]:
  """MoA, the mixture of augmentations of Yoo et al. (CVPR 2020): one op per step, drawn at random.

  The ops and their semantics follow the official ``augments.py``
  (clovaai/cutblur), on a pair of one size (the official ``solver.py``
  upsamples the LR input to the HR size, nearest, before augmenting), with one
  draw per batch as there:

  * ``blend``: both images blended with one random constant colour,
    ``v·x + (1 − v)·c``, ``v ~ U(α, 1)`` per batch, ``c ~ U(0, max_value)``
    per sample and channel (the same c for LR and HR);
  * ``rgb``: one random permutation of the channels, of both images (α unused);
  * ``mixup``: ``v ~ Beta(α, α)`` per batch and a random permutation as
    partners, both images with the same v and partners;
  * ``cutout``: each LR pixel (all its channels) zeroed with probability α;
    the HR target is kept (the official code then masks the loss: see
    `return_mask`);
  * ``cutmix``: a patch of side ratio ``α + 0.01·N(0, 1)`` placed wholly
    inside the image, the same place taken from a random partner in both
    images;
  * ``cutmixup``: the same patch and partners; a MixUp of the pair with its
    partners (``Beta(aux_alpha)``, with probability `aux_prob`, else the
    partner itself) inside the patch, or, with probability 1/2, outside it;
  * ``cutblur``: :func:`cutblur` with one patch per batch (the HR target unchanged).

  Each op happens with its own probability ``probs[i]``; the op is drawn with
  probabilities ∝ `weights` (uniform when None, as the official
  ``mix_p=None``). Defaults are ``option.py``'s ``--use_moa`` policy: probs
  1.0, alphas (0.6, 1.0, 1.2, 0.001, 0.7, 0.7, 0.7), aux α 1.2 and aux prob 1.
  (The official ``solver.py`` passes ``aux_alpha`` as the aux prob; 1.2 ≥ 1
  has the same effect as 1.) The official policy for RealSR uses
  ``weights=(0.1,) * 6 + (0.4,)``, for denoising and JPEG ``probs`` 0.6 and for
  CARN 0.2.

  The op is chosen with ``lax.switch``: one compiled program for every op and
  every traced value; only the chosen op runs. MixUp, CutMix and CutMixup are
  jaxmix :class:`jaxmix.Plan` s (a blend, a region, a mask) applied to both
  images with :func:`jaxmix.apply`, so both get the same partners. (Not built on
  :func:`jaxmix.choose`: blend, rgb, cutout and CutBlur are not two-source
  plans, and the families do not import ``compose``.)

  Differences from the official code: the ops run on any number of channels
  (the official blend and rgb assume 3); a patch ratio above 1 is clipped
  (the official code crashes); cutout sets pixels to 0 with a select (the
  official multiplies by the mask, so a NaN stays NaN); integer images are
  computed in float32 and rounded back to their dtype.

  Args:
    key: PRNG key.
    lr: the LR input upsampled to the HR size, rank 4 in `data_format`.
    hr: the HR target, of the same shape and dtype.
    weights: 7 non-negative weights, one per op of ``("blend", "rgb",
      "mixup", "cutout", "cutmix", "cutmixup", "cutblur")``, or None
      (uniform). Traced.
    probs: 7 probabilities, one per op. Traced.
    alphas: 7 values, one per op (blend: lowest weight v; rgb: unused;
      mixup: Beta α; cutout: drop rate; cutmix, cutmixup, cutblur: patch side
      ratio). Static numbers are checked (in [0, 1], mixup's α ≥ 0). Traced.
    aux_prob, aux_alpha: CutMixup's MixUp probability and Beta α. Traced.
    max_value: the top of the pixel range, for blend's colours (the official
      images are floats in [0, 255]; pass 1.0 for images in [0, 1]). Traced.
    return_mask: also return the loss mask (static).
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.

  Returns:
    ``(lr_aug, hr_aug)``, or ``(lr_aug, hr_aug, loss_mask)`` with
    `return_mask`: float32 `[B, H, W]`, 0 at the pixels cutout dropped and 1
    elsewhere (the official code multiplies the output and the target by it
    before the loss).

  Example:
    >>> lr_aug, hr_aug = jaxmix.restoration.moa(key, lr_up, hr)
    >>> lr_aug.shape == hr_aug.shape == hr.shape
    True
  """
  validation.check_key(key)
  hw = _check_pair(lr, hr, data_format, {4})
  dtype = jnp.result_type(lr)
  if not jnp.issubdtype(dtype, jnp.floating) and jnp.iinfo(dtype).bits > 16:
    raise ValueError(
      f"moa blends pixels in float32, which rounds integers above 2**24: lr and hr of dtype {dtype} are "
      "refused. Use a float dtype or uint8/uint16 images."
    )
  weights = _op_weights(weights)
  probs = _per_op("probs", probs, MOA_OPS)
  alphas = _per_op("alphas", alphas, _UNIT_ALPHAS)
  validation.check_unit_interval("aux_prob", aux_prob)
  validation.check_nonnegative("aux_alpha", aux_alpha)
  shape = np.shape(lr)
  channels = shape[3] if data_format == "NHWC" else shape[1]
  pair = _Pair(shape[0], hw, channels, data_format)
  compute = jnp.promote_types(dtype, jnp.float32)
  hr_f, lr_f = jnp.asarray(hr).astype(compute), jnp.asarray(lr).astype(compute)
  aux_prob, aux_alpha = jnp.asarray(aux_prob, jnp.float32), jnp.asarray(aux_alpha, jnp.float32)
  max_value = jnp.asarray(max_value, jnp.float32)
  k_op, k_draw = jax.random.split(key)

  def branch(i: int) -> Any:
    op = MOA_OPS[i]

    def run(hr: jax.Array, lr: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
      draws = _moa_draws(op, k_draw, pair, alphas[i], probs[i], aux_alpha, aux_prob, max_value)
      return _moa_apply(op, draws, hr, lr, pair)

    return run

  branches = [branch(i) for i in range(len(MOA_OPS))]
  hr_f, lr_f, mask = jax.lax.switch(draw_op(k_op, weights), branches, hr_f, lr_f)
  out = (_to_dtype(lr_f, dtype), _to_dtype(hr_f, dtype))
  return out + (mask,) if return_mask else out
