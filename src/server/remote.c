/* remote.c - forwarding a request to an OpenAI-compatible endpoint (vLLM,
 * llama.cpp's server, another agentcompress serve) with libcurl, streaming
 * the answer back as it arrives. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "server/server.h"
#include "server/server_internal.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* The request as the endpoint's JSON, streamed, under its model name. */
static char *request_body(const struct ac_gen_request *req, const char *model) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", model);
    if (req->kind == AC_API_CHAT) {
        cJSON *msgs = cJSON_AddArrayToObject(b, "messages");
        for (int i = 0; i < req->n_messages; i++) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", req->messages[i].role);
            cJSON_AddStringToObject(m, "content", req->messages[i].content);
            cJSON_AddItemToArray(msgs, m);
        }
    } else {
        cJSON_AddStringToObject(b, "prompt", req->prompt);
    }
    if (req->max_tokens > 0) cJSON_AddNumberToObject(b, "max_tokens", req->max_tokens);
    cJSON_AddNumberToObject(b, "temperature", req->temperature);
    cJSON_AddNumberToObject(b, "top_p", req->top_p);
    if (req->seed < (1ull << 53)) /* JSON numbers are doubles; a drawn 64-bit seed is not the client's */
        cJSON_AddNumberToObject(b, "seed", (double)req->seed);
    if (req->n_stop > 0) {
        cJSON *stop = cJSON_AddArrayToObject(b, "stop");
        for (int i = 0; i < req->n_stop; i++) cJSON_AddItemToArray(stop, cJSON_CreateString(req->stop[i]));
    }
    cJSON_AddBoolToObject(b, "stream", true);
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(b, "stream_options"), "include_usage", true);
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    return s;
}

struct sse {
    enum ac_api_kind kind;
    ac_text_fn emit;
    void *user;
    struct ac_buf line; /* the incomplete line so far */
    struct ac_buf raw;  /* the first bytes, for an error reply */
    bool stopped, done, length;
    int n_prompt, n_completion, n_chunks;
};

/* One "data: {...}" event of the stream. */
static void sse_event(struct sse *s, const char *data) {
    if (!strcmp(data, "[DONE]")) {
        s->done = true;
        return;
    }
    cJSON *j = cJSON_Parse(data);
    if (!j) return;
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *text = s->kind == AC_API_CHAT ? cJSON_GetObjectItem(cJSON_GetObjectItem(choice, "delta"), "content")
                                               : cJSON_GetObjectItem(choice, "text");
    if (cJSON_IsString(text) && *text->valuestring) {
        s->n_chunks++;
        if (!s->stopped && s->emit(s->user, text->valuestring, strlen(text->valuestring))) s->stopped = true;
    }
    const cJSON *fin = cJSON_GetObjectItem(choice, "finish_reason");
    if (cJSON_IsString(fin)) s->length = !strcmp(fin->valuestring, "length");
    const cJSON *usage = cJSON_GetObjectItem(j, "usage");
    if (cJSON_IsObject(usage)) {
        const cJSON *p = cJSON_GetObjectItem(usage, "prompt_tokens"), *c = cJSON_GetObjectItem(usage, "completion_tokens");
        if (cJSON_IsNumber(p)) s->n_prompt = (int)p->valuedouble;
        if (cJSON_IsNumber(c)) s->n_completion = (int)c->valuedouble;
    }
    cJSON_Delete(j);
}

static size_t on_data(char *ptr, size_t size, size_t n, void *user) {
    struct sse *s = user;
    const size_t len = size * n;
    if (s->raw.len < 4096 && ac_buf_append(&s->raw, ptr, len < 4096 ? len : 4096) != 0) return 0;
    for (size_t i = 0; i < len; i++) {
        if (ptr[i] != '\n') {
            if (ac_buf_append(&s->line, &ptr[i], 1) != 0) return 0;
            continue;
        }
        const char *l = s->line.p ? s->line.p : "";
        if (!strncmp(l, "data: ", 6)) sse_event(s, l + 6);
        s->line.len = 0;
        if (s->line.p) s->line.p[0] = '\0';
    }
    return s->stopped ? 0 : len; /* 0 makes curl stop the transfer */
}

int ac_remote_run(const char *url, const char *model, const struct ac_gen_request *req, ac_text_fn emit, void *user,
                  struct ac_run_result *res, char *err) {
    pthread_once(&curl_once, curl_init);
    char endpoint[2048];
    snprintf(endpoint, sizeof endpoint, "%s%s", url,
             req->kind == AC_API_CHAT ? "/chat/completions" : "/completions");
    char *body = request_body(req, model);
    CURL *h = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    const char *key = getenv("AGENTCOMPRESS_REMOTE_API_KEY");
    char auth[512];
    if (key && *key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        headers = curl_slist_append(headers, auth);
    }
    struct sse s = {.kind = req->kind, .emit = emit, .user = user};
    int rc = -1;
    if (!body || !h || !headers) {
        ac_errf(err, "out of memory");
        goto done;
    }
    curl_easy_setopt(h, CURLOPT_URL, endpoint);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a silent endpoint (no keep-alive) for 60 s is dead */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    const CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && s.stopped)) {
        ac_errf(err, "remote %s: %s", endpoint, curl_easy_strerror(cc));
        goto done;
    }
    if (status >= 400) {
        ac_errf(err, "remote %s: HTTP %ld: %.200s", endpoint, status, s.raw.p ? s.raw.p : "");
        goto done;
    }
    if (!s.done && !s.stopped) {
        ac_errf(err, "remote %s: the stream ended without [DONE]", endpoint);
        goto done;
    }
    memset(res, 0, sizeof *res);
    res->n_prompt = s.n_prompt;
    res->n_generated = s.n_completion ? s.n_completion : s.n_chunks;
    res->hit_length = s.length && !s.stopped;
    res->complexity = -1;
    res->cache_hit = -1;
    rc = 0;
done:
    ac_buf_free(&s.line);
    ac_buf_free(&s.raw);
    curl_slist_free_all(headers);
    if (h) curl_easy_cleanup(h);
    cJSON_free(body);
    return rc;
}
