"""The release artefacts: the wheel and sdist build, pass `twine check`, and the installed wheel runs.

The wheel is installed with pip into a fresh virtual environment that sees this environment's
dependencies (jax, flax, optax, chex) through a ``.pth`` file but not the repository checkout, and the
README's quick start runs there from an empty directory.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("dist"))
  subprocess.run(
    [sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT],
    check=True,
    capture_output=True,
    text=True,
  )
  wheel = glob.glob(os.path.join(out, "*.whl"))
  sdist = glob.glob(os.path.join(out, "*.tar.gz"))
  assert len(wheel) == 1 and len(sdist) == 1, os.listdir(out)
  return wheel[0], sdist[0]


def _package_files() -> set[str]:
  files = set()
  for base, dirs, names in os.walk(os.path.join(ROOT, "jaxmix")):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    for name in names:
      if name.endswith(".py") or name == "py.typed":
        files.add(os.path.relpath(os.path.join(base, name), ROOT).replace(os.sep, "/"))
  return files


def test_wheel_holds_every_module_and_py_typed_and_nothing_else(dist):
  wheel, _ = dist
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
  shipped = {n for n in names if n.startswith("jaxmix/")}
  assert "jaxmix/py.typed" in shipped
  assert shipped == _package_files()
  assert not [n for n in names if n.split("/")[0] in ("tests", "examples", "benchmarks", "notebooks")]


def test_sdist_holds_library_and_tests_but_no_stored_results(dist):
  _, sdist = dist
  with tarfile.open(sdist) as t:
    names = [n.split("/", 1)[1] for n in t.getnames() if "/" in n]
  wanted = {"pyproject.toml", "README.md", "LICENSE", "jaxmix/__init__.py", "tests/test_contract.py"}
  assert wanted <= set(names)
  assert not [n for n in names if n.startswith(("examples/", "benchmarks/", "notebooks/"))]


def test_twine_check_passes(dist):
  result = subprocess.run(
    [sys.executable, "-m", "twine", "check", "--strict", *dist], capture_output=True, text=True
  )
  assert result.returncode == 0, result.stdout + result.stderr
  assert result.stdout.count("PASSED") == 2


QUICK_START_DRIVER = """
import flax.linen as nn
import jax.numpy as jnp
from flax.training import train_state

assert jaxmix.__file__.startswith({prefix!r}), jaxmix.__file__
model = nn.Sequential([lambda x: x.reshape(x.shape[0], -1), nn.Dense(1000)])
images = jnp.ones((4, 8, 8, 3))
params = model.init(jax.random.key(0), images)["params"]
state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.sgd(0.1))
state = train_step(state, jax.random.key(1), images, jnp.array([0, 1, 2, 3]))
assert int(state.step) == 1
print("quick start ran from", jaxmix.__file__)
"""


@pytest.mark.slow  # a fresh venv and a pip install: about 20 s (make test-slow)
def test_installed_wheel_runs_the_readme_quick_start(dist, tmp_path):
  wheel, _ = dist
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  site = subprocess.run(
    [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
    check=True,
    capture_output=True,
    text=True,
  ).stdout.strip()
  # jax, flax, optax, chex from this environment; jaxmix only from the wheel (a .pth line adds a
  # directory but does not run the editable install's own .pth files in it).
  with open(os.path.join(site, "deps.pth"), "w") as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")
  subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel], check=True)
  readme = open(os.path.join(ROOT, "README.md")).read()
  quick = readme.split("## Quick start", 1)[1]
  code = re.search(r"```python\n(.*?)```", quick, re.S).group(1)
  script = tmp_path / "quick_start.py"
  script.write_text(code + QUICK_START_DRIVER.format(prefix=site))
  work = tmp_path / "empty"
  work.mkdir()
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  result = subprocess.run([python, str(script)], cwd=work, capture_output=True, text=True, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "quick start ran from " + site in result.stdout


def test_oldest_pins_are_the_floors_of_pyproject():
  """`make test-oldest` pins .ci/oldest.txt; each pin must be the floor pyproject.toml declares."""
  tomllib = pytest.importorskip("tomllib")  # Python 3.11+

  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
  floors = dict(re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", d).groups() for d in deps)
  with open(os.path.join(ROOT, ".ci", "oldest.txt")) as f:
    pins = dict(line.strip().split("==") for line in f if line.strip() and not line.startswith("#"))
  assert set(floors) <= set(pins), sorted(set(floors) - set(pins))
  assert {name: pins[name] for name in floors} == {
    name: floor if floor.count(".") == 2 else floor + ".0" for name, floor in floors.items()
  }
