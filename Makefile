# Set-up and the two everyday commands. `make run` and `make test` create .venv on first use.
VENV  ?= .venv
PY    := $(VENV)/bin/python
# The CPU build of torch (a plain `torch` requirement can pull a multi-GB CUDA build).
# On a GPU machine: make run TORCH="torch --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.13.0

.PHONY: run test lint
run: $(VENV)/.installed
	$(PY) -m runner

# One pytest worker per core (pytest-xdist); a test file stays on one worker, so its
# module-scoped fixtures (a trained run shared by its tests) are built once.
test: $(VENV)/.installed
	$(PY) -m pytest -n auto --dist loadfile

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests scripts benchmarks

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip uninstall -y -q hydra-optuna-sweeper 2>/dev/null || true  # replaced by runner's own
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,sweeps]"
	touch $@
