"""Attentive CutMix (Walawalkar et al. 2020, ICASSP, "Attentive CutMix: An
Enhanced Data Augmentation Approach for Deep Learning Based Image
Classification").

A feature (attention) map of the partner, e.g. the channel-mean of a
pretrained backbone's last feature map, is read as a grid of cells; the
partner's ``top_k`` most attended cells are pasted onto the sample at the
same positions. The official code (github.com/xden2331/attentive_cutmix)
uses ResNet-50 features on a 7 × 7 grid for ImageNet (8 × 8 from an earlier
stage for CIFAR) and ``k = 6``; it weights labels by ``k / cells``. jaxmix
reports the exact pixel share instead, which differs when H is not a
multiple of the grid (cells then have unequal sizes).

OpenMixup's ``attentivemix`` keeps the sample's *own* top-k cells and fills
the rest from the partner; jaxmix follows the paper and the official code:
the pasted cells are the partner's most attended ones.

Videos and volumes (rank 5, ``[B, T, H, W, C]`` or ``[B, D, H, W, C]``), the
paper's rule carried to them: by default a ``[B, h, w]`` map gives the top-k
cell mask on (H, W), pasted on every frame (a *tube*). With
``spatial_axes=(1, 2, 3)`` (or a 3-D ``spatial_shape`` on the sampler) the map
is a ``[B, d, h, w]`` grid (e.g. the channel mean of a 3-D backbone's last
stage) laid over (D, H, W) with boundaries ``i·D//d`` on each axis, and the
partner's ``top_k`` cells of it are pasted as cuboid cells; λ is the exact
voxel share.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import one_call
from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation


def _check_features(features: Any, batch_size: int, spatial_shape: tuple[int, ...], top_k: Any) -> None:
  k = len(spatial_shape)
  ndim = np.ndim(features)
  if k == 2:
    hint = ""
    if ndim == 4:
      hint = (
        " (average the channels first, e.g. features.mean(-1); a [B, d, h, w] grid draws cuboids: pass a "
        "3-D spatial_shape (D, H, W), or spatial_axes=(1, 2, 3) to attentive_cutmix)"
      )
    expected = f"[B, h, w] maps with B = {batch_size}, one per sample in batch order{hint}"
  else:
    hint = ""
    if ndim == 5:
      hint = " (average the channels first, e.g. features.mean(-1))"
    elif ndim == 3:
      hint = (
        " (a [B, h, w] map draws tubes, the same cells on every frame: a 2-D spatial_shape, the default for "
        "rank-5 inputs)"
      )
    expected = (
      f"[B, d, h, w] grids with B = {batch_size}, one per sample in batch order, for the 3-D "
      f"spatial_shape {spatial_shape}{hint}"
    )
  validation.check_array("features", features, expected=expected, rank=k + 1, batch_size=batch_size)
  shape = np.shape(features)
  if min(shape[1:]) < 1:
    raise ValueError(f"features must be {expected}; got the empty grid {shape[1:]}.")
  validation.check_numeric_leaf("features", features)
  if any(g > s for g, s in zip(shape[1:], spatial_shape, strict=True)):
    what = "images" if k == 2 else "volumes"
    raise ValueError(f"features grid {shape[1:]} is finer than the {what} {spatial_shape}.")
  cells = int(np.prod(shape[1:]))
  if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or not 1 <= top_k <= cells:
    sizes = "h·w" if k == 2 else "d·h·w"
    raise ValueError(f"top_k must be an int in [1, {sizes}] = [1, {cells}], got {top_k!r}.")


def cell_of(size: int, cells: int) -> np.ndarray:
  """int32 `[size]`: the grid cell of each pixel, cell ``i`` spanning
  ``[i·size//cells, (i+1)·size//cells)`` (static)."""
  bounds = np.arange(cells) * size // cells
  return (np.searchsorted(bounds, np.arange(size), side="right") - 1).astype(np.int32)


def _top_cells(features: jax.Array, top_k: int) -> jax.Array:
  """int32 `[B, top_k]`: flat (row-major) ids of each map's highest cells (ties: lowest id)."""
  b, cells = features.shape[0], int(np.prod(features.shape[1:]))
  _, chosen = jax.lax.top_k(jnp.asarray(features, jnp.float32).reshape(b, cells), top_k)
  return chosen.astype(jnp.int32)


def _cells_mask(chosen: jax.Array, grid: tuple[int, ...], spatial_shape: tuple[int, ...]) -> jax.Array:
  """float32 `[B, *spatial_shape]`, 1 on the `chosen` cells of a `[h, w]` (or `[d, h, w]`) grid.

  Each grid row's chosen columns are packed into bits (uint32 words, 32
  columns each), the small ``[B, gh, words]`` table is spread to pixel rows by
  a static-index gather (``[B, H, words]``), and each pixel reads its column's
  bit: a shift and an ``and``, elementwise, so XLA fuses the mask into the
  blend and never writes it out. No per-pixel gather, matmul or comparison
  with every chosen id.
  """
  *lead, gw = grid
  *lead_sizes, w = spatial_shape
  cells = int(np.prod(grid))
  words = -(-gw // 32)
  picked = jnp.any(chosen[:, :, None] == jnp.arange(cells, dtype=jnp.int32), axis=1)
  picked = picked.reshape((-1, *lead, gw))
  if words * 32 != gw:
    picked = jnp.pad(picked, [(0, 0)] * len(grid) + [(0, words * 32 - gw)])
  picked = picked.reshape((-1, *lead, words, 32))
  powers = jnp.left_shift(jnp.uint32(1), jnp.arange(32, dtype=jnp.uint32))
  # Distinct powers of two: their sum is their bitwise or.
  bits = jnp.sum(jnp.where(picked, powers, jnp.uint32(0)), axis=-1, dtype=jnp.uint32)  # [B, *lead, words]
  for axis, (size, g) in enumerate(zip(lead_sizes, lead, strict=True)):
    bits = jnp.take(bits, jnp.asarray(cell_of(size, g)), axis=1 + axis)  # [B, *lead_sizes, words]
  col = cell_of(w, gw)
  shift = jnp.asarray(col % 32, jnp.uint32)  # [W]
  if words == 1:
    row = bits[..., :1]  # [B, *lead_sizes, 1]
  else:
    word = jnp.asarray(col // 32)
    row = bits[..., :1]
    for j in range(1, words):
      row = jnp.where(word == j, bits[..., j : j + 1], row)
  return (jnp.right_shift(row, shift) & jnp.uint32(1)).astype(jnp.float32)


def _cells_area(chosen: jax.Array, grid: tuple[int, ...], spatial_shape: tuple[int, ...]) -> jax.Array:
  """int32 `[B]`: pixels (voxels) covered by the (distinct) `chosen` cells, from a static table."""
  sides = [np.diff(np.arange(g + 1) * s // g) for g, s in zip(grid, spatial_shape, strict=True)]
  table = sides[0]
  for side in sides[1:]:
    table = np.multiply.outer(table, side)
  area = jnp.asarray(table.reshape(-1), jnp.int32)
  return jnp.sum(area[chosen], axis=-1)


def sample_attentive_cutmix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, ...] | None = None,
  *,
  features: jax.typing.ArrayLike,
  top_k: int = 6,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
) -> plan_lib.Plan:
  """Samples an Attentive CutMix plan from feature maps of the batch.

  Each sample receives the ``top_k`` grid cells on which its **partner's**
  map is highest, copied from the partner at the same positions. The grid
  ``[h, w]`` is laid over the image with cell boundaries ``i·H//h`` and
  ``j·W//w``; ``lam`` is the exact share of own pixels, equal to
  ``1 - top_k/(h·w)`` only when H and W are multiples of h and w.

  The masks come from the maps, so `mode` only sets how the `prob` gate is
  drawn: once per batch, per mutual pair or per sample.

  Cuboids (videos and volumes): with a 3-D ``spatial_shape`` (D, H, W) the
  maps are grids ``[B, d, h, w]``, laid over the volume with boundaries
  ``i·D//d``, ``j·H//h``, ``l·W//w``; the partner's ``top_k`` cells of the
  3-D grid are pasted and ``lam`` is the exact voxel share. A 2-D plan on a
  rank-5 batch is a tube: the cells of a ``[B, h, w]`` map on every frame.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) of the images (static), or (D, H, W) for cuboids.
    features: ``[B, h, w]`` attention or feature maps (e.g. the channel mean
      of a pretrained backbone's last stage; 7 × 7 for ResNet-50 at 224²),
      one per sample **in batch order**; each sample uses its partner's.
      Treat them as constants (wrap in ``jax.lax.stop_gradient``).
      ``[B, d, h, w]`` grids with a 3-D `spatial_shape`.
    top_k: number of cells pasted (static); the paper's 6.
    prob: probability of mixing. Traced.
    mode: ``"batch"``, ``"pair"`` or ``"elem"``. Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``. Static.

  Returns:
    A :class:`jaxmix.Plan` whose ``mask`` is the own-content weight.

  Example:
    >>> backbone_features = images[:, ::4, ::4]     # a stand-in for a backbone's last stage
    >>> feats = backbone_features.mean(-1)          # [B, 8, 8]
    >>> plan = jaxmix.sample_attentive_cutmix(key, 8, (32, 32), features=feats)
    >>> images = jaxmix.apply(plan, images)
    >>> float(plan.lam[0])                          # 6 of 64 cells pasted: 1 - 6/64
    0.90625
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_unit_interval("prob", prob)
  validation.check_choice("mode", mode, validation.MODES)
  spatial_shape = validation.check_spatial_shape_nd(spatial_shape, ndims=(2, 3))
  _check_features(features, batch_size, spatial_shape, top_k)
  k_pair, k_gate = jax.random.split(key)
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  n = sampling.num_draws(mode, batch_size)
  on = sampling.per_sample(sampling.gate(k_gate, prob, (n,)), mode, index)
  features = jnp.asarray(features)
  grid = tuple(features.shape[1:])  # [B, gh, gw] or [B, gd, gh, gw]: the rank checked above
  chosen = _top_cells(pairing_lib.take_partner(features, pairing, index), top_k)
  # A sample that is its own partner (odd batch, flip) stays unchanged.
  on = on & ~pairing_lib.self_pairs(index)
  if len(spatial_shape) == 2:
    h, w = spatial_shape
    own = jnp.where(on[:, None, None], 1.0 - _cells_mask(chosen, grid, (h, w)), 1.0)
    total = h * w
  else:
    own = jnp.where(on[:, None, None, None], 1.0 - _cells_mask(chosen, grid, spatial_shape), 1.0)
    total = int(np.prod(spatial_shape))
  # λ from a static table of cell areas, so the mask is only read by the blend.
  pasted = _cells_area(chosen, grid, spatial_shape).astype(jnp.float32) / total
  plan = plan_lib.Plan(
    lam=jnp.where(on, 1.0 - pasted, 1.0),
    index=index,
    blend=jnp.ones((batch_size,), jnp.float32),
    mask=own,
    pairing=pairing,
    spatial_shape=spatial_shape,
    selects_pixels=True,
  )
  return plan_lib.keep_self_pairs(plan)


def attentive_cutmix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  features: jax.typing.ArrayLike,
  top_k: int = 6,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
  spatial_axes: tuple[int, ...] | None = None,
) -> tuple[Any, jax.Array | None]:
  """Attentive CutMix: paste the partner's most attended grid cells.

  Walawalkar et al. 2020. Every leaf of `inputs` gets the same cells. Rank-5
  leaves (videos ``[B, T, H, W, C]``, volumes ``[B, D, H, W, C]``): a
  ``[B, h, w]`` map pastes its cells on every frame (a tube, the default);
  a ``[B, d, h, w]`` grid with ``spatial_axes=(1, 2, 3)`` pastes cuboid
  cells, λ the exact voxel share.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays sharing batch and spatial axes.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    features: ``[B, h, w]`` maps (``[B, d, h, w]`` grids for cuboids) in
      batch order, as in :func:`sample_attentive_cutmix`.
    top_k, prob, mode, pairing: as in :func:`sample_attentive_cutmix`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` (channels last or
      second, also for rank-5 leaves).
    spatial_axes: the axes of every leaf that carry the cells (static),
      e.g. ``(2, 3)`` for a tube in ``[B, T, H, W, C]`` (the default for
      rank 5) or ``(1, 2, 3)`` for cuboids; None: the image's (H, W).

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> backbone = lambda x: x[:, ::4, ::4]         # a stand-in for a pretrained network
    >>> feats = jax.lax.stop_gradient(backbone(images).mean(-1))   # [B, 8, 8]
    >>> images, targets = jaxmix.attentive_cutmix(key, images, labels, features=feats, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  return one_call.mix(
    sample_attentive_cutmix,
    key,
    inputs,
    labels,
    spatial=True,
    spatial_axes=spatial_axes,
    volumes=(2, 3),
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    features=features,
    top_k=top_k,
    prob=prob,
    mode=mode,
    pairing=pairing,
  )
