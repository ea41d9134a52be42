"""Every notebook under notebooks/ runs top to bottom; the generated ones match their generator."""

import importlib.util
import os
import pathlib
import sys
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NEEDS = {  # modules a notebook imports beyond jaxmix's own dependencies
  "01_quickstart.ipynb": ["skimage"],
  "02_flax_train_step.ipynb": ["sklearn"],
  "03_dense.ipynb": ["skimage"],
  "04_sharded.ipynb": ["skimage"],
}


def _generator():
  spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS / "make_notebooks.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_generated_notebooks_are_current_and_stripped():
  gen = _generator()
  assert gen.NOTEBOOKS, "the generator writes no notebook"
  for name in gen.NOTEBOOKS:
    path = NOTEBOOKS / name
    assert path.read_text() == gen.render(name), f"{name} is stale: run python notebooks/make_notebooks.py"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
      if cell.cell_type == "code":
        assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.slow  # about 150 s of CPU: run by `make test-slow`, kept out of the 15-minute `make test`
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs(name):
  for module in NEEDS.get(name, []):
    pytest.importorskip(module)
  nb = nbformat.read(NOTEBOOKS / name, as_version=4)
  # The kernel must be this interpreter (the venv's), importing this checkout's jaxmix.
  nb.cells.append(nbformat.v4.new_code_cell("import sys, jaxmix\nprint(sys.prefix)\nprint(jaxmix.__file__)"))
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
  client = nbclient.NotebookClient(
    nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
  )
  xla_flags = os.environ.get("XLA_FLAGS")
  start = time.perf_counter()
  client.execute(env=env)
  elapsed = time.perf_counter() - start
  # A notebook's os.environ changes (04_sharded sets XLA_FLAGS) stay in its kernel process.
  assert os.environ.get("XLA_FLAGS") == xla_flags
  lines = nb.cells[-1].outputs[0]["text"].split("\n")
  assert lines[0] == sys.prefix
  assert pathlib.Path(lines[1]).resolve().is_relative_to(ROOT)
  images = sum(
    1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
  )
  assert images > 0, f"{name} showed no figure"
  print(f"{name}: {elapsed:.1f} s, {images} figures")
