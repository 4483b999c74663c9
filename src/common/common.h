/* common.h - error reporting and small helpers shared by every module.
 *
 * Library convention (Redis/SQLite style): a function that can fail returns
 * 0 on success and -1 on failure, and writes one human-readable line (no
 * trailing newline) into a caller-provided buffer of AC_ERR_LEN bytes.
 * Only the CLI prints errors and exits. */
#ifndef AC_COMMON_H
#define AC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define AC_ERR_LEN 256

#if defined(__GNUC__)
#define AC_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define AC_PRINTF(fmt_idx, arg_idx)
#endif

/* Formats an error message into err (AC_ERR_LEN bytes, may be NULL) and
 * returns -1, so callers can write `return ac_errf(err, "...", ...);`. */
int ac_errf(char *err, const char *fmt, ...) AC_PRINTF(2, 3);

/* Prefixes an existing message in err with "prefix: ". Returns -1. */
int ac_err_prefix(char *err, const char *fmt, ...) AC_PRINTF(2, 3);

/* Monotonic wall clock in seconds. */
double ac_time_s(void);

/* Number of online CPUs (at least 1). */
int ac_cpu_count(void);

/* Aligned allocation (64 bytes) that fails cleanly; free with ac_free_aligned. */
void *ac_alloc_aligned(size_t size);
void ac_free_aligned(void *p);

#endif
