"""FMix (Harris et al. 2020, "FMix: Enhancing Mixed Sample Data Augmentation").

A mask is a binarised low-frequency image: a complex Gaussian spectrum on the
``rfft2`` grid is scaled by ``1 / max(f, 1 / max(H, W)) ** decay_power``,
brought back to ``[H, W]`` with ``irfft2`` and normalised to ``[0, 1]`` (the
*grey map*); the ``k`` highest pixels of the grey map become 1. ``k`` is
``⌈λ·HW⌉`` or ``⌊λ·HW⌋``, each with probability 1/2, and ``λ ~ Beta(α, α)``,
as in the official code (github.com/ecs-vlc/FMix, ``fmix.py``).

In the official code the ones of the mask mark the pixels of the sample
itself (``x * mask + x[index] * (1 - mask)``), so the plan's ``mask`` is the
binarised map as it is: the own-content weight, and ``λ`` is the share of ones.

Videos and volumes (rank 5): by default the 2-D mask of (H, W) covers every
frame of ``[B, T, H, W, C]`` (a tube); with ``spatial_axes=(1, 2, 3)`` (or a
3-D ``spatial_shape``) the spectrum is 3-D, as the official code's
``make_low_freq_image`` draws for 3-D shapes (``fftfreqnd(h, w, z)``): the
frequencies are those of the ``rfftn`` grid, ``fftfreq`` on every axis but the
last and ``rfftfreq`` on the last (the official ``fftfreqnd`` builds its grid
from ``fftfreq`` slices; on 2-D shapes the two agree, the one extra bin it
takes on odd sides being dropped by ``irfftn``; its 3-D grid was not compared
bin for bin), the scale ``1 / max(|f|, 1 / max(S)) ** decay_power``, ``irfftn`` back to the
volume, and the top ``⌈λ·N⌉`` or ``⌊λ·N⌋`` voxels (N = D·H·W) become 1, so λ
is the exact voxel share.

Everything runs under ``jit`` with static shapes: the ``k``-th highest grey
value is found by a bisection on the float bits (a selection, no sort) with a
traced ``k``, never with a data-dependent shape; soft masks (``max_soft > 0``)
rank the pixels with one ``argsort``. The spectra of all maps are drawn at once
(:func:`jaxmix._src.core.sampling.normal`, ``jax.random.normal``'s bits with an
unrolled threefry) and brought back by one batched ``irfftn``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxmix._src.core import one_call
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation


def fmix_grey_map(
  key: jax.Array,
  spatial_shape: tuple[int, ...],
  *,
  decay_power: jax.typing.ArrayLike = 3.0,
  num: int | None = None,
) -> jax.Array:
  """Samples FMix's low-frequency grey map(s), normalised to [0, 1].

  The spectrum is complex Gaussian noise on the ``rfft2`` frequency grid
  (``fftfreq(H)`` by ``rfftfreq(W)``), each bin scaled by
  ``1 / max(|f|, 1 / max(H, W)) ** decay_power``; ``irfft2`` brings it back to
  ``[H, W]``, and each map is shifted and scaled to span [0, 1] (official
  ``make_low_freq_image``). The larger `decay_power`, the more the energy
  sits in low frequencies and the fewer, larger blobs the mask has.

  Args:
    key: PRNG key.
    spatial_shape: (H, W) (static), or (D, H, W) for a 3-D map.
    decay_power: the decay exponent (official default 3). Traced.
    num: None for one map `[H, W]`, or the number of maps `[num, H, W]`.

  Returns:
    float32 `[H, W]` or `[num, H, W]` (`[*spatial_shape]` or `[num, *spatial_shape]`).

  Example:
    >>> grey = jaxmix.fmix_grey_map(key, (32, 32), decay_power=3.0)
    >>> grey.shape, grey.dtype
    ((32, 32), dtype('float32'))
  """
  validation.check_key(key)
  validation.check_nonnegative("decay_power", decay_power)
  spatial_shape = validation.check_spatial_shape_nd(spatial_shape, ndims=(2, 3))
  grey = _grey_maps(key, decay_power, spatial_shape=spatial_shape, num=1 if num is None else int(num))
  return grey[0] if num is None else grey


# Jitted so that eager calls (notebooks, tests) reuse one compiled program.
@functools.partial(jax.jit, static_argnames=("spatial_shape", "num"))
def _grey_maps(
  key: jax.Array, decay_power: jax.Array, *, spatial_shape: tuple[int, ...], num: int
) -> jax.Array:
  n = num
  k = len(spatial_shape)
  if k == 2:
    h, w = spatial_shape
    fy = jnp.fft.fftfreq(h)[:, None]
    fx = jnp.fft.rfftfreq(w)[None, :]
    freqs = jnp.sqrt(fy * fy + fx * fx)
  else:  # k-D: fftfreq on every axis but the last, rfftfreq on the last (the rfftn grid)
    square = jnp.zeros((), jnp.float32)
    for axis, size in enumerate(spatial_shape):
      f = jnp.fft.rfftfreq(size) if axis == k - 1 else jnp.fft.fftfreq(size)
      f = f.reshape([-1 if a == axis else 1 for a in range(k)])
      square = square + f * f
    freqs = jnp.sqrt(square)
  scale = 1.0 / jnp.maximum(freqs, 1.0 / max(spatial_shape)) ** jnp.asarray(decay_power, jnp.float32)
  parts = sampling.normal(key, (2, n) + freqs.shape) * scale
  axes = tuple(range(-k, 0))
  spectrum = jax.lax.complex(parts[0], parts[1])
  if k == 2:
    grey = jnp.fft.irfft2(spectrum, s=spatial_shape, axes=axes).astype(jnp.float32)
  else:
    grey = jnp.fft.irfftn(spectrum, s=spatial_shape, axes=axes).astype(jnp.float32)
  grey = grey - grey.min(axis=axes, keepdims=True)
  return grey / jnp.maximum(grey.max(axis=axes, keepdims=True), jnp.finfo(jnp.float32).tiny)


def num_ones(key: jax.Array, lam: jax.Array, size: int) -> jax.Array:
  """int32: ``⌈λ·size⌉`` or ``⌊λ·size⌋``, each with probability 1/2 (official ``binarise_mask``)."""
  target = lam.astype(jnp.float32) * size
  up = jax.random.uniform(key, lam.shape) > 0.5
  return jnp.clip(jnp.where(up, jnp.ceil(target), jnp.floor(target)), 0, size).astype(jnp.int32)


def _top_k_mask(grey: jax.Array, num: jax.Array) -> jax.Array:
  """bool `[n, HW]`: the `num` highest pixels of each row; ties go to the lower index.

  The `num`-th largest value is found exactly by bisection on the bit
  pattern of the (non-negative) float32 values, which orders like the values:
  30 passes of compare-and-count over the map, no sort and no data-dependent
  shape. XLA's sort is slow on the CPU; this is several times faster there.
  """
  n, size = grey.shape
  bits = jax.lax.bitcast_convert_type(jnp.where(grey > 0, grey, 0.0).astype(jnp.float32), jnp.int32)
  num = num[:, None]

  def halve(_, bounds):
    lo, hi = bounds  # count(bits >= lo) >= num > count(bits >= hi)
    mid = lo + (hi - lo) // 2
    ok = jnp.sum(bits >= mid, axis=1, keepdims=True, dtype=jnp.int32) >= num
    return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

  one_bits = 0x3F800000  # the bits of 1.0, the largest grey value
  # The carry starts from `num` (times 0) so that it varies across devices like
  # `num` does; a constant start fails to trace inside a user's shard_map.
  lo = jnp.zeros((n, 1), jnp.int32) + num * 0
  hi = lo + (one_bits + 1)
  kth, _ = jax.lax.fori_loop(0, (one_bits + 1).bit_length(), halve, (lo, hi))
  above = bits > kth
  tied = bits == kth
  need = num - jnp.sum(above, axis=1, keepdims=True, dtype=jnp.int32)
  all_ties_in = jnp.all(need >= jnp.sum(tied, axis=1, keepdims=True, dtype=jnp.int32))
  ties = jax.lax.cond(
    all_ties_in,
    lambda: tied,
    lambda: tied & (jnp.cumsum(tied, axis=1, dtype=jnp.int32) <= need),
  )
  return (above | ties) & (num > 0)


def _ranked_mask(grey: jax.Array, num: jax.Array, soft: jax.Array) -> jax.Array:
  """float32 `[n, HW]` with a linear ramp of width `2·soft` in rank order (one sort)."""
  n, size = grey.shape
  order = jnp.argsort(-grey, axis=-1, stable=True)
  # rank[i] = position of pixel i in the descending order (the inverse permutation).
  positions = jnp.broadcast_to(jnp.arange(size, dtype=jnp.int32), (n, size))
  rank = jnp.zeros((n, size), jnp.int32).at[jnp.arange(n)[:, None], order].set(positions)
  low = (num - soft)[:, None]
  width = (2 * soft)[:, None]
  ramp = 1.0 - (rank - low).astype(jnp.float32) / jnp.maximum(width - 1, 1).astype(jnp.float32)
  ramp = jnp.clip(ramp, 0.0, 1.0)  # a division rewritten as a reciprocal can leave -3e-8 at the end
  return jnp.where(rank < low, 1.0, jnp.where(rank >= low + width, 0.0, ramp))


@jax.jit
def binarise(
  grey: jax.Array,
  num: jax.Array,
  lam: jax.Array,
  max_soft: jax.typing.ArrayLike = 0.0,
) -> jax.Array:
  """Turns grey maps into masks whose `num` highest pixels are 1.

  Ties in the grey map go to the lower flat index, so exactly `num` pixels
  are 1. With ``max_soft > 0`` (official ``binarise_mask``) the pixels ranked
  within ``soft = int(HW · min(max_soft, λ, 1 - λ))`` of the threshold (when
  `max_soft` exceeds λ or 1 − λ, the smaller of the two is used) fall
  linearly from 1 to 0 in rank order, ``linspace(1, 0, 2·soft)``; the mean of
  the mask stays ``num / HW``. Binary masks come from a bisection for the
  threshold; soft ones need each pixel's rank, from a sort (slower on CPU);
  a ``lax.cond`` on ``max_soft > 0`` runs only the one needed.

  Args:
    grey: float `[n, H, W]` grey maps (or `[n, *S]`: k-D maps, voxels for pixels).
    num: int32 `[n]`, how many pixels become 1.
    lam: float32 `[n]`, the drawn λ (sets the soft width).
    max_soft: the largest soft width as a share of the pixels. Traced.

  Returns:
    float32 `[n, H, W]` masks in [0, 1] (`[n, *S]` for k-D maps).
  """
  n = grey.shape[0]
  size = math.prod(grey.shape[1:])
  flat = grey.reshape(n, size).astype(jnp.float32)
  max_soft = jnp.asarray(max_soft, jnp.float32)
  lam = lam.astype(jnp.float32)
  eff = jnp.where((max_soft > lam) | (max_soft > 1 - lam), jnp.minimum(lam, 1 - lam), max_soft)
  soft = jnp.floor(size * eff).astype(jnp.int32)
  mask = jax.lax.cond(
    max_soft > 0,
    lambda: _ranked_mask(flat, num, soft),
    lambda: _top_k_mask(flat, num).astype(jnp.float32),
  )
  return mask.reshape(grey.shape)


def sample_fmix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, ...] | None = None,
  *,
  alpha: jax.typing.ArrayLike = 1.0,
  decay_power: jax.typing.ArrayLike = 3.0,
  max_soft: jax.typing.ArrayLike = 0.0,
  reformulate: bool = False,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
) -> plan_lib.Plan:
  """Samples an FMix plan: a binarised low-frequency mask marks each sample's own pixels.

  Defaults follow the official FMix code (``decay_power=3``, ``alpha=1``,
  ``max_soft=0``, ``reformulate=False``). ``λ ~ Beta(α, α)`` (or
  ``Beta(α + 1, α)`` with `reformulate`, the paper's reformulation), the top
  ``⌈λ·HW⌉`` or ``⌊λ·HW⌋`` pixels of a grey map become the sample's own; the
  returned ``lam`` is the exact mean of the mask (the count of ones over HW
  for binary masks).

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) (static), or (D, H, W) for a 3-D mask over videos
      and volumes (the mask `[1 or B, D, H, W]`; λ the exact voxel share).
    alpha: Beta concentration; 0 turns FMix off (λ = 1). Traced. Edges as
      in :func:`jaxmix.sample_mixup` (≤ 0 or NaN: off; +inf: λ = 0.5 drawn;
      tiny: 0 or 1, or 1 with `reformulate`, the limit of Beta(α + 1, α)).
    decay_power: spectrum decay exponent; larger gives smoother masks. Traced.
    max_soft: soft-edge width as a share of the pixels (0 = binary). Traced.
    reformulate: draw ``λ ~ Beta(α + 1, α)``. Static.
    prob: probability that a batch (or sample) is mixed at all. Traced.
    mode: ``"batch"`` one mask for the batch (the official behaviour; mask
      `[1, H, W]`), ``"pair"`` one per mutual pair, ``"elem"`` one per sample
      (mask `[B, H, W]`). Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``. Static.

  Returns:
    A :class:`Plan` whose ``mask`` is the own-content weight.

  Example:
    >>> plan = jaxmix.sample_fmix(key, 8, (32, 32), alpha=1.0, mode="elem")
    >>> images, seg = jaxmix.apply(plan, (images, seg))
    >>> plan.mask.shape, seg.dtype
    ((8, 32, 32), dtype('int32'))
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_nonnegative("alpha", alpha)
  validation.check_nonnegative("decay_power", decay_power)
  validation.check_unit_interval("max_soft", max_soft)
  validation.check_unit_interval("prob", prob)
  validation.check_choice("mode", mode, validation.MODES)
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  plan = _sample_fmix(
    key,
    alpha,
    decay_power,
    max_soft,
    prob,
    batch_size=batch_size,
    spatial_shape=validation.check_spatial_shape_nd(spatial_shape, ndims=(2, 3)),
    reformulate=bool(reformulate),
    mode=mode,
    pairing=pairing,
  )
  # Binary masks select pixels; a traced or positive max_soft may blend at the edges.
  return plan.replace(selects_pixels=validation.is_static_number(max_soft) and max_soft == 0)


# One compiled program per static configuration, also for eager calls.
@functools.partial(jax.jit, static_argnames=("batch_size", "spatial_shape", "reformulate", "mode", "pairing"))
def _sample_fmix(
  key: jax.Array,
  alpha: jax.Array,
  decay_power: jax.Array,
  max_soft: jax.Array,
  prob: jax.Array,
  *,
  batch_size: int,
  spatial_shape: tuple[int, ...],
  reformulate: bool,
  mode: str,
  pairing: str,
) -> plan_lib.Plan:
  size = math.prod(spatial_shape)
  n = sampling.num_draws(mode, batch_size)
  k_pair, k_lam, k_grey, k_num, k_gate = jax.random.split(key, 5)
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  alpha = jnp.asarray(alpha, jnp.float32)
  if reformulate:
    drawn = jnp.where(alpha > 0, sampling.beta(k_lam, alpha + 1.0, (n,), alpha), 1.0)
  else:
    drawn = sampling.beta(k_lam, alpha, (n,))
  grey = _grey_maps(k_grey, decay_power, spatial_shape=spatial_shape, num=n)
  mask = binarise(grey, num_ones(k_num, drawn, size), drawn, max_soft)
  on = sampling.gate(k_gate, prob, (n,))
  mask = jnp.where(on.reshape((-1,) + (1,) * len(spatial_shape)), mask, 1.0)
  return plan_lib.mask_plan(mask, index, mode=mode, pairing=pairing)


def fmix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  alpha: jax.typing.ArrayLike = 1.0,
  decay_power: jax.typing.ArrayLike = 3.0,
  max_soft: jax.typing.ArrayLike = 0.0,
  reformulate: bool = False,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
  spatial_axes: tuple[int, ...] | None = None,
) -> tuple[Any, jax.Array | None]:
  """FMix: mix with a binarised low-frequency mask; labels weighted by the exact pixel share.

  Harris et al. 2020. Every leaf of `inputs` gets the same mask; leaves must
  be ``[B, H, W]`` or rank 4 in `data_format`, or rank 5 (videos, volumes):
  by default one 2-D mask on every frame (a tube), with
  ``spatial_axes=(1, 2, 3)`` a 3-D mask from a 3-D spectrum (the official
  code's 3-D ``make_low_freq_image``), λ the exact voxel share.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays sharing batch and spatial axes.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    alpha, decay_power, max_soft, reformulate, prob, mode, pairing: as in
      :func:`sample_fmix`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` (channels last or
      second, also for rank-5 leaves).
    spatial_axes: the axes of every leaf that carry the mask (static), e.g.
      ``(2, 3)`` for a tube in ``[B, T, H, W, C]`` (the default for rank 5)
      or ``(1, 2, 3)`` for a 3-D mask; None: the image's (H, W).

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> images, targets = jaxmix.fmix(key, images, labels, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  return one_call.mix(
    sample_fmix,
    key,
    inputs,
    labels,
    spatial=True,
    spatial_axes=spatial_axes,
    volumes=(2, 3),
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    alpha=alpha,
    decay_power=decay_power,
    max_soft=max_soft,
    reformulate=reformulate,
    prob=prob,
    mode=mode,
    pairing=pairing,
  )
