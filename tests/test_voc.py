import pathlib
import re

import jax
import numpy as np
import pytest

import jaxmix

DATA = pathlib.Path(__file__).parent / "data" / "voc"
CLASSES = jaxmix.detection.VOC_CLASSES


def test_reads_boxes_as_zero_based_half_open():
  ann = jaxmix.detection.read_voc(DATA / "000001.xml")
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
  ann = jaxmix.detection.read_voc(str(DATA / "hard_and_float.xml"), max_boxes=5)
  assert ann["boxes"].shape == (5, 4) and ann["boxes"].dtype == np.float32
  np.testing.assert_array_equal(ann["valid"], [True, True, True, False, False])
  np.testing.assert_array_equal(ann["difficult"], [True, False, False, False, False])
  np.testing.assert_allclose(ann["boxes"][0], [9.5, 19, 100.5, 60])
  np.testing.assert_array_equal(ann["boxes"][1], [0, 0, 640, 480])  # the whole image
  np.testing.assert_array_equal(ann["classes"][3:], [-1, -1])
  skipped = jaxmix.detection.read_voc(DATA / "hard_and_float.xml", skip_difficult=True)
  np.testing.assert_array_equal(skipped["classes"], [CLASSES.index("bicycle"), CLASSES.index("tvmonitor")])


def test_empty_file_and_batch():
  ann = jaxmix.detection.read_voc(DATA / "empty.xml")
  assert ann["boxes"].shape == (0, 4) and ann["valid"].shape == (0,)
  batch = jaxmix.detection.read_voc_batch(sorted(DATA.glob("*.xml")), max_boxes=4)
  assert batch["boxes"].shape == (3, 4, 4)
  np.testing.assert_array_equal(batch["valid"].sum(1), [2, 0, 3])
  # Padding is class -1, so valid=None (classes >= 0) agrees with the mask.
  np.testing.assert_array_equal(batch["classes"] >= 0, batch["valid"])


def test_batch_feeds_mosaic():
  batch = jaxmix.detection.read_voc_batch([DATA / "000001.xml", DATA / "hard_and_float.xml"], max_boxes=3)
  # Pretend both images were resized to 48 x 64: normalise with each size, then rescale.
  h, w = 48, 64
  norm = batch["boxes"] / np.concatenate([batch["size"][:, ::-1]] * 2, axis=1)[:, None, :]
  images = np.zeros((2, h, w, 3), np.float32)
  _, t = jaxmix.detection.mosaic(
    jax.random.key(0), images, norm, batch["classes"], batch["valid"], normalized=True
  )
  assert t.boxes.shape == (2, 12, 4)
  assert ((t.boxes >= 0) & (t.boxes <= 1)).all()


def test_xml_string_input():
  xml = "<annotation><size><width>10</width><height>20</height></size><object><name>cat</name>"
  xml += "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>5</xmax><ymax>6</ymax></bndbox></object></annotation>"
  ann = jaxmix.detection.read_voc(xml)
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
    jaxmix.detection.read_voc(xml)


def test_too_many_boxes_and_custom_classes():
  with pytest.raises(ValueError, match="max_boxes"):
    jaxmix.detection.read_voc(DATA / "000001.xml", max_boxes=1)
  ann = jaxmix.detection.read_voc(DATA / "000001.xml", class_names=["person", "dog"])
  np.testing.assert_array_equal(ann["classes"], [1, 0])
  with pytest.raises(ValueError, match="max_boxes"):
    jaxmix.detection.read_voc_batch([DATA / "000001.xml"], max_boxes=-1)


# --- malformed values: refused with the file (or "the given text") and the field ---------------------


def _voc(width="9", height="9", box=("1", "1", "2", "2")):
  xml = f"<annotation><size><width>{width}</width><height>{height}</height></size>"
  xml += "<object><name>cat</name><bndbox>"
  xml += "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True))
  return xml + "</bndbox></object></annotation>"


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_empty_text_is_refused(text):
  with pytest.raises(ValueError, match="the given text: empty"):
    jaxmix.detection.read_voc(text)


def test_empty_file_is_refused(tmp_path):
  path = tmp_path / "blank.xml"
  path.write_text("  \n")
  with pytest.raises(ValueError, match=re.escape(f"{path}: empty")):
    jaxmix.detection.read_voc(path)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e39", "-1e39", "1e400", "3.5e38"])
@pytest.mark.parametrize("field", range(4))
def test_non_finite_or_float32_overflowing_coordinates(value, field):
  box = ["1", "1", "2", "2"]
  box[field] = value
  tag = ("xmin", "ymin", "xmax", "ymax")[field]
  with pytest.raises(
    ValueError, match=rf"the given text object 0 <bndbox>: <{tag}> must be a finite float32"
  ):
    jaxmix.detection.read_voc(_voc(box=box))


@pytest.mark.parametrize("value", ["0", "-5", "0.0", "12.5", "nan", "inf", "1e39", "1e400", "3e9"])
@pytest.mark.parametrize("tag", ["width", "height"])
def test_sizes_must_be_positive_whole_numbers(value, tag):
  kwargs = {tag: value}
  with pytest.raises(ValueError, match=rf"the given text.*<{tag}>") as e:
    jaxmix.detection.read_voc(_voc(**kwargs))
  assert "positive whole number" in str(e.value) or "finite float32" in str(e.value)


def test_sizes_written_as_whole_floats_are_read():
  ann = jaxmix.detection.read_voc(_voc(width="9.0", height="7"))
  np.testing.assert_array_equal(ann["size"], [7, 9])


@pytest.mark.parametrize(
  "box, tag",
  [
    (("-1", "1", "2", "2"), "xmin"),
    (("1", "-0.5", "2", "2"), "ymin"),
    (("1", "1", "10.5", "2"), "xmax"),
    (("1", "1", "2", "11"), "ymax"),
    (("1", "1", "400", "2"), "xmax"),
  ],
)
def test_boxes_outside_the_image_by_more_than_a_pixel(box, tag):
  with pytest.raises(ValueError, match=rf"the given text object 0: <bndbox><{tag}> = .* outside the image"):
    jaxmix.detection.read_voc(_voc(box=box))


def test_boxes_within_a_pixel_are_clipped_to_the_image():
  ann = jaxmix.detection.read_voc(_voc(box=("0", "0", "10", "10")))
  np.testing.assert_array_equal(ann["boxes"], [[0, 0, 9, 9]])


def test_errors_in_a_file_name_the_file(tmp_path):
  path = tmp_path / "bad.xml"
  path.write_text(_voc(box=("1", "1", "nan", "2")))
  with pytest.raises(ValueError, match=re.escape(f"{path} object 0 <bndbox>: <xmax>")):
    jaxmix.detection.read_voc(path)
  with pytest.raises(ValueError, match=re.escape(f"{path} object 0")):
    jaxmix.detection.read_voc_batch([DATA / "000001.xml", path], max_boxes=4)


def test_entities_are_never_expanded():
  """A small internal entity used to be expanded silently; now any DTD is refused before parsing."""
  doc = '<?xml version="1.0"?><!DOCTYPE annotation [<!ENTITY pet "cat">]>' + _voc().replace("cat", "&pet;")
  with pytest.raises(ValueError, match="the given text: has a DOCTYPE or ENTITY declaration"):
    jaxmix.detection.read_voc(doc)


def test_billion_laughs_is_refused_quickly(tmp_path):
  import time
  import tracemalloc

  # Ten levels of ten references each: 10^9 copies of "lol" once expanded.
  entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
  lol = '<?xml version="1.0"?>\n<!DOCTYPE annotation [\n' + "\n".join(entities) + "\n]>\n"
  lol += _voc().replace("<name>cat</name>", "<name>&lol9;</name>")
  path = tmp_path / "lolz.xml"
  path.write_text(lol)
  tracemalloc.start()
  start = time.perf_counter()
  for source in (lol, path):
    with pytest.raises(ValueError, match="DOCTYPE or ENTITY"):
      jaxmix.detection.read_voc(source)
  elapsed = time.perf_counter() - start
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  assert elapsed < 0.5 and peak < 1_000_000, (elapsed, peak)
