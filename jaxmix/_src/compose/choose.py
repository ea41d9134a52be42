"""Choosing among mixing methods under ``jit``, one compiled program for all weights.

``choose`` picks one of several plan samplers at random — once per batch, or
once per sample in ``elem`` mode — with traced weights, so a schedule that
changes them never recompiles. timm's MixUp/CutMix switch is the two-method
case: ``methods=(mixup, cutmix), weights=(1 - switch_prob, switch_prob)``.

* ``batch``: ``lax.switch`` runs only the chosen sampler. Every branch returns
  the same pytree: a :class:`Plan` with the union of the candidates' fields
  (a region when any candidate has one — empty for the others; a mask when any
  has one — all ones for the others). MixUp and CutMix have no mask, so
  choosing between them keeps the cheap blend-and-paste path.
* ``elem``: every candidate plan is sampled and each sample takes its
  fields (λ, partner, blend, region, mask) from its chosen method.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxmix._src.core import one_call
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation
from jaxmix._src.methods import registry

CHOOSE_MODES = ("batch", "elem")


def _resolve(i: int, method: str | Callable[..., Any]) -> Callable[..., Any]:
  """A sampler: a registered name (two-source methods only) or a user's callable."""
  if isinstance(method, str):
    spec = registry.lookup(method, argument=f"methods[{i}]", two_source=True)
    if spec.requires:
      raise ValueError(
        f"methods[{i}]: {method!r} needs {', '.join(spec.requires)}; pass "
        f"functools.partial(jaxmix.{spec.sample.__name__}, {spec.requires[0]}=...) instead of its name."
      )
    return spec.sample
  if not callable(method):
    raise TypeError(f"methods[{i}] must be a method name or a plan sampler, got {type(method).__name__}.")
  return method


def _call(
  i: int,
  fn: Callable[..., Any],
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None,
  mode: str,
  pairing: str,
) -> plan_lib.Plan:
  """Calls a sampler with the one sampler signature and choose's mode and pairing."""
  plan = fn(key, batch_size, spatial_shape, mode=mode, pairing=pairing)
  if not isinstance(plan, plan_lib.Plan):
    raise TypeError(
      f"methods[{i}]: {getattr(fn, '__name__', fn)!r} returned {type(plan).__name__}; choose needs "
      "samplers that return a two-source jaxmix.Plan."
    )
  return plan


def _check_weights(weights: Any, num: int) -> jax.Array:
  if weights is None:
    return jnp.ones((num,), jnp.float32)
  if isinstance(weights, (list, tuple)) and all(validation.is_static_number(w) for w in weights):
    if len(weights) != num or any(w < 0 for w in weights) or sum(weights) <= 0:
      raise ValueError(
        f"weights must be {num} non-negative numbers (one per method) with a positive sum, got {weights!r}."
      )
  weights = jnp.asarray(weights, jnp.float32)
  if weights.shape != (num,):
    raise ValueError(f"weights must have shape ({num},), one per method, got shape {weights.shape}.")
  return weights


def _common(
  plan: plan_lib.Plan,
  *,
  with_region: bool,
  mask_lead: int | None,
  spatial_shape: tuple[int, int] | None,
  pairing: str,
  selects_pixels: bool,
) -> plan_lib.Plan:
  """The candidate as a Plan with the union of fields (empty region, all-ones mask where absent);
  `selects_pixels` only when every candidate selects, so all branches share one structure."""
  b = plan.batch_size
  region = None
  if with_region:
    region = jnp.zeros((b, 4), jnp.int32) if plan.region is None else plan.region.astype(jnp.int32)
  mask = None
  if mask_lead is not None:
    assert spatial_shape is not None  # choose refuses regions or masks without spatial_shape
    full = (mask_lead,) + tuple(spatial_shape)
    mask = jnp.ones(full, jnp.float32) if plan.mask is None else jnp.broadcast_to(plan.mask, full)
    mask = mask.astype(jnp.float32)
  return plan_lib.Plan(
    lam=plan.lam.astype(jnp.float32),
    index=plan.index.astype(jnp.int32),
    blend=plan.blend.astype(jnp.float32),
    region=region,
    mask=mask,
    pairing=pairing,
    spatial_shape=spatial_shape if (with_region or mask_lead is not None) else None,
    selects_pixels=selects_pixels,
  )


def sample_choose(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None = None,
  *,
  methods: Sequence[str | Callable[..., Any]],
  weights: jax.typing.ArrayLike | None = None,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
) -> plan_lib.Plan:
  """Samples a plan from one of `methods`, chosen with probabilities ∝ `weights`.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) (static); None only when no method needs it.
    methods: a static sequence of method names (``"mixup"``, ``"cutmix"``,
      ``"fmix"``, … — any registered method whose plans are two-source
      :class:`Plan`, see ``jaxmix.SAMPLERS``) or plan samplers with the one
      sampler signature, called as ``fn(key, batch_size, spatial_shape,
      mode=..., pairing=...)``, e.g. ``functools.partial(jaxmix.sample_cutmix,
      alpha=1.0)``. Each must return a :class:`Plan`; choose sets their
      ``mode`` and ``pairing``.
    weights: one non-negative weight per method (normalised here); None
      means uniform. Traced: changing them does not recompile.
    prob: probability that a batch (or sample) is mixed at all, on top of
      each method's own. Traced.
    mode: ``"batch"`` (one method for the batch, ``lax.switch``) or
      ``"elem"`` (one per sample; every candidate is sampled). Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``, passed to every
      method. Static.

  Returns:
    A :class:`Plan`. Its ``region`` is present when any method pastes one (empty
    for the others), its ``mask`` when any method has masks (all ones for
    the others).

  Example:
    >>> mix = functools.partial(jaxmix.sample_mixup, alpha=0.8)
    >>> cut = functools.partial(jaxmix.sample_cutmix, alpha=1.0)
    >>> plan = jaxmix.sample_choose(key, 8, (32, 32), methods=(mix, cut, "fmix"),
    ...                             weights=jnp.array([0.4, 0.4, 0.2]))
    >>> jaxmix.apply(plan, images).shape
    (8, 32, 32, 3)
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_choice("mode", mode, CHOOSE_MODES)
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  validation.check_unit_interval("prob", prob)
  if isinstance(methods, (str, bytes)) or not isinstance(methods, Sequence) or len(methods) == 0:
    raise ValueError(f"methods must be a non-empty list or tuple of methods, got {methods!r}.")
  if spatial_shape is not None:
    spatial_shape = validation.check_spatial_shape(spatial_shape)
  fns = [_resolve(i, m) for i, m in enumerate(methods)]
  weights = _check_weights(weights, len(fns))
  k_choice, k_methods, k_gate = jax.random.split(key, 3)

  def candidate(i: int, k: jax.Array) -> plan_lib.Plan:
    return _call(i, fns[i], k, batch_size, spatial_shape, mode, pairing)

  shapes = [jax.eval_shape(lambda k, i=i: candidate(i, k), k_methods) for i in range(len(fns))]
  for i, s in enumerate(shapes):
    if s.pairing != pairing:
      raise ValueError(f"methods[{i}] returned pairing {s.pairing!r}, but choose uses {pairing!r}.")
  with_region = any(s.region is not None for s in shapes)
  masks = [s.mask for s in shapes if s.mask is not None]
  mask_lead = None
  if masks:
    mask_lead = 1 if mode == "batch" and all(m.shape[0] == 1 for m in masks) else batch_size
  if (with_region or masks) and spatial_shape is None:
    raise ValueError("spatial_shape (H, W) is required: a chosen method has regions or masks.")

  selects = all(s.selects_pixels for s in shapes)

  def common(plan: plan_lib.Plan) -> plan_lib.Plan:
    return _common(
      plan,
      with_region=with_region,
      mask_lead=mask_lead,
      spatial_shape=spatial_shape,
      pairing=pairing,
      selects_pixels=selects,
    )

  n = sampling.num_draws(mode, batch_size)
  logits = jnp.where(weights > 0, jnp.log(jnp.where(weights > 0, weights, 1.0)), -jnp.inf)
  choice = jax.random.categorical(k_choice, logits, shape=(n,))
  if mode == "batch":
    branches = [lambda k, i=i: common(candidate(i, k)) for i in range(len(fns))]
    plan = jax.lax.switch(choice[0], branches, k_methods)
    on = jnp.broadcast_to(sampling.gate(k_gate, prob, (1,)), (batch_size,))
  else:
    keys = jax.random.split(k_methods, len(fns))
    plans = [common(candidate(i, keys[i])) for i in range(len(fns))]

    # `get` reads a field every candidate has after `common` (region and mask only when present).
    def select(get: Callable[[plan_lib.Plan], Any]) -> jax.Array:
      out = get(plans[0])
      for i in range(1, len(plans)):
        picked = (choice == i).reshape((-1,) + (1,) * (out.ndim - 1))
        out = jnp.where(picked, get(plans[i]), out)
      return out

    plan = plans[0].replace(
      lam=select(lambda p: p.lam),
      index=select(lambda p: p.index),
      blend=select(lambda p: p.blend),
      region=select(lambda p: p.region) if with_region else None,
      mask=select(lambda p: p.mask) if mask_lead is not None else None,
    )
    on = sampling.gate(k_gate, prob, (batch_size,))
  plan = plan.replace(lam=jnp.where(on, plan.lam, 1.0), blend=jnp.where(on, plan.blend, 1.0))
  if plan.region is not None:
    plan = plan.replace(region=jnp.where(on[:, None], plan.region, 0))
  if plan.mask is not None:
    lead_on = on[:1] if plan.mask.shape[0] == 1 else on
    plan = plan.replace(mask=jnp.where(lead_on[:, None, None], plan.mask, 1.0))
  return plan


def choose(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  methods: Sequence[str | Callable[..., Any]],
  weights: jax.typing.ArrayLike | None = None,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
) -> tuple[Any, jax.Array | None]:
  """Mixes with one of `methods`, chosen at random per batch or per sample.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays (sharing spatial axes when a method
      needs them).
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    methods, weights, prob, mode, pairing: as in :func:`sample_choose`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before mixing. Traced.
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.

  Returns:
    ``(mixed_inputs, soft_labels)``.

  Example:
    >>> images, targets = jaxmix.choose(
    ...     key, images, labels, methods=("mixup", "cutmix", "fmix"),
    ...     weights=jnp.array([0.5, 0.3, 0.2]), num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  validation.check_choice("data_format", data_format, validation.DATA_FORMATS)
  return one_call.mix(
    sample_choose,
    key,
    inputs,
    labels,
    spatial=None,
    num_classes=num_classes,
    label_smoothing=label_smoothing,
    data_format=data_format,
    methods=methods,
    weights=weights,
    prob=prob,
    mode=mode,
    pairing=pairing,
  )
