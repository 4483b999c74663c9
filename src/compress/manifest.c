/* manifest.c - the variants directory's manifest.json: load and validate
 * (the file is input: every field is type-checked and file names must stay
 * inside the directory), and atomic writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/common.h"
#include "compress/compress.h"

#define MANIFEST_NAME "manifest.json"
#define MANIFEST_MAX_BYTES (64u << 20)

static char *join(const char *dir, const char *name) {
    const size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Reads a whole (small) file; NULL with errno set on failure. */
static char *slurp(const char *path, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        ac_errf(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MANIFEST_MAX_BYTES) {
        ac_errf(err, "%s: not a regular file of at most %u bytes", path, MANIFEST_MAX_BYTES);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        ac_errf(err, "out of memory");
        goto out;
    }
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        ac_errf(err, "%s: read error", path);
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[st.st_size] = '\0';
out:
    fclose(f);
    return buf;
}

static const char *get_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool get_num(const cJSON *o, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0)) return false;
    *out = v->valuedouble;
    return true;
}

/* A file name that stays inside the directory: no '/', not "." or "..". */
static bool plain_file_name(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int ac_manifest_load(struct ac_manifest **out, const char *dir, char *err) {
    char *path = join(dir, MANIFEST_NAME);
    if (!path) return ac_errf(err, "out of memory");
    char *text = slurp(path, err);
    if (!text) {
        free(path);
        return -1;
    }
    struct ac_manifest *m = calloc(1, sizeof *m);
    if (!m) {
        ac_errf(err, "out of memory");
        goto fail;
    }
    m->json = cJSON_Parse(text);
    if (!cJSON_IsObject(m->json)) {
        ac_errf(err, "%s: not a JSON object", path);
        goto fail;
    }
    m->base = get_str(m->json, "base");
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(m->json, "variants");
    if (!m->base || !cJSON_IsArray(vs) || cJSON_GetArraySize(vs) == 0) {
        ac_errf(err, "%s: needs \"base\" (a string) and \"variants\" (a non-empty array)", path);
        goto fail;
    }
    m->n_variants = cJSON_GetArraySize(vs);
    m->variants = calloc((size_t)m->n_variants, sizeof *m->variants);
    if (!m->variants) {
        ac_errf(err, "out of memory");
        goto fail;
    }
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, vs) {
        struct ac_manifest_variant *mv = &m->variants[i];
        double bytes = 0, bpt = 0;
        mv->name = get_str(v, "name");
        mv->file = get_str(v, "file");
        mv->level = get_str(v, "level");
        const cJSON *compat = cJSON_GetObjectItemCaseSensitive(v, "llama_cpp_compatible");
        const cJSON *remote = cJSON_GetObjectItemCaseSensitive(v, "remote");
        if (remote) {
            /* a variant served elsewhere: {"remote": {"url": ".../v1", "model": NAME}} */
            mv->remote_url = get_str(remote, "url");
            mv->remote_model = get_str(remote, "model");
            if (!mv->name || !*mv->name || mv->file || !mv->remote_url || !mv->remote_model ||
                (strncmp(mv->remote_url, "http://", 7) != 0 && strncmp(mv->remote_url, "https://", 8) != 0) ||
                !get_num(v, "relative_cost", &mv->relative_cost)) {
                ac_errf(err, "%s: remote variant %d needs \"name\", \"remote\": {\"url\": \"http(s)://...\", "
                             "\"model\": ...}, \"relative_cost\" and no \"file\"", path, i);
                goto fail;
            }
        } else if (!mv->name || !*mv->name || !mv->file || !plain_file_name(mv->file) ||
            !get_num(v, "bits_per_weight", &mv->bits_per_weight) || !get_num(v, "bytes", &bytes) ||
            !get_num(v, "relative_cost", &mv->relative_cost)) {
            ac_errf(err, "%s: variant %d needs \"name\", \"file\" (a file name in the directory), "
                         "\"bits_per_weight\", \"bytes\" and \"relative_cost\"", path, i);
            goto fail;
        }
        if (get_num(v, "bytes_per_token", &bpt)) mv->bytes_per_token = (uint64_t)bpt;
        mv->bytes = (uint64_t)bytes;
        mv->llama_cpp_compatible = cJSON_IsTrue(compat);
        for (int j = 0; j < i; j++)
            if (strcmp(m->variants[j].name, mv->name) == 0) {
                ac_errf(err, "%s: duplicate variant name '%s'", path, mv->name);
                goto fail;
            }
        i++;
    }
    free(text);
    free(path);
    *out = m;
    return 0;
fail:
    ac_manifest_free(m);
    free(text);
    free(path);
    return -1;
}

void ac_manifest_free(struct ac_manifest *m) {
    if (!m) return;
    cJSON_Delete(m->json);
    free(m->variants);
    free(m);
}

const struct ac_manifest_variant *ac_manifest_find(const struct ac_manifest *m, const char *name) {
    for (int i = 0; i < m->n_variants; i++)
        if (strcmp(m->variants[i].name, name) == 0) return &m->variants[i];
    return NULL;
}

int ac_manifest_write_json(const cJSON *json, const char *dir, char *err) {
    char *text = cJSON_Print(json);
    char *path = join(dir, MANIFEST_NAME), *tmp = join(dir, MANIFEST_NAME ".tmp");
    int rc = -1, fd = -1;
    if (!text || !path || !tmp) {
        ac_errf(err, "out of memory");
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ac_errf(err, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    const size_t len = strlen(text);
    size_t done = 0;
    while (done < len) {
        const ssize_t k = write(fd, text + done, len - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            ac_errf(err, "%s: write failed: %s", tmp, strerror(errno));
            goto out;
        }
        done += (size_t)k;
    }
    if (write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        ac_errf(err, "%s: write failed: %s", tmp, strerror(errno));
        goto out;
    }
    const int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        ac_errf(err, "%s: close: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        ac_errf(err, "%s: rename: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (rc != 0 && tmp) unlink(tmp);
    cJSON_free(text);
    free(path);
    free(tmp);
    return rc;
}
