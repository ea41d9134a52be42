"""A function over the leading axis: one slice at a time on the CPU, all slices at once elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax


def loop_on_cpu(
  fn: Callable[[Any], Any], xs: Any, *, loop: bool | None = None, batch_size: int | None = None
) -> Any:
  """``fn`` mapped over the leading axis of the pytree `xs`: a ``lax.map`` (one slice after another)
  when compiled for the CPU, a ``vmap`` (one batched computation) for any other platform.

  On XLA's CPU backend a loop over cache-sized slices can be several times faster than the batched
  computation, whose per-element temporaries go to main memory (the YOLO Mosaic warp; measured in
  ``benchmarks/results/yolo-mosaic-cpu-2core.md``); on a GPU the loop would serialise the batch. The
  choice is made when the program is lowered (``lax.platform_dependent``), so a jitted function picks the
  right one for the device it is compiled for. The two forms compute the same thing, but XLA may fuse
their float arithmetic differently, so float results agree to rounding, not always bit for bit.
``loop`` forces one form (tests compare the two). ``batch_size``: the CPU loop takes that many slices
at a time (``lax.map``'s ``batch_size``, `fn` vmapped over each group), for functions whose per-slice
work is too small to loop over one by one (SaliencyMix's per-image FFTs).
  """

  def looped(a: Any) -> Any:
    return jax.lax.map(fn, a, batch_size=batch_size)

  if loop is True:
    return looped(xs)
  if loop is False:
    return jax.vmap(fn)(xs)
  return jax.lax.platform_dependent(xs, cpu=looped, default=lambda a: jax.vmap(fn)(a))
