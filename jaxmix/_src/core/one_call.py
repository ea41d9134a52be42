"""The body of every one-call method: sample a plan, then mix the inputs and the labels."""

from __future__ import annotations

from typing import Any

import jax

from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation


def mix_spatial(
  sampler: Any,
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None,
  *,
  num_classes: int | None,
  label_smoothing: jax.typing.ArrayLike,
  data_format: str,
  **options: Any,
) -> tuple[Any, jax.Array | None]:
  """The body of every one-call spatial method: read B and (H, W) off `inputs`,
  sample ``sampler(key, B, (H, W), **options)``, then mix inputs and labels."""
  batch_size = validation.batch_size_of(inputs)
  spatial = validation.spatial_shape_of(inputs, data_format)
  plan = sampler(key, batch_size, spatial, **options)
  return apply_with_labels(
    plan, inputs, labels, num_classes=num_classes, label_smoothing=label_smoothing, data_format=data_format
  )


def apply_with_labels(
  plan: Any,
  inputs: Any,
  labels: jax.typing.ArrayLike | None,
  *,
  num_classes: int | None,
  label_smoothing: jax.typing.ArrayLike,
  data_format: str,
) -> tuple[Any, jax.Array | None]:
  """The second half of every one-call method: mix the inputs, then the labels."""
  targets = plan_lib.mix_labels(plan, labels, num_classes=num_classes, label_smoothing=label_smoothing)
  return plan_lib.apply(plan, inputs, data_format=data_format), targets
