"""Who mixes with whom.

* ``flip``: sample ``i`` takes ``B - 1 - i`` (timm). With an odd batch the
  middle sample is its own partner, so it comes out unchanged with its own
  label (its λ is reported as 1).
* ``roll``: sample ``i`` takes ``i - 1`` (torchvision, big_vision).
* ``permute``: a uniformly random permutation (a gather, not a slice).

flip and roll lower to XLA ``reverse`` and ``slice``/``concatenate``, never to a
gather, so they fuse with the blend into one pass over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmix._src import validation


def partner_index(key: jax.Array, batch_size: int, pairing: str, *, involution: bool = False) -> jax.Array:
  """int32 `[B]`: the partner of each sample.

  Args:
    key: PRNG key, used only by ``permute``.
    batch_size: B.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``.
    involution: require that partners are mutual (``pair`` mode). flip
      already is; ``permute`` then draws random disjoint pairs; ``roll``
      cannot be, and raises.
  """
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  ar = jnp.arange(batch_size, dtype=jnp.int32)
  if pairing == "flip":
    return ar[::-1]
  if pairing == "roll":
    if involution and batch_size > 2:
      raise ValueError(
        "mode='pair' needs mutual partners; pairing='roll' pairs i with i-1, which is not "
        "mutual. Use pairing='flip' or 'permute'."
      )
    return jnp.roll(ar, 1)
  perm = jax.random.permutation(key, batch_size).astype(jnp.int32)
  if not involution:
    return perm
  # Random disjoint pairs: consecutive entries of a random order swap places;
  # with an odd batch the last entry of the order is its own partner.
  swapped = ar ^ 1
  swapped = jnp.where(swapped >= batch_size, ar, swapped)
  index = jnp.zeros(batch_size, jnp.int32).at[perm].set(perm[swapped])
  return index


def take_partner(x: jax.Array, pairing: str, index: jax.Array, axis: int = 0) -> jax.Array:
  """Each sample's partner along `axis`: a slice for flip/roll, a gather for permute.

  On a mesh with Explicit axes (``jax.make_mesh``'s default) a roll or gather
  along a sharded batch axis has no sharding rule under plain ``jit``; there it
  runs under ``jax.sharding.auto_axes`` so XLA picks the communication, and the
  result keeps `x`'s sharding. (``jaxmix.local`` avoids the communication.)
  """
  if pairing == "flip":
    return jnp.flip(x, axis)
  if pairing == "roll":
    take = lambda v, i: jnp.roll(v, 1, axis)
  else:
    take = lambda v, i: jnp.take(v, i, axis=axis)
  sharding = getattr(jax.typeof(x), "sharding", None)
  spec = getattr(sharding, "spec", None)
  mesh = getattr(sharding, "mesh", None)
  explicit = mesh is not None and any(
    t == jax.sharding.AxisType.Explicit for t in getattr(mesh, "axis_types", ())
  )
  if explicit and spec is not None and len(spec) > axis and spec[axis] is not None:
    return jax.sharding.auto_axes(take, out_sharding=sharding)(x, index)
  return take(x, index)
