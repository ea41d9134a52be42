"""k-way mixing with Dirichlet weights, and per-sample augmentation before mixing.

MixUp blends two samples; its natural generalisation blends ``k`` samples with
weights drawn from a Dirichlet distribution (Dirichlet(α·1_k) is Beta(α, α)
for k = 2), as in big_vision's ``mixup`` with ``n > 2`` and the "k-mixup"
experiments of Zhang et al. 2018 (appendix). Output sample ``b`` is

    x'_b = Σ_i w[b, i] · x[indices[b, i]],      Σ_i w[b, i] = 1,

with slot 0 being the sample itself (``indices[:, 0] = arange(B)``), and the
labels are mixed with the same weights.

Partners (static ``pairing``; every choice keeps slot 0 = self):

* ``"roll"`` (default): slot ``i`` takes sample ``b - i`` (mod B), i.e. the
  batch rolled by ``i``. Slices only; for k = 2 it is MixUp's ``roll``.
* ``"flip"``: slot 1 takes ``B - 1 - b`` (MixUp's flip); slot ``i >= 2`` takes
  the flipped batch rolled by ``i - 1``. Slices only. A reflection always has
  fixed points, so for k >= 3 a few samples (e.g. sample 0) meet themselves
  in some slot; prefer ``roll`` for k >= 3.
* ``"permute"``: each slot ``i >= 1`` is an independent random permutation
  (gathers).

A partner that happens to be the sample itself (e.g. the middle sample of an
odd batch under ``flip``, or ``i ≡ 0 (mod B)`` when B < k) gives its weight to
slot 0, so ``lam = weights[:, 0]`` is always the exact own share.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmix._src.core import one_call
from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation

MULTI_MODES = ("batch", "elem")


@struct.dataclass
class MultiPlan(plan_lib.PlanLike):
  """A k-way mix: each output is a weighted sum of k samples (itself first).

  Works with :func:`jaxmix.apply` and :func:`jaxmix.mix_labels` like any plan.

  Attributes:
    weights: float32 `[B, k]`, rows sum to 1; column 0 is the sample's own
      weight.
    indices: int32 `[B, k]`, the source of each slot; column 0 is
      ``arange(B)``. For ``roll``/``flip`` they describe the static shifts
      (mixing uses slices, not these indices).
    pairing: ``"roll"``, ``"flip"`` or ``"permute"`` (static).
  """

  weights: jax.Array
  indices: jax.Array
  pairing: str = struct.field(pytree_node=False, default="roll")

  @property
  def lam(self) -> jax.Array:
    """float32 `[B]`: each sample's exact own share."""
    return self.weights[:, 0]

  @property
  def batch_size(self) -> int:
    return self.weights.shape[0]

  @property
  def k(self) -> int:
    return self.weights.shape[1]

  def _source(self, x: jax.Array, slot: int) -> jax.Array:
    """The batch seen through slot `slot` (slot 0 is `x` itself)."""
    return pairing_lib.take_slot(x, self.pairing, self.indices[:, slot], slot)

  def _mix(self, x: jax.Array) -> jax.Array:
    """``Σ_i w_i · source_i``; a slot of weight 0 is never read and a sample of own weight 1 is
    returned bit for bit, so prob = 0 is the identity and an inf elsewhere cannot become NaN."""
    shape = (-1,) + (1,) * (x.ndim - 1)
    own = self.weights[:, 0].reshape(shape)
    out = jnp.where(own == 0, 0.0, x * own)
    for slot in range(1, self.k):
      w = self.weights[:, slot].reshape(shape)
      out = jnp.where(w == 0, out, out + self._source(x, slot) * w)
    return jnp.where(own == 1, x, out)

  def mix_leaf(self, x: jax.Array, data_format: str) -> jax.Array:
    """Mixes one leaf of any rank (``data_format`` is irrelevant to a blend)."""
    del data_format
    return self._mix(x)

  def mix_labels(self, y: jax.Array) -> jax.Array:
    return self._mix(y)


def multi_indices(key: jax.Array, batch_size: int, k: int, pairing: str) -> jax.Array:
  """int32 `[B, k]`: the source of each slot (column 0 is the sample itself)."""
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  ar = np.arange(batch_size)
  if pairing == "roll":
    cols = [(ar - i) % batch_size for i in range(k)]
    return jnp.asarray(np.stack(cols, axis=1), jnp.int32)
  if pairing == "flip":
    flipped = batch_size - 1 - ar
    cols = [ar] + [flipped[(ar - (i - 1)) % batch_size] for i in range(1, k)]
    return jnp.asarray(np.stack(cols, axis=1), jnp.int32)
  keys = jax.random.split(key, k - 1)
  perms = [jax.random.permutation(kk, batch_size).astype(jnp.int32) for kk in keys]
  return jnp.stack([jnp.arange(batch_size, dtype=jnp.int32)] + perms, axis=1)


def _check_k(k: Any) -> int:
  if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 2:
    raise ValueError(f"k (the number of mixed samples) must be a static int >= 2, got {k!r}.")
  return int(k)


def sample_multimix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None = None,
  *,
  k: int = 3,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "roll",
  sort_weights: bool = False,
) -> MultiPlan:
  """Samples a k-way plan: weights ~ Dirichlet(α·1_k), k sources per sample.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: unused (the plan does not depend on it); accepted so that every
      sampler has the one signature ``sample_<m>(key, batch_size, spatial_shape=None, *, ...)``.
    k: number of mixed samples, >= 2 (static). k = 2 is MixUp.
    alpha: Dirichlet concentration (one value for every slot); 0 turns
      mixing off (weights (1, 0, ..., 0)), as do a negative value and NaN;
      +inf (any value above 1e20) gives weights 1/k, a tiny positive one puts
      all weight on one slot. Traced. 1.0 draws uniformly from
      the simplex; big_vision's configs use small values (0.1-0.2) for
      ImageNet, as MixUp does.
    prob: probability that a batch (``batch``) or sample (``elem``) is
      mixed at all. Traced.
    mode: ``"batch"``: one weight vector for the batch (big_vision);
      ``"elem"``: one per sample. Static.
    pairing: ``"roll"``, ``"flip"`` or ``"permute"``, see the module
      docstring. Static.
    sort_weights: sort each weight vector in decreasing order so that the
      sample itself keeps the largest weight (big_vision's choice). Static.

  Returns:
    A :class:`MultiPlan`.

  Example:
    >>> plan = jaxmix.sample_multimix(key, 8, k=3, alpha=1.0)
    >>> images = jaxmix.apply(plan, images)
    >>> targets = jaxmix.mix_labels(plan, labels, num_classes=10)
    >>> plan.weights.shape, targets.shape     # k weights per sample
    ((8, 3), (8, 10))
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  k = _check_k(k)
  validation.check_choice("mode", mode, MULTI_MODES)
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  validation.check_nonnegative("alpha", alpha)
  validation.check_unit_interval("prob", prob)
  n = 1 if mode == "batch" else batch_size
  k_idx, k_w, k_gate = jax.random.split(key, 3)
  on = jnp.asarray(alpha, jnp.float32) > 0
  weights = sampling.dirichlet(k_w, alpha, (n,), k)
  if sort_weights:
    weights = -jnp.sort(-weights, axis=-1)
  gate = (jax.random.uniform(k_gate, (n,)) < jnp.asarray(prob, jnp.float32)) & on
  off = jnp.zeros((k,), jnp.float32).at[0].set(1.0)
  weights = jnp.where(gate[:, None], weights, off)
  weights = jnp.broadcast_to(weights, (batch_size, k))
  indices = multi_indices(k_idx, batch_size, k, pairing)
  return merge_self_slots(MultiPlan(weights=weights, indices=indices, pairing=pairing))


def merge_self_slots(plan: MultiPlan) -> MultiPlan:
  """Moves the weight of any partner slot that is the sample itself into slot 0.

  Afterwards ``plan.lam`` is the exact own share, and a sample whose every
  partner is itself has weight exactly 1 on itself.
  """
  own = plan.indices == jnp.arange(plan.batch_size, dtype=plan.indices.dtype)[:, None]
  own = own.at[:, 0].set(False)
  moved = jnp.sum(jnp.where(own, plan.weights, 0.0), axis=1)
  w0 = jnp.where(jnp.all(own[:, 1:], axis=1), 1.0, plan.weights[:, 0] + moved)
  weights = jnp.where(own, 0.0, plan.weights).at[:, 0].set(w0)
  return plan.replace(weights=weights)


def multimix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  k: int = 3,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "roll",
  sort_weights: bool = False,
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
) -> tuple[Any, jax.Array | None]:
  """k-way MixUp: ``x' = Σ_i w_i x_{π_i}``, ``y' = Σ_i w_i y_{π_i}``, w ~ Dirichlet(α·1_k).

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays with a shared batch axis.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    k, alpha, prob, mode, pairing, sort_weights: as in
      :func:`sample_multimix`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: unused by a blend; accepted for a uniform signature.

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> images, targets = jaxmix.multimix(key, images, labels, k=3, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  return one_call.mix(
    sample_multimix,
    key,
    inputs,
    labels,
    spatial=False,
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    k=k,
    alpha=alpha,
    prob=prob,
    mode=mode,
    pairing=pairing,
    sort_weights=sort_weights,
  )
