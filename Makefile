# The two commands: `make demo` (the local demo) and `make test` (everything CI runs).
# Everything else here is a step of those two or a convenience.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv check fmt unit cluster vllm test demo demo-down bench crds clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	scripts/bootstrap-venv $(VENV)
	touch $@

check: venv
	$(PY) -m ruff format --check operator tests scripts
	$(PY) -m ruff check operator tests scripts
	$(PY) -m mypy
	$(PY) -m mypy --strict scripts/demo.py
	$(VENV)/bin/lint-imports

fmt: venv
	$(PY) -m ruff format operator tests scripts
	$(PY) -m ruff check --fix operator tests scripts

unit: venv
	$(PY) -m pytest tests/unit -q

cluster: venv
	$(PY) -m pytest tests/cluster tests/e2e -q

# tests/vllm against the real vllm package, in a venv cached under ~/.cache (built on first use).
vllm: venv
	scripts/test-vllm -q

test: venv
	scripts/test

demo: venv
	$(PY) scripts/demo.py

demo-down: venv
	$(PY) -m nemotron_operator devcluster down

bench: venv
	scripts/bench

crds: venv
	$(PY) -m nemotron_operator crd --write
