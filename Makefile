# shop-eval — `make setup` then `make test`.  See README.md.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export AXOLOTL_DO_NOT_TRACK := 1
export WANDB_MODE := disabled
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test lint help
help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python ## create .venv/ and install everything (CPU torch first, then the pinned stack)
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	$(BIN)/python -c "import torch, axolotl, lm_eval, shop_eval; print('setup ok: torch', torch.__version__)"

test: ## run the test suite (offline)
	$(BIN)/python -m pytest -q

lint: ## ruff
	$(BIN)/ruff check shop_eval tests bench lm_eval_tasks
	$(BIN)/ruff format --check shop_eval tests bench lm_eval_tasks

# --- evaluation (lm-eval shop_* tasks): make eval MODEL=path [ADAPTER=lora] [NUM_GPUS=2] [EVAL_BACKEND=vllm]
NUM_GPUS ?= 0
MODEL ?=
ADAPTER ?=
EVAL_BACKEND ?= hf
EVAL_TASKS ?= shop_*
EVAL_ARGS ?=
DRY_RUN ?=
.PHONY: eval
eval: ## lm-eval shop_* on MODEL [ADAPTER] with NUM_GPUS (0=CPU; 2=accelerate data-parallel; EVAL_BACKEND=vllm); DRY_RUN=1 prints it
	@test -n "$(MODEL)" || { echo "usage: make eval MODEL=path [ADAPTER=lora] [NUM_GPUS=2] [EVAL_BACKEND=vllm] [DRY_RUN=1]"; exit 2; }
	$(BIN)/shop-eval eval --model "$(MODEL)" $(if $(ADAPTER),--adapter "$(ADAPTER)") --num-gpus $(NUM_GPUS) \
		--backend $(EVAL_BACKEND) --tasks '$(EVAL_TASKS)' $(if $(DRY_RUN),--dry-run) $(EVAL_ARGS)
