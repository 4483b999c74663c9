/* model.c - loading LLaMA-architecture weights and the batched forward pass.
 *
 * Layout of one forward pass over a batch of T tokens (rows of activations):
 *   x = embed(tokens)                                  (T, dim)
 *   per layer: x += Wo · attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))
 *              x += Wdown · (silu(Wgate·n(x)) * Wup·n(x))
 *   logits = Wout · n(x)                               (T or 1, n_vocab)
 * Matmuls quantize the activations once to the weight type's vec_dot_type
 * and split weight rows across threads. The KV cache is F16, as llama.cpp's
 * default, and attention scores use the F16 dot against an F16 copy of q. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/common.h"
#include "gguf/gguf.h"
#include "model/sparse.h"
#include "model/threadpool.h"
#include "model/vec.h"
#include "quant/quant.h"

/* ================================================================ loading */

/* Finds tensor name with shape (cols, rows); rows == 0 means a vector. */
static int find_weight(const struct gguf_file *f, const char *name, int64_t cols, int64_t rows,
                       bool required, bool need_dot, struct ac_tensor *t, char *err) {
    memset(t, 0, sizeof *t);
    const struct gguf_tensor *g = gguf_find_tensor(f, name);
    if (!g) return required ? ac_errf(err, "missing tensor '%s'", name) : 0;
    int64_t want_rows = rows ? rows : 1;
    if (g->ne[0] != cols || g->ne[1] != want_rows || g->ne[2] != 1 || g->ne[3] != 1)
        return ac_errf(err, "tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", name,
                       (long long)g->ne[0], (long long)g->ne[1], (long long)cols, (long long)want_rows);
    const struct ac_type_traits *tr = ac_type_traits(g->type);
    if (!tr || !tr->to_float)
        return ac_errf(err, "tensor '%s': unsupported type %s", name, tr ? tr->name : "(unknown)");
    if (!rows && g->type != AC_TYPE_F32)
        return ac_errf(err, "tensor '%s': expected f32, found %s", name, tr->name);
    if (need_dot && !tr->vec_dot)
        return ac_errf(err, "tensor '%s': type %s has no matmul kernel", name, tr->name);
    t->data = g->data;
    t->type = g->type;
    t->cols = g->ne[0];
    t->rows = g->ne[1];
    t->bytes = g->size;
    return 0;
}

static int read_hparams(const struct gguf_file *f, const char *arch, struct ac_model_config *c, char *err) {
    char key[128];
    uint32_t v;
#define ARCH_U32(suffix, dst)                                                   \
    do {                                                                        \
        snprintf(key, sizeof key, "%s.%s", arch, suffix);                       \
        if (gguf_get_u32(f, key, &v, err) != 0) return -1;                      \
        if (v == 0 || v > (1u << 24)) return ac_errf(err, "metadata '%s' out of range (%u)", key, v); \
        (dst) = (int)v;                                                         \
    } while (0)
    ARCH_U32("block_count", c->n_layers);
    ARCH_U32("embedding_length", c->dim);
    ARCH_U32("feed_forward_length", c->ffn_dim);
    ARCH_U32("attention.head_count", c->n_heads);
    ARCH_U32("context_length", c->ctx_train);
    c->n_kv_heads = c->n_heads;
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    if (gguf_find_kv(f, key)) ARCH_U32("attention.head_count_kv", c->n_kv_heads);
    c->head_dim = c->dim / c->n_heads;
    snprintf(key, sizeof key, "%s.attention.key_length", arch);
    if (gguf_find_kv(f, key)) ARCH_U32("attention.key_length", c->head_dim);
    c->rope_dim = c->head_dim;
    snprintf(key, sizeof key, "%s.rope.dimension_count", arch);
    if (gguf_find_kv(f, key)) ARCH_U32("rope.dimension_count", c->rope_dim);
#undef ARCH_U32
    c->rope_base = 10000.0f;
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    if (gguf_find_kv(f, key) && gguf_get_f32(f, key, &c->rope_base, err) != 0) return -1;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if (gguf_get_f32(f, key, &c->norm_eps, err) != 0) return -1;
    if (c->n_heads % c->n_kv_heads != 0)
        return ac_errf(err, "head_count %d is not a multiple of head_count_kv %d", c->n_heads, c->n_kv_heads);
    if (c->rope_dim > c->head_dim || c->rope_dim % 2 != 0 || c->head_dim % 2 != 0)
        return ac_errf(err, "rope dimension %d does not fit head size %d", c->rope_dim, c->head_dim);
    if (!(c->norm_eps >= 0.0f && c->norm_eps < 1.0f) || !(c->rope_base > 0.0f))
        return ac_errf(err, "invalid norm epsilon or rope base");
    return 0;
}

#define HUGE_PAGE ((size_t)2 << 20)

/* The matrices the forward pass multiplies by (output last; when tied it
 * is a copy of tok_embd's entry, so the embedding lookup keeps the file's
 * rows). Returns how many were written to w (room for 7 per layer + 1). */
static int model_matrices(struct ac_model *m, struct ac_tensor **w) {
    int k = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        struct ac_layer *L = &m->layers[l];
        w[k++] = &L->wq, w[k++] = &L->wk, w[k++] = &L->wv, w[k++] = &L->wo;
        w[k++] = &L->w_gate, w[k++] = &L->w_up, w[k++] = &L->w_down;
    }
    w[k++] = &m->output;
    return k;
}

/* The whole pages inside [p, p + n): [*lo, *hi), empty when none. */
static void page_interior(const void *p, size_t n, uintptr_t *lo, uintptr_t *hi) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    *lo = ((uintptr_t)p + page - 1) & ~(page - 1);
    *hi = ((uintptr_t)p + n) & ~(page - 1);
    if (*hi < *lo) *hi = *lo;
}

/* Whether the x16 copy of t replaced the file's pages of it (matmuls read
 * the copy; the tied output shares tok_embd's rows, which the embedding
 * lookup keeps reading). */
static bool packed_replaces_file(const struct ac_model *m, const struct ac_tensor *t) {
    return t->x16 && m->file->mapped && !(t == &m->output && t->data == m->tok_embd.data);
}

/* Bytes of t's x16 copy, 64-byte aligned; 0 where the SIMD level has no
 * kernel for its type's layout. */
static size_t x16_bytes(const struct ac_tensor *t) {
    if (!ac_quant_gemm_x16(t->type)) return 0;
    return (ac_x16_size(t->type, t->rows, t->cols) + 63) & ~(size_t)63;
}

/* Copies every matrix whose type has an x16 layout (Q4_0, Q4_1, Q8_0, Q2_0, Q2_K) into it
 * when the SIMD level has its kernel: decode's 16-row gemv then loads
 * quants and scales as whole vectors instead of transposing blocks and
 * gathering scales on every token. The file map is read-only, so the copies
 * are one new allocation (x16_bytes), on huge pages where the kernel gives
 * them. */
static int pack_x16(struct ac_model *m, char *err) {
    struct ac_tensor **w = malloc(((size_t)m->cfg.n_layers * 7 + 1) * sizeof *w);
    if (!w) return ac_errf(err, "out of memory");
    const int n = model_matrices(m, w);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += x16_bytes(w[i]);
    if (!total) {
        free(w);
        return 0;
    }
    uint8_t *buf = NULL;
    if (posix_memalign((void **)&buf, HUGE_PAGE, total) != 0) {
        free(w);
        return ac_errf(err, "out of memory packing weights into 16-row groups (%zu bytes)", total);
    }
    (void)madvise(buf, total, MADV_HUGEPAGE); /* as the sparse copies: fewer TLB misses */
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const size_t bytes = x16_bytes(w[i]);
        if (!bytes) continue;
        const size_t row = ac_row_size(w[i]->type, w[i]->cols);
        if (ac_x16_pack(w[i]->type, buf + off, w[i]->data, row, w[i]->rows, w[i]->cols, err) != 0) {
            ac_free_aligned(buf);
            free(w);
            return -1;
        }
        w[i]->x16 = buf + off;
        off += bytes;
        if (packed_replaces_file(m, w[i])) {
            /* the file's copy is read no more: give its pages back (they are
             * file-backed and unwritten, so a later read, e.g. by
             * ac_model_prepare_sparse, faults them in from the file again) */
            uintptr_t lo, hi;
            page_interior(w[i]->data, row * (size_t)w[i]->rows, &lo, &hi);
            if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
        }
    }
    free(w);
    m->x16_weights = buf;
    m->x16_bytes = total;
    return 0;
}

int ac_model_prefault(struct ac_model *m, char *err) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t base = (uintptr_t)m->file->base;
    const size_t n_pages = (m->file->size + page - 1) / page;
    uint8_t *skip = calloc(n_pages ? n_pages : 1, 1);
    struct ac_tensor **w = malloc(((size_t)m->cfg.n_layers * 7 + 1) * sizeof *w);
    if (!skip || !w) {
        free(skip);
        free(w);
        return ac_errf(err, "out of memory");
    }
    const int n = model_matrices(m, w);
    for (int i = 0; i < n; i++) {
        if (!packed_replaces_file(m, w[i])) continue;
        uintptr_t lo, hi;
        page_interior(w[i]->data, ac_row_size(w[i]->type, w[i]->cols) * (size_t)w[i]->rows, &lo, &hi);
        for (uintptr_t a = lo; a < hi; a += page) skip[(a - base) / page] = 1;
    }
    const volatile uint8_t *bytes = m->file->base;
    uint8_t sink = 0;
    for (size_t k = 0; k < n_pages; k++)
        if (!skip[k]) sink ^= bytes[k * page];
    (void)sink;
    free(skip);
    free(w);
    return 0;
}

int ac_model_load(struct ac_model **out, const char *path, char *err) {
    struct ac_model *m = calloc(1, sizeof *m);
    if (!m) return ac_errf(err, "out of memory");
    ac_quant_init();
    if (gguf_open(&m->file, path, err) != 0) {
        free(m);
        return -1;
    }
    const struct gguf_file *f = m->file;
    struct ac_model_config *c = &m->cfg;
    struct gguf_str arch_s;
    char arch[64];
    if (gguf_get_str(f, "general.architecture", &arch_s, err) != 0) goto fail;
    snprintf(arch, sizeof arch, "%.*s", (int)(arch_s.len < 63 ? arch_s.len : 63), arch_s.ptr);
    if (strcmp(arch, "llama") != 0 && strcmp(arch, "qwen2") != 0) {
        ac_errf(err, "unsupported architecture '%s' (llama and qwen2 are supported)", arch);
        goto fail;
    }
    c->rope_neox = strcmp(arch, "qwen2") == 0;
    if (read_hparams(f, arch, c, err) != 0) goto fail;

    const struct gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    if (!te) {
        ac_errf(err, "missing tensor 'token_embd.weight'");
        goto fail;
    }
    c->n_vocab = (int)(te->ne[1] > 0 && te->ne[1] < (1 << 24) ? te->ne[1] : 0);
    if (c->n_vocab == 0) {
        ac_errf(err, "token_embd.weight has an invalid vocabulary size");
        goto fail;
    }
    const int64_t dim = c->dim, q_dim = (int64_t)c->n_heads * c->head_dim;
    const int64_t kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    if (find_weight(f, "token_embd.weight", dim, c->n_vocab, true, false, &m->tok_embd, err) != 0 ||
        find_weight(f, "output_norm.weight", dim, 0, true, false, &m->output_norm, err) != 0 ||
        find_weight(f, "output.weight", dim, c->n_vocab, false, true, &m->output, err) != 0 ||
        find_weight(f, "rope_freqs.weight", c->rope_dim / 2, 0, false, false, &m->rope_freqs, err) != 0)
        goto fail;
    c->tied_output = m->output.data == NULL;
    if (c->tied_output) {
        if (!ac_type_traits(m->tok_embd.type)->vec_dot) {
            ac_errf(err, "token_embd.weight: type %s has no matmul kernel", ac_type_traits(m->tok_embd.type)->name);
            goto fail;
        }
        m->output = m->tok_embd;
    }
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) {
        ac_errf(err, "out of memory");
        goto fail;
    }
    m->weight_bytes = m->tok_embd.bytes + m->output_norm.bytes + (c->tied_output ? 0 : m->output.bytes);
    for (int l = 0; l < c->n_layers; l++) {
        struct ac_layer *L = &m->layers[l];
        char name[96];
        struct {
            const char *suffix;
            int64_t cols, rows;
            bool required, matrix;
            struct ac_tensor *dst;
        } specs[] = {
            {"attn_norm.weight", dim, 0, true, false, &L->attn_norm},
            {"attn_q.weight", dim, q_dim, true, true, &L->wq},
            {"attn_k.weight", dim, kv_dim, true, true, &L->wk},
            {"attn_v.weight", dim, kv_dim, true, true, &L->wv},
            {"attn_output.weight", q_dim, dim, true, true, &L->wo},
            {"attn_q.bias", q_dim, 0, false, false, &L->bq},
            {"attn_k.bias", kv_dim, 0, false, false, &L->bk},
            {"attn_v.bias", kv_dim, 0, false, false, &L->bv},
            {"ffn_norm.weight", dim, 0, true, false, &L->ffn_norm},
            {"ffn_gate.weight", dim, c->ffn_dim, true, true, &L->w_gate},
            {"ffn_up.weight", dim, c->ffn_dim, true, true, &L->w_up},
            {"ffn_down.weight", c->ffn_dim, dim, true, true, &L->w_down},
        };
        for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
            snprintf(name, sizeof name, "blk.%d.%s", l, specs[s].suffix);
            if (find_weight(f, name, specs[s].cols, specs[s].rows, specs[s].required, specs[s].matrix,
                            specs[s].dst, err) != 0)
                goto fail;
            m->weight_bytes += specs[s].dst->bytes;
        }
    }
    if (pack_x16(m, err) != 0) goto fail;
    *out = m;
    return 0;
fail:
    ac_model_free(m);
    return -1;
}

void ac_model_free(struct ac_model *m) {
    if (!m) return;
    gguf_close(m->file);
    free(m->layers);
    ac_free_aligned(m->sparse_weights);
    ac_free_aligned(m->x16_weights);
    free(m);
}

size_t ac_model_bytes_per_token(const struct ac_model *m) {
    size_t b = m->output.bytes + m->output_norm.bytes + m->tok_embd.bytes / (size_t)m->cfg.n_vocab;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const struct ac_layer *L = &m->layers[l];
        b += L->attn_norm.bytes + L->wq.bytes + L->wk.bytes + L->wv.bytes + L->wo.bytes + L->bq.bytes +
             L->bk.bytes + L->bv.bytes + L->ffn_norm.bytes + L->w_gate.bytes + L->w_up.bytes + L->w_down.bytes;
    }
    return b;
}

/* The matrices that read each sparse site's input, in the order their
 * transposed weights sit side by side in the site's rows. */
#define SITE_MATS_MAX 3
static int site_mats(const struct ac_layer *L, enum ac_sparse_site site, const struct ac_tensor *w[SITE_MATS_MAX]) {
    switch (site) {
    case AC_SITE_ATTN_IN: w[0] = &L->wq, w[1] = &L->wk, w[2] = &L->wv; return 3;
    case AC_SITE_ATTN_OUT: w[0] = &L->wo; return 1;
    case AC_SITE_FFN_IN: w[0] = &L->w_gate, w[1] = &L->w_up; return 2;
    default: w[0] = &L->w_down; return 1;
    }
}

/* Type of one matrix's transposed weights: its own where its rows (the
 * output width) fit the type's blocks and the type has a quantizer, else
 * the 32-block type of about the same bits (a K-quant's 256-blocks may not
 * fit the transposed width), else Q8_0, else F32. */
static uint32_t transposed_type(const struct ac_tensor *w) {
    const struct ac_type_traits *t = ac_type_traits(w->type);
    if (t->from_float_ref && ac_row_size(w->type, w->rows) > 0) return w->type;
    const uint32_t near = w->type == AC_TYPE_Q2_K ? AC_TYPE_Q2_0 : w->type == AC_TYPE_Q4_K ? AC_TYPE_Q4_0 : AC_TYPE_Q8_0;
    if (ac_row_size(near, w->rows) > 0) return near;
    return ac_row_size(AC_TYPE_Q8_0, w->rows) > 0 ? AC_TYPE_Q8_0 : AC_TYPE_F32;
}

/* Type of a site's rows: the matrices' common transposed type, else Q8_0
 * where every matrix's width fits its blocks (so that each matrix's part
 * starts on a block), else F32. */
static uint32_t site_type(const struct ac_tensor *const *w, int n) {
    const uint32_t first = transposed_type(w[0]);
    bool same = true, q8 = true;
    for (int i = 0; i < n; i++) {
        same = same && transposed_type(w[i]) == first;
        q8 = q8 && ac_row_size(AC_TYPE_Q8_0, w[i]->rows) > 0;
    }
    return same ? first : q8 ? AC_TYPE_Q8_0 : AC_TYPE_F32;
}

int ac_model_prepare_sparse(struct ac_model *m, char *err) { return ac_model_prepare_sparse_from(m, m, err); }

int ac_model_prepare_sparse_from(struct ac_model *m, const struct ac_model *source, char *err) {
    if (m->sparse_weights) return 0;
    if (source->cfg.n_layers != m->cfg.n_layers || source->cfg.dim != m->cfg.dim ||
        source->cfg.ffn_dim != m->cfg.ffn_dim || source->cfg.n_kv_heads != m->cfg.n_kv_heads ||
        source->cfg.n_heads != m->cfg.n_heads || source->cfg.head_dim != m->cfg.head_dim)
        return ac_errf(err, "the source of the sparse weights has other shapes than the model");
    size_t total = 0, max_elems = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (int s = 0; s < AC_SITE_COUNT; s++) {
            const struct ac_tensor *w[SITE_MATS_MAX];
            const int n = site_mats(&m->layers[l], (enum ac_sparse_site)s, w);
            int64_t width = 0;
            for (int i = 0; i < n; i++) width += w[i]->rows;
            total += (ac_row_size(site_type(w, n), width) * (size_t)w[0]->cols + 63) & ~(size_t)63;
            if ((size_t)(width * w[0]->cols) > max_elems) max_elems = (size_t)(width * w[0]->cols);
        }
    }
    /* in 2 MB pages where the kernel allows: kept rows are read at random
     * places, and with 4 KB pages nearly each one costs a TLB miss (f16,
     * 50% kept: 0.79x -> 0.89x of dense decode) */
    uint8_t *buf = NULL;
    if (posix_memalign((void **)&buf, HUGE_PAGE, total) != 0) buf = NULL;
    if (buf) (void)madvise(buf, total, MADV_HUGEPAGE);
    float *dense = malloc((max_elems + 1) * sizeof(float)), *trans = malloc((max_elems + 1) * sizeof(float));
    if (!buf || !dense || !trans) {
        ac_free_aligned(buf);
        free(dense);
        free(trans);
        return ac_errf(err, "out of memory preparing sparse weights (%zu bytes)", total);
    }
    size_t off = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (int s = 0; s < AC_SITE_COUNT; s++) {
            const struct ac_tensor *w[SITE_MATS_MAX], *sw[SITE_MATS_MAX];
            const int n = site_mats(&m->layers[l], (enum ac_sparse_site)s, w);
            site_mats(&source->layers[l], (enum ac_sparse_site)s, sw);
            const int64_t cols = w[0]->cols;
            int64_t width = 0;
            for (int i = 0; i < n; i++) width += w[i]->rows;
            /* trans row c = input c's weights of every matrix, side by side */
            for (int i = 0, seg = 0; i < n; seg += (int)w[i]->rows, i++) {
                const struct ac_type_traits *src = ac_type_traits(sw[i]->type);
                const size_t src_row = ac_row_size(sw[i]->type, cols);
                for (int64_t r = 0; r < w[i]->rows; r++)
                    src->to_float((const uint8_t *)sw[i]->data + (size_t)r * src_row, dense + r * cols, cols);
                for (int64_t r = 0; r < w[i]->rows; r++)
                    for (int64_t c = 0; c < cols; c++) trans[c * width + seg + r] = dense[r * cols + c];
            }
            const uint32_t tt = site_type(w, n);
            const size_t row = ac_row_size(tt, width);
            for (int64_t c = 0; c < cols; c++) /* dense is free by now: the packer's scratch */
                ac_sparse_pack_row(tt, trans + c * width, buf + off + (size_t)c * row, width, (uint8_t *)dense);
            m->layers[l].sparse_t[s] =
                (struct ac_tensor){.data = buf + off, .type = tt, .cols = width, .rows = cols, .bytes = row * (size_t)cols};
            off += (row * (size_t)cols + 63) & ~(size_t)63;
        }
    }
    free(dense);
    free(trans);
    m->sparse_weights = buf;
    m->sparse_bytes = total;
    return 0;
}

/* ================================================================ context */

/* Calibration accumulators (ac_calibrate only). */
#define CALIB_BINS 4096
#define CALIB_LOG_MIN (-20.0f) /* log2 of the smallest magnitude binned */
#define CALIB_LOG_MAX 12.0f
struct calib {
    double *cos_sum;   /* (n_layers) */
    long n_tokens;
    uint32_t *hist;    /* (n_layers, AC_SITE_COUNT, CALIB_BINS) of log2 |x| */
    uint64_t *counts;  /* (n_layers, AC_SITE_COUNT) */
    float *x_in;       /* (B, dim) residual stream entering the layer */
};

struct ac_context {
    const struct ac_model *m;
    struct ac_pool *pool;
    int n_ctx, n_batch, n_past;
    int n_ctx_pad; /* n_ctx rounded up to whole key tiles */
    /* activations, n_batch rows each */
    float *x;      /* (B, dim) residual stream */
    float *xn;     /* (B, dim) normalised */
    float *q;      /* (B, q_dim) */
    float *k;      /* (B, kv_dim) */
    float *v;      /* (B, kv_dim) */
    float *att;    /* (B, q_dim) attention output */
    float *gate;   /* (B, ffn) */
    float *up;     /* (B, ffn) */
    uint8_t *xq;   /* quantized activations, (B, row bytes of the widest input) */
    size_t xq_row_cap;
    uint16_t *q16;      /* (B, q_dim) q as F16 for the score dots */
    float *scratch;     /* per thread: an attention task's scores, or a sparse output slice */
    size_t scratch_per_thread;
    uint16_t *k_cache;  /* per (layer, kv head): n_ctx_pad keys in AC_ATTN_TILE tiles (vec.h), F16 */
    uint16_t *k16;      /* (B, kv_dim) the batch's keys as F16 */
    uint16_t *v_cache;  /* per (layer, kv head): n_ctx_pad rows of head_dim, F16 */
    float *rope_cos, *rope_sin; /* (B, rope_dim/2) for the current batch */
    /* run configuration */
    bool *skip_layer;       /* (n_layers) */
    float *threshold;       /* (n_layers, AC_SITE_COUNT), or NULL: dense */
    int32_t *nz_idx;        /* (B, widest input) indices of kept inputs */
    int *nz_count;          /* (B) */
    int32_t *ids;           /* (n_ctx) the token at each cached position */
    int widest;
    double weight_bytes;
    long tokens_processed;
    struct calib *calib;
};

/* Tokens per attention task: about 8 query rows share each pass over the
 * cached keys and values. */
static int attn_tokens_per_task(const struct ac_model_config *cfg) {
    const int group = cfg->n_heads / cfg->n_kv_heads;
    return group >= 8 ? 1 : 8 / group;
}

int ac_context_n_ctx(const struct ac_context *c) { return c->n_ctx; }
int ac_context_n_vocab(const struct ac_context *c) { return c->m->cfg.n_vocab; }
int ac_context_n_past(const struct ac_context *c) { return c->n_past; }
double ac_context_weight_bytes(const struct ac_context *c) { return c->weight_bytes; }
long ac_context_tokens_processed(const struct ac_context *c) { return c->tokens_processed; }

void ac_context_reset(struct ac_context *c) {
    c->n_past = 0;
    c->weight_bytes = 0.0;
    c->tokens_processed = 0;
}

void ac_context_truncate(struct ac_context *c, int n_past) {
    if (n_past >= 0 && n_past < c->n_past) c->n_past = n_past;
}

int ac_context_cached_prefix(const struct ac_context *c, const int32_t *tokens, int n_tokens) {
    int keep = 0;
    while (keep < c->n_past && keep < n_tokens - 1 && c->ids[keep] == tokens[keep]) keep++;
    return keep;
}

int ac_context_copy_prefix(struct ac_context *dst, const struct ac_context *src, int n) {
    const struct ac_model_config *cfg = &src->m->cfg;
    const size_t skip_bytes = (size_t)cfg->n_layers * sizeof *src->skip_layer;
    const size_t thr_bytes = (size_t)cfg->n_layers * AC_SITE_COUNT * sizeof(float);
    if (dst->m != src->m || dst->n_ctx_pad != src->n_ctx_pad || n < 0 || n > src->n_past || n > dst->n_ctx ||
        memcmp(dst->skip_layer, src->skip_layer, skip_bytes) != 0 || !dst->threshold != !src->threshold ||
        (src->threshold && memcmp(dst->threshold, src->threshold, thr_bytes) != 0))
        return -1;
    /* per (layer, kv head): the key tiles and value rows of positions [0, n) */
    const size_t hd = (size_t)cfg->head_dim, block = (size_t)src->n_ctx_pad * hd;
    const size_t key_elems = (size_t)(n + AC_ATTN_TILE - 1) / AC_ATTN_TILE * AC_ATTN_TILE * hd;
    for (size_t b = 0; b < (size_t)cfg->n_layers * (size_t)cfg->n_kv_heads; b++) {
        memcpy(dst->k_cache + b * block, src->k_cache + b * block, key_elems * sizeof(uint16_t));
        memcpy(dst->v_cache + b * block, src->v_cache + b * block, (size_t)n * hd * sizeof(uint16_t));
    }
    memcpy(dst->ids, src->ids, (size_t)n * sizeof *src->ids);
    dst->n_past = n;
    return 0;
}

int ac_context_keep_prefix(struct ac_context *c, const int32_t *tokens, int n_tokens) {
    const int keep = ac_context_cached_prefix(c, tokens, n_tokens);
    c->n_past = keep;
    c->weight_bytes = 0.0;
    c->tokens_processed = 0;
    return keep;
}

void ac_context_free(struct ac_context *c) {
    if (!c) return;
    ac_pool_free(c->pool);
    float *fbufs[] = {c->x, c->xn, c->q, c->k, c->v, c->att, c->gate, c->up, c->scratch, c->rope_cos, c->rope_sin};
    for (size_t i = 0; i < sizeof fbufs / sizeof fbufs[0]; i++) ac_free_aligned(fbufs[i]);
    ac_free_aligned(c->xq);
    ac_free_aligned(c->q16);
    ac_free_aligned(c->k16);
    ac_free_aligned(c->k_cache);
    ac_free_aligned(c->v_cache);
    free(c->skip_layer);
    free(c->threshold);
    free(c->nz_idx);
    free(c->nz_count);
    free(c->ids);
    free(c);
}

int ac_context_new(struct ac_context **out, const struct ac_model *m, const struct ac_context_params *params,
                   char *err) {
    const struct ac_model_config *cfg = &m->cfg;
    struct ac_context *c = calloc(1, sizeof *c);
    if (!c) return ac_errf(err, "out of memory");
    ac_vec_init();
    c->m = m;
    c->n_ctx = params && params->n_ctx > 0 ? params->n_ctx : (cfg->ctx_train < 4096 ? cfg->ctx_train : 4096);
    c->n_batch = params && params->n_batch > 0 ? params->n_batch : 512;
    if (c->n_batch > c->n_ctx) c->n_batch = c->n_ctx;
    int n_threads = params && params->n_threads > 0 ? params->n_threads : ac_cpu_count();
    if (c->n_ctx > cfg->ctx_train) {
        ac_context_free(c);
        return ac_errf(err, "context size %d exceeds the model's trained context %d", params->n_ctx, cfg->ctx_train);
    }
    c->pool = ac_pool_new(n_threads);
    if (!c->pool) {
        ac_context_free(c);
        return ac_errf(err, "cannot start %d threads", n_threads);
    }
    const size_t B = (size_t)c->n_batch, dim = (size_t)cfg->dim;
    const size_t q_dim = (size_t)cfg->n_heads * cfg->head_dim, kv_dim = (size_t)cfg->n_kv_heads * cfg->head_dim;
    const size_t ffn = (size_t)cfg->ffn_dim;
    size_t widest = dim > ffn ? dim : ffn;
    if (q_dim > widest) widest = q_dim;
    c->widest = (int)widest;
    c->xq_row_cap = widest * sizeof(float); /* no activation type is wider than F32 */
    /* attention needs the scores of one task's rows (attn_tokens_per_task
     * tokens x a GQA group) over the padded context; a sparse matmul needs a
     * row of its site's outputs (q|k|v or gate|up side by side at most) and
     * its kernel's scratch */
    size_t site_out = q_dim + 2 * kv_dim > 2 * ffn ? q_dim + 2 * kv_dim : 2 * ffn;
    if (site_out < dim) site_out = dim;
    c->n_ctx_pad = (c->n_ctx + AC_ATTN_TILE - 1) / AC_ATTN_TILE * AC_ATTN_TILE;
    c->scratch_per_thread = (size_t)attn_tokens_per_task(cfg) * (size_t)(cfg->n_heads / cfg->n_kv_heads) * c->n_ctx_pad + 16;
    const size_t sparse_scratch = site_out + ac_sparse_scratch_floats((int)site_out);
    if (c->scratch_per_thread < sparse_scratch) c->scratch_per_thread = sparse_scratch;
    const size_t kv_elems = (size_t)cfg->n_layers * (size_t)c->n_ctx_pad * kv_dim;
    c->x = ac_alloc_aligned(B * dim * sizeof(float));
    c->xn = ac_alloc_aligned(B * dim * sizeof(float));
    c->q = ac_alloc_aligned(B * q_dim * sizeof(float));
    c->k = ac_alloc_aligned(B * kv_dim * sizeof(float));
    c->v = ac_alloc_aligned(B * kv_dim * sizeof(float));
    c->att = ac_alloc_aligned(B * q_dim * sizeof(float));
    c->gate = ac_alloc_aligned(B * ffn * sizeof(float));
    c->up = ac_alloc_aligned(B * ffn * sizeof(float));
    c->xq = ac_alloc_aligned(B * c->xq_row_cap);
    c->q16 = ac_alloc_aligned(B * q_dim * sizeof(uint16_t));
    c->k16 = ac_alloc_aligned(B * kv_dim * sizeof(uint16_t));
    c->scratch = ac_alloc_aligned((size_t)n_threads * c->scratch_per_thread * sizeof(float));
    c->k_cache = ac_alloc_aligned(kv_elems * sizeof(uint16_t));
    c->v_cache = ac_alloc_aligned(kv_elems * sizeof(uint16_t));
    c->rope_cos = ac_alloc_aligned(B * (size_t)cfg->rope_dim / 2 * sizeof(float));
    c->rope_sin = ac_alloc_aligned(B * (size_t)cfg->rope_dim / 2 * sizeof(float));
    c->skip_layer = calloc((size_t)cfg->n_layers, sizeof *c->skip_layer);
    c->nz_idx = malloc((B * widest + 16) * sizeof *c->nz_idx); /* + the 16 ac_sparse_select may store past */
    c->nz_count = malloc(B * sizeof *c->nz_count);
    c->ids = malloc((size_t)c->n_ctx * sizeof *c->ids);
    if (!c->x || !c->xn || !c->q || !c->k || !c->v || !c->att || !c->gate || !c->up || !c->xq || !c->q16 || !c->k16 ||
        !c->scratch || !c->k_cache || !c->v_cache || !c->rope_cos || !c->rope_sin || !c->skip_layer || !c->nz_idx ||
        !c->nz_count || !c->ids) {
        ac_context_free(c);
        return ac_errf(err, "out of memory allocating a context of %d positions", c->n_ctx);
    }
    *out = c;
    return 0;
}

int ac_context_set_run_config(struct ac_context *c, const struct ac_run_config *rc, char *err) {
    const int L = c->m->cfg.n_layers;
    if (rc && rc->sparse_threshold && !c->m->layers[0].sparse_t[0].data)
        return ac_errf(err, "activation sparsity needs the sparse weights (ac_model_prepare_sparse)");
    for (int l = 0; l < L; l++) c->skip_layer[l] = rc && rc->skip_layer ? rc->skip_layer[l] : false;
    free(c->threshold);
    c->threshold = NULL;
    if (rc && rc->sparse_threshold) {
        c->threshold = malloc(sizeof(float) * (size_t)L * AC_SITE_COUNT);
        if (!c->threshold) return ac_errf(err, "out of memory");
        memcpy(c->threshold, rc->sparse_threshold, sizeof(float) * (size_t)L * AC_SITE_COUNT);
    }
    ac_context_reset(c);
    return 0;
}

/* ================================================================ kernels */

/* out = x / rms(x) * w, row-wise over n_rows rows of n. */
static void rmsnorm(float *out, const float *x, const float *w, int n_rows, int n, float eps) {
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *o = out + (size_t)r * n;
        double ss = 0.0;
        for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        const float scale = 1.0f / sqrtf((float)(ss / n) + eps);
        for (int i = 0; i < n; i++) o[i] = xr[i] * scale * w[i];
    }
}

/* Quantizes n_rows rows of x (n wide) into c->xq in the type w pairs with;
 * returns the byte stride between rows. */
static size_t quantize_input(struct ac_context *c, const struct ac_tensor *w, const float *x, int n_rows) {
    const struct ac_type_traits *wt = ac_type_traits(w->type);
    const struct ac_type_traits *at = ac_type_traits(wt->vec_dot_type);
    const size_t stride = ac_row_size(wt->vec_dot_type, w->cols);
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * w->cols;
        uint8_t *dst = c->xq + (size_t)r * stride;
        if (wt->vec_dot_type == AC_TYPE_F32)
            memcpy(dst, xr, (size_t)w->cols * sizeof(float));
        else
            at->from_float(xr, dst, w->cols);
    }
    return stride;
}

struct matmul_job {
    const struct ac_tensor *w;
    const uint8_t *xq;
    size_t xq_stride;
    int n_tokens;
    float *out;       /* (n_tokens, w->rows) */
    const float *bias; /* (w->rows) or NULL */
    bool accumulate;  /* out += result instead of out = result */
    ac_gemm_fn gemm;  /* the weight type's gemm kernel, or NULL: vec_dot per (row, token) */
    const uint8_t *w_data; /* w's rows as gemm reads them: w->data, or w->x16 for the x16 kernel */
};

/* Rows of W are split into contiguous ranges per thread. With a gemm
 * kernel (ac_quant_gemm) a thread hands its whole range to it, for any
 * number of tokens: one token must give the same bits alone as in a batch
 * (decode after prefill, batch invariance), so the kernel serves both.
 * Otherwise, within a range a tile of rows is reused across all tokens
 * while it sits in L1. */
#define MATMUL_TILE_ROWS 16

static void matmul_worker(void *arg, int ith, int nth) {
    const struct matmul_job *j = arg;
    const struct ac_tensor *w = j->w;
    const ac_vec_dot_fn dot = ac_type_traits(w->type)->vec_dot;
    const size_t row_bytes = ac_row_size(w->type, w->cols);
    const int n = (int)w->cols;
    if (j->gemm) {
        /* whole 16-row groups per thread, so only the last has a ragged one
         * (and an x16 range starts at one of its groups) */
        const int64_t per = ((w->rows + nth - 1) / nth + 15) / 16 * 16;
        const int64_t r0 = per * ith, r1 = r0 + per < w->rows ? r0 + per : w->rows;
        if (r0 < r1)
            j->gemm(n, j->out + r0, (size_t)w->rows, j->w_data + (size_t)r0 * row_bytes, row_bytes,
                    (int)(r1 - r0), j->xq, j->xq_stride, j->n_tokens, j->bias ? j->bias + r0 : NULL, j->accumulate);
        return;
    }
    const int64_t per = (w->rows + nth - 1) / nth;
    const int64_t r0 = per * ith, r1 = r0 + per < w->rows ? r0 + per : w->rows;
    for (int64_t rt = r0; rt < r1; rt += MATMUL_TILE_ROWS) {
        const int64_t rt1 = rt + MATMUL_TILE_ROWS < r1 ? rt + MATMUL_TILE_ROWS : r1;
        for (int t = 0; t < j->n_tokens; t++) {
            const uint8_t *xr = j->xq + (size_t)t * j->xq_stride;
            float *o = j->out + (size_t)t * w->rows;
            for (int64_t r = rt; r < rt1; r++) {
                float s;
                dot(n, &s, (const uint8_t *)w->data + (size_t)r * row_bytes, xr);
                if (j->bias) s += j->bias[r];
                o[r] = j->accumulate ? o[r] + s : s;
            }
        }
    }
}

/* The job of out (n_tokens, w.rows) (+)= x · Wᵀ, x already quantized into
 * c->xq with row stride xq_stride. */
static struct matmul_job matmul_job_for(const struct ac_context *c, float *out, const struct ac_tensor *w,
                                        int n_tokens, const struct ac_tensor *bias, bool accumulate,
                                        size_t xq_stride) {
    struct matmul_job j = {
        .w = w, .xq = c->xq, .xq_stride = xq_stride, .n_tokens = n_tokens, .out = out,
        .bias = bias && bias->data ? bias->data : NULL, .accumulate = accumulate,
        .gemm = ac_quant_gemm(w->type), .w_data = w->data,
    };
    const ac_gemm_fn x16 = w->x16 ? ac_quant_gemm_x16(w->type) : NULL;
    if (x16) j.gemm = x16, j.w_data = w->x16;
    return j;
}

/* out (n_tokens, w.rows) (+)= x (n_tokens, w.cols) · Wᵀ */
static void matmul(struct ac_context *c, float *out, const float *x, const struct ac_tensor *w, int n_tokens,
                   const struct ac_tensor *bias, bool accumulate) {
    const size_t stride = quantize_input(c, w, x, n_tokens);
    struct matmul_job j = matmul_job_for(c, out, w, n_tokens, bias, accumulate, stride);
    ac_pool_run(c->pool, matmul_worker, &j);
}

/* cos/sin of each rotated pair for positions pos0.., as ggml computes them
 * (theta multiplied by the scale step by step in float). */
static void rope_tables(struct ac_context *c, int pos0, int n_tokens) {
    const struct ac_model_config *cfg = &c->m->cfg;
    const int half = cfg->rope_dim / 2;
    const float theta_scale = powf(cfg->rope_base, -2.0f / (float)cfg->rope_dim);
    const float *ff = c->m->rope_freqs.data;
    for (int t = 0; t < n_tokens; t++) {
        float theta = (float)(pos0 + t);
        for (int i = 0; i < half; i++) {
            const float th = ff ? theta / ff[i] : theta;
            c->rope_cos[t * half + i] = cosf(th);
            c->rope_sin[t * half + i] = sinf(th);
            theta *= theta_scale;
        }
    }
}

/* Rotates every head of x (n_tokens rows of n_heads * head_dim). */
static void rope_apply(const struct ac_context *c, float *x, int n_tokens, int n_heads) {
    const struct ac_model_config *cfg = &c->m->cfg;
    const int half = cfg->rope_dim / 2, hd = cfg->head_dim;
    for (int t = 0; t < n_tokens; t++) {
        const float *cs = c->rope_cos + t * half, *sn = c->rope_sin + t * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * hd;
            for (int i = 0; i < half; i++) {
                const int a = cfg->rope_neox ? i : 2 * i, b = cfg->rope_neox ? i + half : 2 * i + 1;
                const float x0 = v[a], x1 = v[b];
                v[a] = x0 * cs[i] - x1 * sn[i];
                v[b] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

struct attn_job {
    struct ac_context *c;
    int layer, pos0, n_tokens;
};

/* One task is a run of tokens times the group of query heads sharing a KV
 * head (GQA), so that each cached K and V row is read once for all of them. */
static void attn_worker(void *arg, int ith, int nth) {
    const struct attn_job *j = arg;
    struct ac_context *c = j->c;
    const struct ac_model_config *cfg = &c->m->cfg;
    const int hd = cfg->head_dim, nh = cfg->n_heads, n_kv = cfg->n_kv_heads, run = attn_tokens_per_task(cfg);
    const int n_runs = (j->n_tokens + run - 1) / run;
    float *scores = c->scratch + (size_t)ith * c->scratch_per_thread;
    for (int task = ith; task < n_runs * n_kv; task += nth) {
        const int t0 = task / n_kv * run, kvh = task % n_kv;
        const size_t head = ((size_t)j->layer * n_kv + kvh) * c->n_ctx_pad * hd;
        const size_t q0 = (size_t)t0 * nh * hd + (size_t)kvh * (nh / n_kv) * hd;
        const struct ac_attn_rows rows = {.d = hd,
                                          .group = nh / n_kv,
                                          .n_tokens = j->n_tokens - t0 < run ? j->n_tokens - t0 : run,
                                          .n_pos0 = j->pos0 + t0 + 1,
                                          .q16 = c->q16 + q0,
                                          .q_stride = (size_t)nh * hd,
                                          .out = c->att + q0,
                                          .out_stride = (size_t)nh * hd};
        ac_vec_attn_f16(&rows, c->k_cache + head, c->v_cache + head, 1.0f / sqrtf((float)hd), scores);
    }
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* ---------------------------------------------------------------- sparsity */

/* Zeroes the entries of x (n rows of width) below the site's threshold and
 * lists the kept indices per row; under calibration, bins the magnitudes. */
static void prepare_site(struct ac_context *c, int layer, enum ac_sparse_site site, float *x, int n, int width) {
    if (c->calib) {
        uint32_t *h = c->calib->hist + ((size_t)layer * AC_SITE_COUNT + site) * CALIB_BINS;
        for (size_t i = 0; i < (size_t)n * width; i++) {
            const float a = fabsf(x[i]);
            int b = 0;
            if (a > 0.0f) {
                const float pos = (log2f(a) - CALIB_LOG_MIN) / (CALIB_LOG_MAX - CALIB_LOG_MIN) * CALIB_BINS;
                b = pos < 0.0f ? 0 : pos >= CALIB_BINS ? CALIB_BINS - 1 : (int)pos;
            }
            h[b]++;
        }
        c->calib->counts[(size_t)layer * AC_SITE_COUNT + site] += (uint64_t)n * width;
    }
    if (!c->threshold) return;
    const float thr = c->threshold[(size_t)layer * AC_SITE_COUNT + site];
    const ac_sparse_select_fn select = ac_sparse_select();
    for (int t = 0; t < n; t++)
        c->nz_count[t] = select(x + (size_t)t * width, width, thr, c->nz_idx + (size_t)t * c->widest);
}

struct sparse_job {
    struct ac_context *c;
    const struct ac_tensor *wt; /* (inputs, site outputs) */
    const float *x;             /* (n_tokens, inputs) */
    int token;
};

/* Each thread takes a share of the kept inputs and accumulates whole
 * output rows (weight rows are read contiguously, never by two threads);
 * the partial sums are added up after the pool returns. */
static void sparse_worker(void *arg, int ith, int nth) {
    const struct sparse_job *j = arg;
    const struct ac_tensor *wt = j->wt;
    const int n_out = (int)wt->cols;
    const ac_sparse_gemv_fn gemv = ac_sparse_gemv(wt->type);
    float *acc = j->c->scratch + (size_t)ith * j->c->scratch_per_thread;
    float *kernel_scratch = acc + n_out;
    const int t = j->token;
    const int n_nz = j->c->nz_count[t], per = (n_nz + nth - 1) / nth;
    const int k0 = per * ith, k1 = k0 + per < n_nz ? k0 + per : n_nz;
    memset(acc, 0, (size_t)n_out * sizeof(float));
    if (k0 < k1)
        gemv(wt->type, wt->data, ac_row_size(wt->type, n_out), j->c->nz_idx + (size_t)t * j->c->widest + k0, k1 - k0,
             j->x + (size_t)t * wt->rows, acc, n_out, kernel_scratch);
}

/* One matrix that reads a site's input: out (+)= x · wᵀ (+ bias). */
struct site_out {
    float *out;
    const struct ac_tensor *w, *bias; /* bias: NULL or data == NULL when absent */
    bool accumulate;
};

struct matmuls_job {
    struct matmul_job m[SITE_MATS_MAX];
    int n;
};

static void matmuls_worker(void *arg, int ith, int nth) {
    struct matmuls_job *j = arg;
    for (int i = 0; i < j->n; i++) matmul_worker(&j->m[i], ith, nth);
}

/* The dense matmuls of one site, which all read x: where their weights
 * take the same activation format, x is quantized once and one pool run
 * does them all (each thread takes its rows of each matrix in turn: the
 * same ranges and kernels as one at a time, so the same bits, with one
 * join instead of one per matrix). */
static void dense_matmuls(struct ac_context *c, const float *x, int n, const struct site_out *outs, int n_outs) {
    bool shared = n_outs <= SITE_MATS_MAX;
    for (int i = 1; i < n_outs && shared; i++)
        shared = ac_type_traits(outs[i].w->type)->vec_dot_type == ac_type_traits(outs[0].w->type)->vec_dot_type &&
                 outs[i].w->cols == outs[0].w->cols;
    if (!shared) {
        for (int i = 0; i < n_outs; i++) matmul(c, outs[i].out, x, outs[i].w, n, outs[i].bias, outs[i].accumulate);
        return;
    }
    const size_t stride = quantize_input(c, outs[0].w, x, n);
    struct matmuls_job j = {.n = n_outs};
    for (int i = 0; i < n_outs; i++)
        j.m[i] = matmul_job_for(c, outs[i].out, outs[i].w, n, outs[i].bias, outs[i].accumulate, stride);
    ac_pool_run(c->pool, matmuls_worker, &j);
}

/* The matmuls of one sparse site over n tokens of x: with thresholds set,
 * one pass over the site's transposed rows of the kept inputs (the
 * matrices' outputs side by side), else each matrix's dense matmul. Counts
 * the weight bytes read. */
static void site_matmul(struct ac_context *c, const struct ac_layer *L, enum ac_sparse_site site, const float *x,
                        int n, const struct site_out *outs, int n_outs) {
    if (!c->threshold) {
        dense_matmuls(c, x, n, outs, n_outs);
        for (int i = 0; i < n_outs; i++) c->weight_bytes += (double)outs[i].w->bytes * n;
        return;
    }
    const struct ac_tensor *wt = &L->sparse_t[site];
    const int nth = ac_pool_size(c->pool);
    for (int t = 0; t < n; t++) {
        struct sparse_job j = {.c = c, .wt = wt, .x = x, .token = t};
        ac_pool_run(c->pool, sparse_worker, &j);
        /* per output: bias + thread 0's sum + thread 1's ..., then added to
         * or stored in out; summed in place in thread 0's sums (a mad by 1
         * is an exact add) */
        float *sum = c->scratch;
        for (int i = 0, seg = 0; i < n_outs; seg += (int)outs[i].w->rows, i++) {
            const int width = (int)outs[i].w->rows;
            float *o = outs[i].out + (size_t)t * width;
            if (outs[i].bias && outs[i].bias->data) ac_vec_mad(width, sum + seg, outs[i].bias->data, 1.0f);
            for (int th = 1; th < nth; th++)
                ac_vec_mad(width, sum + seg, c->scratch + (size_t)th * c->scratch_per_thread + seg, 1.0f);
            if (outs[i].accumulate)
                ac_vec_mad(width, o, sum + seg, 1.0f);
            else
                memcpy(o, sum + seg, sizeof(float) * (size_t)width);
        }
        c->weight_bytes += (double)c->nz_count[t] * (double)ac_row_size(wt->type, wt->cols);
    }
}

/* ---------------------------------------------------------------- forward */

/* Runs tokens[0..n) (n <= n_batch) at positions n_past.. through the model;
 * leaves the final hidden states, normalised, in c->xn. */
static void forward_batch(struct ac_context *c, const int32_t *tokens, int n) {
    const struct ac_model *m = c->m;
    const struct ac_model_config *cfg = &m->cfg;
    const int dim = cfg->dim, q_dim = cfg->n_heads * cfg->head_dim, kv_dim = cfg->n_kv_heads * cfg->head_dim;
    const int ffn = cfg->ffn_dim;
    const struct ac_type_traits *emb = ac_type_traits(m->tok_embd.type);
    const size_t emb_row = ac_row_size(m->tok_embd.type, dim);
    const struct ac_type_traits *f16 = ac_type_traits(AC_TYPE_F16);

    memcpy(c->ids + c->n_past, tokens, (size_t)n * sizeof *tokens);
    for (int t = 0; t < n; t++)
        emb->to_float((const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * emb_row, c->x + (size_t)t * dim, dim);
    c->weight_bytes += (double)emb_row * n;
    rope_tables(c, c->n_past, n);

    for (int l = 0; l < cfg->n_layers; l++) {
        if (c->skip_layer[l]) continue;
        const struct ac_layer *L = &m->layers[l];
        if (c->calib) memcpy(c->calib->x_in, c->x, sizeof(float) * (size_t)n * dim);
        rmsnorm(c->xn, c->x, L->attn_norm.data, n, dim, cfg->norm_eps);
        prepare_site(c, l, AC_SITE_ATTN_IN, c->xn, n, dim);
        const struct site_out qkv[3] = {{c->q, &L->wq, &L->bq, false}, {c->k, &L->wk, &L->bk, false},
                                        {c->v, &L->wv, &L->bv, false}};
        site_matmul(c, L, AC_SITE_ATTN_IN, c->xn, n, qkv, 3);
        rope_apply(c, c->q, n, cfg->n_heads);
        rope_apply(c, c->k, n, cfg->n_kv_heads);
        f16->from_float(c->k, c->k16, (int64_t)n * kv_dim);
        for (int h = 0; h < cfg->n_kv_heads; h++) {
            const size_t hd = (size_t)cfg->head_dim, head = ((size_t)l * cfg->n_kv_heads + h) * c->n_ctx_pad * hd;
            for (int t = 0; t < n; t++) {
                ac_attn_store_key((int)hd, c->k_cache + head, c->n_past + t, c->k16 + (size_t)t * kv_dim + h * hd);
                f16->from_float(c->v + (size_t)t * kv_dim + h * hd, c->v_cache + head + (size_t)(c->n_past + t) * hd,
                                (int64_t)hd);
            }
        }
        f16->from_float(c->q, c->q16, (int64_t)n * q_dim);
        struct attn_job aj = {.c = c, .layer = l, .pos0 = c->n_past, .n_tokens = n};
        ac_pool_run(c->pool, attn_worker, &aj);
        prepare_site(c, l, AC_SITE_ATTN_OUT, c->att, n, q_dim);
        const struct site_out o = {c->x, &L->wo, NULL, true};
        site_matmul(c, L, AC_SITE_ATTN_OUT, c->att, n, &o, 1);

        rmsnorm(c->xn, c->x, L->ffn_norm.data, n, dim, cfg->norm_eps);
        prepare_site(c, l, AC_SITE_FFN_IN, c->xn, n, dim);
        const struct site_out gate_up[2] = {{c->gate, &L->w_gate, NULL, false}, {c->up, &L->w_up, NULL, false}};
        site_matmul(c, L, AC_SITE_FFN_IN, c->xn, n, gate_up, 2);
        for (size_t i = 0; i < (size_t)n * ffn; i++) c->gate[i] = silu(c->gate[i]) * c->up[i];
        prepare_site(c, l, AC_SITE_FFN_DOWN, c->gate, n, ffn);
        const struct site_out down = {c->x, &L->w_down, NULL, true};
        site_matmul(c, L, AC_SITE_FFN_DOWN, c->gate, n, &down, 1);
        if (c->calib) {
            for (int t = 0; t < n; t++) {
                const float *a = c->calib->x_in + (size_t)t * dim, *b = c->x + (size_t)t * dim;
                double ab = 0.0, aa = 0.0, bb = 0.0;
                for (int i = 0; i < dim; i++) {
                    ab += (double)a[i] * b[i];
                    aa += (double)a[i] * a[i];
                    bb += (double)b[i] * b[i];
                }
                c->calib->cos_sum[l] += aa > 0.0 && bb > 0.0 ? ab / sqrt(aa * bb) : 1.0;
            }
        }
    }
    rmsnorm(c->xn, c->x, m->output_norm.data, n, dim, cfg->norm_eps);
    c->n_past += n;
    c->tokens_processed += n;
    if (c->calib) c->calib->n_tokens += n;
}

int ac_decode(struct ac_context *c, const int32_t *tokens, int n_tokens, enum ac_logits_mode mode, float *logits,
              char *err) {
    const struct ac_model *m = c->m;
    const int n_vocab = m->cfg.n_vocab, dim = m->cfg.dim;
    if (n_tokens <= 0) return ac_errf(err, "no tokens to decode");
    if (mode != AC_LOGITS_NONE && !logits) return ac_errf(err, "no logits buffer");
    if (n_tokens > c->n_ctx - c->n_past)
        return ac_errf(err, "%d tokens do not fit in the context (%d of %d positions used)", n_tokens, c->n_past,
                       c->n_ctx);
    for (int i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return ac_errf(err, "token id %d out of range (vocabulary of %d)", tokens[i], n_vocab);
    for (int done = 0; done < n_tokens;) {
        const int n = n_tokens - done < c->n_batch ? n_tokens - done : c->n_batch;
        forward_batch(c, tokens + done, n);
        if (mode == AC_LOGITS_ALL) {
            matmul(c, logits + (size_t)done * n_vocab, c->xn, &m->output, n, NULL, false);
            c->weight_bytes += (double)m->output.bytes * n;
        } else if (mode == AC_LOGITS_LAST && done + n == n_tokens) {
            matmul(c, logits, c->xn + (size_t)(n - 1) * dim, &m->output, 1, NULL, false);
            c->weight_bytes += (double)m->output.bytes;
        }
        done += n;
    }
    return 0;
}

/* ================================================================ calibration */

/* Magnitude below which a fraction q of the binned values fall (the upper
 * edge of the bin where the cumulative count crosses q). */
static float hist_quantile(const uint32_t *h, uint64_t total, float q) {
    if (q <= 0.0f || total == 0) return 0.0f;
    const double target = (double)q * (double)total;
    double cum = 0.0;
    for (int b = 0; b < CALIB_BINS; b++) {
        cum += h[b];
        if (cum >= target)
            return exp2f(CALIB_LOG_MIN + (float)(b + 1) * (CALIB_LOG_MAX - CALIB_LOG_MIN) / CALIB_BINS);
    }
    return exp2f(CALIB_LOG_MAX);
}

int ac_calibrate(const struct ac_model *m, const int32_t *tokens, int n_tokens, int n_ctx, int n_threads,
                 const float *sparsity, int n_levels, float *block_influence, float *thresholds, char *err) {
    const int L = m->cfg.n_layers;
    if (n_tokens <= 0) return ac_errf(err, "calibration needs at least one token");
    for (int k = 0; k < n_levels; k++)
        if (!(sparsity[k] >= 0.0f && sparsity[k] < 1.0f)) return ac_errf(err, "sparsity levels must be in [0, 1)");
    struct ac_context *c = NULL;
    struct ac_context_params cp = {.n_ctx = n_ctx, .n_threads = n_threads};
    if (ac_context_new(&c, m, &cp, err) != 0 || !c) return -1;
    struct calib cal = {0};
    cal.cos_sum = calloc((size_t)L, sizeof *cal.cos_sum);
    cal.hist = calloc((size_t)L * AC_SITE_COUNT * CALIB_BINS, sizeof *cal.hist);
    cal.counts = calloc((size_t)L * AC_SITE_COUNT, sizeof *cal.counts);
    cal.x_in = malloc(sizeof(float) * (size_t)c->n_batch * m->cfg.dim);
    int rc = -1;
    if (!cal.cos_sum || !cal.hist || !cal.counts || !cal.x_in) {
        ac_errf(err, "out of memory");
        goto done;
    }
    c->calib = &cal;
    /* windows of the context length, each starting from an empty cache */
    for (int done = 0; done < n_tokens;) {
        const int n = n_tokens - done < c->n_ctx ? n_tokens - done : c->n_ctx;
        ac_context_reset(c);
        if (ac_decode(c, tokens + done, n, AC_LOGITS_NONE, NULL, err) != 0) goto done;
        done += n;
    }
    for (int l = 0; l < L; l++) {
        if (block_influence) block_influence[l] = (float)(1.0 - cal.cos_sum[l] / (double)cal.n_tokens);
        for (int s = 0; s < AC_SITE_COUNT && thresholds; s++)
            for (int k = 0; k < n_levels; k++)
                thresholds[((size_t)l * AC_SITE_COUNT + s) * n_levels + k] =
                    hist_quantile(cal.hist + ((size_t)l * AC_SITE_COUNT + s) * CALIB_BINS,
                                  cal.counts[(size_t)l * AC_SITE_COUNT + s], sparsity[k]);
    }
    rc = 0;
done:
    c->calib = NULL;
    free(cal.cos_sum);
    free(cal.hist);
    free(cal.counts);
    free(cal.x_in);
    ac_context_free(c);
    return rc;
}
