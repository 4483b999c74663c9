/* test_prompt_cache.c - prompt caching (ac_gen_params.reuse_prefix,
 * ac_context_keep_prefix) on SmolLM2: a context kept across the turns of a
 * conversation runs only the new tokens of each prompt and generates exactly
 * what a fresh context generates (greedy and sampled), also when the prompt
 * leaves the cached conversation, repeats it, or is shorter; and it reads
 * fewer weight bytes doing so. Then the servers' set of kept contexts
 * (runtime/prompt_cache.h): which context a prompt gets, by configuration,
 * conversation, room and load. */
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
#include "runtime/prompt_cache.h"
#include "tokenizer/tokenizer.h"
#include "token_collect.h"

#define MODEL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define N_GEN 12
#define MAX_IDS 256

struct fixture {
    struct ac_model *model;
    struct ac_tokenizer *tok;
};

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

/* A context holding ids (run without logits). */
static struct ac_context *holding(struct fixture *fx, const int32_t *ids, int n) {
    char err[AC_ERR_LEN];
    struct ac_context *ctx;
    assert_int_equal(ac_context_new(&ctx, fx->model, &CP, err), 0);
    if (n > 0) assert_int_equal(ac_decode(ctx, ids, n, AC_LOGITS_NONE, NULL, err), 0);
    return ctx;
}

static void test_kept_contexts(void **state) {
    struct fixture *fx = *state;
    char err[AC_ERR_LEN];
    struct ac_prompt_cache *pc;
    assert_int_equal(ac_prompt_cache_new(&pc, 2, err), 0);
    const struct ac_prompt_key key = {.variant = 1, .load_id = 5}, pruned = {.variant = 1, .prune = 0.1f, .load_id = 5};
    int32_t a[MAX_IDS], b[MAX_IDS];
    const int na = tokens(fx, "Question: what makes the sky blue? Answer: light", a);
    const int nb = tokens(fx, "Question: name a prime number. Answer: seven", b);
    assert_null(ac_prompt_cache_take(pc, &key, a, na)); /* empty */
    struct ac_context *ca = holding(fx, a, na - 2), *cb = holding(fx, b, nb - 2);
    ac_prompt_cache_put(pc, &key, ca);
    /* b does not continue a's conversation and there is room: a new context */
    assert_null(ac_prompt_cache_take(pc, &key, b, nb));
    ac_prompt_cache_put(pc, &key, cb);
    assert_int_equal(ac_prompt_cache_size(pc), 2);
    /* each conversation finds its own context; another configuration none */
    assert_ptr_equal(ac_prompt_cache_take(pc, &key, a, na), ca);
    assert_ptr_equal(ac_prompt_cache_take(pc, &key, b, nb), cb);
    ac_prompt_cache_put(pc, &key, ca);
    ac_prompt_cache_put(pc, &key, cb);
    assert_null(ac_prompt_cache_take(pc, &pruned, a, na));
    /* full, a third conversation: the context sharing the longest prefix */
    int32_t c[MAX_IDS];
    const int nc = tokens(fx, "Question: what makes the sea", c);
    const int with_a = ac_context_cached_prefix(ca, c, nc), with_b = ac_context_cached_prefix(cb, c, nc);
    assert_true(with_a > with_b);
    assert_ptr_equal(ac_prompt_cache_take(pc, &key, c, nc), ca);
    /* put when full frees the least recently used (cb, put before ca):
     * b, with the cache full, then gets its best partial match, ca */
    ac_prompt_cache_put(pc, &key, ca);
    ac_prompt_cache_put(pc, &pruned, holding(fx, c, 2));
    assert_int_equal(ac_prompt_cache_size(pc), 2);
    assert_ptr_equal(ac_prompt_cache_take(pc, &key, b, nb), ca);
    ac_prompt_cache_put(pc, &key, ca);
    /* a new context seeded from the kept ones: the longest prefix of c any
     * holds, and then it generates what a fresh context generates */
    struct ac_context *seeded = holding(fx, NULL, 0);
    assert_int_equal(ac_prompt_cache_seed(pc, &key, c, nc, seeded), with_a);
    assert_int_equal(ac_context_n_past(seeded), with_a);
    assert_int_equal(ac_prompt_cache_seed(pc, &pruned, a, na, seeded), 2); /* the pruned-key context holds c[0..2) */
    assert_int_equal(ac_prompt_cache_seed(pc, &key, c, nc, seeded), with_a);
    struct ac_context *fresh = holding(fx, NULL, 0);
    struct collected got, want;
    struct ac_gen_stats st;
    generate(fx, seeded, true, c, nc, 0.0f, &got, &st);
    assert_int_equal(st.n_cached, with_a);
    generate(fx, fresh, false, c, nc, 0.0f, &want, &st);
    assert_int_equal(got.n, want.n);
    assert_memory_equal(got.ids, want.ids, sizeof(int32_t) * (size_t)want.n);
    /* copies only between contexts of one model, length and configuration */
    assert_int_equal(ac_context_copy_prefix(fresh, seeded, ac_context_n_past(seeded) + 1), -1);
    bool skip[64] = {false};
    skip[1] = true;
    const struct ac_run_config rc = {.skip_layer = skip};
    assert_int_equal(ac_context_set_run_config(fresh, &rc, err), 0);
    assert_int_equal(ac_context_copy_prefix(fresh, seeded, 2), -1);
    struct ac_model *tiny;
    struct ac_context *other;
    assert_int_equal(ac_model_load(&tiny, "tests/fixtures/tiny_llama.gguf", err), 0);
    const struct ac_context_params tiny_cp = {.n_ctx = 16, .n_threads = 1};
    if (ac_context_new(&other, tiny, &tiny_cp, err) != 0) fail_msg("%s", err);
    assert_int_equal(ac_context_copy_prefix(other, seeded, 2), -1);
    ac_context_free(other);
    ac_model_free(tiny);
    ac_context_free(fresh);
    ac_context_free(seeded);

    /* a new load of the variant: its old contexts are freed, not handed out */
    const struct ac_prompt_key reloaded = {.variant = 1, .load_id = 6};
    assert_null(ac_prompt_cache_take(pc, &reloaded, a, na));
    assert_int_equal(ac_prompt_cache_size(pc), 0);
    ac_prompt_cache_free(pc);

    /* capacity 0: nothing is kept */
    assert_int_equal(ac_prompt_cache_new(&pc, 0, err), 0);
    ac_prompt_cache_put(pc, &key, holding(fx, a, 2));
    assert_int_equal(ac_prompt_cache_size(pc), 0);
    assert_null(ac_prompt_cache_take(pc, &key, a, na));
    ac_prompt_cache_free(pc);
    assert_int_equal(ac_prompt_cache_new(&pc, -1, err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_conversation),
        cmocka_unit_test(test_sampled_conversation),
        cmocka_unit_test(test_run_config_forgets),
        cmocka_unit_test(test_kept_contexts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
