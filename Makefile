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
	@# lm-eval's own task tests (tests/test_tasks.py of the pinned release; tests/test_lm_eval_base_tasks.py runs them)
	$(BIN)/pip download -q --no-deps --no-binary :all: lm-eval==0.4.11 -d $(VENV)/lm-eval-sdist
	tar -xzf $(VENV)/lm-eval-sdist/lm_eval-0.4.11.tar.gz -C $(VENV)/lm-eval-sdist lm_eval-0.4.11/tests/test_tasks.py
	$(BIN)/python -c "import torch, axolotl, lm_eval, shop_eval; print('setup ok: torch', torch.__version__)"

test: lint ## ruff, then the test suite (offline)
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

# --- training chain on GPUs (recipes/README.md): make train [TRAIN_GPUS=6] [BASE_MODEL=01-ai/Yi-9B]
#     data -> cpt -> merge-cpt -> sft -> merge-sft -> eval.  CPU check of the recipes: tests/test_recipes.py.
#     24 GB cards by default; 80 GB: CPT_RECIPE=recipes/cpt-80gb.yml SFT_RECIPE=recipes/sft-80gb.yml.
#     SLURM: recipes/slurm/ (one node x 6 GPUs, several nodes, the 2-GPU evaluation).
TRAIN_GPUS ?= 6
BASE_MODEL ?=
SFT_BASE ?=
CPT_RECIPE ?= recipes/cpt.yml
SFT_RECIPE ?= recipes/sft.yml
SFT_OUT ?= outputs/sft
SFT_SOURCE ?= ../shared/data/ec-guide
CORPUS_SOURCE ?=
CORPUS_FIELDS ?= text
DECONTAM_EVAL ?= ../shared/data/seed-testsets
# expandable segments: fewer allocator fragments (the recipes' memory was measured with it)
TRAIN_LAUNCH = PYTORCH_ALLOC_CONF=expandable_segments:True \
	$(BIN)/accelerate launch --config_file recipes/accelerate/$(TRAIN_GPUS)gpu.yaml -m axolotl.cli.train
.PHONY: data cpt merge-cpt sft merge-sft train
data: ## SFT data from SFT_SOURCE, decontaminated vs DECONTAM_EVAL + held-out split; CPT corpus if CORPUS_SOURCE is set
	$(if $(CORPUS_SOURCE),$(BIN)/shop-eval data corpus $(CORPUS_SOURCE) $(foreach f,$(CORPUS_FIELDS),--text-field $(f)) --out data/corpus/corpus.jsonl)
	$(BIN)/shop-eval data sft $(SFT_SOURCE) --out data/sft
	$(BIN)/shop-eval data decontam data/sft/train.jsonl $(foreach e,$(DECONTAM_EVAL),--eval $(e)) \
		--eval heldout=data/sft/validation.jsonl --out data/sft/train.clean.jsonl
cpt: ## LoRA continued pretraining (CPT_RECIPE, default recipes/cpt.yml) on TRAIN_GPUS GPUs [BASE_MODEL=...]
	@test -s data/corpus/corpus.jsonl || { echo "no data/corpus/corpus.jsonl: run make data CORPUS_SOURCE=FILES [CORPUS_FIELDS='title description']"; exit 2; }
	$(TRAIN_LAUNCH) $(CPT_RECIPE) $(if $(BASE_MODEL),--base_model $(BASE_MODEL))
merge-cpt: ## merge the CPT adapter into its base -> outputs/cpt/merged
	$(BIN)/axolotl merge-lora $(CPT_RECIPE) --lora-model-dir outputs/cpt $(if $(BASE_MODEL),--base-model $(BASE_MODEL))
sft: ## LoRA SFT (SFT_RECIPE, default recipes/sft.yml) from outputs/cpt/merged [SFT_BASE=... to skip CPT]
	@test -s data/sft/train.clean.jsonl || { echo "no data/sft/train.clean.jsonl: run make data"; exit 2; }
	$(TRAIN_LAUNCH) $(SFT_RECIPE) $(if $(SFT_BASE),--base_model $(SFT_BASE))
merge-sft: ## merge the SFT adapter -> $(SFT_OUT)/merged
	$(BIN)/axolotl merge-lora $(SFT_RECIPE) --lora-model-dir $(SFT_OUT) $(if $(SFT_BASE),--base-model $(SFT_BASE))
train: ## the whole chain: data -> cpt -> merge-cpt -> sft -> merge-sft -> eval (2 GPUs)
	$(MAKE) data
	$(MAKE) cpt
	$(MAKE) merge-cpt
	$(MAKE) sft
	$(MAKE) merge-sft
	$(MAKE) eval MODEL=$(SFT_OUT)/merged NUM_GPUS=2

# --- the whole pipeline offline on CPU in minutes (docs/demo.md): make demo [DEMO_OUT=demo_out] [DEMO_SEED=0]
DEMO_OUT ?= demo_out
DEMO_SEED ?= 0
.PHONY: demo
demo: ## sample data -> tiny model -> axolotl CPT -> SFT -> lm-eval base vs fine-tuned -> leaderboard, on CPU
	$(BIN)/shop-eval demo $(DEMO_OUT) --seed $(DEMO_SEED)

.PHONY: bench-dry
bench-dry: ## CPU end-to-end run of the GPU benchmark scripts on a 2-layer model (needs bench/_carry: bench/make_lengths.py)
	$(BIN)/python bench/train_throughput.py --tiny --dry-run --work /tmp/bench_train_dry \
		--runs fixed_b2,sft,cpt,merge:sft,sft_d0 --memory-cap-gib 23.5
	$(BIN)/python bench/eval_throughput.py --tiny --dry-run
