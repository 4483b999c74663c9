/* metrics.c - the server's counters and their Prometheus text exposition
 * (format 0.0.4). Every metric is present from the start, at zero. */
#include <stdio.h>
#include <string.h>

#include "runtime/cache.h"
#include "server/server_internal.h"

const double ac_latency_bounds[AC_METRICS_BUCKETS] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, -1};

static const char *const ENDPOINTS[AC_EP_COUNT] = {
    [AC_EP_CHAT] = "/v1/chat/completions", [AC_EP_COMPLETIONS] = "/v1/completions",
    [AC_EP_MODELS] = "/v1/models",         [AC_EP_HEALTH] = "/health",
    [AC_EP_METRICS] = "/metrics",          [AC_EP_OTHER] = "other",
};

const char *ac_endpoint_name(enum ac_endpoint ep) { return ENDPOINTS[ep < AC_EP_COUNT ? ep : AC_EP_OTHER]; }

int ac_metrics_init(struct ac_metrics *m) {
    memset(m, 0, sizeof *m);
    return pthread_mutex_init(&m->mu, NULL) == 0 ? 0 : -1;
}

void ac_metrics_destroy(struct ac_metrics *m) { pthread_mutex_destroy(&m->mu); }

void ac_metrics_request(struct ac_metrics *m, enum ac_endpoint ep, int status, double seconds) {
    if (ep >= AC_EP_COUNT) ep = AC_EP_OTHER;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < AC_METRICS_STATUSES; i++) {
        if (m->requests[ep][i].status == 0) m->requests[ep][i].status = status;
        if (m->requests[ep][i].status == status) {
            m->requests[ep][i].count++;
            break;
        }
    }
    int b = 0;
    while (b < AC_METRICS_BUCKETS - 1 && seconds > ac_latency_bounds[b]) b++;
    m->latency_bucket[b]++;
    m->latency_count++;
    m->latency_sum += seconds;
    pthread_mutex_unlock(&m->mu);
}

void ac_metrics_generation(struct ac_metrics *m, const struct ac_run_result *res) {
    const char *variant = res->variant ? res->variant : "";
    pthread_mutex_lock(&m->mu);
    m->tokens_prompt += (uint64_t)res->n_prompt;
    m->tokens_cached += (uint64_t)res->n_cached;
    m->tokens_generated += (uint64_t)res->n_generated;
    if (res->cache_hit == 1) m->cache_hits++;
    if (res->cache_hit == 0) m->cache_misses++, m->variant_swaps++;
    int i = 0;
    while (i < m->n_variants && strcmp(m->variants[i].name, variant) != 0) i++;
    if (i == m->n_variants && i < AC_METRICS_VARIANTS) {
        snprintf(m->variants[i].name, sizeof m->variants[i].name, "%s", variant);
        m->n_variants++;
    }
    if (i < m->n_variants) m->variants[i].count++;
    pthread_mutex_unlock(&m->mu);
}

void ac_metrics_disconnect(struct ac_metrics *m) {
    pthread_mutex_lock(&m->mu);
    m->client_disconnects++;
    pthread_mutex_unlock(&m->mu);
}

/* A label value with \, " and newline escaped as the format asks. */
static int put_label(struct ac_buf *out, const char *s) {
    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
        if (ac_buf_append(out, esc ? esc : s, esc ? 2 : 1) != 0) return -1;
    }
    return 0;
}

static int counter(struct ac_buf *out, const char *name, const char *help, uint64_t v) {
    return ac_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                         (unsigned long long)v);
}

static int gauge(struct ac_buf *out, const char *name, const char *help, long long v) {
    return ac_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, v);
}

int ac_metrics_render(struct ac_metrics *m, int queue_depth, int in_flight, const struct ac_cache_stats *cache,
                      struct ac_buf *out) {
    static const struct ac_cache_stats no_cache;
    if (!cache) cache = &no_cache;
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    rc |= ac_buf_printf(out, "# HELP agentcompress_requests_total HTTP requests answered, by endpoint and status.\n"
                             "# TYPE agentcompress_requests_total counter\n");
    for (int ep = 0; ep < AC_EP_COUNT; ep++)
        for (int i = 0; i < AC_METRICS_STATUSES && m->requests[ep][i].status; i++)
            rc |= ac_buf_printf(out, "agentcompress_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                                ENDPOINTS[ep], m->requests[ep][i].status,
                                (unsigned long long)m->requests[ep][i].count);
    rc |= counter(out, "agentcompress_tokens_prompt_total", "Prompt tokens processed.", m->tokens_prompt);
    rc |= counter(out, "agentcompress_tokens_cached_total", "Prompt tokens taken from a kept context, not run.",
                  m->tokens_cached);
    rc |= counter(out, "agentcompress_tokens_generated_total", "Tokens generated.", m->tokens_generated);
    rc |= ac_buf_printf(out, "# HELP agentcompress_variant_requests_total Generation requests run, by variant.\n"
                             "# TYPE agentcompress_variant_requests_total counter\n");
    for (int i = 0; i < m->n_variants; i++) {
        rc |= ac_buf_printf(out, "agentcompress_variant_requests_total{variant=\"");
        rc |= put_label(out, m->variants[i].name);
        rc |= ac_buf_printf(out, "\"} %llu\n", (unsigned long long)m->variants[i].count);
    }
    rc |= counter(out, "agentcompress_variant_swaps_total", "Variants loaded to serve a request.", m->variant_swaps);
    rc |= counter(out, "agentcompress_variant_cache_hits_total", "Requests whose variant was resident.",
                  m->cache_hits);
    rc |= counter(out, "agentcompress_variant_cache_misses_total", "Requests whose variant had to be loaded.",
                  m->cache_misses);
    rc |= counter(out, "agentcompress_variant_prefetches_total",
                  "Variants loaded in the background for the next queued request while another ran.",
                  (uint64_t)cache->prefetches);
    rc |= counter(out, "agentcompress_variant_prefetch_hits_total",
                  "Requests whose variant had been prefetched (resident or still loading).",
                  (uint64_t)cache->prefetch_hits);
    rc |= ac_buf_printf(out, "# HELP agentcompress_variant_load_seconds_total Time spent loading variants (swaps "
                             "and prefetches).\n# TYPE agentcompress_variant_load_seconds_total counter\n"
                             "agentcompress_variant_load_seconds_total %.6f\n",
                        cache->swap_seconds);
    rc |= gauge(out, "agentcompress_variant_resident_bytes", "Bytes of the variants resident or being loaded.",
                (long long)cache->resident_bytes);
    rc |= counter(out, "agentcompress_client_disconnects_total", "Streams the client closed before the end.",
                  m->client_disconnects);
    rc |= gauge(out, "agentcompress_queue_depth", "Requests waiting for the inference worker.", queue_depth);
    rc |= gauge(out, "agentcompress_requests_in_flight", "Requests being received, queued, run or answered.",
                in_flight);
    rc |= ac_buf_printf(out, "# HELP agentcompress_request_duration_seconds Time from request to the last byte "
                             "of its answer.\n# TYPE agentcompress_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < AC_METRICS_BUCKETS; b++) {
        cum += m->latency_bucket[b];
        if (b < AC_METRICS_BUCKETS - 1)
            rc |= ac_buf_printf(out, "agentcompress_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                                ac_latency_bounds[b], (unsigned long long)cum);
        else
            rc |= ac_buf_printf(out, "agentcompress_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                                (unsigned long long)cum);
    }
    rc |= ac_buf_printf(out, "agentcompress_request_duration_seconds_sum %.6f\n", m->latency_sum);
    rc |= ac_buf_printf(out, "agentcompress_request_duration_seconds_count %llu\n",
                        (unsigned long long)m->latency_count);
    pthread_mutex_unlock(&m->mu);
    return rc ? -1 : 0;
}
