"""CutMix (Yun et al. 2019, "CutMix: Regularization Strategy to Train Strong
Classifiers with Localizable Features") and timm's MixUp/CutMix switch.

Boxes follow timm's current ``rand_bbox`` (timm 1.0.31): the unclipped box is
exactly ``cut_h × cut_w``, rows ``cy - cut_h//2`` to ``cy + (cut_h + 1)//2``.
The paper's code and timm before 1.0.31 end it at ``cy + cut_h//2``, one row
(column) short on odd sides, which makes λ slightly larger on average.

Videos and volumes (rank 5): by default a 2-D box is drawn from (H, W) and
pasted on every frame of ``[B, T, H, W, C]``, a *tube*, which is VideoMix's
spatial mode (Yun et al. 2020, "VideoMix: Rethinking Data Augmentation for
Video Classification", the variant it found best) and what per-clip CutMix in
pytorchvideo does. With ``spatial_axes=(1, 2, 3)`` (or a 3-D
``spatial_shape``) the box is a cuboid over (D, H, W) with sides
``int(S_i·∛(1-λ))``: CutMix's ``√(1-λ)`` carried to k axes as ``(1-λ)^(1/k)``,
the same side ratio on every axis, so the unclipped cuboid holds about 1 - λ
of the voxels (VideoMix's spatio-temporal mode also pastes a cuboid; its
exact side rule was not checked against its code). The cuboid is placed with
the same centred rule on every axis and clipped; λ is the exact voxel share.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmix._src.core import one_call
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import regions
from jaxmix._src.core import sampling
from jaxmix._src.core import validation


def _check_minmax(cutmix_minmax: tuple[float, float] | None) -> None:
  if cutmix_minmax is None:
    return
  if len(cutmix_minmax) != 2 or not 0 <= cutmix_minmax[0] <= cutmix_minmax[1] <= 1:
    raise ValueError(f"cutmix_minmax must be (lo, hi) with 0 <= lo <= hi <= 1, got {cutmix_minmax!r}.")


def draw_boxes(
  key: jax.Array,
  lam: jax.Array,
  spatial_shape: tuple[int, ...],
  *,
  correct_lam: bool = True,
  cutmix_minmax: tuple[float, float] | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Boxes for drawn λ values and the exact own share they leave.

  Every box comes from :func:`jaxmix._src.core.regions.centered_box`, the one
  box rule of jaxmix: rows ``cy - cut_h//2`` to ``cy + (cut_h + 1)//2``
  (likewise columns), so before clipping the box is exactly
  ``cut_h × cut_w``, as in timm's current ``rand_bbox`` (1.0.31).

  * default (timm ``rand_bbox`` with ``correct_lam=True``): sides
    ``int(H·√(1-λ))``, ``int(W·√(1-λ))``, centre uniform over the pixels,
    the box clipped to the image; λ becomes ``1 - clipped area / (H·W)``.
  * ``correct_lam=False``: the box keeps its drawn size and is placed wholly
    inside the image, so the drawn λ holds up to pixel rounding. (timm would
    clip the box and report the drawn λ; jaxmix never reports a weight the
    pixels do not carry.)
  * ``cutmix_minmax=(lo, hi)`` (timm ``rand_bbox_minmax``): sides uniform in
    ``[int(lo·H), int(hi·H))`` and ``[int(lo·W), int(hi·W))``, the box placed
    anywhere it fits wholly inside the image; λ is ignored.

  Args:
    key: PRNG key.
    lam: float32 `[n]` drawn λ.
    spatial_shape: (H, W).
    correct_lam: see above.
    cutmix_minmax: see above.

  On k axes (a 3-D ``spatial_shape``: cuboids) every rule holds per axis:
  sides ``int(S_i·(1-λ)^(1/k))`` (∛ for k = 3), centres uniform per axis,
  the box ``[n, 2k]`` (start, stop per axis) and λ one minus the clipped
  volume over the voxels.

  Returns:
    ``(box, lam)``: int32 `[n, 4]` (top, bottom, left, right) and float32
    `[n]`, the exact share of pixels outside the box.
  """
  if len(spatial_shape) != 2:
    return _draw_cuboids(key, lam, spatial_shape, correct_lam=correct_lam, cutmix_minmax=cutmix_minmax)
  h, w = spatial_shape
  n = lam.shape[0]
  k_h, k_w, k_y, k_x = jax.random.split(key, 4)
  if cutmix_minmax is not None:
    lo, hi = cutmix_minmax
    cut_h = jax.random.randint(k_h, (n,), int(h * lo), max(int(h * hi), int(h * lo) + 1))
    cut_w = jax.random.randint(k_w, (n,), int(w * lo), max(int(w * hi), int(w * lo) + 1))
  else:
    cut_h, cut_w = regions.scaled_sides(jnp.sqrt(1.0 - lam), spatial_shape)
  if correct_lam and cutmix_minmax is None:
    cy = jax.random.randint(k_y, (n,), 0, h)
    cx = jax.random.randint(k_x, (n,), 0, w)
  else:
    # Centres that keep the whole box inside: top uniform in [0, H - cut_h].
    cy = jax.random.randint(k_y, (n,), 0, h - cut_h + 1) + cut_h // 2
    cx = jax.random.randint(k_x, (n,), 0, w - cut_w + 1) + cut_w // 2
  return regions.centered_box(cy, cx, cut_h, cut_w, spatial_shape)


def _draw_cuboids(
  key: jax.Array,
  lam: jax.Array,
  spatial_shape: tuple[int, ...],
  *,
  correct_lam: bool,
  cutmix_minmax: tuple[float, float] | None,
) -> tuple[jax.Array, jax.Array]:
  """:func:`draw_boxes` on k axes (the same rules axis by axis; see there)."""
  k = len(spatial_shape)
  n = lam.shape[0]
  keys = jax.random.split(key, 2 * k)
  if cutmix_minmax is not None:
    lo, hi = cutmix_minmax
    cuts = tuple(
      jax.random.randint(keys[i], (n,), int(s * lo), max(int(s * hi), int(s * lo) + 1))
      for i, s in enumerate(spatial_shape)
    )
  else:
    cuts = regions.scaled_sides_nd(regions.side_ratio(lam, k), spatial_shape)
  if correct_lam and cutmix_minmax is None:
    centres = tuple(jax.random.randint(keys[k + i], (n,), 0, s) for i, s in enumerate(spatial_shape))
  else:
    centres = tuple(
      jax.random.randint(keys[k + i], (n,), 0, s - cut + 1) + cut // 2
      for i, (s, cut) in enumerate(zip(spatial_shape, cuts, strict=True))
    )
  return regions.centered_cuboid(centres, cuts, spatial_shape)


def sample_cutmix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, ...] | None = None,
  *,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  correct_lam: bool = True,
  cutmix_minmax: tuple[float, float] | None = None,
) -> plan_lib.Plan:
  """Samples a CutMix plan: a box of each sample is replaced by its partner's.

  λ ~ Beta(α, α) sets a box of sides ``int(H·√(1-λ))`` × ``int(W·√(1-λ))``
  centred on a uniform pixel and clipped to the image, exactly as timm's
  current ``rand_bbox`` (1.0.31; see :func:`draw_boxes`), so with
  ``correct_lam=True`` the boxes and the returned λ have timm's distribution.
  The returned ``lam`` is always the exact share of the sample's own pixels.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) (static), or (D, H, W) for cuboids in videos and
      volumes (see :func:`draw_boxes`).
    alpha: Beta concentration; 0 turns CutMix off unless `cutmix_minmax` is
      given (then λ is not drawn, as in timm). The paper uses 1.0. Traced.
      The drawn λ has the edges of :func:`jaxmix.sample_mixup` (α ≤ 0 or NaN:
      off; tiny: 0 or 1; +inf: 0.5); the reported ``lam`` is then the exact
      share left after clipping the box.
    prob: probability that a batch/sample is mixed at all. Traced.
    mode: ``"batch"`` (one box), ``"pair"`` (one per mutual pair), ``"elem"``
      (one per sample). Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``. Static.
    correct_lam: timm's option, see :func:`draw_boxes`. Static.
    cutmix_minmax: timm's box-size range, see :func:`draw_boxes`. Static.

  Returns:
    A :class:`Plan` with a pasted ``region`` per sample: int32 `[B, 4]`
    (top, bottom, left, right), or `[B, 2k]` (start, stop per axis) for k axes.

  Example:
    >>> plan = jaxmix.sample_cutmix(key, 8, (32, 32), alpha=1.0, mode="elem")
    >>> images, seg = jaxmix.apply(plan, (images, seg))
    >>> plan.lam.shape, seg.dtype
    ((8,), dtype('int32'))
    >>> plan = jaxmix.sample_cutmix(key, 8, (4, 32, 32))    # a cuboid over (T, H, W)
    >>> video = jaxmix.apply(plan, jnp.zeros((8, 4, 32, 32, 3)))
    >>> plan.region.shape                 # (start, stop) on each of the 3 axes
    (8, 6)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_nonnegative("alpha", alpha)
  validation.check_unit_interval("prob", prob)
  spatial_shape = validation.check_spatial_shape_nd(spatial_shape, ndims=(2, 3))
  _check_minmax(cutmix_minmax)
  n = sampling.num_draws(mode, batch_size)
  k_pair, k_lam, k_gate, k_box = jax.random.split(key, 4)
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  drawn = sampling.beta(k_lam, alpha, (n,))
  box, lam = draw_boxes(k_box, drawn, spatial_shape, correct_lam=correct_lam, cutmix_minmax=cutmix_minmax)
  # cutmix_minmax sets the box size by itself, so it cuts even with alpha = 0 (timm).
  cut_on = (jnp.asarray(alpha, jnp.float32) > 0) | (cutmix_minmax is not None)
  on = sampling.gate(k_gate, prob, (n,)) & cut_on
  box = jnp.where(on[:, None], box, 0)
  lam = jnp.where(on, lam, 1.0)
  plan = plan_lib.Plan(
    lam=sampling.per_sample(lam, mode, index, pairing),
    index=index,
    blend=jnp.ones((batch_size,), jnp.float32),
    region=sampling.per_sample(box, mode, index, pairing),
    pairing=pairing,
    spatial_shape=spatial_shape,
    selects_pixels=True,
    shared_region=mode == "batch",
  )
  return plan_lib.keep_self_pairs(plan)


def cutmix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  correct_lam: bool = True,
  cutmix_minmax: tuple[float, float] | None = None,
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
  spatial_axes: tuple[int, ...] | None = None,
) -> tuple[Any, jax.Array | None]:
  """CutMix: paste a box of the partner; labels weighted by the exact pixel share.

  Yun et al. 2019. Every leaf of `inputs` (images, label maps, depth) gets
  the same box; leaves must be ``[B, H, W]`` or rank 4 in `data_format`, or
  rank 5 (videos ``[B, T, H, W, C]``, volumes ``[B, D, H, W, C]``): by
  default one 2-D box on every frame (a tube, VideoMix's spatial mode), with
  ``spatial_axes=(1, 2, 3)`` a cuboid whose λ is the exact voxel share.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays sharing batch and spatial axes.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    alpha, prob, mode, pairing, correct_lam, cutmix_minmax: as in
      :func:`sample_cutmix`.
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
    >>> images, targets = jaxmix.cutmix(key, images, labels, num_classes=10)
    >>> targets.shape
    (8, 10)
    >>> video, targets = jaxmix.cutmix(key, jnp.zeros((8, 4, 32, 32, 3)), labels, num_classes=10,
    ...                                spatial_axes=(1, 2, 3))   # a cuboid over (T, H, W)
    >>> video.shape
    (8, 4, 32, 32, 3)
  """
  return one_call.mix(
    sample_cutmix,
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
    correct_lam=correct_lam,
    cutmix_minmax=cutmix_minmax,
  )


def sample_mixup_cutmix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, ...] | None = None,
  *,
  mixup_alpha: jax.typing.ArrayLike = 1.0,
  cutmix_alpha: jax.typing.ArrayLike = 0.0,
  cutmix_minmax: tuple[float, float] | None = None,
  prob: jax.typing.ArrayLike = 1.0,
  switch_prob: jax.typing.ArrayLike = 0.5,
  mode: str = "batch",
  pairing: str = "flip",
  correct_lam: bool = True,
) -> plan_lib.Plan:
  """Samples timm's ``Mixup`` choice: CutMix with `switch_prob`, else MixUp.

  Semantics follow timm ``data/mixup.py``: with both alphas > 0 CutMix is
  chosen with probability `switch_prob` (per batch, pair or sample as `mode`
  says); with one alpha 0 the other method is always used; the result is
  kept with probability `prob`, else λ = 1. ``cutmix_minmax`` enables CutMix
  even with ``cutmix_alpha = 0``, as in timm. Every value is one compiled
  program: the choice is a select, not a Python branch.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W), or None when CutMix is statically off; (D, H, W)
      for cuboids (see :func:`draw_boxes`).
    mixup_alpha, cutmix_alpha: Beta concentrations, 0 turns a method off;
      both 0 (as Python numbers) is an error. Traced. Each has the edges of
      :func:`jaxmix.sample_mixup` (≤ 0 or NaN: that method is off; +inf:
      λ = 0.5 drawn).
    cutmix_minmax: as in :func:`sample_cutmix`. Static.
    prob: probability of mixing at all. Traced.
    switch_prob: probability of CutMix when both are on. Traced.
    mode, pairing, correct_lam: as in :func:`sample_cutmix`. Static.

  Returns:
    A :class:`Plan` (blend weights for MixUp samples, pasted regions for CutMix ones).
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_nonnegative("mixup_alpha", mixup_alpha)
  validation.check_nonnegative("cutmix_alpha", cutmix_alpha)
  validation.check_unit_interval("prob", prob)
  validation.check_unit_interval("switch_prob", switch_prob)
  _check_minmax(cutmix_minmax)
  static_off = validation.is_static_number
  cutmix_off = static_off(cutmix_alpha) and cutmix_alpha == 0 and cutmix_minmax is None
  if static_off(mixup_alpha) and mixup_alpha == 0 and cutmix_off:
    raise ValueError("mixup_cutmix needs mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax; all are off.")
  n = sampling.num_draws(mode, batch_size)
  k_pair, k_mix, k_cut, k_switch, k_gate, k_box = jax.random.split(key, 6)
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  on = sampling.gate(k_gate, prob, (n,))
  lam_mix = sampling.beta(k_mix, mixup_alpha, (n,))
  mixup_on = jnp.asarray(mixup_alpha, jnp.float32) > 0
  if cutmix_off:
    lam = jnp.where(on, lam_mix, 1.0)
    return plan_lib.keep_self_pairs(
      plan_lib.Plan(
        lam=sampling.per_sample(lam, mode, index, pairing),
        index=index,
        blend=sampling.per_sample(lam, mode, index, pairing),
        pairing=pairing,
      )
    )
  if spatial_shape is None:
    raise ValueError("spatial_shape (H, W) is required when CutMix can be chosen.")
  spatial_shape = validation.check_spatial_shape_nd(spatial_shape, ndims=(2, 3))
  if cutmix_minmax is not None:
    cutmix_on = jnp.asarray(True)
    drawn_cut = jnp.ones((n,), jnp.float32)  # ignored: the box size comes from cutmix_minmax
  else:
    cutmix_on = jnp.asarray(cutmix_alpha, jnp.float32) > 0
    drawn_cut = sampling.beta(k_cut, cutmix_alpha, (n,))
  box, lam_cut = draw_boxes(
    k_box, drawn_cut, spatial_shape, correct_lam=correct_lam, cutmix_minmax=cutmix_minmax
  )
  switch = jax.random.uniform(k_switch, (n,)) < jnp.asarray(switch_prob, jnp.float32)
  use_cut = jnp.where(mixup_on & cutmix_on, switch, cutmix_on)
  any_on = on & (mixup_on | cutmix_on)
  lam = jnp.where(any_on, jnp.where(use_cut, lam_cut, lam_mix), 1.0)
  blend = jnp.where(any_on & ~use_cut, lam_mix, 1.0)
  box = jnp.where((any_on & use_cut)[:, None], box, 0)
  plan = plan_lib.Plan(
    lam=sampling.per_sample(lam, mode, index, pairing),
    index=index,
    blend=sampling.per_sample(blend, mode, index, pairing),
    region=sampling.per_sample(box, mode, index, pairing),
    pairing=pairing,
    spatial_shape=spatial_shape,
    # Only boxes when MixUp is off by a static 0 (traced alphas may blend).
    selects_pixels=bool(static_off(mixup_alpha) and mixup_alpha == 0),
  )
  return plan_lib.keep_self_pairs(plan)


def mixup_cutmix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  mixup_alpha: jax.typing.ArrayLike = 1.0,
  cutmix_alpha: jax.typing.ArrayLike = 0.0,
  cutmix_minmax: tuple[float, float] | None = None,
  prob: jax.typing.ArrayLike = 1.0,
  switch_prob: jax.typing.ArrayLike = 0.5,
  mode: str = "batch",
  pairing: str = "flip",
  correct_lam: bool = True,
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
  spatial_axes: tuple[int, ...] | None = None,
) -> tuple[Any, jax.Array | None]:
  """timm's ``Mixup``/``FastCollateMixup`` as one pure function.

  Options and defaults follow ``timm.data.Mixup`` (mixup_alpha=1,
  cutmix_alpha=0, prob=1, switch_prob=0.5, mode="batch", correct_lam=True)
  except ``label_smoothing``, which is 0 here (timm's class uses 0.1).
  In ``elem`` mode each sample draws its own MixUp-vs-CutMix choice.
  Rank-5 videos and volumes mix as in :func:`cutmix`: CutMix boxes are tubes
  by default, cuboids with ``spatial_axes=(1, 2, 3)``.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode, pairing, correct_lam: as in
      :func:`sample_mixup_cutmix`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.
    spatial_axes: the axes of every leaf that carry CutMix's box, as in
      :func:`cutmix` (static).

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> images, targets = jaxmix.mixup_cutmix(
    ...     key, images, labels, mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=1000)
    >>> targets.shape
    (8, 1000)
  """
  cutmix_possible = not (
    validation.is_static_number(cutmix_alpha) and cutmix_alpha == 0 and cutmix_minmax is None
  )
  return one_call.mix(
    sample_mixup_cutmix,
    key,
    inputs,
    labels,
    spatial=cutmix_possible,
    spatial_axes=spatial_axes,
    volumes=(2, 3),
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    mixup_alpha=mixup_alpha,
    cutmix_alpha=cutmix_alpha,
    cutmix_minmax=cutmix_minmax,
    prob=prob,
    switch_prob=switch_prob,
    mode=mode,
    pairing=pairing,
    correct_lam=correct_lam,
  )
