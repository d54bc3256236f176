#!/usr/bin/env bash
# Rebuild the shipped example: speech synthesised with espeak-ng (Debian package espeak-ng),
# damaged by audiomend's own simulator. Needs espeak-ng and sox on PATH.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
espeak-ng -v en-us -s 150 -w "$tmp/a.wav" \
  "Thanks for joining us today. Tell me how the project started, and what you would do differently if you began again tomorrow."
espeak-ng -v en-gb -s 140 -p 35 -w "$tmp/b.wav" \
  "Well, it started in a garage, with two old laptops and a microphone that hummed whenever the fridge was on."
sox "$tmp/a.wav" -p pad 0 0.6 | sox - "$tmp/b.wav" -r 22050 -b 16 interview_clean.flac norm -3
audiomend degrade interview_clean.flac -o interview_damaged.flac --noise-snr-db 8 --noise-color pink \
  --hum-hz 50 --hum-level-db -18 --clip-threshold-db -8 --seed 7 --recipe-out interview_damaged.recipe.json
rm -rf "$tmp"
