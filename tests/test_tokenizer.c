/* test_tokenizer.c - the tokenizer against llama.cpp: every id of every
 * fixture string (tests/fixtures/tokenizer_*.json, written by
 * scripts/make_tokenizer_fixtures.py) for the default model (byte-level
 * BPE, pre-tokenizer "smollm"), synthetic byte-level BPE vocabularies for
 * the other pre-tokenizers and a synthetic SentencePiece vocabulary; plus
 * decoding, the EOG set, the ChatML template and the error paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/common.h"
#include "gguf/gguf.h"
#include "gguf_builder.h"
#include "tokenizer/tokenizer.h"

#define MODEL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"

static char *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = NULL;
    if (fseek(fp, 0, SEEK_END) == 0) {
        long n = ftell(fp);
        if (n >= 0 && fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
            if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                buf[n] = '\0';
                if (len) *len = (size_t)n;
            }
        }
    }
    fclose(fp);
    return buf;
}

static int hex_val(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes a lowercase hex string into a malloc'd, NUL-terminated buffer. */
static char *from_hex(const char *hex, size_t *len) {
    size_t n = strlen(hex) / 2;
    char *out = malloc(n + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
        assert_true(hi >= 0 && lo >= 0);
        out[i] = (char)(hi * 16 + lo);
    }
    out[n] = '\0';
    *len = n;
    return out;
}

struct loaded {
    struct gguf_file *file;
    struct ac_tokenizer *tok;
};

static void load(struct loaded *l, const char *path) {
    char err[AC_ERR_LEN];
    if (gguf_open(&l->file, path, err) != 0) fail_msg("%s", err);
    if (ac_tokenizer_load(&l->tok, l->file, err) != 0) fail_msg("%s: %s", path, err);
}

static void unload(struct loaded *l) {
    ac_tokenizer_free(l->tok);
    gguf_close(l->file);
}

/* Tokenizes and returns a malloc'd id array (count in *n). */
static int32_t *encode(const struct ac_tokenizer *t, const char *s, size_t len, bool add, bool parse, int *n) {
    char err[AC_ERR_LEN];
    int need = ac_tokenize(t, s, len, add, parse, NULL, 0, err);
    if (need < 0) fail_msg("tokenize: %s", err);
    int32_t *ids = malloc(((size_t)need + 1) * sizeof *ids);
    assert_non_null(ids);
    int got = ac_tokenize(t, s, len, add, parse, ids, need, err);
    assert_int_equal(got, need);
    *n = need;
    return ids;
}

/* Appends the pieces of ids to a malloc'd buffer. */
static char *decode(const struct ac_tokenizer *t, const int32_t *ids, int n, bool special, size_t *len) {
    size_t cap = 64, used = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (int i = 0; i < n; i++) {
        char piece[256];
        int k = ac_token_to_piece(t, ids[i], piece, sizeof piece, special);
        assert_true(k >= 0 && k <= (int)sizeof piece);
        if (used + (size_t)k > cap) {
            cap = 2 * (used + (size_t)k);
            char *grown = realloc(out, cap);
            assert_non_null(grown);
            out = grown;
        }
        memcpy(out + used, piece, (size_t)k);
        used += (size_t)k;
    }
    *len = used;
    return out;
}

static void print_ids(const char *what, const int32_t *ids, int n) {
    fprintf(stderr, "  %s (%d):", what, n);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* Checks every case of one fixture file; returns the number of cases. */
static int check_fixture(const char *json_path) {
    char *json = read_file(json_path, NULL);
    if (!json) fail_msg("%s: cannot read (run scripts/make_tokenizer_fixtures.py)", json_path);
    cJSON *doc = cJSON_Parse(json);
    assert_non_null(doc);
    const cJSON *gguf_path = cJSON_GetObjectItem(doc, "gguf");
    assert_true(cJSON_IsString(gguf_path));
    struct loaded l;
    load(&l, gguf_path->valuestring);
    const struct ac_tokenizer *t = l.tok;

    assert_int_equal(ac_tokenizer_n_vocab(t), cJSON_GetObjectItem(doc, "n_vocab")->valueint);
    assert_int_equal(ac_tokenizer_bos(t), cJSON_GetObjectItem(doc, "bos")->valueint);
    assert_int_equal(ac_tokenizer_eos(t), cJSON_GetObjectItem(doc, "eos")->valueint);
    const cJSON *eog = cJSON_GetObjectItem(doc, "eog");
    int n_eog = 0;
    for (int32_t id = 0; id < ac_tokenizer_n_vocab(t); id++) {
        bool expect = false;
        const cJSON *e;
        cJSON_ArrayForEach(e, eog) expect |= e->valueint == id;
        if (ac_tokenizer_is_eog(t, id) != expect) fail_msg("%s: token %d: eog %d, llama.cpp %d", json_path, id,
                                                           ac_tokenizer_is_eog(t, id), expect);
        n_eog += expect;
    }
    assert_true(n_eog > 0);

    int n_cases = 0, failures = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(doc, "cases")) {
        size_t len;
        const cJSON *txt = cJSON_GetObjectItem(c, "text");
        char *text = txt ? strdup(txt->valuestring) : from_hex(cJSON_GetObjectItem(c, "text_hex")->valuestring, &len);
        assert_non_null(text);
        if (txt) len = strlen(text);
        const cJSON *variants = cJSON_GetObjectItem(c, "ids");
        assert_int_equal(cJSON_GetArraySize(variants), 4);
        for (int k = 0; k < 4; k++) {
            const cJSON *want = cJSON_GetArrayItem(variants, k);
            int n;
            int32_t *ids = encode(t, text, len, k & 2, k & 1, &n);
            bool same = n == cJSON_GetArraySize(want);
            for (int i = 0; same && i < n; i++) same = ids[i] == cJSON_GetArrayItem(want, i)->valueint;
            if (!same) {
                failures++;
                fprintf(stderr, "%s: case %d (add_special %d, parse_special %d) differs: \"%.60s\"\n", json_path,
                        n_cases, (k & 2) != 0, k & 1, text);
                print_ids("ours", ids, n);
                int32_t ref[512];
                int nr = 0;
                const cJSON *e;
                cJSON_ArrayForEach(e, want) if (nr < 512) ref[nr++] = e->valueint;
                print_ids("llama.cpp", ref, nr);
            }
            if (k == 3) { /* decoding, special tokens rendered, as llama.cpp's pieces */
                size_t want_len, got_len;
                char *want_dec = from_hex(cJSON_GetObjectItem(c, "decoded_hex")->valuestring, &want_len);
                char *got = decode(t, ids, n, true, &got_len);
                if (same && (got_len != want_len || memcmp(got, want_dec, got_len) != 0)) {
                    failures++;
                    fprintf(stderr, "%s: case %d decodes differently\n", json_path, n_cases);
                }
                free(want_dec);
                free(got);
            }
            if (k == 0) { /* plain decoding, as llama.cpp's pieces */
                size_t want_len, got_len;
                char *want_dec = from_hex(cJSON_GetObjectItem(c, "decoded0_hex")->valuestring, &want_len);
                char *got = decode(t, ids, n, false, &got_len);
                if (same && (got_len != want_len || memcmp(got, want_dec, got_len) != 0)) {
                    failures++;
                    fprintf(stderr, "%s: case %d decodes differently (no special)\n", json_path, n_cases);
                }
                /* decode(encode(text)) == text for valid UTF-8, up to the
                 * spaces SentencePiece puts before text: one leading, and one
                 * after each user-defined token (llama.cpp decodes them too) */
                const char *g = got;
                size_t g_len = got_len;
                if (g_len == len + 1 && g[0] == ' ') g++, g_len--;
                bool round_trip = g_len == len && memcmp(g, text, len) == 0;
                bool spm_spaces = txt && strstr(text, "<|user|>") != NULL;
                if (txt && !round_trip && !spm_spaces) {
                    failures++;
                    fprintf(stderr, "%s: case %d: decode(encode(text)) != text: \"%.*s\"\n", json_path, n_cases,
                            (int)g_len, g);
                }
                free(want_dec);
                free(got);
            }
            free(ids);
        }
        free(text);
        n_cases++;
    }
    if (failures) fail_msg("%s: %d mismatches in %d cases", json_path, failures, n_cases);
    printf("%s: %d cases x 4 variants match llama.cpp\n", json_path, n_cases);
    unload(&l);
    cJSON_Delete(doc);
    free(json);
    return n_cases;
}

static void test_smollm2_fixture(void **state) {
    (void)state;
    assert_true(check_fixture("tests/fixtures/tokenizer_smollm2.json") >= 40);
}

static void test_bpe_pretokenizers(void **state) {
    (void)state;
    static const char *const files[] = {
        "tests/fixtures/tokenizer_bpe_gpt-2.json", "tests/fixtures/tokenizer_bpe_default.json",
        "tests/fixtures/tokenizer_bpe_llama-bpe.json", "tests/fixtures/tokenizer_bpe_qwen2.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) assert_true(check_fixture(files[i]) >= 40);
}

static void test_spm_fixture(void **state) {
    (void)state;
    assert_true(check_fixture("tests/fixtures/tokenizer_spm_tiny.json") >= 40);
    /* no space prefix, no BOS, EOS added: the metadata keys override */
    assert_true(check_fixture("tests/fixtures/tokenizer_spm_tiny_noprefix.json") >= 40);
}

/* The default model's special tokens and the ChatML prompt. */
static void test_smollm2_specials(void **state) {
    (void)state;
    struct loaded l;
    load(&l, MODEL_PATH);
    const struct ac_tokenizer *t = l.tok;
    assert_int_equal(ac_tokenizer_n_vocab(t), 49152);
    assert_int_equal(ac_tokenizer_bos(t), 1);
    assert_int_equal(ac_tokenizer_eos(t), 2);
    assert_true(ac_tokenizer_is_eog(t, 2));  /* <|im_end|> */
    assert_true(ac_tokenizer_is_eog(t, 0));  /* <|endoftext|> */
    assert_false(ac_tokenizer_is_eog(t, 1)); /* <|im_start|> */
    assert_false(ac_tokenizer_is_eog(t, -1));
    assert_false(ac_tokenizer_is_eog(t, 49152));

    char *chat = ac_chat_format_chatml(NULL, "Hi");
    assert_non_null(chat);
    assert_string_equal(chat, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                              "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    /* the default system prompt is the one in the model's own template */
    struct gguf_str tmpl;
    char err[AC_ERR_LEN];
    assert_int_equal(gguf_get_str(l.file, "tokenizer.chat_template", &tmpl, err), 0);
    const char *sys = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                      "Face<|im_end|>\n";
    bool found = false;
    for (size_t i = 0; i + strlen(sys) <= tmpl.len && !found; i++) found = memcmp(tmpl.ptr + i, sys, strlen(sys)) == 0;
    assert_true(found);

    int n;
    int32_t *ids = encode(t, chat, strlen(chat), true, true, &n);
    assert_int_equal(ids[0], 1); /* <|im_start|> parsed as one token */
    assert_int_equal(ids[n - 1], 198); /* "\n" after "assistant" */
    int n_start = 0, n_end = 0;
    for (int i = 0; i < n; i++) n_start += ids[i] == 1, n_end += ids[i] == 2;
    assert_int_equal(n_start, 3);
    assert_int_equal(n_end, 2);
    free(ids);
    free(chat);

    chat = ac_chat_format_chatml("Be brief.", "");
    assert_string_equal(chat, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<|im_end|>\n"
                              "<|im_start|>assistant\n");
    free(chat);
    unload(&l);
}

/* Output buffers: a short one gets a prefix and the full count. */
static void test_buffers(void **state) {
    (void)state;
    struct loaded l;
    load(&l, MODEL_PATH);
    const struct ac_tokenizer *t = l.tok;
    char err[AC_ERR_LEN];
    const char *text = "The quick brown fox jumps over the lazy dog.";
    int n;
    int32_t *all = encode(t, text, strlen(text), false, false, &n);
    assert_true(n > 4);
    int32_t few[4 + 1];
    few[4] = 0x7EADBEEF;
    assert_int_equal(ac_tokenize(t, text, strlen(text), false, false, few, 4, err), n);
    assert_memory_equal(few, all, 4 * sizeof *few);
    assert_int_equal(few[4], 0x7EADBEEF);
    assert_int_equal(ac_tokenize(t, "", 0, false, false, NULL, 0, err), 0);
    assert_int_equal(ac_tokenize(t, NULL, 0, true, true, NULL, 0, err), 0);
    assert_int_equal(ac_tokenize(t, NULL, 3, false, false, NULL, 0, err), -1);
    assert_int_equal(ac_tokenize(t, text, 3, false, false, NULL, 5, err), -1);
    free(all);

    /* " quick" is one token: a 2-byte buffer gets 2 bytes and the count 6 */
    int32_t *q = encode(t, " quick", 6, false, false, &n);
    assert_int_equal(n, 1);
    char piece[8] = "xxxxxxx";
    assert_int_equal(ac_token_to_piece(t, q[0], piece, 2, false), 6);
    assert_memory_equal(piece, " qxxxxx", 7);
    assert_int_equal(ac_token_to_piece(t, q[0], NULL, 0, false), 6);
    free(q);
    /* control tokens render only when asked; bad ids are empty */
    assert_int_equal(ac_token_to_piece(t, 2, piece, sizeof piece, false), 0);
    assert_int_equal(ac_token_to_piece(t, 1, NULL, 0, true), 12); /* <|im_start|> */
    assert_int_equal(ac_token_to_piece(t, -1, piece, sizeof piece, true), 0);
    assert_int_equal(ac_token_to_piece(t, 49152, piece, sizeof piece, true), 0);
    unload(&l);
}

/* Long runs (whitespace, digits, one letter) do not exhaust PCRE2, and
 * ~1,000 tokens take well under 10 ms (printed, not asserted: timings are
 * for benchmarks). */
static void test_long_inputs(void **state) {
    (void)state;
    struct loaded l;
    load(&l, MODEL_PATH);
    const struct ac_tokenizer *t = l.tok;
    const size_t big = 200000;
    char *s = malloc(big);
    assert_non_null(s);
    static const char fills[] = {' ', '7', 'x', '\n', '!'};
    for (size_t k = 0; k < sizeof fills; k++) {
        memset(s, fills[k], big);
        int n;
        int32_t *ids = encode(t, s, big, false, false, &n);
        assert_true(n > 0);
        size_t len;
        char *back = decode(t, ids, n, false, &len);
        assert_int_equal(len, big);
        assert_memory_equal(back, s, big);
        free(back);
        free(ids);
    }
    free(s);

    static const char para[] =
        "Language models read text as tokens: a tokenizer splits the text into pieces, and each piece has an id. "
        "In 2024, researchers measured 1,234 reactions (e.g. 2 H2 + O2 -> 2 H2O) at 298.15 K; it's the data we'd "
        "want. def f(x):\n    return x ** 2  # square\n\\frac{a}{b} = 0.5, caf\xc3\xa9, \xe6\x97\xa5\xe6\x9c\xac! ";
    const size_t plen = strlen(para), max_reps = 64;
    char *text = malloc(plen * max_reps + 1);
    assert_non_null(text);
    int n = 0;
    size_t len = 0;
    for (size_t reps = 0; n < 1000; reps++) { /* whole paragraphs up to 1,000 tokens */
        assert_true(reps < max_reps);
        memcpy(text + len, para, plen);
        len += plen;
        free(encode(t, text, len, false, false, &n));
    }
    char err[AC_ERR_LEN];
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    assert_non_null(ids);
    const int iters = 50;
    double t0 = ac_time_s();
    for (int i = 0; i < iters; i++) assert_int_equal(ac_tokenize(t, text, len, false, true, ids, n, err), n);
    double dt = (ac_time_s() - t0) / iters;
    printf("tokenize: %d tokens (%zu bytes) in %.3f ms\n", n, len, dt * 1e3);
    free(ids);
    free(text);
    unload(&l);
}

/* Minimal tokenizer metadata in memory; each defect is one clean error. */
static int load_image(const struct gb *b, char *err) {
    struct gguf_file *f = NULL;
    if (gguf_parse(&f, b->buf, b->len, err) != 0) fail_msg("gguf: %s", err);
    struct ac_tokenizer *t = NULL;
    int rc = ac_tokenizer_load(&t, f, err);
    if (rc == 0) assert_non_null(t);
    ac_tokenizer_free(t);
    gguf_close(f);
    return rc;
}

static const char *const TINY_TOKENS[] = {"a", "b", "ab", "\xc4\xa0", "<s>"};
static const char *const TINY_MERGES[] = {"a b"};

static void build_tiny(struct gb *b, const char *model, const char *pre, bool tokens, bool merges) {
    uint64_t n_kv = 1 + (pre != NULL) + tokens + merges;
    gb_header(b, 0, n_kv);
    gb_kv_str(b, "tokenizer.ggml.model", model);
    if (pre) gb_kv_str(b, "tokenizer.ggml.pre", pre);
    if (tokens) gb_kv_str_arr(b, "tokenizer.ggml.tokens", TINY_TOKENS, 5);
    if (merges) gb_kv_str_arr(b, "tokenizer.ggml.merges", TINY_MERGES, 1);
    static const uint8_t zeros[64];
    gb_bytes(b, zeros, sizeof zeros);
}

static void expect_error(const char *model, const char *pre, bool tokens, bool merges, const char *msg) {
    struct gb b = {0};
    char err[AC_ERR_LEN] = "";
    build_tiny(&b, model, pre, tokens, merges);
    assert_int_equal(load_image(&b, err), -1);
    if (!strstr(err, msg)) fail_msg("error '%s' does not mention '%s'", err, msg);
    gb_free(&b);
}

static void test_errors(void **state) {
    (void)state;
    expect_error("bert", "default", true, true, "unsupported tokenizer model 'bert'");
    expect_error("gpt2", "no-such-pre", true, true, "unsupported pre-tokenizer 'no-such-pre'");
    expect_error("gpt2", "smollm", false, true, "tokenizer.ggml.tokens is missing");
    expect_error("llama", NULL, false, false, "tokenizer.ggml.tokens is missing");
    expect_error("gpt2", "smollm", true, false, "tokenizer.ggml.merges is missing");

    /* no model key at all */
    struct gb b = {0};
    char err[AC_ERR_LEN] = "";
    gb_header(&b, 0, 1);
    gb_kv_str_arr(&b, "tokenizer.ggml.tokens", TINY_TOKENS, 5);
    static const uint8_t zeros[64];
    gb_bytes(&b, zeros, sizeof zeros);
    assert_int_equal(load_image(&b, err), -1);
    assert_non_null(strstr(err, "tokenizer.ggml.model"));
    gb_free(&b);

    /* the same minimal image loads and merges "a b" */
    b = (struct gb){0};
    build_tiny(&b, "gpt2", "gpt-2", true, true);
    struct gguf_file *f = NULL;
    struct ac_tokenizer *t = NULL;
    assert_int_equal(gguf_parse(&f, b.buf, b.len, err), 0);
    assert_int_equal(ac_tokenizer_load(&t, f, err), 0);
    gguf_close(f); /* the tokenizer owns copies of what it needs */
    gb_free(&b);
    int32_t ids[4];
    assert_int_equal(ac_tokenize(t, "ab a", 4, true, false, ids, 4, err), 3);
    assert_int_equal(ids[0], 2); /* "ab" */
    assert_int_equal(ids[1], 3); /* "\xc4\xa0" = GPT-2's stand-in for the space */
    assert_int_equal(ids[2], 0);
    assert_int_equal(ac_tokenizer_bos(t), -1); /* default 11 is out of this vocab */
    ac_tokenizer_free(t);
    ac_tokenizer_free(NULL);

    /* no tokenizer.ggml.pre: llama.cpp's "default" pre-tokenizer */
    b = (struct gb){0};
    build_tiny(&b, "gpt2", NULL, true, true);
    assert_int_equal(load_image(&b, err), 0);
    gb_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smollm2_fixture), cmocka_unit_test(test_bpe_pretokenizers),
        cmocka_unit_test(test_spm_fixture),     cmocka_unit_test(test_smollm2_specials),
        cmocka_unit_test(test_buffers),         cmocka_unit_test(test_long_inputs),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
