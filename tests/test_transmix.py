"""TransMix (jaxmix.losses.transmix_labels): labels weighted by the CLS attention on the pasted region.

Checked against a NumPy transcription of the official rule (box mask downsampled by nearest
``nn.Upsample`` to the token grid, attention share inside it, averaged with the area λ), and by its
limits: uniform attention gives the token grid's area λ, attention inside the box gives the partner's
label, MixUp-chosen samples keep their λ, and label mass stays 1.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix

transmix_labels = jaxmix.losses.transmix_labels

B, H, W, K = 6, 32, 32, 5
GRID = (4, 4)  # 8 × 8-pixel patches
LABELS = jnp.arange(B) % K


def cutmix_plan(seed=0, hw=(H, W), **kw):
  return jaxmix.sample_cutmix(jax.random.key(seed), B, hw, alpha=1.0, mode="elem", **kw)


def token_own(plan, grid):
  """NumPy: own weight at token (i, j), read at pixel (i·H//h, j·W//w) (PyTorch's nearest upsampling)."""
  own = np.asarray(plan.own_weight(), np.float64)
  h, w = own.shape[1:]
  rows, cols = np.arange(grid[0]) * h // grid[0], np.arange(grid[1]) * w // grid[1]
  return own[:, rows][:, :, cols].reshape(len(own), -1)


def random_attention(seed, n, heads=None):
  shape = (B, n) if heads is None else (B, heads, n)
  return jax.nn.softmax(2.0 * jax.random.normal(jax.random.key(seed), shape), axis=-1)


@pytest.mark.parametrize(
  "hw, grid", [((H, W), GRID), ((30, 28), (5, 4)), ((224, 224), (14, 14)), ((30, 29), (4, 4))]
)
def test_uniform_attention_gives_the_token_grid_area(hw, grid):
  plan = cutmix_plan(1, hw)
  n = grid[0] * grid[1]
  y = transmix_labels(
    plan, jnp.ones((B, n)) / n, jnp.eye(B), area_weight=0.0, token_grid=None if grid[0] == grid[1] else grid
  )
  own = token_own(plan, grid).mean(1)
  np.testing.assert_allclose(np.diag(y), own, atol=1e-6)  # own label weight
  assert np.any(np.abs(own - np.asarray(plan.lam)) > 1e-3)  # the token grid's area, not the pixel area


def test_attention_inside_the_pasted_region_gives_the_partner_all_the_weight():
  plan = cutmix_plan(2)
  pasted = 1.0 - token_own(plan, GRID)  # 1 on tokens pasted from the partner
  has = pasted.sum(1) > 0
  assert has.sum() >= 3
  noise = np.random.RandomState(0).uniform(1, 2, pasted.shape)
  attention = jnp.asarray(np.where(pasted > 0, 1.0, 1e-6) * noise)
  y = np.asarray(transmix_labels(plan, attention, jnp.eye(B), area_weight=0.0))
  partner = np.asarray(plan.index)
  own_w = np.diag(y)
  np.testing.assert_allclose(own_w[has], 0.0, atol=1e-4)
  np.testing.assert_allclose(y[np.arange(B), partner][has], 1.0, atol=1e-4)
  # The official blend: half the attention λ, half the area λ.
  y = np.asarray(transmix_labels(plan, attention, jnp.eye(B)))
  np.testing.assert_allclose(np.diag(y)[has], 0.5 * np.asarray(plan.lam)[has], atol=1e-4)


def official_transmix(plan, attention, labels, num_classes):
  """NumPy transcription of Beckschen/TransMix's ``transmix_label`` for a batch-mode CutMix plan
  with flip pairing: box mask → nearest downsampling to √N × √N → attention share of the box →
  averaged with the area ratio; ``y1·(1 − λ) + y2·λ`` with y2 the flipped labels."""
  top, bottom, left, right = np.asarray(plan.region[0])
  mask = np.zeros((H, W))
  mask[top:bottom, left:right] = 1
  g = int(np.sqrt(attention.shape[1]))
  idx = np.arange(g) * H // g
  mask = mask[idx][:, idx].reshape(1, -1)
  attn = np.asarray(attention, np.float64)
  w1, w2 = ((1 - mask) * attn).sum(1), (mask * attn).sum(1)
  lam0 = (bottom - top) * (right - left) / (H * W)
  lam = (lam0 + w2 / (w1 + w2)) / 2
  y1 = np.eye(num_classes)[np.asarray(labels)]
  return y1 * (1 - lam)[:, None] + y1[::-1] * lam[:, None]


def test_matches_the_official_rule_for_a_batch_mode_cutmix():
  for seed in range(4):
    plan = jaxmix.sample_cutmix(jax.random.key(seed), B, (H, W), alpha=1.0)
    attention = random_attention(seed, 16)
    got = transmix_labels(plan, attention, LABELS, num_classes=K)
    np.testing.assert_allclose(got, official_transmix(plan, attention, LABELS, K), atol=1e-5)


def test_heads_are_averaged():
  plan = cutmix_plan(3)
  attention = random_attention(3, 16, heads=4)
  chex.assert_trees_all_close(
    transmix_labels(plan, attention, LABELS, num_classes=K),
    transmix_labels(plan, attention.mean(1), LABELS, num_classes=K),
    atol=1e-6,
  )


def test_mixup_chosen_samples_keep_their_lambda_and_mass_stays_one():
  plan = jaxmix.sample_mixup_cutmix(
    jax.random.key(4), B, (H, W), mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, mode="elem"
  )
  blended = np.asarray(plan.blend) < 1  # MixUp-chosen samples
  assert blended.any() and (~blended).any(), plan.blend
  attention = random_attention(5, 16, heads=3)
  y = transmix_labels(plan, attention, LABELS, num_classes=K, label_smoothing=0.1, area_weight=0.3)
  np.testing.assert_allclose(np.asarray(y).sum(-1), 1.0, atol=1e-6)
  y = np.asarray(transmix_labels(plan, attention, jnp.eye(B), area_weight=0.3))
  np.testing.assert_array_equal(np.diag(y)[blended], np.asarray(plan.lam)[blended])
  # CutMix-chosen samples follow the attention, not the area.
  assert np.any(np.abs(np.diag(y) - np.asarray(plan.lam))[~blended & (np.asarray(plan.lam) < 1)] > 1e-3)
  # A pure MixUp plan (no spatial shape) too, with any token count.
  mix = jaxmix.sample_mixup(jax.random.key(6), B, alpha=1.0, mode="elem")
  y = np.asarray(transmix_labels(mix, random_attention(6, 9), jnp.eye(B)))
  np.testing.assert_array_equal(np.diag(y), np.asarray(mix.lam))


def test_unmixed_samples_keep_their_labels():
  plan = jaxmix.sample_cutmix(jax.random.key(0), B, (H, W), prob=0.0)
  y = transmix_labels(plan, random_attention(0, 16), LABELS, num_classes=K)
  np.testing.assert_array_equal(y, jax.nn.one_hot(LABELS, K))


def test_zero_attention_reads_as_uniform():
  plan = cutmix_plan(7)
  attention = random_attention(7, 16).at[0].set(0.0)
  y = transmix_labels(plan, attention, jnp.eye(B), area_weight=0.0)
  np.testing.assert_allclose(y[0, 0], token_own(plan, GRID)[0].mean(), atol=1e-6)


def test_jit_equals_eager_and_vmap_over_keys_equals_loop():
  def f(key, area_weight):
    plan = jaxmix.sample_mixup_cutmix(key, B, (H, W), mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem")
    attention = random_attention(8, 16, heads=2)
    return transmix_labels(plan, attention, LABELS, num_classes=K, area_weight=area_weight)

  key = jax.random.key(9)
  chex.assert_trees_all_close(jax.jit(f)(key, 0.5), f(key, 0.5), atol=1e-6)
  keys = jax.random.split(key, 3)
  batched = jax.jit(jax.vmap(f, in_axes=(0, None)))(keys, 0.25)
  for i in range(3):
    chex.assert_trees_all_close(batched[i], f(keys[i], 0.25), atol=1e-6)


def test_area_weight_is_traced():
  plan, attention = cutmix_plan(10), random_attention(10, 16)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(area_weight, smoothing):
    return transmix_labels(
      plan, attention, LABELS, num_classes=K, area_weight=area_weight, label_smoothing=smoothing
    )

  f(0.5, 0.0)
  f(0.0, 0.1)


def test_no_gradient_flows_into_the_attention():
  plan = cutmix_plan(11)
  g = jax.grad(lambda a: transmix_labels(plan, a, jnp.eye(B)).sum() + 0.0 * a.sum())(random_attention(11, 16))
  np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize(
  "attention, kwargs, error, match",
  [
    (jnp.ones((B + 1, 16)), {}, ValueError, "attention"),
    (jnp.ones((B, 2, 4, 4)), {}, ValueError, "attention"),
    (jnp.ones((B, 15)), {}, ValueError, "token_grid"),
    (jnp.ones((B, 17)), {}, ValueError, "CLS"),
    (jnp.ones((B, 16)), dict(token_grid=(2, 4)), ValueError, "token_grid"),
    (jnp.ones((B, 16), jnp.int32), {}, TypeError, "attention"),
    (-jnp.ones((B, 16)), {}, ValueError, "attention"),
    (jnp.ones((B, 16)), dict(area_weight=1.5), ValueError, "area_weight"),
    (jnp.ones((B, 0)), {}, ValueError, "attention"),
  ],
)
def test_bad_input_names_the_argument(attention, kwargs, error, match):
  with pytest.raises(error, match=match):
    transmix_labels(cutmix_plan(0), attention, LABELS, num_classes=K, **kwargs)


def test_plans_without_one_partner_are_refused():
  multi = jaxmix.sample_multimix(jax.random.key(0), B)
  with pytest.raises(TypeError, match="plan"):
    transmix_labels(multi, jnp.ones((B, 16)), LABELS, num_classes=K)
  with pytest.raises(TypeError, match="plan"):
    transmix_labels(object(), jnp.ones((B, 16)), LABELS, num_classes=K)
