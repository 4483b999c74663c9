/* test_gguf.c - the GGUF reader on valid, hand-broken, truncated and
 * randomly corrupted files: every bad file is one clean error, no crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "gguf/gguf.h"
#include "gguf_builder.h"
#include "quant/quant.h"

/* A valid file: 3 kv (one string array), 2 F32 tensors of 8 and 2x4. */
static void build_valid(struct gb *b) {
    static const char *const toks[] = {"a", "bc", ""};
    gb_header(b, 2, 3);
    gb_kv_str(b, "general.architecture", "llama");
    gb_kv_u32(b, "llama.block_count", 7);
    gb_kv_str_arr(b, "tokenizer.ggml.tokens", toks, 3);
    int64_t ne1[] = {8}, ne2[] = {4, 2};
    gb_tensor(b, "a", 1, ne1, AC_TYPE_F32, 0);
    gb_tensor(b, "b", 2, ne2, AC_TYPE_F32, 32);
    gb_pad(b, 32);
    float data[16];
    for (int i = 0; i < 16; i++) data[i] = (float)i;
    gb_bytes(b, data, sizeof data);
}

/* Trailing bytes so that the header's count sanity check passes and the
 * parser reaches the defect under test. */
static void gb_filler(struct gb *b) {
    static const uint8_t zeros[64];
    gb_bytes(b, zeros, sizeof zeros);
}

static void expect_error(const struct gb *b, const char *needle) {
    struct gguf_file *f = NULL;
    char err[AC_ERR_LEN] = "";
    int rc = gguf_parse(&f, b->buf, b->len, err);
    if (rc == 0) gguf_close(f);
    assert_int_equal(rc, -1);
    if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_valid(void **state) {
    (void)state;
    struct gb b = {0};
    build_valid(&b);
    char *path = gb_write_temp(&b);
    struct gguf_file *f;
    char err[AC_ERR_LEN];
    assert_int_equal(gguf_open(&f, path, err), 0);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_tensors, 2);
    uint32_t v;
    assert_int_equal(gguf_get_u32(f, "llama.block_count", &v, err), 0);
    assert_int_equal(v, 7);
    struct gguf_str s;
    assert_int_equal(gguf_get_str(f, "general.architecture", &s, err), 0);
    assert_true(gguf_str_eq(s, "llama"));
    const struct gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.tokens");
    assert_non_null(kv);
    struct gguf_str arr[3];
    assert_int_equal(gguf_get_str_array(kv, arr, err), 0);
    assert_true(gguf_str_eq(arr[1], "bc"));
    assert_true(gguf_str_eq(arr[2], ""));
    const struct gguf_tensor *t = gguf_find_tensor(f, "b");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 4);
    assert_int_equal(t->ne[1], 2);
    assert_int_equal(t->size, 32);
    assert_true(((const float *)t->data)[0] == 8.0f);
    assert_int_equal(gguf_get_u32(f, "missing.key", &v, err), -1);
    assert_non_null(strstr(err, "missing metadata"));
    assert_int_equal(gguf_get_u32(f, "general.architecture", &v, err), -1);
    gguf_close(f);
    unlink(path);
    free(path);
    gb_free(&b);
}

static void test_not_gguf(void **state) {
    (void)state;
    struct gb b = {0};
    gb_bytes(&b, "GGML\3\0\0\0", 8);
    expect_error(&b, "bad magic");
    gb_free(&b);
    char err[AC_ERR_LEN];
    struct gguf_file *f;
    assert_int_equal(gguf_open(&f, "/nonexistent/file.gguf", err), -1);
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(gguf_open(&f, "/tmp", err), -1);
}

static void test_bad_version(void **state) {
    (void)state;
    struct gb b = {0};
    gb_bytes(&b, "GGUF", 4);
    gb_u32(&b, 9);
    gb_u64(&b, 0);
    gb_u64(&b, 0);
    expect_error(&b, "unsupported GGUF version 9");
    gb_free(&b);
}

static void test_huge_string(void **state) {
    (void)state;
    struct gb b = {0};
    gb_header(&b, 0, 1);
    gb_u64(&b, 1ull << 62); /* key length */
    gb_bytes(&b, "abc", 3);
    gb_filler(&b);
    expect_error(&b, "exceeds the file");
    gb_free(&b);
}

static void test_huge_counts(void **state) {
    (void)state;
    struct gb b = {0};
    gb_header(&b, 1ull << 60, 1ull << 60);
    expect_error(&b, "exceed the file size");
    gb_free(&b);
    /* an array whose count times element size overflows */
    gb_header(&b, 0, 1);
    gb_str(&b, "x");
    gb_u32(&b, GGUF_VT_ARRAY);
    gb_u32(&b, GGUF_VT_U64);
    gb_u64(&b, (1ull << 61) + 1);
    expect_error(&b, "exceeds the file");
    gb_free(&b);
}

static void test_tensor_extent(void **state) {
    (void)state;
    struct gb b = {0};
    gb_header(&b, 1, 0);
    int64_t ne[] = {8};
    gb_tensor(&b, "t", 1, ne, AC_TYPE_F32, (uint64_t)-32); /* offset near 2^64, aligned */
    gb_pad(&b, 32);
    float d[8] = {0};
    gb_bytes(&b, d, sizeof d);
    expect_error(&b, "past the end");
    gb_free(&b);
    /* shape whose element count overflows */
    gb_header(&b, 1, 0);
    int64_t big[] = {1ll << 40, 1ll << 40};
    gb_tensor(&b, "t", 2, big, AC_TYPE_F32, 0);
    expect_error(&b, "invalid shape");
    gb_free(&b);
    /* data one byte short */
    gb_header(&b, 1, 0);
    gb_tensor(&b, "t", 1, ne, AC_TYPE_F32, 0);
    gb_pad(&b, 32);
    gb_bytes(&b, d, sizeof d - 1);
    expect_error(&b, "past the end");
    gb_free(&b);
}

static void test_misaligned(void **state) {
    (void)state;
    struct gb b = {0};
    gb_header(&b, 1, 0);
    int64_t ne[] = {8};
    gb_tensor(&b, "t", 1, ne, AC_TYPE_F32, 4);
    gb_pad(&b, 32);
    float d[16] = {0};
    gb_bytes(&b, d, sizeof d);
    expect_error(&b, "not aligned");
    gb_free(&b);
    gb_header(&b, 0, 1);
    gb_kv_u32(&b, "general.alignment", 48);
    expect_error(&b, "power of two");
    gb_free(&b);
}

static void test_duplicates(void **state) {
    (void)state;
    struct gb b = {0};
    gb_header(&b, 0, 2);
    gb_kv_u32(&b, "k", 1);
    gb_kv_u32(&b, "k", 2);
    expect_error(&b, "duplicate metadata key 'k'");
    gb_free(&b);
    gb_header(&b, 2, 0);
    int64_t ne[] = {8};
    gb_tensor(&b, "w", 1, ne, AC_TYPE_F32, 0);
    gb_tensor(&b, "w", 1, ne, AC_TYPE_F32, 32);
    gb_pad(&b, 32);
    float d[16] = {0};
    gb_bytes(&b, d, sizeof d);
    expect_error(&b, "duplicate tensor name 'w'");
    gb_free(&b);
}

static void test_bad_types(void **state) {
    (void)state;
    struct gb b = {0};
    int64_t ne[] = {32};
    gb_header(&b, 1, 0);
    gb_tensor(&b, "t", 1, ne, 99, 0);
    expect_error(&b, "unsupported tensor type id 99");
    gb_free(&b);
    gb_header(&b, 1, 0);
    int64_t odd[] = {33};
    gb_tensor(&b, "t", 1, odd, AC_TYPE_Q8_0, 0);
    expect_error(&b, "not a multiple");
    gb_free(&b);
    gb_header(&b, 1, 0);
    int64_t five[] = {1, 1, 1, 1, 1};
    gb_tensor(&b, "t", 5, five, AC_TYPE_F32, 0);
    expect_error(&b, "dimensions");
    gb_free(&b);
    gb_header(&b, 0, 1);
    gb_str(&b, "k");
    gb_u32(&b, 77);
    gb_filler(&b);
    expect_error(&b, "invalid value type");
    gb_free(&b);
    gb_header(&b, 0, 1);
    gb_str(&b, "k");
    gb_u32(&b, GGUF_VT_ARRAY);
    gb_u32(&b, GGUF_VT_ARRAY);
    gb_u64(&b, 1);
    gb_filler(&b);
    expect_error(&b, "invalid array element type");
    gb_free(&b);
}

/* Every prefix of a valid file is rejected cleanly (ASan watches reads). */
static void test_truncated(void **state) {
    (void)state;
    struct gb b = {0};
    build_valid(&b);
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.buf, n);
        struct gguf_file *f = NULL;
        char err[AC_ERR_LEN] = "";
        int rc = gguf_parse(&f, copy, n, err);
        if (rc == 0) fail_msg("prefix of %zu/%zu bytes accepted", n, b.len);
        assert_true(err[0] != '\0');
        free(copy);
    }
    gb_free(&b);
}

/* Random byte corruption: parse may succeed or fail but must never read out
 * of bounds; when it succeeds every tensor lies inside the buffer. */
static void test_corrupted(void **state) {
    (void)state;
    struct gb b = {0};
    build_valid(&b);
    uint64_t rng = 0x1234567u;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t *copy = malloc(b.len);
        memcpy(copy, b.buf, b.len);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            copy[(rng >> 33) % b.len] ^= (uint8_t)(1u << ((rng >> 20) & 7));
        }
        struct gguf_file *f = NULL;
        char err[AC_ERR_LEN];
        if (gguf_parse(&f, copy, b.len, err) == 0) {
            for (uint64_t i = 0; i < f->n_tensors; i++) {
                const struct gguf_tensor *t = &f->tensors[i];
                assert_true((const uint8_t *)t->data >= copy);
                assert_true((const uint8_t *)t->data + t->size <= copy + b.len);
            }
            for (uint64_t i = 0; i < f->n_kv; i++)
                if (f->kv[i].type == GGUF_VT_ARRAY && f->kv[i].arr_type == GGUF_VT_STRING) {
                    struct gguf_str *s = malloc(sizeof *s * (f->kv[i].arr_n + 1));
                    assert_int_equal(gguf_get_str_array(&f->kv[i], s, err), 0);
                    free(s);
                }
            gguf_close(f);
        }
        free(copy);
    }
    gb_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),        cmocka_unit_test(test_not_gguf),
        cmocka_unit_test(test_bad_version),  cmocka_unit_test(test_huge_string),
        cmocka_unit_test(test_huge_counts),  cmocka_unit_test(test_tensor_extent),
        cmocka_unit_test(test_misaligned),   cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_bad_types),    cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
