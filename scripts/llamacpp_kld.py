#!/usr/bin/env python3
"""`agentcompress kld`'s measurement done by llama.cpp (llama-cpp-python):
the text's first N tokens (tokenized as kld does: the model's BOS rule, no
special tokens parsed) are run in windows of W tokens, each from an empty
cache, with all-position logits; every other model is scored against the
first (the reference) by perplexity, mean KL divergence and the fraction of
positions whose top-1 token equals the reference's. It also prints how many
of the reference's positions are near-ties (top-1 minus top-2 log-probability
below 0.1 / 0.25 nats) and, per model, the reference's median margin where
the top-1 differs: same-top-1 counts flips of near-ties, which any small
perturbation of the logits makes.

    scripts/llamacpp_kld.py REF.gguf MODEL.gguf [MODEL.gguf ...] --text FILE
        [--tokens 1024] [--window 256] [-t 2]

With the dev split's prompts (scripts/workflow_text.py) this reproduces the
README's q8_0 line with llama.cpp's own F16 and Q8_0 files, or with ours.
"""
import argparse
import sys

import numpy as np


def tokens_of(path, text):
    from llama_cpp import Llama

    llm = Llama(model_path=path, vocab_only=True, verbose=False)
    return llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)


def window_logprobs(path, tokens, window, threads):
    """yields (window start, all-position log-probabilities) per window"""
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=window, n_batch=window, n_ubatch=window, n_threads=threads,
                logits_all=True, verbose=False)
    for pos in range(0, len(tokens), window):
        chunk = tokens[pos:pos + window]
        llm.reset()
        llm.eval(chunk)
        x = np.array(llm.scores[:len(chunk)], dtype=np.float64)
        x -= x.max(axis=1, keepdims=True)
        x -= np.log(np.exp(x).sum(axis=1, keepdims=True))
        yield pos, x


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--text", required=True)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("-t", type=int, default=2)
    a = ap.parse_args()
    with open(a.text, encoding="utf-8") as f:
        tokens = tokens_of(a.ref, f.read())[:a.tokens]
    if len(tokens) < 2:
        sys.exit("the text has fewer than 2 tokens")
    # position t of a window predicts token t + 1 of the same window
    ref = [(pos, lp[:-1]) for pos, lp in window_logprobs(a.ref, tokens, a.window, a.t)]
    margin = np.concatenate([np.diff(np.sort(p, axis=1)[:, -2:], axis=1)[:, 0] for _, p in ref])
    print(f"{len(tokens)} tokens, {len(margin)} positions; reference top-1 margin < 0.1: "
          f"{np.mean(margin < 0.1):.4f}, < 0.25: {np.mean(margin < 0.25):.4f}, < 0.5: {np.mean(margin < 0.5):.4f}")
    print(f"{'model':<60} {'ppl':>8} {'kld':>9} {'same_top1':>10} {'flip_margin':>12}")
    for path in [a.ref] + a.models:
        nll = kl = 0.0
        flips = []
        for (pos, p), (_, q) in zip(ref, window_logprobs(path, tokens, a.window, a.t)):
            q = q[:-1]
            nxt = np.array(tokens[pos + 1:pos + 1 + len(q)])
            nll -= q[np.arange(len(q)), nxt].sum()
            kl += (np.exp(p) * (p - q)).sum()
            flips.append(p.argmax(axis=1) != q.argmax(axis=1))
        flips = np.concatenate(flips)
        n = len(flips)
        med = f"{np.median(margin[flips]):12.3f}" if flips.any() else f"{'-':>12}"
        print(f"{path:<60} {np.exp(nll / n):8.3f} {kl / n:9.5f} {1 - flips.mean():10.4f} {med}")


if __name__ == "__main__":
    main()
