"""TransMix (Chen et al. 2022, "TransMix: Attend to Mix for Vision Transformers", CVPR 2022).

A label rule applied after the forward pass of a vision transformer: the
partner's label weight is the share of the class token's attention that falls
on the pasted region, instead of the pasted area. With ``a`` the CLS token's
attention to the ``N = h·w`` patch tokens of the last block (averaged over
heads) and ``M`` the pasted region downsampled to the ``h × w`` token grid, the
paper's Eq. (5) is ``λ_partner = a · M / Σ a``.

The official code (github.com/Beckschen/TransMix, ``transmix.py``,
``Mixup_transmix.transmix_label``) does this for batches that timm's switch
sends to CutMix (MixUp batches keep their λ), with:

* the attention ``attn[-1][:, :, 0, 1:]`` (CLS row, CLS column dropped)
  averaged over heads and detached;
* the box mask downsampled with ``nn.Upsample(size=√N)``, i.e. nearest: token
  ``(i, j)`` is pasted when pixel ``(⌊i·H/h⌋, ⌊j·W/w⌋)``, the top-left pixel
  of its patch for a patch-aligned grid, is;
* the attention λ averaged with the area λ: ``λ = (λ_area + λ_attention) / 2``
  (its ``ratio=0.5``), which is what trained the published models; the
  paper's equation alone is ``area_weight=0``;
* DeiT's recipe (``configs/deit_*_transmix.yaml``): mixup 0.8, cutmix 1.0,
  ``mixup-switch-prob`` 0.8 (timm's switch_prob: CutMix 80 % of batches).

jaxmix generalises the downsampled mask to any two-source plan's own-content
weight (:meth:`jaxmix.PlanLike.own_weight`) read at the same pixels, so one
formula covers CutMix (weights 0/1), MixUp-chosen samples of the switch (the
weight is λ everywhere, so λ stays exactly) and mask methods (FMix, ...).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import tokens
from jaxmix._src.core import validation


def _check_attention(attention: Any, batch_size: int) -> None:
  expected = f"CLS-to-patch attention [B, heads, N] or [B, N] with B = {batch_size}"
  tokens.check_token_weights("attention", attention, batch_size, expected, {2, 3})


def transmix_labels(
  plan: Any,
  attention: jax.typing.ArrayLike,
  labels: Any,
  *,
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  area_weight: jax.typing.ArrayLike = 0.5,
  token_grid: tuple[int, int] | None = None,
) -> Any:
  """TransMix's soft labels: each source weighted by the CLS attention on its pixels.

  Called after the forward pass, with the plan that mixed the images and the
  last block's attention (Chen et al., CVPR 2022; official code
  github.com/Beckschen/TransMix). For sample ``b`` with own-content weight
  ``o_t`` at token ``t`` (1 outside a pasted box, 0 inside it; λ everywhere
  for a MixUp sample), read at the top-left pixel of each token's patch as the
  official nearest downsampling does, and attention ``a_t``::

      λ_attention = Σ_t a_t · o_t / Σ_t a_t
      λ = (1 − area_weight) · λ_attention + area_weight · λ_area

  where ``λ_area`` is the plan's ``lam`` (the exact pixel share, which the
  official code's area λ is for a clipped box). The label is then ``λ y_b +
  (1 − λ) y_partner``, as :func:`jaxmix.mix_labels` with λ replaced. A MixUp-
  chosen sample (own weight λ at every token) keeps its λ exactly, whatever
  the attention; an unmixed sample keeps its label. With uniform attention
  ``λ_attention`` is the own share of the token grid.

  The attention is read through ``jax.lax.stop_gradient`` (the official code
  detaches it). A sample whose attention sums to 0 is read as uniform.

  Args:
    plan: the two-source plan that mixed the images (:func:`jaxmix.sample_cutmix`,
      :func:`jaxmix.sample_mixup_cutmix`, :func:`jaxmix.sample_choose`, mask methods, ...).
    attention: the class token's attention to the ``N`` patch tokens, float
      ``[B, heads, N]`` (averaged over heads here) or ``[B, N]``: e.g.
      ``attn[:, :, 0, 1:]`` of the last block for a ViT with one CLS token
      (drop the CLS column and any distillation or register tokens).
      Non-negative (softmax weights); negative values known while tracing are
      a ValueError.
    labels: int class ids `[B]` (with `num_classes`) or float `[B, K]`, or a
      pytree of them, as in :func:`jaxmix.mix_labels`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    area_weight: the weight of the area λ in [0, 1]; 0.5 is the official
      code's (its default and only setting), 0 the paper's Eq. (5). Traced.
    token_grid: (h, w) with ``h·w = N`` (static); None for a square grid
      ``√N × √N`` (ViT/DeiT: 14 × 14 at 224² with 16-pixel patches).

  Returns:
    float32 soft labels `[B, K]` (a pytree of them for a pytree of labels).

  Example:
    >>> plan = jaxmix.sample_mixup_cutmix(key, 8, (32, 32), mixup_alpha=0.8, cutmix_alpha=1.0)
    >>> images = jaxmix.apply(plan, images)
    >>> attention = jax.nn.softmax(jax.random.normal(key, (8, 3, 16)))   # the ViT's CLS row, 4 × 4 patches
    >>> targets = jaxmix.losses.transmix_labels(plan, attention, labels, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  plan_lib.check_plan(plan)
  try:
    own = plan.own_weight()
  except TypeError as err:
    raise TypeError(f"plan: TransMix needs a two-source plan (one partner per sample). {err}") from None
  validation.check_unit_interval("area_weight", area_weight)
  _check_attention(attention, plan.batch_size)
  attention = jax.lax.stop_gradient(jnp.asarray(attention, jnp.float32))
  if attention.ndim == 3:
    attention = attention.mean(axis=1)
  grid = tokens.token_grid(attention.shape[-1], token_grid)
  own_t = tokens.own_at_tokens(jnp.asarray(own, jnp.float32), grid)
  lam_attention = tokens.weighted_share(attention, own_t)
  lam = lam_attention + jnp.asarray(area_weight, jnp.float32) * (plan.lam - lam_attention)
  return plan_lib.mix_labels(
    plan.replace(lam=lam), labels, num_classes=num_classes, label_smoothing=label_smoothing
  )
