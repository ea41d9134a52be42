"""SaliencyMix (Uddin et al. 2021, ICLR, "SaliencyMix: A Saliency Guided Data
Augmentation Strategy for Better Regularization") and a jittable
spectral-residual saliency map (Hou & Zhang 2007, CVPR, "Saliency Detection:
A Spectral Residual Approach").

SaliencyMix is CutMix whose box is centred on the partner's most salient
pixel, so the pasted patch holds the partner's object. The official code
(github.com/afm-shahab-uddin/SaliencyMix) draws λ ~ Beta(1, 1), cuts a box of
sides ``int(H·√(1-λ))``, ``int(W·√(1-λ))`` around the saliency peak, clips it
to the image and recomputes λ from the clipped box; it shares one box per
batch, found on the partner of the first sample, and mixes with probability
``cutmix_prob=0.5``. It finds the peak with OpenCV's fine-grained static
saliency (Montabone & Soto 2010); jaxmix ships the spectral-residual map,
which runs as FFTs inside the jit, and accepts any user-supplied map.

The box follows jaxmix's one box rule (``regions.centered_box``, timm
1.0.31's ``rand_bbox``): rows ``cy - cut_h//2`` to ``cy + (cut_h + 1)//2``,
exactly ``cut_h × cut_w`` before clipping. The official code ends the box at
``cy + cut_h//2`` (the CutMix code's rule), one row or column short when a
side is odd. jaxmix keeps the drawn size so that every box-drawing method
shares one rule; both recompute λ from the clipped box, so the labels match
the pixels either way.

Videos and volumes (rank 5, ``[B, T, H, W, C]`` or ``[B, D, H, W, C]``), the
paper's rule carried to them: by default the box is a *tube*, drawn by the
2-D rule from a saliency map ``[B, H, W]`` (one map for all frames, e.g. the
map of the frame mean) and pasted on every frame. With
``spatial_axes=(1, 2, 3)`` (or a 3-D ``spatial_shape`` on the sampler) the
saliency is a volume ``[B, D, H, W]``; the box is a cuboid centred on its
peak voxel, with sides ``int(S_i·∛(1-λ))`` on every axis (CutMix's k-D rule,
``regions.side_ratio``), clipped; λ is the exact voxel share. The built-in
spectral-residual map is 2-D and per image, so videos and volumes need an
explicit ``saliency=`` (for a tube, e.g.
``spectral_residual_saliency(video.mean(axis=1))``); jaxmix does not guess
one for them.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import batching
from jaxmix._src.core import one_call
from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import regions
from jaxmix._src.core import sampling
from jaxmix._src.core import validation

# ITU-R BT.601 luma, the weights of OpenCV's colour-to-grey conversion.
_LUMA = (0.299, 0.587, 0.114)


def _grey(images: jax.Array, data_format: str) -> jax.Array:
  """float32 `[B, H, W]`: luma for 3 channels, the channel mean otherwise."""
  x = jnp.asarray(images).astype(jnp.float32)
  if x.ndim == 3:
    return x
  channel_axis = 3 if data_format == "NHWC" else 1
  if x.shape[channel_axis] == 3:
    weights = jnp.asarray(_LUMA, jnp.float32)
    return jnp.tensordot(x, weights, axes=([channel_axis], [0]))
  return jnp.mean(x, axis=channel_axis)


def _reflect_101(j: int, size: int) -> int:
  """The index that reflect-101 borders (OpenCV's BORDER_REFLECT_101) read for position `j` of an axis."""
  if size == 1:
    return 0
  j %= 2 * (size - 1)
  return 2 * (size - 1) - j if j >= size else j


def _filter_axis(x: jax.Array, taps: np.ndarray, axis: int) -> jax.Array:
  """Correlates `x` with a short symmetric 1-D kernel along `axis`, reflect-101 borders.

  The interior reads shifted slices of `x` and the `radius` samples at each end
  read their reflected neighbours one by one, so no padded copy of `x` is built
  (on CPU the padded copy and the reads of it cost more than the arithmetic).
  """
  radius = len(taps) // 2
  size = x.shape[axis]

  def tap_sum(starts: list[int], length: int) -> jax.Array:
    slices = (jax.lax.slice_in_dim(x, i, i + length, axis=axis) for i in starts)
    return typing.cast(jax.Array, sum(float(t) * v for t, v in zip(taps, slices, strict=True)))

  def at(i: int) -> jax.Array:  # output i alone, its neighbours reflected
    return tap_sum([_reflect_101(i + k - radius, size) for k in range(len(taps))], 1)

  if size <= 2 * radius:  # no interior
    return jnp.concatenate([at(i) for i in range(size)], axis=axis)
  interior = tap_sum(list(range(len(taps))), size - 2 * radius)
  ends = [at(i) for i in range(radius)], [at(i) for i in range(size - radius, size)]
  return jnp.concatenate([*ends[0], interior, *ends[1]], axis=axis)


def _filter2d(x: jax.Array, taps: np.ndarray) -> jax.Array:
  return _filter_axis(_filter_axis(x, taps, x.ndim - 2), taps, x.ndim - 1)


def _gaussian_taps(size: int, sigma: float) -> np.ndarray:
  r = np.arange(size) - size // 2
  taps = np.exp(-(r**2) / (2.0 * sigma**2))
  return taps / taps.sum()


def _check_images(images: Any, data_format: str) -> tuple[int, int]:
  validation.check_choice("data_format", data_format, validation.DATA_FORMATS)
  shape = np.shape(images)
  if len(shape) not in (3, 4):
    raise ValueError(f"images must be [B, H, W] or a rank-4 image batch ({data_format}); got shape {shape}.")
  validation.check_numeric_leaf("images", images)
  h_axis, w_axis = validation.spatial_axes(len(shape), data_format)
  if min(shape[h_axis], shape[w_axis]) < 1:
    raise ValueError(
      f"images must have H >= 1 and W >= 1, got shape {shape} (H = {shape[h_axis]}, W = {shape[w_axis]})."
    )
  return shape[h_axis], shape[w_axis]


def _check_size(size: Any) -> None:
  if size is not None and (not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 3):
    raise ValueError(f"size must be an int >= 3 or None, got {size!r}.")


def _fft2_of_real(x: jax.Array) -> jax.Array:
  """``fft2`` of a real array via ``rfft2`` and Hermitian symmetry (faster on CPU)."""
  n = x.shape[-1]
  half = jnp.fft.rfft2(x)
  rest = jnp.conj(half[..., 1 : n - n // 2][..., ::-1])  # columns n//2+1 .. n-1
  rest = jnp.roll(jnp.flip(rest, -2), 1, axis=-2)  # rows u -> -u mod m
  return jnp.concatenate([half, rest], axis=-1)


def _spectral_residual(grey: jax.Array) -> jax.Array:
  """Spectral-residual saliency of float32 `[B, h, w]` grey images, at their size."""
  spectrum = _fft2_of_real(grey)
  amplitude = jnp.abs(spectrum)
  # The barriers keep XLA from recomputing log/abs once per filter tap.
  log_amplitude = jax.lax.optimization_barrier(jnp.log(amplitude + 1e-8))
  residual = log_amplitude - _filter2d(log_amplitude, np.full(3, 1.0 / 3.0))
  # exp(residual + i·phase) = spectrum · exp(residual) / |spectrum|, in real arithmetic.
  scale = jnp.where(amplitude > 0, jnp.exp(residual) / jnp.maximum(amplitude, 1e-30), 0.0)
  back = jnp.abs(jnp.fft.ifft2(jax.lax.complex(jnp.real(spectrum) * scale, jnp.imag(spectrum) * scale)))
  back = jax.lax.optimization_barrier(back)
  saliency = jnp.square(_filter2d(back, _gaussian_taps(5, 8.0)))
  peak = jnp.max(saliency, axis=(-2, -1), keepdims=True)
  return saliency / jnp.maximum(peak, 1e-30)


# Pixels of grey maps per step of the CPU loop in `_saliency_at_work_size` (16 maps of 32 × 32, 4 of
# 64 × 64): the spectra and filters of one step stay in cache.
_CPU_PIXELS_PER_STEP = 16384


def _linear_taps(size: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Static 2-tap bilinear resampling of an axis of `size` to `out` samples
  (half-pixel centres, no antialiasing: OpenCV's ``INTER_LINEAR``)."""
  src = np.maximum((np.arange(out) + 0.5) * (size / out) - 0.5, 0.0)
  i0 = np.minimum(np.floor(src), size - 1).astype(np.int32)
  i1 = np.minimum(i0 + 1, size - 1)
  return i0, i1, (src - i0).astype(np.float32)


def _resize_axis(x: jax.Array, out: int, axis: int) -> jax.Array:
  """float32 `x` resampled to `out` samples along `axis`; the rows are taken in `x`'s dtype and converted
  after (exact: the conversion commutes with the take), so a uint8 batch is never converted whole."""
  i0, i1, taps = _linear_taps(x.shape[axis], out)
  shape = [1] * x.ndim
  shape[axis] = out
  frac = jnp.asarray(taps).reshape(shape)
  first = jnp.take(x, i0, axis=axis).astype(jnp.float32)
  second = jnp.take(x, i1, axis=axis).astype(jnp.float32)
  return first * (1 - frac) + second * frac


def _saliency_at_work_size(images: jax.typing.ArrayLike, data_format: str, size: int | None) -> jax.Array:
  x = jnp.asarray(images)
  if size is not None:
    # Shrink each side to `size`, never enlarge (OpenCV would upsample a
    # 32 × 32 image to 64 × 64, four times the work for the same peak).
    # Bilinear sampling reads only the sampled pixels, and commutes with the
    # grey conversion, so it runs first, on the full image.
    h_axis, w_axis = validation.spatial_axes(x.ndim, data_format)
    if x.shape[h_axis] > size:
      x = _resize_axis(x, size, h_axis)
    if x.shape[w_axis] > size:
      x = _resize_axis(x, size, w_axis)
  grey = _grey(x, data_format)
  # Computed by groups of maps on the CPU (the same values; one big batch's temporaries go to main memory),
  # all maps at once on other platforms.
  step = max(1, _CPU_PIXELS_PER_STEP // (grey.shape[1] * grey.shape[2]))
  return batching.loop_on_cpu(_spectral_residual, grey, batch_size=min(step, grey.shape[0]))


def spectral_residual_saliency(
  images: jax.typing.ArrayLike,
  data_format: str = "NHWC",
  *,
  size: int | None = 64,
) -> jax.Array:
  """Spectral-residual saliency maps (Hou & Zhang 2007), in pure JAX.

  Follows OpenCV's ``StaticSaliencySpectralResidual``: grey image (BT.601
  luma for 3 channels, the channel mean otherwise) → bilinear resize to
  ``size × size`` (OpenCV's fixed 64 × 64; a side shorter than `size` is
  kept as it is, where OpenCV would enlarge it) → FFT → log amplitude minus its
  3 × 3 mean (reflect-101 borders) → inverse FFT with the original phase →
  magnitude → 5 × 5 Gaussian blur with σ = 8 → squared → divided by its
  maximum → bilinear resize back to (H, W). ``size=None`` computes at full
  resolution instead (same filters, in pixels of the full image).

  Two differences from OpenCV: the grey conversion reads channels as RGB
  (OpenCV's ``COLOR_BGR2GRAY`` reads them as BGR, which is what the SaliencyMix
  code, passing RGB tensors, effectively used), and resizing uses
  ``jax.image`` without antialiasing (as OpenCV's ``INTER_LINEAR``).

  Args:
    images: ``[B, H, W, C]`` (NHWC), ``[B, C, H, W]`` (NCHW) or ``[B, H, W]``;
      any real dtype.
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` for rank-4 images.
    size: side of the working resolution (static; sides shorter than it are
      not enlarged), or None for the full resolution.

  Returns:
    float32 ``[B, H, W]`` in [0, 1], 1 at each image's most salient pixel.

  Example:
    >>> saliency = jaxmix.spectral_residual_saliency(images)
    >>> saliency.shape
    (8, 32, 32)
    >>> images, targets = jaxmix.saliencymix(key, images, labels, saliency=saliency, num_classes=10)
  """
  h, w = _check_images(images, data_format)
  _check_size(size)
  saliency = _saliency_at_work_size(images, data_format, size)
  if size is not None:
    saliency = jax.image.resize(saliency, saliency.shape[:1] + (h, w), "linear", antialias=False)
  return saliency


def _check_saliency(saliency: Any, batch_size: int, spatial_shape: tuple[int, ...]) -> None:
  k = len(spatial_shape)
  if k == 2:
    expected = f"[B, h, w] maps with B = {batch_size} (one per sample, in batch order)"
    if np.ndim(saliency) == 4:
      expected += (
        " (a [B, d, h, w] saliency volume draws cuboids: pass a 3-D spatial_shape (D, H, W), or "
        "spatial_axes=(1, 2, 3) to saliencymix)"
      )
  else:
    expected = (
      f"[B, d, h, w] saliency volumes with B = {batch_size} (one per sample, in batch order) for the "
      f"3-D spatial_shape {spatial_shape}"
    )
    if np.ndim(saliency) == 3:
      expected += (
        " (a [B, h, w] map draws tubes, the same box on every frame: a 2-D spatial_shape, the default for "
        "rank-5 inputs)"
      )
  validation.check_array("saliency", saliency, expected=expected, rank=k + 1, batch_size=batch_size)
  if min(np.shape(saliency)[1:]) < 1:
    raise ValueError(f"saliency must be {expected}; got the empty grid {np.shape(saliency)[1:]}.")
  validation.check_numeric_leaf("saliency", saliency)


def saliency_peaks(saliency: jax.Array, spatial_shape: tuple[int, ...]) -> tuple[jax.Array, ...]:
  """(row, col) int32 `[n]` of each map's maximum, in pixels of `spatial_shape`.

  A map at the image's resolution gives its argmax pixel; a map of another
  size `[n, h, w]` gives the pixel holding the centre of its most salient
  cell, ``floor((i + 0.5)·H/h)``. Ties go to the first pixel in row-major
  order. A volume `[n, d, h, w]` with a 3-D `spatial_shape` gives
  (depth, row, col) of its peak voxel by the same rule on each axis.
  """
  n, grid = saliency.shape[0], tuple(saliency.shape[1:])
  flat = jnp.argmax(jnp.asarray(saliency).reshape(n, math.prod(grid)), axis=-1).astype(jnp.int32)
  coords = jnp.unravel_index(flat, grid)  # row-major
  if grid == tuple(spatial_shape):
    return tuple(coords)
  return tuple(
    jnp.clip(jnp.floor((c.astype(jnp.float32) + 0.5) * (s / g)).astype(jnp.int32), 0, s - 1)
    for c, s, g in zip(coords, spatial_shape, grid, strict=True)
  )


def _plan_from_peaks(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, ...],
  index: jax.Array,
  peaks: tuple[jax.Array, ...],
  *,
  alpha: jax.typing.ArrayLike,
  prob: jax.typing.ArrayLike,
  mode: str,
  pairing: str,
) -> plan_lib.Plan:
  """The plan, given each sample's box centre `[B]` (or `[1]` in batch mode) on each spatial axis."""
  n = sampling.num_draws(mode, batch_size)
  k_lam, k_gate = jax.random.split(key)
  drawn = sampling.per_sample(sampling.beta(k_lam, alpha, (n,)), mode, index)
  on = sampling.per_sample(sampling.gate(k_gate, prob, (n,)), mode, index)
  on = on & (jnp.asarray(alpha, jnp.float32) > 0)
  ratio = regions.side_ratio(drawn, len(spatial_shape))  # √(1-λ) for boxes, ∛(1-λ) for cuboids
  centres = tuple(jnp.broadcast_to(p, (batch_size,)) for p in peaks)
  if len(spatial_shape) == 2:
    h, w = spatial_shape
    cut_h, cut_w = regions.scaled_sides(ratio, (h, w))
    box, lam = regions.centered_box(centres[0], centres[1], cut_h, cut_w, (h, w))
  else:
    box, lam = regions.centered_cuboid(centres, regions.scaled_sides_nd(ratio, spatial_shape), spatial_shape)
  plan = plan_lib.Plan(
    lam=jnp.where(on, lam, 1.0),
    index=index,
    blend=jnp.ones((batch_size,), jnp.float32),
    region=jnp.where(on[:, None], box, 0),
    pairing=pairing,
    spatial_shape=spatial_shape,
    selects_pixels=True,
    shared_region=mode == "batch",  # the official code's one box per batch
  )
  return plan_lib.keep_self_pairs(plan)


def _partner_peaks(
  source: jax.Array, index: jax.Array, mode: str, pairing: str, peaks_of: Any
) -> tuple[jax.Array, ...]:
  """Box centres: the peak of each sample's partner, or in batch mode the
  peak of sample 0's partner alone (the official code's one box).

  `peaks_of` maps a batch of `source` (maps or images) to (row, col) peaks
  (or (depth, row, col) for volumes).
  Peaks are found in batch order and then paired (a reverse for flip),
  which avoids gathering whole images.
  """
  if mode == "batch":
    return peaks_of(jnp.take(source, index[:1], axis=0))
  return tuple(pairing_lib.take_partner(c, pairing, index) for c in peaks_of(source))


def sample_saliencymix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, ...] | None = None,
  *,
  saliency: jax.typing.ArrayLike,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "elem",
  pairing: str = "flip",
) -> plan_lib.Plan:
  """Samples a SaliencyMix plan from saliency maps of the batch.

  λ ~ Beta(α, α) sets a box of sides ``int(H·√(1-λ))``, ``int(W·√(1-λ))``
  centred on the most salient pixel of the sample's **partner** (the image
  the patch comes from) by jaxmix's one box rule (rows ``cy - cut_h//2`` to
  ``cy + (cut_h + 1)//2``, as timm's ``rand_bbox``; the official code's box
  is one row or column shorter on odd sides), clipped to the image; ``lam``
  is the exact share of own pixels left.

  ``mode="elem"`` (the default here) gives every sample its own λ and a box
  on its own partner's peak. ``mode="batch"`` is the official code's
  behaviour: one λ and one box for the whole batch, centred on the peak of
  the first sample's partner. ``mode="pair"`` shares λ within mutual pairs.

  Cuboids (videos and volumes): with a 3-D ``spatial_shape`` (D, H, W) the
  saliency is a volume ``[B, d, h, w]``; the box is a cuboid centred on the
  partner's peak voxel with sides ``int(S_i·∛(1-λ))`` on each axis (CutMix's
  k-D rule), clipped; ``lam`` is the exact voxel share. A 2-D plan on a
  rank-5 batch is a tube: the box of a ``[B, h, w]`` map on every frame.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) of the images (static), or (D, H, W) for cuboids.
    saliency: ``[B, h, w]`` maps, one per sample **in batch order** (the
      sampler picks each partner's). Any real dtype; higher is more salient.
      ``h, w`` may differ from ``H, W`` (e.g. a low-resolution map or
      gradient map): the peak is then the centre of the most salient cell.
      E.g. :func:`spectral_residual_saliency` or ``|∂loss/∂x|`` summed over
      channels. ``[B, d, h, w]`` volumes with a 3-D `spatial_shape`.
    alpha: Beta concentration; the official 1.0; 0 turns mixing off. Traced.
      Edges as in :func:`jaxmix.sample_mixup` (≤ 0 or NaN: off; +inf:
      λ = 0.5 drawn).
    prob: probability that a batch/pair/sample is mixed (the official code
      uses ``cutmix_prob=0.5``). Traced.
    mode: ``"elem"``, ``"batch"`` or ``"pair"``. Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``. Static.

  Returns:
    A :class:`jaxmix.Plan` with a box per sample: int32 `[B, 4]`, or `[B, 6]`
    (start, stop per axis) for cuboids.

  Example:
    >>> saliency = jaxmix.spectral_residual_saliency(images)
    >>> plan = jaxmix.sample_saliencymix(key, 8, (32, 32), saliency=saliency)
    >>> images = jaxmix.apply(plan, images)
    >>> images.shape
    (8, 32, 32, 3)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_nonnegative("alpha", alpha)
  validation.check_unit_interval("prob", prob)
  validation.check_choice("mode", mode, validation.MODES)
  spatial_shape = validation.check_spatial_shape_nd(spatial_shape, ndims=(2, 3))
  _check_saliency(saliency, batch_size, spatial_shape)
  k_pair, k_rest = jax.random.split(key)
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  peaks = _partner_peaks(
    jnp.asarray(saliency), index, mode, pairing, lambda maps: saliency_peaks(maps, spatial_shape)
  )
  return _plan_from_peaks(
    k_rest, batch_size, spatial_shape, index, peaks, alpha=alpha, prob=prob, mode=mode, pairing=pairing
  )


def saliencymix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  saliency: jax.typing.ArrayLike | None = None,
  saliency_size: int | None = 64,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "elem",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
  spatial_axes: tuple[int, ...] | None = None,
) -> tuple[Any, jax.Array | None]:
  """SaliencyMix: CutMix with the box on the partner's most salient pixel.

  Uddin et al. 2021. Without `saliency`, spectral-residual saliency
  (:func:`spectral_residual_saliency`) is computed inside the jit from the
  **first leaf** of `inputs` (in ``jax.tree_util`` order; for ``(images,
  seg)`` that is ``images``), at ``saliency_size`` and without resizing it
  back: the box is centred on the centre of the most salient cell. In
  ``mode="batch"`` only one map is computed (the first sample's partner's).

  Rank-5 leaves (videos ``[B, T, H, W, C]``, volumes ``[B, D, H, W, C]``)
  need an explicit `saliency` (the built-in map is 2-D): a ``[B, H, W]`` map
  gives a tube, the 2-D box on every frame (the default for rank 5; e.g.
  ``spectral_residual_saliency(video.mean(axis=1))``, the map of the frame
  mean); a ``[B, D, H, W]`` volume with ``spatial_axes=(1, 2, 3)`` gives a
  cuboid on its peak voxel, λ the exact voxel share.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays sharing batch and spatial axes.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    saliency: optional ``[B, h, w]`` maps (``[B, d, h, w]`` volumes for
      cuboids) in batch order, as in :func:`sample_saliencymix`; required
      for rank-5 inputs and for `spatial_axes` other than the images' (H, W).
    saliency_size: working size of the built-in map (static), see
      :func:`spectral_residual_saliency`; ignored with `saliency`.
    alpha, prob, mode, pairing: as in :func:`sample_saliencymix`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` (channels last or
      second, also for rank-5 leaves).
    spatial_axes: the axes of every leaf that carry the box (static), e.g.
      ``(2, 3)`` for a tube in ``[B, T, H, W, C]`` (the default for rank 5)
      or ``(1, 2, 3)`` for a cuboid; None: the image's (H, W).

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> images, targets = jaxmix.saliencymix(key, images, labels, num_classes=10)
    >>> targets.shape
    (8, 10)
  """

  def sample_from_inputs(key, batch_size, spatial, *, alpha, prob, mode, pairing):
    """The sampler with the built-in map: computed only for the partners that are pasted."""
    validation.check_key(key)
    validation.check_nonnegative("alpha", alpha)
    validation.check_unit_interval("prob", prob)
    validation.check_choice("mode", mode, validation.MODES)
    _check_size(saliency_size)
    images = jax.tree_util.tree_leaves(inputs)[0]
    ndim = np.ndim(images)
    axes = validation.check_spatial_axes(spatial_axes)
    image_axes = validation.spatial_axes(ndim, data_format)
    if len(spatial) != 2 or ndim not in (3, 4) or axes not in (None, image_axes):
      raise ValueError(
        "saliency is required for videos and volumes (rank-5 inputs, or spatial_axes other than the images' "
        f"(H, W); got inputs of shape {np.shape(images)} and spatial_axes={spatial_axes!r}): the built-in "
        "spectral-residual map is 2-D. Pass saliency=[B, H, W] for a tube (the same box on every frame), "
        "e.g. jaxmix.spectral_residual_saliency(video.mean(axis=1)), or a [B, D, H, W] volume with "
        "spatial_axes=(1, 2, 3) for a cuboid."
      )
    k_pair, k_rest = jax.random.split(key)
    index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")

    def peaks_of(batch):
      return saliency_peaks(_saliency_at_work_size(batch, data_format, saliency_size), spatial)

    peaks = _partner_peaks(images, index, mode, pairing, peaks_of)
    return _plan_from_peaks(
      k_rest, batch_size, spatial, index, peaks, alpha=alpha, prob=prob, mode=mode, pairing=pairing
    )

  sampler: Callable[..., plan_lib.Plan] = sample_from_inputs
  given: dict[str, Any] = {}
  if saliency is not None:
    sampler, given = sample_saliencymix, {"saliency": saliency}
  return one_call.mix(
    sampler,
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
    prob=prob,
    mode=mode,
    pairing=pairing,
    **given,
  )
