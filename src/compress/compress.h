/* compress.h - making the compressed variants of a base model: the
 * per-tensor quantization recipe of each variant, the quantize driver
 * (base GGUF -> one GGUF per variant in a variants directory), and that
 * directory's manifest.json.
 *
 * The recipes (see ac_recipe_type):
 *   every 1-D tensor (norms, biases)   f32
 *   f16    matrices f16; the exact dequantization of the base rounded
 *          to the nearest f16 (the manifest records how far that is)
 *   q8_0   matrices q8_0
 *   q4_0   layer matrices q4_0; token_embd / output q8_0
 *   int2   layer matrices q2_K where the row length is a multiple of 256,
 *          else q2_0 (ours, 32-element blocks, 3.0 bits per weight; no
 *          ggml equivalent, llama.cpp cannot load it); token_embd /
 *          output q4_0
 * The embedding / output head keeps one level more than the layers (as
 * llama.cpp keeps output.weight at q6_K / q8_0 in its low-bit types): with
 * a tied head it is read whole for every decoded token and is ~21% of
 * SmolLM2-135M's weights. The int2 variant is named after the 2-bit type
 * its layer matrices use: "q2_0" when any tensor needed it, else "q2_k". */
#ifndef AC_COMPRESS_H
#define AC_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ac_variant_kind {
    AC_VARIANT_F16,
    AC_VARIANT_Q8_0,
    AC_VARIANT_Q4_0,
    AC_VARIANT_INT2,
    AC_VARIANT_COUNT
};

/* A --types entry: "f16", "q8_0", "q4_0", or "int2" / "q2_0" / "q2_k" for
 * the 2-bit variant (case-insensitive). Returns the kind or -1. */
int ac_variant_parse(const char *name);

/* "fp16", "int8", "int4", "int2". */
const char *ac_variant_level(enum ac_variant_kind kind);

/* The type variant kind stores a tensor in, from its name and shape. */
uint32_t ac_recipe_type(enum ac_variant_kind kind, const char *name, int n_dims, const int64_t *ne);

/* Called once per tensor written: variant name, tensor index (0-based) and
 * count, tensor name and the type it was written in. */
typedef void (*ac_quantize_progress_fn)(void *user, const char *variant, int index, int count,
                                        const char *tensor, uint32_t type);

struct ac_quantize_params {
    const char *base_path; /* GGUF of a supported architecture */
    const char *out_dir;   /* the variants directory to create */
    const enum ac_variant_kind *kinds; /* NULL: all four, in enum order */
    int n_kinds;
    bool force;    /* replace an existing variants directory */
    int n_threads; /* 0 = number of cores */
    ac_quantize_progress_fn progress; /* may be NULL */
    void *progress_user;
};

/* Writes one GGUF per variant and manifest.json into out_dir. Everything
 * is built in "out_dir.tmp" and renamed into place at the end, so a failure
 * leaves no partial directory. An existing out_dir is refused unless force
 * is set, and even then only if it looks like a variants directory (a
 * manifest.json, or empty) holding plain files only. Returns 0 or -1 with
 * a message in err. */
int ac_quantize(const struct ac_quantize_params *p, char *err);

/* ---------------------------------------------------------------- manifest */

struct cJSON;

struct ac_manifest_variant {
    const char *name;  /* "f16", "q8_0", "q4_0", "q2_0" / "q2_k" */
    const char *file;  /* a plain file name inside the directory; NULL for a remote variant */
    const char *remote_url;   /* an OpenAI-compatible endpoint ("http://host:port/v1"), or NULL */
    const char *remote_model; /* the model name to ask that endpoint for */
    const char *level; /* "fp16", "int8", "int4", "int2" */
    double bits_per_weight;
    double relative_cost; /* weight bytes per decoded token / the f16 variant's */
    uint64_t bytes;       /* file size */
    uint64_t bytes_per_token;
    bool llama_cpp_compatible;
};

struct ac_manifest {
    const char *base;
    int n_variants;
    struct ac_manifest_variant *variants; /* strings point into json */
    struct cJSON *json; /* the whole document: other tools add their fields here */
};

/* Reads and validates dir/manifest.json. */
int ac_manifest_load(struct ac_manifest **out, const char *dir, char *err);
void ac_manifest_free(struct ac_manifest *m);

/* The variant named name, or NULL. */
const struct ac_manifest_variant *ac_manifest_find(const struct ac_manifest *m, const char *name);

/* Writes json as dir/manifest.json (temp file, fsync, rename). */
int ac_manifest_write_json(const struct cJSON *json, const char *dir, char *err);

#endif
