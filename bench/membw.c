/* bench/membw.c — memory read bandwidth probe (streaming read of a buffer much larger than L3).
 *
 *   cc -O2 -march=native -pthread -o membw bench/membw.c
 *   membw [-m MIB] [-r REPS] [-H] [-t THREADS ...]     e.g. membw -m 1024 -r 10 -t 1 -t 2
 *
 * -H asks for transparent huge pages (madvise MADV_HUGEPAGE): fewer TLB misses and hardware
 * prefetch that is not cut at every 4 KiB page, i.e. the best case for weights an engine loads
 * into anonymous memory; without it the buffer is in 4 KiB pages like an mmap'd GGUF file.
 *
 * Each thread reads its own contiguous slice of one shared buffer (pages touched first by the
 * thread that will read them); each repetition is timed from a barrier to the last thread's end,
 * and the best repetition is reported. Output: one line per thread count,
 *   membw threads=T bytes=B best_gbps=X median_gbps=Y
 * where GB/s = 1e9 bytes per second. Loads are 64-byte vector loads (AVX-512 or AVX2 when
 * compiled with -march=native on such a CPU) folded into four accumulators, so the loop is bound
 * by memory, not by the adds.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

typedef struct {
    const uint8_t *base;
    size_t bytes;
    int reps;
    pthread_barrier_t *bar;
    double *t_end;     /* per rep, end time of this thread */
    double *t_start;   /* per rep, written by thread 0 */
    uint64_t sink;
    int id;
} job_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t read_slice(const uint8_t *p, size_t n) {
#if defined(__AVX512F__)
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        a0 = _mm512_xor_si512(a0, _mm512_load_si512((const void *)(p + i)));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512((const void *)(p + i + 64)));
        a2 = _mm512_xor_si512(a2, _mm512_load_si512((const void *)(p + i + 128)));
        a3 = _mm512_xor_si512(a3, _mm512_load_si512((const void *)(p + i + 192)));
    }
    a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    return (uint64_t)_mm512_reduce_add_epi64(a0);
#elif defined(__AVX2__)
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, a0);
    return out[0] ^ out[1] ^ out[2] ^ out[3];
#else
    const uint64_t *q = (const uint64_t *)p;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) {
        s0 ^= q[i]; s1 ^= q[i + 1]; s2 ^= q[i + 2]; s3 ^= q[i + 3];
    }
    return s0 ^ s1 ^ s2 ^ s3;
#endif
}

static void *worker(void *arg) {
    job_t *j = arg;
    /* first touch: this thread's pages */
    memset((void *)j->base, j->id + 1, j->bytes);
    uint64_t sink = 0;
    for (int r = -1; r < j->reps; r++) {          /* r = -1: warm-up */
        pthread_barrier_wait(j->bar);
        if (j->id == 0 && r >= 0) j->t_start[r] = now();
        pthread_barrier_wait(j->bar);
        sink += read_slice(j->base, j->bytes);
        if (r >= 0) j->t_end[r] = now();
    }
    j->sink = sink;
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    size_t mib = 1024;
    int reps = 10, nthr_list[16], n_list = 0, huge = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) mib = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-H")) huge = 1;
        else if (!strcmp(argv[i], "-t") && i + 1 < argc && n_list < 16) nthr_list[n_list++] = atoi(argv[++i]);
        else { fprintf(stderr, "usage: membw [-m MIB] [-r REPS] [-H] [-t THREADS]...\n"); return 2; }
    }
    if (n_list == 0) { nthr_list[0] = 1; nthr_list[1] = 2; n_list = 2; }
    if (mib < 64 || reps < 1) { fprintf(stderr, "membw: need -m >= 64 and -r >= 1\n"); return 2; }
    size_t total = mib << 20;
    uint8_t *buf = aligned_alloc(2u << 20, total);
    if (!buf) { fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib); return 1; }
#ifdef MADV_HUGEPAGE
    (void)madvise(buf, total, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#endif

    for (int li = 0; li < n_list; li++) {
        int nt = nthr_list[li];
        if (nt < 1 || nt > 256) { fprintf(stderr, "membw: bad thread count %d\n", nt); return 2; }
        pthread_t th[256];
        job_t jobs[256];
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)nt);
        double *t_start = calloc((size_t)reps, sizeof(double));
        double *t_end = calloc((size_t)reps * (size_t)nt, sizeof(double));
        size_t slice = (total / (size_t)nt) & ~(size_t)4095;
        for (int i = 0; i < nt; i++) {
            jobs[i] = (job_t){ buf + (size_t)i * slice, slice, reps, &bar, t_end + (size_t)i * reps,
                               t_start, 0, i };
            pthread_create(&th[i], NULL, worker, &jobs[i]);
        }
        uint64_t sink = 0;
        for (int i = 0; i < nt; i++) { pthread_join(th[i], NULL); sink ^= jobs[i].sink; }
        double *gbps = calloc((size_t)reps, sizeof(double));
        for (int r = 0; r < reps; r++) {
            double end = 0;
            for (int i = 0; i < nt; i++) if (t_end[(size_t)i * reps + r] > end) end = t_end[(size_t)i * reps + r];
            gbps[r] = (double)slice * nt / (end - t_start[r]) / 1e9;
        }
        qsort(gbps, (size_t)reps, sizeof(double), cmp_d);
        printf("membw threads=%d bytes=%zu hugepages=%d best_gbps=%.2f median_gbps=%.2f sink=%llu\n", nt,
               slice * (size_t)nt, huge, gbps[reps - 1], gbps[reps / 2], (unsigned long long)(sink & 1));
        fflush(stdout);
        free(gbps); free(t_start); free(t_end);
        pthread_barrier_destroy(&bar);
    }
    free(buf);
    return 0;
}
