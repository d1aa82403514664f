# shoprec: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
ARTIFACTS ?= build/artifacts

.PHONY: install demo test lint bench eval clean

install:
	$(PIP) install --quiet --disable-pip-version-check -e '.[train,dev]'

## Train on the embedded synthetic shop (if no model yet) and serve it with Redis.
demo: install
	$(PYTHON) scripts/demo.py --artifacts $(ARTIFACTS)

## The test suite (CI runs exactly this through .ci/run). Needs Redis at SHOPREC_TEST_REDIS_URL
## (default redis://127.0.0.1:6379/15); .ci/run starts one when none answers.
test: install
	$(PYTHON) -m pytest -q

lint: install
	$(PYTHON) -m ruff check app models scripts tests
	$(PYTHON) -m ruff format --check app models scripts tests
	$(PYTHON) -m mypy app

bench: install
	$(PYTHON) scripts/bench.py --out docs/benchmarks.md

## Each dataset's own run (Sports with fewer epochs and a smaller EASE grid: it is the
## largest), then one report of all three: docs/evaluation.md.
eval: install
	$(PYTHON) scripts/evaluate.py --datasets amazon-beauty
	$(PYTHON) scripts/evaluate.py --datasets online-retail --cold-start online-retail
	$(PYTHON) scripts/evaluate.py --datasets amazon-sports --config configs/amazon-sports.json
	$(PYTHON) scripts/evaluate.py --datasets online-retail amazon-beauty amazon-sports --report-only

clean:
	rm -rf build .pytest_cache
