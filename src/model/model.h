/* model.h - LLaMA-architecture transformer: weights mapped from GGUF, and a
 * context (KV cache, scratch, thread pool) that runs batched forward passes.
 *
 * Supported: general.architecture "llama" (SmolLM2, TinyLlama, Llama 2/3)
 * and "qwen2" (q/k/v biases, NeoX-style RoPE); tied or separate output head;
 * grouped-query attention; llama3 rope frequency factors (rope_freqs). */
#ifndef AC_MODEL_H
#define AC_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf_file;

/* A weight matrix (rows x cols) or vector (rows == 1) inside the GGUF map. */
struct ac_tensor {
    const void *data;
    uint32_t type; /* enum ac_type */
    int64_t cols;  /* ne[0]: the contiguous dimension */
    int64_t rows;  /* ne[1] */
    size_t bytes;
    /* matrices of the x16 types (quant.h): the x16 copy that matmuls read
     * where the SIMD level has its kernel, else NULL; data stays the file's
     * rows. */
    const void *x16;
};

struct ac_model_config {
    int n_vocab;
    int dim;        /* embedding width */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int ffn_dim;
    int ctx_train;  /* the model's trained context length */
    int rope_dim;   /* rotated dims per head (== head_dim for llama) */
    float rope_base;
    float norm_eps;
    bool rope_neox; /* qwen2: rotate (i, i + n/2) pairs; llama: adjacent pairs */
    bool tied_output;
};

/* Matmul inputs that activation sparsity thresholds (TEAL): the normalised
 * input of q/k/v, the attention output (input of Wo), the normalised input
 * of gate/up, and the SwiGLU product (input of Wdown). */
enum ac_sparse_site {
    AC_SITE_ATTN_IN,
    AC_SITE_ATTN_OUT,
    AC_SITE_FFN_IN,
    AC_SITE_FFN_DOWN,
    AC_SITE_COUNT
};

struct ac_layer {
    struct ac_tensor attn_norm, wq, wk, wv, wo;
    struct ac_tensor bq, bk, bv; /* data == NULL when absent */
    struct ac_tensor ffn_norm, w_gate, w_up, w_down;
    /* Per sparse site, the transposed weights of the matrices that read
     * that input, side by side (rows = inputs; a row is q|k|v, o, gate|up
     * or down): one kept input is one contiguous chunk. Built by
     * ac_model_prepare_sparse; data == NULL until then. */
    struct ac_tensor sparse_t[AC_SITE_COUNT];
};

struct ac_model {
    struct ac_model_config cfg;
    struct gguf_file *file; /* owned; tensors point into its map */
    struct ac_tensor tok_embd, output_norm, output, rope_freqs;
    struct ac_layer *layers;
    size_t weight_bytes; /* bytes of all weight tensors */
    void *sparse_weights; /* owns the transposed copies */
    size_t sparse_bytes;
    void *x16_weights; /* owns the x16 copies */
    size_t x16_bytes;
};

/* Maps path and checks every tensor the architecture needs: presence,
 * shape, and that its type has kernels. */
int ac_model_load(struct ac_model **out, const char *path, char *err);
void ac_model_free(struct ac_model *m);
/* Reads every page of the model's file that the forward pass will read
 * (not those of matrices repacked into copies at load), so the first
 * tokens run at memory speed instead of faulting page by page. */
int ac_model_prefault(struct ac_model *m, char *err);

/* Bytes of weights one decoded token reads: every layer matrix, one row of
 * the token embedding, the output head. */
size_t ac_model_bytes_per_token(const struct ac_model *m);

/* Builds the transposed weight copies that sparse decode reads (each input
 * feature's weights contiguous, so a zeroed activation skips a whole row).
 * They are quantized in the matrices' own type from their exact
 * dequantization (a 32-block type where the output width does not fit the
 * type's blocks or the matrices of a site differ in type). Idempotent;
 * costs as much memory again as the layer matrices. */
int ac_model_prepare_sparse(struct ac_model *m, char *err);

/* The same, taking the exact values from source, a model of the same
 * shapes (e.g. the f16 variant), so that a quantized variant's transposed
 * copies are quantized once from the originals, not re-quantized. */
int ac_model_prepare_sparse_from(struct ac_model *m, const struct ac_model *source, char *err);

struct ac_context;

struct ac_context_params {
    int n_ctx;     /* KV cache positions; 0 = min(ctx_train, 4096) */
    int n_batch;   /* max tokens per forward pass; 0 = 512 */
    int n_threads; /* 0 = number of cores */
};

int ac_context_new(struct ac_context **out, const struct ac_model *m,
                   const struct ac_context_params *params, char *err);
void ac_context_free(struct ac_context *c);

/* How a context runs its model: layers to skip (layer pruning) and per-layer
 * magnitude thresholds below which matmul inputs are zeroed (activation
 * sparsity). Both NULL: the plain engine, bit for bit. */
struct ac_run_config {
    const bool *skip_layer;        /* n_layers flags, or NULL */
    const float *sparse_threshold; /* n_layers x AC_SITE_COUNT, or NULL */
};

/* Copies rc into the context and forgets the cached positions. Sparse
 * thresholds need ac_model_prepare_sparse first. */
int ac_context_set_run_config(struct ac_context *c, const struct ac_run_config *rc, char *err);

/* Bytes of weights read since the last reset, counted per token as a
 * one-token forward pass would read them (embedding row, every matrix of a
 * layer that runs, only the rows of nonzero inputs under sparsity, the
 * output head where logits are computed), and the tokens counted. */
double ac_context_weight_bytes(const struct ac_context *c);
long ac_context_tokens_processed(const struct ac_context *c);

int ac_context_n_ctx(const struct ac_context *c);
int ac_context_n_vocab(const struct ac_context *c);
int ac_context_n_past(const struct ac_context *c);
/* Forgets the cached positions (keeps allocations). */
void ac_context_reset(struct ac_context *c);
/* Forgets the positions from n_past on (n_past <= ac_context_n_past), so
 * that a shared prefix is not run again; counters are kept. */
void ac_context_truncate(struct ac_context *c, int n_past);
/* Prompt caching: keeps the cached positions that hold tokens[0..) from
 * the start (at most n_tokens - 1 of them, so that the last token is run
 * again for its logits), forgets the rest, zeroes the counters and returns
 * how many positions were kept. Running tokens[kept..) then gives the same
 * bits as running all of them on a reset context (the forward pass does
 * not depend on how tokens are batched). */
int ac_context_keep_prefix(struct ac_context *c, const int32_t *tokens, int n_tokens);
/* How many positions ac_context_keep_prefix would keep (changes nothing). */
int ac_context_cached_prefix(const struct ac_context *c, const int32_t *tokens, int n_tokens);
/* Makes dst hold src's first n positions (their keys, values and tokens),
 * as if it had run them: a new context starts from another's shared prefix
 * (a system prompt) without running it. Both must be contexts of the same
 * model, length and run configuration, n <= ac_context_n_past(src); else
 * -1 and dst is unchanged. */
int ac_context_copy_prefix(struct ac_context *dst, const struct ac_context *src, int n);

enum ac_logits_mode {
    AC_LOGITS_NONE,
    AC_LOGITS_LAST, /* logits of the last token: n_vocab floats */
    AC_LOGITS_ALL,  /* every token's: n_tokens x n_vocab floats */
};

/* Appends n_tokens at the next positions, running them through the model in
 * batches of n_batch, and writes logits per mode into logits (may be NULL
 * for AC_LOGITS_NONE). Fails, without changing the cache, if the tokens
 * do not fit in the context or an id is out of range. */
int ac_decode(struct ac_context *c, const int32_t *tokens, int n_tokens,
              enum ac_logits_mode mode, float *logits, char *err);

/* Calibration over a token stream (run densely, in chunks of the context):
 * block_influence[l] = 1 - mean over tokens of cos(layer input, layer output)
 * (ShortGPT), and thresholds[(l * AC_SITE_COUNT + s) * n_levels + k] = the
 * magnitude below which a fraction sparsity[k] of site s's inputs in layer l
 * fall (TEAL). Either output may be NULL. */
int ac_calibrate(const struct ac_model *m, const int32_t *tokens, int n_tokens, int n_ctx, int n_threads,
                 const float *sparsity, int n_levels, float *block_influence, float *thresholds, char *err);

#endif
