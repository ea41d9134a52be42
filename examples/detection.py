"""A tiny CenterNet on synthetic Fashion-MNIST scenes with no mixing, Mosaic, Mosaic + MixUp and Copy-Paste.

    python examples/detection.py run          # all 12 runs, resumable; ~25 min on 2 busy CPU cores
    python examples/detection.py run --methods none mosaic_mixup --steps 1600   # a longer budget
    python examples/detection.py report       # the table and PNG, from the stored JSON only
                                              # (detection-<shape>.md for a non-default shape)
    python examples/detection.py figure       # mixed training canvases with their boxes (canvases.png)

Data (nothing downloads): 64 × 64 grey canvases with a smooth random background and pixel noise, on
which 1–4 Fashion-MNIST items are placed without overlap, each cropped to its non-zero pixels and
resized so that its longer side is 14–30 px. An item's box is the tight box of its drawn pixels
(``xyxy`` in pixels, ``x2`` one past the last column), its instance mask those pixels, its class one of
five groups of the ten Fashion-MNIST labels (top: T-shirt, pullover, coat, shirt; trouser; dress;
footwear: sandal, sneaker, ankle boot; bag). Training scenes use items of the Fashion-MNIST training
split: ``--size`` of them (500) drawn per seed; the validation scenes (250, items of the training
split that no training scene can use) and the test scenes (``--test-size``, 500, items of the test
split) are the same for every run.

Model (Zhou, Wang and Krähenbühl 2019, "Objects as Points"), shrunk to a CPU: a conv backbone down to
stride 16 with one upsampling path back to stride 4 (a 16 × 16 output), and three heads of a 3 × 3
conv and a 1 × 1 conv: class heatmaps (the bias at −2.19, as CenterNet), sizes and centre offsets.
Targets as CenterNet: a Gaussian per box at its integer centre cell with the radius of CornerNet's
``gaussian_radius`` (min overlap 0.7), the penalty-reduced focal loss (α = 2, β = 4), L1 on size
(weight 0.1, in output cells) and offset (weight 1) at the centres. Each box carries the weight that
the mixing gives it (``BoxTargets.weights``: λ under MixUp, 1 otherwise; Zhang et al. 2019, "Bag of
Freebies"): its positive focal term and its L1 terms are multiplied by it, and the loss is normalised
by the summed weights. Adam, lr 1e-3 with cosine decay, batch 32, ``--steps`` steps. Decoding: 3 × 3
max-pool peaks, the top 100 scores.

Methods, each one call inside the jitted train step, through the public ``jaxmix.detection`` API:

* ``none``: no mixing (the baseline of the paired differences);
* ``mosaic``: the YOLO Mosaic, ``mosaic(..., tiles=4, canvas_scale=2.0, affine=Affine(),
  fill_value=114 / 255)``: four tiles on a 2s canvas around a centre ~ U(s/2, 3s/2), then ultralytics'
  default random affine (translate 0.1, scale 0.5) back to 64 × 64, ``box_candidates`` filtering;
* ``mosaic_mixup``: that Mosaic, then ``yolox_mixup`` with YOLOX's defaults (the partner is a plain
  training image of the batch, scale-jittered 0.5–1.5, flipped with p 0.5, blended at 0.5, as YOLOX's
  ``MosaicMixUpDataset`` takes a plain image), its boxes compacted by ``compact_boxes``;
* ``copy_paste``: ``copy_paste(..., masks=ids)``, mmdetection's ``CopyPaste`` rule (a random subset of
  the partner's instances pasted with their masks, own boxes recomputed from their visible pixels),
  with its occlusion thresholds scaled from COCO-sized images (~640 px) to these 64 px canvases:
  ``bbox_occluded_thr`` 10 px → 1 px, ``mask_occluded_thr`` 300 px → 3 px.

Every method is applied to every batch (probability 1, as ultralytics' ``mosaic: 1.0``, YOLOX and
mmdetection's ``CopyPaste``) except during the last 10 % of the steps, when mixing is off (the
probability, a traced argument, set to 0: no recompilation), as ultralytics' ``close_mosaic`` (the last
10 of its 100 default epochs) and YOLOX's ``no_aug_epochs``. Targets are compacted to 16 boxes per
image for every method. Nothing was tuned: the step count was picked by looking at the baseline's
validation mAP (stored in each record's ``val_map`` curve), never at the test set.

Metric: mAP@0.5, VOC-style all-point interpolated AP per class (``average_precision``), averaged over
the classes present in the test scenes, in NumPy. Each run is one JSON in ``--out`` (config, seed,
metrics, loss and validation curves, seconds, versions, the jaxmix commit); ``report`` renders
mean ± standard error over seeds and the paired difference to ``none`` with the same seeds (same
training scenes, initialisation, batch order and keys), and refuses a table whose baseline lacks any of
its seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, os.pardir))

import data as data_lib  # noqa: E402
import study  # noqa: E402  (the study's data loading, JSON records and commit)

METHODS = ("none", "mosaic", "mosaic_mixup", "copy_paste")
CLASS_NAMES = ("top", "trouser", "dress", "footwear", "bag")
# Fashion-MNIST label -> group: T-shirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, boot.
GROUP = np.array([0, 1, 0, 2, 0, 3, 0, 3, 4, 3], np.int32)
SIDE = 64  # canvas side
STRIDE = 4  # output stride of the heads
MAX_ITEMS = 4  # items per scene (box rows of the data)
MAX_BOXES = 16  # box rows of the training targets, after compact_boxes
ITEM_SIDE = (14, 30)  # the longer side of a placed item, in pixels
VAL_SIZE = 250
BATCH = 32
LR = 1e-3
CLOSE = 0.1  # share of the last steps without mixing (ultralytics' close_mosaic 10 of 100 epochs)
TOP_K = 100
FILL = 114 / 255  # the YOLO trainers' grey canvas fill, for images in [0, 1]
OUT = os.path.join(HERE, "results", "detection")


@dataclasses.dataclass(frozen=True)
class Config:
  method: str
  seed: int
  size: int = 500
  steps: int = 800
  width: int = 16
  test_size: int = 500

  @property
  def key(self) -> str:
    return f"{self.method}-n{self.size}-t{self.steps}-w{self.width}-e{self.test_size}-s{self.seed}"


# ----------------------------------------------------------------------------------------- data


class Scenes(dict):
  """``images`` float32 `[N, 64, 64, 1]` in [0, 1], ``boxes`` float32 `[N, 4, 4]` (pixel xyxy),
  ``classes`` int32 `[N, 4]` (-1 for padding), ``masks`` int32 `[N, 64, 64]` (0 background, k the item
  of box row k − 1)."""


def _crop(item: np.ndarray) -> np.ndarray:
  """An item ``[28, 28]`` cropped to the box of its non-zero pixels."""
  rows, cols = np.nonzero(item > 0)
  return item[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _resize(item: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  from PIL import Image

  return np.asarray(Image.fromarray(item.astype(np.float32), mode="F").resize(shape[::-1], Image.BILINEAR))


def _background(rng: np.random.Generator) -> np.ndarray:
  """Smooth random blobs (an 8 × 8 field upsampled) in [0, 0.35] plus N(0, 0.03) pixel noise."""
  coarse = rng.random((8, 8)).astype(np.float32)
  smooth = _resize(coarse, (SIDE, SIDE)) * rng.uniform(0.1, 0.35)
  return smooth + rng.normal(0.0, 0.03, (SIDE, SIDE)).astype(np.float32)


def make_scenes(items: np.ndarray, labels: np.ndarray, n: int, seed: Any) -> Scenes:
  """`n` seeded scenes of 1–4 items drawn from `items` ``[M, 28, 28]`` (in [0, 1]) and `labels` ``[M]``.

  Items do not overlap (a placement that would is redrawn, up to 50 times, then the item is left
  out), so each box is the tight box of its item's pixels (``> 0.05`` after resizing) and each mask
  exactly those pixels.
  """
  rng = np.random.default_rng(seed)
  images = np.zeros((n, SIDE, SIDE, 1), np.float32)
  boxes = np.zeros((n, MAX_ITEMS, 4), np.float32)
  classes = np.full((n, MAX_ITEMS), -1, np.int32)
  masks = np.zeros((n, SIDE, SIDE), np.int32)
  for i in range(n):
    canvas = _background(rng)
    placed: list[tuple[int, int, int, int]] = []
    for _ in range(rng.integers(1, MAX_ITEMS + 1)):
      j = rng.integers(len(items))
      crop = _crop(items[j])
      long = rng.integers(ITEM_SIDE[0], ITEM_SIDE[1] + 1)
      ratio = long / max(crop.shape)
      h, w = (max(3, round(s * ratio)) for s in crop.shape)
      patch = np.clip(_resize(crop, (h, w)), 0.0, 1.0)
      on = patch > 0.05
      for _ in range(50):
        y, x = int(rng.integers(0, SIDE - h + 1)), int(rng.integers(0, SIDE - w + 1))
        if all(x >= b[2] or x + w <= b[0] or y >= b[3] or y + h <= b[1] for b in placed):
          break
      else:
        continue
      k = len(placed)
      region = canvas[y : y + h, x : x + w]
      region[on] = patch[on]
      masks[i, y : y + h, x : x + w][on] = k + 1
      rows, cols = np.nonzero(on)
      box = (x + cols.min(), y + rows.min(), x + cols.max() + 1, y + rows.max() + 1)
      placed.append(box)
      boxes[i, k] = box
      classes[i, k] = GROUP[labels[j]]
    images[i, ..., 0] = np.clip(canvas, 0.0, 1.0)
  return Scenes(images=images, boxes=boxes, classes=classes, masks=masks)


def splits(raw: dict[str, np.ndarray], seed: int, size: int, test_size: int) -> dict[str, Scenes]:
  """Training scenes of run `seed` (items of the first 5/6 of the training split: 50 000 images), the
  fixed validation scenes (items of the last 10 000) and the fixed test scenes (items of the test
  split)."""
  x_train, y_train = raw["x_train"][..., 0], raw["y_train"]
  cut = len(x_train) * 5 // 6
  return {
    "train": make_scenes(x_train[:cut], y_train[:cut], size, [seed, 1]),
    "val": make_scenes(x_train[cut:], y_train[cut:], VAL_SIZE, [10**6, 2]),
    "test": make_scenes(raw["x_test"][..., 0], raw["y_test"], test_size, [10**6, 3]),
  }


# --------------------------------------------------------------------------------------- metric


def average_precision(scores: np.ndarray, hits: np.ndarray, num_gt: int) -> float:
  """VOC all-point interpolated AP (VOC2010+ ``voc_ap`` with ``use_07_metric=False``).

  `scores` and `hits` (bool, a true positive) are one class's detections; `num_gt` its ground-truth
  count. Precision is made monotone from the right, then summed over the recall steps.
  """
  if num_gt == 0:
    return float("nan")
  order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
  tp = np.cumsum(np.asarray(hits, bool)[order])
  fp = np.cumsum(~np.asarray(hits, bool)[order])
  recall = np.concatenate([[0.0], tp / num_gt, [1.0]])
  precision = np.concatenate([[0.0], tp / np.maximum(tp + fp, 1e-12), [0.0]])
  precision = np.maximum.accumulate(precision[::-1])[::-1]
  steps = np.nonzero(recall[1:] != recall[:-1])[0]
  return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
  x1 = np.maximum(box[0], others[:, 0])
  y1 = np.maximum(box[1], others[:, 1])
  x2 = np.minimum(box[2], others[:, 2])
  y2 = np.minimum(box[3], others[:, 3])
  inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
  area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
  return inter / np.maximum(area(box) + area(others) - inter, 1e-12)


def mean_ap(detections: list[tuple], gt_boxes: np.ndarray, gt_classes: np.ndarray, iou: float = 0.5):
  """mAP@`iou` and the AP of each class present in the ground truth.

  `detections[i]` is ``(boxes [K, 4], scores [K], classes [K])`` of image i; `gt_boxes` `[N, M, 4]`
  and `gt_classes` `[N, M]` (-1 for padding). Detections are matched greedily by score, each to the
  unmatched ground-truth box of its class with the highest IoU ≥ `iou`; a second detection of a box
  already matched is a false positive (VOC).
  """
  per_class: dict[int, tuple[list, list]] = {}
  counts: dict[int, int] = {}
  for c in gt_classes[gt_classes >= 0]:
    counts[int(c)] = counts.get(int(c), 0) + 1
  for i, (boxes, scores, classes) in enumerate(detections):
    for c in np.unique(classes):
      pick = np.nonzero(classes == c)[0]
      pick = pick[np.argsort(-scores[pick], kind="stable")]
      gt = gt_boxes[i][gt_classes[i] == c]
      used = np.zeros(len(gt), bool)
      s, h = per_class.setdefault(int(c), ([], []))
      for d in pick:
        hit = False
        if len(gt):
          overlaps = _iou(boxes[d], gt)
          best = int(np.argmax(overlaps))
          if overlaps[best] >= iou and not used[best]:
            used[best] = hit = True
        s.append(scores[d])
        h.append(hit)
  aps = {}
  for c, n in sorted(counts.items()):
    s, h = per_class.get(c, ([], []))
    aps[c] = average_precision(np.asarray(s), np.asarray(h, bool), n)
  return float(np.mean(list(aps.values()))), aps


# ---------------------------------------------------------------------------------- model, loss


def make_model(width: int, num_classes: int = len(CLASS_NAMES)):
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  class TinyCenterNet(nn.Module):
    """Stride 2, 4, 8, 16 convs; back to stride 4 by two upsample + skip steps; three heads."""

    width: int
    num_classes: int

    @nn.compact
    def __call__(self, x):
      w = self.width
      conv = lambda f, s=1: nn.Conv(f, (3, 3), strides=s)
      c2 = nn.relu(conv(w, 2)(x))
      c4 = nn.relu(conv(w)(nn.relu(conv(2 * w, 2)(c2))))
      c4 = nn.relu(conv(2 * w)(c4))
      c8 = nn.relu(conv(4 * w)(nn.relu(conv(4 * w, 2)(c4))))
      c16 = nn.relu(conv(4 * w)(nn.relu(conv(4 * w, 2)(c8))))
      up = lambda a, b: jax.image.resize(a, b.shape[:-1] + a.shape[-1:], "nearest")
      p8 = nn.relu(conv(4 * w)(jnp.concatenate([up(c16, c8), c8], -1)))
      p4 = nn.relu(conv(2 * w)(jnp.concatenate([up(p8, c4), c4], -1)))

      def head(out, bias=0.0):
        h = nn.relu(conv(2 * w)(p4))
        return nn.Conv(out, (1, 1), bias_init=nn.initializers.constant(bias))(h)

      return head(self.num_classes, -2.19), head(2), head(2)

  return TinyCenterNet(width, num_classes)


def gaussian_radius(h, w, min_overlap: float = 0.7):
  """CornerNet's ``gaussian_radius`` (as CenterNet uses it), on arrays of box heights and widths."""
  import jax.numpy as jnp

  b1, c1 = h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
  r1 = (b1 + jnp.sqrt(b1**2 - 4 * c1)) / 2
  b2, c2 = 2 * (h + w), (1 - min_overlap) * w * h
  r2 = (b2 + jnp.sqrt(b2**2 - 16 * c2)) / 2
  a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
  r3 = (b3 + jnp.sqrt(b3**2 - 4 * a3 * c3)) / 2
  return jnp.minimum(jnp.minimum(r1, r2), r3)


def centernet_loss(outputs, targets, num_classes: int = len(CLASS_NAMES)):
  """The CenterNet loss of one batch against weighted ``BoxTargets`` (pixel xyxy), and its parts."""
  import jax
  import jax.numpy as jnp

  heat_logits, size, offset = outputs
  b, gh, gw, _ = heat_logits.shape
  boxes = targets.boxes / STRIDE  # output cells
  weight = jnp.where(targets.valid, targets.weights, 0.0)
  bw = jnp.maximum(boxes[..., 2] - boxes[..., 0], 0.0)
  bh = jnp.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
  cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
  ix = jnp.clip(jnp.floor(cx), 0, gw - 1).astype(jnp.int32)
  iy = jnp.clip(jnp.floor(cy), 0, gh - 1).astype(jnp.int32)
  radius = jnp.maximum(0.0, jnp.floor(gaussian_radius(jnp.ceil(bh), jnp.ceil(bw))))
  sigma = (2 * radius + 1) / 6
  ys, xs = jnp.arange(gh, dtype=jnp.float32), jnp.arange(gw, dtype=jnp.float32)
  dy = ys[None, None, :, None] - iy[..., None, None]
  dx = xs[None, None, None, :] - ix[..., None, None]
  g = jnp.exp(-(dx**2 + dy**2) / (2 * sigma[..., None, None] ** 2))  # [B, M, gh, gw]
  r = radius[..., None, None]
  g = jnp.where((jnp.abs(dx) <= r) & (jnp.abs(dy) <= r), g, 0.0)  # CenterNet's (2r + 1)² window
  onehot = jax.nn.one_hot(targets.classes, num_classes) * targets.valid[..., None]  # [B, M, C]
  heat = jnp.max(g[..., None] * onehot[:, :, None, None, :], axis=1)  # [B, gh, gw, C]
  logp, log1mp = jax.nn.log_sigmoid(heat_logits), jax.nn.log_sigmoid(-heat_logits)
  p = jax.nn.sigmoid(heat_logits)
  negative = -((1 - heat) ** 4) * p**2 * log1mp * (heat < 1)
  rows = jnp.arange(b)[:, None]
  cls = jnp.clip(targets.classes, 0, num_classes - 1)
  at = lambda t: t[rows, iy, ix]  # [B, M, ...] at the centre cells
  slots = jnp.arange(cx.shape[1])[None]
  p_c, logp_c = at(p)[rows, slots, cls], at(logp)[rows, slots, cls]
  positive = -((1 - p_c) ** 2) * logp_c * weight
  norm = jnp.maximum(weight.sum(), 1.0)
  focal = (positive.sum() + negative.sum()) / norm
  size_l1 = (jnp.abs(at(size) - jnp.stack([bw, bh], -1)).sum(-1) * weight).sum() / norm
  offset_l1 = (jnp.abs(at(offset) - jnp.stack([cx - ix, cy - iy], -1)).sum(-1) * weight).sum() / norm
  return focal + 0.1 * size_l1 + offset_l1, (focal, size_l1, offset_l1)


def decode(outputs, top_k: int = TOP_K):
  """Boxes (pixel xyxy) `[B, K, 4]`, scores `[B, K]` and classes `[B, K]` of the top-K 3 × 3 peaks."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  heat_logits, size, offset = outputs
  b, gh, gw, c = heat_logits.shape
  heat = jax.nn.sigmoid(heat_logits)
  peaks = heat * (nn.max_pool(heat, (3, 3), padding="SAME") == heat)
  scores, flat = jax.lax.top_k(peaks.reshape(b, -1), top_k)
  cell, cls = flat // c, flat % c
  y, x = (cell // gw), (cell % gw)
  rows = jnp.arange(b)[:, None]
  wh, off = size[rows, y, x], offset[rows, y, x]
  cx, cy = x + off[..., 0], y + off[..., 1]
  boxes = jnp.stack([cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2, cy + wh[..., 1] / 2], -1)
  return boxes * STRIDE, scores, cls


# ------------------------------------------------------------------------------------- mixing


def make_mix(method: str):
  """``mix(key, images, boxes, classes, masks, prob) -> (images, BoxTargets)`` with `MAX_BOXES` rows."""
  import jax
  import jax.numpy as jnp

  import jaxmix.detection as det

  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")

  def mix(key, images, boxes, classes, masks, prob=1.0):
    valid = classes >= 0
    if method == "none":
      t = det.BoxTargets(boxes, classes, valid, valid.astype(jnp.float32))
      return images, det.compact_boxes(t, MAX_BOXES)
    if method == "copy_paste":
      out, t, _ = det.copy_paste(
        key, images, boxes, classes, valid, masks=masks, prob=prob, bbox_occluded_thr=1.0,
        mask_occluded_thr=3.0,
      )
      return out, det.compact_boxes(t, MAX_BOXES)
    k_mosaic, k_mixup = jax.random.split(key)
    out, t = det.mosaic(
      k_mosaic, images, boxes, classes, valid, prob=prob, canvas_scale=2.0, affine=det.Affine(),
      fill_value=FILL,
    )
    t = det.compact_boxes(t, MAX_BOXES)
    if method == "mosaic":
      return out, t
    # YOLOX's MixUp takes a plain image as the partner: the batch in reverse order, its boxes padded
    plain = det.compact_boxes(det.BoxTargets(boxes, classes, valid, valid.astype(jnp.float32)), MAX_BOXES)
    partners = (images[::-1], jax.tree_util.tree_map(lambda a: a[::-1], plain))
    out, t = det.yolox_mixup(k_mixup, out, t.boxes, t.classes, t.valid, prob=prob, partners=partners)
    return out, det.compact_boxes(t, MAX_BOXES)

  return mix


# -------------------------------------------------------------------------------------- training


@functools.cache
def _programs(method: str, steps: int, width: int):
  """Model, optimiser, jitted step and prediction for one configuration (compiled once per process)."""
  import jax
  import optax

  model = make_model(width)
  tx = optax.adam(optax.cosine_decay_schedule(LR, steps))
  mix = make_mix(method)

  @jax.jit
  def step(params, opt_state, key, images, boxes, classes, masks, prob):
    images, targets = mix(key, images, boxes, classes, masks, prob)  # the jaxmix line

    def objective(params):
      return centernet_loss(model.apply(params, images), targets)

    (loss, _), grads = jax.value_and_grad(objective, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def predict(params, images):
    return decode(model.apply(params, images))

  return model, tx, step, predict


def evaluate(predict, params, scenes: Scenes) -> tuple[float, dict[int, float]]:
  dets = []
  for i in range(0, len(scenes["images"]), 250):
    boxes, scores, classes = (np.asarray(a) for a in predict(params, scenes["images"][i : i + 250]))
    dets += list(zip(boxes, scores, classes, strict=True))
  return mean_ap(dets, scenes["boxes"], scenes["classes"])


def train_and_evaluate(cfg: Config, raw: dict[str, np.ndarray], bar: Any = None) -> dict:
  """Trains one configuration; returns its JSON-ready record."""
  import jax
  import jax.numpy as jnp


  data = splits(raw, cfg.seed, cfg.size, cfg.test_size)
  train = data["train"]
  model, tx, step, predict = _programs(cfg.method, cfg.steps, cfg.width)
  init_key, mix_key = jax.random.split(jax.random.key(cfg.seed))
  params = model.init(init_key, jnp.zeros((1, SIDE, SIDE, 1)))
  opt_state = tx.init(params)
  batch = min(BATCH, cfg.size)
  rng = np.random.default_rng([cfg.seed, 3])
  order = np.empty(0, np.int64)
  close_at = int(round(cfg.steps * (1 - CLOSE)))
  every = max(cfg.steps // 10, 1)
  losses, curve, val_curve = [], [], []
  seconds = 0.0
  start = time.time()
  for i in range(cfg.steps):
    if len(order) < batch:
      order = np.concatenate([order, rng.permutation(cfg.size)])
    idx, order = order[:batch], order[batch:]
    key = jax.random.fold_in(mix_key, i)
    prob = np.float32(1.0 if i < close_at else 0.0)
    batch_data = (train[k][idx] for k in ("images", "boxes", "classes", "masks"))
    params, opt_state, loss = step(params, opt_state, key, *batch_data, prob)
    losses.append(loss)
    if bar is not None:
      bar.update()
    if (i + 1) % every == 0 or i + 1 == cfg.steps:
      curve.append([i + 1, float(np.mean(jax.device_get(losses)))])
      losses = []
      seconds += time.time() - start
      val_curve.append([i + 1, evaluate(predict, params, data["val"])[0]])
      start = time.time()
  seconds += time.time() - start
  test_map, test_aps = evaluate(predict, params, data["test"])
  return {
    "config": dataclasses.asdict(cfg)
    | {"key": cfg.key, "batch": batch, "lr": LR, "close": CLOSE, "max_boxes": MAX_BOXES, "side": SIDE},
    "test": {"map50": test_map, "ap50": {CLASS_NAMES[c]: ap for c, ap in test_aps.items()}},
    "val": {"map50": val_curve[-1][1]},
    "val_map": val_curve,
    "train_loss": curve,
    "train_seconds": seconds,
    "versions": study.versions(_commit()),
  }


def _commit() -> str:
  """The commit of the code this process runs: read once, before the first run (``run`` calls it)."""
  return study.code_commit(("examples/detection.py",))


def configs(args: argparse.Namespace) -> list[Config]:
  shape = {"size": args.size, "steps": args.steps, "width": args.width, "test_size": args.test_size}
  return [Config(m, s, **shape) for s in range(args.seeds) for m in args.methods]


# ---------------------------------------------------------------------------------------- figure


def figure(args: argparse.Namespace, raw: dict[str, np.ndarray] | None = None) -> str:
  """``canvases.png``: the same six training scenes under every method, boxes drawn with their weights."""
  import jax
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.patches as patches
  import matplotlib.pyplot as plt

  raw = study.load_raw(args.data_dir) if raw is None else raw
  x_train, y_train = raw["x_train"][..., 0], raw["y_train"]
  cut = len(x_train) * 5 // 6
  scenes = make_scenes(x_train[:cut], y_train[:cut], 6, [0, 1])
  n = 6
  fig, axes = plt.subplots(len(METHODS), n, figsize=(1.7 * n, 1.8 * len(METHODS)))
  for row, method in enumerate(METHODS):
    images, t = jax.jit(make_mix(method))(
      jax.random.key(5), scenes["images"], scenes["boxes"], scenes["classes"], scenes["masks"]
    )
    for col in range(n):
      ax = axes[row, col]
      ax.imshow(np.asarray(images[col, ..., 0]), cmap="gray", vmin=0, vmax=1)
      fields = (t.boxes, t.classes, t.valid, t.weights)
      for box, c, ok, w in zip(*(np.asarray(a[col]) for a in fields), strict=True):
        if not ok:
          continue
        color = plt.cm.tab10(int(c))
        rect = patches.Rectangle(box[:2] - 0.5, *(box[2:] - box[:2]), fill=False, color=color, lw=1)
        ax.add_patch(rect)
        label = CLASS_NAMES[int(c)] + ("" if w == 1 else f" {w:.2f}")
        ax.text(box[0] - 0.5, box[1] - 1, label, color=color, fontsize=5, va="bottom")
      ax.set_xticks([])
      ax.set_yticks([])
      if col == 0:
        ax.set_ylabel(method, fontsize=9)
  fig.tight_layout()
  path = os.path.join(args.out, "canvases.png")
  os.makedirs(args.out, exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


# ---------------------------------------------------------------------------------- run, report


def run(args: argparse.Namespace) -> int:
  from tqdm.auto import tqdm

  _commit()  # the checkout as this process imported it, not as it is when a record is written
  done = study.load_results(args.out)
  todo = [c for c in configs(args) if c.key not in done]
  print(f"{len(todo)} runs to do, {len(configs(args)) - len(todo)} stored in {args.out}")
  raw = study.load_raw(args.data_dir)
  if not os.path.exists(os.path.join(args.out, "canvases.png")):
    print(f"wrote {figure(args, raw)}")
  bar = tqdm(total=len(todo) * args.steps, desc="detection runs", disable=args.no_progress)
  for cfg in todo:
    bar.set_postfix_str(cfg.key)
    record = train_and_evaluate(cfg, raw, bar)
    study.write_json(os.path.join(args.out, "runs", cfg.key + ".json"), record)
  bar.close()
  return report(args)


def render(records: dict[str, dict], args: argparse.Namespace) -> tuple[str, dict[str, dict]]:
  """The Markdown table of every method with all `args.seeds` seeds stored, and its numbers."""
  by_method: dict[str, dict[int, dict]] = {}
  for cfg in configs(args):
    if cfg.key in records:
      by_method.setdefault(cfg.method, {})[cfg.seed] = records[cfg.key]
  complete = {m: runs for m, runs in by_method.items() if len(runs) == args.seeds}
  if "none" not in complete:
    raise ValueError(f"the baseline 'none' does not have its {args.seeds} seeds stored in {args.out}.")
  seeds = sorted(complete["none"])
  first = complete["none"][seeds[0]]
  lines = [
    f"A tiny CenterNet (width {args.width}, output stride {STRIDE}) on {args.size} synthetic {SIDE} × {SIDE} "
    f"scenes of 1–{MAX_ITEMS} Fashion-MNIST items ({len(CLASS_NAMES)} classes), {args.steps} steps of batch "
    f"{first['config']['batch']}, mixing off for the last {CLOSE:.0%}; {len(seeds)} seeds; mAP@0.5 (VOC "
    f"all-point AP) on {args.test_size} test scenes and on the {VAL_SIZE} validation scenes. Mean ± "
    "standard error over seeds; Δ = paired difference to `none` (same seeds).",
    "",
    "| method | test mAP@0.5 | Δ test | val mAP@0.5 | Δ val |",
    "|---|---|---|---|---|",
  ]
  numbers: dict[str, dict] = {}
  get = {"test": lambda r: r["test"]["map50"], "val": lambda r: r["val"]["map50"]}
  base = {k: np.array([f(complete["none"][s]) for s in seeds]) for k, f in get.items()}
  for method in METHODS:
    if method not in complete:
      continue
    runs = complete[method]
    cells = []
    numbers[method] = {}
    for k, f in get.items():
      values = np.array([f(runs[s]) for s in seeds])
      m, s = study.mean_se(values)
      numbers[method][k] = (m, s)
      cells.append(f"{m:.4f} ± {s:.4f}")
      if method == "none":
        cells.append("–")
      else:
        dm, ds = study.mean_se(values - base[k])
        numbers[method]["delta_" + k] = (dm, ds)
        cells.append(f"{dm:+.4f} ± {ds:.4f}")
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  seconds = [r["train_seconds"] for runs in complete.values() for r in runs.values()]
  backend = first["versions"]["backend"]
  lines += ["", f"Training time per run: {np.mean(seconds):.0f} s on average ({backend})."]
  missing = [m for m in args.methods if m not in complete]
  if missing:
    lines += ["", f"Not shown (fewer than {args.seeds} seeds stored): {', '.join(missing)}."]
  return "\n".join(lines) + "\n", numbers


def plot(records: dict[str, dict], numbers: dict[str, dict], args: argparse.Namespace, path: str) -> None:
  """Left: Δ test mAP@0.5 against none. Right: each run's validation mAP@0.5 along training."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  methods = [m for m in METHODS if m in numbers and m != "none"]
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
  means = [numbers[m]["delta_test"][0] for m in methods]
  errs = [numbers[m]["delta_test"][1] for m in methods]
  axes[0].bar(methods, means, yerr=errs, capsize=4, color=[f"C{METHODS.index(m)}" for m in methods])
  axes[0].axhline(0, color="k", linewidth=0.8)
  axes[0].set_title("Δ test mAP@0.5 vs none")
  for cfg in configs(args):
    record = records.get(cfg.key)
    if record is None or cfg.method not in numbers:
      continue
    steps, values = zip(*record["val_map"], strict=True)
    label = cfg.method if cfg.seed == 0 else None
    axes[1].plot(steps, values, color=f"C{METHODS.index(cfg.method)}", alpha=0.8, label=label)
  axes[1].axvline(args.steps * (1 - CLOSE), color="grey", linewidth=0.8, linestyle=":")
  axes[1].set_xlabel("step")
  axes[1].set_title("validation mAP@0.5 per run (dotted: mixing off)", fontsize=10)
  axes[1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def report_stem(args: argparse.Namespace) -> str:
  """``detection`` for the default shape of run (size, steps, width, test size), else ``detection-`` and
  that shape, so a second budget's report does not overwrite the first's."""
  shape = Config("", 0, args.size, args.steps, args.width, args.test_size).key[1:-3]
  default = Config("", 0).key[1:-3]
  return "detection" if shape == default else f"detection-{shape}"


def report(args: argparse.Namespace) -> int:
  records = study.load_results(args.out)
  text, numbers = render(records, args)
  md, png = (os.path.join(args.out, report_stem(args) + ext) for ext in (".md", ".png"))
  with open(md, "w") as f:
    f.write(text)
  plot(records, numbers, args, png)
  print(text)
  print(f"wrote {md} and {png}")
  return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("command", choices=("run", "report", "figure"))
  parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--size", type=int, default=500)
  parser.add_argument("--steps", type=int, default=800)
  parser.add_argument("--width", type=int, default=16)
  parser.add_argument("--test-size", type=int, default=500)
  parser.add_argument("--data-dir", default=data_lib.DEFAULT_DATA_DIR)
  parser.add_argument("--out", default=OUT)
  parser.add_argument("--no-progress", action="store_true")
  return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  if args.command == "figure":
    print(f"wrote {figure(args)}")
    return 0
  return run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
  sys.exit(main())
