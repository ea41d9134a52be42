"""Trains the example ResNet briefly with ERM and several jaxmix methods and prints a table.

Run with `make demo`. It uses scikit-learn's bundled handwritten digits (no
download) and prints its own run time (53 s of training on the project's 2-core
CPU, see examples/results/demo-cpu-2core.md); pass `--dataset fashion_mnist` to
use Fashion-MNIST when Debian's `dataset-fashion-mnist` is installed. For the
full comparison see `examples/results_table.py`.

Each run shows a tqdm bar over its training steps (`--no-progress` hides them). The table is
also drawn as a PNG (accuracy, NLL and ECE per method; `--out`, default `runs/legacy_demo.png`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data as data_lib  # noqa: E402
import train  # noqa: E402

import jaxmix  # noqa: E402

# Methods from other parts of jaxmix join the table when this copy has them.
OPTIONAL = ("fmix",)
METHODS = ["erm", "mixup", "cutmix", "manifold"] + [m for m in OPTIONAL if hasattr(jaxmix, m)]


def plot(rows: list[dict], path: str, title: str) -> None:
  """One bar per method in three panels: test accuracy, NLL and ECE (ERM in grey)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 3, figsize=(9, 3), dpi=100)
  panels = [("accuracy", 100, "test accuracy (%)"), ("nll", 1, "NLL"), ("ece", 100, "ECE (%)")]
  names = [r["method"] for r in rows]
  for ax, (name, scale, label) in zip(axes, panels, strict=True):
    colors = ["tab:grey" if m == "erm" else "tab:blue" for m in names]
    ax.bar(range(len(rows)), [scale * r[name] for r in rows], color=colors)
    ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
    ax.set_title(label, fontsize=9)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--dataset", default="digits", choices=["auto", "digits", "fashion_mnist"])
  p.add_argument("--epochs", type=int, default=4)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--train-subset", type=int, default=None)
  p.add_argument("--methods", nargs="+", default=METHODS, help="erm, manifold or jaxmix method names")
  p.add_argument("--out", default=os.path.join("runs", "legacy_demo.png"), help="the PNG of the table")
  p.add_argument("--no-progress", action="store_true")
  args = p.parse_args(argv)

  methods = args.methods
  ds = data_lib.load(args.dataset)
  print(
    f"{ds.name}: {len(ds.x_train)} training / {len(ds.x_test)} test images of {ds.x_train.shape[1:]}, "
    f"{args.epochs} epochs, seed {args.seed}, jax {train.jax.__version__} on {train.jax.default_backend()}",
    flush=True,
  )
  start = time.time()
  rows = []
  for method in methods:
    r = train.train(
      method,
      data=ds,
      epochs=args.epochs,
      batch_size=64,
      width=8,
      seed=args.seed,
      train_subset=args.train_subset,
      progress=not args.no_progress,
    )
    rows.append(r)
    print(f"  {method:10s} done in {r['train_seconds']:.0f} s", flush=True)
  print()
  print(f"| {'method':10s} | accuracy (%) | NLL    | ECE (%) |")
  print(f"|{'-' * 12}|{'-' * 14}|{'-' * 8}|{'-' * 9}|")
  for r in rows:
    print(f"| {r['method']:10s} | {100 * r['accuracy']:12.2f} | {r['nll']:.4f} | {100 * r['ece']:7.2f} |")
  print(f"\n{len(rows)} runs in {time.time() - start:.0f} s. One seed and a tiny budget: differences of a")
  print("point or two are noise here; see examples/results/fashion_mnist.md for the multi-seed table.")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  plot(rows, args.out, f"{ds.name}, {args.epochs} epochs, seed {args.seed} (one run per method)")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
