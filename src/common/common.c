/* common.c - error formatting, clock, CPU count, aligned memory. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int ac_errf(char *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, AC_ERR_LEN, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): false positive
        va_end(ap);
    }
    return -1;
}

int ac_err_prefix(char *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[AC_ERR_LEN], old[AC_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): false positive
    va_end(ap);
    memcpy(old, err, AC_ERR_LEN);
    old[AC_ERR_LEN - 1] = '\0';
    /* truncation is acceptable: the message is for people */
    size_t np = strlen(prefix), no = strlen(old);
    if (np > AC_ERR_LEN - 3) np = AC_ERR_LEN - 3;
    if (no > AC_ERR_LEN - 3 - np) no = AC_ERR_LEN - 3 - np;
    memcpy(err, prefix, np);
    memcpy(err + np, ": ", 2);
    memcpy(err + np + 2, old, no);
    err[np + 2 + no] = '\0';
    return -1;
}

double ac_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int ac_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void *ac_alloc_aligned(size_t size) {
    void *p = NULL;
    if (size == 0) size = 64;
    size = (size + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, size) != 0) return NULL;
    return p;
}

void ac_free_aligned(void *p) { free(p); }
