/* bench_sparse.c - where the time of a sparse matmul goes: the fastest
 * sparse kernel (model/sparse.h) of each type on the sites of a
 * SmolLM2-135M-shaped model (30 layers of q|k|v 576 -> 960, attention
 * output 576 -> 576, gate|up 576 -> 3072, down 1536 -> 576), half of each
 * site's input rows kept at random, one core.
 *
 * Two cases per type:
 *   L2    one attention-output site (at most 664 KB, so resident in L2) called
 *         over and over: the kernel's compute cost alone;
 *   DRAM  every site of all layers in turn, as decode reads them (about 50-270
 *         MB in 2 MB pages, far above L3): compute plus memory.
 * Reports GB/s of weight bytes read and ns per kept row, best of 5 repetitions, timed in thread
 * CPU time so that other processes on the machine do not count. When DRAM runs at
 * about the L2 speed, the kernel is compute-bound; when well below, memory-
 * bound (compare with bench/membw.c -R).
 *
 * Not part of the Makefile. Build and run from the repository root:
 *   make -j2 && cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -o build/bench_sparse bench/bench_sparse.c \
 *      build/libagentcompress.a -lm -pthread
 *   build/bench_sparse [seconds-per-case [type]]     (SPARSE_L2_ONLY=1: skip DRAM)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "model/sparse.h"
#include "quant/quant.h"

enum { LAYERS = 30, SITES = 4 };
static const int site_in[SITES] = {576, 576, 576, 1536};
static const int site_out[SITES] = {960, 576, 3072, 576};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* A random half of n inputs, increasing (as thresholding lists them). */
static int draw_half(int32_t *idx, int n) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (next_u32() & 1) idx[k++] = i;
    return k;
}

struct site {
    const uint8_t *rows;
    size_t row_bytes;
    int n_in, n_out;
};

/* Runs the kernel over sites[0..n) in turn, 5 times for seconds / 5;
 * returns the best repetition's bytes read per second and fills
 * *ns_per_row. */
static double run(ac_sparse_gemv_fn gemv, uint32_t type, const struct site *sites, int n, double seconds,
                  double *ns_per_row) {
    enum { DRAWS = 64, REPS = 5 };
    static int32_t idx[DRAWS][1536];
    static int count[DRAWS];
    static float x[1536], acc[3072], scratch[8192];
    for (int i = 0; i < 1536; i++) x[i] = (float)(next_u32() % 2001) / 1000.0f - 1.0f;
    for (int d = 0; d < DRAWS; d++) count[d] = draw_half(idx[d], 1536);
    double best = 0;
    long calls = 0;
    for (int rep = 0; rep < REPS; rep++) {
        double bytes = 0, rows = 0, t0 = now(), t = t0;
        while (t - t0 < seconds / REPS) {
            for (int s = 0; s < n; s++) {
                const struct site *st = &sites[s];
                const int d = (int)(calls++ % DRAWS);
                /* the draw's indices below n_in: about half of them */
                int k = 0;
                while (k < count[d] && idx[d][k] < st->n_in) k++;
                memset(acc, 0, sizeof(float) * (size_t)st->n_out);
                gemv(type, st->rows, st->row_bytes, idx[d], k, x, acc, st->n_out, scratch);
                bytes += (double)k * (double)st->row_bytes, rows += k;
            }
            t = now();
        }
        if (bytes / (t - t0) > best) best = bytes / (t - t0), *ns_per_row = (t - t0) * 1e9 / rows;
    }
    return best / 1e9;
}

int main(int argc, char **argv) {
    const double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    ac_quant_init();
    static const uint32_t types[] = {AC_TYPE_F16, AC_TYPE_Q8_0, AC_TYPE_Q4_0, AC_TYPE_Q2_0};
    const char *only = argc > 2 ? argv[2] : NULL;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t type = types[ti];
        if (only && strcmp(only, ac_type_traits(type)->name) != 0) continue;
        const struct ac_type_traits *tr = ac_type_traits(type);
        size_t total = 0;
        for (int s = 0; s < SITES; s++) total += ac_row_size(type, site_out[s]) * (size_t)site_in[s];
        total *= LAYERS;
        uint8_t *buf = NULL;
        if (posix_memalign((void **)&buf, 1 << 21, total) != 0) return 1;
        (void)madvise(buf, total, MADV_HUGEPAGE);
        struct site sites[LAYERS * SITES];
        float row[3072];
        static uint8_t tmp[3072 * 4];
        size_t off = 0;
        for (int l = 0; l < LAYERS; l++)
            for (int s = 0; s < SITES; s++) {
                struct site *st = &sites[l * SITES + s];
                *st = (struct site){buf + off, ac_row_size(type, site_out[s]), site_in[s], site_out[s]};
                for (int r = 0; r < site_in[s]; r++) {
                    for (int i = 0; i < site_out[s]; i++) row[i] = (float)(next_u32() % 2001) / 10000.0f - 0.1f;
                    ac_sparse_pack_row(type, row, buf + off + (size_t)r * st->row_bytes, site_out[s], tmp);
                }
                off += st->row_bytes * (size_t)site_in[s];
            }
        const ac_sparse_gemv_fn gemv = ac_sparse_gemv(type);
        double ns_l2 = 0, ns_dram = 0;
        const double gb_l2 = run(gemv, type, &sites[1], 1, seconds, &ns_l2);
        const double gb_dram = getenv("SPARSE_L2_ONLY") ? 0.0 : run(gemv, type, sites, LAYERS * SITES, seconds, &ns_dram);
        printf("%-5s L2 %6.1f GB/s %6.1f ns/row   DRAM %6.1f GB/s %6.1f ns/row   (%.0f MB)\n", tr->name, gb_l2,
               ns_l2, gb_dram, ns_dram, (double)total / 1e6);
        free(buf);
    }
    return 0;
}
