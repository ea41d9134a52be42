"""Hyperparameters that change during training without recompiling.

Every value-like hyperparameter of jaxmix (``alpha``, ``prob``,
``switch_prob``, ``label_smoothing``, …) is traced, so it may be computed
inside the jitted train step from the step counter, e.g. with an optax
schedule::

    alpha_fn = optax.linear_schedule(0.0, 1.0, transition_steps=1000)

    @jax.jit
    def train_step(state, key, images, labels):
      alpha = jaxmix.off_after(alpha_fn, state.step, off_step=9000)
      images, targets = jaxmix.mixup(key, images, labels, alpha=alpha, num_classes=10)
      ...

The two helpers below make that one line.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

ScheduleOrValue = Callable[[jax.typing.ArrayLike], jax.typing.ArrayLike] | jax.typing.ArrayLike


def scheduled(value: ScheduleOrValue, step: jax.typing.ArrayLike) -> jax.Array:
  """The value of a hyperparameter at `step`: ``value(step)`` for a schedule, else `value`.

  Args:
    value: an optax schedule (any callable of the step) or a number/array.
    step: the step counter; may be traced.

  Returns:
    A float32 scalar (or array) that can be passed as ``alpha``, ``prob``, … .

  Example:
    >>> step = 5_000                          # e.g. the train state's step, traced or not
    >>> alpha = jaxmix.scheduled(optax.cosine_decay_schedule(1.0, 10_000), step)
    >>> alpha.dtype, round(float(alpha), 4)
    (dtype('float32'), 0.5)
  """
  if callable(value):
    value = value(step)
  return jnp.asarray(value, jnp.float32)


def off_after(
  value: ScheduleOrValue,
  step: jax.typing.ArrayLike,
  off_step: jax.typing.ArrayLike,
  *,
  off_value: jax.typing.ArrayLike = 0.0,
) -> jax.Array:
  """`value` (or schedule) before `off_step`, `off_value` from then on.

  timm's ``mixup_off_epoch`` turns mixing off for the last epochs; here that
  is ``alpha = off_after(alpha, step, off_epoch * steps_per_epoch)`` (α = 0
  means no mixing: λ = 1) or the same on ``prob``. `step` and `off_step` may
  both be traced, so nothing recompiles when mixing turns off.

  Args:
    value: an optax schedule or a number/array.
    step: the step counter (traced or not).
    off_step: the first step at which `off_value` is used.
    off_value: the value from `off_step` on; 0 turns alpha/prob off.

  Returns:
    float32, ``scheduled(value, step)`` if ``step < off_step`` else `off_value`.

  Example:
    >>> steps_per_epoch, epochs = 390, 100
    >>> off_step = steps_per_epoch * (epochs - 10)   # no mixing in the last 10 epochs
    >>> [float(jaxmix.off_after(1.0, step, off_step=off_step)) for step in (0, off_step - 1, off_step)]
    [1.0, 1.0, 0.0]
  """
  on = jnp.asarray(step) < jnp.asarray(off_step)
  return jnp.where(on, scheduled(value, step), jnp.asarray(off_value, jnp.float32))
