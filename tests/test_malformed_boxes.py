"""Malformed detection targets: clear errors at trace time, defined results at run time.

Trace time (shapes, dtypes, plan type): a ValueError or TypeError that names
the argument and what was received. Run time (values): a row with a NaN or
infinite coordinate, or inverted (x2 < x1 or y2 < y1), comes back as zeros,
invalid, weight 0; boxes are clipped to the image, and a box with no area
left inside it is invalid. Checked on painted images: each real box is
painted into its image, so a kept box must cover painted pixels of the
mixed image.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix
from jaxmix._src.families import boxes as boxes_lib

KEY = jax.random.key(0)
H, W = 8, 10
NAN = float("nan")
# Per image: a good box, NaN, inverted, wholly outside the image, partly outside, +inf.
ROWS = [
  [1.0, 1.0, 5.0, 4.0],
  [NAN, 1.0, 3.0, 3.0],
  [6.0, 5.0, 2.0, 7.0],
  [12.0, 2.0, 15.0, 6.0],
  [7.0, -3.0, 14.0, 3.0],
  [0.0, 0.0, float("inf"), 4.0],
]
GOOD, BAD_NAN, INVERTED, OUTSIDE, PARTLY, INF = range(6)
NOT_BOXES = (BAD_NAN, INVERTED, INF)


def _targets(b=2):
  boxes = jnp.tile(jnp.array([ROWS], jnp.float32), (b, 1, 1))
  classes = jnp.tile(jnp.arange(1, len(ROWS) + 1, dtype=jnp.int32)[None], (b, 1))
  return boxes, classes


def _painted(b=2):
  """Image i holds i + 1 on its real boxes (GOOD and PARTLY, clipped), 0 elsewhere."""
  img = np.zeros((b, H, W, 1), np.float32)
  for i in range(b):
    img[i, 1:4, 1:5] = i + 1  # GOOD: rows 1..3, columns 1..4
    img[i, 0:3, 7:10] = i + 1  # PARTLY clipped to x in [7, 10), y in [0, 3)
  return jnp.asarray(img)


def _assert_defined(t):
  """No NaN anywhere; not-a-box rows (own and partner copies) are invalid zeros with weight 0."""
  boxes, valid, weights = (np.asarray(a) for a in (t.boxes, t.valid, t.weights))
  n = len(ROWS)
  assert np.isfinite(boxes).all() and np.isfinite(weights).all()
  copies = boxes.shape[1] // n
  for c in range(copies):
    for r in NOT_BOXES:
      np.testing.assert_array_equal(boxes[:, c * n + r], 0.0)
      assert not valid[:, c * n + r].any() and (weights[:, c * n + r] == 0).all()
    assert not valid[:, c * n + OUTSIDE].any()
  np.testing.assert_array_equal(weights[~valid], 0.0)


def _assert_on_paint(mixed, t):
  """Every kept box lies in the image and covers painted pixels of the mixed image."""
  mixed, boxes, valid = np.asarray(mixed)[..., 0], np.asarray(t.boxes), np.asarray(t.valid)
  for i, m in zip(*np.nonzero(valid), strict=True):
    x1, y1, x2, y2 = boxes[i, m]
    assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H, boxes[i, m]
    patch = mixed[i, int(np.floor(y1)) : int(np.ceil(y2)), int(np.floor(x1)) : int(np.ceil(x2))]
    assert (patch > 0).any(), (i, m, boxes[i, m])


# --- run time: values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("one_call", ["mixup", "cutmix"])
def test_one_calls_on_painted_images(one_call):
  boxes, classes = _targets()
  images = _painted()
  fn = jax.jit(lambda k, x, bx, c: getattr(jaxmix.detection, one_call)(k, x, bx, c, mode="batch"))
  for seed in range(3):
    mixed, t = fn(jax.random.key(seed), images, boxes, classes)
    _assert_defined(t)
    _assert_on_paint(mixed, t)
  if one_call == "mixup":
    # MixUp hides nothing: the good box and the clipped part of the partly-outside one stay, both copies.
    np.testing.assert_array_equal(t.valid, np.tile([True, False, False, False, True, False] * 2, (2, 1)))
    np.testing.assert_array_equal(t.boxes[:, PARTLY], np.tile([7.0, 0.0, 10.0, 3.0], (2, 1)))


def test_mix_boxes_without_image_size_still_refuses_non_boxes():
  """A pure blend without spatial_shape carries boxes unclipped; NaN, inverted, empty rows are invalid."""
  boxes, classes = _targets()
  boxes = boxes.at[:, OUTSIDE].set(jnp.array([3.0, 3.0, 3.0, 6.0]))  # zero width
  plan = jaxmix.sample_mixup(KEY, 2, alpha=1.0)
  t = jaxmix.detection.mix_boxes(plan, boxes, classes)
  _assert_defined(t)
  np.testing.assert_array_equal(t.boxes[:, PARTLY], np.tile(ROWS[PARTLY], (2, 1)))  # size unknown: kept as is
  np.testing.assert_array_equal(t.valid[:, : len(ROWS)], np.tile([1, 0, 0, 0, 1, 0], (2, 1)).astype(bool))


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_other_formats_and_normalised(fmt):
  boxes, classes = _targets()
  xyxy = boxes_lib.clip_boxes(jnp.nan_to_num(boxes), (H, W))
  converted = jaxmix.detection.normalize_boxes(jaxmix.detection.convert_boxes(boxes, "xyxy", fmt), (H, W))
  # Inverted xyxy rows have negative width or height in the other formats.
  plan = jaxmix.sample_cutmix(KEY, 2, (H, W), mode="elem")
  t = jaxmix.detection.mix_boxes(plan, converted, classes, box_format=fmt, normalized=True)
  _assert_defined(t)
  ref = jaxmix.detection.mix_boxes(plan, xyxy.at[:, NOT_BOXES].set(0.0), classes, valid=_ref_valid())
  np.testing.assert_array_equal(t.valid, ref.valid)


def _ref_valid():
  valid = np.ones((2, len(ROWS)), bool)
  valid[:, NOT_BOXES] = False
  return jnp.asarray(valid)


def test_mosaic_boxes_on_painted_images():
  boxes, classes = _targets(4)
  images = _painted(4)
  fn = jax.jit(lambda k: jaxmix.detection.mosaic(k, images, boxes, classes))
  for seed in range(3):
    mixed, t = fn(jax.random.key(seed))
    boxes_out, valid = np.asarray(t.boxes), np.asarray(t.valid)
    assert np.isfinite(boxes_out).all()
    n = len(ROWS)
    for slot in range(4):
      for r in (*NOT_BOXES, OUTSIDE):
        assert not valid[:, slot * n + r].any()
    _assert_on_paint(mixed, t)


# --- trace time: shapes, dtypes, plan type -----------------------------------------------------------


@pytest.mark.parametrize(
  "plan, match",
  [
    (None, "plan must be a jaxmix.Plan.*NoneType"),
    ({"lam": jnp.ones(2), "index": jnp.arange(2)}, "plan must be a jaxmix.Plan.*dict"),
    ("mosaic", "MosaicPlan use jaxmix.detection.mosaic_boxes"),
    ("mosaic_without_size", "MosaicPlan use jaxmix.detection.mosaic_boxes"),
    ("multimix", "MultiPlan"),
    ("resizemix", "ResizeMixPlan"),
  ],
)
def test_mix_boxes_refuses_what_is_not_a_plan(plan, match):
  boxes, classes = _targets()
  plan = (
    {
      "mosaic": jaxmix.sample_mosaic(KEY, 2, (H, W)),
      "mosaic_without_size": jaxmix.sample_mosaic(KEY, 2, (H, W)).replace(spatial_shape=None),
      "multimix": jaxmix.sample_multimix(KEY, 2, k=3),
      "resizemix": jaxmix.sample_resizemix(KEY, 2, (H, W)),
    }.get(plan, plan)
    if isinstance(plan, str)
    else plan
  )
  with pytest.raises(TypeError, match=match):
    jaxmix.detection.mix_boxes(plan, boxes, classes)


def test_mosaic_plan_without_its_size():
  boxes, classes = _targets()
  plan = jaxmix.sample_mosaic(KEY, 2, (H, W)).replace(spatial_shape=None)
  with pytest.raises(ValueError, match="spatial_shape.*sample_mosaic"):
    jaxmix.detection.mosaic_boxes(plan, boxes, classes)
  with pytest.raises(TypeError, match="MosaicPlan.*got NoneType"):
    jaxmix.detection.mosaic_boxes(None, boxes, classes)


def test_box_or_mask_plan_without_its_size():
  boxes, classes = _targets()
  plan = jaxmix.sample_fmix(KEY, 2, (H, W))
  with pytest.raises(ValueError, match="spatial_shape"):
    jaxmix.detection.mix_boxes(plan.replace(spatial_shape=None), boxes, classes)
  with pytest.raises(ValueError, match="mask"):
    jaxmix.detection.mix_boxes(plan.replace(spatial_shape=None), boxes, classes, spatial_shape=(H + 1, W))


@pytest.mark.parametrize(
  "kwargs, error, match",
  [
    (dict(boxes=np.zeros((2, 4))), ValueError, r"boxes must be \[B, N, 4\].*\(2, 4\)"),
    (dict(boxes=np.zeros((2, 6, 5))), ValueError, r"boxes must be \[B, N, 4\].*\(2, 6, 5\)"),
    (dict(boxes=np.zeros((2, 6, 4), bool)), TypeError, "boxes must be real numbers, got dtype bool"),
    (dict(classes=np.zeros((2, 5), np.int32)), ValueError, r"classes \(2, 5\) and boxes \(2, 6, 4\)"),
    (dict(classes=np.zeros((2, 6), np.float32)), TypeError, "classes must be integer ids.*float32"),
    (dict(valid=np.ones((2, 5), bool)), ValueError, r"valid \(2, 5\) and boxes"),
    (dict(valid=np.ones((2, 6), np.int32)), TypeError, "valid must be a bool mask.*int32"),
    (
      dict(boxes=np.zeros((3, 6, 4)), classes=np.zeros((3, 6), np.int32)),
      ValueError,
      "batch size 3.*the plan",
    ),
  ],
)
def test_shapes_and_dtypes_are_named(kwargs, error, match):
  boxes, classes = _targets()
  args = dict(boxes=boxes, classes=classes, valid=None) | kwargs
  plan = jaxmix.sample_cutmix(KEY, 2, (H, W))
  with pytest.raises(error, match=match):
    jaxmix.detection.mix_boxes(plan, args["boxes"], args["classes"], args["valid"])
  with pytest.raises(error, match=match.replace("the plan", "the images")):
    jaxmix.detection.mixup(KEY, _painted(), args["boxes"], args["classes"], args["valid"])
