/* bench_quant.c - vec_dot throughput of the quant module, one core, per
 * SIMD level, side by side with ggml's own kernels when libggml-cpu.so is
 * found (llama-cpp-python's copy, or the path in $GGML_CPU_LIB).
 *
 * Reports GB/s of weight bytes read: a matrix of rows x n weights is dotted
 * row by row against one activation row, as a decode matmul does. Two sizes:
 * "L2" (about 384 KB of weights, compute-bound) and "DRAM" (about 96 MB,
 * memory-bound).
 *
 * Not part of the Makefile. Build and run from the repository root:
 *   make build/src/quant/quant.o build/src/quant/quant_avx2.o build/src/quant/quant_avx512.o
 *   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -o build/bench_quant bench/bench_quant.c \
 *      build/src/quant/quant.o build/src/quant/quant_avx2.o build/src/quant/quant_avx512.o -ldl -lm -pthread
 *   build/bench_quant [seconds-per-case]
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant/quant.h"
#include "quant/quant_internal.h"

#define DEFAULT_GGML_CPU_LIB \
    "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/llama_cpp/lib/libggml-cpu.so"

typedef void (*ggml_vec_dot_fn)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y, size_t by,
                                int nrc);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float frand(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

struct matrix {
    uint32_t type;
    int n, rows;
    size_t row_bytes;
    uint8_t *w;  /* rows x row_bytes */
    uint8_t *act; /* one row in the vec_dot type */
    float *out;
};

static int matrix_init(struct matrix *m, uint32_t type, int n, size_t target_bytes) {
    const struct ac_type_traits *t = ac_type_traits(type);
    const struct ac_type_traits *ta = ac_type_traits(t->vec_dot_type);
    m->type = type;
    m->n = n;
    m->row_bytes = ac_row_size(type, n);
    m->rows = (int)(target_bytes / m->row_bytes);
    if (m->rows < 1) m->rows = 1;
    m->w = malloc(m->row_bytes * (size_t)m->rows);
    m->act = malloc(ac_row_size(t->vec_dot_type, n));
    m->out = malloc(sizeof(float) * (size_t)m->rows);
    float *row = malloc(sizeof(float) * (size_t)n);
    if (!m->w || !m->act || !m->out || !row) return -1;
    unsigned st = 12345;
    /* quantize a handful of distinct rows, then copy them around: the
     * reference K-quantizers are slow and the bytes' values do not matter */
    for (int r = 0; r < m->rows; r++) {
        if (r < 16) {
            for (int i = 0; i < n; i++) row[i] = frand(&st);
            t->from_float_ref(row, m->w + (size_t)r * m->row_bytes, n);
        } else {
            memcpy(m->w + (size_t)r * m->row_bytes, m->w + (size_t)(r % 16) * m->row_bytes, m->row_bytes);
        }
    }
    for (int i = 0; i < n; i++) row[i] = frand(&st);
    ta->from_float_ref(row, m->act, n);
    free(row);
    return 0;
}

static void matrix_free(struct matrix *m) {
    free(m->w);
    free(m->act);
    free(m->out);
}

/* GB/s of weight bytes: the best single matvec pass seen in `seconds`
 * (the machine is shared; the best pass is the least disturbed one). */
static double run_ours(const struct matrix *m, ac_vec_dot_fn dot, double seconds) {
    const double t_end = now_s() + seconds;
    double best = 1e30, t;
    do {
        const double t0 = now_s();
        for (int r = 0; r < m->rows; r++) dot(m->n, &m->out[r], m->w + (size_t)r * m->row_bytes, m->act);
        t = now_s();
        if (t - t0 < best) best = t - t0;
    } while (t < t_end);
    return (double)m->rows * (double)m->row_bytes / best / 1e9;
}

static double run_ggml(const struct matrix *m, ggml_vec_dot_fn dot, double seconds) {
    const double t_end = now_s() + seconds;
    double best = 1e30, t;
    do {
        const double t0 = now_s();
        for (int r = 0; r < m->rows; r++) dot(m->n, &m->out[r], 0, m->w + (size_t)r * m->row_bytes, 0, m->act, 0, 1);
        t = now_s();
        if (t - t0 < best) best = t - t0;
    } while (t < t_end);
    return (double)m->rows * (double)m->row_bytes / best / 1e9;
}

int main(int argc, char **argv) {
    const double seconds = argc > 1 ? atof(argv[1]) : 0.3;
    ac_quant_init();

    void *ggml = NULL;
    const char *lib = getenv("GGML_CPU_LIB") ? getenv("GGML_CPU_LIB") : DEFAULT_GGML_CPU_LIB;
    ggml = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (ggml) {
        void (*cpu_init)(void) = (void (*)(void))dlsym(ggml, "ggml_cpu_init");
        if (cpu_init) cpu_init();
    } else {
        fprintf(stderr, "bench_quant: no ggml comparison (%s)\n", dlerror());
    }

    static const struct {
        uint32_t type;
        const char *ggml_sym;
    } cases[] = {
        {AC_TYPE_Q4_1, "ggml_vec_dot_q4_1_q8_1"}, {AC_TYPE_Q8_0, "ggml_vec_dot_q8_0_q8_0"},
        {AC_TYPE_Q4_K, "ggml_vec_dot_q4_K_q8_K"}, {AC_TYPE_Q4_0, "ggml_vec_dot_q4_0_q8_0"},
        {AC_TYPE_Q6_K, "ggml_vec_dot_q6_K_q8_K"}, {AC_TYPE_Q2_K, "ggml_vec_dot_q2_K_q8_K"},
        {AC_TYPE_F16, "ggml_vec_dot_f16"},
    };
    static const struct {
        const char *name;
        size_t bytes;
    } sizes[] = {{"L2", 384u << 10}, {"DRAM", 96u << 20}};
    static const int row_lens[] = {576, 768, 1536}; /* 576: SmolLM2-135M width (not a K-quant multiple) */
    static const enum ac_simd_level levels[] = {AC_SIMD_SCALAR, AC_SIMD_AVX2, AC_SIMD_AVX512VNNI};
    static const char *const level_names[] = {"scalar", "avx2", "avx512vnni"};

    printf("vec_dot throughput, GB/s of weight bytes, 1 thread (ours | ggml %s)\n", ggml ? "linked" : "absent");
    printf("%-6s %-5s %5s %9s %9s %11s %9s %10s\n", "type", "set", "n", "scalar", "avx2", "avx512vnni", "ggml",
           "best/ggml");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            for (size_t rl = 0; rl < sizeof row_lens / sizeof row_lens[0]; rl++) {
                if (ac_row_size(cases[c].type, row_lens[rl]) == 0) continue;
                struct matrix m;
                if (matrix_init(&m, cases[c].type, row_lens[rl], sizes[s].bytes)) {
                    fprintf(stderr, "bench_quant: out of memory\n");
                    return 1;
                }
                double gbs[3] = {NAN, NAN, NAN}, best = 0;
                for (size_t l = 0; l < 3; l++) {
                    if (!ac_quant_use_level(levels[l])) continue;
                    /* scalar K-quants are slow: a shorter run is plenty */
                    gbs[l] = run_ours(&m, ac_type_traits(cases[c].type)->vec_dot, l == 0 ? seconds / 3 : seconds);
                    if (gbs[l] > best) best = gbs[l];
                }
                double g = NAN;
                ggml_vec_dot_fn gf = ggml ? (ggml_vec_dot_fn)dlsym(ggml, cases[c].ggml_sym) : NULL;
                if (gf) g = run_ggml(&m, gf, seconds);
                printf("%-6s %-5s %5d %9.2f %9.2f %11.2f %9.2f %10.2f\n", ac_type_traits(cases[c].type)->name,
                       sizes[s].name, row_lens[rl], gbs[0], gbs[1], gbs[2], g, best / g);
                fflush(stdout);
                matrix_free(&m);
            }
        }
    }
    (void)level_names;
    ac_quant_force_scalar(false);
    return 0;
}
