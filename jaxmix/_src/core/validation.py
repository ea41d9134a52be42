"""Input checks shared by every public function.

Every check runs at trace time on shapes, dtypes and Python values, so a bad
call fails with a message that names the argument, never with a silently
broadcast result.
"""

from __future__ import annotations

import numbers
from typing import Any
from typing import Literal
from typing import overload

import chex
import jax
import jax.numpy as jnp
import numpy as np

MODES = ("batch", "pair", "elem")
PAIRINGS = ("flip", "roll", "permute")
DATA_FORMATS = ("NHWC", "NCHW")
REAL = (jnp.floating, jnp.integer)  # for check_array(dtype=...): real numbers, bool and complex excluded


def _spec(value: Any) -> np.ndarray:
  """A zero-stride stand-in with `value`'s shape and dtype: chex reads only those, and a traced
  value has no data to read."""
  if isinstance(value, (list, tuple)):  # Python numbers: NumPy's dtype for them
    value = np.asarray(value)
  return np.broadcast_to(np.zeros((), jnp.result_type(value)), np.shape(value))


def _fails(assertion: Any, *args: Any) -> bool:
  try:
    assertion(*args)
  except AssertionError:
    return True
  return False


def _message(name: str, spec: np.ndarray, error: type[Exception], expected: str, message: str | None) -> str:
  shape, dtype = spec.shape, spec.dtype
  if message is not None:
    return message.format(name=name, shape=shape, dtype=dtype, rank=len(shape))
  if error is TypeError:
    return f"{name} must be {expected}, got dtype {dtype} (shape {shape})."
  return f"{name} must be {expected}, got shape {shape} and dtype {dtype}."


def check_array(
  name: str,
  value: Any,
  *,
  expected: str = "an array",
  rank: int | set[int] | None = None,
  batch_size: int | None = None,
  dtype: Any = None,
  axes: dict[int, int] | None = None,
  has_axis: int | None = None,
  message: str | None = None,
) -> None:
  """chex's trace-time checks on one array argument, re-raised as the public error contract.

  A failed ``chex.assert_type`` (`dtype`: a concrete or abstract dtype such as
  ``jnp.integer``, or a tuple of them, any of which will do) raises TypeError; a
  failed ``chex.assert_rank`` (`rank`), ``chex.assert_axis_dimension_gteq``
  (`has_axis`: the value has this axis), ``chex.assert_axis_dimension`` (`axes`:
  ``{axis: size}``) or the same on axis 0 (`batch_size`) raises ValueError. The
  checks run in that order. Each error names `name` and says what was received:
  ``"{name} must be {expected}, got shape ... and dtype ..."``, or `message`
  formatted with ``name``, ``shape``, ``dtype`` and ``rank``. Non-arrays are a
  TypeError. Only shapes and dtypes are read, so this works on tracers.
  """
  if not hasattr(value, "shape") and not isinstance(value, (numbers.Number, list, tuple)):
    raise TypeError(f"{name} must be {expected}, got {type(value).__name__}.")
  try:
    spec = _spec(value)
  except (TypeError, ValueError):
    raise TypeError(f"{name} must be {expected}, got {type(value).__name__}.") from None
  checks: list[tuple[type[Exception], Any, tuple[Any, ...]]] = []
  if dtype is not None:
    kinds = dtype if isinstance(dtype, tuple) else (dtype,)
    if all(_fails(chex.assert_type, spec, kind) for kind in kinds):
      raise TypeError(_message(name, spec, TypeError, expected, message))
  if rank is not None:
    checks.append((ValueError, chex.assert_rank, (spec, rank)))
  if has_axis is not None:
    checks.append((ValueError, chex.assert_axis_dimension_gteq, (spec, has_axis, 0)))
  for axis, size in (axes or {}).items():
    checks.append((ValueError, chex.assert_axis_dimension, (spec, axis, size)))
  if batch_size is not None:
    checks.append((ValueError, chex.assert_axis_dimension, (spec, 0, batch_size)))
  for error, assertion, args in checks:
    if _fails(assertion, *args):
      raise error(_message(name, spec, error, expected, message))


def check_same_shape(
  named: dict[str, Any], what: str, *, prefix_len: int | None = None, message: str | None = None
) -> None:
  """``chex.assert_equal_shape`` (or ``chex.assert_equal_shape_prefix`` over the first
  `prefix_len` axes) on the named arrays, re-raised as a ValueError naming each one with its
  shape: ``"a (2, 5) and b (2, 6, 4) disagree on {what}."``, or `message` formatted with
  ``shapes`` (name -> shape)."""
  specs = [_spec(v) for v in named.values()]
  if prefix_len is None:
    failed = _fails(chex.assert_equal_shape, specs)
  else:
    failed = _fails(chex.assert_equal_shape_prefix, specs, prefix_len)
  if failed:
    shapes = {n: s.shape for n, s in zip(named, specs, strict=True)}
    if message is not None:
      raise ValueError(message.format(shapes=shapes))
    raise ValueError(" and ".join(f"{n} {s}" for n, s in shapes.items()) + f" disagree on {what}.")


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
  return check_static_int("batch_size", batch_size, 0, "the number of samples")


def check_static_int(name: str, value: Any, minimum: int, meaning: str) -> int:
  """`value` as a Python int >= `minimum` (numpy integers too, never a bool), for options that set shapes.

  A float, a string, None or a bool is a TypeError, a smaller int a ValueError;
  both name `name` and say what it is (`meaning`).
  """
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(
      f"{name} must be a static int >= {minimum} ({meaning}), got {value!r} of type {type(value).__name__}."
    )
  if value < minimum:
    raise ValueError(f"{name} must be a static int >= {minimum} ({meaning}), got {value!r}.")
  return int(value)


@overload
def check_num_classes(num_classes: Any, name: str = ..., *, required: Literal[True]) -> int: ...
@overload
def check_num_classes(num_classes: Any, name: str = ..., *, required: bool = ...) -> int | None: ...
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
  """A TypeError naming `name` unless `leaf` has a real dtype (float or integer; not bool, not complex)."""
  check_array(name, leaf, dtype=REAL, message="{name} must have a real numeric dtype, got {dtype}.")


def leaves_with_names(tree: Any, name: str) -> list[tuple[str, Any]]:
  """Flattens `tree` into (readable path, leaf) pairs for error messages."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [(name + jax.tree_util.keystr(path), leaf) for path, leaf in flat]


def batch_size_of(tree: Any, name: str = "inputs") -> int:
  """The batch size shared by every leaf of `tree`; a clear error otherwise."""
  leaves = leaves_with_names(tree, name)
  if not leaves:
    raise ValueError(f"{name} has no array leaves.")
  for path, leaf in leaves:
    check_array(path, leaf, has_axis=0, message="{name} must have a leading batch axis, got a scalar.")
    check_numeric_leaf(path, leaf)
  check_same_shape(
    dict(leaves),
    "the batch size",
    prefix_len=1,
    message=f"Every leaf of {name} must share the batch size; got {{shapes}}.",
  )
  return np.shape(leaves[0][1])[0]


def check_spatial_shape(spatial_shape: Any, axes: str = "(H, W)") -> tuple[int, int]:
  """Two positive sizes as Python ints (static); a clear error otherwise."""
  h, w = check_spatial_shape_nd(spatial_shape, axes)
  return h, w


def check_spatial_shape_nd(
  spatial_shape: Any, axes: str = "(H, W)", *, ndims: tuple[int, ...] = (2,)
) -> tuple[int, ...]:
  """Positive sizes as Python ints (static), as many as one of `ndims` allows; a clear error otherwise.

  Image methods take two sizes (H, W) (:func:`check_spatial_shape`). The methods that also draw k-D
  regions (CutMix, FMix, GridMix, SmoothMix, ResizeMix, SaliencyMix, Attentive CutMix) pass
  ``ndims=(2, 3)``: (D, H, W) for cuboids over videos and volumes.
  """
  if spatial_shape is None:
    raise ValueError(f"spatial_shape {axes} is required by this method, got None.")
  try:
    shape = tuple(int(s) for s in spatial_shape)
  except TypeError:
    shape = ()
  if len(shape) not in ndims or min(shape) < 1:
    if ndims == (2,):
      raise ValueError(f"spatial_shape must be {axes} with positive sizes, got {spatial_shape!r}.")
    raise ValueError(
      f"spatial_shape must be {axes} (or {len(ndims) > 1 and 'one of ' or ''}{ndims} positive sizes, e.g. "
      f"(D, H, W) for a cuboid), got {spatial_shape!r}."
    )
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


_image_axes = spatial_axes  # spatial_shape_of's argument `spatial_axes` hides the function's name


def default_spatial_axes(ndim: int, data_format: str, k: int = 2) -> tuple[int, ...] | None:
  """The axes a k-D plan covers on a leaf of rank `ndim` when no ``spatial_axes`` is given; None if none fit.

  A leaf of rank ``k + 1`` has no channel axis: axes ``1 .. k``. A longer leaf
  has a channel axis, last (``"NHWC"``) or second (``"NCHW"``), and the plan
  covers the k axes next to it: the ones just before the channels
  (``[B, T, H, W, C]`` with k = 2 gives (2, 3), the H and W of every frame, a
  *tube*; with k = 3, (1, 2, 3), a cuboid) or the last k (``[B, C, T, H, W]``).
  For k = 2 and ranks 3 and 4 this is :func:`spatial_axes`. Leaves of rank
  above ``k + 3`` (more than one axis left over) are refused: name their axes.
  """
  if ndim == k + 1:
    return tuple(range(1, k + 1))
  if ndim < k + 1 or ndim > k + 3:
    return None
  if data_format == "NHWC":
    return tuple(range(ndim - 1 - k, ndim - 1))
  return tuple(range(ndim - k, ndim))


def check_spatial_axes(spatial_axes: Any) -> tuple[int, ...] | None:
  """``spatial_axes`` as a tuple of Python ints, or None; a ValueError/TypeError naming it otherwise.

  The axes of a leaf that carry a plan's region or mask, counted from the
  batch axis 0: positive (never the batch axis), distinct and increasing, e.g.
  ``(2, 3)`` for the H, W of ``[B, T, H, W, C]`` (a tube) or ``(1, 2, 3)`` for
  its T, H, W (a cuboid). The same axes are used on every leaf.
  """
  if spatial_axes is None:
    return None
  if isinstance(spatial_axes, (int, np.integer)) and not isinstance(spatial_axes, bool):
    spatial_axes = (spatial_axes,)
  if not isinstance(spatial_axes, (tuple, list)) or not all(
    isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in spatial_axes
  ):
    raise TypeError(f"spatial_axes must be a tuple of ints (axes of the leaves), got {spatial_axes!r}.")
  axes = tuple(int(a) for a in spatial_axes)
  if not axes or min(axes) < 1 or any(b <= a for a, b in zip(axes, axes[1:], strict=False)):
    raise ValueError(
      "spatial_axes must be distinct, increasing axes >= 1 (axis 0 is the batch), e.g. (2, 3) for the H, W "
      f"of [B, T, H, W, C] or (1, 2, 3) for a cuboid; got {spatial_axes!r}."
    )
  return axes


def spatial_shape_of(
  tree: Any, data_format: str, name: str = "inputs", *, nonempty: bool = False
) -> tuple[int, int]:
  """The (H, W) shared by every leaf of rank 3 or 4; mask methods need exactly this.

  With `nonempty` an empty side (H = 0 or W = 0) is a ValueError naming `name`:
  the methods that draw regions need at least one pixel. Videos and volumes:
  :func:`spatial_shape_nd`.
  """
  h, w = spatial_shape_nd(tree, data_format, name, nonempty=nonempty)
  return h, w


def spatial_shape_nd(
  tree: Any,
  data_format: str,
  name: str = "inputs",
  *,
  nonempty: bool = False,
  spatial_axes: tuple[int, ...] | None = None,
  volumes: bool = False,
  k: int = 2,
) -> tuple[int, ...]:
  """The spatial shape shared by every leaf, of any number of axes.

  By default it is (H, W) of leaves of rank 3 or 4. With `volumes` (the
  methods and plans that mix k-D regions) leaves of rank 5 are read too, and
  the axes are :func:`default_spatial_axes` for a k-D plan (k = 2: the H, W
  of ``[B, T, H, W, C]``, the tube of a video); with `spatial_axes` they are
  those axes of every leaf (then their count is k). With `nonempty` an empty
  side is a ValueError naming `name`: the methods that draw regions need at
  least one pixel.
  """
  check_choice("data_format", data_format, DATA_FORMATS)
  spatial_axes = check_spatial_axes(spatial_axes)
  if spatial_axes is not None and not volumes:
    raise ValueError(
      f"spatial_axes is not supported here (got {spatial_axes!r}): this method mixes [B, H, W] or rank-4 "
      "image batches only."
    )
  leaves = leaves_with_names(tree, name)
  spatial = {}
  for path, leaf in leaves:
    shape = np.shape(leaf)
    if spatial_axes is not None:
      k = len(spatial_axes)
      if len(shape) <= spatial_axes[-1]:
        raise ValueError(
          f"spatial_axes={spatial_axes} names axis {spatial_axes[-1]}, but {path} has shape {shape} "
          f"(rank {len(shape)})."
        )
      axes: tuple[int, ...] | None = spatial_axes
    elif volumes:
      axes = default_spatial_axes(len(shape), data_format, k)
      if axes is None:
        raise ValueError(
          f"This method mixes spatial regions, so {path} must be [B, H, W], an image batch of rank 4 or a "
          f"video/volume batch of rank 5 ({data_format}); got shape {shape}. Pass spatial_axes= to name "
          "the axes of other layouts."
        )
    else:
      check_array(
        path,
        leaf,
        rank={3, 4},
        message="This method mixes spatial regions, so {name} must be [B, H, W] or an image batch of rank 4 "
        f"({data_format}); got shape {{shape}}.",
      )
      axes = _image_axes(len(shape), data_format)
    assert axes is not None  # refused above
    spatial[path] = tuple(shape[a] for a in axes)
  hint = ""
  if volumes and spatial_axes is None and any(len(np.shape(leaf)) > 4 for _, leaf in leaves):
    hint = (
      " Name the axes with spatial_axes= when a leaf has no channel axis (e.g. a label map [B, T, H, W] "
      "beside a video [B, T, H, W, C]: spatial_axes=(2, 3) for tubes)."
    )
  # chex compares stand-ins of the spatial shapes: the axes sit at different places in different leaves.
  what = "(H, W)" if spatial_axes is None and k == 2 else f"the spatial axes {spatial_axes or ''}".rstrip()
  check_same_shape(
    {path: np.broadcast_to(np.False_, hw) for path, hw in spatial.items()},
    what,
    message=f"Every leaf of {name} must share the spatial shape {what}; got {{shapes}}." + hint,
  )
  shape = next(iter(spatial.values()))
  if nonempty and min(shape) < 1:
    if len(shape) == 2:
      raise ValueError(
        f"{name} has the empty spatial shape (H, W) = {shape}; this method draws regions of the "
        "images, which needs H >= 1 and W >= 1."
      )
    raise ValueError(
      f"{name} has the empty spatial shape {shape}; this method draws regions, which needs every "
      "spatial side >= 1."
    )
  return shape
