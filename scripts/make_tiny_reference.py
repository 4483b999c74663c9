#!/usr/bin/env python3
"""Tiny random-weight LLaMA and Qwen2 GGUF models (F32) and llama.cpp's logits
for them: an exact check of the forward-pass math.

On the real Q4_1 model every matmul re-quantizes its input to 8 bits, which
makes the logits chaotic (a 1e-6 relative change of the input moves them by
~0.7), so only an F32 model compares the arithmetic itself. The two models
cover: untied output head + SentencePiece vocab (llama), q/k/v biases +
NeoX RoPE + tied embeddings + byte-level BPE vocab (qwen2), GQA in both.

Writes tests/fixtures/tiny_{llama,qwen2}.gguf, tests/fixtures/tiny_ref.json
and tests/fixtures/tiny_ref_logits.bin (float32, per model n_tokens x n_vocab,
all positions). Run once; needs gguf, numpy and llama-cpp-python.
"""
import json
import os

import gguf
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
DIM, HEADS, KV_HEADS, FFN, LAYERS, CTX = 32, 4, 2, 64, 2, 128
N_TOKENS = 24


def copy_tokenizer(src, w):
    r = gguf.GGUFReader(src)
    for key, field in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        val = field.contents()
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, val, vtype, sub_type=field.types[-1])
        else:
            w.add_key_value(key, val, vtype)
    return len(r.fields["tokenizer.ggml.tokens"].data)


def build(arch, tok_src, path, rng):
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(CTX)
    w.add_embedding_length(DIM)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(0)
    n_vocab = copy_tokenizer(tok_src, w)
    hd = DIM // HEADS

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def vec(n, base=1.0, spread=0.1):
        return (base + spread * rng.standard_normal(n)).astype(np.float32)

    w.add_tensor("token_embd.weight", mat(n_vocab, DIM))
    w.add_tensor("output_norm.weight", vec(DIM))
    if arch == "llama":
        w.add_tensor("output.weight", mat(n_vocab, DIM))
    for l in range(LAYERS):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", vec(DIM))
        w.add_tensor(p + "attn_q.weight", mat(HEADS * hd, DIM))
        w.add_tensor(p + "attn_k.weight", mat(KV_HEADS * hd, DIM))
        w.add_tensor(p + "attn_v.weight", mat(KV_HEADS * hd, DIM))
        if arch == "qwen2":
            w.add_tensor(p + "attn_q.bias", vec(HEADS * hd, 0.0, 0.5))
            w.add_tensor(p + "attn_k.bias", vec(KV_HEADS * hd, 0.0, 0.5))
            w.add_tensor(p + "attn_v.bias", vec(KV_HEADS * hd, 0.0, 0.5))
        w.add_tensor(p + "attn_output.weight", mat(DIM, HEADS * hd))
        w.add_tensor(p + "ffn_norm.weight", vec(DIM))
        w.add_tensor(p + "ffn_gate.weight", mat(FFN, DIM))
        w.add_tensor(p + "ffn_up.weight", mat(FFN, DIM))
        w.add_tensor(p + "ffn_down.weight", mat(DIM, FFN))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return n_vocab


def main():
    import llama_cpp

    rng = np.random.default_rng(20261124)
    models, blobs = [], []
    for arch, tok in (("llama", "tokenizer_spm_tiny.gguf"), ("qwen2", "tokenizer_bpe_qwen2.gguf")):
        path = os.path.join(FIX, f"tiny_{arch}.gguf")
        n_vocab = build(arch, os.path.join(FIX, tok), path, rng)
        ids = [int(x) for x in rng.integers(3, n_vocab, N_TOKENS)]
        llm = llama_cpp.Llama(path, n_ctx=64, n_batch=64, n_threads=2, logits_all=True, verbose=False)
        llm.eval(ids)
        logits = np.array(llm.scores[:N_TOKENS], dtype="<f4")
        assert logits.shape == (N_TOKENS, n_vocab)
        blobs.append(logits)
        models.append({"arch": arch, "file": os.path.basename(path), "n_vocab": n_vocab, "ids": ids,
                       "logits_offset_floats": int(sum(b.size for b in blobs[:-1]))})
        del llm
    with open(os.path.join(FIX, "tiny_ref_logits.bin"), "wb") as f:
        for b in blobs:
            f.write(b.tobytes())
    info = {"generator": "scripts/make_tiny_reference.py", "llama_cpp_python_version": llama_cpp.__version__,
            "layout": "float32 LE; per model n_tokens x n_vocab logits of every position, at logits_offset_floats",
            "models": models}
    with open(os.path.join(FIX, "tiny_ref.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
