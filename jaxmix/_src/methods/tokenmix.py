"""TokenMix (Liu et al. 2022, "TokenMix: Rethinking Image Mixing for Data Augmentation in Vision
Transformers", ECCV 2022).

The partner is pasted on whole patch tokens: a mask is drawn on the ``h × w``
token grid of a vision transformer (``h = H / patch``) and upsampled to pixels
(nearest, as the official ``F.interpolate(mask, 224, mode='nearest')``), so λ,
the own share, is exactly the share of own tokens.

The official code (github.com/Sense-X/TokenMix, ``tokenmix.py``,
``generate_mask``) draws the mask with this rule, which jaxmix transcribes
(one draw per batch there; per pair or per sample here on request):

* the target count of partner tokens is ``min(N, int(r·N) + minimum_tokens)``
  with ``N = h·w``, the mask ratio ``r = 1 − lam_constant = 0.5`` (timm's CutMix
  λ is drawn and then replaced by the constant 0.5) and ``minimum_tokens = 14``
  (one row of DeiT's 14 × 14 grid): 112 of 196 tokens;
* blocks are added until the count reaches the target: with ``m`` tokens
  still missing, up to ``attempts = 10`` candidates are drawn, each with area
  ``s ~ U(1, m)``, aspect ratio ``a = exp(U(log 0.3, log 1/0.3))``, sides
  ``bh = round(√(s·a))``, ``bw = round(√(s/a))`` (round half to even, as
  Python's ``round``) and a uniform position with the block inside the grid;
  a candidate counts when ``bw < w`` and ``bh < h`` (strictly: a block never
  spans the whole grid) and it adds between 1 and ``m`` new tokens. The first
  candidate that counts is added; when none of the attempts does, the mask
  stops short of the target. The count, hence λ, is what the mask holds.
* ``mask_type='random'`` (the official alternative): exactly the target
  count of tokens, uniformly at random.

The attempts of one step are drawn at once and the first valid one is taken
(the same distribution as trying them one after the other); steps run in a
``lax.while_loop`` until the target is reached or a step adds nothing, so it
compiles once whatever the traced ``mask_ratio`` or ``minimum_tokens``.

The teacher-activation labels (:func:`tokenmix_labels`) are the official
code's label rule; see there.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxmix._src.core import one_call
from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import tokens
from jaxmix._src.core import validation

MASK_TYPES = ("block", "random")


def check_patch_size(patch_size: Any, spatial_shape: tuple[int, int]) -> tuple[int, int]:
  """(ph, pw) from an int or a pair of static ints dividing (H, W); a ValueError naming patch_size."""
  pair = patch_size if isinstance(patch_size, (tuple, list)) else (patch_size, patch_size)
  try:
    ph, pw = pair
  except (TypeError, ValueError):
    raise ValueError(f"patch_size must be an int or (ph, pw), got {patch_size!r}.") from None
  ph = validation.check_static_int("patch_size", ph, 1, "a token's side in pixels")
  pw = validation.check_static_int("patch_size", pw, 1, "a token's side in pixels")
  h, w = spatial_shape
  if h % ph or w % pw:
    raise ValueError(
      f"patch_size {patch_size!r} must divide the spatial shape {spatial_shape} (whole tokens, so that "
      "λ is the token share)."
    )
  return ph, pw


def target_count(mask_ratio: Any, minimum_tokens: Any, num_tokens: int) -> jax.Array:
  """int32: the official target of partner tokens, ``min(N, int(mask_ratio·N) + minimum_tokens)``."""
  drawn = jnp.floor(jnp.asarray(mask_ratio, jnp.float32) * num_tokens).astype(jnp.int32)
  return jnp.minimum(num_tokens, drawn + jnp.asarray(minimum_tokens, jnp.int32))


def _block_mask(
  key: jax.Array, target: jax.Array, grid: tuple[int, int], min_aspect: Any, attempts: int
) -> tuple[jax.Array, jax.Array]:
  """One official block mask: bool `[h, w]` (True: the partner's token) and its int32 count."""
  gh, gw = grid
  log_lo = jnp.log(jnp.asarray(min_aspect, jnp.float32))
  rows = jnp.arange(gh, dtype=jnp.int32)[None, :, None]
  cols = jnp.arange(gw, dtype=jnp.int32)[None, None, :]

  def step(state: tuple[Any, ...]) -> tuple[Any, ...]:
    key, mask, count, _ = state
    key, k_area, k_aspect, k_top, k_left = jax.random.split(key, 5)
    missing = (target - count).astype(jnp.float32)
    area = jax.random.uniform(k_area, (attempts,), minval=1.0, maxval=missing)
    aspect = jnp.exp(jax.random.uniform(k_aspect, (attempts,), minval=log_lo, maxval=-log_lo))
    bh = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
    bw = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
    fits = (bw < gw) & (bh < gh)
    top = jnp.floor(jax.random.uniform(k_top, (attempts,)) * (gh - bh + 1)).astype(jnp.int32)
    left = jnp.floor(jax.random.uniform(k_left, (attempts,)) * (gw - bw + 1)).astype(jnp.int32)
    top, left = jnp.clip(top, 0, gh - 1), jnp.clip(left, 0, gw - 1)
    block = (
      (rows >= top[:, None, None])
      & (rows < (top + bh)[:, None, None])
      & (cols >= left[:, None, None])
      & (cols < (left + bw)[:, None, None])
    )
    new = (block & ~mask[None]).sum(axis=(1, 2), dtype=jnp.int32)
    valid = fits & (new > 0) & (new <= target - count)
    first = jnp.argmax(valid)
    added = valid.any()
    mask = jnp.where(added, mask | block[first], mask)
    count = count + jnp.where(added, new[first], 0)
    return key, mask, count, ~added

  def more(state: tuple[Any, ...]) -> jax.Array:
    _, _, count, stalled = state
    return (count < target) & ~stalled

  init = (key, jnp.zeros(grid, jnp.bool_), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.bool_))
  _, mask, count, _ = jax.lax.while_loop(more, step, init)
  return mask, count


def _random_mask(key: jax.Array, target: jax.Array, grid: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
  """Exactly `target` tokens uniformly at random (the official ``generate_mask_random``)."""
  n = grid[0] * grid[1]
  rank = jnp.argsort(jnp.argsort(jax.random.uniform(key, (n,))))
  return (rank < target).reshape(grid), target


def token_masks(
  key: jax.Array,
  num: int,
  grid: tuple[int, int],
  *,
  mask_ratio: Any = 0.5,
  minimum_tokens: Any = 14,
  min_aspect: Any = 0.3,
  attempts: int = 10,
  mask_type: str = "block",
) -> tuple[jax.Array, jax.Array]:
  """`num` TokenMix masks on the token grid: bool `[num, h, w]` (True: the partner's token) and the int32
  `[num]` counts of partner tokens."""
  target = target_count(mask_ratio, minimum_tokens, grid[0] * grid[1])
  keys = jax.random.split(key, num)
  if mask_type == "random":
    return jax.vmap(lambda k: _random_mask(k, target, grid))(keys)
  return jax.vmap(lambda k: _block_mask(k, target, grid, min_aspect, attempts))(keys)


def sample_tokenmix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None = None,
  *,
  patch_size: int | tuple[int, int] = 16,
  mask_ratio: jax.typing.ArrayLike = 0.5,
  minimum_tokens: jax.typing.ArrayLike = 14,
  min_aspect: jax.typing.ArrayLike = 0.3,
  attempts: int = 10,
  mask_type: str = "block",
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
) -> plan_lib.Plan:
  """Samples a TokenMix plan: partner tokens in blocks on the ViT's token grid.

  Liu et al., ECCV 2022; official code github.com/Sense-X/TokenMix
  (``generate_mask``; the rule is in the module docstring). The mask is drawn
  on the ``H/ph × W/pw`` token grid and upsampled to pixels, so ``lam`` is
  exactly the share of own tokens (and of own pixels).

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) (static), divisible by `patch_size`.
    patch_size: a token's side in pixels, or (ph, pw). 16 (DeiT's) by
      default. Static.
    mask_ratio: r, the partner's nominal share: the target is ``min(N,
      int(r·N) + minimum_tokens)`` tokens. 0.5 is the official code's
      (``lam_constant``). Traced.
    minimum_tokens: tokens added to ``int(r·N)``; 14, the official default
      (one row of a 14 × 14 grid). Traced (an int >= 0).
    min_aspect: the blocks' aspect ratio lies in ``[min_aspect,
      1/min_aspect]``, log-uniform; 0.3 (official). Traced, in (0, 1].
    attempts: candidate blocks per step before the mask stops short; 10
      (official). Static.
    mask_type: ``"block"`` (official default) or ``"random"`` (exactly the
      target count, uniformly). Static.
    prob: probability that a batch (or sample) is mixed at all. Traced.
    mode: ``"batch"`` (one mask, the official behaviour), ``"pair"`` or
      ``"elem"``. Static.
    pairing: ``"flip"`` (official: ``x.flip(0)``), ``"roll"`` or
      ``"permute"``. Static.

  Returns:
    A :class:`jaxmix.Plan` whose binary ``mask`` (`[1, H, W]` or `[B, H, W]`)
    is 1 on the sample's own pixels, ``lam`` their exact share.

  Example:
    >>> plan = jaxmix.guided.sample_tokenmix(key, 8, (32, 32), patch_size=4)
    >>> images = jaxmix.apply(plan, images)
    >>> tokens = plan.mask[0, ::4, ::4]                  # the 8 × 8 token grid
    >>> bool(plan.lam[0] == tokens.mean())
    True
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  h, w = validation.check_spatial_shape(spatial_shape)
  ph, pw = check_patch_size(patch_size, (h, w))
  validation.check_unit_interval("mask_ratio", mask_ratio)
  validation.check_nonnegative("minimum_tokens", minimum_tokens)
  if validation.is_static_number(min_aspect) and not 0 < float(min_aspect) <= 1:  # type: ignore[arg-type]
    raise ValueError(f"min_aspect must lie in (0, 1], got {min_aspect!r}.")
  attempts = validation.check_static_int("attempts", attempts, 1, "candidate blocks per step")
  validation.check_choice("mask_type", mask_type, MASK_TYPES)
  validation.check_unit_interval("prob", prob)
  validation.check_choice("mode", mode, validation.MODES)
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  return _sample_tokenmix(
    key,
    mask_ratio,
    minimum_tokens,
    min_aspect,
    prob,
    batch_size=batch_size,
    spatial_shape=(h, w),
    patch=(ph, pw),
    attempts=attempts,
    mask_type=mask_type,
    mode=mode,
    pairing=pairing,
  )


# One compiled program per static configuration, also for eager calls.
@functools.partial(
  jax.jit,
  static_argnames=("batch_size", "spatial_shape", "patch", "attempts", "mask_type", "mode", "pairing"),
)
def _sample_tokenmix(
  key: jax.Array,
  mask_ratio: Any,
  minimum_tokens: Any,
  min_aspect: Any,
  prob: Any,
  *,
  batch_size: int,
  spatial_shape: tuple[int, int],
  patch: tuple[int, int],
  attempts: int,
  mask_type: str,
  mode: str,
  pairing: str,
) -> plan_lib.Plan:
  h, w = spatial_shape
  ph, pw = patch
  grid = (h // ph, w // pw)
  n = sampling.num_draws(mode, batch_size)
  k_pair, k_mask, k_gate = jax.random.split(key, 3)
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  masks, counts = token_masks(
    k_mask,
    n,
    grid,
    mask_ratio=mask_ratio,
    minimum_tokens=minimum_tokens,
    min_aspect=min_aspect,
    attempts=attempts,
    mask_type=mask_type,
  )
  on = sampling.gate(k_gate, prob, (n,))
  partner = jnp.where(on[:, None, None], masks, False)
  pixels = jnp.broadcast_to(partner[:, :, None, :, None], (n, grid[0], ph, grid[1], pw)).reshape(n, h, w)
  own = 1.0 - pixels.astype(jnp.float32)
  own_share = jnp.where(on, 1.0 - counts.astype(jnp.float32) / (grid[0] * grid[1]), 1.0)
  return plan_lib.mask_plan(own, index, mode=mode, pairing=pairing, own_share=own_share, selects_pixels=True)


def tokenmix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  patch_size: int | tuple[int, int] = 16,
  mask_ratio: jax.typing.ArrayLike = 0.5,
  minimum_tokens: jax.typing.ArrayLike = 14,
  min_aspect: jax.typing.ArrayLike = 0.3,
  attempts: int = 10,
  mask_type: str = "block",
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
) -> tuple[Any, jax.Array | None]:
  """TokenMix: paste the partner on blocks of whole tokens; labels by the exact token share.

  Liu et al., ECCV 2022 (github.com/Sense-X/TokenMix). The official recipe
  switches between MixUp (α 0.8) and TokenMix per batch as timm's
  ``Mixup`` switches to CutMix (``switch_prob`` 0.5): :func:`jaxmix.choose` with
  ``methods=(functools.partial(jaxmix.sample_mixup, alpha=0.8), "tokenmix")``.
  For the paper's teacher-activation labels, sample the plan and call
  :func:`tokenmix_labels`.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays sharing batch and spatial axes.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    patch_size, mask_ratio, minimum_tokens, min_aspect, attempts, mask_type, prob, mode, pairing: as in
      :func:`sample_tokenmix`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> images, targets = jaxmix.guided.tokenmix(key, images, labels, patch_size=4, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  return one_call.mix(
    sample_tokenmix,
    key,
    inputs,
    labels,
    spatial=True,
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    patch_size=patch_size,
    mask_ratio=mask_ratio,
    minimum_tokens=minimum_tokens,
    min_aspect=min_aspect,
    attempts=attempts,
    mask_type=mask_type,
    prob=prob,
    mode=mode,
    pairing=pairing,
  )


def tokenmix_labels(
  plan: Any,
  activation: jax.typing.ArrayLike,
  labels: Any,
  *,
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  token_grid: tuple[int, int] | None = None,
) -> Any:
  """TokenMix's teacher-activation labels: each source weighted by its activation on its own tokens.

  The official code's label rule (github.com/Sense-X/TokenMix, ``Mixup.__call__``):
  with ``a_b`` sample ``b``'s activation map for its own class on the unmixed
  image (a teacher's, at the token grid: NFNet-F6 label maps there) and
  ``o_t`` the own-content weight of the mixed image at token ``t`` (1 own, 0
  pasted; λ everywhere for a MixUp plan), read as :func:`jaxmix.losses.transmix_labels`
  reads it::

      w_own     = Σ_t a_b[t] · o_t / Σ_t a_b[t]
      w_partner = Σ_t a_p[t] · (1 − o_t) / Σ_t a_p[t]       (a_p: the partner's map)
      label     = w_own · y_b + w_partner · y_partner

  The two weights need not sum to 1 (each source keeps the share of its own
  activation that survives), so a row's mass is ``w_own + w_partner``: the
  official code feeds these targets to BCE. A MixUp plan gives ``λ`` and
  ``1 − λ`` exactly, an unmixed sample its own label. Differences: a map that
  sums to 0 is read as uniform here (the official ``+ 1e-8`` gives it weight
  0); smoothing is applied to each label before weighting, where the official
  code subtracts ``smoothing/2`` from each source's on-value whatever its weight.

  Args:
    plan: the two-source plan that mixed the images (:func:`sample_tokenmix`,
      or any other, e.g. from ``jaxmix.choose``).
    activation: float `[B, N]`, non-negative: each sample's activation for its
      own class at its ``N`` patch tokens, from the unmixed images (read
      through ``stop_gradient``).
    labels: int class ids `[B]` (with `num_classes`) or float `[B, K]`, or a
      pytree of them.
    num_classes: K for integer labels (static).
    label_smoothing: applied to each label before weighting. Traced.
    token_grid: (h, w) with ``h·w = N`` (static); None for a square grid.

  Returns:
    float32 soft labels `[B, K]` (a pytree of them for a pytree of labels).

  Example:
    >>> plan = jaxmix.guided.sample_tokenmix(key, 8, (32, 32), patch_size=4)
    >>> images = jaxmix.apply(plan, images)
    >>> activation = jax.random.uniform(key, (8, 64))        # a teacher's map on the 8 × 8 tokens
    >>> targets = jaxmix.guided.tokenmix_labels(plan, activation, labels, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  plan_lib.check_plan(plan)
  try:
    own = plan.own_weight()
  except TypeError as err:
    raise TypeError(
      f"plan: TokenMix's labels need a two-source plan (one partner per sample). {err}"
    ) from None
  expected = f"each sample's activation at its patch tokens [B, N] with B = {plan.batch_size}"
  tokens.check_token_weights("activation", activation, plan.batch_size, expected, {2})
  activation = jax.lax.stop_gradient(jnp.asarray(activation, jnp.float32))
  grid = tokens.token_grid(activation.shape[-1], token_grid, name="activation")
  own_t = tokens.own_at_tokens(jnp.asarray(own, jnp.float32), grid)
  partner_act = pairing_lib.take_partner(activation, plan.pairing, plan.index)
  w_own = tokens.weighted_share(activation, own_t)
  w_partner = 1.0 - tokens.weighted_share(partner_act, own_t)
  return plan_lib.map_soft_labels(
    lambda y: pairing_lib.weigh_with_partner(y, w_own, w_partner, plan.pairing, plan.index),
    plan.batch_size,
    labels,
    num_classes=num_classes,
    label_smoothing=label_smoothing,
  )
