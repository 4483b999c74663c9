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

/* SentencePiece: the merged piece's score, highest first; a pair merges
 * only into a vocabulary entry. */
static bool spm_order(const struct ac_tokenizer *t, const char *text, const struct tok_sym *l,
                      const struct tok_sym *r, float *order) {
    const int32_t id = tok_vocab_find(t, text + l->start, l->n + r->n);
    if (id < 0) return false;
    *order = -t->tokens[id].score;
    return true;
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
    if (tok_merge(t, sc->buf, m, spm_order, sc) < 0) return ac_errf(err, "out of memory");
    const struct tok_sym *sym = sc->sym;
    const char *text = sc->buf;
    /* Every merged symbol is a vocab entry (merges only form entries), so
     * llama.cpp's re-segmentation reduces to: the token, else its bytes. */
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        const struct tok_sym *sy = &sym[i];
        int32_t id = tok_vocab_find(t, text + sy->start, sy->n);
        if (id >= 0) {
            if (tok_out_push(out, id, err) != 0) return -1;
            continue;
        }
        for (uint32_t j = 0; j < sy->n; j++) {
            uint8_t byte = (uint8_t)text[sy->start + j];
            if (t->byte_token[byte] < 0) return ac_errf(err, "no byte token <0x%02X> in the vocabulary", byte);
            if (tok_out_push(out, t->byte_token[byte], err) != 0) return -1;
        }
    }
    return 0;
}
