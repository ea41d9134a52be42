"""MixUp for padded sequences: token embeddings ``[B, T, D]`` with masks ``[B, T]``.

Text cannot be blended as tokens, so sequence MixUp (Guo et al. 2019,
"Augmenting Data with Mixup for Sentence Classification"; Sun et al. 2020,
"Mixup-Transformer") blends *embeddings*: call it after the embedding layer
(or on any hidden states ``[B, T, ...]``), before the encoder.

Padding is never read as content. Per token, the own weight is

    both sources valid     λ        (a blend, as MixUp)
    only own valid         1        (own token, full weight)
    only partner valid     0        (partner token, full weight)
    neither valid          1        (own padding, left untouched)

so the output mask is the union of the two masks, a position padded in both
stays padded and keeps its own (padding) embedding bit-exact, and where only
one sequence has a token that token is copied whole. Per-token labels use the
same weights. The sequence-level λ is the exact own share over the output's
valid tokens, ``Σ_t w_t·mask_t / Σ_t mask_t``.

A sample that is not mixed (the ``prob`` gate is off, λ = 1, or it is its own
partner) takes nothing from its partner, padding positions included: its
tokens, mask and labels come back unchanged, so ``prob=0`` is the identity.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmix._src.core import labels as labels_lib
from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation
from jaxmix._src.methods import mixup as mixup_lib


@struct.dataclass
class SequencePlan(plan_lib.PlanLike):
  """A two-source token-wise blend of padded sequences.

  Attributes:
    lam: float32 `[B]`, own share of the output's valid tokens (label
      weight for sequence-level labels).
    index: int32 `[B]`, each sample's partner.
    token_weight: float32 `[B, T]`, own weight of each token (see module).
    mask: bool `[B, T]`, the output padding mask (True = valid): the union.
    pairing: "flip", "roll" or "permute" (static).
  """

  lam: jax.Array
  index: jax.Array
  token_weight: jax.Array
  mask: jax.Array
  pairing: str = struct.field(pytree_node=False, default="flip")

  @property
  def length(self) -> int:
    return self.token_weight.shape[1]

  def _blend_tokens(self, x: jax.Array) -> jax.Array:
    if x.ndim < 2 or x.shape[1] != self.length:
      raise ValueError(
        f"Sequence leaves must be [B, T, ...] with T = {self.length} (the mask's T); got shape {x.shape}."
      )
    w = self.token_weight.reshape(self.token_weight.shape + (1,) * (x.ndim - 2))
    partner = pairing_lib.take_partner(x, self.pairing, self.index)
    return pairing_lib.blend(x, partner, w)

  def mix_leaf(self, x: jax.Array, data_format: str) -> jax.Array:
    del data_format
    return self._blend_tokens(x)

  def for_integer_leaves(self) -> SequencePlan:
    """Refuses integer leaves: blended token ids are ids of other words (textaugment #17)."""
    raise TypeError(_TOKEN_IDS)

  def mix_labels(self, y: jax.Array) -> jax.Array:
    """Sequence-level labels `[B, K]`, weighted by the own token share."""
    return pairing_lib.blend_with_partner(y, self.lam, self.pairing, self.index)

  def mix_token_labels(self, y: jax.Array) -> jax.Array:
    """Per-token labels `[B, T, K]`, weighted by the token weights."""
    return self._blend_tokens(y)


_TOKEN_IDS = (
  "sequence MixUp blends embeddings, not integer token ids: a blend of ids 17 and 42 is the id of "
  "some third word. Call it after the embedding layer, on the float embeddings [B, T, D] (or any "
  "float hidden states); cast to float first if the integers are intensities."
)


def _check_mask(mask: Any, name: str = "mask") -> tuple[int, int]:
  validation.check_array(name, mask, expected="a padding mask [B, T] (True = valid token)", rank=2)
  shape = np.shape(mask)
  dtype = jnp.result_type(mask)
  if not (dtype == jnp.bool_ or jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
    raise TypeError(f"{name} must be bool (or 0/1 numbers), got dtype {dtype}.")
  return shape


def sample_sequence_mixup(
  key: jax.Array,
  mask: jax.typing.ArrayLike,
  *,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
) -> SequencePlan:
  """Samples a sequence MixUp plan for padding mask `mask` `[B, T]`.

  λ ~ Beta(α, α) per batch/pair/sample as in :func:`jaxmix.sample_mixup`;
  token weights follow the table in the module docstring.

  Args:
    key: PRNG key.
    mask: `[B, T]`, True (or nonzero) where a token is valid.
    alpha, prob, mode, pairing: as in :func:`jaxmix.sample_mixup`.

  Returns:
    A :class:`SequencePlan`; ``plan.mask`` is the output mask.

  Example:
    >>> plan = jaxmix.sequence.sample_mixup(key, mask, alpha=0.4)
    >>> emb = jaxmix.apply(plan, emb)           # [B, T, D], after the embedding layer
    >>> mask = plan.mask
    >>> emb.shape, mask.shape
    ((8, 16, 32), (8, 16))
  """
  batch_size, _ = _check_mask(mask)
  base = mixup_lib.sample_mixup(key, batch_size, alpha=alpha, prob=prob, mode=mode, pairing=pairing)
  own = jnp.asarray(mask).astype(bool)
  # An unmixed sample (λ = 1: gate off, or its own partner) reads no partner token, not even
  # where it is padded, so it comes back unchanged.
  mixed = (base.lam < 1)[:, None]
  other = pairing_lib.take_partner(own, pairing, base.index) & mixed
  lam = base.lam[:, None]
  weight = jnp.where(own & other, lam, jnp.where(other, 0.0, 1.0)).astype(jnp.float32)
  union = own | other
  valid = jnp.sum(union, axis=1)
  share = jnp.sum(jnp.where(union, weight, 0.0), axis=1) / jnp.maximum(valid, 1)
  share = jnp.where(valid > 0, share, 1.0)
  return SequencePlan(lam=share, index=base.index, token_weight=weight, mask=union, pairing=pairing)


def mix_token_labels(
  plan: SequencePlan,
  labels: jax.typing.ArrayLike,
  *,
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
) -> jax.Array:
  """Per-token soft labels `[B, T, K]` mixed with the plan's token weights.

  Args:
    plan: a :class:`SequencePlan`.
    labels: int `[B, T]` (needs `num_classes`) or float `[B, T, K]`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.

  Returns:
    float32 `[B, T, K]`. Positions padded in both sources keep their own
    (padding) labels; mask them out of the loss with ``plan.mask``.
  """
  y = _token_soft_labels(plan, labels, num_classes, label_smoothing)
  return plan.mix_token_labels(y)


def _token_soft_labels(
  plan: SequencePlan,
  labels: jax.typing.ArrayLike,
  num_classes: int | None,
  label_smoothing: jax.typing.ArrayLike,
) -> jax.Array:
  validation.check_unit_interval("label_smoothing", label_smoothing)
  num_classes = validation.check_num_classes(num_classes)
  labels = validation.numbers_as_array(labels)
  shape = np.shape(labels)
  dtype = jnp.result_type(labels)
  want = (plan.batch_size, plan.length)
  if tuple(shape[:2]) != want or len(shape) not in (2, 3):
    raise ValueError(
      f"per-token labels must be int ids [B, T] or float targets [B, T, K] with [B, T] = {list(want)}, "
      f"got shape {shape}."
    )
  if len(shape) == 2:
    if num_classes is None:
      raise ValueError("num_classes is required when per-token labels are integer ids [B, T].")
    return labels_lib.one_hot(labels, num_classes, label_smoothing=label_smoothing)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"per-token labels [B, T, K] must be float, got dtype {dtype}.")
  if num_classes is not None and shape[2] != num_classes:
    raise ValueError(f"per-token labels have {shape[2]} classes but num_classes={num_classes}.")
  s = jnp.asarray(label_smoothing, jnp.float32)
  return jnp.asarray(labels, jnp.float32) * (1 - s) + s / shape[2]


def sequence_mixup(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  mask: jax.typing.ArrayLike,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
) -> tuple[Any, jax.Array, jax.Array | None]:
  """MixUp of padded sequences of embeddings; call it after the embedding layer.

  Unlike the image methods this returns three values, because the padding
  mask changes: the output mask is the union of the two sources' masks.

  Args:
    key: PRNG key.
    inputs: float embeddings `[B, T, D]` (or any pytree of float `[B, T, ...]`
      leaves, e.g. embeddings and position features). Integer token ids
      are refused with a TypeError: embed them first.
    labels: sequence labels (int `[B]` or float `[B, K]`), per-token labels
      (int `[B, T]` or float `[B, T, K]`; tagging), or None. Integer labels
      need `num_classes`.
    mask: `[B, T]` padding mask, True (nonzero) = valid token.
    alpha, prob, mode, pairing: as in :func:`jaxmix.sample_mixup`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.

  Returns:
    ``(mixed_inputs, mixed_mask, soft_labels)``: inputs with their shapes and
    dtypes; the union mask with `mask`'s dtype; float32 `[B, K]` or
    `[B, T, K]` (None without labels).

  Example:
    >>> embed = jax.random.normal(key, (100, 32))             # a stand-in embedding table
    >>> emb = embed[tokens]                                   # [B, T, D]
    >>> emb, mask, targets = jaxmix.sequence.mixup(
    ...     key, emb, labels, mask=tokens != PAD, alpha=0.4, num_classes=10)
    >>> emb.shape, mask.shape, targets.shape
    ((8, 16, 32), (8, 16), (8, 10))
  """
  mask_shape = _check_mask(mask)
  for path, leaf in validation.leaves_with_names(inputs, "inputs"):
    if tuple(np.shape(leaf)[:2]) != tuple(mask_shape):
      raise ValueError(
        f"mask has shape {mask_shape} but {path} has shape {np.shape(leaf)}; need [B, T, ...]."
      )
    if jnp.issubdtype(jnp.result_type(leaf), jnp.integer):
      raise TypeError(f"{path} has dtype {jnp.result_type(leaf)}: {_TOKEN_IDS}")
  plan = sample_sequence_mixup(key, mask, alpha=alpha, prob=prob, mode=mode, pairing=pairing)
  mixed = plan_lib.apply(plan, inputs)
  # Entries whose validity did not change keep their value (a nonzero valid entry stays as given).
  mask = jnp.asarray(mask)
  out_mask = jnp.where(plan.mask == mask.astype(bool), mask, plan.mask.astype(mask.dtype))
  if labels is None:
    return mixed, out_mask, None
  labels = validation.numbers_as_array(labels)
  shape = np.shape(labels)
  dtype = jnp.result_type(labels)
  per_token = len(shape) == 3 or (len(shape) == 2 and jnp.issubdtype(dtype, jnp.integer))
  if per_token:
    targets = mix_token_labels(plan, labels, num_classes=num_classes, label_smoothing=label_smoothing)
  else:
    targets = plan_lib.mix_labels(plan, labels, num_classes=num_classes, label_smoothing=label_smoothing)
  return mixed, out_mask, targets
