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
from jaxmix._src.methods import attentive


def _features(b, gh, gw, seed=0):
  # Distinct values, so the top-k cells are unambiguous.
  rng = np.random.default_rng(seed)
  return np.stack([rng.permutation(gh * gw).reshape(gh, gw) for _ in range(b)]).astype(np.float32)


def _expected_pasted(feature_map, k, h, w):
  """NumPy reference: bool [H, W], True on the k highest cells, boundaries i·H//gh."""
  gh, gw = feature_map.shape
  top = np.argsort(-feature_map.ravel(), kind="stable")[:k]
  out = np.zeros((h, w), bool)
  for cell in top:
    i, j = divmod(int(cell), gw)
    out[i * h // gh : (i + 1) * h // gh, j * w // gw : (j + 1) * w // gw] = True
  return out


def test_cell_boundaries_cover_every_pixel():
  for size, cells in [(10, 3), (224, 7), (32, 8), (7, 7), (13, 5)]:
    cell = attentive.cell_of(size, cells)
    assert cell.shape == (size,) and cell.min() == 0 and cell.max() == cells - 1
    assert np.all(np.diff(cell) >= 0) and np.all(np.diff(cell) <= 1)
    np.testing.assert_array_equal(np.bincount(cell), np.diff(np.arange(cells + 1) * size // cells))


@pytest.mark.parametrize("pairing", ["flip", "permute"])
def test_pastes_the_partners_top_cells(pairing):
  b, h, w, gh, gw, k = 5, 21, 14, 7, 7, 6
  feats = _features(b, gh, gw, seed=1)
  x = jax.random.uniform(jax.random.key(0), (b, h, w, 3))
  plan = jaxmix.sample_attentive_cutmix(
    jax.random.key(1), b, (h, w), features=feats, top_k=k, pairing=pairing
  )
  out = np.asarray(jaxmix.apply(plan, x))
  index = np.asarray(plan.index)
  for i in range(b):
    if index[i] == i:
      np.testing.assert_array_equal(out[i], x[i])
      continue
    pasted = _expected_pasted(feats[index[i]], k, h, w)
    np.testing.assert_array_equal(out[i][pasted], np.asarray(x)[index[i]][pasted])
    np.testing.assert_array_equal(out[i][~pasted], np.asarray(x)[i][~pasted])
    # Not the sample's own map (unless both maps agree on these cells).
    own_cells = _expected_pasted(feats[i], k, h, w)
    assert not np.array_equal(own_cells, pasted)
    # 21 × 14 is a multiple of the 7 × 7 grid, so λ = 1 - k / 49 exactly.
    assert np.isclose(float(plan.lam[i]), 1 - k / 49)


def test_lam_is_exact_pixel_share_when_grid_does_not_divide_the_image():
  b, h, w, gh, gw, k = 4, 10, 11, 3, 3, 2
  feats = _features(b, gh, gw, seed=2)
  x = jnp.broadcast_to(jnp.arange(1, b + 1, dtype=jnp.float32)[:, None, None, None], (b, h, w, 1))
  plan = jaxmix.sample_attentive_cutmix(jax.random.key(0), b, (h, w), features=feats, top_k=k)
  out = np.asarray(jaxmix.apply(plan, x))
  index = np.asarray(plan.index)
  lam = np.asarray(plan.lam)
  for i in range(b):
    own = np.mean(out[i] == i + 1)
    np.testing.assert_allclose(lam[i], own, atol=1e-6)
    np.testing.assert_allclose(lam[i], 1 - _expected_pasted(feats[index[i]], k, h, w).mean(), atol=1e-6)
  assert not np.allclose(lam, 1 - k / (gh * gw))
  y = jaxmix.mix_labels(plan, jnp.arange(b), num_classes=b)
  np.testing.assert_allclose(np.diagonal(np.asarray(y)), lam, atol=1e-6)
  np.testing.assert_allclose(np.asarray(y).sum(-1), 1.0, atol=1e-6)


@settings(max_examples=examples(6), deadline=None)
@given(
  b=st.integers(1, 4),
  h=st.integers(4, 16),
  w=st.integers(4, 16),
  gh=st.integers(1, 4),
  gw=st.integers(1, 4),
  data=st.data(),
)
def test_mask_and_lam_match_a_numpy_reference(b, h, w, gh, gw, data):
  k = data.draw(st.integers(1, gh * gw))
  feats = _features(b, gh, gw, seed=b + h + w)

  @jax.jit
  def run(key, feats):
    return jaxmix.sample_attentive_cutmix(key, b, (h, w), features=feats, top_k=k, mode="elem")

  plan = jax.device_get(run(jax.random.key(0), feats))
  assert plan.mask.min() >= 0 and plan.mask.max() <= 1
  for i in range(b):
    expected = (
      np.ones((h, w)) if plan.index[i] == i else 1.0 - _expected_pasted(feats[plan.index[i]], k, h, w)
    )
    np.testing.assert_array_equal(plan.mask[i], expected)
    np.testing.assert_allclose(plan.lam[i], expected.mean(), atol=1e-6)


def test_pytree_label_map_follows_the_partner():
  b, h, w = 4, 14, 14
  feats = _features(b, 7, 7, seed=3)
  x = jax.random.uniform(jax.random.key(0), (b, h, w, 3))
  seg = jnp.broadcast_to(jnp.arange(b, dtype=jnp.int32)[:, None, None], (b, h, w))
  key = jax.random.key(5)
  (mx, mseg), y = jaxmix.attentive_cutmix(key, (x, seg), jnp.arange(b), features=feats, num_classes=b)
  from_partner = np.asarray(mseg) != np.asarray(seg)
  np.testing.assert_array_equal(np.asarray(mseg)[from_partner], np.asarray(seg[::-1])[from_partner])
  np.testing.assert_array_equal(np.asarray(mx)[from_partner], np.asarray(x[::-1])[from_partner])
  np.testing.assert_array_equal(np.asarray(mx)[~from_partner], np.asarray(x)[~from_partner])
  np.testing.assert_allclose(np.diagonal(np.asarray(y)), 1 - from_partner.mean(axis=(1, 2)), atol=1e-6)


def test_jit_and_vmap_over_keys_with_permute_and_prob():
  # Same key -> same output is test_contract.py's (elem, permute); its jit and vmap tests use flip.
  b, h, w = 4, 8, 8
  feats = _features(b, 4, 4, seed=4)
  x = jax.random.uniform(jax.random.key(1), (b, h, w, 3))

  def f(key):
    return jaxmix.attentive_cutmix(
      key, x, jnp.arange(b), features=feats, top_k=3, pairing="permute", num_classes=b, prob=0.7, mode="elem"
    )

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


def test_prob_is_traced_and_features_may_be_traced():
  b = 4
  x = jax.random.uniform(jax.random.key(1), (b, 8, 8, 3))

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(key, feats, prob, smoothing):
    return jaxmix.attentive_cutmix(
      key, x, jnp.arange(b), features=feats, top_k=2, prob=prob, num_classes=b, label_smoothing=smoothing
    )

  key = jax.random.key(0)
  out, y = f(key, _features(b, 4, 4), 0.0, 0.0)
  np.testing.assert_array_equal(out, x)
  np.testing.assert_allclose(y, jnp.eye(b))
  out, y = f(key, _features(b, 4, 4, seed=9), 1.0, 0.1)
  assert not np.array_equal(np.asarray(out), np.asarray(x))
  np.testing.assert_allclose(np.diagonal(np.asarray(y)), 0.9 * (1 - 2 / 16) + 0.1 / b, atol=1e-6)


def test_bad_arguments():
  key = jax.random.key(0)
  x = jnp.zeros((4, 14, 14, 3))
  with pytest.raises(ValueError, match=r"features.*mean\(-1\)"):
    jaxmix.attentive_cutmix(key, x, features=jnp.zeros((4, 7, 7, 2048)))
  with pytest.raises(ValueError, match="features"):
    jaxmix.attentive_cutmix(key, x, features=jnp.zeros((3, 7, 7)))
  with pytest.raises(ValueError, match="finer"):
    jaxmix.attentive_cutmix(key, x, features=jnp.zeros((4, 28, 28)))
  with pytest.raises(TypeError, match="features"):
    jaxmix.attentive_cutmix(key, x, features=jnp.zeros((4, 7, 7), bool))
  with pytest.raises(ValueError, match="top_k"):
    jaxmix.attentive_cutmix(key, x, features=jnp.zeros((4, 2, 2)), top_k=5)
  with pytest.raises(ValueError, match="top_k"):
    jaxmix.attentive_cutmix(key, x, features=jnp.zeros((4, 7, 7)), top_k=0)
  with pytest.raises(ValueError, match="prob"):
    jaxmix.attentive_cutmix(key, x, features=jnp.zeros((4, 7, 7)), prob=2.0)
  with pytest.raises(ValueError, match="mode"):
    jaxmix.attentive_cutmix(key, x, features=jnp.zeros((4, 7, 7)), mode="rows")


def test_grad_wrt_inputs():
  x = jax.random.uniform(jax.random.key(3), (4, 14, 14, 3))
  feats = _features(4, 7, 7, seed=5)
  g = jax.grad(lambda x: jnp.sum(jaxmix.attentive_cutmix(jax.random.key(1), x, features=feats)[0]))(x)
  np.testing.assert_allclose(jnp.sum(g), x.size, rtol=1e-6)
  assert set(np.unique(np.asarray(g)).tolist()) <= {0.0, 1.0, 2.0}


@pytest.mark.parametrize(
  "grid,shape", [((3, 70), (9, 140)), ((2, 33), (5, 70)), ((4, 64), (8, 130)), ((7, 7), (32, 32))]
)
def test_cell_mask_of_wide_grids_spans_several_bit_words(grid, shape):
  """Grids wider than 32 cells keep one bit word per 32 columns; the mask must still be the chosen cells
  laid on pixels by the cell_of tables."""
  rng = np.random.default_rng(sum(grid))
  cells = grid[0] * grid[1]
  chosen = np.stack([rng.choice(cells, 5, replace=False) for _ in range(3)])
  mask = np.asarray(attentive._cells_mask(jnp.asarray(chosen, jnp.int32), grid, shape))
  picked = np.zeros((3, cells), bool)
  np.put_along_axis(picked, chosen, True, axis=1)
  rows, cols = attentive.cell_of(shape[0], grid[0]), attentive.cell_of(shape[1], grid[1])
  np.testing.assert_array_equal(mask > 0.5, picked.reshape(3, *grid)[:, rows][:, :, cols])
