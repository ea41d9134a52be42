"""Pictures of mixed batches and of the λ a method draws.

Needs matplotlib (``pip install 'jaxmix[viz]'``); it is imported inside the
functions, so ``import jaxmix`` never needs it. Every function returns a
matplotlib ``Figure`` and never calls ``plt.show()``: in a notebook the figure
is shown at the end of the cell; in a script, ``fig.savefig(path)`` and then
``plt.close(fig)``.

Example:
  >>> from jaxmix import viz
  >>> plan = jaxmix.sample_cutmix(key, 8, (32, 32), alpha=1.0)
  >>> mixed = jaxmix.apply(plan, images)
  >>> targets = jaxmix.mix_labels(plan, labels, num_classes=10)
  >>> fig = viz.show_batch(mixed, targets, class_names=names, plan=plan,
  ...                      show_partner=True, show_mask=True)
  >>> fig = viz.plot_lambda(lambda k: jaxmix.sample_mixup(k, 8, alpha=0.4))
  >>> type(fig).__name__
  'Figure'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import jax
import numpy as np

if TYPE_CHECKING:
  from matplotlib.figure import Figure

__all__ = ["draw_lambdas", "plot_lambda", "show_batch"]

BOX_FORMATS = ("xyxy", "xywh", "cxcywh", "yxyx")
_DATA_FORMATS = ("NHWC", "NCHW")


def _pyplot():
  """matplotlib.pyplot, imported on first use with a clear message when missing."""
  try:
    import matplotlib.pyplot as plt
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("jaxmix.viz needs matplotlib: pip install 'jaxmix[viz]'.") from e
  return plt


def _to_numpy(x: Any, name: str) -> np.ndarray:
  try:
    arr = np.asarray(x)
  except Exception as e:
    raise TypeError(f"{name} must be an array, got {type(x).__name__}.") from e
  if arr.dtype == object:
    raise TypeError(f"{name} must be a numeric array, got dtype object.")
  # bfloat16 and other ml_dtypes floats: matplotlib only knows NumPy's own.
  if arr.dtype.kind == "V" or (
    arr.dtype.kind == "f" and arr.dtype not in (np.float16, np.float32, np.float64)
  ):
    arr = arr.astype(np.float32)
  return arr


def _display_images(images: Any, data_format: str) -> np.ndarray:
  """`[B, H, W, C]` (C in 1, 3, 4) or `[B, H, W]`, as uint8 or float32 in [0, 1]."""
  if data_format not in _DATA_FORMATS:
    raise ValueError(f"data_format must be one of {_DATA_FORMATS}, got {data_format!r}.")
  x = _to_numpy(images, "images")
  if x.ndim not in (3, 4):
    raise ValueError(
      "images must be a batch [B, H, W] or [B, H, W, C] (NHWC) / [B, C, H, W] (NCHW), "
      f"got shape {x.shape} (rank {x.ndim})."
    )
  if x.ndim == 4 and data_format == "NCHW":
    x = np.moveaxis(x, 1, -1)
  if x.ndim == 4 and x.shape[-1] not in (1, 3, 4):
    raise ValueError(
      f"images must have 1, 3 or 4 channels, got {x.shape[-1]} in shape {x.shape} "
      f"with data_format={data_format!r}."
    )
  if x.shape[0] == 0:
    raise ValueError("images is an empty batch (B = 0).")
  if x.ndim == 4 and x.shape[-1] == 1:
    x = x[..., 0]
  if x.dtype == np.uint8:
    return x
  if x.dtype.kind == "b":
    return x.astype(np.float32)
  if x.dtype.kind in "iu":
    return np.clip(x, 0, 255).astype(np.uint8)
  return np.clip(np.nan_to_num(x.astype(np.float32)), 0.0, 1.0)


def _label_lines(
  soft_labels: np.ndarray | None, i: int, class_names: Sequence[str] | None, top_k: int
) -> list[str]:
  if soft_labels is None:
    return []
  name = (lambda j: str(class_names[j])) if class_names is not None else (lambda j: f"class {j}")
  if soft_labels.ndim == 1:
    return [name(int(soft_labels[i]))]
  row = soft_labels[i]
  order = np.argsort(-row, kind="stable")[:top_k]
  lines = [f"{name(int(j))} {row[j]:.2f}" for j in order if row[j] > 1e-6]
  return lines or [f"{name(int(order[0]))} {row[order[0]]:.2f}"]


def _check_soft_labels(soft_labels: Any, batch: int, class_names: Sequence[str] | None) -> np.ndarray | None:
  if soft_labels is None:
    return None
  y = _to_numpy(soft_labels, "soft_labels")
  if y.ndim not in (1, 2):
    raise ValueError(f"soft_labels must be [B, K] (or int ids [B]), got shape {y.shape}.")
  if y.shape[0] != batch:
    raise ValueError(f"soft_labels has batch size {y.shape[0]} but images has {batch}.")
  if y.ndim == 1 and y.dtype.kind not in "iu":
    raise ValueError(f"soft_labels of shape [B] must be integer class ids, got dtype {y.dtype}.")
  if class_names is not None:
    k = y.shape[1] if y.ndim == 2 else None
    if k is not None and len(class_names) != k:
      raise ValueError(f"class_names has {len(class_names)} names but soft_labels has {k} classes.")
    if k is None and y.size and (y.min() < 0 or y.max() >= len(class_names)):
      raise ValueError(f"soft_labels holds class ids outside [0, {len(class_names)}).")
  return y


def _plan_partners(plan: Any) -> np.ndarray | None:
  """`[B]` partner per sample (`plan.index`), or `[B, k-1]` for k-way plans (`plan.indices`)."""
  index = getattr(plan, "index", None)
  if index is not None:
    return np.asarray(index)
  indices = getattr(plan, "indices", None)
  if indices is not None:
    indices = np.asarray(indices)
    if indices.ndim == 2 and np.array_equal(indices[:, 0], np.arange(indices.shape[0])):
      indices = indices[:, 1:]  # column 0 is the sample itself
    return indices
  warnings.warn(f"{type(plan).__name__} has no `index`; partners are not shown.", stacklevel=3)
  return None


def _plan_own_weight(plan: Any, batch: int, spatial: tuple[int, int]) -> np.ndarray | None:
  """The plan's own-content weight broadcast to `[B, H, W]`, or None when it has none."""
  weight = None
  if callable(getattr(plan, "own_weight", None)):
    try:
      weight = plan.own_weight()
    except TypeError:  # a PlanLike without one partner per sample (k-way MultiPlan)
      weight = None
  if weight is None and getattr(plan, "mask", None) is not None:
    weight = plan.mask
  if weight is None:
    warnings.warn(
      f"{type(plan).__name__} has neither own_weight() nor a mask; the mask overlay is skipped.",
      stacklevel=3,
    )
    return None
  weight = np.asarray(weight, dtype=np.float32)
  if weight.ndim == 4 and weight.shape[-1] == 1:
    weight = weight[..., 0]
  try:
    return np.broadcast_to(weight, (batch, *spatial))
  except ValueError as e:
    raise ValueError(
      f"the plan's own-content weight has shape {weight.shape}, which does not fit images of "
      f"batch {batch} and spatial shape {spatial}."
    ) from e


def _check_boxes(
  boxes: Any, valid: Any, box_classes: Any, box_weights: Any, batch: int, box_format: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
  if box_format not in BOX_FORMATS:
    raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")
  b = _to_numpy(boxes, "boxes").astype(np.float64)
  if b.ndim != 3 or b.shape[-1] != 4:
    raise ValueError(f"boxes must be padded [B, N, 4], got shape {b.shape}.")
  if b.shape[0] != batch:
    raise ValueError(f"boxes has batch size {b.shape[0]} but images has {batch}.")
  if valid is None:
    v = None
  else:
    v = _to_numpy(valid, "valid")
    if v.shape != b.shape[:2]:
      raise ValueError(f"valid must be [B, N] = {b.shape[:2]} like boxes, got shape {v.shape}.")
    v = v.astype(bool)
  if box_classes is not None:
    box_classes = _to_numpy(box_classes, "box_classes")
    if box_classes.shape != b.shape[:2]:
      raise ValueError(f"box_classes must be [B, N] = {b.shape[:2]} like boxes, got {box_classes.shape}.")
  if box_weights is not None:
    box_weights = _to_numpy(box_weights, "box_weights").astype(np.float32)
    if box_weights.shape != b.shape[:2]:
      raise ValueError(f"box_weights must be [B, N] = {b.shape[:2]} like boxes, got {box_weights.shape}.")
  xyxy = _to_xyxy(b, box_format)
  if v is None:
    # Padded rows are usually zeros: draw only boxes with positive area.
    v = (xyxy[..., 2] > xyxy[..., 0]) & (xyxy[..., 3] > xyxy[..., 1])
  return xyxy, v, box_classes, box_weights


def _to_xyxy(boxes: np.ndarray, box_format: str) -> np.ndarray:
  """Boxes `[..., 4]` in `box_format` as (x_min, y_min, x_max, y_max), NumPy."""
  a, b, c, d = (boxes[..., i] for i in range(4))
  if box_format == "xyxy":
    out = (a, b, c, d)
  elif box_format == "yxyx":
    out = (b, a, d, c)
  elif box_format == "xywh":
    out = (a, b, a + c, b + d)
  elif box_format == "cxcywh":
    out = (a - c / 2, b - d / 2, a + c / 2, b + d / 2)
  else:
    raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")
  return np.stack(out, axis=-1)


def show_batch(
  images: Any,
  soft_labels: Any = None,
  *,
  class_names: Sequence[str] | None = None,
  top_k: int = 2,
  plan: Any = None,
  show_partner: bool = False,
  show_mask: bool = False,
  boxes: Any = None,
  box_format: str = "xyxy",
  valid: Any = None,
  box_classes: Any = None,
  normalized: bool = False,
  box_weights: Any = None,
  titles: Sequence[str] | None = None,
  ncols: int | None = None,
  data_format: str = "NHWC",
  panel_size: float = 2.0,
  mask_color: tuple[float, float, float] = (1.0, 0.15, 0.1),
) -> Figure:
  """A grid of a (mixed) batch, each image with its top soft-label entries under it.

  One panel (matplotlib ``Axes``) per sample, in batch order, so
  ``len(fig.axes) == B``.

  Args:
    images: `[B, H, W, C]` (C = 1, 3 or 4) or `[B, H, W]`; `[B, C, H, W]` with
      ``data_format="NCHW"``. uint8 is shown as is; floats are taken to be in
      [0, 1] and clipped. NumPy or JAX arrays (bf16 included).
    soft_labels: float `[B, K]` targets (e.g. from :func:`jaxmix.mix_labels`)
      or int class ids `[B]`, or None.
    class_names: K names for the label entries; "class j" when None.
    top_k: how many label entries (largest first, zeros left out) to write.
    plan: the plan that mixed the batch, for the overlays below and λ.
    show_partner: write each sample's partner (``plan.index``, or the
      other sources ``plan.indices`` of a k-way plan) and λ (``plan.lam``)
      in its title.
    show_mask: tint each image where its content came from the partner, by
      ``1 - own weight`` from ``plan.own_weight()`` (or ``plan.mask`` for
      plan types without it; skipped with a warning when it has neither).
      MixUp shows as an even tint of strength ``1 - λ``.
    boxes: detection boxes, padded `[B, N, 4]` in `box_format`, pixel
      coordinates unless `normalized`; or mixed detection targets with
      ``boxes``, ``valid`` and optionally ``classes`` and ``weights``
      attributes (e.g. what :func:`jaxmix.detection.mosaic` returns), unpacked into
      the arguments below unless those are given.
    box_format: ``"xyxy"``, ``"xywh"``, ``"cxcywh"`` or ``"yxyx"``.
    valid: bool `[B, N]`, which boxes are real. When None, boxes with a
      positive area are drawn (padding rows are usually zeros).
    box_classes: int `[B, N]` class of each box, written on it (named with
      `class_names` when given) and used for its colour.
    normalized: boxes are in [0, 1] of the image width (x) and height (y),
      as with jaxmix's box functions' ``normalized=True``.
    box_weights: float `[B, N]` per-box weight (e.g. detection MixUp's λ
      and 1 − λ), written on each box and used for its line opacity.
    titles: B titles (default: the sample's index).
    ncols: panels per row (default ``min(B, 8)``).
    data_format: ``"NHWC"`` (default) or ``"NCHW"`` for rank-4 `images`.
    panel_size: inches per panel.
    mask_color: RGB colour of the partner tint.

  Returns:
    The matplotlib ``Figure``.

  Raises:
    ValueError: images of the wrong rank or channel count, soft labels,
      titles, boxes or plan that do not match the batch.

  Example:
    >>> mixed, targets = jaxmix.cutmix(key, images, labels, num_classes=10)
    >>> fig = jaxmix.viz.show_batch(mixed, targets, class_names=names)   # 10 names
    >>> len(fig.axes)                         # one panel per image
    8
    >>> fig.savefig("batch.png")
  """
  x = _display_images(images, data_format)
  batch, spatial = x.shape[0], x.shape[1:3]
  y = _check_soft_labels(soft_labels, batch, class_names)
  if not isinstance(top_k, int) or top_k < 1:
    raise ValueError(f"top_k must be a positive int, got {top_k!r}.")
  if titles is not None and len(titles) != batch:
    raise ValueError(f"titles has {len(titles)} entries but the batch has {batch} images.")
  if ncols is None:
    ncols = min(batch, 8)
  if not isinstance(ncols, int) or ncols < 1:
    raise ValueError(f"ncols must be a positive int, got {ncols!r}.")
  if (show_partner or show_mask) and plan is None:
    raise ValueError("show_partner and show_mask need the `plan` that mixed the batch.")
  partners = lam = weight = None
  if plan is not None:
    plan_lam = getattr(plan, "lam", None)
    if plan_lam is not None:
      lam = np.asarray(plan_lam, dtype=np.float32).reshape(-1)
      if lam.shape[0] != batch:
        raise ValueError(f"plan was sampled for batch size {lam.shape[0]} but images has {batch}.")
    if show_partner:
      partners = _plan_partners(plan)
    if show_mask:
      weight = _plan_own_weight(plan, batch, spatial)
  if boxes is not None and hasattr(boxes, "boxes") and hasattr(boxes, "valid"):
    valid = boxes.valid if valid is None else valid
    box_classes = getattr(boxes, "classes", None) if box_classes is None else box_classes
    box_weights = getattr(boxes, "weights", None) if box_weights is None else box_weights
    boxes = boxes.boxes
  if boxes is not None:
    xyxy, box_valid, box_classes, box_weights = _check_boxes(
      boxes, valid, box_classes, box_weights, batch, box_format
    )
    if normalized:
      xyxy = xyxy * np.array([spatial[1], spatial[0], spatial[1], spatial[0]], dtype=np.float64)
  elif valid is not None or box_classes is not None or box_weights is not None:
    raise ValueError("valid, box_classes and box_weights need `boxes`.")

  plt = _pyplot()
  from matplotlib.patches import Rectangle

  nrows = math.ceil(batch / ncols)
  text_lines = (top_k if y is not None and y.ndim == 2 else int(y is not None)) + 1
  fig, axes = plt.subplots(
    nrows,
    ncols,
    figsize=(ncols * panel_size, nrows * (panel_size + 0.18 * text_lines)),
    squeeze=False,
  )
  for ax in axes.flat[batch:]:
    fig.delaxes(ax)
  cmap = plt.get_cmap("tab10")
  for i, ax in enumerate(axes.flat[:batch]):
    grey = x.ndim == 3
    vmax = 255 if x.dtype == np.uint8 else 1.0
    ax.imshow(x[i], cmap="gray" if grey else None, vmin=0 if grey else None, vmax=vmax if grey else None)
    if weight is not None:
      tint = np.empty((*spatial, 4), np.float32)
      tint[..., :3] = mask_color
      tint[..., 3] = 0.55 * np.clip(1.0 - weight[i], 0.0, 1.0)
      ax.imshow(tint, interpolation="nearest")
    if boxes is not None:
      for n in np.flatnonzero(box_valid[i]):
        x0, y0, x1, y1 = xyxy[i, n]
        cls = None if box_classes is None else int(box_classes[i, n])
        color = cmap(cls % 10 if cls is not None else 0)
        box_w = None if box_weights is None else float(box_weights[i, n])
        opacity = 1.0 if box_w is None else 0.35 + 0.65 * min(max(box_w, 0.0), 1.0)
        ax.add_patch(
          Rectangle(
            (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, lw=1.5, alpha=opacity
          )
        )
        text = []
        if cls is not None:
          known = class_names is not None and 0 <= cls < len(class_names)
          text.append(str(class_names[cls]) if known and class_names is not None else str(cls))
        if box_w is not None:
          text.append(f"{box_w:.2f}")
        if text:
          bbox = {"fc": color, "pad": 1, "lw": 0, "alpha": opacity}
          ax.text(x0, y0, " ".join(text), color="white", fontsize=6, va="top", bbox=bbox, clip_on=True)
    ax.set_xticks([])
    ax.set_yticks([])
    title = titles[i] if titles is not None else f"#{i}"
    if partners is not None:
      title += f" + #{partners[i]}" if partners.ndim == 1 else " + " + ",".join(f"#{p}" for p in partners[i])
      if lam is not None:
        title += f"  λ={lam[i]:.2f}"
    ax.set_title(title, fontsize=8)
    lines = _label_lines(y, i, class_names, top_k)
    if lines:
      ax.set_xlabel("\n".join(lines), fontsize=7)
  fig.tight_layout()
  return fig


def draw_lambdas(
  sample_fn: Callable[[jax.Array], Any],
  *,
  num_draws: int = 2000,
  key: jax.Array | None = None,
  chunk_size: int = 256,
) -> np.ndarray:
  """The λ values a sampler produces over `num_draws` keys, flattened.

  `sample_fn` is vmapped over split keys (in chunks of `chunk_size`, one
  compiled program) and may return a plan (its ``lam`` is used) or an array
  of λ.

  Args:
    sample_fn: ``key -> plan`` (or ``key -> λ``), e.g.
      ``lambda k: jaxmix.sample_mixup(k, 8, alpha=0.4)``.
    num_draws: how many keys.
    key: PRNG key (default ``jax.random.key(0)``).
    chunk_size: keys per vmapped call; bounds memory for mask methods.

  Returns:
    float32 NumPy array of every λ drawn (``num_draws × B`` values).
  """
  if not callable(sample_fn):
    raise TypeError(f"sample_fn must be callable, got {type(sample_fn).__name__}.")
  if not isinstance(num_draws, int) or num_draws < 1:
    raise ValueError(f"num_draws must be a positive int, got {num_draws!r}.")
  if not isinstance(chunk_size, int) or chunk_size < 1:
    raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}.")
  key = jax.random.key(0) if key is None else key
  keys = jax.random.split(key, num_draws)
  chunk = min(chunk_size, num_draws)
  pad = -num_draws % chunk
  if pad:
    keys = jax.numpy.concatenate([keys, keys[:pad]])

  def lam_of(k):
    out = sample_fn(k)
    return getattr(out, "lam", out)

  run = jax.jit(jax.vmap(lam_of))
  parts = [np.asarray(run(keys[s : s + chunk]), dtype=np.float32) for s in range(0, keys.shape[0], chunk)]
  return np.concatenate(parts)[:num_draws].reshape(-1)


def plot_lambda(
  source: Any,
  *,
  num_draws: int = 2000,
  key: jax.Array | None = None,
  bins: int = 40,
  ax: Any = None,
  title: str | None = None,
  chunk_size: int = 256,
) -> Figure:
  """Histogram of the λ (each sample's own share) a method produces.

  Tune α by looking at it: Beta(α, α) with α < 1 puts most draws near 0 and 1
  (light mixing), α = 1 is uniform, α > 1 concentrates around 0.5. CutMix's
  reported λ is the exact pixel share after clipping, so its histogram shows
  the effect of box clipping too.

  Args:
    source: ``key -> plan`` sampler (vmapped over keys, see
      :func:`draw_lambdas`), an array of λ values, or a mapping from a name
      to either, drawn as overlaid histograms with a legend.
    num_draws: keys per sampler.
    key: PRNG key (default ``jax.random.key(0)``); the same key is used for
      every entry of a mapping.
    bins: histogram bins over [0, 1].
    ax: an existing matplotlib ``Axes`` to draw into; a new figure otherwise.
    title: axes title.
    chunk_size: see :func:`draw_lambdas`.

  Returns:
    The matplotlib ``Figure``.

  Example:
    >>> fig = jaxmix.viz.plot_lambda({
    ...     f"α={a}": (lambda k, a=a: jaxmix.sample_mixup(k, 8, alpha=a)) for a in (0.2, 1.0, 4.0)})
    >>> fig.axes[0].get_legend_handles_labels()[1]     # one histogram per entry
    ['α=0.2 (mean ...)', 'α=1.0 (mean ...)', 'α=4.0 (mean ...)']
  """
  entries = dict(source) if isinstance(source, Mapping) else {None: source}
  if not entries:
    raise ValueError("source is an empty mapping.")
  values = {}
  for name, src in entries.items():
    if callable(src):
      lam = draw_lambdas(src, num_draws=num_draws, key=key, chunk_size=chunk_size)
    else:
      lam = _to_numpy(src, "source").astype(np.float32).reshape(-1)
      if lam.size == 0:
        raise ValueError(f"source {name!r} holds no λ values." if name else "source holds no λ values.")
    values[name] = lam
  plt = _pyplot()
  if ax is None:
    fig, ax = plt.subplots(figsize=(5, 3))
  else:
    fig = ax.figure
  overlay = len(values) > 1
  for name, lam in values.items():
    label = f"mean {lam.mean():.2f}" if name is None else f"{name} (mean {lam.mean():.2f})"
    ax.hist(lam, bins=bins, range=(0.0, 1.0), density=True, alpha=0.55 if overlay else 0.85, label=label)
  ax.set_xlim(0.0, 1.0)
  ax.set_xlabel("λ (own share)")
  ax.set_ylabel("density")
  ax.legend(fontsize=7)
  if title:
    ax.set_title(title, fontsize=9)
  fig.tight_layout()
  return fig
