/* gguf_builder.c - see gguf_builder.h. Aborts on allocation failure: it is
 * test-only code. */
#include "gguf_builder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void gb_bytes(struct gb *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        b->buf = realloc(b->buf, cap);
        if (!b->buf) abort();
        b->cap = cap;
    }
    if (n) memcpy(b->buf + b->len, p, n);
    b->len += n;
}

void gb_u32(struct gb *b, uint32_t v) { gb_bytes(b, &v, 4); }
void gb_u64(struct gb *b, uint64_t v) { gb_bytes(b, &v, 8); }

void gb_str(struct gb *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_bytes(b, s, strlen(s));
}

void gb_header(struct gb *b, uint64_t n_tensors, uint64_t n_kv) {
    gb_bytes(b, "GGUF", 4);
    gb_u32(b, 3);
    gb_u64(b, n_tensors);
    gb_u64(b, n_kv);
}

void gb_kv_str(struct gb *b, const char *key, const char *val) {
    gb_str(b, key);
    gb_u32(b, 8);
    gb_str(b, val);
}

void gb_kv_u32(struct gb *b, const char *key, uint32_t v) {
    gb_str(b, key);
    gb_u32(b, 4);
    gb_u32(b, v);
}

void gb_kv_f32(struct gb *b, const char *key, float v) {
    gb_str(b, key);
    gb_u32(b, 6);
    gb_bytes(b, &v, 4);
}

void gb_kv_bool(struct gb *b, const char *key, int v) {
    uint8_t x = v ? 1 : 0;
    gb_str(b, key);
    gb_u32(b, 7);
    gb_bytes(b, &x, 1);
}

void gb_kv_str_arr(struct gb *b, const char *key, const char *const *vals, size_t n) {
    gb_str(b, key);
    gb_u32(b, 9);
    gb_u32(b, 8);
    gb_u64(b, n);
    for (size_t i = 0; i < n; i++) gb_str(b, vals[i]);
}

void gb_tensor(struct gb *b, const char *name, int n_dims, const int64_t *ne, uint32_t type, uint64_t offset) {
    gb_str(b, name);
    gb_u32(b, (uint32_t)n_dims);
    for (int i = 0; i < n_dims; i++) gb_u64(b, (uint64_t)ne[i]);
    gb_u32(b, type);
    gb_u64(b, offset);
}

void gb_pad(struct gb *b, size_t align) {
    static const uint8_t zeros[64];
    while (b->len % align) gb_bytes(b, zeros, 1);
}

void gb_free(struct gb *b) {
    free(b->buf);
    memset(b, 0, sizeof *b);
}

char *gb_write_temp(const struct gb *b) {
    char *path = strdup("/tmp/ac_test_XXXXXX.gguf");
    int fd = mkstemps(path, 5);
    if (fd < 0) abort();
    if (write(fd, b->buf, b->len) != (ssize_t)b->len) abort();
    close(fd);
    return path;
}
