"""Label rules of training recipes: MixMatch's larger share, RegMixup, Remix.

* :func:`keep_larger_share` — MixMatch (Berthelot et al. 2019, "MixMatch: A
  Holistic Approach to Semi-Supervised Learning") uses λ' = max(λ, 1 − λ)
  so the mixed sample stays closer to the original. Here it is a plan
  transform, valid for every two-source plan (blend, region or mask) and for
  k-way plans; :func:`with_plan_transform` turns any ``sample_*`` function
  into a one-call method with the transform applied, so the rule is an
  option on every method without touching it.
* :func:`regmixup` — RegMixup (Pinto et al. 2022, "Using Mixup as a
  Regularizer Can Surprisingly Improve Accuracy and Out-of-Distribution
  Robustness", NeurIPS) trains on the clean batch *and* its MixUp with a
  large α, returning ``[clean; mixed]``.
* :func:`remix` — Remix (Chou et al. 2020, "Remix: Rebalanced Mixup", ECCV
  workshops) moves the label weight to the minority class.

Multi-label (multi-hot) targets need no special rule: pass float ``[B, K]``
multi-hot rows to any method; each output row is ``λ·y_i + (1 − λ)·y_j``,
the right target for a per-class sigmoid loss such as
``optax.sigmoid_binary_cross_entropy``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import labels as labels_lib
from jaxmix._src.core import one_call
from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation
from jaxmix._src.methods import multiway
from jaxmix._src.methods import registry


def keep_larger_share(plan: Any) -> Any:
  """MixMatch's rule: every sample keeps the larger share of its own content.

  For samples with λ < 0.5 the roles of sample and partner swap, so the
  reported ``lam`` becomes max(λ, 1 − λ) and stays the exact own share.

  * pure blend :class:`jaxmix.Plan` (no box, no mask): ``blend' = 1 − blend``;
  * box/mask :class:`jaxmix.Plan`: the own-weight map (box and mask
    combined, :meth:`Plan.own_weight`) is replaced by its complement, giving
    a plan with ``mask`` `[B, H, W]`, ``blend = 1`` and no box;
  * :class:`jaxmix.MultiPlan`: slot 0 swaps weights with the heaviest slot.

  Args:
    plan: a plan from any ``sample_*`` function.

  Returns:
    A plan of the same kind (a mask plan for box plans).

  Example:
    >>> plan = jaxmix.keep_larger_share(jaxmix.sample_cutmix(key, 8, (32, 32)))
    >>> images, targets = jaxmix.apply(plan, images), jaxmix.mix_labels(plan, labels, num_classes=10)
    >>> bool((plan.lam >= 0.5).all())
    True
  """
  if isinstance(plan, multiway.MultiPlan):
    w = plan.weights
    top = jnp.argmax(w, axis=1)
    slot = jnp.arange(plan.k)[None, :]
    w0 = w[:, :1]
    wmax = jnp.max(w, axis=1, keepdims=True)
    swapped = jnp.where(slot == 0, wmax, jnp.where(slot == top[:, None], w0, w))
    return plan.replace(weights=swapped)
  if not isinstance(plan, plan_lib.Plan):
    raise TypeError(
      f"keep_larger_share works on jaxmix.Plan and jaxmix.MultiPlan, got {type(plan).__name__}."
    )
  flip = plan.lam < 0.5
  lam = jnp.where(flip, 1.0 - plan.lam, plan.lam)
  if plan.region is None and plan.mask is None:
    return plan.replace(lam=lam, blend=jnp.where(flip, 1.0 - plan.blend, plan.blend))
  own = plan.own_weight()
  mask = jnp.where(flip[:, None, None], 1.0 - own, own)
  return plan.replace(lam=lam, blend=jnp.ones_like(plan.blend), region=None, mask=mask)


def with_plan_transform(
  sample_fn: Callable[..., Any], transform: Callable[[Any], Any]
) -> Callable[..., tuple[Any, jax.Array | None]]:
  """A one-call method from ``sample_fn`` with ``transform`` applied to each plan.

  The returned function has the usual contract ``fn(key, inputs, labels=None,
  *, num_classes=None, label_smoothing=0.0, data_format="NHWC", **options)``;
  ``options`` go to `sample_fn`, which is called with the one sampler signature
  ``sample_fn(key, batch_size, spatial_shape, **options)``: the batch size and,
  for image batches (rank 3 or 4), their (H, W) are read from `inputs`
  (``spatial_shape`` is None for other batches).

  Args:
    sample_fn: any ``jaxmix.sample_*`` function (or one with the same signature).
    transform: ``plan -> plan``, e.g. :func:`keep_larger_share`.

  Returns:
    The one-call function.

  Example:
    >>> mixmatch_cutmix = jaxmix.with_plan_transform(jaxmix.sample_cutmix, jaxmix.keep_larger_share)
    >>> images, targets = mixmatch_cutmix(key, images, labels, alpha=0.75, num_classes=10)
    >>> bool((targets.max(-1) >= 0.5).all())          # each sample keeps the larger share
    True
  """

  def method(
    key: jax.Array,
    inputs: Any,
    labels: jax.typing.ArrayLike | None = None,
    *,
    num_classes: int | None = None,
    label_smoothing: jax.typing.ArrayLike = 0.0,
    data_format: str = "NHWC",
    **options: Any,
  ) -> tuple[Any, jax.Array | None]:
    return one_call.mix(
      sample_fn,
      key,
      inputs,
      labels,
      spatial=None,
      transform=transform,
      num_classes=num_classes,
      label_smoothing=label_smoothing,
      data_format=data_format,
      **options,
    )

  name = getattr(sample_fn, "__name__", "sample").removeprefix("sample_")
  method.__name__ = method.__qualname__ = f"{name}_{getattr(transform, '__name__', 'transformed')}"
  method.__doc__ = (
    f"{name} as a one-call method, each plan passed through {getattr(transform, '__name__', transform)}."
  )
  return method


def regmixup(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  alpha: jax.typing.ArrayLike = 10.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
) -> tuple[Any, jax.Array | None]:
  """RegMixup: the clean batch followed by its MixUp, ``[clean; mixed]`` (2B rows).

  Pinto et al. 2022 add the MixUp loss as a regulariser to the clean loss;
  concatenating both halves and averaging one loss over 2B rows gives the
  paper's objective with weight 1 (a different weight: take the halves
  apart). The paper draws λ ~ Beta(α, α) with a large α (10 or 20; 10 is
  the default here), so mixes stay near 50/50.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays with a shared batch axis.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    alpha: Beta concentration, default 10 (the paper uses 10-20). Traced.
      Edges as in :func:`jaxmix.sample_mixup` (≤ 0 or NaN: the mixed half
      equals the clean one; +inf: λ = 0.5).
    prob, mode, pairing: as in :func:`jaxmix.sample_mixup`.
    num_classes: K for integer labels (static).
    label_smoothing: applied to both halves. Traced.
    data_format: unused by a blend.

  Returns:
    ``(inputs_2b, labels_2b)``: every leaf `[2B, ...]` (rows ``:B`` the clean
    inputs exactly, rows ``B:`` the mixed ones) and float32 `[2B, K]`.

  Example:
    >>> x2, y2 = jaxmix.regmixup(key, images, labels, num_classes=10)
    >>> x2.shape, y2.shape                            # the clean batch, then the mixed one
    ((16, 32, 32, 3), (16, 10))
    >>> model = lambda x: x.mean((1, 2)) @ jnp.ones((3, 10))   # a stand-in for the network
    >>> loss = optax.softmax_cross_entropy(model(x2), y2).mean()
  """
  mix_mixup = registry.SAMPLERS["mixup"].mix
  assert mix_mixup is not None  # mixup is registered with its one-call form
  mixed, targets = mix_mixup(
    key,
    inputs,
    labels,
    alpha=alpha,
    prob=prob,
    mode=mode,
    pairing=pairing,
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
  )
  out = jax.tree_util.tree_map(lambda x, m: jnp.concatenate([jnp.asarray(x), m], axis=0), inputs, mixed)
  if labels is None:
    return out, None
  clean = labels_lib.soft_labels(
    labels, validation.batch_size_of(inputs), num_classes=num_classes, smoothing=label_smoothing
  )
  return out, jnp.concatenate([clean, targets], axis=0)


def remix_lam(
  plan: plan_lib.Plan,
  labels: jax.typing.ArrayLike,
  class_counts: jax.typing.ArrayLike,
  *,
  kappa: jax.typing.ArrayLike = 3.0,
  tau: jax.typing.ArrayLike = 0.5,
) -> plan_lib.Plan:
  """Remix's label weights: a plan whose ``lam`` is the rebalanced label λ.

  With ``x' = λ x_i + (1 − λ) x_j`` (i the sample, j its partner, λ the
  plan's own share), Chou et al. 2020 set the label weight of ``y_i`` to::

      0   if n_i / n_j >= κ   and λ < τ       (i is the majority class: all to j)
      1   if n_i / n_j <= 1/κ and 1 − λ < τ   (i is the minority class: all to i)
      λ   otherwise

  with n the training-set counts of the two classes; κ = 3, τ = 0.5 are the
  paper's defaults. Only the label weight changes; inputs mix as the plan
  says, so the returned ``lam`` is no longer the content share — by design.

  Args:
    plan: a two-source :class:`jaxmix.Plan`.
    labels: int class ids `[B]`, or float `[B, K]` (the count of a soft row
      is its expected count ``y · class_counts``).
    class_counts: `[K]` number of training samples per class (may be traced).
    kappa: imbalance ratio threshold κ. Traced.
    tau: share threshold τ in [0, 1]. Traced.

  Returns:
    The plan with Remix label weights in ``lam``.
  """
  if not isinstance(plan, plan_lib.Plan):
    raise TypeError(f"remix_lam needs a two-source jaxmix.Plan, got {type(plan).__name__}.")
  validation.check_unit_interval("tau", tau)
  counts = jnp.asarray(class_counts, jnp.float32)
  if counts.ndim != 1:
    raise ValueError(f"class_counts must be a vector [K], got shape {counts.shape}.")
  labels = validation.numbers_as_array(labels)
  shape = np.shape(labels)
  if len(shape) not in (1, 2):
    raise ValueError(
      f"labels must be int class ids [B] or float targets [B, K], got rank {len(shape)} with shape {shape}."
    )
  if shape[0] != plan.batch_size:
    raise ValueError(f"labels must have batch size {plan.batch_size}, got shape {shape}.")
  if len(shape) == 1:
    dtype = jnp.result_type(labels)
    if dtype == jnp.bool_ or not jnp.issubdtype(dtype, jnp.integer):
      raise TypeError(f"labels [B] must be integer class ids, got {dtype}.")
    # An id outside [0, K) would read another class's count (a gather clamps, -1 wraps).
    validation.check_class_ids("labels", labels, counts.shape[0])
    n_own = counts[jnp.asarray(labels)]
  else:
    if shape[1] != counts.shape[0]:
      raise ValueError(f"labels have {shape[1]} classes but class_counts has {counts.shape[0]} entries.")
    n_own = jnp.asarray(labels, jnp.float32) @ counts
  n_partner = pairing_lib.take_partner(n_own, plan.pairing, plan.index)
  kappa = jnp.asarray(kappa, jnp.float32)
  tau = jnp.asarray(tau, jnp.float32)
  lam = plan.lam
  # Compare n_i >= κ n_j rather than a ratio, so a zero count cannot divide.
  majority = (n_own >= kappa * n_partner) & (lam < tau)
  minority = (kappa * n_own <= n_partner) & ((1.0 - lam) < tau)
  label_lam = jnp.where(majority, 0.0, jnp.where(minority, 1.0, lam))
  return plan.replace(lam=label_lam)


REMIX_METHODS = ("mixup", "cutmix", "mixup_cutmix")


def remix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike,
  *,
  class_counts: jax.typing.ArrayLike,
  kappa: jax.typing.ArrayLike = 3.0,
  tau: jax.typing.ArrayLike = 0.5,
  method: str = "mixup",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
  **method_kwargs: Any,
) -> tuple[Any, jax.Array]:
  """Remix: MixUp/CutMix inputs, labels rebalanced towards the minority class.

  Chou et al. 2020; see :func:`remix_lam` for the rule (κ = 3, τ = 0.5).
  The paper applies it to MixUp, CutMix and their combination.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays with a shared batch axis.
    labels: int ids `[B]` (with `num_classes`) or float `[B, K]`.
    class_counts: `[K]` training samples per class.
    kappa, tau: Remix thresholds. Traced.
    method: ``"mixup"``, ``"cutmix"`` or ``"mixup_cutmix"``.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` or ``"NCHW"``.
    **method_kwargs: options of the sampler (``alpha``, ``mode``, ...).

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> counts = jnp.array([5000] * 5 + [50] * 5)     # a long-tailed training set, 10 classes
    >>> images, targets = jaxmix.remix(key, images, labels, class_counts=counts, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  validation.check_choice("method", method, REMIX_METHODS)
  spec = registry.lookup(method, argument="method", two_source=True)
  mixed, targets = one_call.mix(
    spec.sample,
    key,
    inputs,
    labels,
    spatial=spec.spatial,
    transform=lambda plan: remix_lam(plan, labels, class_counts, kappa=kappa, tau=tau),
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    **method_kwargs,
  )
  assert targets is not None  # labels are required here, so mix returns their soft labels
  return mixed, targets
