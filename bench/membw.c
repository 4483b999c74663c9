/* bench/membw.c — memory read bandwidth probe (streaming read of a buffer much larger than L3).
 *
 *   cc -O2 -march=native -pthread -o membw bench/membw.c
 *   membw [-m MIB] [-r REPS] [-H] [-R CHUNK] [-t THREADS ...]     e.g. membw -m 1024 -r 10 -t 1 -t 2
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
 *
 * -R CHUNK reads, instead, a random half of the CHUNK-byte chunks of each slice (a new draw per
 * repetition, in increasing address order), as sparse decode reads the weight rows of the inputs
 * it keeps; GB/s counts the bytes read, and pct_of_stream compares the time with streaming the
 * whole slice (100% = reading half the bytes takes half the time). On the 2-core EPYC this
 * project runs on, one thread with -H: 1152-byte chunks 35%, 6144 54%, 12288 74%, 49152 92%.
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
    size_t chunk;      /* -R: chunk bytes, else 0 */
    uint32_t *keep;    /* -R: indices of the chunks read, per repetition */
    size_t n_keep;
    int reps;
    pthread_barrier_t *bar;
    double *t_end;     /* per rep, end time of this thread */
    double *t_start;   /* per rep, written by thread 0 */
    size_t *read;      /* -R: per rep, bytes read by all threads */
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
    size_t i = 0;
    for (; i + 256 <= n; i += 256) {
        a0 = _mm512_xor_si512(a0, _mm512_load_si512((const void *)(p + i)));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512((const void *)(p + i + 64)));
        a2 = _mm512_xor_si512(a2, _mm512_load_si512((const void *)(p + i + 128)));
        a3 = _mm512_xor_si512(a3, _mm512_load_si512((const void *)(p + i + 192)));
    }
    for (; i + 64 <= n; i += 64) a1 = _mm512_xor_si512(a1, _mm512_load_si512((const void *)(p + i)));
    a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    return (uint64_t)_mm512_reduce_add_epi64(a0);
#elif defined(__AVX2__)
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    for (; i + 32 <= n; i += 32) a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i)));
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

/* a random half of the chunks, in increasing order */
static void draw_chunks(job_t *j, uint64_t *rng) {
    j->n_keep = 0;
    for (size_t i = 0; i < j->bytes / j->chunk; i++) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        if (*rng >> 63) j->keep[j->n_keep++] = (uint32_t)i;
    }
}

static uint64_t read_chunks(const job_t *j) {
    uint64_t sink = 0;
    for (size_t k = 0; k < j->n_keep; k++) sink += read_slice(j->base + (size_t)j->keep[k] * j->chunk, j->chunk);
    return sink;
}

static void *worker(void *arg) {
    job_t *j = arg;
    /* first touch: this thread's pages */
    memset((void *)j->base, j->id + 1, j->bytes);
    uint64_t sink = 0, rng = 0x9e3779b97f4a7c15ull * (uint64_t)(j->id + 1);
    for (int r = -1; r < j->reps; r++) {          /* r = -1: warm-up */
        if (j->chunk) draw_chunks(j, &rng);
        pthread_barrier_wait(j->bar);
        if (j->id == 0 && r >= 0) j->t_start[r] = now();
        pthread_barrier_wait(j->bar);
        sink += j->chunk ? read_chunks(j) : read_slice(j->base, j->bytes);
        if (r >= 0) j->t_end[r] = now();
        if (r >= 0 && j->chunk) __atomic_add_fetch(&j->read[r], j->n_keep * j->chunk, __ATOMIC_RELAXED);
    }
    j->sink = sink;
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One measurement: nt threads, each streaming its slice (chunk == 0) or
 * reading a random half of its chunks; GB/s of the bytes read. */
static int measure(uint8_t *buf, size_t total, int nt, int reps, size_t chunk, double *best, double *median,
                   size_t *bytes_read, uint64_t *sink) {
    pthread_t th[256];
    job_t jobs[256];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)nt);
    double *t_start = calloc((size_t)reps, sizeof(double));
    double *t_end = calloc((size_t)reps * (size_t)nt, sizeof(double));
    double *gbps = calloc((size_t)reps, sizeof(double));
    size_t *read = calloc((size_t)reps, sizeof(size_t));
    size_t slice = (total / (size_t)nt) & ~(size_t)4095;
    if (chunk) slice -= slice % chunk;
    int rc = 0;
    for (int i = 0; i < nt; i++) {
        jobs[i] = (job_t){ buf + (size_t)i * slice, slice, chunk, NULL, 0, reps, &bar, t_end + (size_t)i * reps,
                           t_start, read, 0, i };
        if (chunk && !(jobs[i].keep = malloc(sizeof(uint32_t) * (slice / chunk)))) rc = -1;
    }
    if (!t_start || !t_end || !gbps || !read || rc) {
        fprintf(stderr, "membw: out of memory\n");
        rc = -1;
        goto done;
    }
    for (int i = 0; i < nt; i++) pthread_create(&th[i], NULL, worker, &jobs[i]);
    for (int i = 0; i < nt; i++) { pthread_join(th[i], NULL); *sink ^= jobs[i].sink; }
    for (int r = 0; r < reps; r++) {
        double end = 0;
        for (int i = 0; i < nt; i++) if (t_end[(size_t)i * reps + r] > end) end = t_end[(size_t)i * reps + r];
        gbps[r] = (double)(chunk ? read[r] : slice * (size_t)nt) / (end - t_start[r]) / 1e9;
    }
    qsort(gbps, (size_t)reps, sizeof(double), cmp_d);
    *best = gbps[reps - 1];
    *median = gbps[reps / 2];
    *bytes_read = chunk ? read[reps / 2] : slice * (size_t)nt;
done:
    for (int i = 0; i < nt; i++) free(jobs[i].keep);
    free(gbps); free(t_start); free(t_end); free(read);
    pthread_barrier_destroy(&bar);
    return rc;
}

int main(int argc, char **argv) {
    size_t mib = 1024, chunk = 0;
    int reps = 10, nthr_list[16], n_list = 0, huge = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) mib = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-H")) huge = 1;
        else if (!strcmp(argv[i], "-R") && i + 1 < argc) chunk = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc && n_list < 16) nthr_list[n_list++] = atoi(argv[++i]);
        else { fprintf(stderr, "usage: membw [-m MIB] [-r REPS] [-H] [-R CHUNK] [-t THREADS]...\n"); return 2; }
    }
    if (n_list == 0) { nthr_list[0] = 1; nthr_list[1] = 2; n_list = 2; }
    if (mib < 64 || reps < 1) { fprintf(stderr, "membw: need -m >= 64 and -r >= 1\n"); return 2; }
    if (chunk % 64 || chunk > (1u << 20)) { fprintf(stderr, "membw: -R needs a multiple of 64 up to 1 MiB\n"); return 2; }
    size_t total = mib << 20;
    uint8_t *buf = aligned_alloc(2u << 20, total);
    if (!buf) { fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib); return 1; }
#ifdef MADV_HUGEPAGE
    (void)madvise(buf, total, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#endif

    uint64_t sink = 0;
    for (int li = 0; li < n_list; li++) {
        int nt = nthr_list[li];
        if (nt < 1 || nt > 256) { fprintf(stderr, "membw: bad thread count %d\n", nt); return 2; }
        double best, median, rbest, rmedian;
        size_t bytes, rbytes;
        if (measure(buf, total, nt, reps, 0, &best, &median, &bytes, &sink) != 0) return 1;
        printf("membw threads=%d bytes=%zu hugepages=%d best_gbps=%.2f median_gbps=%.2f sink=%llu\n", nt, bytes,
               huge, best, median, (unsigned long long)(sink & 1));
        if (chunk) {
            if (measure(buf, total, nt, reps, chunk, &rbest, &rmedian, &rbytes, &sink) != 0) return 1;
            /* time of the random half over time of the whole slice at the medians */
            printf("membw threads=%d random_half chunk=%zu bytes=%zu best_gbps=%.2f median_gbps=%.2f "
                   "pct_of_stream=%.0f\n", nt, chunk, rbytes, rbest, rmedian,
                   100.0 * ((double)bytes / median) / 2.0 / ((double)rbytes / rmedian));
        }
        fflush(stdout);
    }
    free(buf);
    return 0;
}
