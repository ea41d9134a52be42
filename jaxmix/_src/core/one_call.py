"""The body of every one-call method: sample a plan, then mix the inputs and the labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation


def mix(
  sampler: Callable[..., Any],
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None,
  *,
  spatial: bool | None,
  num_classes: int | None,
  label_smoothing: jax.typing.ArrayLike,
  data_format: str,
  transform: Callable[[Any], Any] | None = None,
  spatial_axes: tuple[int, ...] | None = None,
  volumes: tuple[int, ...] = (),
  **options: Any,
) -> tuple[Any, jax.Array | None]:
  """Every one-call method is ``return one_call.mix(sample_<m>, key, inputs, labels, ...)``.

  Reads the batch size B and, as `spatial` says, the (H, W) of `inputs`; samples
  ``sampler(key, B, spatial_shape, **options)`` (the one sampler signature);
  passes the plan through `transform` when given (a label rule such as Remix's);
  then mixes the labels and every leaf of `inputs` with it.

  Args:
    sampler: a plan sampler with the one signature.
    key, inputs, labels: the one-call method's arguments.
    spatial: True when the method needs (H, W) (read with a clear error when the
      leaves are not images); False when it needs none (``spatial_shape=None``);
      None for either: (H, W) of image batches (every leaf rank 3 or 4), else None.
    num_classes, label_smoothing, data_format: as in :func:`jaxmix.mix_labels`
      and :func:`jaxmix.apply`.
    transform: ``plan -> plan`` applied before mixing, or None.
    spatial_axes: the axes of `inputs` that carry the mask, or None for the
      default (see :func:`jaxmix.apply`); the sampler gets their sizes as its
      spatial shape, so ``(1, 2, 3)`` of ``[B, T, H, W, C]`` draws a cuboid.
    volumes: the numbers of spatial dims the sampler draws for videos and
      volumes: ``(2,)`` tubes only (a 2-D mask on every frame), ``(2, 3)``
      tubes and cuboids; ``()`` (default): rank-3/4 images only, and
      `spatial_axes` and rank-5 leaves are refused with a clear error.
    **options: the sampler's keyword options.

  Returns:
    ``(mixed_inputs, soft_labels)``; the labels are None when `labels` is None.
  """
  batch_size = validation.batch_size_of(inputs)
  shape: tuple[int, ...] | None
  if spatial_axes is not None and volumes:
    axes = validation.check_spatial_axes(spatial_axes)
    assert axes is not None
    if len(axes) not in volumes:
      raise ValueError(
        f"spatial_axes={axes} names {len(axes)} axes, but this method draws masks of "
        f"{' or '.join(map(str, volumes))} spatial dims (2: the same mask on every frame, a tube)."
      )
  if spatial:
    shape = validation.spatial_shape_nd(
      inputs, data_format, nonempty=True, spatial_axes=spatial_axes, volumes=bool(volumes)
    )
  elif spatial is None:
    shape = validation.image_shape_or_none(inputs, data_format)
  else:
    validation.check_choice("data_format", data_format, validation.DATA_FORMATS)
    shape = None
  plan = sampler(key, batch_size, shape, **options)
  if transform is not None:
    plan = transform(plan)
  targets = plan_lib.mix_labels(plan, labels, num_classes=num_classes, label_smoothing=label_smoothing)
  if spatial_axes is None:
    return plan_lib.apply(plan, inputs, data_format=data_format), targets
  return plan_lib.apply(plan, inputs, data_format=data_format, spatial_axes=spatial_axes), targets
