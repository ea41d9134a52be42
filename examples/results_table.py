"""Runs the Fashion-MNIST comparison and aggregates its JSON files into a markdown table.

    python examples/results_table.py run --methods erm mixup cutmix manifold --seeds 0 1 2
    python examples/results_table.py table   # writes examples/results/fashion_mnist.md

``run`` trains every (method, seed) in one process with the same model and
budget (``CONFIG`` below), skipping runs whose JSON already exists, and writes
``examples/results/fashion_mnist/<method>_s<seed>.json`` (+ a reliability
diagram PNG for seed 0), with a tqdm bar over the runs and one over each run's steps
(``--no-progress`` hides them). ``table`` reads those files, prints/writes mean ± std
over seeds of test accuracy, NLL and ECE, and draws them as a PNG (``--png``, default
``--out`` with ``.png``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections import defaultdict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RESULTS = os.path.join(HERE, "results", "fashion_mnist")
TABLE = os.path.join(HERE, "results", "fashion_mnist.md")

# One budget for every method: small enough that 7+ methods x 3 seeds fit in
# about 40 minutes on two shared CPU cores.
CONFIG = {
  "dataset": "fashion_mnist",
  "epochs": 2,
  "train_subset": 20000,
  "batch_size": 128,
  "lr": 3e-3,
  "width": 16,
}

# The FMix paper (Harris et al. 2020, Table 1): PreAct-ResNet18, 200 epochs, full training set.
PAPER = {"erm": "95.70", "mixup": "96.28", "cutmix": "96.03", "fmix": "96.36"}
ORDER = ["erm", "mixup", "cutmix", "mixup_cutmix", "fmix", "manifold"]


def run(
  methods: list[str], seeds: list[int], out_dir: str = RESULTS, progress: bool = True, **overrides
) -> None:
  import data as data_lib
  import train
  from tqdm.auto import tqdm

  os.makedirs(out_dir, exist_ok=True)
  ds = data_lib.load(CONFIG["dataset"])
  todo = [(seed, method) for seed in seeds for method in methods]
  bar = tqdm(total=len(todo), desc="runs", unit="run", disable=not progress)
  for seed, method in todo:
    path = os.path.join(out_dir, f"{method}_s{seed}.json")
    if os.path.exists(path):
      bar.write(f"skip {path} (exists)")
      bar.update()
      continue
    bar.set_postfix_str(f"{method} s{seed}")
    cfg = {k: v for k, v in {**CONFIG, **overrides}.items() if k != "dataset"}
    result = train.train(method, data=ds, seed=seed, progress=progress, **cfg)
    with open(path, "w") as f:
      json.dump(result, f, indent=1)
    wrote = path
    if seed == 0:
      train.reliability_diagram(result, path[:-5] + ".png", f"{method} on {result['dataset']} (seed 0)")
      wrote += f" and {path[:-5]}.png"
    bar.write(
      f"{method:12s} seed {seed}: acc {100 * result['accuracy']:.2f} %  NLL {result['nll']:.4f}  "
      f"ECE {100 * result['ece']:.2f} %  ({result['train_seconds']:.0f} s); wrote {wrote}"
    )
    bar.update()
  bar.close()


def _mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
  v = np.asarray(values) * scale
  if len(v) == 1:
    return f"{v[0]:.{digits}f}"
  return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def load_runs(results_dir: str = RESULTS) -> dict[str, list[dict]]:
  """method -> its runs' JSON records, methods in table order (``ORDER``, then by name)."""
  runs = defaultdict(list)
  for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
    with open(path) as f:
      r = json.load(f)
    runs[r["method"]].append(r)
  if not runs:
    raise SystemExit(f"no results in {results_dir}")
  methods = [m for m in ORDER if m in runs] + sorted(m for m in runs if m not in ORDER)
  return {m: runs[m] for m in methods}


def plot(runs: dict[str, list[dict]], path: str) -> None:
  """Test accuracy, NLL and ECE per method as bars (mean over seeds) with each seed as a dot."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), dpi=100)
  panels = [("accuracy", 100, "test accuracy (%)"), ("nll", 1, "NLL"), ("ece", 100, "ECE (%)")]
  for ax, (name, scale, label) in zip(axes, panels, strict=True):
    for i, (method, rs) in enumerate(runs.items()):
      v = np.array([r[name] for r in rs]) * scale
      ax.bar(i, v.mean(), color="tab:grey" if method == "erm" else "tab:blue")
      ax.scatter(np.full(len(v), i), v, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(runs)), list(runs), rotation=35, ha="right", fontsize=8)
    ax.set_title(label, fontsize=9)
  low = min(100 * r["accuracy"] for rs in runs.values() for r in rs)
  axes[0].set_ylim(bottom=max(0.0, low - 5))  # the accuracies differ by points, not tens of points
  first = next(iter(runs.values()))[0]
  fig.suptitle(
    f"{first['dataset']}: {first['train_size']} training images, {first['epochs']} epochs, "
    f"width {first['width']} (bars: mean over seeds, dots: seeds)",
    fontsize=9,
  )
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def table(results_dir: str = RESULTS) -> str:
  runs = load_runs(results_dir)
  methods = list(runs)
  first = next(iter(runs.values()))[0]
  lines = [
    f"Fashion-MNIST, full test set ({first['test_size']} images); training on the first "
    f"{first['train_size']} training images for {first['epochs']} epochs (batch {first['batch_size']}, "
    f"{first['steps']} steps), small ResNet (width {first['width']}), AdamW lr {first['lr']} "
    "with cosine decay, "
    "no other augmentation. Mean ± std over seeds; ECE with 15 equal-width bins.",
    "",
    "| method | α / options | seeds | accuracy (%) | NLL | ECE (%) | train s/run | FMix paper acc. (%) |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for m in methods:
    rs = runs[m]
    alpha = rs[0].get("alpha")
    alpha = "—" if m == "erm" else "default" if alpha is None else alpha
    kw = rs[0].get("method_kwargs") or {}
    if kw:
      alpha = ", ".join(f"{k}={v}" for k, v in kw.items())
    lines.append(
      f"| {m} | {alpha} | {len(rs)} | "
      f"{_mean_std([r['accuracy'] for r in rs], 100)} | "
      f"{_mean_std([r['nll'] for r in rs], 1, 3)} | {_mean_std([r['ece'] for r in rs], 100)} | "
      f"{np.mean([r['train_seconds'] for r in rs]):.0f} | {PAPER.get(m, '')} |"
    )
  lines += [
    "",
    "FMix paper column: Harris et al. 2020, PreAct-ResNet18, 200 epochs on all 60k images with SGD, "
    "random crop + flip; not comparable in budget, shown for the ordering of methods.",
  ]
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="cmd", required=True)
  r = sub.add_parser("run")
  r.add_argument("--methods", nargs="+", default=["erm", "mixup", "cutmix", "manifold"])
  r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
  r.add_argument("--out-dir", default=RESULTS)
  r.add_argument(
    "--epochs", type=int, default=None, help="override CONFIG (for a separate longer-budget table)"
  )
  r.add_argument("--train-subset", type=int, default=None, help="override CONFIG; 0 = all training images")
  r.add_argument("--no-progress", action="store_true")
  t = sub.add_parser("table")
  t.add_argument("--results-dir", default=RESULTS)
  t.add_argument("--out", default=TABLE)
  t.add_argument("--png", default=None, help="the table as a bar chart (default: --out with .png)")
  args = p.parse_args(argv)
  if args.cmd == "run":
    overrides = {}
    if args.epochs is not None:
      overrides["epochs"] = args.epochs
    if args.train_subset is not None:
      overrides["train_subset"] = args.train_subset or None
    run(args.methods, args.seeds, args.out_dir, progress=not args.no_progress, **overrides)
  else:
    text = table(args.results_dir)
    print(text)
    with open(args.out, "w") as f:
      f.write(text)
    png = args.png or os.path.splitext(args.out)[0] + ".png"
    plot(load_runs(args.results_dir), png)
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
  main()
