"""The pictures of the method-family pages, drawn with jaxmix.viz when the docs are built.

``conf.py`` calls :func:`make_all` once per build (in the Sphinx process, before the pages are read);
each ``fig_*`` function below draws one PNG and is shown on its page (``literalinclude :pyobject:``),
so the code on the page is the code that drew the picture. Small on purpose: four 64 × 64 photographs
bundled with scikit-image (eight for sharding), a handful of methods, one jit each.
"""

from __future__ import annotations

import functools
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

import jaxmix
from jaxmix import viz

SIZE = 64
NAMES = ["astronaut", "coffee", "cat", "rocket"]
# Hand-placed boxes on the 64 × 64 crops, [left, top, right, bottom, class] (-1: padding).
BOX_CLASSES = ["face", "helmet", "cup", "spoon", "eye", "rocket"]
PAD = [0, 0, 0, 0, -1]
ANNOTATIONS = [
  [[19, 2, 35, 22, 0], [42, 36, 64, 62, 1], PAD],  # astronaut: face, helmet
  [[10, 0, 51, 33, 2], [21, 29, 46, 51, 3], PAD],  # coffee: cup, spoon
  [[7, 11, 24, 25, 4], [40, 11, 57, 26, 4], PAD],  # cat: two eyes
  [[30, 10, 39, 58, 5], PAD, PAD],  # rocket
]


@functools.cache
def photos() -> jax.Array:
  """Four uint8 photographs `[4, 64, 64, 3]`: centre squares of scikit-image's samples."""
  from skimage import data
  from skimage.transform import resize

  out = []
  for load in (data.astronaut, data.coffee, data.chelsea, data.rocket):
    image = load()
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    square = resize(image[top : top + s, left : left + s], (SIZE, SIZE), anti_aliasing=True)
    out.append((square * 255).round().astype(np.uint8))
  return jnp.asarray(np.stack(out))


def fig_mixup(path):
  @jax.jit
  def mix(key, images, labels):
    plan = jaxmix.sample_mixup(key, 4, alpha=1.0)
    return jaxmix.apply(plan, images), jaxmix.mix_labels(plan, labels, num_classes=4), plan

  mixed, targets, plan = mix(jax.random.key(0), photos(), jnp.arange(4))
  fig = viz.show_batch(mixed, targets, class_names=NAMES, plan=plan, show_partner=True)
  fig.savefig(path)


def fig_cutmix(path):
  @jax.jit
  def mix(key, images, labels):
    plan = jaxmix.sample_cutmix(key, 4, (SIZE, SIZE), alpha=1.0)
    return jaxmix.apply(plan, images), jaxmix.mix_labels(plan, labels, num_classes=4), plan

  mixed, targets, plan = mix(jax.random.key(1), photos(), jnp.arange(4))
  fig = viz.show_batch(mixed, targets, class_names=NAMES, plan=plan, show_partner=True, show_mask=True)
  fig.savefig(path)


def fig_fmix(path):
  fmix = jax.jit(functools.partial(jaxmix.fmix, alpha=1.0, num_classes=4))
  mixed, targets = fmix(jax.random.key(2), photos(), jnp.arange(4))
  fig = viz.show_batch(mixed, targets, class_names=NAMES)
  fig.savefig(path)


def fig_lambda(path):
  draw = lambda k: jaxmix.sample_mixup(k, 1, alpha=0.4)  # noqa: E731
  fig = viz.plot_lambda(draw, num_draws=2000, title="MixUp, α = 0.4")
  fig.savefig(path)


def _boxes():
  ann = np.asarray(ANNOTATIONS, np.float32)
  return jnp.asarray(ann[..., :4]), jnp.asarray(ann[..., 4].astype(np.int32))


def fig_detection_cutmix(path):
  boxes, classes = _boxes()
  mixed, targets = jax.jit(jaxmix.detection.cutmix)(jax.random.key(3), photos(), boxes, classes, classes >= 0)
  fig = viz.show_batch(mixed, boxes=targets, class_names=BOX_CLASSES)
  fig.savefig(path)


def fig_detection_mosaic(path):
  boxes, classes = _boxes()
  mixed, targets = jax.jit(jaxmix.detection.mosaic)(jax.random.key(4), photos(), boxes, classes, classes >= 0)
  fig = viz.show_batch(mixed, boxes=targets, class_names=BOX_CLASSES)
  fig.savefig(path)


def _label_maps(images):
  """Three classes per pixel, dark / mid / bright, from each image's grey-level terciles."""
  grey = np.asarray(images, np.float32).mean(-1)
  cuts = np.quantile(grey.reshape(len(grey), -1), [1 / 3, 2 / 3], axis=1).T  # [B, 2]
  return jnp.asarray((grey[..., None] > cuts[:, None, None, :]).sum(-1).astype(np.int32))


def _colour(maps):
  palette = np.array([[40, 40, 120], [40, 160, 120], [250, 220, 60]], np.uint8)
  return palette[np.asarray(maps)]


def fig_classmix(path):
  images = photos()
  classmix = jax.jit(functools.partial(jaxmix.segmentation.classmix, num_classes=3))
  mixed, maps = classmix(jax.random.key(5), images, _label_maps(images))
  rows = np.concatenate([np.asarray(mixed), _colour(maps)])  # images above their mixed label maps
  titles = [f"image {i}" for i in range(4)] + [f"map {i}" for i in range(4)]
  fig = viz.show_batch(rows, titles=titles, ncols=4)
  fig.savefig(path)


def fig_sequence(path):
  # Four "spectrograms" [T = 48 frames, F = 16 bins] of different lengths, padded to T.
  t, f = np.arange(48)[:, None], np.arange(16)[None, :]
  lengths = np.array([48, 36, 24, 40])
  seqs = np.stack([0.5 + 0.5 * np.sin(t / (2 + k) + f / 3) for k in range(4)])  # [4, 48, 16]
  mask = np.arange(48)[None, :] < lengths[:, None]
  seqs = np.where(mask[..., None], seqs, 0.0).astype(np.float32)

  @jax.jit
  def mix(key, seqs, mask):
    plan = jaxmix.sequence.sample_mixup(key, mask, alpha=1.0, mode="elem")
    mixed = jaxmix.apply(plan, seqs)  # plan.mask: the output's padding mask, the union of the two
    return jnp.where(plan.mask[..., None], mixed, 0.0), plan

  mixed, plan = mix(jax.random.key(6), seqs, mask)
  shown = np.asarray(mixed).transpose(0, 2, 1)  # [B, F, T]
  lengths, lams = np.asarray(plan.mask).sum(1), np.asarray(plan.lam)
  titles = [f"{n} frames, λ={w:.2f}" for n, w in zip(lengths, lams, strict=True)]
  fig = viz.show_batch(shown, titles=titles, ncols=2, panel_size=2.6)
  fig.savefig(path)


def fig_sharding(path):
  # Eight images over the devices of a "data" mesh (4 simulated CPU devices when the build has them):
  # every image's partner is on its own device, so the mix needs no communication.
  images = jnp.concatenate([photos(), photos()[:, :, ::-1]])
  n = 4 if len(jax.devices()) >= 4 else 1
  mesh = jax.make_mesh((n,), ("data",))
  mix = jax.jit(functools.partial(jaxmix.sharding.local(jaxmix.cutmix, mesh, "data"), num_classes=8))
  mixed, targets = mix(jax.random.key(7), images, jnp.arange(8))
  shard = 8 // n
  titles = [
    f"#{i} device {i // shard}: " + "+".join(str(j) for j in np.flatnonzero(row))
    for i, row in enumerate(np.asarray(targets))
  ]
  fig = viz.show_batch(mixed, titles=titles, ncols=4)
  fig.savefig(path)


def fig_multilabel(path):
  tags = ["person", "animal", "drink", "vehicle", "sky"]
  multi_hot = jnp.array([[1, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 1, 1]], jnp.float32)

  @jax.jit
  def mix(key, images, multi_hot):
    y = jaxmix.losses.smooth_multi_hot(multi_hot, smoothing=0.1)  # before mixing, as in timm
    return jaxmix.cutmix(key, images, y)

  mixed, targets = mix(jax.random.key(8), photos(), multi_hot)
  fig = viz.show_batch(mixed, targets, class_names=tags, top_k=4)
  fig.savefig(path)


def fig_per_sample(path):
  def augment(key, image):  # per image: a random flip and a random 56 × 56 crop, resized back
    k_flip, k_crop = jax.random.split(key)
    image = jnp.where(jax.random.bernoulli(k_flip), image[:, ::-1], image)
    top, left = jax.random.randint(k_crop, (2,), 0, 9)
    crop = jax.lax.dynamic_slice(image, (top, left, 0), (56, 56, 3))
    return jax.image.resize(crop, image.shape, "linear")

  @jax.jit
  def prepare(key, step, images, labels):
    k_aug, k_mix = jax.random.split(key)
    images = jaxmix.augment_per_sample(k_aug, augment, images.astype(jnp.float32) / 255)
    alpha = jaxmix.off_after(1.0, step, off_step=1_000)  # mixing on until step 1000, no recompiling
    return jaxmix.mixup(k_mix, images, labels, alpha=alpha, num_classes=4)

  mixed, targets = prepare(jax.random.key(9), 100, photos(), jnp.arange(4))
  fig = viz.show_batch(mixed, targets, class_names=NAMES)
  fig.savefig(path)


FIGURES = {
  "mixup": fig_mixup,
  "cutmix": fig_cutmix,
  "fmix": fig_fmix,
  "lambda": fig_lambda,
  "detection-cutmix": fig_detection_cutmix,
  "detection-mosaic": fig_detection_mosaic,
  "classmix": fig_classmix,
  "sequence": fig_sequence,
  "sharding": fig_sharding,
  "multilabel": fig_multilabel,
  "per-sample": fig_per_sample,
}


def make_all(outdir: str | pathlib.Path) -> list[pathlib.Path]:
  """Draws every figure into `outdir` (``<name>.png``); returns their paths."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  outdir = pathlib.Path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  paths = []
  for name, draw in FIGURES.items():
    path = outdir / f"{name}.png"
    partial = outdir / f".{name}.{os.getpid()}.png"  # then renamed: a concurrent build never reads half
    draw(partial)
    plt.close("all")
    os.replace(partial, path)
    paths.append(path)
  return paths
