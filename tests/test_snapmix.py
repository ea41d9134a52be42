"""SnapMix (jaxmix.guided): the partner's box resized into the sample's box, labels by CAM mass.

Checked against a NumPy transcription of the official code (Shaoli-Huang/SnapMix, ``utils/mixmethod.py``):
torch's ``align_corners=True`` bilinear resize of box B into box A, ``get_spm``'s semantic percent map
(bilinear upsampling with half-pixel centres, minimum off, sum 1), λ_a and λ_b from its mass on
hand-built and random CAMs, and the degenerate cases (same labels, a flat map, an empty box); λ is the
real share of own pixels; the contract's properties (same key, jit, vmap, no retrace, dtypes, errors).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix

guided = jaxmix.guided
B, H, W, K = 6, 16, 12, 5
LABELS = np.arange(B) % K


def plan_of(seed=0, **kw):
  kw = {"mode": "elem", "pairing": "permute", **kw}
  return guided.sample_snapmix(jax.random.key(seed), B, (H, W), **kw)


def torch_resize_align_corners(patch, out_h, out_w):
  """F.interpolate(mode='bilinear', align_corners=True) of a [h, w, C] patch, in float64."""
  def axis(n_in, n_out):
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    src = np.arange(n_out) * scale
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0

  r0, r1, fr = axis(patch.shape[0], out_h)
  c0, c1, fc = axis(patch.shape[1], out_w)
  rows = patch[r0] * (1 - fr)[:, None, None] + patch[r1] * fr[:, None, None]
  return rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]


def official_mix(x, plan):
  """The official paste: input[:, :, A] = interpolate(input[rand_index, :, B], size(A))."""
  x = np.asarray(x, np.float64)
  out = x.copy()
  for i, j in enumerate(np.asarray(plan.index)):
    t, b, left, r = np.asarray(plan.region[i])
    st, sb, sl, sr = np.asarray(plan.source[i])
    if b > t and r > left:
      out[i, t:b, left:r] = torch_resize_align_corners(x[j, st:sb, sl:sr], b - t, r - left)
  return out


def upsample_half_pixel(cam, out_h, out_w):
  """F.interpolate(mode='bilinear', align_corners=False) of [h, w] maps (get_spm's upsampling)."""
  def axis(n_in, n_out):
    src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    return i0, np.minimum(i0 + 1, n_in - 1), src - i0

  r0, r1, fr = axis(cam.shape[-2], out_h)
  c0, c1, fc = axis(cam.shape[-1], out_w)
  rows = cam[..., r0, :] * (1 - fr)[:, None] + cam[..., r1, :] * fr[:, None]
  return rows[..., c0] * (1 - fc) + rows[..., c1] * fc


def official_weights(plan, cam, labels, k=K):
  """get_spm + snapmix's λ_a, λ_b with the official same-label and NaN rules (float64)."""
  spm = upsample_half_pixel(np.asarray(cam, np.float64), H, W)
  spm = spm - spm.min((1, 2), keepdims=True)
  with np.errstate(invalid="ignore", divide="ignore"):
    spm = spm / spm.sum((1, 2), keepdims=True)
  index = np.asarray(plan.index)
  lam = np.asarray(plan.lam, np.float64)
  la, lb = np.ones(B), np.zeros(B)
  for i, j in enumerate(index):
    t, b, left, r = np.asarray(plan.region[i])
    st, sb, sl, sr = np.asarray(plan.source[i])
    if lam[i] == 1:
      continue
    a = 1 - spm[i, t:b, left:r].sum() / (spm[i].sum() + 1e-8)
    p = spm[j, st:sb, sl:sr].sum() / (spm[j].sum() + 1e-8)
    if labels[i] == labels[j]:
      a, p = a + p, p + a
    la[i] = lam[i] if np.isnan(a) else a
    lb[i] = 1 - lam[i] if np.isnan(p) else p
  eye = np.eye(k)
  return la, lb, la[:, None] * eye[labels] + lb[:, None] * eye[labels[index]]


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_mixed_pixels_match_the_official_resize(mode):
  plan = plan_of(1, mode=mode)
  x = jax.random.uniform(jax.random.key(0), (B, H, W, 3))
  np.testing.assert_allclose(jaxmix.apply(plan, x), official_mix(x, plan), atol=1e-5)
  # NCHW and a [B, H, W] leaf follow the same plan.
  nchw = jaxmix.apply(plan, jnp.moveaxis(x, -1, 1), data_format="NCHW")
  np.testing.assert_allclose(jnp.moveaxis(nchw, 1, -1), jaxmix.apply(plan, x), atol=1e-6)


def test_lambda_is_the_real_share_of_own_pixels_and_boxes_are_official():
  plan = plan_of(2, alpha=1.0)
  ids = jnp.broadcast_to(jnp.arange(B, dtype=jnp.int32)[:, None, None], (B, H, W))
  out = np.asarray(jaxmix.apply(plan, ids))  # integer leaves: nearest, never interpolated
  share = (out == np.arange(B)[:, None, None]).mean((1, 2))
  self_pair = np.asarray(plan.index) == np.arange(B)
  np.testing.assert_allclose(np.where(self_pair, 1.0, share), plan.lam, atol=1e-6)
  region, source = np.asarray(plan.region), np.asarray(plan.source)
  assert ((region[:, 1] >= region[:, 0]) & (region[:, 1] <= H) & (region[:, 3] <= W)).all()
  # Both boxes hold a pixel wherever the sample is mixed (the official area > 0 rule).
  mixed = np.asarray(plan.lam) < 1
  src_area = (source[:, 1] - source[:, 0]) * (source[:, 3] - source[:, 2])
  assert (src_area[mixed] > 0).all() and (src_area[~mixed] == 0).all()
  y = jaxmix.mix_labels(plan, LABELS, num_classes=K)
  np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-6)


def test_box_areas_follow_beta_five():
  # Mean own share with β = 5 against the box rule (sides int(H·√(1−λ)), uniform centre, clipped) in NumPy.
  n = 4000
  plan = guided.sample_snapmix(jax.random.key(3), n, (H, W), mode="elem", pairing="roll")
  rng = np.random.default_rng(0)
  lam = rng.beta(5, 5, n)
  cut_h, cut_w = (H * np.sqrt(1 - lam)).astype(int), (W * np.sqrt(1 - lam)).astype(int)
  cy, cx = rng.integers(0, H, n), rng.integers(0, W, n)
  hh = np.clip(cy - cut_h // 2 + cut_h, 0, H) - np.clip(cy - cut_h // 2, 0, H)
  ww = np.clip(cx - cut_w // 2 + cut_w, 0, W) - np.clip(cx - cut_w // 2, 0, W)
  ref = 1 - hh * ww / (H * W)
  assert abs(np.asarray(plan.lam).mean() - ref.mean()) < 0.01


@pytest.mark.parametrize("cam_shape", [(H, W), (4, 3)])
def test_label_weights_match_the_official_rule(cam_shape):
  plan = plan_of(4)
  cam = np.array(jax.random.normal(jax.random.key(5), (B, *cam_shape)), np.float32)
  cam[1] = 3.0  # flat: the official NaN, area weights
  labels = LABELS.copy()
  labels[np.asarray(plan.index)[2]] = labels[2]  # a same-label pair
  _, _, ref = official_weights(plan, cam, labels)
  got = guided.snapmix_labels(plan, cam, labels, num_classes=K)
  np.testing.assert_allclose(got, ref, atol=2e-5)


def test_hand_built_cams():
  plan = plan_of(6, alpha=1.0)
  region, source = np.asarray(plan.region), np.asarray(plan.source)
  index = np.asarray(plan.index)
  i = int(np.argmax(np.asarray(plan.lam) < 1))  # a mixed sample
  j = index[i]
  cam = np.zeros((B, H, W), np.float32)
  # Own map: all its mass at one pixel inside box A, so the own label loses everything.
  cam[i, region[i, 0], region[i, 2]] = 1.0
  # Partner's map: all its mass inside box B, so the partner's label gets weight 1.
  cam[j, source[i, 0], source[i, 2]] = 1.0
  labels = np.arange(B)  # all different
  got = np.asarray(guided.snapmix_labels(plan, cam, labels, num_classes=B))
  if j != i:
    np.testing.assert_allclose(got[i, labels[i]], 0.0, atol=1e-6)
    np.testing.assert_allclose(got[i, labels[j]], 1.0, atol=1e-6)
  # Uniform maps: λ_a is the area left, λ_b the share of box B in the partner.
  flat_ramp = np.ones((B, H, W), np.float32) + 1e-3 * (np.arange(H * W) % 2).reshape(H, W)
  la, lb, _ = official_weights(plan, flat_ramp, labels, B)
  got = np.asarray(guided.snapmix_labels(plan, flat_ramp, labels, num_classes=B))
  np.testing.assert_allclose(got[np.arange(B), labels], la, atol=1e-5)


def test_unmixed_samples_keep_their_labels_and_prob_zero_is_the_identity():
  x = jax.random.uniform(jax.random.key(0), (B, H, W, 3))
  cam = jax.random.uniform(jax.random.key(1), (B, 4, 4))
  out, y = guided.snapmix(jax.random.key(2), x, LABELS, cam=cam, prob=0.0, num_classes=K)
  np.testing.assert_array_equal(out, x)
  np.testing.assert_array_equal(y, np.eye(K)[LABELS])
  # α tiny: λ ∈ {0, 1}, so many empty boxes; those samples are not mixed.
  plan = plan_of(7, alpha=1e-3)
  y = np.asarray(guided.snapmix_labels(plan, cam, LABELS, num_classes=K))
  unmixed = np.asarray(plan.lam) == 1
  np.testing.assert_allclose(y[unmixed], np.eye(K)[LABELS][unmixed])


def test_dtypes_same_key_and_jit_equals_eager():
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (B, H, W, 3)), jnp.uint8)
  cam = jax.random.uniform(jax.random.key(1), (B, 4, 3))
  mix = jax.jit(lambda x: guided.snapmix(jax.random.key(0), x, None, cam=cam)[0])
  for dtype in (jnp.uint8, jnp.bfloat16, jnp.int32):
    out = mix(x.astype(dtype))
    assert out.dtype == dtype and out.shape == x.shape

  def f(key, alpha=5.0, prob=1.0, smoothing=0.0):
    return guided.snapmix(
      key, x, LABELS, cam=cam, alpha=alpha, prob=prob, label_smoothing=smoothing, mode="elem",
      num_classes=K,
    )

  jf = jax.jit(f)
  a = jf(jax.random.key(3))
  chex.assert_trees_all_equal(a, jf(jax.random.key(3)))
  chex.assert_trees_all_close(f(jax.random.key(3)), a, atol=1e-5)  # eager


@pytest.mark.slow
def test_vmap_and_no_retrace():
  x = jax.random.uniform(jax.random.key(0), (B, H, W, 3))
  cam = jax.random.uniform(jax.random.key(1), (B, 4, 3))

  def f(key, alpha=5.0, prob=1.0, smoothing=0.0):
    return guided.snapmix(
      key, x, LABELS, cam=cam, alpha=alpha, prob=prob, label_smoothing=smoothing, mode="elem",
      num_classes=K,
    )

  jf = jax.jit(f)
  keys = jax.random.split(jax.random.key(4), 3)
  batched = jax.jit(jax.vmap(f))(keys)
  for i in range(3):
    chex.assert_trees_all_close(jax.tree.map(lambda t, i=i: t[i], batched), jf(keys[i]), atol=1e-5)
  chex.clear_trace_counter()
  g = jax.jit(chex.assert_max_traces(n=1)(f))
  for i, values in enumerate([(5.0, 1.0, 0.0), (1.0, 0.5, 0.1), (0.0, 0.0, 0.2)]):
    g(jax.random.key(i), *values)


def test_class_activation_map():
  feats = jax.random.normal(jax.random.key(0), (B, 3, 2, 4))
  kernel = jax.random.normal(jax.random.key(1), (4, K))
  got = guided.class_activation_map(feats, kernel, LABELS)
  ref = np.einsum("bhwc,cb->bhw", np.maximum(np.asarray(feats), 0), np.asarray(kernel)[:, LABELS])
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


SAMPLE = functools.partial(guided.sample_snapmix, jax.random.key(0), 4)
CAM = jnp.ones((B, 4, 4))
LABELS_OF = functools.partial(guided.snapmix_labels, labels=LABELS, num_classes=K)
CAM_OF = guided.class_activation_map


@pytest.mark.parametrize(
  "call, error, match",
  [
    (lambda: SAMPLE(None), ValueError, "spatial_shape"),
    (lambda: SAMPLE((8, 8), alpha=-1.0), ValueError, "alpha"),
    (lambda: SAMPLE((8, 8), prob=2.0), ValueError, "prob"),
    (lambda: SAMPLE((8, 8), interpolation="cubic"), ValueError, "interpolation"),
    (lambda: LABELS_OF(plan_of(), jnp.ones((B + 1, 4, 4))), ValueError, "cam"),
    (lambda: LABELS_OF(plan_of(), jnp.ones((B, 16))), ValueError, "cam"),
    (lambda: guided.snapmix_labels(plan_of(), jnp.ones((B, 4, 4), jnp.int32), LABELS), TypeError, "cam"),
    (lambda: LABELS_OF(jaxmix.sample_cutmix(jax.random.key(0), B, (H, W)), CAM), TypeError, "plan"),
    (lambda: CAM_OF(jnp.ones((B, 2, 2)), jnp.ones((2, K)), LABELS), ValueError, "features"),
    (lambda: CAM_OF(jnp.ones((B, 2, 2, 3)), jnp.ones((2, K)), LABELS), ValueError, "kernel"),
    (lambda: CAM_OF(jnp.ones((B, 2, 2, 2)), jnp.ones((2, K)), LABELS + K), ValueError, "labels"),
  ],
)
def test_bad_input_names_the_argument(call, error, match):
  with pytest.raises(error, match=match):
    call()
