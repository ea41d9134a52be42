"""Shared helpers for the core tests (MixUp, CutMix, timm's switch).

Compiling is what costs time on CPU (``jax.random.beta`` alone takes seconds
to compile), so the tests share jitted functions through :func:`call`, reuse a
few canonical shapes, and hypothesis tests over many shapes use
:func:`cheap_beta`, a Beta(1, 1) sampler that compiles in a fraction of the
time. The λ distribution itself is tested with the real sampler (KS tests).
"""

from __future__ import annotations

import contextlib
import functools
import os
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

import jaxmix
from jaxmix._src.core import sampling

# `make test` runs each hypothesis test on about a third of its examples (at least 2): every property is
# still checked, on fewer random shapes and values (new ones each run), and each new shape costs a
# compile. `make test-slow` sets JAXMIX_FULL_EXAMPLES=1 and runs every hypothesis test on all the
# examples its decorator names.
FULL_EXAMPLES = os.environ.get("JAXMIX_FULL_EXAMPLES", "") == "1"


def examples(n: int) -> int:
  """The ``max_examples`` of a hypothesis test written for ``n``: ``n`` in full runs, else a third (≥ 2)."""
  return n if FULL_EXAMPLES else min(n, max(2, (n + 2) // 3))


MODES = ("batch", "pair", "elem")
PAIRINGS = ("flip", "roll", "permute")
# pair mode needs mutual partners, which roll cannot give for B > 2.
COMBOS = tuple((m, p) for m in MODES for p in PAIRINGS if not (m == "pair" and p == "roll"))
METHODS = ("mixup", "cutmix", "mixup_cutmix")
# Canonical image batches (even and odd B, non-square), reused so compiles are shared.
CANON = (6, 6, 7, 2)
CANON_ODD = (5, 6, 7, 2)

# Options that change shapes or program structure: static under jit. Everything
# else (alpha, prob, switch_prob, label_smoothing, ...) is passed traced.
STATIC = frozenset(
  {
    "batch_size",
    "spatial_shape",
    "mode",
    "pairing",
    "num_classes",
    "data_format",
    "correct_lam",
    "cutmix_minmax",
    "name",
  }
)

_JITTED: dict = {}


def cheap_beta(key, alpha, shape, beta_=None):
  """Stand-in for `sampling.beta`: Beta(1, 1) = U[0, 1); α ≤ 0 still gives λ = 1."""
  del beta_
  return jnp.where(jnp.asarray(alpha, jnp.float32) > 0, jax.random.uniform(key, shape), 1.0)


# Traced options filled in with their defaults under jit, so that every jitted
# call of a method has the same signature and reuses one compiled program.
TRACED_DEFAULTS = {
  "mixup": dict(alpha=1.0, prob=1.0),
  "cutmix": dict(alpha=1.0, prob=1.0),
  "mixup_cutmix": dict(mixup_alpha=1.0, cutmix_alpha=0.0, prob=1.0, switch_prob=0.5),
}
LABEL_DEFAULTS = dict(label_smoothing=0.0)


def _traced_defaults(fn, kwargs):
  name = kwargs.get("name", fn.__name__.removeprefix("sample_"))
  defaults = dict(TRACED_DEFAULTS.get(name, {}))
  if fn.__name__ in TRACED_DEFAULTS or fn.__name__ == "method_and_plan":
    defaults.update(LABEL_DEFAULTS)
  return defaults


def jitted(fn, cheap=False, traced=(), **static):
  """A cached ``jax.jit`` of `fn` with `static` options bound (for `.lower` and calls)."""
  cache_key = (fn, tuple(sorted(static.items())), tuple(sorted(traced)), cheap)
  if cache_key not in _JITTED:
    _JITTED[cache_key] = jax.jit(functools.partial(fn, **static))
  return _JITTED[cache_key]


def call(fn, use_jit, *args, cheap=False, static=(), lower=False, **kwargs):
  """``fn(*args, **kwargs)`` directly, or through a cached ``jax.jit``.

  Under jit the options named in STATIC (and `static`) are static and all
  other keyword options are traced (missing ones take their defaults), so one
  compiled program serves every value of alpha/prob/... . ``cheap=True``
  swaps in :func:`cheap_beta` (its jitted programs are cached apart).
  ``lower=True`` returns the lowered program of that same jitted function
  (compiling it then is shared with later calls).
  """
  patch = mock.patch.object(sampling, "beta", cheap_beta) if cheap else contextlib.nullcontext()
  with patch:
    if not use_jit:
      return fn(*args, **kwargs)
    names = STATIC | set(static)
    fixed = {k: v for k, v in kwargs.items() if k in names}
    traced = {k: v for k, v in _traced_defaults(fn, kwargs).items() if k not in names}
    traced.update({k: v for k, v in kwargs.items() if k not in names})
    f = jitted(fn, cheap=cheap, traced=traced, **fixed)
    return f.lower(*args, **traced) if lower else f(*args, **traced)


def method(name):
  return getattr(jaxmix, name)


def sampler(name):
  return getattr(jaxmix, "sample_" + name)


def sample_plan(name, key, batch_size, spatial_shape, use_jit=False, **kwargs):
  """The plan the one-call `name` uses for the same key and options."""
  if name == "mixup":
    return call(sampler(name), use_jit, key, batch_size=batch_size, **kwargs)
  return call(sampler(name), use_jit, key, batch_size=batch_size, spatial_shape=spatial_shape, **kwargs)


def constant_images(batch_size, h, w, c=1, dtype=jnp.float32):
  """Sample i is the constant i + 1 everywhere, so pixels can be traced to their source."""
  values = jnp.arange(1, batch_size + 1, dtype=jnp.float32)
  return jnp.broadcast_to(values[:, None, None, None], (batch_size, h, w, c)).astype(dtype)


def random_images(seed, shape, dtype=jnp.float32):
  x = jax.random.normal(jax.random.key(seed), shape)
  return x.astype(dtype)


def box_area(box):
  box = np.asarray(box)
  return np.maximum(box[:, 1] - box[:, 0], 0) * np.maximum(box[:, 3] - box[:, 2], 0)


def timm_box(cy, cx, cut_h, cut_w, h, w):
  """timm 1.0.31's ``rand_bbox`` for given centres and sides, restated in numpy:
  ``(top, bottom, left, right)``, each clipped to the image."""
  cy, cx, cut_h, cut_w = (np.asarray(a) for a in (cy, cx, cut_h, cut_w))
  return (
    np.clip(cy - cut_h // 2, 0, h),
    np.clip(cy + (cut_h + 1) // 2, 0, h),
    np.clip(cx - cut_w // 2, 0, w),
    np.clip(cx + (cut_w + 1) // 2, 0, w),
  )


def ks_distance(a, b):
  """Two-sample Kolmogorov-Smirnov statistic D (ties handled: ECDFs compared on the union)."""
  a, b = np.sort(np.asarray(a)), np.sort(np.asarray(b))
  grid = np.union1d(a, b)
  fa = np.searchsorted(a, grid, side="right") / len(a)
  fb = np.searchsorted(b, grid, side="right") / len(b)
  return float(np.abs(fa - fb).max())


def expected_index(pairing, batch_size):
  ar = np.arange(batch_size)
  if pairing == "flip":
    return ar[::-1]
  if pairing == "roll":
    return np.roll(ar, 1)
  return None


def own_weight(plan, h, w):
  """Own-content weight [B, H, W] from the plan's fields, in numpy (the reference)."""
  b = plan.lam.shape[0]
  weight = np.broadcast_to(np.asarray(plan.blend, np.float64)[:, None, None], (b, h, w)).copy()
  if plan.region is not None:
    rows = np.arange(h)[None, :, None]
    cols = np.arange(w)[None, None, :]
    box = np.asarray(plan.region)[:, :, None, None]
    inside = (rows >= box[:, 0]) & (rows < box[:, 1]) & (cols >= box[:, 2]) & (cols < box[:, 3])
    weight = np.where(inside, 0.0, weight)
  own = np.asarray(plan.index) == np.arange(b)
  return np.where(own[:, None, None], 1.0, weight)


def reference_mix(plan, x):
  """NHWC (or [B, H, W] / [B, D]) reference of what applying `plan` must give, float64."""
  x = np.asarray(x, np.float64)
  partner = x[np.asarray(plan.index)]
  if x.ndim == 2 or plan.region is None:
    wgt = np.asarray(plan.blend, np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    own = np.asarray(plan.index) == np.arange(x.shape[0])
    wgt = np.where(own.reshape(wgt.shape), 1.0, wgt)
  else:
    wgt = own_weight(plan, x.shape[1], x.shape[2])
    if x.ndim == 4:
      wgt = wgt[..., None]
  return wgt * x + (1 - wgt) * partner


def required_data(option, batch_size, spatial_shape):
  """Data for an option a registered sampler cannot draw without (``Method.requires``)."""
  key = jax.random.key(99)
  if option == "saliency":  # SaliencyMix: a saliency map [B, H, W] (a volume [B, D, H, W] for cuboids)
    return jax.random.uniform(key, (batch_size, *spatial_shape))
  if option == "features":  # Attentive CutMix: a feature grid [B, h, w] ([B, d, h, w] for cuboids)
    grid = (3, 3) if len(spatial_shape) == 2 else tuple(min(3, max(1, s)) for s in spatial_shape)
    return jax.random.uniform(key, (batch_size, *grid))
  if option == "targets":  # C-Mixup: regression targets [B, d]
    return jax.random.uniform(key, (batch_size, 2))
  raise AssertionError(f"no test data for required option {option!r}: add it to required_data()")


def exercise_options(name, spatial_shape):
  """Options that a registered method needs on a small test image, or without which a path of it
  goes untested: timm's switch defaults to MixUp only (cutmix_alpha 0); TokenMix's 16-pixel tokens
  do not divide small images (tokens of 3, 2 or 1 pixels that divide each side, and fewer
  extra tokens than the official 14); GridMix's cuboid cells need grid_size to fit a short clip."""
  if name == "mixup_cutmix":
    return {"cutmix_alpha": 1.0}
  if name == "gridmix" and len(spatial_shape) == 3 and min(spatial_shape) < 7:
    # Cuboid cells: grid_size's high end must fit the shortest side (the default (2, 7) needs 7).
    return {"grid_size": (min(2, min(spatial_shape)), min(spatial_shape))}
  if name == "tokenmix":
    patch = tuple(next(p for p in (3, 2, 1) if side % p == 0) for side in spatial_shape)
    tokens = (spatial_shape[0] // patch[0]) * (spatial_shape[1] // patch[1])
    return {"patch_size": patch, "minimum_tokens": max(1, tokens // 6)}
  return {}


def registry_options(name, batch_size, spatial_shape):
  """Everything a registered sampler (``jaxmix.SAMPLERS[name]``) needs for a small test batch: its
  required data and :func:`exercise_options`. The one table the registry-wide tests share
  (test_contract, test_regressions, test_multilabel, sharding_checks)."""
  spec = jaxmix.SAMPLERS[name]
  opts = {o: required_data(o, batch_size, spatial_shape) for o in spec.requires}
  return opts | exercise_options(name, spatial_shape)


def method_and_plan(key, inputs, labels=None, *, name, **kwargs):
  """``(mixed, soft_labels, plan)``: the one-call method and the plan it used (same key).

  One function, so under :func:`call` a single compile serves both.
  """
  batch = jax.tree_util.tree_leaves(inputs)[0].shape[0]
  out, y = method(name)(key, inputs, labels, **kwargs)
  opts = {k: v for k, v in kwargs.items() if k not in ("num_classes", "label_smoothing", "data_format")}
  if name == "mixup":
    plan = sampler(name)(key, batch, **opts)
  else:
    fmt = kwargs.get("data_format", "NHWC")
    leaf = jax.tree_util.tree_leaves(inputs)[0]
    spatial = leaf.shape[1:3] if leaf.ndim == 3 or fmt == "NHWC" else leaf.shape[2:4]
    plan = sampler(name)(key, batch, spatial, **opts)
  return out, y, plan


# Every public namespace (the top level first); test_api walks their __all__, test_fuzz fuzzes them.
PUBLIC_MODULES = (
  jaxmix,
  jaxmix.detection,
  jaxmix.flow_mixup,
  jaxmix.guided,
  jaxmix.losses,
  jaxmix.regression,
  jaxmix.restoration,
  jaxmix.segmentation,
  jaxmix.sequence,
  jaxmix.sharding,
)
