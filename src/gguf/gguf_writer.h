/* gguf_writer.h - writes GGUF v3 files that llama.cpp loads.
 *
 * Usage: gguf_writer_new, add metadata (any order, keys unique), add tensor
 * descriptors with their data (the writer keeps pointers: data must stay
 * valid until gguf_writer_write), then gguf_writer_write, which writes to
 * "PATH.tmp" and renames it over PATH only when everything is on disk, so
 * a failure never leaves a half-written file behind. Tensors are laid out
 * in the order added, each aligned to general.alignment (32 unless set). */
#ifndef AC_GGUF_WRITER_H
#define AC_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"

struct gguf_writer;

struct gguf_writer *gguf_writer_new(void);
void gguf_writer_free(struct gguf_writer *w);

/* Each returns 0, or -1 with a message in err (duplicate key, bad value). */
int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v, char *err);
int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v, char *err);
int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v, char *err);
int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v, char *err);
int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v, char *err);
int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v, char *err);
/* Arrays of numbers: elem_type is a numeric GGUF_VT_*; data holds n elements. */
int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_vtype elem_type, const void *data,
                        uint64_t n, char *err);
int gguf_writer_set_str_arr(struct gguf_writer *w, const char *key, const struct gguf_str *v, uint64_t n,
                            char *err);
/* Copies one metadata entry from a file being read (e.g. the tokenizer). */
int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv, char *err);

/* type is a ggml type id; ne[0] must be a multiple of its block size; size
 * must equal the type's row size times the row count. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type, int n_dims,
                           const int64_t *ne, const void *data, size_t size, char *err);

int gguf_writer_write(struct gguf_writer *w, const char *path, char *err);

#endif
