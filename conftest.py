"""pytest settings for the whole repository: the XLA flag for the suite and the doctest namespace.

XLA flags and compilation cache. Compiling dominates the test time on CPU (``jax.random.beta`` alone
takes seconds to compile at the default LLVM optimisation level), and each
test compiles small programs once, most of them single primitives of eager
calls. Two flags cut that: LLVM optimisation level 0 halves compile time, and
the CPU backend's older elemental emitters instead of its MLIR fusion emitters
(``--xla_cpu_use_fusion_emitters=false``) take another third off (a
primitive compiles in about 20 ms instead of 30 ms; tests/test_resizemix.py
with tests/test_copy_paste.py on a cold cache: 80 s → 51 s). Neither changes
results (no fast-math either way); set either flag in ``XLA_FLAGS`` yourself to
override it. This must run before JAX initialises its backend, hence here, the
first file pytest imports (it is the rootdir conftest, so it serves both
``tests/`` and the doctests of ``jaxmix/``).

Doctests. ``make test`` runs ``pytest --doctest-modules jaxmix``: every
``Example:`` in a docstring is a test. Each example sees these names (small,
fixed objects; no example needs a dataset, a trained model or an accelerator):

- ``jax``, ``jnp``, ``np``, ``functools``, ``optax``, ``jaxmix``: the modules;
- ``key``: ``jax.random.key(0)``;
- ``images``: float32 ``[8, 32, 32, 3]`` in [0, 1) (NHWC); ``labels``: int32
  ``[8]``, the classes 0..7 of 10; ``names``: the 10 class names (CIFAR-10's);
- ``boxes``: float32 ``[8, 3, 4]``, pixel ``"xyxy"`` inside 32 × 32;
  ``classes``: int32 ``[8, 3]``, VOC class ids (-1 for padding); ``valid``:
  bool ``[8, 3]``, two real boxes and one padding row per image;
- ``seg``: int32 ``[8, 32, 32]`` label maps, classes 0..20 and 255 (ignore);
- ``specs``: float32 ``[8, 64, 40]`` log-mel spectrograms (frames × bins);
- ``tokens``: int32 ``[8, 16]`` token ids padded with ``PAD`` (= 0);
  ``mask``: bool ``[8, 16]``, ``tokens != PAD``; ``emb``: float32
  ``[8, 16, 32]`` token embeddings (zero on padding);
- ``mesh``: a 1-device mesh with the axis ``"data"``;
- ``voc_files``: paths of two Pascal VOC XML files (32 × 32 images) in a
  temporary folder.

Each doctest runs in its own temporary working directory (files it saves go
there), with matplotlib's Agg backend, and its figures are closed afterwards.
Doctest option flags (ELLIPSIS, NORMALIZE_WHITESPACE) are set in pyproject.toml.
"""

import os
import sys

_FAST_COMPILE = {"xla_backend_optimization_level": "0", "xla_cpu_use_fusion_emitters": "false"}
for _flag, _value in _FAST_COMPILE.items():
  if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --{_flag}={_value}").strip()

# JAX's persistent compilation cache, shared by the xdist workers and the subprocesses the suite starts:
# many tests compile the same small programs (eager primitives at the same shapes, the same samplers).
# Every program is cached, however quick to compile. On a clean clone the cache starts empty (what CI
# sees); later local runs reuse it. Keyed by JAX's version, the XLA flags and the program, so a stale
# entry is never used. Set JAX_COMPILATION_CACHE_DIR yourself to move it, or to "" to turn it off.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(__file__), ".cache", "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402
from _pytest.doctest import DoctestItem  # noqa: E402

_VOC = """<annotation>
  <filename>{name}.jpg</filename>
  <size><width>32</width><height>32</height><depth>3</depth></size>
{objects}</annotation>
"""
_VOC_OBJECT = """  <object>
    <name>{name}</name><difficult>0</difficult>
    <bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>
  </object>
"""


def _write_voc(folder):
  files = []
  for name, objects in (
    ("000001", (("dog", 5, 9, 20, 30), ("person", 17, 2, 31, 28))),
    ("000002", (("cat", 3, 3, 14, 16),)),
  ):
    text = _VOC.format(
      name=name,
      objects="".join(_VOC_OBJECT.format(name=n, x1=a, y1=b, x2=c, y2=d) for n, a, b, c, d in objects),
    )
    path = folder / f"{name}.xml"
    path.write_text(text)
    files.append(str(path))
  return files


def _namespace(folder):
  """The names every doctest sees (built on the first doctest, so plain test runs never build them)."""
  import functools

  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax

  import jaxmix

  rng = np.random.default_rng(0)
  b = 8
  # Two boxes per image inside 32 × 32 (x1 < x2, y1 < y2, at least 6 pixels a side), one padding row.
  x1y1 = rng.integers(0, 16, (b, 2, 2))
  x2y2 = x1y1 + rng.integers(6, 17, (b, 2, 2))
  boxes = np.zeros((b, 3, 4), np.float32)
  boxes[:, :2] = np.concatenate([x1y1, x2y2], -1)
  classes = np.full((b, 3), -1, np.int32)
  classes[:, :2] = rng.integers(0, 20, (b, 2))
  # Label maps: background 0, two rectangles of classes 1..20, a left column of 255 (ignore).
  seg = np.zeros((b, 32, 32), np.int32)
  seg[:, 4:20, 6:22] = rng.integers(1, 21, (b, 1, 1))
  seg[:, 14:30, 16:30] = rng.integers(1, 21, (b, 1, 1))
  seg[:, :, 0] = 255
  pad = 0
  lengths = np.array([16, 12, 9, 16, 5, 14, 10, 7])
  tokens = np.where(np.arange(16) < lengths[:, None], rng.integers(1, 100, (b, 16)), pad).astype(np.int32)
  emb = rng.normal(size=(b, 16, 32)).astype(np.float32) * (tokens != pad)[..., None]
  return {
    "functools": functools,
    "jax": jax,
    "jnp": jnp,
    "np": np,
    "optax": optax,
    "jaxmix": jaxmix,
    "key": jax.random.key(0),
    "images": jax.random.uniform(jax.random.key(1), (b, 32, 32, 3)),
    "labels": jnp.arange(b, dtype=jnp.int32),
    "names": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "boxes": jnp.asarray(boxes),
    "classes": jnp.asarray(classes),
    "valid": jnp.asarray(classes >= 0),
    "seg": jnp.asarray(seg),
    "specs": jax.random.normal(jax.random.key(2), (b, 64, 40)),
    "PAD": pad,
    "tokens": jnp.asarray(tokens),
    "mask": jnp.asarray(tokens != pad),
    "emb": jnp.asarray(emb),
    "mesh": jax.make_mesh((1,), ("data",), devices=jax.devices()[:1]),
    "voc_files": _write_voc(folder),
    # A restoration pair: an LR input (8 × 8), its ×4 HR target, and the LR input upsampled (nearest).
    "lr": jax.random.uniform(jax.random.key(1), (b, 32, 32, 3))[:, ::4, ::4],
    "hr": jax.random.uniform(jax.random.key(1), (b, 32, 32, 3)),
    "lr_up": jnp.repeat(
      jnp.repeat(jax.random.uniform(jax.random.key(1), (b, 32, 32, 3))[:, ::4, ::4], 4, 1), 4, 2
    ),
  }


@pytest.fixture(autouse=True)
def _doctest_setup(request):
  """For doctests only: fills the namespace, runs in a temp dir with the Agg backend, closes figures."""
  if not isinstance(request.node, DoctestItem):
    yield
    return
  namespace = request.getfixturevalue("doctest_namespace")
  if "jaxmix" not in namespace:
    namespace.update(_namespace(request.getfixturevalue("tmp_path_factory").mktemp("voc")))
  try:
    import matplotlib
  except ImportError:
    matplotlib = None
  else:
    matplotlib.use("Agg")
  request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
  yield
  if matplotlib is not None and "matplotlib.pyplot" in sys.modules:
    import matplotlib.pyplot as plt

    plt.close("all")
