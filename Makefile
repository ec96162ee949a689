# LitePose edge kit: every target is one CLI call. Variables: MODEL, TARGET, DATASET, OUT.
PY      ?= .venv/bin/python
MODEL   ?= xs
TARGET  ?= host
DATASET ?= crowdpose
OUT     ?= build/$(MODEL)-$(TARGET)
PYTEST_ARGS ?=

.PHONY: setup test lint info compile bench-post

setup:  ## Debian packages + .venv with the pinned host, device and dev dependencies
	bash scripts/setup.sh

test:   ## the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

lint:
	$(PY) -m ruff check compile runtime kernels tests

info:
	$(PY) -m compile info --model $(MODEL) --dataset $(DATASET)

compile:
	$(PY) -m compile build --model $(MODEL) --target $(TARGET) --dataset $(DATASET) --output $(OUT)

bench-post:  ## grouping kernels vs the slow reference; run.py vs inference alone
	$(PY) -m tests.bench_post --artifact $(OUT)
