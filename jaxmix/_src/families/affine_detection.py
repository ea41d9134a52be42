"""The YOLO Mosaic and random affine for detection, as one inverse map.

Ultralytics (``ultralytics/data/augment.py``: ``Mosaic._mosaic4``/``_mosaic9``
then ``RandomPerspective``) and YOLOv5 (``utils/dataloaders.py``
``load_mosaic``/``load_mosaic9`` then ``utils/augmentations.py``
``random_perspective``) build the mosaic in two steps:

1. a ``2s × 2s`` canvas filled with 114 holds the tiles. With 4 tiles their
   inner corners meet at a centre ``(xc, yc)`` drawn uniformly in
   ``[s/2, 3s/2]`` (``mosaic_border = -s/2``); with 9 tiles a 3 × 3 grid
   (the sample in the middle, then top, top right, right, ... clockwise, top
   left last) is cropped to ``2s × 2s`` at an offset uniform in ``[0, s)``.
   Boxes move with their tile and are clipped to the canvas;
2. ``RandomPerspective`` warps the canvas back to ``s × s`` with
   ``M = T · S · R · P · C``: C moves the canvas centre to the origin, P is
   the perspective (``P[2, 0], P[2, 1] ~ U(±perspective)``), R a rotation by
   ``U(±degrees)`` with scale ``U(1 ± scale)``, S the shear
   (``tan U(±shear)°`` on each axis), T a translation to
   ``U(0.5 ± translate) · s``. Boxes go through their four corners (the
   min/max of the transformed corners), are clipped to the output and kept
   by ``box_candidates``: width and height > 2 px, area > 10 % of the
   scaled pre-warp box, aspect ratio < 100.

jaxmix never materialises the canvas: for each output pixel it computes the
canvas point through the inverse of M, finds the tile (and so the source
image and source pixel) that point falls in, and gathers from the source
batch directly; points outside every tile read the fill value (114). Pixel
*centres* are mapped (output pixel (x, y) samples canvas point
``M⁻¹(x + ½, y + ½)``), the same convention as the box corners, so pixels
and boxes agree exactly; OpenCV maps pixel indices, half a pixel apart.
Interpolation is ``"bilinear"`` (as ``cv2.warpAffine``'s default, with the
fill value for neighbours outside every tile, as ``BORDER_CONSTANT``) or
``"nearest"`` (one gather instead of four).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxmix._src.core import batching
from jaxmix._src.core import sampling
from jaxmix._src.core import validation
from jaxmix._src.families import boxes as boxes_lib

INTERPOLATIONS = ("bilinear", "nearest")
TILES = (4, 9)
# Row-major (row, col) -> slot of the 3 × 3 grid of ``_mosaic9``: slot 0 the sample in the middle,
# 1 top, 2 top right, 3 right, 4 bottom right, 5 bottom, 6 bottom left, 7 left, 8 top left.
_LAYOUTS = {1: ((0,),), 4: ((0, 1), (2, 3)), 9: ((8, 1, 2), (7, 0, 3), (6, 5, 4))}


@struct.dataclass
class Affine:
  """The magnitudes of a random affine (ultralytics ``RandomPerspective``; its defaults).

  Every field is a pytree leaf, so the magnitudes may be traced (a schedule
  changes them without recompiling). A dict with these keys works wherever
  an `Affine` does.

  Attributes:
    degrees: rotation angle ~ U(−degrees, degrees), in degrees (default 0).
    translate: translation ~ U(0.5 − translate, 0.5 + translate) of the output size,
      from the centre (default 0.1).
    scale: zoom ~ U(1 − scale, 1 + scale) (default 0.5).
    shear: shear angles on x and y ~ U(−shear, shear), in degrees (default 0).
    perspective: ``P[2, 0]`` and ``P[2, 1]`` ~ U(−perspective, perspective) (default 0;
      ultralytics suggests at most 0.001).
  """

  degrees: Any = 0.0
  translate: Any = 0.1
  scale: Any = 0.5
  shear: Any = 0.0
  perspective: Any = 0.0


IDENTITY = Affine(degrees=0.0, translate=0.0, scale=0.0, shear=0.0, perspective=0.0)
ULTRALYTICS = Affine()


def check_affine(affine: Any) -> Affine:
  """`affine` as an :class:`Affine` (None is the identity); a clear error for anything else."""
  if affine is None:
    return IDENTITY
  if isinstance(affine, dict):
    unknown = sorted(set(affine) - {"degrees", "translate", "scale", "shear", "perspective"})
    if unknown:
      raise ValueError(
        f"affine has unknown keys {unknown}; the keys are degrees, translate, scale, shear and perspective."
      )
    affine = Affine(**affine)
  if not isinstance(affine, Affine):
    raise TypeError(
      f"affine must be a jaxmix.detection.Affine, a dict of its fields or None, got {type(affine).__name__}."
    )
  for name in ("degrees", "translate", "scale", "shear", "perspective"):
    validation.check_nonnegative(f"affine.{name}", getattr(affine, name))
  if validation.is_static_number(affine.scale) and not affine.scale < 1:
    raise ValueError(f"affine.scale must be < 1 (the zoom is U(1 - scale, 1 + scale)), got {affine.scale!r}.")
  return affine


def _matrices(
  key: jax.Array, affine: Affine, batch_size: int, canvas: tuple[int, int], out: tuple[int, int]
) -> tuple[jax.Array, jax.Array]:
  """(M [B, 3, 3], zoom [B]): ultralytics' ``M = T @ S @ R @ P @ C`` with its draws."""
  k_p, k_a, k_s, k_sh, k_t = jax.random.split(key, 5)
  f32 = jnp.float32

  def u(k, lo, hi, n=1):
    lo, hi = jnp.asarray(lo, f32), jnp.asarray(hi, f32)
    return jax.random.uniform(k, (batch_size, n), f32, minval=lo, maxval=hi)

  one = jnp.ones((batch_size,), f32)
  zero = jnp.zeros((batch_size,), f32)
  hc, wc = canvas
  ho, wo = out
  p = jnp.asarray(affine.perspective, f32)
  px, py = u(k_p, -p, p, 2).T
  d = jnp.asarray(affine.degrees, f32)
  angle = u(k_a, -d, d)[:, 0] * (math.pi / 180)
  sc = jnp.asarray(affine.scale, f32)
  zoom = u(k_s, 1 - sc, 1 + sc)[:, 0]
  sh = jnp.asarray(affine.shear, f32)
  shx, shy = jnp.tan(u(k_sh, -sh, sh, 2) * (math.pi / 180)).T
  t = jnp.asarray(affine.translate, f32)
  tx, ty = (u(k_t, 0.5 - t, 0.5 + t, 2) * jnp.array([wo, ho], f32)).T

  def mat(rows):
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)

  c = mat([[one, zero, -wc / 2 * one], [zero, one, -hc / 2 * one], [zero, zero, one]])
  pm = mat([[one, zero, zero], [zero, one, zero], [px, py, one]])
  # cv2.getRotationMatrix2D(angle, center=(0, 0), scale): [[a, b, 0], [-b, a, 0]], a = s cos, b = s sin.
  a, b = zoom * jnp.cos(angle), zoom * jnp.sin(angle)
  r = mat([[a, b, zero], [-b, a, zero], [zero, zero, one]])
  s = mat([[one, shx, zero], [shy, one, zero], [zero, zero, one]])
  tm = mat([[one, zero, tx], [zero, one, ty], [zero, zero, one]])
  return tm @ s @ r @ pm @ c, zoom


@struct.dataclass
class _Warp:
  """Where each output pixel reads: a grid of tiles on a canvas, seen through M."""

  index: jax.Array  # int32 [B, T]: the source of each slot
  offset: jax.Array  # float32 [B, 2]: (x, y) of the canvas origin in grid coordinates
  matrix: jax.Array  # float32 [B, 3, 3]: canvas -> output
  zoom: jax.Array  # float32 [B]: the scale drawn (box_candidates compares with the scaled box)
  on: jax.Array  # bool [B]: whether the sample is transformed at all
  tiles: int = struct.field(pytree_node=False, default=4)
  canvas: tuple[int, int] = struct.field(pytree_node=False, default=(0, 0))


def _sample_warp(
  key: jax.Array,
  batch_size: int,
  spatial: tuple[int, int],
  tiles: int,
  canvas_scale: float,
  affine: Affine,
  prob: Any,
  pairing: str,
  partnered: bool = False,
  center_range: tuple[Any, Any] = (0.0, 1.0),
) -> _Warp:
  """The warp's draws; with `partnered`, slot k of sample i reads row ``k·B + i`` of the sources
  (the batch, then each partner batch in turn) instead of a roll or permutation of the batch.
  `center_range` (lo, hi) narrows the placement: the 4-tile centre is ``s/2 + U(lo, hi)·(canvas − s)``,
  the 9-tile crop offset ``U(lo, hi)·(3s − canvas)``; (0, 1) is ultralytics' range."""
  h, w = spatial
  canvas = (h, w) if tiles == 1 else (int(round(canvas_scale * h)), int(round(canvas_scale * w)))
  k_c, k_gate, k_perm, k_m = jax.random.split(key, 4)
  hw = jnp.array([w, h], jnp.float32)
  cwh = jnp.array([canvas[1], canvas[0]], jnp.float32)
  if tiles == 4:
    # The centre ~ U(s/2, canvas - s/2), floored (int(random.uniform(...))); tile 0's corner is centre - s.
    lo, hi = (hw / 2 + jnp.asarray(c, jnp.float32) * (cwh - hw) for c in center_range)
    centre = jnp.floor(jax.random.uniform(k_c, (batch_size, 2), minval=lo, maxval=hi))
    offset = hw - centre
    own = jnp.zeros((2,), jnp.float32)  # the centre at s: tile 0 spans canvas [0, s), the sample itself
  elif tiles == 9:
    # The 3s × 3s grid is cropped at an offset ~ U(0, 3s - canvas) (U(0, s) for the 2s canvas), floored.
    lo, hi = (jnp.asarray(c, jnp.float32) * (3 * hw - cwh) for c in center_range)
    offset = jnp.floor(jax.random.uniform(k_c, (batch_size, 2), minval=lo, maxval=hi))
    own = hw  # the middle tile at canvas [0, s): the sample itself
  else:
    offset = jnp.zeros((batch_size, 2), jnp.float32)
    own = jnp.zeros((2,), jnp.float32)
  on = sampling.gate(k_gate, prob, (batch_size,))
  matrix, zoom = _matrices(k_m, affine, batch_size, canvas, spatial)
  # A sample left out reads its own tile at the identity: itself, exactly.
  offset = jnp.where(on[:, None], offset, own)
  matrix = jnp.where(on[:, None, None], matrix, jnp.eye(3, dtype=jnp.float32))
  zoom = jnp.where(on, zoom, 1.0)
  ar = jnp.arange(batch_size, dtype=jnp.int32)
  if partnered:
    index = jnp.stack([ar + k * batch_size for k in range(tiles)], axis=1)
  elif pairing == "roll":
    index = jnp.stack([(ar - k) % batch_size for k in range(tiles)], axis=1)
  else:
    keys = jax.random.split(k_perm, tiles - 1)
    perms = [jax.random.permutation(k, batch_size).astype(jnp.int32) for k in keys]
    index = jnp.stack([ar] + perms, axis=1)
  return _Warp(index=index, offset=offset, matrix=matrix, zoom=zoom, on=on, tiles=tiles, canvas=canvas)


def _warp_leaf(
  warp: _Warp,
  x: jax.Array,
  spatial: tuple[int, int],
  data_format: str,
  interpolation: str,
  fill: Any,
  partners: tuple[jax.Array, ...] = (),
) -> jax.Array:
  """One leaf through the warp: one gather per interpolation tap, from the source batch.

  The sources are `x`, then the `partners` leaves (shaped like `x`) in turn, as ``warp.index`` counts them.
  """
  x = jnp.asarray(x)
  if x.shape[0] == 0:
    return x  # an empty batch: nothing to read (a gather from no pixels is not defined)
  channels_first = x.ndim == 4 and data_format == "NCHW"
  squeeze = x.ndim == 3

  def channels_last(v: jax.Array) -> jax.Array:
    v = jnp.asarray(v)
    if channels_first:
      v = jnp.moveaxis(v, 1, -1)
    return v[..., None] if squeeze else v

  x = channels_last(x)
  b, h, w, ch = x.shape
  is_int = jnp.issubdtype(x.dtype, jnp.integer)
  if is_int and squeeze:
    interpolation = "nearest"  # label maps: no new ids
  hc, wc = warp.canvas
  n = int(round(math.sqrt(warp.tiles)))
  layout = _LAYOUTS[warp.tiles]
  sources = jnp.concatenate([x] + [channels_last(p) for p in partners], axis=0) if partners else x
  fill_value = jnp.asarray(fill, jnp.float32)
  itemsize = jnp.dtype(x.dtype).itemsize
  packed = 1 < ch and itemsize * ch <= 4 and x.dtype != jnp.bool_
  if packed:
    # Small pixels (uint8 RGB, ...) read as one uint32 word per tap, straight from the sources' bytes: the
    # blend then runs once per pixel on the unpacked channels, the result packed again.
    blend = _blend_packed(sources, x.dtype, ch, itemsize)
  else:
    blend = _blend_rows(sources.reshape(-1, ch), x.dtype, ch)
  xs = jnp.arange(w, dtype=jnp.float32) + 0.5
  ys = jnp.arange(h, dtype=jnp.float32) + 0.5

  def warp_some(
    inv: jax.Array, offset: jax.Array, index: jax.Array, on: jax.Array, xb: jax.Array
  ) -> jax.Array:
    """The warp of a few samples: inv [S, 3, 3] (output -> canvas), offset [S, 2], index [S, T], on [S],
    and their own pixels xb [S, H, W, ch] (returned where `on` is False)."""
    # Each slot's first flat row, [S, 1, 1]: the source pixel is then base + sy·W + sx.
    base = [(index[:, k] * (h * w))[:, None, None] for k in range(warp.tiles)]

    def row(i):
      return (
        inv[:, i, 0, None, None] * xs[None, None, :]
        + inv[:, i, 1, None, None] * ys[None, :, None]
        + inv[:, i, 2, None, None]
      )

    den = row(2)
    u = row(0) / den  # canvas x (edge coordinates) of each output pixel centre, [S, H, W]
    v = row(1) / den
    ox = offset[:, 0, None, None].astype(jnp.int32)
    oy = offset[:, 1, None, None].astype(jnp.int32)

    def tap(ci: jax.Array, ri: jax.Array) -> tuple[jax.Array, jax.Array]:
      """(flat source row, inside) of canvas pixel (ci, ri) (int32 [S, H, W])."""
      inside = (ci >= 0) & (ci < wc) & (ri >= 0) & (ri < hc)
      gx = ci + ox
      gy = ri + oy
      inside &= (gx >= 0) & (gx < n * w) & (gy >= 0) & (gy < n * h)
      # The tile from comparisons and selects (no per-pixel division or table gather: both
      # stop XLA's CPU backend from fusing the index arithmetic into the gather).
      cols = [gx >= k * w for k in range(1, n)]
      rows = [gy >= k * h for k in range(1, n)]
      col = sum((c.astype(jnp.int32) for c in cols), jnp.zeros_like(gx))
      rw = sum((r.astype(jnp.int32) for r in rows), jnp.zeros_like(gy))
      sx = jnp.clip(gx - col * w, 0, w - 1)
      sy = jnp.clip(gy - rw * h, 0, h - 1)

      def pick(options: list[jax.Array], conds: list[jax.Array]) -> jax.Array:
        out = options[0]
        for opt, cond in zip(options[1:], conds, strict=True):
          out = jnp.where(cond, opt, out)
        return out

      row_bases = [pick([base[layout[r][c]] for c in range(n)], cols) for r in range(n)]
      return pick(row_bases, rows) + sy * w + sx, inside

    if interpolation == "nearest":
      flat_idx, inside = tap(jnp.floor(u).astype(jnp.int32), jnp.floor(v).astype(jnp.int32))
      out = blend([(flat_idx, inside, None)], fill_value, nearest=True)
    else:
      uc, vc = u - 0.5, v - 0.5
      x0, y0 = jnp.floor(uc), jnp.floor(vc)
      fx, fy = uc - x0, vc - y0
      x0i, y0i = x0.astype(jnp.int32), y0.astype(jnp.int32)
      taps = []
      for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        flat_idx, inside = tap(x0i + dx, y0i + dy)
        taps.append((flat_idx, inside, (fx if dx else 1 - fx) * (fy if dy else 1 - fy)))
      out = blend(taps, fill_value, nearest=False)
    out = _unpack(out, x.dtype, ch) if packed else out
    # A sample left out comes back bit for bit (the weighted fill would turn inf into NaN and -0.0 into 0.0).
    return jnp.where(on[:, None, None, None], out.reshape(xb.shape), xb)

  # On the CPU one sample at a time (batched on other platforms): XLA's CPU backend then keeps each
  # sample's draws as scalars instead of recomputing them per pixel inside the fused index arithmetic,
  # and the per-pixel temporaries (canvas coordinates, gathered words) are one image's worth, in cache.
  args = (jnp.linalg.inv(warp.matrix), warp.offset, warp.index, warp.on, x)
  out = batching.loop_on_cpu(lambda a: warp_some(*(v[None] for v in a))[0], args)
  if squeeze:
    out = out[..., 0]
  if channels_first:
    out = jnp.moveaxis(out, -1, 1)
  return out


def _blend_rows(flat: jax.Array, dtype: Any, ch: int) -> Callable[..., jax.Array]:
  """The blend from `flat` [P, ch]: one row gather per tap, then :func:`_blend_taps`."""

  def blend(taps, fill_value, nearest):
    got = [flat.at[i.reshape(-1)].get(mode="promise_in_bounds").reshape(*i.shape, ch) for i, _, _ in taps]
    return _blend_taps(taps, got, fill_value, nearest, dtype)

  return blend


def _blend_taps(
  taps: list[tuple[jax.Array, jax.Array, Any]],
  got: list[jax.Array],
  fill_value: jax.Array,
  nearest: bool,
  dtype: Any,
) -> jax.Array:
  """Pixels [S, H, W, ch] of `dtype` from each tap's (flat index, inside, weight) and its gathered
  pixels `got` [S, H, W, ch]; taps outside every tile read `fill_value`."""
  if nearest:
    (_, inside, _), (pixels,) = taps[0], got
    if jnp.issubdtype(dtype, jnp.integer):
      # As in the bilinear path: the fill as a weighted term, no select along the channel axis.
      keep = inside[..., None].astype(jnp.float32)
      return _round_to(pixels.astype(jnp.float32) * keep + (1 - keep) * fill_value, dtype)
    return jnp.where(inside[..., None], pixels, fill_value.astype(dtype))
  # The fill enters as one term, fill · (the weight of the taps outside every tile), so the
  # per-tap selects act on [S, H, W] weights, not on the pixels.
  acc = None
  outside = jnp.zeros((*taps[0][0].shape, 1), jnp.float32)
  for (_, inside, wgt), pixels in zip(taps, got, strict=True):
    wgt = wgt[..., None]
    outside = outside + jnp.where(inside[..., None], 0.0, wgt)
    term = pixels.astype(jnp.float32) * jnp.where(inside[..., None], wgt, 0.0)
    acc = term if acc is None else acc + term
  assert acc is not None
  return _round_to(acc + outside * fill_value, dtype)


def _round_to(acc: jax.Array, dtype: Any) -> jax.Array:
  if jnp.issubdtype(dtype, jnp.integer):
    info = jnp.iinfo(dtype)
    return jnp.clip(jnp.round(acc), info.min, info.max).astype(dtype)
  return acc.astype(dtype)


def _uint(itemsize: int) -> Any:
  return {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[itemsize]


def _load_words(sources: jax.Array, itemsize: int) -> Callable[[jax.Array], jax.Array]:
  """A function of flat pixel indices [...] that reads those pixels of `sources` [..., ch] of
  `itemsize`-byte values (ch · itemsize <= 4) as uint32 words [...]: channel k in bits
  ``[8·itemsize·k, 8·itemsize·(k + 1))``.

  Each index is one gather of the pixel's ch values from the flat sources, reduced into the word. The
  reduction keeps the gather and its index arithmetic in one pass whose words XLA's CPU backend stores
  (it does not fuse a reduction into its consumer), so the index arithmetic runs once per tap and pixel,
  and no packed copy of the sources is written (the copy cost as much as the floor at 640×640: the
  measurements are in ``benchmarks/results/yolo-mosaic-cpu-2core.md``).
  """
  ch = sources.shape[-1]
  unsigned = _uint(itemsize)
  flat = sources if sources.dtype == unsigned else jax.lax.bitcast_convert_type(sources, unsigned)
  flat = flat.reshape(-1)
  dnums = jax.lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(), start_index_map=(0,))
  shifts = _channel_shifts(itemsize, ch)

  def load(flat_idx: jax.Array) -> jax.Array:
    first = (flat_idx * ch).reshape(-1, 1)
    got = jax.lax.gather(flat, first, dnums, (ch,), mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS)
    word = jax.lax.reduce(got.astype(jnp.uint32) << shifts, jnp.uint32(0), jax.lax.bitwise_or, (1,))
    return word.reshape(flat_idx.shape)

  return load


def _blend_packed(sources: jax.Array, dtype: Any, ch: int, itemsize: int) -> Callable[..., jax.Array]:
  """The blend of small pixels `sources` [..., ch] (ch · itemsize <= 4 bytes): each tap one word per pixel
  (see :func:`_load_words`), the channels shifted out of the words and blended by :func:`_blend_taps`
  (so the same bits as :func:`_blend_rows`), the result packed again: words [S, H, W], for :func:`_unpack`."""
  unsigned = _uint(itemsize)
  shifts = _channel_shifts(itemsize, ch)
  load = _load_words(sources, itemsize)

  def blend(taps, fill_value, nearest):
    got = [_unpack(load(flat_idx), dtype, ch) for flat_idx, _, _ in taps]
    val = _blend_taps(taps, got, fill_value, nearest, dtype)
    bits = val if dtype == unsigned else jax.lax.bitcast_convert_type(val, unsigned)
    # One word per pixel, as a reduction over the channels: XLA's CPU backend does not fuse a reduction
    # into its consumer, so the blend runs once per pixel and channel, not again in the unpacking pass.
    return jax.lax.reduce(bits.astype(jnp.uint32) << shifts, jnp.uint32(0), jax.lax.bitwise_or, (3,))

  return blend


def _unpack(words: jax.Array, dtype: Any, ch: int) -> jax.Array:
  """Words [...] (see :func:`_load_words`) as pixels [..., ch] of `dtype`."""
  itemsize = jnp.dtype(dtype).itemsize
  unsigned = _uint(itemsize)
  out = (words[..., None] >> _channel_shifts(itemsize, ch)).astype(unsigned)
  return out if dtype == unsigned else jax.lax.bitcast_convert_type(out, dtype)


def _channel_shifts(itemsize: int, ch: int) -> jax.Array:
  """uint32 [ch]: where channel k sits in a packed word, ``8·itemsize·k`` bits up."""
  return 8 * itemsize * jnp.arange(ch, dtype=jnp.uint32)


def _int_fill(fill: Any, dtype: Any) -> jax.Array:
  info = jnp.iinfo(dtype)
  return jnp.clip(jnp.round(jnp.asarray(fill, jnp.float32)), info.min, info.max).astype(dtype)


def _warp_boxes(
  warp: _Warp,
  xyxy: jax.Array,
  valid: jax.Array,
  spatial: tuple[int, int],
  min_visibility: jax.Array,
  min_size: jax.Array,
  max_aspect: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Boxes (pixel xyxy, sanitised) of every slot through the warp.

  Returns (boxes [B, T·N, 4], valid [B, T·N], the source of each slot [B, T]).
  """
  h, w = spatial
  hc, wc = warp.canvas
  n = int(round(math.sqrt(warp.tiles)))
  layout = _LAYOUTS[warp.tiles]
  out_boxes, out_valid, out_src = [], [], []
  m = warp.matrix
  for r in range(n):
    for c in range(n):
      slot = layout[r][c]
      src = warp.index[:, slot]
      boxes = jnp.take(xyxy, src, axis=0)
      keep = jnp.take(valid, src, axis=0)
      # The tile's origin on the canvas, then clipped to the canvas (ultralytics clips to 2s).
      dx = (c * w - warp.offset[:, 0])[:, None]
      dy = (r * h - warp.offset[:, 1])[:, None]
      x1 = jnp.clip(boxes[..., 0] + dx, 0, wc)
      y1 = jnp.clip(boxes[..., 1] + dy, 0, hc)
      x2 = jnp.clip(boxes[..., 2] + dx, 0, wc)
      y2 = jnp.clip(boxes[..., 3] + dy, 0, hc)
      keep &= (x2 > x1) & (y2 > y1)
      cx = jnp.stack([x1, x2, x2, x1], axis=-1)  # [B, N, 4 corners]
      cy = jnp.stack([y1, y1, y2, y2], axis=-1)

      def apply(i, cx=cx, cy=cy):
        return m[:, i, 0, None, None] * cx + m[:, i, 1, None, None] * cy + m[:, i, 2, None, None]

      den = apply(2)
      tx, ty = apply(0) / den, apply(1) / den
      nx1 = jnp.clip(tx.min(-1), 0, w)
      nx2 = jnp.clip(tx.max(-1), 0, w)
      ny1 = jnp.clip(ty.min(-1), 0, h)
      ny2 = jnp.clip(ty.max(-1), 0, h)
      new = jnp.stack([nx1, ny1, nx2, ny2], axis=-1)
      # ultralytics box_candidates(box1 = the canvas box × zoom, box2 = the new box).
      z = warp.zoom[:, None]
      w1, h1 = (x2 - x1) * z, (y2 - y1) * z
      w2, h2 = nx2 - nx1, ny2 - ny1
      eps = 1e-16
      aspect = jnp.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
      good = (w2 > min_size) & (h2 > min_size) & (w2 * h2 / (w1 * h1 + eps) > min_visibility)
      good &= aspect < max_aspect
      good &= jnp.all(jnp.isfinite(new), axis=-1)
      # A sample left out keeps its own boxes as they were; its other slots are empty.
      on = warp.on[:, None]
      keep = jnp.where(on, keep & good, keep if slot == 0 else False)
      if slot == 0:
        new = jnp.where(on[..., None], new, jnp.take(xyxy, src, axis=0))
      out_boxes.append((slot, jnp.where(keep[..., None], new, 0.0)))
      out_valid.append((slot, keep))
      out_src.append((slot, src))
  order = sorted(range(len(out_boxes)), key=lambda i: out_boxes[i][0])
  boxes_out = jnp.concatenate([out_boxes[i][1] for i in order], axis=1)
  valid_out = jnp.concatenate([out_valid[i][1] for i in order], axis=1)
  return boxes_out, valid_out, jnp.stack([out_src[i][1] for i in order], axis=1)


def leaf_fills(fill_value: Any, images: Any) -> list[Any]:
  """One scalar fill per leaf of `images`: `fill_value`, or its leaves if it is a pytree like `images`.

  A ValueError naming `fill_value` for anything else (another structure, a non-scalar fill), a
  TypeError for a fill that is not a real number.
  """
  leaves = jax.tree_util.tree_leaves(images)
  ours = jax.tree_util.tree_structure(images)
  theirs = jax.tree_util.tree_structure(fill_value)
  if jax.tree_util.treedef_is_leaf(theirs):  # one scalar for every leaf
    fills = [fill_value] * len(leaves)
  elif theirs == ours:  # type: ignore[operator]  # jaxlib ships no stub for PyTreeDef
    fills = jax.tree_util.tree_leaves(fill_value)
  else:
    raise ValueError(
      f"fill_value must be one number or a pytree like images with one number per leaf, got structure "
      f"{theirs} for images of structure {ours}."
    )
  for fill in fills:
    try:
      dtype = jnp.asarray(fill).dtype
    except (TypeError, ValueError):
      raise TypeError(f"fill_value must be real numbers, got {fill!r}.") from None
    if not jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.complexfloating):
      raise TypeError(f"fill_value must be real numbers, got dtype {dtype}.")
    if jnp.ndim(fill) != 0:
      raise ValueError(
        f"fill_value must hold scalars (one per leaf of images), got one of shape {jnp.shape(fill)}."
      )
  return fills


def check_interpolation(interpolation: str) -> None:
  validation.check_choice("interpolation", interpolation, INTERPOLATIONS)


def warp_detection(
  key: jax.Array,
  images: Any,
  boxes: Any,
  classes: Any,
  valid: Any,
  *,
  tiles: int,
  canvas_scale: float,
  affine: Any,
  prob: Any,
  pairing: str,
  min_visibility: Any,
  min_size: Any,
  max_aspect: Any,
  interpolation: str,
  fill_value: Any,
  box_format: str,
  normalized: bool,
  data_format: str,
  partners: list[tuple[Any, boxes_lib.BoxTargets]] | None = None,
  center_range: tuple[Any, Any] = (0.0, 1.0),
) -> tuple[Any, boxes_lib.BoxTargets]:
  """The shared body of the YOLO mosaic (tiles 4 or 9) and :func:`random_affine` (tiles 1).

  `partners` (checked by the caller): ``tiles − 1`` pairs ``(images, targets)`` shaped like the batch;
  slot k + 1 of each sample reads partner batch k (``warp.index`` counts the batch, then each in turn).
  """
  validation.check_key(key)
  batch_size = validation.batch_size_of(images, "images")
  spatial = validation.spatial_shape_of(images, data_format, "images", nonempty=True)
  leaf_fills(fill_value, images)
  check_interpolation(interpolation)
  validation.check_choice("pairing", pairing, ("roll", "permute"))
  validation.check_unit_interval("prob", prob)
  validation.check_unit_interval("min_visibility", min_visibility)
  validation.check_nonnegative("min_size", min_size)
  validation.check_nonnegative("max_aspect", max_aspect)
  affine = check_affine(affine)
  boxes, classes, valid = boxes_lib.check_box_targets(boxes, classes, valid, batch_size)
  h, w = spatial
  pixel = boxes_lib.to_pixel_xyxy(boxes, box_format, normalized, (h, w))
  xyxy, valid = boxes_lib.sanitize_boxes(pixel, valid, (h, w))
  partner_images: list[Any] = []
  if partners:
    p_xyxy, p_valid, p_classes = [xyxy], [valid], [classes]
    for p_images, p_t in partners:
      p_pixel = boxes_lib.to_pixel_xyxy(p_t.boxes, box_format, normalized, (h, w))
      pxy, pv = boxes_lib.sanitize_boxes(p_pixel, jnp.asarray(p_t.valid, bool), (h, w))
      p_xyxy.append(pxy)
      p_valid.append(pv)
      p_classes.append(jnp.asarray(p_t.classes).astype(classes.dtype))
      partner_images.append(p_images)
    xyxy, valid, classes = (jnp.concatenate(v, axis=0) for v in (p_xyxy, p_valid, p_classes))
  warp = _sample_warp(
    key, batch_size, spatial, tiles, canvas_scale, affine, prob, pairing, bool(partners), center_range
  )

  leaves, treedef = jax.tree_util.tree_flatten(images)
  fills = leaf_fills(fill_value, images)
  partner_leaves = [jax.tree_util.tree_leaves(p) for p in partner_images]
  out = jax.tree_util.tree_unflatten(
    treedef,
    [
      _warp_leaf(warp, leaf, spatial, data_format, interpolation, fill, tuple(p[i] for p in partner_leaves))
      for i, (leaf, fill) in enumerate(zip(leaves, fills, strict=True))
    ]
  )
  new, kept, src = _warp_boxes(
    warp,
    xyxy,
    valid,
    spatial,
    jnp.asarray(min_visibility, jnp.float32),
    jnp.asarray(min_size, jnp.float32),
    jnp.asarray(max_aspect, jnp.float32),
  )
  cls = jnp.concatenate([jnp.take(classes, src[:, k], axis=0) for k in range(tiles)], axis=1)
  targets = boxes_lib.BoxTargets(
    boxes=boxes_lib.from_pixel_xyxy(new, box_format, normalized, (h, w)),
    classes=cls,
    valid=kept,
    weights=kept.astype(jnp.float32),
  )
  return out, targets


def random_affine(
  key: jax.Array,
  images: Any,
  boxes: jax.typing.ArrayLike,
  classes: jax.typing.ArrayLike,
  valid: jax.typing.ArrayLike | None = None,
  *,
  affine: Affine | dict | None = ULTRALYTICS,
  prob: jax.typing.ArrayLike = 1.0,
  min_visibility: jax.typing.ArrayLike = 0.1,
  min_size: jax.typing.ArrayLike = 2.0,
  max_aspect: jax.typing.ArrayLike = 100.0,
  interpolation: str = "bilinear",
  fill_value: Any = 114,
  box_format: str = "xyxy",
  normalized: bool = False,
  data_format: str = "NHWC",
) -> tuple[Any, boxes_lib.BoxTargets]:
  """A random affine (or perspective) warp with its boxes: ultralytics ``RandomPerspective``.

  The matrix is ultralytics' ``M = T · S · R · P · C`` about the image centre
  (see the module docstring; YOLOv5 ``random_perspective`` with ``border=0``),
  drawn per sample; pixels outside the image read `fill_value` (114, as
  ``cv2.warpAffine(..., borderValue=(114, 114, 114))``). Boxes go through
  their four corners, are clipped to the image and filtered by
  ``box_candidates`` (width and height > `min_size`, area > `min_visibility`
  of the box scaled by the zoom, aspect < `max_aspect`).

  Args:
    key: PRNG key.
    images: `[B, H, W, C]` (or a pytree sharing batch and spatial axes; int
      `[B, H, W]` label maps are read with nearest).
    boxes: float `[B, N, 4]` in `box_format`. classes: int `[B, N]`. valid: bool `[B, N]` or None.
    affine: an :class:`Affine` (default: ultralytics' defaults, degrees 0, translate 0.1,
      scale 0.5, shear 0, perspective 0), a dict of its fields, or None for the identity. Traced.
    prob: probability that a sample is warped; the others come back unchanged, boxes too. Traced.
    min_visibility, min_size, max_aspect: ``box_candidates``' ``area_thr`` (0.1), ``wh_thr`` (2 px)
      and ``ar_thr`` (100). Traced.
    interpolation: ``"bilinear"`` (OpenCV's default) or ``"nearest"`` (static).
    fill_value: the value outside the image: one number (114) for every leaf, or a pytree like
      `images` with one number per leaf (``{"image": 114, "seg": 255}``: a label map gets its own
      fill, as mmdetection's ``seg_pad_val``). Traced.
    box_format, normalized, data_format: the layouts (static).

  Returns:
    ``(images, BoxTargets)``, same shapes and dtypes; `N` boxes per image.

  Example:
    >>> out, t = jaxmix.detection.random_affine(key, images, boxes, classes, valid)
    >>> out.shape, out.dtype, t.boxes.shape
    ((8, 32, 32, 3), dtype('float32'), (8, 3, 4))
  """
  return warp_detection(
    key,
    images,
    boxes,
    classes,
    valid,
    tiles=1,
    canvas_scale=1.0,
    affine=affine,
    prob=prob,
    pairing="roll",
    min_visibility=min_visibility,
    min_size=min_size,
    max_aspect=max_aspect,
    interpolation=interpolation,
    fill_value=fill_value,
    box_format=box_format,
    normalized=normalized,
    data_format=data_format,
  )
