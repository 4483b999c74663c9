/* tokenizer_bpe.c - byte-level BPE (GPT-2 style: SmolLM2, Llama 3, Qwen 2),
 * matching llama.cpp's llm_tokenizer_bpe:
 *
 *   text --pre-tokenizer regexes--> pieces --GPT-2 byte map--> words
 *        --merges by rank--> symbols --vocab--> ids
 *
 * The pre-tokenizer applies each regex of the list in turn to every piece
 * the previous one produced; a piece is its matches plus the gaps between
 * them. llama.cpp decodes the text to codepoints first (an invalid UTF-8
 * byte becomes U+FFFD) and classifies them with its own Unicode tables; we
 * run PCRE2 on a "proxy" copy of the text in which the few codepoints whose
 * class differs between those tables and PCRE2's are replaced by a
 * codepoint of the right class, then map the pieces back. */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "tokenizer/tokenizer_internal.h"

/* ---------------------------------------------------------------- UTF-8 */

size_t tok_utf8_len(uint8_t lead) {
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[lead >> 4];
}

static bool cont(const char *s, size_t n, size_t i) {
    return i < n && ((uint8_t)s[i] & 0xC0) == 0x80;
}

uint32_t tok_utf8_next(const char *s, size_t n, size_t *i) {
    const uint8_t b = (uint8_t)s[*i];
    uint32_t cp;
    if (!(b & 0x80)) {
        *i += 1;
        return b;
    }
    if (!(b & 0x40)) goto bad;
    if (!(b & 0x20)) {
        if (!cont(s, n, *i + 1)) goto bad;
        cp = ((uint32_t)(b & 0x1F) << 6) | ((uint8_t)s[*i + 1] & 0x3F);
        *i += 2;
        return cp;
    }
    if (!(b & 0x10)) {
        if (!cont(s, n, *i + 1) || !cont(s, n, *i + 2)) goto bad;
        cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)((uint8_t)s[*i + 1] & 0x3F) << 6) |
             ((uint8_t)s[*i + 2] & 0x3F);
        *i += 3;
        return cp;
    }
    if (!(b & 0x08)) {
        if (!cont(s, n, *i + 1) || !cont(s, n, *i + 2) || !cont(s, n, *i + 3)) goto bad;
        cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)((uint8_t)s[*i + 1] & 0x3F) << 12) |
             ((uint32_t)((uint8_t)s[*i + 2] & 0x3F) << 6) | ((uint8_t)s[*i + 3] & 0x3F);
        *i += 4;
        /* llama.cpp cannot re-encode these either (it throws); U+FFFD here */
        return cp > 0x10FFFF ? 0xFFFD : cp;
    }
bad:
    *i += 1;
    return 0xFFFD;
}

size_t tok_utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------------- Unicode classes */

/* Codepoints that llama.cpp's tables (Unicode 15.1) call letter, number or
 * punctuation but that PCRE2 10.42 (Unicode 14) leaves unassigned. Found by
 * comparing llama.cpp's unicode-data.cpp with PCRE2's \p{L}, \p{N}, \p{P}
 * and \s over all codepoints; these and U+180E are the only differences. */
static const struct {
    uint32_t first, last, proxy;
} CLASS_FIXES[] = {
    {0x1123F, 0x11240, 0xAA}, {0x11B00, 0x11B09, 0xA1}, {0x11F02, 0x11F02, 0xAA},
    {0x11F04, 0x11F10, 0xAA}, {0x11F12, 0x11F33, 0xAA}, {0x11F43, 0x11F4F, 0xA1},
    {0x11F50, 0x11F59, 0xB2}, {0x1342F, 0x1342F, 0xAA}, {0x13441, 0x13446, 0xAA},
    {0x1B132, 0x1B132, 0xAA}, {0x1B155, 0x1B155, 0xAA}, {0x1D2C0, 0x1D2D3, 0xB2},
    {0x1DF25, 0x1DF2A, 0xAA}, {0x1E030, 0x1E06D, 0xAA}, {0x1E4D0, 0x1E4EB, 0xAA},
    {0x1E4F0, 0x1E4F9, 0xB2}, {0x2B739, 0x2B739, 0xAA}, {0x2EBF0, 0x2EE5D, 0xAA},
    {0x31350, 0x323AF, 0xAA},
}; /* proxies: U+00AA (letter), U+00B2 (number), U+00A1 (punctuation) */

/* The codepoint PCRE2 sees in place of cp: one it classifies as llama.cpp
 * classifies cp, for every class the supported regexes distinguish. */
static uint32_t proxy_cp(uint32_t cp) {
    if (cp < 0x180E) return cp;
    if (cp == 0x180E) return 0x200B; /* not whitespace for llama.cpp (format char) */
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0xFFFD; /* PCRE2 rejects surrogates */
    if (cp < CLASS_FIXES[0].first) return cp;
    for (size_t i = 0; i < sizeof CLASS_FIXES / sizeof CLASS_FIXES[0]; i++)
        if (cp >= CLASS_FIXES[i].first && cp <= CLASS_FIXES[i].last) return CLASS_FIXES[i].proxy;
    return cp;
}

static size_t utf8_size(uint32_t cp) {
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* ------------------------------------------------------ pre-tokenizers */

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"   \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"        \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* Regex lists from llama.cpp's llm_tokenizer_bpe, by tokenizer.ggml.pre.
 * ignore_merges and add_bos are llama.cpp's per-type defaults. */
static const struct pre_type {
    const char *names;
    const char *regex[TOK_MAX_REGEX];
    bool ignore_merges;
    bool add_bos;
} PRE_TYPES[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false},
    {"gpt-2 phi-2 gigachat mpt olmo jais trillion", {RE_GPT2}, false, false},
    {"smollm starcoder refact command-r codeshell exaone minerva", {"\\p{N}", RE_GPT2}, false, false},
    {"llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2", {RE_LLAMA3}, true, true},
    {"dbrx smaug-bpe", {RE_LLAMA3}, false, false},
    {"qwen2 deepseek-r1-qwen stablelm2", {RE_QWEN2}, false, false},
};

/* True when name[0..len) is one of the space-separated words of names. */
static bool name_in(const char *names, const char *name, size_t len) {
    const char *p = names;
    while (*p) {
        size_t w = strcspn(p, " ");
        if (w == len && memcmp(p, name, len) == 0) return true;
        p += w;
        while (*p == ' ') p++;
    }
    return false;
}

/* ------------------------------------------------------ GPT-2 byte map */

/* Bytes that stand for themselves: '!'..'~', 0xA1..0xAC, 0xAE..0xFF; the
 * others map, in byte order, to U+0100, U+0101, ... */
static bool byte_is_printable(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static uint32_t byte_to_cp(int b) {
    if (byte_is_printable(b)) return (uint32_t)b;
    uint32_t n = 0;
    for (int c = 0; c < b; c++)
        if (!byte_is_printable(c)) n++;
    return 256 + n;
}

/* ------------------------------------------------------------- merges */

static uint32_t hash_pair(const char *a, size_t na, const char *b, size_t nb) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < na; i++) h = (h ^ (uint8_t)a[i]) * 16777619u;
    h = (h ^ 0xFFu) * 16777619u; /* a separator: ("ab", "c") and ("a", "bc") differ */
    for (size_t i = 0; i < nb; i++) h = (h ^ (uint8_t)b[i]) * 16777619u;
    return h ^ (h >> 15);
}

int tok_bpe_merge_rank(const struct ac_tokenizer *t, const char *a, size_t na, const char *b, size_t nb) {
    uint32_t i = hash_pair(a, na, b, nb) & t->merge_map.mask;
    for (;;) {
        uint32_t v = t->merge_map.slots[i];
        if (v == 0) return -1;
        const struct tok_merge *m = &t->merges[v - 1];
        const char *mt = t->merge_text + m->off;
        if (m->first_len == na && m->second_len == nb && memcmp(mt, a, na) == 0 &&
            memcmp(mt + na + 1, b, nb) == 0)
            return (int)(v - 1);
        i = (i + 1) & t->merge_map.mask;
    }
}

static void merge_insert(struct ac_tokenizer *t, uint32_t rank) {
    const struct tok_merge *m = &t->merges[rank];
    const char *a = t->merge_text + m->off, *b = a + m->first_len + 1;
    if (tok_bpe_merge_rank(t, a, m->first_len, b, m->second_len) >= 0) return; /* first wins */
    uint32_t i = hash_pair(a, m->first_len, b, m->second_len) & t->merge_map.mask;
    while (t->merge_map.slots[i] != 0) i = (i + 1) & t->merge_map.mask;
    t->merge_map.slots[i] = rank + 1;
}

/* Copies the merge rules ("first second", split at the first space after
 * the first byte, as llama.cpp does) into t and indexes them. */
static int load_merges(struct ac_tokenizer *t, const struct gguf_str *strs, uint64_t n, char *err) {
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (strs[i].len > UINT32_MAX / 2 || total > SIZE_MAX / 2) return ac_errf(err, "merges too large");
        total += (size_t)strs[i].len + 1;
    }
    if (total > UINT32_MAX) return ac_errf(err, "merges too large");
    t->merges = calloc(n ? n : 1, sizeof *t->merges);
    t->merge_text = malloc(total ? total : 1);
    if (!t->merges || !t->merge_text) return ac_errf(err, "out of memory");
    t->n_merges = (uint32_t)n;
    uint32_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *s = strs[i].ptr;
        size_t len = (size_t)strs[i].len;
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        struct tok_merge *m = &t->merges[i];
        m->off = off;
        if (sp) {
            m->first_len = (uint32_t)(sp - s);
            m->second_len = (uint32_t)(len - m->first_len - 1);
            memcpy(t->merge_text + off, s, len);
        } else { /* llama.cpp maps it to ("", ""): a pair no lookup asks for */
            m->first_len = m->second_len = 0;
            t->merge_text[off] = ' ';
            len = 1;
        }
        off += (uint32_t)len;
    }
    uint32_t cap = 16;
    while (cap < 2 * n + 2) cap <<= 1;
    t->merge_map.slots = calloc(cap, sizeof *t->merge_map.slots);
    if (!t->merge_map.slots) return ac_errf(err, "out of memory");
    t->merge_map.mask = cap - 1;
    for (uint32_t i = 0; i < t->n_merges; i++)
        if (t->merges[i].first_len && t->merges[i].second_len) merge_insert(t, i);
    return 0;
}

/* --------------------------------------------------------------- init */

int tok_bpe_init(struct ac_tokenizer *t, const char *pre, size_t pre_len, const struct gguf_str *merges,
                 uint64_t n_merges, char *err) {
    const struct pre_type *pt = NULL;
    if (!pre) {
        pt = &PRE_TYPES[0]; /* llama.cpp: missing pre-tokenizer -> "default" */
    } else {
        for (size_t i = 0; i < sizeof PRE_TYPES / sizeof PRE_TYPES[0] && !pt; i++)
            if (name_in(PRE_TYPES[i].names, pre, pre_len)) pt = &PRE_TYPES[i];
        if (!pt)
            return ac_errf(err, "unsupported pre-tokenizer '%.*s' (tokenizer.ggml.pre)",
                           (int)(pre_len > 64 ? 64 : pre_len), pre);
    }
    t->ignore_merges = pt->ignore_merges;
    t->add_bos = pt->add_bos;
    for (int i = 0; i < TOK_MAX_REGEX && pt->regex[i]; i++) {
        int code;
        PCRE2_SIZE at;
        t->regex[i] = pcre2_compile((PCRE2_SPTR)pt->regex[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                    &code, &at, NULL);
        if (!t->regex[i]) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(code, msg, sizeof msg);
            return ac_errf(err, "pre-tokenizer regex %d: %s at %zu", i, (const char *)msg, (size_t)at);
        }
        t->n_regex = i + 1;
        (void)pcre2_jit_compile(t->regex[i], PCRE2_JIT_COMPLETE); /* interpreter if no JIT */
    }
    if (load_merges(t, merges, n_merges, err) != 0) return -1;
    for (size_t i = 0; i < sizeof t->byte_dec / sizeof t->byte_dec[0]; i++) t->byte_dec[i] = -1;
    for (int b = 0; b < 256; b++) {
        char u[4];
        uint32_t cp = byte_to_cp(b);
        size_t n = tok_utf8_put(u, cp);
        memcpy(t->byte_enc[b], u, n);
        t->byte_enc_len[b] = (uint8_t)n;
        t->byte_dec[cp] = (int16_t)b;
    }
    return 0;
}

void tok_bpe_free(struct ac_tokenizer *t) {
    for (int i = 0; i < t->n_regex; i++) pcre2_code_free(t->regex[i]);
    t->n_regex = 0;
    free(t->merges);
    free(t->merge_text);
    free(t->merge_map.slots);
}

/* -------------------------------------------------------------- merging */

/* Byte-level BPE: the merge's rank (a rank fits a float exactly). */
static bool bpe_order(const struct ac_tokenizer *t, const char *word, const struct tok_sym *l, const struct tok_sym *r,
                      float *order) {
    const int rank = tok_bpe_merge_rank(t, word + l->start, l->n, word + r->start, r->n);
    *order = (float)rank;
    return rank >= 0;
}

/* Merges one byte-encoded word and emits its ids. */
static int bpe_word(const struct ac_tokenizer *t, const char *w, size_t n, struct tok_scratch *sc,
                    struct tok_out *out, char *err) {
    if (t->ignore_merges) {
        int32_t id = tok_vocab_find(t, w, n);
        if (id >= 0) return tok_out_push(out, id, err);
    }
    const int32_t n_sym = tok_merge(t, w, n, bpe_order, sc);
    if (n_sym < 0) return ac_errf(err, "out of memory");
    const struct tok_sym *sym = sc->sym;
    for (int32_t i = 0; i < n_sym; i++) {
        const struct tok_sym *s = &sym[i];
        if (s->n == 0) continue;
        int32_t id = tok_vocab_find(t, w + s->start, s->n);
        if (id >= 0) {
            if (tok_out_push(out, id, err) != 0) return -1;
            continue;
        }
        /* llama.cpp: each byte of the symbol as a one-byte token, if any */
        for (uint32_t j = 0; j < s->n; j++) {
            id = tok_vocab_find(t, w + s->start + j, 1);
            if (id >= 0 && tok_out_push(out, id, err) != 0) return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ encoding */

/* Splits the proxy text p[0..np) with each regex in turn. Returns the
 * piece boundaries (0 first, np last; *n_cuts of them), in one half of
 * sc->cuts, or NULL on error. */
static const uint32_t *pre_tokenize(const struct ac_tokenizer *t, const char *p, size_t np,
                                    struct tok_scratch *sc, size_t half, size_t *n_cuts, char *err) {
    uint32_t *cuts = sc->cuts, *next = sc->cuts + half;
    size_t nc = 0;
    cuts[nc++] = 0;
    cuts[nc++] = (uint32_t)np;
    for (int r = 0; r < t->n_regex; r++) {
        size_t nn = 0;
        next[nn++] = 0;
        for (size_t k = 0; k + 1 < nc; k++) {
            const size_t ps = cuts[k], pe = cuts[k + 1];
            size_t pos = ps, from = ps; /* end of the last piece; where to search */
            while (from < pe) {
                int rc = pcre2_match(t->regex[r], (PCRE2_SPTR)(p + ps), pe - ps, from - ps,
                                     PCRE2_NO_UTF_CHECK, sc->md, NULL);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    PCRE2_UCHAR msg[120];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    ac_errf(err, "pre-tokenizer: %s", (const char *)msg);
                    return NULL;
                }
                const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
                const size_t ms = ps + ov[0], me = ps + ov[1];
                if (me == ms) { /* no supported regex matches empty; never loop */
                    from = ms + tok_utf8_len((uint8_t)p[ms]);
                    continue;
                }
                if (ms > pos) next[nn++] = (uint32_t)ms; /* the gap before is a piece too */
                next[nn++] = (uint32_t)me;
                pos = from = me;
            }
            if (pe > pos) next[nn++] = (uint32_t)pe;
        }
        uint32_t *tmp = cuts;
        cuts = next;
        next = tmp;
        nc = nn;
    }
    *n_cuts = nc;
    return cuts;
}

int tok_bpe_encode(const struct ac_tokenizer *t, const char *s, size_t n, struct tok_scratch *sc,
                   struct tok_out *out, char *err) {
    if (n == 0) return 0;
    if (n > (SIZE_MAX - 16) / 8 || n > UINT32_MAX / 4) return ac_errf(err, "text too long");
    /* proxy text: at most 3 bytes per input byte (an invalid byte -> U+FFFD) */
    if (tok_grow((void **)&sc->buf, &sc->buf_cap, 3 * n + 4, 1) != 0 ||
        tok_grow((void **)&sc->word, &sc->word_cap, 6 * n + 8, 1) != 0 ||
        tok_grow((void **)&sc->cuts, &sc->cuts_cap, 2 * (n + 2), sizeof(uint32_t)) != 0)
        return ac_errf(err, "out of memory");
    if (!sc->md && !(sc->md = pcre2_match_data_create(1, NULL))) return ac_errf(err, "out of memory");

    size_t np = 0;
    for (size_t i = 0; i < n;) np += tok_utf8_put(sc->buf + np, proxy_cp(tok_utf8_next(s, n, &i)));

    size_t nc;
    const uint32_t *cuts = pre_tokenize(t, sc->buf, np, sc, n + 2, &nc, err);
    if (!cuts) return -1;

    /* walk the pieces, re-decoding the original text in step with the proxy */
    size_t si = 0, pi = 0;
    for (size_t k = 0; k + 1 < nc; k++) {
        size_t wn = 0;
        while (pi < cuts[k + 1]) {
            uint32_t cp = tok_utf8_next(s, n, &si);
            pi += utf8_size(proxy_cp(cp));
            char u[4];
            size_t un = tok_utf8_put(u, cp);
            for (size_t j = 0; j < un; j++) {
                uint8_t b = (uint8_t)u[j];
                memcpy(sc->word + wn, t->byte_enc[b], t->byte_enc_len[b]);
                wn += t->byte_enc_len[b];
            }
        }
        if (wn > 0 && bpe_word(t, sc->word, wn, sc, out, err) != 0) return -1;
    }
    return 0;
}
