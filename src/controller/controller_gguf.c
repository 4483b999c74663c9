/* controller_gguf.c - the controller as a GGUF file.
 *
 * Metadata (all under agentcompress.controller.):
 *   version u32 (1), k, n_vocab, embd_dim, d_model, n_layers, n_heads,
 *   ffn_dim, clp_heads, clp_dim, clp_hidden, policy_hidden (u32),
 *   activation (string: "gelu" | "relu"),
 *   quant_levels (string array), prune_levels, sparsity_levels (f32 arrays).
 * general.architecture is "agentcompress-controller".
 * Tensors: "ctrl.<parameter name>" (see controller.h), F32, shape as in the
 * layout table (ne[0] innermost; layer-stacked tensors are 3-D). */
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "controller/controller.h"
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "quant/quant.h"

#define KEY_PREFIX "agentcompress.controller."
#define ARCH "agentcompress-controller"
#define FORMAT_VERSION 1

struct u32_field {
    const char *key;
    size_t offset;
};

static const struct u32_field u32_fields[] = {
    {"k", offsetof(struct ac_controller_config, k)},
    {"n_vocab", offsetof(struct ac_controller_config, n_vocab)},
    {"embd_dim", offsetof(struct ac_controller_config, embd_dim)},
    {"d_model", offsetof(struct ac_controller_config, d_model)},
    {"n_layers", offsetof(struct ac_controller_config, n_layers)},
    {"n_heads", offsetof(struct ac_controller_config, n_heads)},
    {"ffn_dim", offsetof(struct ac_controller_config, ffn_dim)},
    {"clp_heads", offsetof(struct ac_controller_config, clp_heads)},
    {"clp_dim", offsetof(struct ac_controller_config, clp_dim)},
    {"clp_hidden", offsetof(struct ac_controller_config, clp_hidden)},
    {"policy_hidden", offsetof(struct ac_controller_config, policy_hidden)},
};
#define N_U32_FIELDS (sizeof u32_fields / sizeof u32_fields[0])

static int *cfg_int(struct ac_controller_config *c, size_t offset) { return (int *)((char *)c + offset); }

int ac_controller_save(const struct ac_controller *ctrl, const char *path, char *err) {
    const struct ac_controller_config *c = &ctrl->cfg;
    struct gguf_writer *w = gguf_writer_new();
    if (!w) return ac_errf(err, "%s: out of memory", path);
    char key[128];
    int rc = -1;
    if (gguf_writer_set_str(w, "general.architecture", ARCH, err) != 0 ||
        gguf_writer_set_str(w, "general.name", "AgentCompress controller", err) != 0 ||
        gguf_writer_set_u32(w, KEY_PREFIX "version", FORMAT_VERSION, err) != 0)
        goto done;
    for (size_t i = 0; i < N_U32_FIELDS; i++) {
        snprintf(key, sizeof key, KEY_PREFIX "%s", u32_fields[i].key);
        if (gguf_writer_set_u32(w, key, (uint32_t)*cfg_int((struct ac_controller_config *)c, u32_fields[i].offset),
                                err) != 0)
            goto done;
    }
    if (gguf_writer_set_str(w, KEY_PREFIX "activation", c->act == AC_ACT_RELU ? "relu" : "gelu", err) != 0)
        goto done;
    struct gguf_str names[AC_CTRL_MAX_LEVELS];
    for (int i = 0; i < c->n_levels[AC_HEAD_QUANT]; i++) {
        names[i].ptr = c->quant_names[i];
        names[i].len = strlen(c->quant_names[i]);
    }
    if (gguf_writer_set_str_arr(w, KEY_PREFIX "quant_levels", names, (uint64_t)c->n_levels[AC_HEAD_QUANT], err) != 0 ||
        gguf_writer_set_arr(w, KEY_PREFIX "prune_levels", GGUF_VT_F32, c->prune_levels,
                            (uint64_t)c->n_levels[AC_HEAD_PRUNE], err) != 0 ||
        gguf_writer_set_arr(w, KEY_PREFIX "sparsity_levels", GGUF_VT_F32, c->sparsity_levels,
                            (uint64_t)c->n_levels[AC_HEAD_SPARSITY], err) != 0)
        goto done;
    for (int i = 0; i < AC_P_COUNT; i++) {
        const int *ne = ctrl->layout.ne[i];
        int64_t ne64[3] = {ne[0], ne[1], ne[2]};
        int n_dims = ne[2] > 1 ? 3 : ne[1] > 1 ? 2 : 1;
        snprintf(key, sizeof key, "ctrl.%s", ac_ctrl_param_names[i]);
        if (gguf_writer_add_tensor(w, key, AC_TYPE_F32, n_dims, ne64, ctrl->p.t[i],
                                   sizeof(float) * ctrl->layout.numel[i], err) != 0)
            goto done;
    }
    rc = gguf_writer_write(w, path, err);
done:
    gguf_writer_free(w);
    if (rc != 0) ac_err_prefix(err, "%s", path);
    return rc;
}

/* Reads a numeric array of exactly n_max-or-fewer elements into out (float). */
static int read_f32_levels(const struct gguf_file *f, const char *key, float *out, int *n, char *err) {
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return ac_errf(err, "missing key %s", key);
    if (kv->type != GGUF_VT_ARRAY || kv->arr_type == GGUF_VT_STRING || kv->arr_type == GGUF_VT_ARRAY)
        return ac_errf(err, "%s: not a numeric array", key);
    if (kv->arr_n < 1 || kv->arr_n > AC_CTRL_MAX_LEVELS)
        return ac_errf(err, "%s: %llu levels (must be 1..%d)", key, (unsigned long long)kv->arr_n, AC_CTRL_MAX_LEVELS);
    *n = (int)kv->arr_n;
    for (int i = 0; i < *n; i++) out[i] = (float)gguf_arr_f64(kv, (uint64_t)i);
    return 0;
}

static int read_config(const struct gguf_file *f, struct ac_controller_config *c, char *err) {
    char key[128];
    memset(c, 0, sizeof *c);
    uint32_t v;
    if (gguf_get_u32(f, KEY_PREFIX "version", &v, err) != 0) return ac_errf(err, "not an AgentCompress controller file");
    if (v != FORMAT_VERSION) return ac_errf(err, "controller format version %u (this build reads %d)", v, FORMAT_VERSION);
    for (size_t i = 0; i < N_U32_FIELDS; i++) {
        snprintf(key, sizeof key, KEY_PREFIX "%s", u32_fields[i].key);
        if (gguf_get_u32(f, key, &v, err) != 0) return -1;
        if (v > 1000000u) return ac_errf(err, "%s = %u is out of range", key, v);
        *cfg_int(c, u32_fields[i].offset) = (int)v;
    }
    struct gguf_str s;
    if (gguf_get_str(f, KEY_PREFIX "activation", &s, err) != 0) return -1;
    if (gguf_str_eq(s, "gelu"))
        c->act = AC_ACT_GELU;
    else if (gguf_str_eq(s, "relu"))
        c->act = AC_ACT_RELU;
    else
        return ac_errf(err, KEY_PREFIX "activation: unknown value");
    const struct gguf_kv *kv = gguf_find_kv(f, KEY_PREFIX "quant_levels");
    if (!kv || kv->type != GGUF_VT_ARRAY || kv->arr_type != GGUF_VT_STRING)
        return ac_errf(err, "missing or malformed " KEY_PREFIX "quant_levels");
    if (kv->arr_n < 1 || kv->arr_n > AC_CTRL_MAX_LEVELS)
        return ac_errf(err, KEY_PREFIX "quant_levels: %llu levels", (unsigned long long)kv->arr_n);
    struct gguf_str names[AC_CTRL_MAX_LEVELS];
    if (gguf_get_str_array(kv, names, err) != 0) return -1;
    c->n_levels[AC_HEAD_QUANT] = (int)kv->arr_n;
    for (int i = 0; i < c->n_levels[AC_HEAD_QUANT]; i++) {
        if (names[i].len == 0 || names[i].len >= AC_CTRL_NAME_LEN || memchr(names[i].ptr, '\0', names[i].len))
            return ac_errf(err, KEY_PREFIX "quant_levels: bad name %d", i);
        memcpy(c->quant_names[i], names[i].ptr, names[i].len);
        c->quant_names[i][names[i].len] = '\0';
    }
    if (read_f32_levels(f, KEY_PREFIX "prune_levels", c->prune_levels, &c->n_levels[AC_HEAD_PRUNE], err) != 0 ||
        read_f32_levels(f, KEY_PREFIX "sparsity_levels", c->sparsity_levels, &c->n_levels[AC_HEAD_SPARSITY], err) != 0)
        return -1;
    return ac_controller_config_check(c, err);
}

int ac_controller_load(struct ac_controller **out, const char *path, char *err) {
    struct gguf_file *f = NULL;
    struct ac_controller *ctrl = NULL;
    struct ac_controller_config c;
    if (gguf_open(&f, path, err) != 0) return ac_err_prefix(err, "%s", path);
    if (read_config(f, &c, err) != 0 || ac_controller_new(&ctrl, &c, 0, err) != 0) goto fail;
    for (int i = 0; i < AC_P_COUNT; i++) {
        char name[96];
        snprintf(name, sizeof name, "ctrl.%s", ac_ctrl_param_names[i]);
        const struct gguf_tensor *t = gguf_find_tensor(f, name);
        if (!t) {
            ac_errf(err, "missing tensor %s", name);
            goto fail;
        }
        const int *ne = ctrl->layout.ne[i];
        if (t->type != AC_TYPE_F32 || t->ne[0] != ne[0] || t->ne[1] != ne[1] || t->ne[2] != ne[2] || t->ne[3] != 1 ||
            t->size != sizeof(float) * ctrl->layout.numel[i]) {
            ac_errf(err, "tensor %s: expected F32 [%d, %d, %d]", name, ne[0], ne[1], ne[2]);
            goto fail;
        }
        memcpy(ctrl->p.t[i], t->data, t->size);
    }
    gguf_close(f);
    *out = ctrl;
    return 0;
fail:
    ac_controller_free(ctrl);
    gguf_close(f);
    return ac_err_prefix(err, "%s", path);
}
