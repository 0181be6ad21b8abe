#!/usr/bin/env bash
# Transfer-learning learning curve: fine-tuned vs scratch with 5, 10 and all training children,
# each scored on the same held-out children (benchmarks/clinical_validity.py). Needs the adult
# checkpoint of the same PET scaling, runs/pretrain/adult_pretrained.ckpt
# (python train.py +experiment=pretrain). Usage:
#   experiments/learning_curve.sh [SIZES...]          # default: 5 10 all
#   FOLDS="0 1" experiments/learning_curve.sh 5       # a subset
#   DATA=tiny experiments/learning_curve.sh           # another cohort config (conf/data/)
# "5" trains on the first 6 paediatric children by id in 6 folds (5 train, 1 validation), "10"
# on the first 12 (10 train, 2 validation), "all" on the recipe's whole cohort in its 5 folds
# (36 children of `data=mixed`: 29 + 7); the validation children only choose the checkpoint.
# FOLDS (default "0 1 2 3 4") picks the folds, so each size is trained five times on different
# children. Runs land in runs/levers/lc/<arm>_<size>_f<fold> (lc_<DATA>/ with DATA set);
# experiments/plot_learning_curve.py --runs <that folder> summarises them. Each run's
# checkpoints (about 1 GB a run, 32 GB for the whole curve) are deleted once it is scored;
# KEEP_CHECKPOINTS=1 keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(5 10 all)
read -r -a folds <<< "${FOLDS:-0 1 2 3 4}"
data=() group=lc
if [ -n "${DATA:-}" ]; then data=("data=$DATA"); group=lc_$DATA; fi
for fold in "${folds[@]}"; do
  for size in "${sizes[@]}"; do
    for experiment in finetune scratch; do
      case $size in
        all) args=("data.fold=$fold") ;;
        *) args=("data.max_subjects=$(( size + size / 5 ))" "data.n_folds=6" "data.fold=$fold") ;;
      esac
      name=$group/${experiment}_${size}_f$fold
      [ -f "runs/levers/$name/validity/summary.json" ] && continue
      experiments/recipe_lever.sh "$name" "$experiment" ${data[@]+"${data[@]}"} "${args[@]}"
      [ "${KEEP_CHECKPOINTS:-0}" = 1 ] || rm -f "runs/levers/$name"/checkpoints/*.ckpt
    done
  done
done
