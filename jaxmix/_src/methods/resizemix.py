"""ResizeMix (Qin et al. 2020, "ResizeMix: Mixing Data with Preserved Object
Information and True Labels", arXiv:2012.11101).

The whole partner image is shrunk into a random box of the sample, so the
pasted region always holds the partner's object; λ is the exact share of the
sample's own pixels left outside the box.

Defaults follow OpenMixup's ``resizemix`` (the code the paper's numbers are
usually reproduced with): the side ratio τ ~ U(0.1, 0.8) (``scale_range``; OpenMixup's ``scope``), box
sides ``int(τ·H)`` and ``int(τ·W)`` centred at a uniform pixel and clipped to
the image, the partner resized to the clipped box with ``F.interpolate``'s
``mode="nearest"`` (OpenMixup's default; mmpretrain uses bilinear).

Three interpolations, each reproducing ``torch.nn.functional.interpolate``
(``align_corners=False``), with torch's float32 scale ``s = in / out``:

* ``"nearest"`` (torch ``mode="nearest"``, OpenMixup's default): output
  position ``i`` of the box reads source ``min(floor(i·s), in - 1)``, the
  legacy OpenCV ``INTER_NEAREST`` rule; computed as torch computes it, in
  float32 (so for 26 → 22 position 11 reads 12, where exact arithmetic
  would give 13).
* ``"nearest-exact"`` (torch ``mode="nearest-exact"``, PIL and
  ``jax.image.resize``): half-pixel centres, ``min(floor((i + 0.5)·s), in - 1)``.
* ``"bilinear"`` (mmpretrain's choice): half-pixel centres, two taps per axis.

The box follows jaxmix's one box rule (``regions.centered_box``, timm 1.0.31's
``rand_bbox``): rows ``cy - cut_h//2`` to ``cy + (cut_h + 1)//2``, exactly
``cut_h × cut_w`` before clipping. OpenMixup's ``rand_bbox_tao`` ends the box
at ``cy + cut_h//2``, one row or column short on odd sides; jaxmix keeps the
drawn size so that every box-drawing method shares one rule. Both report λ
from the clipped box, so the labels match the pixels either way.

Box sizes are traced, so the resize cannot be ``jax.image.resize`` (static
output shape). Each output pixel inside the box reads the partner at its
source coordinate with per-sample gathers (separable: rows, then columns).
``jax.image.scale_and_translate`` under ``vmap`` accepts traced scales too
and gives the same result (it is the reference in the tests), but it
resamples with dense ``[H, H]`` weight matrices: on the CPU it measured
about 5× slower than the gathers at 224 × 224 and no faster at 32 × 32.

Videos and volumes (rank 5): by default the 2-D box of (H, W) lies on every
frame of ``[B, T, H, W, C]`` and each frame receives its partner frame,
shrunk (a tube). With ``spatial_axes=(1, 2, 3)`` (or a 3-D ``spatial_shape``)
the box is a cuboid and the whole partner volume is shrunk into it. The 2-D
scale rule holds on every axis with one τ: sides ``int(τ·D)``, ``int(τ·H)``,
``int(τ·W)`` (the same τ on all three axes, as on H and W in 2-D), a centre
uniform over the voxels, the cuboid clipped to the volume; the resize is the
same separable one on three axes (``"bilinear"`` is then torch's
``"trilinear"``, two taps per axis), and λ is the exact voxel share
``1 - clipped volume / (D·H·W)``, so a cuboid takes about τ³ of the voxels
(τ² of the pixels in 2-D). The paper mixes images only; this is its 2-D
rule carried to a third axis.
"""

from __future__ import annotations

from typing import Any
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmix._src.core import deprecation
from jaxmix._src.core import one_call
from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import regions
from jaxmix._src.core import resample
from jaxmix._src.core import sampling
from jaxmix._src.core import validation

INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear")


def _scales(size: int) -> jax.Array:
  """float32 ``size / n`` for n = 1 … size, computed on the host.

  torch's resize scale is the float32 quotient ``float(in) / out``; taking it
  from a correctly rounded table keeps source indices identical to torch's
  on every backend, whatever its division does.
  """
  return jnp.asarray(np.float32(size) / np.arange(1, size + 1, dtype=np.float32))


def _source_coords(
  start: jax.Array, stop: jax.Array, size: int, interpolation: str
) -> jax.Array | tuple[jax.Array, jax.Array, jax.Array]:
  """Where each output row (or column) samples the partner, per sample.

  Output position ``i`` inside ``[start, stop)`` samples the full partner
  axis of length ``size``; with ``k = i - start`` and torch's float32 scale
  ``s = size / (stop - start)``:

  * ``"nearest"``: ``floor(k·s)`` (torch ``mode="nearest"``);
  * ``"nearest-exact"``: ``floor((k + 0.5)·s)`` (torch ``mode="nearest-exact"``);
  * ``"bilinear"``: ``max((k + 0.5)·s - 0.5, 0)`` split into two taps (torch
    ``mode="bilinear", align_corners=False``).

  Indices are clipped to ``[0, size)``. Positions outside the box get valid
  but unused indices.

  Returns:
    nearest modes: int32 `[B, size]`; bilinear: ``(i0, i1, frac)`` `[B, size]`.
  """
  extent = jnp.clip(stop - start, 1, size)
  scale = jnp.take(_scales(size), extent - 1)[:, None]
  k = (jnp.arange(size, dtype=jnp.int32)[None, :] - start[:, None]).astype(jnp.float32)
  if interpolation == "nearest":
    return jnp.clip(jnp.floor(k * scale), 0, size - 1).astype(jnp.int32)
  scaled = (k + 0.5) * scale
  if interpolation == "nearest-exact":
    return jnp.clip(jnp.floor(scaled), 0, size - 1).astype(jnp.int32)
  src = jnp.maximum(scaled - 0.5, 0.0)
  i0 = jnp.clip(jnp.floor(src), 0, size - 1)
  frac = src - i0
  i0 = i0.astype(jnp.int32)
  i1 = jnp.minimum(i0 + 1, size - 1)
  return i0, i1, frac


def _resample(x: jax.Array, coords: Any, axis: int, interpolation: str) -> jax.Array:
  """Resamples `x` along one spatial axis (separable resize)."""
  if interpolation != "bilinear":
    return resample.take_along(x, coords, axis)
  i0, i1, frac = coords
  return resample.two_taps(x, i0, i1, frac, axis)


@struct.dataclass
class ResizeMixPlan(plan_lib.PlanLike):
  """A ResizeMix plan: each sample gets its whole partner shrunk into `region`.

  Outside the box a sample keeps its own pixels exactly; inside, the whole
  partner is resized to the box as ``torch.nn.functional.interpolate`` does
  with ``mode=interpolation``: pixel ``(h, w)`` reads partner row
  ``floor((h - top)·H/box_h)`` for ``"nearest"``, ``floor((h - top +
  0.5)·H/box_h)`` for ``"nearest-exact"``, and interpolates around
  ``(h - top + 0.5)·H/box_h - 0.5`` for ``"bilinear"`` (likewise columns;
  scales in float32, as torch computes them).

  Attributes:
    lam: float32 `[B]`, the exact share of own pixels (1 - box area / HW).
    index: int32 `[B]`, each sample's partner.
    region: int32 `[B, 4]` (top, bottom, left, right), half-open, holding
      the resized partner; an empty region means no mixing. (``box`` before
      0.2.0: a read-only alias that warns until 0.3.0.) A cuboid is
      `[B, 6]`: (start, stop) on each of (D, H, W).
    pairing: "flip", "roll" or "permute" (static).
    spatial_shape: (H, W), or (D, H, W) for cuboids (static).
    interpolation: ``"nearest"``, ``"nearest-exact"`` or ``"bilinear"``
      (static; ``method`` before 0.2.0, a read-only alias that warns).
      Integer leaves (label maps) are never interpolated: :func:`jaxmix.apply`
      reads them through :meth:`for_integer_leaves`, which turns
      ``"bilinear"`` into ``"nearest-exact"`` (the same half-pixel centres).
  """

  lam: jax.Array
  index: jax.Array
  region: jax.Array
  pairing: str = struct.field(pytree_node=False, default="flip")
  spatial_shape: tuple[int, ...] | None = struct.field(pytree_node=False, default=None)
  interpolation: str = struct.field(pytree_node=False, default="nearest")
  spatial_axes: tuple[int, ...] | None = struct.field(pytree_node=False, default=None)
  # Videos: the 2-D box (and the shrunk partner frame) on the H, W of every frame, a tube; a 3-D plan's
  # cuboid (and the shrunk partner volume) on three axes.
  covers_any_axes: ClassVar[bool] = True

  @property
  def box(self) -> jax.Array:
    """Deprecated spelling of :attr:`region` (removed in 0.3.0)."""
    deprecation.warn_attribute(self, "box", "region")
    return self.region

  @property
  def method(self) -> str:
    """Deprecated spelling of :attr:`interpolation` (removed in 0.3.0)."""
    deprecation.warn_attribute(self, "method", "interpolation")
    return self.interpolation

  @property
  def selects_pixels(self) -> bool:
    """True for the nearest interpolations: every output pixel is a copy of one input pixel,
    so :func:`jaxmix.apply` mixes any dtype exactly, without a float pass."""
    return self.interpolation != "bilinear"

  def for_integer_leaves(self) -> ResizeMixPlan:
    """The plan for label maps: a nearest interpolation, aligned with the images.

    ``"nearest"`` and ``"nearest-exact"`` are kept; ``"bilinear"`` becomes
    ``"nearest-exact"``, which samples at the same half-pixel centres.
    """
    return self.replace(interpolation="nearest-exact") if self.interpolation == "bilinear" else self

  def own_weight(self) -> jax.Array:
    """Own-content weight float32 `[B, H, W]` (`[B, D, H, W]` for cuboids): 0 inside the region, 1 outside."""
    assert self.spatial_shape is not None  # sample_resizemix always sets it
    return 1.0 - regions.region_mask(self.region, self.spatial_shape).astype(jnp.float32)

  def mix_leaf(self, x: jax.Array, data_format: str) -> jax.Array:
    """Mixes one leaf (already in its compute dtype)."""
    partner = pairing_lib.take_partner(x, self.pairing, self.index)
    assert self.spatial_shape is not None  # sample_resizemix always sets it
    k = len(self.spatial_shape)
    axes = self.spatial_axes
    if axes is None and k == 2 and x.ndim in (3, 4):
      axes = validation.spatial_axes(x.ndim, data_format)
    elif axes is None:
      axes = validation.default_spatial_axes(x.ndim, data_format, k)
    assert axes is not None and len(axes) == k  # apply checked the leaf's axes
    # Separable: the partner resampled along each spatial axis in turn (rows, then columns in 2-D).
    resized = partner
    for i, (axis, size) in enumerate(zip(axes, self.spatial_shape, strict=True)):
      coords = _source_coords(self.region[:, 2 * i], self.region[:, 2 * i + 1], size, self.interpolation)
      resized = _resample(resized, coords, axis, self.interpolation)
    inside = regions.region_mask(self.region, self.spatial_shape)
    if self.spatial_axes is None and k == 2 and x.ndim in (3, 4):
      inside = regions.expand_spatial(inside, x.ndim, data_format)
    else:
      inside = regions.expand_to_axes(inside, x.ndim, axes)
    return jnp.where(inside, resized, x)

  def mix_labels(self, y: jax.Array) -> jax.Array:
    return pairing_lib.blend_with_partner(y, self.lam, self.pairing, self.index)


def _check_scale_range(scale_range: Any) -> tuple[Any, Any]:
  try:
    lo, hi = scale_range
  except (TypeError, ValueError):
    raise ValueError(f"scale_range must be (lo, hi), got {scale_range!r}.") from None
  if validation.is_static_number(lo) and validation.is_static_number(hi) and not 0 <= lo <= hi <= 1:
    raise ValueError(f"scale_range must be (lo, hi) with 0 <= lo <= hi <= 1, got {scale_range!r}.")
  return lo, hi


@deprecation.renamed(scope="scale_range", method="interpolation")
def sample_resizemix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, ...] | None = None,
  *,
  scale_range: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] = (0.1, 0.8),
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  interpolation: str = "nearest",
) -> ResizeMixPlan:
  """Samples a ResizeMix plan: a box per sample that receives the whole partner.

  τ ~ U(scale_range) per batch (``mode="batch"``, the paper's and OpenMixup's
  behaviour), per mutual pair (``"pair"``) or per sample (``"elem"``); the
  box has sides ``int(τ·H)``, ``int(τ·W)``, a uniform centre, and is clipped
  to the image (jaxmix's one box rule, see the module docstring); the
  partner is resized to the clipped box. ``lam`` is the
  exact share of own pixels, ``1 - box area / (H·W)``.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) (static), or (D, H, W) for a cuboid over videos
      and volumes (sides ``int(τ·D)``, ``int(τ·H)``, ``int(τ·W)`` with one τ,
      the region `[B, 6]`; λ the exact voxel share; see the module
      docstring).
    scale_range: (lo, hi) range of the side ratio τ by which the partner is
      shrunk; the paper's (0.1, 0.8). Traced. (OpenMixup's ``scope``, and
      jaxmix's before 0.2.0: ``scope=`` warns until 0.3.0.)
    prob: probability that a batch/pair/sample is mixed at all. Traced.
    mode: ``"batch"``, ``"pair"`` or ``"elem"``. Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``. Static.
    interpolation: ``"nearest"`` (torch ``F.interpolate``'s ``mode="nearest"``,
      source index ``floor(i·in/out)``: OpenMixup's default),
      ``"nearest-exact"`` (half-pixel centres, torch's ``"nearest-exact"``)
      or ``"bilinear"`` (mmpretrain's). Static. (``method`` before 0.2.0:
      ``method=`` warns until 0.3.0.)

  Returns:
    A :class:`ResizeMixPlan`.

  Example:
    >>> plan = jaxmix.sample_resizemix(key, 8, (32, 32), mode="elem")
    >>> images = jaxmix.apply(plan, images)
    >>> targets = jaxmix.mix_labels(plan, labels, num_classes=10)
    >>> images.shape, targets.shape
    ((8, 32, 32, 3), (8, 10))
    >>> plan = jaxmix.sample_resizemix(key, 8, (8, 32, 32))   # the partner shrunk into a cuboid
    >>> plan.region.shape                 # (start, stop) on each of the 3 axes
    (8, 6)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_unit_interval("prob", prob)
  validation.check_choice("interpolation", interpolation, INTERPOLATIONS)
  lo, hi = _check_scale_range(scale_range)
  spatial_shape = validation.check_spatial_shape_nd(spatial_shape, ndims=(2, 3))
  n = sampling.num_draws(mode, batch_size)
  # One key per axis for the centre: (k_y, k_x) in 2-D, (k_d, k_y, k_x) for cuboids.
  k_pair, k_tau, k_gate, *k_centres = jax.random.split(key, 3 + len(spatial_shape))
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  tau = jax.random.uniform(
    k_tau, (n,), minval=jnp.asarray(lo, jnp.float32), maxval=jnp.asarray(hi, jnp.float32)
  )
  centres = tuple(
    jax.random.randint(k_c, (n,), 0, size) for k_c, size in zip(k_centres, spatial_shape, strict=True)
  )
  if len(spatial_shape) == 2:
    h, w = spatial_shape
    cut_h, cut_w = regions.scaled_sides(tau, (h, w))
    box, lam = regions.centered_box(centres[0], centres[1], cut_h, cut_w, (h, w))
  else:  # the same τ on every axis, as on H and W
    box, lam = regions.centered_cuboid(centres, regions.scaled_sides_nd(tau, spatial_shape), spatial_shape)
  on = sampling.gate(k_gate, prob, (n,))
  box = sampling.per_sample(jnp.where(on[:, None], box, 0), mode, index)
  lam = sampling.per_sample(jnp.where(on, lam, 1.0), mode, index)
  # A sample that is its own partner stays unchanged.
  own = pairing_lib.self_pairs(index)
  return ResizeMixPlan(
    lam=jnp.where(own, 1.0, lam),
    index=index,
    region=jnp.where(own[:, None], 0, box),
    pairing=pairing,
    spatial_shape=spatial_shape,
    interpolation=interpolation,
  )


@deprecation.renamed(scope="scale_range", method="interpolation")
def resizemix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  scale_range: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] = (0.1, 0.8),
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  interpolation: str = "nearest",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
  spatial_axes: tuple[int, ...] | None = None,
) -> tuple[Any, jax.Array | None]:
  """ResizeMix: paste the whole partner, shrunk, into a random box.

  Qin et al. 2020. Every leaf of `inputs` gets the same box and partner
  (rank-5 videos and volumes: by default the same box on every frame, a
  tube; with ``spatial_axes=(1, 2, 3)`` the whole partner volume shrunk into
  a cuboid, λ the exact voxel share);
  integer leaves (label maps) are never interpolated (``"bilinear"`` reads
  them with ``"nearest-exact"``, see :meth:`ResizeMixPlan.for_integer_leaves`).

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays sharing batch and spatial axes.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    scale_range, prob, mode, pairing, interpolation: as in :func:`sample_resizemix`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` (channels last or
      second, also for rank-5 leaves).
    spatial_axes: the axes of every leaf that carry the box (static), e.g.
      ``(2, 3)`` for a tube in ``[B, T, H, W, C]`` (the default for rank 5:
      each frame gets the same box holding its partner frame, shrunk) or
      ``(1, 2, 3)`` for a cuboid; None: the image's (H, W).

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> images, targets = jaxmix.resizemix(key, images, labels, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  return one_call.mix(
    sample_resizemix,
    key,
    inputs,
    labels,
    spatial=True,
    spatial_axes=spatial_axes,
    volumes=(2, 3),
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    scale_range=scale_range,
    prob=prob,
    mode=mode,
    pairing=pairing,
    interpolation=interpolation,
  )
