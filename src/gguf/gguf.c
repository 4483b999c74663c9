/* gguf.c - GGUF reader. All validation happens in gguf_parse(); the getters
 * only read what it has proven to be inside the file. */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "quant/quant.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_MAX_KEY_LEN 65535u

/* ---------------------------------------------------------------- cursor */

struct cursor {
    const uint8_t *p;
    size_t left;
    char *err;
};

static int take(struct cursor *c, void *dst, size_t n, const char *what) {
    if (n > c->left) return ac_errf(c->err, "truncated file while reading %s", what);
    memcpy(dst, c->p, n);
    c->p += n;
    c->left -= n;
    return 0;
}

static int skip(struct cursor *c, uint64_t n, const char *what) {
    if (n > c->left) return ac_errf(c->err, "truncated file while reading %s", what);
    c->p += n;
    c->left -= (size_t)n;
    return 0;
}

static int read_u32(struct cursor *c, uint32_t *v, const char *what) { return take(c, v, 4, what); }
static int read_u64(struct cursor *c, uint64_t *v, const char *what) { return take(c, v, 8, what); }

static int read_str(struct cursor *c, struct gguf_str *s, const char *what) {
    uint64_t len = 0;
    if (read_u64(c, &len, what) != 0) return -1;
    if (len > c->left)
        return ac_errf(c->err, "%s: string length %llu exceeds the file", what, (unsigned long long)len);
    s->ptr = (const char *)c->p;
    s->len = len;
    c->p += len;
    c->left -= (size_t)len;
    return 0;
}

/* ---------------------------------------------------------------- value types */

size_t gguf_vtype_size(enum gguf_vtype t) {
    switch (t) {
    case GGUF_VT_U8: case GGUF_VT_I8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_U16: case GGUF_VT_I16: return 2;
    case GGUF_VT_U32: case GGUF_VT_I32: case GGUF_VT_F32: return 4;
    case GGUF_VT_U64: case GGUF_VT_I64: case GGUF_VT_F64: return 8;
    default: return 0;
    }
}

bool gguf_str_eq(struct gguf_str s, const char *cstr) {
    size_t n = strlen(cstr);
    return s.len == n && memcmp(s.ptr, cstr, n) == 0;
}

static bool str_same(struct gguf_str a, struct gguf_str b) {
    return a.len == b.len && memcmp(a.ptr, b.ptr, (size_t)a.len) == 0;
}

/* Skips one value of type t (not an array), checking it is inside the file. */
static int skip_scalar(struct cursor *c, enum gguf_vtype t, const char *what) {
    if (t == GGUF_VT_STRING) {
        struct gguf_str s;
        return read_str(c, &s, what);
    }
    size_t sz = gguf_vtype_size(t);
    if (sz == 0) return ac_errf(c->err, "%s: invalid value type %d", what, (int)t);
    return skip(c, sz, what);
}

static int parse_kv(struct cursor *c, struct gguf_kv *kv) {
    uint32_t type = 0;
    if (read_str(c, &kv->key, "metadata key") != 0) return -1;
    if (kv->key.len == 0 || kv->key.len > GGUF_MAX_KEY_LEN)
        return ac_errf(c->err, "metadata key of invalid length %llu", (unsigned long long)kv->key.len);
    if (read_u32(c, &type, "metadata value type") != 0) return -1;
    if (type >= GGUF_VT_COUNT)
        return ac_errf(c->err, "metadata '%.*s': invalid value type %u", (int)kv->key.len, kv->key.ptr, type);
    kv->type = (enum gguf_vtype)type;
    if (kv->type != GGUF_VT_ARRAY) {
        kv->value = c->p;
        return skip_scalar(c, kv->type, "metadata value");
    }
    uint32_t at = 0;
    uint64_t n = 0;
    if (read_u32(c, &at, "array type") != 0 || read_u64(c, &n, "array length") != 0) return -1;
    if (at >= GGUF_VT_COUNT || at == GGUF_VT_ARRAY)
        return ac_errf(c->err, "metadata '%.*s': invalid array element type %u", (int)kv->key.len, kv->key.ptr, at);
    kv->arr_type = (enum gguf_vtype)at;
    kv->arr_n = n;
    kv->value = c->p;
    if (at == GGUF_VT_STRING) {
        /* each string needs at least its 8-byte length */
        if (n > c->left / 8)
            return ac_errf(c->err, "metadata '%.*s': array length %llu exceeds the file",
                           (int)kv->key.len, kv->key.ptr, (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++)
            if (skip_scalar(c, GGUF_VT_STRING, "array string") != 0) return -1;
        return 0;
    }
    size_t sz = gguf_vtype_size(kv->arr_type);
    if (n > c->left / sz)
        return ac_errf(c->err, "metadata '%.*s': array length %llu exceeds the file",
                       (int)kv->key.len, kv->key.ptr, (unsigned long long)n);
    return skip(c, n * sz, "array data");
}

static int parse_tensor_info(struct cursor *c, struct gguf_tensor *t) {
    if (read_str(c, &t->name, "tensor name") != 0) return -1;
    if (t->name.len == 0 || t->name.len > GGUF_MAX_KEY_LEN)
        return ac_errf(c->err, "tensor name of invalid length %llu", (unsigned long long)t->name.len);
    const int nl = (int)t->name.len;
    if (read_u32(c, &t->n_dims, "tensor dims") != 0) return -1;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return ac_errf(c->err, "tensor '%.*s': %u dimensions (1..%d allowed)", nl, t->name.ptr, t->n_dims, GGUF_MAX_DIMS);
    uint64_t nelem = 1;
    for (int i = 0; i < GGUF_MAX_DIMS; i++) t->ne[i] = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        uint64_t d = 0;
        if (read_u64(c, &d, "tensor shape") != 0) return -1;
        if (d == 0 || d > (uint64_t)INT64_MAX || nelem > (uint64_t)INT64_MAX / d)
            return ac_errf(c->err, "tensor '%.*s': invalid shape", nl, t->name.ptr);
        t->ne[i] = (int64_t)d;
        nelem *= d;
    }
    if (read_u32(c, &t->type, "tensor type") != 0 || read_u64(c, &t->offset, "tensor offset") != 0) return -1;
    const struct ac_type_traits *tr = ac_type_traits(t->type);
    if (!tr) return ac_errf(c->err, "tensor '%.*s': unsupported tensor type id %u", nl, t->name.ptr, t->type);
    if (t->ne[0] % tr->blck_size != 0)
        return ac_errf(c->err, "tensor '%.*s': row length %lld is not a multiple of the %s block size %d",
                       nl, t->name.ptr, (long long)t->ne[0], tr->name, tr->blck_size);
    uint64_t blocks = nelem / (uint64_t)tr->blck_size;
    if (blocks > SIZE_MAX / tr->type_size)
        return ac_errf(c->err, "tensor '%.*s': size overflows", nl, t->name.ptr);
    t->size = (size_t)blocks * tr->type_size;
    return 0;
}

/* ---------------------------------------------------------------- parse */

int gguf_parse(struct gguf_file **out, const void *buf, size_t size, char *err) {
    struct gguf_file *f = calloc(1, sizeof *f);
    if (!f) return ac_errf(err, "out of memory");
    f->base = buf;
    f->size = size;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    struct cursor c = {.p = buf, .left = size, .err = err};

    uint32_t magic = 0;
    uint64_t nt = 0, nkv = 0;
    if (size < 4 || (memcpy(&magic, buf, 4), magic != GGUF_MAGIC)) {
        ac_errf(err, "not a GGUF file (bad magic)");
        goto fail;
    }
    c.p += 4;
    c.left -= 4;
    if (read_u32(&c, &f->version, "version") != 0) goto fail;
    if (f->version != 2 && f->version != 3) {
        ac_errf(err, "unsupported GGUF version %u (2 and 3 are supported)", f->version);
        goto fail;
    }
    if (read_u64(&c, &nt, "tensor count") != 0 || read_u64(&c, &nkv, "metadata count") != 0) goto fail;
    /* a kv takes at least 8+1+4+1 bytes, a tensor info 8+1+4+8+4+8: bound the allocations */
    if (nkv > c.left / 14 || nt > c.left / 33) {
        ac_errf(err, "counts (%llu tensors, %llu metadata) exceed the file size",
                (unsigned long long)nt, (unsigned long long)nkv);
        goto fail;
    }
    f->n_kv = nkv;
    f->n_tensors = nt;
    f->kv = calloc(nkv ? nkv : 1, sizeof *f->kv);
    f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors) {
        ac_errf(err, "out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < nkv; i++) {
        if (parse_kv(&c, &f->kv[i]) != 0) goto fail;
        for (uint64_t j = 0; j < i; j++)
            if (str_same(f->kv[j].key, f->kv[i].key)) {
                ac_errf(err, "duplicate metadata key '%.*s'", (int)f->kv[i].key.len, f->kv[i].key.ptr);
                goto fail;
            }
    }
    const struct gguf_kv *al = gguf_find_kv(f, "general.alignment");
    if (al) {
        uint32_t a;
        if (al->type != GGUF_VT_U32) {
            ac_errf(err, "general.alignment is not a u32");
            goto fail;
        }
        memcpy(&a, al->value, 4);
        if (a == 0 || (a & (a - 1)) != 0) {
            ac_errf(err, "general.alignment %u is not a power of two", a);
            goto fail;
        }
        f->alignment = a;
    }
    for (uint64_t i = 0; i < nt; i++) {
        if (parse_tensor_info(&c, &f->tensors[i]) != 0) goto fail;
        for (uint64_t j = 0; j < i; j++)
            if (str_same(f->tensors[j].name, f->tensors[i].name)) {
                ac_errf(err, "duplicate tensor name '%.*s'", (int)f->tensors[i].name.len, f->tensors[i].name.ptr);
                goto fail;
            }
    }
    size_t pos = size - c.left;
    size_t data = (pos + f->alignment - 1) / f->alignment * f->alignment;
    if (nt > 0 && data > size) {
        ac_errf(err, "truncated file: no tensor data section");
        goto fail;
    }
    f->data_offset = data;
    size_t data_size = data <= size ? size - data : 0;
    for (uint64_t i = 0; i < nt; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment != 0) {
            ac_errf(err, "tensor '%.*s': data offset %llu is not aligned to %zu",
                    (int)t->name.len, t->name.ptr, (unsigned long long)t->offset, f->alignment);
            goto fail;
        }
        if (t->offset > data_size || t->size > data_size - t->offset) {
            ac_errf(err, "tensor '%.*s': data (offset %llu, %zu bytes) extends past the end of the file",
                    (int)t->name.len, t->name.ptr, (unsigned long long)t->offset, t->size);
            goto fail;
        }
        t->data = f->base + data + t->offset;
    }
    *out = f;
    return 0;
fail:
    free(f->kv);
    free(f->tensors);
    free(f);
    return -1;
}

int gguf_open(struct gguf_file **out, const char *path, char *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ac_errf(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ac_errf(err, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return ac_errf(err, "%s: not a GGUF file (empty)", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return ac_errf(err, "%s: mmap: %s", path, strerror(errno));
    if (gguf_parse(out, map, (size_t)st.st_size, err) != 0) {
        munmap(map, (size_t)st.st_size);
        return ac_err_prefix(err, "%s", path);
    }
    (*out)->mapped = true;
    return 0;
}

void gguf_close(struct gguf_file *f) {
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f->kv);
    free(f->tensors);
    free(f);
}

/* ---------------------------------------------------------------- lookup */

const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (gguf_str_eq(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

/* Reads a numeric scalar at p of type t as int64 (floats are rejected by callers). */
static int64_t load_int(const uint8_t *p, enum gguf_vtype t) {
    switch (t) {
    case GGUF_VT_U8: return p[0];
    case GGUF_VT_I8: return (int8_t)p[0];
    case GGUF_VT_BOOL: return p[0] != 0;
    case GGUF_VT_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_VT_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_VT_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_VT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_VT_U64: { uint64_t v; memcpy(&v, p, 8); return v > (uint64_t)INT64_MAX ? -1 : (int64_t)v; }
    case GGUF_VT_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    case GGUF_VT_F32: { float v; memcpy(&v, p, 4); return (int64_t)v; }
    case GGUF_VT_F64: { double v; memcpy(&v, p, 8); return (int64_t)v; }
    default: return 0;
    }
}

static double load_f64(const uint8_t *p, enum gguf_vtype t) {
    if (t == GGUF_VT_F32) { float v; memcpy(&v, p, 4); return v; }
    if (t == GGUF_VT_F64) { double v; memcpy(&v, p, 8); return v; }
    return (double)load_int(p, t);
}

static bool is_int_type(enum gguf_vtype t) {
    return t != GGUF_VT_F32 && t != GGUF_VT_F64 && gguf_vtype_size(t) > 0 && t != GGUF_VT_BOOL;
}

static const struct gguf_kv *need(const struct gguf_file *f, const char *key, char *err) {
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) ac_errf(err, "missing metadata '%s'", key);
    return kv;
}

int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out, char *err) {
    const struct gguf_kv *kv = need(f, key, err);
    if (!kv) return -1;
    if (!is_int_type(kv->type)) return ac_errf(err, "metadata '%s' is not an integer", key);
    if (kv->type == GGUF_VT_U64) {
        uint64_t v;
        memcpy(&v, kv->value, 8);
        if (v > (uint64_t)INT64_MAX) return ac_errf(err, "metadata '%s' is out of range", key);
    }
    *out = load_int(kv->value, kv->type);
    return 0;
}

int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out, char *err) {
    int64_t v = 0;
    if (gguf_get_i64(f, key, &v, err) != 0) return -1;
    if (v < 0 || v > (int64_t)UINT32_MAX) return ac_errf(err, "metadata '%s' is out of range (%lld)", key, (long long)v);
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_f32(const struct gguf_file *f, const char *key, float *out, char *err) {
    const struct gguf_kv *kv = need(f, key, err);
    if (!kv) return -1;
    if (kv->type == GGUF_VT_STRING || kv->type == GGUF_VT_ARRAY || kv->type == GGUF_VT_BOOL)
        return ac_errf(err, "metadata '%s' is not a number", key);
    *out = (float)load_f64(kv->value, kv->type);
    return 0;
}

int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, char *err) {
    const struct gguf_kv *kv = need(f, key, err);
    if (!kv) return -1;
    if (kv->type != GGUF_VT_BOOL) return ac_errf(err, "metadata '%s' is not a bool", key);
    *out = kv->value[0] != 0;
    return 0;
}

int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out, char *err) {
    const struct gguf_kv *kv = need(f, key, err);
    if (!kv) return -1;
    if (kv->type != GGUF_VT_STRING) return ac_errf(err, "metadata '%s' is not a string", key);
    uint64_t len;
    memcpy(&len, kv->value, 8);
    out->len = len;
    out->ptr = (const char *)kv->value + 8;
    return 0;
}

int gguf_get_str_array(const struct gguf_kv *kv, struct gguf_str *out, char *err) {
    if (kv->type != GGUF_VT_ARRAY || kv->arr_type != GGUF_VT_STRING)
        return ac_errf(err, "metadata '%.*s' is not a string array", (int)kv->key.len, kv->key.ptr);
    const uint8_t *p = kv->value; /* proven in-bounds by gguf_parse */
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        uint64_t len;
        memcpy(&len, p, 8);
        out[i].len = len;
        out[i].ptr = (const char *)p + 8;
        p += 8 + len;
    }
    return 0;
}

double gguf_arr_f64(const struct gguf_kv *kv, uint64_t i) {
    return load_f64(kv->value + i * gguf_vtype_size(kv->arr_type), kv->arr_type);
}

int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t i) {
    return load_int(kv->value + i * gguf_vtype_size(kv->arr_type), kv->arr_type);
}
