"""CutMix: λ is the exact share of pixels still equal to the sample's own content.

Inputs where sample i is the constant i + 1 let every output pixel be traced
to its source, so the tests count pixels instead of trusting the plan.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import CANON
from core_helpers import COMBOS
from core_helpers import MODES
from core_helpers import PAIRINGS
from core_helpers import box_area
from core_helpers import call
from core_helpers import constant_images
from core_helpers import examples
from core_helpers import expected_index
from core_helpers import ks_distance
from core_helpers import method_and_plan
from core_helpers import reference_mix
from core_helpers import timm_box
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix
from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import regions
from jaxmix._src.methods import cutmix as cutmix_lib

SETTINGS = settings(max_examples=examples(10), deadline=None)
_draw_boxes = jax.jit(
  cutmix_lib.draw_boxes, static_argnums=2, static_argnames=("correct_lam", "cutmix_minmax")
)


def check_cut(out, plan, x, mode):
  """Properties every CutMix output must have, checked by counting pixels."""
  out, x = np.asarray(out), np.asarray(x)
  batch, h, w = x.shape[:3]
  index, lam, box = np.asarray(plan.index), np.asarray(plan.lam), np.asarray(plan.region)
  own = np.arange(1, batch + 1)
  # Every pixel is its own value or its partner's; λ is exactly the own share.
  img = out[..., 0]
  is_own = img == own[:, None, None]
  is_partner = img == own[index][:, None, None]
  assert np.all(is_own | is_partner)
  np.testing.assert_allclose(lam, is_own.reshape(batch, h * w).mean(-1), atol=1e-6)
  np.testing.assert_array_equal(out, np.broadcast_to(out[..., :1], out.shape))  # channels share the box
  np.testing.assert_allclose(out, reference_mix(plan, x))
  # Boxes lie inside the image; a sample that is its own partner keeps λ = 1.
  assert np.all((0 <= box[:, 0]) & (box[:, 0] <= box[:, 1]) & (box[:, 1] <= h))
  assert np.all((0 <= box[:, 2]) & (box[:, 2] <= box[:, 3]) & (box[:, 3] <= w))
  alone = index == np.arange(batch)
  np.testing.assert_array_equal(lam[alone], 1.0)
  mixed = ~alone
  np.testing.assert_allclose(lam[mixed], 1 - box_area(box[mixed]) / (h * w), atol=1e-6)
  if mode == "pair":
    np.testing.assert_array_equal(index[index], np.arange(batch))
    np.testing.assert_array_equal(box, box[index])
    np.testing.assert_array_equal(lam, lam[index])
  if mode == "batch" and batch:
    assert len({tuple(b) for b in box}) == 1


@SETTINGS
@given(
  batch=st.integers(0, 9),
  h=st.integers(1, 17),
  w=st.integers(1, 17),
  mode=st.sampled_from(MODES),
  pairing=st.sampled_from(PAIRINGS),
  correct_lam=st.booleans(),
  alpha=st.floats(0.0, 3.0),
  seed=st.integers(0, 2**16),
)
def test_cutmix_lambda_is_exact_pixel_share(batch, h, w, mode, pairing, correct_lam, alpha, seed):
  if mode == "pair" and pairing == "roll" and batch > 2:
    return
  x = constant_images(batch, h, w, 2)
  labels = jnp.arange(batch)
  kwargs = dict(mode=mode, pairing=pairing, correct_lam=correct_lam, alpha=alpha, num_classes=max(batch, 1))
  out, y, plan = call(
    method_and_plan, True, jax.random.key(seed), x, labels, name="cutmix", cheap=True, **kwargs
  )
  check_cut(out, plan, x, mode)
  lam, index = np.asarray(plan.lam), np.asarray(plan.index)
  hot = np.eye(max(batch, 1))[:batch]
  np.testing.assert_allclose(y, lam[:, None] * hot + (1 - lam[:, None]) * hot[index], atol=1e-6)
  if alpha == 0:
    np.testing.assert_array_equal(out, x)
  if pairing != "permute":
    np.testing.assert_array_equal(index, expected_index(pairing, batch))


@pytest.mark.parametrize("mode,pairing", COMBOS)
def test_cutmix_every_mode_eager(mode, pairing):
  b, h, w, c = CANON
  x = constant_images(b, h, w, c)
  out, _, plan = method_and_plan(jax.random.key(4), x, name="cutmix", mode=mode, pairing=pairing)
  check_cut(out, plan, x, mode)
  assert np.any(np.asarray(plan.lam) < 1)


@pytest.mark.parametrize("mode,pairing", [("batch", "flip"), ("elem", "roll")])
def test_cutmix_jit_equals_eager(mode, pairing):
  b, h, w, c = CANON
  x = constant_images(b, h, w, c)
  key = jax.random.key(8)
  eager = jaxmix.cutmix(key, x, jnp.arange(b), num_classes=b, mode=mode, pairing=pairing)
  out, y, plan = call(
    method_and_plan, True, key, x, jnp.arange(b), name="cutmix", num_classes=b, mode=mode, pairing=pairing
  )
  np.testing.assert_array_equal(eager[0], out)
  np.testing.assert_allclose(eager[1], y, atol=1e-6)
  check_cut(out, plan, x, mode)


def test_elem_mode_gives_each_sample_its_own_box():
  plan = jaxmix.sample_cutmix(jax.random.key(1), 6, CANON[1:3], mode="elem", pairing="roll")
  assert len({tuple(b) for b in np.asarray(plan.region)}) > 1
  assert len(set(np.asarray(plan.lam).tolist())) > 1


def test_pair_mode_shares_box_within_pairs_only():
  plan = jaxmix.sample_cutmix(jax.random.key(1), 6, CANON[1:3], mode="pair", pairing="permute")
  box, index = np.asarray(plan.region), np.asarray(plan.index)
  np.testing.assert_array_equal(box, box[index])
  assert len({tuple(b) for b in box}) > 1  # different pairs, different boxes


@settings(max_examples=examples(10), deadline=None)
@given(
  h=st.integers(1, 17),
  w=st.integers(1, 17),
  lam=st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5),
  seed=st.integers(0, 2**16),
)
def test_draw_boxes_geometry(h, w, lam, seed):
  key = jax.random.key(seed)
  drawn = jnp.asarray(lam, jnp.float32)
  ratio = np.sqrt(1 - np.asarray(drawn, np.float64))
  for correct_lam in (True, False):
    box, own = _draw_boxes(key, drawn, (h, w), correct_lam=correct_lam)
    box = np.asarray(box)
    assert box.dtype == np.int32 and box.shape == (len(lam), 4)
    assert np.all((0 <= box[:, 0]) & (box[:, 0] <= box[:, 1]) & (box[:, 1] <= h))
    assert np.all((0 <= box[:, 2]) & (box[:, 2] <= box[:, 3]) & (box[:, 3] <= w))
    np.testing.assert_allclose(own, 1 - box_area(box) / (h * w), atol=1e-6)
    sides_h, sides_w = box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]
    # Sides from √(1-λ)·(H, W), floored (the float32 draw may round one pixel either way).
    if correct_lam:
      assert np.all(sides_h <= np.floor(h * ratio) + 1) and np.all(sides_w <= np.floor(w * ratio) + 1)
    else:
      # The box is kept whole: area (1 - λ)·H·W up to flooring each side.
      assert np.all(np.abs(sides_h - np.floor(h * ratio)) <= 1)
      assert np.all(np.abs(sides_w - np.floor(w * ratio)) <= 1)
      assert np.all(box_area(box) <= (1 - np.asarray(lam)) * h * w + h + w + 1)


@pytest.mark.parametrize("h,w", [(32, 32), (24, 40), (7, 5)])
def test_centered_box_is_timms_rand_bbox(h, w):
  """Every centre (and one step past each border) and every side: the box is timm 1.0.31's."""
  grid = np.meshgrid(
    np.arange(-1, h + 1), np.arange(-1, w + 1), np.arange(h + 1), np.arange(w + 1), indexing="ij"
  )
  cy, cx, cut_h, cut_w = (a.ravel().astype(np.int32) for a in grid)
  box, lam = jax.jit(regions.centered_box, static_argnums=4)(cy, cx, cut_h, cut_w, (h, w))
  expected = np.stack(timm_box(cy, cx, cut_h, cut_w, h, w), axis=-1)
  np.testing.assert_array_equal(box, expected)
  assert box.dtype == jnp.int32
  np.testing.assert_allclose(lam, 1 - box_area(expected) / (h * w), atol=1e-6)
  # Before clipping the box is exactly cut_h × cut_w (cy ± cut_h//2 was one short on odd sides).
  whole = (cy - cut_h // 2 >= 0) & (cy - cut_h // 2 + cut_h <= h)
  whole &= (cx - cut_w // 2 >= 0) & (cx - cut_w // 2 + cut_w <= w)
  np.testing.assert_array_equal(box_area(box)[whole], (cut_h * cut_w)[whole])


@pytest.mark.parametrize("h,w", [(32, 32), (24, 40), (7, 5)])
def test_draw_boxes_for_fixed_lambda_are_timms_boxes(h, w):
  """Sides int(H·√(1-λ)) and int(W·√(1-λ)) as timm's ``int()``; each box is the rule's box
  for some centre pixel; boxes away from the borders have exactly the drawn sides."""
  lams = np.repeat(np.asarray([0.05, 0.3, 0.55, 0.8, 0.93], np.float32), 400)
  box, own = _draw_boxes(jax.random.key(5), jnp.asarray(lams), (h, w), correct_lam=True)
  box, own = np.asarray(box), np.asarray(own)
  ratio = np.sqrt(1 - lams.astype(np.float64))
  for size in (h, w):  # away from integers, where float32 and float64 could floor differently
    assert np.min(np.abs(size * ratio - np.round(size * ratio))) > 1e-3
  cut_h, cut_w = (h * ratio).astype(int), (w * ratio).astype(int)
  assert np.any(cut_h % 2) and np.any(cut_w % 2) and np.any(cut_h % 2 == 0)
  top, bottom, _, _ = timm_box(np.arange(h)[None], 0, cut_h[:, None], 0, h, w)  # [n, H]: every centre row
  _, _, left, right = timm_box(0, np.arange(w)[None], 0, cut_w[:, None], h, w)
  assert np.all(np.any((top == box[:, :1]) & (bottom == box[:, 1:2]), axis=1))
  assert np.all(np.any((left == box[:, 2:3]) & (right == box[:, 3:4]), axis=1))
  rows_whole = (box[:, 0] > 0) & (box[:, 1] < h)
  cols_whole = (box[:, 2] > 0) & (box[:, 3] < w)
  assert rows_whole.any() or h < 8
  np.testing.assert_array_equal((box[:, 1] - box[:, 0])[rows_whole], cut_h[rows_whole])
  np.testing.assert_array_equal((box[:, 3] - box[:, 2])[cols_whole], cut_w[cols_whole])
  np.testing.assert_allclose(own, 1 - box_area(box) / (h * w), atol=1e-6)


@pytest.mark.parametrize("h,w", [(32, 32), (24, 40)])
def test_lambda_distribution_matches_timms_rand_bbox(h, w):
  """λ of jaxmix's CutMix against timm 1.0.31's rand_bbox with correct_lam, restated in numpy
  (α = 1, 100 000 draws each): two-sample KS D < 0.015. Compared on box areas, which λ is
  a function of, so float32 and float64 roundings of one λ do not count as a difference."""
  n = 100_000
  plan = jaxmix.sample_cutmix(jax.random.key(0), n, (h, w), alpha=1.0, mode="elem")
  area = np.round((1 - np.asarray(plan.lam, np.float64)) * h * w).astype(int)
  rng = np.random.default_rng(0)
  ratio = np.sqrt(1 - rng.beta(1.0, 1.0, n))
  cut_h, cut_w = (h * ratio).astype(int), (w * ratio).astype(int)
  cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
  top, bottom, left, right = timm_box(cy, cx, cut_h, cut_w, h, w)
  timm_area = (bottom - top) * (right - left)
  assert ks_distance(area, timm_area) < 0.015
  assert abs(area.mean() - timm_area.mean()) / (h * w) < 0.005
  # The old box (rows cy ± cut_h//2) is told apart by the same statistic.
  old_rows = np.clip(cy + cut_h // 2, 0, h) - top
  old_cols = np.clip(cx + cut_w // 2, 0, w) - left
  assert ks_distance(old_rows * old_cols, timm_area) > 0.02


@settings(max_examples=examples(10), deadline=None)
@given(
  h=st.integers(1, 17),
  w=st.integers(1, 17),
  lo=st.floats(0.0, 1.0),
  span=st.floats(0.0, 1.0),
  seed=st.integers(0, 2**16),
)
def test_draw_boxes_minmax(h, w, lo, span, seed):
  hi = lo + (1 - lo) * span
  box, own = _draw_boxes(jax.random.key(seed), jnp.ones(5), (h, w), cutmix_minmax=(lo, hi))
  box = np.asarray(box)
  sides_h, sides_w = box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]
  assert np.all((np.floor(lo * h) <= sides_h) & (sides_h <= max(hi * h, np.floor(lo * h))))
  assert np.all((np.floor(lo * w) <= sides_w) & (sides_w <= max(hi * w, np.floor(lo * w))))
  assert np.all((0 <= box[:, 0]) & (box[:, 1] <= h) & (0 <= box[:, 2]) & (box[:, 3] <= w))
  np.testing.assert_allclose(own, 1 - box_area(box) / (h * w), atol=1e-6)


def test_correct_lam_false_keeps_the_drawn_box():
  """Through the sampler: boxes are whole, both sides from one ratio √(1-λ)."""
  h, w = CANON[1:3]
  plan = jaxmix.sample_cutmix(jax.random.key(3), 6, (h, w), mode="elem", pairing="roll", correct_lam=False)
  box = np.asarray(plan.region)
  sides_h, sides_w = box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]
  # floor(H r) = sides_h and floor(W r) = sides_w for one r: the intervals of r meet.
  low = np.maximum(sides_h / h, sides_w / w)
  high = np.minimum((sides_h + 1) / h, (sides_w + 1) / w)
  assert np.all(low < high + 1e-6)
  np.testing.assert_allclose(plan.lam, 1 - box_area(box) / (h * w), atol=1e-6)


def test_cutmix_minmax_through_sampler_even_with_alpha_zero():
  h, w = CANON[1:3]
  lo, hi = 0.3, 0.7
  for alpha in (1.0, 0.0):
    plan = jaxmix.sample_cutmix(
      jax.random.key(2), 6, (h, w), alpha=alpha, mode="elem", cutmix_minmax=(lo, hi)
    )
    box = np.asarray(plan.region)
    sides_h, sides_w = box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]
    assert np.all((np.floor(lo * h) <= sides_h) & (sides_h <= hi * h))
    assert np.all((np.floor(lo * w) <= sides_w) & (sides_w <= hi * w))
    assert np.all(np.asarray(plan.lam) < 1)


def test_prob_zero_and_alpha_zero_do_not_cut():
  x = constant_images(6, 6, 7, 2)
  for kwargs in (dict(prob=0.0), dict(alpha=0.0)):
    out, y = jaxmix.cutmix(jax.random.key(0), x, jnp.arange(6), num_classes=6, **kwargs)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(y, np.eye(6))


# --- batch mode pastes the box's rows only (regions.paste_rows), in place when donated ----------------


@SETTINGS
@given(
  batch=st.integers(0, 6),
  h=st.integers(1, 12),
  w=st.integers(1, 9),
  band=st.integers(1, 12),
  layout=st.sampled_from(["NHWC", "NCHW", "rank3", "video"]),
  pairing=st.sampled_from(PAIRINGS),
  seed=st.integers(0, 2**16),
)
def test_paste_rows_equals_the_dense_select_for_any_regions(batch, h, w, band, layout, pairing, seed):
  """Per-sample regions (not only shared ones), self pairs kept, any band height: the band loop must give
  exactly ``where(region_mask, partner, x)``."""
  rng = np.random.default_rng(seed)
  shape, axes = {
    "NHWC": ((batch, h, w, 2), (1, 2)),
    "NCHW": ((batch, 2, h, w), (2, 3)),
    "rank3": ((batch, h, w), (1, 2)),
    "video": ((batch, 3, h, w, 2), (2, 3)),
  }[layout]
  x = jnp.asarray(rng.integers(0, 2**31, shape), jnp.int32)  # ids above 2**24 must survive exactly
  rows, cols = np.sort(rng.integers(0, h + 1, (batch, 2))), np.sort(rng.integers(0, w + 1, (batch, 2)))
  region = jnp.asarray(np.concatenate([rows, cols], axis=1), jnp.int32)
  fixed = expected_index(pairing, batch)
  index = jnp.asarray(rng.permutation(batch) if fixed is None else fixed, jnp.int32)
  keep = index == jnp.arange(batch)
  partner = pairing_lib.take_partner

  out = regions.paste_rows(x, region, keep, lambda v: partner(v, pairing, index), axes, band=band)
  inside = regions.expand_to_axes(regions.region_mask(region, (h, w)) & ~keep[:, None, None], x.ndim, axes)
  np.testing.assert_array_equal(out, jnp.where(inside, partner(x, pairing, index), x))


@pytest.mark.parametrize("pairing", PAIRINGS)
@pytest.mark.parametrize(
  "shape,data_format", [((7, 9, 11, 3), "NHWC"), ((6, 3, 10, 8), "NCHW"), ((5, 6, 6), "NHWC")]
)
def test_batch_mode_row_paste_matches_the_dense_path(pairing, shape, data_format):
  """The shared-region hint changes how the box is written, never what: with and without it, jitted."""
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, shape), jnp.uint8)
  hw = shape[2:4] if data_format == "NCHW" else shape[1:3]
  mix = jax.jit(lambda p, x: jaxmix.apply(p, x, data_format=data_format))
  for seed in range(10):
    plan = jaxmix.sample_cutmix(jax.random.key(seed), shape[0], hw, pairing=pairing, prob=0.7)
    assert plan.shared_region
    np.testing.assert_array_equal(mix(plan, x), mix(plan.replace(shared_region=False), x))


def test_elem_and_pair_plans_do_not_claim_a_shared_region():
  for mode in ("elem", "pair"):
    assert not jaxmix.sample_cutmix(jax.random.key(0), 8, (8, 8), mode=mode).shared_region


def test_row_paste_is_differentiable_under_jit_in_both_modes():
  """The loop's length is traced; reverse mode goes through the dense custom JVP instead."""
  rng = np.random.default_rng(1)
  x, w = (jnp.asarray(rng.normal(size=(5, 8, 6, 3)), jnp.float32) for _ in range(2))

  def loss(x, key, shared):
    plan = jaxmix.sample_cutmix(key, 5, (8, 6), pairing="permute")
    return jnp.sum(jaxmix.apply(plan.replace(shared_region=shared), x) * w)

  grad = jax.jit(jax.grad(loss), static_argnums=2)
  for seed in range(5):
    key = jax.random.key(seed)
    np.testing.assert_allclose(grad(x, key, True), grad(x, key, False), rtol=0, atol=0)
    _, tangent = jax.jvp(lambda x, key=key: loss(x, key, True), (x,), (w,))
    _, dense = jax.jvp(lambda x, key=key: loss(x, key, False), (x,), (w,))
    np.testing.assert_allclose(tangent, dense, rtol=1e-6)


def test_donated_batch_cutmix_writes_in_place():
  """With the input donated, the compiled program aliases it to the output and copies no full-size
  array: only the box's rows are written (without donation XLA must copy the input first)."""
  x = jnp.zeros((64, 64, 64, 3), jnp.uint8)
  step = jax.jit(lambda k, x: jaxmix.cutmix(k, x, None)[0], donate_argnums=1)
  hlo = step.lower(jax.random.key(0), x).compile().as_text()
  assert "input_output_alias" in hlo
  full_copies = [line for line in hlo.splitlines() if "= u8[64,64,64,3]" in line and " copy(" in line]
  assert full_copies == []
  plain = jax.jit(lambda k, x: jaxmix.cutmix(k, x, None)[0]).lower(jax.random.key(0), x).compile().as_text()
  assert any("= u8[64,64,64,3]" in line and " copy(" in line for line in plain.splitlines())
