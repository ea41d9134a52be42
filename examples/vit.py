"""A tiny ViT on Fashion-MNIST with the DeiT mixing recipe, TransMix labels and TokenMix.

    python examples/vit.py run                  # every (method, seed) run, resumable; ~1.5 h on 2 CPU cores
    python examples/vit.py run --methods aug deit --seeds 3
    python examples/vit.py report               # the table and PNG, from the stored JSON only

Model: :class:`models.ViT` (patch 4 on 28 × 28: 49 tokens and a CLS token; width 48, 3 blocks, 3
heads), which returns the last block's CLS attention next to its logits. Data: a seeded subset of
Fashion-MNIST's training set (``--size`` images, a tenth of them held out as a validation split) and
the whole test set. Vision transformers are data-hungry, so this is the little-data regime in which
the study (``examples/study.py``) found mixing to help ResNets.

Methods, each a few lines of the jitted train step; all of them flip and crop every image first (as
the study's ``aug`` baseline does) and use DeiT's label smoothing 0.1 (Touvron et al. 2021, timm's
``--smoothing 0.1``):

* ``aug``: no mixing (the baseline of the paired differences);
* ``deit``: DeiT's recipe, timm's ``Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5,
  mode="batch")`` = :func:`jaxmix.sample_mixup_cutmix`, labels by area (:func:`jaxmix.mix_labels`);
* ``transmix``: the same plans, labels from the CLS attention of the forward pass on the mixed batch
  (:func:`jaxmix.losses.transmix_labels`, the official code's ``ratio=0.5`` blend of attention and area
  λ; Chen et al., CVPR 2022). The official configs switch to CutMix in 80 % of batches; here the
  switch stays at DeiT's 0.5 so that ``deit`` and ``transmix`` differ only in the label rule;
* ``tokenmix``: :func:`jaxmix.guided.tokenmix` (Liu et al., ECCV 2022) on the 4 × 4 token grid with its
  defaults, where this jaxmix has it.

The recipe's values are the papers'; nothing was tuned, on validation or on test. Training: AdamW
(lr 1e-3, weight decay 0.05, DeiT's optimiser; the lr scaled up from DeiT's 5e-4·batch/512 for this
small model and batch), 5 % linear warm-up then cosine decay, batch 64, ``--steps`` steps. Each run is
one JSON in ``--out`` (config, seed, test accuracy, NLL, ECE, validation accuracy, versions);
``report`` renders mean ± standard error over seeds and the paired difference to ``aug`` with the
same seeds (same subset, initialisation and batch order).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, os.pardir))

import data as data_lib  # noqa: E402
import study  # noqa: E402  (the study's split, data and metrics)

METHODS = ("aug", "deit", "transmix", "tokenmix")
NUM_CLASSES = 10
SMOOTHING = 0.1
BATCH = 64
OUT = os.path.join(HERE, "results", "vit")


@dataclasses.dataclass(frozen=True)
class Config:
  method: str
  seed: int
  size: int = 2000
  steps: int = 1500
  dim: int = 48
  depth: int = 3
  heads: int = 3

  @property
  def key(self) -> str:
    return f"{self.method}-n{self.size}-t{self.steps}-d{self.dim}x{self.depth}-s{self.seed}"


def has_tokenmix() -> bool:
  import importlib.util

  return importlib.util.find_spec("jaxmix.guided") is not None and hasattr(
    importlib.import_module("jaxmix.guided"), "sample_tokenmix"
  )


def make_targets(method: str):
  """``targets(key, x, y) -> (mixed_x, labels_fn)``: the mixing line of the step for `method`.

  ``labels_fn(attention)`` gives the soft targets once the forward pass has run (only TransMix reads
  the attention).
  """
  import dm_pix as pix
  import jax
  import jax.numpy as jnp

  import jaxmix

  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
  if method == "tokenmix" and not has_tokenmix():
    raise ValueError("method 'tokenmix' needs jaxmix.guided.sample_tokenmix, which this jaxmix lacks.")
  if method == "tokenmix":
    import jaxmix.guided

  def augment(key, image):
    k_flip, k_crop = jax.random.split(key)
    image = pix.random_flip_left_right(k_flip, image)
    return pix.random_crop(k_crop, jnp.pad(image, ((2, 2), (2, 2), (0, 0))), (28, 28, 1))

  def targets(key, x, y):
    k_aug, k_mix = jax.random.split(key)
    x = jaxmix.augment_per_sample(k_aug, augment, x)
    kw = {"num_classes": NUM_CLASSES, "label_smoothing": SMOOTHING}
    if method == "aug":
      plan = jaxmix.sample_mixup(k_mix, x.shape[0], alpha=0.0)
      return x, lambda attention: jaxmix.mix_labels(plan, y, **kw)
    if method == "tokenmix":
      plan = jaxmix.guided.sample_tokenmix(k_mix, x.shape[0], x.shape[1:3], patch_size=4)
    else:
      plan = jaxmix.sample_mixup_cutmix(
        k_mix, x.shape[0], x.shape[1:3], mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5
      )
    x = jaxmix.apply(plan, x)
    if method == "transmix":
      return x, lambda attention: jaxmix.losses.transmix_labels(plan, attention, y, **kw)
    return x, lambda attention: jaxmix.mix_labels(plan, y, **kw)

  return targets


@functools.cache
def _programs(method: str, steps: int, dim: int, depth: int, heads: int):
  """Model, optimiser, jitted step and prediction for one configuration (compiled once per process)."""
  import jax
  import models
  import optax

  model = models.ViT(num_classes=NUM_CLASSES, dim=dim, depth=depth, heads=heads)
  schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-3, max(1, steps // 20), steps)
  tx = optax.adamw(schedule, weight_decay=0.05)
  targets = make_targets(method)

  @jax.jit
  def step(params, opt_state, key, x, y):
    x, labels_fn = targets(key, x, y)  # the jaxmix lines
    x = (x - study.MEAN) / study.STD

    def objective(params):
      logits, attention = model.apply(params, x)
      return optax.softmax_cross_entropy(logits, labels_fn(attention)).mean()

    loss, grads = jax.value_and_grad(objective)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def probs_fn(params, x):
    return jax.nn.softmax(model.apply(params, (x - study.MEAN) / study.STD)[0])

  return model, tx, step, probs_fn


def train_and_evaluate(cfg: Config, raw: dict[str, np.ndarray], bar: Any = None) -> dict:
  """Trains one configuration; returns its JSON-ready record."""
  import jax
  import jax.numpy as jnp


  train_idx, val_idx = study.split(cfg.seed, len(raw["x_train"]), cfg.size)
  x_train, y_train = raw["x_train"][train_idx], raw["y_train"][train_idx]
  model, tx, step, probs_fn = _programs(cfg.method, cfg.steps, cfg.dim, cfg.depth, cfg.heads)
  init_key, mix_key = jax.random.split(jax.random.key(cfg.seed))
  params = model.init(init_key, jnp.zeros((1, 28, 28, 1)))
  opt_state = tx.init(params)
  batch = min(BATCH, len(train_idx))
  rng = np.random.default_rng([cfg.seed, 3])
  order = np.empty(0, np.int64)
  losses, curve = [], []
  start = time.time()
  for i in range(cfg.steps):
    if len(order) < batch:
      order = np.concatenate([order, rng.permutation(len(train_idx))])
    idx, order = order[:batch], order[batch:]
    key = jax.random.fold_in(mix_key, i)
    params, opt_state, loss = step(params, opt_state, key, x_train[idx], y_train[idx])
    losses.append(loss)
    if bar is not None:
      bar.update()
    if (i + 1) % 100 == 0 or i + 1 == cfg.steps:
      curve.append([i + 1, float(np.mean(jax.device_get(losses)))])
      losses = []
  seconds = time.time() - start

  def predict(x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(probs_fn(params, x[i : i + 1000])) for i in range(0, len(x), 1000)])

  test = study.calibration(predict(raw["x_test"]), raw["y_test"])
  val = study.calibration(predict(raw["x_train"][val_idx]), raw["y_train"][val_idx])
  return {
    "config": dataclasses.asdict(cfg) | {"key": cfg.key, "batch": batch},
    "train_size": len(train_idx),
    "val_size": len(val_idx),
    "test": {k: test[k] for k in ("accuracy", "nll", "ece")},
    "val": {k: val[k] for k in ("accuracy", "nll", "ece")},
    "train_loss": curve,
    "train_seconds": seconds,
    "versions": study.versions(study.code_commit()),
  }


def configs(args: argparse.Namespace) -> list[Config]:
  shape = {"size": args.size, "steps": args.steps, "dim": args.dim, "depth": args.depth, "heads": args.heads}
  return [Config(m, s, **shape) for s in range(args.seeds) for m in args.methods]


def run(args: argparse.Namespace) -> int:
  from tqdm.auto import tqdm

  study.code_commit()  # the checkout as this process imported it
  if "tokenmix" in args.methods and not has_tokenmix():
    print("this jaxmix has no tokenmix; skipping it")
    args.methods = [m for m in args.methods if m != "tokenmix"]
  done = study.load_results(args.out)
  todo = [c for c in configs(args) if c.key not in done]
  print(f"{len(todo)} runs to do, {len(configs(args)) - len(todo)} stored in {args.out}")
  raw = study.load_raw(args.data_dir)
  bar = tqdm(total=len(todo) * args.steps, desc="vit runs", disable=args.no_progress)
  for cfg in todo:
    bar.set_postfix_str(cfg.key)
    record = train_and_evaluate(cfg, raw, bar)
    study.write_json(os.path.join(args.out, "runs", cfg.key + ".json"), record)
  bar.close()
  return report(args)


def render(records: dict[str, dict], args: argparse.Namespace) -> tuple[str, dict[str, dict]]:
  """The Markdown table of every method with all `args.seeds` seeds stored, and its numbers."""
  by_method: dict[str, dict[int, dict]] = {}
  for cfg in configs(args):
    if cfg.key in records:
      by_method.setdefault(cfg.method, {})[cfg.seed] = records[cfg.key]
  complete = {m: runs for m, runs in by_method.items() if len(runs) == args.seeds}
  if "aug" not in complete:
    raise ValueError(f"the baseline 'aug' does not have its {args.seeds} seeds stored in {args.out}.")
  seeds = sorted(complete["aug"])
  lines = [
    f"Tiny ViT (width {args.dim}, {args.depth} blocks, {args.heads} heads, patch 4) on {args.size} "
    f"Fashion-MNIST training images ({complete['aug'][seeds[0]]['train_size']} trained on, the rest "
    f"validation), {args.steps} steps of batch {BATCH}; {len(seeds)} seeds; test set 10 000 images. "
    "Mean ± standard error over seeds; Δ = paired difference to `aug` (same seeds).",
    "",
    "| method | test acc. % | Δ acc. (pp) | test NLL | Δ NLL | ECE % | Δ ECE (pp) | val. acc. % |",
    "|---|---|---|---|---|---|---|---|",
  ]
  numbers: dict[str, dict] = {}
  base = {k: np.array([complete["aug"][s]["test"][k] for s in seeds]) for k in ("accuracy", "nll", "ece")}
  for method in METHODS:
    if method not in complete:
      continue
    runs = complete[method]
    t = {k: np.array([runs[s]["test"][k] for s in seeds]) for k in ("accuracy", "nll", "ece")}
    val = np.array([runs[s]["val"]["accuracy"] for s in seeds])
    cells = []
    numbers[method] = {}
    for k, scale, fmt in (("accuracy", 100, ".2f"), ("nll", 1, ".3f"), ("ece", 100, ".2f")):
      m, s = study.mean_se(scale * t[k])
      numbers[method][k] = (m, s)
      cells.append(f"{m:{fmt}} ± {s:{fmt}}")
      if method == "aug":
        cells.append("–")
      else:
        dm, ds = study.mean_se(scale * (t[k] - base[k]))
        numbers[method]["delta_" + k] = (dm, ds)
        cells.append(f"{dm:+{fmt}} ± {ds:{fmt}}")
    vm, vs = study.mean_se(100 * val)
    lines.append(f"| {method} | " + " | ".join(cells) + f" | {vm:.2f} ± {vs:.2f} |")
  missing = [m for m in args.methods if m not in complete]
  if missing:
    lines += ["", f"Not shown (fewer than {args.seeds} seeds stored): {', '.join(missing)}."]
  return "\n".join(lines) + "\n", numbers


def plot(numbers: dict[str, dict], path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  methods = [m for m in METHODS if m in numbers and m != "aug"]
  fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
  for ax, (k, label) in zip(
    axes, (("accuracy", "Δ test accuracy (pp)"), ("nll", "Δ test NLL"), ("ece", "Δ ECE (pp)")), strict=True
  ):
    means = [numbers[m]["delta_" + k][0] for m in methods]
    errs = [numbers[m]["delta_" + k][1] for m in methods]
    ax.bar(methods, means, yerr=errs, capsize=4, color=["C1", "C2", "C3"][: len(methods)])
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_title(label + " vs aug")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def report(args: argparse.Namespace) -> int:
  records = study.load_results(args.out)
  text, numbers = render(records, args)
  with open(os.path.join(args.out, "vit.md"), "w") as f:
    f.write(text)
  plot(numbers, os.path.join(args.out, "vit.png"))
  print(text)
  print(f"wrote {os.path.join(args.out, 'vit.md')} and {os.path.join(args.out, 'vit.png')}")
  return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("command", choices=("run", "report"))
  parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--size", type=int, default=2000)
  parser.add_argument("--steps", type=int, default=1500)
  parser.add_argument("--dim", type=int, default=48)
  parser.add_argument("--depth", type=int, default=3)
  parser.add_argument("--heads", type=int, default=3)
  parser.add_argument("--data-dir", default=data_lib.DEFAULT_DATA_DIR)
  parser.add_argument("--out", default=OUT)
  parser.add_argument("--no-progress", action="store_true")
  return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  return run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
  sys.exit(main())
