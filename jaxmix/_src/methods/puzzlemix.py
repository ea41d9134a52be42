"""PuzzleMix (Kim, Choo, Song 2020, "Puzzle Mix: Exploiting Saliency and Local Statistics for Optimal
Mixup", ICML 2020).

Each output is a block-wise mix of a sample and its partner: a labelling of a
``N × N`` block grid with ``n_labels`` mixing levels (own weight ``1``,
``(n−2)/(n−1)``, …, ``0``) that keeps the salient blocks of both sources,
follows a prior around λ, and avoids seams between blocks that do not fit;
then each source's salient blocks are moved (transported) into the region
where it keeps weight. The label weight is the mask's mean.

The official code (github.com/snu-mllab/PuzzleMix, ``mixup.py``:
``mixup_process``, ``mixup_graph``, ``graphcut_multi``, ``neigh_penalty``,
``mask_transport``; ``main.py`` for the saliency), which jaxmix follows:

* saliency: ``sqrt(mean_c (∂loss/∂x)²)`` per pixel (``main.py``; the loss of
  the unmixed batch), average-pooled to the block grid and divided by its sum
  (each map sums to 1): :func:`puzzlemix_saliency` gives the per-pixel map;
* one ``λ ~ Beta(α, α)`` and one grid side ``N = 2^randint(1, 5)`` ∈ {2, 4,
  8, 16} per batch (CIFAR's 32 × 32), a random permutation as partners;
* the labelling energy, block ``i`` with label ``l`` (partner share ``t =
  l/(n−1)``)::

      U_i(l) = (1−t)·(s'_i + a_i) + t·(s_i + b_i) + η·prior_l / N²
      prior_l = −log(C(n−1, l)·λ^(n−1−l)·(1−λ)^l + 1e−8)
      P_ij(l, m) = (β' + c_ij)·(l − m)² / (n−1)²,   β' = β / N / 16

  with ``s`` and ``s'`` the sample's and the partner's pooled saliency (so a
  block pays the saliency it drops), ``c_ij`` and the unary offsets ``a, b``
  from the local statistics: the images average-pooled by ``neigh_size``, and
  for each grid edge and each of the 4 choices of (source above/left, source
  below/right) the mean absolute difference across the block boundary, times
  ``β'·γ`` (``neigh_penalty``), split into unary parts and the seam weight
  ``c = (p₀₁ + p₁₀ − p₀₀ − p₁₁)/2`` as ``mixup_graph`` does. The official
  minimises this with gco's α-β swap (integer costs, ×1000·N²);
* transport: for each source, the saliency pooled at ``t_size`` (or the block
  grid when ``t_size`` is not smaller than a block), the mask brought to that
  grid (nearest), ``cost_ij = t_eps·‖pos_i − pos_j‖²/(T−1)² − s_i·[mask_j > 0]``
  for moving block ``i`` to position ``j``, and ``T`` rounds of: every block
  picks its cheapest position, the cheapest bidder of each position wins, the
  losers' cost there grows by 1 (``mask_transport``); the winners of the last
  round move;
* defaults from the README's CIFAR-100 command: ``α=1``, ``n_labels=3``,
  ``β=1.2``, ``γ=0.5``, ``η=0.2``, ``neigh_size=4``, ``transport=True``,
  ``t_size=4``, ``t_eps=0.8`` (``main.py``'s argparse default ``t_size`` is −1,
  the block grid: ``t_size=None`` here).

Differences:

* **The labelling is approximate, jit-able, and not the α-β swap.** jaxmix runs
  ``bp_iters`` rounds of synchronous, damped (½) loopy min-sum belief
  propagation on the 4-connected block grid, takes each block's best label, and
  then ``icm_sweeps`` sweeps of iterated conditional modes on a checkerboard
  (each block in turn takes its best label given its neighbours; the energy
  never rises); it also runs ICM from each block's best unary label and from
  each constant labelling, and keeps the lowest energy of these ``n_labels +
  2``. Measured against the exact minimum (brute force over all 3⁹
  labellings of 3 × 3 grids with 3 labels, 2¹⁶ of 4 × 4 grids with 2
  labels, 4⁴ of 2 × 2 grids with 4; 80 grids of each, of which
  ``tests/test_puzzlemix.py`` checks 16 to 32 with these bounds): on
  energies built as the official builds them (peaked saliency maps, images
  with structure), and on random grids with non-negative seam
  weights, it found the exact minimum every time; on random frustrated grids
  (unaries in [0, 1], seam weights in [−0.5, 1]) it was exact on 82 % (4 × 4,
  2 labels) to 100 % (2 × 2, 4 labels) of them, at most 9.4 % and on average
  under 0.7 % above the minimum.
  The α-β swap is a local method too, with no guarantee when a seam weight
  ``β' + c`` is negative (``c`` may be, where the images' own seams are rougher
  than the mixed ones). Costs are not rounded to integers.
* **Transport is a permutation of blocks.** The official resolves each
  position's conflict with ``(plan * cost).min(-2)``, which also sees the zeros
  of blocks that did not bid (a position whose bidders all cost 0 or more can
  get no winner), and leaves positions without a winner black (zero) and their
  blocks dropped. jaxmix lets the cheapest bidder win and fills the positions
  left over with the blocks left over, in raster order; each source's blocks are
  then a permutation of its blocks. For large ``t_eps`` every block stays put.
* Partners are ``"flip"`` by default (``pairing="permute"`` is the official
  random permutation); ``block_num`` may be one static side or a tuple to draw
  from; ``prob`` gates the whole batch (official: always on); the local
  statistics are computed on the images as given (the official undoes the
  dataset normalisation first, to [0, 1]; integer images are divided by their
  dtype's maximum here); the adversarial noise option (``adv_p``) is not offered.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import regions
from jaxmix._src.core import sampling
from jaxmix._src.core import validation

# The official grid sides for 32 × 32 images: 2 ** randint(1, 5).
BLOCK_NUMS = (2, 4, 8, 16)
_EPS = 1e-8


def puzzlemix_saliency(grads: jax.typing.ArrayLike, data_format: str = "NHWC") -> jax.Array:
  """PuzzleMix's per-pixel saliency from the gradient of the loss w.r.t. the inputs.

  ``sqrt(mean_c g²)``: the root mean square over channels, as the official
  ``main.py`` (``torch.sqrt(torch.mean(input_var.grad**2, dim=1))``), with
  ``g = jax.grad(loss)(images)`` on the unmixed batch (the official: the mean
  cross-entropy, without gradient to the parameters). :func:`sample_puzzlemix`
  average-pools it to the block grid and divides each map by its sum.

  Args:
    grads: float `[B, H, W, C]` (NHWC), `[B, C, H, W]` (NCHW), or `[B, H, W]` (one channel).
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` for rank-4 grads.

  Returns:
    float32 `[B, H, W]`, non-negative.

  Example:
    >>> grads = jax.grad(lambda x: jnp.sum(jnp.sin(x)))(images.astype(jnp.float32))
    >>> jaxmix.guided.puzzlemix_saliency(grads).shape
    (8, 32, 32)
  """
  validation.check_choice("data_format", data_format, validation.DATA_FORMATS)
  validation.check_array(
    "grads", grads, expected="gradients [B, H, W, C], [B, C, H, W] or [B, H, W]", dtype=jnp.floating
  )
  validation.check_array(
    "grads", grads, expected="gradients [B, H, W, C], [B, C, H, W] or [B, H, W]", rank={3, 4}
  )
  g = jnp.asarray(grads, jnp.float32)
  if g.ndim == 3:
    return jnp.abs(g)
  axis = 3 if data_format == "NHWC" else 1
  return jnp.sqrt(jnp.mean(jnp.square(g), axis=axis))


# ---------------------------------------------------------------------------------------------------
# The labelling energy and its approximate minimisation.


def _pool(x: jax.Array, bh: int, bw: int) -> jax.Array:
  """Average pooling of `[B, H, W, ...]` by (bh, bw) windows."""
  b, h, w = x.shape[:3]
  return x.reshape((b, h // bh, bh, w // bw, bw) + x.shape[3:]).mean(axis=(2, 4))


def _normalised(sal: jax.Array) -> jax.Array:
  total = sal.sum(axis=(1, 2), keepdims=True)
  return sal / jnp.where(total > 0, total, 1.0)


def label_distance(n_labels: int) -> np.ndarray:
  """``(l − m)² / (n − 1)²`` `[n, n]`, the official pairwise label cost."""
  r = np.arange(n_labels, dtype=np.float32)
  return (r[:, None] - r[None, :]) ** 2 / max(n_labels - 1, 1) ** 2


def _log_prior(lam: jax.Array, n_labels: int) -> jax.Array:
  """``−log(C(n−1, l)·λ^(n−1−l)·(1−λ)^l + 1e−8)`` float32 `[n]`: label l gives the partner ``l/(n−1)``."""
  k = n_labels - 1
  ls = np.arange(n_labels)
  binom = np.asarray([math.comb(k, int(i)) for i in ls], np.float32)
  p = binom * lam ** (k - ls).astype(np.float32) * (1 - lam) ** ls.astype(np.float32)
  return -jnp.log(p + _EPS)


def _boundary_penalty(top: jax.Array, bottom: jax.Array, k: int, n: int) -> jax.Array:
  """Mean |difference| across each horizontal block boundary, `[B, N−1, N]`, from pooled `[B, n·k, m, C]`
  (the official ``neigh_penalty``'s ``pw_x``): the last pooled row of block r against the first of r+1."""
  last = top[:, k - 1 : n * k - 1 : k]  # [B, N-1, m, C]
  first = bottom[:, k : n * k : k]
  diff = jnp.abs(last - first).mean(axis=-1)  # [B, N-1, m]
  b, rows, m = diff.shape
  return diff.reshape(b, rows, n, m // n).mean(axis=-1)


def energy_terms(
  saliency: jax.Array,
  pooled_images: jax.Array | None,
  index: jax.Array,
  pairing: str,
  lam: jax.Array,
  *,
  n: int,
  n_labels: int,
  beta: jax.Array,
  gamma: jax.Array,
  eta: jax.Array,
  neigh_k: tuple[int, int],
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The official energy on an N × N grid: unary float32 `[B, N, N, L]`, and the seam weights of the
  vertical `[B, N−1, N]` and horizontal `[B, N, N−1]` edges (times :func:`label_distance`)."""
  bsz, h, w = saliency.shape
  own_sal = _normalised(_pool(saliency, h // n, w // n))
  partner_sal = pairing_lib.take_partner(own_sal, pairing, index)
  beta_n = jnp.asarray(beta, jnp.float32) / n / 16.0
  cost_own = partner_sal  # choosing the own block drops the partner's saliency
  cost_partner = own_sal
  wv = jnp.broadcast_to(beta_n, (bsz, n - 1, n))
  wh = jnp.broadcast_to(beta_n, (bsz, n, n - 1))
  if pooled_images is not None and n > 1:
    scale = beta_n * jnp.asarray(gamma, jnp.float32)
    src = (pairing_lib.take_partner(pooled_images, pairing, index), pooled_images)  # 0: partner, 1: own
    kh, kw = neigh_k

    def pens(transpose: bool) -> list[list[jax.Array]]:
      out = [[jnp.zeros(())] * 2 for _ in range(2)]
      for a in range(2):
        for b in range(2):
          top, bottom = src[a], src[b]
          if transpose:
            top, bottom = jnp.swapaxes(top, 1, 2), jnp.swapaxes(bottom, 1, 2)
          pen = _boundary_penalty(top, bottom, kw if transpose else kh, n)
          out[a][b] = scale * (jnp.swapaxes(pen, 1, 2) if transpose else pen)
      return out

    pv, ph = pens(False), pens(True)
    zero_v = jnp.zeros((bsz, 1, n), jnp.float32)
    zero_h = jnp.zeros((bsz, n, 1), jnp.float32)
    # The official split (mixup_graph): each end of an edge pays the mean of its row/column of p.
    cost_own = cost_own + jnp.concatenate([(pv[1][0] + pv[1][1]) / 2, zero_v], axis=1)
    cost_partner = cost_partner + jnp.concatenate([(pv[0][1] + pv[0][0]) / 2, zero_v], axis=1)
    cost_own = cost_own + jnp.concatenate([zero_v, (pv[0][1] + pv[1][1]) / 2], axis=1)
    cost_partner = cost_partner + jnp.concatenate([zero_v, (pv[1][0] + pv[0][0]) / 2], axis=1)
    cost_own = cost_own + jnp.concatenate([(ph[1][0] + ph[1][1]) / 2, zero_h], axis=2)
    cost_partner = cost_partner + jnp.concatenate([(ph[0][1] + ph[0][0]) / 2, zero_h], axis=2)
    cost_own = cost_own + jnp.concatenate([zero_h, (ph[0][1] + ph[1][1]) / 2], axis=2)
    cost_partner = cost_partner + jnp.concatenate([zero_h, (ph[1][0] + ph[0][0]) / 2], axis=2)
    wv = wv + (pv[1][0] + pv[0][1] - pv[1][1] - pv[0][0]) / 2
    wh = wh + (ph[1][0] + ph[0][1] - ph[1][1] - ph[0][0]) / 2
  t = jnp.linspace(0.0, 1.0, n_labels)  # the partner's share of label l
  prior = jnp.asarray(eta, jnp.float32) * _log_prior(lam, n_labels) / n**2
  unary = (1 - t) * cost_own[..., None] + t * cost_partner[..., None] + prior
  return unary, wv, wh


def labelling_energy(labels: jax.Array, unary: jax.Array, wv: jax.Array, wh: jax.Array) -> jax.Array:
  """float32 `[B]`: the energy of int labellings `[B, N, N]` (unary + seams)."""
  n_labels = unary.shape[-1]
  d = jnp.asarray(label_distance(n_labels))
  u = jnp.take_along_axis(unary, labels[..., None], axis=-1)[..., 0].sum(axis=(1, 2))
  v = (wv * d[labels[:, :-1], labels[:, 1:]]).sum(axis=(1, 2))
  hz = (wh * d[labels[:, :, :-1], labels[:, :, 1:]]).sum(axis=(1, 2))
  return u + v + hz


def _neighbour_costs(labels: jax.Array, wv: jax.Array, wh: jax.Array, d: jax.Array) -> jax.Array:
  """float32 `[B, N, N, L]`: each block's seam cost for each of its labels, its neighbours' fixed."""
  b, n, _ = labels.shape
  n_labels = d.shape[0]
  rows = d[:, labels]  # [L, B, N, N]: cost of label l against each block's label
  rows = jnp.moveaxis(rows, 0, -1)
  zeros = jnp.zeros((b, 1, n, n_labels), jnp.float32)
  zeros_h = jnp.zeros((b, n, 1, n_labels), jnp.float32)
  below = jnp.concatenate([wv[..., None] * rows[:, 1:], zeros], axis=1)
  above = jnp.concatenate([zeros, wv[..., None] * rows[:, :-1]], axis=1)
  right = jnp.concatenate([wh[..., None] * rows[:, :, 1:], zeros_h], axis=2)
  left = jnp.concatenate([zeros_h, wh[..., None] * rows[:, :, :-1]], axis=2)
  return below + above + right + left


def _icm(labels: jax.Array, unary: jax.Array, wv: jax.Array, wh: jax.Array, sweeps: int) -> jax.Array:
  """Checkerboard iterated conditional modes: the energy never rises."""
  n = labels.shape[1]
  d = jnp.asarray(label_distance(unary.shape[-1]))
  parity = (jnp.arange(n)[:, None] + jnp.arange(n)[None, :]) % 2

  def half(colour: int, labels: jax.Array) -> jax.Array:
    best = jnp.argmin(unary + _neighbour_costs(labels, wv, wh, d), axis=-1).astype(labels.dtype)
    return jnp.where(parity == colour, best, labels)

  def sweep(_: Any, labels: jax.Array) -> jax.Array:
    return half(1, half(0, labels))

  return jax.lax.fori_loop(0, sweeps, sweep, labels)


def _min_sum(unary: jax.Array, wv: jax.Array, wh: jax.Array, iters: int) -> jax.Array:
  """Synchronous damped loopy min-sum belief propagation on the grid; int32 `[B, N, N]` decoded labels."""
  b, n, _, n_labels = unary.shape
  d = jnp.asarray(label_distance(n_labels))

  def send(h: jax.Array, wgt: jax.Array) -> jax.Array:
    """min_l h(l) + wgt·d(l, m), normalised to min 0; h `[..., L]`, wgt `[...]`."""
    m = jnp.min(h[..., :, None] + wgt[..., None, None] * d, axis=-2)
    return m - m.min(axis=-1, keepdims=True)

  zv = jnp.zeros((b, 1, n, n_labels), jnp.float32)
  zh = jnp.zeros((b, n, 1, n_labels), jnp.float32)

  def step(_: Any, msgs: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
    up, down, left, right = msgs  # messages arriving from the block above, below, left, right
    belief = unary + up + down + left + right
    new_up = jnp.concatenate([zv, send((belief - down)[:, :-1], wv)], axis=1)
    new_down = jnp.concatenate([send((belief - up)[:, 1:], wv), zv], axis=1)
    new_left = jnp.concatenate([zh, send((belief - right)[:, :, :-1], wh)], axis=2)
    new_right = jnp.concatenate([send((belief - left)[:, :, 1:], wh), zh], axis=2)
    new = (new_up, new_down, new_left, new_right)
    return tuple(0.5 * o + 0.5 * m for o, m in zip(msgs, new, strict=True))

  zeros = jnp.zeros_like(unary)
  up, down, left, right = jax.lax.fori_loop(0, iters, step, (zeros, zeros, zeros, zeros))
  return jnp.argmin(unary + up + down + left + right, axis=-1).astype(jnp.int32)


def approximate_labelling(
  unary: jax.Array, wv: jax.Array, wh: jax.Array, *, bp_iters: int = 16, icm_sweeps: int = 4
) -> jax.Array:
  """int32 `[B, N, N]`: the lowest-energy of checkerboard ICM started from min-sum BP's labelling, from
  each block's best unary label, and from each constant labelling (L + 2 starts)."""
  n_labels = unary.shape[-1]
  starts = [_min_sum(unary, wv, wh, bp_iters), jnp.argmin(unary, axis=-1).astype(jnp.int32)]
  starts += [jnp.full(unary.shape[:3], label, jnp.int32) for label in range(n_labels)]
  n_starts, b, n = len(starts), unary.shape[0], unary.shape[1]
  # One ICM over all starts, stacked on the batch axis (one loop in the program, not S).
  u, v, h = (jnp.tile(a, (n_starts,) + (1,) * (a.ndim - 1)) for a in (unary, wv, wh))
  found = _icm(jnp.concatenate(starts), u, v, h, icm_sweeps)
  energy = labelling_energy(found, u, v, h).reshape(n_starts, b)
  best = jnp.argmin(energy, axis=0)  # the first start on ties: BP's
  found = found.reshape(n_starts, b, n, n)
  return jnp.take_along_axis(found, best[None, :, None, None], axis=0)[0]


# ---------------------------------------------------------------------------------------------------
# Transport.


def _cost_matrix(th: int, tw: int) -> np.ndarray:
  r, c = np.divmod(np.arange(th * tw), tw)
  dist = (r[:, None] - r[None, :]) ** 2 + (c[:, None] - c[None, :]) ** 2
  return (dist / max(max(th, tw) - 1, 1) ** 2).astype(np.float32)


def transport_permutation(
  keep: jax.Array, saliency: jax.Array, t_eps: jax.typing.ArrayLike, cost_matrix: np.ndarray, iters: int
) -> jax.Array:
  """int32 `[B, M]`: for each position j of the transport grid (raster order), the block that moves there.

  `keep` bool `[B, M]` (where the source keeps weight), `saliency` `[B, M]` (sum 1), `cost_matrix`
  `[M, M]` the squared distances over ``(T − 1)²``. `iters` rounds of the official ``mask_transport``
  (see the module docstring; the cheapest bidder of a position wins), then the positions without a
  winner are filled with the blocks without one, in raster order: a permutation.
  """
  b, m = keep.shape
  cost0 = jnp.asarray(t_eps, jnp.float32) * jnp.asarray(cost_matrix) - saliency[:, :, None] * keep[
    :, None, :
  ].astype(jnp.float32)
  rows = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32), (b, m))
  batch = jnp.arange(b, dtype=jnp.int32)[:, None]

  def bids(cost: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Each block's cheapest position, each position's winner (M where none bid), and who won.

    The conflicts are settled with segment minima over the bids, O(B·M), so that one round costs one
    pass over the `[B, M, M]` costs (the row minima)."""
    choice = jnp.argmin(cost, axis=-1).astype(jnp.int32)  # [B, M]
    bid = jnp.take_along_axis(cost, choice[..., None], axis=-1)[..., 0]
    seg = (choice + batch * m).ravel()
    low = jax.ops.segment_min(bid.ravel(), seg, num_segments=b * m).reshape(b, m)
    cheapest = bid == jnp.take_along_axis(low, choice, axis=1)
    # The cheapest bidder wins, the first (lowest index) on ties.
    cand = jnp.where(cheapest, rows, m).ravel()
    winner = jax.ops.segment_min(cand, seg, num_segments=b * m).reshape(b, m)
    winner = jnp.minimum(winner, m)  # positions nobody bid on: M
    won = jnp.take_along_axis(winner, choice, axis=1) == rows
    return choice, winner, won

  def step(_: Any, cost: jax.Array) -> jax.Array:
    choice, _, won = bids(cost)
    return cost.at[batch, rows, choice].add(jnp.where(won, 0.0, 1.0))

  cost = jax.lax.fori_loop(0, max(iters - 1, 0), step, cost0)
  _, winner, won = bids(cost)
  taken = winner < m  # [B, j]
  # The k-th position left over (raster order) gets the k-th block left over.
  free_rows = jnp.argsort(won, axis=1, stable=True).astype(jnp.int32)  # the losers first, in order
  free_cols = jnp.argsort(taken, axis=1, stable=True).astype(jnp.int32)
  fill = jnp.zeros((b, m), jnp.int32).at[batch, free_cols].set(free_rows)
  return jnp.where(taken, winner, fill)


def _pixel_sources(perm: jax.Array, grid: tuple[int, int], block: tuple[int, int]) -> jax.Array:
  """int32 `[B, H, W]`: the flat pixel each output pixel reads when block perm[j] moves to position j."""
  (th, tw), (bh, bw) = grid, block
  h, w = th * bh, tw * bw
  rr = jnp.arange(h, dtype=jnp.int32)[:, None]
  cc = jnp.arange(w, dtype=jnp.int32)[None, :]
  pos = (rr // bh) * tw + cc // bw  # [H, W]
  src = perm[:, pos]  # [B, H, W]
  src_r = (src // tw) * bh + rr % bh
  src_c = (src % tw) * bw + cc % bw
  return src_r * w + src_c


def _gather_pixels(x: jax.Array, source: jax.Array, data_format: str) -> jax.Array:
  """Each output pixel of `x` read from the flat pixel `source` `[B, H, W]` of the same sample."""
  b, h, w = source.shape
  flat = source.reshape(b, h * w)
  if x.ndim == 3:
    return jnp.take_along_axis(x.reshape(b, h * w), flat, axis=1).reshape(x.shape)
  if data_format == "NHWC":
    c = x.shape[3]
    return jnp.take_along_axis(x.reshape(b, h * w, c), flat[:, :, None], axis=1).reshape(x.shape)
  c = x.shape[1]
  return jnp.take_along_axis(x.reshape(b, c, h * w), flat[:, None, :], axis=2).reshape(x.shape)


# ---------------------------------------------------------------------------------------------------
# The plan.


@struct.dataclass
class PuzzleMixPlan(plan_lib.PlanLike):
  """A PuzzleMix plan: a block-wise own-weight mask, and each source's blocks moved (transport).

  Output pixel ``p`` of sample ``b`` is ``mask[b, p]·x[b, own_source[b, p]] + (1 − mask[b, p])·
  x[index[b], partner_source[b, p]]`` (flat pixel indices; without transport both are ``p``).

  Attributes:
    lam: float32 `[B]`, the mask's mean: the exact share of own content.
    index: int32 `[B]`, each sample's partner.
    mask: float32 `[B, H, W]`, the own weight, constant on each block, one of ``1, (n−2)/(n−1), …, 0``.
    own_source: int32 `[B, H, W]` or None (no transport): the flat pixel ``h·W + w`` of the sample's own
      image that each output pixel reads; a permutation of whole transport blocks.
    partner_source: int32 `[B, H, W]` or None: the same in the partner.
    pairing: "flip", "roll" or "permute" (static).
    spatial_shape: (H, W) (static).
    selects_pixels: True when ``n_labels == 2`` (a binary mask) (static).
  """

  lam: jax.Array
  index: jax.Array
  mask: jax.Array
  own_source: jax.Array | None = None
  partner_source: jax.Array | None = None
  pairing: str = struct.field(pytree_node=False, default="flip")
  spatial_shape: tuple[int, int] | None = struct.field(pytree_node=False, default=None)
  selects_pixels: bool = struct.field(pytree_node=False, default=False)

  def own_weight(self) -> jax.Array:
    """Own-content weight float32 `[B, H, W]`; a TypeError with transport (the blocks move, so label
    maps or boxes placed by the mask alone would not line up: mix them with :func:`jaxmix.apply`)."""
    if self.own_source is not None:
      raise TypeError(
        "a PuzzleMixPlan with transport moves blocks within each source, so its own_weight alone cannot "
        "place label maps or boxes; mix every leaf with jaxmix.apply, or sample with transport=False."
      )
    return self.mask

  def mix_leaf(self, x: jax.Array, data_format: str) -> jax.Array:
    """Mixes one leaf (already in its compute dtype)."""
    partner = pairing_lib.take_partner(x, self.pairing, self.index)
    if self.own_source is not None and self.partner_source is not None:
      x = _gather_pixels(x, self.own_source, data_format)
      partner = _gather_pixels(partner, self.partner_source, data_format)
    w = regions.expand_spatial(self.mask, x.ndim, data_format)
    if self.selects_pixels:
      return jnp.where(w > 0.5, x, partner)
    return pairing_lib.blend(x, partner, w)

  def mix_labels(self, y: jax.Array) -> jax.Array:
    return pairing_lib.blend_with_partner(y, self.lam, self.pairing, self.index)


# ---------------------------------------------------------------------------------------------------
# Sampling.


def _check_options(
  spatial: tuple[int, int], block_num: Any, neigh_size: Any, t_size: Any
) -> tuple[tuple[int, ...], int, int | None]:
  h, w = spatial
  nums = block_num if isinstance(block_num, (tuple, list)) else (block_num,)
  if not nums:
    raise ValueError("block_num must be a static int >= 1 or a non-empty tuple of them, got ().")
  nums = tuple(validation.check_static_int("block_num", n, 1, "the side of the block grid") for n in nums)
  neigh_size = validation.check_static_int("neigh_size", neigh_size, 1, "the pooling of the local statistics")
  if t_size is not None:
    t_size = validation.check_static_int("t_size", t_size, 1, "the side of a transport block, or None")
  for n in nums:
    if h % n or w % n:
      raise ValueError(
        f"block_num must divide the spatial shape (H, W) = {spatial}, got a grid side of {n}; use sides "
        f"that divide both (e.g. block_num=(2, 4) for 8 × 8 images)."
      )
    bh, bw = h // n, w // n
    neigh = min(neigh_size, bh, bw)
    if bh % neigh or bw % neigh:
      raise ValueError(
        f"neigh_size must divide each block: blocks of {bh} × {bw} pixels (block_num {n}) and neigh_size "
        f"{neigh_size} give windows of {neigh}."
      )
    if t_size is not None and (bh % min(t_size, bh) or bw % min(t_size, bw)):
      raise ValueError(
        f"t_size must divide each block: blocks of {bh} × {bw} pixels (block_num {n}), t_size {t_size}."
      )
  return nums, neigh_size, t_size


def _stat_images(images: Any, data_format: str) -> jax.Array:
  """float32 `[B, H, W, C]` for the local statistics; integer images divided by their dtype's maximum."""
  x = jnp.asarray(images)
  if jnp.issubdtype(x.dtype, jnp.integer):
    x = x.astype(jnp.float32) / float(jnp.iinfo(x.dtype).max)
  x = x.astype(jnp.float32)
  if x.ndim == 3:
    return x[..., None]
  return x if data_format == "NHWC" else jnp.moveaxis(x, 1, 3)


def _grid_plan(
  n: int,
  sal: jax.Array,
  images: jax.Array | None,
  index: jax.Array,
  lam: jax.Array,
  *,
  pairing: str,
  n_labels: int,
  beta: Any,
  gamma: Any,
  eta: Any,
  neigh_size: int,
  transport: bool,
  t_size: int | None,
  t_eps: Any,
  bp_iters: int,
  icm_sweeps: int,
) -> tuple[jax.Array, ...]:
  """Mask `[B, H, W]` (and the two pixel sources with transport) for one grid side `n`."""
  b, h, w = sal.shape
  bh, bw = h // n, w // n
  pooled, neigh_k = None, (1, 1)
  if images is not None:
    neigh = min(neigh_size, bh, bw)
    pooled, neigh_k = _pool(images, neigh, neigh), (bh // neigh, bw // neigh)
  unary, wv, wh = energy_terms(
    sal, pooled, index, pairing, lam, n=n, n_labels=n_labels, beta=beta, gamma=gamma, eta=eta,
    neigh_k=neigh_k,
  )
  labels = approximate_labelling(unary, wv, wh, bp_iters=bp_iters, icm_sweeps=icm_sweeps)
  grid = 1.0 - labels.astype(jnp.float32) / (n_labels - 1)  # [B, N, N] own weight
  mask = jnp.repeat(jnp.repeat(grid, bh, axis=1), bw, axis=2)
  if not transport:
    return (mask,)
  ts_h, ts_w = (bh, bw) if t_size is None else (min(t_size, bh), min(t_size, bw))
  th, tw = h // ts_h, w // ts_w
  keep = jnp.repeat(jnp.repeat(grid, bh // ts_h, axis=1), bw // ts_w, axis=2).reshape(b, th * tw)
  own_sal = _normalised(_pool(sal, ts_h, ts_w)).reshape(b, th * tw)
  partner_sal = pairing_lib.take_partner(own_sal, pairing, index)
  cost = _cost_matrix(th, tw)
  iters = max(th, tw)  # the official n_iter: the side of the transport grid
  # Both sources in one call (stacked on the batch axis): one loop in the program.
  perms = transport_permutation(
    jnp.concatenate([keep > 0, keep < 1]), jnp.concatenate([own_sal, partner_sal]), t_eps, cost, iters
  )
  own_perm, partner_perm = perms[:b], perms[b:]
  block = (ts_h, ts_w)
  return mask, _pixel_sources(own_perm, (th, tw), block), _pixel_sources(partner_perm, (th, tw), block)


def sample_puzzlemix(
  key: jax.Array,
  saliency: jax.typing.ArrayLike,
  *,
  images: jax.typing.ArrayLike | None = None,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  n_labels: int = 3,
  beta: jax.typing.ArrayLike = 1.2,
  gamma: jax.typing.ArrayLike = 0.5,
  eta: jax.typing.ArrayLike = 0.2,
  neigh_size: int = 4,
  block_num: int | tuple[int, ...] = BLOCK_NUMS,
  transport: bool = True,
  t_size: int | None = 4,
  t_eps: jax.typing.ArrayLike = 0.8,
  pairing: str = "flip",
  data_format: str = "NHWC",
  bp_iters: int = 16,
  icm_sweeps: int = 4,
) -> PuzzleMixPlan:
  """Samples a PuzzleMix plan: a saliency-guided block labelling, then transport of salient blocks.

  Kim, Choo, Song, ICML 2020; official code github.com/snu-mllab/PuzzleMix
  (the energy, its approximate minimisation, transport and the defaults are in
  the module docstring). One λ ~ Beta(α, α) and one grid side (drawn from
  `block_num`) per batch; each sample gets its own labelling. ``lam`` is the
  mask's mean. Not in ``jaxmix.SAMPLERS``: it needs the model's gradients.

  Cost: every grid side in `block_num` is compiled (``lax.switch``; one runs).
  Transport holds `[B, M, M]` costs for ``M = (H/t)·(W/t)`` transport blocks
  and makes ``max(H/t, W/t)`` passes over them, as the official does: at 32 ×
  32 with a 16 × 16 grid (blocks of 2 pixels, so ``t = 2``), ``M = 256``. On
  two shared CPU cores, B = 64 at 32 × 32 took 24–35 ms per call for grids 2,
  4 and 8 and 0.73 s for grid 16 (56 ms without transport). The cost grows as
  ``(H/t)⁵``: at 224 × 224 with ``t = 4`` (``M = 3136``) one call for B = 4
  took 79 s on the same (loaded) machine, and 0.09 s with ``t_size=14``; use a
  larger `t_size` for large images. With ``n_labels=2``
  the mask is binary and the plan selects pixels, so integer leaves (label
  maps) are moved and mixed exactly.

  Args:
    key: PRNG key.
    saliency: `[B, H, W]` per-pixel saliency of the unmixed batch, in batch order
      (:func:`puzzlemix_saliency` of ``jax.grad`` of the loss w.r.t. the images);
      its shape sets the batch size and (H, W). Read through ``stop_gradient``.
    images: the images `[B, H, W, C]` (or NCHW, or `[B, H, W]`) for the local
      statistics (the seam costs, weighted by γ), e.g. in [0, 1] as the official;
      integer images are divided by their dtype's maximum. None: no seam data
      term (γ has no effect).
    alpha: λ ~ Beta(α, α); the official 1.0; ≤ 0 turns mixing off. Traced.
    prob: probability that the batch is mixed (official: 1). Traced.
    n_labels: mixing levels of a block, ≥ 2 (the official 3: own weights 1, ½, 0). Static.
    beta: seam smoothness β (official 1.2; used as ``β/N/16``). Traced.
    gamma: weight γ of the local statistics in the seam cost (official 0.5). Traced.
    eta: weight η of the λ prior (official 0.2). Traced.
    neigh_size: pooling window of the local statistics (official 4; capped at the block side). Static.
    block_num: the grid side N, or a tuple to draw it from per batch (official
      ``(2, 4, 8, 16)`` for 32 × 32 images); each must divide H and W. Static.
    transport: move each source's salient blocks into its kept region (official True). Static.
    t_size: side of a transport block, capped at the block side (official README 4); None:
      the block grid (``main.py``'s −1). Static.
    t_eps: weight of the move distance in the transport cost (official 0.8); large values keep
      every block in place. Traced.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"`` (the official random permutation). Static.
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` for rank-4 `images`.
    bp_iters: rounds of min-sum belief propagation (static).
    icm_sweeps: sweeps of iterated conditional modes after it (static).

  Returns:
    A :class:`PuzzleMixPlan`.

  Example:
    >>> saliency = jax.random.uniform(key, (8, 32, 32))   # e.g. puzzlemix_saliency(jax.grad(loss)(images))
    >>> plan = jaxmix.guided.sample_puzzlemix(key, saliency, images=images)
    >>> mixed = jaxmix.apply(plan, images)
    >>> mixed.shape, plan.mask.shape
    ((8, 32, 32, 3), (8, 32, 32))
  """
  validation.check_key(key)
  expected = "per-pixel saliency maps [B, H, W], one per sample in batch order"
  validation.check_array("saliency", saliency, expected=expected, rank={3})
  validation.check_numeric_leaf("saliency", saliency)
  b, h, w = np.shape(saliency)
  if min(h, w) < 1:
    raise ValueError(f"saliency must be {expected}; got the empty grid {(h, w)}.")
  validation.check_choice("data_format", data_format, validation.DATA_FORMATS)
  if images is not None:
    validation.check_numeric_leaf("images", images)
    validation.check_array("images", images, expected="images [B, H, W, C], [B, C, H, W] or [B, H, W]",
                           rank={3, 4})
    shape = np.shape(images)
    got = tuple(shape[a] for a in validation.spatial_axes(len(shape), data_format))
    if shape[0] != b or got != (h, w):
      raise ValueError(
        f"images must match saliency {(b, h, w)} in batch size and (H, W); got shape {shape} "
        f"({data_format})."
      )
  for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma), ("eta", eta), ("t_eps", t_eps)):
    validation.check_nonnegative(name, value)
  validation.check_unit_interval("prob", prob)
  n_labels = validation.check_static_int("n_labels", n_labels, 2, "the number of mixing levels")
  bp_iters = validation.check_static_int("bp_iters", bp_iters, 0, "rounds of belief propagation")
  icm_sweeps = validation.check_static_int("icm_sweeps", icm_sweeps, 0, "sweeps of ICM")
  if not isinstance(transport, bool):
    raise TypeError(f"transport must be a bool (static), got {transport!r}.")
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  nums, neigh_size, t_size = _check_options((h, w), block_num, neigh_size, t_size)

  k_pair, k_lam, k_grid, k_gate = jax.random.split(key, 4)
  index = sampling.partner_index(k_pair, b, pairing)
  lam = sampling.beta(k_lam, alpha, ())
  on = sampling.gate(k_gate, prob, ()) & sampling.concentration(alpha)[0]
  sal = jax.lax.stop_gradient(jnp.asarray(saliency, jnp.float32))
  stats = None if images is None else jax.lax.stop_gradient(_stat_images(images, data_format))
  options: dict[str, Any] = dict(
    pairing=pairing, n_labels=n_labels, beta=beta, gamma=gamma, eta=eta, neigh_size=neigh_size,
    transport=transport, t_size=t_size, t_eps=t_eps, bp_iters=bp_iters, icm_sweeps=icm_sweeps,
  )

  def branch(n: int) -> Any:
    return lambda: _grid_plan(n, sal, stats, index, lam, **options)

  if len(nums) == 1:
    out = branch(nums[0])()
  else:
    which = jax.random.randint(k_grid, (), 0, len(nums))
    out = jax.lax.switch(which, [branch(n) for n in nums])
  keep = on & ~pairing_lib.self_pairs(index)  # [B]
  mask = jnp.where(keep[:, None, None], out[0], 1.0)
  sources: list[jax.Array | None] = [None, None]
  if transport:
    identity = jnp.arange(h * w, dtype=jnp.int32).reshape(1, h, w)
    sources = [jnp.where(keep[:, None, None], s, identity) for s in out[1:]]
  return PuzzleMixPlan(
    lam=mask.mean(axis=(1, 2)),
    index=index,
    mask=mask,
    own_source=sources[0],
    partner_source=sources[1],
    pairing=pairing,
    spatial_shape=(h, w),
    selects_pixels=n_labels == 2,
  )


def puzzlemix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  saliency: jax.typing.ArrayLike,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  n_labels: int = 3,
  beta: jax.typing.ArrayLike = 1.2,
  gamma: jax.typing.ArrayLike = 0.5,
  eta: jax.typing.ArrayLike = 0.2,
  neigh_size: int = 4,
  block_num: int | tuple[int, ...] = BLOCK_NUMS,
  transport: bool = True,
  t_size: int | None = 4,
  t_eps: jax.typing.ArrayLike = 0.8,
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
  bp_iters: int = 16,
  icm_sweeps: int = 4,
) -> tuple[Any, Any]:
  """PuzzleMix: block-wise mixing that keeps both sources' salient blocks, with transport.

  Kim, Choo, Song, ICML 2020 (github.com/snu-mllab/PuzzleMix): sample
  (:func:`sample_puzzlemix`, whose local statistics are read from the **first
  leaf** of `inputs`, in ``jax.tree_util`` order), apply to every leaf, and mix
  the labels by each mask's mean. The saliency comes from the model being
  trained: ``puzzlemix_saliency(jax.grad(loss_fn)(images))`` on the unmixed
  batch, an extra forward and backward pass.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays sharing batch and spatial axes.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    saliency: float `[B, H, W]` per-pixel saliency, in batch order.
    alpha, prob, n_labels, beta, gamma, eta: as in :func:`sample_puzzlemix`.
    neigh_size, block_num, transport, t_size, t_eps, pairing, bp_iters, icm_sweeps: as there.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> saliency = jax.random.uniform(key, (8, 32, 32))
    >>> mixed, targets = jaxmix.guided.puzzlemix(key, images, labels, saliency=saliency, num_classes=10)
    >>> mixed.shape, targets.shape
    ((8, 32, 32, 3), (8, 10))
  """
  batch_size = validation.batch_size_of(inputs)
  shape = validation.spatial_shape_of(inputs, data_format, nonempty=True)
  sal_shape = np.shape(saliency) if hasattr(saliency, "shape") else None
  if sal_shape is not None and tuple(sal_shape) != (batch_size, *shape):
    raise ValueError(
      f"saliency must be [B, H, W] = {(batch_size, *shape)} to match inputs, got shape {tuple(sal_shape)}."
    )
  plan = sample_puzzlemix(
    key, saliency, images=jax.tree_util.tree_leaves(inputs)[0], alpha=alpha, prob=prob, n_labels=n_labels,
    beta=beta, gamma=gamma, eta=eta, neigh_size=neigh_size, block_num=block_num, transport=transport,
    t_size=t_size, t_eps=t_eps, pairing=pairing, data_format=data_format, bp_iters=bp_iters,
    icm_sweeps=icm_sweeps,
  )
  targets = plan_lib.mix_labels(plan, labels, num_classes=num_classes, label_smoothing=label_smoothing)
  return plan_lib.apply(plan, inputs, data_format=data_format), targets
