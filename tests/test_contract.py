"""The contract every registered method keeps, tested once over ``jaxmix.SAMPLERS``.

A method added to the registry is covered here with no new test code. Each test
draws a plan with the method's sampler (the one signature ``sample(key,
batch_size, spatial_shape, *, ...)``) and carries it out with :func:`jaxmix.apply`
and :func:`jaxmix.mix_labels`; ``test_one_call_equals_plan_layer`` ties the
one-call form to that path. Options a method cannot draw without (data such as
SaliencyMix's ``saliency``) come from :func:`required`, keyed by option name.

Properties: same key → same output and another key → another output; legacy and
typed keys agree; jit equals eager (``chex.variants``); vmap over keys equals a loop; the gradient
through ``apply`` is the linear map's; dtypes (f32, bf16, f16, uint8) are kept;
every leaf of a pytree follows one plan; NCHW equals NHWC transposed; batches of
1 and odd batches keep shapes and label mass; an empty batch gives empty
results; changing traced options does not retrace (``chex.assert_max_traces``); labels are mixed with the
plan's own sources.
"""

import functools
import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from core_helpers import registry_options

import jaxmix

SHAPE = (6, 8, 9, 2)  # B, H, W, C: even B, non-square
ODD = (5, 8, 9, 2)
K = 6
NAMES = tuple(jaxmix.SAMPLERS)


def options(name, batch_size, spatial_shape, **kw):
  spec = jaxmix.SAMPLERS[name]
  opts = registry_options(name, batch_size, spatial_shape)
  if "elem" in spec.modes:
    opts["mode"] = "elem"
  opts.update(kw)
  return opts


def sample(name, key, batch_size, spatial_shape, **kw):
  spec = jaxmix.SAMPLERS[name]
  return spec.sample(key, batch_size, spatial_shape, **options(name, batch_size, spatial_shape, **kw))


def mix(name, key, x, labels=None, data_format="NHWC", **kw):
  """(mixed, soft labels) through the plan layer."""
  b = x.shape[0]
  hw = x.shape[2:4] if data_format == "NCHW" else x.shape[1:3]
  plan = sample(name, key, b, tuple(hw), **kw)
  out = jaxmix.apply(plan, x, data_format=data_format)
  y = None if labels is None else jaxmix.mix_labels(plan, labels, num_classes=K)
  return out, y


# For the batch of one and the odd batch: two new shapes cost one compile each under jit, far less
# than running eagerly op by op on them (jit equals eager is JitEqualsEagerTest's property).
mix_jit = jax.jit(mix, static_argnums=0, static_argnames=("data_format", "pairing", "mode"))


def images(seed, shape=SHAPE):
  return jax.random.uniform(jax.random.key(seed), shape) * 255.0


def _accepts_traced(name, option, value):
  """True when the sampler traces with ``option`` as a traced value (an int that sets no shape)."""
  spec = jaxmix.SAMPLERS[name]
  b, hw = SHAPE[0], SHAPE[1:3]
  base = options(name, b, hw)
  try:
    jax.eval_shape(lambda v: spec.sample(jax.random.key(0), b, hw, **{**base, option: v}), value)
  except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
    return False
  return True


def traced_options(name):
  """The sampler's traced options with defaults, so changing them must not recompile: every float
  option, and every int option that the sampler accepts as a traced value (TokenMix's
  ``minimum_tokens``; ints that set a shape or a loop length, such as ``attempts`` or ``k``, do not)."""
  params = inspect.signature(jaxmix.SAMPLERS[name].sample).parameters.values()
  found = {}
  for p in params:
    if p.kind is not inspect.Parameter.KEYWORD_ONLY:
      continue
    if type(p.default) is float or (
      type(p.default) is int and _accepts_traced(name, p.name, jnp.asarray(p.default, jnp.int32))
    ):
      found[p.name] = p.default
  return found


def test_registry_entries_are_consistent():
  for name, spec in jaxmix.SAMPLERS.items():
    assert spec.name == name
    namespace = getattr(jaxmix, spec.namespace) if spec.namespace else jaxmix
    assert spec.sample.__name__ == f"sample_{name}"
    assert getattr(namespace, spec.sample.__name__) is spec.sample
    params = list(inspect.signature(spec.sample).parameters.values())
    assert [p.name for p in params[:3]] == ["key", "batch_size", "spatial_shape"], name
    assert params[2].default is None, f"{name}: spatial_shape must default to None"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[3:]), name
    if spec.mix is not None:
      assert getattr(namespace, name) is spec.mix
    for o in spec.requires:
      assert inspect.signature(spec.sample).parameters[o].default is inspect.Parameter.empty
    assert spec.citation, name
    if spec.spatial:
      with pytest.raises(ValueError, match="spatial_shape"):
        spec.sample(jax.random.key(0), 4, None, **options(name, 4, (8, 9)))


@pytest.mark.parametrize("name", NAMES)
def test_same_key_same_output_other_key_other_output(name):
  x, labels = images(0), jnp.arange(6)
  # Random partners, so that methods whose regions follow the data (Attentive CutMix) still vary.
  a = mix(name, jax.random.key(1), x, labels, pairing="permute")
  b = mix(name, jax.random.key(1), x, labels, pairing="permute")
  chex.assert_trees_all_equal(a, b)
  others = [mix(name, jax.random.key(k), x, labels, pairing="permute")[0] for k in (2, 3, 4)]
  assert any(not np.array_equal(a[0], o) for o in others)


@pytest.mark.parametrize("name", NAMES)
def test_legacy_and_typed_keys_agree(name):
  x = images(1)
  legacy = jax.random.PRNGKey(3)
  typed = jax.random.wrap_key_data(legacy)
  chex.assert_trees_all_equal(mix(name, legacy, x), mix(name, typed, x))


@functools.cache
def eager_reference(name):
  """`mix` called eagerly (no jit around it) on a fixed batch: what jit must reproduce."""
  return mix(name, jax.random.key(4), images(2), jnp.arange(6))


class JitEqualsEagerTest(chex.TestCase):
  """jit equals eager for every registered method, with chex.variants (with and without jit)."""

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*NAMES)
  def test_equals_eager(self, name):
    got = self.variant(lambda key: mix(name, key, images(2), jnp.arange(6)))(jax.random.key(4))
    chex.assert_trees_all_close(got, eager_reference(name), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_keys_equals_loop(name):
  x, labels = images(2), jnp.arange(6)
  keys = jax.random.split(jax.random.key(4), 3)
  batched = jax.jit(jax.vmap(lambda k: mix(name, k, x, labels)))(keys)
  for i in range(3):
    chex.assert_trees_all_close(
      jax.tree.map(lambda t, i=i: t[i], batched), mix(name, keys[i], x, labels), rtol=1e-5, atol=1e-4
    )


@pytest.mark.parametrize("name", NAMES)
def test_grad_through_apply_is_the_linear_map(name):
  x, w = images(3), images(4)
  plan = sample(name, jax.random.key(5), SHAPE[0], SHAPE[1:3])

  def loss(x):
    return jnp.sum(jaxmix.apply(plan, x) * w)

  g = jax.grad(loss)(x)
  assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))
  # apply is linear in x, so <grad, x> = loss(x).
  np.testing.assert_allclose(jnp.sum(g * x), loss(x), rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.uint8])
def test_dtype_kept(name, dtype):
  x = jnp.round(images(5)).astype(dtype)
  plan = sample(name, jax.random.key(6), SHAPE[0], SHAPE[1:3])
  out = jaxmix.apply(plan, x)
  assert out.dtype == dtype and out.shape == x.shape
  ref = np.asarray(jaxmix.apply(plan, x.astype(jnp.float32)))
  if dtype == jnp.uint8:
    expected = np.clip(np.round(ref), 0, 255)
    assert np.abs(np.asarray(out, np.float64) - expected).max() <= 1  # float32 ties at .5
  else:
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("name", NAMES)
def test_pytree_leaves_follow_one_plan(name):
  x = images(7)
  seg = x[..., 0]
  plan = sample(name, jax.random.key(8), SHAPE[0], SHAPE[1:3])
  out = jaxmix.apply(plan, {"image": x, "seg": seg})
  np.testing.assert_allclose(out["seg"], out["image"][..., 0], rtol=1e-6)
  np.testing.assert_array_equal(out["image"], jaxmix.apply(plan, x))


@pytest.mark.parametrize("name", NAMES)
def test_nchw_equals_nhwc_transposed(name):
  x, labels = images(9), jnp.arange(6)
  nhwc, y1 = mix(name, jax.random.key(9), x, labels)
  nchw, y2 = mix(name, jax.random.key(9), jnp.transpose(x, (0, 3, 1, 2)), labels, data_format="NCHW")
  np.testing.assert_allclose(jnp.transpose(nchw, (0, 2, 3, 1)), nhwc, rtol=1e-6, atol=1e-4)
  np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("name", NAMES)
def test_batch_of_one_and_odd_batch(name):
  one = images(10, (1,) + SHAPE[1:])
  out, y = mix_jit(name, jax.random.key(1), one, jnp.array([2]))
  assert out.shape == one.shape
  # A lone sample can only be mixed with itself: its label is unchanged.
  np.testing.assert_allclose(y, jaxmix.one_hot(jnp.array([2]), K), atol=1e-6)
  odd, labels = images(11, ODD), jnp.arange(5)
  out, y = mix_jit(name, jax.random.key(2), odd, labels)
  assert out.shape == odd.shape and y.shape == (5, K)
  np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_gives_empty_results(name):
  x = jnp.zeros((0,) + SHAPE[1:])
  out, y = mix(name, jax.random.key(3), x, jnp.zeros((0,), jnp.int32))
  assert out.shape == x.shape and out.dtype == x.dtype and y.shape == (0, K)


@pytest.mark.parametrize("name", NAMES)
def test_labels_mixed_from_the_plans_sources(name):
  # Each image is constant with its own label as value: the mixed image's mean is the label-weighted
  # mean of its sources, so the soft label's expectation must equal it.
  b, h, w, c = SHAPE
  x = jnp.broadcast_to(jnp.arange(b, dtype=jnp.float32)[:, None, None, None], SHAPE)
  plan = sample(name, jax.random.key(12), b, (h, w))
  out = jaxmix.apply(plan, x)
  y = jaxmix.mix_labels(plan, jnp.arange(b), num_classes=b)
  np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), y @ jnp.arange(b, dtype=jnp.float32), atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_no_retrace_when_traced_options_change(name):
  x = images(13)
  opts = traced_options(name)
  assert "prob" in opts, f"{name}: every sampler takes a traced prob"
  chex.clear_trace_counter()  # the counter is keyed by where `f` is defined: the same for every name

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(key, opts):
    return mix(name, key, x, **opts)[0]

  f(jax.random.key(0), opts)
  f(jax.random.key(1), {k: (v // 2 if type(v) is int else v * 0.5 if v else 0.1) for k, v in opts.items()})


@pytest.mark.parametrize("name", [n for n, s in jaxmix.SAMPLERS.items() if s.mix is not None])
def test_one_call_equals_plan_layer(name):
  spec = jaxmix.SAMPLERS[name]
  x, labels = images(14), jnp.arange(6)
  key = jax.random.key(15)
  out, y = spec.mix(key, x, labels, num_classes=K, **options(name, SHAPE[0], SHAPE[1:3]))
  ref_out, ref_y = mix(name, key, x, labels)
  np.testing.assert_allclose(out, ref_out, rtol=1e-6, atol=1e-4)
  np.testing.assert_allclose(y, ref_y, atol=1e-6)


# Videos and volumes (issue 18): every method with `volumes` in the registry mixes rank-5 leaves, as tubes
# (a 2-D plan on every frame) and, where it draws 3-D plans, as cuboids. Properties checked once per
# (method, plan dims): dtypes and pytree leaves follow one plan, labels come from the plan's sources,
# jit equals eager, the one-call form (with spatial_axes) equals the plan layer, tubes equal the
# 2-D plan applied frame by frame.
VIDEO = (4, 3, 8, 9, 2)  # B, T, H, W, C
VOLUME_CASES = [(n, k) for n, s in jaxmix.SAMPLERS.items() for k in s.volumes]


def test_volumes_and_spatial_axes_agree():
  for name, spec in jaxmix.SAMPLERS.items():
    if spec.mix is None or not spec.spatial:
      continue
    takes_axes = "spatial_axes" in inspect.signature(spec.mix).parameters
    assert takes_axes == bool(spec.volumes), name


def _video_plan(name, key, k, **kw):
  b, t, h, w, _ = VIDEO
  return sample(name, key, b, (h, w) if k == 2 else (t, h, w), **kw)


@pytest.mark.parametrize(("name", "k"), VOLUME_CASES)
def test_rank5_leaves_dtypes_and_labels_follow_one_plan(name, k):
  b = VIDEO[0]
  x = jnp.round(images(16, VIDEO))
  plan = _video_plan(name, jax.random.key(17), k)
  tree = {"video": x, "u8": x.astype(jnp.uint8), "bf16": x.astype(jnp.bfloat16), "seg": x[..., 0]}
  # The map [B, T, H, W] has no channel axis, so the axes are named (the same on every leaf).
  out = jaxmix.apply(plan, tree, spatial_axes=(2, 3) if k == 2 else (1, 2, 3))
  assert out["u8"].dtype == jnp.uint8 and out["bf16"].dtype == jnp.bfloat16
  assert all(v.shape == x.shape for n, v in out.items() if n != "seg")
  np.testing.assert_allclose(out["seg"], out["video"][..., 0], rtol=1e-6)
  np.testing.assert_array_equal(out["video"], jaxmix.apply(plan, x))
  rounded = np.clip(np.round(np.asarray(out["video"])), 0, 255)
  assert np.abs(np.asarray(out["u8"], np.float64) - rounded).max() <= 1
  # Constant samples: the mixed video's mean is the label-weighted mean of its sources.
  painted = jnp.broadcast_to(jnp.arange(b, dtype=jnp.float32)[:, None, None, None, None], VIDEO)
  y = jaxmix.mix_labels(plan, jnp.arange(b), num_classes=b)
  np.testing.assert_allclose(
    jaxmix.apply(plan, painted).mean(axis=(1, 2, 3, 4)), y @ jnp.arange(b, dtype=jnp.float32), atol=1e-4
  )
  if k == 2:  # a tube: each frame is mixed as the image it is
    for t in range(VIDEO[1]):
      np.testing.assert_allclose(out["video"][:, t], jaxmix.apply(plan, x[:, t]), rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize(("name", "k"), VOLUME_CASES)
def test_rank5_jit_equals_eager_and_one_call_equals_plan_layer(name, k):
  spec = jaxmix.SAMPLERS[name]
  x, labels = images(18, VIDEO), jnp.arange(VIDEO[0])

  def plan_layer(key):
    plan = _video_plan(name, key, k)
    return jaxmix.apply(plan, x), jaxmix.mix_labels(plan, labels, num_classes=K)

  key = jax.random.key(19)
  eager = plan_layer(key)
  chex.assert_trees_all_close(jax.jit(plan_layer)(key), eager, rtol=1e-5, atol=1e-4)
  if spec.mix is not None:
    axes = {} if name == "mixup" else {"spatial_axes": (2, 3) if k == 2 else (1, 2, 3)}
    b, t, h, w, _ = VIDEO
    opts = options(name, b, (h, w) if k == 2 else (t, h, w))
    out, y = spec.mix(key, x, labels, num_classes=K, **axes, **opts)
    np.testing.assert_allclose(out, eager[0], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(y, eager[1], atol=1e-6)
