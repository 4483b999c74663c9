/* vec.c - reference kernels and run-time dispatch (see vec.h). */
#include "model/vec.h"

#include <pthread.h>

typedef void (*mad_fn)(int, float *restrict, const float *restrict, float);

static mad_fn mad_best = ac_vec_mad_ref;
static bool force_scalar;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

void ac_vec_mad_ref(int n, float *restrict y, const float *restrict x, float a) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void pick(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        mad_best = ac_vec_mad_avx512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        mad_best = ac_vec_mad_avx2;
}

void ac_vec_init(void) { pthread_once(&init_once, pick); }

void ac_vec_force_scalar(bool on) { force_scalar = on; }

void ac_vec_mad(int n, float *restrict y, const float *restrict x, float a) {
    (force_scalar ? ac_vec_mad_ref : mad_best)(n, y, x, a);
}
