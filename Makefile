# Two commands on a fresh machine:
#   make demo   install into .venv and serve the page with the shipped model (models/default)
#   make test   install into .venv and run the test suite
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
HOST    ?= 127.0.0.1
PORT    ?= 8000
PYTEST_ARGS ?=

.PHONY: demo test test-all install serve menu dcgan clean-venv

$(BIN)/stackgan: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(BIN)/stackgan

install: $(BIN)/stackgan

demo: install
	$(BIN)/stackgan serve --checkpoint models/default --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Re-draw the embedded menu set (deterministic; the committed one used seed 0).
menu: install
	$(BIN)/stackgan make-menu --out data/menu --seed 0

# Watch the DCGAN baseline train on the embedded menu set.
dcgan: install
	$(BIN)/stackgan baseline-dcgan --data data/menu --epochs 25 --out runs/dcgan-menu $(if $(wildcard runs/dcgan-menu/ckpt-*.pt),--resume,)

clean-venv:
	rm -rf $(VENV)
