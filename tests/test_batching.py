"""`core.batching.loop_on_cpu`: the CPU loop and the batched form (other platforms) agree, for the
function alone and for the method that uses it (the YOLO warp): bit for bit where the result is
integer, to float rounding where XLA may fuse float arithmetic differently."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix
from jaxmix._src.core import batching


def test_loop_and_batched_forms_agree_on_a_pytree():
  xs = {"a": jnp.arange(12.0).reshape(4, 3), "b": jnp.arange(4)}

  def fn(x):
    return jnp.cumsum(x["a"]) * x["b"], x["b"] + 1

  loop = batching.loop_on_cpu(fn, xs, loop=True)
  batched = batching.loop_on_cpu(fn, xs, loop=False)
  chosen = jax.jit(lambda v: batching.loop_on_cpu(fn, v))(xs)
  for got in (batched, chosen):
    jax.tree.map(np.testing.assert_array_equal, got, loop)
  # the CPU program is the loop: a while loop in its HLO, none in the batched form's
  assert "while" in jax.jit(lambda v: batching.loop_on_cpu(fn, v)).lower(xs).compile().as_text()
  assert "while" not in jax.jit(lambda v: batching.loop_on_cpu(fn, v, loop=False)).lower(xs).as_text()


def _force_batched(monkeypatch):
  """The methods call ``batching.loop_on_cpu`` at trace time: from here on they get the batched form."""
  monkeypatch.setattr(batching, "loop_on_cpu", functools.partial(batching.loop_on_cpu, loop=False))


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32])
def test_yolo_mosaic_batched_form_equals_the_cpu_loop(monkeypatch, interpolation, dtype):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.integers(0, 256, (3, 20, 24, 3))).astype(dtype)
  xy = rng.uniform(0, 14, (3, 4, 2)).astype(np.float32)
  boxes = jnp.asarray(np.concatenate([xy, xy + rng.uniform(2, 8, (3, 4, 2))], -1))
  classes = jnp.asarray(rng.integers(0, 5, (3, 4)), jnp.int32)
  affine = jaxmix.detection.Affine(degrees=10.0)
  fn = functools.partial(jaxmix.detection.mosaic, tiles=9, affine=affine, interpolation=interpolation)
  want = jax.jit(lambda *a: fn(*a))(jax.random.key(2), x, boxes, classes)
  _force_batched(monkeypatch)
  got = jax.jit(lambda *a: fn(*a))(jax.random.key(2), x, boxes, classes)
  # The two programs fuse their arithmetic differently (contractions into FMAs), so float results
  # agree to float32 rounding; the rounded uint8 pixels here agree exactly.
  if dtype == jnp.uint8:
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))
  else:
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want[0]), rtol=1e-4, atol=1e-3)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-5), got[1], want[1])
