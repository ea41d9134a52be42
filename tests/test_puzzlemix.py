"""PuzzleMix (jaxmix.guided): a block labelling from saliency, local statistics and a λ prior, then transport.

The labelling's approximation (min-sum belief propagation + checkerboard ICM) is measured against the
exact minimum by brute force over every labelling of small grids (3 × 3 with 3 labels, 4 × 4 with 2,
2 × 2 with 4), on energies built as the official code builds them and on random ones, with the gaps
stated here and in the module docstring. Transport is a permutation of whole blocks (each source's
content is kept) and the identity for large ``t_eps``. λ is the mask's real mean; the contract's
properties (same key, jit, vmap, no retrace, dtypes, errors) hold.
"""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix
from jaxmix._src.methods import puzzlemix as pm

guided = jaxmix.guided
B, H, W, K = 4, 16, 16, 5
LABELS = np.arange(B) % K
FAST = {"block_num": 4, "t_size": 2}  # 4 × 4 grid of 4 × 4 blocks, transport on an 8 × 8 grid of 2 × 2 blocks
STATIC = ("n_labels", "block_num", "neigh_size", "transport", "t_size", "pairing", "data_format", "bp_iters",
          "icm_sweeps")
# Jitted once per static configuration: eager dispatch of the many small ops is what makes tests slow.
SAMPLE = jax.jit(guided.sample_puzzlemix, static_argnames=STATIC)
MIX = jax.jit(guided.puzzlemix, static_argnames=(*STATIC, "num_classes"))


def peaked_saliency(seed, b=B, h=H, w=W):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:h, :w]
  cy, cx = rng.uniform(0, h, b), rng.uniform(0, w, b)
  sigma = rng.uniform(1, h / 3, b)
  dist2 = (yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2
  bump = np.exp(-dist2 / (2 * sigma[:, None, None] ** 2))
  return (bump + 0.05 * rng.random((b, h, w))).astype(np.float32)


def images_of(seed, b=B, h=H, w=W, c=3):
  rng = np.random.default_rng(100 + seed)
  return (np.cumsum(rng.random((b, h, w, c)), axis=1) / h).astype(np.float32)


def brute_force(unary, wv, wh):
  """The exact minimum energy of each grid, over every labelling."""
  unary, wv, wh = (np.asarray(a, np.float64) for a in (unary, wv, wh))
  b, n, _, n_labels = unary.shape
  labs = np.array(list(itertools.product(range(n_labels), repeat=n * n)), np.int32).reshape(-1, n, n)
  d = pm.label_distance(n_labels).astype(np.float64)
  rows, cols = np.arange(n)[:, None], np.arange(n)[None, :]
  out = []
  for i in range(b):
    e = unary[i][rows, cols, labs].sum(axis=(1, 2))
    e = e + (wv[i] * d[labs[:, :-1], labs[:, 1:]]).sum(axis=(1, 2))
    e = e + (wh[i] * d[labs[:, :, :-1], labs[:, :, 1:]]).sum(axis=(1, 2))
    out.append(e.min())
  return np.array(out)


def official_energy(seed, n, n_labels, b=8):
  """The energy as ``mixup_graph`` builds it, on n × n grids of 4 × 4-pixel blocks (neigh_size 2)."""
  side = 4 * n
  lam = jnp.float32(np.random.default_rng(seed).uniform())
  pooled = jnp.asarray(images_of(seed, b, side, side)).reshape(b, side // 2, 2, side // 2, 2, 3).mean((2, 4))
  return ENERGY(
    jnp.asarray(peaked_saliency(seed, b, side, side)), pooled, jnp.arange(b, dtype=jnp.int32)[::-1], "flip",
    lam, n=n, n_labels=n_labels, beta=1.2, gamma=0.5, eta=0.2, neigh_k=(2, 2),
  )


ENERGY = jax.jit(pm.energy_terms, static_argnames=("pairing", "n", "n_labels", "neigh_k"))


def random_energy(seed, n, n_labels, low, high, b=8):
  """Unaries uniform in [0, 1], seam weights uniform in [low, high]."""
  rng = np.random.default_rng(seed)
  unary = rng.random((b, n, n, n_labels)).astype(np.float32)
  wv = rng.uniform(low, high, (b, n - 1, n)).astype(np.float32)
  wh = rng.uniform(low, high, (b, n, n - 1)).astype(np.float32)
  return jnp.asarray(unary), jnp.asarray(wv), jnp.asarray(wh)


APPROX = jax.jit(pm.approximate_labelling)


def gaps(energies):
  rel = []
  for unary, wv, wh in energies:
    got = np.asarray(pm.labelling_energy(APPROX(unary, wv, wh), unary, wv, wh), np.float64)
    exact = brute_force(unary, wv, wh)
    assert np.all(got >= exact - 1e-5)
    rel.append((got - exact) / np.abs(exact))
  return np.concatenate(rel)


GRIDS = [(3, 3), (4, 2), (2, 4)]


@pytest.mark.parametrize(("n", "n_labels"), GRIDS)
def test_labelling_is_exact_on_official_energies(n, n_labels):
  # Peaked saliency and structured images, as the official builds the energy: exact on every instance
  # (24 grids per case), and the optimum is not trivial (most grids use more than one label).
  rel = gaps([official_energy(seed, n, n_labels) for seed in range(3)])
  assert rel.max() <= 1e-5
  unary, wv, wh = official_energy(0, n, n_labels)
  labels = np.asarray(pm.approximate_labelling(unary, wv, wh))
  assert np.mean([len(np.unique(g)) > 1 for g in labels]) >= 0.5


@pytest.mark.parametrize(("n", "n_labels"), GRIDS)
def test_labelling_gap_on_random_energies(n, n_labels):
  # Non-negative seam weights, up to 3 times the largest unary: exact on every grid.
  rel = gaps([random_energy(seed, n, n_labels, 0.0, 3.0) for seed in range(2)])
  assert rel.max() <= 1e-5
  # Frustrated grids (seam weights in [-0.5, 1]): measured over 10 seeds × 8 grids, exact on 82 % (4 × 4,
  # 2 labels) to 100 % (2 × 2, 4 labels), at most 9.4 % and on average 0.6 % above the minimum.
  rel = gaps([random_energy(seed, n, n_labels, -0.5, 1.0) for seed in range(4)])
  assert rel.max() <= 0.10
  assert rel.mean() <= 0.01
  assert np.mean(rel <= 1e-5) >= 0.75


def test_icm_never_raises_the_energy():
  unary, wv, wh = random_energy(0, 4, 3, -1.0, 1.0)
  start = jax.random.randint(jax.random.key(0), unary.shape[:3], 0, 3)
  before = pm.labelling_energy(start, unary, wv, wh)
  after = pm.labelling_energy(pm._icm(start, unary, wv, wh, 3), unary, wv, wh)
  assert np.all(np.asarray(after) <= np.asarray(before) + 1e-6)


def test_transport_permutation_is_a_permutation():
  rng = np.random.default_rng(0)
  m_side = 4
  keep = jnp.asarray(rng.random((16, m_side * m_side)) < 0.5)
  sal = jnp.asarray(rng.random((16, m_side * m_side)).astype(np.float32))
  sal = sal / sal.sum(-1, keepdims=True)
  cost = pm._cost_matrix(m_side, m_side)
  for eps in (0.0, 0.01, 0.8):
    perm = np.asarray(pm.transport_permutation(keep, sal, eps, cost, m_side))
    assert np.all(np.sort(perm, axis=1) == np.arange(m_side * m_side))
  # Large t_eps: every block stays where it is.
  perm = np.asarray(pm.transport_permutation(keep, sal, 1e4, cost, m_side))
  assert np.all(perm == np.arange(m_side * m_side))
  # t_eps = 0 and one salient block outside the kept region: it moves into the region.
  keep1 = np.zeros((1, 16), bool)
  keep1[0, 5] = True
  sal1 = np.full((1, 16), 0.01, np.float32)
  sal1[0, 0] = 0.85
  perm = np.asarray(pm.transport_permutation(jnp.asarray(keep1), jnp.asarray(sal1), 0.0, cost, 4))
  assert perm[0, 5] == 0


def plan_of(seed=0, **kw):
  kw = {**FAST, "pairing": "permute", **kw}
  return SAMPLE(jax.random.key(seed), peaked_saliency(seed), images=images_of(seed), **kw)


def test_plan_lam_mask_and_mixed_pixels():
  x = images_of(1)
  for seed in range(3):
    plan = plan_of(seed)
    mask, lam = np.asarray(plan.mask), np.asarray(plan.lam)
    assert set(np.unique(mask)) <= {0.0, 0.5, 1.0}
    assert np.all((lam >= 0) & (lam <= 1))
    np.testing.assert_allclose(lam, mask.mean(axis=(1, 2)), atol=1e-6)
    # The mask is constant on the 4 × 4 blocks.
    blocks = mask.reshape(B, 4, 4, 4, 4)
    assert np.all(blocks == blocks[:, :, :1, :, :1])
    # Every output pixel is mask · own(transported) + (1 - mask) · partner(transported).
    index = np.asarray(plan.index)
    rows = np.arange(B)[:, None]
    own = x.reshape(B, H * W, 3)[rows, np.asarray(plan.own_source).reshape(B, -1)]
    partner = x[index].reshape(B, H * W, 3)[rows, np.asarray(plan.partner_source).reshape(B, -1)]
    m = mask.reshape(B, H * W, 1)
    want = (m * own + (1 - m) * partner).reshape(x.shape)
    np.testing.assert_allclose(np.asarray(jaxmix.apply(plan, x)), want, atol=1e-6)
    # Labels follow the partners with the exact share.
    y = np.asarray(jaxmix.mix_labels(plan, LABELS, num_classes=K))
    onehot = np.eye(K, dtype=np.float32)[LABELS]
    np.testing.assert_allclose(y, lam[:, None] * onehot + (1 - lam[:, None]) * onehot[index], atol=1e-6)


def test_some_sample_mixes():
  lams = np.concatenate([np.asarray(plan_of(seed).lam) for seed in range(4)])
  assert np.any((lams > 0) & (lams < 1))


def test_transport_moves_whole_blocks():
  plan = plan_of(2)
  for source in (plan.own_source, plan.partner_source):
    src = np.asarray(source).reshape(B, -1)
    # A permutation of the pixels: each source's content is all there, once.
    assert np.all(np.sort(src, axis=1) == np.arange(H * W))
    # Whole 2 × 2 transport blocks move: within a block the offsets are those of a block.
    r, c = np.divmod(np.asarray(source), W)
    assert np.all(r % 2 == (np.arange(H) % 2)[None, :, None])
    assert np.all(c % 2 == (np.arange(W) % 2)[None, None, :])


def test_large_t_eps_is_no_transport():
  x = images_of(3)
  moved = plan_of(3, t_eps=1e5)
  still = plan_of(3, transport=False)
  ident = np.arange(H * W).reshape(1, H, W)
  assert np.all(np.asarray(moved.own_source) == ident)
  assert np.all(np.asarray(moved.partner_source) == ident)
  assert still.own_source is None
  np.testing.assert_array_equal(np.asarray(moved.mask), np.asarray(still.mask))
  np.testing.assert_allclose(np.asarray(jaxmix.apply(moved, x)), np.asarray(jaxmix.apply(still, x)), atol=0)


@pytest.mark.parametrize("off", [{"prob": 0.0}, {"alpha": 0.0}])
def test_identity_when_off(off):
  x = (images_of(4) * 255).astype(np.uint8)
  mixed, y = MIX(jax.random.key(4), x, LABELS, saliency=peaked_saliency(4), num_classes=K, **FAST, **off)
  np.testing.assert_array_equal(np.asarray(mixed), x)
  np.testing.assert_array_equal(np.asarray(y), np.eye(K, dtype=np.float32)[LABELS])


def test_keeps_both_salient_blocks():
  # As the paper predicts: with all of each image's saliency in one block, the mixed image keeps the own
  # salient block and takes the partner's salient block (two labels, no seam data, no transport).
  sal = np.zeros((B, H, W), np.float32)
  sal[0::2, :4, :4] = 1.0  # samples 0, 2: top-left block
  sal[1::2, 12:, 12:] = 1.0  # samples 1, 3: bottom-right block
  for seed in range(4):
    plan = SAMPLE(jax.random.key(seed), sal, n_labels=2, block_num=4, transport=False, pairing="roll")
    mask = np.asarray(plan.mask)
    assert np.all(mask[0::2, 0, 0] == 1) and np.all(mask[0::2, 15, 15] == 0)
    assert np.all(mask[1::2, 15, 15] == 1) and np.all(mask[1::2, 0, 0] == 0)


def test_jit_matches_eager_and_same_key_same_output():
  x, sal = images_of(5), peaked_saliency(5)

  def run(key):
    return guided.puzzlemix(key, x, LABELS, saliency=sal, num_classes=K, **FAST)

  eager = run(jax.random.key(5))
  jitted = jax.jit(run)(jax.random.key(5))
  again = run(jax.random.key(5))
  for a, b, c in zip(eager, jitted, again, strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
  legacy = guided.puzzlemix(jax.random.PRNGKey(5), x, LABELS, saliency=sal, num_classes=K, **FAST)
  assert legacy[0].shape == x.shape


def test_traced_hyperparameters_compile_once():
  x, sal = images_of(6), peaked_saliency(6)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(key, alpha, beta, gamma, eta, t_eps, prob):
    return guided.puzzlemix(
      key, x, LABELS, saliency=sal, num_classes=K, alpha=alpha, beta=beta, gamma=gamma, eta=eta,
      t_eps=t_eps, prob=prob, **FAST,
    )

  for i, v in enumerate((0.5, 1.0, 2.0)):
    step(jax.random.key(i), v, 1.2 * v, 0.5 * v, 0.2 * v, 0.8 * v, 1.0)
  chex.clear_trace_counter()


def test_random_grid_side_is_drawn():
  x = images_of(7)
  sides = set()
  for seed in range(12):
    sal = peaked_saliency(seed)
    plan = SAMPLE(jax.random.key(seed), sal, images=x, block_num=(2, 4), t_size=None, eta=0.0)
    mask = np.asarray(plan.mask)
    coarse = mask.reshape(B, 2, 8, 2, 8)
    sides.add(2 if np.all(coarse == coarse[:, :, :1, :, :1]) else 4)
  assert sides == {2, 4}


def test_vmap_matches_a_loop():
  keys = jax.random.split(jax.random.key(8), 2)
  xs = np.stack([images_of(8), images_of(9)])
  sals = np.stack([peaked_saliency(8), peaked_saliency(9)])

  def one(key, x, sal):
    return guided.puzzlemix(key, x, LABELS, saliency=sal, num_classes=K, **FAST)

  batched = jax.jit(jax.vmap(one))(keys, xs, sals)
  for i in range(2):
    single = jax.jit(one)(keys[i], xs[i], sals[i])
    for a, b in zip(batched, single, strict=True):
      np.testing.assert_allclose(np.asarray(a[i]), np.asarray(b), atol=1e-6)


def test_uint8_in_uint8_out():
  x, sal, key = images_of(10), peaked_saliency(10), jax.random.key(10)
  u8 = (x * 255).astype(np.uint8)
  out, _ = MIX(key, u8, None, saliency=sal, **FAST)
  assert out.dtype == jnp.uint8
  # uint8 is blended in float32 and rounded; its local statistics are read in [0, 1].
  ref, _ = MIX(key, u8.astype(np.float32) / 255, None, saliency=sal, **FAST)
  assert np.abs(np.asarray(out, np.float32) - np.asarray(ref) * 255).max() <= 0.5 + 1e-3


def test_bf16_pytrees_and_nchw():
  x, sal, key = images_of(10), peaked_saliency(10), jax.random.key(10)
  bf, _ = MIX(key, x.astype(jnp.bfloat16), None, saliency=sal, **FAST)
  assert bf.dtype == jnp.bfloat16
  (a, depth), _ = MIX(key, (x, x[..., 0]), None, saliency=sal, **FAST)
  np.testing.assert_allclose(np.asarray(depth), np.asarray(a)[..., 0], atol=1e-6)
  nchw, _ = MIX(key, x.transpose(0, 3, 1, 2), None, saliency=sal, data_format="NCHW", **FAST)
  np.testing.assert_allclose(np.asarray(nchw), np.asarray(a).transpose(0, 3, 1, 2), atol=1e-6)


def test_own_weight():
  assert np.asarray(plan_of(0, transport=False).own_weight()).shape == (B, H, W)
  with pytest.raises(TypeError, match="transport"):
    plan_of(0).own_weight()


def test_saliency_from_grads():
  g = np.random.default_rng(0).normal(size=(B, H, W, 3)).astype(np.float32)
  want = np.sqrt(np.mean(g**2, axis=-1))
  np.testing.assert_allclose(np.asarray(guided.puzzlemix_saliency(g)), want, rtol=1e-6)
  nchw = guided.puzzlemix_saliency(g.transpose(0, 3, 1, 2), "NCHW")
  np.testing.assert_allclose(np.asarray(nchw), want, rtol=1e-6)
  with pytest.raises(TypeError, match="grads"):
    guided.puzzlemix_saliency(g.astype(np.int32))


@pytest.mark.parametrize(
  ("kw", "error", "match"),
  [
    ({"saliency": np.ones((B + 1, H, W), np.float32)}, ValueError, "saliency"),
    ({"saliency": np.ones((B, H, W, 1), np.float32)}, ValueError, "saliency"),
    ({"n_labels": 1}, ValueError, "n_labels"),
    ({"n_labels": 2.0}, TypeError, "n_labels"),
    ({"block_num": 3}, ValueError, "block_num"),
    ({"block_num": ()}, ValueError, "block_num"),
    ({"t_size": 3}, ValueError, "t_size"),
    ({"neigh_size": 3}, ValueError, "neigh_size"),
    ({"transport": 1}, TypeError, "transport"),
    ({"alpha": -1.0}, ValueError, "alpha"),
    ({"prob": 2.0}, ValueError, "prob"),
    ({"pairing": "shuffle"}, ValueError, "pairing"),
  ],
)
def test_bad_input_names_the_argument(kw, error, match):
  kw = {"saliency": peaked_saliency(0), **FAST, **kw}
  with pytest.raises(error, match=match):
    guided.puzzlemix(jax.random.key(0), images_of(0), LABELS, num_classes=K, **kw)


def test_bad_images_for_the_sampler():
  with pytest.raises(ValueError, match="images"):
    SAMPLE(jax.random.key(0), peaked_saliency(0), images=images_of(0, w=8), **FAST)


def test_grad_wrt_inputs_and_not_registered():
  x, sal, key = images_of(11), peaked_saliency(11), jax.random.key(11)

  @jax.jit
  def total(x):
    return guided.puzzlemix(key, x, None, saliency=sal, **FAST)[0].sum()

  g = np.asarray(jax.grad(total)(x))
  # Every pixel lands somewhere with its weight: the gradient is the mask mass each pixel carries, in [0, 2].
  assert np.all(np.isfinite(g)) and g.min() >= 0 and g.max() <= 2
  np.testing.assert_allclose(g.sum(), x.size, rtol=1e-5)
  assert "puzzlemix" not in jaxmix.SAMPLERS


def test_two_labels_select_pixels_and_move_label_maps():
  plan = plan_of(12, n_labels=2)
  assert plan.selects_pixels and set(np.unique(np.asarray(plan.mask))) <= {0.0, 1.0}
  seg = np.arange(B * H * W, dtype=np.int32).reshape(B, H, W) + 2**25  # ids above 2**24 stay exact
  got = np.asarray(jaxmix.apply(plan, seg))
  rows, index = np.arange(B)[:, None], np.asarray(plan.index)
  own = seg.reshape(B, -1)[rows, np.asarray(plan.own_source).reshape(B, -1)]
  partner = seg[index].reshape(B, -1)[rows, np.asarray(plan.partner_source).reshape(B, -1)]
  want = np.where(np.asarray(plan.mask).reshape(B, -1) > 0.5, own, partner).reshape(seg.shape)
  np.testing.assert_array_equal(got, want)
  assert got.dtype == np.int32
