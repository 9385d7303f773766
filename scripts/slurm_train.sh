#!/usr/bin/env bash
# One training stage on several GPU nodes of a Slurm cluster, through torchrun.
#
#   sbatch --nodes=2 --gpus-per-node=4 scripts/slurm_train.sh --stage front \
#       --data /shared/data/train --val /shared/data/val --out /shared/runs/front
#
# srun starts one torchrun per node; torchrun starts one process per GPU and they meet at
# the first node (c10d rendezvous). --batch-size is the global batch (docs/TRAINING.md,
# *Several processes*); rank 0 writes the run folder, which every node must see. Resubmit
# the same command after a kill or a time-out: the run resumes from its last epoch.
#
#SBATCH --job-name=bodyshape-train
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail
BS_PYTHON=${BS_PYTHON:-python}
GPUS=${SLURM_GPUS_ON_NODE:-${GPUS_PER_NODE:-1}}
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun "$BS_PYTHON" -m torch.distributed.run --nnodes "$SLURM_NNODES" --nproc-per-node "$GPUS" \
  --rdzv-backend c10d --rdzv-endpoint "$HEAD:29500" --rdzv-id "$SLURM_JOB_ID" \
  -m bodyshape train --device cuda --no-progress "$@"
