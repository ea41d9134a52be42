"""Where does mixing beat ERM? A resumable regime study on Fashion-MNIST.

    python examples/study.py run --dry-run        # the grid, what is done, and the estimated time
    nohup python examples/study.py run &          # runs what is missing; one JSON per run
    python examples/study.py report               # tables and plots from the stored JSON only

The grid crosses training-set size (1 000, 5 000, 60 000 images), symmetric label
noise on the training labels (0 %, 20 %, 40 %), and methods: ERM, ERM + standard
augmentation (random crop with 2-pixel padding and horizontal flip, per sample through
:func:`jaxmix.augment_per_sample` and dm-pix), and on top of the same augmentation
MixUp, CutMix, the MixUp/CutMix switch, FMix, Manifold Mixup, ResizeMix and RegMixup.

Protocol (the same seed gives every method the same subset, validation split, label
noise, initialisation and data order, so differences are paired):

* A seeded subset of ``size`` training images; a disjoint validation split of
  ``max(200, size // 10)`` images is carved from it and the model trains on the rest.
  Label noise flips exactly ``round(rate * size)`` labels of the subset (training and
  validation alike, as a user's data would be) to a uniformly drawn *different* class.
  Test labels stay clean.
* α of each mixing method is chosen per training-set size on the validation split of
  the clean-label cell with seed 0, from {0.2, 0.5, 1, 2} (RegMixup from its paper's
  range {0.5, 2, 10, 20}; ResizeMix has no α, its scale range stays at the paper's
  (0.1, 0.8)). That α is then used for every noise level and seed; the test set is
  read only for the final numbers.
* Training length: ``max(1000, 10 epochs)`` SGD steps of batch 128 (Nesterov momentum
  0.9, peak learning rate 0.1 with 5 % warm-up and cosine decay, weight decay 5e-4):
  at 1 000 and 5 000 images ERM's training loss has stopped falling long before the
  end; each run stores its training-loss curve, so this can be checked.
* Model: ``examples/models.py``'s ResNet (width 8, 3 stages, batch norm), small
  enough to train 1 000 steps in about 20 s on a 2-core CPU.

Each run stores test accuracy, NLL, ECE (15 bins), accuracy on corrupted test images
(Gaussian noise, Gaussian blur and contrast reduction, two severities each, made with
dm-pix), validation accuracy, with label noise the share of flipped training labels
the model reproduces (memorisation), and the test NLL and ECE after temperature scaling
fitted on the validation split (Guo et al. 2017; runs stored before that was added lack it).
``run --alpha-from DIR`` reuses another study directory's α search, for a second study of
a few cells (``examples/results/study-ts/``: the temperature-scaling replication).

Speed note: training several seeds in one program with ``jax.vmap`` was measured
*slower* on the CPU (1 084 vs 1 597 images/s for 3 models vs 1), and a ``lax.scan``
over steps slower than a jitted step called from Python (1 597 vs 7 471 images/s), so
runs are sequential and each step is one jitted call.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results", "study")
SIZES = (1000, 5000, 60000)
NOISES = (0.0, 0.2, 0.4)
BASELINES = ("erm", "aug")
MIXERS = ("mixup", "cutmix", "switch", "fmix", "manifold", "resizemix", "regmixup")
METHODS = BASELINES + MIXERS
ALPHAS = (0.2, 0.5, 1.0, 2.0)
# RegMixup's paper (Pinto et al. 2022) uses α = 10 or 20: near-even mixes next to the clean loss.
METHOD_ALPHAS: dict[str, tuple[float, ...]] = {"regmixup": (0.5, 2.0, 10.0, 20.0), "resizemix": ()}
SEEDS = 3
BATCH = 128
MIN_STEPS = 1000
MIN_EPOCHS = 10
# Fashion-MNIST training-set pixel statistics on [0, 1] images.
MEAN, STD = 0.2860, 0.3530
NUM_CLASSES = 10
# (name, severity 1, severity 2): noise std, blur sigma, contrast factor (smaller = stronger).
CORRUPTIONS = (("noise", 0.1, 0.2), ("blur", 1.0, 1.5), ("contrast", 0.4, 0.2))


# ----------------------------------------------------------------------------- data


def val_size(size: int) -> int:
  return max(200, size // 10)


def steps_for(size: int) -> int:
  """The training-length rule: ``max(MIN_STEPS, MIN_EPOCHS epochs)`` steps of BATCH."""
  return max(MIN_STEPS, math.ceil(MIN_EPOCHS * (size - val_size(size)) / BATCH))


def split(seed: int, pool: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  """Disjoint (train, validation) index arrays: a seeded subset of `size` of `pool` indices."""
  if not 0 < size <= pool:
    raise ValueError(f"size must be in [1, {pool}], got {size}.")
  nval = val_size(size)
  if nval >= size:
    raise ValueError(f"size {size} leaves no training images after a validation split of {nval}.")
  subset = np.random.default_rng([seed, 1]).permutation(pool)[:size]
  return subset[nval:], subset[:nval]


def flip_labels(
  seed: int, labels: np.ndarray, rate: float, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
  """Symmetric label noise: exactly ``round(rate * n)`` labels move to a different, uniform class.

  Returns ``(noisy_labels, flipped)`` with `flipped` a boolean mask; the input is not changed.
  """
  if not 0.0 <= rate <= 1.0:
    raise ValueError(f"rate must be in [0, 1], got {rate}.")
  if num_classes < 2:
    raise ValueError(f"num_classes must be at least 2 to flip labels, got {num_classes}.")
  rng = np.random.default_rng([seed, 2])
  n = len(labels)
  flipped = np.zeros(n, bool)
  flipped[rng.permutation(n)[: int(round(rate * n))]] = True
  shift = rng.integers(1, num_classes, size=n)
  noisy = np.where(flipped, (labels + shift) % num_classes, labels).astype(labels.dtype)
  return noisy, flipped


def load_raw(data_dir: str) -> dict[str, np.ndarray]:
  """Fashion-MNIST as float32 ``[N, 28, 28, 1]`` images in [0, 1] and int32 labels."""
  import data as data_lib

  if not data_lib.has_fashion_mnist(data_dir):
    raise FileNotFoundError(
      f"Fashion-MNIST not found in {data_dir!r}; install it with `apt-get install dataset-fashion-mnist`."
    )
  arrays = {k: data_lib.read_idx(os.path.join(data_dir, f)) for k, f in data_lib.FASHION_FILES.items()}
  return {
    "x_train": arrays["train_images"].astype(np.float32)[..., None] / 255.0,
    "y_train": arrays["train_labels"].astype(np.int32),
    "x_test": arrays["test_images"].astype(np.float32)[..., None] / 255.0,
    "y_test": arrays["test_labels"].astype(np.int32),
  }


def corrupt(images: np.ndarray, kind: str, severity: float, seed: int = 0) -> np.ndarray:
  """A corrupted copy of [0, 1] images ``[N, H, W, C]`` (dm-pix; values stay in [0, 1])."""
  import dm_pix as pix
  import jax
  import jax.numpy as jnp

  x = jnp.asarray(images, jnp.float32)
  if kind == "noise":
    out = x + severity * jax.random.normal(jax.random.key(seed), x.shape)
  elif kind == "blur":
    size = 2 * math.ceil(3 * severity) + 1
    out = jax.vmap(lambda im: pix.gaussian_blur(im, severity, size))(x)
  elif kind == "contrast":
    out = jax.vmap(lambda im: pix.adjust_contrast(im, severity))(x)
  else:
    raise ValueError(f"kind must be one of {[c[0] for c in CORRUPTIONS]}, got {kind!r}.")
  return np.asarray(jnp.clip(out, 0.0, 1.0), images.dtype)


# ----------------------------------------------------------------------------- metrics


def calibration(probs: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> dict[str, Any]:
  """Accuracy, NLL and ECE with equal-width confidence bins (Guo et al. 2017), plus the bins."""
  probs = np.asarray(probs, np.float64)
  labels = np.asarray(labels)
  if probs.ndim != 2 or labels.shape != probs.shape[:1]:
    raise ValueError(f"probs must be [N, K] and labels [N]; got {probs.shape} and {labels.shape}.")
  conf = probs.max(-1)
  correct = (probs.argmax(-1) == labels).astype(np.float64)
  nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()
  edges = np.linspace(0.0, 1.0, num_bins + 1)
  which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, num_bins - 1)
  counts = np.bincount(which, minlength=num_bins)
  acc = np.bincount(which, correct, minlength=num_bins) / np.maximum(counts, 1)
  mean_conf = np.bincount(which, conf, minlength=num_bins) / np.maximum(counts, 1)
  ece = float(np.sum(counts / len(labels) * np.abs(acc - mean_conf)))
  bins = {"count": counts.tolist(), "accuracy": acc.tolist(), "confidence": mean_conf.tolist()}
  return {"accuracy": float(correct.mean()), "nll": float(nll), "ece": ece, "bins": bins}


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
  """The temperature T that minimises the NLL of ``softmax(log(probs) / T)`` on (probs, labels): Guo et
  al. 2017's temperature scaling, fitted on the validation split (a grid over log T, then a finer grid
  around its best point; the NLL is convex in 1/T, so this finds its minimum to 0.1 %)."""
  logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None))
  labels = np.asarray(labels)

  def nll(t: float) -> float:
    z = logp / t
    z = z - z.max(-1, keepdims=True)
    return float((np.log(np.exp(z).sum(-1)) - z[np.arange(len(labels)), labels]).mean())

  grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))
  best = grid[int(np.argmin([nll(t) for t in grid]))]
  fine = best * np.exp(np.linspace(-0.03, 0.03, 61))
  return float(fine[int(np.argmin([nll(t) for t in fine]))])


def with_temperature(probs: np.ndarray, t: float) -> np.ndarray:
  """``softmax(log(probs) / t)``, row by row."""
  z = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None)) / t
  z = np.exp(z - z.max(-1, keepdims=True))
  return z / z.sum(-1, keepdims=True)


# ----------------------------------------------------------------------------- runs


@dataclasses.dataclass(frozen=True)
class Config:
  size: int
  noise: float
  method: str
  alpha: float | None
  seed: int
  width: int = 8
  steps: int = 0  # 0: the rule, steps_for(size)

  @property
  def key(self) -> str:
    alpha = "none" if self.alpha is None else f"{self.alpha:g}"
    steps = self.steps or steps_for(self.size)
    return f"n{self.size}-noise{self.noise:g}-{self.method}-a{alpha}-w{self.width}-t{steps}-s{self.seed}"


def make_mix(method: str):
  """``mix(key, images, labels, alpha) -> (images, targets, manifold_plan_or_None)`` for one method.

  Every method but plain ERM first augments each sample (crop with padding + flip). `alpha`
  is traced (unused by ERM, augmentation alone and ResizeMix), so one compiled step serves
  every α of the search.
  """
  import dm_pix as pix
  import jax
  import jax.numpy as jnp
  import models

  import jaxmix

  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")

  def augment(key, image):
    k_flip, k_crop = jax.random.split(key)
    image = pix.random_flip_left_right(k_flip, image)
    image = jnp.pad(image, ((2, 2), (2, 2), (0, 0)))
    return pix.random_crop(k_crop, image, (28, 28, 1))

  def mix(key, x, y, alpha):
    k_aug, k_mix = jax.random.split(key)
    if method == "erm":
      return x, jaxmix.one_hot(y, NUM_CLASSES), None
    x = jaxmix.augment_per_sample(k_aug, augment, x)
    kw = {"num_classes": NUM_CLASSES}
    if method == "aug":
      return x, jaxmix.one_hot(y, NUM_CLASSES), None
    if method == "manifold":
      plan = jaxmix.sample_manifold(k_mix, x.shape[0], layers=models.NUM_MIX_LAYERS, alpha=alpha)
      return x, jaxmix.mix_labels(plan, y, num_classes=NUM_CLASSES), plan
    if method == "switch":
      x, t = jaxmix.mixup_cutmix(k_mix, x, y, mixup_alpha=alpha, cutmix_alpha=alpha, switch_prob=0.5, **kw)
    elif method == "resizemix":
      x, t = jaxmix.resizemix(k_mix, x, y, **kw)
    else:
      fn = {"mixup": jaxmix.mixup, "cutmix": jaxmix.cutmix, "fmix": jaxmix.fmix, "regmixup": jaxmix.regmixup}
      x, t = fn[method](k_mix, x, y, alpha=alpha, **kw)
    return x, t, None

  return mix


@functools.cache
def _programs(method: str, width: int, steps: int):
  """The model, optimiser and jitted step/predict for one method (cached: compiled once per process)."""
  import jax
  import models
  import optax
  from flax.training import train_state

  class State(train_state.TrainState):
    batch_stats: Any

  model = models.ResNet(num_classes=NUM_CLASSES, width=width)
  schedule = optax.warmup_cosine_decay_schedule(0.0, 0.1, max(1, steps // 20), steps)
  tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(schedule, momentum=0.9, nesterov=True))
  mix = make_mix(method)

  @jax.jit
  def step(state, mix_key, alpha, x, y):
    key = jax.random.fold_in(mix_key, state.step)
    x, targets, plan = mix(key, x, y, alpha)  # the jaxmix line
    x = (x - MEAN) / STD

    def objective(params):
      logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True, mix=plan, mutable=["batch_stats"]
      )
      return optax.softmax_cross_entropy(logits, targets).mean(), updates

    (loss, updates), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads, batch_stats=updates["batch_stats"]), loss

  @jax.jit
  def probs_fn(state, x):
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return jax.nn.softmax(state.apply_fn(variables, (x - MEAN) / STD, train=False))

  return model, State, tx, step, probs_fn


def train_and_evaluate(
  cfg: Config, raw: dict[str, np.ndarray], corrupted: dict[str, np.ndarray], bar: Any = None
) -> dict:
  """Trains one configuration and returns its JSON-ready record.

  ``bar``: a progress bar (tqdm) to advance once per training step, or None.
  """
  import jax
  import jax.numpy as jnp


  train_idx, val_idx = split(cfg.seed, len(raw["x_train"]), cfg.size)
  subset = np.concatenate([train_idx, val_idx])
  noisy, flipped = flip_labels(cfg.seed, raw["y_train"][subset], cfg.noise, NUM_CLASSES)
  n_train = len(train_idx)
  x_train, y_train, flipped_train = raw["x_train"][train_idx], noisy[:n_train], flipped[:n_train]
  x_val, y_val = raw["x_train"][val_idx], noisy[n_train:]
  steps = cfg.steps or steps_for(cfg.size)
  batch = min(BATCH, n_train)
  model, state_cls, tx, step, probs_fn = _programs(cfg.method, cfg.width, steps)
  init_key, mix_key = jax.random.split(jax.random.key(cfg.seed))
  variables = model.init(init_key, jnp.zeros((1, 28, 28, 1)), train=False)
  state = state_cls.create(
    apply_fn=model.apply, params=variables["params"], batch_stats=variables["batch_stats"], tx=tx
  )
  alpha = jnp.float32(0.0 if cfg.alpha is None else cfg.alpha)

  def predict(x: np.ndarray, chunk: int = 1000) -> np.ndarray:
    out = []
    for i in range(0, len(x), chunk):
      part = x[i : i + chunk]
      pad = chunk - len(part)
      if pad:
        part = np.concatenate([part, np.zeros((pad,) + part.shape[1:], part.dtype)])
      out.append(np.asarray(probs_fn(state, part))[: chunk - pad])
    return np.concatenate(out)

  rng = np.random.default_rng([cfg.seed, 3])
  order = np.empty(0, np.int64)
  losses, curve = [], []
  start = time.time()
  for i in range(steps):
    if len(order) < batch:
      order = np.concatenate([order, rng.permutation(n_train)])
    idx, order = order[:batch], order[batch:]
    state, loss = step(state, mix_key, alpha, x_train[idx], y_train[idx])
    losses.append(loss)
    if bar is not None:
      bar.update()
    if (i + 1) % 50 == 0 or i + 1 == steps:
      curve.append([i + 1, float(np.mean(jax.device_get(losses)))])
      losses = []
  train_seconds = time.time() - start

  test_probs, val_probs = predict(raw["x_test"]), predict(x_val)
  test = calibration(test_probs, raw["y_test"])
  val = calibration(val_probs, y_val)
  # Temperature scaling fitted on the validation split (its labels carry the cell's noise, as a user's
  # held-out data would): the test NLL and ECE a user gets after that standard recalibration.
  temperature = fit_temperature(val_probs, y_val)
  scaled = calibration(with_temperature(test_probs, temperature), raw["y_test"])
  record: dict[str, Any] = {
    "config": dataclasses.asdict(cfg) | {"steps": steps, "batch": batch, "key": cfg.key},
    "train_size": n_train,
    "val_size": len(val_idx),
    "test": test,
    "val": {k: val[k] for k in ("accuracy", "nll", "ece")},
    "test_ts": {"temperature": temperature} | {k: scaled[k] for k in ("nll", "ece", "bins")},
    "corrupt": {
      name: float((predict(x).argmax(-1) == raw["y_test"]).mean()) for name, x in corrupted.items()
    },
    "train_loss": curve,
    "train_seconds": train_seconds,
    "versions": versions(code_commit()),
  }
  if record["corrupt"]:  # the demo skips the corruptions
    record["corrupt_mean"] = float(np.mean(list(record["corrupt"].values())))
  if cfg.noise > 0:
    pred = predict(x_train).argmax(-1)
    record["memorised"] = float((pred[flipped_train] == y_train[flipped_train]).mean())
    record["train_flipped"] = int(flipped_train.sum())
  return record


# ----------------------------------------------------------------------------- the grid


@functools.cache
def code_commit(extra: tuple[str, ...] = ()) -> str:
  """The commit of this checkout; ``+dirty`` when jaxmix/, the study code or the `extra` paths differ
  ("unknown" outside git). Read once per process: every runner calls it when its ``run`` starts, so a
  commit made while runs go on does not relabel the records that follow."""
  import subprocess

  root = os.path.dirname(HERE)
  paths = ["jaxmix", "examples/study.py", "examples/models.py", *extra]
  try:
    head = subprocess.run(
      ["git", "-C", root, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(
      ["git", "-C", root, "status", "--porcelain", "--", *paths], capture_output=True, text=True, check=True
    ).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"
  return head + ("+dirty" if dirty else "")


def versions(commit: str) -> dict[str, str]:
  """What a run record names as its software: jax, flax, optax and jaxmix versions, the backend, and the
  jaxmix commit (from :func:`code_commit`)."""
  import flax
  import jax
  import optax

  import jaxmix

  return {
    "jax": jax.__version__,
    "flax": flax.__version__,
    "optax": optax.__version__,
    "jaxmix": jaxmix.__version__,
    "backend": jax.default_backend(),
    "commit": commit,
  }


def mean_se(values: Any) -> tuple[float, float]:
  """(mean, standard error) of `values` over seeds; the s.e. is NaN for one value."""
  values = np.asarray(values, np.float64)
  se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
  return float(values.mean()), float(se)


def load_results(out: str) -> dict[str, dict]:
  results = {}
  for path in glob.glob(os.path.join(out, "runs", "*.json")):
    with open(path) as f:
      record = json.load(f)
    results[record["config"]["key"]] = record
  return results


def alphas_of(method: str) -> tuple[float | None, ...]:
  if method in BASELINES:
    return (None,)
  return METHOD_ALPHAS.get(method, ALPHAS) or (None,)


# With ``--alpha-from DIR`` (run and report): the records whose α search decides α, in place of the
# study's own, so a second study (e.g. a replication with temperature scaling) reuses the first one's α.
ALPHA_SOURCE: dict[str, dict] | None = None


def chosen_alpha(results: dict[str, dict], size: int, method: str, width: int = 8, steps: int = 0) -> Any:
  """α with the best validation accuracy on (size, noise 0, seed 0); ``...`` while runs are missing."""
  candidates = alphas_of(method)
  if len(candidates) == 1:
    return candidates[0]
  results = ALPHA_SOURCE if ALPHA_SOURCE is not None else results
  scores = []
  for a in candidates:
    record = results.get(Config(size, 0.0, method, a, 0, width, steps).key)
    if record is None:
      return ...
    scores.append(record["val"]["accuracy"])
  return candidates[int(np.argmax(scores))]


def grid(
  results: dict[str, dict],
  sizes=SIZES,
  noises=NOISES,
  methods=METHODS,
  seeds: int = SEEDS,
  width: int = 8,
  steps: int = 0,
) -> Iterator[Config | tuple]:
  """Every run of the study in order of priority (smallest training set first).

  Yields a Config, or ``(size, noise, method, seed)`` for a run whose α is not chosen yet.
  """
  for size in sizes:
    for method in methods:  # α search first: its results decide the rest
      if len(alphas_of(method)) > 1:
        for a in alphas_of(method):
          yield Config(size, 0.0, method, a, 0, width, steps)
    for noise in noises:
      for method in methods:
        alpha = chosen_alpha(results, size, method, width, steps)
        for seed in range(seeds):
          yield (
            (size, noise, method, seed)
            if alpha is ...
            else Config(size, noise, method, alpha, seed, width, steps)
          )


def write_json(path: str, record: dict) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(record, f, indent=1)
  os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
  from tqdm.auto import tqdm

  code_commit()  # the checkout as this process imported it
  kw = dict(
    sizes=args.sizes,
    noises=args.noises,
    methods=args.methods,
    seeds=args.seeds,
    width=args.width,
    steps=args.steps,
  )
  global ALPHA_SOURCE
  ALPHA_SOURCE = load_results(args.alpha_from) if getattr(args, "alpha_from", None) else None

  def wanted(c: Any, results: dict[str, dict]) -> bool:
    """Not run yet (or waiting for its α search); with --alpha-from, α searches are not run here."""
    if not isinstance(c, Config):
      return True
    if ALPHA_SOURCE is not None and c.alpha != chosen_alpha(results, c.size, c.method, c.width, c.steps):
      return False
    return c.key not in results

  results = load_results(args.out)
  todo = [c for c in dict.fromkeys(grid(results, **kw)) if wanted(c, results)]
  done = sum(isinstance(c, Config) and c.key in results for c in dict.fromkeys(grid(results, **kw)))
  cost = {
    c: (c.steps or steps_for(c.size)) * (2 if c.method == "regmixup" else 1)
    for c in todo
    if isinstance(c, Config)
  }
  pending = [c for c in todo if not isinstance(c, Config)]
  step_cost = sum(cost.values()) + sum(steps_for(c[0]) for c in pending)
  est = step_cost * args.seconds_per_step + len(todo) * args.seconds_per_eval
  print(
    f"study grid: {done} runs stored in {args.out}, {len(todo)} to run "
    f"({len(pending)} waiting for their α search); about {est / 3600:.1f} h at "
    f"{args.seconds_per_step * 1000:.0f} ms/step + {args.seconds_per_eval:.0f} s/eval",
    flush=True,
  )
  if args.dry_run:
    for c in todo:
      print("  ", c.key if isinstance(c, Config) else "n{}-noise{:g}-{}-a?-s{}".format(*c))
    return 0

  raw = load_raw(args.data_dir)
  corrupted = {
    f"{kind}-{sev:g}": corrupt(raw["x_test"], kind, sev, seed=i)
    for i, (kind, *sevs) in enumerate(CORRUPTIONS)
    for sev in sevs
  }
  bar = tqdm(total=len(todo), desc="study", mininterval=5.0, disable=args.no_progress)
  while True:
    results = load_results(args.out)
    nxt = next((c for c in grid(results, **kw) if isinstance(c, Config) and wanted(c, results)), None)
    if nxt is None:
      break
    bar.set_postfix_str(nxt.key)
    record = train_and_evaluate(nxt, raw, corrupted)
    write_json(os.path.join(args.out, "runs", nxt.key + ".json"), record)
    bar.update()
  bar.close()
  print("study grid complete.")
  return 0


def cell_runs(
  results: dict[str, dict], size: int, noise: float, method: str, seeds: int, steps: int = 0, width: int = 8
) -> list[dict] | None:
  """The runs of one cell at its chosen α: seeds 0, 1, … as long as they are stored, so a cell given more
  seeds (``run --seeds 5``) reports them all; None while fewer than `seeds` are."""
  alpha = chosen_alpha(results, size, method, width, steps)
  if alpha is ...:
    return None
  runs = []
  while (record := results.get(Config(size, noise, method, alpha, len(runs), width, steps).key)) is not None:
    runs.append(record)
  return runs if len(runs) >= seeds else None


def _variant_of(config: dict) -> tuple:
  """(size, method, width, steps) of a stored run's configuration."""
  return (config["size"], config["method"], config.get("width", 8), config["steps"])


def _pair(runs: list[dict], base: list[dict]) -> tuple[list[dict], list[dict]]:
  """The seeds both cells have (each holds seeds 0, 1, …), so every difference is paired."""
  n = min(len(runs), len(base))
  return runs[:n], base[:n]


def _metric(record: dict, name: str) -> float:
  if name in ("accuracy", "nll", "ece"):
    return record["test"][name]
  if name in ("nll_ts", "ece_ts"):  # after temperature scaling on the validation split
    return record["test_ts"][name[:-3]]
  if name == "confidence":  # mean top-class probability on the test set, from the ECE bins
    bins = record["test"]["bins"]
    return float(np.dot(bins["count"], bins["confidence"]) / np.sum(bins["count"]))
  return record[name]


def _cell_table(
  results: dict, size: int, noise: float, seeds: int, metrics, missing: list, steps: int = 0, width: int = 8
) -> list[str]:
  """Markdown lines of one (size, noise) cell: a row per method with all seeds, [] when none has."""
  base = cell_runs(results, size, noise, "aug", seeds, steps, width)
  rows = []
  for method in METHODS:
    runs = cell_runs(results, size, noise, method, seeds, steps, width)
    if runs is None:
      # Only what this directory set out to run: a method at a size, width and length it holds no run
      # of (a second study of a few cells, `--alpha-from`) is not "missing".
      # Held: any run of this method at this size, width and length (any noise, any α).
      held = (size, method, width, steps or steps_for(size))
      if any(_variant_of(r["config"]) == held for r in results.values()):
        missing.append(f"n={size} noise={noise:g} {method}")
      continue
    label = method if len(runs) == seeds else f"{method} ({len(runs)} seeds)"
    cells = [label, "—" if runs[0]["config"]["alpha"] is None else f"{runs[0]['config']['alpha']:g}"]
    for name, scale, _ in metrics:
      if name.endswith("_ts") and not all("test_ts" in r for r in runs + (base or [])):
        cells.append("—")  # a run stored before the runner fitted a temperature
        continue
      v = np.array([_metric(r, name) for r in runs]) * scale
      cell = f"{v.mean():.2f} ± {v.std(ddof=1) / np.sqrt(len(v)):.2f}"
      if base is not None and method != "aug":
        mine, theirs = _pair(runs, base)
        d = np.array([_metric(r, name) - _metric(b, name) for r, b in zip(mine, theirs, strict=True)]) * scale
        cell += f" (Δ {d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(len(d)):.2f})"
      cells.append(cell)
    if noise > 0:
      cells.append(f"{100 * np.mean([r['memorised'] for r in runs]):.1f}")
    rows.append(cells)
  if not rows:
    return []
  # A column no row has (a temperature-scaled metric before any re-run) is left out.
  keep = [i for i in range(len(metrics)) if any(r[2 + i] != "—" for r in rows)]
  rows = [r[:2] + [r[2 + i] for i in keep] + r[2 + len(metrics) :] for r in rows]
  metrics = [metrics[i] for i in keep]
  head = ["method", "α"] + [m[2] for m in metrics] + (["memorised %"] if noise > 0 else [])
  return [
    f"## {size} images, {100 * noise:.0f} % label noise",
    "",
    "| " + " | ".join(head) + " |",
    "|" + "---|" * len(head),
    *["| " + " | ".join(r) + " |" for r in rows],
    "",
  ]


def variants(results: dict[str, dict]) -> list[tuple[int, int]]:
  """The recipe checks stored beside the grid: ``(width, steps)`` other than the grid's (width 8, the
  step rule), ``steps`` 0 meaning the rule; from ``run --width W --steps N``."""
  found = set()
  for c in (r["config"] for r in results.values()):
    steps = 0 if c["steps"] == steps_for(c["size"]) else c["steps"]
    found.add((c.get("width", 8), steps))
  return sorted(found - {(8, 0)}, key=lambda v: (v[0], v[1]))


def variant_title(width: int, steps: int) -> str:
  parts = []
  if steps:
    parts.append(f"{steps} steps instead of the rule's")
  if width != 8:
    parts.append(f"ResNet width {width} instead of 8")
  flags = (f" --steps {steps}" if steps else "") + (f" --width {width}" if width != 8 else "")
  return f"{', '.join(parts)} (`run{flags}`)"


README_BEGIN = "<!-- study-summary:begin (generated: python examples/study.py report --readme README.md) -->"
README_END = "<!-- study-summary:end -->"


def summary_lines(results: dict[str, dict], seeds: int) -> list[str]:
  """One row per complete (size, noise, training length) cell: the best mixer against `aug`.

  "Best" is the mixer with the largest mean paired accuracy gain; a win is a gain of more than two
  paired standard errors. NLL and ECE are that method's; corruptions name their own best method.
  """
  cells = [(size, noise, 0, 8) for size in SIZES for noise in NOISES]
  cells += [(size, noise, s, w) for w, s in variants(results) for size in SIZES for noise in NOISES]
  rows = []
  for size, noise, steps, width in cells:
    base = cell_runs(results, size, noise, "aug", seeds, steps, width)
    if base is None:
      continue

    def paired(method, name, scale, size=size, noise=noise, steps=steps, width=width):
      return _paired(results, size, noise, method, seeds, name, scale, steps, width)

    acc = {m: paired(m, "accuracy", 100) for m in MIXERS}
    acc = {m: v for m, v in acc.items() if v is not None}
    if not acc:
      continue
    best = max(acc, key=lambda m: acc[m][0])
    gain, se = acc[best]
    nll, ece = paired(best, "nll", 1), paired(best, "ece", 100)
    corr = {m: paired(m, "corrupt_mean", 100) for m in acc}
    cbest = max(corr, key=lambda m: corr[m][0])
    verdict = "**win**" if gain > 2 * se else ("loss" if gain < -2 * se else "no clear difference")
    length = f"{steps_for(size)} (rule)" if steps == 0 else f"{steps} (longer)"
    if width != 8:
      length += f", width {width}"
    best_runs = cell_runs(results, size, noise, best, seeds, steps, width)
    n = min(len(base), len(best_runs or []))
    if n != seeds:
      length += f", {n} seeds"
    rows.append(
      f"| {size:,} | {100 * noise:.0f} % | {length} | {best} ({len(acc)} tried) | {gain:+.2f} ± {se:.2f} "
      f"| {verdict} | {nll[0]:+.3f} ± {nll[1]:.3f} | {ece[0]:+.2f} ± {ece[1]:.2f} "
      f"| {cbest} {corr[cbest][0]:+.2f} ± {corr[cbest][1]:.2f} |"
    )
  commits = sorted({r.get("versions", {}).get("commit", "not recorded") for r in results.values()})
  return [
    README_BEGIN,
    "",
    "| images | label noise | steps | best mixer by accuracy | Δ accuracy (pts) | verdict (2 s.e.) "
    "| its Δ NLL | its Δ ECE (pts) | best on corruptions, Δ (pts) |",
    "|---|---|---|---|---|---|---|---|---|",
    *rows,
    "",
    f"Δ: paired difference against ERM + crop/flip (`aug`), mean ± s.e. over {seeds} seeds. Generated from "
    f"{len(results)} records in `examples/results/study/runs/` (jaxmix commit {', '.join(commits)}); "
    "per-method tables in `examples/results/study/study.md`.",
    "",
    README_END,
  ]


def write_readme_summary(path: str, lines: list[str]) -> None:
  """Replaces the text between the README's study-summary markers (which must both be there)."""
  with open(path) as f:
    text = f.read()
  if README_BEGIN not in text or README_END not in text:
    raise ValueError(f"{path} has no study-summary markers ({README_BEGIN!r} ... {README_END!r}).")
  head, rest = text.split(README_BEGIN, 1)
  _, tail = rest.split(README_END, 1)
  with open(path, "w") as f:
    f.write(head + "\n".join(lines) + tail)


def report(args: argparse.Namespace) -> int:
  """Markdown tables from the stored JSON: mean ± s.e. per cell, paired difference against `aug`.

  A cell with fewer than ``args.seeds`` seeds is not printed as a number: it is listed as missing.
  """
  global ALPHA_SOURCE
  ALPHA_SOURCE = load_results(args.alpha_from) if getattr(args, "alpha_from", None) else None
  results = load_results(args.out)
  metrics = (
    ("accuracy", 100, "acc. %"),
    ("nll", 1, "NLL"),
    ("ece", 100, "ECE %"),
    ("nll_ts", 1, "NLL after TS"),
    ("ece_ts", 100, "ECE % after TS"),
    ("confidence", 100, "conf. %"),
    ("corrupt_mean", 100, "corr. %"),
  )
  lines = [
    "# Regime study: Fashion-MNIST, ResNet width 8 (rendered by `python examples/study.py report`)",
    "",
    f"Mean ± standard error over {args.seeds} seeds (more where a row says so); Δ = paired difference",
    "against ERM + augmentation (`aug`, the seeds both have) ± its standard error. α chosen on the",
    "validation split (see examples/study.py).",
    "",
  ]
  missing = []
  for size in SIZES:
    for noise in NOISES:
      lines += _cell_table(results, size, noise, args.seeds, metrics, missing)
  # Runs with another training length or model width (``run --steps N --width W``): checks of the
  # recipe, reported beside the grid, never mixed into it.
  for width, steps in variants(results):
    tables = []
    for size in SIZES:
      for noise in NOISES:
        tables += _cell_table(results, size, noise, args.seeds, metrics, [], steps=steps, width=width)
    if tables:
      lines.append(f"## Recipe check: {variant_title(width, steps)}")
      lines.append("")
      lines.append("α chosen again on the validation split for this recipe; only the cells run are shown.")
      lines.append("")
      lines += [t.replace("## ", "### ", 1) if t.startswith("## ") else t for t in tables]
  figures = plots(results, args.out, args.seeds)
  if figures:
    lines.append("## Figures")
    lines.append("")
    for name, caption in figures:
      lines.append(f"![{caption}]({name})")
      lines.append("")
      lines.append(caption)
      lines.append("")
  commits = sorted({r.get("versions", {}).get("commit", "not recorded") for r in results.values()})
  lines.append(
    f"Runs stored: {len(results)}; made on jaxmix commit(s): {', '.join(commits)} "
    "(see README.md next to this file)."
  )
  lines.append("")
  if missing:
    lines.append(
      f"Cells not yet complete ({len(missing)}, fewer than {args.seeds} seeds or α search unfinished): "
    )
    lines.append(", ".join(missing) + ".")
  if getattr(args, "readme", None):
    write_readme_summary(args.readme, summary_lines(results, args.seeds))
    print(f"updated the study summary in {args.readme}")
  text = "\n".join(lines) + "\n"
  path = os.path.join(args.out, "study.md")
  with open(path, "w") as f:
    f.write(text)
  print(text)
  print(f"wrote {', '.join([path] + [os.path.join(args.out, name) for name, _ in figures])}")
  return 0


def _paired(
  results: dict,
  size: int,
  noise: float,
  method: str,
  seeds: int,
  name: str,
  scale: float,
  steps: int = 0,
  width: int = 8,
):
  """(mean, s.e.) of the paired difference method − aug, or None while either cell is incomplete."""
  runs = cell_runs(results, size, noise, method, seeds, steps, width)
  base = cell_runs(results, size, noise, "aug", seeds, steps, width)
  if runs is None or base is None:
    return None
  runs, base = _pair(runs, base)
  if name.endswith("_ts") and not all("test_ts" in r for r in runs + base):
    return None
  d = (np.array([_metric(r, name) for r in runs]) - np.array([_metric(r, name) for r in base])) * scale
  return d.mean(), d.std(ddof=1) / np.sqrt(len(d))


def plots(results: dict[str, dict], out: str, seeds: int) -> list[tuple[str, str]]:
  """PNG figures next to study.md from the stored runs; returns (file name, caption) pairs.

  * ``gain.png``: paired Δ test accuracy and Δ ECE against ``aug`` versus training-set size, one
    column per noise level, one line per mixing method (error bars: s.e. of the paired difference);
  * ``reliability.png``: reliability diagrams of ``aug`` and the best mixing method in the cell with
    the largest accuracy gain (all seeds' bins pooled).
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  figures = []
  fig, axes = plt.subplots(2, len(NOISES), figsize=(4.2 * len(NOISES), 6.4), sharex=True, squeeze=False)
  drawn = False
  best = None  # (gain, size, noise, method)
  for j, noise in enumerate(NOISES):
    for row, (name, scale, label) in enumerate(
      (("accuracy", 100, "Δ accuracy (pts)"), ("ece", 100, "Δ ECE (pts)"))
    ):
      ax = axes[row, j]
      for method in MIXERS:
        pts = [(size, _paired(results, size, noise, method, seeds, name, scale)) for size in SIZES]
        pts = [(size, v) for size, v in pts if v is not None]
        if not pts:
          continue
        drawn = True
        xs = [p[0] for p in pts]
        ax.errorbar(
          xs, [p[1][0] for p in pts], yerr=[p[1][1] for p in pts], marker="o", capsize=3, label=method
        )
        if name == "accuracy":
          for size, (gain, _) in pts:
            if best is None or gain > best[0]:
              best = (gain, size, noise, method)
      ax.axhline(0.0, color="k", lw=0.8)
      ax.set_xscale("log")
      ax.set_xticks(list(SIZES), [f"{s:,}" for s in SIZES])
      if row == 0:
        ax.set_title(f"{100 * noise:.0f} % label noise")
      if j == 0:
        ax.set_ylabel(label)
      if row == 1:
        ax.set_xlabel("training images")
  if drawn:
    handles, labels = next((h, lab) for h, lab in (ax.get_legend_handles_labels() for ax in axes[0]) if h)
    fig.legend(handles, labels, fontsize=7, loc="center right")
    fig.subplots_adjust(right=0.9)
    fig.suptitle(
      "Mixing minus ERM + augmentation (paired over seeds); above 0 on top / below 0 below is better"
    )
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    fig.savefig(os.path.join(out, "gain.png"), dpi=110)
    figures.append(
      (
        "gain.png",
        "Paired Δ against `aug`: test accuracy (top, higher is better) and ECE (bottom, lower is "
        "better) versus training-set size, per noise level; error bars: s.e. of the paired difference.",
      )
    )
  plt.close(fig)
  if best is not None:
    gain, size, noise, method = best
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), sharey=True)
    for ax, m in zip(axes, ("aug", method), strict=True):
      runs = cell_runs(results, size, noise, m, seeds)
      counts = np.sum([r["test"]["bins"]["count"] for r in runs], axis=0)
      acc = np.sum([np.multiply(r["test"]["bins"]["accuracy"], r["test"]["bins"]["count"]) for r in runs], 0)
      conf = np.sum(
        [np.multiply(r["test"]["bins"]["confidence"], r["test"]["bins"]["count"]) for r in runs], 0
      )
      keep = counts > 0
      edges = np.linspace(0, 1, len(counts) + 1)
      centres = (edges[:-1] + edges[1:]) / 2
      ax.bar(
        centres[keep],
        acc[keep] / counts[keep],
        width=1 / len(counts),
        edgecolor="k",
        alpha=0.7,
        label="accuracy",
      )
      ax.plot(conf[keep] / counts[keep], acc[keep] / counts[keep], "r.", label="mean confidence")
      ax.plot([0, 1], [0, 1], "k--", lw=0.8)
      ece = 100 * np.mean([r["test"]["ece"] for r in runs])
      ax.set_title(f"{m}: ECE {ece:.1f} %")
      ax.set_xlabel("confidence")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{size:,} images, {100 * noise:.0f} % label noise ({len(runs)} seeds pooled)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "reliability.png"), dpi=110)
    plt.close(fig)
    figures.append(
      (
        "reliability.png",
        f"Reliability diagrams in the cell with the largest accuracy gain ({size:,} images, "
        f"{100 * noise:.0f} % noise: {method} {gain:+.2f} pts): bars above the diagonal are under-confident.",
      )
    )
  return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  import data as data_lib

  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="command", required=True)
  r = sub.add_parser("run", help="run the missing configurations (resumable)")
  r.add_argument("--out", default=DEFAULT_OUT)
  r.add_argument("--data-dir", default=data_lib.DEFAULT_DATA_DIR)
  r.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
  r.add_argument("--noises", type=float, nargs="+", default=list(NOISES))
  r.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
  r.add_argument("--seeds", type=int, default=SEEDS)
  r.add_argument("--width", type=int, default=8)
  r.add_argument("--steps", type=int, default=0, help="override the training-length rule (tests)")
  r.add_argument("--dry-run", action="store_true", help="print the grid and its estimated time")
  r.add_argument(
    "--alpha-from",
    default=None,
    help="take each method's α from the α search stored in this study directory (no search is run)",
  )
  r.add_argument("--seconds-per-step", type=float, default=0.018, help="for the estimate (2-core CPU)")
  r.add_argument("--seconds-per-eval", type=float, default=4.0, help="for the estimate (2-core CPU)")
  r.add_argument("--no-progress", action="store_true", help="no progress bar over the runs")
  rep = sub.add_parser("report", help="render tables and plots from the stored JSON")
  rep.add_argument("--out", default=DEFAULT_OUT)
  rep.add_argument("--seeds", type=int, default=SEEDS, help="a cell needs at least this many seeds")
  rep.add_argument("--readme", default=None, help="also rewrite this file's study-summary block")
  rep.add_argument("--alpha-from", default=None, help="as for run: the study directory whose α search to use")
  return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  if args.command == "run":
    return run(args)
  return report(args)


if __name__ == "__main__":
  sys.exit(main())
