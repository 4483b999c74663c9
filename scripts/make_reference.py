#!/usr/bin/env python3
"""Make the llama.cpp reference fixtures the engine's correctness tests compare against.

Run once; the output is committed:

    python3 scripts/make_reference.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
    build/agentcompress quantize -m models/SmolLM2-135M-Instruct.Q4_1.gguf -o /tmp/f16 --types f16
    python3 scripts/make_reference.py --model /tmp/f16/f16.gguf \
        --out-json tests/fixtures/ref_smollm2_f16.json --out-bin tests/fixtures/ref_smollm2_f16_logits.bin

The second form is the F16 reference: the same weights (the Q4_1 file dequantized exactly, then
rounded to F16, which is what llama-quantize's F16 holds too) without the 8-bit re-quantization
of matmul inputs that makes the Q4_1 logits chaotic, so greedy decoding can be compared exactly.

Needs llama-cpp-python (llama.cpp) and numpy. Writes

    tests/fixtures/ref_smollm2.json        prompts, flags, prompt ids, greedy ids, text, noise floor
    tests/fixtures/ref_smollm2_logits.bin  float32 little-endian, n_prompts x n_vocab: the logits of
                                           the last prompt position, in the JSON's prompt order

What is recorded, per prompt:
  * the prompt token ids (llama.tokenize(text.encode(), add_bos=<from metadata>, special=True));
  * the last-position logits right after evaluating the prompt in one batch (n_batch 512);
  * greedy decoding for N_GEN tokens: argmax of the raw logits at every step (numpy argmax, so
    the lowest id wins a tie), no sampler, no penalties, never stopping at EOS/EOG: the positions
    where EOS / end-of-generation tokens were produced are recorded instead;
  * the generated ids and their detokenized text (with and without special-token text), the
    top-1/top-2 logit margin at each step (small margins are where a tiny numeric difference
    could legitimately flip a greedy choice) and the top-5 of the prompt logits.

Noise floor (llama.cpp against itself): for every prompt the max abs difference of the
last-position logits between n_threads 1 and 2, and between one 512-token batch and feeding the
prompt one token at a time; whether the greedy ids agree in those runs too. The whole reference
is computed twice with fresh contexts and must be bit-identical (determinism).

Exact-math reference: a float64 numpy forward pass over the dequantized GGUF weights (no Q8
activation quantization, no F16 KV cache) gives the distance between llama.cpp and "the math",
and its own greedy continuation. ggml quantizes every matmul input to Q8_0/Q8_1 (32-blocks,
round-to-nearest), so a float-summation-order difference of 1 ulp can flip an int8 rounding and
move the logits by 0.1-1: that, not a bug, is why llama.cpp's batch-vs-single-token paths differ.
Prompts whose greedy continuation llama.cpp itself does not reproduce under these
perturbations are flagged "greedy_fragile" ("greedy_stable_prefix": first divergent position);
"f64_agree_prefix" says how many greedy ids the exact float64 forward shares with llama.cpp.
"""
import argparse
import ctypes
import hashlib
import json
import os
import platform
import sys

import numpy as np

try:
    import llama_cpp
    from llama_cpp import Llama
except ImportError:  # pragma: no cover
    sys.exit("make_reference: llama-cpp-python is not installed (pip install llama-cpp-python)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT_JSON = os.path.join(ROOT, "tests", "fixtures", "ref_smollm2.json")
OUT_BIN = os.path.join(ROOT, "tests", "fixtures", "ref_smollm2_logits.bin")

N_GEN = 32
N_CTX = 2048
N_BATCH = 512
N_THREADS = 2

CHATML = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
          "<|im_end|>\n<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n")

LONG_PARAGRAPH = (
    "The history of computing is a story of abstraction. Early machines were programmed by "
    "rewiring panels and flipping switches; later, stored-program computers read their "
    "instructions from memory, which made software possible. Assemblers replaced raw machine "
    "code, compilers replaced assemblers for most work, and operating systems hid the hardware "
    "behind files, processes and virtual memory. Each layer let programmers think about bigger "
    "problems while trusting the layer below. Today, a single line of Python may set in motion "
    "millions of instructions across caches, cores and accelerators, and the person who wrote "
    "it rarely needs to know. In the next chapter, we"
)

# (name, kind, text as the user gives it). "chat" prompts are wrapped in CHATML.
PROMPTS = [
    ("capital", "plain", "The capital of France is"),
    ("fibonacci", "plain", "def fibonacci(n):"),
    ("photosynthesis", "plain",
     "Photosynthesis is the process by which green plants use sunlight to"),
    ("chat_capital", "chat", "What is the capital of France?"),
    ("chat_json", "chat",
     "Write the following as JSON with keys \"name\" and \"formula\": water, H2O"),
    ("chat_arith", "chat", "What is 17 times 3? Answer with the number only."),
    # extras: a ~140-token prompt (batched prefill over many rows) and mixed Unicode/digits/spaces
    ("long_paragraph", "plain", LONG_PARAGRAPH),
    ("unicode_digits", "plain",
     "Café au lait costs €3.50 — naïve estimate:   12,345.67 × 2 = 24691.34;  日本語も少し。\n\tNext:"),
]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def make_llm(model, n_threads, n_batch):
    return Llama(model_path=model, n_ctx=N_CTX, n_batch=n_batch, n_ubatch=n_batch,
                 n_threads=n_threads, n_threads_batch=n_threads, n_gpu_layers=0,
                 logits_all=False, flash_attn=False, seed=0, verbose=False)


def last_logits(llm):
    """Logits of the last token of the last llama_decode (the only row requested)."""
    n_vocab = llm.n_vocab()
    p = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    arr = np.ctypeslib.as_array(ctypes.cast(p, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))
    return np.array(arr, dtype=np.float32, copy=True)


def eval_prompt(llm, ids, one_at_a_time=False):
    llm.reset()
    if one_at_a_time:
        for t in ids:
            llm.eval([t])
    else:
        llm.eval(ids)
    return last_logits(llm)


def greedy(llm, ids, n_gen, one_at_a_time=False):
    """Returns (prompt logits, generated ids, per-step top1-top2 margins)."""
    logits = eval_prompt(llm, ids, one_at_a_time)
    prompt_logits = logits
    gen, margins = [], []
    for step in range(n_gen):
        tok = int(np.argmax(logits))
        top2 = np.partition(logits, -2)[-2:]
        margins.append(float(abs(top2[1] - top2[0])))
        gen.append(tok)
        if step + 1 < n_gen:
            llm.eval([tok])
            logits = last_logits(llm)
    return prompt_logits, gen, margins


class ExactF64:
    """Float64 LLaMA forward over dequantized GGUF weights, with a KV cache (llama arch only)."""

    def __init__(self, path):
        import gguf
        from gguf.quants import dequantize
        r = gguf.GGUFReader(path)
        f = lambda k: r.fields[k].contents()
        arch = f("general.architecture")
        self.L = int(f(f"{arch}.block_count"))
        self.D = int(f(f"{arch}.embedding_length"))
        self.H = int(f(f"{arch}.attention.head_count"))
        self.KV = int(f(f"{arch}.attention.head_count_kv"))
        self.HD = self.D // self.H
        self.eps = float(f(f"{arch}.attention.layer_norm_rms_epsilon"))
        self.base = float(f(f"{arch}.rope.freq_base"))
        self.W = {}
        for t in r.tensors:
            a = dequantize(t.data, t.tensor_type).astype(np.float64)
            ne = [int(x) for x in t.shape]
            self.W[t.name] = a.reshape(list(reversed(ne))) if len(ne) > 1 else a.reshape(-1)
        self.out = self.W.get("output.weight", self.W["token_embd.weight"])
        self.reset()

    def reset(self):
        self.k = [np.zeros((0, self.KV, self.HD)) for _ in range(self.L)]
        self.v = [np.zeros((0, self.KV, self.HD)) for _ in range(self.L)]

    def _rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def _rope(self, x, pos):  # llama.cpp NORM mode: rotate adjacent pairs (2i, 2i+1)
        i = np.arange(self.HD // 2)
        th = pos[:, None] * self.base ** (-2.0 * i / self.HD)
        c, s = np.cos(th)[:, None, :], np.sin(th)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    def eval(self, ids):
        """Appends ids to the cache; returns the last position's logits."""
        W, T, n_past = self.W, len(ids), self.k[0].shape[0]
        pos = np.arange(n_past, n_past + T, dtype=np.float64)
        x = W["token_embd.weight"][ids]
        g = self.H // self.KV
        for l in range(self.L):
            p = f"blk.{l}."
            h = self._rms(x, W[p + "attn_norm.weight"])
            q = self._rope((h @ W[p + "attn_q.weight"].T).reshape(T, self.H, self.HD), pos)
            k = self._rope((h @ W[p + "attn_k.weight"].T).reshape(T, self.KV, self.HD), pos)
            v = (h @ W[p + "attn_v.weight"].T).reshape(T, self.KV, self.HD)
            self.k[l] = K = np.concatenate([self.k[l], k])
            self.v[l] = V = np.concatenate([self.v[l], v])
            n = K.shape[0]
            mask = np.where(np.arange(n)[None, :] > (n_past + np.arange(T))[:, None], -np.inf, 0.0)
            att = np.empty((T, self.H, self.HD))
            for hh in range(self.H):
                s = q[:, hh, :] @ K[:, hh // g, :].T / np.sqrt(self.HD) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                att[:, hh, :] = (s / s.sum(-1, keepdims=True)) @ V[:, hh // g, :]
            x = x + att.reshape(T, self.D) @ W[p + "attn_output.weight"].T
            h = self._rms(x, W[p + "ffn_norm.weight"])
            gt, up = h @ W[p + "ffn_gate.weight"].T, h @ W[p + "ffn_up.weight"].T
            x = x + (gt / (1 + np.exp(-gt)) * up) @ W[p + "ffn_down.weight"].T
        return self._rms(x[-1:], W["output_norm.weight"])[0] @ self.out.T


def first_diff(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out-json", default=OUT_JSON)
    ap.add_argument("--out-bin", default=OUT_BIN)
    args = ap.parse_args()
    if not os.path.isfile(args.model):
        sys.exit(f"make_reference: {args.model}: no such file (run scripts/setup.sh)")

    llm = make_llm(args.model, N_THREADS, N_BATCH)
    meta = dict(llm.metadata)
    add_bos = str(meta.get("tokenizer.ggml.add_bos_token", "false")).lower() == "true"
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llm.n_vocab()
    eos_id = int(llama_cpp.llama_vocab_eos(vocab))
    bos_id = int(llama_cpp.llama_vocab_bos(vocab))

    def is_eog(t):
        return bool(llama_cpp.llama_vocab_is_eog(vocab, t))

    def piece(t, special):
        return llm.detokenize([t], special=special).decode("utf-8", errors="replace")

    eog_ids = [t for t in range(n_vocab) if is_eog(t)]

    entries, all_logits = [], []
    for name, kind, user in PROMPTS:
        text = CHATML.replace("{USER}", user) if kind == "chat" else user
        ids = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        plog, gen, margins = greedy(llm, ids, N_GEN)
        all_logits.append(plog)
        top5 = np.argsort(-plog, kind="stable")[:5]
        entries.append({
            "name": name,
            "kind": kind,
            "user": user,
            "text": text,
            "prompt_ids": [int(t) for t in ids],
            "n_prompt": len(ids),
            "prompt_top5": [{"id": int(t), "logit": float(plog[t]), "piece": piece(int(t), True)}
                            for t in top5],
            "generated_ids": gen,
            "generated_text": llm.detokenize(gen, special=False).decode("utf-8", errors="replace"),
            "generated_text_special": llm.detokenize(gen, special=True).decode("utf-8", errors="replace"),
            "generated_pieces": [piece(t, True) for t in gen],
            "eos_positions": [i for i, t in enumerate(gen) if t == eos_id],
            "eog_positions": [i for i, t in enumerate(gen) if is_eog(t)],
            "first_eos": next((i for i, t in enumerate(gen) if t == eos_id), None),
            "step_top2_margin": [round(m, 6) for m in margins],
            "min_top2_margin": round(min(margins), 6),
        })
        print(f"{name:16s} n_prompt={len(ids):4d} eos_at={entries[-1]['eos_positions']} "
              f"min_margin={min(margins):.4f} | {entries[-1]['generated_text_special']!r}",
              file=sys.stderr)
    ref = np.stack(all_logits).astype("<f4")
    del llm

    # --- determinism: a second, fresh context must reproduce everything bit for bit
    llm2 = make_llm(args.model, N_THREADS, N_BATCH)
    det_logits_equal, det_ids_equal = True, True
    for e, plog in zip(entries, all_logits):
        p2, g2, _ = greedy(llm2, e["prompt_ids"], N_GEN)
        det_logits_equal &= bool(np.array_equal(p2, plog))
        det_ids_equal &= (g2 == e["generated_ids"])
    del llm2

    # --- noise floor: threads 1 vs 2, batch 512 vs one token at a time
    llm1 = make_llm(args.model, 1, N_BATCH)
    llmb1 = make_llm(args.model, N_THREADS, 1)
    noise = []
    exact = ExactF64(args.model)
    for e, plog in zip(entries, all_logits):
        p_t1, g_t1, _ = greedy(llm1, e["prompt_ids"], N_GEN)
        p_b1, g_b1, _ = greedy(llmb1, e["prompt_ids"], N_GEN, one_at_a_time=True)
        exact.reset()
        lg = exact.eval(e["prompt_ids"])
        p_x, g_x = lg, []
        for step in range(N_GEN):
            g_x.append(int(np.argmax(lg)))
            if step + 1 < N_GEN:
                lg = exact.eval([g_x[-1]])
        ref_ids = e["generated_ids"]
        divs = [d for d in (first_diff(g_t1, ref_ids), first_diff(g_b1, ref_ids)) if d is not None]
        # fragile: llama.cpp itself (threads 1 / token-at-a-time) does not reproduce the ids
        e["greedy_fragile"] = bool(divs)
        e["greedy_stable_prefix"] = min(divs) if divs else N_GEN
        # exact float64 math (no Q8 activations): how long it agrees with llama.cpp's ids
        e["f64_generated_ids"] = g_x
        e["f64_agree_prefix"] = first_diff(g_x, ref_ids) if g_x != ref_ids else N_GEN
        noise.append({
            "name": e["name"],
            "threads1_vs_2_max_abs": float(np.max(np.abs(p_t1 - plog))),
            "threads1_vs_2_same_greedy_ids": g_t1 == ref_ids,
            "batch1_vs_512_max_abs": float(np.max(np.abs(p_b1 - plog))),
            "batch1_vs_512_mean_abs": float(np.mean(np.abs(p_b1 - plog))),
            "batch1_vs_512_same_greedy_ids": g_b1 == ref_ids,
            "batch1_vs_512_first_greedy_diff": first_diff(g_b1, ref_ids),
            "f64_vs_llama_max_abs": float(np.max(np.abs(p_x - plog))),
            "f64_vs_llama_mean_abs": float(np.mean(np.abs(p_x - plog))),
            "f64_same_argmax": int(np.argmax(p_x)) == int(np.argmax(plog)),
            "f64_first_greedy_diff": first_diff(g_x, ref_ids),
            "logit_abs_max": float(np.max(np.abs(plog))),
        })
        print(f"noise {e['name']:16s} batch1 {noise[-1]['batch1_vs_512_max_abs']:.4f} "
              f"f64 {noise[-1]['f64_vs_llama_max_abs']:.4f} stable_prefix "
              f"{e['greedy_stable_prefix']} f64_agree_prefix {e['f64_agree_prefix']}", file=sys.stderr)
    del llm1, llmb1, exact

    file_type = str(meta.get("general.file_type", "?"))
    file_type = {"1": "F16", "3": "Q4_1"}.get(file_type, "general.file_type " + file_type)
    info = {
        "description": f"llama.cpp reference for SmolLM2-135M-Instruct ({file_type}): prompt ids, "
                       "last-prompt-position logits, greedy continuation. Made by "
                       "scripts/make_reference.py.",
        "generator": "scripts/make_reference.py",
        "llama_cpp_python_version": llama_cpp.__version__,
        "llama_cpp_commit": "0c1e57098 (vendored by llama-cpp-python 0.3.36, per its CHANGELOG)",
        "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "model_file": (os.path.relpath(os.path.abspath(args.model), ROOT)
                       if os.path.abspath(args.model).startswith(ROOT + os.sep) else args.model),
        "model_sha256": sha256_file(args.model),
        "model_size_bytes": os.path.getsize(args.model),
        "flags": {
            "n_ctx": N_CTX, "n_batch": N_BATCH, "n_ubatch": N_BATCH, "n_threads": N_THREADS,
            "n_threads_batch": N_THREADS, "n_gpu_layers": 0, "flash_attn": False,
            "kv_cache_type": "f16 (llama.cpp default: K and V are stored as F16)",
            "tokenize": f"llama.tokenize(text.encode('utf-8'), add_bos={add_bos}, special=True)",
            "add_bos": add_bos,
            "add_bos_token_metadata": meta.get("tokenizer.ggml.add_bos_token"),
            "chat_template": CHATML,
            "decoding": "greedy: numpy argmax of raw logits (lowest id on ties), no sampler, "
                        "no repetition penalty, does not stop at EOS",
            "n_gen": N_GEN,
            "prompt_eval": "whole prompt in one llama_decode (n_batch 512); then one token per decode",
        },
        "n_vocab": n_vocab,
        "bos_id": bos_id,
        "eos_id": eos_id,
        "eog_ids": eog_ids,
        "logits_file": os.path.basename(args.out_bin),
        "logits_layout": "float32 little-endian, row-major [n_prompts][n_vocab], prompt order as "
                         "in 'prompts'",
        "determinism": {
            "runs": 2,
            "prompt_logits_bit_identical": det_logits_equal,
            "greedy_ids_identical": det_ids_equal,
        },
        "noise_floor": {
            "threads1_vs_2_max_abs": max(n["threads1_vs_2_max_abs"] for n in noise),
            "batch1_vs_512_max_abs": max(n["batch1_vs_512_max_abs"] for n in noise),
            "batch1_vs_512_mean_abs_max": max(n["batch1_vs_512_mean_abs"] for n in noise),
            "f64_vs_llama_max_abs": max(n["f64_vs_llama_max_abs"] for n in noise),
            "f64_vs_llama_mean_abs_max": max(n["f64_vs_llama_mean_abs"] for n in noise),
            "explanation": "ggml quantizes each matmul input to Q8 blocks; a 1-ulp float "
                           "summation-order difference can flip one int8 rounding and move the "
                           "logits by 0.1-1. n_threads does not change ggml's summation order "
                           "(0 difference); batch vs single-token does (F16 KQ/KQV via tinyBLAS "
                           "vs vec_dot). 'f64' is an exact float64 forward over the dequantized "
                           "weights (scripts/make_reference.py: ExactF64).",
            "greedy_ids_identical_across_all": all(n["threads1_vs_2_same_greedy_ids"] and
                                                   n["batch1_vs_512_same_greedy_ids"] for n in noise),
            "per_prompt": noise,
        },
        "prompts": entries,
    }
    os.makedirs(os.path.dirname(args.out_json), exist_ok=True)
    ref.tofile(args.out_bin)
    with open(args.out_json, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out_json} and {args.out_bin} ({ref.shape[0]} x {ref.shape[1]} float32); "
          f"determinism ok={det_logits_equal and det_ids_equal}; noise floor "
          f"threads={info['noise_floor']['threads1_vs_2_max_abs']:.3g} "
          f"batch={info['noise_floor']['batch1_vs_512_max_abs']:.3g}", file=sys.stderr)


if __name__ == "__main__":
    main()
