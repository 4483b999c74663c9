/* telemetry.h - one SQLite row per served request: the routing decision,
 * tokens, weight bytes read, wall time and whether the variant was cached.
 * A real file users query with sqlite3 (table `requests`); written by the
 * server's worker thread only. */
#ifndef AC_TELEMETRY_H
#define AC_TELEMETRY_H

#include <stdint.h>

struct ac_telemetry;

struct ac_telemetry_row {
    const char *endpoint; /* "chat" or "completions" */
    const char *model;    /* as requested */
    const char *variant;  /* what ran it */
    double complexity;    /* < 0: not routed */
    int prompt_tokens, completion_tokens;
    double cost_bytes, wall_s, route_us;
    int cache_hit;        /* 1, 0, -1 no cache */
    const char *finish;   /* "stop", "length" or "error" */
    const int32_t *head_ids; /* the prompt's first tokens (what a controller reads) */
    int n_head;
};

/* Opens (creating if needed) path; the table is created if missing. */
int ac_telemetry_open(struct ac_telemetry **out, const char *path, char *err);
void ac_telemetry_close(struct ac_telemetry *t);
int ac_telemetry_log(struct ac_telemetry *t, const struct ac_telemetry_row *row, char *err);

#endif
