import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_helpers import examples
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import jaxmix
from jaxmix._src.families import boxes as boxes_lib

FORMATS = ("xyxy", "xywh", "cxcywh")


def test_known_conversions():
  xyxy = jnp.array([[10.0, 20.0, 30.0, 60.0]])
  np.testing.assert_allclose(jaxmix.detection.convert_boxes(xyxy, "xyxy", "xywh"), [[10, 20, 20, 40]])
  np.testing.assert_allclose(jaxmix.detection.convert_boxes(xyxy, "xyxy", "cxcywh"), [[20, 40, 20, 40]])
  np.testing.assert_allclose(
    jaxmix.detection.convert_boxes([[20.0, 40.0, 20.0, 40.0]], "cxcywh", "xywh"), [[10, 20, 20, 40]]
  )
  assert jaxmix.detection.convert_boxes(jnp.array([[1, 2, 3, 4]]), "xyxy", "xyxy").dtype == jnp.float32


@settings(max_examples=examples(20), deadline=None)
@given(
  boxes=hnp.arrays(np.float32, (2, 3, 4), elements=st.floats(-100, 100, width=32)),
  src=st.sampled_from(FORMATS),
  dst=st.sampled_from(FORMATS),
)
def test_round_trip(boxes, src, dst):
  there = jaxmix.detection.convert_boxes(boxes, src, dst)
  back = jaxmix.detection.convert_boxes(there, dst, src)
  np.testing.assert_allclose(back, boxes, atol=1e-3)
  # Every format describes the same corners.
  np.testing.assert_allclose(
    jaxmix.detection.convert_boxes(there, dst, "xyxy"),
    jaxmix.detection.convert_boxes(boxes, src, "xyxy"),
    atol=1e-3,
  )


def test_normalize_uses_width_for_x_and_height_for_y():
  b = jnp.array([[32.0, 12.0, 64.0, 24.0]])
  n = jaxmix.detection.normalize_boxes(b, (24, 64))  # H = 24, W = 64
  np.testing.assert_allclose(n, [[0.5, 0.5, 1.0, 1.0]])
  np.testing.assert_allclose(jaxmix.detection.denormalize_boxes(n, (24, 64)), b)


def test_clip_and_area():
  b = jnp.array([[-5.0, -1.0, 50.0, 9.0], [3.0, 3.0, 1.0, 5.0]])
  c = jaxmix.detection.clip_boxes(b, (8, 40))
  np.testing.assert_allclose(c[0], [0, 0, 40, 8])
  np.testing.assert_allclose(jaxmix.detection.box_area(c), [320, 0])  # inverted boxes have no area


def test_jit():
  b = jnp.ones((2, 3, 4))
  np.testing.assert_allclose(
    jax.jit(jaxmix.detection.convert_boxes, static_argnums=(1, 2))(b, "cxcywh", "xyxy"),
    jaxmix.detection.convert_boxes(b, "cxcywh", "xyxy"),
  )


def test_errors():
  with pytest.raises(ValueError, match="box_format"):
    jaxmix.detection.convert_boxes(jnp.ones((1, 4)), "yxyx", "xyxy")
  with pytest.raises(ValueError, match="last axis of size 4"):
    jaxmix.detection.convert_boxes(jnp.ones((1, 5)), "xyxy", "xywh")
  with pytest.raises(ValueError, match="spatial_shape"):
    jaxmix.detection.normalize_boxes(jnp.ones((1, 4)), (3,))
  ok = (jnp.ones((2, 3, 4)), jnp.zeros((2, 3), jnp.int32), jnp.ones((2, 3), bool))
  with pytest.raises(ValueError, match=r"boxes must be \[B, N, 4\]"):
    boxes_lib.check_box_targets(jnp.ones((3, 4)), ok[1], ok[2])
  with pytest.raises(ValueError, match="disagree"):
    boxes_lib.check_box_targets(ok[0], jnp.zeros((2, 4), jnp.int32), None)
  with pytest.raises(ValueError, match="disagree"):
    boxes_lib.check_box_targets(ok[0], ok[1], jnp.ones((2, 2), bool))
  with pytest.raises(TypeError, match="classes must be integer"):
    boxes_lib.check_box_targets(ok[0], jnp.zeros((2, 3)), None)
  with pytest.raises(TypeError, match="valid must be a bool"):
    boxes_lib.check_box_targets(ok[0], ok[1], jnp.ones((2, 3)))
  with pytest.raises(ValueError, match="batch size"):
    boxes_lib.check_box_targets(*ok, batch_size=4)
  _, _, valid = boxes_lib.check_box_targets(ok[0], jnp.array([[0, -1, 2], [-1, -1, 1]]), None)
  np.testing.assert_array_equal(valid, [[True, False, True], [False, False, True]])
