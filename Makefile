# Two entry points: `make demo` and `make test`. Both create .venv and install from pyproject.toml (the
# CPU flavour; on a GPU host use FLAVOUR=cu12 or FLAVOUR=cu13), with Ray for score --engine ray.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLAVOUR ?= cpu

.PHONY: demo test venv lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,ray,$(FLAVOUR)]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/apt-video demo --work $(or $(WORK),demo-work)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check models pipeline export apt_video tests

clean:
	rm -rf $(VENV) demo-work
