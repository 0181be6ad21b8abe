#!/usr/bin/env bash
# Transfer-learning learning curve: fine-tuned vs scratch with 5, 10 and all (19) training
# children, each scored on the same held-out children (benchmarks/clinical_validity.py).
# Needs runs/pretrain/adult_pretrained.ckpt (python train.py +experiment=pretrain). Usage:
#   experiments/learning_curve.sh [SIZES...]          # default: 5 10 all
# "5" trains on the first 6 paediatric children by id in 6 folds (5 train, 1 validation), "10"
# on the first 12 (10 train, 2 validation), "all" on the default 24 in 5 folds (19 + 5); the
# validation children only choose the checkpoint. Runs land in runs/levers/lc_<experiment>_<size>.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(5 10 all)
for size in "${sizes[@]}"; do
  for experiment in finetune scratch; do
    case $size in
      all) args=() ;;
      *) args=("data.max_subjects=$(( size + size / 5 ))" "data.n_folds=6") ;;
    esac
    experiments/recipe_lever.sh "lc_${experiment}_${size}" "$experiment" "${args[@]}"
  done
done
