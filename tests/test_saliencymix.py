import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import examples
from core_helpers import timm_box
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from scipy import ndimage

import jaxmix
from jaxmix._src.methods import saliencymix as sm


def _blob_images(centres, h, w, *, textured, seed=0):
  """One bright Gaussian blob per image on a flat or textured dark background."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:h, :w]
  images = []
  for cy, cx in centres:
    background = rng.uniform(0.0, 0.15, (h, w, 3)) if textured else np.full((h, w, 3), 0.1)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2))[..., None]
    images.append(background + 0.9 * blob)
  return jnp.asarray(np.stack(images), jnp.float32)


def _boxes(plan):
  return [tuple(int(v) for v in row) for row in np.asarray(plan.region)]


def _numpy_spectral_residual(grey):
  """An independent NumPy/SciPy version of the full-resolution map."""
  spectrum = np.fft.fft2(grey)
  log_amp = np.log(np.abs(spectrum) + 1e-8)
  residual = log_amp - ndimage.uniform_filter(log_amp, size=3, mode="mirror")
  back = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum))))
  r = np.arange(5) - 2
  taps = np.exp(-(r**2) / 128.0)
  taps /= taps.sum()
  blurred = ndimage.correlate1d(
    ndimage.correlate1d(back, taps, axis=0, mode="mirror"), taps, axis=1, mode="mirror"
  )
  sal = blurred**2
  return sal / sal.max()


def test_spectral_residual_matches_a_numpy_reference_at_full_resolution():
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 1, (2, 20, 28, 3)).astype(np.float32)
  out = np.asarray(jaxmix.spectral_residual_saliency(images, size=None))
  grey = images @ np.array([0.299, 0.587, 0.114])
  for b in range(2):
    np.testing.assert_allclose(out[b], _numpy_spectral_residual(grey[b]), atol=2e-3)


@pytest.mark.parametrize("shape", [(37, 32, 32, 3), (5, 64, 48, 3), (3, 7, 9, 1)])
def test_cpu_loop_and_batched_maps_agree(monkeypatch, shape):
  """On the CPU the maps are computed by groups in a loop (``batching.loop_on_cpu``); the batched form
  other platforms run gives the same maps (to float rounding) and the same peaks, and the small-sides
  filters (no interior) match the padded reference."""
  from jaxmix._src.core import batching

  x = jnp.asarray(np.random.default_rng(3).random(shape, dtype=np.float32))
  want = jax.jit(lambda v: sm._saliency_at_work_size(v, "NHWC", 64))(x)
  monkeypatch.setattr(batching, "loop_on_cpu", functools.partial(batching.loop_on_cpu, loop=False))
  got = jax.jit(lambda v: sm._saliency_at_work_size(v, "NHWC", 64))(x)
  np.testing.assert_allclose(got, want, atol=1e-6)
  flat = lambda m: np.asarray(m).reshape(m.shape[0], -1).argmax(-1)
  np.testing.assert_array_equal(flat(got), flat(want))
  for n in (1, 2, 3, 4, 5):
    grid = jnp.asarray(np.random.default_rng(n).random((2, n, n + 1)), jnp.float32)
    for taps in (np.full(3, 1 / 3), sm._gaussian_taps(5, 8.0)):
      r = len(taps) // 2
      padded = np.pad(np.asarray(grid), [(0, 0), (r, r), (r, r)], mode="reflect")
      ref = sum(t * padded[:, i : i + n] for i, t in enumerate(taps))
      ref = sum(t * ref[:, :, i : i + n + 1] for i, t in enumerate(taps))
      np.testing.assert_allclose(sm._filter2d(grid, taps), ref, atol=1e-6)


def test_spectral_residual_matches_opencv():
  cv2 = pytest.importorskip("cv2")
  if not hasattr(cv2, "saliency"):
    pytest.skip("needs opencv-contrib")
  images = np.asarray(_blob_images([(30, 50), (60, 20)], 96, 80, textured=True)) * 255
  ours = np.asarray(jaxmix.spectral_residual_saliency(images))
  for b in range(2):
    ok, ref = cv2.saliency.StaticSaliencySpectralResidual_create().computeSaliency(
      images[b, ..., ::-1].copy()
    )
    assert ok
    np.testing.assert_allclose(ours[b], ref, atol=1e-2)


def test_spectral_residual_map_properties():
  x = _blob_images([(12, 20), (30, 10), (20, 20)], 40, 36, textured=True)
  sal = jaxmix.spectral_residual_saliency(x)
  assert sal.shape == (3, 40, 36) and sal.dtype == jnp.float32
  assert float(sal.min()) >= 0 and float(sal.max()) <= 1 + 1e-6
  full = jaxmix.spectral_residual_saliency(x, size=None)
  np.testing.assert_allclose(full.max(axis=(1, 2)), 1.0, atol=1e-6)
  nchw = jaxmix.spectral_residual_saliency(jnp.transpose(x, (0, 3, 1, 2)), "NCHW")
  np.testing.assert_allclose(nchw, sal, atol=1e-5)
  np.testing.assert_allclose(jax.jit(jaxmix.spectral_residual_saliency)(x), sal, atol=1e-5)
  u8 = jaxmix.spectral_residual_saliency((x * 255).astype(jnp.uint8))
  assert u8.shape == sal.shape
  grey = jaxmix.spectral_residual_saliency(x[..., 0])
  assert grey.shape == sal.shape
  # The peak sits on the blob: on a flat background at the default working
  # size; on a textured one at full resolution (at 64 × 64 the stretched
  # texture near the borders can outshine a blob of a 40 × 36 image).
  flat = jaxmix.spectral_residual_saliency(
    _blob_images([(12, 20), (30, 10), (20, 20)], 40, 36, textured=False)
  )
  for maps in (np.asarray(flat), np.asarray(full)):
    for b, (cy, cx) in enumerate([(12, 20), (30, 10), (20, 20)]):
      py, px = np.unravel_index(int(np.argmax(maps[b])), (40, 36))
      assert abs(py - cy) <= 3 and abs(px - cx) <= 3


@pytest.mark.parametrize("textured", [False, True])
@pytest.mark.parametrize("mode", ["elem", "batch"])
def test_box_contains_the_partners_blob(textured, mode):
  h, w = 48, 48
  centres = [(12, 14), (34, 30), (16, 34), (32, 12)]
  x = _blob_images(centres, h, w, textured=textured)
  key = jax.random.key(4)
  # alpha=50 keeps λ near 0.5, so each box is about 0.7·H wide and never empty.
  out, _ = jaxmix.saliencymix(key, x, alpha=50.0, mode=mode)
  plan = jaxmix.sample_saliencymix(
    key, 4, (h, w), saliency=jaxmix.spectral_residual_saliency(x), alpha=50.0, mode=mode
  )
  index = np.asarray(plan.index)
  for i, (t, b, le, r) in enumerate(_boxes(plan)):
    src = index[0] if mode == "batch" else index[i]
    cy, cx = centres[src]
    assert t <= cy < b and le <= cx < r, (i, (t, b, le, r), (cy, cx))
    # The one-call path (low-resolution peak, no resize back) finds the same
    # blob; the box there holds the sample's own partner.
    np.testing.assert_array_equal(out[i, cy, cx], x[index[i], cy, cx])
  if mode == "batch":
    assert len(set(_boxes(plan))) == 1


def test_box_is_centred_on_a_user_maps_argmax():
  b, h, w = 6, 30, 26
  rng = np.random.default_rng(1)
  peaks = [(int(rng.integers(h)), int(rng.integers(w))) for _ in range(b)]
  sal = rng.uniform(0, 1, (b, h, w)).astype(np.float32)
  for i, (py, px) in enumerate(peaks):
    sal[i, py, px] = 2.0
  plan = jaxmix.sample_saliencymix(jax.random.key(3), b, (h, w), saliency=sal, pairing="permute")
  index = np.asarray(plan.index)
  for i, (t, bo, le, r) in enumerate(_boxes(plan)):
    if index[i] == i or bo == t or r == le:
      continue
    cy, cx = peaks[index[i]]
    # Half-open box [c - cut//2, c - cut//2 + cut) before clipping (jaxmix's one box
    # rule, timm's rand_bbox): the far side reaches as far or one further, unless a
    # border clipped it.
    up, down, left, right = cy - t, bo - cy, cx - le, r - cx
    assert up >= 0 and down >= 1 and left >= 0 and right >= 1
    if t > 0 and bo < h:
      assert down - up in (0, 1)
    if le > 0 and r < w:
      assert right - left in (0, 1)
    if t == 0 and bo < h:
      assert up <= down
    if le == 0 and r < w:
      assert left <= right
    assert np.isclose(float(plan.lam[i]), 1 - (bo - t) * (r - le) / (h * w))


def test_box_has_the_drawn_sides_around_a_central_peak():
  """A peak at (H/2, W/2) never clips the box, so each box is timm's box of sides
  (int(H·r), int(W·r)) for one r = √(1-λ), odd sides included (the official code's
  c ± cut//2 box only has even sides)."""
  b, h, w = 64, 30, 26
  sal = np.zeros((b, h, w), np.float32)
  sal[:, h // 2, w // 2] = 1.0
  plan = jaxmix.sample_saliencymix(jax.random.key(2), b, (h, w), saliency=sal, mode="elem")
  box = np.asarray(plan.region)
  box = box[box[:, 1] > box[:, 0]]
  side_h, side_w = box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]
  np.testing.assert_array_equal(box, np.stack(timm_box(h // 2, w // 2, side_h, side_w, h, w), axis=-1))
  # floor(H r) = side_h and floor(W r) = side_w for one r: the intervals of r meet.
  assert np.all(np.maximum(side_h / h, side_w / w) < np.minimum((side_h + 1) / h, (side_w + 1) / w) + 1e-6)
  assert np.any(side_h % 2) and np.any(side_w % 2)


def test_low_resolution_map_peaks_at_the_cell_centre():
  sal = np.zeros((2, 4, 4), np.float32)
  sal[0, 1, 2] = 1.0
  sal[1, 3, 0] = 1.0
  rows, cols = sm.saliency_peaks(jnp.asarray(sal), (16, 20))
  np.testing.assert_array_equal(rows, [6, 14])
  np.testing.assert_array_equal(cols, [12, 2])


@pytest.mark.slow
@settings(max_examples=examples(6), deadline=None)
@given(
  b=st.integers(1, 5),
  h=st.integers(4, 20),
  w=st.integers(4, 20),
  mode=st.sampled_from(["batch", "pair", "elem"]),
)
def test_lam_is_exact_own_share_on_the_output(b, h, w, mode):
  x = jnp.broadcast_to(jnp.arange(1, b + 1, dtype=jnp.float32)[:, None, None, None], (b, h, w, 2))
  sal = jax.random.uniform(jax.random.key(b * h * w), (b, h, w))

  @jax.jit
  def run(key, x, sal):
    plan = jaxmix.sample_saliencymix(key, b, (h, w), saliency=sal, mode=mode)
    return plan, jaxmix.apply(plan, x), jaxmix.mix_labels(plan, jnp.arange(b), num_classes=b)

  plan, out, y = jax.device_get(run(jax.random.key(h + w), x, sal))
  index, lam = plan.index, plan.lam
  for i in range(b):
    own = np.mean(out[i] == i + 1)
    assert np.isclose(lam[i], own if index[i] != i else 1.0)
    assert np.isclose(own + np.mean(out[i] == index[i] + 1), 1.0 if index[i] != i else 2.0)
  np.testing.assert_allclose(np.diagonal(y), lam, atol=1e-6)


def test_pytree_outputs_between_sources_and_same_key():
  b, h, w = 4, 16, 16
  x = jax.random.uniform(jax.random.key(0), (b, h, w, 3))
  seg = jnp.broadcast_to(jnp.arange(b, dtype=jnp.int32)[:, None, None], (b, h, w))
  key = jax.random.key(9)
  (mx, mseg), y = jaxmix.saliencymix(key, (x, seg), jnp.arange(b), num_classes=b)
  (mx2, _), _ = jaxmix.saliencymix(key, (x, seg), jnp.arange(b), num_classes=b)
  np.testing.assert_array_equal(mx, mx2)
  partner = x[::-1]
  from_partner = np.asarray(mseg) != np.asarray(seg)
  np.testing.assert_array_equal(np.asarray(mx)[from_partner], np.asarray(partner)[from_partner])
  np.testing.assert_array_equal(np.asarray(mx)[~from_partner], np.asarray(x)[~from_partner])
  np.testing.assert_allclose(y[jnp.arange(b), jnp.arange(b)], 1 - from_partner.mean(axis=(1, 2)), atol=1e-6)


def test_jit_and_vmap_over_keys():
  b, h, w = 4, 12, 12
  x = jax.random.uniform(jax.random.key(1), (b, h, w, 3))

  def f(key):
    return jaxmix.saliencymix(key, x, jnp.arange(b), num_classes=b)

  key = jax.random.key(2)
  a, ya = f(key)
  j, yj = jax.jit(f)(key)
  np.testing.assert_allclose(j, a, atol=1e-6)
  np.testing.assert_allclose(yj, ya, atol=1e-6)
  keys = jax.random.split(key, 3)
  vm, vy = jax.jit(jax.vmap(f))(keys)
  for k in range(3):
    lo, ly = jax.jit(f)(keys[k])
    np.testing.assert_allclose(vm[k], lo, atol=1e-6)
    np.testing.assert_allclose(vy[k], ly, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.uint8])
def test_built_in_map_reads_bf16_and_uint8_pixels(dtype):
  # The one-call form computes the map from the pixels themselves; the plan layer's dtypes
  # (bf16, f16, uint8, values included) are test_contract.py's test_dtype_kept.
  x = jax.random.uniform(jax.random.key(1), (4, 16, 16, 3))
  x = (x * 255).astype(jnp.uint8) if dtype == jnp.uint8 else x.astype(dtype)
  out, _ = jaxmix.saliencymix(jax.random.key(0), x)
  assert out.dtype == x.dtype and out.shape == x.shape


def test_traced_hyperparameters_do_not_retrace():
  b = 4
  x = jax.random.uniform(jax.random.key(1), (b, 12, 12, 3))

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(key, alpha, prob, smoothing):
    return jaxmix.saliencymix(
      key, x, jnp.arange(b), num_classes=b, alpha=alpha, prob=prob, label_smoothing=smoothing
    )

  key = jax.random.key(0)
  out, y = f(key, 1.0, 0.0, 0.0)
  np.testing.assert_array_equal(out, x)
  np.testing.assert_allclose(y, jnp.eye(b))
  out, _ = f(key, 0.0, 1.0, 0.0)  # alpha = 0 turns mixing off
  np.testing.assert_array_equal(out, x)
  out, _ = f(key, 2.0, 1.0, 0.1)
  assert not np.array_equal(np.asarray(out), np.asarray(x))


def test_bad_arguments():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="saliency"):
    jaxmix.sample_saliencymix(key, 4, (8, 8), saliency=jnp.zeros((4, 8, 8, 1)))
  with pytest.raises(ValueError, match="saliency"):
    jaxmix.sample_saliencymix(key, 4, (8, 8), saliency=jnp.zeros((3, 8, 8)))
  with pytest.raises(TypeError, match="saliency"):
    jaxmix.sample_saliencymix(key, 4, (8, 8), saliency=jnp.zeros((4, 8, 8), bool))
  with pytest.raises(ValueError, match="saliency"):
    jaxmix.saliencymix(key, jnp.zeros((4, 8, 8, 3)), saliency=jnp.zeros((4, 8)))
  with pytest.raises(ValueError, match="mode"):
    jaxmix.saliencymix(key, jnp.zeros((4, 8, 8, 3)), mode="sample")
  with pytest.raises(ValueError, match="alpha"):
    jaxmix.saliencymix(key, jnp.zeros((4, 8, 8, 3)), alpha=-1.0)
  with pytest.raises(ValueError, match="size"):
    jaxmix.spectral_residual_saliency(jnp.zeros((2, 8, 8, 3)), size=2)
  with pytest.raises(ValueError, match="images"):
    jaxmix.spectral_residual_saliency(jnp.zeros((8, 8)))
  with pytest.raises(ValueError, match="data_format"):
    jaxmix.spectral_residual_saliency(jnp.zeros((2, 8, 8, 3)), "HWC")


def test_grad_wrt_inputs():
  x = jax.random.uniform(jax.random.key(3), (4, 12, 12, 3))
  key = jax.random.key(1)
  g = jax.grad(lambda x: jnp.sum(jaxmix.saliencymix(key, x)[0]))(x)
  # Each output pixel is a copy of one input pixel; the saliency peak (an
  # argmax) carries no gradient.
  np.testing.assert_allclose(jnp.sum(g), x.size, rtol=1e-6)
  assert set(np.unique(np.asarray(g)).tolist()) <= {0.0, 1.0, 2.0}


def test_built_in_map_reads_nchw():
  # The built-in map must read NCHW pixels as NHWC ones; apply on NCHW leaves (elem mode, the same
  # plan structure as batch mode) is test_contract.py's test_nchw_equals_nhwc_transposed.
  x = _blob_images([(10, 12), (20, 6), (8, 20)], 28, 26, textured=True)
  key = jax.random.key(7)
  nhwc, _ = jaxmix.saliencymix(key, x)
  nchw, _ = jaxmix.saliencymix(key, jnp.transpose(x, (0, 3, 1, 2)), data_format="NCHW")
  np.testing.assert_array_equal(jnp.transpose(nchw, (0, 2, 3, 1)), nhwc)


def test_batch_mode_pastes_the_shared_box_by_rows_with_the_same_output():
  """One box per batch (the official code) takes the row-paste path; it must change nothing but speed."""
  images = jnp.asarray(np.random.default_rng(3).integers(0, 256, (6, 20, 16, 3)), jnp.uint8)
  saliency = jaxmix.spectral_residual_saliency(images)
  mix = jax.jit(jaxmix.apply)
  for seed in range(8):
    plan = jaxmix.sample_saliencymix(jax.random.key(seed), 6, (20, 16), saliency=saliency, mode="batch")
    assert plan.shared_region
    np.testing.assert_array_equal(mix(plan, images), mix(plan.replace(shared_region=False), images))
  assert not jaxmix.sample_saliencymix(jax.random.key(0), 6, (20, 16), saliency=saliency).shared_region
