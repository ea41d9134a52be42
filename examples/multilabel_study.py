"""Multi-label mixing under corrupted labels: ERM, MixUp, Manifold Mixup and Flow-Mixup, a stored study.

    python examples/multilabel_study.py run --dry-run     # the grid, what is done, the estimated time
    nohup python examples/multilabel_study.py run &       # runs what is missing; one JSON per run
    python examples/multilabel_study.py report            # tables and PNGs from the stored JSON only

Data. Each image is a 2 × 2 canvas (56 × 56) of four Fashion-MNIST items drawn at random
with replacement (``flow_mixup.make_canvases``); its label set is the classes present, a
multi-hot row of 10 (1 to 4 ones). Per seed, ``study.split`` carves a seeded subset of
ITEMS training items into disjoint training and validation items; TRAIN_CANVASES
training canvases and VAL_CANVASES validation canvases are drawn from them once (a fixed
training set, so a corrupted label stays corrupted for every epoch). TEST_CANVASES test
canvases are drawn once from the Fashion-MNIST test set with a fixed seed, the same for
every run; their labels stay clean.

Corrupted labels (training and validation canvases alike, as a user's data would be):
of all positive bits (class present) exactly ``round(drop · P)`` are set to 0, and of all
negative bits (class absent) exactly ``round(add · N)`` are set to 1, both chosen
uniformly without replacement (:func:`corrupt_multi_hot`). A cell ``noise r`` uses
``drop = add = r``: at 10 % a canvas with 3.4 classes loses 0.34 of them and gains 0.66
absent ones on average; at 30 %, 1.0 and 2.0.

Methods, all on the same network (``flow_mixup.FlowCNN``, width 8, three stages with
BatchNorm) and the same per-class sigmoid BCE:

* ``erm``: no mixing;
* ``mixup``: MixUp of the inputs, multi-hot targets mixed as ``λ y_i + (1 − λ) y_j``
  (Zhang et al. 2018), α = 1 (their CIFAR value);
* ``manifold``: Manifold Mixup at the input or after stage 1 or 2 (Verma et al. 2019),
  α = 2 (their CIFAR value);
* ``flow``: Flow-Mixup as ``jaxmix.flow_mixup`` reads it: the clean and mixed flows in
  one batch of 2B, BCE on both, plus β times the constraint on the three stage outputs;
  α = 1 (the module's default), β chosen on the validation split (below);
* ``switch`` (not in the default grid; ``run --methods switch``): the MixUp/CutMix switch,
  α = 1 for both.

A check beside the grid: ``run --methods flow --flow-beta 0`` trains Flow-Mixup's two flows
(clean and mixed, BCE on both) without the constraint; the report sets it against the
chosen β, which separates what the constraint adds from what training on the clean and the
mixed batch together adds.

α of MixUp and Manifold Mixup are their papers' defaults and are not tuned. Flow-Mixup's
β, for which the paper's value is not known to us, is chosen from BETAS by validation mAP
(against the *corrupted* validation labels, all a user has) on the 10 % cell, seed 0;
that β is then used for every cell and seed. The test set is read only for the final
numbers.

Training: TRAIN_CANVASES canvases, batch BATCH, Adam with the learning rate decayed from
LR to 0 by a cosine over the run; every method sees the same batches in the same order
for a given seed (same data, corruption, initialisation and batch order: paired
differences). Flow-Mixup's forward pass holds 2B rows, so it costs about twice the
compute per step of the others.

Metrics on the clean test canvases: mAP (mean over classes of average precision),
macro-F1 and micro-F1 at threshold 0.5, macro ROC-AUC (mean over classes of the
Mann-Whitney AUC), and on the training canvases of the noisy cells the share of
corrupted bits the model reproduces at 0.5 (memorised). The Flow-Mixup paper (Chen et
al. 2020) evaluates on multi-label medical images; its exact metric list was not
available to us (its method and results sections could not be read), so these are the
standard multi-label metrics, not a copy of its tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import study  # noqa: E402  (the shared split, metrics and record helpers)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results", "multilabel")
NUM_CLASSES = 10
NOISES = (0.0, 0.1, 0.3)
METHODS = ("erm", "mixup", "manifold", "flow")
ALL_METHODS = METHODS + ("switch",)
ALPHA = {"erm": None, "mixup": 1.0, "manifold": 2.0, "flow": 1.0, "switch": 1.0}
BETAS = (0.01, 0.1, 1.0)  # Flow-Mixup's constraint weight, chosen on the validation split
BETA_NOISE = 0.1  # the cell (seed 0) whose validation mAP chooses β
SEEDS = 3
ITEMS = 3000  # Fashion-MNIST training items per seed (study.split: 2 700 train, 300 validation)
TRAIN_CANVASES = 2000
VAL_CANVASES = 500
TEST_CANVASES = 2000
BATCH = 32
STEPS = 800
WIDTH = 8
LR = 3e-3
TEST_SEED = 12345
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training pixels on [0, 1], as in examples/study.py


# ----------------------------------------------------------------------------- data


def corrupt_multi_hot(seed: int, y: np.ndarray, drop: float, add: float) -> tuple[np.ndarray, np.ndarray]:
  """Corrupted multi-hot labels: exactly ``round(drop · P)`` of the P positive bits set to 0 and
  ``round(add · N)`` of the N negative bits set to 1, chosen uniformly (seeded by ``[seed, 2]``).

  Returns ``(noisy, changed)``; `changed` is the boolean mask of corrupted bits. `y` is not changed.
  """
  for name, rate in (("drop", drop), ("add", add)):
    if not 0.0 <= rate <= 1.0:
      raise ValueError(f"{name} must be in [0, 1], got {rate}.")
  y = np.asarray(y, np.float32)
  rng = np.random.default_rng([seed, 2])
  flat = y.reshape(-1) > 0.5
  changed = np.zeros(flat.shape, bool)
  for bits, rate in ((np.flatnonzero(flat), drop), (np.flatnonzero(~flat), add)):
    changed[rng.permutation(bits)[: int(round(rate * len(bits)))]] = True
  noisy = np.where(changed, 1.0 - y.reshape(-1), y.reshape(-1)).astype(np.float32)
  return noisy.reshape(y.shape), changed.reshape(y.shape)


def load_items(data_dir: str) -> dict[str, np.ndarray]:
  """Fashion-MNIST items: float32 ``[N, 28, 28, 1]`` in [0, 1] and int32 classes (``study.load_raw``)."""
  return study.load_raw(data_dir)


def make_data(seed: int, noise: float, raw: dict[str, np.ndarray], sizes: dict | None = None) -> dict:
  """The canvases of one (seed, noise): training and validation (corrupted), test (clean, fixed)."""
  import flow_mixup

  defaults = {"items": ITEMS, "train": TRAIN_CANVASES, "val": VAL_CANVASES, "test": TEST_CANVASES}
  sizes = defaults | (sizes or {})
  train_items, val_items = study.split(seed, len(raw["x_train"]), sizes["items"])
  rng = np.random.default_rng([seed, 1, 1])
  x_tr, y_tr = flow_mixup.make_canvases(
    rng, raw["x_train"][train_items], raw["y_train"][train_items], sizes["train"], NUM_CLASSES
  )
  x_va, y_va = flow_mixup.make_canvases(
    rng, raw["x_train"][val_items], raw["y_train"][val_items], sizes["val"], NUM_CLASSES
  )
  x_te, y_te = flow_mixup.make_canvases(
    np.random.default_rng(TEST_SEED), raw["x_test"], raw["y_test"], sizes["test"], NUM_CLASSES
  )
  noisy, changed = corrupt_multi_hot(seed, np.concatenate([y_tr, y_va]), noise, noise)
  n = len(y_tr)
  return {
    "x_train": x_tr,
    "y_train": noisy[:n],
    "y_train_clean": y_tr,
    "changed_train": changed[:n],
    "x_val": x_va,
    "y_val": noisy[n:],
    "x_test": x_te,
    "y_test": y_te,
  }


# ----------------------------------------------------------------------------- metrics


def roc_auc(scores: np.ndarray, y: np.ndarray) -> float:
  """ROC-AUC of one class (Mann-Whitney, ties counted half); NaN without positives or negatives."""
  y = np.asarray(y) > 0.5
  pos, neg = int(y.sum()), int((~y).sum())
  if pos == 0 or neg == 0:
    return float("nan")
  s = np.asarray(scores, np.float64)
  order = np.argsort(s, kind="stable")
  ranks = np.empty(len(s))
  sorted_s = s[order]
  # average ranks over ties (1-based)
  _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
  avg = first + (counts + 1) / 2.0
  ranks[order] = np.repeat(avg, counts)
  return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def metrics(probs: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
  """mAP, macro-F1, micro-F1 (at `threshold`), macro ROC-AUC, and per-class AP.

  mAP and macro-F1 are ``flow_mixup.multilabel_metrics`` (AP: mean precision at each positive's
  rank; F1 of a class with no positives and no predictions counts as 1). Classes without positives
  are left out of mAP and AUC.
  """
  import flow_mixup

  probs = np.asarray(probs, np.float64)
  y = np.asarray(y)
  if probs.shape != y.shape or probs.ndim != 2:
    raise ValueError(f"probs and y must both be [N, K]; got {probs.shape} and {y.shape}.")
  out: dict[str, Any] = flow_mixup.multilabel_metrics(probs, y, threshold)
  pred, true = probs >= threshold, y > 0.5
  tp, fp, fn = (pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()
  out["micro_f1"] = float(2 * tp / max(2 * tp + fp + fn, 1))
  out["auc"] = float(np.nanmean([roc_auc(probs[:, k], y[:, k]) for k in range(y.shape[1])]))
  out["ap_per_class"] = [flow_mixup.average_precision(probs[:, k], y[:, k]) for k in range(y.shape[1])]
  return out


# ----------------------------------------------------------------------------- runs


@dataclasses.dataclass(frozen=True)
class Config:
  noise: float
  method: str
  seed: int
  beta: float | None = None  # Flow-Mixup only
  steps: int = STEPS
  width: int = WIDTH

  @property
  def alpha(self) -> float | None:
    return ALPHA[self.method]

  @property
  def key(self) -> str:
    beta = "" if self.beta is None else f"-b{self.beta:g}"
    return f"noise{self.noise:g}-{self.method}{beta}-w{self.width}-t{self.steps}-s{self.seed}"


@functools.cache
def _programs(method: str, width: int, steps: int):
  """The model, optimiser and jitted step/predict of one method (compiled once per process)."""
  import flow_mixup
  import jax
  import jax.numpy as jnp
  import optax

  import jaxmix
  from jaxmix.flow_mixup import flow_constraint
  from jaxmix.flow_mixup import flow_targets
  from jaxmix.flow_mixup import sample_flow_mixup

  if method not in ALL_METHODS:
    raise ValueError(f"method must be one of {ALL_METHODS}, got {method!r}.")
  model = flow_mixup.FlowCNN(NUM_CLASSES, width)
  tx = optax.adam(optax.cosine_decay_schedule(LR, steps))

  @jax.jit
  def step(state, key, x, y, alpha, beta):
    x = (x - MEAN) / STD
    mix, targets = None, y
    if method == "mixup":
      x, targets = jaxmix.mixup(key, x, y, alpha=alpha)  # the jaxmix line
    elif method == "switch":
      x, targets = jaxmix.mixup_cutmix(key, x, y, mixup_alpha=alpha, cutmix_alpha=alpha, switch_prob=0.5)
    elif method == "manifold":
      mix = jaxmix.sample_manifold(key, x.shape[0], layers=3, alpha=alpha)
      targets = jaxmix.mix_labels(mix, y)
    elif method == "flow":
      mix = sample_flow_mixup(key, x.shape[0], alpha=alpha)
      targets = flow_targets(mix, y)

    def objective(params):
      variables = {"params": params, "batch_stats": state["batch_stats"]}
      logits, new = model.apply(variables, x, True, mix, mutable=["batch_stats", "intermediates"])
      bce = optax.sigmoid_binary_cross_entropy(logits, targets).mean()
      constraint = jnp.zeros(())
      if method == "flow":
        constraint = flow_constraint(mix, new["intermediates"]["flow"])
      return bce + beta * constraint, (new["batch_stats"], bce, constraint)

    (loss, (stats, bce, constraint)), grads = jax.value_and_grad(objective, has_aux=True)(state["params"])
    updates, opt = tx.update(grads, state["opt"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    return {"params": params, "batch_stats": stats, "opt": opt}, jnp.stack([loss, bce, constraint])

  @jax.jit
  def predict(state, x):
    variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
    return jax.nn.sigmoid(model.apply(variables, (x - MEAN) / STD, False))

  init = jax.jit(model.init, static_argnums=2)
  return model, init, tx, step, predict


def train_and_evaluate(cfg: Config, data: dict, bar: Any = None) -> dict:
  """Trains one configuration on `data` (from :func:`make_data`) and returns its JSON-ready record."""
  import jax
  import jax.numpy as jnp


  _, init, tx, step, predict = _programs(cfg.method, cfg.width, cfg.steps)
  x_train, y_train = data["x_train"], data["y_train"]
  n = len(x_train)
  batch = min(BATCH, n)
  init_key, mix_key = jax.random.split(jax.random.key(cfg.seed))
  variables = init(init_key, jnp.zeros((1, *x_train.shape[1:])), False)
  state = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
  state["opt"] = tx.init(state["params"])
  alpha = jnp.float32(cfg.alpha or 0.0)
  beta = jnp.float32(cfg.beta or 0.0)

  def probs(x: np.ndarray, chunk: int = 500) -> np.ndarray:
    out = []
    for i in range(0, len(x), chunk):
      part = x[i : i + chunk]
      pad = chunk - len(part)
      if pad:
        part = np.concatenate([part, np.zeros((pad,) + part.shape[1:], part.dtype)])
      out.append(np.asarray(predict(state, part))[: chunk - pad])
    return np.concatenate(out)

  rng = np.random.default_rng([cfg.seed, 3])
  order = np.empty(0, np.int64)
  losses, curve = [], []
  start = time.time()
  for i in range(cfg.steps):
    if len(order) < batch:
      order = np.concatenate([order, rng.permutation(n)])
    idx, order = order[:batch], order[batch:]
    state, loss = step(state, jax.random.fold_in(mix_key, i), x_train[idx], y_train[idx], alpha, beta)
    losses.append(loss)
    if bar is not None:
      bar.update()
    if (i + 1) % 50 == 0 or i + 1 == cfg.steps:
      m = np.mean(jax.device_get(losses), axis=0)
      curve.append([i + 1, float(m[0]), float(m[1]), float(m[2])])
      losses = []
  train_seconds = time.time() - start
  test = metrics(probs(data["x_test"]), data["y_test"])
  val = metrics(probs(data["x_val"]), data["y_val"])
  record: dict[str, Any] = {
    "config": dataclasses.asdict(cfg) | {"alpha": cfg.alpha, "batch": batch, "key": cfg.key, "lr": LR},
    "data": {
      "train_canvases": n,
      "val_canvases": len(data["x_val"]),
      "test_canvases": len(data["x_test"]),
      "train_bits_corrupted": int(data["changed_train"].sum()),
      "train_positives_clean": int(data["y_train_clean"].sum()),
    },
    "test": test,
    "val": {k: val[k] for k in ("mAP", "macro_f1", "micro_f1", "auc")},
    "train_loss": curve,  # [step, loss, bce, constraint], means over the last 50 steps
    "train_seconds": train_seconds,
    "versions": study.versions(code_commit()),
  }
  if cfg.noise > 0:
    pred = probs(x_train) >= 0.5
    changed = data["changed_train"]
    record["memorised"] = float((pred[changed] == (y_train[changed] > 0.5)).mean())
  return record


# ----------------------------------------------------------------------------- the grid


def code_commit() -> str:
  """The commit of this checkout, read once per process (``+dirty`` when jaxmix/ or this code differ)."""
  return study.code_commit(("examples/multilabel_study.py", "examples/flow_mixup.py"))


def load_results(out: str) -> dict[str, dict]:
  results = {}
  for path in glob.glob(os.path.join(out, "runs", "*.json")):
    with open(path) as f:
      record = json.load(f)
    results[record["config"]["key"]] = record
  return results


def write_json(path: str, record: dict) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(record, f, indent=1)
  os.replace(tmp, path)


def chosen_beta(results: dict, steps: int = STEPS, width: int = WIDTH, betas=BETAS) -> Any:
  """β with the best validation mAP on (BETA_NOISE, seed 0); ``...`` while a candidate is missing."""
  scores = []
  for b in betas:
    record = results.get(Config(BETA_NOISE, "flow", 0, b, steps, width).key)
    if record is None:
      return ...
    scores.append(record["val"]["mAP"])
  return betas[int(np.argmax(scores))]


def grid(
  results: dict,
  noises=NOISES,
  methods=METHODS,
  seeds: int = SEEDS,
  steps: int = STEPS,
  width: int = WIDTH,
  flow_beta: float | None = None,
) -> Iterator[Config | tuple]:
  """Every run in order: the β search first, then cells in `noises` order, seed by seed.

  Yields a Config, or ``(noise, "flow", seed)`` for a Flow-Mixup run whose β is not chosen yet.
  `flow_beta` (``run --flow-beta``): Flow-Mixup at this β instead of the chosen one, no search (a check
  beside the grid, e.g. β = 0: the two flows without the constraint).
  """
  if "flow" in methods and flow_beta is None:
    for b in BETAS:
      yield Config(BETA_NOISE, "flow", 0, b, steps, width)
  beta = chosen_beta(results, steps, width) if flow_beta is None else flow_beta
  for noise in noises:
    for seed in range(seeds):
      for method in methods:
        if method != "flow":
          yield Config(noise, method, seed, None, steps, width)
        elif beta is ...:
          yield (noise, method, seed)
        else:
          yield Config(noise, method, seed, beta, steps, width)


def run(args: argparse.Namespace) -> int:
  from tqdm.auto import tqdm

  code_commit()  # the checkout as this process imported it
  kw = dict(noises=args.noises, methods=args.methods, seeds=args.seeds, steps=args.steps, width=args.width)
  kw["flow_beta"] = args.flow_beta
  results = load_results(args.out)
  every = list(dict.fromkeys(grid(results, **kw)))
  todo = [c for c in every if not (isinstance(c, Config) and c.key in results)]
  cost = sum(
    args.steps * (2 if (c.method if isinstance(c, Config) else "flow") == "flow" else 1) for c in todo
  )
  est = cost * args.seconds_per_step + len(todo) * args.seconds_per_eval
  pending = sum(not isinstance(c, Config) for c in todo)
  print(
    f"multi-label grid: {len(every) - len(todo)} runs stored in {args.out}, {len(todo)} to run "
    f"({pending} waiting for the β search); about {est / 60:.0f} min at "
    f"{args.seconds_per_step * 1000:.0f} ms/step (Flow-Mixup counted twice) "
    f"+ {args.seconds_per_eval:.0f} s/eval",
    flush=True,
  )
  if args.dry_run:
    for c in todo:
      print("  ", c.key if isinstance(c, Config) else "noise{:g}-{}-b?-s{}".format(*c))
    return 0
  raw = load_items(args.data_dir)
  sizes = {"items": args.items, "train": args.train_canvases, "val": args.val_canvases}
  sizes["test"] = args.test_canvases
  bar = tqdm(total=len(todo), desc="multi-label study", mininterval=5.0, disable=args.no_progress)
  cache: dict[tuple, dict] = {}
  while True:
    results = load_results(args.out)
    nxt = next((c for c in grid(results, **kw) if isinstance(c, Config) and c.key not in results), None)
    if nxt is None:
      break
    bar.set_postfix_str(nxt.key)
    if (nxt.seed, nxt.noise) not in cache:
      cache = {(nxt.seed, nxt.noise): make_data(nxt.seed, nxt.noise, raw, sizes)}
    record = train_and_evaluate(nxt, cache[(nxt.seed, nxt.noise)])
    record["data"]["sizes"] = sizes
    write_json(os.path.join(args.out, "runs", nxt.key + ".json"), record)
    bar.update()
  bar.close()
  print("multi-label grid complete.")
  return 0


# ----------------------------------------------------------------------------- report

REPORT_METRICS = (
  ("mAP", 100, "mAP %"),
  ("macro_f1", 100, "macro-F1 %"),
  ("micro_f1", 100, "micro-F1 %"),
  ("auc", 100, "AUC %"),
)


def flow_checks(results: dict, steps: int, width: int) -> list[str]:
  """``"flow@β"`` for each β of stored Flow-Mixup runs other than the chosen one and the search's
  (from ``run --flow-beta``), e.g. ``"flow@0"``: checks reported beside the grid."""
  chosen = chosen_beta(results, steps, width)
  found = {
    c["beta"]
    for c in (r["config"] for r in results.values())
    if c.get("method") == "flow" and c.get("steps", steps) == steps and c.get("width", width) == width
  }
  return [f"flow@{b:g}" for b in sorted(found - set(BETAS) - {chosen})]


def cell_runs(results: dict, noise: float, method: str, seeds: int, steps: int, width: int) -> list | None:
  """The runs of one cell (Flow-Mixup at its chosen β; ``"flow@β"`` at that β), seeds 0..seeds-1; None
  while any is missing."""
  beta = None
  if method.startswith("flow@"):
    method, beta = "flow", float(method[len("flow@") :])
  elif method == "flow":
    beta = chosen_beta(results, steps, width)
    if beta is ...:
      return None
  runs = [results.get(Config(noise, method, s, beta, steps, width).key) for s in range(seeds)]
  return None if any(r is None for r in runs) else runs


def _value(record: dict, name: str) -> float:
  return record[name] if name == "memorised" else record["test"][name]


def cell_table(results: dict, noise: float, seeds: int, steps: int, width: int, missing: list) -> list[str]:
  """Markdown lines of one noise cell: a row per method, Δ paired against ERM; [] when nothing is complete."""
  base = cell_runs(results, noise, "erm", seeds, steps, width)
  names = list(REPORT_METRICS) + ([("memorised", 100, "memorised %")] if noise > 0 else [])
  rows = []
  for method in list(ALL_METHODS) + flow_checks(results, steps, width):
    runs = cell_runs(results, noise, method, seeds, steps, width)
    if runs is None:
      if method in METHODS:
        missing.append(f"noise {noise:g} {method}")
      continue
    c = runs[0]["config"]
    hp = "—" if c["alpha"] is None else f"α {c['alpha']:g}"
    hp += "" if c["beta"] is None else f", β {c['beta']:g}"
    cells = ["flow (check)" if "@" in method else method, hp]
    for name, scale, _ in names:
      v = np.array([_value(r, name) for r in runs]) * scale
      m, se = study.mean_se(v)
      cell = f"{m:.2f} ± {se:.2f}"
      if base is not None and method != "erm":
        d = v - np.array([_value(r, name) for r in base]) * scale
        dm, dse = study.mean_se(d)
        cell += f" (Δ {dm:+.2f} ± {dse:.2f})"
      cells.append(cell)
    rows.append(cells)
  if not rows:
    return []
  head = ["method", "hyper-parameters"] + [n[2] for n in names]
  title = f"{100 * noise:g} % of positives dropped, {100 * noise:g} % of negatives added"
  if noise == 0:
    title = "clean training labels"
  return [
    f"## {title}",
    "",
    "| " + " | ".join(head) + " |",
    "|" + "---|" * len(head),
    *["| " + " | ".join(r) + " |" for r in rows],
    "",
  ]


def paired(
  results, noise, method, seeds, steps, width, name="mAP", scale=100, baseline="erm"
) -> tuple[float, float] | None:
  """(mean, s.e.) of the paired difference `method` − `baseline` in one cell; None while either is missing."""
  runs = cell_runs(results, noise, method, seeds, steps, width)
  base = cell_runs(results, noise, baseline, seeds, steps, width)
  if runs is None or base is None:
    return None
  d = np.array([_value(r, name) for r in runs]) - np.array([_value(r, name) for r in base])
  return study.mean_se(d * scale)


def flow_against_mixers(results: dict, seeds: int, steps: int, width: int) -> list[str]:
  """Markdown lines: Flow-Mixup minus each other mixer, paired, per cell (mAP and macro-F1)."""
  rows, names = [], ("mAP", "macro_f1")
  for noise in NOISES:
    for other in [m for m in ALL_METHODS if m not in ("erm", "flow")] + flow_checks(results, steps, width):
      cells = [paired(results, noise, "flow", seeds, steps, width, n, 100, other) for n in names]
      if None in cells:
        continue
      rows.append(
        f"| {100 * noise:g} % | flow − {other.replace('flow@', 'flow at β ')} | "
        + " | ".join(f"{m:+.2f} ± {se:.2f}" for m, se in cells)
        + " |"
      )
  if not rows:
    return []
  return [
    "## Flow-Mixup against the other mixers (paired over the same seeds)",
    "",
    "`flow at β 0` (where run): the same two flows, clean and mixed, without the constraint; "
    "the difference is what the constraint adds.",
    "",
    "| noise | difference | Δ mAP (pts) | Δ macro-F1 (pts) |",
    "|---|---|---|---|",
    *rows,
    "",
  ]


def plot_results(results: dict, out: str, seeds: int, steps: int, width: int) -> str | None:
  """``results.png``: paired Δ mAP and Δ macro-F1 against ERM per noise level, one bar per method."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
  drawn = False
  mixers = [m for m in ALL_METHODS if m != "erm"]
  for ax, (name, label) in zip(axes, (("mAP", "Δ mAP (pts)"), ("macro_f1", "Δ macro-F1 (pts)")), strict=True):
    for j, method in enumerate(mixers):
      xs, ys, es = [], [], []
      for i, noise in enumerate(NOISES):
        p = paired(results, noise, method, seeds, steps, width, name)
        if p is not None:
          xs.append(i + (j - (len(mixers) - 1) / 2) * 0.2)
          ys.append(p[0])
          es.append(p[1])
      if xs:
        drawn = True
        ax.bar(xs, ys, width=0.2, yerr=es, capsize=3, label=method)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(NOISES)), [f"{100 * n:g} % noise" for n in NOISES])
    ax.set_ylabel(label)
  if not drawn:
    plt.close(fig)
    return None
  axes[0].legend(fontsize=8)
  fig.suptitle(
    f"Mixing minus ERM, paired over {seeds} seeds (error bars: s.e. of the paired difference)", fontsize=9
  )
  fig.tight_layout()
  fig.savefig(os.path.join(out, "results.png"), dpi=110)
  plt.close(fig)
  return "results.png"


def plot_canvases(raw: dict, out: str, seed: int = 0, count: int = 4) -> str:
  """``canvases.png``: a few training canvases mixed by each method, with their multi-hot targets.

  MixUp and the switch are shown as the images they make; Manifold Mixup mixes hidden states, so
  its row shows the inputs with the targets it trains on (the mix happens inside the network);
  Flow-Mixup's row shows the mixed flow with its targets (the clean flow is the top row). Every row
  uses the same key, so Flow-Mixup's mixed flow is MixUp's mix: what differs is that Flow-Mixup also
  trains on the clean flow and adds the constraint on hidden states.
  """
  import jax
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  import jaxmix
  from jaxmix.flow_mixup import flow_inputs
  from jaxmix.flow_mixup import flow_targets
  from jaxmix.flow_mixup import sample_flow_mixup

  sizes = {"items": min(ITEMS, len(raw["x_train"])), "train": 64, "val": 8, "test": 8}
  data = make_data(seed, 0.0, raw, sizes)
  x, y = data["x_train"][: 2 * count], data["y_train"][: 2 * count]
  b = len(x)
  key = jax.random.key(seed)
  rows = [("clean (ERM)", x, y)]
  xm, ym = jaxmix.mixup(key, x, y, alpha=ALPHA["mixup"])
  rows.append((f"MixUp α={ALPHA['mixup']:g}", np.asarray(xm), np.asarray(ym)))
  mix = jaxmix.sample_manifold(key, b, layers=3, alpha=ALPHA["manifold"])
  layer = int(mix.layer)
  shown = np.asarray(jaxmix.apply(mix.plan, x)) if layer == 0 else x
  ym = np.asarray(jaxmix.mix_labels(mix, y))
  rows.append((f"Manifold α={ALPHA['manifold']:g} (layer {layer})", shown, ym))
  fmix = sample_flow_mixup(key, b, alpha=ALPHA["flow"])
  xf, yf = np.asarray(flow_inputs(x, fmix))[b:], np.asarray(flow_targets(fmix, y))[b:]
  rows.append((f"Flow-Mixup α={ALPHA['flow']:g} (mixed flow)", xf, yf))
  import data as data_lib

  short = [n.split("/")[0][:7] for n in data_lib.FASHION_CLASSES]
  fig, axes = plt.subplots(
    len(rows),
    2 * count,
    figsize=(3.0 * count, 2.1 * len(rows)),
    gridspec_kw={"width_ratios": [1.6, 1] * count},
  )
  for r, (title, images, targets) in enumerate(rows):
    for c in range(count):
      ax_im, ax_t = axes[r, 2 * c], axes[r, 2 * c + 1]
      ax_im.imshow(images[c, ..., 0], cmap="gray", vmin=0, vmax=1)
      ax_im.set_xticks([])
      ax_im.set_yticks([])
      if c == 0:
        ax_im.set_ylabel(title, fontsize=7)
      ax_t.barh(np.arange(NUM_CLASSES), targets[c], color="tab:blue")
      ax_t.set_xlim(0, 1)
      ax_t.set_yticks(np.arange(NUM_CLASSES), short, fontsize=5)
      ax_t.invert_yaxis()
      ax_t.tick_params(axis="x", labelsize=5)
  fig.suptitle(
    "Training canvases (2 × 2 Fashion-MNIST items) and the multi-hot targets each method trains on",
    fontsize=9,
  )
  fig.tight_layout()
  fig.savefig(os.path.join(out, "canvases.png"), dpi=100)
  plt.close(fig)
  return "canvases.png"


def report(args: argparse.Namespace) -> int:
  """Markdown tables and PNGs from the stored JSON; a cell with fewer than ``args.seeds`` seeds is listed
  as missing, never printed as a number."""
  results = load_results(args.out)
  steps, width, seeds = args.steps, args.width, args.seeds
  beta = chosen_beta(results, steps, width)
  tests = ", ".join(sorted({f"{r['data']['test_canvases']:,}" for r in results.values()})) or "no"
  lines = [
    "# Multi-label study: 2 × 2 Fashion-MNIST canvases",
    "",
    "Rendered by `python examples/multilabel_study.py report` from the stored runs.",
    "",
    f"Mean ± standard error over {seeds} seeds of test metrics on {tests} clean test canvases; "
    "Δ = paired difference against ERM (same seed: same canvases, corruption, initialisation, batch order) "
    "± its standard error. memorised: share of the corrupted training bits the model reproduces at 0.5 "
    "(lower is better). See examples/multilabel_study.py for the protocol.",
    "",
  ]
  if beta is not ...:
    scores = [results[Config(BETA_NOISE, "flow", 0, b, steps, width).key]["val"]["mAP"] for b in BETAS]
    lines += [
      f"Flow-Mixup's β = {beta:g}, chosen by validation mAP (corrupted validation labels, "
      f"{100 * BETA_NOISE:g} % cell, seed 0): "
      + ", ".join(f"β {b:g}: {100 * s:.2f}" for b, s in zip(BETAS, scores, strict=True))
      + ".",
      "",
    ]
  missing: list[str] = []
  for noise in NOISES:
    lines += cell_table(results, noise, seeds, steps, width, missing)
  lines += flow_against_mixers(results, seeds, steps, width)
  figures = []
  name = plot_results(results, args.out, seeds, steps, width)
  if name:
    figures.append((name, "Paired Δ against ERM of test mAP (left) and macro-F1 (right) per noise level."))
  if not args.no_canvases:
    raw = load_items(args.data_dir)
    caption = (
      "Training canvases and the multi-hot targets each method trains on (seed 0, one key for all rows: "
      "Flow-Mixup's mixed flow is MixUp's mix, trained next to the clean row; Manifold Mixup mixes inside "
      "the network, so its row shows the inputs with the mixed targets unless layer 0 was drawn)."
    )
    figures.append((plot_canvases(raw, args.out), caption))
  for fname, caption in figures:
    lines += [f"![{caption}]({fname})", "", caption, ""]
  commits = sorted({r.get("versions", {}).get("commit", "not recorded") for r in results.values()})
  seconds = [r["train_seconds"] for r in results.values()]
  lines.append(
    f"Runs stored: {len(results)}; made on jaxmix commit(s): {', '.join(commits) or 'none'}"
    + (f"; training time per run {min(seconds):.0f}–{max(seconds):.0f} s." if seconds else ".")
  )
  lines.append("")
  if missing:
    lines.append(f"Cells not complete ({len(missing)}, fewer than {seeds} seeds or β search unfinished): ")
    lines.append(", ".join(missing) + ".")
    lines.append("")
  text = "\n".join(lines)
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "multilabel.md")
  with open(path, "w") as f:
    f.write(text)
  print(text)
  print(f"wrote {', '.join([path] + [os.path.join(args.out, n) for n, _ in figures])}")
  return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  import data as data_lib

  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="command", required=True)
  r = sub.add_parser("run", help="run the missing configurations (resumable)")
  r.add_argument("--noises", type=float, nargs="+", default=list(NOISES))
  r.add_argument("--methods", nargs="+", default=list(METHODS), choices=ALL_METHODS)
  r.add_argument("--items", type=int, default=ITEMS, help="Fashion-MNIST training items per seed")
  r.add_argument("--train-canvases", type=int, default=TRAIN_CANVASES)
  r.add_argument("--val-canvases", type=int, default=VAL_CANVASES)
  r.add_argument("--test-canvases", type=int, default=TEST_CANVASES)
  r.add_argument(
    "--flow-beta", type=float, default=None, help="Flow-Mixup at this β, no search (a check, e.g. 0)"
  )
  r.add_argument("--dry-run", action="store_true", help="print the grid and its estimated time")
  r.add_argument("--seconds-per-step", type=float, default=0.04, help="for the estimate (loaded 2-core CPU)")
  r.add_argument("--seconds-per-eval", type=float, default=3.0, help="for the estimate")
  r.add_argument("--no-progress", action="store_true", help="no progress bar over the runs")
  rep = sub.add_parser("report", help="render tables and PNGs from the stored JSON")
  rep.add_argument("--no-canvases", action="store_true", help="skip the canvas picture (needs Fashion-MNIST)")
  for q in (r, rep):
    q.add_argument("--out", default=DEFAULT_OUT)
    q.add_argument("--data-dir", default=data_lib.DEFAULT_DATA_DIR)
    q.add_argument("--seeds", type=int, default=SEEDS, help="seeds per cell (report: at least this many)")
    q.add_argument("--steps", type=int, default=STEPS)
    q.add_argument("--width", type=int, default=WIDTH)
  return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  if args.command == "run":
    return run(args)
  return report(args)


if __name__ == "__main__":
  sys.exit(main())
