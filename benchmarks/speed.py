"""Speed of every jaxmix method as a ratio to the floor, measured in one process.

The floor (DESIGN.md) is one fused pass that reads the batch and writes it once:
``a * x + b * x[::-1]`` with scalar a, b, jitted, on the same array. Each method is
the jitted one-call function (inputs and int labels in, mixed inputs and soft
labels out). We report the median of ``--reps`` timed calls after one warm-up,
the ratio to the floor's median, the first-call time (trace + compile + run),
and how many compilations 100 calls with a new alpha/prob each call cause.

    python benchmarks/speed.py                       # the full grid: 3 shapes x 3 dtypes
    python benchmarks/speed.py --shapes 1024x32x32x3 --dtypes float32
    python benchmarks/speed.py --timm                # add timm's Mixup on torch CPU
    python benchmarks/speed.py --timm-only           # only timm's rows (jaxmix plain and donated)
    python benchmarks/speed.py --methods fmix,cutmix # only these rows of the method table
    python benchmarks/speed.py --out benchmarks/results/cpu-2core.md
    python benchmarks/speed.py --compile-only --shapes 128x224x224x3   # trace and compile seconds

A tqdm bar over the timed cases goes to stderr (``--no-progress`` hides it); the rows
printed on stdout and the table written to ``--out`` are unchanged.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import jaxmix


def num_classes_for(shape: tuple[int, ...]) -> int:
  """Label width used with a shape: 10 at 32×32 (CIFAR), 1000 otherwise (ImageNet)."""
  return 10 if shape[1] <= 32 else 1000


def _pooled_features(x: jax.Array, cells: int = 7) -> jax.Array:
  """Stand-in backbone features for Attentive CutMix: the grey image mean-pooled to cells × cells."""
  b, h, w = x.shape[:3]
  grey = x.astype(jnp.float32).mean(-1)[:, : h - h % cells, : w - w % cells]
  return grey.reshape(b, cells, (h - h % cells) // cells, cells, -1).mean((2, 4))


def _attentive(key, x, y, **kw):
  """Attentive CutMix with features computed from the batch inside the jit (a data-dependent input)."""
  return jaxmix.attentive_cutmix(key, x, y, features=_pooled_features(x), **kw)


def _choose(key, x, y, **kw):
  return jaxmix.choose(key, x, y, methods=("mixup", "cutmix"), weights=jnp.array([0.5, 0.5]), **kw)


# Options that differ from a registered method's defaults: the DeiT recipe's switch (its default is
# MixUp only), k = 3 for k-way mixing. Data a method needs comes from a wrapper (features above).
OPTIONS = {"mixup_cutmix": {"mixup_alpha": 0.8, "cutmix_alpha": 1.0}, "multimix": {"k": 3}}
WRAPPERS = {"attentive_cutmix": _attentive}


def method_table() -> dict[str, tuple[Callable, dict]]:
  """name -> (one-call function, keyword options): every method in ``jaxmix.SAMPLERS`` with a one-call
  form, plus random pairing for MixUp and CutMix and ``choose`` between them.

  Every entry takes traced ``alpha``/``prob`` where the method has them, so the
  recompilation column can vary them.
  """
  out = {}
  for name, spec in jaxmix.SAMPLERS.items():
    if spec.mix is None:
      continue
    fn = WRAPPERS.get(name, spec.mix)  # a one-call that needs data (features) gets it from a wrapper
    label = "multimix k=3" if name == "multimix" else name
    out[label] = (fn, OPTIONS.get(name, {}))
    if name in ("mixup", "cutmix"):
      out[f"{name} permute"] = (fn, {"pairing": "permute"})
  out["choose(mixup, cutmix)"] = (_choose, {})
  return out


def _block(tree):
  return jax.tree_util.tree_map(lambda a: a.block_until_ready(), tree)


def time_call(fn: Callable, *args) -> float:
  """Seconds for the first call: trace + compile + run."""
  t0 = time.perf_counter()
  _block(fn(*args))
  return time.perf_counter() - t0


def time_against_floor(fn: Callable, args: tuple, floor_args: tuple, reps: int) -> tuple[float, float]:
  """(median seconds of `fn`, median seconds of the floor), calls interleaved.

  Alternating the two calls makes their ratio robust to load that drifts
  during the measurement.
  """
  _block(fn(*args))
  _block(floor(*floor_args))
  t_fn, t_floor = [], []
  for _ in range(reps):
    t0 = time.perf_counter()
    _block(fn(*args))
    t1 = time.perf_counter()
    _block(floor(*floor_args))
    t2 = time.perf_counter()
    t_fn.append(t1 - t0)
    t_floor.append(t2 - t1)
  return statistics.median(t_fn), statistics.median(t_floor)


def make_batch(shape: tuple[int, ...], dtype: str) -> tuple[jax.Array, jax.Array]:
  rng = np.random.default_rng(0)
  if dtype == "uint8":
    x = rng.integers(0, 256, shape, dtype=np.uint8)
  else:
    x = rng.random(shape, dtype=np.float32)
  x = jnp.asarray(x).astype(dtype)
  y = jnp.asarray(rng.integers(0, num_classes_for(shape), shape[0]), jnp.int32)
  return x, y


@jax.jit
def floor(x: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
  """The yardstick: read the batch once, write it once."""
  if jnp.issubdtype(x.dtype, jnp.integer):
    f = x.astype(jnp.float32)
    return jnp.clip(jnp.round(a * f + b * f[::-1]), 0, 255).astype(x.dtype)
  return (a * x + b * x[::-1]).astype(x.dtype)


def count_compiles(fn: Callable, kwargs: dict, key, x, y, num_classes: int, steps: int = 100) -> int:
  """Compilations over `steps` calls with alpha/prob changing every call."""
  traced = {k: v for k, v in kwargs.items() if k in ("alpha", "mixup_alpha", "cutmix_alpha")}
  static = {k: v for k, v in kwargs.items() if k not in traced}

  @jax.jit
  def step(key, x, y, scale, prob):
    opts = {k: v * scale for k, v in traced.items()}
    if "prob" in _params(fn):
      opts["prob"] = prob
    return fn(key, x, y, num_classes=num_classes, **opts, **static)

  for i in range(steps):
    _block(step(key, x, y, 0.5 + i / steps, 1.0 - 0.5 * i / steps))
  return step._cache_size()


@functools.cache
def _params(fn: Callable) -> tuple[str, ...]:
  import inspect

  return tuple(inspect.signature(fn).parameters)


def _say(line: str) -> None:
  """Prints a line on stdout above any progress bar (which is on stderr)."""
  tqdm.write(line, file=sys.stdout)
  sys.stdout.flush()


def _null_bar() -> tqdm:
  return tqdm(disable=True)


def _method_modes(fn: Callable, kwargs: dict, modes: list[str]) -> list[tuple[str, dict]]:
  """(mode, options) pairs timed for one method: every mode when it takes one, else batch alone."""
  if "mode" in _params(fn) or fn in (_attentive, _choose):
    return [(mode, {**kwargs, "mode": mode}) for mode in modes]
  return [("batch", dict(kwargs))] if "batch" in modes else []


def selected_methods(methods: list[str] | None) -> dict[str, tuple[Callable, dict]]:
  """The rows of :func:`method_table` named in `methods` (all when None); an unknown name is an error."""
  table = method_table()
  if methods is None:
    return table
  unknown = [m for m in methods if m not in table]
  if unknown:
    raise SystemExit(f"--methods: unknown {unknown}; choose from {sorted(table)}")
  return {name: table[name] for name in methods}


def count_jaxmix(shapes, dtypes, modes, methods: list[str] | None = None) -> int:
  """How many cases :func:`run_jaxmix` times (for the progress bar)."""
  per_batch = sum(len(_method_modes(fn, kw, modes)) for fn, kw in selected_methods(methods).values())
  return len(shapes) * len(dtypes) * per_batch


def run_jaxmix(
  shapes, dtypes, modes, reps, compiles, bar: tqdm | None = None, methods: list[str] | None = None
) -> list[dict]:
  bar = bar if bar is not None else _null_bar()
  rows = []
  key = jax.random.key(0)
  for shape in shapes:
    for dtype in dtypes:
      x, y = make_batch(shape, dtype)
      floor_args = (x, jnp.float32(0.3), jnp.float32(0.7))
      for name, (fn, kwargs) in selected_methods(methods).items():
        for mode, opts in _method_modes(fn, kwargs, modes):
          bar.set_postfix_str(f"{name} {mode} {'x'.join(map(str, shape))} {dtype}")
          try:
            call = jax.jit(functools.partial(fn, num_classes=num_classes_for(shape), **opts))
            first = time_call(call, key, x, y)
            t, t_floor = time_against_floor(call, (key, x, y), floor_args, reps)
          except (ValueError, TypeError) as err:  # a method that does not take this mode
            _say(f"skip {name} {mode}: {err}")
            bar.update()
            continue
          row = {
            "method": name,
            "mode": mode,
            "shape": "x".join(map(str, shape)),
            "dtype": dtype,
            "ms": 1e3 * t,
            "floor_ms": 1e3 * t_floor,
            "ratio": t / t_floor,
            "first_s": first,
          }
          if compiles:
            row["compiles"] = count_compiles(fn, opts, key, x, y, num_classes_for(shape))
          rows.append(row)
          _say(_format_row(row))
          bar.update()
  return rows


def _load_timm_mixup():
  """timm's data/mixup.py loaded on its own (importing timm pulls in torchvision)."""
  try:
    path = importlib.metadata.distribution("timm").locate_file("timm/data/mixup.py")
  except importlib.metadata.PackageNotFoundError:
    return None
  spec = importlib.util.spec_from_file_location("timm_mixup", str(path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run_timm(shapes, modes, reps, bar: tqdm | None = None) -> list[dict]:
  """timm.data.Mixup on torch CPU, float32, NCHW as timm expects, timed interleaved with jaxmix.

  Each timm call alternates with the same jaxmix call (float32, NHWC, same
  shape and options), so the jaxmix ÷ timm ratio is robust to drifting load;
  a third call, jitted with the input buffer donated (mixing its own previous
  output, as timm mixes in place), gives the rows marked "jaxmix donated".
  """
  import torch

  bar = bar if bar is not None else _null_bar()
  timm_mixup = _load_timm_mixup()
  if timm_mixup is None:
    _say("timm is not installed: skipping the timm comparison")
    return []
  torch.set_num_threads(os.cpu_count() or 1)
  rows = []
  configs = {
    "mixup": ({"mixup_alpha": 1.0}, jaxmix.mixup, {"alpha": 1.0}),
    "cutmix": ({"mixup_alpha": 0.0, "cutmix_alpha": 1.0}, jaxmix.cutmix, {"alpha": 1.0}),
  }
  # A new key each call, as timm draws a new λ and box each call (a fixed key would time one box).
  keys = jax.random.split(jax.random.key(0), reps + 1)
  for shape in shapes:
    b, h, w, c = shape
    num_classes = num_classes_for(shape)
    x = torch.rand(b, c, h, w)
    y = torch.randint(0, num_classes, (b,))
    jx, jy = make_batch(shape, "float32")
    copy_times = []
    for _ in range(reps):
      t0 = time.perf_counter()
      0.3 * x + 0.7 * x.flip(0)
      copy_times.append(time.perf_counter() - t0)
    t_floor = statistics.median(copy_times)
    for name, (timm_opts, fn, opts) in configs.items():
      for mode in modes:
        bar.set_postfix_str(f"timm {name} {mode} {'x'.join(map(str, shape))}")
        mix = timm_mixup.Mixup(**timm_opts, mode=mode, label_smoothing=0.0, num_classes=num_classes)
        call = functools.partial(fn, num_classes=num_classes, mode=mode, **opts)
        ours = jax.jit(call)
        # Donated: the jitted call may write its output into the input buffer, as timm writes in place;
        # each call mixes the previous call's output.
        ours_donated = jax.jit(call, donate_argnums=1)
        buffer = jx + 0
        mix(x, y)
        _block(ours(keys[0], jx, jy))
        buffer, _ = _block(ours_donated(keys[0], buffer, jy))
        times, our_times, donated_times = [], [], []
        for key in keys[1:]:
          t0 = time.perf_counter()
          mix(x, y)  # in place, as timm works
          t1 = time.perf_counter()
          _block(ours(key, jx, jy))
          t2 = time.perf_counter()
          buffer, _ = _block(ours_donated(key, buffer, jy))
          t3 = time.perf_counter()
          times.append(t1 - t0)
          our_times.append(t2 - t1)
          donated_times.append(t3 - t2)
        t = statistics.median(times)
        for label, ours_times in (("", our_times), (", jaxmix donated", donated_times)):
          row = {
            "method": f"timm {name}",
            "mode": mode + label,
            "shape": "x".join(map(str, shape)),
            "dtype": "float32",
            "ms": 1e3 * t,
            "floor_ms": 1e3 * t_floor,
            "ratio": t / t_floor,
            "jaxmix_over_timm": statistics.median(ours_times) / t,
          }
          rows.append(row)
          _say(_format_row(row))
        bar.update()
  return rows


def detection_table() -> list[tuple[str, str, Callable]]:
  """(name, mode column, jitted-able call) of the detection rows: MixUp, CutMix, the 2×2 Mosaic and the
  YOLO Mosaic (2s canvas and ultralytics' default affine, as one inverse map) with both interpolations."""
  yolo = functools.partial(jaxmix.detection.mosaic, affine=jaxmix.detection.Affine())
  return [
    ("mixup_detection", "elem", jaxmix.detection.mixup),
    ("cutmix_detection", "elem", jaxmix.detection.cutmix),
    ("mosaic", "-", jaxmix.detection.mosaic),
    ("yolo mosaic 4 + affine", "bilinear", yolo),
    ("yolo mosaic 4 + affine", "nearest", functools.partial(yolo, interpolation="nearest")),
    ("yolo mosaic 9 + affine", "bilinear", functools.partial(yolo, tiles=9)),
    ("yolo mosaic 9 + affine", "nearest", functools.partial(yolo, tiles=9, interpolation="nearest")),
    ("random_affine", "bilinear", jaxmix.detection.random_affine),
  ]


def run_detection(reps: int, bar: tqdm | None = None) -> list[dict]:
  """Detection MixUp, Mosaic (2×2 and YOLO) and random_affine at B=32 × 640×640×3 uint8 with 50 padded
  boxes per image."""
  shape = (32, 640, 640, 3)
  x, _ = make_batch(shape, "uint8")
  rng = np.random.default_rng(1)
  xy = rng.uniform(0, 560, (32, 50, 2)).astype(np.float32)
  boxes = jnp.asarray(np.concatenate([xy, xy + rng.uniform(8, 80, (32, 50, 2))], -1))
  classes = jnp.asarray(rng.integers(0, 20, (32, 50)), jnp.int32)
  valid = jnp.asarray(rng.random((32, 50)) < 0.5)
  floor_args = (x, jnp.float32(0.3), jnp.float32(0.7))
  bar = bar if bar is not None else _null_bar()
  rows = []
  for name, mode, fn in detection_table():
    bar.set_postfix_str(f"{name} {mode}")
    call = jax.jit(fn)
    args = (jax.random.key(0), x, boxes, classes, valid)
    first = time_call(call, *args)
    t, t_floor = time_against_floor(call, args, floor_args, reps)
    row = {
      "method": name,
      "mode": mode,
      "shape": "32x640x640x3",
      "dtype": "uint8",
      "ms": 1e3 * t,
      "floor_ms": 1e3 * t_floor,
      "ratio": t / t_floor,
      "first_s": first,
    }
    rows.append(row)
    _say(_format_row(row))
    bar.update()
  return rows


# ----------------------------------------------------------------------------- guided methods


def _time_pair(fn: Callable, args: tuple, ref: Callable, ref_args: tuple, reps: int) -> tuple[float, float]:
  """(median seconds of `fn`, of `ref`), calls interleaved as in :func:`time_against_floor`."""
  _block(fn(*args))
  _block(ref(*ref_args))
  t_fn, t_ref = [], []
  for _ in range(reps):
    t0 = time.perf_counter()
    _block(fn(*args))
    t1 = time.perf_counter()
    _block(ref(*ref_args))
    t2 = time.perf_counter()
    t_fn.append(t1 - t0)
    t_ref.append(t2 - t1)
  return statistics.median(t_fn), statistics.median(t_ref)


def guided_table(shape: tuple[int, ...]) -> list[tuple[str, Callable]]:
  """(name, call(key, x, y, data)) of the guided methods, with what each needs from the model given as
  data (made outside the timed call): SnapMix a CAM [B, 7, 7], PuzzleMix a saliency map [B, H, W],
  TransMix a CLS attention [B, 3, N] on the patch tokens of the CutMix plan. The model's own extra pass
  (SnapMix's CAM, PuzzleMix's gradient) is not in these times."""
  b, h, w = shape[:3]
  k = num_classes_for(shape)
  patch = 16 if h % 16 == 0 and w % 16 == 0 else 4
  guided = jaxmix.guided
  # The official grid sides 2, 4, 8, 16 whose blocks neigh_size 4 and t_size 4 divide (all at 32 × 32;
  # at 224 × 224 a 16 grid gives 14-pixel blocks, which PuzzleMix refuses, so 2, 4, 8).
  grids = tuple(n for n in (2, 4, 8, 16) if not (h % n or w % n or (h // n) % min(4, h // n)))
  # t_size 4 (the official CIFAR value) makes the transport grid (H/4)²: at 224 × 224 its [B, 3136, 3136]
  # costs take a minute per call on the CPU (the official bidding is O(B·M²) per round, H/4 rounds), so
  # large images use 16 × 16 transport tiles of side H/16 (14 at 224), which every block side divides.
  t_size = 4 if h <= 64 else h // 16
  label = "grid " + "/".join(map(str, grids)) + f", t_size {t_size}"

  def transmix(key, x, y, data):
    plan = jaxmix.sample_cutmix(key, b, (h, w))
    labels = jaxmix.losses.transmix_labels(plan, data["attention"], y, num_classes=k)
    return jaxmix.apply(plan, x), labels

  return [
    ("tokenmix", lambda key, x, y, d: guided.tokenmix(key, x, y, patch_size=patch, num_classes=k)),
    ("snapmix", lambda key, x, y, d: guided.snapmix(key, x, y, cam=d["cam"], num_classes=k)),
    ("transmix (cutmix + labels)", transmix),
    (f"puzzlemix ({label}, transport)", lambda key, x, y, d: guided.puzzlemix(
      key, x, y, saliency=d["saliency"], block_num=grids, t_size=t_size, num_classes=k)),
    (f"puzzlemix (grid 4, t_size {t_size}, transport)", lambda key, x, y, d: guided.puzzlemix(
      key, x, y, saliency=d["saliency"], block_num=4, t_size=t_size, num_classes=k)),
    (f"puzzlemix (grid {'/'.join(map(str, grids))}, no transport)", lambda key, x, y, d: guided.puzzlemix(
      key, x, y, saliency=d["saliency"], block_num=grids, transport=False, num_classes=k)),
  ]


def _alignmix_at_features(key, f):
  return jaxmix.guided.alignmix_point(f, jaxmix.guided.sample_alignmix(key, f.shape[0], layers=(1,)), 1)


def _manifold_at_features(key, f):
  return jaxmix.manifold_point(f, jaxmix.sample_manifold(key, f.shape[0], layers=(1,)), 1)


def run_guided(shapes, reps: int, bar: tqdm | None = None) -> list[dict]:
  """Each guided method's time against CutMix's (batch mode, flip pairing) on the same batch, interleaved;
  AlignMix against Manifold Mixup on a feature map [B, 7, 7, 512] (both mixing at that point)."""
  bar = bar if bar is not None else _null_bar()
  rows = []
  for shape in shapes:
    x, y = make_batch(shape, "float32")
    b, h, w = shape[:3]
    k = num_classes_for(shape)
    rng = np.random.default_rng(2)
    patch = 16 if h % 16 == 0 and w % 16 == 0 else 4
    data = {
      "cam": jnp.asarray(rng.random((b, 7, 7), dtype=np.float32)),
      "saliency": jnp.asarray(rng.random((b, h, w), dtype=np.float32)),
      "attention": jnp.asarray(rng.random((b, 3, (h // patch) * (w // patch)), dtype=np.float32)),
    }
    cutmix = jax.jit(functools.partial(jaxmix.cutmix, num_classes=k))
    args = (jax.random.key(0), x, y)
    for name, fn in guided_table(shape):
      bar.set_postfix_str(f"{name} {shape}")
      call = jax.jit(fn)
      first = time_call(call, *args, data)
      t, t_ref = _time_pair(call, (*args, data), cutmix, args, reps)
      rows.append({"method": name, "reference": "cutmix", "shape": "x".join(map(str, shape)), "ms": 1e3 * t,
                   "ref_ms": 1e3 * t_ref, "first_s": first})
      _say(_format_guided(rows[-1]))
      bar.update()
    feats = jnp.asarray(rng.random((b, 7, 7, 512), dtype=np.float32))
    key = jax.random.key(0)
    align, manifold = jax.jit(_alignmix_at_features), jax.jit(_manifold_at_features)
    first = time_call(align, key, feats)
    t, t_ref = _time_pair(align, (key, feats), manifold, (key, feats), reps)
    rows.append({"method": "alignmix_point (ε 0.1, 100 iterations)", "reference": "manifold_point",
                 "shape": f"{b}x7x7x512 features", "ms": 1e3 * t, "ref_ms": 1e3 * t_ref, "first_s": first})
    _say(_format_guided(rows[-1]))
    bar.update()
  return rows


GUIDED_HEADER = (
  "| method | reference | shape | median ms | reference ms | ÷ reference (interleaved) | first call s |\n"
  "|---|---|---|---|---|---|---|"
)


def _format_guided(r: dict) -> str:
  return (
    f"| {r['method']} | {r['reference']} | {r['shape']} | {r['ms']:.2f} | {r['ref_ms']:.2f} "
    f"| {r['ms'] / r['ref_ms']:.2f} | {r['first_s']:.2f} |"
  )


def _format_row(r: dict) -> str:
  cells = [
    r["method"],
    r["mode"],
    r["shape"],
    r["dtype"],
    f"{r['ms']:.2f}",
    f"{r['floor_ms']:.2f}",
    f"{r['ratio']:.2f}",
  ]
  cells.append(f"{r['first_s']:.2f}" if "first_s" in r else "")
  cells.append(str(r.get("compiles", "")))
  cells.append(f"{r['jaxmix_over_timm']:.2f}" if "jaxmix_over_timm" in r else "")
  return "| " + " | ".join(cells) + " |"


HEADER = (
  "| method | mode | shape (BxHxWxC) | dtype | median ms | floor ms | ratio to floor | first call s "
  "| compiles / 100 steps | jaxmix ÷ timm time (interleaved) |\n|---|---|---|---|---|---|---|---|---|---|"
)


def machine_name() -> str:
  dev = jax.devices()[0]
  return f"{dev.platform}: {dev.device_kind}, {os.cpu_count()} cores, {platform.machine()}"


COMPILE_BUDGET_S = 2.0  # issue 21: first-call compile time of a one-call method at 224 on the 2-core CPU
COMPILE_HEADER = (
  "| method | mode | shape (BxHxWxC) | dtype | trace + lower s | compile s | within 2 s |\n"
  "|---|---|---|---|---|---|---|"
)


def run_compile(shapes, dtypes, modes, methods: list[str] | None = None) -> list[dict]:
  """Trace-and-lower and XLA-compile seconds of each one-call method, measured apart (``jit(f).lower``,
  then ``.compile()``) on a fresh ``jax.jit`` each time. JAX's caches of functions jitted or traced
  inside jaxmix are not cleared between rows, so a later row of the same method (another dtype) may
  trace faster than its first row; the first row of the run also pays one-off setup."""
  rows = []
  key = jax.random.key(0)
  for shape in shapes:
    for dtype in dtypes:
      x, y = make_batch(shape, dtype)
      for name, (fn, kwargs) in selected_methods(methods).items():
        for mode, opts in _method_modes(fn, kwargs, modes):
          call = jax.jit(functools.partial(fn, num_classes=num_classes_for(shape), **opts))
          try:
            t0 = time.perf_counter()
            lowered = call.lower(key, x, y)
            t1 = time.perf_counter()
            lowered.compile()
            t2 = time.perf_counter()
          except (ValueError, TypeError) as err:
            _say(f"skip {name} {mode}: {err}")
            continue
          row = {"method": name, "mode": mode, "shape": "x".join(map(str, shape)), "dtype": dtype,
                 "trace_s": t1 - t0, "compile_s": t2 - t1}
          rows.append(row)
          _say(_format_compile(row))
  return rows


def _format_compile(r: dict) -> str:
  ok = "✓" if r["trace_s"] + r["compile_s"] <= COMPILE_BUDGET_S else "✗"
  return (
    f"| {r['method']} | {r['mode']} | {r['shape']} | {r['dtype']} | {r['trace_s']:.2f} "
    f"| {r['compile_s']:.2f} | {ok} |"
  )


def _main_compile(args: argparse.Namespace, shapes, dtypes, modes, methods, start: float) -> None:
  print(COMPILE_HEADER)
  rows = run_compile(shapes, dtypes, modes, methods)
  if args.out:
    _write_table(
      args.out,
      f"jaxmix compile times on {machine_name()}",
      f"with `python benchmarks/speed.py --compile-only --shapes {args.shapes} --dtypes {args.dtypes}`; "
      f"jax {jax.__version__}; each call jitted afresh, trace + lower and XLA compile timed apart; budget: "
      f"the two together ≤ {COMPILE_BUDGET_S:g} s (issue 21)",
      start,
      COMPILE_HEADER,
      [_format_compile(r) for r in rows],
    )


def _write_table(path: str, title: str, how: str, start: float, header: str, lines: list[str]) -> None:
  """A results file: its title, when and how it was measured with the run's wall time, and the table."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
  with open(path, "w") as f:
    f.write(f"# {title}\n\n")
    f.write(f"Measured {when} {how}; wall time of the run: {(time.perf_counter() - start) / 60:.0f} min.\n\n")
    f.write(header + "\n" + "\n".join(lines) + "\n")
  print(f"wrote {path}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--shapes", default="1024x32x32x3,256x64x64x3,128x224x224x3")
  parser.add_argument("--dtypes", default="float32,bfloat16,uint8")
  parser.add_argument("--modes", default="batch,elem")
  parser.add_argument("--reps", type=int, default=15)
  parser.add_argument("--methods", help="comma-separated rows of the method table (e.g. fmix); default all")
  parser.add_argument("--no-compiles", action="store_true", help="skip the 100-step recompilation count")
  parser.add_argument("--timm", action="store_true", help="also time timm.data.Mixup on torch CPU")
  parser.add_argument("--timm-only", action="store_true", help="only the timm rows (implies --timm)")
  parser.add_argument(
    "--detection", action="store_true", help="also detection MixUp/CutMix, Mosaic (2×2, YOLO), random_affine"
  )
  parser.add_argument(
    "--guided", action="store_true", help="also the guided methods' cost over CutMix (float32, --shapes)"
  )
  parser.add_argument("--guided-only", action="store_true", help="only the guided methods' table")
  parser.add_argument(
    "--detection-only", action="store_true", help="only the detection rows (B=32 × 640×640×3 uint8)"
  )
  parser.add_argument(
    "--compile-only", action="store_true", help="only trace and compile seconds of each method (no timing)"
  )
  parser.add_argument("--out", help="write the markdown table here")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar (stderr)")
  args = parser.parse_args()
  shapes = [tuple(int(s) for s in item.split("x")) for item in args.shapes.split(",")]
  dtypes = args.dtypes.split(",")
  modes = args.modes.split(",")
  methods = args.methods.split(",") if args.methods else None
  start = time.perf_counter()
  print(f"machine: {machine_name()}; jax {jax.__version__}; reps {args.reps}")
  if args.guided_only:
    return _main_guided(args, shapes, start)
  if args.detection_only:
    return _main_detection(args, start)
  if args.compile_only:
    return _main_compile(args, shapes, dtypes, modes, methods, start)
  print(HEADER)
  args.timm = args.timm or args.timm_only
  total = 0 if args.timm_only else count_jaxmix(shapes, dtypes, modes, methods)
  total += len(detection_table()) if args.detection else 0
  total += 2 * len(shapes) * len(modes) if args.timm else 0
  bar = tqdm(total=total, desc="speed", unit="case", disable=args.no_progress)
  rows = []
  if not args.timm_only:
    rows = run_jaxmix(shapes, dtypes, modes, args.reps, not args.no_compiles, bar, methods)
  if args.detection:
    rows += run_detection(args.reps, bar)
  if args.timm:
    rows += run_timm(shapes, modes, args.reps, bar)
  guided = run_guided(shapes, args.reps, bar) if args.guided else []
  bar.close()
  if args.out:
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
      f.write(f"# jaxmix speed on {machine_name()}\n\n")
      f.write(f"jax {jax.__version__}, median of {args.reps} calls; floor = jitted `a*x + b*x[::-1]` on ")
      f.write("the same array in the same process (timm rows: torch `a*x + b*x.flip(0)`).\n\n")
      versions = f"torch {importlib.metadata.version('torch')}, " if args.timm and _load_timm_mixup() else ""
      f.write(f"{versions}wall time of the run: {(time.perf_counter() - start) / 60:.0f} min.\n\n")
      f.write(HEADER + "\n" + "\n".join(_format_row(r) for r in rows) + "\n")
      if guided:
        f.write(GUIDED_NOTE + GUIDED_HEADER + "\n" + "\n".join(_format_guided(r) for r in guided) + "\n")
    print(f"wrote {args.out}")


GUIDED_NOTE = (
  "\n## Guided methods: cost over CutMix\n\nEach guided method's jitted call against `jaxmix.cutmix` (batch "
  "mode, flip) on the same float32 batch, interleaved; AlignMix against Manifold Mixup at a [B, 7, 7, 512] "
  "feature map. What the model adds is not included: SnapMix's CAM and PuzzleMix's saliency (an extra "
  "forward and backward pass) are given as data.\n\n"
)


def _main_detection(args: argparse.Namespace, start: float) -> None:
  print(HEADER)
  bar = tqdm(total=len(detection_table()), desc="detection", unit="case", disable=args.no_progress)
  rows = run_detection(args.reps, bar)
  bar.close()
  if args.out:
    _write_table(
      args.out,
      f"jaxmix detection speed on {machine_name()}",
      f"with `python benchmarks/speed.py --detection-only --reps {args.reps}`; jax {jax.__version__}, median "
      f"of {args.reps} calls; floor = jitted `a*x + b*x[::-1]` on the same array, timed interleaved with "
      "each row in the same process",
      start,
      HEADER,
      [_format_row(r) for r in rows],
    )


def _main_guided(args: argparse.Namespace, shapes, start: float) -> None:
  print(GUIDED_HEADER)
  bar = tqdm(total=len(shapes) * 7, desc="guided", unit="case", disable=args.no_progress)
  rows = run_guided(shapes, args.reps, bar)
  bar.close()
  if args.out:
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
      f.write(f"# jaxmix guided methods on {machine_name()}\n\n")
      f.write(f"jax {jax.__version__}, median of {args.reps} calls; wall time of the run: ")
      f.write(f"{(time.perf_counter() - start) / 60:.0f} min.\n")
      f.write(GUIDED_NOTE + GUIDED_HEADER + "\n" + "\n".join(_format_guided(r) for r in rows) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
