#!/usr/bin/env bash
# bench/bench_llamacpp.sh — llama.cpp vs agentcompress, side by side in one run.
#
#   bench/bench_llamacpp.sh            build what is missing (cached in bench/out/), then measure
#   bench/bench_llamacpp.sh --build-only
#
# Steps (each skipped when its output already exists, so reruns only measure):
#   1. llama.cpp from the llama-cpp-python sdist's vendored copy (cmake Release, GGML_NATIVE=ON,
#      targets llama-bench + llama-quantize, -j2) -> bench/out/llama.cpp/build/bin/
#   2. Q8_0, Q4_0, Q2_K, F16 GGUFs from the shipped Q4_1 model (llama-quantize --allow-requantize)
#      -> bench/out/models/
#   3. bench/membw.c (memory read bandwidth probe) -> bench/out/membw
#   4. bench/bench_llamacpp.py: llama-bench pp128 and tg64 at depth 128, and ours
#      (build/agentcompress generate, 128-token prompt + 64 tokens) per file x threads {1,2},
#      best of 3; table on stdout, all numbers in bench/out/bench_llamacpp.json.
#      CTX=1024 (or --ctx 1024): a 1024-token prompt instead -> bench_llamacpp_ctx1024.json
#
# Environment: LLAMA_CPP_SDIST=path/to/llama_cpp_python-X.tar.gz (else bench/out/dl/, /tmp/dl/src/,
# or `pip download` of LLAMA_CPP_PYTHON_VERSION, default 0.3.36), MODEL=base GGUF,
# THREADS="1 2", REPS=3, OURS=build/agentcompress, CTX=128|1024.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=bench/out
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
VER=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
JOBS=${JOBS:-2}
LSRC=$OUT/llama.cpp/src
LBUILD=$OUT/llama.cpp/build
LBIN=$LBUILD/bin
mkdir -p "$OUT/dl" "$OUT/models" "$OUT/llama.cpp"

log() { echo "bench: $*" >&2; }

[ -s "$MODEL" ] || { log "$MODEL missing: run scripts/setup.sh first"; exit 1; }

# ---- 1. llama.cpp ------------------------------------------------------------------------
if [ ! -x "$LBIN/llama-bench" ] || [ ! -x "$LBIN/llama-quantize" ]; then
    if [ ! -f "$LSRC/CMakeLists.txt" ]; then
        SDIST=${LLAMA_CPP_SDIST:-}
        if [ -z "$SDIST" ]; then
            for c in "$OUT/dl/llama_cpp_python-$VER.tar.gz" "/tmp/dl/src/llama_cpp_python-$VER.tar.gz"; do
                [ -s "$c" ] && { SDIST=$c; break; }
            done
        fi
        if [ -z "$SDIST" ]; then
            log "downloading llama-cpp-python $VER sdist"
            python3 -m pip download --quiet --no-deps --no-binary :all: \
                "llama-cpp-python==$VER" --dest "$OUT/dl"
            SDIST=$OUT/dl/llama_cpp_python-$VER.tar.gz
        fi
        log "extracting vendored llama.cpp from $SDIST"
        rm -rf "$LSRC" "$OUT/llama.cpp/tmp"
        mkdir -p "$OUT/llama.cpp/tmp"
        tar -xzf "$SDIST" -C "$OUT/llama.cpp/tmp" --wildcards '*/vendor/llama.cpp/*' '*/CHANGELOG.md'
        top=$(ls "$OUT/llama.cpp/tmp")
        mv "$OUT/llama.cpp/tmp/$top/vendor/llama.cpp" "$LSRC"
        # the sdist has no .git: take the llama.cpp commit from llama-cpp-python's changelog
        commit=$(grep -m1 -o 'ggml-org/llama.cpp@[0-9a-f]*' "$OUT/llama.cpp/tmp/$top/CHANGELOG.md" | cut -d@ -f2 || true)
        printf '{"llama_cpp_python": "%s", "sdist": "%s", "llama_cpp_commit": "%s"}\n' \
            "${top#llama_cpp_python-}" "$(basename "$SDIST")" "${commit:-unknown}" > "$OUT/llama.cpp/source.json"
        rm -rf "$OUT/llama.cpp/tmp"
    fi
    log "building llama.cpp (llama-bench, llama-quantize; Release, GGML_NATIVE=ON, -j$JOBS)"
    cmake -S "$LSRC" -B "$LBUILD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_BUILD_TOOLS=ON > "$OUT/llama.cpp/cmake.log" 2>&1 \
        || { tail -30 "$OUT/llama.cpp/cmake.log" >&2; exit 1; }
    cmake --build "$LBUILD" --config Release -j"$JOBS" --target llama-bench llama-quantize \
        > "$OUT/llama.cpp/build.log" 2>&1 || { tail -30 "$OUT/llama.cpp/build.log" >&2; exit 1; }
fi

# ---- 2. variants -------------------------------------------------------------------------
base=$(basename "$MODEL" .gguf)
stem=${base%.*}
for t in Q8_0 Q4_0 Q2_K F16; do
    f=$OUT/models/$stem.$t.gguf
    if [ ! -s "$f" ]; then
        log "llama-quantize --allow-requantize -> $t"
        "$LBIN/llama-quantize" --allow-requantize "$MODEL" "$f.part" "$t" \
            > "$OUT/models/$stem.$t.quantize.log" 2>&1 \
            || { tail -20 "$OUT/models/$stem.$t.quantize.log" >&2; exit 1; }
        mv "$f.part" "$f"
    fi
done

# ---- 3. bandwidth probe ------------------------------------------------------------------
if [ ! -x "$OUT/membw" ] || [ bench/membw.c -nt "$OUT/membw" ]; then
    cc -O2 -march=native -pthread -o "$OUT/membw" bench/membw.c
fi

[ "${1:-}" = "--build-only" ] && { log "build only: done"; exit 0; }

# ---- 4. measure --------------------------------------------------------------------------
python3 -c "import gguf, numpy" 2>/dev/null || {
    log "installing the gguf Python package (reads tensor sizes)"
    python3 -m pip install --quiet gguf numpy
}
exec python3 bench/bench_llamacpp.py --model "$MODEL" --out "$OUT" --llama-bin "$LBIN" "$@"
