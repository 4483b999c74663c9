/* tokenizer.c - loading a tokenizer from GGUF metadata (tokenizer.ggml.*),
 * special tokens, end-of-generation set, decoding and the ChatML template.
 * The two encoders live in tokenizer_bpe.c and tokenizer_spm.c. Behaviour
 * follows llama.cpp's llama_vocab (load, tokenize, token_to_piece). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer_internal.h"

#define MAX_VOCAB (1 << 24)
#define MAX_MERGES (1 << 24)

/* ------------------------------------------------------------- helpers */

/* ---------------------------------------------------------- merge engine */

struct tok_bigram {
    int32_t left, right;
    float order;
    uint32_t size; /* bytes of the merged pair, to spot outdated entries */
};

static bool bigram_before(const struct tok_bigram *a, const struct tok_bigram *b) {
    return a->order < b->order || (a->order == b->order && a->left < b->left);
}

struct merge_heap {
    struct tok_bigram *v;
    size_t n;
};

static void heap_push(struct merge_heap *h, struct tok_bigram b) {
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
}

static struct tok_bigram heap_pop(struct merge_heap *h) {
    struct tok_bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const struct tok_bigram *best = &last;
        if (l < n && bigram_before(&h->v[l], best)) m = l, best = &h->v[l];
        if (l + 1 < n && bigram_before(&h->v[l + 1], best)) m = l + 1;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (n > 0) h->v[i] = last;
    return top;
}

static void add_candidate(const struct ac_tokenizer *t, const char *text, const struct tok_sym *sym,
                          struct merge_heap *h, tok_merge_order_fn order, int32_t left, int32_t right) {
    float o;
    if (left < 0 || right < 0 || !order(t, text, &sym[left], &sym[right], &o)) return;
    heap_push(h, (struct tok_bigram){left, right, o, sym[left].n + sym[right].n});
}

int32_t tok_merge(const struct ac_tokenizer *t, const char *text, size_t n, tok_merge_order_fn order,
                  struct tok_scratch *sc) {
    /* n symbols at most; each merge adds at most two candidates to n - 1 */
    if (tok_grow(&sc->sym, &sc->sym_cap, n, sizeof(struct tok_sym)) != 0 ||
        tok_grow(&sc->heap, &sc->heap_cap, 3 * n + 1, sizeof(struct tok_bigram)) != 0)
        return -1;
    struct tok_sym *sym = sc->sym;
    struct merge_heap h = {sc->heap, 0};
    int32_t n_sym = 0;
    for (size_t off = 0; off < n; n_sym++) {
        size_t len = tok_utf8_len((uint8_t)text[off]);
        if (len > n - off) len = n - off;
        sym[n_sym] = (struct tok_sym){n_sym - 1, off + len == n ? -1 : n_sym + 1, (uint32_t)off, (uint32_t)len};
        off += len;
    }
    for (int32_t i = 1; i < n_sym; i++) add_candidate(t, text, sym, &h, order, i - 1, i);
    while (h.n > 0) {
        const struct tok_bigram b = heap_pop(&h);
        struct tok_sym *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* outdated */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        add_candidate(t, text, sym, &h, order, l->prev, b.left);
        add_candidate(t, text, sym, &h, order, b.left, l->next);
    }
    return n_sym;
}

int tok_grow(void **p, size_t *cap, size_t n, size_t elt) {
    if (n <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < n) {
        if (nc > SIZE_MAX / 2) return -1;
        nc *= 2;
    }
    if (nc > SIZE_MAX / elt) return -1;
    void *q = realloc(*p, nc * elt);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

void tok_scratch_free(struct tok_scratch *s) {
    free(s->buf);
    free(s->word);
    free(s->cuts);
    free(s->sym);
    free(s->heap);
    pcre2_match_data_free(s->md);
    memset(s, 0, sizeof *s);
}

int tok_out_push(struct tok_out *o, int32_t id, char *err) {
    if (o->n == INT_MAX) return ac_errf(err, "too many tokens");
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
    return 0;
}

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

int32_t tok_vocab_find(const struct ac_tokenizer *t, const char *s, size_t n) {
    uint32_t i = hash_bytes(s, n) & t->vocab.mask;
    for (;;) {
        uint32_t v = t->vocab.slots[i];
        if (v == 0) return -1;
        const struct tok_token *tk = &t->tokens[v - 1];
        if (tk->len == n && memcmp(t->text + tk->off, s, n) == 0) return (int32_t)(v - 1);
        i = (i + 1) & t->vocab.mask;
    }
}

/* Maps id's text to id; a later duplicate replaces an earlier one. */
static void vocab_insert(struct ac_tokenizer *t, int32_t id) {
    const struct tok_token *tk = &t->tokens[id];
    uint32_t i = hash_bytes(t->text + tk->off, tk->len) & t->vocab.mask;
    for (;;) {
        uint32_t v = t->vocab.slots[i];
        if (v == 0 || (t->tokens[v - 1].len == tk->len &&
                       memcmp(t->text + t->tokens[v - 1].off, t->text + tk->off, tk->len) == 0)) {
            t->vocab.slots[i] = (uint32_t)id + 1;
            return;
        }
        i = (i + 1) & t->vocab.mask;
    }
}

/* An optional bool key: absent leaves *v alone, a wrong type is an error. */
static int opt_bool(const struct gguf_file *f, const char *key, bool *v, char *err) {
    if (!gguf_find_kv(f, key)) return 0;
    return gguf_get_bool(f, key, v, err);
}

/* An optional token id key: absent or out of the vocabulary leaves *id
 * alone (llama.cpp keeps its default then), a wrong type is an error. */
static int opt_id(const struct gguf_file *f, const char *key, int32_t n_vocab, int32_t *id, char *err) {
    if (!gguf_find_kv(f, key)) return 0;
    int64_t v;
    if (gguf_get_i64(f, key, &v, err) != 0) return -1;
    if (v >= 0 && v < n_vocab) *id = (int32_t)v;
    return 0;
}

/* The lowest id among the tokens named in names (NULL-terminated), or -1. */
static int32_t find_any(const struct ac_tokenizer *t, const char *const *names) {
    int32_t best = -1;
    for (; *names; names++) {
        int32_t id = tok_vocab_find(t, *names, strlen(*names));
        if (id >= 0 && (best < 0 || id < best)) best = id;
    }
    return best;
}

/* ------------------------------------------------------------- loading */

/* Token texts llama.cpp recognises (llama_vocab::impl::load). Where it
 * takes "the first one found" in hash order, we take the lowest id. */
static const char *const EOT_NAMES[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
    "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>", NULL};
static const char *const EOM_NAMES[] = {"<|eom_id|>", NULL};
static const char *const FIM_PRE_NAMES[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL};
static const char *const FIM_SUF_NAMES[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>",
    "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL};
static const char *const FIM_MID_NAMES[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL};
static const char *const FIM_PAD_NAMES[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
static const char *const FIM_REP_NAMES[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>",
                                            NULL};
static const char *const FIM_SEP_NAMES[] = {"<|file_sep|>", NULL};
static const char *const EOG_NAMES[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~[", NULL};

static void force_control(struct ac_tokenizer *t, int32_t id) {
    if (id >= 0) t->tokens[id].attr |= TOK_ATTR_CONTROL;
}

/* id from its key, else auto-detected by text (then made a control token). */
static int special_id(struct ac_tokenizer *t, const struct gguf_file *f, const char *key, const char *const *names,
                      int32_t *id, char *err) {
    if (opt_id(f, key, t->n_vocab, id, err) != 0) return -1;
    if (*id < 0) {
        *id = find_any(t, names);
        force_control(t, *id);
    }
    return 0;
}

static uint8_t attr_from_type(int64_t type) {
    switch (type) {
    case 1: return TOK_ATTR_NORMAL;
    case 2: return TOK_ATTR_UNKNOWN;
    case 3: return TOK_ATTR_CONTROL;
    case 4: return TOK_ATTR_USER_DEFINED;
    case 5: return TOK_ATTR_UNUSED;
    case 6: return TOK_ATTR_BYTE;
    default: return TOK_ATTR_UNDEFINED;
    }
}

struct special_key {
    uint32_t len;
    int32_t id;
};

/* Longest text first; equal lengths by id (llama.cpp's std::sort leaves
 * their order unspecified). */
static int cmp_special(const void *a, const void *b) {
    const struct special_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Reads the token list, scores and types. */
static int load_vocab(struct ac_tokenizer *t, const struct gguf_file *f, char *err) {
    const struct gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!kv) return ac_errf(err, "no vocabulary: tokenizer.ggml.tokens is missing");
    if (kv->type != GGUF_VT_ARRAY || kv->arr_type != GGUF_VT_STRING)
        return ac_errf(err, "tokenizer.ggml.tokens is not a string array");
    if (kv->arr_n == 0 || kv->arr_n > MAX_VOCAB)
        return ac_errf(err, "tokenizer.ggml.tokens has %llu entries (1..%d allowed)", (unsigned long long)kv->arr_n,
                       MAX_VOCAB);
    const int32_t n = (int32_t)kv->arr_n;
    struct gguf_str *strs = malloc((size_t)n * sizeof *strs);
    if (!strs) return ac_errf(err, "out of memory");
    if (gguf_get_str_array(kv, strs, err) != 0) {
        free(strs);
        return -1;
    }
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) total += strs[i].len ? (size_t)strs[i].len : 24;
    if (total > UINT32_MAX) {
        free(strs);
        return ac_errf(err, "tokenizer.ggml.tokens too large");
    }
    t->n_vocab = n;
    t->tokens = calloc((size_t)n, sizeof *t->tokens);
    t->text = malloc(total ? total : 1);
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n) cap <<= 1;
    t->vocab.slots = calloc(cap, sizeof *t->vocab.slots);
    t->vocab.mask = cap - 1;
    if (!t->tokens || !t->text || !t->vocab.slots) {
        free(strs);
        return ac_errf(err, "out of memory");
    }
    uint32_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        t->tokens[i].off = off;
        if (strs[i].len == 0) { /* llama.cpp renames empty tokens */
            off += (uint32_t)snprintf(t->text + off, 24, "[EMPTY_%d]", (int)i);
        } else {
            memcpy(t->text + off, strs[i].ptr, (size_t)strs[i].len);
            off += (uint32_t)strs[i].len;
        }
        t->tokens[i].len = off - t->tokens[i].off;
        t->tokens[i].attr = TOK_ATTR_NORMAL;
    }
    free(strs);

    kv = gguf_find_kv(f, "tokenizer.ggml.scores");
    if (kv) {
        if (kv->type != GGUF_VT_ARRAY || (kv->arr_type != GGUF_VT_F32 && kv->arr_type != GGUF_VT_I32))
            return ac_errf(err, "tokenizer.ggml.scores is not an f32 or i32 array");
        if (kv->arr_n < (uint64_t)n)
            return ac_errf(err, "tokenizer.ggml.scores has %llu entries for %d tokens", (unsigned long long)kv->arr_n,
                           (int)n);
        for (int32_t i = 0; i < n; i++) t->tokens[i].score = (float)gguf_arr_f64(kv, (uint64_t)i);
    }
    kv = gguf_find_kv(f, "tokenizer.ggml.token_type");
    if (kv) {
        if (kv->type != GGUF_VT_ARRAY || kv->arr_type != GGUF_VT_I32)
            return ac_errf(err, "tokenizer.ggml.token_type is not an i32 array");
        if (kv->arr_n < (uint64_t)n)
            return ac_errf(err, "tokenizer.ggml.token_type has %llu entries for %d tokens",
                           (unsigned long long)kv->arr_n, (int)n);
        for (int32_t i = 0; i < n; i++) t->tokens[i].attr = attr_from_type(gguf_arr_i64(kv, (uint64_t)i));
    }
    for (int32_t i = 0; i < n; i++) vocab_insert(t, i);
    return 0;
}

/* Special ids, add_bos/add_eos, the end-of-generation set and the list of
 * tokens matched in raw text, as llama.cpp sets them up. */
static int load_specials(struct ac_tokenizer *t, const struct gguf_file *f, char *err) {
    const int32_t n = t->n_vocab;
    int32_t *defaults[] = {&t->bos, &t->eos, &t->unk};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (*defaults[i] >= n) *defaults[i] = -1;
    int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
    if (opt_id(f, "tokenizer.ggml.bos_token_id", n, &t->bos, err) != 0 ||
        opt_id(f, "tokenizer.ggml.eos_token_id", n, &t->eos, err) != 0 ||
        opt_id(f, "tokenizer.ggml.unknown_token_id", n, &t->unk, err) != 0 ||
        opt_id(f, "tokenizer.ggml.prefix_token_id", n, &fim_pre, err) != 0 ||
        opt_id(f, "tokenizer.ggml.suffix_token_id", n, &fim_suf, err) != 0 ||
        opt_id(f, "tokenizer.ggml.middle_token_id", n, &fim_mid, err) != 0)
        return -1;
    if (opt_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err) != 0 ||
        opt_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos, err) != 0)
        return -1;
    if (special_id(t, f, "tokenizer.ggml.eot_token_id", EOT_NAMES, &t->eot, err) != 0 ||
        special_id(t, f, "tokenizer.ggml.eom_token_id", EOM_NAMES, &t->eom, err) != 0 ||
        special_id(t, f, "tokenizer.ggml.fim_pre_token_id", FIM_PRE_NAMES, &fim_pre, err) != 0 ||
        special_id(t, f, "tokenizer.ggml.fim_suf_token_id", FIM_SUF_NAMES, &fim_suf, err) != 0 ||
        special_id(t, f, "tokenizer.ggml.fim_mid_token_id", FIM_MID_NAMES, &fim_mid, err) != 0 ||
        special_id(t, f, "tokenizer.ggml.fim_pad_token_id", FIM_PAD_NAMES, &fim_pad, err) != 0 ||
        special_id(t, f, "tokenizer.ggml.fim_rep_token_id", FIM_REP_NAMES, &fim_rep, err) != 0 ||
        special_id(t, f, "tokenizer.ggml.fim_sep_token_id", FIM_SEP_NAMES, &fim_sep, err) != 0)
        return -1;

    t->eog = calloc((size_t)n, 1);
    if (!t->eog) return ac_errf(err, "out of memory");
    for (const char *const *name = EOG_NAMES; *name; name++) {
        int32_t id = tok_vocab_find(t, *name, strlen(*name));
        if (id >= 0) {
            t->eog[id] = 1;
            force_control(t, id);
        }
    }
    const int32_t eog_ids[] = {fim_pad, fim_rep, fim_sep, t->eos, t->eot, t->eom};
    for (size_t i = 0; i < sizeof eog_ids / sizeof eog_ids[0]; i++)
        if (eog_ids[i] >= 0) t->eog[eog_ids[i]] = 1;

    int n_special = 0;
    for (int32_t i = 0; i < n; i++)
        if (t->tokens[i].attr & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) n_special++;
    struct special_key *keys = malloc((size_t)(n_special ? n_special : 1) * sizeof *keys);
    t->special = malloc((size_t)(n_special ? n_special : 1) * sizeof *t->special);
    if (!keys || !t->special) {
        free(keys);
        return ac_errf(err, "out of memory");
    }
    for (int32_t i = 0, k = 0; i < n; i++)
        if (t->tokens[i].attr & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            keys[k++] = (struct special_key){t->tokens[i].len, i};
    qsort(keys, (size_t)n_special, sizeof *keys, cmp_special);
    for (int k = 0; k < n_special; k++) t->special[k] = keys[k].id;
    t->n_special = n_special;
    free(keys);
    return 0;
}

static int load_spm(struct ac_tokenizer *t, const struct gguf_file *f, char *err) {
    t->add_space_prefix = true;
    if (opt_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err) != 0) return -1;
    static const char HEX[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        const char name[6] = {'<', '0', 'x', HEX[b >> 4], HEX[b & 15], '>'};
        const char raw = (char)b;
        t->byte_token[b] = tok_vocab_find(t, name, sizeof name);
        if (t->byte_token[b] < 0) t->byte_token[b] = tok_vocab_find(t, &raw, 1);
    }
    return 0;
}

static int load_bpe(struct ac_tokenizer *t, const struct gguf_file *f, char *err) {
    const char *pre = NULL;
    size_t pre_len = 0;
    if (gguf_find_kv(f, "tokenizer.ggml.pre")) {
        struct gguf_str s;
        if (gguf_get_str(f, "tokenizer.ggml.pre", &s, err) != 0) return -1;
        pre = s.ptr;
        pre_len = (size_t)s.len;
    }
    const struct gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.merges");
    if (!kv) return ac_errf(err, "no BPE merges: tokenizer.ggml.merges is missing");
    if (kv->type != GGUF_VT_ARRAY || kv->arr_type != GGUF_VT_STRING)
        return ac_errf(err, "tokenizer.ggml.merges is not a string array");
    if (kv->arr_n > MAX_MERGES)
        return ac_errf(err, "tokenizer.ggml.merges has %llu entries (at most %d allowed)", (unsigned long long)kv->arr_n,
                       MAX_MERGES);
    struct gguf_str *strs = malloc((size_t)(kv->arr_n ? kv->arr_n : 1) * sizeof *strs);
    if (!strs) return ac_errf(err, "out of memory");
    int rc = gguf_get_str_array(kv, strs, err);
    if (rc == 0) rc = tok_bpe_init(t, pre, pre_len, strs, kv->arr_n, err);
    free(strs);
    return rc;
}

int ac_tokenizer_load(struct ac_tokenizer **out, const struct gguf_file *f, char *err) {
    if (!out || !f) return ac_errf(err, "tokenizer: NULL argument");
    struct ac_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return ac_errf(err, "out of memory");
    t->eot = t->eom = -1;

    struct gguf_str model;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model, err) != 0) goto fail;
    if (gguf_str_eq(model, "gpt2")) {
        t->kind = TOK_BPE;
        t->bos = t->eos = 11; /* llama.cpp's defaults for BPE */
        t->unk = -1;
    } else if (gguf_str_eq(model, "llama")) {
        t->kind = TOK_SPM;
        t->bos = 1;
        t->eos = 2;
        t->unk = 0;
        t->add_bos = true;
    } else {
        ac_errf(err, "unsupported tokenizer model '%.*s' (tokenizer.ggml.model; supported: gpt2, llama)",
                (int)(model.len > 64 ? 64 : model.len), model.ptr);
        goto fail;
    }
    if (load_vocab(t, f, err) != 0 || !t->vocab.slots) goto fail;
    if ((t->kind == TOK_BPE ? load_bpe(t, f, err) : load_spm(t, f, err)) != 0) goto fail;
    if (load_specials(t, f, err) != 0) goto fail;
    *out = t;
    return 0;
fail:
    ac_tokenizer_free(t);
    return ac_err_prefix(err, "tokenizer");
}

void ac_tokenizer_free(struct ac_tokenizer *t) {
    if (!t) return;
    tok_bpe_free(t);
    free(t->tokens);
    free(t->text);
    free(t->vocab.slots);
    free(t->special);
    free(t->eog);
    free(t);
}

/* ------------------------------------------------------------ encoding */

/* First occurrence of needle (nn > 0 bytes) in hay[0..nh), or NULL. */
static const char *find_bytes(const char *hay, size_t nh, const char *needle, size_t nn) {
    while (nh >= nn) {
        const char *p = memchr(hay, needle[0], nh - nn + 1);
        if (!p) return NULL;
        if (memcmp(p, needle, nn) == 0) return p;
        nh -= (size_t)(p - hay) + 1;
        hay = p + 1;
    }
    return NULL;
}

struct frag {
    size_t off, len; /* raw text, when id < 0 */
    int32_t id;
};

/* Cuts the raw text at the special tokens: each special token in turn
 * (longest first) is searched in the raw fragments left by the previous
 * ones (llama.cpp's tokenizer_st_partition). Control and unknown tokens
 * only count when parse_special; user-defined ones always do. */
static int partition(const struct ac_tokenizer *t, const char *text, size_t len, bool parse_special,
                     struct frag **frags, size_t *n_frags, char *err) {
    size_t n = 0, cap = 0, n2 = 0, cap2 = 0;
    struct frag *a = NULL, *b = NULL;
    if (len > 0) {
        if (tok_grow((void **)&a, &cap, 1, sizeof *a) != 0) goto oom;
        a[n++] = (struct frag){0, len, -1};
    }
    for (int s = 0; s < t->n_special && n > 0; s++) {
        const int32_t id = t->special[s];
        const struct tok_token *tk = &t->tokens[id];
        if (!parse_special && (tk->attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
        const char *st = tok_text(t, id);
        n2 = 0;
        for (size_t k = 0; k < n; k++) {
            if (a[k].id >= 0) {
                if (tok_grow((void **)&b, &cap2, n2 + 1, sizeof *b) != 0) goto oom;
                b[n2++] = a[k];
                continue;
            }
            size_t off = a[k].off, end = a[k].off + a[k].len;
            for (;;) {
                const char *hit = find_bytes(text + off, end - off, st, tk->len);
                if (tok_grow((void **)&b, &cap2, n2 + 2, sizeof *b) != 0) goto oom;
                if (!hit) {
                    if (end > off) b[n2++] = (struct frag){off, end - off, -1};
                    break;
                }
                size_t at = (size_t)(hit - text);
                if (at > off) b[n2++] = (struct frag){off, at - off, -1};
                b[n2++] = (struct frag){0, 0, id};
                off = at + tk->len;
            }
        }
        struct frag *tmp = a;
        size_t tcap = cap;
        a = b, cap = cap2, n = n2;
        b = tmp, cap2 = tcap;
    }
    free(b);
    *frags = a;
    *n_frags = n;
    return 0;
oom:
    free(a);
    free(b);
    return ac_errf(err, "out of memory");
}

int ac_tokenize(const struct ac_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                int32_t *ids, int max_ids, char *err) {
    if (!t || (!text && len > 0) || max_ids < 0 || (!ids && max_ids > 0))
        return ac_errf(err, "tokenize: invalid argument");
    struct tok_out out = {ids, max_ids, 0};
    struct tok_scratch sc = {0};
    struct frag *frags = NULL;
    size_t n_frags = 0;
    int rc = -1;
    if (partition(t, text, len, parse_special, &frags, &n_frags, err) != 0) goto done;
    if (add_special && t->add_bos) {
        if (t->bos < 0) {
            ac_errf(err, "tokenize: the model asks for a BOS token but has none");
            goto done;
        }
        if (tok_out_push(&out, t->bos, err) != 0) goto done;
    }
    bool prev_special = true; /* SentencePiece: a space before the first text */
    for (size_t k = 0; k < n_frags; k++) {
        const struct frag *fr = &frags[k];
        if (fr->id >= 0) {
            if (tok_out_push(&out, fr->id, err) != 0) goto done;
            prev_special = true;
            continue;
        }
        int r = t->kind == TOK_BPE
                    ? tok_bpe_encode(t, text + fr->off, fr->len, &sc, &out, err)
                    : tok_spm_encode(t, text + fr->off, fr->len, t->add_space_prefix && prev_special, &sc, &out, err);
        if (r != 0) goto done;
        prev_special = false;
    }
    if (add_special && t->add_eos) {
        if (t->eos < 0) {
            ac_errf(err, "tokenize: the model asks for an EOS token but has none");
            goto done;
        }
        if (tok_out_push(&out, t->eos, err) != 0) goto done;
    }
    rc = out.n;
done:
    free(frags);
    tok_scratch_free(&sc);
    return rc;
}

/* ------------------------------------------------------------ decoding */

struct piece_buf {
    char *buf;
    int cap;
    int n;
};

static void put(struct piece_buf *p, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p->n < p->cap) p->buf[p->n] = s[i];
        if (p->n < INT_MAX) p->n++;
    }
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int ac_token_to_piece(const struct ac_tokenizer *t, int32_t id, char *buf, int cap, bool render_special) {
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    struct piece_buf p = {buf, buf ? (cap > 0 ? cap : 0) : 0, 0};
    const struct tok_token *tk = &t->tokens[id];
    const char *s = tok_text(t, id);
    if (!render_special && (tk->attr & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL))) return 0;
    if (tk->attr & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED)) {
        put(&p, s, tk->len);
    } else if (tk->attr & TOK_ATTR_NORMAL) {
        for (size_t i = 0; i < tk->len;) {
            if (t->kind == TOK_SPM) {
                if (tk->len - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                    put(&p, " ", 1);
                    i += 3;
                } else {
                    put(&p, s + i++, 1);
                }
                continue;
            }
            char u[4];
            uint32_t cp = tok_utf8_next(s, tk->len, &i);
            size_t un = tok_utf8_put(u, cp);
            int b = cp < sizeof t->byte_dec / sizeof t->byte_dec[0] ? t->byte_dec[cp] : -1;
            if (b >= 0) {
                char c = (char)b;
                put(&p, &c, 1);
            } else { /* llama.cpp's marker for a char outside the byte map */
                char hex[3];
                put(&p, "[UNK_BYTE_0x", 12);
                for (size_t j = 0; j < un; j++) {
                    snprintf(hex, sizeof hex, "%02x", (uint8_t)u[j]);
                    put(&p, hex, 2);
                }
                put(&p, s, tk->len);
                put(&p, "]", 1);
            }
        }
    } else if (tk->attr & TOK_ATTR_BYTE) { /* "<0xNN>": the hex at [3, 5) */
        int v = 0;
        for (size_t i = 3; i < 5 && i < tk->len && hex_digit(s[i]) >= 0; i++) v = v * 16 + hex_digit(s[i]);
        char c = (char)v;
        put(&p, &c, 1);
    }
    return p.n;
}

/* ------------------------------------------------------------ accessors */

int ac_tokenizer_n_vocab(const struct ac_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t ac_tokenizer_bos(const struct ac_tokenizer *t) { return t ? t->bos : -1; }
int32_t ac_tokenizer_eos(const struct ac_tokenizer *t) { return t ? t->eos : -1; }

bool ac_tokenizer_is_eog(const struct ac_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && t->eog[id];
}

/* ---------------------------------------------------------- chat format */

/* SmolLM2's tokenizer.chat_template inserts this system message when the
 * conversation has none. */
#define SMOLLM_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

char *ac_chat_format_chatml(const char *system, const char *user) {
    if (!system) system = SMOLLM_SYSTEM;
    if (!user) user = "";
    static const char FMT[] = "<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n%s<|im_end|>\n"
                              "<|im_start|>assistant\n";
    size_t ns = strlen(system), nu = strlen(user);
    if (ns > SIZE_MAX / 4 || nu > SIZE_MAX / 4) return NULL;
    size_t n = sizeof FMT + ns + nu;
    char *s = malloc(n);
    if (!s) return NULL;
    snprintf(s, n, FMT, system, user);
    return s;
}
