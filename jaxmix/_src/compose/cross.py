"""Cross-dataset mixing: each sample of batch A mixed with a sample of batch B.

Batch B is cycled (tiled, static) to batch A's size, so sample ``i`` of A
mixes with sample ``i mod B_b`` of B. The label spaces are joined: by default
A's classes come first and B's after them (``K_a + K_b`` columns); with
``label_maps`` both are mapped onto one shared space.

How it reuses the core plans: A and the cycled B are stacked as
``[A; reverse(B)]`` (2·B_a rows); with ``pairing="flip"`` row ``i`` of that
stack has row ``i`` of B as its partner, so any two-source :class:`Plan`
(MixUp, CutMix, any mask method) applies unchanged, and the first B_a rows
are kept. XLA fuses the stack, the blend and the final slice; flips and
slices, no gathers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import labels as labels_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation
from jaxmix._src.methods import registry

CROSS_METHODS = ("mixup", "cutmix", "mixup_cutmix")


def cycle_batch(tree: Any, batch_size: int) -> Any:
  """Repeats (cycles) or truncates every leaf to `batch_size` rows: row i is row ``i mod n``."""

  def cycle(x):
    x = jnp.asarray(x)
    n = x.shape[0]
    if n < batch_size:
      x = jnp.concatenate([x] * math.ceil(batch_size / n), axis=0)
    return x[:batch_size]

  return jax.tree_util.tree_map(cycle, tree)


def _check_trees(inputs_a: Any, inputs_b: Any) -> None:
  struct_a = jax.tree_util.tree_structure(inputs_a)
  struct_b = jax.tree_util.tree_structure(inputs_b)
  if struct_a != struct_b:  # type: ignore[operator]  # jaxlib ships no stub for PyTreeDef (mypy: "PyTreeDef?")
    raise ValueError(f"inputs_a and inputs_b must have the same structure, got {struct_a} and {struct_b}.")
  for (path, a), b in zip(
    validation.leaves_with_names(inputs_a, "inputs_a"), jax.tree_util.tree_leaves(inputs_b), strict=True
  ):
    if np.shape(a)[1:] != np.shape(b)[1:]:
      raise ValueError(
        f"{path} has per-sample shape {np.shape(a)[1:]} but the matching leaf of inputs_b has "
        f"{np.shape(b)[1:]}; the two batches must agree except in batch size."
      )


def _label_matrix(label_map: Any, k_src: int, k_shared: int | None, name: str) -> jax.Array:
  """A `[K_src, K_shared]` float matrix from an int index map or a matrix."""
  m = jnp.asarray(label_map)
  if m.ndim == 1:
    if not jnp.issubdtype(m.dtype, jnp.integer):
      raise TypeError(f"{name} as a vector must hold integer class indices, got dtype {m.dtype}.")
    if m.shape[0] != k_src:
      raise ValueError(f"{name} must map each of the {k_src} source classes, got shape {m.shape}.")
    if k_shared is None:
      raise ValueError(f"num_classes (the shared label width) is required when {name} is an index vector.")
    try:
      values = np.asarray(label_map)
    except jax.errors.TracerArrayConversionError:  # traced: checked by the caller's data
      values = None
    if values is not None and values.size and (values.min() < 0 or values.max() >= k_shared):
      raise ValueError(f"{name} holds indices outside [0, {k_shared}): {values}.")
    return jax.nn.one_hot(m, k_shared, dtype=jnp.float32)
  if m.ndim == 2:
    if m.shape[0] != k_src:
      raise ValueError(f"{name} must have {k_src} rows (one per source class), got shape {m.shape}.")
    if k_shared is not None and m.shape[1] != k_shared:
      raise ValueError(f"{name} has {m.shape[1]} columns but num_classes={k_shared}.")
    return m.astype(jnp.float32)
  raise ValueError(
    f"{name} must be an int vector [K_src] or a matrix [K_src, K_shared], got shape {m.shape}."
  )


def _source_width(labels: Any, num_classes: int | None, name: str) -> int:
  shape = np.shape(labels)
  if len(shape) == 2:
    if num_classes is not None and shape[1] != num_classes:
      raise ValueError(f"{name} has {shape[1]} classes but num_classes_{name[-1]}={num_classes}.")
    return shape[1]
  if num_classes is None:
    raise ValueError(f"num_classes_{name[-1]} is required when {name} are integer class ids.")
  return int(num_classes)


def joint_labels(
  labels_a: jax.typing.ArrayLike,
  labels_b: jax.typing.ArrayLike,
  *,
  num_classes_a: int | None = None,
  num_classes_b: int | None = None,
  label_maps: tuple[Any, Any] | None = None,
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
) -> tuple[jax.Array, jax.Array]:
  """Both batches' labels as float32 rows in the joined label space.

  Smoothing is applied in each source's own space, then the rows are mapped.

  Returns:
    ``(targets_a, targets_b)``: `[B_a, K]` and `[B_b, K]`.
  """
  num_classes_a = validation.check_num_classes(num_classes_a, "num_classes_a")
  num_classes_b = validation.check_num_classes(num_classes_b, "num_classes_b")
  num_classes = validation.check_num_classes(num_classes)
  k_a = _source_width(labels_a, num_classes_a, "labels_a")
  k_b = _source_width(labels_b, num_classes_b, "labels_b")
  y_a = labels_lib.soft_labels(labels_a, np.shape(labels_a)[0], num_classes=k_a, smoothing=label_smoothing)
  y_b = labels_lib.soft_labels(labels_b, np.shape(labels_b)[0], num_classes=k_b, smoothing=label_smoothing)
  if label_maps is None:
    if num_classes is not None and num_classes != k_a + k_b:
      raise ValueError(
        f"Without label_maps the joined width is K_a + K_b = {k_a + k_b}, got num_classes={num_classes}."
      )
    y_a = jnp.pad(y_a, ((0, 0), (0, k_b)))
    y_b = jnp.pad(y_b, ((0, 0), (k_a, 0)))
    return y_a, y_b
  if len(label_maps) != 2:
    raise ValueError(f"label_maps must be a pair (map_a, map_b), got {len(label_maps)} entries.")
  map_a, map_b = label_maps
  m_a = _label_matrix(map_a, k_a, num_classes, "label_maps[0]")
  m_b = _label_matrix(map_b, k_b, num_classes, "label_maps[1]")
  if m_a.shape[1] != m_b.shape[1]:
    raise ValueError(
      f"label_maps must map both sources onto the same width, got {m_a.shape[1]} and {m_b.shape[1]} columns."
    )
  return y_a @ m_a, y_b @ m_b


def _stacked_plan(plan: plan_lib.Plan, batch_size: int) -> plan_lib.Plan:
  """Extends a B-row plan to the 2B-row stack ``[A; reverse(B)]`` (rows of B unmixed)."""
  ones = jnp.ones((batch_size,), jnp.float32)
  region = plan.region
  if region is not None:
    region = jnp.concatenate([region, jnp.zeros_like(region)], axis=0)
  mask = plan.mask
  if mask is not None and mask.shape[0] != 1:
    mask = jnp.concatenate([mask, jnp.ones_like(mask)], axis=0)
  return plan_lib.Plan(
    lam=jnp.concatenate([plan.lam, ones]),
    index=jnp.arange(2 * batch_size, dtype=jnp.int32)[::-1],
    blend=jnp.concatenate([plan.blend, ones]),
    region=region,
    mask=mask,
    pairing="flip",
    spatial_shape=plan.spatial_shape,
    selects_pixels=plan.selects_pixels,
  )


def mix_batches(
  key: jax.Array,
  batch_a: tuple[Any, jax.typing.ArrayLike | None],
  batch_b: tuple[Any, jax.typing.ArrayLike | None],
  *,
  method: str | Callable[..., plan_lib.Plan] = "mixup",
  num_classes_a: int | None = None,
  num_classes_b: int | None = None,
  label_maps: tuple[Any, Any] | None = None,
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
  **method_kwargs: Any,
) -> tuple[Any, jax.Array | None]:
  """Mixes each sample of batch A with a sample of batch B from another dataset.

  Sample ``i`` of A takes sample ``i mod B_b`` of B as its partner (B is
  cycled or truncated to A's size — static shapes). λ is A's own share;
  each output label row holds λ of A's label and 1 − λ of B's label in the
  joined label space, so the A block of the row sums to λ and the B block
  to 1 − λ (one-hot labels).

  Label spaces:

  * ``label_maps=None``: ``[K_a + K_b]``, A's classes then B's.
  * ``label_maps=(map_a, map_b)``: each map is an int vector ``[K_src]``
    giving each source class's index in a shared space of width
    `num_classes`, or a float matrix ``[K_src, K_shared]`` (rows may spread
    a class over several shared classes); None in the pair would be
    ambiguous, so pass ``jnp.arange(K)`` for an identity.

  Args:
    key: PRNG key.
    batch_a: ``(inputs_a, labels_a)``; inputs any pytree with batch axis,
      labels int `[B_a]` or float `[B_a, K_a]` (or None).
    batch_b: ``(inputs_b, labels_b)``, same structure and per-sample shapes
      as A (batch size may differ); labels None iff A's are None.
    method: ``"mixup"``, ``"cutmix"``, ``"mixup_cutmix"``, or a sampler with
      the one sampler signature, called as ``sampler(key, batch_size,
      spatial_shape, **method_kwargs)`` (``spatial_shape`` is the (H, W) of
      image batches, else None) and returning any two-source :class:`Plan`
      (e.g. ``functools.partial(jaxmix.sample_fmix, decay_power=3.0)``); its
      pairing is replaced by "A with B".
      Samples the sampler leaves unmixed (λ = 1) stay A.
    num_classes_a, num_classes_b: K_a, K_b; required for integer labels.
    label_maps: see above.
    num_classes: the shared width; required with index-vector maps.
    label_smoothing: applied in each source space before mapping. Traced.
    data_format: ``"NHWC"`` or ``"NCHW"`` for mask methods.
    **method_kwargs: options of the chosen sampler (``alpha``, ``prob``,
      ``mode`` in ``batch``/``elem``, ``correct_lam``, ...).

  Returns:
    ``(mixed_inputs, soft_labels)``: A's shapes and dtypes, and float32
    `[B_a, K]` (None without labels).

  Example:
    >>> other = (images[:6, ::-1], jnp.arange(6))     # 6 samples from a 6-class dataset
    >>> mixed, targets = jaxmix.mix_batches(
    ...     key, (images, labels), other, method="cutmix", num_classes_a=10, num_classes_b=6)
    >>> mixed.shape, targets.shape                    # targets: [B_a, 10 + 6]
    ((8, 32, 32, 3), (8, 16))
  """
  validation.check_key(key)
  validation.check_choice("data_format", data_format, validation.DATA_FORMATS)
  if len(batch_a) != 2 or len(batch_b) != 2:
    raise ValueError("batch_a and batch_b must each be a pair (inputs, labels).")
  inputs_a, labels_a = batch_a
  inputs_b, labels_b = batch_b
  b_a = validation.batch_size_of(inputs_a, "inputs_a")
  b_b = validation.batch_size_of(inputs_b, "inputs_b")
  _check_trees(inputs_a, inputs_b)
  if b_b == 0 and b_a > 0:
    raise ValueError(f"inputs_b has batch size 0: there is no sample to mix the {b_a} samples of A with.")
  if (labels_a is None) != (labels_b is None):
    raise ValueError("labels_a and labels_b must both be given or both be None.")
  for name, labels, size in (("labels_a", labels_a, b_a), ("labels_b", labels_b, b_b)):
    if labels is not None and (np.ndim(labels) < 1 or np.shape(labels)[0] != size):
      raise ValueError(f"{name} has shape {np.shape(labels)} but its inputs have batch size {size}.")
  if method_kwargs.get("mode") == "pair":
    raise ValueError(
      "mode='pair' (mutual partners) has no meaning across two batches; use 'batch' or 'elem'."
    )
  if "pairing" in method_kwargs:
    raise ValueError("pairing is fixed by mix_batches (A's sample i with B's sample i mod B_b).")

  # Sample a plan for B_a rows; "roll" never pairs a sample with itself when
  # B > 1, so the sampler leaves no row unmixed by accident (B = 1: sample 2).
  n = max(b_a, 2)
  if callable(method):
    base = method(key, n, validation.image_shape_or_none(inputs_a, data_format), **method_kwargs)
  else:
    validation.check_choice("method", method, CROSS_METHODS)
    spec = registry.lookup(method, argument="method", two_source=True)
    shape = None
    if spec.spatial:
      shape = validation.spatial_shape_of(inputs_a, data_format, "inputs_a", nonempty=True)
    base = spec.sample(key, n, shape, pairing="roll", **method_kwargs)
  if not isinstance(base, plan_lib.Plan):
    raise TypeError(f"method must produce a two-source jaxmix.Plan, got {type(base).__name__}.")
  base = jax.tree_util.tree_map(lambda v: v[:b_a] if v.shape[0] == n else v, base)
  plan = _stacked_plan(base, b_a)

  cycled_b = cycle_batch(inputs_b, b_a)

  def stack_leaf(a, b):
    a = jnp.asarray(a)
    return jnp.concatenate([a, jnp.flip(jnp.asarray(b).astype(a.dtype), 0)], axis=0)

  stacked = jax.tree_util.tree_map(stack_leaf, inputs_a, cycled_b)
  mixed = plan_lib.apply(plan, stacked, data_format=data_format)
  mixed = jax.tree_util.tree_map(lambda x: x[:b_a], mixed)
  if labels_a is None:
    return mixed, None
  assert labels_b is not None  # both or neither, checked above
  y_a, y_b = joint_labels(
    labels_a,
    labels_b,
    num_classes_a=num_classes_a,
    num_classes_b=num_classes_b,
    label_maps=label_maps,
    num_classes=num_classes,
    label_smoothing=label_smoothing,
  )
  y_b = cycle_batch(y_b, b_a)
  targets = plan.mix_labels(jnp.concatenate([y_a, jnp.flip(y_b, 0)], axis=0))[:b_a]
  return mixed, targets
