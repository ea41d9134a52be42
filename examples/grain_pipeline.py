"""A grain input pipeline feeding a jitted Flax train step, with jaxmix mixing on the device.

    python examples/grain_pipeline.py --method cutmix --epochs 2 --train-subset 10000

Where each piece runs, and why:

* **Host, per record (grain)**: a seeded shuffle that changes every epoch, then a random crop
  (2-pixel padding) and horizontal flip of each image with the per-record NumPy generator grain
  hands to ``random_map``, then batching; worker threads read ahead (``ReadOptions``) and the
  next batch is copied to the device while the current step runs. Per-record augmentation
  needs nothing but the record, so it belongs in the loader, in parallel with training.
* **Device, per batch (jaxmix, inside the jitted step)**: MixUp, CutMix and the rest pair the
  samples *of a batch*, so they need the whole batch, which exists only after batching; inside
  the step they are a few fused array operations next to the forward pass, their
  hyperparameters are traced (a schedule never recompiles), and the output is a function of
  the step's key, so a run is reproducible from its seed. Mixing on the host would copy the
  batch through Python once more and tie the augmentation to the loader's worker count.

The same ``--seed`` gives the same batches (order and augmentation) and the same mixing. The
model, step and mixer are ``examples/train.py``'s (``--method`` takes the same names).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any

import grain
import jax
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data as data_lib  # noqa: E402
import models  # noqa: E402
import train as train_lib  # noqa: E402


class Records:
  """A random-access source of ``{"image": [H, W, C], "label": ()}`` records over in-memory arrays."""

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    if len(images) != len(labels):
      raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}.")
    self.images, self.labels = images, labels

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {"image": self.images[index], "label": self.labels[index]}


def crop_flip(record: dict[str, np.ndarray], rng: np.random.Generator, pad: int = 2) -> dict[str, np.ndarray]:
  """Random crop after `pad` pixels of padding (with the image's minimum, its background) and a
  horizontal flip with probability 1/2: the standard augmentation of the CIFAR/Fashion-MNIST recipes."""
  image = record["image"]
  h, w = image.shape[:2]
  padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), constant_values=image.min())
  top, left = rng.integers(0, 2 * pad + 1, size=2)
  image = padded[top : top + h, left : left + w]
  if rng.random() < 0.5:
    image = image[:, ::-1]
  return {"image": np.ascontiguousarray(image), "label": record["label"]}


def pipeline(
  images: np.ndarray,
  labels: np.ndarray,
  *,
  batch_size: int,
  seed: int,
  num_epochs: int,
  augment: bool = True,
  num_threads: int = 2,
  prefetch: int = 8,
) -> grain.IterDataset:
  """Batches of ``{"image": [B, H, W, C], "label": [B]}``: shuffled per epoch, augmented per record.

  ``shuffle`` before ``repeat`` gives every epoch its own permutation of all records; the
  augmentation comes after ``repeat``, so a record is cropped and flipped afresh each epoch.
  Both are functions of `seed` alone. The last incomplete batch of the run is dropped.
  """
  ds = grain.MapDataset.source(Records(images, labels)).seed(seed).shuffle().repeat(num_epochs)
  if augment:
    ds = ds.random_map(crop_flip)
  ds = ds.batch(batch_size, drop_remainder=True)
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))


def to_device(batches: Iterable[dict[str, np.ndarray]], size: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Copies batches to the default device `size` - 1 steps ahead of their use."""
  queue: collections.deque = collections.deque()
  for batch in batches:
    queue.append(jax.device_put(batch))
    if len(queue) == size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


def train(
  method: str = "cutmix",
  *,
  data: data_lib.Dataset,
  epochs: int = 2,
  batch_size: int = 128,
  lr: float = 3e-3,
  width: int = 16,
  seed: int = 0,
  train_subset: int | None = None,
  max_steps: int | None = None,
  progress: bool = True,
) -> dict[str, Any]:
  """Trains ``models.ResNet`` from the grain pipeline; returns config, losses and test metrics."""
  from tqdm.auto import tqdm

  x, y = data.x_train, data.y_train
  if train_subset:
    x, y = x[:train_subset], y[:train_subset]
  steps_per_epoch = len(x) // batch_size
  total = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(1, steps_per_epoch // 2), max(total, 2))
  init_key, mix_key = jax.random.split(jax.random.key(seed))
  state = train_lib.create_state(
    models.ResNet(num_classes=data.num_classes, width=width), init_key, x.shape[1:], schedule
  )
  step = train_lib.make_train_step(train_lib.make_mixer(method, data.num_classes))

  losses = []
  start = time.time()
  batches = pipeline(x, y, batch_size=batch_size, seed=seed, num_epochs=epochs)
  bar = tqdm(total=total, desc=f"{method} (grain)", disable=not progress, mininterval=1.0)
  for i, batch in enumerate(to_device(batches)):
    if i == total:
      break
    state, metrics = step(state, mix_key, batch["image"], batch["label"])
    losses.append(metrics["loss"])
    bar.update()
  bar.close()
  losses = [float(v) for v in jax.device_get(losses)]
  seconds = time.time() - start
  result = train_lib.calibration(train_lib.predict(state, data.x_test), data.y_test)
  return {
    "method": method,
    "dataset": data.name,
    "seed": seed,
    "steps": len(losses),
    "traces": step.traces,
    "train_seconds": seconds,
    "loss": losses,
    **{k: v for k, v in result.items() if k != "bins"},
  }


def plot_losses(result: dict[str, Any], path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
  ax.plot(np.arange(1, len(result["loss"]) + 1), result["loss"], lw=1)
  ax.set(xlabel="step", ylabel="training loss (mixed targets)")
  ax.set_title(
    f"{result['method']} from a grain pipeline: test accuracy {100 * result['accuracy']:.2f} %", fontsize=9
  )
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--method", default="cutmix", help="erm, manifold, or a jaxmix method name")
  p.add_argument("--dataset", default="auto", choices=["auto", "fashion_mnist", "digits"])
  p.add_argument("--data-dir", default=data_lib.DEFAULT_DATA_DIR)
  p.add_argument("--epochs", type=int, default=2)
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--width", type=int, default=16)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--train-subset", type=int, default=10000)
  p.add_argument("--steps", type=int, default=None, help="stop after this many steps")
  p.add_argument("--out", default=None, help="JSON results; a loss-curve PNG goes beside it")
  p.add_argument("--no-progress", action="store_true")
  args = p.parse_args(argv)
  result = train(
    args.method,
    data=data_lib.load(args.dataset, args.data_dir),
    epochs=args.epochs,
    batch_size=args.batch_size,
    width=args.width,
    seed=args.seed,
    train_subset=args.train_subset,
    max_steps=args.steps,
    progress=not args.no_progress,
  )
  print(
    f"{result['method']} on {result['dataset']} from grain: {result['steps']} steps in "
    f"{result['train_seconds']:.0f} s, test accuracy {100 * result['accuracy']:.2f} %, "
    f"NLL {result['nll']:.4f}"
  )
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)
    plot_losses(result, os.path.splitext(args.out)[0] + ".png")
    print(f"wrote {args.out} and its loss curve {os.path.splitext(args.out)[0]}.png")
  return result


if __name__ == "__main__":
  main()
