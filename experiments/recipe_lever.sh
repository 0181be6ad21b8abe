#!/usr/bin/env bash
# One recipe lever: train with Hydra overrides, then score the best checkpoint on the held-out
# children (benchmarks/clinical_validity.py). Usage:
#   experiments/recipe_lever.sh NAME EXPERIMENT [OVERRIDE ...]
#   experiments/recipe_lever.sh label_probs finetune 'data.label_probabilities={0:0.05,1:0.2,2:0.25,3:0.5}'
# Writes runs/levers/NAME/ (the run) and runs/levers/NAME/validity/ (figures, summary.json);
# prints the training wall time. PYTHON defaults to .venv/bin/python.
set -euo pipefail
name=$1 experiment=$2
shift 2
python=${PYTHON:-.venv/bin/python}
run=runs/levers/$name
start=$(date +%s)
"$python" train.py "+experiment=$experiment" "hydra.run.dir=$run" "$@"
echo "TRAIN_WALL_SECONDS $name $(( $(date +%s) - start ))"
ckpt=$(ls "$run"/checkpoints/epoch_*.ckpt | head -n 1)
"$python" benchmarks/clinical_validity.py --ckpt "$ckpt" --out "$run/validity" ${VALIDITY_ARGS:-}
