#!/usr/bin/env python3
"""Writes the quant module's bit-equality fixtures: a fixed float input and
the bytes ggml's reference quantizers (quantize_row_*_ref in libggml-base,
as shipped with llama-cpp-python) produce from it, one file per type.

    scripts/make_quant_fixtures.py [--ggml-lib PATH/libggml-base.so]

Outputs (tests/test_quant.c reads them, from the repository root):
    tests/fixtures/quant_input.f32   1024 little-endian float32
    tests/fixtures/quant_<type>.bin  ggml's bytes for that input

The input mixes plain Gaussian blocks, per-block scale changes, all-positive
blocks (the K-quants' min > 0 branch), a zero block, near-zero groups (below
ggml's GROUP_MAX_EPS), large values and exact rounding ties.
"""
import argparse
import ctypes
import os
import sys

import numpy as np

N = 1024  # 4 super-blocks of 256
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")

# name -> (bytes per block, elements per block, ggml symbol)
TYPES = {
    "f16": (2, 1, "ggml_fp32_to_fp16_row"),
    "q4_0": (18, 32, "quantize_row_q4_0_ref"),
    "q4_1": (20, 32, "quantize_row_q4_1_ref"),
    "q5_0": (22, 32, "quantize_row_q5_0_ref"),
    "q5_1": (24, 32, "quantize_row_q5_1_ref"),
    "q8_0": (34, 32, "quantize_row_q8_0_ref"),
    "q8_1": (36, 32, "quantize_row_q8_1_ref"),
    "q2_K": (84, 256, "quantize_row_q2_K_ref"),
    "q3_K": (110, 256, "quantize_row_q3_K_ref"),
    "q4_K": (144, 256, "quantize_row_q4_K_ref"),
    "q5_K": (176, 256, "quantize_row_q5_K_ref"),
    "q6_K": (210, 256, "quantize_row_q6_K_ref"),
    "q8_K": (292, 256, "quantize_row_q8_K_ref"),
}


def find_ggml():
    try:
        import llama_cpp  # noqa: F401  (only to locate its lib/ folder)
    except ImportError:
        sys.exit("make_quant_fixtures: llama-cpp-python not installed; pass --ggml-lib")
    return os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so")


def make_input():
    rng = np.random.default_rng(20240607)
    x = np.empty(N, dtype=np.float32)
    # super-block 0: plain N(0, 1)
    x[0:256] = rng.standard_normal(256)
    # super-block 1: scale changing per 32, with all-positive blocks
    for b in range(8):
        v = rng.standard_normal(32) * np.exp(rng.uniform(-4, 3))
        if b % 3 == 1:
            v = np.abs(v) + 0.25
        x[256 + 32 * b: 288 + 32 * b] = v
    # super-block 2: a zero block, a near-zero group, large values, one outlier
    v = rng.standard_normal(256) * 3.0
    v[0:32] = 0.0
    v[32:48] = rng.standard_normal(16) * 1e-17
    v[64:96] = rng.standard_normal(32) * 2e4
    v[200] = -75.0
    x[512:768] = v
    # super-block 3: exact ties (multiples of a power-of-two step)
    x[768:1024] = rng.integers(-40, 41, 256) * 0.0625
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ggml-lib", default=None)
    args = ap.parse_args()
    lib = ctypes.CDLL(args.ggml_lib or find_ggml())

    x = make_input()
    os.makedirs(OUT, exist_ok=True)
    x.astype("<f4").tofile(os.path.join(OUT, "quant_input.f32"))
    xp = x.ctypes.data_as(ctypes.c_void_p)
    for name, (tsize, bsize, sym) in TYPES.items():
        fn = getattr(lib, sym)
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        # zeroed first: ggml leaves Q8_K's bsums of an all-zero block unwritten
        out = ctypes.create_string_buffer(N // bsize * tsize)
        fn(xp, out, N)
        with open(os.path.join(OUT, "quant_%s.bin" % name), "wb") as f:
            f.write(out.raw)
        print("quant_%s.bin: %d bytes" % (name, len(out.raw)))


if __name__ == "__main__":
    main()
