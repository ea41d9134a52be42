"""Global vs local (per-device) mixing of a sharded batch.

Times, in one process on one sharded array, jitted MixUp and CutMix on a batch
of B=1024 x 64x64x3 float32 split over a mesh's data axis:

* global: ``jax.jit(jaxmix.mixup)`` on the sharded batch; XLA's SPMD
  partitioner moves the partner samples between devices (flip: every shard;
  permute: the whole batch is all-gathered).
* local: ``jaxmix.sharding.local(jaxmix.mixup, mesh)``; each device mixes its shard.
* floor: ``a * x + b * x[::-1]`` inside a shard_map, one read and one write.

Reports the median of several runs per variant and the ratio global / local. A
tqdm bar over the timed variants goes to stderr (``--no-progress`` hides it); the
printed lines on stdout are unchanged.
On CPU it simulates 8 devices (``--devices``); with a GPU it runs on the real
devices (one GPU: a 1-device mesh, where global and local do the same work).

  PYTHONPATH=. python benchmarks/sharding.py [--devices 8] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import sys


def _parse() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--devices", type=int, default=8, help="simulated CPU devices (ignored on GPU)")
  parser.add_argument("--batch", type=int, default=1024)
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--pairings", default="flip,roll,permute")
  parser.add_argument("--out", help="also write the printed lines here")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar (stderr)")
  return parser.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None and "jax" not in sys.modules:
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={ARGS.devices}"
  )

import functools  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxmix  # noqa: E402


def median_ms(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))  # compile and warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def main(args: argparse.Namespace) -> None:
  lines = []
  pairings = args.pairings.split(",")
  bar = tqdm(total=1 + 2 * 2 * len(pairings), desc="sharding", unit="case", disable=args.no_progress)

  def say(line: str) -> None:
    bar.write(line, file=sys.stdout)  # above the bar (stderr); stdout gets the line alone
    sys.stdout.flush()
    lines.append(line)

  devices = jax.devices()
  n = len(devices)
  mesh = jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  shard = NamedSharding(mesh, P("data"))
  shape = (args.batch, args.size, args.size, 3)
  x = jax.device_put(jax.random.uniform(jax.random.key(0), shape, jnp.float32), shard)
  y = jax.device_put(jnp.arange(args.batch, dtype=jnp.int32) % 10, shard)
  key = jax.random.key(1)
  say(f"jax {jax.__version__}, {n} x {devices[0].device_kind} ({devices[0].platform}), batch {shape} float32")
  say(f"median of {args.repeats} runs, ms")

  floor = jax.jit(
    jax.shard_map(lambda x: 0.7 * x + 0.3 * x[::-1], mesh=mesh, in_specs=P("data"), out_specs=P("data"))
  )
  t_floor = median_ms(floor, x, repeats=args.repeats)
  bar.update()
  say(f"{'floor (local a*x + b*x[::-1])':40s} {t_floor:9.2f}")
  for name, fn in (("mixup", jaxmix.mixup), ("cutmix", jaxmix.cutmix)):
    for pairing in pairings:
      kw = dict(num_classes=10, pairing=pairing)
      glob = jax.jit(functools.partial(fn, **kw))
      loc = jax.jit(functools.partial(jaxmix.sharding.local(fn, mesh, "data"), **kw))
      bar.set_postfix_str(f"{name} {pairing}")
      t_glob = median_ms(glob, key, x, y, repeats=args.repeats)
      bar.update()
      t_loc = median_ms(loc, key, x, y, repeats=args.repeats)
      bar.update()
      say(
        f"{name + ' ' + pairing:16s} global {t_glob:9.2f}  local {t_loc:9.2f}  "
        f"global/local {t_glob / t_loc:6.2f}  local/floor {t_loc / t_floor:6.2f}"
      )
  bar.close()
  if args.out:
    with open(args.out, "w") as f:
      f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  main(ARGS)
