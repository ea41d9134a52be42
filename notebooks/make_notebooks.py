"""Writes 01_quickstart.ipynb and 02_flax_train_step.ipynb from the cells below (outputs stripped).

Edit the cells here, then run ``python notebooks/make_notebooks.py``; tests/test_notebooks.py checks
that the committed notebooks match this script and that every notebook runs top to bottom.
"""

from __future__ import annotations

import pathlib
import sys

import nbformat

HERE = pathlib.Path(__file__).resolve().parent

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def md(text: str) -> nbformat.NotebookNode:
  return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
  return nbformat.v4.new_code_cell(text.strip("\n"))


QUICKSTART = [
  md("""
# jaxmix quickstart: every method on real photographs

This notebook mixes a batch of real photographs (bundled with scikit-image) with every mixing
method this version of jaxmix has, draws each mixed batch with its soft labels, and plots the λ
(each sample's own share) that each method draws, so you can tune α by eye. It runs on the CPU in
well under a minute.

Install: `pip install -e ".[examples,viz]"` from the repository root (scikit-image and matplotlib).
"""),
  code("""
import gzip
import inspect
import pathlib

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from skimage import data
from skimage.transform import resize

import jaxmix
from jaxmix import viz

print("jaxmix", jaxmix.__version__, "| jax", jax.__version__, "|", jax.devices())
"""),
  md("""
## A batch of photographs

Eight photographs, centre-cropped to squares and resized to 128×128, as a uint8 batch
`[8, 128, 128, 3]`. Each photograph is its own class, so the soft labels below say exactly how
much of each photograph a mixed image holds.
"""),
  code("""
PHOTOS = {
  "astronaut": data.astronaut,
  "coffee": data.coffee,
  "cat": data.chelsea,
  "rocket": data.rocket,
  "retina": data.retina,
  "galaxies": data.hubble_deep_field,
  "tissue": data.immunohistochemistry,
  "motorbike": lambda: data.stereo_motorcycle()[0],
}
SIZE = 128


def square(image, size):
  h, w = image.shape[:2]
  s = min(h, w)
  top, left = (h - s) // 2, (w - s) // 2
  image = resize(image[top : top + s, left : left + s], (size, size), anti_aliasing=True)
  return (image * 255).round().astype(np.uint8)


NAMES = list(PHOTOS)
images = jnp.asarray(np.stack([square(load(), SIZE) for load in PHOTOS.values()]))
labels = jnp.arange(len(NAMES))
B, H, W, C = images.shape
print(images.shape, images.dtype)
fig = viz.show_batch(images, labels, class_names=NAMES)
"""),
  md("""
## Which methods are there?

jaxmix grows method by method. The list below names every method jaxmix has or is adding, with the
options used here; only those that this installed version has are run (`hasattr(jaxmix, name)`).
Attentive CutMix needs a backbone's feature maps; here spectral-residual saliency pooled to an 8×8
grid stands in for them. Methods that need label maps or boxes are listed with what they need;
notebook `03_dense` shows the segmentation and detection ones.
"""),
  code("""
def attention_grid(images, cells=8):
  \"\"\"A stand-in for a backbone's [B, h, w] feature map: spectral-residual saliency pooled to a grid.\"\"\"
  if not hasattr(jaxmix, "spectral_residual_saliency"):
    return None
  saliency = jaxmix.spectral_residual_saliency(images)  # [B, H, W]
  return saliency.reshape(B, cells, H // cells, cells, W // cells).mean((2, 4))


CANDIDATES = {
  # name: options for the one-call function (the papers' defaults unless given here)
  "mixup": dict(alpha=1.0),
  "cutmix": dict(alpha=1.0),
  "mixup_cutmix": dict(mixup_alpha=0.8, cutmix_alpha=1.0),  # timm's ImageNet recipe
  "fmix": dict(),
  "smoothmix": dict(),
  "gridmix": dict(),
  "resizemix": dict(),
  "saliencymix": dict(),
  "attentive_cutmix": dict(features=attention_grid(images)),
  "multimix": dict(k=3),
  "choose": dict(methods=[m for m in ("mixup", "cutmix", "fmix", "gridmix") if hasattr(jaxmix, m)]),
  "classmix": dict(),
  "mosaic": dict(),
}
GIVEN = ("key", "inputs", "labels")


def describe(options):
  \"\"\"Options as text, arrays by their shape.\"\"\"
  show = lambda v: f"<array {list(v.shape)}>" if hasattr(v, "shape") else repr(v)
  return ", ".join(f"{k}={show(v)}" for k, v in options.items())


def needs(fn, options):
  \"\"\"Arguments `fn` requires that this notebook does not give (e.g. feature maps or boxes).\"\"\"
  params = inspect.signature(fn).parameters.values()
  return [
    p.name
    for p in params
    if p.default is inspect.Parameter.empty
    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    and p.name not in GIVEN
    and p.name not in options
  ]


METHODS, SKIPPED = {}, {}
for name, options in CANDIDATES.items():
  if not hasattr(jaxmix, name):
    continue
  fn = getattr(jaxmix, name)
  params = inspect.signature(fn).parameters
  options = dict(options)
  if "mode" in params:
    options["mode"] = "elem"  # one draw per sample: eight different mixes in one picture
  options = {k: v for k, v in options.items() if v is not None}
  missing = needs(fn, options)
  if missing:
    SKIPPED[name] = missing
  else:
    METHODS[name] = options
print("methods shown:", ", ".join(METHODS))
for name, missing in SKIPPED.items():
  print(f"not shown here: {name} (needs {', '.join(missing)})")
print("not in this version yet:", ", ".join(n for n in CANDIDATES if not hasattr(jaxmix, n)) or "none")
"""),
  md("""
## Every method on the batch

Each method is jitted once and called with the same key. Under each image: its top two
soft-label entries; above it: its partner and λ, when the method has a `sample_<name>` function
giving a plan, whose own-content weight is drawn as a red tint over the pixels that came from the
partner. MixUp shows as an even tint of strength 1 − λ.
"""),
  code("""
def plan_fn(name, options):
  \"\"\"key -> plan from `sample_<name>(key, batch_size, spatial_shape, ...)`, or None.\"\"\"
  sample = getattr(jaxmix, "sample_" + name, None)
  if sample is None:
    return None
  params = inspect.signature(sample).parameters
  if needs(sample, options) not in ([], ["batch_size"], ["batch_size", "spatial_shape"]):
    return None  # e.g. a sampler that needs the images themselves
  if any(k not in params for k in options):
    return None
  if "spatial_shape" in params:
    return lambda key: sample(key, B, (H, W), **options)
  return lambda key: sample(key, B, **options)


def mix(name, options):
  \"\"\"A jitted key -> (mixed, soft labels, plan or None) for the photographs.\"\"\"
  fn, sample = getattr(jaxmix, name), plan_fn(name, options)

  @jax.jit
  def run(key):
    if sample is None:
      mixed, targets = fn(key, images, labels, num_classes=B, **options)
      return mixed, targets, None
    plan = sample(key)
    return jaxmix.apply(plan, images), jaxmix.mix_labels(plan, labels, num_classes=B), plan

  return run


RUNS = {name: mix(name, options) for name, options in METHODS.items()}
key = jax.random.key(0)
for name, run in RUNS.items():
  mixed, targets, plan = run(key)
  overlays = {}
  if plan is not None:
    has_weight = hasattr(plan, "own_weight") or getattr(plan, "mask", None) is not None
    overlays = dict(plan=plan, show_partner=True, show_mask=has_weight)
  fig = viz.show_batch(mixed, targets, class_names=NAMES, ncols=4, **overlays)
  fig.suptitle(f"jaxmix.{name}({describe(METHODS[name])})", y=1.02)
"""),
  md("""
## The λ each method draws

Each sample's label weight λ is its exact share of its own content. Below, each method's jitted
call from above runs on 250 more keys and every sample's λ goes into a histogram. λ is read from
the soft labels: with one class per photograph, `targets[i, i]` is sample *i*'s own share for any
method.
"""),
  code("""
def own_shares(run, num_batches=250):
  keys = jax.random.split(jax.random.key(1), num_batches)
  return np.concatenate([np.diagonal(run(k)[1]) for k in keys])


cols = 3
rows = -(-len(RUNS) // cols)
fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
for ax in axes.flat[len(RUNS) :]:
  ax.remove()
for ax, (name, run) in zip(axes.flat, RUNS.items()):
  viz.plot_lambda(own_shares(run), ax=ax, title=name, bins=25)
fig.tight_layout()
"""),
  md("""
### Tuning α

MixUp draws λ ~ Beta(α, α): small α keeps most images nearly whole (λ near 0 or 1), α = 1 is
uniform, large α mixes about half and half. The MixUp paper used α = 0.2–0.4 on ImageNet and 1.0 on
CIFAR. `viz.plot_lambda` takes a sampler `key -> plan` and vmaps it over keys, or λ values, or a
dict of either to compare settings. α is traced, so one compiled sampler serves every α.
CutMix at α = 1 is not uniform: boxes that cross the border are clipped, and jaxmix reports the
share of pixels actually kept, so λ leans towards 1.
"""),
  code("""
cutmix_plan = lambda k: jaxmix.sample_cutmix(k, B, (H, W), alpha=1.0)
fig = viz.plot_lambda(cutmix_plan, num_draws=500, title="CutMix, α = 1")

mixup_lam = lambda k, a: jaxmix.sample_mixup(k, B, alpha=a, mode="elem").lam
lam_for = jax.jit(jax.vmap(mixup_lam, in_axes=(0, None)))  # α traced: one program for every α
keys = jax.random.split(jax.random.key(2), 1000)
fig = viz.plot_lambda({f"α = {a}": lam_for(keys, a) for a in (0.2, 1.0, 4.0)}, title="MixUp λ for three α")
"""),
  md("""
## Same key, same mix

Every jaxmix function is pure: the same key and inputs give the same output, bit for bit, so an
augmented batch can be reproduced from the step's key. A different key gives a different mix.
"""),
  code("""
name = "mixup_cutmix" if "mixup_cutmix" in METHODS else next(iter(METHODS))
run = RUNS[name]
first, _, _ = run(jax.random.key(42))
again, _, _ = run(jax.random.key(42))
other, _, _ = run(jax.random.key(43))
print("same key  -> identical:", bool(jnp.array_equal(first, again)))
print("other key -> identical:", bool(jnp.array_equal(first, other)))
assert jnp.array_equal(first, again) and not jnp.array_equal(first, other)
row = slice(0, 4)
fig = viz.show_batch(
  jnp.concatenate([first[row], again[row], other[row]]),
  titles=[f"{t} #{i}" for t in ("key 42", "key 42 again", "key 43") for i in range(4)],
  ncols=4,
)
"""),
  md("""
## Fashion-MNIST (when installed)

Debian's package `dataset-fashion-mnist` installs Fashion-MNIST under
`/usr/share/datasets/fashion-mnist`. When it is there, the cell below mixes a few test images with
timm's MixUp/CutMix switch; otherwise it says so and moves on.
"""),
  code("""
FASHION = pathlib.Path("/usr/share/datasets/fashion-mnist")
FASHION_NAMES = [
  "T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"
]


def read_idx(path):
  \"\"\"An idx file (gzipped or not) as a NumPy array.\"\"\"
  raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
  ndim = raw[3]
  shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


found = sorted(FASHION.glob("t10k-images-idx3-ubyte*")) if FASHION.is_dir() else []
if not found:
  print(f"Fashion-MNIST is not installed at {FASHION} (apt-get install dataset-fashion-mnist); skipped.")
else:
  fx = read_idx(found[0])[:8]
  fy = read_idx(sorted(FASHION.glob("t10k-labels-idx1-ubyte*"))[0])[:8]
  f_mixed, f_targets = jax.jit(
    lambda k, x, y: jaxmix.mixup_cutmix(
      k, x, y, mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem", num_classes=10
    )
  )(jax.random.key(0), jnp.asarray(fx)[..., None], jnp.asarray(fy.astype(np.int32)))
  fig = viz.show_batch(f_mixed, f_targets, class_names=FASHION_NAMES)
"""),
]

TRAIN_STEP = [
  md("""
# Mixing inside a jitted Flax train step

A small Flax (linen) CNN, an optax optimiser, and a jitted `train_step` whose augmentation is one
line: `jaxmix.mixup_cutmix(...)`. It trains for a few hundred steps on scikit-learn's bundled
handwritten digits (8×8 grey images) on the CPU, once with mixing switched off and once with it on,
and plots the loss curves. Runs in well under a minute.
"""),
  code("""
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax.training import train_state
from sklearn.datasets import load_digits

import jaxmix
from jaxmix import viz

digits = load_digits()
x = (digits.images / 16.0).astype(np.float32)[..., None]  # [1797, 8, 8, 1] in [0, 1]
y = digits.target.astype(np.int32)
order = np.random.default_rng(0).permutation(len(x))
train, test = order[:1400], order[1400:]
x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
print("train", x_train.shape, "test", x_test.shape)
"""),
  md("""
## The model and the train step

The mixing line takes the step's key, the batch and the integer labels, and returns mixed images
and soft targets; the loss is soft-target cross-entropy. `prob` (the chance that a batch is
mixed) is an ordinary traced argument: changing it — here 0 for a plain baseline and 1 for mixing —
never recompiles the step.
"""),
  code("""
class CNN(nn.Module):
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(16, (3, 3))(x))
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(64)(x))
    return nn.Dense(self.num_classes)(x)


def create_state(seed):
  model = CNN()
  params = model.init(jax.random.key(seed), jnp.zeros((1, 8, 8, 1)))["params"]
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(3e-3))


@jax.jit
def train_step(state, key, images, labels, prob):
  images, targets = jaxmix.mixup_cutmix(
    key, images, labels, mixup_alpha=0.8, cutmix_alpha=1.0, prob=prob, num_classes=10
  )

  def loss_fn(params):
    logits = state.apply_fn({"params": params}, images)
    return optax.softmax_cross_entropy(logits, targets).mean()

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads), loss


@jax.jit
def accuracy(params, images, labels):
  logits = CNN().apply({"params": params}, images)
  return (logits.argmax(-1) == labels).mean()
"""),
  md("""
## What the step sees

The same mixing call, outside the step, on one training batch: each digit with its soft target.
"""),
  code("""
batch = slice(0, 8)
mixed, targets = jaxmix.mixup_cutmix(
  jax.random.key(1), x_train[batch], y_train[batch], mixup_alpha=0.8, cutmix_alpha=1.0,
  mode="elem", num_classes=10,
)
fig = viz.show_batch(mixed, targets, class_names=[str(d) for d in range(10)], panel_size=1.6)
"""),
  md("""
## Training

Each run takes 300 steps of batch 64 (about 14 epochs), with the same seed and data order;
only `prob` differs.
"""),
  code("""
STEPS, BATCH = 300, 64


def train(prob, seed=0):
  state = create_state(seed)
  key = jax.random.key(seed)
  rng = np.random.default_rng(seed)
  losses = []
  for step in range(STEPS):
    idx = rng.choice(len(x_train), BATCH, replace=False)
    key, step_key = jax.random.split(key)
    state, loss = train_step(state, step_key, x_train[idx], y_train[idx], prob)
    losses.append(loss)
  return state, np.asarray(jnp.stack(losses))


results = {}
for label, prob in [("no mixing (prob=0)", 0.0), ("mixup_cutmix (prob=1)", 1.0)]:
  start = time.perf_counter()
  state, losses = train(prob)
  acc = float(accuracy(state.params, x_test, y_test))
  results[label] = losses
  print(f"{label:24s} test accuracy {acc:.3f}  ({time.perf_counter() - start:.1f} s)")
  assert acc > 0.8, "training should beat chance (0.1) by far"
"""),
  md("""
## Loss curves

With mixing on, the targets are soft, so the training loss cannot reach zero: its floor is the
entropy of the mixed targets. Judge a mixing method by held-out accuracy and calibration, not by
its training loss.
"""),
  code("""
fig, ax = plt.subplots(figsize=(6, 3.2))
for label, losses in results.items():
  smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
  ax.plot(losses, alpha=0.25)
  ax.plot(np.arange(9, len(losses)), smooth, label=label, color=ax.lines[-1].get_color())
ax.set_xlabel("step")
ax.set_ylabel("training loss (soft-target cross-entropy)")
ax.set_yscale("log")
ax.legend()
fig.tight_layout()
"""),
]

NOTEBOOKS = {"01_quickstart.ipynb": QUICKSTART, "02_flax_train_step.ipynb": TRAIN_STEP}


def build(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
  nb = nbformat.v4.new_notebook()
  nb.cells = cells
  nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
  for i, cell in enumerate(nb.cells):
    cell.id = f"cell-{i:02d}"  # stable ids, so the files are reproducible
  return nb


def render(name: str) -> str:
  return nbformat.writes(build(NOTEBOOKS[name]))


def main(argv: list[str]) -> int:
  for name in NOTEBOOKS:
    (HERE / name).write_text(render(name))
    print("wrote", HERE / name)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
