"""A small Pascal VOC XML reader into padded box arrays (host side, NumPy).

VOC stores each object's ``<bndbox>`` as 1-based, inclusive pixel indices
(``xmin = 1`` is the first column). jaxmix boxes are 0-based and half-open
(:mod:`jaxmix._src.families.boxes`), so a VOC box becomes
``(xmin − 1, ymin − 1, xmax, ymax)`` in pixel ``"xyxy"``: a box over columns
1..10 in VOC covers x in [0, 10).

Files are checked, not trusted: empty text, a value that is not a finite
float32 number, a size that is not a positive whole number, an inverted box
or one outside the stated size by more than one pixel is a ValueError that
names the file (or "the given text") and the field. Documents with a DOCTYPE
or ENTITY declaration are refused before parsing, so no entity is ever
expanded (a "billion laughs" document costs nothing).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import numpy as np

VOC_CLASSES = (
  "aeroplane",
  "bicycle",
  "bird",
  "boat",
  "bottle",
  "bus",
  "car",
  "cat",
  "chair",
  "cow",
  "diningtable",
  "dog",
  "horse",
  "motorbike",
  "person",
  "pottedplant",
  "sheep",
  "sofa",
  "train",
  "tvmonitor",
)


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT32_MAX = int(np.iinfo(np.int32).max)
# A DTD is where entities are declared; VOC files have none.
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _text(node: ET.Element, tag: str, where: str) -> str:
  child = node.find(tag)
  if child is None or child.text is None:
    raise ValueError(f"{where}: missing <{tag}>.")
  return child.text.strip()


def _number(node: ET.Element, tag: str, where: str) -> float:
  """The finite number in ``<tag>``, one that float32 holds (the boxes' dtype)."""
  text = _text(node, tag, where)
  try:
    value = float(text)
  except ValueError:
    raise ValueError(f"{where}: <{tag}> is not a number: {text!r}.") from None
  if not np.isfinite(value) or abs(value) > _FLOAT32_MAX:
    raise ValueError(f"{where}: <{tag}> must be a finite float32 number, got {text!r}.")
  return value


def _size(node: ET.Element, tag: str, where: str) -> int:
  value = _number(node, tag, where + " <size>")
  if value <= 0 or value != int(value) or value > _INT32_MAX:
    raise ValueError(
      f"{where}: <size><{tag}> must be a positive whole number of pixels, got {_text(node, tag, where)!r}."
    )
  return int(value)


def _read_text(source: str | os.PathLike) -> tuple[str, str]:
  """``(text, where)``: the XML and how errors name it (the path, or "the given text")."""
  if isinstance(source, str) and (not source.strip() or source.lstrip().startswith("<")):
    where = "the given text"
    text = source
  else:
    where = os.fspath(source)
    try:
      with open(where, encoding="utf-8") as f:
        text = f.read()
    except UnicodeDecodeError as e:
      raise ValueError(f"{where}: not UTF-8 text ({e}).") from None
  if not text.strip():
    raise ValueError(f"{where}: empty, not a VOC annotation.")
  if _DECLARATION.search(text):
    raise ValueError(
      f"{where}: has a DOCTYPE or ENTITY declaration; VOC annotations have none, and read_voc never "
      "expands XML entities."
    )
  return text, where


def read_voc(
  source: str | os.PathLike,
  *,
  class_names: Sequence[str] = VOC_CLASSES,
  max_boxes: int | None = None,
  skip_difficult: bool = False,
) -> dict[str, Any]:
  """Reads one VOC annotation file (or XML string) into padded arrays.

  Every value is checked (module docstring): a ValueError names the file (or
  "the given text") and the field for empty input, a DOCTYPE or ENTITY
  declaration (entities are never expanded), a coordinate or size that is
  not a finite float32 number, a size that is not a positive whole number,
  an inverted box, or a box outside the stated size by more than one pixel.
  Boxes within that pixel are clipped to the image.

  Args:
    source: a path to an ``.xml`` file, or the XML text itself (a string
      starting with ``<``).
    class_names: names in class-id order (the 20 VOC classes by default);
      an unknown name is an error.
    max_boxes: pad to this many boxes (None: as many as the file has);
      more objects than this is an error.
    skip_difficult: drop objects marked ``<difficult>1</difficult>``.

  Returns:
    A dict of NumPy arrays: ``boxes`` float32 `[N, 4]` (pixel ``"xyxy"``,
    0-based half-open), ``classes`` int32 `[N]` (-1 for padding), ``valid``
    bool `[N]`, ``difficult`` bool `[N]`, ``size`` int32 `[2]` (H, W) and
    ``filename`` (str).

  Example:
    >>> ann = jaxmix.detection.read_voc(voc_files[0], max_boxes=4)   # e.g. "VOC2012/Annotations/....xml"
    >>> ann["classes"], ann["valid"]          # a dog and a person, padded to 4
    (array([11, 14, -1, -1], dtype=int32), array([ True,  True, False, False]))
    >>> ann["boxes"][0]                       # VOC's 1-based (5, 9, 20, 30), 0-based half-open
    array([ 4.,  8., 20., 30.], dtype=float32)
  """
  text, where = _read_text(source)
  try:
    root = ET.fromstring(text)
  except ET.ParseError as e:
    raise ValueError(f"{where}: not valid XML ({e}).") from None
  if root.tag != "annotation":
    raise ValueError(f"{where}: the root element must be <annotation>, got <{root.tag}>.")
  size = root.find("size")
  if size is None:
    raise ValueError(f"{where}: missing <size>.")
  height = _size(size, "height", where)
  width = _size(size, "width", where)
  names = list(class_names)
  boxes, classes, difficult = [], [], []
  for i, obj in enumerate(root.findall("object")):
    spot = f"{where} object {i}"
    name = _text(obj, "name", spot)
    if name not in names:
      raise ValueError(f"{spot}: unknown class {name!r}; class_names are {names}.")
    hard = obj.find("difficult")
    is_hard = hard is not None and hard.text is not None and hard.text.strip() == "1"
    if skip_difficult and is_hard:
      continue
    bnd = obj.find("bndbox")
    if bnd is None:
      raise ValueError(f"{spot}: missing <bndbox>.")
    x1, y1, x2, y2 = (_number(bnd, t, spot + " <bndbox>") for t in ("xmin", "ymin", "xmax", "ymax"))
    if x2 < x1 or y2 < y1:
      raise ValueError(f"{spot}: inverted box ({x1}, {y1}, {x2}, {y2}).")
    # VOC is 1-based inclusive: the image spans xmin >= 1, xmax <= width. One pixel of slack
    # (0-based files, off-by-one tools) is clipped; more is an error.
    for tag, value, lo, hi in (
      ("xmin", x1, 0, width + 1),
      ("ymin", y1, 0, height + 1),
      ("xmax", x2, 0, width + 1),
      ("ymax", y2, 0, height + 1),
    ):
      if not lo <= value <= hi:
        raise ValueError(
          f"{spot}: <bndbox><{tag}> = {value:g} lies outside the image (width {width}, height "
          f"{height}) by more than one pixel."
        )
    boxes.append((max(x1 - 1, 0), max(y1 - 1, 0), min(x2, width), min(y2, height)))
    classes.append(names.index(name))
    difficult.append(is_hard)
  n = len(boxes)
  if max_boxes is None:
    max_boxes = n
  if n > max_boxes:
    raise ValueError(f"{where} has {n} objects but max_boxes={max_boxes}.")
  out_boxes = np.zeros((max_boxes, 4), np.float32)
  out_classes = np.full((max_boxes,), -1, np.int32)
  out_difficult = np.zeros((max_boxes,), bool)
  if n:
    out_boxes[:n] = np.asarray(boxes, np.float32)
    out_classes[:n] = classes
    out_difficult[:n] = difficult
  filename = root.find("filename")
  return {
    "boxes": out_boxes,
    "classes": out_classes,
    "valid": np.arange(max_boxes) < n,
    "difficult": out_difficult,
    "size": np.array([height, width], np.int32),
    "filename": "" if filename is None or filename.text is None else filename.text.strip(),
  }


def read_voc_batch(
  sources: Sequence[str | os.PathLike],
  *,
  max_boxes: int,
  class_names: Sequence[str] = VOC_CLASSES,
  skip_difficult: bool = False,
) -> dict[str, Any]:
  """Reads several VOC files into `[B, max_boxes, ...]` arrays (see :func:`read_voc`).

  Args:
    sources: paths of VOC XML files (or XML strings, as :func:`read_voc` takes).
    max_boxes: N, the padded number of boxes per image (static).
    class_names: the class list that maps names to ids (VOC's 20 by default).
    skip_difficult: drop objects marked ``difficult``.

  Returns:
    The dict of :func:`read_voc` with a leading batch axis; ``filename`` is
    a list.

  Example:
    >>> ann = jaxmix.detection.read_voc_batch(voc_files, max_boxes=3)   # two 32 × 32 images
    >>> ann["boxes"].shape, ann["filename"]
    ((2, 3, 4), ['000001.jpg', '000002.jpg'])
    >>> images, t = jaxmix.detection.mosaic(key, images[:2], ann["boxes"], ann["classes"], ann["valid"])
    >>> t.boxes.shape
    (2, 12, 4)
  """
  if isinstance(max_boxes, bool) or not isinstance(max_boxes, int) or max_boxes < 0:
    raise ValueError(f"max_boxes must be a non-negative int, got {max_boxes!r}.")
  items = [
    read_voc(s, class_names=class_names, max_boxes=max_boxes, skip_difficult=skip_difficult) for s in sources
  ]
  if not items:
    raise ValueError("sources is empty.")
  out: dict[str, Any] = {
    k: np.stack([it[k] for it in items]) for k in ("boxes", "classes", "valid", "difficult", "size")
  }
  out["filename"] = [it["filename"] for it in items]
  return out
