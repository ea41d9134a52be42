"""Class labels to soft labels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import deprecation
from jaxmix._src.core import validation


@deprecation.renamed(smoothing="label_smoothing")
def one_hot(
  labels: jax.typing.ArrayLike, num_classes: int, *, label_smoothing: jax.typing.ArrayLike = 0.0
) -> jax.Array:
  """Smoothed one-hot targets in timm's form.

  The off value is ``s / K`` and the on value ``1 - s + s / K``, so each row
  sums to one (timm ``data/mixup.py``, Szegedy et al. 2016).

  Args:
    labels: integer class ids of any shape (an array, or a Python list) in
      ``[0, K)``. Ids outside it are a ValueError when their values are known
      while tracing (NumPy data, Python lists, arrays outside ``jit``); traced
      ids cannot be checked without a host sync, and an id outside the range
      then gives an all-zero row.
    num_classes: K, the number of classes: a positive int (static); a bool is
      a TypeError.
    label_smoothing: ``s`` in [0, 1], the same option as every mixing
      function's; may be traced. (``smoothing`` before 0.2.0:
      ``smoothing=`` warns until 0.3.0.)

  Returns:
    float32 array of shape ``labels.shape + (K,)``.

  Example:
    >>> jaxmix.one_hot(jnp.array([0, 2]), 3, label_smoothing=0.3)
    Array([[0.8, 0.1, 0.1],
           [0.1, 0.1, 0.8]], dtype=float32)
  """
  num_classes = validation.check_num_classes(num_classes, required=True)
  validation.check_unit_interval("label_smoothing", label_smoothing)
  labels = validation.numbers_as_array(labels)
  validation.check_array("labels", labels, dtype=jnp.integer, expected="integer class ids")
  validation.check_class_ids("labels", labels, num_classes)
  smoothing = jnp.asarray(label_smoothing, jnp.float32)
  off = smoothing / num_classes
  hot = jax.nn.one_hot(jnp.asarray(labels), num_classes, dtype=jnp.float32)
  return hot * (1.0 - smoothing) + off


def soft_labels(
  labels: jax.typing.ArrayLike,
  batch_size: int,
  *,
  num_classes: int | None = None,
  smoothing: jax.typing.ArrayLike = 0.0,
) -> jax.Array:
  """Turns int `[B]` ids, float `[B, K]` targets or multi-hot `[B, K]` into smoothed float32 `[B, K]`.

  Rows are smoothed as ``y * (1 - s) + s / K``, which equals :func:`one_hot` for
  one-hot rows and keeps each row's mass for soft rows. Integer or bool `[B, K]`
  rows are multi-hot targets (0/1; a ValueError for other values known while
  tracing, taken as given under ``jit``) and are mixed as floats.
  """
  validation.check_unit_interval("label_smoothing", smoothing)
  num_classes = validation.check_num_classes(num_classes)
  labels = validation.numbers_as_array(labels)
  expected = "int class ids [B] or float targets [B, K]"
  # timm #1489: segmentation masks passed as labels.
  validation.check_array(
    "labels",
    labels,
    rank={0, 1, 2},
    message="labels must be " + expected + "; got rank {rank} with shape {shape}, which looks like per-pixel "
    "label maps. Mix label maps with the images' plan: jaxmix.segmentation.mix_label_maps(plan, maps), or "
    "pass them in `inputs` to a method that selects pixels (CutMix, FMix, ...).",
  )
  validation.check_array(
    "labels",
    labels,
    rank={1, 2},
    message="labels must be " + expected + "; got rank {rank} with shape {shape}.",
  )
  validation.check_array(
    "labels",
    labels,
    batch_size=batch_size,
    message=f"labels have batch size {{shape[0]}} but inputs have {batch_size}.",
  )
  validation.check_array(
    "labels",
    labels,
    dtype=validation.REAL if np.ndim(labels) == 1 else validation.REAL + (jnp.bool_,),
    message="labels must be integer ids, real float targets or multi-hot rows, got dtype {dtype}.",
  )
  if np.ndim(labels) == 1:
    validation.check_array(
      "labels",
      labels,
      dtype=jnp.integer,
      message="labels of shape {shape} must be integer class ids, got dtype {dtype}; "
      "pass float targets as [B, K].",
    )
    if num_classes is None:
      raise ValueError("num_classes is required when labels are integer class ids of shape [B].")
    return one_hot(labels, num_classes, label_smoothing=smoothing)
  if not jnp.issubdtype(jnp.result_type(labels), jnp.floating):  # int or bool [B, K]: multi-hot rows
    values = validation.concrete_values(labels)
    if values is not None and values.size and ((values != 0) & (values != 1)).any():
      bad = values[(values != 0) & (values != 1)]
      raise ValueError(
        f"labels of shape {np.shape(labels)} and dtype {jnp.result_type(labels)} are read as multi-hot "
        f"rows (0/1), but hold {bad.size} other value(s), e.g. {bad.flat[0].item()!r}. Pass class ids "
        "as [B], soft targets as float [B, K]."
      )
  if num_classes is not None:
    validation.check_array(
      "labels",
      labels,
      axes={1: num_classes},
      message=f"labels have {{shape[1]}} classes (shape {{shape}}) but num_classes={num_classes}.",
    )
  smoothing = jnp.asarray(smoothing, jnp.float32)
  y = jnp.asarray(labels, jnp.float32)
  return y * (1.0 - smoothing) + smoothing / np.shape(labels)[1]
