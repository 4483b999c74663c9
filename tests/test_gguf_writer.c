/* test_gguf_writer.c - the GGUF writer against our reader: every value
 * type and tensor type survives a round trip, tensors are aligned, a
 * copied file keeps its metadata byte for byte, and failures (duplicates,
 * bad sizes, unwritable paths) return clean errors and leave no file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "quant/quant.h"

#define TINY_MODEL "tests/fixtures/tiny_llama.gguf"

static char tmp_path[64];

static int setup(void **state) {
    (void)state;
    snprintf(tmp_path, sizeof tmp_path, "/tmp/ac_writer_%d.gguf", (int)getpid());
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(tmp_path);
    return 0;
}

static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static bool tmp_exists(const char *p) {
    char t[256];
    snprintf(t, sizeof t, "%s.tmp", p);
    return exists(t);
}

static void check_str(const struct gguf_file *f, const char *key, const char *want) {
    char err[AC_ERR_LEN];
    struct gguf_str s;
    assert_int_equal(gguf_get_str(f, key, &s, err), 0);
    assert_true(gguf_str_eq(s, want));
}

/* Every scalar and array type, tensors of several types and sizes, and a
 * non-default alignment. */
static void test_round_trip(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    const int32_t ints[] = {-1, 2, -3, 4};
    const float floats[] = {0.5f, -1.25f};
    const struct gguf_str strs[] = {{"hello", 5}, {"", 0}, {"w\xc3\xb6rld", 6}};
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama", err), 0);
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 64, err), 0);
    assert_int_equal(gguf_writer_set_u32(w, "t.u32", 4000000000u, err), 0);
    assert_int_equal(gguf_writer_set_i32(w, "t.i32", -7, err), 0);
    assert_int_equal(gguf_writer_set_u64(w, "t.u64", 1ull << 40, err), 0);
    assert_int_equal(gguf_writer_set_f32(w, "t.f32", 3.5f, err), 0);
    assert_int_equal(gguf_writer_set_bool(w, "t.bool", true, err), 0);
    assert_int_equal(gguf_writer_set_arr(w, "t.ints", GGUF_VT_I32, ints, 4, err), 0);
    assert_int_equal(gguf_writer_set_arr(w, "t.floats", GGUF_VT_F32, floats, 2, err), 0);
    assert_int_equal(gguf_writer_set_arr(w, "t.empty", GGUF_VT_U8, NULL, 0, err), 0);
    assert_int_equal(gguf_writer_set_str_arr(w, "t.strs", strs, 3, err), 0);

    /* f32 vector of odd length (data not a multiple of the alignment), f16,
     * q8_0, q4_0, q2_0 matrices, a 3-D tensor */
    float v[7];
    for (int i = 0; i < 7; i++) v[i] = (float)i - 3.0f;
    const int64_t ne_v[] = {7};
    uint16_t h[64 * 3];
    for (int i = 0; i < 64 * 3; i++) h[i] = ac_fp32_to_fp16((float)i / 8);
    const int64_t ne_h[] = {64, 3};
    uint8_t q8[34 * 4], q4[18 * 2 * 2 * 3], q2[12 * 5];
    for (size_t i = 0; i < sizeof q8; i++) q8[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof q4; i++) q4[i] = (uint8_t)(i * 13);
    for (size_t i = 0; i < sizeof q2; i++) q2[i] = (uint8_t)(i * 5);
    const int64_t ne_q8[] = {64, 2}, ne_q4[] = {64, 2, 3}, ne_q2[] = {160, 1};
    assert_int_equal(gguf_writer_add_tensor(w, "v", AC_TYPE_F32, 1, ne_v, v, sizeof v, err), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "h", AC_TYPE_F16, 2, ne_h, h, sizeof h, err), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "q8", AC_TYPE_Q8_0, 2, ne_q8, q8, sizeof q8, err), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "q4", AC_TYPE_Q4_0, 3, ne_q4, q4, sizeof q4, err), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "q2", AC_TYPE_Q2_0, 2, ne_q2, q2, sizeof q2, err), 0);
    if (gguf_writer_write(w, tmp_path, err) != 0) fail_msg("write: %s", err);
    gguf_writer_free(w);
    assert_false(tmp_exists(tmp_path));

    struct gguf_file *f;
    if (gguf_open(&f, tmp_path, err) != 0) fail_msg("open: %s", err);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->alignment, 64);
    assert_int_equal(f->n_kv, 11);
    assert_int_equal(f->n_tensors, 5);
    check_str(f, "general.architecture", "llama");
    uint32_t u;
    int64_t i64;
    float fl;
    bool b;
    assert_int_equal(gguf_get_u32(f, "t.u32", &u, err), 0);
    assert_int_equal(u, 4000000000u);
    assert_int_equal(gguf_get_i64(f, "t.i32", &i64, err), 0);
    assert_int_equal(i64, -7);
    assert_int_equal(gguf_get_i64(f, "t.u64", &i64, err), 0);
    assert_int_equal(i64, 1ll << 40);
    assert_int_equal(gguf_get_f32(f, "t.f32", &fl, err), 0);
    assert_true(fl == 3.5f);
    assert_int_equal(gguf_get_bool(f, "t.bool", &b, err), 0);
    assert_true(b);
    const struct gguf_kv *kv = gguf_find_kv(f, "t.ints");
    assert_non_null(kv);
    assert_int_equal(kv->arr_type, GGUF_VT_I32);
    assert_int_equal(kv->arr_n, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(gguf_arr_i64(kv, (uint64_t)i), ints[i]);
    kv = gguf_find_kv(f, "t.floats");
    assert_true(gguf_arr_f64(kv, 1) == -1.25);
    kv = gguf_find_kv(f, "t.empty");
    assert_int_equal(kv->arr_n, 0);
    kv = gguf_find_kv(f, "t.strs");
    struct gguf_str got[3];
    assert_int_equal(gguf_get_str_array(kv, got, err), 0);
    for (int i = 0; i < 3; i++) assert_true(got[i].len == strs[i].len && !memcmp(got[i].ptr, strs[i].ptr, strs[i].len));

    const struct {
        const char *name;
        uint32_t type;
        const void *data;
        size_t size;
        int64_t ne1, ne2;
    } want[] = {
        {"v", AC_TYPE_F32, v, sizeof v, 1, 1},     {"h", AC_TYPE_F16, h, sizeof h, 3, 1},
        {"q8", AC_TYPE_Q8_0, q8, sizeof q8, 2, 1}, {"q4", AC_TYPE_Q4_0, q4, sizeof q4, 2, 3},
        {"q2", AC_TYPE_Q2_0, q2, sizeof q2, 1, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct gguf_tensor *t = &f->tensors[i]; /* in the order added */
        assert_true(gguf_str_eq(t->name, want[i].name));
        assert_int_equal(t->type, want[i].type);
        assert_int_equal(t->size, want[i].size);
        assert_int_equal(t->ne[1], want[i].ne1);
        assert_int_equal(t->ne[2], want[i].ne2);
        assert_int_equal(t->offset % 64, 0);
        assert_int_equal(((const uint8_t *)t->data - f->base) % 64, 0);
        assert_memory_equal(t->data, want[i].data, want[i].size);
    }
    gguf_close(f);
}

/* Every metadata entry of a real file copied through gguf_writer_copy_kv
 * comes back with the same type and bytes; tensors too. */
static void test_copy_file(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct gguf_file *src, *dst;
    if (gguf_open(&src, TINY_MODEL, err) != 0) fail_msg("%s", err);
    struct gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < src->n_kv; i++)
        if (gguf_writer_copy_kv(w, &src->kv[i], err) != 0) fail_msg("copy: %s", err);
    char name[128];
    for (uint64_t i = 0; i < src->n_tensors; i++) {
        const struct gguf_tensor *t = &src->tensors[i];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        assert_int_equal(gguf_writer_add_tensor(w, name, t->type, (int)t->n_dims, t->ne, t->data, t->size, err), 0);
    }
    if (gguf_writer_write(w, tmp_path, err) != 0) fail_msg("write: %s", err);
    gguf_writer_free(w);
    if (gguf_open(&dst, tmp_path, err) != 0) fail_msg("%s", err);
    assert_int_equal(dst->n_kv, src->n_kv);
    assert_int_equal(dst->n_tensors, src->n_tensors);
    /* each kv's value runs to the next one's key (the last one's to the tensor infos) */
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const struct gguf_kv *a = &src->kv[i], *b = &dst->kv[i];
        assert_true(a->key.len == b->key.len && !memcmp(a->key.ptr, b->key.ptr, a->key.len));
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->arr_type, b->arr_type);
        assert_int_equal(a->arr_n, b->arr_n);
        if (i + 1 < src->n_kv) {
            const size_t la = (size_t)((const uint8_t *)src->kv[i + 1].key.ptr - 8 - a->value);
            const size_t lb = (size_t)((const uint8_t *)dst->kv[i + 1].key.ptr - 8 - b->value);
            assert_int_equal(la, lb);
            assert_memory_equal(a->value, b->value, la);
        }
    }
    for (uint64_t i = 0; i < src->n_tensors; i++) {
        assert_int_equal(src->tensors[i].type, dst->tensors[i].type);
        assert_int_equal(src->tensors[i].size, dst->tensors[i].size);
        assert_memory_equal(src->tensors[i].data, dst->tensors[i].data, src->tensors[i].size);
    }
    gguf_close(dst);
    gguf_close(src);
}

static void expect_err(int rc, const char *err, const char *needle) {
    assert_int_equal(rc, -1);
    if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_errors(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct gguf_writer *w = gguf_writer_new();
    assert_int_equal(gguf_writer_set_u32(w, "a", 1, err), 0);
    expect_err(gguf_writer_set_str(w, "a", "x", err), err, "duplicate metadata key 'a'");
    expect_err(gguf_writer_set_u32(w, "general.alignment", 24, err), err, "not a power of two");
    expect_err(gguf_writer_set_u32(w, "", 1, err), err, "invalid length");
    expect_err(gguf_writer_set_arr(w, "arr", GGUF_VT_STRING, "x", 1, err), err, "not numeric");

    float x[64] = {0};
    const int64_t ne[] = {64, 1}, ne_odd[] = {48, 1}, ne_bad[] = {64, 0};
    assert_int_equal(gguf_writer_add_tensor(w, "t", AC_TYPE_F32, 2, ne, x, sizeof x, err), 0);
    expect_err(gguf_writer_add_tensor(w, "t", AC_TYPE_F32, 2, ne, x, sizeof x, err), err, "duplicate tensor name 't'");
    expect_err(gguf_writer_add_tensor(w, "u", AC_TYPE_F32, 2, ne, x, sizeof x - 4, err), err, "252 bytes given, its shape and type need 256");
    expect_err(gguf_writer_add_tensor(w, "u", AC_TYPE_Q4_0, 2, ne_odd, x, 27, err), err, "not a multiple");
    expect_err(gguf_writer_add_tensor(w, "u", 99, 2, ne, x, sizeof x, err), err, "unsupported tensor type id 99");
    expect_err(gguf_writer_add_tensor(w, "u", AC_TYPE_F32, 5, ne, x, sizeof x, err), err, "dimensions");
    expect_err(gguf_writer_add_tensor(w, "u", AC_TYPE_F32, 2, ne_bad, x, 0, err), err, "invalid shape");

    /* a directory that does not exist: error, nothing created */
    expect_err(gguf_writer_write(w, "/nonexistent_ac_dir/x.gguf", err), err, "/nonexistent_ac_dir/x.gguf.tmp");
    assert_false(exists("/nonexistent_ac_dir"));
    /* the rename fails (the target is a non-empty directory): the temp file goes */
    char dir[64], inner[96];
    snprintf(dir, sizeof dir, "/tmp/ac_writer_dir_%d", (int)getpid());
    snprintf(inner, sizeof inner, "%s/keep", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    FILE *keep = fopen(inner, "w");
    assert_non_null(keep);
    fclose(keep);
    expect_err(gguf_writer_write(w, dir, err), err, "rename");
    assert_false(tmp_exists(dir));
    unlink(inner);
    rmdir(dir);
    /* the writer stays usable: a good path still works */
    assert_int_equal(gguf_writer_write(w, tmp_path, err), 0);
    gguf_writer_free(w);
    struct gguf_file *f;
    if (gguf_open(&f, tmp_path, err) != 0) fail_msg("%s", err);
    assert_int_equal(f->n_tensors, 1);
    gguf_close(f);
}

/* An empty file (no metadata, no tensors) is valid GGUF. */
static void test_empty(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct gguf_writer *w = gguf_writer_new();
    assert_int_equal(gguf_writer_write(w, tmp_path, err), 0);
    gguf_writer_free(w);
    struct gguf_file *f;
    if (gguf_open(&f, tmp_path, err) != 0) fail_msg("%s", err);
    assert_int_equal(f->n_kv, 0);
    assert_int_equal(f->n_tensors, 0);
    gguf_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
