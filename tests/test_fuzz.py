"""Fuzzing the public API with the bad inputs of issue 22 (item 3).

Every public function is enumerated from ``jaxmix.SAMPLERS`` and from the ``__all__`` of jaxmix and
its namespaces, so a function added later is fuzzed with no new test code: its arguments are built
by name from :data:`VALID` (the test fails asking for a value when a required argument is new).
Each case replaces one argument (``batch_size``, ``prob``, ``inputs``, ``labels``,
``num_classes``, ``sigma_range``, ``label_maps``, ...) by a bad value from :data:`BAD`; hypothesis draws
the details (which sample holds the NaN or inf, which label is out of range, list or array). The
call must either raise a ValueError/TypeError that names the argument (and the value received), or
return a result with the expected tree, shapes and dtypes, finite wherever it does not read a
non-finite input, with the inputs unchanged, and the identity for ``prob=0`` (:data:`EXPECT` names
the few functions whose contract for an argument differs, e.g. ``jaxmix.losses.label_pair`` passes any
id through). Never an IndexError, an AssertionError or an XLA error.

Every call is traced with :func:`jax.eval_shape` (checks run at trace time; nothing compiles).
The value checks (a non-finite pixel, ``prob=0``, a tiny ``sigma_range``) run one compiled program per
function, with the inputs and ``prob`` as traced arguments, reused by every example.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import PUBLIC_MODULES
from core_helpers import examples
from hypothesis import strategies as st

import jaxmix

KEY = jax.random.key(0)
C, K, T, D, N = 2, 5, 6, 3, 2  # channels, classes, sequence length, embedding size, boxes per image


class Size(NamedTuple):
  b: int
  h: int
  w: int


BASE = Size(4, 8, 7)  # non-square; W >= 7 for GridMix's default grid_size (2, 7)
MODULES = PUBLIC_MODULES


def public_functions() -> dict[str, Callable[..., Any]]:
  """name -> function: the registry's samplers and one-call forms, then every function in an ``__all__``."""
  found: dict[str, Callable[..., Any]] = {}
  for name, spec in jaxmix.SAMPLERS.items():
    found[f"SAMPLERS[{name}].sample"] = spec.sample
    if spec.mix is not None:
      found[f"SAMPLERS[{name}].mix"] = spec.mix
  for module in MODULES:
    for name in module.__all__:
      obj = getattr(module, name)
      if inspect.isfunction(obj) and all(obj is not f for f in found.values()):
        found[f"{module.__name__}.{name}"] = obj
  return found


FUNCTIONS = public_functions()


# Valid arguments, built by name for a batch of the given size.


def images(s: Size, seed: int = 0) -> np.ndarray:
  return np.random.RandomState(seed).uniform(0.0, 1.0, (s.b, s.h, s.w, C)).astype(np.float32)


def class_ids(s: Size) -> np.ndarray:
  return (np.arange(s.b) % K).astype(np.int32)


def label_maps(s: Size) -> np.ndarray:
  return np.random.RandomState(1).randint(0, K, (s.b, s.h, s.w)).astype(np.int32)


def padding_mask(s: Size) -> np.ndarray:
  return np.arange(T)[None, :] < (np.arange(s.b) % T + 1)[:, None]  # lengths 1, 2, ...


def embeddings(s: Size) -> np.ndarray:
  return np.random.RandomState(2).normal(size=(s.b, T, D)).astype(np.float32)


def multi_hot(s: Size) -> np.ndarray:
  return (np.random.RandomState(6).uniform(size=(s.b, K)) < 0.4).astype(np.float32)


def cross_entropy(logits: Any, labels: Any) -> jax.Array:
  """Softmax cross-entropy with integer labels: a `loss_fn` for jaxmix.losses.mixed_loss."""
  log_p = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32))
  return -jnp.take_along_axis(log_p, jnp.asarray(labels)[..., None], axis=-1)[..., 0]


def boxes(s: Size) -> np.ndarray:
  one = np.array([[0.0, 0.0, 0.5, 0.5], [0.25, 0.5, 1.0, 1.0]], np.float32) * [s.w, s.h, s.w, s.h]
  return np.broadcast_to(one, (s.b, N, 4)).astype(np.float32)


class Lazy(NamedTuple):
  """An argument built inside the traced call (a plan: drawing it eagerly would compile op by op)."""

  make: Callable[[], Any]


def lazy(make: Callable[[Size], Any]) -> Callable[[Size], Lazy]:
  return lambda s: Lazy(lambda: make(s))


def a_plan(s: Size) -> jaxmix.Plan:
  # Per sample MixUp or CutMix: a plan that blends and pastes boxes, the hardest case for exactness.
  return jaxmix.sample_mixup_cutmix(KEY, s.b, (s.h, s.w), cutmix_alpha=1.0, mode="elem")


def box_targets(s: Size) -> jaxmix.detection.BoxTargets:
  return jaxmix.detection.BoxTargets(
    boxes(s), np.zeros((s.b, N), np.int32), np.ones((s.b, N), bool), np.ones((s.b, N), np.float32)
  )


def a_cache(s: Size) -> jaxmix.detection.PartnerCache:
  cache = jaxmix.detection.init_partner_cache(images(s), box_targets(s), 2 * s.b + 1)
  return jaxmix.detection.update_partner_cache(KEY, cache, images(s, seed=9), box_targets(s))


VALID: dict[str, Callable[[Size], Any]] = {
  "key": lambda s: KEY,
  "batch_size": lambda s: s.b,
  "spatial_shape": lambda s: (s.h, s.w),
  "inputs": images,
  "images": images,
  "tree": images,
  "h": images,
  "labels": class_ids,
  "num_classes": lambda s: K,
  "label_maps": label_maps,
  "maps": label_maps,
  "mask": padding_mask,
  "saliency": lambda s: np.random.RandomState(3).uniform(size=(s.b, 4, 4)).astype(np.float32),
  "features": lambda s: np.random.RandomState(4).uniform(size=(s.b, 3, 3)).astype(np.float32),
  "plan": lazy(a_plan),
  "class_counts": lambda s: np.arange(1, K + 1, dtype=np.float32),
  "methods": lambda s: ("mixup", "cutmix"),
  "boxes": boxes,
  "classes": lambda s: np.zeros((s.b, N), np.int32),
  "batch_a": lambda s: (images(s), class_ids(s)),
  "batch_b": lambda s: (images(s, seed=5), class_ids(s)),
  "num_classes_a": lambda s: K,
  "num_classes_b": lambda s: K,
  "mix": lazy(lambda s: jaxmix.sample_manifold(KEY, s.b, layers=1)),
  "i": lambda s: 0,
  "fn": lambda s: lambda key, x: x,
  "targets": multi_hot,
  "smoothing": lambda s: 0.1,
  "threshold": lambda s: 0.5,
  "loss_fn": lambda s: cross_entropy,
  "logits": lambda s: np.random.RandomState(7).normal(size=(s.b, K)).astype(np.float32),
  "attention": lambda s: np.random.RandomState(8).dirichlet(np.ones(16), s.b).astype(np.float32),  # 4 × 4
  # Restoration pairs: the LR input upsampled to the HR size, and the HR target.
  "lr": images,
  "hr": lambda s: images(s, seed=14),
}

# Arguments that differ for one function (or that exercise a path its defaults skip).
FLOW = lazy(lambda s: jaxmix.flow_mixup.sample_flow_mixup(KEY, s.b))
PUZZLE = {
  "saliency": lambda s: np.random.RandomState(15).uniform(size=(s.b, s.h, s.w)).astype(np.float32),
  "block_num": lambda s: 1,
  "neigh_size": lambda s: 1,
  "t_size": lambda s: 1,
}
SEQ = {"inputs": embeddings, "labels": class_ids, "num_classes": lambda s: K}
OVERRIDES: dict[Callable[..., Any], dict[str, Callable[[Size], Any]]] = {
  jaxmix.sequence.mixup: SEQ,
  jaxmix.sequence.mix_token_labels: {
    "plan": lazy(lambda s: jaxmix.sequence.sample_mixup(KEY, padding_mask(s))),
    "labels": lambda s: np.arange(s.b * T, dtype=np.int32).reshape(s.b, T) % K,
  },
  jaxmix.remix_lam: {"plan": lazy(lambda s: jaxmix.sample_mixup(KEY, s.b, mode="elem"))},
  jaxmix.mix_labels: {"plan": lazy(lambda s: jaxmix.sample_mixup(KEY, s.b, mode="elem"))},
  jaxmix.mix_batches: {"num_classes_a": VALID["num_classes_a"], "num_classes_b": VALID["num_classes_b"]},
  # Flow-Mixup: its plan, the batch it doubles into two flows, and hidden states of both flows [2B, ...].
  jaxmix.flow_mixup.flow_inputs: {"x": images, "mix": FLOW},
  jaxmix.flow_mixup.flow_targets: {"mix": FLOW},
  jaxmix.flow_mixup.flow_constraint: {
    "mix": FLOW,
    "states": lambda s: [np.concatenate([images(s), images(s, seed=6)])],
  },
  jaxmix.choose: {"mode": lambda s: "elem"},
  jaxmix.sample_choose: {"mode": lambda s: "elem"},
  jaxmix.mixup_cutmix: {"cutmix_alpha": lambda s: 1.0},
  # 1-pixel tokens: a token grid for every (H, W) the fuzzer draws; the teacher's map on them.
  jaxmix.guided.sample_tokenmix: {"patch_size": lambda s: 1},
  jaxmix.guided.tokenmix: {"patch_size": lambda s: 1},
  # SnapMix: a CAM per sample at a coarser grid; a feature map [B, h, w, C] and a classifier kernel [C, K].
  jaxmix.guided.snapmix: {"cam": lambda s: np.random.RandomState(10).uniform(size=(s.b, 2, 3)).astype("f4")},
  jaxmix.guided.snapmix_labels: {
    "plan": lazy(lambda s: jaxmix.guided.sample_snapmix(KEY, s.b, (s.h, s.w), mode="elem")),
    "cam": lambda s: np.random.RandomState(10).uniform(size=(s.b, 2, 3)).astype(np.float32),
  },
  jaxmix.guided.class_activation_map: {
    "features": lambda s: np.random.RandomState(11).normal(size=(s.b, 2, 3, D)).astype(np.float32),
    "kernel": lambda s: np.random.RandomState(12).normal(size=(D, K)).astype(np.float32),
  },
  jaxmix.guided.tokenmix_labels: {
    "activation": lambda s: np.random.RandomState(9).uniform(size=(s.b, s.h * s.w)).astype(np.float32),
    "token_grid": lambda s: (s.h, s.w),
  },
  # AlignMix: a plan that always aligns (point 1), the batch as the feature map; two sets of vectors.
  jaxmix.guided.alignmix_point: {
    "mix": lazy(lambda s: jaxmix.guided.sample_alignmix(KEY, s.b, layers=(1,), iterations=10)),
    "i": lambda s: 1,
  },
  # PuzzleMix: a map at the images' size and a 1 × 1 block grid (the fuzzed H, W are odd and small);
  # the sampler also gets the images, for its seam terms.
  jaxmix.guided.puzzlemix: PUZZLE,
  jaxmix.guided.sample_puzzlemix: {**PUZZLE, "images": images},
  jaxmix.guided.transport_plan: {"features_a": images, "features_b": lambda s: images(s, seed=13)},
  jaxmix.guided.sinkhorn_align: {"features_a": images, "features_b": lambda s: images(s, seed=13)},
  jaxmix.sample_mixup_cutmix: {"cutmix_alpha": lambda s: 1.0},
  # Explicit maps, so that the box does not move with the pixel values (the built-in map is
  # tested in test_saliencymix_built_in_map_keeps_nonfinite_pixels_in_place).
  jaxmix.saliencymix: {"saliency": VALID["saliency"]},
  # The box targets of a detection mix, compacted to fewer rows than they have.
  jaxmix.detection.compact_boxes: {
    "targets": lambda s: jaxmix.detection.BoxTargets(
      boxes(s), np.zeros((s.b, N), np.int32), np.ones((s.b, N), bool), np.ones((s.b, N), np.float32)
    ),
    "max_boxes": lambda s: 1,
  },
  # The partner cache: padded targets of the batch, and a cache (half full) shaped like it.
  jaxmix.detection.init_partner_cache: {
    "example_images": images,
    "example_targets": lambda s: box_targets(s),
    "size": lambda s: 3,
  },
  jaxmix.detection.draw_partners: {"cache": lambda s: a_cache(s), "targets": lambda s: box_targets(s)},
  jaxmix.detection.update_partner_cache: {"cache": lambda s: a_cache(s), "targets": lambda s: box_targets(s)},
  # CutBlur's own plan (not a two-source Plan), drawn for the pair's size.
  jaxmix.restoration.apply_cutblur: {
    "plan": lazy(lambda s: jaxmix.restoration.sample_cutblur(KEY, s.b, (s.h, s.w), mode="elem"))
  },
}
# Every registered method in per-sample mode where it has one (one box or mask per sample).
for _spec in jaxmix.SAMPLERS.values():
  for _fn in (_spec.sample, _spec.mix):
    if _fn is not None and "elem" in _spec.modes:
      OVERRIDES.setdefault(_fn, {}).setdefault("mode", lambda s: "elem")
# Optional arguments given anyway: labels are mixed by the one-call forms, and every sampler gets
# its (H, W).
WITH_LABELS = ("labels", "num_classes")
ALWAYS = ("spatial_shape",)
INPUT_NAMES = ("inputs", "images", "tree", "h", "lr")  # the batch a function mixes


def parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
  return {
    n: p for n, p in inspect.signature(fn).parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD
  }


def recipe(fn: Callable[..., Any]) -> dict[str, Callable[[Size], Any]]:
  """The builders of a valid call of `fn`: its required arguments, and the optional ones worth giving."""
  params = parameters(fn)
  own = OVERRIDES.get(fn, {})
  out = {}
  for name, p in params.items():
    given = (
      name in own
      or name in ALWAYS
      or p.default is inspect.Parameter.empty
      or (name in WITH_LABELS and "labels" in params and "key" in params)
    )
    if not given:
      continue
    if name not in own and name not in VALID:
      raise AssertionError(f"no valid value for argument {name!r} of {fn.__qualname__}: add one to VALID")
    out[name] = own.get(name, VALID.get(name))
  if "num_classes" in params and "labels" in out and "num_classes" not in out:
    out["num_classes"] = VALID["num_classes"]
  return out


def build(fn: Callable[..., Any], s: Size) -> dict[str, Any]:
  return {name: make(s) for name, make in recipe(fn).items()}


# Bad values.


@dataclasses.dataclass(frozen=True)
class Bad:
  """One bad value for an argument.

  kind: "value" (the argument becomes ``make(valid, draw)``), "resize" (every argument is rebuilt
  for a batch with ``Size.<var> = value``), "poison" (a NaN/inf in the inputs), "identity"
  (``prob=0``). expect: "error" (must raise naming the argument), "result" (must return),
  "either" (a named error or an empty result), "finite" (must return, every float finite).
  """

  label: str
  kind: str
  expect: str
  make: Callable[..., Any] | None = None
  var: str = ""
  value: int = 0
  received: str | None = None  # text the error must contain besides the argument's name


def scalar(value: Any, expect: str = "error") -> Bad:
  return Bad(repr(value), "value", expect, lambda valid, draw: value, received=repr(value))


def _out_of_range(bad_id: int) -> Callable[..., Any]:
  """Valid ids with one (drawn) replaced by `bad_id`, as a Python list, a NumPy or a jax array."""

  def make(valid, draw):
    values = np.array(valid, dtype=np.int64)
    values.flat[draw(st.integers(0, values.size - 1))] = bad_id
    container = draw(st.sampled_from(["list", "numpy", "jax"]))
    if container == "list":
      return values.tolist()
    if container == "jax":
      return jnp.asarray(values.astype(np.int32))
    return values

  return make


def _as_list(valid, draw):
  return np.asarray(valid).tolist()


def _drop_class_axis(valid, draw):
  return np.asarray(valid)[:, 0]  # [B]: class ids, not targets [B, K]


def _not_zero_or_one(valid, draw):
  """Targets with one (drawn) entry neither 0 nor 1: bad multi-hot rows, valid soft targets."""
  values = np.array(valid, dtype=np.float32)
  values.flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from([0.5, 2.0, np.nan, np.inf]))
  return values


def _one_hot_extra_axis(valid, draw):
  return np.eye(K, dtype=np.float32)[np.asarray(valid)][..., None]  # [B, K, 1] (or [B, T, K, 1])


def resize(var: str, value: int) -> Bad:
  return Bad(f"{var}={value}", "resize", "either", var=var, value=value)


EMPTY = [resize("b", 0), resize("h", 0), resize("w", 0)]
BAD: dict[str, list[Bad]] = {
  "batch_size": [scalar(-1), scalar(2.5), scalar(True), scalar("4"), scalar(None), resize("b", 0)],
  "prob": [Bad("0.0", "identity", "result")],
  "labels": [
    Bad("-1", "value", "error", _out_of_range(-1), received="-1"),
    Bad("K", "value", "error", _out_of_range(K), received=str(K)),
    Bad("2**31-1", "value", "error", _out_of_range(2**31 - 1), received=str(2**31 - 1)),
    Bad("list", "value", "result", _as_list),
    Bad("[B,K,1]", "value", "error", _one_hot_extra_axis),
  ],
  "num_classes": [scalar(True), scalar(0), scalar(-1), scalar(2.5), scalar("5")],
  "num_classes_a": [scalar(True), scalar(0)],
  "num_classes_b": [scalar(True), scalar(2.5)],
  "sigma_range": [Bad("(1e-30, 1e-30)", "value", "finite", lambda valid, draw: (1e-30, 1e-30))],
  "label_maps": [resize("b", 0), resize("h", 0)],
  "maps": [resize("b", 0), resize("h", 0)],
  "spatial_shape": [resize("h", 0), resize("w", 0)],
  "targets": [
    Bad("[B]", "value", "error", _drop_class_axis),
    Bad("not 0/1", "value", "result", _not_zero_or_one),
    resize("b", 0),
  ],
  "smoothing": [scalar(-0.1), scalar(1.5), scalar(float("nan"))],
  "threshold": [scalar(-0.1), scalar(1.5), scalar(float("nan"))],
  "loss_fn": [scalar(None)],
  **{name: [Bad("nan/inf", "poison", "result"), *EMPTY] for name in INPUT_NAMES},
}


# Where one function's contract differs from the argument's usual one: (argument, bad label) -> expect.
EXPECT: dict[Callable[..., Any], dict[tuple[str, str], str]] = {
  # label_pair has no num_classes: it passes every id through (mixed_loss's ignore_index, e.g. -100 or
  # 255, included), so ids outside [0, K) come back as they are; mixed_loss with num_classes refuses them.
  jaxmix.losses.label_pair: {("labels", label): "result" for label in ("-1", "K", "2**31-1")},
  # Multi-hot targets are 0/1 (a ValueError naming targets otherwise); threshold_targets takes soft ones.
  jaxmix.losses.smooth_multi_hot: {("targets", "not 0/1"): "error"},
  # C-Mixup's targets are regression targets: [B] is valid, as are [B, d]; the one-call form returns
  # them mixed, in their shape ("reshaped": must return, with shapes that follow the argument).
  jaxmix.regression.c_mixup: {("targets", "[B]"): "reshaped"},
  jaxmix.regression.sample_c_mixup: {("targets", "[B]"): "result"},
}


# Arguments that share a fuzzed name but are another thing: compact_boxes' targets are BoxTargets, not
# class targets (its own tests, tests/test_compact_boxes.py, give it bad input); so are the partner cache's
# (tests/test_partner_cache.py).
NOT_FUZZED: dict[Callable[..., Any], set[str]] = {
  jaxmix.detection.compact_boxes: {"targets"},
  jaxmix.detection.draw_partners: {"targets"},
  jaxmix.detection.update_partner_cache: {"targets"},
}


def fuzzable(fn: Callable[..., Any]) -> list[str]:
  return [name for name in parameters(fn) if name in BAD and name not in NOT_FUZZED.get(fn, set())]


CASES = [
  (fname, param, bad.label)
  for fname, fn in FUNCTIONS.items()
  for param in fuzzable(fn)
  for bad in BAD[param]
  # A resize needs the argument in the call (an optional one left out has nothing to resize).
  if bad.kind != "resize" or param in recipe(fn) or param == "batch_size"
  # A poisoned batch must be in the call.
  if bad.kind != "poison" or param in recipe(fn)
]


# Shapes.


def _call(fn: Callable[..., Any], args: dict[str, Any]) -> Any:
  return fn(**{n: v.make() if isinstance(v, Lazy) else v for n, v in args.items()})


@functools.cache
def shapes_at(fname: str, s: Size) -> Any:
  fn = FUNCTIONS[fname]
  args = build(fn, s)
  return jax.eval_shape(lambda: _call(fn, args))


def expected_shapes(fname: str, var: str, value: int) -> list[jax.ShapeDtypeStruct]:
  """The result's leaves when ``Size.<var>`` becomes `value`: every dimension extrapolated linearly
  from the shapes at BASE and at BASE with `var` one larger (B, 2B, H, W, 4N, ... all are linear).
  A list: static fields such as a plan's (H, W) change with the size."""
  base = jax.tree_util.tree_leaves(shapes_at(fname, BASE))
  plus = jax.tree_util.tree_leaves(shapes_at(fname, BASE._replace(**{var: getattr(BASE, var) + 1})))
  step = value - getattr(BASE, var)
  return [
    jax.ShapeDtypeStruct(
      tuple(d0 + (d1 - d0) * step for d0, d1 in zip(a.shape, b.shape, strict=True)), a.dtype
    )
    for a, b in zip(base, plus, strict=True)
  ]


def assert_same_shapes(got: Any, want: Any, where: str) -> None:
  """Leaves of the same shapes and dtypes; the same tree too unless `want` is a list of leaves."""
  if not isinstance(want, list):
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want), where
  got, want = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
  assert len(got) == len(want), f"{where}: {len(got)} leaves, want {len(want)}"
  for g, w in zip(got, want, strict=True):
    assert (g.shape, g.dtype) == (w.shape, w.dtype), (
      f"{where}: got {g.shape} {g.dtype}, want {w.shape} {w.dtype}"
    )


def assert_named_error(err: Exception, names: tuple[str, ...], received: str | None, where: str) -> None:
  message = str(err)
  assert isinstance(err, (ValueError, TypeError)), f"{where}: {type(err).__name__}: {message}"
  assert any(n in message for n in names), f"{where}: the error does not name {names}: {message}"
  if received is not None:
    assert received in message, f"{where}: the error does not say what it received ({received}): {message}"


# Compiled programs for the value checks: the mixed batch and prob are traced, the rest is constant.


def _input_name(fn: Callable[..., Any]) -> str | None:
  return next((n for n in INPUT_NAMES if n in parameters(fn)), None)


def _probe(fn: Callable[..., Any], s: Size) -> np.ndarray:
  """The batch a sampler's plan is applied to."""
  return embeddings(s) if fn is jaxmix.sequence.sample_mixup else images(s)


@functools.cache
def program(fname: str, extra: tuple[tuple[str, Any], ...] = ()) -> Callable[..., Any]:
  """jit of ``(x, prob) -> fn(...)``; for a sampler ``(plan, apply(plan, x))`` (apply skipped for plans
  that are not applied to inputs, e.g. Manifold Mixup's)."""
  fn = FUNCTIONS[fname]
  args = build(fn, BASE)
  args.update(dict(extra))
  name = _input_name(fn)
  has_prob = "prob" in parameters(fn)

  def run(x, prob):
    call = dict(args)
    if has_prob:
      call["prob"] = prob
    if name is not None:
      call[name] = x
      return _call(fn, call)
    plan = _call(fn, call)
    try:
      return plan, jaxmix.apply(plan, x)
    except TypeError:
      return plan, None

  return jax.jit(run)


def run_program(fname: str, x: np.ndarray, prob: float = 1.0, extra=()) -> Any:
  return jax.device_get(program(fname, tuple(extra))(x, jnp.float32(prob)))


def float_leaves(tree: Any) -> list[np.ndarray]:
  return [
    np.asarray(v) for v in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(np.asarray(v).dtype, np.floating)
  ]


def poisoned(x: np.ndarray, draw) -> tuple[np.ndarray, np.ndarray, int]:
  """(x with a NaN/inf, x changed by a large random amount at the same place, the sample): the
  second shows which outputs read the place (random, so that no output is blind to it, as
  saliency is to a constant shift)."""
  j = draw(st.integers(0, x.shape[0] - 1))
  value = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
  where = np.zeros(x.shape, bool)
  if draw(st.booleans()):
    where[j] = True  # the whole sample
  else:
    where[(j,) + tuple(draw(st.integers(0, d - 1)) for d in x.shape[1:])] = True  # one entry
  shift = 1000 + 100 * np.random.RandomState(7).uniform(size=x.shape)
  return np.where(where, value, x).astype(x.dtype), np.where(where, x + shift, x).astype(x.dtype), j


# Functions whose every output of a sample reads all of that sample (a saliency map is divided by
# its maximum, so its peak stays 1 under any change: the marker run cannot show that it reads it).
READS_WHOLE_SAMPLE = (jaxmix.spectral_residual_saliency,)


def bits_equal(a: Any, b: Any) -> bool:
  a, b = np.asarray(a), np.asarray(b)
  return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def check_nonfinite_stays(fname: str, draw) -> None:
  """A NaN/inf input reaches only the outputs that read it: an output the marker run leaves
  unchanged does not depend on it, so it must stay finite."""
  fn = FUNCTIONS[fname]
  x = _probe(fn, BASE) if _input_name(fn) is None else build(fn, BASE)[_input_name(fn)]
  bad, marker, j = poisoned(x, draw)
  kept = bad.copy()
  clean, marked, out = (run_program(fname, v) for v in (x, marker, bad))
  assert bits_equal(bad, kept), f"{fname} changed its input"
  for c, m, o in zip(float_leaves(clean), float_leaves(marked), float_leaves(out), strict=True):
    reads_it = (m != c) | ~np.isfinite(c)
    if fn in READS_WHOLE_SAMPLE:
      reads_it[j] = True
    leaked = ~np.isfinite(o) & ~reads_it
    assert not leaked.any(), f"{fname}: a NaN/inf spread to {leaked.sum()} outputs that do not read it"


def check_prob_zero_is_identity(fname: str, draw) -> None:
  """prob = 0 (traced): inputs back bit for bit (inf, -inf, NaN, -0.0 included), λ = 1, labels one-hot."""
  fn = FUNCTIONS[fname]
  name = _input_name(fn)
  args = build(fn, BASE)
  x = _probe(fn, BASE) if name is None else args[name]
  x, _, _ = poisoned(x, draw)
  x.flat[1] = -0.0
  out = run_program(fname, x, prob=0.0)
  arrays = [np.asarray(v) for v in jax.tree_util.tree_leaves(args) if isinstance(v, np.ndarray)]
  arrays.append(x)
  leaves = jax.tree_util.tree_leaves(out)
  reads_images = name is not None and hasattr(out, "lam")  # a sampler given the images (PuzzleMix's seams)
  if reads_images:
    out = (out, jaxmix.apply(out, x))
  if name is None or reads_images:
    plan, mixed = out
    assert np.all(np.asarray(plan.lam) == 1.0), f"{fname}: prob=0 gave λ {plan.lam}"
    if mixed is not None:
      assert bits_equal(mixed, x), f"{fname}: prob=0 changed the batch"
    return
  checked = False
  for leaf in leaves:
    leaf = np.asarray(leaf)
    same = [a for a in arrays if a.dtype == leaf.dtype and a.shape == leaf.shape]
    doubled = [a for a in arrays if a.dtype == leaf.dtype and (2 * a.shape[0],) + a.shape[1:] == leaf.shape]
    if same:
      assert any(bits_equal(leaf, a) for a in same), f"{fname}: prob=0 changed an input"
      checked = True
    elif doubled:  # RegMixup: [clean; mixed]
      half = leaf.shape[0] // 2
      assert any(bits_equal(leaf[:half], a) and bits_equal(leaf[half:], a) for a in doubled), fname
      checked = True
    elif "labels" in args and leaf.dtype == np.float32 and leaf.shape[-1] == K:
      ids = np.asarray(args["labels"])
      hot = np.eye(K, dtype=np.float32)[ids]
      assert np.array_equal(leaf, np.concatenate([hot] * (leaf.shape[0] // hot.shape[0]))), fname
  assert checked, f"{fname}: no output to compare with its input"


# The fuzz test.

SETTINGS = hypothesis.settings(
  max_examples=examples(4),
  derandomize=True,
  deadline=None,
  database=None,
  suppress_health_check=list(hypothesis.HealthCheck),
)


@pytest.mark.parametrize("fname,param,label", CASES, ids=[f"{f}-{p}-{b}" for f, p, b in CASES])
@SETTINGS
@hypothesis.given(data=st.data())
def test_fuzz(fname, param, label, data):
  fn = FUNCTIONS[fname]
  bad = next(b for b in BAD[param] if b.label == label)
  expect = EXPECT.get(fn, {}).get((param, label), bad.expect)
  where = f"{fname}({param}={label})"
  if bad.kind == "poison":
    check_nonfinite_stays(fname, data.draw)
    return
  if bad.kind == "identity":
    args = build(fn, BASE)
    args[param] = 0.0  # static: checked at trace time, then the traced value is run
    assert_same_shapes(jax.eval_shape(lambda: _call(fn, args)), shapes_at(fname, BASE), where)
    # A registered sampler's plan is run (and checked) by its one-call form; one compile saved.
    if not any(fn is spec.sample and spec.mix is not None for spec in jaxmix.SAMPLERS.values()):
      check_prob_zero_is_identity(fname, data.draw)
    return
  if bad.kind == "resize":
    size = BASE._replace(**{bad.var: bad.value})
    try:
      args = build(fn, size)
      jax.eval_shape(lambda: [v.make() for v in args.values() if isinstance(v, Lazy)])
    except (ValueError, TypeError):
      return  # another public function (a plan's sampler) refused the size: tested on its own
    names = (param,) + tuple(n for n, v in args.items() if np.ndim(v) > 0 or isinstance(v, tuple))
    want = expected_shapes(fname, bad.var, bad.value)
  else:
    args = build(fn, BASE)
    args[param] = bad.make(args.get(param), data.draw)
    names = (param,)
    want = shapes_at(fname, BASE)
  kept = {n: np.array(v, copy=True) for n, v in args.items() if isinstance(v, np.ndarray)}
  try:
    got = jax.eval_shape(lambda: _call(fn, args))
  except Exception as err:  # noqa: BLE001 - the test is about which exceptions come out
    if expect in ("result", "reshaped", "finite"):
      raise AssertionError(f"{where} must return a result, raised {type(err).__name__}: {err}") from err
    assert_named_error(err, names, bad.received, where)
    return
  assert expect != "error", f"{where} must raise a ValueError/TypeError naming {param}, returned {got}"
  if expect != "reshaped":
    assert_same_shapes(got, want, where)
  for n, v in kept.items():
    assert bits_equal(args[n], v), f"{where} changed its argument {n}"
  if expect == "finite":
    extra = ((param, args[param]),)
    out = run_program(
      fname, _probe(fn, BASE) if _input_name(fn) is None else args[_input_name(fn)], extra=extra
    )
    assert all(np.isfinite(v).all() for v in float_leaves(out)), f"{where} gave a NaN/inf from finite input"


def test_every_public_function_is_enumerated_and_buildable():
  """New functions are fuzzed with no new test code: each has a valid call built from VALID."""
  fuzzed = {fname for fname, _, _ in CASES}
  for fname, fn in FUNCTIONS.items():
    if fuzzable(fn):
      assert fname in fuzzed, fname
      jax.eval_shape(lambda fn=fn: _call(fn, build(fn, BASE)))  # the valid call is valid
  assert len(FUNCTIONS) >= 50 and len(CASES) >= 200, (len(FUNCTIONS), len(CASES))
  assert all(spec.sample in FUNCTIONS.values() for spec in jaxmix.SAMPLERS.values())


# The value findings of issue 22 item 3, one test each, with fixed draws (and the fuzz test's
# compiled programs).


def fixed(*values: Any) -> Callable[[Any], Any]:
  """A `draw` that returns `values` in order: a chosen case of the fuzz test's checks."""
  it = iter(values)
  return lambda strategy: next(it)


ONE_CALLS = [f"SAMPLERS[{n}].mix" for n, spec in jaxmix.SAMPLERS.items() if spec.mix is not None]
OTHERS_WITH_PROB = [
  "jaxmix.choose",
  "jaxmix.regmixup",
  "jaxmix.audio_mixup",
  "jaxmix.sequence.mixup",
  "jaxmix.segmentation.classmix",
  "jaxmix.detection.mixup",
  "jaxmix.detection.cutmix",
  "jaxmix.detection.mosaic",
]


@pytest.mark.parametrize("fname", ONE_CALLS + OTHERS_WITH_PROB)
def test_prob_zero_is_the_identity(fname):
  """Before, prob = 0 blended with weight 1 and 0: an inf pixel of the partner gave 0 · inf = NaN
  (every blending method), and sequence MixUp copied the partner's tokens into padding."""
  check_prob_zero_is_identity(fname, fixed(1, np.inf, True))  # sample 1 all inf, then -0.0, NaN below
  check_prob_zero_is_identity(fname, fixed(2, -np.inf, False, 1, 1, 0))
  check_prob_zero_is_identity(fname, fixed(0, np.nan, True))


def test_integer_leaves_are_unchanged_with_prob_zero():
  """uint8 under a blending plan, int32 near 2**31 under a selecting one: bit for bit."""
  x = np.random.RandomState(0).randint(0, 256, images(BASE).shape).astype(np.uint8)
  assert bits_equal(run_program("SAMPLERS[mixup].mix", x, prob=0.0)[0], x)
  x = (2**31 - 1 - np.arange(x.size, dtype=np.int64).reshape(x.shape) % 300).astype(np.int32)
  assert bits_equal(run_program("SAMPLERS[cutmix].mix", x, prob=0.0)[0], x)


@pytest.mark.parametrize(
  "fname",
  [f"SAMPLERS[{n}].mix" for n in ("cutmix", "fmix", "gridmix", "attentive_cutmix", "specmix", "resizemix")]
  + ["SAMPLERS[mixup_cutmix].mix", "jaxmix.choose", "jaxmix.segmentation.classmix", "jaxmix.apply"],
)
def test_a_nonfinite_pixel_reaches_only_the_outputs_that_copy_it(fname):
  """Under selecting plans an output pixel copies one source; a NaN/inf elsewhere must not reach it.
  CutMix, FMix, GridMix, Attentive CutMix, SpecMix, ResizeMix and ClassMix select; timm's switch
  in elem mode (MixUp or CutMix per sample), choose(mixup, cutmix) and jaxmix.apply with such a
  plan used to blend with weight 1 and 0 there, so the NaN spread (0 · NaN)."""
  for j, value in ((0, np.nan), (3, np.inf), (1, -np.inf)):
    check_nonfinite_stays(fname, fixed(j, value, True))


def test_saliencymix_built_in_map_keeps_nonfinite_pixels_in_place():
  """The built-in map is computed from the pixels, so a NaN image has a NaN map: its partner's box
  moves, but no other sample reads it."""
  x = images(BASE)
  x[0] = np.nan
  out, y = jax.jit(lambda x: jaxmix.saliencymix(KEY, x, class_ids(BASE), num_classes=K))(x)
  assert np.isfinite(np.asarray(out)[1:-1]).all() and np.isfinite(np.asarray(y)).all()  # flip: 0 <-> B-1


@pytest.mark.parametrize("fname", ["SAMPLERS[smoothmix].mix", "SAMPLERS[smoothmix].sample"])
def test_smoothmix_tiny_sigma_is_finite(fname):
  """Before, σ = 1e-30 underflowed 2σ² to 0 and the blob's centre became 0 / 0 = NaN."""
  fn = FUNCTIONS[fname]
  x = _probe(fn, BASE) if _input_name(fn) is None else build(fn, BASE)[_input_name(fn)]
  out = run_program(fname, x, extra=(("sigma_range", (1e-30, 1e-30)),))
  assert all(np.isfinite(v).all() for v in float_leaves(out))


def test_sequence_mixup_leaves_unmixed_samples_unchanged():
  """An unmixed sample (λ = 1) took its partner's tokens where it was padded; now its tokens,
  mask and labels come back as they were."""
  emb, mask = embeddings(BASE), padding_mask(BASE)
  out, out_mask, y = run_program("jaxmix.sequence.mixup", emb, prob=0.0)
  assert bits_equal(out, emb) and bits_equal(out_mask, mask)
  np.testing.assert_array_equal(y, np.eye(K, dtype=np.float32)[class_ids(BASE)])
  # Mixed ones still take the union of the masks.
  _, out_mask, _ = run_program("jaxmix.sequence.mixup", emb, prob=1.0)
  assert (np.asarray(out_mask) >= mask).all() and (np.asarray(out_mask) != mask).any()
