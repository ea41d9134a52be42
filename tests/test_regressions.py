"""Regression tests for bugs that users of jaxmix's peers reported.

Each test names the issue it guards and asserts the property the bug broke, so it
fails if jaxmix ever makes the same mistake:

* kornia #4649: ``p`` applied twice (a batch gate and a per-row gate), rows mixed at rate p².
* kornia #4439: a box option that silently cuts nothing or builds a negative-extent box.
* kornia #4650: a patch larger than the image; every image paired with itself.
* timm #1489: segmentation masks passed as labels to ``Mixup`` came back as nonsense.
* torchvision #8191: one box for the whole batch where per-sample boxes were asked for.
* mmdetection #6266: a random partner index equal to ``len(dataset)`` (IndexError).
* composer #3932: CutMix computed H from W and W from H on non-square images.
* VMT #1: images and labels shuffled with two different permutations.
* mmpretrain #875, acoustic-multiclass-training #176: ``prob`` ignored or inverted.
* DESED #93: one label array (weak labels) left unmixed while the others were mixed.
* textaugment #17: MixUp applied to integer word ids instead of embeddings.
* tinygrad #3201: CutMix was a no-op on several GPUs, and took patches outside the batch.
* big_vision: ``mixup(rng, *things, p=..., fold_in=..., n=2)``; its keywords must not be
  silently accepted here.

Most tests read one compiled survey per registered method (:func:`survey`): N plans per mode
drawn with ``pairing="permute"`` at prob 1, 0.5 and 0, and what they do to one-hot images (sample
``b`` is the unit vector ``e_b`` in every pixel, so each output pixel lists the share of every
source) and to the labels ``arange(B)``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import cheap_beta
from core_helpers import registry_options

import jaxmix
from jaxmix._src.core import sampling
from jaxmix._src.methods import multiway

ROOT = Path(__file__).resolve().parent.parent
NAMES = tuple(jaxmix.SAMPLERS)
B, HW = 8, (8, 12)  # non-square
N = 256  # plans per mode in a survey
# Sample b is e_b in every pixel: channel c of an output pixel is the share of source c.
ONE_HOT = jnp.broadcast_to(jnp.eye(B, dtype=jnp.float32)[:, None, None, :], (B, *HW, B))
LABELS = jnp.arange(B)


def options(name, batch_size=B, spatial_shape=HW):
  """Data a sampler cannot draw without, and options that exercise its every path."""
  return registry_options(name, batch_size, spatial_shape)


def modes(name):
  """The modes a survey draws: batch and elem where the method has them (Mosaic has none)."""
  return tuple(m for m in ("batch", "elem") if m in jaxmix.SAMPLERS[name].modes) or (None,)


@functools.cache
def survey(name):
  """{prob: {mode: results}} for prob 1, 0.5, 0 and N keys, from one compiled program.

  results, read off ONE_HOT mixed by each plan (only these summaries are kept, to keep memory low):
  ``plan`` (a vmapped plan, leaves [N, ...]); ``lam`` [N, B]; ``own`` [N, B, H, W], each sample's own
  weight per pixel; ``shares`` [N, B, B], the share of every source in each output; ``unchanged``
  [N, B], output == input exactly; ``targets`` [N, B, B], mix_labels of arange(B); and for methods
  with a one-call form the same three for its output, ``call_shares``, ``call_unchanged`` and
  ``call_targets`` (same key and options).
  """
  spec = jaxmix.SAMPLERS[name]

  def run(keys, prob):
    out = {}
    for mode in modes(name):
      kw = dict(options(name), prob=prob, pairing="permute", **({"mode": mode} if mode else {}))

      def one(key, kw=kw):
        plan = spec.sample(key, B, HW, **kw)
        mixed = jaxmix.apply(plan, ONE_HOT)
        res = {
          "plan": plan,
          "lam": plan.lam,
          "own": jnp.einsum("bhwb->bhw", mixed),
          "shares": mixed.mean(axis=(1, 2)),
          "unchanged": jnp.all(mixed == ONE_HOT, axis=(1, 2, 3)),
          "targets": jaxmix.mix_labels(plan, LABELS, num_classes=B),
        }
        if spec.mix is not None:
          mixed, res["call_targets"] = spec.mix(key, ONE_HOT, LABELS, num_classes=B, **kw)
          res["call_shares"] = mixed.mean(axis=(1, 2))
          res["call_unchanged"] = jnp.all(mixed == ONE_HOT, axis=(1, 2, 3))
        return res

      out[mode] = jax.vmap(one)(keys)
    return out

  keys = jax.random.split(jax.random.key(2022), N)
  # λ's distribution is not under test here: a Beta(1, 1) stand-in compiles in a fraction of the time.
  with mock.patch.object(sampling, "beta", cheap_beta):
    compiled = jax.jit(run).lower(keys, 1.0).compile()
  return {p: jax.device_get(compiled(keys, p)) for p in (1.0, 0.5, 0.0)}


def partners(plan):
  """[N, B, S] the partners (sources other than slot 0, the sample itself) of a vmapped plan."""
  if isinstance(plan, jaxmix.MultiPlan):
    return np.asarray(plan.indices)[..., 1:]
  if isinstance(plan, jaxmix.MosaicPlan):
    return np.asarray(plan.index)[..., 1:]
  return np.asarray(plan.index)[..., None]


def self_paired(plan):
  """[N, B] True where some partner of a sample is the sample itself."""
  return (partners(plan) == np.arange(B)[:, None]).any(-1)


# --- kornia #4649: prob applied once --------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_kornia_4649_prob_is_applied_once(name):
  """The mixing rate is prob, not prob² (a batch gate times a per-row gate), in batch and elem modes."""
  s = survey(name)
  for mode in modes(name):
    mixed_at_1 = s[1.0][mode]["lam"] < 1
    mixed_at_half = s[0.5][mode]["lam"] < 1
    # The same keys: a sample mixed at prob 0.5 is one that is mixed at prob 1 and passed the gate.
    assert not np.any(mixed_at_half & ~mixed_at_1), f"{name}/{mode}"
    # Batch mode gates whole batches, so its draws are the N batches; elem gates every sample.
    draws = N if mode == "batch" else mixed_at_1.sum()
    rate = mixed_at_half.sum() / mixed_at_1.sum()
    assert abs(rate - 0.5) < 4 * np.sqrt(0.25 / draws), f"{name}/{mode}: rate {rate:.3f} at prob 0.5"
    if mode == "batch":
      # One gate per batch: prob only moves the gate, so a batch mixes all that it mixes at prob 1, or none.
      whole = np.all(mixed_at_half == mixed_at_1, axis=1) | ~mixed_at_half.any(axis=1)
      assert whole.all(), f"{name}: batches {np.flatnonzero(~whole)} mixed in part (a second gate per row)"


# --- mmpretrain #875 / acoustic-multiclass-training #176: prob=0 is the identity -------------------------


@pytest.mark.parametrize("name", NAMES)
def test_mmpretrain_875_acoustic_176_prob_zero_is_identity_and_prob_one_mixes(name):
  s = survey(name)
  for mode in modes(name):
    off, on = s[0.0][mode], s[1.0][mode]
    np.testing.assert_array_equal(off["lam"], 1.0, err_msg=f"{name}/{mode}: λ at prob 0")
    assert off["unchanged"].all(), f"{name}/{mode}: prob 0 changed the images"
    np.testing.assert_array_equal(off["targets"], np.broadcast_to(np.eye(B), off["targets"].shape))
    if "call_targets" in off:
      assert off["call_unchanged"].all(), f"{name}/{mode}: prob 0 changed the images (one-call)"
      np.testing.assert_array_equal(off["call_targets"], off["targets"], err_msg=f"{name}/{mode}: one-call")
    # The gate is not inverted (acoustic #176): at prob 1 nearly every sample with another partner mixes.
    others = ~self_paired(on["plan"])
    assert (on["lam"][others] < 1).mean() > 0.9, f"{name}/{mode}: prob 1 barely mixes"


# --- VMT #1: labels mixed with exactly the plan's partners ---------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_vmt_1_labels_mixed_with_the_partners_of_the_pixels(name):
  """Each soft label row equals the share of every source in the pixels, for the plan layer and the
  one-call form, with random partners (a second permutation for the labels would break it)."""
  s = survey(name)
  for mode in modes(name):
    r = s[1.0][mode]
    np.testing.assert_allclose(r["targets"], r["shares"], atol=1e-5, err_msg=f"{name}/{mode}")
    if "call_targets" in r:
      np.testing.assert_allclose(r["call_targets"], r["call_shares"], atol=1e-5, err_msg=f"{name}/{mode}")


# --- torchvision #8191: per-sample regions in elem mode -------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_torchvision_8191_elem_mode_draws_each_sample_its_own_region(name):
  """In elem mode (Mosaic: always) each sample's own-content map (its box, mask or λ) is its own draw."""
  s = survey(name)
  mode = "elem" if "elem" in modes(name) else None
  r = s[1.0][mode]
  own = r["own"]  # [N, B, H, W]
  mixed = (r["lam"] < 1) & ~self_paired(r["plan"])
  differ = []
  for n in range(N):
    maps = own[n][mixed[n]]
    if len(maps) >= 2:
      differ.append(len(np.unique(maps.reshape(len(maps), -1), axis=0)) > 1)
  assert len(differ) > N // 2 and np.mean(differ) > 0.95, f"{name}: {np.mean(differ):.3f} of batches differ"
  if mode == "elem" and not jaxmix.SAMPLERS[name].requires:
    # ... while batch mode draws one region for the batch (regions that follow the data excepted).
    r = s[1.0]["batch"]
    own = r["own"]
    mixed = (r["lam"] < 1) & ~self_paired(r["plan"])
    for n in range(N):
      maps = own[n][mixed[n]]
      assert len(maps) < 2 or len(np.unique(maps.reshape(len(maps), -1), axis=0)) <= 1, f"{name}: batch {n}"


# --- kornia #4439 / #4650: boxes and patches, self-pairing ----------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_kornia_4439_4650_boxes_inside_the_image_and_lambda_is_the_own_share(name):
  """Boxes are inside the image with non-negative extent, and a sample that is its own partner (a
  fixed point of a random permutation, or a Mosaic slot that drew the sample itself) is reported
  with the share of its own content it really shows: λ is the own share, λ = 1 means untouched."""
  s = survey(name)
  h, w = HW
  for mode in modes(name):
    r = s[1.0][mode]
    plan = r["plan"]
    np.testing.assert_allclose(r["lam"], r["own"].mean(axis=(2, 3)), atol=1e-5, err_msg=f"{name}/{mode}")
    same = r["lam"] == 1  # λ = 1 exactly when the sample comes back unchanged
    np.testing.assert_array_equal(r["unchanged"], same, err_msg=f"{name}/{mode}")
    box = getattr(plan, "region", None)
    if box is not None:
      top, bottom, left, right = np.moveaxis(np.asarray(box), -1, 0)
      assert np.all((0 <= top) & (top <= bottom) & (bottom <= h)), f"{name}/{mode}: rows"
      assert np.all((0 <= left) & (left <= right) & (right <= w)), f"{name}/{mode}: columns"


def test_kornia_4439_a_full_size_request_cuts_the_whole_image():
  """kornia's cut_size=(1, 1) meant 'cut everything' and cut nothing; here the largest box is the image."""
  key = jax.random.key(3)
  plan = jaxmix.sample_cutmix(key, B, HW, cutmix_minmax=(1.0, 1.0), mode="elem")
  np.testing.assert_array_equal(plan.region, np.tile([0, HW[0], 0, HW[1]], (B, 1)))
  np.testing.assert_array_equal(plan.lam, 0.0)
  plan = jaxmix.sample_cutmix(key, B, HW, cutmix_minmax=(0.0, 0.0), mode="elem")
  np.testing.assert_array_equal(plan.lam, 1.0)  # an empty box is reported as no mixing


@pytest.mark.parametrize(
  "name, opts",
  [
    ("cutmix", dict(cutmix_minmax=(0.6, 0.2))),
    ("cutmix", dict(cutmix_minmax=(-0.1, 0.5))),
    ("cutmix", dict(cutmix_minmax=(0.2, 1.5))),
    ("mixup_cutmix", dict(cutmix_minmax=(0.2, 1.5))),
    ("resizemix", dict(scale_range=(0.5, 1.5))),
    ("resizemix", dict(scale_range=(0.8, 0.2))),
    ("gridmix", dict(grid_size=0)),
    ("gridmix", dict(grid_size=(2, HW[0] + 1))),  # cells smaller than a pixel
    ("gridmix", dict(grid_size=(3, 2))),
    ("specmix", dict(gamma=1.5)),
    ("specmix", dict(max_time_bands=-1)),
    ("attentive_cutmix", dict(top_k=0)),
    ("attentive_cutmix", dict(top_k=17)),  # more cells than the 4x4 grid has
    ("attentive_cutmix", dict(features=jnp.ones((B, 16, 16)))),  # a grid finer than the 8x12 image
    ("mosaic", dict(center_range=(0.8, 0.2))),
    ("mosaic", dict(center_range=(-0.5, 1.0))),
    ("smoothmix", dict(sigma_range=(0.5, 0.25))),
  ],
)
def test_kornia_4439_4650_degenerate_or_oversized_patches_are_refused(name, opts):
  spec = jaxmix.SAMPLERS[name]
  with pytest.raises(ValueError, match=next(iter(opts))):
    spec.sample(jax.random.key(0), B, HW, **{**options(name), **opts})


@pytest.mark.parametrize("name", [n for n, s in jaxmix.SAMPLERS.items() if s.spatial])
@pytest.mark.parametrize("shape", [(0, 8), (8, 0), (-1, 8), (8,), (8, 8, 8), (8, 8, 8, 8), (0, 8, 8)])
def test_kornia_4650_empty_or_malformed_images_are_refused(name, shape):
  spec = jaxmix.SAMPLERS[name]
  if len(shape) in spec.volumes and min(shape) > 0:
    # Methods that draw cuboids take (D, H, W) since issue 18 (tests/test_volumes.py).
    assert spec.sample(jax.random.key(0), B, shape, **options(name, B, shape)).spatial_shape == shape
    return
  with pytest.raises(ValueError, match="spatial_shape"):
    spec.sample(jax.random.key(0), B, shape, **options(name))


def test_kornia_4650_no_self_pairing_but_the_documented_odd_middle():
  """flip pairs i with B-1-i (the middle of an odd batch is its own partner, as documented), roll
  with i-1: no sample is its own partner otherwise, in any mode; pair mode with permute draws
  disjoint pairs, leaving one sample alone only in an odd batch."""
  key = jax.random.key(0)
  for b in (2, 3, 6, 7):
    middle = {b // 2} if b % 2 else set()
    for involution in (False, True):
      flip = np.asarray(sampling.partner_index(key, b, "flip", involution=involution))
      assert set(np.flatnonzero(flip == np.arange(b))) == middle, (b, flip)
    roll = np.asarray(sampling.partner_index(key, b, "roll"))
    assert not np.any(roll == np.arange(b)), (b, roll)
    for k in range(4):
      pairs = np.asarray(sampling.partner_index(jax.random.key(k), b, "permute", involution=True))
      np.testing.assert_array_equal(pairs[pairs], np.arange(b))  # mutual
      assert np.sum(pairs == np.arange(b)) == b % 2, (b, pairs)


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_kornia_4650_odd_batch_middle_comes_back_unchanged(name):
  x = ONE_HOT[:7, ..., :7]
  plan = jaxmix.SAMPLERS[name].sample(jax.random.key(1), 7, HW, mode="elem")
  out = np.asarray(jaxmix.apply(plan, x))
  np.testing.assert_array_equal(out[3], x[3])
  assert plan.lam[3] == 1 and np.delete(np.asarray(plan.lam), 3).min() < 1, plan.lam


# --- mmdetection #6266: partner indices in [0, B) --------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 2, 7, 1025])
def test_mmdetection_6266_partner_indices_in_range(batch_size):
  """Every pairing, mode and plan type draws partners in [0, B), also for B = 1, 2, odd and large."""
  b = batch_size
  for k in range(2):
    key = jax.random.key(k)
    for pairing in ("flip", "roll", "permute"):
      for involution in (False, True):
        if pairing == "roll" and involution and b > 2:
          continue  # refused: roll is not mutual
        index = np.asarray(sampling.partner_index(key, b, pairing, involution=involution))
        np.testing.assert_array_equal(np.sort(index), np.arange(b), err_msg=f"{pairing} B={b}")
      slots = np.asarray(multiway.multi_indices(key, b, 3, pairing))
      assert slots.shape == (b, 3) and slots.min() >= 0 and slots.max() < b, (pairing, b)
  for pairing in ("roll", "permute"):
    index = np.asarray(jaxmix.sample_mosaic(jax.random.key(0), b, (4, 4), pairing=pairing).index)
    assert index.shape == (b, 4) and index.min() >= 0 and index.max() < b, (pairing, b)


@pytest.mark.parametrize("name", NAMES)
def test_mmdetection_6266_survey_partners_in_range(name):
  s = survey(name)
  for mode in modes(name):
    idx = partners(s[1.0][mode]["plan"])
    assert idx.min() >= 0 and idx.max() < B, f"{name}/{mode}"


# --- composer #3932: non-square CutMix ----------------------------------------------------------------


def test_composer_3932_cutmix_box_aspect_follows_the_image():
  """Box sides are int(H·r) × int(W·r) for one ratio r, and boxes reach every row and column."""
  h, w = hw = (12, 40)
  n = 1024
  for sample in (
    functools.partial(jaxmix.sample_cutmix, correct_lam=False),
    functools.partial(jaxmix.sample_mixup_cutmix, mixup_alpha=0.0, cutmix_alpha=1.0, correct_lam=False),
    jaxmix.sample_cutmix,
  ):
    box = np.asarray(sample(jax.random.key(7), n, hw, mode="elem").region)
    top, bottom, left, right = box.T
    rows, cols = bottom - top, right - left
    whole = (rows > 0) & (top > 0) & (bottom < h) & (left > 0) & (right < w)  # not clipped
    assert whole.sum() > n // 10, "almost every box is clipped: are H and W swapped?"
    # rows = floor(h·r), cols = floor(w·r): both within one pixel of the same r.
    r_lo = np.maximum(rows[whole] / h, cols[whole] / w)
    r_hi = np.minimum((rows[whole] + 1) / h, (cols[whole] + 1) / w)
    assert np.all(r_lo < r_hi), "box sides do not follow the image's aspect"
    assert bottom.max() == h and right.max() == w and top.min() == 0 and left.min() == 0


# --- timm #1489: label maps are not labels ---------------------------------------------------------------


@pytest.mark.parametrize("shape", [(B, *HW), (B, 1, *HW), (B, *HW, 1)])
def test_timm_1489_label_maps_passed_as_labels_point_to_mix_label_maps(shape):
  x = jax.random.uniform(jax.random.key(0), (B, *HW, 3))
  maps = jnp.zeros(shape, jnp.int32)
  plan = jaxmix.sample_mixup(jax.random.key(0), B)
  for call in (
    lambda: jaxmix.mixup(jax.random.key(0), x, maps, num_classes=3),
    lambda: jaxmix.cutmix(jax.random.key(0), x, maps, num_classes=3),
    lambda: jaxmix.mix_labels(plan, maps, num_classes=3),
  ):
    with pytest.raises(ValueError, match=r"jaxmix\.segmentation\.mix_label_maps"):
      call()


# --- DESED #93: every label leaf mixed with the same plan ------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_desed_93_every_label_leaf_is_mixed_with_the_same_plan(name):
  r = survey(name)[1.0][modes(name)[0]]
  n = int(np.argmax((r["lam"] < 1).sum(1)))  # a plan that mixes most samples
  plan = jax.tree.map(lambda a: jnp.asarray(a[n]), r["plan"])
  weak = jax.nn.one_hot(LABELS, B) * 0.9 + 0.1 / B
  labels = {"class": LABELS, "weak": weak, "more": (weak * 0.5, jnp.full((B, B), 0.25))}
  got = jaxmix.mix_labels(plan, labels, num_classes=B)
  assert jax.tree.structure(got) == jax.tree.structure(labels)
  np.testing.assert_allclose(got["class"], r["targets"][n], atol=1e-6)
  np.testing.assert_array_equal(got["weak"], jaxmix.mix_labels(plan, weak))
  np.testing.assert_array_equal(got["more"][0], jaxmix.mix_labels(plan, weak * 0.5))
  np.testing.assert_allclose(got["more"][1], 0.25, atol=1e-6)
  np.testing.assert_allclose(got["weak"], 0.9 * got["class"] + 0.1 / B, atol=1e-6)
  assert not np.allclose(got["weak"], weak), f"{name}: weak labels left unmixed"


def test_desed_93_one_call_mixes_frame_labels_inputs_and_clip_labels_alike():
  """DESED's strong (per-frame) labels go in `inputs` next to the features, its weak (clip) labels in
  `labels`: all three come out mixed with the same λ and partner."""
  k, t, f = 3, 10, 6
  weak = jax.nn.one_hot(jnp.arange(B) % k, k)
  strong = jnp.broadcast_to(weak[:, None, :], (B, t, k))  # the event lasts the whole clip
  feats = jax.random.normal(jax.random.key(1), (B, t, f))
  (mixed_feats, mixed_strong), mixed = jaxmix.mixup(
    jax.random.key(2), (feats, strong), {"weak": weak, "tag": LABELS % k}, num_classes=k, mode="elem"
  )
  assert not np.allclose(mixed["weak"], weak)
  np.testing.assert_allclose(mixed_strong, jnp.broadcast_to(mixed["weak"][:, None], (B, t, k)), atol=1e-6)
  np.testing.assert_allclose(mixed["tag"], mixed["weak"], atol=1e-6)
  # The same through jaxmix.sharding.local (one device: shard = batch, key unchanged in batch mode).
  local = jaxmix.sharding.local(jaxmix.mixup, jax.make_mesh((1,), ("data",)))
  labels = {"weak": weak, "tag": LABELS % k}
  got = jax.jit(functools.partial(local, num_classes=k))(jax.random.key(2), feats, labels)
  want = jaxmix.mixup(jax.random.key(2), feats, labels, num_classes=k)
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, atol=1e-6), got, want)


# --- textaugment #17: token ids are not embeddings --------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.int16, jnp.uint8])
def test_textaugment_17_integer_token_ids_are_refused_with_a_pointer_to_embeddings(dtype):
  tokens = jnp.arange(4 * 6, dtype=dtype).reshape(4, 6) % 50
  mask = jnp.ones((4, 6), bool)
  with pytest.raises(TypeError, match="embedding"):
    jaxmix.sequence.mixup(jax.random.key(0), tokens, jnp.arange(4), mask=mask, num_classes=4)
  with pytest.raises(TypeError, match="embedding"):
    jaxmix.sequence.mixup(jax.random.key(0), {"emb": jnp.ones((4, 6, 3)), "ids": tokens}, mask=mask)
  plan = jaxmix.sequence.sample_mixup(jax.random.key(0), mask)
  with pytest.raises(TypeError, match="embedding"):
    jaxmix.apply(plan, tokens)
  # Embeddings of those tokens are mixed.
  emb = jax.nn.one_hot(tokens, 50)
  out, _, _ = jaxmix.sequence.mixup(jax.random.key(0), emb, mask=mask)
  assert out.shape == emb.shape and not np.allclose(out, emb)


# --- big_vision: old keywords -----------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", [dict(n=2), dict(fold_in=None), dict(fold_in=jnp.int32(0))])
def test_big_vision_keywords_are_unknown_options(keyword):
  """big_vision's ``mixup(rng, *things, p, fold_in, n)`` keywords raise TypeError, never pass silently."""
  key = jax.random.key(0)
  x = jnp.ones((4, *HW, 3))
  calls = []
  for name, spec in jaxmix.SAMPLERS.items():
    calls.append(functools.partial(spec.sample, key, 4, HW, **options(name, 4)))
    if spec.mix is not None:
      calls.append(functools.partial(spec.mix, key, x, **options(name, 4)))
  mask = jnp.ones((4, 5), bool)
  calls += [
    functools.partial(jaxmix.sequence.mixup, key, jnp.ones((4, 5, 3)), mask=mask),
    functools.partial(jaxmix.sequence.sample_mixup, key, mask),
    functools.partial(jaxmix.choose, key, x, methods=("mixup", "cutmix")),
    functools.partial(jaxmix.with_plan_transform(jaxmix.sample_mixup, jaxmix.keep_larger_share), key, x),
    functools.partial(jaxmix.sharding.local(jaxmix.mixup, jax.make_mesh((1,), ("data",))), key, x),
  ]
  for call in calls:
    with pytest.raises(TypeError, match=next(iter(keyword))):
      call(**keyword)


# --- tinygrad #3201: local and global modes both mix, within the intended set ---------------------------

_SHARDING_CHECK = """
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
import jaxmix

B, D = 16, 4  # 4 devices, 4 samples each
x = jnp.broadcast_to(jnp.eye(B)[:, None, None, :], (B, 8, 8, B))
mesh = jax.make_mesh((D,), ("data",))
xs = jax.device_put(x, NamedSharding(mesh, P("data")))
ys = jax.device_put(jnp.arange(B), NamedSharding(mesh, P("data")))
kw = dict(num_classes=B, mode="elem", pairing="permute")
methods = {name: getattr(jaxmix, name) for name in ("mixup", "cutmix")}
local = {n: jaxmix.sharding.local(f, mesh) for n, f in methods.items()}
ways = {  # one program each for both methods
  "local": jax.jit(lambda k, x, y: {n: f(k, x, y, **kw) for n, f in local.items()}),
  "global": jax.jit(lambda k, x, y: {n: f(k, x, y, **kw) for n, f in methods.items()}),
}
out = {}
for where, f in ways.items():
  for seed in range(4):
    for name, (mixed, targets) in f(jax.random.key(seed), xs, ys).items():
      s = np.asarray(mixed).mean(axis=(1, 2))
      assert np.allclose(np.asarray(targets), s, atol=1e-5), (name, where, seed)
      out.setdefault(f"{name}/{where}", []).append(s.tolist())
print(json.dumps(out))
"""


def test_tinygrad_3201_local_and_global_modes_mix_within_the_intended_set():
  """On 4 CPU devices: local mode mixes each shard within itself, global mode across the whole batch;
  neither is a no-op, and the labels follow the pixels in both (checked in the subprocess)."""
  env = dict(os.environ)
  env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
  env["JAX_PLATFORMS"] = "cpu"
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
  proc = subprocess.run(
    [sys.executable, "-c", _SHARDING_CHECK], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  results = json.loads(proc.stdout.strip().splitlines()[-1])
  assert sorted(results) == ["cutmix/global", "cutmix/local", "mixup/global", "mixup/local"]
  shard = np.arange(16) // 4
  for case, runs in results.items():
    s = np.asarray(runs)  # [seeds, B, B]: the share of source c in sample b
    assert np.all(s > -1e-6) and np.allclose(s.sum(-1), 1, atol=1e-5), case
    own = np.einsum("nbb->nb", s)
    assert (own < 1).mean() > 0.5, f"{case}: a no-op ({(own < 1).mean():.2f} of samples mixed)"
    across = (s > 1e-6) & (shard[:, None] != shard[None, :])
    if case.endswith("local"):
      assert not across.any(), f"{case}: a partner outside the device's shard"
    else:
      assert across.any(), f"{case}: global mode never mixed across shards"
