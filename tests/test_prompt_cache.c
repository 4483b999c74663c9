/* test_prompt_cache.c - prompt caching (ac_gen_params.reuse_prefix,
 * ac_context_keep_prefix) on SmolLM2: a context kept across the turns of a
 * conversation runs only the new tokens of each prompt and generates exactly
 * what a fresh context generates (greedy and sampled), also when the prompt
 * leaves the cached conversation, repeats it, or is shorter; and it reads
 * fewer weight bytes doing so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"

#define MODEL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define N_GEN 12
#define MAX_IDS 256

struct fixture {
    struct ac_model *model;
    struct ac_tokenizer *tok;
};

struct collected {
    int32_t ids[MAX_IDS];
    int n;
};

static bool collect(void *user, int32_t id) {
    struct collected *c = user;
    if (c->n < MAX_IDS) c->ids[c->n++] = id;
    return false;
}

static int setup(void **state) {
    static struct fixture fx;
    char err[AC_ERR_LEN];
    *state = &fx;
    if (ac_model_load(&fx.model, MODEL_PATH, err) != 0 || ac_tokenizer_load(&fx.tok, fx.model->file, err) != 0) {
        fprintf(stderr, "setup: %s (run scripts/setup.sh)\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    struct fixture *fx = *state;
    ac_tokenizer_free(fx->tok);
    ac_model_free(fx->model);
    return 0;
}

static const struct ac_context_params CP = {.n_ctx = 256, .n_threads = 2};

/* Generates after ids on ctx (reuse: keep its cached prefix), returning the
 * output, the stats and the weight bytes the call read. */
static double generate(struct fixture *fx, struct ac_context *ctx, bool reuse, const int32_t *ids, int n, float temp,
                       struct collected *out, struct ac_gen_stats *st) {
    char err[AC_ERR_LEN];
    const struct ac_gen_params gp = {.n_predict = N_GEN,
                                     .ignore_eos = true,
                                     .sampling = {.temp = temp, .top_k = 40, .top_p = 0.95f, .seed = 11},
                                     .reuse_prefix = reuse};
    out->n = 0;
    if (ac_generate(ctx, fx->tok, ids, n, &gp, collect, out, st, err) != 0) fail_msg("%s", err);
    return ac_context_weight_bytes(ctx);
}

/* One turn on the kept context: the same output as a fresh context, with
 * want_cached positions taken from the cache. */
static void turn(struct fixture *fx, struct ac_context *kept, const int32_t *ids, int n, float temp, int want_cached,
                 struct collected *out) {
    char err[AC_ERR_LEN];
    struct ac_context *fresh;
    assert_int_equal(ac_context_new(&fresh, fx->model, &CP, err), 0);
    struct collected ref;
    struct ac_gen_stats st_ref, st;
    const double bytes_ref = generate(fx, fresh, false, ids, n, temp, &ref, &st_ref);
    const double bytes = generate(fx, kept, true, ids, n, temp, out, &st);
    printf("  %d prompt tokens, %d cached (want %d), %.0f vs %.0f MB read\n", n, st.n_cached, want_cached,
           bytes / 1e6, bytes_ref / 1e6);
    assert_int_equal(st_ref.n_cached, 0);
    assert_int_equal(st.n_cached, want_cached);
    assert_int_equal(st.n_prompt, n);
    assert_int_equal(out->n, ref.n);
    assert_memory_equal(out->ids, ref.ids, sizeof(int32_t) * (size_t)ref.n);
    if (want_cached > 0) assert_true(bytes < bytes_ref);
    ac_context_free(fresh);
}

static int tokens(struct fixture *fx, const char *text, int32_t *ids) {
    char err[AC_ERR_LEN];
    const int n = ac_tokenize(fx->tok, text, strlen(text), true, true, ids, MAX_IDS, err);
    assert_true(n > 1);
    return n;
}

static void conversation(struct fixture *fx, float temp) {
    char err[AC_ERR_LEN];
    struct ac_context *kept;
    assert_int_equal(ac_context_new(&kept, fx->model, &CP, err), 0);
    int32_t a[MAX_IDS], b[MAX_IDS], c[MAX_IDS];
    struct collected out;
    /* turn 1: nothing cached */
    const int na = tokens(fx, "Question: what makes the sky blue? Answer:", a);
    turn(fx, kept, a, na, temp, 0, &out);
    /* turn 2: the conversation so far (the answer's last token was sampled,
     * never run) and a follow-up */
    int nb = na;
    memcpy(b, a, sizeof(int32_t) * (size_t)na);
    memcpy(b + nb, out.ids, sizeof(int32_t) * (size_t)out.n);
    nb += out.n;
    const int32_t follow[] = {198, 7074, 42};
    memcpy(b + nb, follow, sizeof follow);
    nb += 3;
    turn(fx, kept, b, nb, temp, na + N_GEN - 1, &out);
    /* the same prompt again: all but its last token */
    turn(fx, kept, b, nb, temp, nb - 1, &out);
    /* a prompt that leaves the conversation after its first na - 2 tokens */
    memcpy(c, a, sizeof(int32_t) * (size_t)(na - 2));
    const int nc = na - 2 + tokens(fx, " Why is grass green?", c + na - 2);
    int want = 0;
    while (want < nc - 1 && want < nb && c[want] == b[want]) want++;
    assert_true(want >= na - 2);
    turn(fx, kept, c, nc, temp, want, &out);
    /* a prompt shorter than the cached positions */
    turn(fx, kept, a, 3, temp, 2, &out);
    ac_context_free(kept);
}

static void test_greedy_conversation(void **state) { conversation(*state, 0.0f); }
static void test_sampled_conversation(void **state) { conversation(*state, 0.9f); }

/* A new run configuration forgets the cache. */
static void test_run_config_forgets(void **state) {
    struct fixture *fx = *state;
    char err[AC_ERR_LEN];
    struct ac_context *kept;
    assert_int_equal(ac_context_new(&kept, fx->model, &CP, err), 0);
    int32_t a[MAX_IDS];
    const int na = tokens(fx, "Hello there", a);
    struct collected out;
    struct ac_gen_stats st;
    generate(fx, kept, true, a, na, 0.0f, &out, &st);
    assert_int_equal(ac_context_set_run_config(kept, NULL, err), 0);
    generate(fx, kept, true, a, na, 0.0f, &out, &st);
    assert_int_equal(st.n_cached, 0);
    ac_context_free(kept);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_conversation),
        cmocka_unit_test(test_sampled_conversation),
        cmocka_unit_test(test_run_config_forgets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
