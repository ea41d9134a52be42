"""Loss mixing: ``w·loss(y_a) + (1 − w)·loss(y_b)`` from sparse labels, with no dense soft targets.

Zhang et al. 2018 ("mixup: Beyond Empirical Risk Minimization", the official
``mixup-cifar10`` code's ``mixup_criterion``) train on
``λ·criterion(pred, y_a) + (1 − λ)·criterion(pred, y_b)`` instead of a soft
target. For class ids this needs only the two ids per sample, which matters
when the dense target would be huge: per-token labels ``[B, T]`` over a
vocabulary of V (a ``[B, T, V]`` target) or per-pixel maps ``[B, H, W]`` over K
classes (``[B, H, W, K]``). The weight follows the plan at the labels'
resolution:

* labels ``[B]`` (or float ``[B, K]``): ``plan.lam``, each sample's own share;
* per-token labels ``[B, T]`` (or float ``[B, T, K]``): a
  :class:`jaxmix.sequence.SequencePlan`'s ``token_weight`` (padding never
  counts as content), or λ for a plan that blends whole samples (MixUp);
* per-pixel maps ``[B, H, W]`` (or float ``[B, H, W, K]``): ``plan.own_weight()``,
  the own weight of each pixel (0 where a CutMix box was pasted, λ under MixUp).

For a loss that is linear in its target — softmax cross-entropy, sigmoid
binary cross-entropy (with or without ``pos_weight``) — loss mixing equals
training on the mixed soft target exactly. It differs for losses that are not
linear in the target: timm's thresholded BCE
(``BinaryCrossEntropy(target_threshold=t)``, :func:`jaxmix.losses.threshold_targets`),
focal loss, or any loss that sharpens its target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation
from jaxmix._src.families import sequence as sequence_lib

REDUCTIONS = ("mean", "sum", "none")


def _check_ignore_index(ignore_index: Any, num_classes: int | None) -> int | None:
  if ignore_index is None:
    return None
  if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
    raise TypeError(f"ignore_index must be an int or None (static), got {ignore_index!r}.")
  if num_classes is not None and 0 <= ignore_index < num_classes:
    raise ValueError(
      f"ignore_index={ignore_index} is a valid class id for num_classes={num_classes}, so labels of that "
      "class would be ignored; use an id outside [0, num_classes), e.g. -100 or 255."
    )
  return int(ignore_index)


def _positions(labels: Any) -> tuple[tuple[int, ...], bool]:
  """The shape the weight lives on (`labels`' shape for ids, all but the class axis for floats) and
  whether the labels are integer ids."""
  shape = np.shape(labels)
  dtype = jnp.result_type(labels)
  if (
    dtype == jnp.bool_
    or jnp.issubdtype(dtype, jnp.complexfloating)
    or not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating))
  ):
    raise TypeError(f"labels must be integer class ids or float targets, got dtype {dtype}.")
  is_int = jnp.issubdtype(dtype, jnp.integer)
  positions = shape if is_int else shape[:-1]
  if len(positions) not in (1, 2, 3) or (not is_int and len(shape) < 2):
    raise ValueError(
      "labels must be int ids [B], [B, T] (per token) or [B, H, W] (per pixel), or float targets [B, K], "
      f"[B, T, K] or [B, H, W, K]; got shape {shape} and dtype {dtype}."
    )
  return positions, is_int


def _weight(plan: Any, positions: tuple[int, ...]) -> jax.Array:
  """The own weight `[*positions]` of each labelled position (see the module docstring)."""
  b = positions[0]
  if b != plan.batch_size:
    raise ValueError(f"labels have batch size {b} but the plan was sampled for {plan.batch_size}.")
  if isinstance(plan, sequence_lib.SequencePlan):
    if len(positions) == 1:
      return plan.lam
    if len(positions) == 2 and positions[1] == plan.length:
      return plan.token_weight
    raise ValueError(
      f"a SequencePlan of length T = {plan.length} weighs labels [B] or per-token labels [B, T], got "
      f"labels over positions {positions}."
    )
  try:
    own = plan.own_weight()
  except TypeError as e:
    raise TypeError(
      f"mixed_loss needs a two-source plan (one partner per sample, e.g. MixUp, CutMix, FMix, ResizeMix or a "
      f"sequence plan): {e} For Manifold Mixup pass its inner plan, `mix.plan`; for k-way or Mosaic "
      "plans mix the targets with jaxmix.mix_labels instead."
    ) from None
  if len(positions) == 1:
    return plan.lam
  if len(positions) == 2:
    if own.shape[1:] != (1, 1):
      raise ValueError(
        "per-token labels [B, T] need a plan that blends whole samples (MixUp) or a "
        f"jaxmix.sequence plan; this {type(plan).__name__} has per-pixel weights of shape {own.shape}."
      )
    return jnp.broadcast_to(plan.lam[:, None], positions)
  if own.shape[1:] != (1, 1) and own.shape[1:] != positions[1:]:
    raise ValueError(
      f"labels have spatial shape {positions[1:]} but the plan was sampled for {own.shape[1:]}."
    )
  return jnp.broadcast_to(own, positions).astype(jnp.float32)


def label_pair(plan: Any, labels: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The two labels of every mixed sample and the weight of the first: ``(y_a, y_b, w)``.

  ``y_a`` are the labels as given, ``y_b`` each sample's partner's labels (a
  slice for flip/roll pairing, a gather for permute) and ``w`` the own weight
  at the labels' resolution (see :mod:`jaxmix.losses`), so any loss can be
  mixed as ``w·loss(y_a) + (1 − w)·loss(y_b)`` (Zhang et al. 2018,
  ``mixup_criterion``). Nothing of the labels' size times the number of
  classes is built.

  Args:
    plan: the two-source plan that mixed the inputs (any ``sample_*`` plan with
      one partner per sample, or a :class:`jaxmix.sequence.SequencePlan`).
    labels: int ids ``[B]``, ``[B, T]`` or ``[B, H, W]``, or float targets
      ``[B, K]``, ``[B, T, K]`` or ``[B, H, W, K]``.

  Returns:
    ``(y_a, y_b, w)``: `labels`, the partners' labels (same shape and dtype) and
    float32 ``w`` of shape ``[B]``, ``[B, T]`` or ``[B, H, W]``.

  Example:
    >>> plan = jaxmix.sample_cutmix(key, 8, (32, 32))
    >>> y_a, y_b, w = jaxmix.losses.label_pair(plan, seg)
    >>> y_b.shape, w.shape, bool(jnp.allclose(w.mean((1, 2)), plan.lam))
    ((8, 32, 32), (8, 32, 32), True)
  """
  plan_lib.check_plan(plan)
  labels = validation.numbers_as_array(labels)
  validation.check_array("labels", labels, expected="int ids or float targets with a batch axis")
  positions, _ = _positions(labels)
  w = _weight(plan, positions)
  labels = jnp.asarray(labels)
  partner = pairing_lib.take_partner(labels, plan.pairing, plan.index)
  return labels, partner, w


def mixed_loss(
  loss_fn: Callable[[Any, jax.Array], jax.Array],
  logits: Any,
  plan: Any,
  labels: jax.typing.ArrayLike,
  *,
  ignore_index: int | None = None,
  num_classes: int | None = None,
  where: jax.typing.ArrayLike | None = None,
  reduction: str = "mean",
) -> jax.Array:
  """The mixed loss ``w·loss_fn(logits, y_a) + (1 − w)·loss_fn(logits, y_b)``, reduced.

  The loss-mixing form of Zhang et al. 2018 ("mixup: Beyond Empirical Risk
  Minimization"; ``mixup_criterion`` in the official ``mixup-cifar10`` code),
  with the weight at the labels' resolution: per sample, per token
  (:class:`jaxmix.sequence.SequencePlan`) or per pixel (``plan.own_weight()``),
  from :func:`label_pair`. Integer labels stay sparse: with
  ``optax.softmax_cross_entropy_with_integer_labels`` no ``[B, T, V]`` or
  ``[B, H, W, K]`` target is ever built, and under ``jit`` XLA shares the
  log-normaliser of the two calls.

  For softmax cross-entropy and sigmoid BCE this equals training on the mixed
  soft targets (:func:`jaxmix.mix_labels`, :func:`jaxmix.segmentation.mix_label_maps`),
  since both are linear in the target. For BCE with timm's target threshold
  (:func:`jaxmix.losses.threshold_targets`), focal loss or any loss not linear in
  its target it differs: the threshold or the focal term then sees each
  source's own 0/1 labels instead of the mixed target.

  With ``ignore_index``, a position whose own label is ignored adds nothing
  from that source, and the mean divides by the labelled weight
  ``Σ w·[y_a valid] + (1 − w)·[y_b valid]``, so a position ignored in both
  sources is left out and an unmixed batch gives the usual mean over labelled
  positions (torch's ``ignore_index``); this is the loss of
  ``mix_label_maps(..., soft=True, ignore_index=...)`` targets, each pixel
  weighted by its mass. A mean over nothing is 0.

  Args:
    loss_fn: ``loss_fn(logits, labels) -> losses`` for labels of the shape of
      `labels` (e.g. ``optax.softmax_cross_entropy_with_integer_labels``, or
      ``optax.sigmoid_binary_cross_entropy`` for float multi-hot targets); the
      losses' leading axes are the labels' positions (``[B]``, ``[B, T]`` or
      ``[B, H, W]``), trailing axes (per class) are allowed.
    logits: the model's output, passed to `loss_fn` as it is.
    plan: the two-source plan that mixed the inputs (for Manifold Mixup, ``mix.plan``).
    labels: the unmixed labels: int ids ``[B]``, ``[B, T]`` or ``[B, H, W]``, or
      float targets ``[B, K]``, ``[B, T, K]`` or ``[B, H, W, K]``.
    ignore_index: the id of unlabelled positions (e.g. 255 or -100), int
      labels only (static); `loss_fn` sees class 0 there.
    num_classes: K (static), optional: when given, an `ignore_index` in
      ``[0, K)`` is a ValueError, since it would ignore a real class.
    where: optional bool mask of the positions' shape, True where a position
      counts (e.g. a :class:`jaxmix.sequence.SequencePlan`'s ``mask``).
    reduction: ``"mean"`` (see above), ``"sum"`` or ``"none"`` (the mixed
      per-position losses, 0 where nothing counts).

  Returns:
    A float32 scalar, or the mixed losses with `loss_fn`'s output shape for
    ``reduction="none"``.

  Example:
    >>> plan = jaxmix.sample_cutmix(key, 8, (32, 32))
    >>> images = jaxmix.apply(plan, images)
    >>> logits = jnp.zeros((8, 32, 32, 21))                  # a stand-in segmentation model's output
    >>> loss = jaxmix.losses.mixed_loss(
    ...     optax.softmax_cross_entropy_with_integer_labels, logits, plan, seg, ignore_index=255)
    >>> round(float(loss), 4) == round(float(np.log(21)), 4)  # uniform logits: log K whatever the mix
    True
  """
  if not callable(loss_fn):
    raise TypeError(f"loss_fn must be a callable loss_fn(logits, labels), got {type(loss_fn).__name__}.")
  validation.check_choice("reduction", reduction, REDUCTIONS)
  num_classes = validation.check_num_classes(num_classes)
  ignore_index = _check_ignore_index(ignore_index, num_classes)
  y_a, y_b, w = label_pair(plan, labels)
  is_int = jnp.issubdtype(y_a.dtype, jnp.integer)
  if ignore_index is not None and not is_int:
    raise ValueError(f"ignore_index applies to integer labels, got float labels of shape {y_a.shape}.")
  if is_int and num_classes is not None:
    values = validation.concrete_values(labels)  # the given ids: y_a is a tracer under jit
    if values is not None:
      kept = values if ignore_index is None else values[values != ignore_index]
      validation.check_class_ids("labels", kept, num_classes)
  valid_a = valid_b = jnp.ones(w.shape, bool)
  if ignore_index is not None:
    valid_a, valid_b = y_a != ignore_index, y_b != ignore_index
    y_a, y_b = jnp.where(valid_a, y_a, 0), jnp.where(valid_b, y_b, 0)
  if where is not None:
    validation.check_array("where", where, expected=f"a mask of the labels' positions {w.shape}")
    if np.shape(where) != w.shape:
      raise ValueError(
        f"where must be a mask of the labels' positions {w.shape}, got shape {np.shape(where)}."
      )
    keep = jnp.asarray(where).astype(bool)
    valid_a, valid_b = valid_a & keep, valid_b & keep
  loss_a, loss_b = loss_fn(logits, y_a), loss_fn(logits, y_b)
  if np.shape(loss_a)[: w.ndim] != w.shape:
    raise ValueError(
      f"loss_fn must return losses whose leading axes are the labels' positions {w.shape}, got shape "
      f"{np.shape(loss_a)}."
    )
  extra = (1,) * (jnp.ndim(loss_a) - w.ndim)
  wa = jnp.where(valid_a, w, 0.0).reshape(w.shape + extra)
  wb = jnp.where(valid_b, 1.0 - w, 0.0).reshape(w.shape + extra)
  # A source with weight 0 is never read, so a non-finite loss there (e.g. an out-of-range id) stays out.
  mixed = jnp.where(wa > 0, wa * loss_a, 0.0) + jnp.where(wb > 0, wb * loss_b, 0.0)
  mixed = mixed.astype(jnp.float32)
  if reduction == "none":
    return mixed
  total = jnp.sum(mixed)
  if reduction == "sum":
    return total
  mass = jnp.sum(jnp.broadcast_to(wa + wb, mixed.shape))
  return jnp.where(mass > 0, total / jnp.where(mass > 0, mass, 1.0), 0.0)
