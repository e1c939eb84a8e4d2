#!/usr/bin/env bash
# Submit the training chain and, once it has succeeded, the 2-GPU evaluation of its merged model:
#   bash recipes/slurm/submit-chain.sh            # one node of 6 GPUs
#   NODES=2 bash recipes/slurm/submit-chain.sh    # several nodes (recipes/slurm/train-multinode.sbatch)
# The sbatch scripts' variables (STAGES, CPT_RECIPE, SFT_RECIPE, TRAIN_ARGS, MODEL...) pass through.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES=${NODES:-1}
if [[ "$NODES" == 1 ]]; then
  train=$(sbatch --parsable recipes/slurm/train-1node.sbatch)
else
  train=$(sbatch --parsable --nodes="$NODES" recipes/slurm/train-multinode.sbatch)
fi
train=${train%%;*}  # --parsable prints "id" or "id;cluster"
evaluation=$(sbatch --parsable --dependency=afterok:"$train" recipes/slurm/eval-2gpu.sbatch)
echo "training job $train, evaluation job ${evaluation%%;*} (runs after $train succeeds)"
