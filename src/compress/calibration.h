/* calibration.h - what `agentcompress calibrate` measures on a variant and
 * stores in the variants manifest: each layer's Block Influence (ShortGPT)
 * with the pruning order it implies, and per-layer activation-magnitude
 * thresholds for each sparsity level (TEAL); and how a (prune ratio,
 * sparsity) pair turns into the engine's run configuration. */
#ifndef AC_CALIBRATION_H
#define AC_CALIBRATION_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"

struct cJSON;

#define AC_CALIB_MAX_LEVELS 8

struct ac_calibration {
    int n_layers;
    float *block_influence; /* (n_layers) */
    int *prune_order;       /* (n_layers) layer ids, lowest influence first */
    int n_levels;
    float levels[AC_CALIB_MAX_LEVELS]; /* sparsity fractions, ascending, levels[0] == 0 */
    float *thresholds;      /* (n_layers, AC_SITE_COUNT, n_levels) */
    int n_tokens;           /* calibration tokens */
};

/* The default sparsity levels: 0, 0.25, 0.4, 0.5. */
extern const float ac_calib_default_levels[4];

/* Runs the model densely over tokens (windows of n_ctx). */
int ac_calibration_compute(const struct ac_model *m, const int32_t *tokens, int n_tokens, int n_ctx, int n_threads,
                           const float *levels, int n_levels, struct ac_calibration *out, char *err);
void ac_calibration_free(struct ac_calibration *c);

/* JSON form stored under a variant in manifest.json. */
struct cJSON *ac_calibration_to_json(const struct ac_calibration *c);
int ac_calibration_from_json(const struct cJSON *j, int n_layers, struct ac_calibration *out, char *err);

/* Fills skip (n_layers) and thresholds (n_layers x AC_SITE_COUNT) for a
 * pruning ratio (the ceil(r * L) lowest-influence layers are skipped) and a
 * sparsity that must be one of the calibrated levels; rc points at them
 * (NULL members where the plain engine applies). */
int ac_calibration_run_config(const struct ac_calibration *c, float prune, float sparsity, bool *skip,
                              float *thresholds, struct ac_run_config *rc, char *err);

struct ac_manifest;

/* Runs ctx (a context of model, the variant whose manifest entry has file
 * name `file` in dir) at a (pruning ratio, sparsity) pair, from the
 * calibration stored in the manifest. Sparse weights are quantized from the
 * directory's f16 variant (exact values) when it has one. */
int ac_variant_apply_config(struct ac_model *model, struct ac_context *ctx, const char *dir,
                            const struct ac_manifest *man, const char *file, float prune, float sparsity, char *err);

#endif
