/* test_speculative.c - self-speculative decoding gives exactly the output
 * of plain decoding (same sampler and seed) on SmolLM2, with a draft that
 * always agrees (the model itself), one that often does not (its q4_0
 * variant), greedy and sampled, down to the end of a short context; and
 * refuses drafts it cannot use. */
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
#include "compress/compress.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"
#include "token_collect.h"

#define MODEL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define N_GEN 24

struct fixture {
    struct ac_model *model, *q4_0;
    struct ac_tokenizer *tok;
    char dir[64];
};

static int setup(void **state) {
    static struct fixture fx;
    char err[AC_ERR_LEN], dir[80], path[96];
    snprintf(fx.dir, sizeof fx.dir, "/tmp/ac_test_spec_XXXXXX");
    if (!mkdtemp(fx.dir)) return -1;
    snprintf(dir, sizeof dir, "%s/v", fx.dir);
    snprintf(path, sizeof path, "%s/q4_0.gguf", dir);
    const enum ac_variant_kind kinds[] = {AC_VARIANT_Q4_0};
    const struct ac_quantize_params qp = {.base_path = MODEL_PATH, .out_dir = dir, .kinds = kinds, .n_kinds = 1};
    *state = &fx;
    if (ac_quantize(&qp, err) != 0 || ac_model_load(&fx.model, MODEL_PATH, err) != 0 ||
        ac_tokenizer_load(&fx.tok, fx.model->file, err) != 0 || ac_model_load(&fx.q4_0, path, err) != 0) {
        fprintf(stderr, "setup: %s (run scripts/setup.sh)\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    struct fixture *fx = *state;
    char path[96];
    ac_model_free(fx->model);
    ac_model_free(fx->q4_0);
    ac_tokenizer_free(fx->tok);
    const char *files[] = {"v/q4_0.gguf", "v/manifest.json", "v"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", fx->dir, files[i]);
        (void)(i < 2 ? unlink(path) : rmdir(path));
    }
    rmdir(fx->dir);
    return 0;
}

/* Generates from text with the given draft (NULL: plain) on a fresh
 * context of n_ctx positions. */
static void run(struct fixture *fx, const struct ac_model *draft, int n_draft, const char *text, float temp, int n_ctx,
                struct collected *out, struct ac_gen_stats *st) {
    char err[AC_ERR_LEN];
    int32_t ids[256];
    const int n = ac_tokenize(fx->tok, text, strlen(text), true, true, ids, 256, err);
    assert_true(n > 0);
    const struct ac_context_params cp = {.n_ctx = n_ctx ? n_ctx : n + N_GEN, .n_threads = 2};
    struct ac_context *ctx, *dctx = NULL;
    assert_int_equal(ac_context_new(&ctx, fx->model, &cp, err), 0);
    if (draft) assert_int_equal(ac_context_new(&dctx, draft, &cp, err), 0);
    const struct ac_gen_params gp = {.n_predict = N_GEN,
                                     .ignore_eos = true,
                                     .sampling = {.temp = temp, .top_k = 40, .top_p = 0.95f, .seed = 7},
                                     .draft = dctx,
                                     .n_draft = n_draft};
    out->n = 0;
    if (ac_generate(ctx, fx->tok, ids, n, &gp, collect, out, st, err) != 0) fail_msg("%s", err);
    ac_context_free(dctx);
    ac_context_free(ctx);
}

static void expect_same_output(struct fixture *fx, const struct ac_model *draft, int n_draft, const char *text,
                               float temp, int n_ctx, bool all_accepted) {
    struct collected plain, spec;
    struct ac_gen_stats ps, ss;
    run(fx, NULL, 0, text, temp, n_ctx, &plain, &ps);
    run(fx, draft, n_draft, text, temp, n_ctx, &spec, &ss);
    printf("  k=%d temp=%.1f n_ctx=%d: %d tokens, %d of %d proposals accepted, %d passes (plain %d)\n", n_draft,
           (double)temp, n_ctx, spec.n, ss.n_accepted, ss.n_drafted, ss.n_decoded, ps.n_decoded);
    assert_int_equal(spec.n, plain.n);
    assert_memory_equal(spec.ids, plain.ids, sizeof(int32_t) * (size_t)plain.n);
    assert_int_equal(ss.n_generated, ps.n_generated);
    assert_int_equal(ss.hit_ctx_end, ps.hit_ctx_end);
    assert_true(ss.n_accepted <= ss.n_drafted);
    if (all_accepted) assert_int_equal(ss.n_accepted, ss.n_drafted);
    assert_true(ss.n_decoded < ps.n_decoded || ss.n_accepted == 0);
}

static const char *const PROMPTS[] = {
    "The three laws of thermodynamics are",
    "def fibonacci(n):",
};

static void test_draft_is_the_model(void **state) {
    struct fixture *fx = *state;
    expect_same_output(fx, fx->model, 4, PROMPTS[0], 0.0f, 0, true);
    expect_same_output(fx, fx->model, 3, PROMPTS[1], 0.9f, 0, false);
}

static void test_draft_disagrees(void **state) {
    struct fixture *fx = *state;
    expect_same_output(fx, fx->q4_0, 1, PROMPTS[0], 0.0f, 0, false);
    expect_same_output(fx, fx->q4_0, 5, PROMPTS[0], 0.0f, 0, false);
    expect_same_output(fx, fx->q4_0, 5, PROMPTS[1], 0.0f, 0, false);
    expect_same_output(fx, fx->q4_0, 1, PROMPTS[1], 0.9f, 0, false);
    expect_same_output(fx, fx->q4_0, 5, PROMPTS[1], 0.9f, 0, false);
}

/* The context ends before n_predict: both stop at the same token. */
static void test_context_end(void **state) {
    struct fixture *fx = *state;
    for (int extra = 1; extra <= 6; extra += 5) {
        expect_same_output(fx, fx->model, 4, PROMPTS[0], 0.0f, 8 + extra, true);
        expect_same_output(fx, fx->q4_0, 3, PROMPTS[0], 0.0f, 8 + extra, false);
    }
}

static void test_unusable_drafts(void **state) {
    struct fixture *fx = *state;
    char err[AC_ERR_LEN];
    const int32_t ids[2] = {1, 2};
    struct ac_context *ctx, *dctx;
    struct ac_gen_stats st;
    const struct ac_context_params cp = {.n_ctx = 32, .n_threads = 1}, short_cp = {.n_ctx = 16, .n_threads = 1};
    assert_int_equal(ac_context_new(&ctx, fx->model, &cp, err), 0);
    assert_int_equal(ac_context_new(&dctx, fx->q4_0, &short_cp, err), 0);
    struct ac_gen_params gp = {.n_predict = 4, .sampling = {.temp = 0.0f, .top_p = 1.0f}, .draft = dctx, .n_draft = 0};
    assert_int_equal(ac_generate(ctx, fx->tok, ids, 2, &gp, NULL, NULL, &st, err), -1);
    assert_non_null(strstr(err, "draft tokens"));
    gp.n_draft = 2;
    assert_int_equal(ac_generate(ctx, fx->tok, ids, 2, &gp, NULL, NULL, &st, err), -1);
    assert_non_null(strstr(err, "draft context"));
    ac_context_free(dctx);
    struct ac_model *tiny;
    assert_int_equal(ac_model_load(&tiny, "tests/fixtures/tiny_llama.gguf", err), 0);
    assert_int_equal(ac_context_new(&dctx, tiny, &cp, err), 0);
    gp.draft = dctx;
    assert_int_equal(ac_generate(ctx, fx->tok, ids, 2, &gp, NULL, NULL, &st, err), -1);
    assert_non_null(strstr(err, "vocabulary"));
    ac_context_free(dctx);
    ac_model_free(tiny);
    ac_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_draft_is_the_model),
        cmocka_unit_test(test_draft_disagrees),
        cmocka_unit_test(test_context_end),
        cmocka_unit_test(test_unusable_drafts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
