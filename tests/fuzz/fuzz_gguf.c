/* fuzz_gguf.c - libFuzzer harness for the GGUF reader: any input must
 * parse or be rejected without an out-of-bounds read (ASan), and every
 * accepted tensor and string array must lie inside the input.
 *   make fuzz        builds build-fuzz/fuzz_gguf and runs it for 60 s */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "gguf/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct gguf_file *f;
    char err[AC_ERR_LEN];
    if (gguf_parse(&f, data, size, err) != 0) return 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        if ((const uint8_t *)t->data < data || (const uint8_t *)t->data + t->size > data + size) abort();
    }
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        if (kv->type == GGUF_VT_ARRAY && kv->arr_type == GGUF_VT_STRING) {
            struct gguf_str *s = malloc(sizeof *s * (kv->arr_n + 1));
            if (s && gguf_get_str_array(kv, s, err) == 0)
                for (uint64_t j = 0; j < kv->arr_n; j++)
                    if (s[j].len && ((const uint8_t *)s[j].ptr < data ||
                                     (const uint8_t *)s[j].ptr + s[j].len > data + size))
                        abort();
            free(s);
        }
    }
    gguf_close(f);
    return 0;
}
