"""×2 super-resolution on Fashion-MNIST with no mixing, MixUp, CutBlur and MoA (``jaxmix.restoration``).

    python examples/restoration.py run          # all 12 runs, resumable; ~32 min on 2 busy CPU cores
    python examples/restoration.py run --methods none cutblur --seeds 3
    python examples/restoration.py report       # the table and PNG, from the stored JSON only
    python examples/restoration.py figure       # mixed LR/HR pairs of every method (pairs.png)

The setting of Yoo, Ahn and Sohn, "Rethinking Data Augmentation for Image Super-resolution: A
Comprehensive Analysis and a New Strategy" (CVPR 2020; code: github.com/clovaai/cutblur), shrunk to a
CPU: HR images are Fashion-MNIST's 28 × 28 in [0, 1], LR images their 2 × 2 area averages (14 × 14).
As the official ``solver.py`` does before augmenting, the LR input is upsampled to the HR size with
nearest interpolation, so that CutBlur can swap patches between input and target; the model works at
the HR size and predicts a residual over that input (a head conv, ``--blocks`` residual blocks of two
3 × 3 convs of width ``--width``, a tail conv), trained with the L1 loss (the official loss) by Adam
(lr 1e-3 decayed by cosine), batch 32, ``--steps`` steps on a seeded subset of ``--size`` training
images.

Methods, each one line of the jitted train step through the public API:

* ``none``: no mixing (the baseline of the paired differences);
* ``mixup``: ``jaxmix.sample_mixup(key, B, alpha=1.2, pairing="permute")`` applied to the pair
  ``(lr, hr)`` by ``jaxmix.apply``: one λ ~ Beta(1.2, 1.2) per batch and one permutation for input and
  target (MoA's MixUp α);
* ``cutblur``: ``jaxmix.restoration.cutblur`` with the official α = 0.7 (one patch per batch);
* ``moa``: ``jaxmix.restoration.moa`` with the official ``--use_moa`` policy (``max_value=1.0`` for
  images in [0, 1]); the L1 loss is masked where cutout dropped pixels, as the official code does.

Evaluation on the first ``--test-size`` images of the test set: PSNR and SSIM (``dm_pix``, range
[0, 1], the prediction clipped to it), averaged over images; nearest and bicubic upsampling of the same
LR images are the reference rows. Nothing was tuned. Each run is one JSON in ``--out`` (config, seed,
metrics, loss curve, seconds, versions, the jaxmix commit); ``report`` renders mean ± standard error
over seeds and the paired difference to ``none`` with the same seeds (same subset, initialisation,
batch order and keys), and refuses a table whose baseline lacks any of its seeds.
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
import study  # noqa: E402  (the study's data loading, JSON records and commit)

METHODS = ("none", "mixup", "cutblur", "moa")
SCALE = 2
BATCH = 32
LR = 1e-3
MIXUP_ALPHA = 1.2
CUTBLUR_ALPHA = 0.7
OUT = os.path.join(HERE, "results", "restoration")


@dataclasses.dataclass(frozen=True)
class Config:
  method: str
  seed: int
  size: int = 5000
  steps: int = 2000
  width: int = 16
  blocks: int = 2
  test_size: int = 2000

  @property
  def key(self) -> str:
    shape = f"n{self.size}-t{self.steps}-w{self.width}x{self.blocks}-e{self.test_size}"
    return f"{self.method}-{shape}-s{self.seed}"


def downsample(hr: np.ndarray) -> np.ndarray:
  """``[N, H, W, C]`` → ``[N, H/2, W/2, C]`` by 2 × 2 area averaging."""
  n, h, w, c = hr.shape
  return hr.reshape(n, h // SCALE, SCALE, w // SCALE, SCALE, c).mean(axis=(2, 4))


def upsample_nearest(lr: np.ndarray) -> np.ndarray:
  """The LR input at the HR size, as the official ``solver.py`` (``F.interpolate``, nearest)."""
  return np.repeat(np.repeat(lr, SCALE, axis=1), SCALE, axis=2)


def make_pairs(hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(lr_up, hr)``: the nearest-upsampled LR input and its HR target, float32 of one shape."""
  hr = np.asarray(hr, np.float32)
  return upsample_nearest(downsample(hr)).astype(np.float32), hr


def make_mix(method: str):
  """``mix(key, lr_up, hr) -> (lr_up, hr, loss_mask)``: the mixing line of the step for `method`."""
  import jax.numpy as jnp

  import jaxmix
  import jaxmix.restoration

  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")

  def mix(key, lr, hr):
    ones = jnp.ones(hr.shape[:3], jnp.float32)
    if method == "none":
      return lr, hr, ones
    if method == "mixup":
      plan = jaxmix.sample_mixup(key, lr.shape[0], alpha=MIXUP_ALPHA, pairing="permute")
      lr, hr = jaxmix.apply(plan, (lr, hr))
      return lr, hr, ones
    if method == "cutblur":
      lr, hr = jaxmix.restoration.cutblur(key, lr, hr, alpha=CUTBLUR_ALPHA)
      return lr, hr, ones
    return jaxmix.restoration.moa(key, lr, hr, max_value=1.0, return_mask=True)

  return mix


def make_model(width: int, blocks: int):
  import flax.linen as nn

  class ResidualSR(nn.Module):
    """A head conv, residual blocks, a tail conv; the output is the input plus that residual."""

    width: int
    blocks: int

    @nn.compact
    def __call__(self, x):
      h = nn.Conv(self.width, (3, 3))(x)
      for _ in range(self.blocks):
        r = nn.Conv(self.width, (3, 3))(nn.relu(h))
        h = h + nn.Conv(self.width, (3, 3))(nn.relu(r))
      return x + nn.Conv(x.shape[-1], (3, 3))(nn.relu(h))

  return ResidualSR(width, blocks)


@functools.cache
def _programs(method: str, steps: int, width: int, blocks: int):
  """Model, optimiser, jitted step and prediction for one configuration (compiled once per process)."""
  import jax
  import jax.numpy as jnp
  import optax

  model = make_model(width, blocks)
  tx = optax.adam(optax.cosine_decay_schedule(LR, steps))
  mix = make_mix(method)

  @jax.jit
  def step(params, opt_state, key, lr, hr):
    lr, hr, mask = mix(key, lr, hr)  # the jaxmix line

    def objective(params):
      err = jnp.abs(model.apply(params, lr) - hr).mean(-1)
      return (err * mask).mean()

    loss, grads = jax.value_and_grad(objective)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def predict(params, lr):
    return jnp.clip(model.apply(params, lr), 0.0, 1.0)

  return model, tx, step, predict


@functools.cache
def _metric():
  import dm_pix as pix
  import jax

  return jax.jit(lambda a, b: (pix.psnr(a, b), pix.ssim(a, b, max_val=1.0)))


def quality(pred: np.ndarray, hr: np.ndarray) -> dict[str, float]:
  """Mean PSNR (dB) and SSIM over images, both in [0, 1] (dm_pix, its 11 × 11 Gaussian SSIM)."""
  psnr, ssim = [], []
  for i in range(0, len(hr), 500):
    p, s = _metric()(pred[i : i + 500], hr[i : i + 500])
    psnr.append(np.asarray(p))
    ssim.append(np.asarray(s))
  return {"psnr": float(np.concatenate(psnr).mean()), "ssim": float(np.concatenate(ssim).mean())}


def references(hr: np.ndarray) -> dict[str, dict[str, float]]:
  """PSNR and SSIM of nearest and bicubic upsampling of the LR images (no learning)."""
  import jax

  lr = downsample(hr)
  bicubic = jax.image.resize(lr, hr.shape, "bicubic")
  return {
    "nearest": quality(upsample_nearest(lr), hr),
    "bicubic": quality(np.clip(np.asarray(bicubic), 0.0, 1.0), hr),
  }


def train_and_evaluate(cfg: Config, raw: dict[str, np.ndarray], bar: Any = None) -> dict:
  """Trains one configuration; returns its JSON-ready record."""
  import jax
  import jax.numpy as jnp


  subset = np.random.default_rng([cfg.seed, 1]).permutation(len(raw["x_train"]))[: cfg.size]
  lr_train, hr_train = make_pairs(raw["x_train"][subset])
  lr_test, hr_test = make_pairs(raw["x_test"][: cfg.test_size])
  model, tx, step, predict = _programs(cfg.method, cfg.steps, cfg.width, cfg.blocks)
  init_key, mix_key = jax.random.split(jax.random.key(cfg.seed))
  params = model.init(init_key, jnp.zeros((1, 28, 28, 1)))
  opt_state = tx.init(params)
  batch = min(BATCH, cfg.size)
  rng = np.random.default_rng([cfg.seed, 3])
  order = np.empty(0, np.int64)
  losses, curve = [], []
  start = time.time()
  for i in range(cfg.steps):
    if len(order) < batch:
      order = np.concatenate([order, rng.permutation(cfg.size)])
    idx, order = order[:batch], order[batch:]
    key = jax.random.fold_in(mix_key, i)
    params, opt_state, loss = step(params, opt_state, key, lr_train[idx], hr_train[idx])
    losses.append(loss)
    if bar is not None:
      bar.update()
    if (i + 1) % 100 == 0 or i + 1 == cfg.steps:
      curve.append([i + 1, float(np.mean(jax.device_get(losses)))])
      losses = []
  seconds = time.time() - start
  chunks = [predict(params, lr_test[i : i + 500]) for i in range(0, len(lr_test), 500)]
  pred = np.concatenate([np.asarray(c) for c in chunks])
  return {
    "config": dataclasses.asdict(cfg) | {"key": cfg.key, "batch": batch, "lr": LR, "scale": SCALE},
    "test": quality(pred, hr_test),
    "reference": references(hr_test),
    "train_loss": curve,
    "train_seconds": seconds,
    "versions": study.versions(_commit()),
  }


def _commit() -> str:
  """The commit of the code this process runs: read once, before the first run (``run`` calls it)."""
  return study.code_commit(("examples/restoration.py",))


def configs(args: argparse.Namespace) -> list[Config]:
  shape = {
    "size": args.size,
    "steps": args.steps,
    "width": args.width,
    "blocks": args.blocks,
    "test_size": args.test_size,
  }
  return [Config(m, s, **shape) for s in range(args.seeds) for m in args.methods]


def figure(args: argparse.Namespace, raw: dict[str, np.ndarray] | None = None) -> str:
  """``pairs.png``: the same four training pairs (LR input, HR target) under every method's mixing."""
  import jax
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  raw = study.load_raw(args.data_dir) if raw is None else raw
  lr, hr = make_pairs(raw["x_train"][:8])
  n = 4
  fig, axes = plt.subplots(len(METHODS), 2 * n, figsize=(1.3 * 2 * n, 1.45 * len(METHODS)))
  for row, method in enumerate(METHODS):
    # one key for every method; under MoA, key 3 draws cutmixup (a patch mixed with a partner)
    mixed_lr, mixed_hr, _ = jax.jit(make_mix(method))(jax.random.key(3), lr, hr)
    for col in range(n):
      for k, (image, what) in enumerate(((mixed_lr, "LR input"), (mixed_hr, "HR target"))):
        ax = axes[row, 2 * col + k]
        ax.imshow(np.asarray(image[col, ..., 0]), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
          ax.set_title(what, fontsize=8)
        if col == 0 and k == 0:
          ax.set_ylabel("moa (cutmixup)" if method == "moa" else method, fontsize=9)
  fig.tight_layout()
  path = os.path.join(args.out, "pairs.png")
  os.makedirs(args.out, exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def run(args: argparse.Namespace) -> int:
  from tqdm.auto import tqdm

  _commit()  # the checkout as this process imported it, not as it is when a record is written
  done = study.load_results(args.out)
  todo = [c for c in configs(args) if c.key not in done]
  print(f"{len(todo)} runs to do, {len(configs(args)) - len(todo)} stored in {args.out}")
  raw = study.load_raw(args.data_dir)
  if not os.path.exists(os.path.join(args.out, "pairs.png")):
    print(f"wrote {figure(args, raw)}")
  bar = tqdm(total=len(todo) * args.steps, desc="restoration runs", disable=args.no_progress)
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
  if "none" not in complete:
    raise ValueError(f"the baseline 'none' does not have its {args.seeds} seeds stored in {args.out}.")
  seeds = sorted(complete["none"])
  first = complete["none"][seeds[0]]
  lines = [
    f"×2 super-resolution on Fashion-MNIST (28 × 28 HR, 2 × 2 area-averaged LR): a residual CNN (width "
    f"{args.width}, {args.blocks} residual blocks) on {args.size} training images, {args.steps} steps of "
    f"batch {first['config']['batch']}, L1 loss; {len(seeds)} seeds; PSNR (dB) and SSIM on the first "
    f"{args.test_size} test images. Mean ± standard error over seeds; Δ = paired difference to `none` "
    "(same seeds).",
    "",
    "| method | PSNR (dB) | Δ PSNR (dB) | SSIM | Δ SSIM |",
    "|---|---|---|---|---|",
  ]
  for name, ref in first["reference"].items():
    lines.append(f"| {name} upsampling (no training) | {ref['psnr']:.3f} | – | {ref['ssim']:.4f} | – |")
  numbers: dict[str, dict] = {}
  base = {k: np.array([complete["none"][s]["test"][k] for s in seeds]) for k in ("psnr", "ssim")}
  for method in METHODS:
    if method not in complete:
      continue
    runs = complete[method]
    cells = []
    numbers[method] = {}
    for k, fmt in (("psnr", ".3f"), ("ssim", ".4f")):
      values = np.array([runs[s]["test"][k] for s in seeds])
      m, s = study.mean_se(values)
      numbers[method][k] = (m, s)
      cells.append(f"{m:{fmt}} ± {s:{fmt}}")
      if method == "none":
        cells.append("–")
      else:
        dm, ds = study.mean_se(values - base[k])
        numbers[method]["delta_" + k] = (dm, ds)
        cells.append(f"{dm:+{fmt}} ± {ds:{fmt}}")
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  seconds = [r["train_seconds"] for runs in complete.values() for r in runs.values()]
  backend = first["versions"]["backend"]
  lines += ["", f"Training time per run: {np.mean(seconds):.0f} s on average ({backend})."]
  missing = [m for m in args.methods if m not in complete]
  if missing:
    lines += ["", f"Not shown (fewer than {args.seeds} seeds stored): {', '.join(missing)}."]
  return "\n".join(lines) + "\n", numbers


def plot(numbers: dict[str, dict], path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  methods = [m for m in METHODS if m in numbers and m != "none"]
  fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
  for ax, (k, label) in zip(axes, (("psnr", "Δ PSNR (dB)"), ("ssim", "Δ SSIM")), strict=True):
    means = [numbers[m]["delta_" + k][0] for m in methods]
    errs = [numbers[m]["delta_" + k][1] for m in methods]
    ax.bar(methods, means, yerr=errs, capsize=4, color=["C1", "C2", "C3"][: len(methods)])
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_title(label + " vs none")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def report(args: argparse.Namespace) -> int:
  records = study.load_results(args.out)
  text, numbers = render(records, args)
  with open(os.path.join(args.out, "restoration.md"), "w") as f:
    f.write(text)
  plot(numbers, os.path.join(args.out, "restoration.png"))
  print(text)
  print(f"wrote {os.path.join(args.out, 'restoration.md')} and {os.path.join(args.out, 'restoration.png')}")
  return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("command", choices=("run", "report", "figure"))
  parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--size", type=int, default=5000)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--width", type=int, default=16)
  parser.add_argument("--blocks", type=int, default=2)
  parser.add_argument("--test-size", type=int, default=2000)
  parser.add_argument("--data-dir", default=data_lib.DEFAULT_DATA_DIR)
  parser.add_argument("--out", default=OUT)
  parser.add_argument("--no-progress", action="store_true")
  return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  if args.command == "figure":
    print(f"wrote {figure(args)}")
    return 0
  return run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
  sys.exit(main())
