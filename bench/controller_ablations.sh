#!/usr/bin/env bash
# The controller's ablations (issue 5), from the profiles to one table:
#   default   the shipped recipe (FOMAML over domains, 64 wide x 2 layers x 4 heads)
#   no-meta   --meta none (plain mini-batches)
#   w128      --d-model 128
#   w256      --d-model 256 --heads 8 (toward the paper's 512 x 6 x 8, which trains too slowly here)
#   cs+phys   --train-domains cs,physics; compare its chemistry+biology rows with default's
#   fid2      --lambda-fid 2 (a fidelity shortfall weighs ~3x more than the paper's 0.7)
# each trained on the train split's profile and evaluated with `eval -c` on the test split.
# Everything is cached under $OUT; profiles resume. Knobs: VARIANTS, CLI, OUT, CONFIGS, EPOCHS.
set -euo pipefail
cd "$(dirname "$0")/.."
V=${VARIANTS:-variants}
CLI=${CLI:-build/agentcompress}
OUT=${OUT:-bench/out/ablations}
CONFIGS=${CONFIGS:-f16,q8_0,q4_0,q2_0,f16+p0.1,q8_0+p0.1,q4_0+p0.1,q2_0+p0.1}
mkdir -p "$OUT"
[ -f "$V/manifest.json" ] || { echo "no $V/manifest.json: run 'make eval' (or quantize + calibrate) first" >&2; exit 1; }
for split in train test; do
    "$CLI" profile -V "$V" --tasks "bench/workflows/$split.jsonl" -o "$V/$split.sqlite" --configs "$CONFIGS"
done
declare -A ARGS=(
    [default]=""
    [no-meta]="--meta none"
    [w128]="--d-model 128"
    [w256]="--d-model 256 --heads 8"
    [cs+phys]="--train-domains cs,physics"
    [fid2]="--lambda-fid 2"
)
NAMES="default no-meta w128 w256 cs+phys fid2"
# training is single-threaded: JOBS trainings at a time (default: cores)
JOBS=${JOBS:-$(nproc)}
for name in $NAMES; do
    ctrl="$OUT/$name.gguf"
    [ -f "$ctrl" ] && continue
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    echo "training $name (log: $OUT/$name.train.log)" >&2
    # shellcheck disable=SC2086
    { "$CLI" train --profile "$V/train.sqlite" -o "$ctrl.tmp" ${EPOCHS:+--epochs $EPOCHS} ${ARGS[$name]} \
        2> "$OUT/$name.train.log" && mv "$ctrl.tmp" "$ctrl"; } &
done
wait
pairs=()
for name in $NAMES; do
    [ -f "$OUT/$name.gguf" ] || { echo "training $name failed: see $OUT/$name.train.log" >&2; exit 1; }
    "$CLI" eval -V "$V" -c "$OUT/$name.gguf" --workflows bench/workflows/test.jsonl --profile "$V/test.sqlite" \
        --json > "$OUT/$name.json"
    pairs+=("$name=$OUT/$name.json")
done
python3 bench/ablation_table.py "${pairs[@]}"
