"""Writes the notebooks in this folder (01_quickstart … 04_sharded) from the cells below (outputs stripped).

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
(each sample's own share) that each method draws, so you can tune α by eye. It runs on the CPU.

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

Every method is one entry of `jaxmix.SAMPLERS`, the name → method table that `choose` resolves names
with; the cell below shows each one that has a one-call form, with the options used here, and
`choose` among four of them. Attentive CutMix needs a backbone's feature maps; here
spectral-residual saliency pooled to an 8×8 grid stands in for them. Mosaic's one-call carries
boxes: notebook `03_dense` shows it with the segmentation and detection methods.
"""),
  code("""
def attention_grid(images, cells=8):
  \"\"\"A stand-in for a backbone's [B, h, w] feature map: spectral-residual saliency pooled to a grid.\"\"\"
  if not hasattr(jaxmix, "spectral_residual_saliency"):
    return None
  saliency = jaxmix.spectral_residual_saliency(images)  # [B, H, W]
  return saliency.reshape(B, cells, H // cells, cells, W // cells).mean((2, 4))


# Every method in jaxmix's registry with a one-call form, and `choose` among four of them. Options are
# the papers' defaults unless given here; the DeiT switch turns CutMix on, Attentive CutMix gets maps.
OPTIONS = {
  "mixup_cutmix": dict(mixup_alpha=0.8, cutmix_alpha=1.0),  # timm's ImageNet recipe
  "attentive_cutmix": dict(features=attention_grid(images)),
  "multimix": dict(k=3),
}
CANDIDATES = {name: OPTIONS.get(name, {}) for name, spec in jaxmix.SAMPLERS.items() if spec.mix is not None}
CANDIDATES["choose"] = dict(methods=["mixup", "cutmix", "fmix", "gridmix"])
GIVEN = ("key", "inputs", "labels")


def describe(options):
  \"\"\"Options as text, arrays by their shape.\"\"\"
  show = lambda v: f"<array {list(v.shape)}>" if hasattr(v, "shape") else repr(v)
  return ", ".join(f"{k}={show(v)}" for k, v in options.items())


def one_call(name):
  return jaxmix.choose if name == "choose" else jaxmix.SAMPLERS[name].mix


METHODS = {}
for name, options in CANDIDATES.items():
  options = dict(options)
  if name == "choose" or "elem" in jaxmix.SAMPLERS[name].modes:
    options["mode"] = "elem"  # one draw per sample: eight different mixes in one picture
  METHODS[name] = options
print("methods shown:", ", ".join(METHODS))
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
  \"\"\"key -> plan from the registry's sampler (one signature for all), or None.\"\"\"
  spec = jaxmix.SAMPLERS.get(name)
  if spec is None or any(option not in options for option in spec.requires):
    return None  # choose, or a sampler that needs the images' own saliency (the one-call computes it)
  return lambda key: spec.sample(key, B, (H, W), **options)


def mix(name, options):
  \"\"\"A jitted key -> (mixed, soft labels, plan or None) for the photographs.\"\"\"
  fn, sample = one_call(name), plan_fn(name, options)

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
and plots the loss curves. Runs on the CPU.
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
  md("""
## The same step in Flax NNX

With NNX the model and an `nnx.Optimizer` are objects updated in place, and the step is
`nnx.jit`-ed; the mixing line does not change. `examples/train.py --api nnx` trains the
example ResNet this way (`make_nnx_train_step`).
"""),
  code("""
from flax import nnx


class NNXCNN(nnx.Module):
  def __init__(self, num_classes=10, *, rngs):
    self.conv1 = nnx.Conv(1, 16, (3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(16, 32, (3, 3), rngs=rngs)
    self.dense1 = nnx.Linear(32 * 4 * 4, 64, rngs=rngs)
    self.dense2 = nnx.Linear(64, num_classes, rngs=rngs)

  def __call__(self, x):
    x = nnx.relu(self.conv2(nnx.relu(self.conv1(x))))
    x = nnx.avg_pool(x, (2, 2), strides=(2, 2)).reshape((x.shape[0], -1))
    return self.dense2(nnx.relu(self.dense1(x)))


@nnx.jit
def nnx_train_step(model, optimizer, key, images, labels, prob):
  images, targets = jaxmix.mixup_cutmix(  # the same line as in the linen step
    key, images, labels, mixup_alpha=0.8, cutmix_alpha=1.0, prob=prob, num_classes=10
  )

  def loss_fn(model):
    return optax.softmax_cross_entropy(model(images), targets).mean()

  loss, grads = nnx.value_and_grad(loss_fn)(model)
  optimizer.update(model, grads)
  return loss


model = NNXCNN(rngs=nnx.Rngs(0))
optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
key, rng = jax.random.key(0), np.random.default_rng(0)
for step in range(STEPS):
  idx = rng.choice(len(x_train), BATCH, replace=False)
  key, step_key = jax.random.split(key)
  nnx_train_step(model, optimizer, step_key, x_train[idx], y_train[idx], 1.0)
acc = float((model(x_test).argmax(-1) == y_test).mean())
print(f"NNX, mixup_cutmix (prob=1): test accuracy {acc:.3f}")
assert acc > 0.8
"""),
  md("""
## A stored study: multi-label canvases with corrupted labels

`examples/multilabel_study.py` trains ERM, MixUp, Manifold Mixup and Flow-Mixup (`jaxmix.flow_mixup`)
with a per-class sigmoid loss on 2 × 2 Fashion-MNIST canvases whose label set is the classes present,
with clean labels and with 10 % and 30 % of the positive bits dropped and of the negative bits added,
3 seeds each. Nothing is trained here: the cells below read its stored records
(`examples/results/multilabel/runs/*.json`) and show the tables `report` renders from them, and the
picture of the mixed canvases with their multi-hot targets.
"""),
  code("""
import sys

from IPython.display import Image, Markdown, display

sys.path.insert(0, "../examples")
import multilabel_study  # noqa: E402

RESULTS = "../examples/results/multilabel"
records = multilabel_study.load_results(RESULTS)
beta = multilabel_study.chosen_beta(records)
print(f"{len(records)} stored runs; Flow-Mixup's β (chosen on the validation split): {beta}")
missing = []
for noise in multilabel_study.NOISES:
  table = multilabel_study.cell_table(
    records, noise, multilabel_study.SEEDS, multilabel_study.STEPS, multilabel_study.WIDTH, missing
  )
  display(Markdown("\\n".join(table).replace("## ", "### ", 1)))
print("cells not complete:", missing or "none")
"""),
  code("""
display(Image(f"{RESULTS}/canvases.png"))
display(Image(f"{RESULTS}/results.png"))
"""),
]

DENSE = [
  md("""
# Boxes and label maps: detection and segmentation mixing

Four real photographs from scikit-image, each with a few hand-placed boxes (the astronaut's face,
the coffee cup, the cat's eyes, the rocket) and a per-pixel label map (grey levels thresholded into
three classes). They go through detection MixUp, CutMix with boxes, Mosaic (2×2, and the YOLO form
with 9 tiles and a random affine), Copy-Paste with instance masks, YOLOX's and ultralytics' MixUp and
a chain Mosaic → MixUp → `compact_boxes`, and through CutMix + `jaxmix.segmentation.mix_label_maps`
and ClassMix for segmentation. Runs on the CPU.

Install: `pip install -e ".[examples,viz]"` from the repository root (scikit-image and matplotlib).
"""),
  code("""
import pathlib

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from skimage import data
from skimage.color import rgb2gray
from skimage.transform import resize

import jaxmix
from jaxmix import viz

print("jaxmix", jaxmix.__version__, "| jax", jax.__version__)
"""),
  md("""
## Photographs, boxes and label maps

Each photograph is centre-cropped to a square and resized to 128×128 (uint8). Boxes are pixel
`xyxy` (left, top, right, bottom), padded to three per image; padding rows have class −1, which
the detection functions read as "not a box".
"""),
  code("""
SIZE = 128


def square(image, size=SIZE):
  h, w = image.shape[:2]
  s = min(h, w)
  top, left = (h - s) // 2, (w - s) // 2
  image = resize(image[top : top + s, left : left + s], (size, size), anti_aliasing=True)
  return (image * 255).round().astype(np.uint8)


PHOTOS = [data.astronaut, data.coffee, data.chelsea, data.rocket]
BOX_CLASSES = ["face", "helmet", "cup", "spoon", "eye", "rocket"]
PAD = [0, 0, 0, 0, -1]
ANNOTATIONS = [  # per image: [left, top, right, bottom, class]
  [[38, 4, 70, 44, 0], [84, 72, 128, 124, 1], PAD],  # astronaut: face, helmet
  [[20, 0, 102, 66, 2], [42, 58, 92, 102, 3], PAD],  # coffee: cup, spoon
  [[14, 22, 48, 50, 4], [80, 22, 114, 52, 4], PAD],  # cat: two eyes
  [[60, 20, 78, 116, 5], PAD, PAD],  # rocket
]
images = jnp.asarray(np.stack([square(load()) for load in PHOTOS]))
ann = np.asarray(ANNOTATIONS, np.float32)
boxes, classes = jnp.asarray(ann[..., :4]), jnp.asarray(ann[..., 4].astype(np.int32))
print("images", images.shape, images.dtype, "| boxes", boxes.shape, "| classes", classes.shape)
fig = viz.show_batch(images, boxes=boxes, box_classes=classes, valid=classes >= 0, class_names=BOX_CLASSES)
"""),
  md("""
The label maps: each photograph's grey level split at its own terciles into three classes
(dark, mid, bright), an int32 map `[4, 128, 128]`. A stand-in for a real segmentation, but derived
from the photograph, so its edges follow the picture.
"""),
  code("""
SEG_CLASSES = ["dark", "mid", "bright"]
grey = rgb2gray(np.asarray(images))
cuts = np.quantile(grey.reshape(len(grey), -1), [1 / 3, 2 / 3], axis=1).T  # [B, 2]
maps = jnp.asarray((grey[..., None] > cuts[:, None, None, :]).sum(-1).astype(np.int32))
print("label maps", maps.shape, maps.dtype, "classes present:", np.unique(np.asarray(maps)))


def show_with_maps(images, maps, title):
  \"\"\"Each image above its label map (3 classes in a fixed colour map).\"\"\"
  n = len(images)
  fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6))
  for i in range(n):
    axes[0, i].imshow(np.asarray(images[i]))
    axes[1, i].imshow(np.asarray(maps[i]), cmap="viridis", vmin=0, vmax=len(SEG_CLASSES) - 1)
    axes[0, i].set_title(f"#{i}")
  for ax in axes.flat:
    ax.set_axis_off()
  fig.suptitle(title)
  fig.tight_layout()
  return fig


fig = show_with_maps(images, maps, "photographs and their label maps (dark / mid / bright)")
"""),
  md("""
## Detection MixUp

Zhang et al. (2019, "Bag of Freebies") blend two images with λ ~ Beta(1.5, 1.5) and keep *both*
box sets: each image now has 2N box slots, own boxes weighted λ and the partner's 1 − λ (the
number on each box), which a detection loss can use to scale each box's term.
"""),
  code("""
key = jax.random.key(0)
mixed, targets = jax.jit(jaxmix.detection.mixup)(key, images, boxes, classes)
print(type(targets).__name__, "boxes", targets.boxes.shape, "weights", targets.weights.shape)
fig = viz.show_batch(mixed, boxes=targets, class_names=BOX_CLASSES)
fig.suptitle("jaxmix.detection.mixup (box weight = its image's share)", y=1.1)
"""),
  md("""
## CutMix with boxes

A rectangle of the partner is pasted in; the partner's boxes inside it come along, clipped to the
rectangle, and own boxes that lose more than 90 % of their area (`min_visibility=0.1`) are dropped.
"""),
  code("""
mixed, targets = jax.jit(jaxmix.detection.cutmix)(jax.random.key(3), images, boxes, classes)
fig = viz.show_batch(mixed, boxes=targets, class_names=BOX_CLASSES)
fig.suptitle("jaxmix.detection.cutmix", y=1.1)
"""),
  md("""
## Mosaic

YOLOv4's Mosaic: four images in a 2×2 grid around a random centre, each quadrant cropped from one
image, with the boxes clipped to what is left of them.
"""),
  code("""
mixed, targets = jax.jit(jaxmix.detection.mosaic)(jax.random.key(1), images, boxes, classes)
fig = viz.show_batch(mixed, boxes=targets, class_names=BOX_CLASSES)
fig.suptitle("jaxmix.detection.mosaic", y=1.1)
"""),
  md("""
## The YOLO Mosaic: 9 tiles and a random affine

The form ultralytics, YOLOv5 and YOLOX train with: the tiles laid out on a 2s × 2s canvas filled
with grey 114 (here `tiles=9`, YOLOv5's `_mosaic9`), then a random affine back to s × s (`Affine()` is
ultralytics' default: translate 0.1, zoom U(0.5, 1.5); add `degrees` and `shear` for rotation and
shear). Boxes go through their four corners and are kept by `box_candidates` (wider and higher than
2 px, more than 10 % of their zoomed area left, aspect below 100): `[B, 9N]` rows.
"""),
  code("""
yolo_mosaic = jax.jit(jaxmix.detection.mosaic, static_argnames="tiles")
mixed, targets = yolo_mosaic(
  jax.random.key(5), images, boxes, classes, tiles=9, affine=jaxmix.detection.Affine(degrees=5.0)
)
print("boxes", targets.boxes.shape, "| valid per image", targets.valid.sum(1))
fig = viz.show_batch(mixed, boxes=targets, class_names=BOX_CLASSES)
fig.suptitle("jaxmix.detection.mosaic(tiles=9, affine=Affine(degrees=5))", y=1.1)
"""),
  md("""
## Copy-Paste with instance masks

Simple Copy-Paste (Ghiasi et al. 2021), mmdetection's defaults: a random subset of the partner's
instances is pasted with its mask, own instances lose the covered pixels, and their boxes shrink to
what stays visible. Instance masks are int ids `[B, H, W]` (0 background, k the instance of box row
k − 1); here each instance is the ellipse inscribed in its box, a stand-in for a real mask. The
masks come back renumbered (own rows 1…N, pasted rows N + 1…2N); white lines outline them.
"""),
  code("""
rows, cols = np.mgrid[:SIZE, :SIZE] + 0.5
instance_ids = np.zeros((len(ann), SIZE, SIZE), np.int32)
for i, image_boxes in enumerate(ann):
  for k, (x1, y1, x2, y2, c) in enumerate(image_boxes):
    if c >= 0:  # the ellipse inscribed in the box, id k + 1
      dx = (cols - (x1 + x2) / 2) / ((x2 - x1) / 2)
      dy = (rows - (y1 + y2) / 2) / ((y2 - y1) / 2)
      instance_ids[i][dx**2 + dy**2 <= 1] = k + 1
mixed, targets, ids = jax.jit(jaxmix.detection.copy_paste)(
  jax.random.key(6), images, boxes, classes, masks=jnp.asarray(instance_ids)
)
print("boxes", targets.boxes.shape, "| mask ids up to", int(ids.max()))
fig = viz.show_batch(mixed, boxes=targets, class_names=BOX_CLASSES)
for ax, m in zip(fig.axes, np.asarray(ids)):
  ax.contour(m, levels=np.arange(0.5, m.max() + 1), colors="white", linewidths=0.6)
fig.suptitle("jaxmix.detection.copy_paste(masks=...)", y=1.1)
"""),
  md("""
## YOLOX MixUp

YOLOX's MixUp: the partner is scale-jittered by U(0.5, 1.5), flipped with probability 0.5, cropped or
padded back to the image size, and blended at a fixed 0.5; its boxes follow (filtered by YOLOX's
`box_candidates`) and every box of a mixed image has weight 0.5.
"""),
  code("""
mixed, targets = jax.jit(jaxmix.detection.yolox_mixup)(jax.random.key(7), images, boxes, classes)
fig = viz.show_batch(mixed, boxes=targets, class_names=BOX_CLASSES)
fig.suptitle("jaxmix.detection.yolox_mixup", y=1.1)
"""),
  md("""
## Ultralytics MixUp

YOLOv5's and YOLOv8's MixUp: λ ~ Beta(32, 32) per image, so the blend stays near 0.5, both box sets
kept with weights λ and 1 − λ. The trainers apply it with probability `mixup` (0.0 in ultralytics'
`default.yaml`, 0.1 in YOLOv5's `hyp.scratch-high`); here `prob=1.0` so that every image shows it.
"""),
  code("""
ultralytics_mixup = jax.jit(jaxmix.detection.ultralytics_mixup)
mixed, targets = ultralytics_mixup(jax.random.key(8), images, boxes, classes, prob=1.0)
fig = viz.show_batch(mixed, boxes=targets, class_names=BOX_CLASSES)
fig.suptitle("jaxmix.detection.ultralytics_mixup", y=1.1)
"""),
  md("""
## A chain: Mosaic → MixUp → a fixed box count

Each mix that carries boxes grows the box axis (Mosaic × 4, MixUp × 2: 3 rows become 24), so a chain
ends with `compact_boxes`, which keeps the largest valid boxes in their order and pads the rest: the
training step always sees the same shape. The mosaic here is the YOLO form with 4 tiles.
"""),
  code("""
@jax.jit
def mosaic_then_mixup(key, images, boxes, classes):
  k1, k2 = jax.random.split(key)
  images, t = jaxmix.detection.mosaic(
    k1, images, boxes, classes, canvas_scale=2.0, affine=jaxmix.detection.Affine()
  )
  images, t = jaxmix.detection.mixup(k2, images, t.boxes, t.classes, t.valid)
  return images, t, jaxmix.detection.compact_boxes(t, 8)


mixed, chained, targets = mosaic_then_mixup(jax.random.key(9), images, boxes, classes)
print("rows after the chain", chained.boxes.shape[1], "-> after compact_boxes", targets.boxes.shape[1])
print("valid per image", chained.valid.sum(1), "->", targets.valid.sum(1))
fig = viz.show_batch(mixed, boxes=targets, class_names=BOX_CLASSES)
fig.suptitle("mosaic -> mixup -> compact_boxes(8)", y=1.1)
"""),
  md("""
## Label maps through CutMix

For segmentation, draw a CutMix plan once and apply it to the images and to the label maps:
`jaxmix.segmentation.mix_label_maps` gives each pixel the label of the source whose pixel the image shows, so
the map follows the pasted rectangle exactly.
"""),
  code("""
@jax.jit
def cutmix_segmentation(key, images, maps):
  plan = jaxmix.sample_cutmix(key, images.shape[0], images.shape[1:3], mode="elem")
  return jaxmix.apply(plan, images), jaxmix.segmentation.mix_label_maps(plan, maps)


mixed, mixed_maps = cutmix_segmentation(jax.random.key(2), images, maps)
fig = show_with_maps(mixed, mixed_maps, "CutMix + jaxmix.segmentation.mix_label_maps")
"""),
  md("""
## ClassMix

Olsson et al. (2021): take half of the classes present in the partner's map and paste the pixels
of those classes, in the image and in the map, so the pasted region has the shape of objects (here,
of grey-level classes) instead of a rectangle.
"""),
  code("""
classmix = jax.jit(jaxmix.segmentation.classmix, static_argnames="num_classes")
mixed, mixed_maps = classmix(jax.random.key(4), images, maps, num_classes=len(SEG_CLASSES))
fig = show_with_maps(mixed, mixed_maps, "jaxmix.segmentation.classmix")
"""),
  md("""
## Reading Pascal VOC annotations

`jaxmix.detection.read_voc` reads one VOC XML file into padded NumPy arrays (pixel `xyxy`, 0-based), ready
for the functions above. Here, the test suite's copy of VOC2007's `000001.xml`.
"""),
  code("""
voc_file = pathlib.Path("..") / "tests" / "data" / "voc" / "000001.xml"
annotation = jaxmix.detection.read_voc(voc_file, max_boxes=4)
for name, value in annotation.items():
  print(f"{name:10s}", value if np.ndim(value) < 2 else "\\n" + str(value))
"""),
]

SHARDED = [
  md("""
# Local mixing on eight (simulated) devices

A batch sharded over a mesh of eight devices can be mixed globally (`jax.jit(jaxmix.cutmix)`:
partners come from anywhere in the batch, so XLA moves data between devices) or locally
(`jaxmix.sharding.local(jaxmix.cutmix, mesh, "data")`: each device mixes its own shard, no communication).
This notebook simulates eight CPU devices, compiles both, lists the collectives each compiled
program holds, and checks that the outputs keep the input's sharding. Runs on the CPU.

The first cell must run before jax is imported: `XLA_FLAGS` is read once, when jax starts.
"""),
  code("""
import os

# Before importing jax: simulate 8 CPU devices (keeping any XLA flags already set).
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from skimage import data
from skimage.transform import resize

import jaxmix
from jaxmix import viz

print(jax.device_count(), "devices:", jax.devices())
assert jax.device_count() == 8, "restart the kernel: jax was imported before XLA_FLAGS was set"
mesh = jax.make_mesh((8,), ("data",))
print(mesh)
"""),
  md("""
## A sharded batch of photographs

Sixteen 64×64 crops: each of four photographs, resized to 128×128, cut into its four quadrants.
Each crop is its own class. The batch is placed with `P("data")`: two images per device.
"""),
  code("""
def square(image, size):
  h, w = image.shape[:2]
  s = min(h, w)
  top, left = (h - s) // 2, (w - s) // 2
  image = resize(image[top : top + s, left : left + s], (size, size), anti_aliasing=True)
  return (image * 255).round().astype(np.uint8)


photos = [square(load(), 128) for load in (data.astronaut, data.coffee, data.chelsea, data.rocket)]
crops = [p[r : r + 64, c : c + 64] for p in photos for r in (0, 64) for c in (0, 64)]
NAMES = [f"{n}{q}" for n in ("astro", "coffee", "cat", "rocket") for q in ("↖", "↗", "↙", "↘")]
sharding = NamedSharding(mesh, P("data"))
images = jax.device_put(np.stack(crops), sharding)
labels = jax.device_put(np.arange(16, dtype=np.int32), sharding)
print(images.shape, images.dtype, images.sharding)
print("per device:", {str(s.device): s.data.shape for s in images.addressable_shards[:2]}, "...")
"""),
  md("""
## Global and local CutMix, compiled

Both use one λ per sample (`mode="elem"`) and flip pairing. Globally, sample *i* mixes with sample
15 − *i*, which lives on another device; locally, sample *i* of a two-image shard mixes with the
other image of the same shard.
"""),
  code("""
OPTIONS = dict(num_classes=16, mode="elem")
global_mix = jax.jit(lambda k, x, y: jaxmix.cutmix(k, x, y, **OPTIONS))
local_mix = jax.jit(lambda k, x, y: jaxmix.sharding.local(jaxmix.cutmix, mesh, "data")(k, x, y, **OPTIONS))
key = jax.random.key(0)

COLLECTIVES = ("all-gather", "all-to-all", "collective-permute", "all-reduce")


def collectives(fn):
  \"\"\"How many times each collective op appears in `fn`'s compiled HLO (async ones as `<op>-start`).\"\"\"
  hlo = fn.lower(key, images, labels).compile().as_text()
  return {c: hlo.count(f" {c}(") + hlo.count(f" {c}-start(") for c in COLLECTIVES}


for name, fn in [("global jax.jit(cutmix)", global_mix), ("jaxmix.sharding.local(cutmix)", local_mix)]:
  found = collectives(fn)
  print(f"{name:24s}", ", ".join(f"{c}: {n}" for c, n in found.items()))
assert not any(collectives(local_mix).values()), "local mixing should not communicate"
"""),
  md("""
## Outputs keep the input sharding
"""),
  code("""
g_images, g_targets = global_mix(key, images, labels)
l_images, l_targets = local_mix(key, images, labels)
for name, out in [("global images", g_images), ("local images", l_images), ("local targets", l_targets)]:
  same = out.sharding.is_equivalent_to(sharding, out.ndim)
  print(f"{name:14s}", out.sharding.spec, "| same as the input's:", same)
assert l_images.sharding.is_equivalent_to(sharding, 4)
"""),
  md("""
## The local result

Each pair of neighbours (0–1, 2–3, …) shares one device and mixes only with each other: the soft
labels under each crop name its own class and its shard partner.
"""),
  code("""
fig = viz.show_batch(l_images, l_targets, class_names=NAMES, ncols=8, panel_size=1.6)
"""),
]

NOTEBOOKS = {
  "01_quickstart.ipynb": QUICKSTART,
  "02_flax_train_step.ipynb": TRAIN_STEP,
  "03_dense.ipynb": DENSE,
  "04_sharded.ipynb": SHARDED,
}


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
