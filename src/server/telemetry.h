/* telemetry.h - one SQLite row per served request: the routing decision,
 * tokens, weight bytes read, wall time, whether the variant was cached and,
 * for a sampled fraction of requests, the configuration's fidelity. A real
 * file users query with sqlite3 (tables `servers` and `requests`) and a
 * training profile for `agentcompress train --profile`.
 *
 * Fidelity (DESIGN.md "Metrics", as `agentcompress profile` measures it):
 * the f16 variant's greedy output on the request's prompt, up to as many
 * tokens as the request generated, is the reference; the configuration that
 * served the request is teacher-forced on it, and fidelity is the fraction
 * of reference tokens that are its top-1. It depends on the prompt and the
 * configuration only, never on the served text: a request sampled at
 * temperature > 0 is measured the same way (its sampled tokens would score
 * the sampler, not the compression). relative_cost is the configuration's
 * weight bytes over the f16 variant's on those same tokens.
 *
 * A sampled request is measured after its answer is sent, on the
 * telemetry's own thread, from a bounded queue: when the queue is full the
 * sample is dropped and counted (servers.fidelity_dropped); unmeasured rows
 * keep NULL. ac_telemetry_close measures what is queued, then returns.
 *
 * As a training profile (src/train/dataset.c): requests with a fidelity
 * are grouped by their task's first 32 token ids; each group is a task whose
 * measured configurations carry their mean relative cost and fidelity, plus
 * plain f16 (cost 1 and fidelity 1 by definition); the rest of the grid is
 * unmeasured, which the training loss handles (controller.h). */
#ifndef AC_TELEMETRY_H
#define AC_TELEMETRY_H

#include <stdint.h>

struct ac_telemetry;

struct ac_telemetry_row {
    const char *endpoint; /* "chat" or "completions" */
    const char *model;    /* as requested */
    const char *variant;  /* what ran it */
    float prune, sparsity; /* the configuration's pruning ratio and sparsity */
    double complexity;    /* < 0: not routed */
    int prompt_tokens, completion_tokens;
    double cost_bytes, wall_s, route_us;
    int cache_hit;        /* 1, 0, -1 no cache */
    const char *finish;   /* "stop", "length" or "error" */
    const int32_t *head_ids; /* the task's first tokens (what a controller reads) */
    int n_head;
};

/* Fidelity sampling; rate 0 turns it off. */
struct ac_telemetry_fidelity {
    double rate;   /* fraction of requests measured, in [0, 1] */
    int max_queue; /* measurements waiting at most (0: 16); more are dropped */
    /* Measures the request that item stands for, on the telemetry's thread:
     * 0 and both values, 1 when it cannot be measured (the row keeps NULL),
     * -1 and err. */
    int (*measure)(void *user, void *item, double *fidelity, double *relative_cost, char *err);
    void (*release)(void *user, void *item); /* item is done with */
    void *user;
    uint64_t seed; /* which requests are sampled */
};

struct ac_telemetry_stats {
    long sampled, measured, dropped, failed;
};

/* Opens (creating if needed) path; tables are created or given the columns
 * they lack. variants: the names served, stored with this server's rows so
 * that training can tell variant sets apart. fid may be NULL (no sampling). */
int ac_telemetry_open(struct ac_telemetry **out, const char *path, const char *const *variants, int n_variants,
                      const struct ac_telemetry_fidelity *fid, char *err);
/* Measures what is queued, writes the counters to the servers row, closes. */
void ac_telemetry_close(struct ac_telemetry *t);
/* Writes the row. item: NULL, or the request for fid->measure; the
 * telemetry owns it from here (released once measured, or at once when the
 * request is not sampled or the queue is full). Thread-safe. */
int ac_telemetry_log(struct ac_telemetry *t, const struct ac_telemetry_row *row, void *item, char *err);
void ac_telemetry_get_stats(struct ac_telemetry *t, struct ac_telemetry_stats *out);

#endif
