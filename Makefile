# flowcore — the two front-door commands (`make demo`, `make test`) plus `make bench`.
# Each target sets up .venv itself: plain venv + pip, pins from constraints.txt.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml adapters/torch/pyproject.toml adapters/tensorflow/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt \
		-e '.[cpu,analysis,dev]' -e adapters/torch -e adapters/tensorflow
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/flowcore demo --out demo_out

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) tools/bench_trajectories.py --out bench_out
	$(PY) tools/bench_grouping.py --out bench_out

clean:
	rm -rf $(VENV) demo_out bench_out .pytest_cache
