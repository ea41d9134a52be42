import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import examples
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix

KEY = jax.random.key(0)


def _batch(b=4, h=12, w=12, c=3, dtype=jnp.float32):
  x = jax.random.uniform(jax.random.key(1), (b, h, w, c)) * 255
  return x.astype(dtype)


def _partner_masks(num, spatial_shape, **options):
  """The partner's share of each of `num` per-sample GridMix plans (even batch, flip: no self-pairs)."""
  plan = jaxmix.sample_gridmix(KEY, num, spatial_shape, mode="elem", **options)
  return 1.0 - plan.own_weight()


def test_mask_is_constant_on_grid_cells():
  h, w = 14, 10
  masks = np.asarray(_partner_masks(32, (h, w), grid_size=(3, 3)))
  rows = np.arange(h) * 3 // h
  cols = np.arange(w) * 3 // w
  for m in masks:
    for i in range(3):
      for j in range(3):
        cell = m[np.ix_(rows == i, cols == j)]
        assert cell.min() == cell.max()


def test_cells_are_chosen_with_probability_cell_prob():
  masks = _partner_masks(400, (8, 8), grid_size=(4, 4), cell_prob=0.3)
  cells = np.asarray(masks)[:, ::2, ::2]  # one pixel per cell
  assert abs(cells.mean() - 0.3) < 0.02


def test_grid_size_is_drawn_from_the_range():
  masks = np.asarray(_partner_masks(300, (12, 12), grid_size=(2, 4), cell_prob=0.5))
  # A mask with n cells a side can change value only at multiples of 12 / n.
  unique = set()
  for m in masks:
    edges = set(np.nonzero(np.any(m[1:] != m[:-1], axis=1))[0] + 1)
    edges |= set(np.nonzero(np.any(m[:, 1:] != m[:, :-1], axis=0))[0] + 1)
    fits = [n for n in (2, 3, 4) if all((e * n) % 12 == 0 for e in edges)]
    assert fits, edges
    if len(fits) == 1:
      unique.add(fits[0])
  assert unique == {3, 4}  # n = 2 edges (at 6) also fit n = 4, so 2 is never alone


def test_holes_shrink_the_partner_share():
  def share(hole):
    plan = jaxmix.sample_gridmix(KEY, 20, (24, 24), grid_size=4, cell_prob=1.0, hole=hole, mode="elem")
    return 1 - float(plan.lam.mean())

  assert share(1.0) == pytest.approx(1.0)
  assert share(0.5) == pytest.approx(0.25, abs=1e-6)  # 3×3 holes in 6×6 cells


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_label_weight_is_the_own_pixel_count(mode):
  b, h, w = 6, 12, 12
  x = jnp.broadcast_to(jnp.arange(1.0, b + 1)[:, None, None, None], (b, h, w, 1))
  labels = jnp.arange(b)
  out, y = jaxmix.gridmix(KEY, x, labels, num_classes=b, mode=mode, hole=0.7)
  plan = jaxmix.sample_gridmix(KEY, b, (h, w), mode=mode, hole=0.7)
  own = np.asarray(plan.own_weight())
  assert set(np.unique(own)) <= {0.0, 1.0}
  np.testing.assert_allclose(np.asarray(plan.lam), own.sum((1, 2)) / (h * w), atol=1e-6)
  est = (np.asarray(out).mean((1, 2, 3)) - np.arange(b, 0, -1)) / (np.arange(1, b + 1) - np.arange(b, 0, -1))
  np.testing.assert_allclose(est, np.asarray(plan.lam), atol=1e-5)
  np.testing.assert_allclose(np.asarray(y)[np.arange(b), labels], np.asarray(plan.lam), atol=1e-6)


@settings(max_examples=examples(8), deadline=None)
@given(
  b=st.integers(1, 5),
  h=st.integers(1, 9),
  w=st.integers(1, 9),
  mode=st.sampled_from(["batch", "pair", "elem"]),
  pairing=st.sampled_from(["flip", "roll", "permute"]),
  hole=st.floats(0.0, 1.0),
  seed=st.integers(0, 2**16),
)
def test_outputs_between_sources_binary_masks(b, h, w, mode, pairing, hole, seed):
  if mode == "pair" and pairing == "roll" and b > 2:
    return
  key = jax.random.key(seed)
  grid = (1, min(h, w, 4))
  plan = jaxmix.sample_gridmix(key, b, (h, w), grid_size=grid, hole=hole, mode=mode, pairing=pairing)
  own = np.asarray(plan.own_weight())
  assert set(np.unique(own)) <= {0.0, 1.0}
  np.testing.assert_allclose(np.asarray(plan.lam), own.mean((1, 2)), atol=1e-6)
  x = jax.random.normal(jax.random.key(seed + 1), (b, h, w, 2))
  out = np.asarray(jaxmix.apply(plan, x))
  partner = np.asarray(x)[np.asarray(plan.index)]
  assert np.all((out == np.asarray(x)) | (out == partner))


def test_pytree_leaves_share_the_mask():
  img = _batch(c=1)
  seg = img[..., 0].astype(jnp.int32)
  out_img, out_seg = jaxmix.gridmix(KEY, (img.astype(jnp.int32), seg), mode="elem")[0]
  np.testing.assert_array_equal(out_img[..., 0], out_seg)


def test_off_switches_return_inputs():
  x = _batch()
  np.testing.assert_array_equal(jaxmix.gridmix(KEY, x, prob=0.0)[0], x)
  np.testing.assert_array_equal(jaxmix.gridmix(KEY, x, cell_prob=0.0, mode="elem")[0], x)


def test_bad_input_errors():
  x = _batch()
  with pytest.raises(ValueError, match="grid_size"):
    jaxmix.gridmix(KEY, x, grid_size=(5, 3))
  with pytest.raises(ValueError, match="grid_size"):
    jaxmix.gridmix(KEY, x, grid_size=20)
  with pytest.raises(ValueError, match="cell_prob must"):
    jaxmix.gridmix(KEY, x, cell_prob=1.5)
  with pytest.raises(ValueError, match="hole"):
    jaxmix.gridmix(KEY, x, hole=-0.1)
