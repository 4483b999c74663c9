/* token_collect.h - an ac_token_fn for tests that records the generated
 * token ids. */
#ifndef TOKEN_COLLECT_H
#define TOKEN_COLLECT_H

#include <stdbool.h>
#include <stdint.h>

#define COLLECT_MAX 256

struct collected {
    int32_t ids[COLLECT_MAX];
    int n;
};

static inline bool collect(void *user, int32_t id) {
    struct collected *c = user;
    if (c->n < COLLECT_MAX) c->ids[c->n++] = id;
    return false;
}

#endif
