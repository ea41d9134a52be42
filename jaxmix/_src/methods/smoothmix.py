"""SmoothMix (Lee et al. 2020, "SmoothMix: a Simple Yet Effective Data
Augmentation to Train Robust Classifiers", CVPR Workshops).

A soft mask ``G`` in [0, 1] marks where the partner's content goes; the
sample keeps ``1 - G`` of itself at each pixel, so its label weight is
``λ = 1 - mean(G)``. (OpenMixup's ``smoothmix`` blends ``img * (1 - G) +
img_perm * G`` but gives the sample's own label the weight ``mean(G)``: the
partner's share. jaxmix reports the own share, and a test checks it.)

Two mask shapes:

* ``"gaussian"`` (the paper's circle mask; the only one in OpenMixup and the
  authors' released code): ``G = exp(-((h - cy)² / (2σ_h²) + (w - cx)² /
  (2σ_w²)))`` with the centre uniform over the pixels and
  ``σ = s · (H, W)``, ``s ~ U(0.25, 0.5)`` (``(rand / 4 + 0.25) · H`` in
  both implementations; square images there, so σ_h = σ_w).
* ``"square"``: a box whose area is about ``(1 - λ₀)·HW`` with
  ``λ₀ ~ Beta(α, α)`` and centre uniform over the image (as CutMix draws it),
  with edges that ramp linearly from 1 to 0 over ``edge · (H, W)`` pixels
  centred on the box border.

Both masks are outer products of a row and a column profile, so building
``[B, H, W]`` costs one multiply per pixel.

Videos and volumes (rank 5): by default the 2-D mask of (H, W) covers every
frame of ``[B, T, H, W, C]`` (a tube). With ``spatial_axes=(1, 2, 3)`` (or a
3-D ``spatial_shape``) the mask is 3-D, the outer product of three profiles,
each with the 2-D rule on its axis: the gaussian becomes an axis-aligned
ellipsoid (a sphere on a cube) with the centre uniform over the voxels and
``σ = s · (D, H, W)``, one ``s ~ U(sigma_range)`` for all three axes as for
H and W in 2-D; the square becomes a cube-like box with sides
``(1 - λ₀)^(1/3) · (D, H, W)`` (CutMix's cube-root rule, so its unsoftened
volume is about ``(1 - λ₀)·DHW``) and edges ramping over
``edge · (D, H, W)`` voxels. λ is ``1 - mean(G)`` over the voxels, the exact
own share. The papers mix images only; this is their 2-D rule carried to a
third axis.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxmix._src.core import deprecation
from jaxmix._src.core import one_call
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation

SHAPES = ("gaussian", "square")


def _check_range(name: str, value: Any) -> None:
  if len(tuple(value)) != 2:
    raise ValueError(f"{name} must be (low, high), got {value!r}.")
  lo, hi = value
  if validation.is_static_number(lo) and validation.is_static_number(hi) and not 0 < lo <= hi:
    raise ValueError(f"{name} must satisfy 0 < low <= high, got {value!r}.")


@functools.partial(jax.jit, static_argnames=("num", "spatial_shape", "shape"))
def partner_masks(
  key: jax.Array,
  num: int,
  spatial_shape: tuple[int, ...],
  *,
  shape: str = "gaussian",
  sigma_range: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] = (0.25, 0.5),
  alpha: jax.typing.ArrayLike = 1.0,
  edge: jax.typing.ArrayLike = 0.1,
) -> jax.Array:
  """float32 `[num, H, W]` SmoothMix masks G in [0, 1] (the partner's weight).

  Args:
    key: PRNG key.
    num: how many masks (static).
    spatial_shape: (H, W) (static), or (D, H, W) for 3-D masks `[num, D, H, W]`
      (the same rule on every axis, see the module docstring).
    shape: ``"gaussian"`` or ``"square"`` (static).
    sigma_range: (low, high) range of σ as a fraction of (H, W), gaussian only.
    alpha: Beta concentration of the square's λ₀, square only.
    edge: ramp width as a fraction of (H, W), square only.

  Returns:
    float32 `[num, H, W]` (`[num, *spatial_shape]`).
  """
  k = len(spatial_shape)
  # One key per axis for the centre, then the size's: (k_y, k_x, k_s) in 2-D.
  *k_centres, k_s = jax.random.split(key, k + 1)
  positions = [jnp.arange(size, dtype=jnp.float32)[None, :] for size in spatial_shape]
  centres = [
    jax.random.randint(k_c, (num, 1), 0, size).astype(jnp.float32)
    for k_c, size in zip(k_centres, spatial_shape, strict=True)
  ]
  if shape == "gaussian":
    lo, hi = (jnp.asarray(v, jnp.float32) for v in sigma_range)
    s = jax.random.uniform(k_s, (num, 1), jnp.float32, lo, hi)

    def profile(pos: jax.Array, centre: jax.Array, size: int) -> jax.Array:
      # 2σ² floored at the smallest normal float32: a σ so small that it underflows gives a
      # one-pixel blob (exp(0) at the centre, exp(-inf) elsewhere), never 0 / 0 = NaN.
      var2 = jnp.maximum(2 * jnp.square(s * size), jnp.finfo(jnp.float32).tiny)
      return jnp.exp(-jnp.square(pos - centre) / var2)

  else:
    # The side ratio of an area (volume) 1 - λ₀: √ in 2-D (CutMix's), ∛ in 3-D.
    drawn = sampling.beta(k_s, alpha, (num, 1))
    ratio = jnp.sqrt(1.0 - drawn) if k == 2 else jnp.cbrt(1.0 - drawn)
    edge = jnp.asarray(edge, jnp.float32)

    def profile(pos: jax.Array, centre: jax.Array, size: int) -> jax.Array:
      half = ratio * size / 2
      ramp = jnp.maximum(edge * size, 1e-6)
      # 1 inside, 0 outside, linear across a band of width `ramp` centred on the
      # border; an empty box (λ₀ = 1, e.g. α = 0) gives an all-zero profile.
      inside = jnp.clip((half - jnp.abs(pos - centre)) / ramp + 0.5, 0.0, 1.0)
      return jnp.where(half > 0, inside, 0.0)

  profiles = [profile(pos, c, size) for pos, c, size in zip(positions, centres, spatial_shape, strict=True)]
  if k == 2:
    return profiles[0][:, :, None] * profiles[1][:, None, :]
  mask = profiles[0].reshape(profiles[0].shape + (1,) * (k - 1))
  for axis, prof in enumerate(profiles[1:], start=1):
    mask = mask * prof.reshape((num,) + (1,) * axis + (-1,) + (1,) * (k - 1 - axis))
  return mask


@deprecation.renamed(sigma="sigma_range")
def sample_smoothmix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, ...] | None = None,
  *,
  shape: str = "gaussian",
  sigma_range: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] = (0.25, 0.5),
  alpha: jax.typing.ArrayLike = 1.0,
  edge: jax.typing.ArrayLike = 0.1,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
) -> plan_lib.Plan:
  """Samples a SmoothMix plan: a soft blob of the partner blended into each sample.

  The plan's ``mask`` is the own-content weight ``1 - G`` and ``lam`` its
  mean, the exact share of the sample's own content.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) (static), or (D, H, W) for a 3-D blob over videos
      and volumes (the mask `[1 or B, D, H, W]`: σ and the square's edge
      per axis as in 2-D, the square's sides ``(1 - λ₀)^(1/3)`` of each; λ
      the exact mean over the voxels; see the module docstring).
    shape: ``"gaussian"`` (default, the paper's circle mask) or ``"square"``.
      Static.
    sigma_range: (low, high): σ ~ U(low, high) · (H, W), gaussian only;
      default (0.25, 0.5) as in the released code. Traced. (``sigma`` before
      0.2.0: ``sigma=`` warns until 0.3.0.)
    alpha: Beta concentration for the square's area, square only (the
      gaussian's share is set by σ and the centre). Traced. Edges as in
      :func:`jaxmix.sample_mixup` for the drawn λ₀ (≤ 0 or NaN: an empty
      square, no mixing; +inf: λ₀ = 0.5).
    edge: width of the square's linear edge as a fraction of (H, W). Traced.
    prob: probability that a batch (or sample) is mixed at all. Traced.
    mode: ``"batch"`` (one mask, `[1, H, W]`), ``"pair"`` or ``"elem"``
      (`[B, H, W]`). Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``. Static.

  Returns:
    A :class:`Plan` with a soft ``mask``.

  Example:
    >>> plan = jaxmix.sample_smoothmix(key, 8, (32, 32), mode="elem")
    >>> images = jaxmix.apply(plan, images)
    >>> plan.mask.shape                       # a soft mask per sample
    (8, 32, 32)
    >>> plan = jaxmix.sample_smoothmix(key, 8, (8, 32, 32))   # a 3-D blob over (T, H, W)
    >>> plan.mask.shape
    (1, 8, 32, 32)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_choice("shape", shape, SHAPES)
  _check_range("sigma_range", sigma_range)
  validation.check_nonnegative("alpha", alpha)
  validation.check_nonnegative("edge", edge)
  validation.check_unit_interval("prob", prob)
  spatial_shape = validation.check_spatial_shape_nd(spatial_shape, ndims=(2, 3))
  validation.check_choice("mode", mode, validation.MODES)
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  return _sample_smoothmix(
    key,
    sigma_range,
    alpha,
    edge,
    prob,
    batch_size=batch_size,
    spatial_shape=spatial_shape,
    shape=shape,
    mode=mode,
    pairing=pairing,
  )


# One compiled program per static configuration, also for eager calls.
@functools.partial(jax.jit, static_argnames=("batch_size", "spatial_shape", "shape", "mode", "pairing"))
def _sample_smoothmix(
  key: jax.Array,
  sigma_range: Any,
  alpha: Any,
  edge: Any,
  prob: Any,
  *,
  batch_size: int,
  spatial_shape: tuple[int, ...],
  shape: str,
  mode: str,
  pairing: str,
) -> plan_lib.Plan:
  n = sampling.num_draws(mode, batch_size)
  k_pair, k_mask, k_gate = jax.random.split(key, 3)
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  partner = partner_masks(
    k_mask, n, spatial_shape, shape=shape, sigma_range=sigma_range, alpha=alpha, edge=edge
  )
  on = sampling.gate(k_gate, prob, (n,))
  own = jnp.where(on.reshape((-1,) + (1,) * len(spatial_shape)), 1.0 - partner, 1.0)
  return plan_lib.mask_plan(own, index, mode=mode, pairing=pairing)


@deprecation.renamed(sigma="sigma_range")
def smoothmix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  shape: str = "gaussian",
  sigma_range: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] = (0.25, 0.5),
  alpha: jax.typing.ArrayLike = 1.0,
  edge: jax.typing.ArrayLike = 0.1,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
  spatial_axes: tuple[int, ...] | None = None,
) -> tuple[Any, jax.Array | None]:
  """SmoothMix: blend a soft-edged blob of the partner; labels by the exact own share.

  Lee et al. 2020. Every leaf of `inputs` gets the same mask; leaves must be
  ``[B, H, W]`` or rank 4 in `data_format`, or rank 5 (videos
  ``[B, T, H, W, C]``, volumes ``[B, D, H, W, C]``): by default the same 2-D
  blob on every frame (a tube), with ``spatial_axes=(1, 2, 3)`` a 3-D blob,
  λ the exact mean own weight over the voxels.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays sharing batch and spatial axes.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    shape, sigma_range, alpha, edge, prob, mode, pairing: as in
      :func:`sample_smoothmix`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` (channels last or
      second, also for rank-5 leaves).
    spatial_axes: the axes of every leaf that carry the mask (static), e.g.
      ``(2, 3)`` for a tube in ``[B, T, H, W, C]`` (the default for rank 5:
      the same 2-D blob on all T frames) or ``(1, 2, 3)`` for a 3-D blob;
      None: the image's (H, W).

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> images, targets = jaxmix.smoothmix(key, images, labels, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  return one_call.mix(
    sample_smoothmix,
    key,
    inputs,
    labels,
    spatial=True,
    spatial_axes=spatial_axes,
    volumes=(2, 3),
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    shape=shape,
    sigma_range=sigma_range,
    alpha=alpha,
    edge=edge,
    prob=prob,
    mode=mode,
    pairing=pairing,
  )
