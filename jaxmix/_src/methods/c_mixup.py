"""C-Mixup (Yao et al. 2022, "C-Mixup: Improving Generalization in Regression", NeurIPS 2022).

MixUp for regression: instead of a uniformly random partner, each sample ``i``
draws its partner ``j`` with probability proportional to a Gaussian kernel of
the distance between their regression targets,

    P(j | i) ∝ exp(−‖y_i − y_j‖² / (2σ²)),

so that samples mostly mix with samples of similar targets and the mixed
target ``λ y_i + (1 − λ) y_j`` stays close to the data's target manifold.
λ ~ Beta(α, α) as in MixUp, and inputs and targets are blended linearly with
the same λ.

The official code (github.com/huaxiuyao/C-Mixup, ``src/algorithm.py``) builds
these rates with scikit-learn's ``KernelDensity(kernel="gaussian",
bandwidth=σ)`` fitted on each ``y_i`` and evaluated at every ``y_j`` (the same
kernel up to a constant, so the same probabilities once normalised), over the
**whole training set**; it draws one λ per batch with ``np.random.beta(α, α)``;
its ``--kde_bandwidth`` defaults to 1.0 and its scripts (``src/main.sh``) use
σ from 0.05 to 10 per data set (e.g. 1.75 Airfoil, 1.2 NO2, 0.5 electricity,
4.0 Communities & Crime); ``mix_alpha`` is 2.0 in every data set's config but
one (1.5 for exchange rate). jaxmix differs in two documented ways:

* partners are drawn **within the batch** (the official code's in-batch
  variant, ``batch_type=1``, does the same), so a plan needs only the batch's
  targets and stays one jittable function;
* a sample is never its own partner by default. The official rates include
  ``j = i``, which has the largest kernel value, so there a sample mixes with
  itself (no augmentation) with the highest probability of any partner. Pass
  ``include_self=True`` for the official rates; a sample drawn as its own
  partner comes back unchanged with λ = 1, the jaxmix self-pair rule.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation

C_MIXUP_MODES = ("batch", "elem")
# σ² is clamped to at least this (a normal float32), so any σ > 0 gives finite logits: below
# σ ≈ 1e-15 every partner but the nearest has probability 0 (the limit σ → 0).
_MIN_VARIANCE = 1e-30


def _check_targets(targets: Any, batch_size: int) -> None:
  expected = f"float regression targets [B] or [B, d] with B = {batch_size}, in batch order"
  validation.check_array(
    "targets",
    targets,
    expected=expected,
    dtype=jnp.floating,
    message="targets must be " + expected + ", got dtype {dtype} (shape {shape}); cast class ids or "
    "integer targets to a float dtype first.",
  )
  validation.check_array("targets", targets, expected=expected, rank={1, 2}, batch_size=batch_size)


def _check_bandwidth(bandwidth: Any) -> None:
  if validation.is_static_number(bandwidth) and not bandwidth > 0:
    raise ValueError(f"bandwidth must be > 0 (the kernel's σ, in target units), got {bandwidth!r}.")


def partner_logits(
  targets: jax.Array, bandwidth: jax.typing.ArrayLike, *, include_self: bool = False
) -> jax.Array:
  """float32 `[B, B]`: row ``i`` is ``log P(partner = j | i)`` up to a constant per row.

  ``−(‖y_i − y_j‖² − min_k ‖y_i − y_k‖²) / (2σ²)``: shifting each row by its
  nearest candidate changes no probability, keeps the nearest at logit 0, and
  so stays finite for any σ > 0 (a tiny σ picks the nearest target, ties at
  random). The diagonal is −inf unless `include_self`; a row with no
  candidate (B = 1 without self) is all −inf and draws the sample itself.
  """
  y = jnp.asarray(targets, jnp.float32)
  y = y.reshape(y.shape[0], -1)
  d2 = jnp.sum(jnp.square(y[:, None, :] - y[None, :, :]), axis=-1)
  # A NaN target is no candidate for anyone (and draws itself), so it cannot spoil the other rows.
  d2 = jnp.where(jnp.isnan(d2), jnp.inf, d2)
  if not include_self:
    d2 = jnp.where(jnp.eye(y.shape[0], dtype=bool), jnp.inf, d2)
  nearest = jnp.min(d2, axis=-1, keepdims=True, initial=jnp.inf)
  variance = jnp.maximum(jnp.square(jnp.asarray(bandwidth, jnp.float32)), _MIN_VARIANCE)
  logits = -(d2 - nearest) / (2.0 * variance)
  # inf − inf (a row with no finite candidate): no probability.
  return jnp.where(jnp.isnan(logits), -jnp.inf, logits)


def _partners(
  key: jax.Array, targets: jax.Array, bandwidth: jax.typing.ArrayLike, include_self: bool
) -> jax.Array:
  batch_size = targets.shape[0]
  if batch_size == 0:
    return jnp.zeros((0,), jnp.int32)
  logits = partner_logits(targets, bandwidth, include_self=include_self)
  # Gumbel-max: exact categorical draws; an all −inf row gives argmax 0 (only for B = 1: itself).
  index = jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)
  return jnp.where(jnp.all(logits == -jnp.inf, axis=-1), jnp.arange(batch_size, dtype=jnp.int32), index)


def sample_c_mixup(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None = None,
  *,
  targets: jax.typing.ArrayLike,
  alpha: jax.typing.ArrayLike = 2.0,
  bandwidth: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "permute",
  include_self: bool = False,
) -> plan_lib.Plan:
  """Samples a C-Mixup plan: partners drawn by a Gaussian kernel on the targets, λ ~ Beta(α, α).

  Sample ``i`` takes partner ``j ≠ i`` with probability proportional to
  ``exp(−‖y_i − y_j‖² / (2σ²))`` (Yao et al. 2022, Eq. 6; the official code's
  ``KernelDensity(kernel="gaussian", bandwidth=σ)``). The plan is an ordinary
  two-source :class:`jaxmix.Plan` whose partners are taken by a gather, so
  ``jaxmix.apply(plan, x)`` blends inputs (or hidden states) and
  ``jaxmix.apply(plan, targets)`` blends real-valued targets `[B]` or
  `[B, d]` linearly, ``λ y_i + (1 − λ) y_partner``, in their dtype (use
  :func:`jaxmix.mix_labels` only for class labels).

  Cost: the `[B, B]` distance matrix, ``O(B²·d)`` work, and one Gumbel draw per pair.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: unused (the plan does not depend on it); accepted for the one
      sampler signature.
    targets: float `[B]` or `[B, d]` regression targets of the batch, in batch
      order (for a multi-output target the distance is Euclidean over ``d``).
      Scale them as the loss does (the official code standardises some data
      sets' targets): σ is in the targets' units. Only read to draw partners.
    alpha: Beta concentration; the official configs' 2.0. Traced; edges as in
      :func:`jaxmix.sample_mixup` (α ≤ 0 or NaN: no mixing).
    bandwidth: the kernel's σ > 0, in target units; the official default 1.0
      (its scripts use 0.05–10 per data set: choose it on a validation split).
      Traced, so a schedule or a sweep never recompiles. A Python number ≤ 0
      is a ValueError; a traced one ≤ 0 or NaN turns mixing off (λ = 1). σ →
      ∞ is MixUp with uniformly random partners; σ → 0 mixes each sample with
      its nearest target.
    prob: probability that a batch (``batch``) or a sample (``elem``) is mixed;
      unmixed samples get λ = 1. Traced.
    mode: ``"batch"`` one λ for the batch (the official code), ``"elem"`` one
      per sample. Static. (No ``"pair"``: kernel partners are not mutual.)
    pairing: only ``"permute"``, the default: partners are drawn from the
      kernel and taken with a gather. Accepted for the one sampler signature
      (e.g. :func:`jaxmix.choose` passes it). Static.
    include_self: also let a sample draw itself, with the kernel's weight
      ``exp(0) = 1``, as the official rates do; it is then unmixed. Static.

  Returns:
    A :class:`jaxmix.Plan` whose ``lam`` is each sample's own share.

  Example:
    >>> x, y = jnp.ones((8, 5)), jnp.linspace(0.0, 1.0, 8)
    >>> plan = jaxmix.regression.sample_c_mixup(key, 8, targets=y, alpha=2.0, bandwidth=0.2)
    >>> x_mixed, y_mixed = jaxmix.apply(plan, (x, y))        # both blended with the same λ
    >>> y_mixed.shape, y_mixed.dtype
    ((8,), dtype('float32'))
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_nonnegative("alpha", alpha)
  validation.check_unit_interval("prob", prob)
  _check_bandwidth(bandwidth)
  if mode not in C_MIXUP_MODES:
    raise ValueError(
      f"mode must be one of {C_MIXUP_MODES}, got {mode!r}: C-Mixup's partners are drawn from the "
      "target kernel, so they are not mutual pairs (no 'pair' mode)."
    )
  if pairing != "permute":
    raise ValueError(
      f"pairing must be 'permute' for C-Mixup, got {pairing!r}: partners are drawn from the target "
      "kernel (a gather), not by flipping or rolling the batch."
    )
  if not isinstance(include_self, (bool, np.bool_)):
    raise TypeError(f"include_self must be a static bool, got {type(include_self).__name__}.")
  _check_targets(targets, batch_size)
  n = sampling.num_draws(mode, batch_size)
  k_pair, k_lam, k_gate = jax.random.split(key, 3)
  targets = jax.lax.stop_gradient(jnp.asarray(targets))
  index = _partners(k_pair, targets, bandwidth, bool(include_self))
  lam = sampling.beta(k_lam, alpha, (n,))
  sigma = jnp.asarray(bandwidth, jnp.float32)
  on = sampling.gate(k_gate, prob, (n,)) & (sigma > 0)
  lam = sampling.per_sample(jnp.where(on, lam, 1.0), mode, index, "permute")
  return plan_lib.keep_self_pairs(plan_lib.Plan(lam=lam, index=index, blend=lam, pairing="permute"))


def c_mixup(
  key: jax.Array,
  inputs: Any,
  targets: jax.typing.ArrayLike,
  *,
  alpha: jax.typing.ArrayLike = 2.0,
  bandwidth: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  include_self: bool = False,
) -> tuple[Any, jax.Array]:
  """C-Mixup for regression: mix with kernel-drawn partners; targets blended with the same λ.

  Yao et al., NeurIPS 2022 (official code: github.com/huaxiuyao/C-Mixup).
  ``x' = λ x + (1 − λ) x_j`` and ``y' = λ y + (1 − λ) y_j``, with ``j`` drawn
  by the Gaussian kernel on the targets (:func:`sample_c_mixup`). Train with
  the plain regression loss on ``(x', y')``, e.g. the mean squared error.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays with a shared batch axis (features
      ``[B, D]``, images, sequences); every leaf is blended with the same λ and partners.
    targets: float `[B]` or `[B, d]` regression targets: they choose the
      partners and are mixed.
    alpha, bandwidth, prob, mode, include_self: as in :func:`sample_c_mixup`.

  Returns:
    ``(mixed_inputs, mixed_targets)``: the inputs with their shapes and dtypes,
    and the targets blended linearly, with their shape and dtype.

  Example:
    >>> x, y = jax.random.normal(key, (8, 5)), jnp.linspace(0.0, 1.0, 8)
    >>> x_mixed, y_mixed = jaxmix.regression.c_mixup(key, x, y, bandwidth=0.2)
    >>> loss = jnp.mean((x_mixed.sum(-1) - y_mixed) ** 2)       # a stand-in for the model's loss
  """
  batch_size = validation.batch_size_of(inputs)
  plan = sample_c_mixup(
    key,
    batch_size,
    targets=targets,
    alpha=alpha,
    bandwidth=bandwidth,
    prob=prob,
    mode=mode,
    include_self=include_self,
  )
  return plan_lib.apply(plan, inputs), plan_lib.apply(plan, jnp.asarray(targets))
