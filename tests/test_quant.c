/* test_quant.c - the quant module against ggml and against itself.
 *
 * Every check loops over the traits table, so a new type is covered by
 * adding it there (and a fixture): ggml bit-equality of each reference
 * quantizer (fixtures from scripts/make_quant_fixtures.py), round-trip
 * error, quantized dot vs float dot, every SIMD level vs the reference at
 * odd block counts and misaligned pointers, and fp16 edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"
#include "quant/quant_internal.h"

#define FIXTURE_N 1024

static const enum ac_simd_level all_levels[] = {AC_SIMD_SCALAR, AC_SIMD_AVX2, AC_SIMD_AVX512VNNI};
static const char *const level_names[] = {"scalar", "avx2", "avx512vnni"};

/* ---- helpers ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static float rng_uniform(void) { /* (0, 1) */
    return ((float)(rng_u32() >> 8) + 0.5f) / 16777216.0f;
}

static float rng_normal(void) {
    return sqrtf(-2.0f * logf(rng_uniform())) * cosf(6.2831853f * rng_uniform());
}

static void fill_normal(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = rng_normal();
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Each supported type id, in id order. */
static int supported_types(uint32_t *ids) {
    int count = 0;
    for (uint32_t t = 0; t < AC_TYPE_COUNT; t++)
        if (ac_type_traits(t)) ids[count++] = t;
    return count;
}

static const struct ac_type_traits *traits_by_name(const char *name) {
    for (uint32_t t = 0; t < AC_TYPE_COUNT; t++) {
        const struct ac_type_traits *tt = ac_type_traits(t);
        if (tt && strcmp(tt->name, name) == 0) return tt;
    }
    return NULL;
}

static void *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s (run the tests from the repository root)", path);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = xmalloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Block count for a test size class: element counts are multiples of the
 * block size; "odd" classes give 1, 7, 33 blocks and a larger odd count. */
static int64_t elements_for(const struct ac_type_traits *t, int blocks) {
    return (int64_t)blocks * t->blck_size;
}

/* ---- traits table ---- */

static void test_traits_table(void **state) {
    (void)state;
    static const struct {
        uint32_t id;
        const char *name;
        int blck;
        size_t size;
        uint32_t dot_type;
    } expected[] = {
        {AC_TYPE_F32, "f32", 1, 4, AC_TYPE_F32},       {AC_TYPE_F16, "f16", 1, 2, AC_TYPE_F16},
        {AC_TYPE_Q4_0, "q4_0", 32, 18, AC_TYPE_Q8_0},  {AC_TYPE_Q4_1, "q4_1", 32, 20, AC_TYPE_Q8_1},
        {AC_TYPE_Q5_0, "q5_0", 32, 22, AC_TYPE_Q8_0},  {AC_TYPE_Q5_1, "q5_1", 32, 24, AC_TYPE_Q8_1},
        {AC_TYPE_Q8_0, "q8_0", 32, 34, AC_TYPE_Q8_0},  {AC_TYPE_Q8_1, "q8_1", 32, 36, AC_TYPE_Q8_1},
        {AC_TYPE_Q2_K, "q2_K", 256, 84, AC_TYPE_Q8_K}, {AC_TYPE_Q3_K, "q3_K", 256, 110, AC_TYPE_Q8_K},
        {AC_TYPE_Q4_K, "q4_K", 256, 144, AC_TYPE_Q8_K}, {AC_TYPE_Q5_K, "q5_K", 256, 176, AC_TYPE_Q8_K},
        {AC_TYPE_Q6_K, "q6_K", 256, 210, AC_TYPE_Q8_K}, {AC_TYPE_Q8_K, "q8_K", 256, 292, AC_TYPE_Q8_K},
        {AC_TYPE_Q2_0, "q2_0", 32, 12, AC_TYPE_Q8_1},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const struct ac_type_traits *t = ac_type_traits(expected[i].id);
        assert_non_null(t);
        assert_string_equal(t->name, expected[i].name);
        assert_int_equal(t->blck_size, expected[i].blck);
        assert_int_equal(t->type_size, expected[i].size);
        assert_int_equal(t->vec_dot_type, expected[i].dot_type);
        assert_int_equal(ac_row_size(expected[i].id, 4 * 256), 4 * 256 / expected[i].blck * expected[i].size);
    }
    uint32_t ids[AC_TYPE_COUNT];
    const int n = supported_types(ids);
    assert_int_equal(n, (int)(sizeof expected / sizeof expected[0]));
    for (int i = 0; i < n; i++) {
        const struct ac_type_traits *t = ac_type_traits(ids[i]);
        assert_non_null(t->to_float);
        assert_non_null(t->from_float_ref);
        assert_non_null(t->from_float);
        assert_non_null(ac_type_traits(t->vec_dot_type));
        assert_true(t->is_quantized == (t->blck_size > 1));
        /* a weight type has both dots; Q8_1 / Q8_K are activations only */
        assert_true((t->vec_dot == NULL) == (t->vec_dot_ref == NULL));
        if (ids[i] != AC_TYPE_Q8_1 && ids[i] != AC_TYPE_Q8_K) assert_non_null(t->vec_dot);
    }
    assert_null(ac_type_traits(20)); /* IQ4_NL id: not supported */
    assert_null(ac_type_traits(AC_TYPE_COUNT));
    assert_null(ac_type_traits(0xFFFFFFFFu));
    assert_int_equal(ac_row_size(AC_TYPE_Q4_0, 64), 36);
    assert_int_equal(ac_row_size(AC_TYPE_Q4_0, 33), 0);
    assert_int_equal(ac_row_size(AC_TYPE_Q4_K, 255), 0);
    assert_int_equal(ac_row_size(AC_TYPE_Q4_K, -256), 0);
    assert_int_equal(ac_row_size(20, 64), 0);
    assert_int_equal(ac_row_size(AC_TYPE_Q5_1, 64), 48);
    assert_int_equal(ac_row_size(AC_TYPE_Q3_K, 512), 220);
    assert_int_equal(ac_row_size(AC_TYPE_F16, 3), 6);
}

/* ---- bit equality with ggml ---- */

static void test_ggml_fixtures(void **state) {
    (void)state;
    static const char *const names[] = {"f16",  "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1",
                                         "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K"};
    size_t in_len;
    float *x = read_file("tests/fixtures/quant_input.f32", &in_len);
    assert_int_equal(in_len, FIXTURE_N * sizeof(float));
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "tests/fixtures/quant_%s.bin", names[i]);
        size_t len;
        uint8_t *want = read_file(path, &len);
        const struct ac_type_traits *t = traits_by_name(names[i]);
        assert_non_null(t);
        const uint32_t id = (uint32_t)(t - ac_type_traits(0));
        assert_int_equal(len, ac_row_size(id, FIXTURE_N));
        uint8_t *got = xmalloc(len + 1);
        memset(got, 0, len + 1);
        t->from_float_ref(x, got, FIXTURE_N);
        for (size_t b = 0; b < len; b++)
            if (got[b] != want[b])
                fail_msg("%s: from_float_ref differs from ggml at byte %zu (block %zu): got %02x want %02x", names[i], b,
                         b / t->type_size, got[b], want[b]);
        /* every SIMD level's from_float gives the same bits, also misaligned */
        for (size_t l = 0; l < sizeof all_levels / sizeof all_levels[0]; l++) {
            if (!ac_quant_use_level(all_levels[l])) continue;
            memset(got, 0, len + 1);
            t->from_float(x, got + 1, FIXTURE_N);
            if (memcmp(got + 1, want, len) != 0)
                fail_msg("%s: from_float (%s) differs from ggml", names[i], level_names[l]);
        }
        ac_quant_force_scalar(false);
        free(got);
        free(want);
    }
    free(x);
}

/* ---- round trip ---- */

/* RMS error of quantize -> dequantize, relative to the data's RMS, on N(0,1). */
static void test_roundtrip_rmse(void **state) {
    (void)state;
    static const struct {
        uint32_t id;
        double bound;
    } bounds[] = {
        {AC_TYPE_F32, 0},       {AC_TYPE_F16, 4e-4},   {AC_TYPE_Q4_0, 0.12}, {AC_TYPE_Q4_1, 0.10},
        {AC_TYPE_Q8_0, 0.008},  {AC_TYPE_Q8_1, 0.008}, {AC_TYPE_Q2_K, 0.40}, {AC_TYPE_Q4_K, 0.10},
        {AC_TYPE_Q6_K, 0.025}, {AC_TYPE_Q8_K, 0.008}, {AC_TYPE_Q5_0, 0.06}, {AC_TYPE_Q5_1, 0.05},
        {AC_TYPE_Q3_K, 0.20},  {AC_TYPE_Q5_K, 0.05},
    };
    const int64_t n = 8192;
    float *x = xmalloc(n * sizeof(float)), *y = xmalloc(n * sizeof(float)), *y2 = xmalloc(n * sizeof(float));
    fill_normal(x, n);
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        const struct ac_type_traits *t = ac_type_traits(bounds[i].id);
        uint8_t *q = xmalloc(ac_row_size(bounds[i].id, n) + 1);
        t->from_float_ref(x, q, n);
        ac_quant_force_scalar(true);
        t->to_float(q, y, n);
        double err = 0, ref = 0;
        for (int64_t j = 0; j < n; j++) {
            err += (double)(x[j] - y[j]) * (x[j] - y[j]);
            ref += (double)x[j] * x[j];
        }
        const double rel = sqrt(err / ref);
        if (rel > bounds[i].bound) fail_msg("%s: round-trip relative RMSE %.5f > %.5f", t->name, rel, bounds[i].bound);
        /* SIMD dequantizers agree with the scalar one, misaligned too */
        for (size_t l = 1; l < sizeof all_levels / sizeof all_levels[0]; l++) {
            if (!ac_quant_use_level(all_levels[l])) continue;
            memmove(q + 1, q, ac_row_size(bounds[i].id, n));
            t->to_float(q + 1, y2, n);
            memmove(q, q + 1, ac_row_size(bounds[i].id, n));
            for (int64_t j = 0; j < n; j++)
                if (fabsf(y2[j] - y[j]) > 1e-6f * (fabsf(y[j]) + 1e-6f))
                    fail_msg("%s: to_float (%s) element %lld: %g vs scalar %g", t->name, level_names[l], (long long)j,
                             (double)y2[j], (double)y[j]);
        }
        ac_quant_force_scalar(false);
        free(q);
    }
    free(x);
    free(y);
    free(y2);
}

/* ---- dots ---- */

/* Quantizes x (n floats) as type id into a fresh buffer at byte offset off. */
static uint8_t *quantize_at(uint32_t id, const float *x, int64_t n, size_t off, bool ref) {
    const struct ac_type_traits *t = ac_type_traits(id);
    uint8_t *buf = xmalloc(ac_row_size(id, n) + off);
    (ref ? t->from_float_ref : t->from_float)(x, buf + off, n);
    return buf;
}

/* Quantized dot vs float dot on N(0,1) data, relative to |x| |y|. */
static void test_vec_dot_vs_float(void **state) {
    (void)state;
    static const struct {
        uint32_t id;
        double bound;
    } bounds[] = {
        {AC_TYPE_F32, 1e-6},   {AC_TYPE_F16, 1e-3},   {AC_TYPE_Q4_0, 0.02}, {AC_TYPE_Q4_1, 0.02},
        {AC_TYPE_Q8_0, 0.004}, {AC_TYPE_Q2_K, 0.06}, {AC_TYPE_Q4_K, 0.02}, {AC_TYPE_Q6_K, 0.006},
        {AC_TYPE_Q5_0, 0.01},  {AC_TYPE_Q5_1, 0.01}, {AC_TYPE_Q3_K, 0.03}, {AC_TYPE_Q5_K, 0.01},
    };
    const int64_t n = 4096;
    float *x = xmalloc(n * sizeof(float)), *y = xmalloc(n * sizeof(float));
    for (int rep = 0; rep < 4; rep++) {
        fill_normal(x, n);
        fill_normal(y, n);
        double exact = 0, nx = 0, ny = 0;
        for (int64_t j = 0; j < n; j++) {
            exact += (double)x[j] * y[j];
            nx += (double)x[j] * x[j];
            ny += (double)y[j] * y[j];
        }
        const double scale = sqrt(nx * ny);
        for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
            const struct ac_type_traits *t = ac_type_traits(bounds[i].id);
            uint8_t *qx = quantize_at(bounds[i].id, x, n, 0, true);
            uint8_t *qy = quantize_at(t->vec_dot_type, y, n, 0, false);
            float got_ref, got;
            t->vec_dot_ref((int)n, &got_ref, qx, qy);
            t->vec_dot((int)n, &got, qx, qy);
            const double e_ref = fabs(got_ref - exact) / scale, e = fabs(got - exact) / scale;
            if (e_ref > bounds[i].bound || e > bounds[i].bound)
                fail_msg("%s: dot error %.5f (ref) / %.5f (fast) of |x||y| > %.5f", t->name, e_ref, e,
                         bounds[i].bound);
            free(qx);
            free(qy);
        }
    }
    free(x);
    free(y);
}

/* Every SIMD level's vec_dot vs the reference kernel at odd block counts,
 * with both operands misaligned by one byte. */
static void test_vec_dot_simd_vs_ref(void **state) {
    (void)state;
    static const int block_counts[] = {1, 7, 33, 129};
    uint32_t ids[AC_TYPE_COUNT];
    const int ntypes = supported_types(ids);
    for (int ti = 0; ti < ntypes; ti++) {
        const struct ac_type_traits *t = ac_type_traits(ids[ti]);
        if (!t->vec_dot_ref) continue;
        for (size_t bi = 0; bi < sizeof block_counts / sizeof block_counts[0]; bi++) {
            /* block-size-1 types get 1, 7, 33, 1023 elements */
            const int blocks = t->blck_size == 1 && block_counts[bi] == 129 ? 1023 : block_counts[bi];
            const int64_t n = elements_for(t, blocks);
            float *x = xmalloc(n * sizeof(float)), *y = xmalloc(n * sizeof(float));
            fill_normal(x, n);
            fill_normal(y, n);
            for (int64_t j = 0; j < n; j += 5) y[j] *= 4; /* uneven magnitudes */
            uint8_t *qx = quantize_at(ids[ti], x, n, 1, true);
            uint8_t *qy = quantize_at(t->vec_dot_type, y, n, 1, true);
            /* tolerance: float reordering error, relative to sum |x_i y_i| */
            float *dx = xmalloc(n * sizeof(float)), *dy = xmalloc(n * sizeof(float));
            ac_quant_force_scalar(true);
            t->to_float(qx + 1, dx, n);
            ac_type_traits(t->vec_dot_type)->to_float(qy + 1, dy, n);
            double abs_sum = 0;
            for (int64_t j = 0; j < n; j++) abs_sum += fabs((double)dx[j] * dy[j]);
            float want;
            t->vec_dot_ref((int)n, &want, qx + 1, qy + 1);
            for (size_t l = 0; l < sizeof all_levels / sizeof all_levels[0]; l++) {
                if (!ac_quant_use_level(all_levels[l])) continue;
                float got = NAN;
                t->vec_dot((int)n, &got, qx + 1, qy + 1);
                if (!(fabs((double)got - want) <= 2e-6 * abs_sum + 1e-30))
                    fail_msg("%s x %d blocks (%s): vec_dot %.9g vs ref %.9g (sum|xy| %.3g)", t->name, blocks,
                             level_names[l], (double)got, (double)want, abs_sum);
            }
            ac_quant_force_scalar(false);
            free(x);
            free(y);
            free(qx);
            free(qy);
            free(dx);
            free(dy);
        }
    }
}

/* Weight blocks of random bytes (every code, scale and high-bit pattern,
 * including ones no quantizer writes) with sane fp16 fields: every SIMD
 * level's vec_dot matches the reference, misaligned, at odd block counts. */
static void test_vec_dot_random_codes(void **state) {
    (void)state;
    static const struct {
        uint32_t id;
        int n_half;            /* fp16 fields per block */
        size_t half_off[2];    /* their offsets */
    } types[] = {
        {AC_TYPE_Q4_0, 1, {offsetof(block_q4_0, d)}},
        {AC_TYPE_Q4_1, 2, {offsetof(block_q4_1, d), offsetof(block_q4_1, m)}},
        {AC_TYPE_Q5_0, 1, {offsetof(block_q5_0, d)}},
        {AC_TYPE_Q5_1, 2, {offsetof(block_q5_1, d), offsetof(block_q5_1, m)}},
        {AC_TYPE_Q8_0, 1, {offsetof(block_q8_0, d)}},
        {AC_TYPE_Q2_K, 2, {offsetof(block_q2_K, d), offsetof(block_q2_K, dmin)}},
        {AC_TYPE_Q3_K, 1, {offsetof(block_q3_K, d)}},
        {AC_TYPE_Q4_K, 2, {offsetof(block_q4_K, d), offsetof(block_q4_K, dmin)}},
        {AC_TYPE_Q5_K, 2, {offsetof(block_q5_K, d), offsetof(block_q5_K, dmin)}},
        {AC_TYPE_Q6_K, 1, {offsetof(block_q6_K, d)}},
        {AC_TYPE_Q2_0, 2, {offsetof(block_q2_0, d), offsetof(block_q2_0, m)}},
    };
    static const int block_counts[] = {1, 3, 7, 33};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const struct ac_type_traits *t = ac_type_traits(types[ti].id);
        assert_non_null(t);
        for (size_t bi = 0; bi < sizeof block_counts / sizeof block_counts[0]; bi++) {
            const int64_t n = elements_for(t, block_counts[bi]);
            uint8_t *qx = xmalloc(ac_row_size(types[ti].id, n) + 1);
            for (int b = 0; b < block_counts[bi]; b++) {
                uint8_t *blk = qx + 1 + (size_t)b * t->type_size;
                for (size_t k = 0; k < t->type_size; k++) blk[k] = (uint8_t)rng_u32();
                for (int h = 0; h < types[ti].n_half; h++) {
                    const uint16_t v = ac_fp32_to_fp16((rng_uniform() - 0.3f) * 0.05f);
                    memcpy(blk + types[ti].half_off[h], &v, 2);
                }
            }
            float *y = xmalloc(n * sizeof(float)), *dx = xmalloc(n * sizeof(float)), *dy = xmalloc(n * sizeof(float));
            fill_normal(y, n);
            uint8_t *qy = quantize_at(t->vec_dot_type, y, n, 1, true);
            ac_quant_force_scalar(true);
            t->to_float(qx + 1, dx, n);
            ac_type_traits(t->vec_dot_type)->to_float(qy + 1, dy, n);
            double abs_sum = 0, exact = 0;
            for (int64_t j = 0; j < n; j++) {
                abs_sum += fabs((double)dx[j] * dy[j]);
                exact += (double)dx[j] * dy[j];
            }
            float want;
            t->vec_dot_ref((int)n, &want, qx + 1, qy + 1);
            /* the reference dot is the dequantized dot, up to float rounding
             * (Q8_1 partners: and up to the fp16 rounding of s) */
            if (t->vec_dot_type != AC_TYPE_Q8_1 && !(fabs(want - exact) <= 2e-6 * abs_sum + 1e-30))
                fail_msg("%s x %d random blocks: vec_dot_ref %.9g vs dequantized dot %.9g", t->name, block_counts[bi],
                         (double)want, exact);
            for (size_t l = 0; l < sizeof all_levels / sizeof all_levels[0]; l++) {
                if (!ac_quant_use_level(all_levels[l])) continue;
                float got = NAN;
                t->vec_dot((int)n, &got, qx + 1, qy + 1);
                if (!(fabs((double)got - want) <= 2e-6 * abs_sum + 1e-30))
                    fail_msg("%s x %d random blocks (%s): vec_dot %.9g vs ref %.9g", t->name, block_counts[bi],
                             level_names[l], (double)got, (double)want);
            }
            ac_quant_force_scalar(false);
            free(qx);
            free(qy);
            free(y);
            free(dx);
            free(dy);
        }
    }
}

/* SIMD activation quantizers give the reference's bits on random data,
 * zero blocks and blocks whose largest magnitude appears with both signs. */
static void test_from_float_simd_bits(void **state) {
    (void)state;
    const int64_t n = 33 * 256;
    float *x = xmalloc(n * sizeof(float));
    fill_normal(x, n);
    memset(x + 256, 0, 256 * sizeof(float)); /* a zero block of every type */
    x[600] = 7.0f;                           /* largest |x| of its Q8_K block, both signs */
    x[700] = -7.0f;
    x[900] = -9.0f;
    x[1000] = 9.0f;
    for (int64_t j = 2048; j < 4096; j++) x[j] = (float)((int)(rng_u32() % 255) - 127) * 0.5f; /* ties */
    uint32_t ids[AC_TYPE_COUNT];
    const int ntypes = supported_types(ids);
    for (int ti = 0; ti < ntypes; ti++) {
        const struct ac_type_traits *t = ac_type_traits(ids[ti]);
        const size_t len = ac_row_size(ids[ti], n);
        uint8_t *want = quantize_at(ids[ti], x, n, 0, true);
        for (size_t l = 0; l < sizeof all_levels / sizeof all_levels[0]; l++) {
            if (!ac_quant_use_level(all_levels[l])) continue;
            uint8_t *got = quantize_at(ids[ti], x, n, 1, false);
            for (size_t b = 0; b < len; b++)
                if (got[1 + b] != want[b])
                    fail_msg("%s: from_float (%s) byte %zu: %02x vs ref %02x", t->name, level_names[l], b, got[1 + b],
                             want[b]);
            free(got);
        }
        free(want);
    }
    ac_quant_force_scalar(false);
    free(x);
}

/* ---- fp16 ---- */

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_fp16(void **state) {
    (void)state;
    /* every half survives a round trip; NaNs stay NaN */
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = ac_fp16_to_fp32((uint16_t)h);
        const bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan) {
            assert_true(isnan(f));
            assert_int_equal(ac_fp32_to_fp16(f), (h & 0x8000) | 0x7e00);
        } else if (ac_fp32_to_fp16(f) != h) {
            fail_msg("half %04x -> %g -> %04x", h, (double)f, ac_fp32_to_fp16(f));
        }
    }
    assert_true(ac_fp16_to_fp32(0x0001) == 0x1p-24f);
    assert_true(ac_fp16_to_fp32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(ac_fp16_to_fp32(0x0400) == 0x1p-14f);
    assert_true(ac_fp16_to_fp32(0x7bff) == 65504.0f);
    assert_true(isinf(ac_fp16_to_fp32(0x7c00)) && ac_fp16_to_fp32(0x7c00) > 0);
    assert_true(isinf(ac_fp16_to_fp32(0xfc00)) && ac_fp16_to_fp32(0xfc00) < 0);
    assert_int_equal(bits_of(ac_fp16_to_fp32(0x8000)), 0x80000000u);

    /* midpoints between neighbours round to the even one, anything off
     * the midpoint to the nearer one (subnormals included) */
    for (uint32_t h = 0; h < 0x7bff; h++) {
        const float a = ac_fp16_to_fp32((uint16_t)h), b = ac_fp16_to_fp32((uint16_t)(h + 1));
        const float mid = (a + b) / 2; /* exact: halves have 11-bit significands */
        const uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (ac_fp32_to_fp16(mid) != even) fail_msg("tie %g (between %04x and %04x) -> %04x", (double)mid, h, h + 1, ac_fp32_to_fp16(mid));
        assert_int_equal(ac_fp32_to_fp16(nextafterf(mid, 0)), h);
        assert_int_equal(ac_fp32_to_fp16(nextafterf(mid, INFINITY)), h + 1);
        assert_int_equal(ac_fp32_to_fp16(-mid), 0x8000 | even);
    }
    assert_int_equal(ac_fp32_to_fp16(65519.996f), 0x7bff);
    assert_int_equal(ac_fp32_to_fp16(65520.0f), 0x7c00); /* tie with an odd 65504: up to inf */
    assert_int_equal(ac_fp32_to_fp16(1e10f), 0x7c00);
    assert_int_equal(ac_fp32_to_fp16(-1e10f), 0xfc00);
    assert_int_equal(ac_fp32_to_fp16(INFINITY), 0x7c00);
    assert_int_equal(ac_fp32_to_fp16(-INFINITY), 0xfc00);
    assert_int_equal(ac_fp32_to_fp16(0x1p-25f), 0x0000);          /* tie with 0: even */
    assert_int_equal(ac_fp32_to_fp16(0x1.0002p-25f), 0x0001);
    assert_int_equal(ac_fp32_to_fp16(3 * 0x1p-25f), 0x0002);      /* tie 1|2: even */
    assert_int_equal(ac_fp32_to_fp16(-0.0f), 0x8000);
    assert_int_equal(ac_fp32_to_fp16(float_of(0x00000001u)), 0x0000); /* fp32 subnormal */
    assert_int_equal(ac_fp32_to_fp16(-float_of(0x007fffffu)), 0x8000);
    assert_int_equal(ac_fp32_to_fp16(NAN), 0x7e00);
    assert_int_equal(ac_fp32_to_fp16(float_of(0xff800001u)), 0xfe00); /* signalling NaN, negative */
    assert_int_equal(ac_fp32_to_fp16(1.0f), 0x3c00);
    assert_int_equal(ac_fp32_to_fp16(0x1.002p0f), 0x3c00); /* 1 + 2^-11: tie, even */
    assert_int_equal(ac_fp32_to_fp16(0x1.006p0f), 0x3c02); /* 1 + 3*2^-11: tie, even */
}

/* ---- init ---- */

static void *init_thread(void *arg) {
    (void)arg;
    ac_quant_init();
    return NULL;
}

static void test_init(void **state) {
    (void)state;
    pthread_t th[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, init_thread, NULL), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    ac_quant_init();
    const char *name = ac_quant_simd_name();
    assert_true(strcmp(name, "scalar") == 0 || strcmp(name, "avx2") == 0 || strcmp(name, "avx512") == 0 ||
                strcmp(name, "avx512vnni") == 0);
    print_message("quant SIMD level: %s\n", name);
    if (ac_quant_cpu_has(AC_SIMD_AVX512VNNI)) assert_string_equal(name, "avx512vnni");

    ac_quant_force_scalar(true);
    assert_string_equal(ac_quant_simd_name(), "scalar");
    for (uint32_t t = 0; t < AC_TYPE_COUNT; t++) {
        const struct ac_type_traits *tt = ac_type_traits(t);
        if (tt) assert_ptr_equal(tt->vec_dot, tt->vec_dot_ref);
        if (tt) assert_ptr_equal(tt->from_float, tt->from_float_ref);
    }
    ac_quant_force_scalar(false);
    assert_string_equal(ac_quant_simd_name(), name);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_traits_table),
        cmocka_unit_test(test_fp16),
        cmocka_unit_test(test_ggml_fixtures),
        cmocka_unit_test(test_roundtrip_rmse),
        cmocka_unit_test(test_vec_dot_vs_float),
        cmocka_unit_test(test_vec_dot_simd_vs_ref),
        cmocka_unit_test(test_vec_dot_random_codes),
        cmocka_unit_test(test_from_float_simd_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
