"""Sphinx configuration of the jaxmix documentation (`make docs`; `make docs-full` executes the notebooks).

Generated at build time, before the pages are read (all ignored by git):

- ``api/``: one page per public module, with an autodoc entry for every name in its ``__all__``
  (a new public name appears without editing anything here);
- ``_figures/``: the family pages' pictures, drawn by ``figures.py`` with jaxmix.viz (redrawn only when
  ``figures.py`` or the library's sources change);
- ``notebooks``: a link to the repository's notebooks (rendered as stored unless executed);
- ``study.md``: the regime study's report when ``examples/results/study/study.md`` exists, else a link.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import pathlib
import pkgutil
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the jaxmix of this checkout, whatever is installed
sys.path.insert(0, str(DOCS))

import jax  # noqa: E402

import jaxmix  # noqa: E402

# Four simulated CPU devices for the sharding picture, in this process only (notebook kernels, which
# set their own, do not inherit it). Too late when something already started jax's CPU backend.
try:
  jax.config.update("jax_num_cpu_devices", 4)
except RuntimeError:
  pass

project = "jaxmix"
author = "the jaxmix authors"
copyright = "the jaxmix authors"
version = release = jaxmix.__version__

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.napoleon",
  "sphinx.ext.viewcode",
  "sphinx_autodoc_typehints",
]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "notebooks/README.md"]
html_theme = "sphinx_book_theme"
html_title = f"jaxmix {release}"
html_theme_options = {"show_toc_level": 2}

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
# `make docs` renders the notebooks as stored; `make docs-full` passes -D nb_execution_mode=force.
nb_execution_mode = "off"
nb_execution_timeout = 600
nb_execution_raise_on_error = True

napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
typehints_fully_qualified = False
always_document_param_types = False


def typehints_formatter(annotation, config):
  """``jax.typing.ArrayLike`` by its name, not as the union of the eight types it stands for."""
  if annotation == jax.typing.ArrayLike:
    return "``ArrayLike``"
  return None


suppress_warnings = ["config.cache"]  # the formatter above cannot be pickled; it only costs a full re-read


# The public modules whose `__all__` makes the API reference: jaxmix and every namespace under it whose
# name does not start with an underscore (a new one gets its page without editing this file).
API_MODULES = ["jaxmix"] + [
  f"jaxmix.{m.name}"
  for m in sorted(pkgutil.iter_modules(jaxmix.__path__), key=lambda m: m.name)
  if not m.name.startswith("_")
]


def _entry(module: str, name: str, seen: dict[int, str]) -> str:
  obj = getattr(importlib.import_module(module), name)
  full = f"{module}.{name}"
  if inspect.isclass(obj):
    if id(obj) in seen:
      # A class re-exported by a second module (jaxmix.detection.MosaicPlan): autodoc would describe
      # its canonical name twice, so the second entry points to the first.
      return f".. py:class:: {name}\n   :module: {module}\n\n   The same class as :class:`{seen[id(obj)]}`.\n"
    seen[id(obj)] = full
    return f".. autoclass:: {full}\n   :members:\n"
  if callable(obj):
    return f".. autofunction:: {full}\n"
  # Data: the value unless its repr is long or holds addresses (SAMPLERS' functions).
  value = repr(obj)
  no_value = "   :no-value:\n" if (" at 0x" in value or len(value) > 400) else ""
  return f".. autodata:: {full}\n{no_value}"


def _write_if_changed(path: pathlib.Path, text: str) -> None:
  if not path.exists() or path.read_text() != text:
    path.write_text(text)


def write_api_pages(outdir: pathlib.Path = DOCS / "api") -> list[str]:
  """One ``<module>.rst`` per entry of API_MODULES; returns the names of the documented objects."""
  outdir.mkdir(exist_ok=True)
  documented = []
  toc = []
  seen: dict[int, str] = {}
  for module in API_MODULES:
    mod = importlib.import_module(module)
    names = sorted(mod.__all__, key=str.lower)
    title = f"``{module}``"
    body = [
      title,
      "=" * len(title),
      "",
      f".. automodule:: {module}",
      "   :no-members:",
      "",
    ]
    for name in names:
      body += [_entry(module, name, seen)]
      documented.append(f"{module}.{name}")
    _write_if_changed(outdir / f"{module}.rst", "\n".join(body) + "\n")
    toc.append(module)
  index = ["API reference", "=============", "", "Generated from each public module's ``__all__``.", ""]
  index += [".. toctree::", "   :maxdepth: 1", ""] + [f"   {m}" for m in toc]
  _write_if_changed(outdir / "index.rst", "\n".join(index) + "\n")
  return documented


def _sources_digest() -> str:
  h = hashlib.sha256()
  for path in sorted([DOCS / "figures.py", *(ROOT / "jaxmix").rglob("*.py")]):
    h.update(path.relative_to(ROOT).as_posix().encode())
    h.update(path.read_bytes())
  return h.hexdigest()


def write_figures(outdir: pathlib.Path = DOCS / "_figures") -> None:
  """Draws the family pages' pictures unless those of the same sources are there already."""
  import figures

  stamp = outdir / "sources.sha256"
  digest = _sources_digest()
  expected = [outdir / f"{name}.png" for name in figures.FIGURES]
  if stamp.exists() and stamp.read_text() == digest and all(p.exists() for p in expected):
    return
  figures.make_all(outdir)
  stamp.write_text(digest)


def link_notebooks(link: pathlib.Path = DOCS / "notebooks") -> None:
  """docs/notebooks -> ../notebooks: the notebooks as they are, executed in their own directory (their
  relative paths, ../tests/data, hold) with this checkout's jaxmix first on the kernels' path."""
  if link.is_dir() and not link.is_symlink():
    shutil.rmtree(link)  # copies left by an older build
  if not link.is_symlink():
    link.symlink_to(pathlib.Path("..") / "notebooks", target_is_directory=True)
  os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def write_study_page(path: pathlib.Path = DOCS / "study.md") -> None:
  report = ROOT / "examples" / "results" / "study" / "study.md"
  if report.exists():
    text = "```{include} ../examples/results/study/study.md\n:relative-images:\n```\n"
  else:
    text = (
      "# Regime study\n\n"
      "The report of the current regime study (`examples/results/study/study.md`, rendered from its run "
      "records by `python examples/study.py report`) is not in this checkout yet; "
      "`examples/results/study/README.md` says how it is made. The earlier records and their report "
      "(library of 63ee349) are in `examples/results/study-63ee349/`.\n"
    )
  _write_if_changed(path, text)


write_api_pages()
link_notebooks()
write_study_page()
write_figures()
