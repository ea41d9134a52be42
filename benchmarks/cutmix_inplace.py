"""CutMix in batch mode: the dense select against the row paste, with and without a donated input.

One box per batch (timm's default) is written by `regions.paste_rows`, which visits only the box's rows
in bands; under a jit that donates the input buffer XLA writes those bands in place. This script times,
interleaved in one process with the floor (`a*x + b*x[::-1]`, jitted), the apply step of a CutMix plan
through both paths and several band heights, each with and without `donate_argnums`, and prints the
ratios to the floor. A donated call mixes its own previous output.

    python benchmarks/cutmix_inplace.py --out benchmarks/results/cutmix-inplace-cpu-2core.md
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from speed import machine_name

import jaxmix
from jaxmix._src.core import pairing
from jaxmix._src.core import regions

DEFAULT = None  # paste_rows' own choice: as many rows as fit in 256 KiB


def _mixer(shared: bool, band: int | None, donate: bool):
  """The jitted apply of a batch-mode CutMix plan: dense select, or row paste with `band` rows."""

  def mix(key: jax.Array, x: jax.Array) -> jax.Array:
    plan = jaxmix.sample_cutmix(key, x.shape[0], x.shape[1:3])
    if not shared or band is DEFAULT:
      return jaxmix.apply(plan.replace(shared_region=shared), x)

    def partner_rows(rows: jax.Array) -> jax.Array:
      return pairing.take_partner(rows, plan.pairing, plan.index)

    return regions.paste_rows(x, plan.region, pairing.self_pairs(plan.index), partner_rows, (1, 2), band=band)

  return jax.jit(mix, donate_argnums=1 if donate else ())


def run(shape: tuple[int, ...], dtype: str, reps: int, bands: list[int | None]) -> list[str]:
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, shape).astype(dtype))
  floor = jax.jit(lambda x: (0.3 * x + 0.7 * x[::-1]).astype(x.dtype))
  cases = {("dense select", donate): _mixer(False, DEFAULT, donate) for donate in (False, True)}
  for band in bands:
    label = "row paste, default band" if band is DEFAULT else f"row paste, band {band}"
    for donate in (False, True):
      cases[(label, donate)] = _mixer(True, band, donate)
  buffers = {case: x + 0 for case in cases}
  times: dict = {case: [] for case in cases}
  floor_times = []
  for i in range(reps + 1):
    key = jax.random.key(i)
    t0 = time.perf_counter()
    floor(x).block_until_ready()
    floor_times.append(time.perf_counter() - t0)
    for case, fn in cases.items():
      t0 = time.perf_counter()
      if case[1]:
        buffers[case] = fn(key, buffers[case]).block_until_ready()
      else:
        fn(key, x).block_until_ready()
      times[case].append(time.perf_counter() - t0)
  base = statistics.median(floor_times[1:])
  rows = []
  for (label, donate), ts in times.items():
    ms = statistics.median(ts[1:])
    rows.append(
      f"| {'x'.join(map(str, shape))} | {dtype} | {label} | {'yes' if donate else 'no'} | {1e3 * ms:.2f} "
      f"| {1e3 * base:.2f} | {ms / base:.2f} |"
    )
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--shapes", default="1024x32x32x3,256x64x64x3,128x224x224x3")
  parser.add_argument("--dtypes", default="float32,uint8")
  parser.add_argument("--reps", type=int, default=15)
  parser.add_argument("--out")
  args = parser.parse_args()
  header = "| shape | dtype | path | donated | median ms | floor ms | ratio to floor |\n|" + "---|" * 7
  print(f"machine: {machine_name()}; jax {jax.__version__}; reps {args.reps}\n{header}", flush=True)
  rows = []
  for item in args.shapes.split(","):
    shape = tuple(int(s) for s in item.split("x"))
    for dtype in args.dtypes.split(","):
      for row in run(shape, dtype, args.reps, [DEFAULT, 1, 4, 16]):
        print(row, flush=True)
        rows.append(row)
  if args.out:
    with open(args.out, "w") as f:
      f.write(f"# CutMix batch mode, dense select against row paste, on {machine_name()}\n\n")
      f.write(f"jax {jax.__version__}, median of {args.reps} calls after one warm-up, interleaved with the ")
      f.write("floor (jitted `a*x + b*x[::-1]`) in one process.\n\n" + header + "\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
  main()
