/* tokenizer_internal.h - shared between tokenizer.c (loading, special
 * tokens, decoding), tokenizer_bpe.c (byte-level BPE) and tokenizer_spm.c
 * (SentencePiece-style BPE). Not part of the public API. */
#ifndef AC_TOKENIZER_INTERNAL_H
#define AC_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

enum tok_kind { TOK_BPE, TOK_SPM };

/* Token attributes, as llama.cpp derives them from tokenizer.ggml.token_type
 * (0 undefined, 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
 * 6 byte). A token of undefined type decodes to nothing. */
enum {
    TOK_ATTR_UNDEFINED = 0,
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
};

#define TOK_MAX_REGEX 4

struct tok_token {
    uint32_t off; /* text = t->text + off, len bytes (not NUL-terminated) */
    uint32_t len;
    float score;
    uint8_t attr;
};

/* A merge rule "first second" of rank = its index; first and second point
 * into t->merge_text. */
struct tok_merge {
    uint32_t off;
    uint32_t first_len;
    uint32_t second_len;
};

/* Open-addressing hash table of uint32 values (index + 1; 0 = empty). The
 * keys live elsewhere (token or merge texts) and are compared by the caller. */
struct tok_map {
    uint32_t *slots;
    uint32_t mask; /* capacity - 1, capacity a power of two */
};

struct ac_tokenizer {
    enum tok_kind kind;
    int32_t n_vocab;
    struct tok_token *tokens;
    char *text; /* all token texts, back to back */
    struct tok_map vocab; /* token text -> id (the last id wins, as llama.cpp) */

    /* byte-level BPE */
    uint32_t n_merges;
    struct tok_merge *merges;
    char *merge_text;
    struct tok_map merge_map; /* (first, second) -> rank (the first rank wins) */
    pcre2_code *regex[TOK_MAX_REGEX];
    int n_regex;
    bool ignore_merges; /* a pre-token that is a whole vocab entry is taken as is */
    char byte_enc[256][2]; /* GPT-2 byte -> the UTF-8 of its stand-in codepoint */
    uint8_t byte_enc_len[256];
    int16_t byte_dec[256 + 68]; /* stand-in codepoint -> byte, -1 for none */

    /* SentencePiece */
    bool add_space_prefix;
    int32_t byte_token[256]; /* <0xNN> (or the raw byte) token, -1 if none */

    /* special tokens */
    bool add_bos, add_eos;
    int32_t bos, eos, eot, eom, unk;
    int32_t *special; /* control / user-defined / unknown ids, longest text first */
    int n_special;
    uint8_t *eog; /* n_vocab flags */
};

/* The text of token id (not NUL-terminated). */
static inline const char *tok_text(const struct ac_tokenizer *t, int32_t id) {
    return t->text + t->tokens[id].off;
}

/* Id of the token whose text is s[0..n), or -1. */
int32_t tok_vocab_find(const struct ac_tokenizer *t, const char *s, size_t n);

/* Output sink: counts every id, stores the first cap of them. */
struct tok_out {
    int32_t *ids;
    int cap;
    int n;
};

int tok_out_push(struct tok_out *o, int32_t id, char *err);

/* Per-call scratch buffers, grown on demand and freed by tok_scratch_free. */
struct tok_scratch {
    char *buf;      /* text being prepared (proxy string / escaped text) */
    size_t buf_cap;
    char *word;     /* one pre-token, byte-encoded */
    size_t word_cap;
    uint32_t *cuts; /* pre-token boundaries (two lists, one per half) */
    size_t cuts_cap;
    void *sym;      /* merge symbols */
    size_t sym_cap;
    void *heap;     /* merge candidates */
    size_t heap_cap;
    pcre2_match_data *md;
};

void tok_scratch_free(struct tok_scratch *s);

/* Grows *p to hold at least n elements of size elt; returns -1 on overflow
 * or allocation failure. */
int tok_grow(void **p, size_t *cap, size_t n, size_t elt);

/* ---- the merge engine both BPE flavours share (tokenizer.c) ---- */

/* A symbol of the text being merged: a byte range, linked to its live
 * neighbours; n == 0 once merged into its left neighbour. */
struct tok_sym {
    int32_t prev, next;
    uint32_t start, n;
};

/* The priority of merging l and r (lower merges first; ties go to the
 * leftmost, as llama.cpp's comparators do): byte-level BPE uses the merge
 * rank, SentencePiece minus the merged piece's score. Returns false when
 * the pair cannot merge. */
typedef bool (*tok_merge_order_fn)(const struct ac_tokenizer *t, const char *text, const struct tok_sym *l,
                                   const struct tok_sym *r, float *order);

/* Splits text[0..n) (n > 0) into UTF-8 characters and merges the best pair
 * until none can merge. Returns the symbol count (sc->sym holds them; the
 * live ones chain from index 0) or -1 (out of memory). */
int32_t tok_merge(const struct ac_tokenizer *t, const char *text, size_t n, tok_merge_order_fn order,
                  struct tok_scratch *sc);

/* tokenizer_bpe.c */
/* Sets up the pre-tokenizer named pre[0..pre_len) (NULL: "default"), its
 * llama.cpp defaults (ignore_merges, add_bos) and the merge rules. */
int tok_bpe_init(struct ac_tokenizer *t, const char *pre, size_t pre_len, const struct gguf_str *merges,
                 uint64_t n_merges, char *err);
void tok_bpe_free(struct ac_tokenizer *t);
int tok_bpe_merge_rank(const struct ac_tokenizer *t, const char *a, size_t na, const char *b, size_t nb);
int tok_bpe_encode(const struct ac_tokenizer *t, const char *s, size_t n, struct tok_scratch *sc,
                   struct tok_out *out, char *err);

/* tokenizer_spm.c */
int tok_spm_encode(const struct ac_tokenizer *t, const char *s, size_t n, bool space_prefix,
                   struct tok_scratch *sc, struct tok_out *out, char *err);

/* UTF-8 helpers (tokenizer_bpe.c), with llama.cpp's rules. */
size_t tok_utf8_len(uint8_t lead); /* 1..4 from the lead byte alone */
/* Decodes one codepoint at s[*i] (i < n) and advances *i; an invalid
 * sequence yields U+FFFD and advances by one byte. */
uint32_t tok_utf8_next(const char *s, size_t n, size_t *i);
size_t tok_utf8_put(char *out, uint32_t cp); /* 1..4 bytes */

#endif
