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


def _seqs(lengths, t=7, d=3, seed=0):
  b = len(lengths)
  mask = np.arange(t)[None, :] < np.asarray(lengths)[:, None]
  emb = np.asarray(jax.random.normal(jax.random.key(seed), (b, t, d)))
  emb = np.where(mask[..., None], emb, 0.0)  # padding embeds to 0, as most models do
  return jnp.asarray(emb, jnp.float32), jnp.asarray(mask)


@settings(max_examples=examples(12), deadline=None)
@given(
  lengths=st.lists(st.integers(0, 7), min_size=1, max_size=6),
  pairing=st.sampled_from(["flip", "roll", "permute"]),
  mode=st.sampled_from(["batch", "elem"]),
  seed=st.integers(0, 1000),
)
def test_union_mask_and_padding_never_read(lengths, pairing, mode, seed):
  emb, mask = _seqs(lengths, seed=seed)
  key = jax.random.key(seed)
  plan = jaxmix.sequence.sample_mixup(key, mask, alpha=1.0, mode=mode, pairing=pairing)
  out = np.asarray(jaxmix.apply(plan, emb))
  own = np.asarray(mask)
  other = own[np.asarray(plan.index)]
  # The output mask is the union; a position padded in both stays padded.
  np.testing.assert_array_equal(plan.mask, own | other)
  assert not np.any(np.asarray(plan.mask) & ~own & ~other)
  e, p = np.asarray(emb), np.asarray(emb)[np.asarray(plan.index)]
  lam = np.asarray(plan.token_weight)
  # Only-one-valid positions copy that token whole; padded-in-both keep own padding bit-exact.
  only_own = own & ~other
  only_other = other & ~own
  neither = ~own & ~other
  np.testing.assert_array_equal(out[only_own], e[only_own])
  np.testing.assert_array_equal(out[only_other], p[only_other])
  np.testing.assert_array_equal(out[neither], e[neither])
  both = own & other
  w = lam[both][:, None]
  np.testing.assert_allclose(out[both], w * e[both] + (1 - w) * p[both], rtol=1e-5, atol=1e-6)
  # Sequence λ is the own share of the valid output tokens.
  u = np.asarray(plan.mask)
  tw = np.asarray(plan.token_weight)
  share = np.where(u.sum(1) > 0, (tw * u).sum(1) / np.maximum(u.sum(1), 1), 1.0)
  np.testing.assert_allclose(plan.lam, share, rtol=1e-5)


def test_padding_content_is_not_read():
  # Garbage in padded positions must not leak into valid output positions.
  emb, mask = _seqs([7, 3, 5, 2])
  garbage = jnp.where(mask[..., None], emb, 1e6)
  out_a, m_a, _ = jaxmix.sequence.mixup(KEY, emb, mask=mask)
  out_b, m_b, _ = jaxmix.sequence.mixup(KEY, garbage, mask=mask)
  np.testing.assert_array_equal(m_a, m_b)
  np.testing.assert_allclose(
    np.asarray(out_a)[np.asarray(m_a)], np.asarray(out_b)[np.asarray(m_b)], rtol=1e-6
  )


def test_token_labels_mix_with_token_weights_and_keep_mass():
  emb, mask = _seqs([7, 2, 4, 0, 6])
  tags = jax.random.randint(KEY, (5, 7), 0, 3)
  out, m, t = jaxmix.sequence.mixup(KEY, emb, tags, mask=mask, alpha=1.0, mode="elem", num_classes=3)
  assert t.shape == (5, 7, 3)
  np.testing.assert_allclose(t.sum(-1), 1.0, atol=1e-6)
  plan = jaxmix.sequence.sample_mixup(KEY, mask, alpha=1.0, mode="elem")
  y = jax.nn.one_hot(tags, 3)
  w = plan.token_weight[..., None]
  want = w * y + (1 - w) * jnp.flip(y, 0)
  np.testing.assert_allclose(t, want, rtol=1e-6)
  # Float [B, T, K] gives the same.
  _, _, t2 = jaxmix.sequence.mixup(KEY, emb, y, mask=mask, alpha=1.0, mode="elem")
  np.testing.assert_allclose(t, t2, rtol=1e-6)


def test_sequence_labels_weighted_by_token_share():
  emb, mask = _seqs([7, 7, 1, 7])
  labels = jnp.array([0, 1, 2, 3])
  _, m, t = jaxmix.sequence.mixup(KEY, emb, labels, mask=mask, alpha=1.0, num_classes=4)
  plan = jaxmix.sequence.sample_mixup(KEY, mask, alpha=1.0)
  np.testing.assert_allclose(t[np.arange(4), labels], plan.lam, rtol=1e-6)
  np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-6)
  assert m.dtype == mask.dtype


def test_jit_vmap_pytree_and_dtype():
  emb, mask = _seqs([7, 3, 5, 2])
  tree = (emb.astype(jnp.bfloat16), emb[..., :1])
  fn = lambda key, alpha: jaxmix.sequence.mixup(
    key, tree, jnp.arange(4) % 2, mask=mask, alpha=alpha, num_classes=2
  )
  out, m, t = fn(KEY, 0.4)
  jout, jm, jt = jax.jit(fn)(KEY, 0.4)
  assert out[0].dtype == jnp.bfloat16
  np.testing.assert_array_equal(m, jm)
  np.testing.assert_allclose(out[1], jout[1], rtol=1e-6)
  np.testing.assert_allclose(t, jt, rtol=1e-6)
  keys = jax.random.split(KEY, 3)
  _, vm, vt = jax.vmap(fn, in_axes=(0, None))(keys, 0.4)
  for i in range(3):
    np.testing.assert_allclose(vt[i], fn(keys[i], 0.4)[2], rtol=1e-5)


def test_bad_inputs():
  emb, mask = _seqs([7, 3, 5, 2])
  with pytest.raises(ValueError, match="mask"):
    jaxmix.sequence.mixup(KEY, emb, mask=mask[:, :5])
  with pytest.raises(ValueError, match="mask"):
    jaxmix.sequence.mixup(KEY, emb, mask=mask[:3])
  with pytest.raises(ValueError, match="mask"):
    jaxmix.sequence.sample_mixup(KEY, mask[0])
  with pytest.raises(ValueError, match="num_classes"):
    jaxmix.sequence.mixup(KEY, emb, jnp.zeros((4, 7), jnp.int32), mask=mask)
  with pytest.raises(ValueError, match="per-token labels"):
    jaxmix.sequence.mixup(KEY, emb, jnp.zeros((4, 6, 2)), mask=mask)
  plan = jaxmix.sequence.sample_mixup(KEY, mask)
  with pytest.raises(ValueError, match="T = 7"):
    jaxmix.apply(plan, emb[:, :6])
