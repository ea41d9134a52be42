"""A partner cache for local (per-device) mixing: mmdetection's CachedMosaic / CachedMixUp in JAX.

With a small per-device batch (2–8 images under ``jaxmix.sharding.local``)
partners drawn from the batch alone repeat, and a batch of one has no partner
at all. mmdetection's ``CachedMosaic`` and ``CachedMixUp``
(``mmdet/datasets/transforms/transforms.py``, used by RTMDet and YOLOX
configs; defaults ``max_cached_images=40`` and ``20``, ``random_pop=True``)
keep a buffer of recent samples and draw partners from it. Here that buffer
is a :class:`PartnerCache`, a pytree of fixed shape that lives in the train
state and is updated functionally each step:

* :func:`init_partner_cache` makes an empty cache of `size` slots, shaped
  like one batch of images and padded :class:`jaxmix.detection.BoxTargets`;
* :func:`draw_partners` draws each sample's partner uniformly from the batch
  (itself excluded) and the *filled* slots of the cache, never an empty one;
* :func:`update_partner_cache` writes the batch into the cache. Until it is
  full each sample goes to the next free slot. Then ``random_pop=True``
  (mmdetection's default) appends the sample and pops a uniformly random one
  of the ``size + 1`` (so the new sample itself is dropped with probability
  ``1 / (size + 1)``, and otherwise replaces a random slot);
  ``random_pop=False`` pops the oldest (a ring buffer: slot ``position``).

The partners go to the presets' ``partners=`` option
(:func:`jaxmix.detection.yolox_mixup`, :func:`jaxmix.detection.ultralytics_mixup`),
in place of the batch's own ``index``/``take_partner`` pairing, and to
:func:`jaxmix.detection.mosaic`'s (CachedMosaic: a list of ``tiles − 1``
draws, one per other tile). Draw before
updating (as mmdetection's cache holds the samples of earlier calls plus the
current one), and pass the cache to ``jax.jit(..., donate_argnums=...)`` so
XLA updates the buffer in place.

Example train step (``targets`` a :class:`jaxmix.detection.BoxTargets` of the input batch)::

    partners = jaxmix.detection.draw_partners(k1, state.cache, images, targets)
    mixed, t = jaxmix.detection.yolox_mixup(
        k2, images, targets.boxes, targets.classes, targets.valid, partners=partners)
    cache = jaxmix.detection.update_partner_cache(k3, state.cache, images, targets)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxmix._src.core import validation
from jaxmix._src.families import boxes as boxes_lib


@struct.dataclass
class PartnerCache:
  """A fixed-size buffer of past samples to draw partners from (see :func:`init_partner_cache`).

  Attributes:
    images: a pytree like one batch of images, with `size` rows instead of `B`.
    targets: :class:`jaxmix.detection.BoxTargets` with `size` rows of `N`
      boxes (empty slots: zeros, class -1, invalid, weight 0).
    count: int32 scalar, the number of filled slots (0 … size); slots
      ``0 … count − 1`` are filled.
    position: int32 scalar, the slot the next sample goes to in ring
      (``random_pop=False``) order; equals `count` until the cache is full.
  """

  images: Any
  targets: boxes_lib.BoxTargets
  count: jax.Array
  position: jax.Array

  @property
  def size(self) -> int:
    """The number of slots (static)."""
    return self.targets.classes.shape[0]


def _check_targets(targets: Any, name: str) -> boxes_lib.BoxTargets:
  if not isinstance(targets, boxes_lib.BoxTargets):
    raise TypeError(
      f"{name} must be a jaxmix.detection.BoxTargets (boxes, classes, valid, weights), "
      f"got {type(targets).__name__}."
    )
  boxes, classes, valid = boxes_lib.check_box_targets(targets.boxes, targets.classes, targets.valid)
  validation.check_same_shape(
    {f"{name}.weights": targets.weights, f"{name}.boxes": boxes}, "[B, N]", prefix_len=2
  )
  return boxes_lib.BoxTargets(boxes, classes, valid, jnp.asarray(targets.weights, jnp.float32))


def init_partner_cache(example_images: Any, example_targets: boxes_lib.BoxTargets, size: int) -> PartnerCache:
  """An empty :class:`PartnerCache` of `size` slots shaped like one batch.

  Args:
    example_images: a batch of images `[B, H, W, C]` (or a pytree of such);
      only shapes and dtypes are read.
    example_targets: :class:`jaxmix.detection.BoxTargets` with `N` boxes per
      image; only shapes are read.
    size: the number of cached samples, a static int ≥ 1 (mmdetection:
      ``max_cached_images`` 40 for CachedMosaic, 20 for CachedMixUp).

  Returns:
    A :class:`PartnerCache` with ``count == 0``.

  Example:
    >>> t = jaxmix.detection.BoxTargets(boxes, classes, valid, valid.astype(jnp.float32))
    >>> cache = jaxmix.detection.init_partner_cache(images, t, 20)
    >>> cache.images.shape, cache.targets.boxes.shape, int(cache.count)
    ((20, 32, 32, 3), (20, 3, 4), 0)
  """
  size = validation.check_static_int("size", size, 1, "the number of cached samples")
  validation.batch_size_of(example_images, "example_images")
  targets = _check_targets(example_targets, "example_targets")
  n = targets.classes.shape[1]
  images = jax.tree_util.tree_map(
    lambda x: jnp.zeros((size,) + tuple(jnp.shape(x))[1:], jnp.asarray(x).dtype), example_images
  )
  empty = boxes_lib.BoxTargets(
    boxes=jnp.zeros((size, n, 4), jnp.float32),
    classes=jnp.full((size, n), -1, jnp.int32),
    valid=jnp.zeros((size, n), bool),
    weights=jnp.zeros((size, n), jnp.float32),
  )
  zero = jnp.zeros((), jnp.int32)
  return PartnerCache(images=images, targets=empty, count=zero, position=zero)


def _check_cache(cache: Any, images: Any, targets: boxes_lib.BoxTargets) -> None:
  """A ValueError naming `cache` unless its leaves match the batch's per-sample shapes and dtypes."""
  if not isinstance(cache, PartnerCache):
    raise TypeError(
      f"cache must be a jaxmix.detection.PartnerCache (from init_partner_cache), got {type(cache).__name__}."
    )
  ours = jax.tree_util.tree_structure(images)
  theirs = jax.tree_util.tree_structure(cache.images)
  if ours != theirs:  # type: ignore[operator]  # jaxlib ships no stub for PyTreeDef
    raise ValueError(f"cache holds images of structure {theirs}, but images is {ours}.")
  pairs = list(zip(jax.tree_util.tree_leaves(cache.images), jax.tree_util.tree_leaves(images), strict=True))
  fields = ("boxes", "classes", "valid", "weights")
  pairs += [(getattr(cache.targets, f), getattr(targets, f)) for f in fields]
  for c, x in pairs:
    if tuple(c.shape[1:]) != tuple(jnp.shape(x)[1:]) or c.dtype != jnp.asarray(x).dtype:
      raise ValueError(
        f"cache has a leaf of per-sample shape {tuple(c.shape[1:])} and dtype {c.dtype}, but the batch has "
        f"{tuple(jnp.shape(x)[1:])} and {jnp.asarray(x).dtype}; make the cache with init_partner_cache from "
        "a batch like this one."
      )


def draw_partners(
  key: jax.Array, cache: PartnerCache, images: Any, targets: boxes_lib.BoxTargets
) -> tuple[Any, boxes_lib.BoxTargets, jax.Array]:
  """Each sample's partner, drawn uniformly from the other samples of the batch and the filled slots.

  Sample `i` draws from ``B − 1 + count`` candidates: the batch without
  itself, then cache slots ``0 … count − 1``. Empty slots are never drawn.
  When there is no candidate (a batch of one and an empty cache) the sample
  is its own partner.

  Args:
    key: PRNG key.
    cache: a :class:`PartnerCache` shaped like this batch (ValueError otherwise).
    images: `[B, H, W, C]` (or the pytree the cache was made from).
    targets: :class:`jaxmix.detection.BoxTargets` `[B, N]`.

  Returns:
    ``(partner_images, partner_targets, source)``: the partners, shaped like
    the batch, and int32 `[B]` where each came from: ``0 … B − 1`` a sample
    of the batch, ``B + s`` cache slot `s`.

  Example:
    >>> t = jaxmix.detection.BoxTargets(boxes, classes, valid, valid.astype(jnp.float32))
    >>> cache = jaxmix.detection.init_partner_cache(images, t, 20)
    >>> p_images, p_targets, source = jaxmix.detection.draw_partners(key, cache, images, t)
    >>> p_images.shape, bool((source < 8).all())    # an empty cache: partners from the batch
    ((8, 32, 32, 3), True)
  """
  targets = _check_targets(targets, "targets")
  _check_cache(cache, images, targets)
  b = validation.batch_size_of(images, "images")
  validation.check_array(
    "targets.boxes",
    targets.boxes,
    batch_size=b,
    message=f"targets have batch size {{shape[0]}} but images {b}.",
  )
  count = jnp.asarray(cache.count, jnp.int32)
  candidates = b - 1 + count
  u = jax.random.uniform(key, (b,))
  j = jnp.minimum(jnp.floor(u * candidates).astype(jnp.int32), jnp.maximum(candidates - 1, 0))
  i = jnp.arange(b, dtype=jnp.int32)
  # j < B − 1 is a batch sample (skipping i); j ≥ B − 1 is cache slot j − (B − 1).
  source = jnp.where(j < b - 1, j + (j >= i), b + j - (b - 1))
  source = jnp.where(candidates > 0, source, i).astype(jnp.int32)

  def take(x: Any, c: Any) -> jax.Array:
    return jnp.take(jnp.concatenate([jnp.asarray(x), jnp.asarray(c)], axis=0), source, axis=0)

  p_images = jax.tree_util.tree_map(take, images, cache.images)
  p_targets = jax.tree_util.tree_map(take, targets, cache.targets)
  return p_images, p_targets, source


def update_partner_cache(
  key: jax.Array,
  cache: PartnerCache,
  images: Any,
  targets: boxes_lib.BoxTargets,
  *,
  random_pop: bool = True,
) -> PartnerCache:
  """The cache with the batch written in (functional; donate `cache` to update it in place).

  Samples are written one after another, in batch order. While
  ``count < size`` a sample goes to slot ``count``. Once full:

  * ``random_pop=True`` (mmdetection's default): mmdetection appends the
    sample and pops a uniformly random entry of the ``size + 1``; here a slot
    ``r`` uniform in ``0 … size`` is drawn, ``r == size`` drops the new sample
    and any other `r` overwrites slot `r`;
  * ``random_pop=False``: the oldest sample is replaced (slot ``position``,
    a ring buffer).

  ``position`` advances by one (mod `size`) per sample in both modes.

  Args:
    key: PRNG key (used by ``random_pop``).
    cache: a :class:`PartnerCache` shaped like this batch (ValueError otherwise).
    images: `[B, H, W, C]` (or the pytree the cache was made from).
    targets: :class:`jaxmix.detection.BoxTargets` `[B, N]`.
    random_pop: mmdetection's ``random_pop`` (static).

  Returns:
    The updated :class:`PartnerCache`.

  Example:
    >>> t = jaxmix.detection.BoxTargets(boxes, classes, valid, valid.astype(jnp.float32))
    >>> cache = jaxmix.detection.init_partner_cache(images, t, 20)
    >>> cache = jaxmix.detection.update_partner_cache(key, cache, images, t)
    >>> int(cache.count), int(cache.position)
    (8, 8)
  """
  targets = _check_targets(targets, "targets")
  _check_cache(cache, images, targets)
  b = validation.batch_size_of(images, "images")
  if b == 0:
    return cache
  size = cache.size
  draws = jax.random.randint(key, (b,), 0, size + 1)

  def write(k: int | jax.Array, state: tuple[Any, Any, jax.Array, jax.Array]) -> tuple[Any, ...]:
    imgs, tgts, count, position = state
    full = count >= size
    if random_pop:
      slot = jnp.where(full, draws[k], count)
    else:
      slot = jnp.where(full, position, count)
    keep = slot < size
    slot = jnp.minimum(slot, size - 1)

    def put(c: jax.Array, x: jax.Array) -> jax.Array:
      new = jax.lax.dynamic_index_in_dim(jnp.asarray(x), k, 0, keepdims=True).astype(c.dtype)
      old = jax.lax.dynamic_index_in_dim(c, slot, 0, keepdims=True)
      return jax.lax.dynamic_update_index_in_dim(c, jnp.where(keep, new, old), slot, 0)

    imgs = jax.tree_util.tree_map(put, imgs, images)
    tgts = jax.tree_util.tree_map(put, tgts, targets)
    return imgs, tgts, jnp.minimum(count + 1, size), (position + 1) % size

  count, position = jnp.asarray(cache.count, jnp.int32), jnp.asarray(cache.position, jnp.int32)
  state = (cache.images, cache.targets, count, position)
  imgs, tgts, count, position = jax.lax.fori_loop(0, b, write, state)
  return PartnerCache(images=imgs, targets=tgts, count=count, position=position)


def check_partners(
  partners: Any, images: Any, batch_size: int, n: int, name: str = "partners", same_dtype: bool = False
) -> tuple[Any, boxes_lib.BoxTargets]:
  """``(images, targets)`` of explicit partners, checked against the batch (ValueError naming `name`).

  `partners` is ``(images, targets)`` or the ``(images, targets, source)`` of
  :func:`draw_partners`; its images must have the structure and leaf shapes of
  `images` (and their dtypes with `same_dtype`), its targets `batch_size` rows of `n` boxes.
  """
  if not isinstance(partners, tuple) or len(partners) not in (2, 3):
    raise ValueError(
      f"{name} must be (images, targets) or the (images, targets, source) of draw_partners, got "
      f"{type(partners).__name__}."
    )
  p_images, p_targets = partners[0], partners[1]
  if not isinstance(p_targets, boxes_lib.BoxTargets):
    raise TypeError(f"{name}[1] must be a jaxmix.detection.BoxTargets, got {type(p_targets).__name__}.")
  theirs, ours = jax.tree_util.tree_structure(p_images), jax.tree_util.tree_structure(images)
  if theirs != ours:  # type: ignore[operator]  # jaxlib ships no stub for PyTreeDef
    raise ValueError(f"{name}[0] must have the structure of images.")
  for p, x in zip(jax.tree_util.tree_leaves(p_images), jax.tree_util.tree_leaves(images), strict=True):
    if jnp.shape(p) != jnp.shape(x):
      raise ValueError(f"{name}[0] has a leaf of shape {jnp.shape(p)}, but images has {jnp.shape(x)}.")
    if same_dtype and jnp.asarray(p).dtype != jnp.asarray(x).dtype:
      raise ValueError(
        f"{name}[0] has a leaf of dtype {jnp.asarray(p).dtype}, but images has {jnp.asarray(x).dtype}."
      )
  boxes_lib.check_box_targets(
    p_targets.boxes, p_targets.classes, p_targets.valid, batch_size, "the images have"
  )
  if p_targets.classes.shape[1] != n:
    raise ValueError(f"{name}[1] has {p_targets.classes.shape[1]} boxes per image, but boxes has {n}.")
  return p_images, p_targets
