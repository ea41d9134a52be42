# Two set-up commands: `make demo` and `make test`. Both create .venv and install what they need.
# `make test` also runs every docstring example (`pytest --doctest-modules jaxmix`; their names: conftest.py),
# apart from the suite: --doctest-modules over tests/ would import its helper scripts as modules.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: demo test test-slow lint bench dist clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[test,examples]"
	touch $@

FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# The demo uses Fashion-MNIST from Debian's dataset-fashion-mnist: installed here when we are root with
# apt-get; otherwise the demo prints the command and falls back to scikit-learn's digits.
demo: $(VENV)/.installed
	@[ -f $(FASHION) ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1; } || true
	$(PY) examples/demo.py

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n 2 -m "not slow"
	$(PY) -m pytest -q -n 2 --doctest-modules jaxmix

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 -m slow

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# Benchmarks are not part of `make test`. torch (the CPU wheel) and timm's mixup.py serve the
# comparison with timm; timm is installed without its dependencies (importing timm needs torchvision).
bench: $(VENV)/.installed
	$(PIP) install --quiet torch==2.13.0 && $(PIP) install --quiet --no-deps timm || echo "no torch/timm: skipping the timm comparison"
	$(PY) benchmarks/speed.py --timm --detection --out benchmarks/results/cpu.md
	$(PY) benchmarks/train_step.py --out benchmarks/results/train-step-cpu.md

# The release artefacts: sdist and wheel in dist/, checked by twine (tests/test_package.py installs the
# wheel into a fresh venv and runs the README's quick start).
dist: $(VENV)/.installed
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache dist
