# LitePose edge kit: every target is one CLI call. Variables: MODEL, TARGET, DATASET, OUT,
# CHECKPOINT, TRACKER, KEY, TRIALS, MINUTES, CARRY_OVER=1, PARALLEL, TASKS (tune), THREADS (bench,
# profile) and ENGINES (bench),
# BOARDS (board), ARCH and TVM_SOURCE (opencl-runtime); for eval: IMAGES, ANNOTATIONS, FLIP=1,
# REFERENCE=1, MAX_IMAGES.
# 'make demo' and 'make test' set the environment up when it is missing.
PY      ?= .venv/bin/python
MODEL   ?= xs
TARGET  ?= host
DATASET ?= crowdpose
OUT     ?= build/$(MODEL)-$(TARGET)
PYTEST_ARGS ?=
TRIALS  ?= 64
MINUTES ?=
CARRY_OVER ?=
TASKS   ?=
THREADS ?= 1 2
ENGINES ?=
TRACKER ?=
KEY     ?=
PARALLEL ?=
BOARDS  ?= 1
CHECKPOINT ?=
IMAGES  ?=
ANNOTATIONS ?=
FLIP    ?=
REFERENCE ?=
MAX_IMAGES ?=
REPEAT  ?=
ARCH    ?= all
TVM_SOURCE ?=

.PHONY: setup demo test test-fast lint info compile tune bench bench-post profile board board-stop board-status deploy eval opencl-runtime

setup:  ## Debian packages + .venv with the pinned host, device and dev dependencies
	bash scripts/setup.sh

$(PY):  # a fresh clone: set up first
	bash scripts/setup.sh

demo: $(PY)  ## build for rk3399, start the virtual board, deploy (PASS/FAIL), run.py on the board
	$(PY) -m compile demo --model $(MODEL) $(if $(filter host,$(TARGET)),,--target $(TARGET)) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT))

test: $(PY)  ## the whole test suite (tests/README.md: the markers and what each needs)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(PY)  ## the unit tests only: no TVM compilation, for the edit loop
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

lint: $(PY)
	$(PY) -m ruff check compile runtime kernels tests

info:
	$(PY) -m compile info --model $(MODEL) --dataset $(DATASET)

compile:
	$(PY) -m compile build --model $(MODEL) --target $(TARGET) --dataset $(DATASET) --output $(OUT) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT))

bench-post:  ## grouping kernels vs the slow reference; run.py vs inference alone
	$(PY) -m compile bench-post --artifact $(OUT)

tune:   ## MetaSchedule tuning; TRACKER=host:port KEY=... for boards (else TVM_TRACKER_* or local host)
	$(PY) -m compile tune --model $(MODEL) --target $(TARGET) --trials $(TRIALS) $(if $(MINUTES),--minutes $(MINUTES)) $(if $(CARRY_OVER),--carry-over) $(if $(TASKS),--tasks $(TASKS)) $(if $(TRACKER),--tracker $(TRACKER)) $(if $(KEY),--key $(KEY)) $(if $(PARALLEL),--parallel $(PARALLEL))

bench:  ## TVM tuned / untuned vs ONNX Runtime, OpenVINO, ncnn, PyTorch here, at each of THREADS
	$(PY) -m compile bench --model $(MODEL) --threads $(THREADS) $(if $(ENGINES),--engines $(ENGINES))

profile:  ## each kernel of OUT (a host build) in its network vs the FMA peak and its tuning, at THREADS
	$(PY) -m compile profile --artifact $(OUT) --threads $(THREADS)

opencl-runtime: $(PY)  ## TVM's OpenCL runtime from TVM_SOURCE=DIR (or a clone): ARCH=x86_64|aarch64|all
	$(PY) -m compile opencl-runtime --arch $(ARCH) $(if $(TVM_SOURCE),--tvm-source $(TVM_SOURCE))

board:  ## build (once, cached in ~/.cache) and start BOARDS virtual aarch64 boards at 127.0.0.1:9190
	$(PY) -m compile board start --key $(or $(KEY),rk3399) --boards $(BOARDS)

board-stop:
	$(PY) -m compile board stop

board-status:
	$(PY) -m compile board status

deploy: ## upload build/$(MODEL)-$(TARGET) to a board from the tracker, verify and time it
	$(PY) -m compile deploy --model $(MODEL) --target $(TARGET) $(if $(TRACKER),--tracker $(TRACKER)) $(if $(KEY),--key $(KEY)) $(if $(REPEAT),--repeat $(REPEAT))

eval:   ## accuracy of $(OUT) on IMAGES= ANNOTATIONS= (FLIP=1: paper protocol, REFERENCE=1: PyTorch row)
	$(PY) -m compile eval --artifact $(OUT) --output $(OUT)/eval $(if $(IMAGES),--images $(IMAGES)) $(if $(ANNOTATIONS),--annotations $(ANNOTATIONS)) $(if $(FLIP),--flip) $(if $(REFERENCE),--reference) $(if $(MAX_IMAGES),--max-images $(MAX_IMAGES)) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(if $(TRACKER),--tracker $(TRACKER)) $(if $(KEY),--key $(KEY))
