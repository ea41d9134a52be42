"""A real multi-process run: two jax.distributed CPU processes equal one process with 8 devices.

tests/multihost_checks.py runs the README's multi-host recipe: two processes on 127.0.0.1, 4 CPU
devices each, join with ``jax.distributed.initialize``; each feeds its half of one global batch with
``jax.make_array_from_process_local_data`` and runs the Flax train step with
``jaxmix.sharding.local(jaxmix.mixup_cutmix, ...)`` over the mesh of all 8 devices, with the same key.
A third process runs the same step with 8 devices of its own. The mixed batch, its targets, the loss
and the updated parameters must agree.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "multihost_checks.py"
TIMEOUT = 300


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(*args: str) -> subprocess.Popen:
  env = dict(os.environ)
  env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
  for name in ("XLA_FLAGS", "JAX_PLATFORMS"):  # the script sets its own
    env.pop(name, None)
  return subprocess.Popen(
    [sys.executable, str(SCRIPT), *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
  )


def _finish(procs: dict[str, subprocess.Popen]) -> dict[str, str]:
  """Waits for every process (killing all on a timeout); returns their output."""
  logs = {}
  try:
    for name, proc in procs.items():
      logs[name] = proc.communicate(timeout=TIMEOUT)[0].decode(errors="replace")
  except subprocess.TimeoutExpired:
    for proc in procs.values():
      proc.kill()
    pytest.fail(f"multi-process run timed out after {TIMEOUT} s")
  for name, proc in procs.items():
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{logs[name][-4000:]}"
  return logs


def test_two_processes_equal_one_process_with_8_devices(tmp_path):
  port = _free_port()
  out = {name: str(tmp_path / f"{name}.npz") for name in ("worker0", "worker1", "single")}
  procs = {
    "worker0": _start("worker", "0", str(port), out["worker0"]),
    "worker1": _start("worker", "1", str(port), out["worker1"]),
    "single": _start("single", out["single"]),
  }
  _finish(procs)
  for name in ("worker0", "worker1"):
    skipped = Path(out[name] + ".skip")
    if skipped.exists():
      pytest.skip(f"no multi-process CPU run here: {skipped.read_text()}")
  want = dict(np.load(out["single"]))
  images = np.random.default_rng(0).normal(size=want["mixed"].shape).astype(np.float32)
  assert not np.allclose(want["mixed"], images), "the step did not mix"
  assert np.any((want["targets"] > 0.01) & (want["targets"] < 0.99)), "targets are not mixed"
  for name in ("worker0", "worker1"):
    got = dict(np.load(out[name]))
    assert sorted(got) == sorted(want)
    # Mixing is local to each device and has no collective: the mixed batch is bit-identical.
    np.testing.assert_array_equal(got["mixed"], want["mixed"], err_msg=name)
    np.testing.assert_array_equal(got["targets"], want["targets"], err_msg=name)
    # The gradient all-reduce runs over gloo across processes: equal up to summation order.
    for k in want:
      np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=f"{name}: {k}")
