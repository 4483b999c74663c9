/* api.c - OpenAI's JSON: request validation and response shapes for chat
 * completions, completions, models and errors (see server_internal.h). */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "server/server_internal.h"

int ac_api_errorf(struct ac_api_error *e, int status, const char *type, const char *code, const char *param,
                  const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    e->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): false positive
    va_end(ap);
    return -1;
}

void ac_gen_request_free(struct ac_gen_request *r) {
    free(r->model);
    free(r->variant);
    for (int i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
    }
    free(r->messages);
    free(r->prompt);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

/* --------------------------------------------------------------- parsing */

#define BAD(e, param, ...) ac_api_errorf(e, 400, "invalid_request_error", NULL, param, __VA_ARGS__)
#define OOM(e) ac_api_errorf(e, 500, "server_error", NULL, NULL, "out of memory")

static bool absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* An integral JSON number in [lo, hi]. */
static int get_int(const cJSON *v, const char *name, double lo, double hi, double *out, struct ac_api_error *e) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || floor(v->valuedouble) != v->valuedouble)
        return BAD(e, name, "'%s' must be an integer", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return BAD(e, name, "'%s' must be between %.0f and %.0f", name, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int get_number(const cJSON *v, const char *name, double lo, double hi, double *out, struct ac_api_error *e) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return BAD(e, name, "'%s' must be a number", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return BAD(e, name, "'%s' must be between %g and %g", name, lo, hi);
    *out = v->valuedouble;
    return 0;
}

/* A message's content: a string, or an array of {"type":"text","text":...}
 * parts (joined); null only for assistant messages. */
static int get_content(const cJSON *v, bool null_ok, char **out, struct ac_api_error *e) {
    static const char param[] = "messages.content";
    if (cJSON_IsString(v)) return (*out = strdup(v->valuestring)) ? 0 : OOM(e);
    if (absent(v)) {
        if (!null_ok) return BAD(e, param, "a message has no 'content'");
        return (*out = strdup("")) ? 0 : OOM(e);
    }
    if (!cJSON_IsArray(v)) return BAD(e, param, "'content' must be a string or an array of text parts");
    struct ac_buf b = {0};
    const cJSON *part;
    cJSON_ArrayForEach(part, v) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text)) {
            ac_buf_free(&b);
            return BAD(e, param, "only text content parts are supported");
        }
        if (ac_buf_append(&b, text->valuestring, strlen(text->valuestring)) != 0) {
            ac_buf_free(&b);
            return OOM(e);
        }
    }
    if (!b.p && ac_buf_append(&b, "", 0) != 0) return OOM(e);
    *out = b.p;
    return 0;
}

static int parse_messages(const cJSON *v, struct ac_gen_request *r, struct ac_api_error *e) {
    if (absent(v)) return BAD(e, "messages", "'messages' is required");
    if (!cJSON_IsArray(v)) return BAD(e, "messages", "'messages' must be an array");
    const int n = cJSON_GetArraySize(v);
    if (n == 0) return BAD(e, "messages", "'messages' must not be empty");
    if (!(r->messages = calloc((size_t)n, sizeof *r->messages))) return OOM(e);
    const cJSON *m;
    cJSON_ArrayForEach(m, v) {
        if (!cJSON_IsObject(m)) return BAD(e, "messages", "each message must be an object");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role)) return BAD(e, "messages.role", "each message needs a string 'role'");
        const char *name = role->valuestring;
        if (!strcmp(name, "developer")) name = "system"; /* OpenAI's newer name for it */
        if (strcmp(name, "system") != 0 && strcmp(name, "user") != 0 && strcmp(name, "assistant") != 0)
            return BAD(e, "messages.role", "unsupported role '%.64s' (system, user, assistant)", name);
        struct ac_chat_message *out = &r->messages[r->n_messages++];
        if (!(out->role = strdup(name))) return OOM(e);
        if (get_content(cJSON_GetObjectItemCaseSensitive(m, "content"), !strcmp(name, "assistant"), &out->content,
                        e) != 0)
            return -1;
    }
    return 0;
}

static int parse_prompt(const cJSON *v, struct ac_gen_request *r, struct ac_api_error *e) {
    if (absent(v)) return BAD(e, "prompt", "'prompt' is required");
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 && cJSON_IsString(cJSON_GetArrayItem(v, 0)))
        v = cJSON_GetArrayItem(v, 0);
    if (!cJSON_IsString(v)) return BAD(e, "prompt", "'prompt' must be a string");
    return (r->prompt = strdup(v->valuestring)) ? 0 : OOM(e);
}

static int add_stop(struct ac_gen_request *r, const cJSON *v, struct ac_api_error *e) {
    if (!cJSON_IsString(v)) return BAD(e, "stop", "'stop' must be a string or an array of strings");
    const size_t n = strlen(v->valuestring);
    if (n > AC_MAX_STOP_BYTES) return BAD(e, "stop", "a stop string is longer than %d bytes", AC_MAX_STOP_BYTES);
    if (n == 0) return 0;
    return (r->stop[r->n_stop++] = strdup(v->valuestring)) ? 0 : OOM(e);
}

static int parse_stop(const cJSON *v, struct ac_gen_request *r, struct ac_api_error *e) {
    if (absent(v)) return 0;
    if (!cJSON_IsArray(v)) return add_stop(r, v, e);
    if (cJSON_GetArraySize(v) > AC_MAX_STOP) return BAD(e, "stop", "at most %d stop strings", AC_MAX_STOP);
    const cJSON *s;
    cJSON_ArrayForEach(s, v) if (add_stop(r, s, e) != 0) return -1;
    return 0;
}

/* A fresh seed per request that names none. */
static uint64_t random_seed(void) {
    static atomic_uint_fast64_t counter;
    uint64_t x = (uint64_t)(ac_time_s() * 1e9) ^ (atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x ? x : 1;
}

static int parse_fields(const cJSON *root, struct ac_gen_request *r, struct ac_api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!absent(v)) {
        if (!cJSON_IsString(v)) return BAD(e, "model", "'model' must be a string");
        if (!(r->model = strdup(v->valuestring))) return OOM(e);
    }
    if (!absent(v = cJSON_GetObjectItemCaseSensitive(root, "agentcompress"))) {
        const cJSON *var = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "variant") : NULL;
        if (!cJSON_IsObject(v) || (!absent(var) && !cJSON_IsString(var)))
            return BAD(e, "agentcompress", "'agentcompress' must be an object like {\"variant\": \"q8_0\"}");
        if (!absent(var) && !(r->variant = strdup(var->valuestring))) return OOM(e);
    }
    if (r->kind == AC_API_CHAT) {
        if (parse_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), r, e) != 0) return -1;
    } else if (parse_prompt(cJSON_GetObjectItemCaseSensitive(root, "prompt"), r, e) != 0) {
        return -1;
    }
    double d = 0;
    static const char *const max_names[] = {"max_completion_tokens", "max_tokens"};
    for (int i = 0; i < 2; i++) {
        v = cJSON_GetObjectItemCaseSensitive(root, max_names[i]);
        if (absent(v)) continue;
        if (get_int(v, max_names[i], 1, 1 << 30, &d, e) != 0) return -1;
        r->max_tokens = (int)d;
        break;
    }
    r->temperature = 1.0f;
    if (!absent(v = cJSON_GetObjectItemCaseSensitive(root, "temperature"))) {
        if (get_number(v, "temperature", 0, 2, &d, e) != 0) return -1;
        r->temperature = (float)d;
    }
    r->top_p = 1.0f;
    if (!absent(v = cJSON_GetObjectItemCaseSensitive(root, "top_p"))) {
        if (get_number(v, "top_p", 0, 1, &d, e) != 0) return -1;
        r->top_p = d > 0 ? (float)d : 1e-6f; /* 0: only the most likely token */
    }
    r->seed = random_seed();
    if (!absent(v = cJSON_GetObjectItemCaseSensitive(root, "seed"))) {
        if (get_int(v, "seed", -9.2e18, 9.2e18, &d, e) != 0) return -1;
        r->seed = (uint64_t)(int64_t)d;
    }
    if (parse_stop(cJSON_GetObjectItemCaseSensitive(root, "stop"), r, e) != 0) return -1;
    if (!absent(v = cJSON_GetObjectItemCaseSensitive(root, "stream"))) {
        if (!cJSON_IsBool(v)) return BAD(e, "stream", "'stream' must be a boolean");
        r->stream = cJSON_IsTrue(v);
    }
    if (!absent(v = cJSON_GetObjectItemCaseSensitive(root, "stream_options"))) {
        if (!cJSON_IsObject(v)) return BAD(e, "stream_options", "'stream_options' must be an object");
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(v, "include_usage");
        if (!absent(u) && !cJSON_IsBool(u))
            return BAD(e, "stream_options", "'stream_options.include_usage' must be a boolean");
        r->include_usage = cJSON_IsTrue(u);
    }
    if (!absent(v = cJSON_GetObjectItemCaseSensitive(root, "n"))) {
        if (get_int(v, "n", 1, 1, &d, e) != 0) return BAD(e, "n", "only 'n': 1 is supported");
    }
    return 0;
}

int ac_api_parse_request(enum ac_api_kind kind, const char *body, size_t len, struct ac_gen_request *req,
                         struct ac_api_error *e) {
    memset(req, 0, sizeof *req);
    req->kind = kind;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (root && end) /* only whitespace may follow the value */
        for (const char *p = end; p < body + len; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                cJSON_Delete(root);
                root = NULL;
                break;
            }
    if (!root) return BAD(e, NULL, "the body is not valid JSON");
    int rc = cJSON_IsObject(root) ? parse_fields(root, req, e) : BAD(e, NULL, "the body must be a JSON object");
    cJSON_Delete(root);
    if (rc != 0) ac_gen_request_free(req);
    return rc;
}

/* -------------------------------------------------------------- building */

static char *print_and_free(cJSON *root) {
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

static cJSON *reply_head(const struct ac_api_reply *r, bool chunk) {
    static const char *const objects[2][2] = {{"chat.completion", "chat.completion.chunk"},
                                              {"text_completion", "text_completion"}};
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", r->id);
    cJSON_AddStringToObject(root, "object", objects[r->req->kind == AC_API_COMPLETION][chunk]);
    cJSON_AddNumberToObject(root, "created", (double)r->created);
    cJSON_AddStringToObject(root, "model", r->model);
    return root;
}

static void add_usage(cJSON *root, const struct ac_run_result *res) {
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", res->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", res->n_generated);
    cJSON_AddNumberToObject(u, "total_tokens", (double)res->n_prompt + res->n_generated);
    /* as OpenAI reports prompt caching */
    cJSON *details = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(details, "cached_tokens", res->n_cached);
}

/* Our own object: the configuration that ran the request and its cost. */
static void add_agentcompress(cJSON *root, const struct ac_run_result *res) {
    cJSON *a = cJSON_AddObjectToObject(root, "agentcompress");
    cJSON_AddStringToObject(a, "variant", res->variant ? res->variant : "");
    if (res->complexity >= 0) cJSON_AddNumberToObject(a, "complexity", res->complexity);
    else cJSON_AddNullToObject(a, "complexity");
    cJSON_AddNumberToObject(a, "cost_bytes", floor(res->cost_bytes));
}

/* choices[0] with the text under message/delta/text as the kind asks. */
static void add_choice(cJSON *root, const struct ac_api_reply *r, bool chunk, const char *text, bool role,
                       const char *finish) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (r->req->kind == AC_API_COMPLETION) {
        cJSON_AddStringToObject(c, "text", text ? text : "");
    } else {
        cJSON *m = cJSON_AddObjectToObject(c, chunk ? "delta" : "message");
        if (role || !chunk) cJSON_AddStringToObject(m, "role", "assistant");
        if (text || !chunk) cJSON_AddStringToObject(m, "content", text ? text : "");
    }
    cJSON_AddNullToObject(c, "logprobs");
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
}

char *ac_api_response_json(const struct ac_api_reply *r, const char *text, const char *finish,
                           const struct ac_run_result *res) {
    cJSON *root = reply_head(r, false);
    add_choice(root, r, false, text, true, finish);
    add_usage(root, res);
    add_agentcompress(root, res);
    return print_and_free(root);
}

char *ac_api_chunk_json(const struct ac_api_reply *r, const char *text, bool role, const char *finish,
                        const struct ac_run_result *usage) {
    cJSON *root = reply_head(r, true);
    if (usage && !finish) { /* the usage-only chunk of stream_options.include_usage */
        cJSON_AddArrayToObject(root, "choices");
        add_usage(root, usage);
        return print_and_free(root);
    }
    add_choice(root, r, true, text, role, finish);
    if (finish && usage) add_agentcompress(root, usage);
    return print_and_free(root);
}

char *ac_api_error_json(const struct ac_api_error *e) {
    cJSON *root = cJSON_CreateObject();
    cJSON *o = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(o, "message", e->message);
    cJSON_AddStringToObject(o, "type", e->type ? e->type : "invalid_request_error");
    if (e->param) cJSON_AddStringToObject(o, "param", e->param);
    else cJSON_AddNullToObject(o, "param");
    if (e->code) cJSON_AddStringToObject(o, "code", e->code);
    else cJSON_AddNullToObject(o, "code");
    return print_and_free(root);
}

char *ac_api_models_json(const struct ac_backend *b, long long created) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    const int n = b->ops->n_models(b);
    for (int i = 0; i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddItemToArray(data, m);
        cJSON_AddStringToObject(m, "id", b->ops->model_name(b, i));
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)created);
        cJSON_AddStringToObject(m, "owned_by", "agentcompress");
    }
    return print_and_free(root);
}
