/* gguf.h - GGUF v2/v3 reader (mmap, every length and offset bounds-checked).
 *
 * The file is untrusted. gguf_open/gguf_parse validate the whole header,
 * metadata and tensor directory up front: string lengths, array counts,
 * tensor dims, types, data offsets/extents against the file size, the
 * alignment, duplicate keys and tensor names. After a successful open every
 * pointer below is safe to read within its stated length. */
#ifndef AC_GGUF_H
#define AC_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gguf_vtype {
    GGUF_VT_U8 = 0, GGUF_VT_I8 = 1, GGUF_VT_U16 = 2, GGUF_VT_I16 = 3,
    GGUF_VT_U32 = 4, GGUF_VT_I32 = 5, GGUF_VT_F32 = 6, GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8, GGUF_VT_ARRAY = 9, GGUF_VT_U64 = 10, GGUF_VT_I64 = 11,
    GGUF_VT_F64 = 12, GGUF_VT_COUNT
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the mapped file: not NUL-terminated. */
struct gguf_str {
    const char *ptr;
    uint64_t len;
};

struct gguf_kv {
    struct gguf_str key;
    enum gguf_vtype type;     /* GGUF_VT_ARRAY for arrays */
    enum gguf_vtype arr_type; /* element type when type == GGUF_VT_ARRAY */
    uint64_t arr_n;           /* element count when type == GGUF_VT_ARRAY */
    const uint8_t *value;     /* raw little-endian value (for arrays: first element) */
};

struct gguf_tensor {
    struct gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) length; unused dims are 1 */
    uint32_t type;             /* ggml type id (enum ac_type) */
    uint64_t offset;           /* relative to the data section */
    const void *data;          /* into the map, aligned to gguf_file.alignment */
    size_t size;               /* bytes */
};

struct gguf_file {
    const uint8_t *base; /* the whole file */
    size_t size;
    bool mapped;         /* base is an mmap we own (else caller's buffer) */
    uint32_t version;
    uint64_t n_kv;
    struct gguf_kv *kv;
    uint64_t n_tensors;
    struct gguf_tensor *tensors;
    size_t alignment;
    size_t data_offset; /* start of the tensor data section */
};

/* Maps and validates path. On error returns -1 with a message in err
 * (AC_ERR_LEN bytes) and *out untouched. */
int gguf_open(struct gguf_file **out, const char *path, char *err);

/* Validates an in-memory image (not copied: buf must outlive the result).
 * Used by the fuzzer and tests. */
int gguf_parse(struct gguf_file **out, const void *buf, size_t size, char *err);

void gguf_close(struct gguf_file *f);

/* Lookup by exact key; NULL if absent. */
const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name);

/* Typed getters. Integers convert between widths when the value fits; a
 * missing key or a wrong type returns -1 with a message in err. */
int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out, char *err);
int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out, char *err);
int gguf_get_f32(const struct gguf_file *f, const char *key, float *out, char *err);
int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, char *err);
int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out, char *err);

/* Fills out[0..kv->arr_n) with the strings of a string array. */
int gguf_get_str_array(const struct gguf_kv *kv, struct gguf_str *out, char *err);

/* Numeric array element i as double / int64 (any numeric element type). */
double gguf_arr_f64(const struct gguf_kv *kv, uint64_t i);
int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t i);

/* Bytes of one element of a scalar type; 0 for STRING/ARRAY. */
size_t gguf_vtype_size(enum gguf_vtype t);

/* Compares a gguf_str with a C string. */
bool gguf_str_eq(struct gguf_str s, const char *cstr);

#endif
