"""jaxmix.detection.compact_boxes: a fixed box count after chains of mixes.

The largest valid boxes are kept in their original order, padding after; with instance masks their
ids follow the rows (tested with copy_paste in test_copy_paste.py).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmix


def _targets():
  """Two images of 6 rows: areas 4, 1, 9, pad, 16, 9 and pad, 1, pad, pad, 4, pad."""
  side = np.array([[2, 1, 3, 0, 4, 3], [0, 1, 0, 0, 2, 0]], np.float32)
  boxes = np.zeros((2, 6, 4), np.float32)
  boxes[..., 0] = np.arange(6)
  boxes[..., 2] = np.arange(6) + side
  boxes[..., 3] = side
  valid = side > 0
  classes = np.where(valid, np.arange(12).reshape(2, 6), -1).astype(np.int32)
  weights = np.where(valid, 0.5, 0.0).astype(np.float32)
  return jaxmix.detection.BoxTargets(
    jnp.asarray(boxes), jnp.asarray(classes), jnp.asarray(valid), jnp.asarray(weights)
  )


_compact = jax.jit(jaxmix.detection.compact_boxes, static_argnums=1, static_argnames="box_format")


def test_compact_keeps_the_largest_in_stable_order():
  t = _targets()
  out = _compact(t, 3)
  # Image 0: the three largest (16, 9, 9: rows 4, 2, 5; the tie of 9 goes to row 2 then 5), in order.
  np.testing.assert_array_equal(out.classes[0], [2, 4, 5])
  np.testing.assert_array_equal(out.boxes[0], np.asarray(t.boxes)[0, [2, 4, 5]])
  np.testing.assert_array_equal(out.weights[0], 0.5)
  # Image 1: its two valid rows first, in order, then a padding row.
  np.testing.assert_array_equal(out.classes[1], [7, 10, -1])
  np.testing.assert_array_equal(out.valid, [[True] * 3, [True, True, False]])
  np.testing.assert_array_equal(out.boxes[1, 2], 0.0)
  assert out.weights[1, 2] == 0
  # A tie at the cut: with room for 2, row 2 (area 9, earlier) is kept over row 5.
  np.testing.assert_array_equal(_compact(t, 2).classes[0], [2, 4])
  # Eager and jitted agree.
  chex.assert_trees_all_equal(jaxmix.detection.compact_boxes(t, 3), out)


def test_compact_pads_when_max_boxes_is_larger():
  t = _targets()
  out = _compact(t, 8)
  assert out.boxes.shape == (2, 8, 4)
  np.testing.assert_array_equal(out.classes[0], [0, 1, 2, 4, 5, -1, -1, -1])
  np.testing.assert_array_equal(out.valid.sum(1), [5, 2])
  np.testing.assert_array_equal(out.valid[:, 5:], False)
  np.testing.assert_array_equal(out.boxes[:, 5:], 0.0)


def test_compact_errors():
  t = _targets()
  with pytest.raises(TypeError, match="max_boxes must be a static int"):
    jaxmix.detection.compact_boxes(t, 2.0)
  with pytest.raises(ValueError, match="max_boxes must be a static int >= 1"):
    jaxmix.detection.compact_boxes(t, 0)
  with pytest.raises(TypeError, match="targets must be a jaxmix.detection.BoxTargets.*tuple"):
    jaxmix.detection.compact_boxes((t.boxes, t.classes), 2)
  with pytest.raises(ValueError, match="box_format"):
    jaxmix.detection.compact_boxes(t, 2, box_format="ltrb")
