# shoprec: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
ARTIFACTS ?= build/artifacts
LOCK ?= requirements.lock

.PHONY: install install-scale lock audit demo test test-fast test-tools lint bench bench-tools bench-scale soak fuzz eval clean vendor-docs

## The package and every extra, at the versions pinned in $(LOCK): pyproject.toml's ranges say
## what is needed, the lock file (as pip constraints) which version of it.
install:
	$(PIP) install --quiet --disable-pip-version-check -c $(LOCK) -e '.[train,dev,demo]'

## Regenerate $(LOCK) from pyproject.toml (all extras), keeping the current pins that still fit;
## `make lock UPGRADE=1` moves every pin to the newest allowed version. Then `make install test`.
lock:
	$(PIP) install --quiet --disable-pip-version-check 'pip-tools>=7.4'
	CUSTOM_COMPILE_COMMAND='make lock' $(PYTHON) -m piptools compile --quiet --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --extra train --extra dev --extra demo --extra scale \
		$(if $(UPGRADE),--upgrade) --output-file $(LOCK) pyproject.toml

## Known vulnerabilities (PyPI's advisory data) in the versions pinned in $(LOCK). --strict: a
## package that could not be looked up fails the audit instead of passing unaudited.
audit:
	$(PIP) install --quiet --disable-pip-version-check 'pip-audit>=2.7'
	$(PYTHON) -m pip_audit --strict --no-deps --disable-pip --requirement $(LOCK)

## Train on the embedded synthetic shop (if no model yet) and serve it with Redis.
demo: install
	$(PYTHON) scripts/demo.py --artifacts $(ARTIFACTS)

## The test suite (CI runs exactly this through .ci/run). Needs Redis at SHOPREC_TEST_REDIS_URL
## (default redis://127.0.0.1:6379/15); .ci/run starts one when none answers.
## The scale extra (SANSA, the sparse item-item solver of configs/large.json) with its system packages.
install-scale: install
	PYTHON=$(PYTHON) bash scripts/setup_scale.sh

## --durations: the slowest tests and what each costs, so a change can say what it adds to CI time.
test: install install-scale test-tools
	$(PYTHON) -m pytest -q --durations=25

## The inner loop: every test not marked slow (no training beyond the shared session model, no
## extra processes), without reinstalling.
test-fast:
	$(PYTHON) -m pytest -q -m "not slow" --durations=10

## What the tests need from Debian, once per machine: Chromium for the browser tests (apt, as
## root or with sudo; never `playwright install`) and promtool taken out of the prometheus package.
test-tools:
	bash scripts/setup_test_tools.sh

CODE = app models scripts tools tests
lint: install
	$(PYTHON) -m ruff check $(CODE)
	$(PYTHON) -m ruff format --check $(CODE)
	$(PYTHON) -m mypy app models scripts tools

## Serving benchmark (method in scripts/bench.py's docstring and docs/benchmarks.md): the model
## of `make eval` (Amazon Beauty) and a synthetic 1M-item artifact. wrk from Debian, once.
bench: install bench-tools
	$(PYTHON) scripts/bench.py --out docs/benchmarks.md

bench-tools:
	bash scripts/setup_bench_tools.sh

## Training at scale (scripts/bench_scale.py): a synthetic shop of 1M items and 1M shoppers
## generated, trained end to end, time and peak RSS per stage -> docs/scaling.md. Hours on 2 cores.
bench-scale: install install-scale
	$(PYTHON) scripts/bench_scale.py --items 1000000 --users 1000000 --config configs/large.json

## Mixed traffic at half of max throughput for 10 minutes: errors, server RSS, Redis memory
## (the "soak" section of docs/benchmarks.md). Trains the demo shop if needed.
soak: install
	test -e $(ARTIFACTS)/current || $(PYTHON) scripts/train.py --synthetic --out $(ARTIFACTS)
	$(PYTHON) scripts/soak.py --artifacts $(ARTIFACTS) --minutes 10

## Schemathesis against a real server on $(ARTIFACTS)/current: every operation, phase and check,
## 300 examples per operation (CI runs 3: tests/test_fuzz.py). Trains the demo shop if needed.
fuzz: install
	test -e $(ARTIFACTS)/current || $(PYTHON) scripts/train.py --synthetic --out $(ARTIFACTS)
	$(PYTHON) scripts/fuzz.py --artifacts $(ARTIFACTS) --max-examples 300

## Each dataset's own run (Sports with a smaller EASE grid: its 18k-item inverses are the
## slowest step), then one report of all three: docs/evaluation.md.
eval: install
	$(PYTHON) scripts/evaluate.py --datasets amazon-beauty
	$(PYTHON) scripts/evaluate.py --datasets online-retail --cold-start online-retail --rare-items online-retail
	$(PYTHON) scripts/evaluate.py --datasets amazon-sports --config configs/amazon-sports.json
	$(PYTHON) scripts/evaluate.py --datasets online-retail amazon-beauty amazon-sports --report-only

## Refresh the Swagger UI and ReDoc files the app serves (app/web/vendor) from npm.
vendor-docs:
	bash scripts/vendor_docs_assets.sh

clean:
	rm -rf build .pytest_cache
