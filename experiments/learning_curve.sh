#!/usr/bin/env bash
# Transfer-learning learning curve: fine-tuned vs scratch with 5, 10 and all (19) training
# children, each scored on the same held-out children (benchmarks/clinical_validity.py).
# Needs runs/pretrain/adult_pretrained.ckpt (python train.py +experiment=pretrain). Usage:
#   experiments/learning_curve.sh [SIZES...]          # default: 5 10 all
# The curve was measured on the brain-box cohort (data=tiny, 24 children), kept here so that it
# reproduces; the default recipe has since moved to data=mixed.
# "5" trains on the first 6 paediatric children by id in 6 folds (5 train, 1 validation), "10"
# on the first 12 (10 train, 2 validation), "all" on the default 24 in 5 folds (19 + 5); the
# validation children only choose the checkpoint. FOLDS (default "0 1 2 3 4") picks the folds, so
# each size is trained five times on different children. Runs land in
# runs/levers/lc_<experiment>_<size>_f<fold>.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(5 10 all)
read -r -a folds <<< "${FOLDS:-0 1 2 3 4}"
for fold in "${folds[@]}"; do
  for size in "${sizes[@]}"; do
    for experiment in finetune scratch; do
      case $size in
        all) args=("data=tiny" "data.fold=$fold") ;;
        *) args=("data=tiny" "data.max_subjects=$(( size + size / 5 ))" "data.n_folds=6" "data.fold=$fold") ;;
      esac
      [ -f "runs/levers/lc_${experiment}_${size}_f${fold}/validity/summary.json" ] && continue
      experiments/recipe_lever.sh "lc_${experiment}_${size}_f${fold}" "$experiment" "${args[@]}"
    done
  done
done
