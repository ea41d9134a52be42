"""Tests for jaxmix.sharding.local / jaxmix.sharding.local_key and for mixing sharded batches.

The multi-device checks need 8 simulated CPU devices, which must be requested
before jax is imported, so they run in a subprocess (tests/sharding_checks.py)
and this process stays on its usual devices. The checks below that need no
second device run here directly.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxmix

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "sharding_checks.py"
# The core checks; about a minute of CPU in all, mostly compiling for 8 devices.
FAST = [
  "local_shared_batch",  # no collectives, == per shard, sharding kept, label mass: all methods
  "local_independent_batch",  # the same with folded keys; with the above, flip and roll for every method
  "local_every_registered_method",  # the same for every method of jaxmix.SAMPLERS, one program
  "local_2d_mesh_model_peers_agree",
  "global_hlo_has_collectives",
  "core_methods_trace_in_user_shard_map",
  "local_traced_alpha_no_retrace",
  "local_rejects_uneven_batch",
  "flax_train_step_with_local_mixing",  # the README recipe
]
SLOW = [
  "global_equals_one_device_auto_mesh",
  "global_equals_one_device_explicit_mesh_flip",
  "global_equals_one_device_explicit_mesh_roll_permute",
  "local_shared_elem_folds_key",
  "local_shared_pair_folds_key",
  "local_shared_batch_has_one_lambda",
  "local_labels_none_and_float_labels",
  "local_pytree_and_uint8",
  "local_2d_mesh_batch_over_both_axes",
  "local_uses_context_mesh",
  "fmix_traces_in_user_shard_map",
]


def _run_checks(*args: str) -> dict:
  """Runs tests/sharding_checks.py in its own process (8 CPU devices there, not here)."""
  env = dict(os.environ)
  env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run(
    [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=1800, cwd=ROOT
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_all_ok(results: dict, names: list[str]) -> None:
  failed = {name: results[name]["info"] for name in names if not results[name]["ok"]}
  assert not failed, "failed on 8 devices: " + json.dumps(failed, indent=1)


def test_every_check_is_listed():
  assert sorted(_run_checks("--list")) == sorted(FAST + SLOW)


# One test per subprocess: a parametrized test with a module-scoped fixture would run the subprocess
# (most of a minute of compiling) once on each xdist worker. The message lists every failed check.
def test_on_8_devices():
  _assert_all_ok(_run_checks(*FAST), FAST)


@pytest.mark.slow
def test_on_8_devices_more():
  _assert_all_ok(_run_checks(*SLOW), SLOW)


# --- in this process (one device is enough) -------------------------------------------------------------


def _one_device_mesh():
  return jax.make_mesh((1,), ("data",))


@pytest.mark.parametrize("randomness", ["shared", "independent"])
def test_single_device_mesh_matches_fn(randomness):
  mesh = _one_device_mesh()
  x = jax.random.normal(jax.random.key(1), (4, 6, 6, 3))
  y = jnp.arange(4) % 3
  xs = jax.device_put(x, NamedSharding(mesh, P("data")))
  key = jax.random.key(7)
  wrapped = jaxmix.sharding.local(jaxmix.cutmix, mesh, "data", randomness=randomness)
  got = jax.jit(functools.partial(wrapped, num_classes=3))(key, xs, y)
  used = key if randomness == "shared" else jax.random.fold_in(key, 0)
  want = jax.jit(functools.partial(jaxmix.cutmix, num_classes=3))(used, x, y)
  np.testing.assert_allclose(got[0], want[0], atol=1e-6)
  np.testing.assert_allclose(got[1], want[1], atol=1e-6)


def test_per_sample_mode_folds_key_even_when_shared():
  mesh = _one_device_mesh()
  x = jax.random.normal(jax.random.key(1), (4, 5))
  key = jax.random.key(3)
  got, _ = jax.jit(functools.partial(jaxmix.sharding.local(jaxmix.mixup, mesh, "data"), mode="elem"))(key, x)
  want, _ = jax.jit(functools.partial(jaxmix.mixup, mode="elem"))(jax.random.fold_in(key, 0), x)
  np.testing.assert_allclose(got, want, atol=1e-6)
  # mode preset with functools.partial is seen too
  got_p, _ = jax.jit(jaxmix.sharding.local(functools.partial(jaxmix.mixup, mode="elem"), mesh, "data"))(
    key, x
  )
  np.testing.assert_allclose(got_p, want, atol=1e-6)


def test_local_key_is_fold_in_of_axis_index():
  mesh = _one_device_mesh()
  key = jax.random.key(5)
  f = jax.shard_map(
    lambda k: jax.random.key_data(jaxmix.sharding.local_key(k, "data"))[None],
    mesh=mesh,
    in_specs=P(),
    out_specs=P("data"),
  )
  np.testing.assert_array_equal(f(key)[0], jax.random.key_data(jax.random.fold_in(key, 0)))


def test_wrapper_keeps_name_and_signature():
  wrapped = jaxmix.sharding.local(jaxmix.mixup, _one_device_mesh())
  assert wrapped.__name__ == "mixup"
  assert "alpha" in str(__import__("inspect").signature(wrapped))


def test_bad_arguments():
  mesh = _one_device_mesh()
  x = jnp.zeros((4, 5))
  with pytest.raises(ValueError, match="randomness"):
    jaxmix.sharding.local(jaxmix.mixup, mesh, randomness="per_device")
  with pytest.raises(TypeError, match="axis"):
    jaxmix.sharding.local(jaxmix.mixup, mesh, axis=("data", 3))
  with pytest.raises(ValueError, match="model"):
    jaxmix.sharding.local(jaxmix.mixup, mesh, axis="model")(jax.random.key(0), x)
  with pytest.raises(ValueError, match="labels"):
    jaxmix.sharding.local(jaxmix.mixup, mesh)(jax.random.key(0), x, jnp.zeros(3, jnp.int32), num_classes=2)
  with pytest.raises(TypeError, match="key"):
    jaxmix.sharding.local(jaxmix.mixup, mesh)(0, x)
  with pytest.raises(ValueError, match="mesh"):
    jaxmix.sharding.local(jaxmix.mixup, None)(jax.random.key(0), x)
