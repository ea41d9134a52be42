"""Mixing a batch that is sharded over devices, with no traffic between them.

Every jaxmix function already works under ``jit`` on a batch with a
``NamedSharding``: XLA's SPMD partitioner keeps the result equal to the
one-device result. But pairing sample ``i`` with ``B - 1 - i`` (flip), with
``i - 1`` (roll) or with a random partner (permute) pairs samples that live on
different devices, so the compiled step moves data: flip is a
collective-permute of every device's whole shard, roll a collective-permute of
one boundary sample per device (plus an all-gather of the int32 partner
index), permute an all-gather of the whole batch onto every device; per-sample
modes add scalar all-reduces (the loops of the sharded Beta sampler).

:func:`local` runs a mixing function inside :func:`jax.shard_map` on each
device's shard instead, so pairs, boxes and masks never leave the device — the
approach of big_vision (mixing inside ``shard_map``) and scenic (folding the
device index into the key under ``pmap``). :func:`local_key` is the per-device
key for code that is already inside a ``shard_map``.

Multi-host: call ``jax.distributed.initialize()`` once per process, build the
mesh over ``jax.devices()`` (all hosts' devices), and let each process build
the global batch from the samples it loaded with
``jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")),
local_batch)``. Every process passes the *same* key (e.g. from one seed and the
step number): device streams come from folding in the device's index along the
data axis, which is global across hosts, so there is nothing per host to
derive, and a key that differed between hosts would break the "shared"
randomness. ``tests/test_multihost.py`` runs this with two CPU processes of 4
devices each and checks that they give what one process with 8 devices gives.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import PartitionSpec as P

from jaxmix._src.core import validation

RANDOMNESS = ("shared", "independent")


def _axes(axis: str | tuple[str, ...]) -> tuple[str, ...]:
  if isinstance(axis, str):
    return (axis,)
  axes = tuple(axis)
  if not axes or not all(isinstance(a, str) for a in axes):
    raise TypeError(f"axis must be a mesh axis name or a tuple of names, got {axis!r}.")
  return axes


def _spec(axes: tuple[str, ...]) -> P:
  """The batch spec: leading axis split over `axes`, the rest whole."""
  return P(axes[0]) if len(axes) == 1 else P(axes)


def local_key(key: jax.Array, axis: str | tuple[str, ...] = "data") -> jax.Array:
  """The key of this device's shard: `key` folded with its index along `axis`.

  Call it inside :func:`jax.shard_map` (or use :func:`local`, which does).
  Devices that share an index along `axis` (peers along a model axis holding
  the same shard) get the same key, so their outputs stay identical.

  Args:
    key: the global PRNG key, the same on every device and host.
    axis: the mesh axis (or tuple of axes) the batch is split over. For a
      tuple the index is row-major over the axes, as in ``P(("a", "b"))``.

  Returns:
    ``jax.random.fold_in(key, jax.lax.axis_index(axis))``.

  Example:
    >>> from jax.sharding import NamedSharding, PartitionSpec as P
    >>> images, labels = jax.device_put((images, labels), NamedSharding(mesh, P("data")))
    >>> def step(key, images, labels):  # runs inside shard_map, on this device's shard
    ...   return jaxmix.mixup(jaxmix.sharding.local_key(key, "data"), images, labels, num_classes=10)
    >>> step = jax.shard_map(step, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=P("data"))
    >>> images, targets = jax.jit(step)(key, images, labels)
    >>> targets.shape
    (8, 10)
  """
  axes = _axes(axis)
  return jax.random.fold_in(key, jax.lax.axis_index(axes if len(axes) > 1 else axes[0]))


def _default_mode(fn: Callable[..., Any]) -> str | None:
  """`fn`'s default `mode`, or None when it has none (or cannot be read)."""
  target = fn.func if isinstance(fn, functools.partial) else fn
  preset = fn.keywords.get("mode") if isinstance(fn, functools.partial) else None
  if preset is not None:
    return preset
  try:
    param = inspect.signature(target).parameters.get("mode")
  except (TypeError, ValueError):
    return None
  if param is None or param.default is inspect.Parameter.empty:
    return None
  return param.default


def _is_array_like(value: Any) -> bool:
  leaves = jax.tree_util.tree_leaves(value)
  return any(isinstance(leaf, (jax.Array, np.ndarray, np.generic)) for leaf in leaves)


def _reshard_if_explicit(tree: Any, mesh: Any, axes: tuple[str, ...], spec: P) -> Any:
  """On Explicit mesh axes shard_map takes only leaves already sharded as `spec`: reshard them.

  (With Auto axes shard_map reshards by itself.) A leaf already sharded so is left as it is.
  """
  explicit = jax.sharding.AxisType.Explicit
  types = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))
  if not any(types[a] == explicit for a in axes):
    return tree
  target = jax.sharding.NamedSharding(mesh, spec) if isinstance(mesh, jax.sharding.Mesh) else spec
  return jax.tree_util.tree_map(lambda leaf: jax.reshard(leaf, target), tree)


def local(
  fn: Callable[..., Any],
  mesh: jax.sharding.Mesh | jax.sharding.AbstractMesh | None = None,
  axis: str | tuple[str, ...] = "data",
  *,
  randomness: str = "shared",
) -> Callable[..., Any]:
  """Wraps a one-call method so each device mixes only its own shard.

  The returned function has `fn`'s signature ``(key, inputs, labels=None,
  **options)``. It runs `fn` inside :func:`jax.shard_map` over `mesh`, on the
  shard of `inputs` and `labels` each device holds: pairing (flip, roll,
  permute), boxes and masks are all within the shard, and the compiled program
  has no all-gather, all-to-all, collective-permute or all-reduce. The output
  is sharded like the input, ``P(axis)`` on the batch axis.

  Mixing is per shard: with flip pairing, sample ``i`` of a shard of size
  ``b`` mixes with sample ``b - 1 - i`` of the same shard, not with
  ``B - 1 - i`` of the global batch.

  Randomness:

  * ``"shared"`` (default): in ``mode="batch"`` every device uses `key`
    itself, so the whole global batch has one λ (one box, one mask, one
    MixUp/CutMix choice) as on one device. Per-sample modes (``"pair"``,
    ``"elem"``) always fold in the device index: the same key would give
    sample ``i`` of every shard the same λ and box, a correlation one device
    never has; folded, every sample gets its own draw.
  * ``"independent"``: every device uses :func:`local_key`, so each shard
    draws its own λ even in batch mode (more variety per step, as with
    scenic's per-device keys).

  The mode is read from ``options["mode"]``, else from `fn`'s default; a
  function without a ``mode`` argument is treated as per-sample (the key is
  folded), which never repeats a stream across devices. In short, device
  ``d`` (its index along `axis`) runs ``fn(key_d, inputs_d, labels_d,
  **options)`` with ``key_d = key`` for shared batch mode and
  ``key_d = jax.random.fold_in(key, d)`` otherwise.

  On a 2-D mesh (e.g. ``("data", "model")``) only `axis` splits the batch;
  devices along the other axes hold the same shard and, since the key is
  folded only with the index along `axis`, compute the same mix. Leaves
  should be sharded ``P(axis)`` (batch split, other axes whole); any other
  sharding is resharded on entry, which moves data.

  Call the wrapped function under ``jit`` (as in a train step): an eager
  ``shard_map`` runs op by op and is slow. ``shard_map``'s ``check_vma`` is
  off, so functions with loops over device-varying values also run.

  Multi-host: every process calls the jitted step with the same global key
  and its local data assembled by
  ``jax.make_array_from_process_local_data``; see the module docstring.

  Args:
    fn: a one-call method ``fn(key, inputs, labels, **options) -> (mixed,
      soft_labels)`` such as :func:`jaxmix.mixup`, or any function of that
      shape whose outputs all have the batch as their leading axis.
    mesh: the device mesh; None takes the mesh set by ``jax.set_mesh``.
    axis: the mesh axis (or tuple of axes) the batch axis is split over.
    randomness: ``"shared"`` or ``"independent"``, see above.

  Returns:
    The wrapped function. Options that are arrays (e.g. a traced ``alpha``)
    are passed replicated; others (``num_classes``, ``mode``, ``pairing``)
    stay static.

  Example:
    >>> mesh = jax.make_mesh((1,), ("data",))        # (8,) on 8 devices: 8 shards
    >>> mix = jaxmix.sharding.local(jaxmix.cutmix, mesh, "data")
    >>> images, targets = jax.jit(functools.partial(mix, num_classes=10))(key, images, labels)
    >>> targets.shape
    (8, 10)
  """
  validation.check_choice("randomness", randomness, RANDOMNESS)
  axes = _axes(axis)
  default_mode = _default_mode(fn)

  @functools.wraps(fn)
  def wrapped(key: jax.Array, inputs: Any, labels: Any = None, **options: Any) -> Any:
    validation.check_key(key)
    the_mesh = mesh if mesh is not None else jax.sharding.get_abstract_mesh()
    if the_mesh is None or the_mesh.empty:
      raise ValueError("mesh is None and no mesh is set with jax.set_mesh; pass a mesh.")
    missing = [a for a in axes if a not in the_mesh.axis_names]
    if missing:
      raise ValueError(f"axis {missing} not in the mesh axes {the_mesh.axis_names}.")
    devices = math.prod(the_mesh.shape[a] for a in axes)
    batch = validation.batch_size_of(inputs)
    if batch % devices:
      raise ValueError(
        f"inputs have batch size {batch}, which does not split evenly over the {devices} devices "
        f"along mesh axis {axis!r}."
      )
    for path, leaf in validation.leaves_with_names(labels, "labels"):  # an array or a pytree of them
      if np.shape(leaf)[:1] != (batch,):
        raise ValueError(f"{path} has shape {np.shape(leaf)} but inputs have batch size {batch}.")
    mode = options.get("mode", default_mode)
    fold = randomness == "independent" or mode != "batch"
    static = {k: v for k, v in options.items() if not _is_array_like(v)}
    dynamic = {k: v for k, v in options.items() if _is_array_like(v)}

    def per_shard(key, inputs, labels, dynamic):
      if fold:
        key = local_key(key, axes)
      return fn(key, inputs, labels, **static, **dynamic)

    spec = _spec(axes)
    inputs, labels = _reshard_if_explicit((inputs, labels), the_mesh, axes, spec)
    mapped = jax.shard_map(
      per_shard,
      mesh=the_mesh,
      in_specs=(P(), spec, spec, P()),
      out_specs=spec,
      # Off so that any `fn` runs, including ones whose loops start from a constant carry and
      # update it from the (device-varying) key; by construction every output varies only
      # along `axis`, which is what `out_specs` states.
      check_vma=False,
    )
    return mapped(key, inputs, labels, dynamic)

  return wrapped
