"""TokenMix (jaxmix.guided): block masks on the token grid and the teacher-activation labels.

Checked against a NumPy/Python transcription of the official mask generator (Sense-X/TokenMix,
``tokenmix.py``, ``generate_mask``) by the distribution of its counts and token marginals on small grids,
and against a transcription of its label rule on hand-built activations; λ is the real share of own
pixels, labels follow the plan, and the contract's properties (same key, jit, vmap, no retrace, errors).
The registry's contract suite (tests/test_contract.py) covers the rest.
"""

import functools
import math
import random

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix

guided = jaxmix.guided
B, K = 6, 5
LABELS = jnp.arange(B) % K


def official_mask(rng, grid, target, min_aspect=0.3, attempts=10):
  """The official ``generate_mask`` on an h × w grid with the target count given (Python's random)."""
  height, width = grid
  log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
  mask = np.zeros(grid, np.int64)
  count = 0
  while count < target:
    max_mask = target - count
    delta = 0
    for _ in range(attempts):
      area = rng.uniform(1, max_mask)
      aspect = math.exp(rng.uniform(*log_aspect))
      h = int(round(math.sqrt(area * aspect)))
      w = int(round(math.sqrt(area / aspect)))
      if w < width and h < height:
        top = rng.randint(0, height - h)
        left = rng.randint(0, width - w)
        masked = mask[top : top + h, left : left + w].sum()
        if 0 < h * w - masked <= max_mask:
          delta = h * w - masked
          mask[top : top + h, left : left + w] = 1
        if delta > 0:
          break
    if delta == 0:
      break
    count += delta
  return mask


def official_target(mask_ratio, minimum_tokens, n):
  return min(n, int(mask_ratio * n) + minimum_tokens)


def jax_masks(n, grid, seed=0, **kw):
  """n masks from sample_tokenmix in elem mode with 1-pixel tokens: bool [n, h, w], True = partner."""
  key = jax.random.key(seed)
  plan = guided.sample_tokenmix(key, n, grid, patch_size=1, mode="elem", pairing="roll", **kw)
  return np.asarray(plan.mask) == 0, np.asarray(plan.lam)


@pytest.mark.parametrize(
  "grid, mask_ratio, minimum_tokens",
  [((4, 6), 0.5, 2), ((5, 5), 0.0, 7), pytest.param((14, 14), 0.5, 14, marks=pytest.mark.slow)],
)
def test_mask_counts_and_marginals_match_the_official_rule(grid, mask_ratio, minimum_tokens):
  n = 3000
  target = official_target(mask_ratio, minimum_tokens, grid[0] * grid[1])
  rng = random.Random(0)
  ref = np.stack([official_mask(rng, grid, target) for _ in range(n)]).astype(bool)
  got, lam = jax_masks(n, grid, mask_ratio=mask_ratio, minimum_tokens=minimum_tokens)
  counts_ref, counts = ref.sum((1, 2)), got.sum((1, 2))
  assert counts.max() <= target
  # λ is the token share exactly.
  np.testing.assert_allclose(lam, 1 - counts / (grid[0] * grid[1]), rtol=1e-6)
  # The count distribution (how often the mask stops short) and each token's marginal.
  bins = np.arange(target + 2)
  hist_ref = np.histogram(counts_ref, bins)[0] / n
  hist = np.histogram(counts, bins)[0] / n
  assert np.abs(hist - hist_ref).max() < 0.04, (hist, hist_ref)
  assert abs(counts.mean() - counts_ref.mean()) < 0.02 * target + 0.1
  assert np.abs(got.mean(0) - ref.mean(0)).max() < 0.05


def test_every_step_adds_one_block_inside_the_grid():
  # A single step (target <= the first block): the mask is one rectangle, never the full width or height.
  got, _ = jax_masks(500, (6, 7), seed=1, mask_ratio=0.0, minimum_tokens=4)
  for m in got:
    rows, cols = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
    box = m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    if box.all():  # one block
      assert box.shape[0] < 6 and box.shape[1] < 7


def test_random_mask_type_takes_exactly_the_target():
  got, lam = jax_masks(200, (4, 6), mask_type="random", mask_ratio=0.25, minimum_tokens=3)
  np.testing.assert_array_equal(got.sum((1, 2)), 9)
  assert len({m.tobytes() for m in got}) > 100
  np.testing.assert_allclose(lam, 1 - 9 / 24)


def test_official_defaults_on_deit_grid():
  plan = guided.sample_tokenmix(jax.random.key(0), 64, (224, 224), mode="elem")
  tokens = np.asarray(plan.mask)[:, ::16, ::16]
  # Whole 16 × 16 patches: the mask is the token mask upsampled.
  np.testing.assert_array_equal(np.repeat(np.repeat(tokens, 16, 1), 16, 2), plan.mask)
  counts = (tokens == 0).sum((1, 2))
  assert counts.max() <= 112 and counts.mean() > 100
  np.testing.assert_allclose(plan.lam, 1 - counts / 196, rtol=1e-6)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_lambda_is_the_real_share_of_own_pixels(mode):
  b, h, w = 5, 12, 8
  plan = guided.sample_tokenmix(jax.random.key(3), b, (h, w), patch_size=(3, 2), mode=mode, pairing="permute")
  ids = jnp.broadcast_to(jnp.arange(b, dtype=jnp.float32)[:, None, None, None], (b, h, w, 2))
  out = np.asarray(jaxmix.apply(plan, ids))[..., 0]
  share = (out == np.arange(b)[:, None, None]).mean((1, 2))
  own_partner = np.asarray(plan.index) == np.arange(b)
  np.testing.assert_allclose(np.where(own_partner, 1.0, share), plan.lam, atol=1e-6)
  # Pixels come whole from one source, and whole tokens: constant on each 3 × 2 patch.
  assert set(np.unique(out)) <= set(range(b))
  np.testing.assert_array_equal(out, np.repeat(np.repeat(out[:, ::3, ::2], 3, 1), 2, 2))
  y = jaxmix.mix_labels(plan, LABELS[:b], num_classes=K)
  np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-6)


def test_prob_zero_is_the_identity_and_dtypes_are_kept():
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (B, 8, 8, 3)), jnp.uint8)
  out, y = guided.tokenmix(jax.random.key(0), x, LABELS, patch_size=2, prob=0.0, num_classes=K)
  np.testing.assert_array_equal(out, x)
  np.testing.assert_array_equal(y, jax.nn.one_hot(LABELS, K))
  for dtype in (jnp.uint8, jnp.bfloat16, jnp.int32):
    xd = x.astype(dtype)
    out, _ = guided.tokenmix(jax.random.key(1), xd, None, patch_size=2)
    assert out.dtype == dtype and out.shape == x.shape


def test_same_key_same_output_jit_equals_eager_and_vmap():
  x = jax.random.uniform(jax.random.key(0), (B, 8, 12, 3))

  def f(key):
    return guided.tokenmix(key, x, LABELS, patch_size=(2, 3), mode="elem", num_classes=K)

  a, b = f(jax.random.key(1)), f(jax.random.key(1))
  chex.assert_trees_all_equal(a, b)
  chex.assert_trees_all_close(jax.jit(f)(jax.random.key(1)), a)
  keys = jax.random.split(jax.random.key(2), 3)
  batched = jax.vmap(f)(keys)
  for i in range(3):
    chex.assert_trees_all_close(jax.tree.map(lambda t, i=i: t[i], batched), f(keys[i]))


def test_no_retrace_when_traced_options_change():
  x = jax.random.uniform(jax.random.key(0), (B, 8, 8, 3))
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(key, mask_ratio, minimum_tokens, min_aspect, prob, smoothing):
    return guided.tokenmix(
      key, x, LABELS, patch_size=2, mask_ratio=mask_ratio, minimum_tokens=minimum_tokens,
      min_aspect=min_aspect, prob=prob, label_smoothing=smoothing, num_classes=K,
    )

  for i, values in enumerate([(0.5, 14, 0.3, 1.0, 0.0), (0.2, 0, 0.5, 0.5, 0.1), (1.0, 3, 1.0, 0.0, 0.2)]):
    f(jax.random.key(i), *values)


# --- teacher-activation labels ------------------------------------------------------------------------


def official_labels(partner_tokens, activation, labels, partner, k):
  """The official label rule: y1 = own map's mass off the mask, y2 = partner's map's mass on it."""
  a = np.asarray(activation, np.float64)
  a = a / (a.sum(1, keepdims=True) + 1e-8)
  m = np.asarray(partner_tokens, np.float64)
  y1 = (a * (1 - m)).sum(1)
  y2 = (a[partner] * m).sum(1)
  eye = np.eye(k)
  return y1[:, None] * eye[labels] + y2[:, None] * eye[labels[partner]]


@pytest.mark.parametrize("pairing", ["flip", "permute"])
def test_teacher_labels_match_the_official_rule(pairing):
  plan = guided.sample_tokenmix(jax.random.key(4), B, (16, 16), patch_size=4, pairing=pairing, mode="elem")
  partner_tokens = (np.asarray(plan.mask)[:, ::4, ::4] == 0).reshape(B, 16)
  # Hand-built maps: one hot token, a ramp, a constant, ...
  act = np.zeros((B, 16), np.float32)
  act[0, 5] = 1.0
  act[1] = np.arange(16)
  act[2] = 1.0
  act[3:] = np.random.default_rng(0).uniform(size=(B - 3, 16))
  got = guided.tokenmix_labels(plan, act, LABELS, num_classes=K)
  index = np.asarray(plan.index)
  ref = official_labels(partner_tokens, act, np.asarray(LABELS), index, K)
  self_pair = index == np.arange(B)
  ref[self_pair] = np.eye(K)[np.asarray(LABELS)][self_pair]
  np.testing.assert_allclose(got, ref, atol=1e-6)
  # Constant maps give each source its token share.
  np.testing.assert_allclose(
    guided.tokenmix_labels(plan, np.ones((B, 16), np.float32), LABELS, num_classes=K),
    jaxmix.mix_labels(plan, LABELS, num_classes=K),
    atol=1e-6,
  )


def test_teacher_labels_keep_mixup_lambda_and_are_traced():
  plan = jaxmix.sample_mixup(jax.random.key(0), B, alpha=1.0, mode="elem")
  act = jax.random.uniform(jax.random.key(1), (B, 16))
  got = guided.tokenmix_labels(plan, act, LABELS, num_classes=K, label_smoothing=0.1)
  want = jaxmix.mix_labels(plan, LABELS, num_classes=K, label_smoothing=0.1)
  np.testing.assert_allclose(got, want, atol=1e-6)
  g = jax.jit(lambda a, s: guided.tokenmix_labels(plan, a, LABELS, num_classes=K, label_smoothing=s))
  np.testing.assert_allclose(g(act, 0.1), got, atol=1e-6)
  grad = jax.grad(lambda a: guided.tokenmix_labels(plan, a, jnp.eye(B)).sum() + 0.0 * a.sum())(act)
  np.testing.assert_array_equal(grad, 0.0)


SAMPLE = functools.partial(guided.sample_tokenmix, jax.random.key(0), 4)


@pytest.mark.parametrize(
  "call, error, match",
  [
    (lambda: SAMPLE((30, 32)), ValueError, "patch_size"),
    (lambda: SAMPLE((32, 32), patch_size=0), ValueError, "patch_size"),
    (lambda: SAMPLE((32, 32), patch_size=2.0), TypeError, "patch_size"),
    (lambda: SAMPLE((32, 32), mask_ratio=1.5), ValueError, "mask_ratio"),
    (lambda: SAMPLE((32, 32), minimum_tokens=-1), ValueError, "minimum"),
    (lambda: SAMPLE((32, 32), min_aspect=0.0), ValueError, "min_aspect"),
    (lambda: SAMPLE((32, 32), attempts=0), ValueError, "attempts"),
    (lambda: SAMPLE((32, 32), mask_type="grid"), ValueError, "mask_type"),
    (lambda: SAMPLE(None), ValueError, "spatial_shape"),
  ],
)
def test_bad_sampler_input_names_the_argument(call, error, match):
  with pytest.raises(error, match=match):
    call()


@pytest.mark.parametrize(
  "activation, kwargs, error, match",
  [
    (jnp.ones((B + 1, 16)), {}, ValueError, "activation"),
    (jnp.ones((B, 2, 16)), {}, ValueError, "activation"),
    (jnp.ones((B, 15)), {}, ValueError, "token_grid"),
    (jnp.ones((B, 16)), dict(token_grid=(2, 4)), ValueError, "token_grid"),
    (jnp.ones((B, 16), jnp.int32), {}, TypeError, "activation"),
    (-jnp.ones((B, 16)), {}, ValueError, "activation"),
  ],
)
def test_bad_activation_names_the_argument(activation, kwargs, error, match):
  plan = guided.sample_tokenmix(jax.random.key(0), B, (16, 16), patch_size=4)
  with pytest.raises(error, match=match):
    guided.tokenmix_labels(plan, activation, LABELS, num_classes=K, **kwargs)
  with pytest.raises(TypeError, match="plan"):
    guided.tokenmix_labels(jaxmix.sample_multimix(jax.random.key(0), B), jnp.ones((B, 16)), LABELS)
