"""A small Pascal VOC XML reader into padded box arrays (host side, NumPy).

VOC stores each object's ``<bndbox>`` as 1-based, inclusive pixel indices
(``xmin = 1`` is the first column). jaxmix boxes are 0-based and half-open
(:mod:`jaxmix._src.families.boxes`), so a VOC box becomes
``(xmin − 1, ymin − 1, xmax, ymax)`` in pixel ``"xyxy"``: a box over columns
1..10 in VOC covers x in [0, 10).
"""

from __future__ import annotations

import os
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


def _text(node: ET.Element, tag: str, where: str) -> str:
  child = node.find(tag)
  if child is None or child.text is None:
    raise ValueError(f"{where}: missing <{tag}>.")
  return child.text.strip()


def _number(node: ET.Element, tag: str, where: str) -> float:
  text = _text(node, tag, where)
  try:
    return float(text)
  except ValueError:
    raise ValueError(f"{where}: <{tag}> is not a number: {text!r}.") from None


def read_voc(
  source: str | os.PathLike,
  *,
  class_names: Sequence[str] = VOC_CLASSES,
  max_boxes: int | None = None,
  skip_difficult: bool = False,
) -> dict[str, Any]:
  """Reads one VOC annotation file (or XML string) into padded arrays.

  Args:
    source: a path to an ``.xml`` file, or the XML text itself.
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
    >>> ann = jaxmix.detection.read_voc("VOC2012/Annotations/2007_000027.xml", max_boxes=50)
  """
  text = os.fspath(source)
  where = "<string>"
  if not text.lstrip().startswith("<"):
    where = text
    with open(text, encoding="utf-8") as f:
      text = f.read()
  try:
    root = ET.fromstring(text)
  except ET.ParseError as e:
    raise ValueError(f"{where}: not valid XML ({e}).") from None
  if root.tag != "annotation":
    raise ValueError(f"{where}: the root element must be <annotation>, got <{root.tag}>.")
  size = root.find("size")
  if size is None:
    raise ValueError(f"{where}: missing <size>.")
  height = int(_number(size, "height", where))
  width = int(_number(size, "width", where))
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
    x1, y1, x2, y2 = (_number(bnd, t, spot) for t in ("xmin", "ymin", "xmax", "ymax"))
    if x2 < x1 or y2 < y1:
      raise ValueError(f"{spot}: inverted box ({x1}, {y1}, {x2}, {y2}).")
    boxes.append((x1 - 1, y1 - 1, x2, y2))
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
    >>> ann = jaxmix.detection.read_voc_batch(paths, max_boxes=50)
    >>> images, t = jaxmix.detection.mosaic(key, images, ann["boxes"], ann["classes"], ann["valid"])
  """
  if isinstance(max_boxes, bool) or not isinstance(max_boxes, int) or max_boxes < 0:
    raise ValueError(f"max_boxes must be a non-negative int, got {max_boxes!r}.")
  items = [
    read_voc(s, class_names=class_names, max_boxes=max_boxes, skip_difficult=skip_difficult) for s in sources
  ]
  if not items:
    raise ValueError("sources is empty.")
  out = {k: np.stack([it[k] for it in items]) for k in ("boxes", "classes", "valid", "difficult", "size")}
  out["filename"] = [it["filename"] for it in items]
  return out
