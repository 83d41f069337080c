# dfake: `make demo` runs the pipeline end to end on the embedded default; `make test` runs the tests.
# Both install what they need into .venv with plain pip (idempotent: a stamp file tracks pyproject.toml).
# Every path is relative to this Makefile, so `make -C path/to/clone demo` (or `make -f`) works from any directory.
ROOT   := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PYTHON ?= python3
VENV   ?= $(ROOT)/.venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dfake-installed
# The torch build this machine ships on disk; override for another platform (e.g. TORCH_SPEC=torch).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test fuzz demo demo-sbi bench bench-gpu sample-data clean help

help:
	@echo "make demo   - prepare -> train -> eval -> reconstruct on sample_data with the tiny SD"
	@echo "make demo-sbi - the same detector trained on self-blended fakes of the reals only, beside make demo's"
	@echo "make test   - run the test suite (installs first if needed)"
	@echo "make fuzz   - the hostile-input fuzz tests with many more examples (nightly; about 10 min)"
	@echo "make bench  - quick CPU benchmarks (dfake bench --quick)"
	@echo "make bench-gpu [QUICK=1] - every GPU figure in one run (QUICK=1: toy sizes on the CPU, < 2 min)"
	@echo "make install / sample-data / clean"

install: $(STAMP)

$(STAMP): $(ROOT)/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '$(ROOT)[test]'
	touch $(STAMP)

test: $(STAMP)
	cd $(ROOT) && $(PY) -m pytest -q

fuzz: $(STAMP)
	cd $(ROOT) && HYPOTHESIS_PROFILE=long $(PY) -m pytest -q tests/reliability/test_fuzz.py

demo: $(STAMP)
	$(PY) -m dfake_cli.demo

demo-sbi: $(STAMP)
	$(PY) -m dfake_cli.demo_sbi

bench: $(STAMP)
	$(VENV)/bin/dfake bench --quick

bench-gpu: $(STAMP)
	$(PY) -m dfake_cli.bench.gpu $(if $(QUICK),--quick)

sample-data: $(STAMP)
	$(PY) -m dfake_cli.sampledata.generate --out $(ROOT)/sample_data

clean:
	rm -rf $(ROOT)/dfake-workspace $(ROOT)/.pytest_cache
