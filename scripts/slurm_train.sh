#!/usr/bin/env bash
# Multi-node DDP training with plain sbatch + srun: SLURM starts one task per GPU and
# Lightning's SLURMEnvironment reads the ranks from it (no re-launch, no submitit needed).
#
#   sbatch --nodes=2 scripts/slurm_train.sh dataset=cityscapes dataset.root=/data/cityscapes
#
# Every extra argument is a Hydra override for segohem-train. All tasks must share one run
# directory, so it is fixed from the job id (a ${now:...} folder would differ between tasks).
#SBATCH --job-name=segohem
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --signal=SIGUSR1@120
#SBATCH --output=slurm-%j.out
set -euo pipefail

: "${SLURM_JOB_ID:?run this script with sbatch (or inside an salloc allocation)}"
NODES="${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}"
TASKS_PER_NODE="${SLURM_NTASKS_PER_NODE:-4}"
RUN_DIR="${SEGOHEM_RUN_DIR:-outputs/train/slurm-${SLURM_JOB_ID}}"

srun python -m segohem.cli.train \
    trainer=ddp \
    trainer.devices="${TASKS_PER_NODE}" \
    trainer.num_nodes="${NODES}" \
    hydra.run.dir="${RUN_DIR}" \
    "$@"
