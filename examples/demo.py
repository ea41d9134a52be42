"""Shows mixing winning where the regime study found it does: little data, noisy labels.

Run with `make demo`. Trains the study's small ResNet on 1 000 Fashion-MNIST images with 40 %
of the training labels flipped, with ERM + crop/flip (`aug`) and with CutMix on top (α = 0.5,
the value the study chose on its validation split), 3 seeds each, the same data, noise and
initialisation per seed. Prints accuracy, NLL and ECE with the paired difference and writes a
bar chart (PNG, `--out`, default examples/results/demo.png); a tqdm bar follows the training
steps of all runs (`--no-progress` hides it). The grid, where mixing also loses with more data, is
in examples/results/study/study.md.

When Fashion-MNIST is missing (`apt-get install dataset-fashion-mnist` installs it), it says so
and runs the older short table on scikit-learn's digits instead (examples/legacy_demo.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data as data_lib  # noqa: E402
import study  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def plot(rows: dict[str, list[dict]], path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 3, figsize=(9, 3), dpi=100)
  panels = [("accuracy", 100, "test accuracy (%)"), ("nll", 1, "NLL"), ("ece", 100, "ECE (%)")]
  for ax, (name, scale, label) in zip(axes, panels, strict=True):
    for i, runs in enumerate(rows.values()):
      v = np.array([r["test"][name] for r in runs]) * scale
      ax.bar(i, v.mean(), color=["tab:grey", "tab:blue"][i % 2])
      ax.scatter(np.full(len(v), i), v, color="black", s=12, zorder=3)
    ax.set_xticks(range(len(rows)), list(rows))
    ax.set_title(label, fontsize=9)
  fig.suptitle("Fashion-MNIST, 1 000 images, 40 % noisy labels (bars: mean, dots: seeds)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--data-dir", default=data_lib.DEFAULT_DATA_DIR)
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--steps", type=int, default=1000)
  p.add_argument("--out", default=os.path.join(HERE, "results", "demo.png"), help="the PNG (bar chart)")
  p.add_argument("--no-progress", action="store_true")
  args = p.parse_args(argv)
  if not data_lib.has_fashion_mnist(args.data_dir):
    print(
      f"Fashion-MNIST is not in {args.data_dir}; install it with `apt-get install dataset-fashion-mnist` "
      "(as root). Falling back to scikit-learn's digits: a short run where mixing is not expected to win.",
      flush=True,
    )
    import legacy_demo

    legacy_demo.main(["--no-progress"] if args.no_progress else [])
    return 0
  from tqdm.auto import tqdm

  start = time.time()
  raw = study.load_raw(args.data_dir)
  rows: dict[str, list[dict]] = {}
  methods = (("aug", None), ("cutmix", 0.5))
  bar = tqdm(
    total=len(methods) * args.seeds * (args.steps or study.steps_for(1000)),
    desc="demo",
    disable=args.no_progress,
    mininterval=1.0,
  )
  for method, alpha in methods:
    rows[method] = []
    for seed in range(args.seeds):
      bar.set_postfix_str(f"{method} seed {seed}")
      cfg = study.Config(1000, 0.4, method, alpha, seed, steps=args.steps)
      rows[method].append(study.train_and_evaluate(cfg, raw, {}, bar=bar))
      bar.write(f"  {method} seed {seed}: {time.time() - start:.0f} s")
  bar.close()

  print("\nFashion-MNIST, 1 000 training images, 40 % of their labels flipped, clean test set:")
  print("| method | accuracy (%) | NLL | ECE (%) | flipped labels memorised (%) |")
  print("|---|---|---|---|---|")
  for method, runs in rows.items():
    acc, nll, ece = (np.mean([r["test"][k] for r in runs]) for k in ("accuracy", "nll", "ece"))
    mem = np.mean([r["memorised"] for r in runs])
    print(f"| {method} | {100 * acc:.2f} | {nll:.3f} | {100 * ece:.2f} | {100 * mem:.1f} |")
  base, mixed = rows.values()
  d = np.array([b["test"]["accuracy"] - a["test"]["accuracy"] for a, b in zip(base, mixed, strict=True)])
  print(
    f"\nCutMix - aug, paired over {len(d)} seeds: {100 * d.mean():+.2f}"
    f" ± {100 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float('nan'):.2f} (s.e.) points "
    f"(per seed: {', '.join(f'{100 * x:+.2f}' for x in d)}). CutMix is less calibrated here (higher ECE:"
    " under-confident). At 5 000 images mixing wins only with 4 000 training steps, not at the study's"
    " 1 000: under label noise, and with clean labels perhaps when the model is also twice as wide (+0.42"
    " ± 0.21 over the 3 planned seeds, at two standard errors; +0.54 ± 0.14 over 5, seeds 3-4 added after"
    " that borderline result); at 60 000 images it does not win: see examples/results/study/study.md."
  )
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  plot(rows, args.out)
  print(f"wrote {args.out}; {time.time() - start:.0f} s in all")
  return 0


if __name__ == "__main__":
  sys.exit(main())
