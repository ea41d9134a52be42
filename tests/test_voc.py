import pathlib

import jax
import numpy as np
import pytest

import jaxmix

DATA = pathlib.Path(__file__).parent / "data" / "voc"
CLASSES = jaxmix.VOC_CLASSES


def test_reads_boxes_as_zero_based_half_open():
  ann = jaxmix.read_voc(DATA / "000001.xml")
  np.testing.assert_array_equal(ann["size"], [500, 353])
  assert ann["filename"] == "000001.jpg"
  np.testing.assert_array_equal(ann["boxes"], [[47, 239, 195, 371], [7, 11, 352, 498]])
  np.testing.assert_array_equal(ann["classes"], [CLASSES.index("dog"), CLASSES.index("person")])
  assert ann["valid"].all() and not ann["difficult"].any()
  # Every box lies inside the image [0, W] x [0, H].
  h, w = ann["size"]
  assert (ann["boxes"][:, [0, 2]] <= w).all() and (ann["boxes"][:, [1, 3]] <= h).all()
  assert (ann["boxes"] >= 0).all()


def test_difficult_float_coordinates_and_padding():
  ann = jaxmix.read_voc(str(DATA / "hard_and_float.xml"), max_boxes=5)
  assert ann["boxes"].shape == (5, 4) and ann["boxes"].dtype == np.float32
  np.testing.assert_array_equal(ann["valid"], [True, True, True, False, False])
  np.testing.assert_array_equal(ann["difficult"], [True, False, False, False, False])
  np.testing.assert_allclose(ann["boxes"][0], [9.5, 19, 100.5, 60])
  np.testing.assert_array_equal(ann["boxes"][1], [0, 0, 640, 480])  # the whole image
  np.testing.assert_array_equal(ann["classes"][3:], [-1, -1])
  skipped = jaxmix.read_voc(DATA / "hard_and_float.xml", skip_difficult=True)
  np.testing.assert_array_equal(skipped["classes"], [CLASSES.index("bicycle"), CLASSES.index("tvmonitor")])


def test_empty_file_and_batch():
  ann = jaxmix.read_voc(DATA / "empty.xml")
  assert ann["boxes"].shape == (0, 4) and ann["valid"].shape == (0,)
  batch = jaxmix.read_voc_batch(sorted(DATA.glob("*.xml")), max_boxes=4)
  assert batch["boxes"].shape == (3, 4, 4)
  np.testing.assert_array_equal(batch["valid"].sum(1), [2, 0, 3])
  # Padding is class -1, so valid=None (classes >= 0) agrees with the mask.
  np.testing.assert_array_equal(batch["classes"] >= 0, batch["valid"])


def test_batch_feeds_mosaic():
  batch = jaxmix.read_voc_batch([DATA / "000001.xml", DATA / "hard_and_float.xml"], max_boxes=3)
  # Pretend both images were resized to 48 x 64: normalise with each size, then rescale.
  h, w = 48, 64
  norm = batch["boxes"] / np.concatenate([batch["size"][:, ::-1]] * 2, axis=1)[:, None, :]
  images = np.zeros((2, h, w, 3), np.float32)
  _, t = jaxmix.mosaic(jax.random.key(0), images, norm, batch["classes"], batch["valid"], normalized=True)
  assert t.boxes.shape == (2, 12, 4)
  assert ((t.boxes >= 0) & (t.boxes <= 1)).all()


def test_xml_string_input():
  xml = "<annotation><size><width>10</width><height>20</height></size><object><name>cat</name>"
  xml += "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>5</xmax><ymax>6</ymax></bndbox></object></annotation>"
  ann = jaxmix.read_voc(xml)
  np.testing.assert_array_equal(ann["boxes"], [[0, 1, 5, 6]])
  assert ann["filename"] == ""


@pytest.mark.parametrize(
  "xml, match",
  [
    ("<annotation><size><width>1</width></size></annotation>", "height"),
    ("<annotation></annotation>", "size"),
    ("<root/>", "annotation"),
    ("<annotation><size>", "valid XML"),
    (
      "<annotation><size><width>9</width><height>9</height></size><object><name>unicorn</name>"
      "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>",
      "unknown class",
    ),
    (
      "<annotation><size><width>9</width><height>9</height></size><object><name>cat</name>"
      "<bndbox><xmin>5</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>",
      "inverted",
    ),
    (
      "<annotation><size><width>9</width><height>9</height></size><object><name>cat</name>"
      "<bndbox><xmin>a</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>",
      "not a number",
    ),
  ],
)
def test_bad_xml_errors(xml, match):
  with pytest.raises(ValueError, match=match):
    jaxmix.read_voc(xml)


def test_too_many_boxes_and_custom_classes():
  with pytest.raises(ValueError, match="max_boxes"):
    jaxmix.read_voc(DATA / "000001.xml", max_boxes=1)
  ann = jaxmix.read_voc(DATA / "000001.xml", class_names=["person", "dog"])
  np.testing.assert_array_equal(ann["classes"], [1, 0])
  with pytest.raises(ValueError, match="max_boxes"):
    jaxmix.read_voc_batch([DATA / "000001.xml"], max_boxes=-1)
