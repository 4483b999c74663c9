/* profile.c - the profile runner (see profile.h). */
#include "eval/profile.h"

#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "common/common.h"
#include "compress/calibration.h"
#include "compress/compress.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"
#include "workflow/workflow.h"

/* ---------------------------------------------------------------- configs */

int ac_config_parse(const char *name, struct ac_config_spec *out, char *err) {
    memset(out, 0, sizeof *out);
    const char *plus = strchr(name, '+');
    const size_t vlen = plus ? (size_t)(plus - name) : strlen(name);
    if (vlen == 0 || vlen >= sizeof out->variant) return ac_errf(err, "bad configuration name '%s'", name);
    memcpy(out->variant, name, vlen);
    out->variant[vlen] = '\0';
    while (plus) {
        const char *p = plus + 1;
        char *end;
        errno = 0;
        const double v = strtod(p + 1, &end);
        if ((*p != 'p' && *p != 's') || end == p + 1 || errno || (*end && *end != '+') || !(v >= 0) || v >= 1)
            return ac_errf(err, "bad configuration '%s' (expected VARIANT[+pRATIO][+sSPARSITY], e.g. q4_0+p0.1)",
                           name);
        if (*p == 'p')
            out->prune = (float)v;
        else
            out->sparsity = (float)v;
        plus = *end ? end : NULL;
    }
    return 0;
}

void ac_config_name(const struct ac_config_spec *s, char *buf, size_t n) {
    int w = snprintf(buf, n, "%s", s->variant);
    if (s->prune > 0 && w >= 0 && (size_t)w < n) w += snprintf(buf + w, n - (size_t)w, "+p%g", (double)s->prune);
    if (s->sparsity > 0 && w >= 0 && (size_t)w < n) snprintf(buf + w, n - (size_t)w, "+s%g", (double)s->sparsity);
}

static bool variant_calibrated(const struct ac_manifest *man, const char *name) {
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(man->json, "variants")) {
        const cJSON *nm = cJSON_GetObjectItem(v, "name");
        if (cJSON_IsString(nm) && !strcmp(nm->valuestring, name)) return cJSON_GetObjectItem(v, "calibration") != NULL;
    }
    return false;
}

void ac_profile_default_configs(const char *variants_dir, char *buf, size_t n) {
    char err[AC_ERR_LEN];
    struct ac_manifest *man = NULL;
    buf[0] = '\0';
    if (ac_manifest_load(&man, variants_dir, err) != 0) {
        snprintf(buf, n, "f16,q8_0,q4_0,q2_0");
        return;
    }
    size_t w = 0;
#define ADD(s)                                                                                                     \
    do {                                                                                                           \
        int k_ = snprintf(buf + w, n - w, "%s%s", w ? "," : "", (s));                                              \
        if (k_ > 0 && w + (size_t)k_ < n) w += (size_t)k_;                                                         \
    } while (0)
    static const char *plain[] = {"f16", "q8_0", "q4_0"};
    for (int i = 0; i < 3; i++)
        if (ac_manifest_find(man, plain[i])) ADD(plain[i]);
    for (int i = 0; i < man->n_variants; i++)
        if (man->variants[i].level && !strcmp(man->variants[i].level, "int2") && man->variants[i].file)
            ADD(man->variants[i].name);
    if (ac_manifest_find(man, "q4_0") && variant_calibrated(man, "q4_0")) ADD("q4_0+p0.1");
#undef ADD
    ac_manifest_free(man);
}

int ac_file_fnv1a64(const char *path, char out[17], char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return ac_errf(err, "%s: %s", path, strerror(errno));
    uint64_t h = 1469598103934665603ull;
    unsigned char buf[1 << 15];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 1099511628211ull;
    const bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) return ac_errf(err, "%s: read error", path);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return 0;
}

/* ---------------------------------------------------------------- sqlite */

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS stages (\n"
    "  id INTEGER PRIMARY KEY, workflow TEXT NOT NULL, stage INTEGER NOT NULL, domain TEXT NOT NULL,\n"
    "  kind TEXT NOT NULL, check_type TEXT NOT NULL, max_tokens INTEGER NOT NULL, line INTEGER NOT NULL,\n"
    "  prompt TEXT, n_prompt INTEGER, task_ids TEXT, n_task INTEGER,\n"
    "  f16_output TEXT, f16_ids BLOB, f16_success INTEGER, f16_weight_bytes REAL, f16_wall_s REAL,\n"
    "  UNIQUE (workflow, stage));\n"
    "CREATE TABLE IF NOT EXISTS configs (\n"
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, variant TEXT NOT NULL, prune REAL NOT NULL,\n"
    "  sparsity REAL NOT NULL, file_bytes INTEGER, bytes_per_token REAL, relative_cost REAL, load_s REAL);\n"
    "CREATE TABLE IF NOT EXISTS results (\n"
    "  stage_id INTEGER NOT NULL REFERENCES stages(id), config_id INTEGER NOT NULL REFERENCES configs(id),\n"
    "  output TEXT NOT NULL, success INTEGER NOT NULL, fidelity REAL NOT NULL, n_prompt INTEGER NOT NULL,\n"
    "  n_generated INTEGER NOT NULL, weight_bytes REAL NOT NULL, wall_s REAL NOT NULL,\n"
    "  PRIMARY KEY (stage_id, config_id));\n";

static int sql_err(sqlite3 *db, char *err, const char *what) {
    return ac_errf(err, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

static int exec(sqlite3 *db, const char *sql, char *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        ac_errf(err, "sqlite: %s", msg ? msg : "error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int meta_get(sqlite3 *db, const char *key, char *out, size_t n) {
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) != SQLITE_OK) return 0;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}

static int meta_set(sqlite3 *db, const char *key, const char *value, char *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", -1, &st, NULL) != SQLITE_OK)
        return sql_err(db, err, "meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    const int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sql_err(db, err, "meta");
    sqlite3_finalize(st);
    return rc;
}

/* Stores value under key, or checks it against the stored one. */
static int meta_pin(sqlite3 *db, const char *db_path, const char *key, const char *value, const char *what, char *err) {
    char old[4096];
    if (!meta_get(db, key, old, sizeof old)) return meta_set(db, key, value, err);
    if (strcmp(old, value) != 0)
        return ac_errf(err, "%s was profiled with another %s (%s %s, now %s): use a new output file", db_path, what,
                       key, old, value);
    return 0;
}

/* ---------------------------------------------------------------- runner */

struct worker;

struct runner {
    const struct ac_profile_params *p;
    struct ac_profile_summary *sum;
    sqlite3 *db;
    struct ac_manifest *man;
    struct ac_workflow_set ws;
    struct ac_tokenizer *tok;
    int n_vocab, n_ctx;
    /* per stage (file order) */
    int32_t **prompt_ids;
    int *n_prompt;
    char **f16_out;
    int32_t **f16_ids;
    int *n_f16;
    long done, total;
    double t0;
    /* the workers: one context each on the loaded model; everything
     * below and the database are guarded by mu */
    int n_workers, threads_per_worker;
    struct worker *w;
    pthread_mutex_t mu;
    long in_flight;       /* rows reserved by workers, not yet written */
    bool failed;
    char fail_err[AC_ERR_LEN];
    size_t next;          /* next job: a workflow (references) or a stage (configs) */
    int f16_cid;          /* config id of "f16", -1 if not profiled */
    int cid;              /* the configuration running */
    const char *cname;
    bool *todo;           /* (n_stages) rows to do for the configuration */
};

struct worker {
    struct runner *r;
    struct ac_context *ctx;
    float *logits; /* (CHUNK, n_vocab) */
    pthread_t th;
};

#define CHUNK 64

/* Under mu: reserves a row unless stopped (SIGINT, max_rows, a failure). */
static bool reserve_row(struct runner *r) {
    if (r->failed || (r->p->stop && *r->p->stop)) return false;
    if (r->p->max_rows > 0 && r->sum->rows_written + r->in_flight >= r->p->max_rows) return false;
    r->in_flight++;
    return true;
}

static bool stopped(struct runner *r) {
    return r->failed || (r->p->stop && *r->p->stop) ||
           (r->p->max_rows > 0 && r->sum->rows_written >= r->p->max_rows);
}

static void report(struct runner *r, const char *config, const struct ac_stage *s) {
    if (!r->p->progress) return;
    struct ac_profile_progress pr = {.done = r->done, .total = r->total, .config = config,
                                     .workflow = s ? s->workflow : "", .stage = s ? s->stage : 0,
                                     .elapsed_s = ac_time_s() - r->t0};
    r->p->progress(&pr, r->p->user);
}

/* Under mu: records the first failure. */
static void fail(struct runner *r, const char *err) {
    if (!r->failed) snprintf(r->fail_err, sizeof r->fail_err, "%s", err);
    r->failed = true;
}

static char *detok(const struct ac_tokenizer *tok, const int32_t *ids, int n) {
    size_t cap = 256, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    for (int i = 0; i < n; i++) {
        char piece[256];
        int k = ac_token_to_piece(tok, ids[i], piece, (int)sizeof piece, false);
        if (k > (int)sizeof piece) k = (int)sizeof piece;
        if (k <= 0) continue;
        if (len + (size_t)k + 1 > cap) {
            while (len + (size_t)k + 1 > cap) cap *= 2;
            char *t = realloc(s, cap);
            if (!t) {
                free(s);
                return NULL;
            }
            s = t;
        }
        memcpy(s + len, piece, (size_t)k);
        len += (size_t)k;
    }
    s[len] = '\0';
    return s;
}

struct row {
    int32_t *ids; /* generated (caller frees) */
    int n;
    double fidelity, weight_bytes, wall_s;
};

/* Greedy generation of up to max_tokens after prompt; if ref (the F16
 * output) is given, also the teacher-forced fidelity against it. */
static int run_row(struct worker *w, const int32_t *prompt, int n_prompt, int max_tokens, const int32_t *ref,
                   int n_ref, struct row *out, char *err) {
    const struct runner *r = w->r;
    struct ac_context *ctx = w->ctx;
    memset(out, 0, sizeof *out);
    if (n_prompt + max_tokens > r->n_ctx) max_tokens = r->n_ctx - n_prompt;
    if (max_tokens < 1) return ac_errf(err, "prompt of %d tokens does not fit the context of %d", n_prompt, r->n_ctx);
    out->ids = malloc(sizeof *out->ids * (size_t)max_tokens);
    if (!out->ids) return ac_errf(err, "out of memory");
    ac_context_reset(ctx);
    const double t0 = ac_time_s();
    if (ac_decode(ctx, prompt, n_prompt, AC_LOGITS_LAST, w->logits, err) != 0) return -1;
    int matched = 0, diverged = -1;
    for (;;) {
        const int32_t id = ac_argmax(w->logits, r->n_vocab);
        const int i = out->n;
        out->ids[out->n++] = id;
        if (ref && diverged < 0) {
            if (i < n_ref && ref[i] == id)
                matched++;
            else
                diverged = i;
        }
        if (ac_tokenizer_is_eog(r->tok, id) || out->n >= max_tokens) break;
        if (ac_decode(ctx, &id, 1, AC_LOGITS_LAST, w->logits, err) != 0) return -1;
    }
    out->wall_s = ac_time_s() - t0;
    out->weight_bytes = ac_context_weight_bytes(ctx);
    if (!ref) return 0;
    if (diverged >= 0 && diverged + 1 < n_ref) {
        /* score positions diverged+1 .. n_ref-1 teacher-forced, in batches.
         * The greedy run cached prompt + ref[0..diverged) (its tokens up to
         * the divergence are the reference's): keep that prefix; feeding
         * ref[t-1] predicts ref[t] */
        ac_context_truncate(ctx, n_prompt + diverged);
        if (ac_count_teacher_forced(ctx, ref, diverged + 1, n_ref, w->logits, CHUNK, &matched, err) != 0) return -1;
    }
    out->fidelity = n_ref > 0 ? (double)matched / n_ref : 1.0;
    return 0;
}

static int tokenize_alloc(const struct ac_tokenizer *tok, const char *text, bool special, int32_t **ids, int *n,
                          char *err) {
    const size_t len = strlen(text);
    int k = ac_tokenize(tok, text, len, special, special, NULL, 0, err);
    if (k < 0) return -1;
    *ids = malloc(sizeof **ids * (size_t)(k > 0 ? k : 1));
    if (!*ids) return ac_errf(err, "out of memory");
    if (k > 0 && ac_tokenize(tok, text, len, special, special, *ids, k, err) != k) return ac_errf(err, "tokenizer");
    *n = k;
    return 0;
}

static int load_model(struct runner *r, const char *name, struct ac_model **model, double *load_s, char *err) {
    const struct ac_manifest_variant *v = ac_manifest_find(r->man, name);
    if (!v) return ac_errf(err, "%s/manifest.json has no variant '%s'", r->p->variants_dir, name);
    if (!v->file) return ac_errf(err, "variant '%s' is remote: profile runs local variants only", name);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", r->p->variants_dir, v->file) >= (int)sizeof path)
        return ac_errf(err, "path too long");
    const double t0 = ac_time_s();
    if (ac_model_load(model, path, err) != 0) return -1;
    /* read every page once, as the variant cache does, so load_s is a swap's cost */
    const volatile uint8_t *base = (*model)->file->base;
    uint8_t sink = 0;
    for (size_t off = 0; off < (*model)->file->size; off += 4096) sink ^= base[off];
    (void)sink;
    *load_s = ac_time_s() - t0;
    return 0;
}

static void free_contexts(struct runner *r) {
    for (int k = 0; k < r->n_workers; k++) {
        ac_context_free(r->w[k].ctx);
        r->w[k].ctx = NULL;
    }
}

static int make_contexts(struct runner *r, const struct ac_model *model, char *err) {
    free_contexts(r);
    for (int k = 0; k < r->n_workers; k++) {
        struct ac_context_params cp = {.n_ctx = r->n_ctx, .n_batch = 512, .n_threads = r->threads_per_worker};
        if (ac_context_new(&r->w[k].ctx, model, &cp, err) != 0) return -1;
    }
    return 0;
}

static int insert_result(struct runner *r, int stage_id, int config_id, const char *output, bool success,
                         double fidelity, int n_prompt, int n_gen, double bytes, double wall, char *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(r->db,
                           "INSERT OR REPLACE INTO results (stage_id, config_id, output, success, fidelity, n_prompt, "
                           "n_generated, weight_bytes, wall_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_err(r->db, err, "results");
    sqlite3_bind_int(st, 1, stage_id);
    sqlite3_bind_int(st, 2, config_id);
    sqlite3_bind_text(st, 3, output, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, success);
    sqlite3_bind_double(st, 5, fidelity);
    sqlite3_bind_int(st, 6, n_prompt);
    sqlite3_bind_int(st, 7, n_gen);
    sqlite3_bind_double(st, 8, bytes);
    sqlite3_bind_double(st, 9, wall);
    const int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sql_err(r->db, err, "results");
    sqlite3_finalize(st);
    return rc;
}

static int config_id(struct runner *r, const char *name) {
    sqlite3_stmt *st = NULL;
    int id = -1;
    if (sqlite3_prepare_v2(r->db, "SELECT id FROM configs WHERE name = ?", -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) id = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return id;
}

static bool result_exists(struct runner *r, int stage_id, int cfg) {
    sqlite3_stmt *st = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(r->db, "SELECT 1 FROM results WHERE stage_id = ? AND config_id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return false;
    sqlite3_bind_int(st, 1, stage_id);
    sqlite3_bind_int(st, 2, cfg);
    found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

/* Loads the stored F16 reference of stage i (1-based id i + 1), if any. */
static int load_reference(struct runner *r, size_t i, bool *have, char *err) {
    sqlite3_stmt *st = NULL;
    *have = false;
    if (sqlite3_prepare_v2(r->db, "SELECT f16_output, f16_ids FROM stages WHERE id = ? AND f16_output IS NOT NULL",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_err(r->db, err, "stages");
    sqlite3_bind_int(st, 1, (int)i + 1);
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        const int nb = sqlite3_column_bytes(st, 1);
        const void *blob = sqlite3_column_blob(st, 1);
        r->f16_out[i] = strdup(text ? text : "");
        r->n_f16[i] = nb / (int)sizeof(int32_t);
        r->f16_ids[i] = malloc((size_t)(nb > 0 ? nb : 4));
        if (!r->f16_out[i] || !r->f16_ids[i])
            rc = ac_errf(err, "out of memory");
        else {
            if (nb > 0) memcpy(r->f16_ids[i], blob, (size_t)nb);
            *have = true;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* The stage's filled prompt, its templated ids, and its row in stages. */
static int prepare_stage(struct runner *r, size_t i, char *err) {
    const struct ac_stage *s = &r->ws.stages[i];
    const char *prev = s->stage > 1 ? r->f16_out[i - 1] : NULL;
    char *user = ac_prompt_fill(s->prompt, prev);
    char *text = user ? ac_chat_format_chatml(NULL, user) : NULL;
    int32_t *uids = NULL;
    int n_u = 0, rc = -1;
    if (!text) {
        ac_errf(err, "out of memory");
        goto out;
    }
    if (tokenize_alloc(r->tok, text, true, &r->prompt_ids[i], &r->n_prompt[i], err) != 0 ||
        tokenize_alloc(r->tok, user, false, &uids, &n_u, err) != 0)
        goto out;
    char ids_json[AC_TASK_IDS * 12 + 4];
    size_t w = 0;
    ids_json[w++] = '[';
    for (int k = 0; k < n_u && k < AC_TASK_IDS; k++)
        w += (size_t)snprintf(ids_json + w, sizeof ids_json - w, "%s%d", k ? ", " : "", uids[k]);
    snprintf(ids_json + w, sizeof ids_json - w, "]");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(r->db, "UPDATE stages SET prompt = ?, n_prompt = ?, task_ids = ?, n_task = ? WHERE id = ?", -1, &st,
                           NULL) != SQLITE_OK) {
        sql_err(r->db, err, "stages");
        goto out;
    }
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, r->n_prompt[i]);
    sqlite3_bind_text(st, 3, ids_json, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, n_u);
    sqlite3_bind_int(st, 5, (int)i + 1);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sql_err(r->db, err, "stages");
    sqlite3_finalize(st);
out:
    free(uids);
    free(text);
    free(user);
    return rc;
}

static int store_reference(struct runner *r, size_t i, const struct row *row, int f16_cfg, char *err) {
    const struct ac_stage *s = &r->ws.stages[i];
    const bool ok = ac_check_pass(&s->check, r->f16_out[i]);
    if (exec(r->db, "BEGIN", err) != 0) return -1;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(r->db,
                           "UPDATE stages SET f16_output = ?, f16_ids = ?, f16_success = ?, f16_weight_bytes = ?, "
                           "f16_wall_s = ? WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        sql_err(r->db, err, "stages");
        goto out;
    }
    sqlite3_bind_text(st, 1, r->f16_out[i], -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, row->ids, (int)(sizeof(int32_t) * (size_t)row->n), SQLITE_STATIC);
    sqlite3_bind_int(st, 3, ok);
    sqlite3_bind_double(st, 4, row->weight_bytes);
    sqlite3_bind_double(st, 5, row->wall_s);
    sqlite3_bind_int(st, 6, (int)i + 1);
    if (sqlite3_step(st) != SQLITE_DONE) {
        sql_err(r->db, err, "stages");
        goto out;
    }
    if (f16_cfg >= 0 && insert_result(r, (int)i + 1, f16_cfg, r->f16_out[i], ok, 1.0, r->n_prompt[i], row->n,
                                      row->weight_bytes, row->wall_s, err) != 0)
        goto out;
    rc = exec(r->db, "COMMIT", err);
out:
    sqlite3_finalize(st);
    if (rc != 0) sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int setup_db(struct runner *r, const char **names, int n_cfg, char *err) {
    const struct ac_profile_params *p = r->p;
    if (sqlite3_open_v2(p->db_path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        return sql_err(r->db, err, p->db_path);
    sqlite3_busy_timeout(r->db, 5000);
    if (exec(r->db, SCHEMA, err) != 0) return ac_err_prefix(err, "%s", p->db_path);
    if (sqlite3_exec(r->db, "SELECT n_task FROM stages LIMIT 0", NULL, NULL, NULL) != SQLITE_OK &&
        exec(r->db, "ALTER TABLE stages ADD COLUMN n_task INTEGER", err) != 0) /* profiles made before n_task */
        return ac_err_prefix(err, "%s", p->db_path);
    char hash[17], path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", p->variants_dir);
    if (ac_file_fnv1a64(path, hash, err) != 0 || meta_pin(r->db, p->db_path, "manifest_fnv1a64", hash, "manifest", err))
        return -1;
    if (ac_file_fnv1a64(p->tasks_path, hash, err) != 0 ||
        meta_pin(r->db, p->db_path, "tasks_fnv1a64", hash, "tasks file", err))
        return -1;
    if (meta_set(r->db, "variants_dir", p->variants_dir, err) || meta_set(r->db, "tasks_file", p->tasks_path, err) ||
        meta_set(r->db, "chat_template", "chatml (default system prompt)", err) ||
        meta_set(r->db, "model", r->man->base ? r->man->base : "", err))
        return -1;
    char now[64];
    const time_t t = time(NULL);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    char old[64];
    if (!meta_get(r->db, "created", old, sizeof old) && meta_set(r->db, "created", now, err)) return -1;
    /* stages */
    if (exec(r->db, "BEGIN", err) != 0) return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(r->db,
                           "INSERT OR IGNORE INTO stages (id, workflow, stage, domain, kind, check_type, max_tokens, "
                           "line) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_err(r->db, err, "stages");
    for (size_t i = 0; i < r->ws.n_stages; i++) {
        const struct ac_stage *s = &r->ws.stages[i];
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, (int)i + 1);
        sqlite3_bind_text(st, 2, s->workflow, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, s->stage);
        sqlite3_bind_text(st, 4, s->domain, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, s->kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, ac_check_type_name(s->check.type), -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 7, s->max_tokens);
        sqlite3_bind_int(st, 8, s->line);
        if (sqlite3_step(st) != SQLITE_DONE) {
            sqlite3_finalize(st);
            return sql_err(r->db, err, "stages");
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    /* configs */
    if (sqlite3_prepare_v2(r->db,
                           "INSERT OR IGNORE INTO configs (name, variant, prune, sparsity, file_bytes, "
                           "bytes_per_token, relative_cost) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_err(r->db, err, "configs");
    for (int c = 0; c < n_cfg; c++) {
        struct ac_config_spec sp;
        if (ac_config_parse(names[c], &sp, err) != 0) {
            sqlite3_finalize(st);
            return -1;
        }
        const struct ac_manifest_variant *v = ac_manifest_find(r->man, sp.variant);
        if (!v || !v->file) {
            sqlite3_finalize(st);
            return ac_errf(err, "%s/manifest.json has no local variant '%s'", p->variants_dir, sp.variant);
        }
        if ((sp.prune > 0 || sp.sparsity > 0) && !variant_calibrated(r->man, sp.variant)) {
            sqlite3_finalize(st);
            return ac_errf(err, "configuration '%s' needs calibration (run: agentcompress calibrate -V %s --text FILE)",
                           names[c], p->variants_dir);
        }
        char canon[AC_CONFIG_NAME_LEN];
        ac_config_name(&sp, canon, sizeof canon);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, canon, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, sp.variant, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 3, sp.prune);
        sqlite3_bind_double(st, 4, sp.sparsity);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)v->bytes);
        sqlite3_bind_double(st, 6, (double)v->bytes_per_token);
        sqlite3_bind_double(st, 7, v->relative_cost);
        if (sqlite3_step(st) != SQLITE_DONE) {
            sqlite3_finalize(st);
            return sql_err(r->db, err, "configs");
        }
    }
    sqlite3_finalize(st);
    return exec(r->db, "COMMIT", err);
}

static void set_load_time(struct runner *r, const char *variant, double s) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(r->db, "UPDATE configs SET load_s = ? WHERE variant = ?", -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_double(st, 1, s);
    sqlite3_bind_text(st, 2, variant, -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

static long count_rows(struct runner *r, const char *sql) {
    sqlite3_stmt *st = NULL;
    long n = 0;
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void runner_free(struct runner *r) {
    for (size_t i = 0; i < r->ws.n_stages; i++) {
        if (r->prompt_ids) free(r->prompt_ids[i]);
        if (r->f16_out) free(r->f16_out[i]);
        if (r->f16_ids) free(r->f16_ids[i]);
    }
    for (int k = 0; k < r->n_workers && r->w; k++) {
        ac_context_free(r->w[k].ctx);
        free(r->w[k].logits);
    }
    free(r->w);
    free(r->todo);
    free(r->prompt_ids);
    free(r->n_prompt);
    free(r->f16_out);
    free(r->f16_ids);
    free(r->n_f16);
    ac_tokenizer_free(r->tok);
    ac_workflows_free(&r->ws);
    ac_manifest_free(r->man);
    if (r->db) sqlite3_close(r->db);
}

/* Worker, references phase: whole workflows (stage k needs stage k-1's output). */
static void *ref_worker(void *arg) {
    struct worker *w = arg;
    struct runner *r = w->r;
    char err[AC_ERR_LEN];
    for (;;) {
        pthread_mutex_lock(&r->mu);
        const size_t wf = r->next++;
        const bool stop = stopped(r) || wf >= r->ws.n_workflows;
        pthread_mutex_unlock(&r->mu);
        if (stop) return NULL;
        const struct ac_workflow *flow = &r->ws.workflows[wf];
        for (size_t i = flow->first; i < flow->first + flow->n_stages; i++) {
            if (r->f16_out[i]) continue; /* stored before (only a prefix of a workflow can be) */
            const struct ac_stage *s = &r->ws.stages[i];
            pthread_mutex_lock(&r->mu);
            bool ok = reserve_row(r);
            if (ok && !r->prompt_ids[i] && prepare_stage(r, i, err) != 0) {
                fail(r, err);
                r->in_flight--;
                ok = false;
            }
            if (ok) report(r, "f16 (reference)", s);
            pthread_mutex_unlock(&r->mu);
            if (!ok) return NULL;
            struct row row;
            const int rc = run_row(w, r->prompt_ids[i], r->n_prompt[i], s->max_tokens, NULL, 0, &row, err);
            char *text = rc == 0 ? detok(r->tok, row.ids, row.n) : NULL;
            pthread_mutex_lock(&r->mu);
            r->in_flight--;
            if (rc != 0) {
                ac_err_prefix(err, "f16: %s stage %d", s->workflow, s->stage);
                fail(r, err);
            } else if (!text) {
                fail(r, "out of memory");
            } else {
                r->f16_ids[i] = row.ids; /* owned from here on; row.ids is stored as the blob */
                r->n_f16[i] = row.n;
                r->f16_out[i] = text;
                const int src = store_reference(r, i, &row, r->f16_cid, err);
                row.ids = NULL;
                if (src != 0) {
                    fail(r, err);
                } else {
                    r->sum->rows_written++;
                    r->done++;
                }
            }
            const bool go_on = !r->failed;
            pthread_mutex_unlock(&r->mu);
            free(row.ids);
            if (!go_on) return NULL;
            /* the next stage's prompt needs this output */
            if (i + 1 < flow->first + flow->n_stages) {
                pthread_mutex_lock(&r->mu);
                const int prc = prepare_stage(r, i + 1, err);
                if (prc != 0) fail(r, err);
                pthread_mutex_unlock(&r->mu);
                if (prc != 0) return NULL;
            }
        }
    }
}

/* Worker, configurations phase: any stage. */
static void *cfg_worker(void *arg) {
    struct worker *w = arg;
    struct runner *r = w->r;
    char err[AC_ERR_LEN];
    for (;;) {
        pthread_mutex_lock(&r->mu);
        size_t i = r->next;
        while (i < r->ws.n_stages && !r->todo[i]) i++;
        r->next = i + 1;
        const bool ok = i < r->ws.n_stages && reserve_row(r);
        if (ok) report(r, r->cname, &r->ws.stages[i]);
        pthread_mutex_unlock(&r->mu);
        if (!ok) return NULL;
        const struct ac_stage *s = &r->ws.stages[i];
        struct row row;
        const int rc = run_row(w, r->prompt_ids[i], r->n_prompt[i], s->max_tokens, r->f16_ids[i], r->n_f16[i],
                               &row, err);
        char *text = rc == 0 ? detok(r->tok, row.ids, row.n) : NULL;
        const bool pass = text && ac_check_pass(&s->check, text);
        pthread_mutex_lock(&r->mu);
        r->in_flight--;
        if (rc != 0) {
            ac_err_prefix(err, "%s: %s stage %d", r->cname, s->workflow, s->stage);
            fail(r, err);
        } else if (!text) {
            fail(r, "out of memory");
        } else if (insert_result(r, (int)i + 1, r->cid, text, pass, row.fidelity, r->n_prompt[i], row.n,
                                 row.weight_bytes, row.wall_s, err) != 0) {
            fail(r, err);
        } else {
            r->sum->rows_written++;
            r->done++;
        }
        const bool go_on = !r->failed;
        pthread_mutex_unlock(&r->mu);
        free(text);
        free(row.ids);
        if (!go_on) return NULL;
    }
}

/* Runs fn on every worker and waits for them. */
static int run_workers(struct runner *r, void *(*fn)(void *), char *err) {
    r->next = 0;
    int started = 0;
    for (int k = 0; k < r->n_workers; k++) {
        if (pthread_create(&r->w[k].th, NULL, fn, &r->w[k]) != 0) break;
        started++;
    }
    if (started == 0) fn(&r->w[0]); /* no threads: run inline */
    for (int k = 0; k < started; k++) pthread_join(r->w[k].th, NULL);
    if (r->failed) return ac_errf(err, "%s", r->fail_err);
    return 0;
}

/* One configuration over every stage. */
static int run_config(struct runner *r, const struct ac_config_spec *sp, const char *name, int cid,
                      struct ac_model **model, char *cur_variant, char *err) {
    int n_todo = 0;
    for (size_t i = 0; i < r->ws.n_stages; i++) n_todo += r->todo[i] = !result_exists(r, (int)i + 1, cid);
    if (n_todo == 0) return 0;
    if (strcmp(cur_variant, sp->variant) != 0) {
        free_contexts(r);
        ac_model_free(*model);
        *model = NULL;
        cur_variant[0] = '\0';
        double load_s = 0;
        if (load_model(r, sp->variant, model, &load_s, err) != 0 || make_contexts(r, *model, err) != 0) return -1;
        set_load_time(r, sp->variant, load_s);
        snprintf(cur_variant, 32, "%s", sp->variant);
    }
    const struct ac_manifest_variant *v = ac_manifest_find(r->man, sp->variant);
    for (int k = 0; k < r->n_workers; k++) {
        if (sp->prune > 0 || sp->sparsity > 0) {
            if (ac_variant_apply_config(*model, r->w[k].ctx, r->p->variants_dir, r->man, v->file, sp->prune,
                                        sp->sparsity, err) != 0)
                return ac_err_prefix(err, "%s", name);
        } else {
            const struct ac_run_config plain = {NULL, NULL};
            if (ac_context_set_run_config(r->w[k].ctx, &plain, err) != 0) return -1;
        }
    }
    r->cid = cid;
    r->cname = name;
    return run_workers(r, cfg_worker, err);
}

int ac_profile_run(const struct ac_profile_params *p, struct ac_profile_summary *sum, char *err) {
    memset(sum, 0, sizeof *sum);
    struct runner r = {.p = p, .sum = sum, .t0 = ac_time_s(), .f16_cid = -1};
    pthread_mutex_init(&r.mu, NULL);
    struct ac_model *model = NULL;
    char cur_variant[32] = "";
    char defaults[1024], *list = NULL;
    const char **names = NULL;
    int n_cfg = 0, rc = -1;

    if (ac_manifest_load(&r.man, p->variants_dir, err) != 0 || ac_workflows_load(p->tasks_path, &r.ws, err) != 0)
        goto out;
    if (r.ws.n_stages == 0) {
        ac_errf(err, "%s: no stages", p->tasks_path);
        goto out;
    }
    if (!p->configs) ac_profile_default_configs(p->variants_dir, defaults, sizeof defaults);
    list = strdup(p->configs ? p->configs : defaults);
    names = list ? calloc(strlen(list) / 2 + 2, sizeof *names) : NULL;
    if (!names) {
        ac_errf(err, "out of memory");
        goto out;
    }
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (*t) names[n_cfg++] = t;
    if (n_cfg == 0) {
        ac_errf(err, "no configurations given");
        goto out;
    }
    if (!ac_manifest_find(r.man, "f16") || !ac_manifest_find(r.man, "f16")->file) {
        ac_errf(err, "%s/manifest.json has no local f16 variant (the reference)", p->variants_dir);
        goto out;
    }
    if (setup_db(&r, names, n_cfg, err) != 0) goto out;
    sum->n_stages = (int)r.ws.n_stages;
    sum->n_configs = n_cfg;
    const size_t ns = r.ws.n_stages;
    const int cores = ac_cpu_count();
    r.n_workers = p->n_workers > 0 ? p->n_workers : cores;
    if ((size_t)r.n_workers > ns) r.n_workers = (int)ns;
    r.threads_per_worker = (p->n_threads > 0 ? p->n_threads : cores) / r.n_workers;
    if (r.threads_per_worker < 1) r.threads_per_worker = 1;
    r.prompt_ids = calloc(ns, sizeof *r.prompt_ids);
    r.n_prompt = calloc(ns, sizeof *r.n_prompt);
    r.f16_out = calloc(ns, sizeof *r.f16_out);
    r.f16_ids = calloc(ns, sizeof *r.f16_ids);
    r.n_f16 = calloc(ns, sizeof *r.n_f16);
    r.todo = calloc(ns, sizeof *r.todo);
    r.w = calloc((size_t)r.n_workers, sizeof *r.w);
    if (!r.prompt_ids || !r.n_prompt || !r.f16_out || !r.f16_ids || !r.n_f16 || !r.todo || !r.w) {
        ac_errf(err, "out of memory");
        goto out;
    }
    /* the F16 variant: tokenizer and references */
    double load_s = 0;
    if (load_model(&r, "f16", &model, &load_s, err) != 0 || !model) goto out;
    set_load_time(&r, "f16", load_s);
    snprintf(cur_variant, sizeof cur_variant, "f16");
    if (ac_tokenizer_load(&r.tok, model->file, err) != 0) goto out;
    r.n_vocab = model->cfg.n_vocab;
    for (int k = 0; k < r.n_workers; k++) {
        r.w[k].r = &r;
        r.w[k].logits = malloc(sizeof *r.w[k].logits * (size_t)CHUNK * (size_t)r.n_vocab);
        if (!r.w[k].logits) {
            ac_errf(err, "out of memory");
            goto out;
        }
    }
    if (make_contexts(&r, model, err) != 0) goto out;
    r.n_ctx = ac_context_n_ctx(r.w[0].ctx);
    for (int c = 0; c < n_cfg; c++)
        if (!strcmp(names[c], "f16")) r.f16_cid = config_id(&r, "f16");
    /* work to do in this run */
    {
        r.total = count_rows(&r, "SELECT COUNT(*) FROM stages WHERE f16_output IS NULL");
        for (int c = 0; c < n_cfg; c++) {
            struct ac_config_spec sp;
            char canon[AC_CONFIG_NAME_LEN], sql[256];
            ac_config_parse(names[c], &sp, err);
            ac_config_name(&sp, canon, sizeof canon);
            if (!strcmp(canon, "f16")) continue; /* written with the references */
            snprintf(sql, sizeof sql, "SELECT %ld - COUNT(*) FROM results WHERE config_id = %d", (long)ns,
                     config_id(&r, canon));
            r.total += count_rows(&r, sql);
        }
        const long all = (long)ns * (n_cfg + (r.f16_cid >= 0 ? 0 : 1));
        sum->rows_skipped = all - r.total;
    }
    /* stored references; the prompts that need no new one */
    for (size_t i = 0; i < ns; i++) {
        bool have;
        if (load_reference(&r, i, &have, err) != 0) goto out;
        const bool prev_known = r.ws.stages[i].stage == 1 || r.f16_out[i - 1];
        if (prev_known && prepare_stage(&r, i, err) != 0) goto out;
        if (have && r.f16_cid >= 0 && !result_exists(&r, (int)i + 1, r.f16_cid)) {
            /* the reference exists but the f16 row not (f16 added to --configs later) */
            sqlite3_stmt *st = NULL;
            if (sqlite3_prepare_v2(r.db,
                                   "INSERT INTO results SELECT id, ?, f16_output, f16_success, 1.0, n_prompt, "
                                   "length(f16_ids) / 4, f16_weight_bytes, f16_wall_s FROM stages WHERE id = ?",
                                   -1, &st, NULL) != SQLITE_OK) {
                sql_err(r.db, err, "results");
                goto out;
            }
            sqlite3_bind_int(st, 1, r.f16_cid);
            sqlite3_bind_int(st, 2, (int)i + 1);
            const int step = sqlite3_step(st);
            sqlite3_finalize(st);
            if (step != SQLITE_DONE) {
                sql_err(r.db, err, "results");
                goto out;
            }
        }
    }
    if (run_workers(&r, ref_worker, err) != 0) goto out;
    if (stopped(&r)) {
        sum->interrupted = true;
        rc = 0;
        goto out;
    }
    /* every other configuration, grouped by variant (one model loaded at a time) */
    bool *ran = calloc((size_t)n_cfg, sizeof *ran);
    if (!ran) {
        ac_errf(err, "out of memory");
        goto out;
    }
    for (int pass = 0; pass < n_cfg; pass++) {
        /* next: a not-yet-run configuration of the loaded variant, else the first left */
        int pick = -1;
        struct ac_config_spec sp;
        for (int c = 0; c < n_cfg && pick < 0; c++)
            if (!ran[c] && ac_config_parse(names[c], &sp, err) == 0 && !strcmp(sp.variant, cur_variant)) pick = c;
        for (int c = 0; c < n_cfg && pick < 0; c++)
            if (!ran[c]) pick = c;
        ran[pick] = true;
        ac_config_parse(names[pick], &sp, err);
        char canon[AC_CONFIG_NAME_LEN];
        ac_config_name(&sp, canon, sizeof canon);
        if (!strcmp(canon, "f16")) continue;
        if (stopped(&r)) break;
        if (run_config(&r, &sp, canon, config_id(&r, canon), &model, cur_variant, err) != 0) {
            free(ran);
            goto out;
        }
    }
    free(ran);
    sum->interrupted = r.done < r.total;
    rc = 0;
out:
    sum->seconds = ac_time_s() - r.t0;
    free_contexts(&r);
    ac_model_free(model);
    free(names);
    free(list);
    runner_free(&r);
    pthread_mutex_destroy(&r.mu);
    return rc;
}
