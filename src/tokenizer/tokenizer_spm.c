/* tokenizer_spm.c - SentencePiece-style BPE (Llama 2, TinyLlama), matching
 * llama.cpp's llm_tokenizer_spm: spaces become U+2581 "▁" (and one is
 * prepended where asked), the text is cut into UTF-8 characters, and the
 * adjacent pair whose concatenation is the highest-scoring vocab entry is
 * merged until none is left. Characters that are no token fall back to
 * their bytes' <0xNN> tokens. */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "tokenizer/tokenizer_internal.h"

struct spm_sym {
    int32_t prev, next;
    uint32_t start, n; /* bytes of the escaped text */
};

struct spm_bigram {
    int32_t left, right;
    float score;
    uint32_t size;
};

/* Max-heap order: highest score first, then leftmost (llama.cpp's comparator). */
static bool bigram_before(const struct spm_bigram *a, const struct spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

struct spm_ctx {
    const struct ac_tokenizer *t;
    const char *text;
    struct spm_sym *sym;
    struct spm_bigram *heap;
    size_t n_heap;
};

static void heap_push(struct spm_ctx *c, struct spm_bigram b) {
    size_t i = c->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = b;
}

static struct spm_bigram heap_pop(struct spm_ctx *c) {
    struct spm_bigram top = c->heap[0], last = c->heap[--c->n_heap];
    size_t i = 0, n = c->n_heap;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const struct spm_bigram *best = &last;
        if (l < n && bigram_before(&c->heap[l], best)) m = l, best = &c->heap[l];
        if (l + 1 < n && bigram_before(&c->heap[l + 1], best)) m = l + 1;
        if (m == i) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n > 0) c->heap[i] = last;
    return top;
}

static void try_add_bigram(struct spm_ctx *c, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const struct spm_sym *l = &c->sym[left], *r = &c->sym[right];
    int32_t id = tok_vocab_find(c->t, c->text + l->start, l->n + r->n);
    if (id < 0) return;
    heap_push(c, (struct spm_bigram){left, right, c->t->tokens[id].score, l->n + r->n});
}

int tok_spm_encode(const struct ac_tokenizer *t, const char *s, size_t n, bool space_prefix,
                   struct tok_scratch *sc, struct tok_out *out, char *err) {
    static const char SPACE[] = "\xe2\x96\x81"; /* U+2581 */
    if (n > (SIZE_MAX - 8) / 3 || n > UINT32_MAX / 4) return ac_errf(err, "text too long");
    const size_t cap = 3 * (n + 1);
    if (tok_grow((void **)&sc->buf, &sc->buf_cap, cap, 1) != 0) return ac_errf(err, "out of memory");
    size_t m = 0;
    if (space_prefix) {
        memcpy(sc->buf, SPACE, 3);
        m = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(sc->buf + m, SPACE, 3);
            m += 3;
        } else {
            sc->buf[m++] = s[i];
        }
    }
    if (m == 0) return 0;
    if (tok_grow(&sc->sym, &sc->sym_cap, m, sizeof(struct spm_sym)) != 0 ||
        tok_grow(&sc->heap, &sc->heap_cap, 3 * m + 1, sizeof(struct spm_bigram)) != 0)
        return ac_errf(err, "out of memory");

    struct spm_ctx c = {t, sc->buf, sc->sym, sc->heap, 0};
    int32_t n_sym = 0;
    for (size_t off = 0; off < m; n_sym++) {
        size_t len = tok_utf8_len((uint8_t)c.text[off]);
        if (len > m - off) len = m - off;
        c.sym[n_sym] = (struct spm_sym){n_sym - 1, off + len == m ? -1 : n_sym + 1, (uint32_t)off, (uint32_t)len};
        off += len;
    }
    for (int32_t i = 1; i < n_sym; i++) try_add_bigram(&c, i - 1, i);
    while (c.n_heap > 0) {
        struct spm_bigram b = heap_pop(&c);
        struct spm_sym *l = &c.sym[b.left], *r = &c.sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* outdated */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) c.sym[r->next].prev = b.left;
        try_add_bigram(&c, l->prev, b.left);
        try_add_bigram(&c, b.left, l->next);
    }
    /* Every merged symbol is a vocab entry (merges only form entries), so
     * llama.cpp's re-segmentation reduces to: the token, else its bytes. */
    for (int32_t i = 0; i != -1; i = c.sym[i].next) {
        const struct spm_sym *sy = &c.sym[i];
        int32_t id = tok_vocab_find(t, c.text + sy->start, sy->n);
        if (id >= 0) {
            if (tok_out_push(out, id, err) != 0) return -1;
            continue;
        }
        for (uint32_t j = 0; j < sy->n; j++) {
            uint8_t byte = (uint8_t)c.text[sy->start + j];
            if (t->byte_token[byte] < 0) return ac_errf(err, "no byte token <0x%02X> in the vocabulary", byte);
            if (tok_out_push(out, t->byte_token[byte], err) != 0) return -1;
        }
    }
    return 0;
}
