# Two entry points: `make demo` and `make test`. Both create .venv and install from pyproject.toml (the
# CPU flavour; on a GPU host use FLAVOUR=cu13, cu12, cu13-trt or cu12-trt), with Ray for score --engine ray.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLAVOUR ?= cpu
# CUDA 12 flavours take PyTorch from PyTorch's own index first (PyPI's build for Linux is CUDA 13);
# TORCH_INDEX=URL chooses another index, for any flavour
TORCH_INDEX_cu12 := https://download.pytorch.org/whl/cu128
TORCH_INDEX_cu12-trt := $(TORCH_INDEX_cu12)
TORCH_INDEX ?= $(TORCH_INDEX_$(FLAVOUR))

.PHONY: demo test venv lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/pip install --quiet torch torchvision --index-url $(TORCH_INDEX))
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
