/* sparse.c - reference sparse kernel and dispatch (see sparse.h). */
#include "model/sparse.h"

#include <stdbool.h>

#include "model/vec.h"
#include "quant/quant.h"

void ac_sparse_gemv_ref(uint32_t type, const uint8_t *rows, size_t row_bytes, int64_t off, const int32_t *idx,
                        int n_idx, const float *x, float *acc, int len, float *scratch) {
    const struct ac_type_traits *t = ac_type_traits(type);
    const size_t slice = (size_t)(off / t->blck_size) * t->type_size;
    for (int k = 0; k < n_idx; k++) {
        t->to_float(rows + (size_t)idx[k] * row_bytes + slice, scratch, len);
        ac_vec_mad(len, acc, scratch, x[idx[k]]);
    }
}

ac_sparse_gemv_fn ac_sparse_gemv(uint32_t type) {
    static int has_avx512 = -1;
    if (has_avx512 < 0) {
        __builtin_cpu_init();
        has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    }
    ac_sparse_gemv_fn f = has_avx512 ? ac_sparse_gemv_avx512(type) : NULL;
    return f ? f : ac_sparse_gemv_ref;
}
