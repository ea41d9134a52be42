"""Copy-Paste (jaxmix.detection.copy_paste) on painted instances, and compact_boxes.

Every instance is painted with a value unique in the batch (channel 0 of image i holds i * N + k at
the pixels of its row k - 1), so after a paste each output row's pixels can be read back from the
image and compared with its box, its validity and, with masks, its id in the output mask.
"""

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
from jaxmix._src.core import sampling

B, H, W, N = 3, 12, 16, 4
BOX_THR, MASK_THR = 1.5, 12.5  # small images: thresholds in pixels, half-way so no count sits on them

_cp = jax.jit(
  jaxmix.detection.copy_paste, static_argnames=("rule", "pairing", "box_format", "normalized", "data_format")
)


def painted(seed, b=B, h=H, w=W, n=N, masks=True):
  """Painted images and their targets.

  With `masks`, rectangles are painted one over the other (later rows on top), so instances are not
  rectangles and may lose all their pixels; each box is the tight box of what is left, and a row
  with no pixel left is padding. Without, each row is a rectangle in its own vertical band, so
  instances never overlap and each one fills its box. Some trailing rows are padding (class -1).
  """
  rng = np.random.default_rng(seed)
  ids = np.zeros((b, h, w), np.int32)
  boxes = np.zeros((b, n, 4), np.float32)
  classes = np.full((b, n), -1, np.int32)
  for i in range(b):
    real = rng.integers(1, n + 1)
    for j in range(real):
      if masks:
        x1, y1 = rng.integers(0, w - 1), rng.integers(0, h - 1)
        x2, y2 = rng.integers(x1 + 1, min(x1 + w // 2, w) + 1), rng.integers(y1 + 1, min(y1 + h // 2, h) + 1)
      else:
        band = w // n
        x1 = j * band + rng.integers(0, band // 2)
        x2 = rng.integers(x1 + 1, (j + 1) * band + 1)
        y1 = rng.integers(0, h - 1)
        y2 = rng.integers(y1 + 1, h + 1)
      ids[i, y1:y2, x1:x2] = j + 1
      classes[i, j] = rng.integers(0, 9)
  for i in range(b):
    for j in range(n):
      rows, cols = np.nonzero(ids[i] == j + 1)
      if rows.size:
        boxes[i, j] = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
      else:
        classes[i, j] = -1
  images = np.zeros((b, h, w, 2), np.float32)
  images[..., 0] = np.where(ids > 0, np.arange(b)[:, None, None] * n + ids, 0)
  images[..., 1] = 0.5
  return jnp.asarray(images), jnp.asarray(boxes), jnp.asarray(classes), jnp.asarray(ids)


def tight(pixels):
  rows, cols = np.nonzero(pixels)
  return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)


def check_against_pixels(
  images, out, t, boxes, classes, index, out_ids=None, box_thr=BOX_THR, mask_thr=MASK_THR
):
  """Brute force: each row's validity, box and mask read back from the painted pixels."""
  before, after = np.asarray(images)[..., 0], np.asarray(out)[..., 0]
  boxes, classes, index = np.asarray(boxes), np.asarray(classes), np.asarray(index)
  out_boxes, out_valid, out_classes = np.asarray(t.boxes), np.asarray(t.valid), np.asarray(t.classes)
  b, n = classes.shape
  assert out_boxes.shape == (b, 2 * n, 4) and out_valid.shape == (b, 2 * n)
  np.testing.assert_array_equal(np.asarray(t.weights), out_valid.astype(np.float32))
  for i in range(b):
    for m in range(2 * n):
      src, j = (i, m) if m < n else (index[i], m - n)
      code = src * n + j + 1
      shows = after[i] == code
      assert out_classes[i, m] == classes[src, j], "pasted rows carry the partner's class"
      if m < n:
        if classes[i, j] < 0:
          assert not out_valid[i, m]
          continue
        lost = shows.sum() < (before[i] == code).sum()
        expected = tight(shows) if lost and shows.any() else boxes[i, j]
        near = np.all(np.abs(expected - boxes[i, j]) <= box_thr)
        keep = shows.any() and (near or shows.sum() > mask_thr)
        assert out_valid[i, m] == keep, (i, m, shows.sum(), expected, boxes[i, j])
      elif src == i:  # a sample that is its own partner pastes nothing
        assert not out_valid[i, m]
        continue
      else:
        pasted = shows.any()
        assert out_valid[i, m] == pasted, (i, m)
        if pasted:
          assert classes[src, j] >= 0
          # The whole instance is pasted, and nothing covers it.
          np.testing.assert_array_equal(shows, before[src] == code)
      if out_valid[i, m]:
        # Every valid box is the tight box of its instance's visible pixels.
        np.testing.assert_array_equal(out_boxes[i, m], tight(shows))
        if out_ids is not None:
          np.testing.assert_array_equal(np.asarray(out_ids)[i] == m + 1, shows)
      elif out_ids is not None:
        assert not (np.asarray(out_ids)[i] == m + 1).any()
  if out_ids is not None:
    assert np.asarray(out_ids).max() <= 2 * n and np.asarray(out_ids).min() >= 0


def partners(key, b, pairing):
  """The partner index copy_paste draws (its first split key)."""
  return sampling.partner_index(jax.random.split(key, 4)[0], b, pairing)


@settings(max_examples=examples(6), deadline=None)
@given(
  seed=st.integers(0, 2**16),
  shape=st.sampled_from([(B, H, W, N), (2, 9, 14, 2)]),
  with_masks=st.booleans(),
  rule=st.sampled_from(["mmdet", "yolov5"]),
)
def test_painted_instances(seed, shape, with_masks, rule):
  b, h, w, n = shape
  images, boxes, classes, ids = painted(seed, b, h, w, n, masks=with_masks)
  key = jax.random.key(seed)
  kwargs = dict(rule=rule, bbox_occluded_thr=BOX_THR, mask_occluded_thr=MASK_THR, paste_fraction=1.0)
  if with_masks:
    out, t, out_ids = _cp(key, images, boxes, classes, masks=ids, **kwargs)
  else:
    (out, t), out_ids = _cp(key, images, boxes, classes, **kwargs), None
  check_against_pixels(images, out, t, boxes, classes, partners(key, b, "roll"), out_ids)


@pytest.mark.parametrize("with_masks", [True, False])
def test_paste_everything_with_flip(with_masks):
  """selected=False pastes every valid partner instance; B = 3 under flip: the middle sample is its
  own partner and is left unchanged."""
  images, boxes, classes, ids = painted(5, masks=with_masks)
  key = jax.random.key(1)
  kw = dict(selected=False, pairing="flip", bbox_occluded_thr=BOX_THR, mask_occluded_thr=MASK_THR)
  if with_masks:
    out, t, out_ids = _cp(key, images, boxes, classes, masks=ids, **kw)
  else:
    (out, t), out_ids = _cp(key, images, boxes, classes, **kw), None
  index = np.asarray(partners(key, B, "flip"))
  check_against_pixels(images, out, t, boxes, classes, index, out_ids)
  valid = np.asarray(classes) >= 0
  np.testing.assert_array_equal(np.asarray(t.valid)[[0, 2], N:], valid[[2, 0]])
  assert not np.asarray(t.valid)[1, N:].any()
  np.testing.assert_array_equal(out[1], images[1])


def test_covered_own_instances_are_dropped_or_shrunk():
  """Image 0 receives image 1's one big instance (columns 0..7): its instance A (inside) is dropped,
  B (straddling) shrinks to its visible part unless enough of it shows, C (right) is untouched."""
  images = np.zeros((2, 8, 16, 1), np.float32)
  ids = np.zeros((2, 8, 16), np.int32)
  ids[0, 1:4, 1:5] = 1  # A
  ids[0, 4:8, 5:13] = 2  # B: 3 of its 8 columns are covered
  ids[0, 0:3, 12:16] = 3  # C
  ids[1, :, 0:8] = 1
  images[..., 0] = np.where(ids > 0, np.arange(2)[:, None, None] * 3 + ids, 0)
  boxes = np.array(
    [[[1, 1, 5, 4], [5, 4, 13, 8], [12, 0, 16, 3]], [[0, 0, 8, 8], [0] * 4, [0] * 4]], np.float32
  )
  classes = np.array([[0, 1, 2], [5, -1, -1]], np.int32)
  key = jax.random.key(0)
  for mask_thr, b_kept in ((12.5, True), (30.0, False)):
    for masks in (ids, None):
      out = _cp(
        key,
        images,
        boxes,
        classes,
        masks=masks,
        selected=False,
        pairing="flip",
        bbox_occluded_thr=BOX_THR,
        mask_occluded_thr=mask_thr,
      )
      t = out[1]
      np.testing.assert_array_equal(t.valid[0], [False, b_kept, True, True, False, False])
      np.testing.assert_array_equal(t.classes[0, 3], 5)
      np.testing.assert_array_equal(t.boxes[0, 2], boxes[0, 2])
      np.testing.assert_array_equal(t.boxes[0, 3], [0, 0, 8, 8])
      if b_kept:
        np.testing.assert_array_equal(t.boxes[0, 1], [8, 4, 13, 8])  # B shrank to its visible part
      if masks is not None:
        expected = np.where(ids[0] == 3, 3, 0)
        expected[:, 0:8] = 4
        expected[4:8, 8:13] = 2 if b_kept else 0
        np.testing.assert_array_equal(out[2][0], expected)


def test_yolov5_rule_refuses_pastes_over_existing_boxes():
  """IoA against the existing box's area: a pasted box covering 50 % of an own box is refused at 0.3,
  one covering 25 % is pasted; the second of two overlapping partner boxes is refused."""
  images = jnp.zeros((2, 8, 16, 1))
  boxes = np.zeros((2, 3, 4), np.float32)
  boxes[0, 0] = [0, 0, 4, 4]  # own box of image 0
  boxes[1] = [[2, 0, 6, 4], [12, 0, 16, 2], [13, 0, 16, 2]]  # 50 % of it; clear; 75 % over the second
  classes = np.array([[0, -1, -1], [1, 2, 3]], np.int32)
  t = _cp(jax.random.key(0), images, boxes, classes, rule="yolov5", paste_fraction=1.0, pairing="flip")[1]
  np.testing.assert_array_equal(t.valid[0], [True, False, False, False, True, False])
  t = _cp(
    jax.random.key(0), images, boxes, classes, rule="yolov5", paste_fraction=1.0, pairing="flip", ioa_thr=0.8
  )[1]
  np.testing.assert_array_equal(t.valid[0], [True, False, False, True, True, True])


def test_mmdet_count_is_uniform_up_to_n():
  """mmdetection draws randint(0, min(n + 1, max_num_pasted)) instances: 0..n with n = 3 here, each
  about a quarter of the time; max_num_pasted = 2 allows at most 1."""
  images = jnp.zeros((2, 8, 16, 1))
  boxes = jnp.tile(jnp.array([[0.0, 0, 4, 4], [5, 0, 9, 4], [10, 0, 14, 4]]), (2, 1, 1))
  classes = jnp.array([[0, 1, 2], [3, 4, 5]])
  draw = jax.jit(
    jax.vmap(
      lambda k, cap: (
        jaxmix.detection.copy_paste(k, images, boxes, classes, max_num_pasted=cap)[1].valid[0, 3:].sum()
      ),
      in_axes=(0, None),
    )
  )
  keys = jax.random.split(jax.random.key(0), 400)
  counts = np.bincount(np.asarray(draw(keys, 100)), minlength=4)
  assert counts.sum() == 400 and (np.abs(counts / 400 - 0.25) < 0.08).all(), counts
  assert np.asarray(draw(keys, 2)).max() == 1


def test_prob_zero_is_the_identity_and_dtypes_are_kept():
  images, boxes, classes, ids = painted(3)
  x = {"rgb": (images * 10).astype(jnp.uint8), "depth": images[..., 0].astype(jnp.bfloat16)}
  out, t, out_ids = _cp(jax.random.key(2), x, boxes, classes, masks=ids, prob=0.0)
  chex.assert_trees_all_equal(out, x)
  assert out["rgb"].dtype == jnp.uint8 and out["depth"].dtype == jnp.bfloat16
  np.testing.assert_array_equal(t.boxes[:, :N], boxes)
  np.testing.assert_array_equal(t.valid[:, :N], classes >= 0)
  assert not t.valid[:, N:].any()
  np.testing.assert_array_equal(out_ids, ids)
  # With a paste the uint8 leaf is a select: every output value is one of the two sources'.
  out, _, _ = _cp(jax.random.key(2), x, boxes, classes, masks=ids, selected=False)
  assert out["rgb"].dtype == jnp.uint8
  partner = np.asarray(x["rgb"])[np.asarray(partners(jax.random.key(2), B, "roll"))]
  assert ((np.asarray(out["rgb"]) == np.asarray(x["rgb"])) | (np.asarray(out["rgb"]) == partner)).all()


def test_jit_matches_eager_traced_thresholds_and_vmap():
  images, boxes, classes, ids = painted(4)
  fn = lambda k, p, bt, mt: jaxmix.detection.copy_paste(  # noqa: E731
    k, images, boxes, classes, masks=ids, prob=p, bbox_occluded_thr=bt, mask_occluded_thr=mt
  )
  jitted = jax.jit(fn)
  key = jax.random.key(7)
  chex.assert_trees_all_equal(jitted(key, 0.8, 1.5, 12.5), fn(key, 0.8, 1.5, 12.5))
  chex.assert_trees_all_equal(
    jitted(key, 0.8, 1.5, 12.5), jitted(key, 0.8, 1.5, 12.5)
  )  # same key, same output
  jitted(key, 0.3, 4.0, 100.0)
  assert jitted._cache_size() == 1
  keys = jax.random.split(key, 3)
  batched = jax.vmap(lambda k: jitted(k, 0.8, 1.5, 12.5))(keys)
  for i in range(3):
    chex.assert_trees_all_equal(
      jax.tree_util.tree_map(lambda a, i=i: a[i], batched), jitted(keys[i], 0.8, 1.5, 12.5)
    )


def test_formats_and_normalised_boxes_agree():
  images, boxes, classes, _ = painted(6, masks=False)
  key = jax.random.key(3)
  ref = _cp(key, images, boxes, classes, selected=False)[1]
  yolo = jaxmix.detection.normalize_boxes(jaxmix.detection.convert_boxes(boxes, "xyxy", "cxcywh"), (H, W))
  got = _cp(key, images, yolo, classes, selected=False, box_format="cxcywh", normalized=True)[1]
  np.testing.assert_array_equal(got.valid, ref.valid)
  back = jaxmix.detection.convert_boxes(
    jaxmix.detection.denormalize_boxes(got.boxes, (H, W)), "cxcywh", "xyxy"
  )
  np.testing.assert_allclose(np.asarray(back)[ref.valid], np.asarray(ref.boxes)[ref.valid], atol=1e-4)


def test_float_noise_on_box_edges_neither_adds_nor_drops_pixels():
  """Edges a few ulps off an integer (2.9999998 for 3, as a normalised or cxcywh round trip leaves them;
  jax 0.8.1 gave one) count as that integer: the pasted pixels, validity and boxes equal the exact
  boxes' (without the snap, each grown edge pastes one more row or column)."""
  images, boxes, classes, _ = painted(6, masks=False)
  key = jax.random.key(3)
  ref_out, ref = _cp(key, images, boxes, classes, selected=False)[:2]
  grown = boxes + jnp.array([-2e-6, -2e-6, 2e-6, 2e-6])
  out, got = _cp(key, images, grown, classes, selected=False)[:2]
  np.testing.assert_array_equal(out, ref_out)
  np.testing.assert_array_equal(got.valid, ref.valid)
  np.testing.assert_allclose(got.boxes, ref.boxes, atol=1e-5)


# --- bad input ------------------------------------------------------------------------------------------


def test_malformed_boxes_are_invalid_rows_of_zeros():
  """The detection family's handling (jaxmix.detection.mix_boxes): a NaN, infinite or inverted row is
  not a box: an invalid row of zeros, never pasted, with weight 0."""
  images, boxes, classes, ids = painted(8, masks=False)
  boxes = (
    boxes.at[:, 1].set(jnp.array([jnp.nan, 1.0, 3.0, 3.0])).at[:, 2].set(jnp.array([6.0, 5.0, 2.0, 7.0]))
  )
  classes = classes.at[:, 1:3].set(1)
  for masks in (None, ids):
    t = _cp(jax.random.key(0), images, boxes, classes, masks=masks, selected=False)[1]
    for row in (1, 2, N + 1, N + 2):
      assert not t.valid[:, row].any() and (t.weights[:, row] == 0).all()
      np.testing.assert_array_equal(t.boxes[:, row], 0.0)
    assert np.isfinite(np.asarray(t.boxes)).all()


def test_mask_ids_above_n():
  images, boxes, classes, ids = painted(9)
  with pytest.raises(ValueError, match=r"masks must hold instance ids in \[0, N\] = \[0, 4\].*max 5"):
    jaxmix.detection.copy_paste(jax.random.key(0), images, boxes, classes, masks=ids.at[0, 0, 0].set(N + 1))
  with pytest.raises(ValueError, match="masks must hold instance ids.*min -1"):
    jaxmix.detection.copy_paste(jax.random.key(0), images, boxes, classes, masks=ids.at[0, 0, 0].set(-1))
  # Under jit the values are unknown: ids outside [0, N] are background (documented).
  bad = ids.at[:, 0, :].set(N + 3)
  out = _cp(jax.random.key(0), images, boxes, classes, masks=bad, selected=False)
  ref = _cp(jax.random.key(0), images, boxes, classes, masks=ids.at[:, 0, :].set(0), selected=False)
  chex.assert_trees_all_equal(out, ref)


@pytest.mark.parametrize(
  "change, error, match",
  [
    (dict(boxes=np.zeros((B, N, 5))), ValueError, r"boxes must be \[B, N, 4\]"),
    (dict(classes=np.zeros((B, N + 1), np.int32)), ValueError, r"classes \(3, 5\) and boxes \(3, 4, 4\)"),
    (dict(boxes=np.zeros((B + 1, N, 4)), classes=np.zeros((B + 1, N), np.int32)), ValueError, "batch size 4"),
    (
      dict(masks=np.zeros((B, H, W + 1), np.int32)),
      ValueError,
      r"masks must be int instance ids.*\(3, 12, 17\)",
    ),
    (dict(masks=np.zeros((B, H), np.int32)), ValueError, r"masks must be int instance ids.*\(3, 12\)"),
    (dict(masks=np.zeros((B, H, W), np.float32)), TypeError, "masks must be int instance ids.*float32"),
    (dict(rule="detectron"), ValueError, "rule must be one of"),
    (dict(pairing="random"), ValueError, "pairing must be one of"),
    (dict(prob=1.5), ValueError, "prob must lie in"),
    (dict(mask_occluded_thr=-1.0), ValueError, "mask_occluded_thr must be >= 0"),
    (dict(box_format="ltrb"), ValueError, "box_format"),
  ],
)
def test_bad_input_is_named(change, error, match):
  images, boxes, classes, ids = painted(0)
  args = dict(boxes=boxes, classes=classes, masks=ids) | change
  boxes, classes = args.pop("boxes"), args.pop("classes")
  with pytest.raises(error, match=match):
    jaxmix.detection.copy_paste(jax.random.key(0), images, boxes, classes, **args)


def test_compact_after_copy_paste_renumbers_masks():
  images, boxes, classes, ids = painted(11)
  out, t, out_ids = _cp(
    jax.random.key(5),
    images,
    boxes,
    classes,
    masks=ids,
    selected=False,
    bbox_occluded_thr=BOX_THR,
    mask_occluded_thr=MASK_THR,
  )
  small, small_ids = jaxmix.detection.compact_boxes(t, N, masks=out_ids)
  for i in range(B):
    for r in range(N):
      if small.valid[i, r]:
        np.testing.assert_array_equal(small.boxes[i, r], tight(np.asarray(small_ids[i]) == r + 1))
      else:
        assert not (np.asarray(small_ids[i]) == r + 1).any()
