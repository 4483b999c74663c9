/* gguf_builder.h - test helper: writes GGUF images byte by byte, so tests
 * can make valid files and deliberately broken ones. */
#ifndef AC_TEST_GGUF_BUILDER_H
#define AC_TEST_GGUF_BUILDER_H

#include <stddef.h>
#include <stdint.h>

struct gb {
    uint8_t *buf;
    size_t len, cap;
};

void gb_bytes(struct gb *b, const void *p, size_t n);
void gb_u32(struct gb *b, uint32_t v);
void gb_u64(struct gb *b, uint64_t v);
void gb_str(struct gb *b, const char *s);
/* GGUF header: magic, version 3, counts. */
void gb_header(struct gb *b, uint64_t n_tensors, uint64_t n_kv);
void gb_kv_str(struct gb *b, const char *key, const char *val);
void gb_kv_u32(struct gb *b, const char *key, uint32_t v);
void gb_kv_f32(struct gb *b, const char *key, float v);
void gb_kv_bool(struct gb *b, const char *key, int v);
void gb_kv_str_arr(struct gb *b, const char *key, const char *const *vals, size_t n);
/* Tensor info with up to 4 dims. */
void gb_tensor(struct gb *b, const char *name, int n_dims, const int64_t *ne, uint32_t type, uint64_t offset);
/* Zero padding up to a multiple of align. */
void gb_pad(struct gb *b, size_t align);
void gb_free(struct gb *b);

/* Writes the image to a fresh temp file; returns its malloc'd path. */
char *gb_write_temp(const struct gb *b);

#endif
