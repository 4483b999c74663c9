/* test_gemm.c - the gemm kernels (ac_quant_gemm) against vec_dot.
 *
 * Every type with a kernel at any SIMD level is run at every level the CPU
 * has, against the scalar reference (vec_dot_ref per (row, token) pair), at
 * row and token counts that are not multiples of any tile (rows 1, 7, 33;
 * tokens 1, 3, 5, 17), with misaligned pointers and padded strides, with
 * and without bias and accumulation; one token at a time must give the
 * batch's bits. The x16 layouts' kernels (Q4_0, Q4_1, Q8_0) give the plain ones' bits,
 * Q2_0's and Q2_K's (no plain kernel) the reference's.
 * Then end to end: a tiny model with quantized matrices gives
 * the same logits through the gemm kernels as through the scalar vec_dot
 * path, within 1e-3 of the largest logit, and token by token the same bits
 * as in one batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_builder.h"
#include "model/model.h"
#include "quant/gemm_internal.h"
#include "quant/quant.h"

static const enum ac_simd_level all_levels[] = {AC_SIMD_SCALAR, AC_SIMD_AVX2, AC_SIMD_AVX512VNNI};
static const char *const level_names[] = {"scalar", "avx2", "avx512vnni"};
static const uint32_t gemm_types[] = {AC_TYPE_Q4_0, AC_TYPE_Q4_1, AC_TYPE_Q8_0, AC_TYPE_F16, AC_TYPE_F32};

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static float rng_sym(void) { /* [-1, 1) */
    return (float)(rng_u32() >> 8) / 8388608.0f - 1.0f;
}

/* n_rows rows of n random values in type, each at stride bytes from base. */
static void fill_rows(uint32_t type, uint8_t *base, size_t stride, int n_rows, int n, float scale) {
    const struct ac_type_traits *tr = ac_type_traits(type);
    float *f = malloc(sizeof(float) * (size_t)n);
    for (int r = 0; r < n_rows; r++) {
        for (int i = 0; i < n; i++) f[i] = scale * rng_sym() + (i % 5 == 0 ? 0.3f * scale : 0.0f);
        if (type == AC_TYPE_F32)
            memcpy(base + (size_t)r * stride, f, sizeof(float) * (size_t)n);
        else
            tr->from_float_ref(f, base + (size_t)r * stride, n);
    }
    free(f);
}

/* One case: kernel of type at level vs the reference, every option. */
static void check_case(uint32_t type, enum ac_simd_level level, ac_gemm_fn gemm, int n, int n_rows, int n_tokens) {
    const struct ac_type_traits *tw = ac_type_traits(type);
    const uint32_t xt = tw->vec_dot_type;
    const size_t wrow = ac_row_size(type, n), xrow = ac_row_size(xt, n);
    const size_t w_stride = wrow + 3, x_stride = xrow + 5, out_stride = (size_t)n_rows + 3;
    /* +1: every buffer starts at an odd address */
    uint8_t *wbuf = malloc(w_stride * (size_t)n_rows + 1), *xbuf = malloc(x_stride * (size_t)n_tokens + 1);
    uint8_t *w = wbuf + 1, *x = xbuf + 1;
    fill_rows(type, w, w_stride, n_rows, n, 0.5f);
    fill_rows(xt, x, x_stride, n_tokens, n, 2.0f);
    const size_t n_out = out_stride * (size_t)n_tokens;
    float *bias = malloc(sizeof(float) * (size_t)n_rows);
    for (int r = 0; r < n_rows; r++) bias[r] = rng_sym();
    /* outputs one float past a 16-byte boundary: no vector alignment */
    float *obuf = malloc(sizeof(float) * (n_out + 1)), *rbuf = malloc(sizeof(float) * (n_out + 1));
    float *init = malloc(sizeof(float) * n_out);
    for (size_t i = 0; i < n_out; i++) init[i] = rng_sym();
    float *got = malloc(sizeof(float) * n_out), *want = malloc(sizeof(float) * n_out);
    for (int opt = 0; opt < 4; opt++) {
        const float *b = opt & 1 ? bias : NULL;
        const bool acc = opt & 2;
        float *o = obuf + 1, *ro = rbuf + 1;
        memcpy(o, init, sizeof(float) * n_out);
        memcpy(ro, init, sizeof(float) * n_out);
        gemm(n, o, out_stride, w, w_stride, n_rows, x, x_stride, n_tokens, b, acc);
        ac_gemm_by_dot(tw->vec_dot_ref, n, ro, out_stride, w, w_stride, n_rows, x, x_stride, n_tokens, b, acc);
        memcpy(got, o, sizeof(float) * n_out);
        memcpy(want, ro, sizeof(float) * n_out);
        float amax = 0;
        for (size_t i = 0; i < n_out; i++) amax = fmaxf(amax, fabsf(want[i]));
        for (int t = 0; t < n_tokens; t++)
            for (size_t r = 0; r < out_stride; r++) {
                const size_t i = (size_t)t * out_stride + r;
                if (r >= (size_t)n_rows) { /* padding: untouched */
                    if (memcmp(&got[i], &init[i], sizeof(float)))
                        fail_msg("%s %s: wrote padding at token %d, col %zu", tw->name, level_names[level], t, r);
                    continue;
                }
                if (!(fabsf(got[i] - want[i]) <= 2e-5f * amax + 1e-6f))
                    fail_msg("%s %s n=%d rows=%d tokens=%d opt=%d: [%d][%zu] got %.7g want %.7g", tw->name,
                             level_names[level], n, n_rows, n_tokens, opt, t, r, (double)got[i], (double)want[i]);
            }
    }
    free(wbuf);
    free(xbuf);
    free(bias);
    free(obuf);
    free(rbuf);
    free(init);
    free(got);
    free(want);
}

static void test_gemm_vs_ref(void **state) {
    (void)state;
    ac_quant_init();
    static const int rows[] = {1, 7, 16, 33};
    static const int tokens[] = {1, 3, 5, 8, 17};
    static const int ns[] = {32, 96, 576};
    int kernels = 0;
    for (size_t ti = 0; ti < sizeof gemm_types / sizeof gemm_types[0]; ti++)
        for (size_t li = 0; li < sizeof all_levels / sizeof all_levels[0]; li++) {
            const enum ac_simd_level level = all_levels[li];
            if (!ac_quant_cpu_has(level)) continue;
            const ac_gemm_fn gemm = ac_gemm_select(gemm_types[ti], level);
            if (!gemm) continue;
            kernels++;
            for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
                for (size_t b = 0; b < sizeof rows / sizeof rows[0]; b++)
                    for (size_t c = 0; c < sizeof tokens / sizeof tokens[0]; c++)
                        check_case(gemm_types[ti], level, gemm, ns[a], rows[b], tokens[c]);
            if (ac_type_traits(gemm_types[ti])->blck_size == 1) /* float rows: any length, masked tails */
                for (int odd = 1; odd <= 61; odd += 12)
                    for (size_t c = 0; c < sizeof tokens / sizeof tokens[0]; c++)
                        check_case(gemm_types[ti], level, gemm, odd, 7, tokens[c]);
        }
    printf("  %d kernels checked\n", kernels);
    assert_true(kernels >= 5); /* scalar reference of each type at least */
}

/* Each output's bits depend only on its row and token: one token at a time
 * and any split of the rows give exactly the batch's result (what keeps
 * decode after prefill batch-invariant). */
static void test_gemm_bits_per_token(void **state) {
    (void)state;
    ac_quant_init();
    const int n_rows = 45, n_tokens = 11;
    int checked = 0;
    for (size_t ti = 0; ti < sizeof gemm_types / sizeof gemm_types[0]; ti++)
        for (size_t li = 0; li < sizeof all_levels / sizeof all_levels[0]; li++) {
            if (!ac_quant_cpu_has(all_levels[li])) continue;
            const ac_gemm_fn gemm = ac_gemm_select(gemm_types[ti], all_levels[li]);
            if (!gemm) continue;
            const uint32_t type = gemm_types[ti], xt = ac_type_traits(type)->vec_dot_type;
            /* an odd number of 32-blocks; float rows also a ragged tail */
            const int n = ac_type_traits(type)->blck_size == 1 ? 237 : 224;
            const size_t ws = ac_row_size(type, n), xs = ac_row_size(xt, n);
            uint8_t *w = malloc(ws * n_rows), *x = malloc(xs * n_tokens);
            fill_rows(type, w, ws, n_rows, n, 0.5f);
            fill_rows(xt, x, xs, n_tokens, n, 2.0f);
            float *batch = malloc(sizeof(float) * n_rows * n_tokens), *one = malloc(sizeof(float) * n_rows * n_tokens);
            gemm(n, batch, n_rows, w, ws, n_rows, x, xs, n_tokens, NULL, false);
            for (int t = 0; t < n_tokens; t++) {
                const int split = 1 + (int)(rng_u32() % (n_rows - 1)); /* rows [0, split), [split, n_rows) */
                gemm(n, one + (size_t)t * n_rows, n_rows, w, ws, split, x + (size_t)t * xs, xs, 1, NULL, false);
                gemm(n, one + (size_t)t * n_rows + split, n_rows, w + (size_t)split * ws, ws, n_rows - split,
                     x + (size_t)t * xs, xs, 1, NULL, false);
            }
            if (memcmp(batch, one, sizeof(float) * n_rows * n_tokens))
                fail_msg("%s %s: one token at a time differs from the batch", ac_type_traits(type)->name,
                         level_names[li]);
            checked++;
            free(w);
            free(x);
            free(batch);
            free(one);
        }
    assert_true(checked >= 5);
}

/* The x16 layouts (Q4_0, Q4_1, Q8_0, Q2_0, Q2_K): the scalar reference gives vec_dot_ref's
 * bits, and the AVX-512 kernel the plain kernel's bits (Q2_0, Q2_K: the reference's; one token and
 * batches, every option), at row counts that leave a ragged last group,
 * from an odd address. */
static void check_x16(uint32_t type, int n, int n_rows, int n_tokens) {
    const char *name = ac_type_traits(type)->name;
    const uint32_t xtype = ac_type_traits(type)->vec_dot_type; /* Q8_0, or Q8_1 for Q4_1 */
    const size_t wrow = ac_row_size(type, n), xrow = ac_row_size(xtype, n);
    const size_t w_stride = wrow + 3, out_stride = (size_t)n_rows + 2, n_out = out_stride * (size_t)n_tokens;
    const size_t psize = ac_x16_size(type, n_rows, n);
    assert_int_equal(psize, (size_t)((n_rows + 15) / 16 * 16) * wrow);
    uint8_t *wbuf = malloc(w_stride * (size_t)n_rows), *x = malloc(xrow * (size_t)n_tokens);
    uint8_t *pbuf = malloc(psize + 1), *packed = pbuf + 1;
    fill_rows(type, wbuf, w_stride, n_rows, n, 0.5f);
    fill_rows(xtype, x, xrow, n_tokens, n, 2.0f);
    char err[256] = "";
    assert_int_equal(ac_x16_pack(type, packed, wbuf, w_stride, n_rows, n, err), 0);
    float *bias = malloc(sizeof(float) * (size_t)n_rows), *init = malloc(sizeof(float) * n_out);
    for (int r = 0; r < n_rows; r++) bias[r] = rng_sym();
    for (size_t i = 0; i < n_out; i++) init[i] = rng_sym();
    float *want = malloc(sizeof(float) * n_out), *got = malloc(sizeof(float) * n_out);
    const bool simd = ac_quant_cpu_has(AC_SIMD_AVX512VNNI);
    for (int opt = 0; opt < 4; opt++) {
        const float *b = opt & 1 ? bias : NULL;
        const bool acc = opt & 2;
        memcpy(want, init, sizeof(float) * n_out);
        memcpy(got, init, sizeof(float) * n_out);
        ac_gemm_by_dot(ac_type_traits(type)->vec_dot_ref, n, want, out_stride, wbuf, w_stride, n_rows, x, xrow,
                       n_tokens, b, acc);
        ac_gemm_x16_ref(type)(n, got, out_stride, packed, wrow, n_rows, x, xrow, n_tokens, b, acc);
        if (memcmp(got, want, sizeof(float) * n_out))
            fail_msg("%sx16 ref n=%d rows=%d tokens=%d opt=%d differs from vec_dot_ref", name, n, n_rows, n_tokens,
                     opt);
        if (!simd) continue;
        /* Q2_0 and Q2_K have no plain-layout gemm: their x16 kernels give the reference's bits */
        const ac_gemm_fn plain = ac_gemm_select(type, AC_SIMD_AVX512VNNI);
        memcpy(got, init, sizeof(float) * n_out);
        if (plain) {
            memcpy(want, init, sizeof(float) * n_out);
            plain(n, want, out_stride, wbuf, w_stride, n_rows, x, xrow, n_tokens, b, acc);
        }
        ac_gemm_x16_avx512(type)(n, got, out_stride, packed, wrow, n_rows, x, xrow, n_tokens, b, acc);
        if (memcmp(got, want, sizeof(float) * n_out))
            fail_msg("%sx16 avx512 n=%d rows=%d tokens=%d opt=%d differs from the %s kernel", name, n, n_rows,
                     n_tokens, opt, name);
    }
    free(wbuf);
    free(x);
    free(pbuf);
    free(bias);
    free(init);
    free(want);
    free(got);
}

static void test_x16(void **state) {
    (void)state;
    ac_quant_init();
    static const uint32_t types[] = {AC_TYPE_Q4_0, AC_TYPE_Q4_1, AC_TYPE_Q8_0, AC_TYPE_Q2_0};
    static const int rows[] = {1, 7, 16, 33, 45};
    static const int tokens[] = {1, 3, 8, 17};
    static const int ns[] = {32, 96, 224, 576};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        assert_true(ac_x16_has(types[t]));
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t b = 0; b < sizeof rows / sizeof rows[0]; b++)
                for (size_t c = 0; c < sizeof tokens / sizeof tokens[0]; c++)
                    check_x16(types[t], ns[a], rows[b], tokens[c]);
    }
    /* Q2_K: rows of whole 256-element superblocks */
    assert_true(ac_x16_has(AC_TYPE_Q2_K));
    for (int a = 1; a <= 3; a += 2)
        for (size_t b = 0; b < sizeof rows / sizeof rows[0]; b++)
            for (size_t c = 0; c < sizeof tokens / sizeof tokens[0]; c++) check_x16(AC_TYPE_Q2_K, 256 * a, rows[b], tokens[c]);
    /* sizes that are no rows of the type, and types without the layout:
     * one error, nothing written */
    char err[256] = "";
    uint8_t dst[64], src[64] = {0};
    assert_int_equal(ac_x16_size(AC_TYPE_Q4_0, 3, 33), 0);
    assert_int_equal(ac_x16_size(AC_TYPE_Q8_0, 0, 32), 0);
    assert_int_equal(ac_x16_size(AC_TYPE_Q5_0, 16, 32), 0);
    assert_false(ac_x16_has(AC_TYPE_F16));
    assert_null(ac_gemm_x16_ref(AC_TYPE_Q5_0));
    assert_null(ac_quant_gemm_x16(AC_TYPE_F16));
    assert_int_equal(ac_x16_pack(AC_TYPE_Q4_0, dst, src, 18, 3, 33, err), -1);
    assert_non_null(strstr(err, "x16"));
    assert_int_equal(ac_x16_pack(AC_TYPE_Q8_0, dst, src, 34, -1, 32, err), -1);
    assert_int_equal(ac_x16_pack(AC_TYPE_Q5_0, dst, src, 22, 1, 32, err), -1);
}

/* ac_quant_gemm follows the level in use: none at scalar, SIMD kernels
 * (where there are) otherwise. */
static void test_selection(void **state) {
    (void)state;
    ac_quant_force_scalar(true);
    assert_null(ac_quant_gemm(AC_TYPE_Q4_0));
    ac_quant_force_scalar(false);
    const bool simd = ac_quant_cpu_has(AC_SIMD_AVX2);
    assert_int_equal(ac_quant_gemm(AC_TYPE_Q4_0) != NULL, simd);
    assert_int_equal(ac_quant_gemm(AC_TYPE_Q8_0) != NULL, simd);
    assert_int_equal(ac_quant_gemm(AC_TYPE_Q4_1) != NULL, simd);
    assert_null(ac_quant_gemm(AC_TYPE_COUNT));
    ac_quant_force_scalar(true);
    assert_null(ac_quant_gemm_x16(AC_TYPE_Q4_0));
    assert_null(ac_quant_gemm_x16(AC_TYPE_Q4_1));
    assert_null(ac_quant_gemm_x16(AC_TYPE_Q8_0));
    assert_null(ac_quant_gemm_x16(AC_TYPE_Q2_0));
    assert_null(ac_quant_gemm_x16(AC_TYPE_Q2_K));
    ac_quant_force_scalar(false);
    assert_int_equal(ac_quant_gemm_x16(AC_TYPE_Q4_0) != NULL, ac_quant_cpu_has(AC_SIMD_AVX512VNNI));
    assert_int_equal(ac_quant_gemm_x16(AC_TYPE_Q8_0) != NULL, ac_quant_cpu_has(AC_SIMD_AVX512VNNI));
    assert_int_equal(ac_quant_gemm_x16(AC_TYPE_Q4_1) != NULL, ac_quant_cpu_has(AC_SIMD_AVX512VNNI));
    assert_int_equal(ac_quant_gemm_x16(AC_TYPE_Q2_0) != NULL, ac_quant_cpu_has(AC_SIMD_AVX512VNNI));
    assert_int_equal(ac_quant_gemm_x16(AC_TYPE_Q2_K) != NULL, ac_quant_cpu_has(AC_SIMD_AVX512VNNI));
    assert_null(ac_quant_gemm_x16(AC_TYPE_Q5_0));
}

/* ---- end to end ---- */

/* A tiny llama GGUF whose matrices (and output.weight) are in type;
 * vectors and the embedding stay F32. */
static char *tiny_model(uint32_t type) {
    const int dim = 64, ffn = 160, vocab = 40, heads = 2;
    struct {
        const char *name;
        int64_t ne[2];
        int nd;
        bool mat;
    } t[] = {
        {"token_embd.weight", {dim, vocab}, 2, false},    {"output_norm.weight", {dim, 1}, 1, false},
        {"output.weight", {dim, vocab}, 2, true},         {"blk.0.attn_norm.weight", {dim, 1}, 1, false},
        {"blk.0.attn_q.weight", {dim, dim}, 2, true},     {"blk.0.attn_k.weight", {dim, dim}, 2, true},
        {"blk.0.attn_v.weight", {dim, dim}, 2, true},     {"blk.0.attn_output.weight", {dim, dim}, 2, true},
        {"blk.0.ffn_norm.weight", {dim, 1}, 1, false},    {"blk.0.ffn_gate.weight", {dim, ffn}, 2, true},
        {"blk.0.ffn_up.weight", {dim, ffn}, 2, true},     {"blk.0.ffn_down.weight", {ffn, dim}, 2, true},
    };
    const int nt = (int)(sizeof t / sizeof t[0]);
    struct gb b = {0};
    gb_header(&b, (uint64_t)nt, 8);
    gb_kv_str(&b, "general.architecture", "llama");
    gb_kv_u32(&b, "llama.block_count", 1);
    gb_kv_u32(&b, "llama.embedding_length", (uint32_t)dim);
    gb_kv_u32(&b, "llama.feed_forward_length", (uint32_t)ffn);
    gb_kv_u32(&b, "llama.attention.head_count", (uint32_t)heads);
    gb_kv_u32(&b, "llama.context_length", 64);
    gb_kv_f32(&b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gb_kv_f32(&b, "llama.rope.freq_base", 10000.0f);
    uint64_t off = 0;
    size_t sizes[16];
    for (int i = 0; i < nt; i++) {
        const uint32_t ty = t[i].mat ? type : AC_TYPE_F32;
        gb_tensor(&b, t[i].name, t[i].nd, t[i].ne, ty, off);
        sizes[i] = ac_row_size(ty, t[i].ne[0]) * (size_t)t[i].ne[1];
        off += (sizes[i] + 31) / 32 * 32;
    }
    gb_pad(&b, 32);
    for (int i = 0; i < nt; i++) {
        const uint32_t ty = t[i].mat ? type : AC_TYPE_F32;
        const size_t padded = (sizes[i] + 31) / 32 * 32;
        uint8_t *data = calloc(1, padded);
        const bool norm = !t[i].mat && t[i].ne[1] == 1;
        const int n = (int)t[i].ne[0];
        float *f = malloc(sizeof(float) * (size_t)n);
        for (int64_t r = 0; r < t[i].ne[1]; r++) {
            for (int k = 0; k < n; k++) f[k] = norm ? 1.0f + 0.1f * rng_sym() : 0.4f * rng_sym();
            uint8_t *row = data + (size_t)r * ac_row_size(ty, n);
            if (ty == AC_TYPE_F32)
                memcpy(row, f, sizeof(float) * (size_t)n);
            else
                ac_type_traits(ty)->from_float_ref(f, row, n);
        }
        gb_bytes(&b, data, padded);
        free(f);
        free(data);
    }
    char *path = gb_write_temp(&b);
    gb_free(&b);
    return path;
}

/* Logits of the prompt as one batch (AC_LOGITS_ALL) into out, at the
 * current SIMD level. */
static void run_batch(const struct ac_model *m, int threads, const int32_t *ids, int n, float *out) {
    char err[256];
    struct ac_context *c;
    const struct ac_context_params cp = {.n_ctx = 64, .n_batch = 32, .n_threads = threads};
    assert_int_equal(ac_context_new(&c, m, &cp, err), 0);
    assert_int_equal(ac_decode(c, ids, n, AC_LOGITS_ALL, out, err), 0);
    ac_context_free(c);
}

/* gemm path (best level) vs vec_dot path (scalar level: no gemm kernels,
 * vec_dot_ref) within 1e-3 of the largest logit, and token by token equal
 * to the batch bit for bit. */
static void test_model_gemm_vs_vec_dot(void **state) {
    (void)state;
    static const uint32_t types[] = {AC_TYPE_Q4_0, AC_TYPE_Q4_1, AC_TYPE_Q8_0, AC_TYPE_Q2_0};
    char err[256];
    enum { N = 19, VOCAB = 40 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(rng_u32() % VOCAB);
    ac_quant_init();
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        char *path = tiny_model(types[ti]);
        struct ac_model *m;
        assert_int_equal(ac_model_load(&m, path, err), 0);
        /* matrices of the x16 types get their x16 copies where the kernel runs */
        const bool x16 = ac_x16_has(types[ti]) && ac_quant_cpu_has(AC_SIMD_AVX512VNNI);
        assert_int_equal(m->layers[0].w_down.x16 != NULL, x16);
        assert_int_equal(m->output.x16 != NULL, x16);
        for (int threads = 1; threads <= 2; threads++)
            for (size_t li = 1; li < sizeof all_levels / sizeof all_levels[0]; li++) {
                if (!ac_quant_cpu_has(all_levels[li])) continue;
                float *ref = malloc(sizeof(float) * N * VOCAB), *all = malloc(sizeof(float) * N * VOCAB);
                float *one = malloc(sizeof(float) * VOCAB);
                ac_quant_use_level(AC_SIMD_SCALAR);
                run_batch(m, threads, ids, N, ref);
                ac_quant_use_level(all_levels[li]);
                run_batch(m, threads, ids, N, all);
                struct ac_context *single;
                const struct ac_context_params cp = {.n_ctx = 64, .n_batch = 32, .n_threads = threads};
                assert_int_equal(ac_context_new(&single, m, &cp, err), 0);
                double worst = 0;
                for (int t = 0; t < N; t++) {
                    float amax = 0;
                    for (int v = 0; v < VOCAB; v++) amax = fmaxf(amax, fabsf(ref[t * VOCAB + v]));
                    for (int v = 0; v < VOCAB; v++) {
                        const double rel =
                            fabs((double)all[t * VOCAB + v] - ref[t * VOCAB + v]) / (amax > 0 ? amax : 1);
                        if (rel > worst) worst = rel;
                    }
                    assert_int_equal(ac_decode(single, &ids[t], 1, AC_LOGITS_LAST, one, err), 0);
                    assert_memory_equal(one, all + t * VOCAB, sizeof(float) * VOCAB);
                }
                printf("  %s threads=%d %s vs scalar vec_dot: max |dlogit| / max |logit| = %.2e\n",
                       ac_type_traits(types[ti])->name, threads, level_names[li], worst);
                assert_true(worst <= 1e-3);
                free(ref);
                free(all);
                free(one);
                ac_context_free(single);
            }
        ac_quant_force_scalar(false); /* back to the best level */
        ac_model_free(m);
        remove(path);
        free(path);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_vs_ref),
        cmocka_unit_test(test_gemm_bits_per_token),
        cmocka_unit_test(test_x16),
        cmocka_unit_test(test_selection),
        cmocka_unit_test(test_model_gemm_vs_vec_dot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
