/* telemetry.c - see telemetry.h. */
#include "server/telemetry.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

struct ac_telemetry {
    sqlite3 *db;
    sqlite3_stmt *insert;
};

static const char SCHEMA[] =
    "PRAGMA journal_mode=WAL;"
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
    " head_ids TEXT"                /* JSON array: the prompt's first tokens */
    ");";

int ac_telemetry_open(struct ac_telemetry **out, const char *path, char *err) {
    struct ac_telemetry *t = calloc(1, sizeof *t);
    if (!t) return ac_errf(err, "out of memory");
    char *msg = NULL;
    if (sqlite3_open(path, &t->db) != SQLITE_OK || sqlite3_exec(t->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_prepare_v2(t->db,
                           "INSERT INTO requests (ts, endpoint, model, variant, complexity, prompt_tokens, "
                           "completion_tokens, cost_bytes, wall_s, route_us, cache_hit, finish, head_ids) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &t->insert, NULL) != SQLITE_OK) {
        ac_errf(err, "%s: %s", path, msg ? msg : sqlite3_errmsg(t->db));
        sqlite3_free(msg);
        ac_telemetry_close(t);
        return -1;
    }
    *out = t;
    return 0;
}

void ac_telemetry_close(struct ac_telemetry *t) {
    if (!t) return;
    sqlite3_finalize(t->insert);
    sqlite3_close(t->db);
    free(t);
}

int ac_telemetry_log(struct ac_telemetry *t, const struct ac_telemetry_row *r, char *err) {
    char ids[32 * 12 + 8] = "[";
    size_t len = 1;
    for (int i = 0; i < r->n_head && i < 32; i++)
        len += (size_t)snprintf(ids + len, sizeof ids - len, "%s%d", i ? "," : "", r->head_ids[i]);
    snprintf(ids + len, sizeof ids - len, "]");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sqlite3_stmt *s = t->insert;
    sqlite3_reset(s);
    sqlite3_bind_double(s, 1, (double)ts.tv_sec + ts.tv_nsec * 1e-9);
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
    if (sqlite3_step(s) != SQLITE_DONE) return ac_errf(err, "telemetry: %s", sqlite3_errmsg(t->db));
    return 0;
}
