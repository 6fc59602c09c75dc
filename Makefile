# normlab: one-command set-up.  `make test` builds .venv from nothing and runs the fast tests;
# `make run` runs the main job on the default configuration.
PYTHON      ?= python3
VENV        ?= .venv
# CPU build for laptops and CI.  On a GPU cluster, override with a CUDA build, e.g.
#   make venv TORCH_SPEC=torch==2.13.0   (Linux x86_64 wheels on PyPI are CUDA builds)
TORCH_SPEC  ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PY          := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv test test-slow test-all lint bench run clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(PY) -m pip install --quiet -c requirements/lock.txt -e '.[dev]'
	$(PY) -c "import torch, normlab; print('normlab', normlab.__version__, 'torch', torch.__version__)"
	touch $@

# The fast suite (< 10 min on 2 cores).
test: venv
	$(PY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

# Long end-to-end checks (.ci/run runs these too).
test-slow: venv
	$(PY) -m pytest -m "slow" $(PYTEST_ARGS) || [ $$? -eq 5 ]   # 5 = no slow test collected

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks notebooks tools

bench: venv
	$(PY) benchmarks/bench_norms.py

# The main job: the whole default DAG (config/default.yaml), data fetch included.
# Another configuration: make run CONFIG=config/test.yaml; extra Snakemake arguments: SNAKEMAKE_ARGS="..."
# After a run that regenerated the outputs, paper_tables/provenance.json records commit, config hash,
# machine, date and wall time (normlab provenance).
CONFIG ?= config/default.yaml
CORES ?= $(shell nproc)
SNAKEMAKE_ARGS ?=
run: venv
	@started=$$(date +%s); \
	PATH="$(abspath $(VENV))/bin:$$PATH" snakemake --cores $(CORES) --rerun-incomplete --configfile $(CONFIG) $(SNAKEMAKE_ARGS) \
	&& $(VENV)/bin/normlab provenance --config $(CONFIG) --started $$started --cores $(CORES)

clean-venv:
	rm -rf $(VENV)
