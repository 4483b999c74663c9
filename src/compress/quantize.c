/* quantize.c - the quantize driver: reads a base GGUF, dequantizes every
 * tensor exactly to f32, requantizes it with each variant's recipe, and
 * writes one GGUF per variant plus manifest.json into a fresh directory
 * that replaces the target only once everything is on disk. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <cjson/cJSON.h>

#include "common/common.h"
#include "compress/compress.h"
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "model/model.h"
#include "model/threadpool.h"
#include "quant/quant.h"

/* llama.cpp's general.file_type values (enum llama_ftype) */
#define FTYPE_MOSTLY_F16 1
#define FTYPE_MOSTLY_Q4_0 2
#define FTYPE_MOSTLY_Q8_0 7
#define FTYPE_MOSTLY_Q2_K 10

#define QK_K 256

/* ================================================================ recipes */

static const struct {
    const char *name; /* file and variant name (the int2 one is resolved per model) */
    const char *level;
    uint32_t layer_type, head_type;
    uint32_t file_type;
    const char *recipe;
} kinds[AC_VARIANT_COUNT] = {
    [AC_VARIANT_F16] = {"f16", "fp16", AC_TYPE_F16, AC_TYPE_F16, FTYPE_MOSTLY_F16,
                        "matrices f16 (exact f32 dequantization of the base, rounded to nearest f16); 1-D f32"},
    [AC_VARIANT_Q8_0] = {"q8_0", "int8", AC_TYPE_Q8_0, AC_TYPE_Q8_0, FTYPE_MOSTLY_Q8_0,
                         "matrices q8_0; 1-D f32"},
    [AC_VARIANT_Q4_0] = {"q4_0", "int4", AC_TYPE_Q4_0, AC_TYPE_Q8_0, FTYPE_MOSTLY_Q4_0,
                         "layer matrices q4_0; token_embd/output q8_0; 1-D f32"},
    [AC_VARIANT_INT2] = {"int2", "int2", AC_TYPE_Q2_K, AC_TYPE_Q4_0, FTYPE_MOSTLY_Q2_K,
                         "layer matrices q2_K where the row length is a multiple of 256, else q2_0 "
                         "(agentcompress 2-bit, 32-element blocks, 3.0 bpw; not loadable by llama.cpp); "
                         "token_embd/output q4_0; 1-D f32"},
};

int ac_variant_parse(const char *name) {
    static const struct {
        const char *name;
        enum ac_variant_kind kind;
    } names[] = {
        {"f16", AC_VARIANT_F16},   {"fp16", AC_VARIANT_F16},  {"q8_0", AC_VARIANT_Q8_0}, {"int8", AC_VARIANT_Q8_0},
        {"q4_0", AC_VARIANT_Q4_0}, {"int4", AC_VARIANT_Q4_0}, {"int2", AC_VARIANT_INT2}, {"q2_0", AC_VARIANT_INT2},
        {"q2_k", AC_VARIANT_INT2},
    };
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0) return (int)names[i].kind;
    return -1;
}

const char *ac_variant_level(enum ac_variant_kind kind) {
    return kind < AC_VARIANT_COUNT ? kinds[kind].level : "?";
}

static bool is_head(const char *name) {
    return strcmp(name, "token_embd.weight") == 0 || strcmp(name, "output.weight") == 0;
}

uint32_t ac_recipe_type(enum ac_variant_kind kind, const char *name, int n_dims, const int64_t *ne) {
    int64_t rows = 1;
    for (int i = 1; i < n_dims; i++) rows *= ne[i];
    if (n_dims < 2 || rows == 1 || kind >= AC_VARIANT_COUNT) return AC_TYPE_F32;
    uint32_t t = is_head(name) ? kinds[kind].head_type : kinds[kind].layer_type;
    if (t == AC_TYPE_Q2_K && ne[0] % QK_K != 0) t = AC_TYPE_Q2_0;
    /* a row that fits no block of the type stays f16 */
    return ac_row_size(t, ne[0]) > 0 ? t : AC_TYPE_F16;
}

/* ================================================================ conversion */

/* How far f16 storage is from the exact f32 dequantization. */
struct f16_error {
    double max_abs, max_rel;
    uint64_t inexact, total;
};

struct convert_job {
    const uint8_t *src;
    uint32_t src_type;
    uint8_t *dst;
    uint32_t dst_type;
    int64_t cols, rows;
    bool measure_f16;
    struct f16_error *err; /* one per thread */
    bool *oom;             /* one per thread */
};

/* Rows split in contiguous ranges: dequantize each exactly to f32 (every
 * ggml dequantizer is d * q (+ m) with d, m fp16 and q a small integer,
 * which f32 holds exactly), then the reference quantizer of the target. */
static void convert_worker(void *arg, int ith, int nth) {
    const struct convert_job *j = arg;
    const struct ac_type_traits *st = ac_type_traits(j->src_type), *dt = ac_type_traits(j->dst_type);
    const size_t srow = ac_row_size(j->src_type, j->cols), drow = ac_row_size(j->dst_type, j->cols);
    const int64_t per = (j->rows + nth - 1) / nth;
    const int64_t r0 = per * ith, r1 = r0 + per < j->rows ? r0 + per : j->rows;
    if (r0 >= r1) return;
    float *x = malloc((size_t)j->cols * sizeof(float));
    if (!x) {
        j->oom[ith] = true;
        return;
    }
    struct f16_error *e = &j->err[ith];
    for (int64_t r = r0; r < r1; r++) {
        st->to_float(j->src + (size_t)r * srow, x, j->cols);
        uint8_t *out = j->dst + (size_t)r * drow;
        dt->from_float_ref(x, out, j->cols);
        if (!j->measure_f16) continue;
        for (int64_t c = 0; c < j->cols; c++) {
            uint16_t h;
            memcpy(&h, out + 2 * c, 2);
            const double diff = fabs((double)ac_fp16_to_fp32(h) - x[c]);
            if (diff == 0) continue;
            e->inexact++;
            if (diff > e->max_abs) e->max_abs = diff;
            if (diff / fabs(x[c]) > e->max_rel) e->max_rel = diff / fabs(x[c]);
        }
    }
    if (j->measure_f16) e->total += (uint64_t)(r1 - r0) * (uint64_t)j->cols;
    free(x);
}

/* ================================================================ directories */

static char *str_cat(const char *a, const char *b) {
    const size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 1);
    if (!p) return NULL;
    memcpy(p, a, la);
    memcpy(p + la, b, lb + 1);
    return p;
}

static char *path_join(const char *dir, const char *name) {
    char *d = str_cat(dir, "/");
    char *p = d ? str_cat(d, name) : NULL;
    free(d);
    return p;
}

/* Checks that dir holds only plain files (no subdirectories, links kept
 * as entries). *has_manifest tells whether manifest.json is among them. */
static int check_flat(const char *dir, bool *has_manifest, bool *empty, char *err) {
    *has_manifest = false;
    *empty = true;
    DIR *d = opendir(dir);
    if (!d) return ac_errf(err, "%s: %s", dir, strerror(errno));
    int rc = 0;
    const struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        *empty = false;
        char *p = path_join(dir, e->d_name);
        struct stat st;
        if (!p || lstat(p, &st) != 0 || S_ISDIR(st.st_mode)) {
            rc = ac_errf(err, "%s holds a subdirectory or unreadable entry '%s'; not replacing it", dir, e->d_name);
            free(p);
            break;
        }
        if (strcmp(e->d_name, "manifest.json") == 0) *has_manifest = true;
        free(p);
    }
    closedir(d);
    return rc;
}

/* Removes a directory of plain files (what check_flat accepted, or what we
 * wrote ourselves). */
static int remove_flat(const char *dir, char *err) {
    DIR *d = opendir(dir);
    if (!d) return ac_errf(err, "%s: %s", dir, strerror(errno));
    const struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = path_join(dir, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
    if (rmdir(dir) != 0) return ac_errf(err, "cannot remove %s: %s", dir, strerror(errno));
    return 0;
}

static bool path_exists(const char *p, struct stat *st) {
    return lstat(p, st) == 0;
}

/* Refuses or clears what is in the way, then creates tmp (empty). */
static int prepare_dirs(const char *out, const char *tmp, bool force, char *err) {
    struct stat st;
    bool manifest, empty;
    if (path_exists(out, &st)) {
        if (!S_ISDIR(st.st_mode)) return ac_errf(err, "%s exists and is not a directory", out);
        if (!force) return ac_errf(err, "%s already exists (pass --force to replace it)", out);
        if (check_flat(out, &manifest, &empty, err) != 0) return -1;
        if (!manifest && !empty)
            return ac_errf(err, "%s exists and is not a variants directory (no manifest.json); not replacing it", out);
    }
    if (path_exists(tmp, &st)) {
        if (!force) return ac_errf(err, "%s exists (left by an interrupted run?); remove it or pass --force", tmp);
        if (!S_ISDIR(st.st_mode) || check_flat(tmp, &manifest, &empty, err) != 0 || remove_flat(tmp, err) != 0)
            return ac_errf(err, "%s is in the way and cannot be cleared", tmp);
    }
    if (mkdir(tmp, 0755) != 0) return ac_errf(err, "cannot create %s: %s", tmp, strerror(errno));
    return 0;
}

/* Moves tmp to out, replacing an existing out (already vetted). */
static int commit_dir(const char *out, const char *tmp, char *err) {
    struct stat st;
    if (!path_exists(out, &st)) {
        if (rename(tmp, out) != 0) return ac_errf(err, "rename %s -> %s: %s", tmp, out, strerror(errno));
        return 0;
    }
    char *old = str_cat(out, ".old");
    if (!old) return ac_errf(err, "out of memory");
    int rc = -1;
    bool manifest, empty;
    if (path_exists(old, &st) && (check_flat(old, &manifest, &empty, err) != 0 || remove_flat(old, err) != 0))
        goto out;
    if (rename(out, old) != 0) {
        ac_errf(err, "rename %s -> %s: %s", out, old, strerror(errno));
        goto out;
    }
    if (rename(tmp, out) != 0) {
        ac_errf(err, "rename %s -> %s: %s", tmp, out, strerror(errno));
        rename(old, out); /* put the old one back */
        goto out;
    }
    rc = remove_flat(old, err);
out:
    free(old);
    return rc;
}

/* ================================================================ driver */

struct variant_stats {
    char name[16], file[32];
    uint64_t type_tensors[AC_TYPE_COUNT];
    uint64_t type_elems[AC_TYPE_COUNT];
    uint64_t tensor_bytes, elems;
    uint64_t matrix_bytes, matrix_elems; /* layer matrices only */
    uint64_t file_bytes, bytes_per_token;
    struct f16_error f16;
    cJSON *q2_0_tensors;
};

/* Bytes per decoded token of the f16 recipe, from the base's shapes (the
 * cost baseline even when no f16 variant is written). */
static size_t f16_bytes_per_token(const struct ac_model *base) {
    struct ac_model m = *base;
    const int nl = base->cfg.n_layers;
    struct ac_layer *layers = malloc((size_t)nl * sizeof *layers);
    if (!layers) return 0;
    memcpy(layers, base->layers, (size_t)nl * sizeof *layers);
    m.layers = layers;
#define RESIZE(t) ((t).bytes = (t).data ? (size_t)((t).rows * (t).cols) * ((t).rows > 1 ? 2 : 4) : 0)
    RESIZE(m.tok_embd);
    RESIZE(m.output);
    RESIZE(m.output_norm);
    for (int l = 0; l < nl; l++) {
        struct ac_layer *L = &layers[l];
        RESIZE(L->attn_norm), RESIZE(L->wq), RESIZE(L->wk), RESIZE(L->wv), RESIZE(L->wo);
        RESIZE(L->bq), RESIZE(L->bk), RESIZE(L->bv), RESIZE(L->ffn_norm);
        RESIZE(L->w_gate), RESIZE(L->w_up), RESIZE(L->w_down);
    }
#undef RESIZE
    const size_t b = ac_model_bytes_per_token(&m);
    free(layers);
    return b;
}

static const char *type_name(uint32_t t) {
    const struct ac_type_traits *tr = ac_type_traits(t);
    return tr ? tr->name : "?";
}

/* Copies the base's metadata except what describes the file itself. */
static int copy_metadata(struct gguf_writer *w, const struct gguf_file *f, enum ac_variant_kind kind,
                         const char *variant, const char *base_path, char *err) {
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        if (gguf_str_eq(kv->key, "general.file_type") ||
            (kv->key.len >= 14 && memcmp(kv->key.ptr, "agentcompress.", 14) == 0))
            continue;
        if (gguf_writer_copy_kv(w, kv, err) != 0) return -1;
    }
    const char *slash = strrchr(base_path, '/');
    if (gguf_writer_set_u32(w, "general.file_type", kinds[kind].file_type, err) != 0 ||
        gguf_writer_set_str(w, "agentcompress.variant", variant, err) != 0 ||
        gguf_writer_set_str(w, "agentcompress.recipe", kinds[kind].recipe, err) != 0 ||
        gguf_writer_set_str(w, "agentcompress.base", slash ? slash + 1 : base_path, err) != 0)
        return -1;
    return 0;
}

/* Writes variant kind of base f (model m) as dir/file; fills s. */
static int write_variant(const struct ac_quantize_params *p, const struct gguf_file *f, struct ac_pool *pool,
                         enum ac_variant_kind kind, const char *dir, struct variant_stats *s, char *err) {
    const int nt = (int)f->n_tensors, nth = ac_pool_size(pool);
    struct gguf_writer *w = gguf_writer_new();
    void **bufs = calloc((size_t)nt + 1, sizeof *bufs);
    char **names = calloc((size_t)nt + 1, sizeof *names);
    struct f16_error *ferr = calloc((size_t)nth, sizeof *ferr);
    bool *oom = calloc((size_t)nth, sizeof *oom);
    char *path = path_join(dir, s->file);
    struct ac_model *vm = NULL;
    int rc = -1;
    if (!w || !bufs || !names || !ferr || !oom || !path) {
        ac_errf(err, "out of memory");
        goto out;
    }
    if (copy_metadata(w, f, kind, s->name, p->base_path, err) != 0) goto out;
    for (int i = 0; i < nt; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        if (!(names[i] = strndup(t->name.ptr, (size_t)t->name.len))) {
            ac_errf(err, "out of memory");
            goto out;
        }
        const uint32_t type = ac_recipe_type(kind, names[i], (int)t->n_dims, t->ne);
        const int64_t rows = t->ne[1] * t->ne[2] * t->ne[3], n = t->ne[0] * rows;
        const size_t size = ac_row_size(type, t->ne[0]) * (size_t)rows;
        const void *data = t->data;
        if (type != t->type) {
            if (!(bufs[i] = malloc(size ? size : 1))) {
                ac_errf(err, "%s: out of memory (%zu bytes)", names[i], size);
                goto out;
            }
            const bool measure = type == AC_TYPE_F16 && t->type != AC_TYPE_F32;
            memset(ferr, 0, (size_t)nth * sizeof *ferr);
            struct convert_job job = {.src = t->data, .src_type = t->type, .dst = bufs[i], .dst_type = type,
                                      .cols = t->ne[0], .rows = rows, .measure_f16 = measure, .err = ferr,
                                      .oom = oom};
            ac_pool_run(pool, convert_worker, &job);
            for (int k = 0; k < nth; k++) {
                if (oom[k]) {
                    ac_errf(err, "%s: out of memory", names[i]);
                    goto out;
                }
                if (ferr[k].max_abs > s->f16.max_abs) s->f16.max_abs = ferr[k].max_abs;
                if (ferr[k].max_rel > s->f16.max_rel) s->f16.max_rel = ferr[k].max_rel;
                s->f16.inexact += ferr[k].inexact;
                s->f16.total += ferr[k].total;
            }
            data = bufs[i];
        }
        if (gguf_writer_add_tensor(w, names[i], type, (int)t->n_dims, t->ne, data, size, err) != 0) goto out;
        s->type_tensors[type]++;
        s->type_elems[type] += (uint64_t)n;
        s->tensor_bytes += size;
        s->elems += (uint64_t)n;
        if (t->n_dims >= 2 && rows > 1 && !is_head(names[i])) {
            s->matrix_bytes += size;
            s->matrix_elems += (uint64_t)n;
        }
        if (type == AC_TYPE_Q2_0) cJSON_AddItemToArray(s->q2_0_tensors, cJSON_CreateString(names[i]));
        if (p->progress) p->progress(p->progress_user, s->name, i, nt, names[i], type);
    }
    if (gguf_writer_write(w, path, err) != 0) goto out;
    /* the written file must load in our engine; its accounting gives the cost */
    if (ac_model_load(&vm, path, err) != 0) {
        ac_err_prefix(err, "written variant %s does not load", s->name);
        goto out;
    }
    s->bytes_per_token = ac_model_bytes_per_token(vm);
    struct stat st;
    s->file_bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    rc = 0;
out:
    ac_model_free(vm);
    gguf_writer_free(w);
    for (int i = 0; bufs && names && i < nt; i++) {
        free(bufs[i]);
        free(names[i]);
    }
    free(bufs);
    free(names);
    free(ferr);
    free(oom);
    free(path);
    return rc;
}

/* The base's matrix types as a JSON object {type: tensor count}. */
static cJSON *base_types_json(const struct gguf_file *f) {
    uint64_t count[AC_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++) count[f->tensors[i].type]++;
    cJSON *o = cJSON_CreateObject();
    for (uint32_t t = 0; t < AC_TYPE_COUNT; t++)
        if (count[t]) cJSON_AddNumberToObject(o, type_name(t), (double)count[t]);
    return o;
}

static cJSON *variant_json(enum ac_variant_kind kind, const struct variant_stats *s, size_t f16_bpt) {
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "name", s->name);
    cJSON_AddStringToObject(v, "file", s->file);
    cJSON_AddStringToObject(v, "level", kinds[kind].level);
    cJSON_AddNumberToObject(v, "bits_per_weight", s->elems ? 8.0 * (double)s->tensor_bytes / (double)s->elems : 0);
    cJSON_AddNumberToObject(v, "matrix_bits_per_weight",
                            s->matrix_elems ? 8.0 * (double)s->matrix_bytes / (double)s->matrix_elems : 0);
    cJSON_AddNumberToObject(v, "bytes", (double)s->file_bytes);
    cJSON_AddNumberToObject(v, "weight_bytes", (double)s->tensor_bytes);
    cJSON_AddNumberToObject(v, "bytes_per_token", (double)s->bytes_per_token);
    cJSON_AddNumberToObject(v, "relative_cost", f16_bpt ? (double)s->bytes_per_token / (double)f16_bpt : 0);
    cJSON_AddBoolToObject(v, "llama_cpp_compatible", s->type_tensors[AC_TYPE_Q2_0] == 0);
    cJSON_AddStringToObject(v, "recipe", kinds[kind].recipe);
    cJSON *types = cJSON_AddObjectToObject(v, "tensor_types");
    for (uint32_t t = 0; t < AC_TYPE_COUNT; t++)
        if (s->type_tensors[t]) {
            cJSON *o = cJSON_AddObjectToObject(types, type_name(t));
            cJSON_AddNumberToObject(o, "tensors", (double)s->type_tensors[t]);
            cJSON_AddNumberToObject(o, "elements", (double)s->type_elems[t]);
        }
    if (kind == AC_VARIANT_INT2)
        cJSON_AddItemReferenceToObject(v, "q2_0_tensors", s->q2_0_tensors);
    return v;
}

int ac_quantize(const struct ac_quantize_params *p, char *err) {
    static const enum ac_variant_kind all[] = {AC_VARIANT_F16, AC_VARIANT_Q8_0, AC_VARIANT_Q4_0, AC_VARIANT_INT2};
    const enum ac_variant_kind *list = p->kinds ? p->kinds : all;
    const int n_list = p->kinds ? p->n_kinds : AC_VARIANT_COUNT;
    struct ac_model *base = NULL;
    struct ac_pool *pool = NULL;
    struct variant_stats *stats = NULL;
    cJSON *root = NULL;
    char *out = NULL, *tmp = NULL;
    bool tmp_made = false;
    int rc = -1;

    if (!p->base_path || !p->out_dir || !*p->out_dir) return ac_errf(err, "no base model or output directory");
    if (n_list < 1 || n_list > AC_VARIANT_COUNT) return ac_errf(err, "between 1 and %d variants", AC_VARIANT_COUNT);
    for (int i = 0; i < n_list; i++) {
        if (list[i] >= AC_VARIANT_COUNT) return ac_errf(err, "unknown variant kind %d", (int)list[i]);
        for (int j = 0; j < i; j++)
            if (list[j] == list[i]) return ac_errf(err, "variant %s given twice", kinds[list[i]].name);
    }
    /* the base must be a model our engine runs: it checks every tensor */
    if (ac_model_load(&base, p->base_path, err) != 0) return -1;
    const struct gguf_file *f = base->file;

    out = strdup(p->out_dir);
    if (!out) goto oom;
    for (size_t n = strlen(out); n > 1 && out[n - 1] == '/'; n--) out[n - 1] = '\0';
    if (!(tmp = str_cat(out, ".tmp"))) goto oom;
    stats = calloc((size_t)n_list, sizeof *stats);
    pool = ac_pool_new(p->n_threads > 0 ? p->n_threads : ac_cpu_count());
    root = cJSON_CreateObject();
    if (!stats || !pool || !root) goto oom;
    if (prepare_dirs(out, tmp, p->force, err) != 0) goto done;
    tmp_made = true;

    for (int i = 0; i < n_list; i++) {
        struct variant_stats *s = &stats[i];
        const enum ac_variant_kind kind = list[i];
        if (!(s->q2_0_tensors = cJSON_CreateArray())) goto oom;
        const char *name = kinds[kind].name;
        if (kind == AC_VARIANT_INT2) { /* named after the 2-bit type its layers use */
            name = "q2_k";
            for (uint64_t t = 0; t < f->n_tensors; t++) {
                char tn[128];
                snprintf(tn, sizeof tn, "%.*s", (int)(f->tensors[t].name.len < 127 ? f->tensors[t].name.len : 127),
                         f->tensors[t].name.ptr);
                if (ac_recipe_type(kind, tn, (int)f->tensors[t].n_dims, f->tensors[t].ne) == AC_TYPE_Q2_0)
                    name = "q2_0";
            }
        }
        snprintf(s->name, sizeof s->name, "%s", name);
        snprintf(s->file, sizeof s->file, "%s.gguf", name);
        if (write_variant(p, f, pool, kind, tmp, s, err) != 0) goto done;
    }

    const size_t f16_bpt = f16_bytes_per_token(base);
    struct stat st;
    cJSON_AddStringToObject(root, "format", "agentcompress-variants/1");
    cJSON_AddStringToObject(root, "base", p->base_path);
    cJSON_AddNumberToObject(root, "base_bytes", stat(p->base_path, &st) == 0 ? (double)st.st_size : 0);
    cJSON_AddItemToObject(root, "base_tensor_types", base_types_json(f));
    cJSON_AddNumberToObject(root, "f16_bytes_per_token", (double)f16_bpt);
    cJSON *notes = cJSON_AddObjectToObject(root, "notes");
    cJSON_AddStringToObject(notes, "dequantization",
                            "every base tensor is dequantized exactly to f32 (d*q(+m) with fp16 d, m and small "
                            "integer q is representable in f32), then quantized by each variant's recipe");
    cJSON_AddStringToObject(notes, "relative_cost", "bytes of weights read per decoded token / the f16 recipe's");
    cJSON_AddStringToObject(notes, "q2_0",
                            "agentcompress's own 2-bit type (GGUF type id 100): 32-element blocks of fp16 scale d, "
                            "fp16 offset m and 2-bit codes q, x = d*q + m, 3.0 bits per weight; used where a row "
                            "is not a multiple of 256 (q2_K's block); llama.cpp cannot load it");
    cJSON *vs = cJSON_AddArrayToObject(root, "variants");
    for (int i = 0; i < n_list; i++) {
        if (list[i] == AC_VARIANT_F16) {
            const struct f16_error *e = &stats[i].f16;
            cJSON *fx = cJSON_AddObjectToObject(root, "f16_exactness");
            cJSON_AddStringToObject(fx, "source", "exact f32 dequantization of the base, rounded to nearest f16");
            cJSON_AddBoolToObject(fx, "exact", e->inexact == 0);
            cJSON_AddNumberToObject(fx, "elements_converted", (double)e->total);
            cJSON_AddNumberToObject(fx, "elements_inexact", (double)e->inexact);
            cJSON_AddNumberToObject(fx, "max_abs_error", e->max_abs);
            cJSON_AddNumberToObject(fx, "max_rel_error", e->max_rel);
        }
        cJSON_AddItemToArray(vs, variant_json(list[i], &stats[i], f16_bpt));
    }
    if (ac_manifest_write_json(root, tmp, err) != 0) goto done;
    if (commit_dir(out, tmp, err) != 0) goto done;
    tmp_made = false;
    rc = 0;
    goto done;
oom:
    ac_errf(err, "out of memory");
done:
    if (tmp_made) {
        char ignore[AC_ERR_LEN];
        remove_flat(tmp, ignore);
    }
    cJSON_Delete(root); /* before the arrays it references */
    for (int i = 0; stats && i < n_list; i++) cJSON_Delete(stats[i].q2_0_tensors);
    free(stats);
    ac_pool_free(pool);
    ac_model_free(base);
    free(out);
    free(tmp);
    return rc;
}
