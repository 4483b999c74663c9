/* gguf_writer.c - GGUF v3 writer (little-endian, as the reader and
 * llama.cpp expect on x86). Metadata values are serialised when set, so
 * the writer owns copies of keys and values; tensor data is only pointed
 * to. The file is written to PATH.tmp, fsynced, and renamed over PATH. */
#include "gguf/gguf_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "quant/quant.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_VERSION 3u
#define GGUF_MAX_NAME_LEN 65535u /* the reader's bound for keys and tensor names */

struct kv_entry {
    char *key;
    uint8_t *value; /* serialised: u32 type, then the value as GGUF stores it */
    size_t len;
};

struct tensor_entry {
    char *name;
    uint32_t type;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data;
    size_t size;
};

struct gguf_writer {
    struct kv_entry *kv;
    size_t n_kv, cap_kv;
    struct tensor_entry *tensors;
    size_t n_tensors, cap_tensors;
    uint32_t alignment;
};

/* ================================================================ building */

struct gguf_writer *gguf_writer_new(void) {
    struct gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_free(struct gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].value);
    }
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kv);
    free(w->tensors);
    free(w);
}

/* A growable byte buffer for serialising one value. */
struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static void buf_put(struct buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void buf_u32(struct buf *b, uint32_t v) { buf_put(b, &v, 4); }
static void buf_u64(struct buf *b, uint64_t v) { buf_put(b, &v, 8); }

static void buf_str(struct buf *b, const char *s, uint64_t len) {
    buf_u64(b, len);
    buf_put(b, s, (size_t)len);
}

static bool valid_name(const char *s) {
    const size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= GGUF_MAX_NAME_LEN;
}

/* Takes ownership of b's bytes (freed on error) as the value of key. */
static int add_kv(struct gguf_writer *w, const char *key, struct buf *b, char *err) {
    if (!valid_name(key)) {
        free(b->p);
        return ac_errf(err, "metadata key of invalid length");
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            free(b->p);
            return ac_errf(err, "duplicate metadata key '%s'", key);
        }
    if (b->oom) {
        free(b->p);
        return ac_errf(err, "out of memory");
    }
    if (w->n_kv == w->cap_kv) {
        const size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        struct kv_entry *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv) {
            free(b->p);
            return ac_errf(err, "out of memory");
        }
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(b->p);
        return ac_errf(err, "out of memory");
    }
    w->kv[w->n_kv++] = (struct kv_entry){.key = k, .value = b->p, .len = b->len};
    return 0;
}

static int set_scalar(struct gguf_writer *w, const char *key, enum gguf_vtype t, const void *v, char *err) {
    struct buf b = {0};
    buf_u32(&b, (uint32_t)t);
    buf_put(&b, v, gguf_vtype_size(t));
    return add_kv(w, key, &b, err);
}

int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v, char *err) {
    const bool alignment = key && strcmp(key, "general.alignment") == 0;
    if (alignment && (v == 0 || (v & (v - 1)) != 0))
        return ac_errf(err, "general.alignment %u is not a power of two", v);
    if (set_scalar(w, key, GGUF_VT_U32, &v, err) != 0) return -1;
    if (alignment) w->alignment = v;
    return 0;
}

int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v, char *err) {
    return set_scalar(w, key, GGUF_VT_I32, &v, err);
}

int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v, char *err) {
    return set_scalar(w, key, GGUF_VT_U64, &v, err);
}

int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v, char *err) {
    return set_scalar(w, key, GGUF_VT_F32, &v, err);
}

int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v, char *err) {
    const uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, GGUF_VT_BOOL, &b, err);
}

int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v, char *err) {
    if (!v) return ac_errf(err, "metadata '%s': NULL string", key ? key : "");
    struct buf b = {0};
    buf_u32(&b, GGUF_VT_STRING);
    buf_str(&b, v, strlen(v));
    return add_kv(w, key, &b, err);
}

int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_vtype elem_type, const void *data,
                        uint64_t n, char *err) {
    const size_t sz = gguf_vtype_size(elem_type);
    if (sz == 0) return ac_errf(err, "metadata '%s': array element type %d is not numeric", key ? key : "",
                                (int)elem_type);
    if (n > 0 && !data) return ac_errf(err, "metadata '%s': NULL array data", key ? key : "");
    if (n > SIZE_MAX / sz) return ac_errf(err, "metadata '%s': array too large", key ? key : "");
    struct buf b = {0};
    buf_u32(&b, GGUF_VT_ARRAY);
    buf_u32(&b, (uint32_t)elem_type);
    buf_u64(&b, n);
    if (n > 0) buf_put(&b, data, (size_t)n * sz);
    return add_kv(w, key, &b, err);
}

int gguf_writer_set_str_arr(struct gguf_writer *w, const char *key, const struct gguf_str *v, uint64_t n,
                            char *err) {
    if (n > 0 && !v) return ac_errf(err, "metadata '%s': NULL array data", key ? key : "");
    struct buf b = {0};
    buf_u32(&b, GGUF_VT_ARRAY);
    buf_u32(&b, GGUF_VT_STRING);
    buf_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) buf_str(&b, v[i].ptr, v[i].len);
    return add_kv(w, key, &b, err);
}

int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv, char *err) {
    char key[GGUF_MAX_NAME_LEN + 1];
    if (kv->key.len == 0 || kv->key.len > GGUF_MAX_NAME_LEN) return ac_errf(err, "metadata key of invalid length");
    memcpy(key, kv->key.ptr, (size_t)kv->key.len);
    key[kv->key.len] = '\0';
    if (strlen(key) != kv->key.len) return ac_errf(err, "metadata key contains a NUL byte");
    if (strcmp(key, "general.alignment") == 0) {
        if (kv->type != GGUF_VT_U32) return ac_errf(err, "general.alignment is not a u32");
        uint32_t a;
        memcpy(&a, kv->value, 4);
        return gguf_writer_set_u32(w, key, a, err);
    }
    /* value bytes as the reader proved them in bounds: walk them to size */
    size_t len;
    if (kv->type == GGUF_VT_STRING) {
        uint64_t n;
        memcpy(&n, kv->value, 8);
        len = 8 + (size_t)n;
    } else if (kv->type == GGUF_VT_ARRAY && kv->arr_type == GGUF_VT_STRING) {
        const uint8_t *p = kv->value;
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            uint64_t n;
            memcpy(&n, p, 8);
            p += 8 + n;
        }
        len = (size_t)(p - kv->value);
    } else if (kv->type == GGUF_VT_ARRAY) {
        len = (size_t)kv->arr_n * gguf_vtype_size(kv->arr_type);
    } else {
        len = gguf_vtype_size(kv->type);
        if (len == 0) return ac_errf(err, "metadata '%s': invalid value type %d", key, (int)kv->type);
    }
    struct buf b = {0};
    buf_u32(&b, (uint32_t)kv->type);
    if (kv->type == GGUF_VT_ARRAY) {
        buf_u32(&b, (uint32_t)kv->arr_type);
        buf_u64(&b, kv->arr_n);
    }
    buf_put(&b, kv->value, len);
    return add_kv(w, key, &b, err);
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type, int n_dims,
                           const int64_t *ne, const void *data, size_t size, char *err) {
    if (!valid_name(name)) return ac_errf(err, "tensor name of invalid length");
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return ac_errf(err, "duplicate tensor name '%s'", name);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return ac_errf(err, "tensor '%s': %d dimensions (1..%d allowed)", name, n_dims, GGUF_MAX_DIMS);
    const struct ac_type_traits *tr = ac_type_traits(type);
    if (!tr) return ac_errf(err, "tensor '%s': unsupported tensor type id %u", name, type);
    struct tensor_entry t = {.type = type, .n_dims = n_dims, .data = data, .size = size};
    int64_t rows = 1;
    for (int i = 0; i < GGUF_MAX_DIMS; i++) {
        t.ne[i] = i < n_dims ? ne[i] : 1;
        if (t.ne[i] < 1 || (i > 0 && rows > INT64_MAX / t.ne[i]))
            return ac_errf(err, "tensor '%s': invalid shape", name);
        if (i > 0) rows *= t.ne[i];
    }
    const size_t row = ac_row_size(type, t.ne[0]);
    if (row == 0)
        return ac_errf(err, "tensor '%s': row length %lld is not a multiple of the %s block size %d", name,
                       (long long)t.ne[0], tr->name, tr->blck_size);
    if ((uint64_t)rows > SIZE_MAX / row || row * (size_t)rows != size)
        return ac_errf(err, "tensor '%s': %zu bytes given, its shape and type need %llu", name, size,
                       (unsigned long long)row * (unsigned long long)rows);
    if (size > 0 && !data) return ac_errf(err, "tensor '%s': NULL data", name);
    if (w->n_tensors == w->cap_tensors) {
        const size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        struct tensor_entry *te = realloc(w->tensors, cap * sizeof *te);
        if (!te) return ac_errf(err, "out of memory");
        w->tensors = te;
        w->cap_tensors = cap;
    }
    if (!(t.name = strdup(name))) return ac_errf(err, "out of memory");
    w->tensors[w->n_tensors++] = t;
    return 0;
}

/* ================================================================ writing */

static size_t pad_to(size_t n, size_t align) {
    return (n + align - 1) / align * align;
}

static bool put(FILE *f, const void *p, size_t n) {
    return fwrite(p, 1, n, f) == n;
}

static bool put_zeros(FILE *f, size_t n) {
    static const uint8_t zeros[256];
    while (n > 0) {
        const size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (!put(f, zeros, k)) return false;
        n -= k;
    }
    return true;
}

static bool put_u32(FILE *f, uint32_t v) { return put(f, &v, 4); }
static bool put_u64(FILE *f, uint64_t v) { return put(f, &v, 8); }

/* Header, metadata, tensor directory, padding, data. False on an I/O error. */
static bool write_all(const struct gguf_writer *w, FILE *f) {
    size_t pos = 4 + 4 + 8 + 8;
    if (!put_u32(f, GGUF_MAGIC) || !put_u32(f, GGUF_VERSION) || !put_u64(f, w->n_tensors) || !put_u64(f, w->n_kv))
        return false;
    for (size_t i = 0; i < w->n_kv; i++) {
        const size_t kl = strlen(w->kv[i].key);
        if (!put_u64(f, kl) || !put(f, w->kv[i].key, kl) || !put(f, w->kv[i].value, w->kv[i].len)) return false;
        pos += 8 + kl + w->kv[i].len;
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct tensor_entry *t = &w->tensors[i];
        const size_t nl = strlen(t->name);
        if (!put_u64(f, nl) || !put(f, t->name, nl) || !put_u32(f, (uint32_t)t->n_dims)) return false;
        for (int d = 0; d < t->n_dims; d++)
            if (!put_u64(f, (uint64_t)t->ne[d])) return false;
        if (!put_u32(f, t->type) || !put_u64(f, offset)) return false;
        pos += 8 + nl + 4 + 8 * (size_t)t->n_dims + 4 + 8;
        offset = pad_to((size_t)offset + t->size, w->alignment);
    }
    if (!put_zeros(f, pad_to(pos, w->alignment) - pos)) return false;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct tensor_entry *t = &w->tensors[i];
        if (!put(f, t->data, t->size) || !put_zeros(f, pad_to(t->size, w->alignment) - t->size)) return false;
    }
    return true;
}

/* fsyncs the directory holding path, so the rename itself is durable. */
static void sync_parent_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    const int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

int gguf_writer_write(struct gguf_writer *w, const char *path, char *err) {
    const size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return ac_errf(err, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = -1;
    const int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ac_errf(err, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        ac_errf(err, "%s: %s", tmp, strerror(errno));
        close(fd);
        goto out;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    const bool ok = write_all(w, f) && fflush(f) == 0;
    const int werr = errno;
    if (!ok) {
        ac_errf(err, "%s: write failed: %s", tmp, strerror(werr));
        fclose(f);
        goto out;
    }
    if (fsync(fileno(f)) != 0) {
        ac_errf(err, "%s: fsync: %s", tmp, strerror(errno));
        fclose(f);
        goto out;
    }
    if (fclose(f) != 0) {
        ac_errf(err, "%s: close: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        ac_errf(err, "%s: rename: %s", path, strerror(errno));
        goto out;
    }
    sync_parent_dir(path);
    rc = 0;
out:
    if (rc != 0) unlink(tmp);
    free(tmp);
    return rc;
}
