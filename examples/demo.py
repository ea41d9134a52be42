"""Mixes a batch of real photographs with each jaxmix method and prints λ and label rows.

Run with `make demo`. The photographs ship with scikit-image.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from skimage import data
from skimage.transform import resize

import jaxmix

NAMES = ("astronaut", "coffee", "chelsea", "rocket")


def photos(size: int = 128) -> np.ndarray:
  """Four scikit-image photographs as uint8 [4, size, size, 3]."""
  out = [resize(getattr(data, n)(), (size, size), anti_aliasing=True) for n in NAMES]
  return (np.stack(out) * 255).round().astype(np.uint8)


METHODS = {
  "mixup": lambda k, x, y: jaxmix.mixup(k, x, y, alpha=1.0, num_classes=4),
  "cutmix": lambda k, x, y: jaxmix.cutmix(k, x, y, alpha=1.0, num_classes=4),
  "cutmix (elem)": lambda k, x, y: jaxmix.cutmix(k, x, y, alpha=1.0, mode="elem", num_classes=4),
  "mixup_cutmix (elem)": lambda k, x, y: jaxmix.mixup_cutmix(
    k, x, y, mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem", num_classes=4
  ),
}


def main() -> None:
  images = jnp.asarray(photos())
  labels = jnp.arange(len(NAMES))
  key = jax.random.key(0)
  print(f"batch: {images.shape} {images.dtype}; classes: {', '.join(NAMES)}")
  for name, fn in METHODS.items():
    mixed, targets = jax.jit(fn)(key, images, labels)
    assert mixed.shape == images.shape and mixed.dtype == images.dtype
    print(f"\n{name}")
    for i, row in enumerate(np.asarray(targets)):
      parts = ", ".join(f"{NAMES[j]} {row[j]:.3f}" for j in np.argsort(-row) if row[j] > 0)
      print(f"  sample {i} ({NAMES[i]:9s}) λ = {row[i]:.3f}  label: {parts}")


if __name__ == "__main__":
  main()
