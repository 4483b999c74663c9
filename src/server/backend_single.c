/* backend_single.c - the single-model backend (one GGUF, one context), the
 * ChatML conversation formatter, and the backend helpers (see server.h). */
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/prompt_cache.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

void ac_backend_free(struct ac_backend *b) {
    if (b) b->ops->free(b);
}

/* ---------------------------------------------------------------- ChatML */

/* SmolLM2's tokenizer.chat_template inserts this system message when the
 * conversation does not start with one. */
#define SMOLLM_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

#define SEG(text, len, special)                                          \
    do {                                                                 \
        int rc_ = seg(user, (text), (len), (special));                   \
        if (rc_) return rc_;                                             \
    } while (0)

/* Role and content travel as one text piece, as they do when the whole
 * formatted string is tokenized: the control tokens split it there. */
static int role_content(ac_chat_seg_fn seg, void *user, const char *role, const char *content) {
    const size_t nr = strlen(role), nc = strlen(content);
    char *s = malloc(nr + 1 + nc + 1);
    if (!s) return -1;
    memcpy(s, role, nr);
    s[nr] = '\n';
    memcpy(s + nr + 1, content, nc + 1);
    int rc = seg(user, s, nr + 1 + nc, false);
    free(s);
    return rc;
}

int ac_chatml_walk(const struct ac_chat_message *msgs, int n, ac_chat_seg_fn seg, void *user) {
    for (int i = 0; i < n; i++) {
        const bool add_system = i == 0 && strcmp(msgs[0].role, "system") != 0;
        for (int k = add_system ? 0 : 1; k < 2; k++) {
            const char *role = k == 0 ? "system" : msgs[i].role;
            const char *content = k == 0 ? SMOLLM_SYSTEM : msgs[i].content;
            SEG("<|im_start|>", 12, true);
            int rc = role_content(seg, user, role, content);
            if (rc) return rc;
            SEG("<|im_end|>", 10, true);
            SEG("\n", 1, false);
        }
    }
    SEG("<|im_start|>", 12, true);
    SEG("assistant\n", 10, false);
    return 0;
}

static int append_seg(void *user, const char *text, size_t len, bool special) {
    (void)special;
    char **s = user;
    const size_t n = strlen(*s);
    char *t = realloc(*s, n + len + 1);
    if (!t) return -1;
    memcpy(t + n, text, len);
    t[n + len] = '\0';
    *s = t;
    return 0;
}

char *ac_chatml_format(const struct ac_chat_message *msgs, int n) {
    char *s = calloc(1, 1);
    if (s && ac_chatml_walk(msgs, n, append_seg, &s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- tokens */

struct ids {
    const struct ac_tokenizer *tok;
    int32_t *v;
    int n, cap;
    char err[AC_ERR_LEN];
};

/* Appends text's tokens; BOS (where the model asks for one) only at the
 * start, control tokens only in special pieces. */
static int push_tokens(void *user, const char *text, size_t len, bool special) {
    struct ids *ids = user;
    for (;;) {
        const int room = ids->cap - ids->n;
        int got = ac_tokenize(ids->tok, text, len, ids->n == 0, special, ids->v ? ids->v + ids->n : NULL, room,
                              ids->err);
        if (got < 0) return -1;
        if (got <= room) {
            ids->n += got;
            return 0;
        }
        if (got > (1 << 28) - ids->n) return ac_errf(ids->err, "prompt too long");
        int cap = ids->n + got + 64;
        int32_t *v = realloc(ids->v, (size_t)cap * sizeof *v);
        if (!v) return ac_errf(ids->err, "out of memory");
        ids->v = v;
        ids->cap = cap;
    }
}

/* ----------------------------------------------------------------- model */

struct single {
    struct ac_backend base;
    struct ac_model *model;
    struct ac_tokenizer *tok;
    struct ac_prompt_cache *prompts; /* kept contexts (one configuration: the model) */
    struct ac_context_params cp;
    int n_ctx;
    char *name; /* the variant: the file name without .gguf */
};

struct ac_prepared {
    int32_t *ids;
    int n_ids;
};

static int single_n_models(const struct ac_backend *b) {
    (void)b;
    return 2;
}

static const char *single_model_name(const struct ac_backend *b, int i) {
    const struct single *s = (const struct single *)b;
    return i == 0 ? s->name : AC_ROUTER_NAME;
}

int ac_backend_prompt_ids(const struct ac_tokenizer *tok, const struct ac_gen_request *req, int n_ctx,
                          int32_t **out, int *n_out, struct ac_api_error *e) {
    *out = NULL;
    *n_out = 0;
    struct ids ids = {.tok = tok, .err = "out of memory"};
    int rc = req->kind == AC_API_CHAT ? ac_chatml_walk(req->messages, req->n_messages, push_tokens, &ids)
                                      : push_tokens(&ids, req->prompt, strlen(req->prompt), true);
    if (rc != 0) {
        free(ids.v);
        return ac_api_errorf(e, 400, "invalid_request_error", NULL, NULL, "cannot tokenize the prompt: %s",
                             ids.err);
    }
    if (ids.n == 0) {
        free(ids.v);
        return ac_api_errorf(e, 400, "invalid_request_error", NULL, "prompt", "the prompt is empty");
    }
    if (ids.n >= n_ctx) {
        free(ids.v);
        return ac_api_errorf(e, 400, "invalid_request_error", "context_length_exceeded",
                             req->kind == AC_API_CHAT ? "messages" : "prompt",
                             "the prompt has %d tokens; this model's context holds %d, including the answer",
                             ids.n, n_ctx);
    }
    *out = ids.v;
    *n_out = ids.n;
    return 0;
}

int ac_backend_model_not_found(const struct ac_gen_request *req, struct ac_api_error *e) {
    return ac_api_errorf(e, 400, "invalid_request_error", "model_not_found", "model",
                         "the model '%.64s' does not exist (GET /v1/models lists them)", req->model);
}

static int single_prepare(struct ac_backend *b, const struct ac_gen_request *req, struct ac_prepared **out,
                          struct ac_api_error *e) {
    struct single *s = (struct single *)b;
    *out = NULL;
    if (req->model && strcmp(req->model, s->name) != 0 && strcmp(req->model, AC_ROUTER_NAME) != 0)
        return ac_backend_model_not_found(req, e);
    if (req->variant && strcmp(req->variant, s->name) != 0)
        return ac_api_errorf(e, 400, "invalid_request_error", "model_not_found", "agentcompress.variant",
                             "this server runs only the variant '%s'", s->name);
    int32_t *ids;
    int n;
    if (ac_backend_prompt_ids(s->tok, req, s->n_ctx, &ids, &n, e) != 0) return -1;
    if (!(*out = malloc(sizeof **out))) {
        free(ids);
        return ac_api_errorf(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    (*out)->ids = ids;
    (*out)->n_ids = n;
    return 0;
}

static int single_n_prompt(const struct ac_prepared *p) { return p->n_ids; }

struct run_state {
    const struct ac_tokenizer *tok;
    ac_text_fn emit;
    void *user;
    bool stopped;
    char piece[256];
};

static bool on_token(void *user, int32_t id) {
    struct run_state *rs = user;
    int n = ac_token_to_piece(rs->tok, id, rs->piece, (int)sizeof rs->piece, false);
    if (n > (int)sizeof rs->piece) n = (int)sizeof rs->piece;
    if (n > 0 && rs->emit(rs->user, rs->piece, (size_t)n)) rs->stopped = true;
    return rs->stopped;
}

int ac_backend_generate(struct ac_context *ctx, const struct ac_tokenizer *tok, const int32_t *ids, int n_ids,
                        const struct ac_gen_request *req, ac_text_fn emit, void *user, struct ac_run_result *res,
                        char *err) {
    const int room = ac_context_n_ctx(ctx) - n_ids;
    struct ac_gen_params gp = {
        .n_predict = req->max_tokens > 0 && req->max_tokens < room ? req->max_tokens : room,
        .sampling = {.temp = req->temperature, .top_k = 0, .top_p = req->top_p, .seed = req->seed},
        /* a context kept across requests (the single backend's) starts from
         * the previous conversation's cached prefix; a new one has none */
        .reuse_prefix = true,
    };
    struct run_state rs = {.tok = tok, .emit = emit, .user = user};
    struct ac_gen_stats st;
    if (ac_generate(ctx, tok, ids, n_ids, &gp, on_token, &rs, &st, err) != 0) return -1;
    memset(res, 0, sizeof *res);
    res->n_prompt = st.n_prompt;
    res->n_cached = st.n_cached;
    res->n_generated = st.n_generated;
    res->hit_length = !st.hit_eog && !rs.stopped;
    res->cost_bytes = ac_context_weight_bytes(ctx);
    res->complexity = -1;
    res->cache_hit = -1;
    return 0;
}

/* The one configuration of the single backend's kept contexts. */
static const struct ac_prompt_key SINGLE_KEY = {.load_id = 1};

static int single_run(struct ac_backend *b, struct ac_prepared *p, const struct ac_gen_request *req, ac_text_fn emit,
                      void *user, struct ac_run_result *res, char *err) {
    struct single *s = (struct single *)b;
    struct ac_context *ctx = ac_prompt_cache_take(s->prompts, &SINGLE_KEY, p->ids, p->n_ids);
    if (!ctx) {
        if (ac_context_new(&ctx, s->model, &s->cp, err) != 0) return -1;
        ac_prompt_cache_seed(s->prompts, &SINGLE_KEY, p->ids, p->n_ids, ctx);
    }
    if (ac_backend_generate(ctx, s->tok, p->ids, p->n_ids, req, emit, user, res, err) != 0) {
        ac_context_free(ctx);
        return -1;
    }
    ac_prompt_cache_put(s->prompts, &SINGLE_KEY, ctx);
    res->variant = s->name;
    return 0;
}

static void single_prepared_free(struct ac_prepared *p) {
    if (!p) return;
    free(p->ids);
    free(p);
}

static void single_free(struct ac_backend *b) {
    struct single *s = (struct single *)b;
    ac_prompt_cache_free(s->prompts);
    ac_tokenizer_free(s->tok);
    ac_model_free(s->model);
    free(s->name);
    free(s);
}

static const struct ac_backend_ops SINGLE_OPS = {
    .n_models = single_n_models,
    .model_name = single_model_name,
    .prepare = single_prepare,
    .n_prompt = single_n_prompt,
    .run = single_run,
    .prepared_free = single_prepared_free,
    .free = single_free,
};

static char *variant_name(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".gguf")) n -= 5;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, base, n);
        s[n] = '\0';
    }
    return s;
}

int ac_backend_single_new(struct ac_backend **out, const char *model_path, const struct ac_single_params *p,
                          char *err) {
    *out = NULL;
    struct single *s = calloc(1, sizeof *s);
    if (!s) return ac_errf(err, "out of memory");
    s->base.ops = &SINGLE_OPS;
    s->cp = (struct ac_context_params){.n_ctx = p ? p->n_ctx : 0, .n_threads = p ? p->n_threads : 0};
    if (!(s->name = variant_name(model_path))) {
        ac_errf(err, "out of memory");
        goto fail;
    }
    /* one context made now: its errors show at start, and it is the first kept */
    struct ac_context *ctx;
    if (ac_model_load(&s->model, model_path, err) != 0 || ac_tokenizer_load(&s->tok, s->model->file, err) != 0 ||
        ac_prompt_cache_new(&s->prompts, p ? p->prompt_cache : 1, err) != 0 ||
        ac_context_new(&ctx, s->model, &s->cp, err) != 0)
        goto fail;
    s->n_ctx = ac_context_n_ctx(ctx);
    ac_prompt_cache_put(s->prompts, &SINGLE_KEY, ctx);
    *out = &s->base;
    return 0;
fail:
    single_free(&s->base);
    return -1;
}
