"""GridMix (Baek et al. 2021, "GridMix: Strong regularization through local
context mapping", Pattern Recognition 2021).

The image is cut into an ``n × n`` grid; each cell independently comes from
the partner with probability ``cell_prob``. With ``hole < 1`` only a square hole of
side ``hole ·`` (cell side) at the top-left corner of a chosen cell is taken
from the partner, which gives the regular hole pattern of the GridMixup variant that
OpenMixup ships (github.com/IlyaDobrynin/GridMixup). λ is the exact share of
the sample's own pixels, counted from the mask.

The paper's local-context (per-cell label) loss is a training objective,
not part of the mixing, and is not provided.

The mask comes from iota comparisons: pixel ``(h, w)`` lies in cell
``(h·n // H, w·n // W)``, so a traced ``n`` never changes a shape.

Videos and volumes (rank 5): by default the 2-D grid of (H, W) covers every
frame of ``[B, T, H, W, C]`` (a tube). With ``spatial_axes=(1, 2, 3)`` (or a
3-D ``spatial_shape``) the grid is carried to three axes as the 2-D rule is
carried from one axis to two: one n drawn from ``grid_size`` per mask (per
batch or per sample, as in 2-D), the same n on every axis, so the volume is
cut into ``n × n × n`` cuboid cells (voxel ``(d, h, w)`` in cell
``(d·n // D, h·n // H, w·n // W)``), each taken from the partner with
probability ``cell_prob``; with ``hole < 1`` the partner's part of a chosen
cell is the cube of side ``hole ·`` (cell side) at the cell's first corner.
``grid_size``'s high end must fit the shortest of the three sides, as it must
fit min(H, W) in 2-D. In 2-D this is jaxmix's rule (one n for both axes, an
``n × n`` grid); the 3-D form is that rule on one more axis, not a rule from
the paper, which mixes images only. λ is the exact voxel share, counted from
the same per-axis vectors as in 2-D.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxmix._src.core import deprecation
from jaxmix._src.core import one_call
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation


def _check_grid_size(grid_size: Any, spatial_shape: tuple[int, ...]) -> tuple[int, int]:
  if isinstance(grid_size, int) and not isinstance(grid_size, bool):
    grid_size = (grid_size, grid_size)
  if len(tuple(grid_size)) != 2 or not all(isinstance(g, int) for g in grid_size):
    raise ValueError(f"grid_size must be an int or an (low, high) pair of ints, got {grid_size!r}.")
  lo, hi = grid_size
  if not 1 <= lo <= hi or hi > min(spatial_shape):
    sides = "(H, W)" if len(spatial_shape) == 2 else "(D, H, W)"
    raise ValueError(
      f"grid_size must satisfy 1 <= low <= high <= min{sides} = {min(spatial_shape)}, got {grid_size!r}."
    )
  return lo, hi


def _masks_and_counts(
  key: jax.Array,
  num: int,
  spatial_shape: tuple[int, ...],
  *,
  grid_size: tuple[int, int],
  cell_prob: jax.typing.ArrayLike,
  hole: jax.typing.ArrayLike,
) -> tuple[jax.Array, jax.Array]:
  """float32 `[num, H, W]` binary GridMix masks (1 where the partner's pixels go) and float32 `[num]`
  counts of partner pixels in each.

  n cells a side is drawn uniformly from ``grid_size`` = (low, high); each cell is
  taken from the partner with probability `cell_prob`, as a square of side `hole` × the
  cell side (1 = the whole cell).

  The mask is an elementwise expression of per-row and per-column vectors
  (each pixel compares its column's cell with every cell index), so XLA
  fuses it into the blend; the count comes from the same vectors, so λ never
  reads the mask.

  A 3-D `spatial_shape` (D, H, W) gives `[num, D, H, W]` masks of ``n × n × n``
  cells: the same rule with a per-depth vector too (see the module docstring).
  The counts are summed in int32: a float matmul may round products above
  2**11 (TF32 on GPUs), and λ must be exact.
  """
  k = len(spatial_shape)
  lo, hi = grid_size
  k_n, k_cells = jax.random.split(key)
  n = jax.random.randint(k_n, (num, 1), lo, hi + 1).astype(jnp.int32)
  chosen = jax.random.uniform(k_cells, (num,) + (hi,) * k) < jnp.asarray(cell_prob, jnp.float32)
  hole = jnp.asarray(hole, jnp.float32)
  cells = jnp.arange(hi, dtype=jnp.int32)

  def hot(size: int) -> jax.Array:
    # bool [num, size, hi]: position p of this axis lies in cell c, inside the hole's part of it (the
    # position of its centre in the cell, in [0, 1), below `hole`).
    pos = jnp.arange(size, dtype=jnp.int32)[None, :]
    frac = jnp.mod((pos.astype(jnp.float32) + 0.5) * n.astype(jnp.float32) / size, 1.0)
    return ((pos * n // size)[:, :, None] == cells) & (frac < hole)[:, :, None]

  hots = [hot(size) for size in spatial_shape]
  per_cell = jnp.ones((num,) + (1,) * k, jnp.int32)
  for axis, v in enumerate(hots):  # the hole's positions of each cell on each axis, multiplied out
    shape = (num,) + tuple(hi if a == axis else 1 for a in range(k))
    per_cell = per_cell * v.sum(axis=1, dtype=jnp.int32).reshape(shape)
  counts = jnp.sum(jnp.where(chosen, per_cell, 0), axis=tuple(range(1, k + 1)), dtype=jnp.int32)
  # Per pixel (voxel): the chosen cells of its row (depth and row), looked up by its column's cell.
  f = [v.astype(jnp.float32) for v in hots[:-1]]
  lead = jnp.einsum("nhi,nij->nhj" if k == 2 else "ndi,nhj,nijl->ndhl", *f, chosen.astype(jnp.float32))
  last = hots[-1][(slice(None),) + (None,) * (k - 1)]  # [num, 1(, 1), W, hi]
  hit = jnp.zeros((num, *spatial_shape), jnp.bool_)
  for j in range(hi):
    hit = hit | ((lead[..., j, None] > 0.5) & last[..., j])
  return hit.astype(jnp.float32), counts.astype(jnp.float32)


@deprecation.renamed(p="cell_prob")
def sample_gridmix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, ...] | None = None,
  *,
  grid_size: int | tuple[int, int] = (2, 7),
  cell_prob: jax.typing.ArrayLike = 0.5,
  hole: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
) -> plan_lib.Plan:
  """Samples a GridMix plan: grid cells (or holes in them) taken from the partner.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) (static), or (D, H, W) for a grid of ``n × n × n``
      cuboid cells over videos and volumes (the mask `[1 or B, D, H, W]`; λ
      the exact voxel share; see the module docstring).
    grid_size: n, or (low, high) to draw n uniformly from low..high
      inclusive, per batch or per sample; on (D, H, W) one n for all three
      axes. Default (2, 7); high at most the shortest side. Static.
    cell_prob: probability that a cell comes from the partner (the hole
      ratio). Default 0.5. Traced. (Called ``p`` before 0.2.0; ``p=`` still
      works, with a DeprecationWarning, until 0.3.0.)
    hole: side of the partner's square within a chosen cell as a fraction of
      the cell side; 1 (default) takes the whole cell. Traced.
    prob: probability that a batch (or sample) is mixed at all. Traced.
    mode: ``"batch"`` (one mask, `[1, H, W]`), ``"pair"`` or ``"elem"``
      (`[B, H, W]`). Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``. Static.

  Returns:
    A :class:`Plan` whose binary ``mask`` is 1 on the sample's own pixels and
    whose ``lam`` is their exact share.

  Example:
    >>> plan = jaxmix.sample_gridmix(key, 8, (32, 32), grid_size=(2, 8), cell_prob=0.5)
    >>> images = jaxmix.apply(plan, images)
    >>> plan.mask.shape                       # mode="batch": one grid for the whole batch
    (1, 32, 32)
    >>> plan = jaxmix.sample_gridmix(key, 8, (8, 32, 32), grid_size=(2, 4))   # cuboid cells over (T, H, W)
    >>> plan.mask.shape
    (1, 8, 32, 32)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_unit_interval("cell_prob", cell_prob)
  validation.check_unit_interval("hole", hole)
  validation.check_unit_interval("prob", prob)
  spatial_shape = validation.check_spatial_shape_nd(spatial_shape, ndims=(2, 3))
  grid_size = _check_grid_size(grid_size, spatial_shape)
  validation.check_choice("mode", mode, validation.MODES)
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  return _sample_gridmix(
    key,
    cell_prob,
    hole,
    prob,
    batch_size=batch_size,
    spatial_shape=spatial_shape,
    grid_size=grid_size,
    mode=mode,
    pairing=pairing,
  )


# One compiled program per static configuration, also for eager calls.
@functools.partial(jax.jit, static_argnames=("batch_size", "spatial_shape", "grid_size", "mode", "pairing"))
def _sample_gridmix(
  key: jax.Array,
  cell_prob: Any,
  hole: Any,
  prob: Any,
  *,
  batch_size: int,
  spatial_shape: tuple[int, ...],
  grid_size: tuple[int, int],
  mode: str,
  pairing: str,
) -> plan_lib.Plan:
  size = math.prod(spatial_shape)
  n = sampling.num_draws(mode, batch_size)
  k_pair, k_mask, k_gate = jax.random.split(key, 3)
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  partner, count = _masks_and_counts(
    k_mask, n, spatial_shape, grid_size=grid_size, cell_prob=cell_prob, hole=hole
  )
  on = sampling.gate(k_gate, prob, (n,))
  own = jnp.where(on.reshape((-1,) + (1,) * len(spatial_shape)), 1.0 - partner, 1.0)
  own_share = jnp.where(on, 1.0 - count / size, 1.0)
  return plan_lib.mask_plan(own, index, mode=mode, pairing=pairing, own_share=own_share, selects_pixels=True)


@deprecation.renamed(p="cell_prob")
def gridmix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  grid_size: int | tuple[int, int] = (2, 7),
  cell_prob: jax.typing.ArrayLike = 0.5,
  hole: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
  spatial_axes: tuple[int, ...] | None = None,
) -> tuple[Any, jax.Array | None]:
  """GridMix: take random grid cells from the partner; labels by the exact pixel share.

  Baek et al. 2021. Every leaf of `inputs` gets the same mask; leaves must be
  ``[B, H, W]`` or rank 4 in `data_format`, or rank 5 (videos
  ``[B, T, H, W, C]``, volumes ``[B, D, H, W, C]``): by default the same 2-D
  grid on every frame (a tube), with ``spatial_axes=(1, 2, 3)`` a grid of
  ``n × n × n`` cuboid cells, λ the exact voxel share.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays sharing batch and spatial axes.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    grid_size, cell_prob, hole, prob, mode, pairing: as in :func:`sample_gridmix`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` (channels last or
      second, also for rank-5 leaves).
    spatial_axes: the axes of every leaf that carry the mask (static), e.g.
      ``(2, 3)`` for a tube in ``[B, T, H, W, C]`` (the default for rank 5:
      the same 2-D grid on all T frames) or ``(1, 2, 3)`` for cuboid cells;
      None: the image's (H, W).

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> images, targets = jaxmix.gridmix(key, images, labels, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  return one_call.mix(
    sample_gridmix,
    key,
    inputs,
    labels,
    spatial=True,
    spatial_axes=spatial_axes,
    volumes=(2, 3),
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    grid_size=grid_size,
    cell_prob=cell_prob,
    hole=hole,
    prob=prob,
    mode=mode,
    pairing=pairing,
  )
