/* test_model.c - the forward pass against llama.cpp on SmolLM2-135M
 * (tests/fixtures/ref_smollm2.*, made by scripts/make_reference.py), batch
 * invariance, and clean errors for unusable models and bad inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <math.h>

#include "common/common.h"
#include "compress/compress.h"
#include "gguf_builder.h"
#include "model/model.h"
#include "quant/quant.h"
#include "sample/sample.h"

#define MODEL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define REF_JSON "tests/fixtures/ref_smollm2.json"
#define REF_LOGITS "tests/fixtures/ref_smollm2_logits.bin"
/* The same prompts on the F16 file `quantize` writes from the Q4_1 one
 * (byte-identical to llama-quantize's F16 of it). */
#define REF_F16_JSON "tests/fixtures/ref_smollm2_f16.json"
#define REF_F16_LOGITS "tests/fixtures/ref_smollm2_f16_logits.bin"

/* The real model re-quantizes every matmul input to 8 bits, which makes its
 * logits chaotic in the last bits of the arithmetic: in an exact NumPy
 * simulation of that pipeline a 1e-6 relative change of the embeddings
 * moves the final logits by 0.73, and llama.cpp itself moves by up to 1.28
 * between batch sizes 1 and 512 (fixture noise_floor). No reimplementation
 * agrees to 1e-2 there without copying llama.cpp's exact operation order,
 * so the bound below is the chaos floor, and exactness of the math is
 * checked separately on F32 models (test_tiny_models_exact: ~4e-5). */
#define LOGIT_TOL 1.5f
/* KL(llama.cpp || ours) of the next-token distributions, in nats. llama.cpp
 * against itself (n_batch 512 vs 1, same file and prompts) reaches 0.0063;
 * we measure up to 0.0085; the bound leaves room for summation order. */
#define KL_TOL 0.02
/* Greedy decisions must agree wherever llama.cpp's own top-1/top-2 logit
 * margin exceeds the noise above; measured mismatches all have margins
 * below 0.4 (and llama.cpp flips such tokens itself across batch sizes). */
#define MARGIN_SAFE 0.5
/* On F16 weights (activations rounded to F16, as ggml does, no 8-bit
 * re-quantization) only the summation order differs: we measure max
 * |dlogit| 0.009-0.035 against llama.cpp, whose own batch-1 vs batch-512
 * logits differ by up to 0.046 and whose distance to an exact float64
 * forward is up to 0.034 (fixture noise_floor). */
#define F16_LOGIT_TOL 0.05f
/* bound for the F32 models: float summation order only */
#define TINY_TOL 1e-4f

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

/* KL(softmax(p) || softmax(q)) in nats. */
static double kl_divergence(const float *p, const float *q, int n) {
    double mp = -INFINITY, mq = -INFINITY, zp = 0.0, zq = 0.0, kl = 0.0;
    for (int i = 0; i < n; i++) {
        mp = fmax(mp, p[i]);
        mq = fmax(mq, q[i]);
    }
    for (int i = 0; i < n; i++) {
        zp += exp(p[i] - mp);
        zq += exp(q[i] - mq);
    }
    for (int i = 0; i < n; i++) {
        const double lp = p[i] - mp - log(zp), lq = q[i] - mq - log(zq);
        kl += exp(lp) * (lp - lq);
    }
    return kl;
}

static int32_t *json_ids(const cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    int32_t *ids = malloc(sizeof *ids * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)cJSON_GetArrayItem(arr, i)->valuedouble;
    return ids;
}

struct fixture {
    struct ac_model *model;
    cJSON *ref;
    float *ref_logits;
};

static int setup(void **state) {
    static struct fixture fx;
    char err[AC_ERR_LEN];
    if (ac_model_load(&fx.model, MODEL_PATH, err) != 0) {
        fprintf(stderr, "cannot load %s: %s (run scripts/setup.sh)\n", MODEL_PATH, err);
        return -1;
    }
    char *json = read_all(REF_JSON, NULL);
    size_t nbytes;
    fx.ref_logits = (float *)read_all(REF_LOGITS, &nbytes);
    if (!json || !fx.ref_logits) return -1;
    fx.ref = cJSON_Parse(json);
    free(json);
    *state = &fx;
    return fx.ref ? 0 : -1;
}

static int teardown(void **state) {
    struct fixture *fx = *state;
    ac_model_free(fx->model);
    cJSON_Delete(fx->ref);
    free(fx->ref_logits);
    return 0;
}

static void test_config(void **state) {
    struct fixture *fx = *state;
    const struct ac_model_config *c = &fx->model->cfg;
    assert_int_equal(c->n_vocab, 49152);
    assert_int_equal(c->dim, 576);
    assert_int_equal(c->n_layers, 30);
    assert_int_equal(c->n_heads, 9);
    assert_int_equal(c->n_kv_heads, 3);
    assert_int_equal(c->head_dim, 64);
    assert_int_equal(c->ffn_dim, 1536);
    assert_true(c->tied_output);
    assert_false(c->rope_neox);
}

/* Last-position logits of every reference prompt, then its 32-step greedy
 * continuation teacher-forced on llama.cpp's tokens: our argmax must match
 * at every step where llama.cpp's margin is at least MARGIN_SAFE, and at
 * 90% of all steps. At 1 and 2 threads. */
static void test_matches_llama_cpp(void **state) {
    struct fixture *fx = *state;
    const int n_vocab = fx->model->cfg.n_vocab;
    const cJSON *prompts = cJSON_GetObjectItem(fx->ref, "prompts");
    assert_true(cJSON_GetArraySize(prompts) >= 5);
    float *logits = malloc(sizeof(float) * (size_t)n_vocab);
    char err[AC_ERR_LEN];
    for (int threads = 1; threads <= 2; threads++) {
        struct ac_context *ctx;
        struct ac_context_params cp = {.n_ctx = 512, .n_threads = threads};
        assert_int_equal(ac_context_new(&ctx, fx->model, &cp, err), 0);
        int steps = 0, agree = 0;
        for (int p = 0; p < cJSON_GetArraySize(prompts); p++) {
            const cJSON *e = cJSON_GetArrayItem(prompts, p);
            const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
            const cJSON *margins = cJSON_GetObjectItem(e, "step_top2_margin");
            int n_prompt, n_gen;
            int32_t *ids = json_ids(cJSON_GetObjectItem(e, "prompt_ids"), &n_prompt);
            int32_t *gen = json_ids(cJSON_GetObjectItem(e, "generated_ids"), &n_gen);
            assert_int_equal(cJSON_GetArraySize(margins), n_gen);
            ac_context_reset(ctx);
            assert_int_equal(ac_decode(ctx, ids, n_prompt, AC_LOGITS_LAST, logits, err), 0);
            const float *ref = fx->ref_logits + (size_t)p * n_vocab;
            float maxd = 0.0f;
            for (int i = 0; i < n_vocab; i++) maxd = fmaxf(maxd, fabsf(logits[i] - ref[i]));
            const double kl = kl_divergence(ref, logits, n_vocab);
            int first_diff = -1;
            for (int i = 0; i < n_gen; i++) {
                const int32_t id = ac_argmax(logits, n_vocab);
                const double margin = cJSON_GetArrayItem(margins, i)->valuedouble;
                steps++;
                agree += id == gen[i];
                if (id != gen[i] && first_diff < 0) first_diff = i;
                if (id != gen[i] && margin >= MARGIN_SAFE)
                    fail_msg("%s step %d: greedy %d, llama.cpp %d (its margin %.3f)", name, i, id, gen[i], margin);
                assert_int_equal(ac_decode(ctx, &gen[i], 1, AC_LOGITS_LAST, logits, err), 0);
            }
            printf("  %-16s threads=%d max|dlogit|=%.3f KL=%.5f first greedy difference at step %d\n", name,
                   threads, (double)maxd, kl, first_diff);
            if (maxd > LOGIT_TOL || kl > KL_TOL)
                fail_msg("%s: logits differ from llama.cpp by max %g, KL %g", name, (double)maxd, kl);
            free(ids);
            free(gen);
        }
        printf("  threads=%d: greedy agrees with llama.cpp at %d of %d teacher-forced steps\n", threads, agree, steps);
        assert_true(agree * 10 >= steps * 9);
        ac_context_free(ctx);
    }
    free(logits);
}

/* On the F16 file greedy decoding is not chaotic: our free-running greedy
 * continuation must equal llama.cpp's token for token (32 tokens, every
 * prompt), at 1 and 2 threads, and the prompt logits agree to F16_LOGIT_TOL. */
static void test_f16_greedy_equals_llama_cpp(void **state) {
    (void)state;
    char dir[] = "/tmp/ac_test_f16_XXXXXX", path[64], err[AC_ERR_LEN];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/v", dir);
    const enum ac_variant_kind kinds[] = {AC_VARIANT_F16};
    const struct ac_quantize_params qp = {.base_path = MODEL_PATH, .out_dir = path, .kinds = kinds, .n_kinds = 1};
    if (ac_quantize(&qp, err) != 0) fail_msg("quantize: %s", err);
    snprintf(path, sizeof path, "%s/v/f16.gguf", dir);
    struct ac_model *model;
    if (ac_model_load(&model, path, err) != 0) fail_msg("%s", err);
    char *json = read_all(REF_F16_JSON, NULL);
    size_t nbytes;
    float *ref_logits = (float *)read_all(REF_F16_LOGITS, &nbytes);
    assert_non_null(json);
    assert_non_null(ref_logits);
    cJSON *ref = cJSON_Parse(json);
    assert_non_null(ref);
    const int n_vocab = model->cfg.n_vocab;
    const cJSON *prompts = cJSON_GetObjectItem(ref, "prompts");
    assert_true(cJSON_GetArraySize(prompts) >= 5);
    assert_int_equal(nbytes, sizeof(float) * (size_t)n_vocab * (size_t)cJSON_GetArraySize(prompts));
    float *logits = malloc(sizeof(float) * (size_t)n_vocab);
    for (int threads = 1; threads <= 2; threads++) {
        struct ac_context *ctx;
        struct ac_context_params cp = {.n_ctx = 512, .n_threads = threads};
        assert_int_equal(ac_context_new(&ctx, model, &cp, err), 0);
        for (int p = 0; p < cJSON_GetArraySize(prompts); p++) {
            const cJSON *e = cJSON_GetArrayItem(prompts, p);
            const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
            int n_prompt, n_gen;
            int32_t *ids = json_ids(cJSON_GetObjectItem(e, "prompt_ids"), &n_prompt);
            int32_t *gen = json_ids(cJSON_GetObjectItem(e, "generated_ids"), &n_gen);
            ac_context_reset(ctx);
            assert_int_equal(ac_decode(ctx, ids, n_prompt, AC_LOGITS_LAST, logits, err), 0);
            const float *want = ref_logits + (size_t)p * n_vocab;
            float maxd = 0.0f;
            for (int i = 0; i < n_vocab; i++) maxd = fmaxf(maxd, fabsf(logits[i] - want[i]));
            printf("  %-16s threads=%d max|dlogit|=%.4f\n", name, threads, (double)maxd);
            if (maxd > F16_LOGIT_TOL) fail_msg("%s: logits differ from llama.cpp by %g", name, (double)maxd);
            for (int i = 0; i < n_gen; i++) {
                int32_t id = ac_argmax(logits, n_vocab);
                if (id != gen[i]) fail_msg("%s step %d: greedy %d, llama.cpp %d", name, i, id, gen[i]);
                assert_int_equal(ac_decode(ctx, &id, 1, AC_LOGITS_LAST, logits, err), 0);
            }
            free(ids);
            free(gen);
        }
        ac_context_free(ctx);
    }
    free(logits);
    cJSON_Delete(ref);
    free(ref_logits);
    free(json);
    ac_model_free(model);
    snprintf(path, sizeof path, "%s/v/manifest.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/v/f16.gguf", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/v", dir);
    rmdir(path);
    rmdir(dir);
}

/* The prompt as one batch, as batches of 3, and token by token: same logits
 * for every position (AC_LOGITS_ALL) up to float reordering. */
static void test_batch_invariance(void **state) {
    struct fixture *fx = *state;
    const int n_vocab = fx->model->cfg.n_vocab;
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(fx->ref, "prompts"), 0);
    int n;
    int32_t *ids = json_ids(cJSON_GetObjectItem(e, "prompt_ids"), &n);
    float *all = malloc(sizeof(float) * (size_t)n * n_vocab);
    float *one = malloc(sizeof(float) * (size_t)n_vocab);
    char err[AC_ERR_LEN];
    struct ac_context *ctx, *ctx3;
    struct ac_context_params cp = {.n_ctx = 64, .n_threads = 2}, cp3 = {.n_ctx = 64, .n_batch = 3, .n_threads = 2};
    assert_int_equal(ac_context_new(&ctx, fx->model, &cp, err), 0);
    assert_int_equal(ac_context_new(&ctx3, fx->model, &cp3, err), 0);
    assert_int_equal(ac_decode(ctx, ids, n, AC_LOGITS_ALL, all, err), 0);
    float *all3 = malloc(sizeof(float) * (size_t)n * n_vocab);
    assert_int_equal(ac_decode(ctx3, ids, n, AC_LOGITS_ALL, all3, err), 0);
    ac_context_reset(ctx);
    float maxd = 0.0f;
    for (int t = 0; t < n; t++) {
        assert_int_equal(ac_decode(ctx, &ids[t], 1, AC_LOGITS_LAST, one, err), 0);
        for (int i = 0; i < n_vocab; i++) {
            maxd = fmaxf(maxd, fabsf(one[i] - all[(size_t)t * n_vocab + i]));
            maxd = fmaxf(maxd, fabsf(all3[(size_t)t * n_vocab + i] - all[(size_t)t * n_vocab + i]));
        }
    }
    printf("  batch vs token-by-token max|dlogit|=%.6f\n", (double)maxd);
    assert_true(maxd < 1e-3f);
    ac_context_free(ctx);
    ac_context_free(ctx3);
    free(all);
    free(all3);
    free(one);
    free(ids);
}

static void test_decode_errors(void **state) {
    struct fixture *fx = *state;
    char err[AC_ERR_LEN];
    struct ac_context *ctx;
    struct ac_context_params cp = {.n_ctx = 8, .n_threads = 1};
    assert_int_equal(ac_context_new(&ctx, fx->model, &cp, err), 0);
    float *logits = malloc(sizeof(float) * 49152);
    int32_t bad = 49152;
    assert_int_equal(ac_decode(ctx, &bad, 1, AC_LOGITS_LAST, logits, err), -1);
    assert_non_null(strstr(err, "out of range"));
    bad = -1;
    assert_int_equal(ac_decode(ctx, &bad, 1, AC_LOGITS_LAST, logits, err), -1);
    int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    assert_int_equal(ac_decode(ctx, ids, 9, AC_LOGITS_LAST, logits, err), -1);
    assert_non_null(strstr(err, "do not fit"));
    assert_int_equal(ac_context_n_past(ctx), 0);
    assert_int_equal(ac_decode(ctx, ids, 8, AC_LOGITS_LAST, logits, err), 0);
    assert_int_equal(ac_decode(ctx, ids, 1, AC_LOGITS_LAST, logits, err), -1);
    assert_int_equal(ac_decode(ctx, ids, 0, AC_LOGITS_LAST, logits, err), -1);
    struct ac_context_params huge = {.n_ctx = 1 << 20, .n_threads = 1};
    struct ac_context *c2;
    assert_int_equal(ac_context_new(&c2, fx->model, &huge, err), -1);
    assert_non_null(strstr(err, "exceeds"));
    free(logits);
    ac_context_free(ctx);
}

/* Pruning and sparsity: r = 0 / no thresholds is the plain engine bit for
 * bit; skipping layers and zeroing activations really reduces the weight
 * bytes read; calibrated thresholds zero about the target fraction. */
static void test_prune_and_sparsity(void **state) {
    struct fixture *fx = *state;
    struct ac_model *m = fx->model;
    const int n_vocab = m->cfg.n_vocab, L = m->cfg.n_layers;
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(fx->ref, "prompts"), 6); /* long paragraph */
    int n;
    int32_t *ids = json_ids(cJSON_GetObjectItem(e, "prompt_ids"), &n);
    char err[AC_ERR_LEN];
    float *plain = malloc(sizeof(float) * n_vocab), *got = malloc(sizeof(float) * n_vocab);
    struct ac_context *ctx;
    struct ac_context_params cp = {.n_ctx = 256, .n_threads = 2};
    assert_int_equal(ac_context_new(&ctx, m, &cp, err), 0);
    assert_int_equal(ac_decode(ctx, ids, n, AC_LOGITS_LAST, plain, err), 0);
    const double dense_bytes = ac_context_weight_bytes(ctx) / n;

    bool skip[64] = {false};
    struct ac_run_config rc = {.skip_layer = skip};
    assert_int_equal(ac_context_set_run_config(ctx, &rc, err), 0);
    assert_int_equal(ac_decode(ctx, ids, n, AC_LOGITS_LAST, got, err), 0);
    assert_memory_equal(plain, got, sizeof(float) * n_vocab);

    /* calibration on the prompt itself: 4 sparsity levels */
    const float levels[4] = {0.0f, 0.25f, 0.4f, 0.5f};
    float bi[64], thr[64 * AC_SITE_COUNT * 4];
    assert_int_equal(ac_calibrate(m, ids, n, 64, 2, levels, 4, bi, thr, err), 0);
    int lowest = 0;
    for (int l = 0; l < L; l++) {
        assert_true(bi[l] >= 0.0f && bi[l] <= 2.0f);
        if (bi[l] < bi[lowest]) lowest = l;
        for (int s = 0; s < AC_SITE_COUNT; s++) {
            const float *t = thr + ((size_t)l * AC_SITE_COUNT + s) * 4;
            assert_true(t[0] == 0.0f && t[1] > 0.0f && t[1] <= t[2] && t[2] <= t[3]);
        }
    }
    /* pruning the 20% lowest-influence layers reads ~20% fewer layer bytes */
    for (int k = 0; k < (L + 4) / 5; k++) {
        int best = -1;
        for (int l = 0; l < L; l++)
            if (!skip[l] && (best < 0 || bi[l] < bi[best])) best = l;
        skip[best] = true;
    }
    assert_int_equal(ac_context_set_run_config(ctx, &rc, err), 0);
    assert_int_equal(ac_decode(ctx, ids, n, AC_LOGITS_LAST, got, err), 0);
    const double pruned_bytes = ac_context_weight_bytes(ctx) / n;
    printf("  dense %.1f MB/token, 20%% pruned %.1f MB/token (lowest influence: layer %d, %.4f)\n",
           dense_bytes / 1e6, pruned_bytes / 1e6, lowest, (double)bi[lowest]);
    assert_true(pruned_bytes < dense_bytes * 0.9);
    assert_int_equal(ac_argmax(got, n_vocab) >= 0, 1);

    /* sparsity needs the transposed weights */
    float site_thr[64 * AC_SITE_COUNT];
    struct ac_run_config sc = {.sparse_threshold = site_thr};
    assert_int_equal(ac_context_set_run_config(ctx, &sc, err), -1);
    assert_non_null(strstr(err, "prepare_sparse"));
    assert_int_equal(ac_model_prepare_sparse(m, err), 0);
    double bytes_at[4];
    for (int k = 0; k < 4; k++) {
        for (int l = 0; l < L; l++)
            for (int s = 0; s < AC_SITE_COUNT; s++)
                site_thr[l * AC_SITE_COUNT + s] = thr[((size_t)l * AC_SITE_COUNT + s) * 4 + k];
        assert_int_equal(ac_context_set_run_config(ctx, &sc, err), 0);
        assert_int_equal(ac_decode(ctx, ids, n, AC_LOGITS_LAST, got, err), 0);
        bytes_at[k] = ac_context_weight_bytes(ctx) / n;
        float maxd = 0.0f;
        for (int i = 0; i < n_vocab; i++) maxd = fmaxf(maxd, fabsf(got[i] - plain[i]));
        printf("  sparsity %.2f: %.1f MB/token, max|dlogit| vs dense %.3f, top-1 %s\n", (double)levels[k],
               bytes_at[k] / 1e6, (double)maxd, ac_argmax(got, n_vocab) == ac_argmax(plain, n_vocab) ? "same" : "differs");
    }
    /* layer matrices are ~69% of the bytes: 50% sparsity saves about a third */
    assert_true(bytes_at[3] < dense_bytes * 0.75);
    assert_true(bytes_at[1] < bytes_at[0] && bytes_at[3] < bytes_at[2]);
    ac_context_free(ctx);
    free(plain);
    free(got);
    free(ids);
}

/* A tiny llama GGUF: metadata for arch, all tensors F32 of the right shape
 * except those named in skip. */
static char *tiny_model(const char *arch, const char *skip) {
    const int dim = 32, ffn = 64, vocab = 16, heads = 2;
    struct {
        const char *name;
        int64_t ne[2];
        int nd;
    } t[] = {
        {"token_embd.weight", {dim, vocab}, 2}, {"output_norm.weight", {dim, 1}, 1},
        {"blk.0.attn_norm.weight", {dim, 1}, 1}, {"blk.0.attn_q.weight", {dim, dim}, 2},
        {"blk.0.attn_k.weight", {dim, dim}, 2},  {"blk.0.attn_v.weight", {dim, dim}, 2},
        {"blk.0.attn_output.weight", {dim, dim}, 2}, {"blk.0.ffn_norm.weight", {dim, 1}, 1},
        {"blk.0.ffn_gate.weight", {dim, ffn}, 2}, {"blk.0.ffn_up.weight", {dim, ffn}, 2},
        {"blk.0.ffn_down.weight", {ffn, dim}, 2},
    };
    const int nt = (int)(sizeof t / sizeof t[0]);
    int kept = 0;
    for (int i = 0; i < nt; i++) kept += !(skip && !strcmp(skip, t[i].name));
    struct gb b = {0};
    gb_header(&b, (uint64_t)kept, 8);
    char key[64];
    gb_kv_str(&b, "general.architecture", arch);
#define K(s) (snprintf(key, sizeof key, "%s.%s", arch, s), key)
    gb_kv_u32(&b, K("block_count"), 1);
    gb_kv_u32(&b, K("embedding_length"), (uint32_t)dim);
    gb_kv_u32(&b, K("feed_forward_length"), (uint32_t)ffn);
    gb_kv_u32(&b, K("attention.head_count"), (uint32_t)heads);
    gb_kv_u32(&b, K("context_length"), 64);
    gb_kv_f32(&b, K("attention.layer_norm_rms_epsilon"), 1e-5f);
    gb_kv_f32(&b, K("rope.freq_base"), 10000.0f);
#undef K
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        if (skip && !strcmp(skip, t[i].name)) continue;
        gb_tensor(&b, t[i].name, t[i].nd, t[i].ne, AC_TYPE_F32, off);
        off += (uint64_t)(t[i].ne[0] * t[i].ne[1] * 4 + 31) / 32 * 32;
    }
    gb_pad(&b, 32);
    for (uint64_t i = 0; i < off / 4; i++) {
        float v = 0.01f * (float)(i % 7);
        gb_bytes(&b, &v, 4);
    }
    char *path = gb_write_temp(&b);
    gb_free(&b);
    return path;
}

/* F32 models: no activation re-quantization, so llama.cpp and we compute
 * the same math up to float summation order and the F16 KV cache. */
static void test_tiny_models_exact(void **state) {
    (void)state;
    char *json = read_all("tests/fixtures/tiny_ref.json", NULL);
    float *ref = (float *)read_all("tests/fixtures/tiny_ref_logits.bin", NULL);
    assert_non_null(json);
    assert_non_null(ref);
    cJSON *info = cJSON_Parse(json);
    const cJSON *models = cJSON_GetObjectItem(info, "models");
    assert_int_equal(cJSON_GetArraySize(models), 2);
    char err[AC_ERR_LEN];
    for (int i = 0; i < 2; i++) {
        const cJSON *e = cJSON_GetArrayItem(models, i);
        char path[256];
        snprintf(path, sizeof path, "tests/fixtures/%s", cJSON_GetObjectItem(e, "file")->valuestring);
        struct ac_model *m;
        assert_int_equal(ac_model_load(&m, path, err), 0);
        assert_int_equal(m->cfg.rope_neox, !strcmp(cJSON_GetObjectItem(e, "arch")->valuestring, "qwen2"));
        int n;
        int32_t *ids = json_ids(cJSON_GetObjectItem(e, "ids"), &n);
        const int n_vocab = m->cfg.n_vocab;
        assert_int_equal(n_vocab, cJSON_GetObjectItem(e, "n_vocab")->valueint);
        const float *want = ref + (size_t)cJSON_GetObjectItem(e, "logits_offset_floats")->valuedouble;
        float *got = malloc(sizeof(float) * (size_t)n * n_vocab);
        for (int batch = 1; batch <= 16; batch *= 4) {
            struct ac_context *ctx;
            struct ac_context_params cp = {.n_ctx = 64, .n_batch = batch, .n_threads = 2};
            assert_int_equal(ac_context_new(&ctx, m, &cp, err), 0);
            assert_int_equal(ac_decode(ctx, ids, n, AC_LOGITS_ALL, got, err), 0);
            float maxd = 0.0f;
            for (size_t k = 0; k < (size_t)n * n_vocab; k++) maxd = fmaxf(maxd, fabsf(got[k] - want[k]));
            printf("  tiny %-5s batch=%-2d max|dlogit|=%.2e\n", cJSON_GetObjectItem(e, "arch")->valuestring, batch,
                   (double)maxd);
            assert_true(maxd < TINY_TOL);
            ac_context_free(ctx);
        }
        free(got);
        free(ids);
        ac_model_free(m);
    }
    cJSON_Delete(info);
    free(json);
    free(ref);
}

static void expect_load_error(const char *path, const char *needle) {
    struct ac_model *m = NULL;
    char err[AC_ERR_LEN] = "";
    int rc = ac_model_load(&m, path, err);
    if (rc == 0) ac_model_free(m);
    assert_int_equal(rc, -1);
    if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_unusable_models(void **state) {
    (void)state;
    char *ok = tiny_model("llama", NULL);
    struct ac_model *m;
    char err[AC_ERR_LEN];
    assert_int_equal(ac_model_load(&m, ok, err), 0);
    struct ac_context *ctx;
    struct ac_context_params cp = {.n_threads = 2};
    assert_int_equal(ac_context_new(&ctx, m, &cp, err), 0);
    int32_t ids[3] = {1, 5, 15};
    float logits[3 * 16];
    assert_int_equal(ac_decode(ctx, ids, 3, AC_LOGITS_ALL, logits, err), 0);
    for (int i = 0; i < 48; i++) assert_true(isfinite(logits[i]));
    ac_context_free(ctx);
    ac_model_free(m);
    char *gpt2 = tiny_model("gpt2", NULL);
    expect_load_error(gpt2, "unsupported architecture 'gpt2'");
    char *missing = tiny_model("llama", "blk.0.ffn_up.weight");
    expect_load_error(missing, "missing tensor 'blk.0.ffn_up.weight'");
    expect_load_error("tests/test_model.c", "bad magic");
    const char *paths[] = {ok, gpt2, missing};
    for (int i = 0; i < 3; i++) {
        unlink(paths[i]);
        free((void *)paths[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_matches_llama_cpp),
        cmocka_unit_test(test_f16_greedy_equals_llama_cpp),
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_prune_and_sparsity),
        cmocka_unit_test(test_tiny_models_exact),
        cmocka_unit_test(test_unusable_models),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
