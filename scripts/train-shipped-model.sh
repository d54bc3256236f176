#!/usr/bin/env bash
# Train the shipped network from scratch and export it: the one command behind docs/model.md.
#
#   pip install torch==2.13.0 && pip install -e ".[train]"
#   bash scripts/train-shipped-model.sh [WORK_DIR]      # WORK_DIR defaults to runs/
#
# Fetches the Asterisk prompts (Debian archive) into WORK_DIR, trains the three ensemble members
# (the first two side by side on two cores, ~85 min each at one core per run; then the third)
# and exports them as one ONNX model to src/audiomend/model/weights/maskgru16k.onnx. Each run
# resumes where it stopped when the script is started again. Needs ../shared beside the project.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-runs}"
shared=../shared/data
mkdir -p "$work"
[ -d "$work/asterisk" ] || "$shared/get-asterisk-prompts" "$work/asterisk"
[ -d "$work/asterisk2" ] || "$shared/get-asterisk-prompts" "$work/asterisk2" it ru
data=(--speech "$shared/train/speech" --speech "$work/asterisk"
      --noise "$shared/train/noise" --rir "$shared/train/rir")
export OMP_NUM_THREADS=1
audiomend train "${data[@]}" --out "$work/maskgru16k" --resume &
audiomend train "${data[@]}" --p-rolloff 0.5 --out "$work/maskgru16k-next" --resume &
wait
audiomend train "${data[@]}" --speech "$work/asterisk2" --p-rolloff 0.5 --seed 1 \
    --out "$work/maskgru16k-third" --resume
audiomend export "$work/maskgru16k" "$work/maskgru16k-next" "$work/maskgru16k-third" \
    -o src/audiomend/model/weights/maskgru16k.onnx
