#!/usr/bin/env bash
# The runtime against the official evaluation loop, on the Sudoku TRM trained with the official code.
#
#   bash benchmarks/trained_sudoku.sh [OUT_DIR]
#
# Halting is calibrated on the first 150 held-out puzzles of ../shared/fixtures/trained/test_300.npz
# and measured on the other 150, so the accuracy reported is out of sample. Writes bench.json,
# bench.png and halting.png to OUT_DIR (default benchmarks/results/trained_sudoku).
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=../shared/fixtures/trained
OUT=${1:-benchmarks/results/trained_sudoku}
mkdir -p "$OUT"
python - "$OUT" <<'PY'
import sys, numpy as np
d = np.load("../shared/fixtures/trained/test_300.npz")
np.savez(f"{sys.argv[1]}/calibrate_150.npz", puzzles=d["puzzles"][:150], solutions=d["solutions"][:150])
np.savez(f"{sys.argv[1]}/measure_150.npz", puzzles=d["puzzles"][150:], solutions=d["solutions"][150:])
PY
trm-edge convert $FIX/official_sudoku_mlp128.pt --config $FIX/official_sudoku_mlp128.all_config.yaml \
  --dataset $FIX/official_sudoku_mlp128.dataset.json -o "$OUT/sudoku.safetensors"
trm-edge export "$OUT/sudoku.safetensors" -o "$OUT/export" --data "$OUT/calibrate_150.npz"
trm-edge calibrate "$OUT/export" --data "$OUT/calibrate_150.npz" --backend ort-cpu --plot "$OUT/halting.png"
trm-edge bench "$OUT/export" --backend ort-cpu --batch 1,64 --puzzles 150 --data "$OUT/measure_150.npz" \
  --compare-torch "$OUT/sudoku.safetensors" --json "$OUT/bench.json" --plot "$OUT/bench.png"
