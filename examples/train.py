"""Trains a small ResNet with a jaxmix method on Fashion-MNIST (or scikit-learn's digits).

    python examples/train.py --method mixup --epochs 3 --seed 0 --out results/mixup_s0.json
    python examples/train.py --method cutmix --api nnx      # the same run with Flax NNX

`--method` is ``erm`` (no mixing), ``manifold`` (Manifold Mixup at a random one
of layers 0, 1, 2), ``regmixup``, or the name of any method in jaxmix's registry
``jaxmix.SAMPLERS`` that has a one-call form and needs no extra data (``mixup``,
``cutmix``, ``mixup_cutmix``, ``fmix``, ...). Data: Fashion-MNIST from ``--data-dir`` (Debian's
``dataset-fashion-mnist``), or the digits bundled with scikit-learn when it is
absent. Prints test accuracy, NLL and ECE (15 equal-width bins), writes them to
``--out`` (JSON) and a reliability diagram next to it (PNG).

The mixing is one line of the jitted ``train_step``; its hyperparameters are
traced, so ``--mix-off-epoch`` (timm's ``mixup_off_epoch``) switches mixing off
without recompiling. ``--api linen`` (default) trains ``models.ResNet`` with a
``TrainState`` under ``jax.jit``; ``--api nnx`` trains the same network,
``models.NNXResNet``, with an ``nnx.Optimizer`` under ``nnx.jit`` (state updated in
place); both call the same mixer.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from flax.training import train_state

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data as data_lib  # noqa: E402
import models  # noqa: E402

import jaxmix  # noqa: E402

# α per method where the paper gives one for CIFAR-scale data: MixUp, CutMix and
# FMix use α = 1 (FMix paper, all its CIFAR/Fashion-MNIST runs); Manifold Mixup
# uses α = 2 (Verma et al., official code). Other methods keep their own default.
DEFAULT_ALPHA = {"mixup": 1.0, "cutmix": 1.0, "fmix": 1.0, "manifold": 2.0}
# Options for methods whose own defaults would not mix as the name says: timm's
# switch defaults to cutmix_alpha=0 (MixUp only), so turn both on (timm's ImageNet
# recipe uses mixup 0.8 / cutmix 1.0; 1.0 / 1.0 keeps α equal to the other rows).
# TokenMix: 4-pixel tokens (a ViT's 16 does not divide 28 × 28 or 8 × 8 images).
DEFAULT_KWARGS = {
  "mixup_cutmix": {"mixup_alpha": 1.0, "cutmix_alpha": 1.0, "switch_prob": 0.5},
  "tokenmix": {"patch_size": 4},
}
NO_OFF_STEP = 2**31 - 1

MixFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array, Any]]


# Recipes built on the registered methods that train like them.
RECIPES = {"regmixup": jaxmix.regmixup}


def method_function(method: str) -> Callable[..., Any]:
  """The one-call jaxmix function for `method` (raises a clear error when absent)."""
  if method not in available_methods():
    raise ValueError(
      f"--method {method!r} is not a jaxmix mixing method; try erm, manifold, {available_methods()}."
    )
  return RECIPES[method] if method in RECIPES else jaxmix.SAMPLERS[method].mix


def available_methods() -> list[str]:
  """Every registered method whose one-call form needs no extra input, and the recipes.

  Read from ``jaxmix.SAMPLERS`` (Attentive CutMix, which needs ``features=``,
  and Mosaic, whose one-call carries boxes, are left out).
  """

  def needs_nothing(fn: Callable[..., Any]) -> bool:
    params = inspect.signature(fn).parameters.values()
    return not [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]

  names = [n for n, spec in jaxmix.SAMPLERS.items() if spec.mix is not None and needs_nothing(spec.mix)]
  return names + list(RECIPES)


def effective_alpha(method: str, alpha: float | None = None) -> float | None:
  """The α a run uses: the override, else DEFAULT_ALPHA, else the method's own default (or None)."""
  if alpha is not None or method == "erm":
    return alpha
  if method in DEFAULT_ALPHA:
    return DEFAULT_ALPHA[method]
  params = inspect.signature(method_function(method)).parameters
  if "alpha" in params and params["alpha"].default is not inspect.Parameter.empty:
    return params["alpha"].default
  return None


def make_mixer(
  method: str,
  num_classes: int,
  *,
  alpha: float | None = None,
  off_step: int = NO_OFF_STEP,
  kwargs: dict[str, Any] | None = None,
) -> MixFn:
  """``mix(key, step, images, labels) -> (images, targets, manifold_plan_or_None)``.

  α (when the method has one) goes through :func:`jaxmix.off_after`, so it is
  traced and turns to 0 (no mixing) at `off_step` without a retrace.
  """
  kwargs = dict(DEFAULT_KWARGS.get(method, {}) if kwargs is None else kwargs)

  if method == "erm":

    def mix(key, step, x, y):
      return x, jaxmix.one_hot(y, num_classes), None

    return mix

  if method == "manifold":
    a = DEFAULT_ALPHA["manifold"] if alpha is None else alpha

    def mix(key, step, x, y):
      plan = jaxmix.sample_manifold(
        key, x.shape[0], layers=models.NUM_MIX_LAYERS, alpha=jaxmix.off_after(a, step, off_step), **kwargs
      )
      return x, jaxmix.mix_labels(plan, y, num_classes=num_classes), plan

    return mix

  fn = method_function(method)
  params = inspect.signature(fn).parameters
  alpha = effective_alpha(method, alpha)

  def mix(key, step, x, y):
    extra = dict(kwargs)
    if "alpha" in params and alpha is not None:
      extra["alpha"] = jaxmix.off_after(alpha, step, off_step)
    x, targets = fn(key, x, y, num_classes=num_classes, **extra)
    return x, targets, None

  return mix


class TrainState(train_state.TrainState):
  batch_stats: Any


def create_state(model: models.ResNet, key: jax.Array, image_shape: tuple[int, ...], lr: Any) -> TrainState:
  variables = model.init(key, jnp.zeros((1,) + tuple(image_shape)), train=False)
  tx = optax.adamw(lr, weight_decay=5e-4)
  return TrainState.create(
    apply_fn=model.apply, params=variables["params"], batch_stats=variables["batch_stats"], tx=tx
  )


def loss_fn(logits: jax.Array, targets: jax.Array, loss: str) -> jax.Array:
  """Soft-target cross-entropy, or BCE treating the mixed targets as multi-label (as in timm/RSB)."""
  if loss == "softmax":
    return optax.softmax_cross_entropy(logits, targets).mean()
  if loss == "bce":
    return optax.sigmoid_binary_cross_entropy(logits, targets).sum(-1).mean()
  raise ValueError(f"loss must be 'softmax' or 'bce', got {loss!r}.")


def make_train_step(
  mix: MixFn, loss: str = "softmax"
) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
  """A jitted ``train_step(state, key, images, labels)``; ``train_step.traces`` counts compilations."""

  def train_step(state: TrainState, key: jax.Array, images: jax.Array, labels: jax.Array):
    train_step.traces += 1
    key = jax.random.fold_in(key, state.step)
    images, targets, plan = mix(key, state.step, images, labels)  # the jaxmix line

    def objective(params):
      logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats},
        images,
        train=True,
        mix=plan,
        mutable=["batch_stats"],
      )
      return loss_fn(logits, targets, loss), updates

    (value, updates), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=updates["batch_stats"])
    return state, {"loss": value}

  train_step.traces = 0
  jitted = jax.jit(train_step, donate_argnums=0)
  return _Counted(jitted, train_step)


def make_nnx_train_step(mix: MixFn, loss: str = "softmax") -> Callable[..., dict[str, jax.Array]]:
  """An ``nnx.jit``-ed ``train_step(model, optimizer, key, images, labels)`` for Flax NNX.

  The model and its ``nnx.Optimizer`` are updated in place (batch statistics included); the
  step number comes from the optimizer, so the mixing key and schedules advance as in the
  linen step. ``train_step.traces`` counts compilations.
  """

  def train_step(model: nnx.Module, optimizer: nnx.Optimizer, key, images, labels):
    train_step.traces += 1
    step = optimizer.step[...]
    key = jax.random.fold_in(key, step)
    images, targets, plan = mix(key, step, images, labels)  # the jaxmix line

    def objective(model):
      return loss_fn(model(images, mix=plan), targets, loss)

    value, grads = nnx.value_and_grad(objective)(model)
    optimizer.update(model, grads)
    return {"loss": value}

  train_step.traces = 0
  return _Counted(nnx.jit(train_step), train_step)


class _Counted:
  """A jitted function that exposes how many times its Python body was traced."""

  def __init__(self, jitted: Callable[..., Any], body: Any):
    self._jitted, self._body = jitted, body

  def __call__(self, *args: Any) -> Any:
    return self._jitted(*args)

  @property
  def traces(self) -> int:
    return self._body.traces


def predict(state: TrainState | nnx.Module, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
  """Softmax probabilities for all `images` from a linen ``TrainState`` or an NNX model.

  The last batch is padded, so one compilation; an NNX model is switched to eval mode.
  """
  if isinstance(state, nnx.Module):
    state.eval()
    probs = functools.partial(nnx.jit(lambda model, x: jax.nn.softmax(model(x))), state)
  else:

    @jax.jit
    def probs(x):
      logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, x, train=False)
      return jax.nn.softmax(logits)

  n = len(images)
  batch_size = min(batch_size, n)
  out = []
  for start in range(0, n, batch_size):
    x = images[start : start + batch_size]
    pad = batch_size - len(x)
    if pad:
      x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    out.append(np.asarray(probs(jnp.asarray(x)))[: batch_size - pad])
  return np.concatenate(out)


def calibration(probs: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> dict[str, Any]:
  """Accuracy, NLL and expected calibration error (equal-width confidence bins, Guo et al. 2017)."""
  probs = np.asarray(probs, np.float64)
  conf = probs.max(-1)
  pred = probs.argmax(-1)
  correct = (pred == labels).astype(np.float64)
  nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()
  edges = np.linspace(0.0, 1.0, num_bins + 1)
  which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, num_bins - 1)
  counts = np.bincount(which, minlength=num_bins)
  acc_bins = np.bincount(which, correct, minlength=num_bins) / np.maximum(counts, 1)
  conf_bins = np.bincount(which, conf, minlength=num_bins) / np.maximum(counts, 1)
  ece = float(np.sum(counts / len(labels) * np.abs(acc_bins - conf_bins)))
  return {
    "accuracy": float(correct.mean()),
    "nll": float(nll),
    "ece": ece,
    "bins": {
      "edges": edges.tolist(),
      "count": counts.tolist(),
      "accuracy": acc_bins.tolist(),
      "confidence": conf_bins.tolist(),
    },
  }


def reliability_diagram(metrics: dict[str, Any], path: str, title: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  bins = metrics["bins"]
  edges = np.asarray(bins["edges"])
  centres = (edges[:-1] + edges[1:]) / 2
  width = edges[1] - edges[0]
  counts = np.asarray(bins["count"])
  acc = np.where(counts > 0, bins["accuracy"], 0.0)
  fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
  ax.bar(centres, acc, width=width, edgecolor="black", label="accuracy")
  ax.bar(
    centres,
    np.where(counts > 0, np.asarray(bins["confidence"]) - acc, 0.0),
    bottom=acc,
    width=width,
    color="tab:red",
    alpha=0.3,
    edgecolor="tab:red",
    label="gap to confidence",
  )
  ax.plot([0, 1], [0, 1], "k--", linewidth=1)
  ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
  ax.set_title(f"{title}\nacc {metrics['accuracy']:.4f}  ECE {metrics['ece']:.4f}", fontsize=9)
  ax.legend(loc="upper left", fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def train(
  method: str = "erm",
  *,
  dataset: str = "auto",
  data_dir: str = data_lib.DEFAULT_DATA_DIR,
  epochs: int = 3,
  batch_size: int = 128,
  lr: float = 3e-3,
  width: int = 16,
  seed: int = 0,
  alpha: float | None = None,
  mix_off_epoch: int | None = None,
  loss: str = "softmax",
  train_subset: int | None = None,
  progress: bool = True,
  data: data_lib.Dataset | None = None,
  api: str = "linen",
) -> dict[str, Any]:
  """Trains and evaluates one run; returns a JSON-ready dict of config and test metrics.

  ``api`` is ``"linen"`` (``models.ResNet``, ``TrainState``, ``jax.jit``) or ``"nnx"``
  (``models.NNXResNet``, ``nnx.Optimizer``, ``nnx.jit``).
  """
  if api not in ("linen", "nnx"):
    raise ValueError(f"api must be 'linen' or 'nnx', got {api!r}.")
  from tqdm.auto import tqdm

  ds = data if data is not None else data_lib.load(dataset, data_dir)
  x_train, y_train = ds.x_train, ds.y_train
  if train_subset:
    x_train, y_train = x_train[:train_subset], y_train[:train_subset]
  batch_size = min(batch_size, len(x_train))
  steps_per_epoch = len(x_train) // batch_size
  total = steps_per_epoch * epochs
  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(1, steps_per_epoch // 2), max(total, 2))
  off_step = NO_OFF_STEP if mix_off_epoch is None else mix_off_epoch * steps_per_epoch

  init_key, mix_key = jax.random.split(jax.random.key(seed))
  mixer = make_mixer(method, ds.num_classes, alpha=alpha, off_step=off_step)
  if api == "linen":
    state = create_state(
      models.ResNet(num_classes=ds.num_classes, width=width), init_key, x_train.shape[1:], schedule
    )
    linen_step = make_train_step(mixer, loss)

    def step_fn(key, x, y):
      nonlocal state
      state, metrics = linen_step(state, key, x, y)
      return metrics

    step_fn.traces = lambda: linen_step.traces
  else:
    model = models.NNXResNet(
      in_channels=x_train.shape[-1], num_classes=ds.num_classes, width=width, rngs=nnx.Rngs(init_key)
    )
    optimizer = nnx.Optimizer(model, optax.adamw(schedule, weight_decay=5e-4), wrt=nnx.Param)
    nnx_step = make_nnx_train_step(mixer, loss)
    model.train()

    def step_fn(key, x, y):
      return nnx_step(model, optimizer, key, x, y)

    step_fn.traces = lambda: nnx_step.traces
  rng = np.random.default_rng(seed)

  start = time.time()
  losses = []
  bar = tqdm(total=total, desc=f"{method} s{seed}", disable=not progress, leave=False, mininterval=1.0)
  for epoch in range(epochs):
    order = rng.permutation(len(x_train))
    epoch_loss = []
    for i in range(steps_per_epoch):
      idx = order[i * batch_size : (i + 1) * batch_size]
      metrics = step_fn(mix_key, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]))
      epoch_loss.append(metrics["loss"])
      bar.update()
    losses.append(float(np.mean(jax.device_get(epoch_loss))))
    bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.3f}")
  bar.close()
  train_seconds = time.time() - start

  metrics = calibration(predict(state if api == "linen" else model, ds.x_test), ds.y_test)
  return {
    "method": method,
    "api": api,
    "dataset": ds.name,
    "seed": seed,
    "epochs": epochs,
    "batch_size": batch_size,
    "lr": lr,
    "width": width,
    "alpha": effective_alpha(method, alpha),
    "method_kwargs": DEFAULT_KWARGS.get(method, {}),
    "mix_off_epoch": mix_off_epoch,
    "loss": loss,
    "train_size": len(x_train),
    "test_size": len(ds.x_test),
    "steps": total,
    "traces": step_fn.traces(),
    "train_seconds": train_seconds,
    "train_loss_per_epoch": losses,
    "jax_version": jax.__version__,
    "backend": jax.default_backend(),
    **metrics,
  }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument(
    "--method", default="mixup", help="erm, manifold, or a jaxmix method name (mixup, cutmix, fmix, ...)"
  )
  p.add_argument("--dataset", default="auto", choices=["auto", "fashion_mnist", "digits"])
  p.add_argument("--data-dir", default=data_lib.DEFAULT_DATA_DIR)
  p.add_argument("--epochs", type=int, default=3)
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--lr", type=float, default=3e-3)
  p.add_argument("--width", type=int, default=16, help="channels of the first stage (then 2x, 4x)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--alpha", type=float, default=None, help="override the method's Beta alpha")
  p.add_argument("--mix-off-epoch", type=int, default=None, help="turn mixing off from this epoch (timm)")
  p.add_argument("--loss", default="softmax", choices=["softmax", "bce"])
  p.add_argument("--train-subset", type=int, default=None, help="use only the first N training images")
  p.add_argument(
    "--out", default=None, help="JSON file for the results (a reliability-diagram PNG goes beside it)"
  )
  p.add_argument("--plot", default=None, help="reliability-diagram PNG (default: --out with .png)")
  p.add_argument("--api", default="linen", choices=["linen", "nnx"], help="Flax API of the model and step")
  p.add_argument("--no-progress", action="store_true")
  return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  result = train(
    args.method,
    dataset=args.dataset,
    data_dir=args.data_dir,
    epochs=args.epochs,
    batch_size=args.batch_size,
    lr=args.lr,
    width=args.width,
    seed=args.seed,
    alpha=args.alpha,
    mix_off_epoch=args.mix_off_epoch,
    loss=args.loss,
    train_subset=args.train_subset,
    progress=not args.no_progress,
    api=args.api,
  )
  print(
    f"{result['method']} on {result['dataset']} ({result['api']}, seed {result['seed']}, "
    f"{result['epochs']} epochs, "
    f"{result['train_seconds']:.0f} s): test accuracy {100 * result['accuracy']:.2f} %, "
    f"NLL {result['nll']:.4f}, ECE {100 * result['ece']:.2f} %"
  )
  plot = args.plot or (os.path.splitext(args.out)[0] + ".png" if args.out else None)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)
    print(f"wrote {args.out}")
  if plot:
    reliability_diagram(result, plot, f"{result['method']} on {result['dataset']} (seed {result['seed']})")
    print(f"wrote {plot}")
  return result


if __name__ == "__main__":
  main()
