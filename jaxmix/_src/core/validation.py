"""Input checks shared by every public function.

Every check runs at trace time on shapes, dtypes and Python values, so a bad
call fails with a message that names the argument, never with a silently
broadcast result.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

MODES = ("batch", "pair", "elem")
PAIRINGS = ("flip", "roll", "permute")
DATA_FORMATS = ("NHWC", "NCHW")


@contextlib.contextmanager
def _as_error(name: str, value: Any, error: type[Exception], expected: str) -> Iterator[None]:
  """Runs chex assertions; a failure becomes `error` naming the argument and what it received."""
  try:
    yield
  except AssertionError:
    raise error(
      f"{name} must be {expected}, got shape {np.shape(value)} and dtype {jnp.result_type(value)}."
    ) from None


def check_array(
  name: str,
  value: Any,
  *,
  expected: str,
  rank: int | set[int] | None = None,
  batch_size: int | None = None,
  dtype: Any = None,
) -> None:
  """chex's trace-time checks on one array argument, re-raised as the public error contract.

  A failed ``chex.assert_rank`` (`rank`) or ``chex.assert_axis_dimension`` on axis 0
  (`batch_size`) raises ValueError, a failed ``chex.assert_type`` (`dtype`, a concrete
  or abstract dtype such as ``jnp.integer``) TypeError; each names `name`, says what
  was `expected` and what was received. Non-arrays are a TypeError.
  """
  if not hasattr(value, "shape") and not isinstance(value, (numbers.Number, list, tuple)):
    raise TypeError(f"{name} must be {expected}, got {type(value).__name__}.")
  try:
    # A zero-stride stand-in with the value's shape and dtype: chex reads only those, and a traced
    # value has no data to read.
    spec = np.broadcast_to(np.zeros((), jnp.result_type(value)), np.shape(value))
  except (TypeError, ValueError):
    raise TypeError(f"{name} must be {expected}, got {type(value).__name__}.") from None
  if dtype is not None:
    with _as_error(name, value, TypeError, expected):
      chex.assert_type(spec, dtype)
  if rank is not None:
    with _as_error(name, value, ValueError, expected):
      chex.assert_rank(spec, rank)
  if batch_size is not None:
    with _as_error(name, value, ValueError, expected):
      chex.assert_axis_dimension(spec, 0, batch_size)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


def is_static_number(value: Any) -> bool:
  """True for Python / NumPy scalars, whose value can be checked at trace time."""
  return isinstance(value, (numbers.Number, np.number)) and not isinstance(value, bool)


def check_nonnegative(name: str, value: Any) -> None:
  """Rejects a negative Python number; traced values are taken as given."""
  if is_static_number(value) and not value >= 0:
    raise ValueError(f"{name} must be >= 0, got {value!r}.")


def check_unit_interval(name: str, value: Any) -> None:
  """Rejects a Python number outside [0, 1]; traced values are taken as given."""
  if is_static_number(value) and not 0 <= value <= 1:
    raise ValueError(f"{name} must lie in [0, 1], got {value!r}.")


def check_batch_size(batch_size: Any) -> int:
  """The batch size B as a Python int: a static int >= 0 (numpy integers too), never a bool.

  Every sampler that takes ``batch_size`` calls this first. A float, a string,
  None or True is a TypeError, a negative int a ValueError; B = 0 is allowed
  and gives an empty plan.
  """
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
    raise TypeError(
      f"batch_size must be a static int >= 0 (the number of samples), got {batch_size!r} "
      f"of type {type(batch_size).__name__}."
    )
  if batch_size < 0:
    raise ValueError(f"batch_size must be a static int >= 0 (the number of samples), got {batch_size!r}.")
  return int(batch_size)


def check_num_classes(num_classes: Any, name: str = "num_classes", *, required: bool = False) -> int | None:
  """K as a Python int >= 1, or None (a ValueError when `required`): a bool, float or string is a
  TypeError, K < 1 a ValueError."""
  if num_classes is None:
    if required:
      raise ValueError(f"{name} must be a positive int (static), got None.")
    return None
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
    raise TypeError(
      f"{name} must be a positive int (static), got {num_classes!r} of type {type(num_classes).__name__}."
    )
  if num_classes < 1:
    raise ValueError(f"{name} must be a positive int (static), got {num_classes!r}.")
  return int(num_classes)


def concrete_values(value: Any) -> np.ndarray | None:
  """The values of `value` when they are known while tracing (Python/NumPy data, concrete
  arrays), else None (a tracer under ``jit``/``vmap``, an array spread over processes)."""
  if isinstance(value, jax.core.Tracer):
    return None
  if isinstance(value, jax.Array) and not value.is_fully_addressable:
    return None
  try:
    return np.asarray(value)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return None


def numbers_as_array(value: Any) -> Any:
  """A (nested) list or tuple of Python numbers as a NumPy array, so that its dtype and shape can be
  read and its values checked; anything else as it is."""
  if isinstance(value, (list, tuple)) and all(
    isinstance(v, (numbers.Number, np.number)) for v in jax.tree_util.tree_leaves(value)
  ):
    try:
      return np.asarray(value)
    except ValueError:  # ragged
      raise ValueError(f"a list of labels must be rectangular, got {value!r}.") from None
  return value


def check_class_ids(name: str, labels: Any, num_classes: int) -> None:
  """Rejects class ids outside ``[0, num_classes)`` when their values are known while tracing.

  Traced ids (inside ``jit``) cannot be read without a host sync, so they are
  taken as given: an id outside the range one-hot encodes to an all-zero row.
  """
  values = concrete_values(labels)
  if values is None or values.size == 0:
    return
  lo, hi = values.min().item(), values.max().item()
  if lo < 0 or hi >= num_classes:
    bad = values[(values < 0) | (values >= num_classes)]
    raise ValueError(
      f"{name} must be class ids in [0, num_classes) = [0, {num_classes}), got {bad.size} id(s) "
      f"outside it, e.g. {bad.flat[0].item()!r} (min {lo!r}, max {hi!r})."
    )


def check_key(key: Any) -> None:
  """Accepts typed keys (`jax.random.key`) and legacy uint32[2] `PRNGKey`s."""
  if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape != ():
      raise ValueError(f"key must be a single PRNG key, got a key array of shape {key.shape}.")
    return
  shape = getattr(key, "shape", None)
  dtype = getattr(key, "dtype", None)
  if shape != (2,) or dtype != jnp.uint32:
    raise TypeError(
      "key must be a PRNG key from jax.random.key or jax.random.PRNGKey, "
      f"got {type(key).__name__} with shape {shape} and dtype {dtype}."
    )


def check_numeric_leaf(name: str, leaf: Any) -> None:
  dtype = jnp.result_type(leaf)
  if dtype == jnp.bool_ or jnp.issubdtype(dtype, jnp.complexfloating):
    raise TypeError(f"{name} must have a real numeric dtype, got {dtype}.")
  if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
    raise TypeError(f"{name} must have a real numeric dtype, got {dtype}.")


def leaves_with_names(tree: Any, name: str) -> list[tuple[str, Any]]:
  """Flattens `tree` into (readable path, leaf) pairs for error messages."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [(name + jax.tree_util.keystr(path), leaf) for path, leaf in flat]


def batch_size_of(tree: Any, name: str = "inputs") -> int:
  """The batch size shared by every leaf of `tree`; a clear error otherwise."""
  leaves = leaves_with_names(tree, name)
  if not leaves:
    raise ValueError(f"{name} has no array leaves.")
  sizes = {}
  for path, leaf in leaves:
    shape = np.shape(leaf)
    if len(shape) < 1:
      raise ValueError(f"{path} must have a leading batch axis, got a scalar.")
    check_numeric_leaf(path, leaf)
    sizes[path] = shape[0]
  if len(set(sizes.values())) != 1:
    raise ValueError(f"Every leaf of {name} must share the batch size; got {sizes}.")
  return next(iter(sizes.values()))


def check_spatial_shape(spatial_shape: Any, axes: str = "(H, W)") -> tuple[int, int]:
  """Two positive sizes as Python ints (static); a clear error otherwise."""
  if spatial_shape is None:
    raise ValueError(f"spatial_shape {axes} is required by this method, got None.")
  try:
    shape = tuple(int(s) for s in spatial_shape)
  except TypeError:
    shape = ()
  if len(shape) != 2 or min(shape) < 1:
    raise ValueError(f"spatial_shape must be {axes} with positive sizes, got {spatial_shape!r}.")
  return shape


def image_shape_or_none(inputs: Any, data_format: str) -> tuple[int, int] | None:
  """The shared (H, W) of an image batch (every leaf of rank 3 or 4); None for other batches.

  An image batch with an empty side is a ValueError naming `inputs` (see :func:`spatial_shape_of`).
  """
  ranks = {np.ndim(leaf) for leaf in jax.tree_util.tree_leaves(inputs)}
  if ranks and ranks <= {3, 4}:
    return spatial_shape_of(inputs, data_format, nonempty=True)
  return None


def spatial_axes(ndim: int, data_format: str) -> tuple[int, int]:
  """The (H, W) axes of a leaf of rank `ndim`.

  Rank-3 leaves are `[B, H, W]` in either format; rank-4 leaves are
  `[B, H, W, C]` (NHWC) or `[B, C, H, W]` (NCHW).
  """
  if ndim == 3 or data_format == "NHWC":
    return (1, 2)
  return (ndim - 2, ndim - 1)


def spatial_shape_of(
  tree: Any, data_format: str, name: str = "inputs", *, nonempty: bool = False
) -> tuple[int, int]:
  """The (H, W) shared by every leaf; mask methods need exactly this.

  With `nonempty` an empty side (H = 0 or W = 0) is a ValueError naming `name`:
  the methods that draw regions need at least one pixel.
  """
  check_choice("data_format", data_format, DATA_FORMATS)
  shapes = {}
  for path, leaf in leaves_with_names(tree, name):
    shape = np.shape(leaf)
    if len(shape) not in (3, 4):
      raise ValueError(
        f"This method mixes spatial regions, so {path} must be [B, H, W] or an image "
        f"batch of rank 4 ({data_format}); got shape {shape}."
      )
    h_axis, w_axis = spatial_axes(len(shape), data_format)
    shapes[path] = (shape[h_axis], shape[w_axis])
  if len(set(shapes.values())) != 1:
    raise ValueError(f"Every leaf of {name} must share the spatial shape (H, W); got {shapes}.")
  shape = next(iter(shapes.values()))
  if nonempty and min(shape) < 1:
    raise ValueError(
      f"{name} has the empty spatial shape (H, W) = {shape}; this method draws regions of the "
      "images, which needs H >= 1 and W >= 1."
    )
  return shape
