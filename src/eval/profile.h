/* profile.h - `agentcompress profile`: every stage of a workflows file run on
 * every configuration (variant x layer-prune ratio x activation sparsity),
 * stored in SQLite so that it can be queried with sqlite3, resumed after an
 * interrupt, and read back by `eval` and `train`.
 *
 * Per stage (once): the F16 variant's greedy output on the stage prompt in
 * the ChatML template, with "{prev}" filled with the F16 output of the
 * previous stage, so that every configuration sees the same prompt.
 * Per (stage, configuration): the configuration's own greedy output on that
 * prompt, its success (ac_check_pass), its fidelity (teacher-forced on the
 * F16 output: the share of positions whose top-1 equals the F16 token),
 * prompt and generated tokens, bytes of weights a greedy run reads
 * (DESIGN.md "Metrics": the cost), and wall time of the greedy run.
 *
 * How fidelity is computed cheaply: the greedy run itself is teacher-forced
 * on the F16 tokens for as long as its tokens equal them (same context, so
 * its top-1 there is the teacher-forced top-1); only from the first
 * divergence on is the rest of the F16 output scored in one batched
 * forward pass (prompt + F16 prefix, logits of every remaining position).
 * The F16 configuration's own row reuses the reference (fidelity 1).
 *
 * SQLite schema (see ac_profile_schema_sql):
 *   meta(key PRIMARY KEY, value)          variants_dir, manifest_fnv1a64, tasks_file,
 *                                         tasks_fnv1a64, model, chat_template, created
 *   stages(id, workflow, stage, domain, kind, check_type, max_tokens, line,
 *          prompt (filled user text), n_prompt (templated tokens),
 *          task_ids (JSON: the first 32 ids of the user text, for the controller),
 *          n_task (tokens of the user text),
 *          f16_output, f16_ids (BLOB int32), f16_success, f16_weight_bytes, f16_wall_s)
 *   configs(id, name UNIQUE, variant, prune, sparsity, file_bytes,
 *           bytes_per_token (nominal, plain engine), relative_cost, load_s)
 *   results(stage_id, config_id, output, success, fidelity, n_prompt, n_generated,
 *           weight_bytes, wall_s, PRIMARY KEY (stage_id, config_id))
 * Every row is written in its own transaction. */
#ifndef AC_EVAL_PROFILE_H
#define AC_EVAL_PROFILE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AC_CONFIG_NAME_LEN 64
#define AC_TASK_IDS 32

/* A configuration: "q4_0" (plain), "q4_0+p0.1" (prune 10% of the layers),
 * "f16+s0.25" (25% activation sparsity), "q8_0+p0.1+s0.25". */
struct ac_config_spec {
    char variant[32];
    float prune, sparsity;
};

/* Parses one configuration name. 0 or -1 with a message. */
int ac_config_parse(const char *name, struct ac_config_spec *out, char *err);
/* The canonical name ("q4_0+p0.1+s0.25"; plain: the variant name). */
void ac_config_name(const struct ac_config_spec *s, char *buf, size_t n);

/* The default grid for a manifest: the plain variants f16, q8_0, q4_0 and
 * the int2 one (those present), then q4_0+p0.1 when the
 * manifest is calibrated. Comma-separated into buf. */
void ac_profile_default_configs(const char *variants_dir, char *buf, size_t n);

/* 64-bit FNV-1a of a file's bytes, as 16 hex digits; -1 if unreadable. */
int ac_file_fnv1a64(const char *path, char out[17], char *err);

struct ac_profile_progress {
    long done, total;     /* rows (F16 references + results) done / to do in this run */
    const char *config;   /* configuration running */
    const char *workflow; /* stage running */
    int stage;
    double elapsed_s;
};

struct ac_profile_params {
    const char *variants_dir;
    const char *tasks_path;
    const char *db_path;
    const char *configs; /* comma-separated; NULL: ac_profile_default_configs */
    int n_threads;       /* threads in all (0: one per core), split over the workers */
    int n_workers;       /* rows run concurrently, one context each (0: one per core):
                            on this small model two single-thread workers beat one
                            two-thread context (per-operation overhead, not bandwidth) */
    long max_rows;       /* stop after this many new rows (a test hook); 0: no limit */
    volatile sig_atomic_t *stop; /* checked between rows; may be NULL */
    void (*progress)(const struct ac_profile_progress *p, void *user);
    void *user;
};

struct ac_profile_summary {
    long rows_written, rows_skipped;
    int n_stages, n_configs;
    bool interrupted; /* stop was set or max_rows reached before the end */
    double seconds;
};

/* Creates or resumes the profile database. Refuses a database made from
 * another tasks file or manifest (different hash). */
int ac_profile_run(const struct ac_profile_params *p, struct ac_profile_summary *sum, char *err);

#endif
