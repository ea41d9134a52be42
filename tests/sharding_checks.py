"""Sharding checks on 8 simulated CPU devices, run by tests/test_sharding.py in a subprocess.

The device count must be set before jax is imported, so this runs as its own
process and prints one JSON line ``{check: {"ok": bool, "info": str}}``; the
pytest module asserts each entry. Run by hand with::

  PYTHONPATH=. python tests/sharding_checks.py
"""

from __future__ import annotations

import os

# 8 CPU devices; LLVM's cheap settings, since these checks are compile-bound (the HLO passes,
# SPMD partitioning included, run as usual).
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "")
  + " --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
)

import functools  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from core_helpers import exercise_options  # noqa: E402
from core_helpers import required_data  # noqa: E402
from jax.sharding import AxisType  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import jaxmix  # noqa: E402

COLLECTIVES = ("all-gather", "all-to-all", "collective-permute", "all-reduce", "reduce-scatter")
NUM_CLASSES = 5
B, H, W, C = 16, 8, 8, 3
RESULTS: dict[str, dict[str, object]] = {}


CHECKS = {}


def check(fn):
  """Registers a check; `run` records its outcome under its name."""
  CHECKS[fn.__name__] = fn
  return fn


def run(fn):
  """Records fn's outcome: ok, or the assertion / error text, and its wall time."""
  start = time.perf_counter()
  try:
    info = fn()
    RESULTS[fn.__name__] = {"ok": True, "info": info or ""}
  except Exception as e:  # noqa: BLE001 - every failure is reported to pytest
    RESULTS[fn.__name__] = {"ok": False, "info": f"{type(e).__name__}: {e}\n{traceback.format_exc()[-2000:]}"}
  RESULTS[fn.__name__]["seconds"] = round(time.perf_counter() - start, 2)


def collectives(hlo: str) -> dict[str, list[str]]:
  """Collective ops in compiled HLO text, each with its result shape (layouts dropped).

  Matches the op name wherever it is applied (``all-reduce(``, ``all-gather-start(``), so
  tuple-shaped results of combined collectives count too.
  """
  found: dict[str, list[str]] = {}
  op = re.compile(r"(?<![\w.-])(" + "|".join(COLLECTIVES) + r")(-start)?\(")
  for line in hlo.splitlines():
    m = op.search(line)
    if m and " = " in line[: m.start()]:
      shape = line[: m.start()].split(" = ", 1)[1].strip()
      found.setdefault(m.group(1), []).append(re.sub(r"\{[^}]*\}", "", shape))
  return found


# The two-source one-call methods whose every pairing is checked (ROTATIONS); every registered method,
# whatever its plan, is checked by `local_every_registered_method` from jaxmix.SAMPLERS.
PAIRING_METHODS = ("mixup", "cutmix", "mixup_cutmix", "fmix")


def methods():
  """The one-call methods of PAIRING_METHODS, from the registry."""
  return {
    name: functools.partial(jaxmix.SAMPLERS[name].mix, **exercise_options(name, (H, W)))
    for name in PAIRING_METHODS
  }


def every_registered_method(key, inputs, labels, mode="batch"):
  """Every method of jaxmix.SAMPLERS through the plan layer, on one batch: {name: (mixed, soft labels)}.

  `inputs` is {"x": images, option: data, ...}, so that the data a sampler needs (SaliencyMix's
  saliency, Attentive CutMix's features) is sharded with the images.
  """
  x = inputs["x"]
  out = {}
  for name, spec in jaxmix.SAMPLERS.items():
    opts = {o: inputs[o] for o in spec.requires} | exercise_options(name, (H, W))
    if spec.modes:
      opts["mode"] = mode if mode in spec.modes else spec.modes[0]
    plan = spec.sample(key, x.shape[0], (H, W), **opts)
    out[name] = (jaxmix.apply(plan, x), jaxmix.mix_labels(plan, labels, num_classes=NUM_CLASSES))
  return out


def data():
  x = jax.random.normal(jax.random.key(1), (B, H, W, C))
  y = jax.random.randint(jax.random.key(2), (B,), 0, NUM_CLASSES)
  return x, y


def put(mesh, spec, *arrays):
  return tuple(jax.device_put(a, NamedSharding(mesh, spec)) for a in arrays)


MESH = jax.make_mesh((8,), ("data",))  # jax's default: Explicit axes
AUTO_MESH = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
KEY = jax.random.key(0)


def methods_with(pairings):
  """One function running every method on the same batch, each with its own pairing.

  `pairings` maps method name to pairing; one compiled program then covers
  several (method, pairing) cases, which keeps this script fast.
  """

  def run(key, inputs, labels, **kw):
    out = {}
    for name, fn in methods().items():
      out[name] = fn(key, inputs, labels, num_classes=NUM_CLASSES, pairing=pairings[name], **kw)
    return out

  return run


ROTATIONS = [  # over these, every method meets every pairing; the first two cover flip and roll
  {"mixup": "flip", "cutmix": "roll", "mixup_cutmix": "permute", "fmix": "flip", "apply": "roll"},
  {"mixup": "roll", "cutmix": "flip", "mixup_cutmix": "flip", "fmix": "roll", "apply": "permute"},
  {"mixup": "permute", "cutmix": "permute", "mixup_cutmix": "roll", "fmix": "permute", "apply": "flip"},
]


def with_apply(pairings, mode):
  """methods_with(...) plus sample_cutmix + apply + mix_labels, the two-layer path."""
  run_methods = methods_with(pairings)

  def run(key, x, y):
    out = run_methods(key, x, y, mode=mode)
    plan = jaxmix.sample_cutmix(key, x.shape[0], (H, W), pairing=pairings["apply"], mode=mode)
    out["apply"] = (jaxmix.apply(plan, x), jaxmix.mix_labels(plan, y, num_classes=NUM_CLASSES))
    return out

  return jax.jit(run)


def assert_close(got, want, what):
  got_flat, got_tree = jax.tree_util.tree_flatten_with_path(got)
  want_flat, want_tree = jax.tree_util.tree_flatten(want)
  assert got_tree == want_tree, f"{what}: structure {got_tree} vs {want_tree}"
  for (path, g), w in zip(got_flat, want_flat, strict=True):
    err = float(jnp.max(jnp.abs(jnp.asarray(g) - jnp.asarray(w))))
    assert err <= 1e-5, f"{what}{jax.tree_util.keystr(path)}: max |diff| {err}"


# --- global mode: plain jit on sharded inputs ------------------------------------------------------


def _global_equals_one_device(mesh, pairings, mode="elem"):
  x, y = data()
  xs, ys = put(mesh, P("data"), x, y)
  f = with_apply(pairings, mode)
  got, want = f(KEY, xs, ys), f(KEY, x, y)
  assert_close(got, want, f"global {pairings}")
  for name, (mixed, _) in got.items():
    assert mixed.sharding.is_equivalent_to(xs.sharding, 4), f"{name}: output sharding {mixed.sharding}"


@check
def global_equals_one_device_auto_mesh():
  _global_equals_one_device(AUTO_MESH, ROTATIONS[0])


@check
def global_equals_one_device_explicit_mesh_flip():
  x, y = data()
  xs, ys = put(MESH, P("data"), x, y)
  f = jax.jit(functools.partial(jaxmix.cutmix, num_classes=NUM_CLASSES, mode="elem"))
  got, want = f(KEY, xs, ys), f(KEY, x, y)
  assert_close(got, want, "global explicit mesh")
  assert got[0].sharding.is_equivalent_to(xs.sharding, 4), got[0].sharding


@check
def global_equals_one_device_explicit_mesh_roll_permute():
  for pairing in ("roll", "permute"):
    _global_equals_one_device(MESH, dict.fromkeys(ROTATIONS[0], pairing))


@check
def global_hlo_has_collectives():
  """The plain global mode moves data: flip permutes whole shards, permute all-gathers the batch."""
  xs = jax.ShapeDtypeStruct((B, H, W, C), jnp.float32, sharding=NamedSharding(AUTO_MESH, P("data")))
  ys = jax.ShapeDtypeStruct((B,), jnp.int32, sharding=NamedSharding(AUTO_MESH, P("data")))
  seen = {}
  for pairing in ("flip", "roll", "permute"):
    f = jax.jit(lambda k, x, y, p=pairing: jaxmix.mixup(k, x, y, num_classes=NUM_CLASSES, pairing=p))
    seen[pairing] = collectives(f.lower(KEY, xs, ys).compile().as_text())
  shard = f"f32[{B // 8},{H},{W},{C}]"
  assert shard in seen["flip"].get("collective-permute", []), seen["flip"]
  assert f"f32[1,{H},{W},{C}]" in seen["roll"].get("collective-permute", []), seen["roll"]
  assert f"f32[{B},{H},{W},{C}]" in seen["permute"].get("all-gather", []), seen["permute"]
  return json.dumps(seen)


# --- local mode --------------------------------------------------------------------------------------


def _per_shard_reference(fn, key, x, y, fold, n=8, **kw):
  """fn run on each shard separately (vmapped over shards), key folded with the shard index."""
  split = lambda a: a.reshape((n, -1) + a.shape[1:])
  join = lambda a: a.reshape((-1,) + a.shape[2:])

  def one(d, xd, yd):
    return fn(jax.random.fold_in(key, d) if fold else key, xd, yd, **kw)

  out = jax.vmap(one)(jnp.arange(n), jax.tree_util.tree_map(split, x), jax.tree_util.tree_map(split, y))
  return jax.tree_util.tree_map(join, out)


def _local_equals_per_shard(randomness, mode, fold, pairings):
  """local(fn) == fn on each shard with the (folded) key; no collectives; sharding and label mass kept."""
  x, y = data()
  xs, ys = put(MESH, P("data"), x, y)
  fn = methods_with(pairings)
  g = jax.jit(functools.partial(jaxmix.sharding.local(fn, MESH, "data", randomness=randomness), mode=mode))
  compiled = g.lower(KEY, xs, ys).compile()
  found = collectives(compiled.as_text())
  assert not found, f"collectives in local mode ({pairings}, {mode}): {found}"
  got = compiled(KEY, xs, ys)
  want = _per_shard_reference(fn, KEY, x, y, fold, mode=mode)
  assert_close(got, want, f"{pairings}/{mode}/{randomness}")
  for name, (mixed, targets) in got.items():
    assert mixed.sharding.is_equivalent_to(xs.sharding, 4), f"{name}: {mixed.sharding} vs {xs.sharding}"
    assert targets.sharding.is_equivalent_to(ys.sharding, 2), f"{name}: {targets.sharding}"
    np.testing.assert_allclose(np.asarray(targets).sum(-1), 1.0, atol=1e-5, err_msg=f"{name} label mass")
    if mode in ("batch", "pair"):  # λ shared within each pair: class mass over the batch is conserved
      np.testing.assert_allclose(
        np.asarray(targets).sum(0),
        np.asarray(jax.nn.one_hot(y, NUM_CLASSES)).sum(0),
        atol=1e-4,
        err_msg=f"{name}/{pairings[name]}/{mode} class mass",
      )
  return f"{sorted(got)}: no collectives, equal per shard"


@check
def local_shared_batch():
  return _local_equals_per_shard("shared", "batch", False, ROTATIONS[0])


@check
def local_independent_batch():
  return _local_equals_per_shard("independent", "batch", True, ROTATIONS[1])


@check
def local_shared_elem_folds_key():
  return _local_equals_per_shard("shared", "elem", True, ROTATIONS[2])


@check
def local_shared_pair_folds_key():
  return _local_equals_per_shard(
    "shared", "pair", True, {k: "flip" if k != "cutmix" else "permute" for k in ROTATIONS[0]}
  )


@check
def local_every_registered_method():
  """Every method of jaxmix.SAMPLERS (spatial or not, any plan type), in one compiled program:
  local(fn) == fn on each shard; no collectives; sharding kept; each row's label mass 1."""
  x, y = data()
  inputs = {"x": x} | {
    o: required_data(o, B, (H, W)) for spec in jaxmix.SAMPLERS.values() for o in spec.requires
  }
  shard = lambda a: jax.device_put(a, NamedSharding(MESH, P("data")))  # noqa: E731
  inputs_s, ys = jax.tree_util.tree_map(shard, inputs), shard(y)
  g = jax.jit(jaxmix.sharding.local(every_registered_method, MESH, "data"))
  compiled = g.lower(KEY, inputs_s, ys).compile()
  found = collectives(compiled.as_text())
  assert not found, f"collectives in local mode: {found}"
  got = compiled(KEY, inputs_s, ys)
  assert sorted(got) == sorted(jaxmix.SAMPLERS), sorted(got)
  reference = functools.partial(_per_shard_reference, every_registered_method, fold=False)
  want = jax.jit(reference)(KEY, inputs, y)
  assert_close(got, want, "registry")
  for name, (mixed, targets) in got.items():
    assert mixed.sharding.is_equivalent_to(inputs_s["x"].sharding, 4), f"{name}: {mixed.sharding}"
    assert targets.sharding.is_equivalent_to(ys.sharding, 2), f"{name}: {targets.sharding}"
    np.testing.assert_allclose(np.asarray(targets).sum(-1), 1.0, atol=1e-5, err_msg=f"{name} label mass")
  return f"{sorted(got)}: no collectives, equal per shard"


def _trace_in_user_shard_map(names):
  """Each method traces inside the user's own shard_map (check_vma on) with local_key."""
  xs = jax.ShapeDtypeStruct((B, H, W, C), jnp.float32, sharding=NamedSharding(MESH, P("data")))
  ys = jax.ShapeDtypeStruct((B,), jnp.int32, sharding=NamedSharding(MESH, P("data")))
  failed = {}
  for name in names:
    fn = methods()[name]
    for mode in ("batch", "elem"):

      def step(key, x, y, fn=fn, mode=mode):
        return fn(jaxmix.sharding.local_key(key, "data"), x, y, num_classes=NUM_CLASSES, mode=mode)

      mapped = jax.shard_map(step, mesh=MESH, in_specs=(P(), P("data"), P("data")), out_specs=P("data"))
      try:
        jax.jit(mapped).trace(KEY, xs, ys)
      except Exception as e:  # noqa: BLE001
        failed[f"{name}/{mode}"] = f"{type(e).__name__}: {str(e)[:300]}"
  assert not failed, failed


@check
def core_methods_trace_in_user_shard_map():
  _trace_in_user_shard_map(["mixup", "cutmix", "mixup_cutmix"])


@check
def fmix_traces_in_user_shard_map():
  _trace_in_user_shard_map(["fmix"])


@check
def local_shared_batch_has_one_lambda():
  """Shared batch mode: every shard reports the same λ; independent: they differ."""
  x, _ = data()
  (xs,) = put(MESH, P("data"), x)
  lams = {}
  for randomness in ("shared", "independent"):

    def lam_of(key, inputs, labels, mode="batch"):
      plan = jaxmix.sample_mixup(key, inputs.shape[0], mode=mode)
      return plan.lam, None

    g = jaxmix.sharding.local(lam_of, MESH, "data", randomness=randomness)
    lams[randomness] = np.asarray(jax.jit(g)(KEY, xs, None)[0])
  assert np.unique(lams["shared"]).size == 1, lams["shared"]
  assert np.unique(lams["independent"]).size == 8, lams["independent"]


@check
def local_labels_none_and_float_labels():
  x, y = data()
  soft = jax.nn.one_hot(y, NUM_CLASSES) * 0.9 + 0.02
  xs, ys = put(MESH, P("data"), x, soft)
  g = jaxmix.sharding.local(jaxmix.cutmix, MESH, "data")
  (mixed, targets), (mixed2, targets2) = jax.jit(lambda k, a, b: (g(k, a, None), g(k, a, b)))(KEY, xs, ys)
  assert targets is None
  assert_close(mixed, mixed2, "labels=None vs float labels")
  np.testing.assert_allclose(np.asarray(targets2).sum(-1), np.asarray(soft).sum(-1), atol=1e-5)


@check
def local_pytree_and_uint8():
  x, y = data()
  img = jnp.clip(x * 60 + 128, 0, 255).astype(jnp.uint8)
  seg = (y[:, None, None] * jnp.ones((B, H, W), jnp.int32)).astype(jnp.int32)
  imgs, segs, ys = put(MESH, P("data"), img, seg, y)
  g = jaxmix.sharding.local(jaxmix.cutmix, MESH, "data")
  (mi, ms), _ = jax.jit(functools.partial(g, num_classes=NUM_CLASSES))(KEY, (imgs, segs), ys)
  assert mi.dtype == jnp.uint8 and ms.dtype == jnp.int32
  assert mi.sharding.is_equivalent_to(imgs.sharding, 4) and ms.sharding.is_equivalent_to(segs.sharding, 3)
  (ri, rs), _ = _per_shard_reference(jaxmix.cutmix, KEY, (img, seg), y, False, num_classes=NUM_CLASSES)
  np.testing.assert_array_equal(np.asarray(mi), np.asarray(ri))
  np.testing.assert_array_equal(np.asarray(ms), np.asarray(rs))


@check
def local_traced_alpha_no_retrace():
  x, y = data()
  xs, ys = put(MESH, P("data"), x, y)
  traces = []

  def counted(key, inputs, labels, mode="batch", **kw):
    traces.append(1)
    return jaxmix.mixup(key, inputs, labels, mode=mode, **kw)

  g = jaxmix.sharding.local(counted, MESH, "data")
  f = jax.jit(lambda k, a, b, alpha: g(k, a, b, alpha=alpha, num_classes=NUM_CLASSES))
  out1 = f(KEY, xs, ys, jnp.float32(0.2))
  out2 = f(KEY, xs, ys, jnp.float32(2.0))
  assert len(traces) == 1, f"traced {len(traces)} times"
  assert not np.allclose(out1[1], out2[1]), "alpha had no effect"
  ref = _per_shard_reference(jaxmix.mixup, KEY, x, y, False, alpha=2.0, num_classes=NUM_CLASSES)
  assert_close(out2, ref, "traced alpha")


@check
def local_2d_mesh_model_peers_agree():
  """Only "data" splits the batch; peers along "model" hold the same shard and must mix it the same way."""
  mesh = jax.make_mesh((4, 2), ("data", "model"))
  x, y = data()
  xs, ys = put(mesh, P("data"), x, y)
  g = jaxmix.sharding.local(jaxmix.cutmix, mesh, "data", randomness="independent")
  compiled = jax.jit(functools.partial(g, num_classes=NUM_CLASSES)).lower(KEY, xs, ys).compile()
  found = collectives(compiled.as_text())
  assert not found, found
  mixed, targets = compiled(KEY, xs, ys)
  assert mixed.sharding.is_equivalent_to(xs.sharding, 4), mixed.sharding
  by_rows = {}
  for shard in mixed.addressable_shards:
    by_rows.setdefault(shard.index[0].start, []).append(np.asarray(shard.data))
  assert len(by_rows) == 4 and all(len(v) == 2 for v in by_rows.values()), by_rows.keys()
  for rows, copies in by_rows.items():
    np.testing.assert_array_equal(copies[0], copies[1], err_msg=f"model peers differ at rows {rows}")
  ref = _per_shard_reference(jaxmix.cutmix, KEY, x, y, True, n=4, num_classes=NUM_CLASSES)
  assert_close((mixed, targets), ref, "2-D mesh")


@check
def local_2d_mesh_batch_over_both_axes():
  mesh = jax.make_mesh((4, 2), ("data", "model"))
  x, y = data()
  xs, ys = put(mesh, P(("data", "model")), x, y)
  g = jaxmix.sharding.local(jaxmix.mixup, mesh, ("data", "model"), randomness="independent")
  mixed, targets = jax.jit(functools.partial(g, num_classes=NUM_CLASSES))(KEY, xs, ys)
  ref = _per_shard_reference(jaxmix.mixup, KEY, x, y, True, num_classes=NUM_CLASSES)
  assert_close((mixed, targets), ref, "batch over (data, model)")
  assert mixed.sharding.is_equivalent_to(xs.sharding, 4)


@check
def local_uses_context_mesh():
  x = jax.random.normal(KEY, (B, 5))
  (xs,) = put(MESH, P("data"), x)
  with jax.set_mesh(MESH):
    got, _ = jax.jit(jaxmix.sharding.local(jaxmix.mixup, None, "data"))(KEY, xs)
  want, _ = _per_shard_reference(jaxmix.mixup, KEY, x, None, False)
  assert_close(got, want, "context mesh")


@check
def local_rejects_uneven_batch():
  x = jnp.zeros((12, H, W, C))
  try:
    jaxmix.sharding.local(jaxmix.mixup, MESH, "data")(KEY, x, None)
  except ValueError as e:
    assert "12" in str(e) and "8" in str(e), str(e)
    return str(e)
  raise AssertionError("no ValueError for a batch of 12 over 8 devices")


# --- the README recipe: a Flax train_step over a mesh with local mixing ---------------------------------


@check
def flax_train_step_with_local_mixing():
  import optax
  from flax import linen as nn
  from flax.training import train_state

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.relu(nn.Conv(4, (3, 3))(x))
      return nn.Dense(NUM_CLASSES)(x.mean((1, 2)))

  mesh = jax.make_mesh((8,), ("data",))
  data_sharding = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  mix = jaxmix.sharding.local(jaxmix.mixup_cutmix, mesh, "data")

  model = Net()
  params = model.init(jax.random.key(0), jnp.zeros((1, H, W, C)))
  state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.sgd(0.1))
  state = jax.device_put(state, replicated)

  @jax.jit
  def train_step(state, key, images, labels):
    images, targets = mix(key, images, labels, mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=NUM_CLASSES)

    def loss_fn(params):
      logits = state.apply_fn(params, images)
      return optax.softmax_cross_entropy(logits, targets).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss

  x, y = data()
  images, labels = put(mesh, P("data"), x, y)
  assert images.sharding == data_sharding
  step_key = jax.random.fold_in(jax.random.key(42), 0)
  compiled = train_step.lower(state, step_key, images, labels).compile()
  found = collectives(compiled.as_text())
  assert set(found) <= {"all-reduce"}, f"the step should only all-reduce gradients: {found}"
  new_state, loss = compiled(state, step_key, images, labels)
  assert np.isfinite(float(loss)), loss
  moved = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), new_state.params, state.params)
  assert max(jax.tree_util.tree_leaves(moved)) > 0, "parameters did not change"
  return f"loss {float(loss):.4f}; collectives {found}"


if __name__ == "__main__":
  # usage: sharding_checks.py [--list | NAME ...]; no names runs every check.
  if sys.argv[1:] == ["--list"]:
    print(json.dumps(sorted(CHECKS)))
    sys.exit(0)
  assert jax.device_count() == 8, jax.devices()
  unknown = set(sys.argv[1:]) - set(CHECKS)
  if unknown:
    sys.exit(f"unknown checks: {sorted(unknown)}")
  for name in sys.argv[1:] or CHECKS:
    run(CHECKS[name])
  print(json.dumps(RESULTS))
