"""MixUp (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization")."""

from __future__ import annotations

from typing import Any

import jax

from jaxmix._src.core import one_call
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation


def sample_mixup(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None = None,
  *,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
) -> plan_lib.Plan:
  """Samples a MixUp plan: λ ~ Beta(α, α), each sample blended with its partner.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: unused (the plan does not depend on it); accepted so that every
      sampler has the one signature ``sample_<m>(key, batch_size, spatial_shape=None, *, ...)``.
    alpha: Beta concentration; 0 turns mixing off (timm). Traced. The paper
      uses 0.2–0.4 on ImageNet and 1.0 on CIFAR. Edges, the same for every
      method that draws λ, for any traced value: α ≤ 0 or NaN gives λ = 1
      (no mixing); 0 < α < 1e-20 gives λ ∈ {0, 1} (the limit α → 0); α >
      1e20, +inf included, gives λ = 0.5 (the limit α → ∞). Every call
      returns: no value makes the draw loop forever.
    prob: probability that a batch (``batch`` mode) or a sample (``pair``/
      ``elem``) is mixed at all; unmixed samples get λ = 1. Traced.
    mode: ``"batch"`` one λ for the batch, ``"pair"`` one per mutual pair,
      ``"elem"`` one per sample (timm's modes). Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"`` (see
      :mod:`jaxmix._src.core.pairing`). Static.

  Returns:
    A :class:`Plan` whose ``lam`` is each sample's own share.

  Example:
    >>> plan = jaxmix.sample_mixup(key, 8, alpha=0.2)
    >>> images = jaxmix.apply(plan, images)
    >>> plan.lam.shape
    (8,)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_nonnegative("alpha", alpha)
  validation.check_unit_interval("prob", prob)
  n = sampling.num_draws(mode, batch_size)
  k_pair, k_lam, k_gate = jax.random.split(key, 3)
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  lam = sampling.beta(k_lam, alpha, (n,))
  lam = jax.numpy.where(sampling.gate(k_gate, prob, (n,)), lam, 1.0)
  lam = sampling.per_sample(lam, mode, index, pairing)
  return plan_lib.keep_self_pairs(plan_lib.Plan(lam=lam, index=index, blend=lam, pairing=pairing))


def mixup(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
) -> tuple[Any, jax.Array | None]:
  """MixUp: ``x' = λ x + (1 - λ) x_partner`` and the same for the labels.

  Zhang et al. 2018. Leaves of any rank mix (images, videos and volumes
  ``[B, T, H, W, C]``, features ``[B, D]``, hidden states); every leaf of
  `inputs` uses the same λ and partners.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays with a shared batch axis.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    alpha, prob, mode, pairing: as in :func:`sample_mixup`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing (timm). Traced.
    data_format: ``"NHWC"`` or ``"NCHW"``; MixUp does not depend on it.

  Returns:
    ``(mixed_inputs, soft_labels)``: inputs with their shapes and dtypes, and
    float32 `[B, K]` (None when `labels` is None).

  Example:
    >>> images, targets = jaxmix.mixup(key, images, labels, alpha=0.2, num_classes=1000)
    >>> targets.shape
    (8, 1000)
    >>> model = lambda x: x.mean((1, 2)) @ jnp.ones((3, 1000))   # a stand-in for the network
    >>> loss = optax.softmax_cross_entropy(model(images), targets).mean()
  """
  return one_call.mix(
    sample_mixup,
    key,
    inputs,
    labels,
    spatial=False,
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    alpha=alpha,
    prob=prob,
    mode=mode,
    pairing=pairing,
  )
