"""Per-sample random augmentation before mixing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxmix._src.core import validation


def augment_per_sample(key: jax.Array, fn: Callable[[jax.Array, Any], Any], inputs: Any) -> Any:
  """Applies a per-sample random augmentation ``fn(key, sample)`` to every sample.

  Splits `key` into one key per sample and vmaps `fn` over the batch, so
  each sample gets its own random flip/crop/colour draw. The result can be
  mixed right away, all inside one ``jit`` — augment each sample, then mix.

  Args:
    key: PRNG key.
    fn: ``fn(key, sample) -> sample`` for one unbatched sample (or pytree of
      samples, e.g. an image with its mask).
    inputs: an array or pytree of arrays with a shared batch axis.

  Returns:
    The augmented batch, with the structure ``fn`` returns.

  Example (dm-pix, then MixUp, one jit)::

      import dm_pix as pix

      def augment(key, image):
        k_flip, k_crop, k_bright = jax.random.split(key, 3)
        image = pix.random_flip_left_right(k_flip, image)
        image = jnp.pad(image, ((4, 4), (4, 4), (0, 0)), mode="reflect")
        image = pix.random_crop(k_crop, image, (32, 32, 3))
        return pix.random_brightness(k_bright, image, 0.2)

      @jax.jit
      def prepare(key, images, labels):
        k_aug, k_mix = jax.random.split(key)
        images = jaxmix.augment_per_sample(k_aug, augment, images)
        return jaxmix.mixup(k_mix, images, labels, alpha=0.2, num_classes=10)
  """
  validation.check_key(key)
  batch_size = validation.batch_size_of(inputs)
  keys = jax.random.split(key, batch_size)
  return jax.vmap(fn)(keys, inputs)
