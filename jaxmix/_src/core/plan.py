"""Plans, and applying them to any pytree.

A plan says who mixes with whom and how much; applying it is deterministic.
Every plan type implements :class:`PlanLike` (each sample's exact own share
``lam``, ``mix_leaf``, ``mix_labels``, ...); :func:`apply` and
:func:`mix_labels` below handle pytrees, dtypes and checks for all of them,
and the families (label maps, boxes) use only the protocol's members.
"""

from __future__ import annotations

import functools
import numbers
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar
from typing import Protocol
from typing import runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

from jaxmix._src.core import deprecation
from jaxmix._src.core import labels as labels_lib
from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import regions
from jaxmix._src.core import sampling
from jaxmix._src.core import validation

if TYPE_CHECKING:
  from typing_extensions import Self


@runtime_checkable
class PlanLike(Protocol):
  """What every plan provides. Plan types subclass it explicitly and inherit its defaults.

  Members (data first, then behaviour; defaults in brackets):

  * ``lam``: float32 `[B]`, each sample's exact share of its own content (the
    label weight of sample-level labels).
  * ``batch_size``: B.
  * ``spatial_shape``: the (H, W) the plan's regions refer to, or None when it
    fits leaves of any spatial size [None]. Plans that cover any axes (below)
    may have k sizes, e.g. (D, H, W).
  * ``covers_any_axes``: True when ``mix_leaf`` lays the plan's k spatial dims
    on any axes of a leaf (``spatial_axes``, or the default of
    :func:`jaxmix._src.core.validation.default_spatial_axes`), so it mixes
    videos and volumes; False: `[B, H, W]` and rank-4 leaves only [False].
  * ``selects_pixels``: True when every output pixel is a copy of one input
    pixel (Mosaic), so leaves of any dtype, label maps included, are mixed
    exactly with no float pass [False].
  * ``mix_leaf(x, data_format)``: one mixed leaf, `x` already in its compute
    dtype [a TypeError: the plan is not applied to inputs, e.g. Manifold Mixup's].
  * ``mix_labels(y)``: soft labels `[B, K]` from `[B, K]`.
  * ``for_integer_leaves()``: the plan to use on integer leaves, e.g. ResizeMix
    with nearest resampling so class ids are never interpolated [the plan itself].
  * ``own_weight()``: each sample's own-content weight `[B, H, W]` (or `[B, 1, 1]`
    for a pure blend) for plans with one partner per sample (two-source);
    label maps and boxes follow it [a TypeError: not a two-source plan].
    Two-source plans also carry ``index`` (int32 `[B]`, each sample's partner)
    and ``pairing`` (how ``index`` was drawn, see :mod:`jaxmix._src.core.pairing`).
  """

  if TYPE_CHECKING:
    # For the type checker only (never run): plan types provide these as fields, class attributes
    # or read-only properties, and flax's struct.dataclass gives every plan type ``replace``. At run
    # time the members (and the runtime_checkable protocol's checks) are those of the else branch.
    @property
    def lam(self) -> jax.Array: ...

    @property
    def spatial_shape(self) -> tuple[int, ...] | None:
      return None

    @property
    def selects_pixels(self) -> bool:
      return False

    @property
    def covers_any_axes(self) -> bool:
      return False

    def replace(self, **changes: Any) -> Self:
      return self

  else:
    lam: jax.Array
    spatial_shape: tuple[int, ...] | None = None
    selects_pixels: ClassVar[bool] = False
    covers_any_axes: ClassVar[bool] = False

  @property
  def batch_size(self) -> int:
    return self.lam.shape[0]

  def mix_leaf(self, x: jax.Array, data_format: str) -> jax.Array:
    raise TypeError(f"a {type(self).__name__} is not applied to inputs with jaxmix.apply.")

  def mix_labels(self, y: jax.Array) -> jax.Array: ...

  def for_integer_leaves(self) -> PlanLike:
    return self

  def own_weight(self) -> jax.Array:
    raise TypeError(
      f"a {type(self).__name__} is not a two-source plan (one partner per sample): it has no own-content "
      "weight, so label maps and boxes cannot follow it."
    )



class WrapsPlan(PlanLike):
  """Base of plans applied inside a model around an inner two-source plan in ``plan``
  (Manifold Mixup, Flow-Mixup): ``lam``, ``batch_size`` and ``mix_labels`` are the inner plan's."""

  plan: Any

  @property
  def lam(self) -> jax.Array:
    return self.plan.lam

  @property
  def batch_size(self) -> int:
    return self.plan.batch_size

  def mix_labels(self, y: jax.Array) -> jax.Array:
    return self.plan.mix_labels(y)

@struct.dataclass
class Plan(PlanLike):
  """A two-source mix: each output is its own sample blended with one partner.

  The weight of a sample's own content at pixel (h, w) is::

      own = 0                        inside `region` (pasted from the partner)
      own = blend * mask[h, w]       elsewhere (mask = 1 when absent)

  which covers MixUp (blend = λ), CutMix (a region, blend = 1), their per-sample
  switch, and every mask method (a `mask`).

  A sampler whose own weights are only ever 0 or 1 (CutMix, a binary mask)
  says so with ``selects_pixels=True``: :func:`apply` then copies each
  output pixel from one source in the leaf's own dtype, with no float pass,
  so int32 ids above 2**24 stay exact and a NaN or inf pixel reaches only
  the outputs that copy it.

  Attributes:
    lam: float32 `[B]`, each sample's exact share of its own content.
    index: int32 `[B]`, each sample's partner.
    blend: float32 `[B]`, own weight outside the region.
    region: int32 `[B, 4]` as (top, bottom, left, right), half-open rows
      and columns taken from the partner (CutMix's rectangle), or None. (``box``
      before 0.2.0: a read-only alias that warns until 0.3.0; "box" in
      jaxmix now means only an object's bounding box, see
      :mod:`jaxmix.detection`.)
    mask: float32 `[B, H, W]` or `[1, H, W]` own-content weight, or None.
    pairing: "flip", "roll" or "permute" (static).
    spatial_shape: (H, W) the region/mask refers to, or None (static).
    selects_pixels: True when every own weight is exactly 0 or 1, so mixing
      selects instead of blending (static; default False).
    spatial_axes: the axes of every leaf that carry the region/mask, or None
      for the default of each leaf's rank and data format (static; set by
      :func:`apply`'s ``spatial_axes``).
    shared_region: True when the sampler drew one region for the whole batch
      (CutMix's ``mode="batch"``, timm's default; static; default False). A
      hint only: a selecting 2-D region plan with it set is applied by
      visiting just the region's rows (:func:`regions.paste_rows`), which
      writes them in place when the caller's jit donates the input buffer;
      the output is the same either way.

  Videos and volumes (issue 18): a plan has k spatial dims, its
  ``spatial_shape`` k sizes, its ``region`` `[B, 2k]` (start, stop per axis)
  and its ``mask`` `[B, *spatial_shape]`. Applying lays those k dims on k axes
  of each leaf and broadcasts over the others. So a 2-D plan on
  ``[B, T, H, W, C]`` covers H and W of every frame with the same region or
  mask, a *tube* (the default for rank 5: no new sampler is needed, every
  2-D ``Plan`` mixes videos this way under :func:`apply`), and a 3-D plan (CutMix, FMix, GridMix,
  SmoothMix with a 3-D ``spatial_shape``) covers T, H, W, a *cuboid*. The plan stays the same
  small pytree and the mask is never materialised at the leaf's size
  outside the fused blend; rank-4 images take exactly the path they took
  before.
  """

  lam: jax.Array
  index: jax.Array
  blend: jax.Array
  region: jax.Array | None = None
  mask: jax.Array | None = None
  pairing: str = struct.field(pytree_node=False, default="flip")
  spatial_shape: tuple[int, ...] | None = struct.field(pytree_node=False, default=None)
  selects_pixels: bool = struct.field(pytree_node=False, default=False)
  spatial_axes: tuple[int, ...] | None = struct.field(pytree_node=False, default=None)
  shared_region: bool = struct.field(pytree_node=False, default=False)
  covers_any_axes: ClassVar[bool] = True

  @property
  def box(self) -> jax.Array | None:
    """Deprecated spelling of :attr:`region` (removed in 0.3.0)."""
    deprecation.warn_attribute(self, "box", "region")
    return self.region

  def own_weight(self) -> jax.Array:
    """Own-content weight `[B, H, W]` (or `[B, 1, 1]` for a pure blend), float32; `[B, *S]` for k-D plans."""
    k = 2 if self.spatial_shape is None else len(self.spatial_shape)
    weight = self.blend.reshape((-1,) + (1,) * k)
    if self.mask is not None:
      weight = weight * self.mask
    if self.region is not None:
      assert self.spatial_shape is not None  # every sampler of a region plan sets its spatial shape
      weight = jnp.where(regions.region_mask(self.region, self.spatial_shape), 0.0, weight)
    if self.mask is not None or self.region is not None:
      # A sample that is its own partner comes back bit-exact.
      own = pairing_lib.self_pairs(self.index)
      weight = jnp.where(own.reshape((-1,) + (1,) * k), 1.0, weight)
    return weight

  def _expand(self, weight: jax.Array, x: jax.Array, data_format: str) -> jax.Array:
    """`weight` `[B, *S]` laid on the leaf's spatial axes (see the class docstring)."""
    k = weight.ndim - 1
    if self.spatial_axes is None and k == 2 and x.ndim in (3, 4):
      return regions.expand_spatial(weight, x.ndim, data_format)  # images: the path of every release
    axes = self._leaf_axes(x, data_format, k)
    if axes is None:
      raise ValueError(
        f"a leaf of shape {x.shape} has no default spatial axes for a plan of {k} spatial dims; pass "
        "spatial_axes= to jaxmix.apply."
      )
    return regions.expand_to_axes(weight, x.ndim, axes)

  def _leaf_axes(self, x: jax.Array, data_format: str, k: int) -> tuple[int, ...] | None:
    """The axes of `x` that carry the plan's k spatial dims: ``spatial_axes``, else the leaf's default."""
    return self.spatial_axes or validation.default_spatial_axes(x.ndim, data_format, k)

  def mix_leaf(self, x: jax.Array, data_format: str) -> jax.Array:
    """Mixes one leaf (already in its compute dtype)."""
    if self.selects_pixels and self.shared_region and self.region is not None and self.mask is None:
      axes = self._leaf_axes(x, data_format, 2)
      if self.spatial_shape is not None and len(self.spatial_shape) == 2 and axes is not None:
        return _paste_region_rows(x, self.region, self.index, self.pairing, (axes[0], axes[1]))
    partner = pairing_lib.take_partner(x, self.pairing, self.index)
    if self.selects_pixels:
      own = self._expand(self.own_weight() > 0.5, x, data_format)
      return jnp.where(own, x, partner)
    # pairing_lib.blend is exact where a weight is 0 or 1 (prob = 0 is the identity, inf stays inf).
    if self.mask is None:
      blend = self.blend.reshape((-1,) + (1,) * (x.ndim - 1))
      mixed = pairing_lib.blend(x, partner, blend)
      if self.region is None:
        return mixed
      # The pasted region is an exact copy of the partner.
      assert self.spatial_shape is not None  # every sampler of a region plan sets its spatial shape
      inside = self._expand(regions.region_mask(self.region, self.spatial_shape), x, data_format)
      return jnp.where(inside, partner, mixed)
    w = self._expand(self.own_weight(), x, data_format)
    return pairing_lib.blend(x, partner, w)

  def mix_labels(self, y: jax.Array) -> jax.Array:
    return pairing_lib.blend_with_partner(y, self.lam, self.pairing, self.index)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _paste_region_rows(
  x: jax.Array, region: jax.Array, index: jax.Array, pairing: str, axes: tuple[int, int]
) -> jax.Array:
  """Each sample's `region` copied from its partner by :func:`regions.paste_rows` (only the region's rows).

  Its derivative is the same linear map written densely (a select over the
  whole leaf), so reverse mode never meets the loop of dynamic length.
  """
  def partner_rows(rows: jax.Array) -> jax.Array:
    return pairing_lib.take_partner(rows, pairing, index)

  return regions.paste_rows(x, region, pairing_lib.self_pairs(index), partner_rows, axes)


@_paste_region_rows.defjvp
def _paste_region_rows_jvp(pairing, axes, primals, tangents):
  x, region, index = primals
  inside = regions.region_mask(region, (x.shape[axes[0]], x.shape[axes[1]]))
  inside = regions.expand_to_axes(inside & ~pairing_lib.self_pairs(index)[:, None, None], x.ndim, axes)
  t = tangents[0]
  return _paste_region_rows(x, region, index, pairing, axes), jnp.where(
    inside, pairing_lib.take_partner(t, pairing, index), t
  )


def keep_self_pairs(plan: Plan) -> Plan:
  """Marks samples that are their own partner as unmixed (λ = 1, blend = 1)."""
  own = pairing_lib.self_pairs(plan.index)
  return plan.replace(lam=jnp.where(own, 1.0, plan.lam), blend=jnp.where(own, 1.0, plan.blend))


def mask_plan(
  own: jax.Array,
  index: jax.Array,
  *,
  mode: str,
  pairing: str,
  own_share: jax.Array | None = None,
  selects_pixels: bool = False,
) -> Plan:
  """A plan from own-content masks drawn per batch (`[1, H, W]`) or per sample (`[B, H, W]`); k-D masks
  `[1 or B, *S]` (cuboids) likewise.

  λ is each mask's mean, the exact own share, or `own_share` where the
  sampler knows it without reading the mask (then XLA can fuse the mask's
  computation into the blend); pair mode gives both members of a pair the
  lower index's mask (:func:`sampling.per_sample`). `selects_pixels`: the
  sampler guarantees a binary mask (see :class:`Plan`).
  """
  lam = own.mean(axis=tuple(range(1, own.ndim))) if own_share is None else own_share
  if mode != "batch":
    own = sampling.per_sample(own, mode, index, pairing)
  plan = Plan(
    lam=sampling.per_sample(lam, mode, index, pairing),
    index=index,
    blend=jnp.ones(index.shape, jnp.float32),
    mask=own,
    pairing=pairing,
    spatial_shape=tuple(own.shape[1:]),
    selects_pixels=selects_pixels,
  )
  return keep_self_pairs(plan)


def check_plan(plan: Any, name: str = "plan") -> None:
  """A TypeError naming the argument unless `plan` implements :class:`PlanLike`."""
  if not isinstance(plan, PlanLike):
    raise TypeError(
      f"{name} must be a jaxmix plan (a PlanLike, as the sample_* functions return), got "
      f"{type(plan).__name__}."
    )


def apply(
  plan: Any, tree: Any, *, data_format: str = "NHWC", spatial_axes: tuple[int, ...] | None = None
) -> Any:
  """Mixes every leaf of `tree` with the same partners, weights and masks.

  Plans that select pixels (CutMix, SaliencyMix, FMix with ``max_soft=0``,
  GridMix, Attentive CutMix, SpecMix, ClassMix, Mosaic, ResizeMix with a
  nearest method) copy every output pixel from one source in the leaf's own
  dtype: exact for any dtype, int32 ids above 2**24 included. Plans that
  blend keep float leaves in their dtype (bf16 is blended in float32 and
  cast back) and blend 8- and 16-bit integer leaves (e.g. uint8 images) in
  float32, rounded and clipped to the dtype's range, as timm's fast collate
  does. Wider integer leaves (int32, uint32, int64) are refused under a
  blending plan with a ValueError, since float32 would round values above
  2**24. Integer class-id maps are not intensities: blending them under a
  soft weight makes nonsense ids, so mix per-pixel label maps with
  :func:`jaxmix.segmentation.mix_label_maps`.

  Args:
    plan: a plan from any ``sample_*`` function.
    tree: an array or pytree of arrays sharing the batch axis (and, for region
      or mask plans, the spatial axes).
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` for rank-4 leaves;
      rank-3 leaves are always ``[B, H, W]``. On rank-5 leaves it says where
      the channel axis is: ``[B, T, H, W, C]`` or ``[B, C, T, H, W]``.
    spatial_axes: the axes of every leaf that carry the plan's k spatial dims
      (a :class:`Plan` only; static), e.g. ``(2, 3)`` for H, W of
      ``[B, T, H, W, C]`` (a tube: one 2-D region or mask on every frame) or
      ``(1, 2, 3)`` for a 3-D plan on it (a cuboid). None (default): per leaf,
      the k axes next to its channel axis (see
      :func:`jaxmix._src.core.validation.default_spatial_axes`), so a 2-D
      plan mixes ``[B, T, H, W, C]`` as tubes and a 3-D one as cuboids.

  Returns:
    A pytree like `tree` with mixed leaves of the same shapes and dtypes.

  Example:
    >>> plan = jaxmix.sample_cutmix(key, 8, (32, 32), alpha=1.0)
    >>> images, seg = jaxmix.apply(plan, (images, seg))       # one plan for every leaf
    >>> images.shape, seg.dtype
    ((8, 32, 32, 3), dtype('int32'))
  """
  check_plan(plan)
  validation.check_choice("data_format", data_format, validation.DATA_FORMATS)
  batch = validation.batch_size_of(tree, "tree")
  if batch != plan.batch_size:
    raise ValueError(f"tree has batch size {batch} but the plan was sampled for {plan.batch_size}.")
  axes = validation.check_spatial_axes(spatial_axes)
  spatial = plan.spatial_shape
  if spatial is not None and not plan.covers_any_axes:
    if axes is not None:
      raise ValueError(
        f"spatial_axes={axes} cannot be used with a {type(plan).__name__}: it mixes [B, H, W] and rank-4 "
        "image batches only."
      )
    got = validation.spatial_shape_of(tree, data_format, "tree")
    if got != tuple(spatial):
      raise ValueError(f"tree has spatial shape {got} but the plan was sampled for {tuple(spatial)}.")
  elif spatial is not None:
    if axes is not None and len(axes) != len(spatial):
      raise ValueError(
        f"spatial_axes={axes} names {len(axes)} axes but the plan has {len(spatial)} spatial dims "
        f"{tuple(spatial)}."
      )
    got_nd = validation.spatial_shape_nd(
      tree, data_format, "tree", spatial_axes=axes, volumes=True, k=len(spatial)
    )
    if got_nd != tuple(spatial):
      raise ValueError(f"tree has spatial shape {got_nd} but the plan was sampled for {tuple(spatial)}.")
    if axes is not None:
      plan = plan.replace(spatial_axes=axes)
  return jax.tree_util.tree_map(lambda x: _mix_in_dtype(plan, x, data_format), tree)


# Integers of at most this many bits are exact in float32 (|v| < 2**24).
_EXACT_INT_BITS = 16


def _mix_in_dtype(plan: Any, x: jax.Array, data_format: str) -> jax.Array:
  x = jnp.asarray(x)
  dtype = x.dtype
  floating = jnp.issubdtype(dtype, jnp.floating)
  # A plan that resamples (ResizeMix) says how integer leaves, e.g. class-id
  # maps, must be read: nearest, never interpolated.
  if not floating:
    plan = plan.for_integer_leaves()
  if plan.selects_pixels:
    # Every output pixel is a copy of one input pixel: exact in any dtype, no float pass.
    return plan.mix_leaf(x, data_format)
  if floating:
    compute = jnp.promote_types(dtype, jnp.float32)
    return plan.mix_leaf(x.astype(compute), data_format).astype(dtype)
  info = jnp.iinfo(dtype)
  if info.bits > _EXACT_INT_BITS:
    raise ValueError(
      f"apply: a {dtype} leaf of shape {x.shape} cannot be mixed exactly by this {type(plan).__name__}: "
      "it blends pixels, in float32, which rounds integers above 2**24. Cast the leaf to a float "
      "dtype first if rounding is acceptable, store intensities as uint8/uint16, mix class-id maps "
      "with jaxmix.segmentation.mix_label_maps, or use a method that selects pixels (CutMix, FMix with "
      "max_soft=0, GridMix, ...), which keeps int32 exact."
    )
  out = jnp.round(plan.mix_leaf(x.astype(jnp.float32), data_format))
  return jnp.clip(out, info.min, info.max).astype(dtype)


def _is_label_array(x: Any) -> bool:
  """A leaf of a labels pytree: an array, a number, or a (nested) list/tuple of numbers such as [0, 3, 1]."""
  if isinstance(x, (list, tuple)):
    return all(isinstance(v, numbers.Number) for v in jax.tree_util.tree_leaves(x))
  return hasattr(x, "shape") or isinstance(x, numbers.Number)


def mix_labels(
  plan: Any,
  labels: Any,
  *,
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
) -> Any:
  """Soft labels for the mixed batch: each row is its sources' labels weighted by λ.

  Smoothing is applied before mixing (timm's order). `labels` may also be a
  pytree (dict, tuple, list) of label arrays, e.g. clip-level and
  event-level targets: every leaf is mixed with the same plan, as the leaves
  of the inputs are by :func:`apply`. A list or tuple of Python numbers is
  one label array. Per-pixel label maps are not labels: mix them with
  :func:`jaxmix.segmentation.mix_label_maps`.

  Args:
    plan: the plan used to mix the inputs.
    labels: int class ids `[B]` (needs `num_classes`) or float targets
      `[B, K]` (one-hot, soft or multi-hot), or a pytree of them; None gives
      None.
    num_classes: K, required for integer labels (static); the same K for
      every integer leaf of a pytree.
    label_smoothing: in [0, 1]; may be traced.

  Returns:
    float32 `[B, K]` (a pytree of them for a pytree of labels), or None when
    `labels` is None.

  Example:
    >>> plan = jaxmix.sample_mixup(key, 8, alpha=0.2)
    >>> targets = jaxmix.mix_labels(plan, labels, num_classes=10)
    >>> targets.shape, bool(jnp.allclose(targets.sum(-1), 1.0))
    ((8, 10), True)
  """
  check_plan(plan)
  return map_soft_labels(
    plan.mix_labels, plan.batch_size, labels, num_classes=num_classes, label_smoothing=label_smoothing
  )


def map_soft_labels(
  fn: Any,
  batch_size: int,
  labels: Any,
  *,
  num_classes: int | None,
  label_smoothing: jax.typing.ArrayLike,
) -> Any:
  """`fn` (`[B, K]` -> `[B, K]`) on every label leaf made soft (checked, one-hot, smoothed): the body of
  :func:`mix_labels`, and of label rules with their own weights (TokenMix's, SnapMix's)."""
  if labels is None:
    return None

  def mix(y: Any) -> jax.Array:
    y = labels_lib.soft_labels(y, batch_size, num_classes=num_classes, smoothing=label_smoothing)
    return fn(y)

  if _is_label_array(labels):
    return mix(labels)
  # DESED #93: one label array left unmixed; here every leaf follows the plan.
  return jax.tree_util.tree_map(mix, labels, is_leaf=_is_label_array)
