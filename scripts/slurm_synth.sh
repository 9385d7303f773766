#!/usr/bin/env bash
# Synthetic data on a Slurm cluster: one job-array task per part, then one merge.
#
#   OUT=/shared/data/train N=1000000 TASKS=50 bash scripts/slurm_synth.sh
#
# Run outside a job, it submits itself twice: an array of TASKS tasks (each makes its part
# into OUT, a folder every node sees) and a merge that starts when all of them succeeded.
# `bodyshape synth` reads its part from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT
# (docs/SYNTH.md); the merged folder is byte-identical to a single run's. A failed or
# killed task: resubmit the same array (finished shards are skipped), or only its index
# (sbatch --array=7 scripts/slurm_synth.sh part), then rerun the merge.
#
#SBATCH --job-name=bodyshape-synth
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=12:00:00
#SBATCH --output=slurm-%x-%A_%a.out
set -euo pipefail
BS=${BODYSHAPE:-bodyshape}
OUT=${OUT:-data/train}
N=${N:-100000}
SEED=${SEED:-0}
TASKS=${TASKS:-10}
SYNTH_FLAGS=${SYNTH_FLAGS:---sampling per-sex}

case "${1:-submit}" in
  submit)
    array=$(sbatch --parsable --export=ALL --array=0-$((TASKS - 1)) "$0" part)
    merge=$(sbatch --parsable --export=ALL --dependency=afterok:"${array%%;*}" \
      --cpus-per-task=1 --job-name=bodyshape-merge "$0" merge)
    echo "submitted: array job $array ($TASKS tasks into $OUT), then merge job $merge"
    ;;
  part)
    # shellcheck disable=SC2086  # SYNTH_FLAGS holds several options
    exec $BS synth --n "$N" --seed "$SEED" --out "$OUT" $SYNTH_FLAGS \
      --workers "${SLURM_CPUS_PER_TASK:-1}" --no-progress
    ;;
  merge)
    exec $BS synth merge "$OUT"
    ;;
  *)
    echo "usage: $0 [submit|part|merge]" >&2
    exit 2
    ;;
esac
