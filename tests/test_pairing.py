"""Pairing: flip pairs i with B-1-i, roll with i-1, permute is a permutation.

flip and roll must compile to slices (no gather in the jaxpr or the HLO), so
the blend fuses into one pass; permute is a gather and must say so.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import CANON
from core_helpers import COMBOS
from core_helpers import PAIRINGS
from core_helpers import call
from core_helpers import constant_images
from core_helpers import examples
from core_helpers import expected_index
from core_helpers import method
from core_helpers import random_images
from core_helpers import sample_plan
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix
from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import sampling

SETTINGS = settings(max_examples=examples(20), deadline=None)
_partner_index_jit = jax.jit(
  sampling.partner_index, static_argnums=(1, 2), static_argnames=("involution",)
)


@SETTINGS
@given(
  batch=st.integers(0, 9),
  pairing=st.sampled_from(PAIRINGS),
  involution=st.booleans(),
  seed=st.integers(0, 2**16),
  use_jit=st.booleans(),
)
def test_partner_index(batch, pairing, involution, seed, use_jit):
  if involution and pairing == "roll" and batch > 2:
    return
  ar = np.arange(batch)
  fn = _partner_index_jit if use_jit else sampling.partner_index
  index = np.asarray(fn(jax.random.key(seed), batch, pairing, involution=involution))
  assert index.dtype == np.int32 and index.shape == (batch,)
  assert sorted(index.tolist()) == ar.tolist()  # a permutation
  if pairing != "permute":
    np.testing.assert_array_equal(index, expected_index(pairing, batch))
  if involution:
    np.testing.assert_array_equal(index[index], ar)  # mutual pairs
    assert (index == ar).sum() == batch % 2  # only an odd batch leaves one sample alone


def test_permute_pairs_are_random():
  perms = {tuple(np.asarray(sampling.partner_index(jax.random.key(s), 8, "permute"))) for s in range(5)}
  assert len(perms) > 1


@pytest.mark.parametrize("pairing", PAIRINGS)
def test_take_partner_matches_index(pairing):
  x = jnp.arange(7 * 3).reshape(7, 3)
  index = sampling.partner_index(jax.random.key(1), 7, pairing)
  np.testing.assert_array_equal(pairing_lib.take_partner(x, pairing, index), np.asarray(x)[np.asarray(index)])
  xt = x.T  # along another axis
  np.testing.assert_array_equal(
    pairing_lib.take_partner(xt, pairing, index, axis=1), np.asarray(xt)[:, np.asarray(index)]
  )


def test_pair_mode_with_roll_raises():
  with pytest.raises(ValueError, match="pairing='roll'"):
    sampling.partner_index(jax.random.key(0), 5, "roll", involution=True)
  x = jnp.zeros((5, 4, 4, 1))
  for name in ("mixup", "cutmix", "mixup_cutmix"):
    with pytest.raises(ValueError, match="pairing='roll'"):
      method(name)(jax.random.key(0), x, mode="pair", pairing="roll")


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
@pytest.mark.parametrize("mode,pairing", COMBOS)
def test_odd_batch_every_mode_and_pairing(name, mode, pairing):
  batch, h, w = 5, 6, 7
  key = jax.random.key(11)
  x = constant_images(batch, h, w)
  out, y = call(
    method(name), False, key, x, jnp.arange(batch), mode=mode, pairing=pairing, num_classes=batch, cheap=True
  )
  plan = sample_plan(name, key, batch, (h, w), mode=mode, pairing=pairing, cheap=True)
  index, lam = np.asarray(plan.index), np.asarray(plan.lam)
  assert out.shape == x.shape and y.shape == (batch, batch)
  assert sorted(index.tolist()) == list(range(batch))
  if pairing != "permute":
    np.testing.assert_array_equal(index, expected_index(pairing, batch))
  if mode == "pair":
    np.testing.assert_array_equal(index[index], np.arange(batch))
    np.testing.assert_allclose(lam, lam[index])  # a pair shares λ
  alone = index == np.arange(batch)
  if pairing == "flip":
    assert alone.tolist() == [i == batch // 2 for i in range(batch)]
  # A sample that is its own partner comes back unchanged, with λ = 1 and its own label.
  np.testing.assert_array_equal(np.asarray(out)[alone], np.asarray(x)[alone])
  np.testing.assert_array_equal(lam[alone], 1.0)
  np.testing.assert_allclose(np.asarray(y)[alone], np.eye(batch)[alone])
  # The others are really mixed for this key (a CutMix box may round to nothing for one of them).
  if name == "mixup":
    assert np.all(lam[~alone] < 1.0)
  else:
    assert np.any(lam[~alone] < 1.0)


def _has_gather(text):
  """A gather op in a jaxpr (``gather[``) or HLO (``gather(``); op metadata may hold file names."""
  return re.search(r"\bgather[\[(]", text) is not None


def _mixer(name, mode, pairing):
  return lambda key, x, y: method(name)(key, x, y, mode=mode, pairing=pairing, num_classes=6)


@pytest.mark.parametrize("name", ["mixup", "cutmix", "mixup_cutmix"])
@pytest.mark.parametrize("mode,pairing", COMBOS)
def test_jaxpr_gathers_only_for_permute(name, mode, pairing):
  args = (jax.random.key(0), jnp.zeros((6, 4, 5, 3)), jnp.arange(6))
  jaxpr = str(jax.make_jaxpr(_mixer(name, mode, pairing))(*args))
  assert _has_gather(jaxpr) == (pairing == "permute"), jaxpr


@pytest.mark.parametrize(
  "name,mode,pairing",
  [
    ("mixup", "batch", "flip"),
    ("mixup", "batch", "roll"),
    ("cutmix", "batch", "flip"),
    ("cutmix", "batch", "roll"),
    ("mixup", "batch", "permute"),
  ],
)
def test_compiled_hlo_gathers_only_for_permute(name, mode, pairing):
  # The same jitted function the other tests call, so this compile is shared.
  x = random_images(0, CANON)
  lowered = call(
    method(name),
    True,
    jax.random.key(0),
    x,
    jnp.arange(6),
    mode=mode,
    pairing=pairing,
    num_classes=6,
    lower=True,
  )
  assert _has_gather(lowered.compile().as_text()) == (pairing == "permute")


def test_batch_size_one_and_zero_every_pairing():
  for pairing in PAIRINGS:
    for batch in (0, 1):
      plan = jaxmix.sample_mixup(jax.random.key(0), batch, pairing=pairing)
      np.testing.assert_array_equal(plan.index, np.arange(batch))
      np.testing.assert_array_equal(plan.lam, np.ones(batch))
