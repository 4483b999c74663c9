#!/usr/bin/env python3
"""Writes the tokenizer test fixtures from llama.cpp (llama-cpp-python).

    python3 scripts/make_tokenizer_fixtures.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]

Outputs (all under tests/fixtures/):
  tokenizer_smollm2.json         ids for the default model (byte-level BPE, pre "smollm")
  tokenizer_spm_tiny.gguf/.json  a synthetic SentencePiece-style vocab (model "llama")
  tokenizer_spm_tiny_noprefix.*  the same without space prefix and BOS, with EOS
  tokenizer_bpe_<pre>.gguf/.json a synthetic byte-level BPE vocab for each other
                                 pre-tokenizer ("gpt-2", "default", "llama-bpe", "qwen2")

Every .json has the same shape:
  {"gguf": path, "n_vocab", "bos", "eos", "eog": [ids], "cases": [
     {"text": str | "text_hex": hex, "ids": [[..] x 4], "decoded_hex": hex,
      "decoded0_hex": hex}]}
ids[k] is llama_tokenize(text, add_special = k & 2, parse_special = k & 1);
decoded_hex is the concatenation of llama_token_to_piece(id, special=True) over
ids[3] (add_special and parse_special), decoded0_hex that of
llama_token_to_piece(id, special=False) over ids[0] (neither).

The synthetic vocabularies are trained here with a tiny deterministic BPE so
that the files stay small; llama.cpp then is the reference for their ids.
"""
import argparse
import collections
import json
import os
import sys

import gguf
import llama_cpp

FIX = "tests/fixtures"

# The strings every vocabulary is tested on. bytes entries are written as
# text_hex (invalid UTF-8 or NUL, which JSON strings cannot carry safely).
TEXTS = [
    "",
    "a",
    " ",
    "\n",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    " leading space",
    "trailing space ",
    "  two leading spaces",
    "multiple     spaces   between words",
    "tabs\tand\ttabs\t\tend",
    "new\nlines\n\nand\r\nCRLF\n",
    "   \n\n   \t  ",
    "I'm sure you're right, they've said it'll be what we'd do; it's Bob's.",
    "DON'T SHOUT: I'M HERE, YOU'LL SEE, WE'D GO, THEY'VE LEFT",
    "café naïve résumé façade Ångström",
    "e\u0301 combining: a\u0308o\u0302 and Z\u0335\u0321a\u0336l\u0337g\u0338o",
    "日本語のテキストです。中文文本测试。",
    "한국어 텍스트",
    "Emoji: 😀🎉👍🏽 family 👨‍👩‍👧 flags 🇫🇷 ☺️ ❤️",
    "مرحبا بالعالم",
    "Привет, мир! Ελληνικά κείμενα",
    "हिन्दी पाठ and ภาษาไทย",
    "1234567890",
    "3.14159265358979 and 6.02e23 and -42 and 1,000,000 and 007",
    "Call 555-0123 at 10:30pm on 2024-01-15",
    "x² + y³ = z⁴, ½ ¾ Ⅻ ٣٤ １２３",
    "def f(x):\n    return x**2  # square\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "for (i = 0; i < n; i++) { a[i] += b[i] >> 2; }",
    '{"name": "water", "formula": "H2O", "mass": 18.015}',
    "CC(=O)Oc1ccccc1C(=O)O",
    "C1=CC=C(C=C1)[N+](=O)[O-] and [Na+].[Cl-] and O=C=O",
    "\\frac{a}{b} + \\sqrt{x^2 + y^2} = \\int_0^\\infty e^{-x}\\,dx",
    "$E = mc^2$ and $$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$",
    "H₂O + CO₂ → H₂CO₃; ΔG = −RT ln K",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after eot<|im_end|>",
    "<|im_start|><|im_end|>",
    "partial <|im_start| and <im_end|> not special",
    "<repo_name>foo<file_sep>bar <s>x</s> <|user|>y",
    "https://example.com/path?query=1&x=y#frag",
    "email@example.org, @user #hashtag",
    "!!!??? ... --- *** ___ ~~~",
    "ALLCAPS lowercase CamelCase snake_case kebab-case",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "\u00a0nbsp\u2003em space\u3000ideographic\u200bzwsp\u0085nel\u180emvs",
    "Temperature: 25°C (77°F) ± 0.5°, 100µm, 5€, £3, ¥1000",
    "a" * 200,
    "ab" * 100,
    "The mitochondria is the powerhouse of the cell. Photosynthesis converts light "
    "energy into chemical energy, storing it in glucose (C6H12O6).",
    "Newton's second law: F = ma. Ohm's law: V = IR. E = hν, λ = c/ν.",
    # Unicode 15 letters, digits and punctuation (Kawi, Nag Mundari, CJK
    # extension H) that PCRE2 built on Unicode 14 does not know yet
    "Kawi \U00011F04\U00011F05\U00011F06 d\U00011F50\U00011F51 p\U00011F43 "
    "Nag \U0001E4D0\U0001E4D1 7\U0001E4F0\U0001E4F1 CJK \U00031350\U00031351x",
    "mvs \u180ex, a\u180e!, \u180e\u180e y; Kawi\U00011F04\U00011F05 a\U00011F04b i\u00f0\U00011F12 "
    "1\U00011F502 \U00011F50\U00011F51\U00011F52\U00011F53 !\U00011F43!",
    b"cesu \xed\xa0\x80 overlong \xc0\x80 cut \xe0\x80 end \xf0\x9f\x98",
    b"abc\xff\xfedef\xc3(",
    b"a\x00b\x01c",
    b"\xe2\x82",
]


def tok(vocab, text, add_special, parse_special):
    n = 4 * len(text) + 16  # an invalid byte can become 3 tokens (U+FFFD)
    arr = (llama_cpp.llama_token * n)()
    r = llama_cpp.llama_tokenize(vocab, text, len(text), arr, n, add_special, parse_special)
    if r < 0:
        raise RuntimeError("llama_tokenize failed (%d) on %r" % (r, text))
    return list(arr[:r])


def piece(vocab, tid, special):
    buf = (llama_cpp.ctypes.c_char * 256)()
    n = llama_cpp.llama_token_to_piece(vocab, tid, buf, 256, 0, special)
    if n < 0:
        raise RuntimeError("piece too long")
    return bytes(buf[:n])


def dump(gguf_path, out_json, texts):
    llm = llama_cpp.Llama(gguf_path, vocab_only=True, verbose=False)
    v = llm._model.vocab
    n_vocab = llama_cpp.llama_vocab_n_tokens(v)
    doc = {
        "gguf": gguf_path,
        "n_vocab": n_vocab,
        "bos": llama_cpp.llama_vocab_bos(v),
        "eos": llama_cpp.llama_vocab_eos(v),
        "eog": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(v, i)],
        "cases": [],
    }
    for t in texts:
        b = t if isinstance(t, bytes) else t.encode("utf-8")
        case = {"text_hex": b.hex()} if isinstance(t, bytes) else {"text": t}
        case["ids"] = [tok(v, b, k & 2 != 0, k & 1 != 0) for k in range(4)]
        case["decoded_hex"] = b"".join(piece(v, i, True) for i in case["ids"][3]).hex()
        case["decoded0_hex"] = b"".join(piece(v, i, False) for i in case["ids"][0]).hex()
        doc["cases"].append(case)
    with open(out_json, "w", encoding="utf-8") as f:
        # one case a line: small diffs, still valid JSON
        f.write("{\n")
        for k in ("gguf", "n_vocab", "bos", "eos", "eog"):
            f.write(" %s: %s,\n" % (json.dumps(k), json.dumps(doc[k])))
        f.write(' "cases": [\n')
        for i, c in enumerate(doc["cases"]):
            f.write("  " + json.dumps(c, ensure_ascii=False, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(doc["cases"]) else "\n")
        f.write(" ]\n}\n")
    print("wrote %s (%d cases, vocab %d)" % (out_json, len(texts), n_vocab))


# ---- tiny deterministic BPE trainer (for the synthetic vocabularies) ----

CORPUS = " ".join(t for t in TEXTS if isinstance(t, str)) + """
Language models read text as tokens. A tokenizer splits the text into pieces,
and each piece has an id. The quick brown fox jumps over the lazy dog again and
again, while the researchers measure the energy of the reaction in kilojoules.
Water is H2O; carbon dioxide is CO2; the formula of glucose is C6H12O6.
It's the theory that they've tested: we'll see whether it holds, isn't it?
def tokenize(text): return [vocab[p] for p in split(text)]
"""


def gpt2_byte_map():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def train_bpe(words, n_merges):
    """words: Counter of tuples of symbols. Returns the merge list in order."""
    words = dict(words)
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        # most frequent, ties broken by the pair itself: deterministic
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if pairs[best] < 2:
            break
        merges.append(best)
        nw = {}
        for w, c in words.items():
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nw[tuple(out)] = nw.get(tuple(out), 0) + c
        words = nw
    return merges


def add_llama_hparams(w):
    # vocab_only loading still reads the architecture's hyperparameters
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(16)


def make_bpe_gguf(path, pre):
    import regex
    bmap = gpt2_byte_map()
    words = collections.Counter()
    for m in regex.findall(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", CORPUS):
        words[tuple(bmap[b] for b in m.encode("utf-8"))] += 1
    merges = train_bpe(words, 400)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|begin_of_text|>"]
    tokens = list(specials)
    types = [3] * len(specials)
    for b in range(256):
        tokens.append(bmap[b])
        types.append(1)
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            tokens.append(a + b)
            types.append(1)
    tokens.append("<|user|>")  # user-defined: matched even without parse_special
    types.append(4)
    assert len(set(tokens)) == len(tokens)
    w = gguf.GGUFWriter(path, "llama")
    add_llama_hparams(w)
    w.add_tokenizer_model("gpt2")
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["%s %s" % m for m in merges])
    w.add_bos_token_id(tokens.index("<|begin_of_text|>"))
    w.add_eos_token_id(tokens.index("<|endoftext|>"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_spm_gguf(path, space_prefix=None, add_bos=None, add_eos=None):
    """space_prefix/add_bos/add_eos: written when not None (else llama.cpp's
    defaults for "llama" apply: true, true, false)."""
    sp = "\u2581"
    words = collections.Counter()
    for wd in CORPUS.split():
        # CJK etc. are left to byte fallback; the special tokens stay whole
        if all(ord(c) < 0x2000 for c in wd) and "<|" not in wd:
            words[tuple(sp + wd)] += 1
    merges = train_bpe(words, 300)
    chars = sorted({c for w in words for c in w})
    tokens = ["<unk>", "<s>", "</s>"]
    types = [2, 3, 3]
    scores = [0.0, 0.0, 0.0]
    for b in range(256):
        tokens.append("<0x%02X>" % b)
        types.append(6)
        scores.append(0.0)
    seen = set(tokens)
    for i, (a, b) in enumerate(merges):
        if a + b not in seen:
            seen.add(a + b)
            tokens.append(a + b)
            types.append(1)
            scores.append(-float(i))
    for i, c in enumerate(chars):
        if c not in seen:
            seen.add(c)
            tokens.append(c)
            types.append(1)
            scores.append(-1000.0 - i)
    for t, ty in (("<|im_start|>", 3), ("<|im_end|>", 3), ("<|user|>", 4)):
        tokens.append(t)
        types.append(ty)
        scores.append(0.0)
    assert len(set(tokens)) == len(tokens)
    w = gguf.GGUFWriter(path, "llama")
    add_llama_hparams(w)
    w.add_tokenizer_model("llama")
    if space_prefix is not None:
        w.add_add_space_prefix(space_prefix)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    if add_eos is not None:
        w.add_add_eos_token(add_eos)
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    args = ap.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    os.makedirs(FIX, exist_ok=True)

    dump(args.model, FIX + "/tokenizer_smollm2.json", TEXTS)

    spm = FIX + "/tokenizer_spm_tiny.gguf"
    make_spm_gguf(spm)
    dump(spm, FIX + "/tokenizer_spm_tiny.json", TEXTS)
    spm = FIX + "/tokenizer_spm_tiny_noprefix.gguf"
    make_spm_gguf(spm, space_prefix=False, add_bos=False, add_eos=True)
    dump(spm, FIX + "/tokenizer_spm_tiny_noprefix.json", TEXTS)

    for pre in ("gpt-2", "default", "llama-bpe", "qwen2"):
        path = FIX + "/tokenizer_bpe_%s.gguf" % pre
        make_bpe_gguf(path, pre)
        dump(path, FIX + "/tokenizer_bpe_%s.json" % pre, TEXTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
