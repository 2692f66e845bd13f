#!/usr/bin/env bash
# The runtime with every default against the official evaluation loop, on the Sudoku TRM trained
# with the official code.
#
#   bash benchmarks/trained_sudoku.sh [OUT_DIR]
#
# The checkpoint is converted and exported with no --data (nothing calibrated): the runtime's
# default halting (`auto`: verified answers for Sudoku) needs no labels and no held-out data.
# `trm-edge solve EXPORT test_300.npz` answers all 300 held-out puzzles of tests/fixtures/trained/test_300.npz
# as a user would (every default, backend and precision included); `trm-edge bench --compare-torch` times the runtime against PyTorch eager running
# the official fixed-16-step loop on the same weights. Writes answers.npz, bench.json, bench.png and
# summary.json to OUT_DIR (default benchmarks/results/trained_sudoku).
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
FIX=tests/fixtures/trained
OUT=${1:-benchmarks/results/trained_sudoku}
mkdir -p "$OUT"
trm-edge convert $FIX/official_sudoku_mlp128.pt --config $FIX/official_sudoku_mlp128.all_config.yaml \
  --dataset $FIX/official_sudoku_mlp128.dataset.json -o "$OUT/sudoku.safetensors"
rm -rf "$OUT/export"
trm-edge export "$OUT/sudoku.safetensors" -o "$OUT/export"
# Every default: backend and precision auto (chosen by measurement on this machine, remembered in the export).
trm-edge solve "$OUT/export" $FIX/test_300.npz -o "$OUT/answers.npz"
trm-edge bench "$OUT/export" --slots 1,64 --puzzles 300 --data $FIX/test_300.npz \
  --compare-torch "$OUT/sudoku.safetensors" -o "$OUT/bench.json" -o "$OUT/bench.png"
python - "$OUT" "$FIX" <<'PY'
import json, sys
import numpy as np
out, fix = sys.argv[1], sys.argv[2]
answers, data = np.load(f"{out}/answers.npz"), np.load(f"{fix}/test_300.npz")
official = json.load(open(f"{fix}/official_eval_test_300.json"))
bench = json.load(open(f"{out}/bench.json"))
right = (answers["answers"] == data["solutions"] + 1).all(axis=1)
summary = {
    "cpu": bench["environment"]["cpu"],  # as bench names it (trm_edge.hardware)
    "exact_default": float(right.mean()), "mean_steps_default": float(answers["steps"].mean()),
    "verified_share": float((answers["verified"] == 1).mean()),
    "verified_and_wrong": int(((answers["verified"] == 1) & ~right).sum()),
    "official_exact_fixed_16": official["exact_fixed"],
    "speedup_vs_torch": {r["batch"]: round(r["puzzles_per_s"] / t["puzzles_per_s"], 2)
                         for r, t in zip(bench["rows"], bench["torch"])},
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
PY
