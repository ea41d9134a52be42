import functools

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
METHODS = ["mixup", "cutmix", "mixup_cutmix"]


def _data(b_a, b_b, hw=(6, 6)):
  # A's images are 1 + i/100 (sample id), B's are -(1 + j/100): any pixel tells its source and sample.
  xa = (1.0 + jnp.arange(b_a, dtype=jnp.float32) / 100)[:, None, None, None] * jnp.ones((b_a,) + hw + (2,))
  xb = -(1.0 + jnp.arange(b_b, dtype=jnp.float32) / 100)[:, None, None, None] * jnp.ones((b_b,) + hw + (2,))
  return xa, xb


@settings(max_examples=examples(8), deadline=None)
@given(
  b_a=st.integers(1, 6),
  b_b=st.integers(1, 6),
  method=st.sampled_from(METHODS),
  mode=st.sampled_from(["batch", "elem"]),
  seed=st.integers(0, 100),
)
def test_joined_width_block_mass_and_partner(b_a, b_b, method, mode, seed):
  xa, xb = _data(b_a, b_b)
  ya = jnp.arange(b_a) % 3
  yb = jnp.arange(b_b) % 4
  extra = {"cutmix_alpha": 1.0} if method == "mixup_cutmix" else {}
  out, t = jaxmix.mix_batches(
    jax.random.key(seed),
    (xa, ya),
    (xb, yb),
    method=method,
    num_classes_a=3,
    num_classes_b=4,
    mode=mode,
    **extra,
  )
  assert out.shape == xa.shape and t.shape == (b_a, 7)
  # Own share (A pixels) equals the mass of the A block, B block holds the rest.
  share_a = np.mean(np.asarray(out) > 0, axis=(1, 2, 3)) if method == "cutmix" else None
  block_a = np.asarray(t[:, :3].sum(1))
  np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-6)
  if share_a is not None:
    np.testing.assert_allclose(block_a, share_a, atol=1e-6)
  # Labels land on the right classes: A's class in the A block, B's (cycled) class in the B block.
  partner = np.arange(b_a) % b_b
  np.testing.assert_allclose(t[np.arange(b_a), np.asarray(ya)], block_a, atol=1e-6)
  np.testing.assert_allclose(t[np.arange(b_a), 3 + np.asarray(yb)[partner]], 1 - block_a, atol=1e-6)
  # Every B pixel comes from the cycled partner (cutmix copies exactly).
  if method == "cutmix":
    neg = np.asarray(out) < 0
    want = -(1.0 + partner / 100)[:, None, None, None] * np.ones_like(np.asarray(out))
    np.testing.assert_allclose(np.asarray(out)[neg], want[neg], rtol=1e-6)


def test_mixup_values_are_blend_of_a_and_cycled_b():
  xa, xb = _data(5, 2)
  out, t = jaxmix.mix_batches(
    KEY, (xa, jnp.arange(5) % 2), (xb, jnp.arange(2)), num_classes_a=2, num_classes_b=2
  )
  lam = np.asarray(t[:, :2].sum(1))
  want = (
    lam[:, None, None, None] * np.asarray(xa)
    + (1 - lam[:, None, None, None]) * np.asarray(xb)[np.arange(5) % 2]
  )
  np.testing.assert_allclose(out, want, rtol=1e-5)
  assert np.all(lam < 1)  # every sample mixed, including the middle one


def test_label_maps_index_and_matrix():
  xa, xb = _data(4, 4)
  ya, yb = jnp.array([0, 1, 2, 0]), jnp.array([1, 0, 1, 0])
  # A: 3 classes -> shared {0, 1, 2}; B: 2 classes -> shared {2, 3}.
  map_a, map_b = jnp.array([0, 1, 2]), jnp.array([2, 3])
  _, t = jaxmix.mix_batches(
    KEY, (xa, ya), (xb, yb), num_classes_a=3, num_classes_b=2, label_maps=(map_a, map_b), num_classes=4
  )
  assert t.shape == (4, 4)
  np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-6)
  # The same through matrices gives the same targets.
  mat_a, mat_b = jax.nn.one_hot(map_a, 4), jax.nn.one_hot(map_b, 4)
  _, t2 = jaxmix.mix_batches(
    KEY, (xa, ya), (xb, yb), num_classes_a=3, num_classes_b=2, label_maps=(mat_a, mat_b)
  )
  np.testing.assert_allclose(t, t2, atol=1e-6)
  # Soft targets of B rows and a spread matrix keep mass.
  spread = jnp.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])
  _, t3 = jaxmix.mix_batches(
    KEY, (xa, ya), (xb, jax.nn.one_hot(yb, 2)), num_classes_a=3, label_maps=(mat_a, spread)
  )
  np.testing.assert_allclose(t3.sum(1), 1.0, atol=1e-6)


def test_callable_sampler_pytree_dtype_and_no_labels():
  xa, xb = _data(4, 3)
  tree_a = {"img": (xa * 50 + 100).astype(jnp.uint8), "depth": xa[..., 0]}
  tree_b = {"img": (jnp.abs(xb) * 10).astype(jnp.uint8), "depth": xb[..., 0]}
  # The one sampler signature: mix_batches passes (key, batch_size, spatial_shape) itself.
  sampler = functools.partial(jaxmix.sample_cutmix, pairing="roll", mode="elem")
  out, t = jaxmix.mix_batches(KEY, (tree_a, None), (tree_b, None), method=sampler)
  assert t is None
  assert out["img"].dtype == jnp.uint8 and out["img"].shape == (4, 6, 6, 2)
  # Both leaves share the mask: depth is from B exactly where the image is from B.
  from_b = np.asarray(out["depth"]) < 0
  np.testing.assert_array_equal(np.asarray(out["img"][..., 0]) < 100, from_b)


def test_jit_vmap_and_traced_alpha():
  xa, xb = _data(4, 6)
  fn = lambda key, alpha: jaxmix.mix_batches(
    key, (xa, jnp.arange(4) % 2), (xb, jnp.arange(6) % 3), num_classes_a=2, num_classes_b=3, alpha=alpha
  )
  out, t = fn(KEY, 0.5)
  jout, jt = jax.jit(fn)(KEY, 0.5)
  np.testing.assert_allclose(out, jout, rtol=1e-6)
  np.testing.assert_allclose(t, jt, rtol=1e-6)
  keys = jax.random.split(KEY, 3)
  vout, vt = jax.vmap(fn, in_axes=(0, None))(keys, 0.5)
  for i in range(3):
    np.testing.assert_allclose(vt[i], fn(keys[i], 0.5)[1], rtol=1e-5, atol=1e-6)


def test_no_gather_in_cross_mixup():
  xa, xb = _data(4, 4)
  hlo = jax.jit(lambda k: jaxmix.mix_batches(k, (xa, None), (xb, None))[0]).lower(KEY).as_text()
  assert "gather" not in hlo


def test_bad_inputs():
  xa, xb = _data(4, 3)
  ya, yb = jnp.arange(4) % 3, jnp.arange(3) % 2
  kw = {"num_classes_a": 3, "num_classes_b": 2}
  with pytest.raises(ValueError, match="label_maps\\[1\\]"):  # wrong width: B has 2 classes
    jaxmix.mix_batches(
      KEY, (xa, ya), (xb, yb), label_maps=(jnp.arange(3), jnp.arange(3)), num_classes=3, **kw
    )
  with pytest.raises(ValueError, match="same width"):
    jaxmix.mix_batches(KEY, (xa, ya), (xb, yb), label_maps=(jnp.eye(3), jnp.ones((2, 4))), **kw)
  with pytest.raises(ValueError, match="outside"):
    jaxmix.mix_batches(
      KEY, (xa, ya), (xb, yb), label_maps=(jnp.arange(3), jnp.array([0, 7])), num_classes=3, **kw
    )
  with pytest.raises(ValueError, match="num_classes_b"):
    jaxmix.mix_batches(KEY, (xa, ya), (xb, yb), num_classes_a=3)
  with pytest.raises(ValueError, match="per-sample shape"):
    jaxmix.mix_batches(KEY, (xa, ya), (xb[:, :5], yb), **kw)
  with pytest.raises(ValueError, match="labels_b"):
    jaxmix.mix_batches(KEY, (xa, ya), (xb, yb[:2]), **kw)
  with pytest.raises(ValueError, match="mode='pair'"):
    jaxmix.mix_batches(KEY, (xa, ya), (xb, yb), mode="pair", **kw)
  with pytest.raises(ValueError, match="method"):
    jaxmix.mix_batches(KEY, (xa, ya), (xb, yb), method="nope", **kw)
