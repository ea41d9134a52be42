"""The public API: conventions every function keeps, and the contract every method keeps.

Conventions (checked for every function in ``jaxmix.__all__``, so methods added
later are checked without touching this file):

* every public function has a docstring with ``Args:`` and ``Returns:``;
* every function that takes a key — the mixing methods and the ``sample_*``
  functions, i.e. every public function not in ``KEYLESS`` below — has
  ``key`` as its first parameter, then only data arguments named in
  ``POSITIONAL`` (the batch and its targets: inputs/batch_size,
  labels/spatial_shape, images with boxes/classes/valid, label maps, padding
  masks, the two batches of cross-dataset mixing), and every option after
  those is keyword-only.

``KEYLESS`` is the allow-list of utilities that take no key (they carry out,
transform or describe a plan, convert boxes, read files); a new keyless
utility must be added there.
"""

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import CANON
from core_helpers import METHODS
from core_helpers import call
from core_helpers import constant_images
from core_helpers import method
from core_helpers import method_and_plan
from core_helpers import random_images
from core_helpers import reference_mix

import jaxmix

KEYLESS = {
  "apply",
  "mix_labels",
  "one_hot",  # the plan layer
  "keep_larger_share",
  "remix_lam",
  "with_plan_transform",  # plan transforms
  "mix_label_maps",
  "mix_token_labels",
  "mix_boxes",
  "mosaic_boxes",  # targets under a plan
  "box_area",
  "clip_boxes",
  "convert_boxes",
  "normalize_boxes",
  "denormalize_boxes",  # box utilities
  "read_voc",
  "read_voc_batch",  # annotation readers
  "local",
  "local_key",  # sharding wrappers
  "manifold_point",
  "scheduled",
  "off_after",  # Flax integration
  "spectral_residual_saliency",  # a map a method is built from
}
POSITIONAL = {
  "inputs",
  "batch_size",
  "labels",
  "spatial_shape",
  "images",
  "boxes",
  "classes",
  "valid",
  "label_maps",
  "mask",
  "batch_a",
  "batch_b",
  "fn",
}
# mixup_cutmix can cut, so all three take image batches here.
OPTS = {"mixup": {}, "cutmix": {}, "mixup_cutmix": dict(cutmix_alpha=1.0)}


def _public_functions():
  return [n for n in jaxmix.__all__ if inspect.isfunction(getattr(jaxmix, n))]


def test_version_and_all():
  assert isinstance(jaxmix.__version__, str) and jaxmix.__version__
  assert len(set(jaxmix.__all__)) == len(jaxmix.__all__)
  for name in jaxmix.__all__:
    assert hasattr(jaxmix, name), name
  assert set(METHODS) <= set(jaxmix.__all__)


@pytest.mark.parametrize("name", _public_functions())
def test_docstring_has_args_and_returns(name):
  doc = inspect.getdoc(getattr(jaxmix, name)) or ""
  assert "Args:" in doc and "Returns:" in doc, name


@pytest.mark.parametrize("name", [n for n in _public_functions() if n not in KEYLESS])
def test_key_first_options_keyword_only(name):
  params = list(inspect.signature(getattr(jaxmix, name)).parameters.values())
  assert params and params[0].name == "key", f"{name}: first parameter must be `key`"
  keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)
  positional = [p for p in params[1:] if p.kind not in keyword]
  for p in positional:
    assert p.name in POSITIONAL, f"{name}: `{p.name}` must be keyword-only"
    assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
  assert all(p.kind is not inspect.Parameter.VAR_POSITIONAL for p in params), name


def test_classes_are_documented():
  for name in jaxmix.__all__:
    obj = getattr(jaxmix, name)
    if inspect.isclass(obj):
      assert inspect.getdoc(obj), name


# --- the contract of every mixing method -------------------------------------------------------------


def _mix(name, key, x, labels=None, **kwargs):
  return method(name)(key, x, labels, **OPTS[name], **kwargs)


@pytest.mark.parametrize("name", METHODS)
def test_same_key_same_output_different_key_different(name):
  x, labels = random_images(0, CANON), jnp.arange(6)
  a = _mix(name, jax.random.key(1), x, labels, num_classes=6, mode="elem")
  b = _mix(name, jax.random.key(1), x, labels, num_classes=6, mode="elem")
  c = _mix(name, jax.random.key(2), x, labels, num_classes=6, mode="elem")
  chex.assert_trees_all_equal(a, b)
  assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("name", METHODS)
def test_legacy_and_typed_keys(name):
  x = random_images(0, CANON)
  legacy = jax.random.PRNGKey(3)
  typed = jax.random.wrap_key_data(legacy)
  chex.assert_trees_all_equal(_mix(name, legacy, x, mode="elem"), _mix(name, typed, x, mode="elem"))
  assert not np.array_equal(_mix(name, legacy, x, mode="elem")[0], x)


@pytest.mark.parametrize("name", METHODS)
def test_vmap_over_keys_equals_loop(name):
  x, labels = random_images(0, CANON), jnp.arange(6)
  keys = jax.random.split(jax.random.key(4), 3)
  batched = jax.jit(jax.vmap(lambda k: _mix(name, k, x, labels, num_classes=6, mode="elem")))(keys)
  for i in range(3):
    single = _mix(name, keys[i], x, labels, num_classes=6, mode="elem")
    chex.assert_trees_all_close(jax.tree.map(lambda t, i=i: t[i], batched), single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", METHODS)
def test_grad_wrt_inputs(name):
  x = random_images(0, CANON)
  w = random_images(1, CANON)

  def loss(x):
    out, _ = _mix(name, jax.random.key(5), x, mode="elem")
    return jnp.sum(out * w)

  g = jax.grad(loss)(x)
  assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))
  assert float(jnp.abs(g).sum()) > 0
  # The loss is linear in x, so its gradient reproduces it: <g, x> = loss(x).
  np.testing.assert_allclose(jnp.sum(g * x), loss(x), rtol=1e-4)


def test_no_retrace_when_traced_hyperparameters_change():
  x, labels = random_images(0, CANON), jnp.arange(6)
  traces = {"n": 0}

  def f(key, mixup_alpha, cutmix_alpha, prob, switch_prob, label_smoothing):
    traces["n"] += 1
    return jaxmix.mixup_cutmix(
      key,
      x,
      labels,
      mixup_alpha=mixup_alpha,
      cutmix_alpha=cutmix_alpha,
      prob=prob,
      switch_prob=switch_prob,
      label_smoothing=label_smoothing,
      num_classes=6,
    )

  g = jax.jit(f)
  for i, values in enumerate(
    [(1.0, 0.0, 1.0, 0.5, 0.0), (0.2, 1.0, 0.5, 0.0, 0.1), (0.0, 2.0, 0.0, 1.0, 0.3)]
  ):
    g(jax.random.key(i), *values)
  assert traces["n"] == 1


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_no_retrace_alpha_prob_smoothing(name):
  x, labels = random_images(0, CANON), jnp.arange(6)
  chex.clear_trace_counter()  # the counter is keyed by code location, shared by both parameters

  @chex.assert_max_traces(n=1)
  def f(key, alpha, prob, label_smoothing):
    return method(name)(
      key, x, labels, alpha=alpha, prob=prob, label_smoothing=label_smoothing, num_classes=6
    )

  g = jax.jit(f)
  for i, values in enumerate([(1.0, 1.0, 0.0), (0.3, 0.5, 0.1), (0.0, 0.0, 0.2)]):
    g(jax.random.key(i), *values)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16, jnp.uint8])
def test_dtype_kept(name, dtype):
  key = jax.random.key(6)
  x32 = jnp.round(jax.random.uniform(jax.random.key(0), CANON) * 255)
  x = x32.astype(dtype)
  out, y = _mix(name, key, x, jnp.arange(6), num_classes=6, mode="elem")
  assert out.dtype == dtype and out.shape == x.shape and y.dtype == jnp.float32
  ref, y_ref = _mix(name, key, x.astype(jnp.float32), jnp.arange(6), num_classes=6, mode="elem")
  np.testing.assert_allclose(y, y_ref)
  if dtype == jnp.uint8:
    # Mixed in float32, rounded and clipped back (timm's fast collate).
    np.testing.assert_array_equal(out, np.clip(np.round(np.asarray(ref)), 0, 255).astype(np.uint8))
  else:
    tol = {jnp.float32: 1e-6, jnp.float16: 1e-3, jnp.bfloat16: 1e-2}[dtype]
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", METHODS)
def test_uint8_rounds_and_clips(name):
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, CANON), jnp.uint8)
  out, _, plan = method_and_plan(jax.random.key(7), x, name=name, mode="elem", **OPTS[name])
  expected = np.clip(np.round(reference_mix(plan, np.asarray(x, np.float64))), 0, 255)
  assert np.abs(np.asarray(out, np.int32) - expected).max() <= 1  # float32 vs float64 at .5 ties
  assert out.dtype == jnp.uint8


@pytest.mark.parametrize("name", METHODS)
def test_pytree_leaves_share_partners_and_box(name):
  b, h, w, c = CANON
  image = constant_images(b, h, w, c)
  seg = image[..., 0]  # a [B, H, W] map
  key = jax.random.key(8)
  (out_img, out_seg), _ = _mix(name, key, (image, seg), mode="elem")
  np.testing.assert_array_equal(out_seg, out_img[..., 0])
  out, _ = _mix(name, key, {"image": image, "seg": seg}, mode="elem")
  np.testing.assert_array_equal(out["image"], out_img)
  np.testing.assert_array_equal(out["seg"], out_seg)
  single, _ = _mix(name, key, image, mode="elem")
  np.testing.assert_array_equal(single, out_img)


@pytest.mark.parametrize("name", METHODS)
def test_nchw_equals_nhwc_transposed(name):
  x = random_images(9, CANON)
  key = jax.random.key(9)
  nhwc, y1 = _mix(name, key, x, jnp.arange(6), num_classes=6, mode="elem")
  nchw, y2 = _mix(
    name, key, jnp.transpose(x, (0, 3, 1, 2)), jnp.arange(6), num_classes=6, mode="elem", data_format="NCHW"
  )
  np.testing.assert_allclose(jnp.transpose(nchw, (0, 2, 3, 1)), nhwc, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("use_jit", [False, True])
def test_batch_of_one_and_empty_batch(name, use_jit):
  for b in (1, 0):
    x = random_images(10, (b, 5, 4, 3))
    out, y, plan = call(
      method_and_plan,
      use_jit,
      jax.random.key(1),
      x,
      jnp.zeros(b, jnp.int32),
      name=name,
      num_classes=3,
      label_smoothing=0.3,
      cheap=True,
      **OPTS[name],
    )
    assert out.shape == x.shape and y.shape == (b, 3)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_allclose(y, jaxmix.one_hot(jnp.zeros(b, jnp.int32), 3, smoothing=0.3), atol=1e-7)


@pytest.mark.parametrize("name", METHODS)
def test_labels_none(name):
  out, y = _mix(name, jax.random.key(0), random_images(0, CANON))
  assert y is None and out.shape == CANON


def test_plan_layer_equals_one_call():
  x, labels = random_images(0, CANON), jnp.arange(6)
  key = jax.random.key(12)
  plan = jaxmix.sample_cutmix(key, 6, CANON[1:3], mode="elem")
  out, y = jaxmix.cutmix(key, x, labels, num_classes=6, mode="elem")
  np.testing.assert_array_equal(jaxmix.apply(plan, x), out)
  np.testing.assert_array_equal(jaxmix.mix_labels(plan, labels, num_classes=6), y)
