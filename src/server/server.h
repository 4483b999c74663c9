/* server.h - OpenAI-compatible HTTP server: POST /v1/chat/completions,
 * POST /v1/completions (both with server-sent-event streaming), GET
 * /v1/models, GET /health, GET /metrics (Prometheus text).
 *
 * Concurrency: libmicrohttpd runs one thread per connection (bounded by
 * max_connections); handlers parse and tokenize on that thread, then queue
 * the request (bounded by max_queue) to one inference worker thread that
 * owns the backend's contexts and runs requests one at a time. Handlers
 * wait on the request for the whole answer, or for streamed text as it
 * arrives.
 *
 * What runs a request is a backend: it resolves the requested model name,
 * formats and tokenizes the prompt (on the HTTP thread, thread-safe), and
 * generates (on the worker). The single-model backend is the only one so
 * far; a variant cache or a remote endpoint is another implementation of
 * struct ac_backend_ops. */
#ifndef AC_SERVER_H
#define AC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/common.h"

/* ------------------------------------------------------------- requests */

#define AC_MAX_STOP 4          /* stop strings per request (OpenAI's limit) */
#define AC_MAX_STOP_BYTES 256  /* bytes per stop string */

enum ac_api_kind { AC_API_CHAT, AC_API_COMPLETION };

struct ac_chat_message {
    char *role; /* "system", "user" or "assistant" */
    char *content;
};

/* One validated generation request; every string is owned by it. */
struct ac_gen_request {
    enum ac_api_kind kind;
    char *model; /* as the client named it; NULL: the backend's default */
    char *variant; /* "agentcompress": {"variant": ...}: run on this variant, whatever the model */
    struct ac_chat_message *messages; /* chat */
    int n_messages;
    char *prompt; /* completion */
    int max_tokens; /* 0: until the end of the context */
    float temperature; /* 0: greedy */
    float top_p;
    uint64_t seed;
    char *stop[AC_MAX_STOP];
    int n_stop;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
};

void ac_gen_request_free(struct ac_gen_request *r);

/* An error as the API reports it: HTTP status and OpenAI's error object. */
struct ac_api_error {
    int status;
    const char *type;  /* "invalid_request_error", "authentication_error", ... */
    const char *code;  /* NULL or e.g. "model_not_found" */
    const char *param; /* NULL or the offending field */
    char message[AC_ERR_LEN];
};

/* Fills e and returns -1. */
int ac_api_errorf(struct ac_api_error *e, int status, const char *type, const char *code, const char *param,
                  const char *fmt, ...) AC_PRINTF(6, 7);

/* -------------------------------------------------------------- backends */

/* What one run did. */
struct ac_run_result {
    int n_prompt;      /* prompt tokens processed */
    int n_cached;      /* of which were reused from the previous request's cache, not run */
    int n_generated;   /* tokens the model produced (a final end token included) */
    bool hit_length;   /* stopped by max_tokens or the end of the context */
    double cost_bytes; /* bytes of weights read for the prompt and the generated tokens */
    const char *variant; /* the variant that ran it (lives as long as the backend) */
    float prune, sparsity; /* its pruning ratio and sparsity (0: none) */
    double complexity;   /* predicted task complexity; < 0 when nothing predicted it */
    int cache_hit;       /* 1: the variant was resident, 0: it was loaded (a swap), -1: no cache */
    double route_us;     /* time the routing decision took; 0 when none was made */
    int32_t task_ids[32]; /* the first tokens of the task text the router read */
    int n_task_ids;
};

/* Receives generated text as it is produced (any byte split: a UTF-8
 * character may straddle calls); returns true to stop generating. */
typedef bool (*ac_text_fn)(void *user, const char *text, size_t len);

struct ac_backend;
struct ac_prepared; /* a request made ready to run, backend-specific */
struct ac_cache_stats; /* runtime/cache.h */

struct ac_backend_ops {
    /* Model names clients may use, for GET /v1/models; index 0 is the default. */
    int (*n_models)(const struct ac_backend *b);
    const char *(*model_name)(const struct ac_backend *b, int i);
    /* Thread-safe (runs on HTTP threads): resolves req->model, formats and
     * tokenizes the prompt and checks it fits. Returns 0 and *out (free it
     * with prepared_free), or -1 and e (a 4xx). */
    int (*prepare)(struct ac_backend *b, const struct ac_gen_request *req, struct ac_prepared **out,
                   struct ac_api_error *e);
    /* Prompt tokens of a prepared request. */
    int (*n_prompt)(const struct ac_prepared *p);
    /* May be NULL. After p ran (generating n_generated tokens), on the
     * telemetry's thread beside run: the fidelity and relative cost of the
     * configuration it ran on (server/telemetry.h). 0, 1 when it cannot be
     * measured (a remote variant), or -1 and err. */
    int (*fidelity)(struct ac_backend *b, const struct ac_prepared *p, int n_generated, double *fidelity,
                    double *relative_cost, char *err);
    /* Runs on the worker thread, one run at a time: generates, handing text
     * to emit until it asks to stop. Returns 0 and res, or -1 and err. */
    int (*run)(struct ac_backend *b, struct ac_prepared *p, const struct ac_gen_request *req, ac_text_fn emit,
               void *user, struct ac_run_result *res, char *err);
    void (*prepared_free)(struct ac_prepared *p);
    /* The configuration a prepared request will run on, so the scheduler
     * can group requests and cut swaps; NULL or -1: no grouping. */
    int (*group)(const struct ac_prepared *p);
    /* May be NULL. The group of the request the scheduler expects to run
     * after the current (or about to start) run, -1 for none: the backend
     * may make it ready in the background (load its variant) once the
     * current run holds what it needs, never delaying that run. Thread-safe. */
    void (*prefetch)(struct ac_backend *b, int next_group);
    /* May be NULL (no variant cache): its counters, for /metrics. */
    void (*cache_stats)(struct ac_backend *b, struct ac_cache_stats *out);
    void (*free)(struct ac_backend *b);
};

/* Implementations start with this struct. */
struct ac_backend {
    const struct ac_backend_ops *ops;
};

void ac_backend_free(struct ac_backend *b);

/* The model name that asks the router to choose. */
#define AC_ROUTER_NAME "agentcompress"

struct ac_tokenizer;
struct ac_context;

/* Backend helpers. The prompt's token ids (ChatML for chat, BOS where the
 * model asks for it), checked to leave room in n_ctx; *ids is malloc'd
 * (NULL and *n 0 on failure). */
int ac_backend_prompt_ids(const struct ac_tokenizer *tok, const struct ac_gen_request *req, int n_ctx,
                          int32_t **ids, int *n, struct ac_api_error *e);
/* The 400 for a model name the backend does not serve. */
int ac_backend_model_not_found(const struct ac_gen_request *req, struct ac_api_error *e);
/* Generates on ctx per the request's sampling and limits, streaming text to
 * emit; fills res except variant (complexity -1, cache_hit -1). */
int ac_backend_generate(struct ac_context *ctx, const struct ac_tokenizer *tok, const int32_t *ids, int n_ids,
                        const struct ac_gen_request *req, ac_text_fn emit, void *user, struct ac_run_result *res,
                        char *err);

/* A variants directory behind the variant cache. Requests naming
 * AC_ROUTER_NAME (or no model) are routed by the controller when one is
 * given, else go to fixed_variant; requests naming a variant run on it. */
struct ac_routed_params {
    const char *dir;
    const char *controller_path; /* NULL: no controller */
    const char *fixed_variant;   /* NULL: the manifest's first */
    size_t mem_budget;           /* 0: two of the largest variants */
    bool measure_fidelity;       /* telemetry will measure fidelity: the budget must hold two variants */
    int n_ctx, n_threads;        /* 0: defaults */
    int prompt_cache;            /* contexts kept for prompt caching (runtime/prompt_cache.h); 0: none */
};
int ac_backend_routed_new(struct ac_backend **out, const struct ac_routed_params *p, char *err);

/* Forwards req to an OpenAI-compatible endpoint (url ends in /v1) as
 * `model`, streaming, handing text to emit as it arrives (emit returning
 * true stops the transfer). AGENTCOMPRESS_REMOTE_API_KEY, when set, is sent
 * as the bearer token. Fills res except variant and cost. */
int ac_remote_run(const char *url, const char *model, const struct ac_gen_request *req, ac_text_fn emit, void *user,
                  struct ac_run_result *res, char *err);

struct ac_single_params {
    int n_ctx;        /* 0: the library's default */
    int n_threads;    /* 0: number of cores */
    int prompt_cache; /* contexts kept for prompt caching (runtime/prompt_cache.h); 0: none */
};

/* One GGUF model and its kept contexts. Its variant name is the file's name
 * without ".gguf"; requests may name that or "agentcompress" (the router). */
int ac_backend_single_new(struct ac_backend **out, const char *model_path, const struct ac_single_params *p,
                          char *err);

/* ChatML as SmolLM2's tokenizer.chat_template writes it: the default system
 * message first when the conversation does not start with one, each message
 * as <|im_start|>ROLE\nCONTENT<|im_end|>\n, then <|im_start|>assistant\n.
 * Calls seg in order with each piece; special pieces are the control tokens.
 * Returns 0, or the first non-zero value seg returns. */
typedef int (*ac_chat_seg_fn)(void *user, const char *text, size_t len, bool special);
int ac_chatml_walk(const struct ac_chat_message *msgs, int n, ac_chat_seg_fn seg, void *user);
/* The same as one malloc'd string (NULL when out of memory). */
char *ac_chatml_format(const struct ac_chat_message *msgs, int n);

/* ---------------------------------------------------------------- server */

struct ac_server_config {
    const char *host;       /* address or name to bind; NULL: 127.0.0.1 */
    int port;               /* 0: any free port (see ac_server_port) */
    const char *api_key;    /* NULL or "": no authentication */
    size_t max_body;        /* request body bytes; 0: 1 MiB */
    int max_connections;    /* 0: 64 */
    int max_queue;          /* requests waiting for the worker; 0: 64 */
    FILE *log;              /* one line per request, or NULL */
    const char *telemetry;  /* SQLite file: one row per request (see telemetry.h), or NULL */
    double telemetry_fidelity; /* fraction of requests whose fidelity is measured, in [0, 1] */
};

struct ac_server;

/* Starts listening and the worker. The backend stays the caller's and must
 * outlive the server. */
int ac_server_start(struct ac_server **out, const struct ac_server_config *cfg, struct ac_backend *backend,
                    char *err);
int ac_server_port(const struct ac_server *s);
/* Stops accepting connections, answers the requests already received
 * (queued and running ones run to the end), then frees the server. */
void ac_server_stop(struct ac_server *s);

#endif
