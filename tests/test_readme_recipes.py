"""The README's detection recipes (YOLOv5/ultralytics, YOLOX, RTMDet) run as written, with sane outputs."""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def _recipe_block() -> str:
  with open(README, encoding="utf-8") as f:
    text = f.read()
  section = text.split("### Detection recipes", 1)[1]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_detection_recipes_run_as_written(capsys):
  scope: dict = {}
  exec(compile(_recipe_block(), "README.md (detection recipes)", "exec"), scope)
  assert capsys.readouterr().out.strip().endswith("(4, 64, 64, 3) uint8 (4, 16, 4)")
  images, boxes, classes, key = scope["images"], scope["boxes"], scope["classes"], scope["key"]
  for name in ("yolov5", "yolox"):
    out, t = scope[name](key, images, boxes, classes)
    assert out.shape == images.shape and out.dtype == images.dtype, name
    b = np.asarray(t.boxes)[np.asarray(t.valid)]
    assert len(b) > 0, name  # the chain keeps some boxes
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= 64).all() and (b[:, :2] < b[:, 2:]).all(), name
  # the RTMDet recipe fills its two partner buffers (CachedMosaic, CachedMixUp) across steps
  cache = scope["rtmdet_init"](images, boxes, classes)
  assert int(cache["mosaic"].count) == 0 and int(cache["mixup"].count) == 0
  assert cache["mosaic"].size == 40 and cache["mixup"].size == 20
  for i in range(2):
    out, t, cache = scope["rtmdet"](jax.random.key(i + 1), cache, images, boxes, classes)
  assert int(cache["mosaic"].count) == 8 and int(cache["mixup"].count) == 8
  assert out.shape == images.shape and out.dtype == images.dtype
  assert bool(jnp.all(t.weights[~t.valid] == 0))
