import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import examples
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix
from jaxmix._src.methods import resizemix as rm


def _images(b, h, w, c=3, seed=0, dtype=jnp.float32):
  x = jax.random.uniform(jax.random.key(seed), (b, h, w, c), jnp.float32)
  if dtype == jnp.uint8:
    return (x * 255).astype(jnp.uint8)
  return x.astype(dtype)


def _boxes(plan):
  return [tuple(int(v) for v in row) for row in np.asarray(plan.region)]


@settings(max_examples=examples(6), deadline=None)
@given(
  b=st.integers(1, 5),
  h=st.integers(3, 20),
  w=st.integers(3, 20),
  mode=st.sampled_from(["batch", "pair", "elem"]),
  seed=st.integers(0, 1000),
)
def test_lam_is_exact_own_share_on_the_output(b, h, w, mode, seed):
  # Sample i is filled with the value i + 1, so every output pixel tells its source.
  x = jnp.broadcast_to(jnp.arange(1, b + 1, dtype=jnp.float32)[:, None, None, None], (b, h, w, 2))

  @jax.jit
  def run(key, x):
    plan = jaxmix.sample_resizemix(key, b, (h, w), mode=mode)
    return plan, jaxmix.apply(plan, x), jaxmix.mix_labels(plan, jnp.arange(b), num_classes=b)

  plan, out, y = jax.device_get(run(jax.random.key(seed), x))
  index, lam = plan.index, plan.lam
  for i in range(b):
    own = np.mean(out[i] == i + 1)
    partner = np.mean(out[i] == index[i] + 1)
    assert np.isclose(lam[i], own if index[i] != i else 1.0)
    if index[i] != i:
      assert np.isclose(own + partner, 1.0)
    t, bo, le, r = plan.region[i]
    assert np.isclose(lam[i], 1 - (bo - t) * (r - le) / (h * w))
  np.testing.assert_allclose(np.diagonal(y), lam, atol=1e-6)
  np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-6)


def test_region_follows_scale_range_and_is_clipped():
  h, w = 40, 30
  plan = jaxmix.sample_resizemix(jax.random.key(3), 512, (h, w), mode="elem", scale_range=(0.25, 0.5))
  box = np.asarray(plan.region)
  heights, widths = box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]
  assert heights.max() <= int(0.5 * h) and widths.max() <= int(0.5 * w)
  assert (
    (box[:, 0] >= 0).all() and (box[:, 1] <= h).all() and (box[:, 2] >= 0).all() and (box[:, 3] <= w).all()
  )
  # Boxes whose centre is far from the borders keep their full drawn size.
  assert heights.min() < int(0.5 * h) and np.median(heights) >= int(0.25 * h) - 1
  # Away from the borders the box has exactly the drawn sides (int(τ·H), int(τ·W)) for
  # one τ in the scale_range (jaxmix's one box rule; OpenMixup's c ± cut//2 box only has even sides).
  inner = (box[:, 0] > 0) & (box[:, 1] < h) & (box[:, 2] > 0) & (box[:, 3] < w)
  hi_h, hi_w = heights[inner], widths[inner]
  low = np.maximum(np.maximum(hi_h / h, hi_w / w), 0.25)
  high = np.minimum(np.minimum((hi_h + 1) / h, (hi_w + 1) / w), 0.5)
  assert inner.sum() > 100 and np.all(low < high + 1e-6)
  assert np.any(hi_h % 2) and np.any(hi_w % 2)


def _torch_nearest_index(out, size, exact):
  """Source indices of torch's ``F.interpolate`` resizing ``size`` to ``out`` samples,
  restated in numpy as torch computes them: float32 scale ``size / out``,
  ``floor(i·s)`` for ``mode="nearest"``, ``floor((i + 0.5)·s)`` for ``"nearest-exact"``."""
  scale = np.float32(size) / np.float32(out)
  i = np.arange(out, dtype=np.float32)
  pos = (i + np.float32(0.5)) * scale if exact else i * scale
  return np.minimum(np.floor(pos).astype(np.int64), size - 1)


@pytest.mark.parametrize("method", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("size", [7, 24, 26, 37])
def test_nearest_source_indices_are_torchs(method, size):
  """Every box extent 1..size at every offset inside the image."""
  extents = np.arange(1, size + 1)
  starts = np.asarray([(size - e) // 2 for e in extents])
  coords = np.asarray(rm._source_coords(jnp.asarray(starts), jnp.asarray(starts + extents), size, method))
  for e, t, row in zip(extents, starts, coords, strict=True):
    np.testing.assert_array_equal(row[t : t + e], _torch_nearest_index(e, size, method == "nearest-exact"))


def test_nearest_is_floor_of_i_times_scale_in_float32():
  """26 -> 22: torch's float32 scale 1.1818181 puts position 11 on source 12 (exactly 13 in
  real arithmetic); nearest-exact reads 13 there."""
  start, stop = jnp.asarray([0]), jnp.asarray([22])
  nearest = np.asarray(rm._source_coords(start, stop, 26, "nearest"))[0, :22]
  exact = np.asarray(rm._source_coords(start, stop, 26, "nearest-exact"))[0, :22]
  assert nearest[11] == 12 and exact[11] == 13
  assert nearest[0] == 0 and nearest[21] == 24


@pytest.mark.parametrize("method", ["nearest", "nearest-exact"])
def test_painted_partner_is_pasted_with_torchs_nearest_indexing(method):
  """Each partner pixel holds its (sample, row, column), so every pasted pixel names its
  source; the expected paste is built by numpy indexing with torch's source indices."""
  b, h, w = 12, 24, 26
  paint = np.arange(b)[:, None, None] * 10_000 + np.arange(h)[:, None] * 100 + np.arange(w)
  x = jnp.asarray(paint[..., None].astype(np.float32))
  plan = jaxmix.sample_resizemix(
    jax.random.key(11), b, (h, w), mode="elem", interpolation=method, scale_range=(0.2, 1.0)
  )
  out = np.asarray(jaxmix.apply(plan, x))[..., 0]
  index = np.asarray(plan.index)
  pasted = 0
  for i, (t, bo, le, r) in enumerate(_boxes(plan)):
    expected = paint[i].astype(np.float32)
    if bo > t and r > le:
      rows = _torch_nearest_index(bo - t, h, method == "nearest-exact")
      cols = _torch_nearest_index(r - le, w, method == "nearest-exact")
      expected[t:bo, le:r] = paint[index[i]][np.ix_(rows, cols)]
      pasted += 1
    np.testing.assert_array_equal(out[i], expected)
  assert pasted == b
  # The two methods differ on most pastes (the 24 x 24 case: 12 of 12).
  other = "nearest-exact" if method == "nearest" else "nearest"
  plan_other = plan.replace(interpolation=other)
  differ = np.any(out != np.asarray(jaxmix.apply(plan_other, x))[..., 0], axis=(1, 2))
  assert differ.sum() >= b // 2


@pytest.mark.parametrize("method", rm.INTERPOLATIONS)
def test_pasted_region_is_the_whole_partner_resized(method):
  b, h, w = 4, 24, 18
  x = _images(b, h, w, seed=1)
  plan = jaxmix.sample_resizemix(
    jax.random.key(7), b, (h, w), mode="elem", interpolation=method, scale_range=(0.3, 0.9)
  )
  out = jaxmix.apply(plan, x)
  index = np.asarray(plan.index)
  for i, (t, bo, le, r) in enumerate(_boxes(plan)):
    inside = np.zeros((h, w), bool)
    inside[t:bo, le:r] = True
    np.testing.assert_array_equal(np.asarray(out[i])[~inside], np.asarray(x[i])[~inside])
    if bo == t or r == le:
      continue
    partner = x[index[i]]
    if method == "nearest-exact":
      # jax.image's nearest uses half-pixel centres, torch's "nearest-exact".
      ref = jax.image.resize(partner, (bo - t, r - le, 3), "nearest")
    elif method == "nearest":
      ref = partner[_torch_nearest_index(bo - t, h, False)][:, _torch_nearest_index(r - le, w, False)]
    else:
      scale = jnp.array([(bo - t) / h, (r - le) / w])
      ref = jax.image.scale_and_translate(
        partner, (bo - t, r - le, 3), (0, 1), scale, jnp.zeros(2), "linear", antialias=False
      )
    np.testing.assert_allclose(out[i, t:bo, le:r], ref, atol=1e-5)


def test_outputs_lie_between_sources():
  b, h, w = 6, 16, 16
  x = _images(b, h, w, seed=2)
  for method in rm.INTERPOLATIONS:
    plan = jaxmix.sample_resizemix(jax.random.key(0), b, (h, w), mode="elem", interpolation=method)
    out = jaxmix.apply(plan, x)
    partner = x[plan.index]
    lo = jnp.minimum(x.min(axis=(1, 2), keepdims=True), partner.min(axis=(1, 2), keepdims=True))
    hi = jnp.maximum(x.max(axis=(1, 2), keepdims=True), partner.max(axis=(1, 2), keepdims=True))
    assert bool(jnp.all(out >= lo - 1e-6)) and bool(jnp.all(out <= hi + 1e-6))
    weight = plan.own_weight()
    assert bool(jnp.all((weight >= 0) & (weight <= 1)))
    np.testing.assert_allclose(weight.mean(axis=(1, 2)), plan.lam, atol=1e-6)


def test_pytree_with_label_map_uses_nearest_and_same_box():
  b, h, w = 4, 20, 20
  x = _images(b, h, w, seed=4)
  seg = jnp.broadcast_to(jnp.arange(b, dtype=jnp.int32)[:, None, None] * 7, (b, h, w))
  key = jax.random.key(5)
  (mx, mseg), y = jaxmix.resizemix(
    key, (x, seg), jnp.arange(b), num_classes=b, interpolation="bilinear", mode="elem"
  )
  plan = jaxmix.sample_resizemix(key, b, (h, w), interpolation="bilinear", mode="elem")
  assert mseg.dtype == jnp.int32
  # Label map values stay valid class ids, and each pixel's id names its source.
  values = set(np.unique(np.asarray(mseg)).tolist())
  assert values <= {0, 7, 14, 21}
  inside = np.asarray(plan.own_weight()) == 0
  index = np.asarray(plan.index)
  np.testing.assert_array_equal(np.asarray(mseg) == np.asarray(seg), ~inside)
  np.testing.assert_array_equal(np.asarray(mseg)[inside], (index[:, None, None] * 7 * inside)[inside])
  np.testing.assert_allclose(mx, jaxmix.apply(plan, x))
  np.testing.assert_allclose(y[jnp.arange(b), jnp.arange(b)], plan.lam, atol=1e-6)
  # The generic apply reads integer leaves with nearest, even under a bilinear plan.
  np.testing.assert_array_equal(jaxmix.apply(plan, seg), mseg)
  np.testing.assert_array_equal(jaxmix.apply(plan.for_integer_leaves(), seg), mseg)


def test_same_key_same_output_jit_and_vmap():
  b, h, w = 4, 12, 10
  x = _images(b, h, w, seed=6)
  labels = jnp.arange(b)

  def f(key):
    return jaxmix.resizemix(key, x, labels, num_classes=b, mode="elem", interpolation="bilinear")

  key = jax.random.key(11)
  a, ya = f(key)
  c, yc = f(key)
  np.testing.assert_array_equal(a, c)
  j, yj = jax.jit(f)(key)
  np.testing.assert_allclose(j, a, atol=1e-6)
  np.testing.assert_allclose(yj, ya, atol=1e-6)
  keys = jax.random.split(jax.random.key(12), 3)
  vm, vy = jax.jit(jax.vmap(f))(keys)
  for k in range(3):
    lo, ly = jax.jit(f)(keys[k])
    np.testing.assert_allclose(vm[k], lo, atol=1e-6)
    np.testing.assert_allclose(vy[k], ly, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.uint8])
def test_dtype_kept_by_every_interpolation(dtype):
  # The default ("nearest") is test_contract.py's test_dtype_kept (bf16, f16, uint8, values included).
  x = _images(4, 16, 16, seed=9, dtype=dtype)
  for method in rm.INTERPOLATIONS[1:]:
    out, _ = jaxmix.resizemix(jax.random.key(0), x, interpolation=method)
    assert out.dtype == x.dtype and out.shape == x.shape


def test_prob_zero_is_identity_and_prob_is_traced():
  b, h, w = 4, 12, 12
  x = _images(b, h, w, seed=10)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(key, prob, lo, hi, smoothing):
    return jaxmix.resizemix(
      key, x, jnp.arange(b), num_classes=b, prob=prob, scale_range=(lo, hi), label_smoothing=smoothing
    )

  key = jax.random.key(0)
  out, y = f(key, 0.0, 0.1, 0.8, 0.0)
  np.testing.assert_array_equal(out, x)
  np.testing.assert_allclose(y, jnp.eye(b))
  out, _ = f(key, 1.0, 0.5, 0.6, 0.1)
  assert not np.array_equal(np.asarray(out), np.asarray(x))
  f(key, 0.5, 0.2, 0.3, 0.2)


def test_odd_batch_middle_sample_unchanged():
  x = _images(5, 10, 10, seed=13)
  plan = jaxmix.sample_resizemix(jax.random.key(0), 5, (10, 10), scale_range=(0.8, 0.8))
  out = jaxmix.apply(plan, x)
  np.testing.assert_array_equal(out[2], x[2])
  assert float(plan.lam[2]) == 1.0


def test_bad_arguments():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="scale_range"):
    jaxmix.sample_resizemix(key, 4, (8, 8), scale_range=(0.9, 0.1))
  with pytest.raises(ValueError, match="scale_range"):
    jaxmix.sample_resizemix(key, 4, (8, 8), scale_range=0.5)
  with pytest.raises(ValueError, match="interpolation"):
    jaxmix.sample_resizemix(key, 4, (8, 8), interpolation="cubic")
  with pytest.raises(ValueError, match="mode"):
    jaxmix.sample_resizemix(key, 4, (8, 8), mode="sample")
  with pytest.raises(ValueError, match="spatial_shape"):
    jaxmix.sample_resizemix(key, 4, (8,))
  with pytest.raises(ValueError, match="prob"):
    jaxmix.sample_resizemix(key, 4, (8, 8), prob=1.5)
  with pytest.raises(ValueError, match="spatial"):
    jaxmix.resizemix(key, jnp.zeros((4, 8)))
  plan = jaxmix.sample_resizemix(key, 4, (8, 8))
  with pytest.raises(ValueError, match="spatial shape"):
    jaxmix.apply(plan, jnp.zeros((4, 9, 8, 3)))


@pytest.mark.parametrize("method", rm.INTERPOLATIONS)
def test_grad_wrt_inputs(method):
  x = _images(4, 12, 12, seed=14)
  key = jax.random.key(1)

  def loss(x):
    return jnp.sum(jaxmix.resizemix(key, x, interpolation=method, mode="elem")[0])

  g = jax.grad(loss)(x)
  # Every output pixel is a convex combination of input pixels.
  assert bool(jnp.all(jnp.isfinite(g))) and bool(jnp.all(g >= 0))
  np.testing.assert_allclose(jnp.sum(g), x.size, rtol=1e-5)


def test_batch_mode_shares_one_box():
  plan = jaxmix.sample_resizemix(jax.random.key(4), 8, (20, 20), mode="batch")
  assert len(set(_boxes(plan))) == 1
  plan = jaxmix.sample_resizemix(jax.random.key(4), 64, (20, 20), mode="elem")
  assert len(set(_boxes(plan))) > 1
