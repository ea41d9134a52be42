"""Where the time of the slow per-sample paths goes: the sub-timings the README quotes.

    python benchmarks/components.py --out benchmarks/results/components-cpu-2core.md

* λ draws: 1024 per-sample Beta(1, 1) draws with ``jax.random.beta`` (a
  per-element rejection loop) against jaxmix's sampler, alternated.
* FMix per sample at B=128 × 224×224: the complex Gaussian spectrum (threefry
  normals), the inverse FFT and the exact top-k threshold bisection, each
  jitted alone, against the floor on a 128×224×224×3 float32 batch.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from tqdm import tqdm

from jaxmix._src.core import sampling
from jaxmix._src.methods import fmix


def median_ms(fn, *args, reps: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return 1e3 * statistics.median(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--reps", type=int, default=20)
  parser.add_argument("--out")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar (stderr)")
  args = parser.parse_args()
  bar = tqdm(total=3 * 2 + 4, desc="components", unit="case", disable=args.no_progress)
  key = jax.random.key(0)
  rows = []
  old = jax.jit(lambda k, a: jax.random.beta(k, a, a, (1024,)))
  new = jax.jit(lambda k, a: sampling.beta(k, a, (1024,)))
  t_old, t_new = [], []
  for _ in range(3):  # alternate whole blocks so drift hits both
    t_old.append(median_ms(old, key, 1.0, reps=args.reps))
    bar.update()
    t_new.append(median_ms(new, key, 1.0, reps=args.reps))
    bar.update()
  rows.append(("1024 Beta(1,1) draws, jax.random.beta", statistics.median(t_old)))
  rows.append(("1024 Beta(1,1) draws, jaxmix sampling.beta", statistics.median(t_new)))

  b, h, w = 128, 224, 224
  normals = jax.jit(lambda k: jax.random.normal(k, (2, b, h, w // 2 + 1)))
  parts = normals(key)
  inverse = jax.jit(lambda p: jnp.fft.irfft2(jax.lax.complex(p[0], p[1]), s=(h, w)))
  grey = fmix._grey_maps(key, 3.0, spatial_shape=(h, w), num=b).reshape(b, -1)
  num = jnp.full((b,), h * w // 2, jnp.int32)
  bisect = jax.jit(fmix._top_k_mask)
  x = jax.random.uniform(key, (b, h, w, 3))
  floor = jax.jit(lambda x, a, c: a * x + c * x[::-1])
  for name, fn, fn_args in (
    ("FMix elem 128x224x224: spectrum normals", normals, (key,)),
    ("FMix elem 128x224x224: irfft2", inverse, (parts,)),
    ("FMix elem 128x224x224: top-k bisection", bisect, (grey, num)),
    ("floor 128x224x224x3 float32", floor, (x, 0.3, 0.7)),
  ):
    bar.set_postfix_str(name)
    rows.append((name, median_ms(fn, *fn_args, reps=args.reps)))
    bar.update()
  bar.close()

  lines = [f"jax {jax.__version__}, {jax.devices()[0]}, median of {args.reps} calls", ""]
  lines += ["| what | ms |", "|---|---|"] + [f"| {name} | {t:.2f} |" for name, t in rows]
  print("\n".join(lines))
  if args.out:
    with open(args.out, "w") as f:
      f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
