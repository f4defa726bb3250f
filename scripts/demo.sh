#!/usr/bin/env bash
# The built-in demo (the main job, nothing downloaded): sets up the machine (scripts/setup.sh), trains the tiny preset
# on the synthetic road-scene benchmark's training split (OOD objects of the crate/ball families), evaluates on its
# anomaly split (star/blob families never seen in training) and prints the metrics table, where the "OOD px" column is
# the AP of a random scorer. CLIP is randomly initialised (no weights offline), so the image tower is trained as well
# (train_image_tower=true; with it frozen the model learned far less: README, "The demo"). Its optimisation is its own
# short-run setting, not the release recipe (README "Fidelity"): lr 1e-3, gradient clipping at 1.0 and transformers'
# polynomial schedule after 50 warm-up steps.
#
#   bash scripts/demo.sh [OUTPUT_DIR]      # default outputs/demo: model + processor + pipeline, eval_results.json,
#                                          # eval/synthetic_anomaly/ (PR/ROC curves, overlays)
# Environment: DEMO_STEPS (800), DEMO_EVAL_SAMPLES (100), DEMO_SEED (0), DEMO_CONFIG_OVERRIDES (more TDOSConfig
# overrides, e.g. "num_ood_prompts=0": benchmarks/ablation_synthetic.py), TDOS_VENV (.venv), OMP_NUM_THREADS (2),
# TDOS_SKIP_SETUP=1 (the environment is ready: no scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${TDOS_SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
VENV=${TDOS_VENV:-.venv}
OUT=${1:-outputs/demo}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Two compute threads by default: on the 2-core machine 2.70 steps/s against 1.68 with one (README "The demo"). The
# thread count changes the order of the sums, so each count is its own path; the README's seed table has both.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
"$VENV/bin/python" run_ood_segmentation.py \
  --preset tiny --random_clip_init \
  --config_overrides "train_image_tower=true,crop_size=128,stride=96,inference_mode=whole${DEMO_CONFIG_OVERRIDES:+,$DEMO_CONFIG_OVERRIDES}" \
  --train_dataset synthetic --synthetic_height 256 --synthetic_width 512 --min_scale 0.5 --max_scale 1.5 \
  --per_device_train_batch_size 8 --learning_rate 1e-3 --warmup_steps 50 --max_steps "${DEMO_STEPS:-800}" \
  --max_grad_norm 1.0 --lr_schedule hf \
  --dataloader_num_workers 1 --use_cpu --seed "${DEMO_SEED:-0}" --logging_steps 50 --save_steps 200 --save_total_limit 1 \
  --report_to none --eval_benchmarks synthetic --max_eval_samples "${DEMO_EVAL_SAMPLES:-100}" --eval_scale 512 256 \
  --do_train --do_eval --overwrite_eval_results --output_dir "$OUT"
echo "Model, image processor and pipeline code: $OUT (model card: $OUT/README.md)"
[ ! -f "$OUT/training_progress.png" ] || echo "Training progress (loss terms, learning rate): $OUT/training_progress.png"
echo "Metrics: $OUT/eval_results.json; PR/ROC curves and overlay panels: $OUT/eval/synthetic_anomaly/"
