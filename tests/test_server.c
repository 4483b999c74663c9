/* test_server.c - the OpenAI-compatible server as a client meets it: a
 * server started in-process on a free loopback port, driven with real HTTP
 * over sockets. Chat (greedy text, usage equal to our tokenizer's count),
 * streaming (chunks parse, deltas join to the greedy text), completions,
 * stop strings, models, health, metrics, every error status (and the server
 * still serving after each), a full queue, a client leaving mid-stream,
 * SIGTERM on the CLI (the stream in progress completes, exit 0), and the
 * official openai Python package when it is installed. Also the pure parts:
 * the text filter, request parsing and the ChatML formatter. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "common/common.h"
#include "compress/compress.h"
#include "controller/controller.h"
#include "eval/eval.h"
#include "eval/profile.h"
#include "eval/router.h"
#include "model/model.h"
#include "server/server.h"
#include "server/server_internal.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"
#include "workflow/workflow.h"

#define MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define VARIANT "SmolLM2-135M-Instruct.Q4_1"
#define KEY "test-key"
#define N_CTX 256
#define MAX_BODY 65536

static struct ac_backend *backend;
static struct ac_server *server;
static int port;
static struct ac_model *model; /* for the test's own tokenizer */
static struct ac_tokenizer *tok;
static char *greedy_chat_text; /* test_chat's answer, for the streaming test */
static char *greedy_chat_finish;

/* ---------------------------------------------------------- HTTP client */

struct http {
    int status;
    char *head; /* status line and headers */
    char *body; /* de-chunked, NUL-terminated */
    size_t body_len;
};

/* Writes a two-variant directory (f16, lite: copies of the tiny model) into
 * dir, made with mkdtemp. */
static void write_two_variants(const char *dir) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cp tests/fixtures/tiny_llama.gguf %s/f16.gguf && cp tests/fixtures/tiny_llama.gguf %s/lite.gguf && "
             "printf '%%s' '{\"base\": \"tiny\", \"variants\": ["
             "{\"name\": \"f16\", \"file\": \"f16.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 1},"
             "{\"name\": \"lite\", \"file\": \"lite.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 0.5}]}'"
             " > %s/manifest.json",
             dir, dir, dir);
    assert_int_equal(system(cmd), 0);
}

/* An untrained controller routing over "f16" and "lite" (the seed picks its
 * decisions), on the embeddings of m, saved to path. */
static void save_two_variant_controller(const struct ac_model *m, uint64_t seed, const char *path) {
    char err[AC_ERR_LEN];
    struct ac_controller_config cc;
    ac_controller_config_default(&cc, m->cfg.n_vocab, m->cfg.dim);
    cc.d_model = 32, cc.n_layers = 1, cc.n_heads = 2;
    cc.n_levels[0] = 2, cc.n_levels[1] = 1, cc.n_levels[2] = 1;
    snprintf(cc.quant_names[0], AC_CTRL_NAME_LEN, "f16");
    snprintf(cc.quant_names[1], AC_CTRL_NAME_LEN, "lite");
    cc.prune_levels[0] = 0.0f, cc.sparsity_levels[0] = 0.0f;
    struct ac_controller *ctrl;
    assert_int_equal(ac_controller_new(&ctrl, &cc, seed, err), 0);
    assert_int_equal(ac_controller_save(ctrl, path, err), 0);
    ac_controller_free(ctrl);
}

static void http_free(struct http *h) {
    free(h->head);
    free(h->body);
    memset(h, 0, sizeof *h);
}

/* Case-insensitive strstr (header names), non-NULL when found. */
static const char *has(const char *hay, const char *needle) {
    const size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n)) return hay;
    return NULL;
}

static int connect_to(int p) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 120};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const char *s, size_t n) {
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0) return; /* the server may answer early and close */
        s += k;
        n -= (size_t)k;
    }
}

/* Sends one request; extra: more header lines, each ending in \r\n. */
static void send_request(int fd, const char *method, const char *path, const char *auth, const char *extra,
                         const char *body, size_t body_len) {
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s%s", method, path,
                     auth ? "Authorization: Bearer " : "", auth ? auth : "", auth ? "\r\n" : "", extra ? extra : "");
    if (body && !(extra && strstr(extra, "Transfer-Encoding")))
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                      body_len);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    send_all(fd, head, (size_t)n);
    if (body) send_all(fd, body, body_len);
}

/* Reads to EOF and splits status, headers and (de-chunked) body. */
static void read_response(int fd, struct http *h) {
    struct ac_buf raw = {0};
    char buf[8192];
    ssize_t k;
    while ((k = recv(fd, buf, sizeof buf, 0)) > 0) ac_buf_append(&raw, buf, (size_t)k);
    ac_buf_append(&raw, "", 0);
    memset(h, 0, sizeof *h);
    char *p = raw.p;
    /* skip interim 100 Continue responses */
    while (!strncmp(p, "HTTP/1.1 100", 12) && strstr(p, "\r\n\r\n")) p = strstr(p, "\r\n\r\n") + 4;
    char *sep = strstr(p, "\r\n\r\n");
    if (!sep || sscanf(p, "HTTP/1.%*d %d", &h->status) != 1) {
        h->head = strdup("");
        h->body = strdup("");
        ac_buf_free(&raw);
        return;
    }
    h->head = strndup(p, (size_t)(sep - p));
    char *b = sep + 4;
    const size_t rest = raw.len - (size_t)(b - raw.p);
    struct ac_buf body = {0};
    if (has(h->head, "Transfer-Encoding: chunked")) {
        char *q = b, *end = b + rest;
        while (q < end) {
            char *e;
            unsigned long n = strtoul(q, &e, 16);
            e = strstr(e, "\r\n");
            if (!e || n == 0) break;
            q = e + 2;
            if (q + n > end) n = (unsigned long)(end - q);
            ac_buf_append(&body, q, n);
            q += n + 2;
        }
    } else {
        ac_buf_append(&body, b, rest);
    }
    ac_buf_append(&body, "", 0);
    h->body = body.p;
    h->body_len = body.len;
    ac_buf_free(&raw);
}

static struct http request_to(int p, const char *method, const char *path, const char *auth, const char *extra,
                              const char *body, size_t body_len) {
    struct http h = {0};
    int fd = connect_to(p);
    if (fd < 0) fail_msg("cannot connect to port %d", p);
    send_request(fd, method, path, auth, extra, body, body_len);
    read_response(fd, &h);
    close(fd);
    return h;
}

static struct http request(const char *method, const char *path, const char *body) {
    return request_to(port, method, path, KEY, NULL, body, body ? strlen(body) : 0);
}

static cJSON *parse_json(const struct http *h) {
    cJSON *j = cJSON_Parse(h->body);
    if (!j) fail_msg("not JSON (status %d): %s", h->status, h->body);
    return j;
}

static const char *json_str(const cJSON *o, const char *path) {
    /* path: keys separated by '.', array index 0 written as "0" */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *v = o;
    for (char *k = strtok(buf, "."); k && v; k = strtok(NULL, "."))
        v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, atoi(k)) : cJSON_GetObjectItemCaseSensitive(v, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double json_num(const cJSON *o, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *v = o;
    for (char *k = strtok(buf, "."); k && v; k = strtok(NULL, "."))
        v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, atoi(k)) : cJSON_GetObjectItemCaseSensitive(v, k);
    if (!cJSON_IsNumber(v)) fail_msg("%s is not a number", path);
    return v->valuedouble;
}

/* The server answers health checks: it is alive and serving. */
static void expect_serving(void) {
    struct http h = request("GET", "/health", NULL);
    assert_int_equal(h.status, 200);
    assert_non_null(strstr(h.body, "\"ok\""));
    http_free(&h);
}

/* An OpenAI error object with the status, and code when given. */
static void expect_error_http(const struct http *h, int status, const char *code) {
    if (h->status != status) fail_msg("expected %d, got %d: %s", status, h->status, h->body);
    assert_non_null(has(h->head, "Content-Type: application/json"));
    cJSON *j = parse_json(h);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert_true(cJSON_IsObject(e));
    assert_non_null(json_str(e, "message"));
    assert_non_null(json_str(e, "type"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(e, "param"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(e, "code"));
    if (code && (!json_str(e, "code") || strcmp(json_str(e, "code"), code) != 0))
        fail_msg("expected code %s: %s", code, h->body);
    cJSON_Delete(j);
}

static void expect_error(const char *method, const char *path, const char *auth, const char *body, int status,
                         const char *code) {
    struct http h = request_to(port, method, path, auth, NULL, body, body ? strlen(body) : 0);
    expect_error_http(&h, status, code);
    http_free(&h);
    expect_serving();
}

/* Our tokenizer's count for a text, as the server tokenizes prompts. */
static int count_tokens(const char *text) {
    char err[AC_ERR_LEN];
    int n = ac_tokenize(tok, text, strlen(text), true, true, NULL, 0, err);
    assert_true(n > 0);
    return n;
}

/* -------------------------------------------------------------- fixture */

static int setup(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct ac_single_params sp = {.n_ctx = N_CTX, .prompt_cache = 2};
    if (ac_backend_single_new(&backend, MODEL, &sp, err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    if (ac_model_load(&model, MODEL, err) != 0 || ac_tokenizer_load(&tok, model->file, err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    struct ac_server_config cfg = {.port = 0, .api_key = KEY, .max_body = MAX_BODY};
    if (ac_server_start(&server, &cfg, backend, err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    port = ac_server_port(server);
    return port > 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    ac_server_stop(server);
    ac_backend_free(backend);
    ac_tokenizer_free(tok);
    ac_model_free(model);
    free(greedy_chat_text);
    free(greedy_chat_finish);
    return 0;
}

/* ---------------------------------------------------------- pure parts */

static char *filter_all(const char *const *pieces, int n, char *const *stop, int n_stop, bool *stopped) {
    struct ac_text_filter f;
    ac_text_filter_init(&f, stop, n_stop);
    struct ac_buf out = {0};
    for (int i = 0; i < n; i++) assert_int_equal(ac_text_filter_feed(&f, pieces[i], strlen(pieces[i]), false, &out), 0);
    assert_int_equal(ac_text_filter_feed(&f, NULL, 0, true, &out), 0);
    *stopped = f.stopped;
    ac_text_filter_free(&f);
    ac_buf_append(&out, "", 0);
    return out.p;
}

static void test_text_filter(void **state) {
    (void)state;
    bool stopped;
    /* "é" (C3 A9) and "€" (E2 82 AC) split across pieces arrive whole */
    const char *split[] = {"caf\xC3", "\xA9 ", "\xE2\x82", "\xAC!"};
    char *s = filter_all(split, 4, NULL, 0, &stopped);
    assert_string_equal(s, "caf\xC3\xA9 \xE2\x82\xAC!");
    free(s);
    /* a lone continuation byte, a bad lead, a surrogate and a cut-short end
     * become U+FFFD */
    const char *bad[] = {"a\x80", "b\xFF", "\xED\xA0\x80", "c\xE2\x82"};
    s = filter_all(bad, 4, NULL, 0, &stopped);
    assert_string_equal(s, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD");
    free(s);
    /* a stop string across pieces: the text ends before it */
    char *stop[] = {"END", "\n\n"};
    const char *pieces[] = {"Hello E", "N", "D world"};
    s = filter_all(pieces, 3, stop, 2, &stopped);
    assert_string_equal(s, "Hello ");
    assert_true(stopped);
    free(s);
    /* the earliest of two stop strings wins */
    const char *two[] = {"a\n\nbEND"};
    s = filter_all(two, 1, stop, 2, &stopped);
    assert_string_equal(s, "a");
    free(s);
    /* a held prefix that never completes is released at the end */
    const char *prefix[] = {"ab E", "N"};
    s = filter_all(prefix, 2, stop, 2, &stopped);
    assert_string_equal(s, "ab EN");
    assert_false(stopped);
    free(s);
    /* held text is released as soon as it cannot start a stop string */
    struct ac_text_filter f;
    ac_text_filter_init(&f, stop, 2);
    struct ac_buf out = {0};
    assert_int_equal(ac_text_filter_feed(&f, "xE", 2, false, &out), 0);
    assert_int_equal(out.len, 1);
    assert_int_equal(ac_text_filter_feed(&f, "x", 1, false, &out), 0);
    assert_string_equal(out.p, "xEx");
    ac_buf_free(&out);
    ac_text_filter_free(&f);
}

static void test_parse_request(void **state) {
    (void)state;
    struct ac_gen_request r;
    struct ac_api_error e;
    const char *ok = "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
                     "{\"role\":\"assistant\",\"content\":null}],"
                     "\"max_completion_tokens\":7,\"temperature\":0,\"top_p\":0.5,\"seed\":42,"
                     "\"stop\":\"x\",\"stream\":true,\"n\":1,\"stream_options\":{\"include_usage\":true},"
                     "\"frequency_penalty\":0}  \n";
    assert_int_equal(ac_api_parse_request(AC_API_CHAT, ok, strlen(ok), &r, &e), 0);
    assert_int_equal(r.n_messages, 3);
    assert_string_equal(r.messages[0].role, "system");
    assert_string_equal(r.messages[1].content, "ab");
    assert_string_equal(r.messages[2].content, "");
    assert_int_equal(r.max_tokens, 7);
    assert_true(r.temperature == 0.0f && r.top_p == 0.5f && r.seed == 42);
    assert_int_equal(r.n_stop, 1);
    assert_true(r.stream && r.include_usage);
    ac_gen_request_free(&r);

    static const char *const bad[] = {
        "", "{", "[]", "{\"messages\":[]}", "{\"messages\":{}}", "{}", "{\"messages\":[{\"role\":\"user\"}]}",
        "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "{\"messages\":[{\"role\":1,\"content\":\"x\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1.5}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":3}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":7}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"model\":5}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} trailing",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ac_api_parse_request(AC_API_CHAT, bad[i], strlen(bad[i]), &r, &e) == 0)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(e.status, 400);
    }
    const char *prompt = "{\"prompt\":[\"only one\"]}";
    assert_int_equal(ac_api_parse_request(AC_API_COMPLETION, prompt, strlen(prompt), &r, &e), 0);
    assert_string_equal(r.prompt, "only one");
    assert_true(r.temperature == 1.0f && r.max_tokens == 0 && !r.stream);
    ac_gen_request_free(&r);
    assert_int_equal(ac_api_parse_request(AC_API_COMPLETION, "{\"prompt\":3}", 12, &r, &e), -1);
}

static void test_chatml(void **state) {
    (void)state;
    /* SmolLM2's template: the default system message when none leads */
    struct ac_chat_message m1[] = {{"user", "hi"}, {"assistant", "hello"}, {"user", "bye"}};
    char *s = ac_chatml_format(m1, 3);
    assert_string_equal(s, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                           "Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"
                           "<|im_start|>user\nbye<|im_end|>\n<|im_start|>assistant\n");
    free(s);
    struct ac_chat_message m2[] = {{"system", "S"}, {"user", "U"}};
    s = ac_chatml_format(m2, 2);
    assert_string_equal(s, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
    /* one system + one user message is what the tokenizer's formatter writes */
    char *ref = ac_chat_format_chatml("S", "U");
    assert_string_equal(s, ref);
    free(ref);
    free(s);
}

/* ------------------------------------------------------------ endpoints */

static void test_health_models(void **state) {
    (void)state;
    struct http h = request_to(port, "GET", "/health", NULL, NULL, NULL, 0); /* no key needed */
    assert_int_equal(h.status, 200);
    http_free(&h);
    h = request("GET", "/v1/models", NULL);
    assert_int_equal(h.status, 200);
    cJSON *j = parse_json(&h);
    assert_string_equal(json_str(j, "object"), "list");
    assert_string_equal(json_str(j, "data.0.id"), VARIANT);
    assert_string_equal(json_str(j, "data.0.object"), "model");
    assert_string_equal(json_str(j, "data.1.id"), "agentcompress");
    cJSON_Delete(j);
    http_free(&h);
}

#define CHAT_BODY(extra)                                                                                  \
    "{\"model\":\"" VARIANT "\",\"messages\":[{\"role\":\"user\",\"content\":\"What is the capital of France?\"}]," \
    "\"temperature\":0,\"max_tokens\":16" extra "}"

static void test_chat(void **state) {
    (void)state;
    struct http h = request("POST", "/v1/chat/completions", CHAT_BODY(""));
    assert_int_equal(h.status, 200);
    cJSON *j = parse_json(&h);
    assert_string_equal(json_str(j, "object"), "chat.completion");
    assert_int_equal(strncmp(json_str(j, "id"), "chatcmpl-", 9), 0);
    assert_string_equal(json_str(j, "model"), VARIANT);
    assert_true(json_num(j, "created") > 1.6e9);
    assert_int_equal((int)json_num(j, "choices.0.index"), 0);
    assert_string_equal(json_str(j, "choices.0.message.role"), "assistant");
    const char *text = json_str(j, "choices.0.message.content");
    const char *finish = json_str(j, "choices.0.finish_reason");
    assert_non_null(text);
    assert_true(strlen(text) > 0);
    assert_true(!strcmp(finish, "stop") || !strcmp(finish, "length"));

    struct ac_chat_message m = {"user", "What is the capital of France?"};
    char *prompt = ac_chatml_format(&m, 1);
    const int n_prompt = count_tokens(prompt);
    free(prompt);
    assert_int_equal((int)json_num(j, "usage.prompt_tokens"), n_prompt);
    const int n_gen = (int)json_num(j, "usage.completion_tokens");
    assert_true(n_gen >= 1 && n_gen <= 16);
    if (!strcmp(finish, "length")) assert_int_equal(n_gen, 16);
    assert_int_equal((int)json_num(j, "usage.total_tokens"), n_prompt + n_gen);
    assert_int_equal((int)json_num(j, "usage.prompt_tokens_details.cached_tokens"), 0);
    assert_string_equal(json_str(j, "agentcompress.variant"), VARIANT);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "agentcompress"),
                                                              "complexity")));
    assert_true(json_num(j, "agentcompress.cost_bytes") > 0);
    greedy_chat_text = strdup(text);
    greedy_chat_finish = strdup(finish);
    cJSON_Delete(j);
    http_free(&h);

    /* the same greedy request, with the router's name, answers the same,
     * from the cached prompt (all but the token that gives the logits) */
    h = request("POST", "/v1/chat/completions",
                "{\"model\":\"agentcompress\",\"messages\":[{\"role\":\"user\",\"content\":\"What is the capital of "
                "France?\"}],\"temperature\":0,\"max_tokens\":16}");
    assert_int_equal(h.status, 200);
    j = parse_json(&h);
    assert_string_equal(json_str(j, "choices.0.message.content"), greedy_chat_text);
    assert_string_equal(json_str(j, "model"), "agentcompress");
    assert_int_equal((int)json_num(j, "usage.prompt_tokens"), n_prompt);
    assert_int_equal((int)json_num(j, "usage.prompt_tokens_details.cached_tokens"), n_prompt - 1);
    cJSON_Delete(j);
    http_free(&h);
}

/* Two conversations in turn, with two contexts kept: the second's new
 * context starts from the first's system prompt, then each continues its
 * own cached prompt (all but the last token), answering as before. */
static void test_two_conversations(void **state) {
    (void)state;
    static const char *const bodies[2] = {
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Name three colours.\"}],\"temperature\":0,\"max_tokens\":4}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Count to five.\"}],\"temperature\":0,\"max_tokens\":4}"};
    char *first[2] = {NULL, NULL};
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < 2; k++) {
            struct http h = request("POST", "/v1/chat/completions", bodies[k]);
            assert_int_equal(h.status, 200);
            cJSON *j = parse_json(&h);
            const char *text = json_str(j, "choices.0.message.content");
            if (round == 0) {
                first[k] = strdup(text);
                /* the second conversation starts from the first's system prompt, copied */
                if (k == 1) assert_true(json_num(j, "usage.prompt_tokens_details.cached_tokens") > 0);
            } else {
                assert_string_equal(text, first[k]);
                assert_int_equal((int)json_num(j, "usage.prompt_tokens_details.cached_tokens"),
                                 (int)json_num(j, "usage.prompt_tokens") - 1);
            }
            cJSON_Delete(j);
            http_free(&h);
        }
    free(first[0]);
    free(first[1]);
}

/* Splits an SSE body into its data payloads; returns the count. */
static int sse_events(char *body, char **events, int max) {
    int n = 0;
    for (char *line = strtok(body, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == ':') continue; /* comment (keep-alive) */
        if (strncmp(line, "data: ", 6) != 0) fail_msg("not an SSE data line: %s", line);
        if (n < max) events[n++] = line + 6;
    }
    return n;
}

static void test_chat_stream(void **state) {
    (void)state;
    assert_non_null(greedy_chat_text);
    struct http h =
        request("POST", "/v1/chat/completions", CHAT_BODY(",\"stream\":true,\"stream_options\":{\"include_usage\":true}"));
    assert_int_equal(h.status, 200);
    assert_non_null(has(h.head, "Content-Type: text/event-stream"));
    char *events[256];
    const int n = sse_events(h.body, events, 256);
    assert_true(n >= 4);
    assert_string_equal(events[n - 1], "[DONE]");
    struct ac_buf text = {0};
    ac_buf_append(&text, "", 0);
    char id[64] = "";
    const char *finish = NULL;
    int usage_tokens = -1;
    cJSON *keep[256] = {0};
    for (int i = 0; i < n - 1; i++) {
        cJSON *c = keep[i] = cJSON_Parse(events[i]);
        if (!c) fail_msg("chunk %d is not JSON: %s", i, events[i]);
        assert_string_equal(json_str(c, "object"), "chat.completion.chunk");
        if (i == 0) snprintf(id, sizeof id, "%s", json_str(c, "id"));
        assert_string_equal(json_str(c, "id"), id);
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(c, "choices");
        assert_true(cJSON_IsArray(choices));
        if (cJSON_GetArraySize(choices) == 0) { /* the usage chunk */
            usage_tokens = (int)json_num(c, "usage.completion_tokens");
            continue;
        }
        if (i == 0) assert_string_equal(json_str(c, "choices.0.delta.role"), "assistant");
        const char *d = json_str(c, "choices.0.delta.content");
        if (d) ac_buf_append(&text, d, strlen(d));
        if (json_str(c, "choices.0.finish_reason")) finish = json_str(c, "choices.0.finish_reason");
    }
    assert_string_equal(text.p, greedy_chat_text);
    assert_non_null(finish);
    assert_string_equal(finish, greedy_chat_finish);
    assert_true(usage_tokens >= 1);
    for (int i = 0; i < n - 1; i++) cJSON_Delete(keep[i]);
    ac_buf_free(&text);
    http_free(&h);
}

static void test_multi_message(void **state) {
    (void)state;
    struct http h = request("POST", "/v1/chat/completions",
                            "{\"messages\":[{\"role\":\"system\",\"content\":\"You answer in one word.\"},"
                            "{\"role\":\"user\",\"content\":\"Say yes.\"},{\"role\":\"assistant\",\"content\":\"Yes.\"},"
                            "{\"role\":\"user\",\"content\":\"Again, <|im_end|> please.\"}],"
                            "\"temperature\":0.7,\"top_p\":0.9,\"seed\":7,\"max_tokens\":4}");
    assert_int_equal(h.status, 200);
    cJSON *j = parse_json(&h);
    /* a control token written by a user stays text: more tokens than when parsed */
    struct ac_chat_message m[] = {{"system", "You answer in one word."}, {"user", "Say yes."},
                                  {"assistant", "Yes."}, {"user", "Again, <|im_end|> please."}};
    char *prompt = ac_chatml_format(m, 4);
    assert_true((int)json_num(j, "usage.prompt_tokens") > count_tokens(prompt));
    free(prompt);
    assert_true(json_num(j, "usage.completion_tokens") <= 4);
    cJSON_Delete(j);
    http_free(&h);
}

static void test_completions_and_stop(void **state) {
    (void)state;
    struct http h = request("POST", "/v1/completions",
                            "{\"prompt\":\"The three primary colors are\",\"temperature\":0,\"max_tokens\":12}");
    assert_int_equal(h.status, 200);
    cJSON *j = parse_json(&h);
    assert_string_equal(json_str(j, "object"), "text_completion");
    assert_int_equal(strncmp(json_str(j, "id"), "cmpl-", 5), 0);
    char *text = strdup(json_str(j, "choices.0.text"));
    assert_int_equal((int)json_num(j, "usage.prompt_tokens"), count_tokens("The three primary colors are"));
    cJSON_Delete(j);
    http_free(&h);
    assert_true(strlen(text) >= 4);

    /* stop at a piece of the greedy text: the answer is what came before it */
    char stop[8];
    const size_t at = strlen(text) / 2;
    snprintf(stop, sizeof stop, "%.3s", text + at);
    char *first = strstr(text, stop);
    char body[512];
    cJSON *sj = cJSON_CreateString(stop);
    char *stop_json = cJSON_PrintUnformatted(sj);
    snprintf(body, sizeof body,
             "{\"prompt\":\"The three primary colors are\",\"temperature\":0,\"max_tokens\":12,\"stop\":[%s]}",
             stop_json);
    h = request("POST", "/v1/completions", body);
    assert_int_equal(h.status, 200);
    j = parse_json(&h);
    assert_int_equal(strlen(json_str(j, "choices.0.text")), (size_t)(first - text));
    assert_int_equal(strncmp(json_str(j, "choices.0.text"), text, (size_t)(first - text)), 0);
    assert_string_equal(json_str(j, "choices.0.finish_reason"), "stop");
    cJSON_Delete(j);
    http_free(&h);

    /* streamed completion: text chunks join to the same text */
    h = request("POST", "/v1/completions",
                "{\"prompt\":\"The three primary colors are\",\"temperature\":0,\"max_tokens\":12,\"stream\":true}");
    assert_int_equal(h.status, 200);
    char *events[64];
    const int n = sse_events(h.body, events, 64);
    assert_string_equal(events[n - 1], "[DONE]");
    struct ac_buf joined = {0};
    ac_buf_append(&joined, "", 0);
    for (int i = 0; i < n - 1; i++) {
        cJSON *c = cJSON_Parse(events[i]);
        assert_non_null(c);
        assert_string_equal(json_str(c, "object"), "text_completion");
        const char *t = json_str(c, "choices.0.text");
        if (t) ac_buf_append(&joined, t, strlen(t));
        cJSON_Delete(c);
    }
    assert_string_equal(joined.p, text);
    ac_buf_free(&joined);
    http_free(&h);
    cJSON_Delete(sj);
    free(stop_json);
    free(text);
}

static void test_errors(void **state) {
    (void)state;
    const char *chat = "/v1/chat/completions";
    expect_error("POST", chat, KEY, "{\"messages\": [", 400, NULL);                      /* malformed JSON */
    expect_error("POST", chat, KEY, "[1,2]", 400, NULL);                                /* not an object */
    expect_error("POST", chat, KEY, "{\"messages\":\"hi\"}", 400, NULL);                  /* wrong type */
    expect_error("POST", chat, KEY, CHAT_BODY(",\"top_p\":\"high\""), 400, NULL);        /* wrong type */
    expect_error("POST", chat, KEY, CHAT_BODY(",\"n\":3"), 400, NULL);                    /* n != 1 */
    expect_error("POST", chat, KEY, "{\"messages\":[]}", 400, NULL);                      /* empty messages */
    expect_error("POST", chat, KEY, "", 400, NULL);                                      /* empty body */
    expect_error("POST", chat, KEY, "{\"model\":\"gpt-9\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400,
                 "model_not_found");
    expect_error("POST", "/v1/completions", KEY, "{\"prompt\":\"\"}", 400, NULL); /* nothing to continue */

    /* prompt longer than the context */
    struct ac_buf big = {0};
    ac_buf_printf(&big, "{\"prompt\":\"");
    for (int i = 0; i < N_CTX + 10; i++) ac_buf_printf(&big, "word%d ", i);
    ac_buf_printf(&big, "\"}");
    expect_error("POST", "/v1/completions", KEY, big.p, 400, "context_length_exceeded");
    ac_buf_free(&big);

    /* auth */
    expect_error("POST", chat, NULL, CHAT_BODY(""), 401, "invalid_api_key");
    expect_error("POST", chat, "wrong-key", CHAT_BODY(""), 401, "invalid_api_key");
    expect_error("GET", "/v1/models", "test-ke", NULL, 401, "invalid_api_key");
    expect_error("GET", "/metrics", NULL, NULL, 401, "invalid_api_key");

    /* routes and methods */
    expect_error("GET", "/v1/nothing", KEY, NULL, 404, NULL);
    expect_error("POST", "/", KEY, "{}", 404, NULL);
    expect_error("GET", chat, KEY, NULL, 405, NULL);
    expect_error("DELETE", "/v1/models", KEY, NULL, 405, NULL);
    struct http h = request("GET", chat, NULL);
    assert_non_null(has(h.head, "Allow: POST"));
    http_free(&h);

    /* body too large: announced by Content-Length, and sent chunked */
    char *huge = malloc(MAX_BODY * 2 + 1);
    memset(huge, ' ', MAX_BODY * 2);
    huge[MAX_BODY * 2] = '\0';
    struct http h413 = request_to(port, "POST", chat, KEY, "Content-Length: 131072\r\nExpect: 100-continue\r\n",
                                  NULL, 0);
    expect_error_http(&h413, 413, "request_too_large");
    http_free(&h413);
    expect_serving();
    struct ac_buf chunked = {0};
    for (int i = 0; i < 4; i++) {
        ac_buf_printf(&chunked, "%x\r\n", MAX_BODY / 2);
        ac_buf_append(&chunked, huge, MAX_BODY / 2);
        ac_buf_printf(&chunked, "\r\n");
    }
    ac_buf_printf(&chunked, "0\r\n\r\n");
    h = request_to(port, "POST", chat, KEY, "Transfer-Encoding: chunked\r\n", chunked.p, chunked.len);
    expect_error_http(&h, 413, NULL);
    http_free(&h);
    ac_buf_free(&chunked);
    free(huge);
    expect_serving();

    /* and it still generates */
    h = request("POST", chat, CHAT_BODY(""));
    assert_int_equal(h.status, 200);
    http_free(&h);
}

/* Reads from fd until needle shows up in what was read (or EOF). */
static bool read_until(int fd, const char *needle, struct ac_buf *got) {
    char buf[4096];
    ssize_t k;
    while (!(got->p && strstr(got->p, needle)) && (k = recv(fd, buf, sizeof buf, 0)) > 0)
        ac_buf_append(got, buf, (size_t)k);
    return got->p && strstr(got->p, needle);
}

static void test_queue_full_and_disconnect(void **state) {
    (void)state;
    char err[AC_ERR_LEN];
    struct ac_backend *b2;
    struct ac_server *s2;
    struct ac_single_params sp = {.n_ctx = N_CTX};
    assert_int_equal(ac_backend_single_new(&b2, MODEL, &sp, err), 0);
    struct ac_server_config cfg = {.max_queue = 1};
    assert_int_equal(ac_server_start(&s2, &cfg, b2, err), 0);
    const int p2 = ac_server_port(s2);
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":200,\"stream\":true,\"temperature\":0}";

    /* A runs: its first text has arrived */
    int a = connect_to(p2);
    send_request(a, "POST", "/v1/completions", NULL, NULL, body, strlen(body));
    struct ac_buf got_a = {0};
    assert_true(read_until(a, "\"text\":", &got_a));
    /* B waits in the queue (its headers are out as soon as it is queued) */
    int b = connect_to(p2);
    send_request(b, "POST", "/v1/completions", NULL, NULL, body, strlen(body));
    struct ac_buf got_b = {0};
    assert_true(read_until(b, "200 OK", &got_b));
    /* C finds the queue full */
    struct http h = request_to(p2, "POST", "/v1/completions", NULL, NULL, body, strlen(body));
    expect_error_http(&h, 503, "queue_full");
    assert_non_null(has(h.head, "Retry-After:"));
    http_free(&h);

    /* both clients leave mid-stream: their runs stop, the server serves on */
    close(a);
    close(b);
    ac_buf_free(&got_a);
    ac_buf_free(&got_b);
    /* the runs stop and the streams are counted when their connections
     * close; nowhere near 2 x 200 tokens ran */
    for (int tries = 0;; tries++) {
        h = request_to(p2, "GET", "/metrics", NULL, NULL, NULL, 0);
        assert_int_equal(h.status, 200);
        if ((strstr(h.body, "agentcompress_client_disconnects_total 2") &&
             strstr(h.body, "agentcompress_queue_depth 0")) || tries == 100)
            break;
        http_free(&h);
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    }
    assert_non_null(strstr(h.body, "agentcompress_client_disconnects_total 2"));
    unsigned long long generated = 0;
    const char *g = strstr(h.body, "\nagentcompress_tokens_generated_total ");
    assert_non_null(g);
    sscanf(g, "\nagentcompress_tokens_generated_total %llu", &generated);
    assert_true(generated < 200);
    http_free(&h);
    const char *hi = "{\"prompt\":\"Hi\",\"max_tokens\":2,\"temperature\":0}";
    h = request_to(p2, "POST", "/v1/completions", NULL, NULL, hi, strlen(hi));
    assert_int_equal(h.status, 200);
    http_free(&h);
    ac_server_stop(s2);
    ac_backend_free(b2);
}

static void test_metrics(void **state) {
    (void)state;
    struct http h = request("GET", "/metrics", NULL);
    assert_int_equal(h.status, 200);
    assert_non_null(has(h.head, "Content-Type: text/plain; version=0.0.4"));
    static const char *const names[] = {
        "# TYPE agentcompress_requests_total counter",
        "agentcompress_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} ",
        "agentcompress_requests_total{endpoint=\"/v1/chat/completions\",status=\"400\"} ",
        "agentcompress_requests_total{endpoint=\"/v1/chat/completions\",status=\"401\"} ",
        "agentcompress_requests_total{endpoint=\"other\",status=\"404\"} ",
        "\nagentcompress_tokens_prompt_total ",
        "\nagentcompress_tokens_generated_total ",
        "agentcompress_variant_requests_total{variant=\"" VARIANT "\"} ",
        "\nagentcompress_variant_swaps_total 0\n",
        "\nagentcompress_variant_cache_hits_total 0\n",
        "\nagentcompress_variant_prefetches_total 0\n", /* no cache: zero */
        "\nagentcompress_variant_prefetch_hits_total 0\n",
        "# TYPE agentcompress_queue_depth gauge\nagentcompress_queue_depth 0\n",
        "# TYPE agentcompress_request_duration_seconds histogram",
        "agentcompress_request_duration_seconds_bucket{le=\"0.1\"} ",
        "agentcompress_request_duration_seconds_bucket{le=\"+Inf\"} ",
        "\nagentcompress_request_duration_seconds_sum ",
        "\nagentcompress_request_duration_seconds_count ",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strstr(h.body, names[i])) fail_msg("/metrics lacks '%s':\n%s", names[i], h.body);
    /* test_chat and test_two_conversations ran from cached prompts */
    const char *cached = has(h.body, "\nagentcompress_tokens_cached_total ");
    assert_non_null(cached);
    assert_true(atoi(cached + strlen("\nagentcompress_tokens_cached_total ")) > 0);
    http_free(&h);
}

/* ------------------------------------------------------ child processes */

static const char *build_dir(void) {
    const char *b = getenv("AC_BUILD");
    return b && *b ? b : "build";
}

static void test_sigterm_finishes_stream(void **state) {
    (void)state;
    char cli[256];
    snprintf(cli, sizeof cli, "%s/agentcompress", build_dir());
    int errpipe[2];
    assert_int_equal(pipe(errpipe), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(errpipe[1], 2);
        close(errpipe[0]);
        execl(cli, cli, "serve", "-m", MODEL, "--port", "0", "--ctx-size", "256", "-q", (char *)NULL);
        _exit(127);
    }
    close(errpipe[1]);
    FILE *err = fdopen(errpipe[0], "r");
    char line[512] = "";
    int p = 0;
    if (!fgets(line, sizeof line, err) || !strstr(line, "127.0.0.1:") ||
        sscanf(strstr(line, "127.0.0.1:") + 10, "%d", &p) != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("serve did not start: %s", line);
    }
    int fd = connect_to(p);
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"stream\":true,\"temperature\":0}";
    send_request(fd, "POST", "/v1/completions", NULL, NULL, body, strlen(body));
    struct ac_buf got = {0};
    assert_true(read_until(fd, "\"text\":", &got));
    kill(pid, SIGTERM);
    assert_true(read_until(fd, "data: [DONE]", &got)); /* the stream in progress completes */
    assert_non_null(strstr(got.p, "\"finish_reason\":\"length\""));
    close(fd);
    ac_buf_free(&got);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    fclose(err);
    assert_int_equal(connect_to(p), -1); /* nobody listens any more */
}

static void test_openai_python(void **state) {
    (void)state;
    if (system("python3 -c 'import openai' >/dev/null 2>&1") != 0) {
        printf("skip: openai Python package not importable (pip install openai); test_openai_python skipped\n");
        return;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 tests/server/openai_client.py http://127.0.0.1:%d/v1 %s 2>&1", port, KEY);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("openai client failed:\n%s", out);
    printf("%s", out);
    expect_serving();
}

/* The variants backend: a two-variant directory of the tiny model behind
 * the variant cache, routed by an (untrained) controller. Routed requests
 * report the variant and complexity; a named variant runs on that one;
 * the cache metrics count one load per variant, then hits. */
static void test_routed_backend(void **state) {
    (void)state;
    char dir[] = "/tmp/ac_routed_XXXXXX", cmd[2048], ctrl_path[128], err[AC_ERR_LEN];
    assert_non_null(mkdtemp(dir));
    write_two_variants(dir);
    struct ac_model *tiny;
    snprintf(ctrl_path, sizeof ctrl_path, "%s/f16.gguf", dir);
    assert_int_equal(ac_model_load(&tiny, ctrl_path, err), 0);
    snprintf(ctrl_path, sizeof ctrl_path, "%s/ctrl.gguf", dir);
    save_two_variant_controller(tiny, 7, ctrl_path);
    ac_model_free(tiny);

    struct ac_backend *rb;
    struct ac_routed_params rp = {.dir = dir, .controller_path = ctrl_path, .n_ctx = 128, .prompt_cache = 1};
    if (ac_backend_routed_new(&rb, &rp, err) != 0) fail_msg("routed backend: %s", err);
    struct ac_server *rs;
    char tele[160];
    snprintf(tele, sizeof tele, "%s/telemetry.sqlite", dir);
    struct ac_server_config cfg = {.port = 0, .telemetry = tele};
    assert_int_equal(ac_server_start(&rs, &cfg, rb, err), 0);
    const int rport = ac_server_port(rs);
    struct http h = request_to(rport, "GET", "/v1/models", NULL, NULL, NULL, 0);
    cJSON *j = parse_json(&h);
    assert_string_equal(json_str(j, "data.0.id"), "agentcompress");
    assert_string_equal(json_str(j, "data.2.id"), "lite");
    cJSON_Delete(j);
    http_free(&h);
    static const char routed[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}],"
                                 "\"temperature\":0,\"max_tokens\":4}";
    static const char named[] = "{\"model\":\"lite\",\"prompt\":\"hello\",\"temperature\":0,\"max_tokens\":4}";
    for (int k = 0; k < 2; k++) {
        h = request_to(rport, "POST", "/v1/chat/completions", NULL, NULL, routed, strlen(routed));
        if (h.status != 200) fail_msg("routed chat: %d %s", h.status, h.body);
        j = parse_json(&h);
        const char *v = json_str(j, "agentcompress.variant");
        assert_true(!strcmp(v, "f16") || !strcmp(v, "lite"));
        const double c = json_num(j, "agentcompress.complexity");
        assert_true(c >= 0.0 && c <= 1.0);
        cJSON_Delete(j);
        http_free(&h);
        h = request_to(rport, "POST", "/v1/completions", NULL, NULL, named, strlen(named));
        if (h.status != 200) fail_msg("named completion: %d %s", h.status, h.body);
        j = parse_json(&h);
        assert_string_equal(json_str(j, "agentcompress.variant"), "lite");
        cJSON_Delete(j);
        http_free(&h);
    }
    /* the body's override wins over the routed model name */
    static const char over[] = "{\"model\":\"agentcompress\",\"agentcompress\":{\"variant\":\"lite\"},"
                               "\"prompt\":\"hello\",\"max_tokens\":2}";
    h = request_to(rport, "POST", "/v1/completions", NULL, NULL, over, strlen(over));
    j = parse_json(&h);
    assert_string_equal(json_str(j, "agentcompress.variant"), "lite");
    cJSON_Delete(j);
    http_free(&h);
    static const char bad_over[] = "{\"agentcompress\":{\"variant\":7},\"prompt\":\"hello\"}";
    h = request_to(rport, "POST", "/v1/completions", NULL, NULL, bad_over, strlen(bad_over));
    assert_int_equal(h.status, 400);
    http_free(&h);
    static const char unknown[] = "{\"model\":\"nope\",\"prompt\":\"hello\"}";
    h = request_to(rport, "POST", "/v1/completions", NULL, NULL, unknown, strlen(unknown));
    expect_error_http(&h, 400, "model_not_found");
    http_free(&h);
    h = request_to(rport, "GET", "/metrics", NULL, NULL, NULL, 0);
    /* four runs over at most two variants, both fitting the default budget */
    const char *misses = has(h.body, "\nagentcompress_variant_cache_misses_total ");
    const char *hits = has(h.body, "\nagentcompress_variant_cache_hits_total ");
    assert_non_null(misses);
    assert_non_null(hits);
    const int n_miss = atoi(misses + strlen("\nagentcompress_variant_cache_misses_total "));
    const int n_hit = atoi(hits + strlen("\nagentcompress_variant_cache_hits_total "));
    assert_true(n_miss >= 1 && n_miss <= 2);
    assert_int_equal(n_hit + n_miss, 5);
    http_free(&h);
    /* the same request twice on one configuration: the second runs from the
     * kept context's cached prompt, and answers the same */
    static const char again[] = "{\"model\":\"lite\",\"prompt\":\"hello there, how are you today?\","
                                "\"temperature\":0,\"max_tokens\":3}";
    char *first_text = NULL;
    for (int k = 0; k < 2; k++) {
        h = request_to(rport, "POST", "/v1/completions", NULL, NULL, again, strlen(again));
        if (h.status != 200) fail_msg("completion: %d %s", h.status, h.body);
        j = parse_json(&h);
        if (k == 0) {
            first_text = strdup(json_str(j, "choices.0.text"));
        } else {
            assert_string_equal(json_str(j, "choices.0.text"), first_text);
            assert_int_equal((int)json_num(j, "usage.prompt_tokens_details.cached_tokens"),
                             (int)json_num(j, "usage.prompt_tokens") - 1);
        }
        cJSON_Delete(j);
        http_free(&h);
    }
    free(first_text);
    ac_server_stop(rs);
    ac_backend_free(rb);
    /* one telemetry row per run, routed ones with a complexity, all with the task's ids (the
     * last two found lite resident) */
    snprintf(cmd, sizeof cmd,
             "test \"$(sqlite3 %s \"SELECT count(*), count(complexity), sum(cache_hit), sum(head_ids != '[]') "
             "FROM requests\")\" = '7|2|%d|7'",
             tele, n_hit + 2);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "sqlite3 -header %s 'SELECT * FROM requests' >&2", tele);
        (void)system(cmd);
        fail_msg("telemetry rows differ");
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Telemetry with fidelity sampling on a real server over the tiny model's
 * f16 and int2 variants: every request is measured after its answer. An
 * int2 row's fidelity is in [0, 1] and the same whether the request was
 * greedy or sampled (it depends on the prompt and configuration only);
 * f16's is 1; the file is a training profile. */
static void test_telemetry_fidelity(void **state) {
    (void)state;
    char dir[] = "/tmp/ac_tfid_XXXXXX", vdir[64], tele[96], cmd[512], err[AC_ERR_LEN];
    assert_non_null(mkdtemp(dir));
    snprintf(vdir, sizeof vdir, "%s/v", dir);
    snprintf(tele, sizeof tele, "%s/telemetry.sqlite", dir);
    const enum ac_variant_kind kinds[] = {AC_VARIANT_F16, AC_VARIANT_INT2};
    const struct ac_quantize_params qp = {.base_path = "tests/fixtures/tiny_llama.gguf", .out_dir = vdir,
                                          .kinds = kinds, .n_kinds = 2, .n_threads = 1};
    if (ac_quantize(&qp, err) != 0) fail_msg("quantize: %s", err);
    struct ac_backend *rb;
    const struct ac_routed_params rp = {.dir = vdir, .n_ctx = 128, .n_threads = 1, .measure_fidelity = true};
    if (ac_backend_routed_new(&rb, &rp, err) != 0) fail_msg("routed backend: %s", err);
    struct ac_server *rs;
    const struct ac_server_config cfg = {.port = 0, .telemetry = tele, .telemetry_fidelity = 1.0};
    if (ac_server_start(&rs, &cfg, rb, err) != 0) fail_msg("server: %s", err);
    const int rport = ac_server_port(rs);
    static const char *const prompts[] = {"hello there", "the cat sat on", "one two three four"};
    static const char *const runs[] = {"\"model\":\"q2_0\",\"temperature\":0",
                                       "\"model\":\"q2_0\",\"temperature\":1.0,\"seed\":3",
                                       "\"model\":\"f16\",\"temperature\":0"};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) {
            char body[256];
            snprintf(body, sizeof body, "{%s,\"prompt\":\"%s\",\"max_tokens\":8}", runs[k], prompts[i]);
            struct http h = request_to(rport, "POST", "/v1/completions", NULL, NULL, body, strlen(body));
            if (h.status != 200) fail_msg("%s: %d %s", body, h.status, h.body);
            http_free(&h);
        }
    ac_server_stop(rs); /* measures what is still queued */
    ac_backend_free(rb);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(tele, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT variant, fidelity, relative_cost, completion_tokens FROM requests "
                                        "ORDER BY id", -1, &st, NULL), SQLITE_OK);
    double fid[9], rel[9];
    int n = 0, gen[9];
    while (sqlite3_step(st) == SQLITE_ROW && n < 9) {
        assert_int_equal(sqlite3_column_type(st, 1), SQLITE_FLOAT); /* every request measured */
        fid[n] = sqlite3_column_double(st, 1);
        rel[n] = sqlite3_column_double(st, 2);
        gen[n] = sqlite3_column_int(st, 3);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), n % 3 == 2 ? "f16" : "q2_0");
        n++;
    }
    sqlite3_finalize(st);
    assert_int_equal(n, 9);
    for (int i = 0; i < 3; i++) {
        const double *f = fid + 3 * i, *r = rel + 3 * i;
        printf("  \"%s\": q2_0 fidelity %.3f (greedy) / %.3f (sampled), relative cost %.3f; f16 %.3f\n", prompts[i],
               f[0], f[1], r[0], f[2]);
        assert_true(f[0] >= 0.0 && f[0] <= 1.0 && f[1] >= 0.0 && f[1] <= 1.0);
        assert_true(r[0] > 0.0 && r[0] < 1.0);
        if (gen[3 * i] == gen[3 * i + 1]) assert_true(f[0] == f[1]); /* same reference length */
        assert_true(f[2] == 1.0 && r[2] == 1.0);
    }
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT fidelity_sampled, fidelity_measured, fidelity_dropped FROM servers",
                                        -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 9);
    assert_int_equal(sqlite3_column_int(st, 1), 9);
    assert_int_equal(sqlite3_column_int(st, 2), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* a training profile: one task per prompt over f16 and q2_0 */
    struct ac_train_dataset *ds;
    if (ac_train_load_profile(&ds, tele, err) != 0) fail_msg("train profile: %s", err);
    assert_int_equal(ds->n_tasks, 3);
    assert_int_equal(ds->n_configs, 2);
    assert_string_equal(ds->levels.quant_names[1], "q2_0");
    for (int i = 0; i < 2 * ds->n_tasks; i++) assert_int_equal(ds->known[i], 1);
    ac_train_dataset_free(ds);

    /* the flag needs a variants directory and a telemetry file */
    snprintf(cmd, sizeof cmd, "%s/agentcompress serve --telemetry-fidelity 0.5 --telemetry %s 2>&1 | "
             "grep -q 'needs -V DIR'", build_dir(), tele);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/agentcompress serve -V %s --telemetry-fidelity 2 2>&1 | grep -q 'telemetry-fidelity'",
             build_dir(), vdir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The scheduler runs queued requests of the loaded variant first, but the
 * oldest request waits behind at most max_pass younger ones. */
static void test_scheduler(void **state) {
    (void)state;
    const int groups[] = {1, 2, 1, 2, 0, -1};
    int passed[] = {0, 0, 0, 0, 0, 0};
    assert_int_equal(ac_sched_pick(-1, groups, passed, 6, 4), 0); /* nothing loaded: oldest */
    assert_int_equal(ac_sched_pick(2, groups, passed, 6, 4), 1);  /* the loaded variant's */
    assert_int_equal(ac_sched_pick(0, groups, passed, 6, 4), 4);
    assert_int_equal(ac_sched_pick(7, groups, passed, 6, 4), 0);  /* none of it queued */
    assert_int_equal(ac_sched_pick(-1, groups + 5, passed, 1, 4), 0);
    passed[0] = 4; /* passed over enough: the oldest runs */
    assert_int_equal(ac_sched_pick(2, groups, passed, 6, 4), 0);
    assert_int_equal(ac_sched_pick(2, groups, passed, 1, 4), 0);
}

/* A counter's value in a /metrics body (-1 when absent). */
static long metric(const char *body, const char *name) {
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *at = strstr(body, key);
    return at ? atol(at + strlen(key)) : -1;
}

/* A backend that holds the first run until the test opens it, so that the
 * test can queue requests behind a run in progress; the rest goes to inner. */
static struct {
    struct ac_backend base;
    struct ac_backend *inner;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, open;
} gate;

static int gate_n_models(const struct ac_backend *b) {
    (void)b;
    return gate.inner->ops->n_models(gate.inner);
}
static const char *gate_model_name(const struct ac_backend *b, int i) {
    (void)b;
    return gate.inner->ops->model_name(gate.inner, i);
}
static int gate_prepare(struct ac_backend *b, const struct ac_gen_request *req, struct ac_prepared **out,
                        struct ac_api_error *e) {
    (void)b;
    return gate.inner->ops->prepare(gate.inner, req, out, e);
}
static int gate_n_prompt(const struct ac_prepared *p) { return gate.inner->ops->n_prompt(p); }
static int gate_run(struct ac_backend *b, struct ac_prepared *p, const struct ac_gen_request *req, ac_text_fn emit,
                    void *user, struct ac_run_result *res, char *err) {
    (void)b;
    pthread_mutex_lock(&gate.mu);
    gate.entered = true;
    pthread_cond_broadcast(&gate.cv);
    while (!gate.open) pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
    return gate.inner->ops->run(gate.inner, p, req, emit, user, res, err);
}
static void gate_prepared_free(struct ac_prepared *p) { gate.inner->ops->prepared_free(p); }
static int gate_group(const struct ac_prepared *p) { return gate.inner->ops->group(p); }
static void gate_prefetch(struct ac_backend *b, int next) {
    (void)b;
    gate.inner->ops->prefetch(gate.inner, next);
}
static void gate_cache_stats(struct ac_backend *b, struct ac_cache_stats *out) {
    (void)b;
    gate.inner->ops->cache_stats(gate.inner, out);
}
static const struct ac_backend_ops GATE_OPS = {
    .n_models = gate_n_models,
    .model_name = gate_model_name,
    .prepare = gate_prepare,
    .n_prompt = gate_n_prompt,
    .run = gate_run,
    .prepared_free = gate_prepared_free,
    .group = gate_group,
    .prefetch = gate_prefetch,
    .cache_stats = gate_cache_stats,
};

/* Prefetch: while a request runs on f16, the queue's next request for the
 * other variant has it loaded in the background (the budget holds both), so
 * that request finds it resident: one load a request waited for, one
 * prefetch, one prefetch hit. The first run is held at a gate until the
 * other two requests are queued, so the order is fixed, not timed. */
static void test_prefetch_next_variant(void **state) {
    (void)state;
    char dir[] = "/tmp/ac_prefetch_XXXXXX", cmd[160], err[AC_ERR_LEN];
    assert_non_null(mkdtemp(dir));
    write_two_variants(dir);
    struct ac_backend *rb;
    struct ac_routed_params rp = {.dir = dir, .n_ctx = 128};
    if (ac_backend_routed_new(&rb, &rp, err) != 0) fail_msg("routed backend: %s", err);
    gate.base.ops = &GATE_OPS;
    gate.inner = rb;
    pthread_mutex_init(&gate.mu, NULL);
    pthread_cond_init(&gate.cv, NULL);
    struct ac_server *rs;
    struct ac_server_config cfg = {.port = 0};
    assert_int_equal(ac_server_start(&rs, &cfg, &gate.base, err), 0);
    const int rport = ac_server_port(rs);

    static const char *const bodies[] = {
        "{\"model\":\"f16\",\"prompt\":\"hello\",\"temperature\":0,\"max_tokens\":3}",
        "{\"model\":\"f16\",\"prompt\":\"hello again\",\"temperature\":0,\"max_tokens\":3}",
        "{\"model\":\"lite\",\"prompt\":\"hello\",\"temperature\":0,\"max_tokens\":3}",
    };
    int fds[3];
    for (int k = 0; k < 3; k++) {
        fds[k] = connect_to(rport);
        assert_true(fds[k] >= 0);
        send_request(fds[k], "POST", "/v1/completions", NULL, NULL, bodies[k], strlen(bodies[k]));
        if (k == 0) { /* the first is running (held at the gate) before the others queue */
            pthread_mutex_lock(&gate.mu);
            while (!gate.entered) pthread_cond_wait(&gate.cv, &gate.mu);
            pthread_mutex_unlock(&gate.mu);
        }
    }
    for (;;) { /* both others queued behind it */
        struct http h = request_to(rport, "GET", "/health", NULL, NULL, NULL, 0);
        const bool queued = strstr(h.body, "\"queue_depth\":2") != NULL;
        http_free(&h);
        if (queued) break;
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    pthread_mutex_lock(&gate.mu);
    gate.open = true;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    static const char *const variants[] = {"f16", "f16", "lite"};
    for (int k = 0; k < 3; k++) {
        struct http h;
        read_response(fds[k], &h);
        close(fds[k]);
        if (h.status != 200) fail_msg("request %d: %d %s", k, h.status, h.body);
        cJSON *j = parse_json(&h);
        assert_string_equal(json_str(j, "agentcompress.variant"), variants[k]);
        cJSON_Delete(j);
        http_free(&h);
    }
    struct http h = request_to(rport, "GET", "/metrics", NULL, NULL, NULL, 0);
    /* f16 loaded for the first request; lite prefetched while the second
     * (f16, run before it as the loaded variant's) ran */
    assert_int_equal(metric(h.body, "agentcompress_variant_cache_misses_total"), 1);
    assert_int_equal(metric(h.body, "agentcompress_variant_swaps_total"), 1);
    assert_int_equal(metric(h.body, "agentcompress_variant_cache_hits_total"), 2);
    assert_int_equal(metric(h.body, "agentcompress_variant_prefetches_total"), 1);
    assert_int_equal(metric(h.body, "agentcompress_variant_prefetch_hits_total"), 1);
    http_free(&h);
    ac_server_stop(rs);
    ac_backend_free(rb);
    pthread_cond_destroy(&gate.cv);
    pthread_mutex_destroy(&gate.mu);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A workflows file run through the server gives eval's decisions and
 * outputs. Eval's side is what `agentcompress eval -c CTRL` computes from
 * a profile: the controller's decision on each stage's first user-text
 * tokens, and that configuration's greedy output stored by `profile`. The
 * server's side is a client running the workflows: one chat request per
 * stage (temperature 0, the stage's max_tokens, {prev} filled with the
 * server's previous answer), routed by the same controller. Both variants
 * are the default model, so {prev} is the same on both sides (eval fills
 * it with f16's output whatever was chosen); the controller is untrained,
 * seeded so that it picks both. */
static const struct {
    const char *workflow;
    int stage;
    const char *prompt;
    int max_tokens;
} FLOW[] = {
    {"w1", 1, "Name three primary colors.", 12},
    {"w1", 2, "Write this as a JSON list: {prev}", 16},
    {"w1", 3, "How many items are in {prev}? Answer with a number.", 6},
    {"w2", 1, "What is 12 times 3?", 10},
    {"w2", 2, "Double the answer: {prev}", 10},
};
#define N_FLOW ((int)(sizeof FLOW / sizeof FLOW[0]))

static void test_workflow_matches_eval(void **state) {
    (void)state;
    char dir[] = "/tmp/ac_flow_XXXXXX", cmd[9216], path[256], ctrl_path[256], db_path[256], err[AC_ERR_LEN];
    char model_path[4096];
    assert_non_null(mkdtemp(dir));
    assert_non_null(realpath(MODEL, model_path));
    snprintf(cmd, sizeof cmd,
             "ln -s %s %s/f16.gguf && ln -s %s %s/lite.gguf && printf '%%s' '{\"base\": \"smollm2\", \"variants\": ["
             "{\"name\": \"f16\", \"file\": \"f16.gguf\", \"bits_per_weight\": 4.5, \"bytes\": 1, \"relative_cost\": 1},"
             "{\"name\": \"lite\", \"file\": \"lite.gguf\", \"bits_per_weight\": 4.5, \"bytes\": 1, \"relative_cost\": 0.5}]}'"
             " > %s/manifest.json",
             model_path, dir, model_path, dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/tasks.jsonl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < N_FLOW; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "workflow", FLOW[i].workflow);
        cJSON_AddStringToObject(o, "domain", "cs");
        cJSON_AddNumberToObject(o, "stage", FLOW[i].stage);
        cJSON_AddStringToObject(o, "kind", "test");
        cJSON_AddStringToObject(o, "prompt", FLOW[i].prompt);
        cJSON_AddNumberToObject(o, "max_tokens", FLOW[i].max_tokens);
        cJSON_AddItemToObject(o, "check", cJSON_Parse("{\"type\": \"none\"}"));
        char *line = cJSON_PrintUnformatted(o);
        fprintf(f, "%s\n", line);
        free(line);
        cJSON_Delete(o);
    }
    fclose(f);
    /* an untrained controller over the two variants */
    snprintf(ctrl_path, sizeof ctrl_path, "%s/ctrl.gguf", dir);
    save_two_variant_controller(model, 26, ctrl_path);

    /* eval's side: profile, then route every stage as eval does */
    snprintf(db_path, sizeof db_path, "%s/profile.sqlite", dir);
    struct ac_profile_params pp = {.variants_dir = dir, .tasks_path = path, .db_path = db_path, .configs = "f16,lite"};
    struct ac_profile_summary sum;
    if (ac_profile_run(&pp, &sum, err) != 0) fail_msg("profile: %s", err);
    struct ac_eval_data d;
    if (ac_eval_load(db_path, &d, err) != 0) fail_msg("eval load: %s", err);
    assert_int_equal(d.n_stages, N_FLOW);
    struct ac_router router;
    if (ac_router_controller(&router, ctrl_path, dir, err) != 0) fail_msg("router: %s", err);
    char eval_config[N_FLOW][AC_CONFIG_NAME_LEN];
    double eval_complexity[N_FLOW];
    for (int s = 0; s < N_FLOW; s++) {
        const struct ac_eval_stage *g = &d.stages[s];
        struct ac_route_decision dec;
        if (router.route(router.ctx, g->ids, g->n_ids, g->n_task, g->prompt, &dec, err) != 0) fail_msg("route: %s", err);
        snprintf(eval_config[s], sizeof eval_config[s], "%s", dec.config);
        eval_complexity[s] = dec.score;
    }
    ac_router_free(&router);
    ac_eval_data_free(&d);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT r.output, r.n_prompt, r.n_generated FROM results r JOIN stages s ON "
                                        "s.id = r.stage_id JOIN configs c ON c.id = r.config_id "
                                        "WHERE s.workflow = ? AND s.stage = ? AND c.name = ?",
                                        -1, &q, NULL),
                     SQLITE_OK);

    /* the server's side */
    struct ac_backend *rb;
    struct ac_routed_params rp = {.dir = dir, .controller_path = ctrl_path};
    if (ac_backend_routed_new(&rb, &rp, err) != 0) fail_msg("routed backend: %s", err);
    struct ac_server *rs;
    struct ac_server_config cfg = {.port = 0};
    assert_int_equal(ac_server_start(&rs, &cfg, rb, err), 0);
    const int rport = ac_server_port(rs);
    char *prev = NULL;
    bool chose[2] = {false, false};
    for (int s = 0; s < N_FLOW; s++) {
        char *user = ac_prompt_fill(FLOW[s].prompt, FLOW[s].stage > 1 ? prev : NULL);
        cJSON *body = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(body, "messages"), *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", user);
        cJSON_AddItemToArray(msgs, m);
        cJSON_AddNumberToObject(body, "temperature", 0);
        cJSON_AddNumberToObject(body, "max_tokens", FLOW[s].max_tokens);
        char *text = cJSON_PrintUnformatted(body);
        cJSON_Delete(body);
        free(user);
        struct http h = request_to(rport, "POST", "/v1/chat/completions", NULL, NULL, text, strlen(text));
        free(text);
        if (h.status != 200) fail_msg("stage %s/%d: %d %s", FLOW[s].workflow, FLOW[s].stage, h.status, h.body);
        cJSON *j = parse_json(&h);
        const char *variant = json_str(j, "agentcompress.variant"), *out = json_str(j, "choices.0.message.content");
        assert_non_null(variant);
        assert_non_null(out);
        if (strcmp(variant, eval_config[s]) != 0)
            fail_msg("stage %s/%d: server chose %s, eval %s", FLOW[s].workflow, FLOW[s].stage, variant, eval_config[s]);
        chose[!strcmp(variant, "lite")] = true;
        assert_true(fabs(json_num(j, "agentcompress.complexity") - eval_complexity[s]) < 1e-6);
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, FLOW[s].workflow, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 2, FLOW[s].stage);
        sqlite3_bind_text(q, 3, eval_config[s], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        const char *want = (const char *)sqlite3_column_text(q, 0);
        if (strcmp(out, want ? want : "") != 0)
            fail_msg("stage %s/%d on %s: server said\n'%s'\neval's profile has\n'%s'", FLOW[s].workflow, FLOW[s].stage,
                     variant, out, want ? want : "");
        /* the same tokens: the prompt in the same template, the same generation */
        assert_int_equal((int)json_num(j, "usage.prompt_tokens"), sqlite3_column_int(q, 1));
        assert_int_equal((int)json_num(j, "usage.completion_tokens"), sqlite3_column_int(q, 2));
        free(prev);
        prev = strdup(out);
        cJSON_Delete(j);
        http_free(&h);
    }
    assert_true(chose[0] && chose[1]); /* the controller's seed makes it pick both */
    free(prev);
    sqlite3_finalize(q);
    sqlite3_close(db);
    ac_server_stop(rs);
    ac_backend_free(rb);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A remote variant: a routed server forwards to a second server on
 * loopback; the answer equals asking that server directly, streamed or not,
 * and an unreachable endpoint is a clean 5xx. */
static void test_remote_variant(void **state) {
    (void)state;
    char err[AC_ERR_LEN], dir[] = "/tmp/ac_remote_XXXXXX", cmd[2048];
    struct ac_backend *far_b, *near_b;
    struct ac_server *far_s, *near_s;
    struct ac_single_params sp = {.n_ctx = 128};
    assert_int_equal(ac_backend_single_new(&far_b, "tests/fixtures/tiny_llama.gguf", &sp, err), 0);
    struct ac_server_config cfg = {.port = 0};
    assert_int_equal(ac_server_start(&far_s, &cfg, far_b, err), 0);
    const int far_port = ac_server_port(far_s);
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "cp tests/fixtures/tiny_llama.gguf %s/f16.gguf && printf '%%s' '{\"base\": \"tiny\", \"variants\": ["
             "{\"name\": \"f16\", \"file\": \"f16.gguf\", \"bits_per_weight\": 32, \"bytes\": 1, \"relative_cost\": 1},"
             "{\"name\": \"far\", \"remote\": {\"url\": \"http://127.0.0.1:%d/v1\", \"model\": \"tiny_llama\"}, "
             "\"relative_cost\": 0.5},"
             "{\"name\": \"gone\", \"remote\": {\"url\": \"http://127.0.0.1:1/v1\", \"model\": \"x\"}, "
             "\"relative_cost\": 0.5}]}' > %s/manifest.json",
             dir, far_port, dir);
    assert_int_equal(system(cmd), 0);
    struct ac_routed_params rp = {.dir = dir, .n_ctx = 128};
    if (ac_backend_routed_new(&near_b, &rp, err) != 0) fail_msg("routed: %s", err);
    assert_int_equal(ac_server_start(&near_s, &cfg, near_b, err), 0);
    const int near_port = ac_server_port(near_s);

    static const char direct[] = "{\"model\":\"tiny_llama\",\"prompt\":\"hello world\",\"temperature\":0,\"max_tokens\":6}";
    static const char via[] = "{\"model\":\"far\",\"prompt\":\"hello world\",\"temperature\":0,\"max_tokens\":6}";
    static const char via_stream[] =
        "{\"model\":\"far\",\"prompt\":\"hello world\",\"temperature\":0,\"max_tokens\":6,\"stream\":true}";
    struct http h = request_to(far_port, "POST", "/v1/completions", NULL, NULL, direct, strlen(direct));
    cJSON *j = parse_json(&h);
    char *want = strdup(json_str(j, "choices.0.text"));
    cJSON_Delete(j);
    http_free(&h);
    h = request_to(near_port, "POST", "/v1/completions", NULL, NULL, via, strlen(via));
    if (h.status != 200) fail_msg("via remote: %d %s", h.status, h.body);
    j = parse_json(&h);
    assert_string_equal(json_str(j, "choices.0.text"), want);
    assert_string_equal(json_str(j, "agentcompress.variant"), "far");
    assert_int_equal((int)json_num(j, "usage.completion_tokens"), 6);
    cJSON_Delete(j);
    http_free(&h);
    h = request_to(near_port, "POST", "/v1/completions", NULL, NULL, via_stream, strlen(via_stream));
    assert_int_equal(h.status, 200);
    char *events[64], got[512] = "";
    const int n = sse_events(h.body, events, 64);
    for (int i = 0; i < n; i++) {
        if (!strcmp(events[i], "[DONE]")) continue;
        cJSON *c = cJSON_Parse(events[i]);
        const cJSON *t = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "choices"), 0), "text");
        if (cJSON_IsString(t)) strncat(got, t->valuestring, sizeof got - strlen(got) - 1);
        cJSON_Delete(c);
    }
    assert_string_equal(got, want);
    http_free(&h);
    static const char gone[] = "{\"model\":\"gone\",\"prompt\":\"hello\",\"max_tokens\":2}";
    h = request_to(near_port, "POST", "/v1/completions", NULL, NULL, gone, strlen(gone));
    assert_true(h.status >= 500);
    http_free(&h);
    h = request_to(near_port, "GET", "/health", NULL, NULL, NULL, 0);
    assert_int_equal(h.status, 200);
    http_free(&h);
    free(want);
    ac_server_stop(near_s);
    ac_backend_free(near_b);
    ac_server_stop(far_s);
    ac_backend_free(far_b);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_filter),
        cmocka_unit_test(test_parse_request),
        cmocka_unit_test(test_chatml),
        cmocka_unit_test(test_health_models),
        cmocka_unit_test(test_chat),
        cmocka_unit_test(test_two_conversations),
        cmocka_unit_test(test_chat_stream),
        cmocka_unit_test(test_multi_message),
        cmocka_unit_test(test_completions_and_stop),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_queue_full_and_disconnect),
        cmocka_unit_test(test_sigterm_finishes_stream),
        cmocka_unit_test(test_openai_python),
        cmocka_unit_test(test_routed_backend),
        cmocka_unit_test(test_telemetry_fidelity),
        cmocka_unit_test(test_scheduler),
        cmocka_unit_test(test_prefetch_next_variant),
        cmocka_unit_test(test_workflow_matches_eval),
        cmocka_unit_test(test_remote_variant),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
