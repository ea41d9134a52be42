"""Train-step overhead of mixing: a jitted Flax ResNet-18-style step with and without each method.

    python benchmarks/train_step.py --batch 128 --size 64 --reps 5

The step (forward, softmax cross-entropy with soft targets, backward, SGD update)
is timed with no mixing and with each method, calls interleaved, median over
`--reps`; the overhead is (t_method - t_none) / t_none. Because a CPU step of this
model takes tens of seconds, step-to-step noise can exceed the mixing cost, so
the table also gives the spread of the no-mixing step and the time of the mixing
call alone (jitted on its own, median of 20), as a share of the step. A tqdm bar over
the compilations and timed calls goes to stderr (``--no-progress`` hides it); the table
on stdout is unchanged.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import jaxmix


class Block(nn.Module):
  features: int
  stride: int

  @nn.compact
  def __call__(self, x, train: bool):
    norm = functools.partial(nn.BatchNorm, use_running_average=not train)
    y = nn.Conv(self.features, (3, 3), self.stride, use_bias=False)(x)
    y = nn.relu(norm()(y))
    y = nn.Conv(self.features, (3, 3), use_bias=False)(y)
    y = norm()(y)
    if x.shape[-1] != self.features or self.stride != 1:
      x = norm()(nn.Conv(self.features, (1, 1), self.stride, use_bias=False)(x))
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """ResNet-18 layout (He et al. 2016) with a 3×3 stem, as used for small images."""

  num_classes: int = 100

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Conv(64, (3, 3), use_bias=False)(x)))
    for i, features in enumerate((64, 128, 256, 512)):
      for j in range(2):
        x = Block(features, 2 if (i > 0 and j == 0) else 1)(x, train)
    return nn.Dense(self.num_classes)(x.mean(axis=(1, 2)))


METHODS = {
  "none": None,
  "mixup": lambda k, x, y, n: jaxmix.mixup(k, x, y, alpha=1.0, num_classes=n),
  "cutmix": lambda k, x, y, n: jaxmix.cutmix(k, x, y, alpha=1.0, num_classes=n),
  "mixup_cutmix elem": lambda k, x, y, n: jaxmix.mixup_cutmix(
    k, x, y, mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem", num_classes=n
  ),
  "fmix": lambda k, x, y, n: jaxmix.fmix(k, x, y, num_classes=n),
}


def make_step(model, tx, mix, num_classes):
  @jax.jit
  def step(params, batch_stats, opt_state, key, x, y):
    if mix is None:
      targets = jax.nn.one_hot(y, num_classes)
    else:
      x, targets = mix(key, x, y, num_classes)

    def loss_fn(params):
      logits, updates = model.apply(
        {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"]
      )
      return optax.softmax_cross_entropy(logits, targets).mean(), updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    upd, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, upd), updates["batch_stats"], opt_state, loss

  return step


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--reps", type=int, default=5)
  parser.add_argument("--out", help="also write the table (markdown) here")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar (stderr)")
  args = parser.parse_args()
  num_classes = 100
  model = ResNet18(num_classes)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random((args.batch, args.size, args.size, 3), dtype=np.float32))
  y = jnp.asarray(rng.integers(0, num_classes, args.batch))
  variables = model.init(jax.random.key(0), x[:2], train=False)
  tx = optax.sgd(0.1, momentum=0.9)
  state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
  key = jax.random.key(1)
  steps = {name: make_step(model, tx, mix, num_classes) for name, mix in METHODS.items()}
  mixes = {name: mix for name, mix in METHODS.items() if mix is not None}
  # One tick per compiled step, per timed step and per mixing-alone timing.
  bar = tqdm(
    total=len(steps) * (1 + args.reps) + len(mixes), desc="train_step", unit="case", disable=args.no_progress
  )
  for name, step in steps.items():
    bar.set_postfix_str(f"compile {name}")
    jax.block_until_ready(step(*state, key, x, y))
    bar.update()
  times = {name: [] for name in steps}
  for rep in range(args.reps):
    bar.set_postfix_str(f"rep {rep + 1}/{args.reps}")
    for name, step in steps.items():
      t0 = time.perf_counter()
      jax.block_until_ready(step(*state, key, x, y))
      times[name].append(time.perf_counter() - t0)
      bar.update()
  alone = {}
  bar.set_postfix_str("mixing alone")
  for name, mix in mixes.items():
    fn = jax.jit(functools.partial(mix, n=num_classes))
    jax.block_until_ready(fn(key, x, y))
    ts = []
    for _ in range(20):
      t0 = time.perf_counter()
      jax.block_until_ready(fn(key, x, y))
      ts.append(time.perf_counter() - t0)
    alone[name] = statistics.median(ts)
    bar.update()
  bar.close()
  base = statistics.median(times["none"])
  spread = (max(times["none"]) - min(times["none"])) / base
  lines = [
    f"ResNet-18-style train step, B={args.batch} × {args.size}×{args.size}×3 float32, {jax.devices()[0]}",
    f"{args.reps} interleaved reps; no-mixing step spread (max - min) / median = {100 * spread:.1f} %",
    "",
    "| method | median step ms | overhead vs no mixing | mixing alone ms | mixing alone ÷ step |",
    "|---|---|---|---|---|",
  ]
  for name, ts in times.items():
    t = statistics.median(ts)
    own = f"{1e3 * alone[name]:.2f} | {100 * alone[name] / base:.3f} %" if name in alone else "- | -"
    lines.append(f"| {name} | {1e3 * t:.1f} | {100 * (t - base) / base:+.2f} % | {own} |")
  print("\n".join(lines))
  if args.out:
    with open(args.out, "w") as f:
      f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
