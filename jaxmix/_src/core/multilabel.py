"""Multi-label (multi-hot) targets: label smoothing and a BCE target threshold.

Multi-hot rows ``[B, K]`` of 0/1 need nothing special to be mixed: every
method and :func:`jaxmix.mix_labels` take float ``[B, K]`` targets and give
``λ·y_i + (1 − λ)·y_j``, the right target for a per-class sigmoid loss. The
two helpers here are the rest of timm's BCE recipe, as pure functions whose
values (the smoothing, the prior, the threshold) may be traced:

* :func:`smooth_multi_hot`, applied *before* mixing (timm's order), with three
  plainly named rules for where the smoothed mass goes;
* :func:`threshold_targets`, applied *after* mixing, timm's
  ``BinaryCrossEntropy(target_threshold=t)``.

Value checks follow one rule (as :func:`jaxmix.one_hot` does for class ids):
values known while tracing (NumPy data, Python numbers, arrays outside
``jit``) are checked and a bad one is a ValueError naming the argument; traced
values cannot be read without a host sync and are taken as given.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import validation

TOWARD = ("uniform", "half")


def _check_targets(name: str, targets: Any, expected: str) -> tuple[int, ...]:
  """Rank >= 2 (a batch axis and the class axis K) and a real or bool dtype; the shape."""
  targets = validation.numbers_as_array(targets)
  validation.check_array(name, targets, expected=expected)
  shape = np.shape(targets)
  if len(shape) < 2:
    raise ValueError(
      f"{name} must be {expected}, got shape {shape}. For integer class ids use jaxmix.one_hot first."
    )
  dtype = jnp.result_type(targets)
  if jnp.issubdtype(dtype, jnp.complexfloating) or not (
    dtype == jnp.bool_ or jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)
  ):
    raise TypeError(f"{name} must be {expected} with a real or bool dtype, got dtype {dtype}.")
  return shape


def check_multi_hot(name: str, targets: Any) -> None:
  """A ValueError naming `name` when `targets` holds a value other than 0 or 1 that is known while tracing.

  Traced targets (inside ``jit``) cannot be read without a host sync: they are taken as given.
  """
  values = validation.concrete_values(targets)
  if values is None or values.size == 0:
    return
  bad = (values != 0) & (values != 1)
  if bad.any():
    raise ValueError(
      f"{name} must be multi-hot (every entry 0 or 1), got {int(bad.sum())} other value(s), "
      f"e.g. {values[bad].flat[0].item()!r}. Smooth targets before mixing them (timm's order); "
      "mixed or already smoothed targets are soft."
    )


def smooth_multi_hot(
  targets: jax.typing.ArrayLike,
  *,
  smoothing: jax.typing.ArrayLike,
  toward: str | jax.typing.ArrayLike = "uniform",
) -> jax.Array:
  """Label smoothing of multi-hot targets, ``(1 − s)·y + s·q``; apply it before mixing.

  Three rules for the target ``q`` the mass moves to:

  * ``toward="uniform"``: ``q = 1/K``, so 0 → ``s/K`` and 1 → ``1 − s + s/K``.
    This is exactly timm's rule for BCE training: ``timm.data.mixup.mixup_target``
    (which ``timm.loss.BinaryCrossEntropy`` repeats for sparse targets) builds
    one-hot rows with ``off = s/K`` and ``on = 1 − s + s/K``; here the same
    affine map is applied to every entry of a multi-hot row. It is also what
    ``label_smoothing=s`` does to float rows in :func:`jaxmix.mix_labels`.
  * ``toward="half"``: ``q = 1/2``, so 0 → ``s/2`` and 1 → ``1 − s/2``: each
    class smoothed as its own two-class problem, Keras's
    ``binary_crossentropy(label_smoothing=s)`` rule.
  * ``toward=prior``, a float ``[K]`` array of per-class rates in [0, 1] (e.g. each
    class's frequency in the training set): ``q_k = prior[k]``, so a class is
    pulled toward how often it is present. May be traced.

  Args:
    targets: multi-hot targets ``[B, K]`` (or ``[..., K]`` with a batch axis),
      float, int or bool, every entry 0 or 1. Entries other than 0/1 are a
      ValueError naming `targets` when their values are known while tracing;
      traced targets are taken as given.
    smoothing: ``s`` in [0, 1]; a Python number outside it is a ValueError.
      Traced: changing it never recompiles.
    toward: ``"uniform"``, ``"half"`` or a ``[K]`` prior array (see above).

  Returns:
    float32 targets with the shape of `targets`.

  Example:
    >>> y = jnp.array([[1, 0, 0, 1], [0, 1, 0, 0]])
    >>> jaxmix.losses.smooth_multi_hot(y, smoothing=0.25)                  # timm: s/K and 1 - s + s/K
    Array([[0.8125, 0.0625, 0.0625, 0.8125],
           [0.0625, 0.8125, 0.0625, 0.0625]], dtype=float32)
    >>> jaxmix.losses.smooth_multi_hot(y, smoothing=0.25, toward="half")   # Keras BCE: toward 0.5
    Array([[0.875, 0.125, 0.125, 0.875],
           [0.125, 0.875, 0.125, 0.125]], dtype=float32)
    >>> prior = jnp.array([0.5, 0.25, 0.0, 1.0])
    >>> jaxmix.losses.smooth_multi_hot(y, smoothing=0.25, toward=prior)[0]
    Array([0.875 , 0.0625, 0.    , 1.    ], dtype=float32)
  """
  targets = validation.numbers_as_array(targets)
  shape = _check_targets("targets", targets, "multi-hot targets [B, K] of 0/1")
  validation.check_unit_interval("smoothing", smoothing)
  check_multi_hot("targets", targets)
  k = shape[-1]
  if isinstance(toward, str):
    validation.check_choice("toward", toward, TOWARD)
    q = jnp.float32(1.0 / k) if toward == "uniform" else jnp.float32(0.5)
  else:
    toward = validation.numbers_as_array(toward)
    validation.check_array("toward", toward, expected=f'"uniform", "half" or a prior array [K] = [{k}]')
    if np.shape(toward) != (k,):
      raise ValueError(
        f'toward must be "uniform", "half" or a prior array [K] = [{k}] matching targets of shape {shape}, '
        f"got shape {np.shape(toward)}."
      )
    values = validation.concrete_values(toward)
    if values is not None and not np.all((values >= 0) & (values <= 1)):
      raise ValueError(f"toward, a prior of per-class rates, must lie in [0, 1], got {values.tolist()}.")
    q = jnp.asarray(toward, jnp.float32)
  s = jnp.asarray(smoothing, jnp.float32)
  return jnp.asarray(targets, jnp.float32) * (1.0 - s) + s * q


def threshold_targets(targets: jax.typing.ArrayLike, *, threshold: jax.typing.ArrayLike) -> jax.Array:
  """Mixed (soft) targets back to 0/1: ``1`` where ``target > threshold``, else ``0``.

  timm's ``BinaryCrossEntropy(target_threshold=t)`` does ``target.gt(t)`` on the
  mixed, smoothed targets (strictly greater: a target equal to `t` becomes 0),
  so every class present in either source with enough weight counts as fully
  present. Apply it after mixing. It is not linear in the targets, so training
  on thresholded mixed targets differs from mixing the losses
  (:func:`jaxmix.losses.mixed_loss`).

  Args:
    targets: float targets ``[B, K]`` (or ``[..., K]``), typically the output of
      :func:`jaxmix.mix_labels`.
    threshold: ``t`` in [0, 1]; a Python number outside it is a ValueError.
      Traced: changing it never recompiles.

  Returns:
    float32 0/1 targets with the shape of `targets`.

  Example:
    >>> mixed = jnp.array([[0.7, 0.3, 0.0], [0.2, 0.2, 0.6]])
    >>> jaxmix.losses.threshold_targets(mixed, threshold=0.2)
    Array([[1., 1., 0.],
           [0., 0., 1.]], dtype=float32)
  """
  targets = validation.numbers_as_array(targets)
  _check_targets("targets", targets, "targets [B, K]")
  validation.check_unit_interval("threshold", threshold)
  t = jnp.asarray(threshold, jnp.float32)
  return (jnp.asarray(targets, jnp.float32) > t).astype(jnp.float32)
