"""Who mixes with whom.

* ``flip``: sample ``i`` takes ``B - 1 - i`` (timm). With an odd batch the
  middle sample is its own partner, so it comes out unchanged with its own
  label (its λ is reported as 1).
* ``roll``: sample ``i`` takes ``i - 1`` (torchvision, big_vision).
* ``permute``: a uniformly random permutation (a gather, not a slice). It can
  map a sample to itself (about one sample per batch on average, whatever B);
  such a sample comes back unchanged with λ = 1. In ``pair`` mode the pairs
  are disjoint and only the odd one out of an odd batch is alone.

flip and roll lower to XLA ``reverse`` and ``slice``/``concatenate``, never to a
gather, so they fuse with the blend into one pass over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def take_partner(x: jax.Array, pairing: str, index: jax.Array, axis: int = 0) -> jax.Array:
  """Each sample's partner along `axis`: a slice for flip/roll, a gather for permute.

  On a mesh with Explicit axes (``jax.make_mesh``'s default) a roll or gather
  along a sharded batch axis has no sharding rule under plain ``jit``; there it
  runs under ``jax.sharding.auto_axes`` so XLA picks the communication, and the
  result keeps `x`'s sharding. (``jaxmix.sharding.local`` avoids the communication.)
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
