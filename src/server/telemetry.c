/* telemetry.c - see telemetry.h. */
#include "server/telemetry.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

#define DEFAULT_FIDELITY_QUEUE 16

struct sample {
    void *item;
    int64_t row_id;
};

struct ac_telemetry {
    sqlite3 *db;
    sqlite3_stmt *insert, *set_fidelity;
    int64_t server_id;
    pthread_mutex_t mu; /* the connection, the queue, the counters */

    struct ac_telemetry_fidelity fid;
    uint64_t rng;
    struct sample *queue; /* ring of fid.max_queue */
    int head, n_queued;
    pthread_cond_t cv; /* queued, or stopping */
    bool stopping;
    pthread_t thread;
    bool thread_started;
    struct ac_telemetry_stats stats;
};

static const char SCHEMA[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS servers ("
    " id INTEGER PRIMARY KEY,"
    " started REAL NOT NULL,"       /* unix time */
    " variants TEXT NOT NULL,"      /* JSON array: the variant names served */
    " fidelity_rate REAL NOT NULL," /* fraction of requests measured */
    " fidelity_sampled INTEGER, fidelity_measured INTEGER, fidelity_dropped INTEGER, fidelity_failed INTEGER"
    ");"
    "CREATE TABLE IF NOT EXISTS requests ("
    " id INTEGER PRIMARY KEY,"
    " ts REAL NOT NULL,"            /* unix time the run ended */
    " endpoint TEXT NOT NULL,"
    " model TEXT,"                  /* as requested */
    " variant TEXT,"                /* what ran it */
    " complexity REAL,"             /* NULL: not routed */
    " prompt_tokens INTEGER, completion_tokens INTEGER,"
    " cost_bytes REAL,"             /* weight bytes read */
    " wall_s REAL, route_us REAL,"
    " cache_hit INTEGER,"           /* NULL: no cache */
    " finish TEXT,"
    " head_ids TEXT"                /* JSON array: the task's first tokens */
    ");";

/* Columns added after the first release; a file written before gets them. */
static const char *const LATER_COLUMNS[][2] = {
    {"server_id", "INTEGER"}, /* servers.id */
    {"prune", "REAL"},
    {"sparsity", "REAL"},
    {"fidelity", "REAL"},      /* NULL: not measured */
    {"relative_cost", "REAL"}, /* weight bytes / f16's on the measured tokens; NULL: not measured */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int add_missing_columns(sqlite3 *db, char *err) {
    bool have[sizeof LATER_COLUMNS / sizeof LATER_COLUMNS[0]] = {false};
    const int n = (int)(sizeof LATER_COLUMNS / sizeof LATER_COLUMNS[0]);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA table_info(requests)", -1, &st, NULL) != SQLITE_OK)
        return ac_errf(err, "%s", sqlite3_errmsg(db));
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        for (int i = 0; name && i < n; i++) have[i] |= !strcmp(name, LATER_COLUMNS[i][0]);
    }
    sqlite3_finalize(st);
    for (int i = 0; i < n; i++) {
        if (have[i]) continue;
        char sql[128];
        snprintf(sql, sizeof sql, "ALTER TABLE requests ADD COLUMN %s %s", LATER_COLUMNS[i][0], LATER_COLUMNS[i][1]);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) return ac_errf(err, "%s", sqlite3_errmsg(db));
    }
    return 0;
}

static int add_server(struct ac_telemetry *t, const char *const *variants, int n_variants, char *err) {
    cJSON *names = cJSON_CreateArray();
    for (int i = 0; names && i < n_variants; i++) cJSON_AddItemToArray(names, cJSON_CreateString(variants[i]));
    char *json = names ? cJSON_PrintUnformatted(names) : NULL;
    cJSON_Delete(names);
    if (!json) return ac_errf(err, "out of memory");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(t->db, "INSERT INTO servers (started, variants, fidelity_rate) VALUES (?,?,?)", -1, &st,
                                NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_double(st, 1, now_s());
        sqlite3_bind_text(st, 2, json, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 3, t->fid.rate);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_finalize(st);
    }
    cJSON_free(json);
    if (rc != SQLITE_OK) return ac_errf(err, "%s", sqlite3_errmsg(t->db));
    t->server_id = sqlite3_last_insert_rowid(t->db);
    return 0;
}

/* ------------------------------------------------------------- sampling */

static uint64_t next_random(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void *measure_main(void *arg) {
    struct ac_telemetry *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (t->n_queued == 0 && !t->stopping) pthread_cond_wait(&t->cv, &t->mu);
        if (t->n_queued == 0) break; /* stopping, and the queue is measured */
        const struct sample s = t->queue[t->head];
        t->head = (t->head + 1) % t->fid.max_queue;
        t->n_queued--;
        pthread_mutex_unlock(&t->mu);
        char err[AC_ERR_LEN];
        double fidelity = 0.0, rel = 0.0;
        const int rc = t->fid.measure(t->fid.user, s.item, &fidelity, &rel, err);
        t->fid.release(t->fid.user, s.item);
        pthread_mutex_lock(&t->mu);
        if (rc == 0) {
            sqlite3_stmt *st = t->set_fidelity;
            sqlite3_reset(st);
            sqlite3_bind_double(st, 1, fidelity);
            sqlite3_bind_double(st, 2, rel);
            sqlite3_bind_int64(st, 3, s.row_id);
            if (sqlite3_step(st) == SQLITE_DONE)
                t->stats.measured++;
            else
                t->stats.failed++;
        } else if (rc < 0) {
            t->stats.failed++;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static int open_db(struct ac_telemetry *t, const char *path, const char *const *variants, int n_variants, char *err) {
    if (sqlite3_open(path, &t->db) != SQLITE_OK) return ac_errf(err, "%s", t->db ? sqlite3_errmsg(t->db) : "cannot open");
    char *msg = NULL;
    if (sqlite3_exec(t->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        ac_errf(err, "%s", msg ? msg : sqlite3_errmsg(t->db));
        sqlite3_free(msg);
        return -1;
    }
    if (add_missing_columns(t->db, err) != 0) return -1;
    if (sqlite3_prepare_v2(t->db,
                           "INSERT INTO requests (ts, endpoint, model, variant, complexity, prompt_tokens, "
                           "completion_tokens, cost_bytes, wall_s, route_us, cache_hit, finish, head_ids, server_id, "
                           "prune, sparsity) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &t->insert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(t->db, "UPDATE requests SET fidelity = ?, relative_cost = ? WHERE id = ?", -1,
                           &t->set_fidelity, NULL) != SQLITE_OK)
        return ac_errf(err, "%s", sqlite3_errmsg(t->db));
    return add_server(t, variants, n_variants, err);
}

int ac_telemetry_open(struct ac_telemetry **out, const char *path, const char *const *variants, int n_variants,
                      const struct ac_telemetry_fidelity *fid, char *err) {
    *out = NULL;
    if (fid && !(fid->rate >= 0.0 && fid->rate <= 1.0))
        return ac_errf(err, "telemetry: fidelity sampling rate %g is not in [0, 1]", fid->rate);
    if (fid && fid->rate > 0.0 && (!fid->measure || !fid->release))
        return ac_errf(err, "telemetry: fidelity sampling needs a measure function");
    struct ac_telemetry *t = calloc(1, sizeof *t);
    if (!t) return ac_errf(err, "out of memory");
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (fid) t->fid = *fid;
    if (t->fid.max_queue <= 0) t->fid.max_queue = DEFAULT_FIDELITY_QUEUE;
    t->rng = t->fid.seed;
    if (open_db(t, path, variants, n_variants, err) != 0) {
        ac_err_prefix(err, "%s", path);
        ac_telemetry_close(t);
        return -1;
    }
    if (t->fid.rate > 0.0) {
        t->queue = calloc((size_t)t->fid.max_queue, sizeof *t->queue);
        if (!t->queue || pthread_create(&t->thread, NULL, measure_main, t) != 0) {
            ac_telemetry_close(t);
            return ac_errf(err, "telemetry: cannot start the fidelity thread");
        }
        t->thread_started = true;
    }
    *out = t;
    return 0;
}

void ac_telemetry_close(struct ac_telemetry *t) {
    if (!t) return;
    if (t->thread_started) {
        pthread_mutex_lock(&t->mu);
        t->stopping = true;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
    }
    if (t->server_id > 0) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(t->db,
                               "UPDATE servers SET fidelity_sampled = ?, fidelity_measured = ?, fidelity_dropped = ?, "
                               "fidelity_failed = ? WHERE id = ?",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, t->stats.sampled);
            sqlite3_bind_int64(st, 2, t->stats.measured);
            sqlite3_bind_int64(st, 3, t->stats.dropped);
            sqlite3_bind_int64(st, 4, t->stats.failed);
            sqlite3_bind_int64(st, 5, t->server_id);
            sqlite3_step(st);
            sqlite3_finalize(st);
        }
    }
    sqlite3_finalize(t->insert);
    sqlite3_finalize(t->set_fidelity);
    sqlite3_close(t->db);
    free(t->queue);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void ac_telemetry_get_stats(struct ac_telemetry *t, struct ac_telemetry_stats *out) {
    pthread_mutex_lock(&t->mu);
    *out = t->stats;
    pthread_mutex_unlock(&t->mu);
}

int ac_telemetry_log(struct ac_telemetry *t, const struct ac_telemetry_row *r, void *item, char *err) {
    char ids[32 * 12 + 8] = "[";
    size_t len = 1;
    for (int i = 0; i < r->n_head && i < 32; i++)
        len += (size_t)snprintf(ids + len, sizeof ids - len, "%s%d", i ? "," : "", r->head_ids[i]);
    snprintf(ids + len, sizeof ids - len, "]");
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = t->insert;
    sqlite3_reset(s);
    sqlite3_bind_double(s, 1, now_s());
    sqlite3_bind_text(s, 2, r->endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, r->variant, -1, SQLITE_STATIC);
    if (r->complexity >= 0) sqlite3_bind_double(s, 5, r->complexity); else sqlite3_bind_null(s, 5);
    sqlite3_bind_int(s, 6, r->prompt_tokens);
    sqlite3_bind_int(s, 7, r->completion_tokens);
    sqlite3_bind_double(s, 8, r->cost_bytes);
    sqlite3_bind_double(s, 9, r->wall_s);
    sqlite3_bind_double(s, 10, r->route_us);
    if (r->cache_hit >= 0) sqlite3_bind_int(s, 11, r->cache_hit); else sqlite3_bind_null(s, 11);
    sqlite3_bind_text(s, 12, r->finish, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 13, ids, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 14, t->server_id);
    sqlite3_bind_double(s, 15, r->prune);
    sqlite3_bind_double(s, 16, r->sparsity);
    const bool ok = sqlite3_step(s) == SQLITE_DONE;
    if (!ok) ac_errf(err, "telemetry: %s", sqlite3_errmsg(t->db));
    const int64_t row_id = sqlite3_last_insert_rowid(t->db);
    bool queued = false;
    if (ok && item && t->fid.rate > 0.0 &&
        (t->fid.rate >= 1.0 || (double)(next_random(&t->rng) >> 11) * 0x1.0p-53 < t->fid.rate)) {
        t->stats.sampled++;
        if (t->n_queued < t->fid.max_queue) {
            t->queue[(t->head + t->n_queued) % t->fid.max_queue] = (struct sample){.item = item, .row_id = row_id};
            t->n_queued++;
            queued = true;
            pthread_cond_signal(&t->cv);
        } else {
            t->stats.dropped++;
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (item && !queued && t->fid.release) t->fid.release(t->fid.user, item);
    return ok ? 0 : -1;
}
