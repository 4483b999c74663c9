/* sample.c - samplers (see sample.h). */
#include "sample/sample.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/common.h"

int ac_sampler_init(struct ac_sampler *s, const struct ac_sampler_params *p, int n_vocab, char *err) {
    if (n_vocab <= 0) return ac_errf(err, "sampler: empty vocabulary");
    if (!(p->temp == p->temp) || !(p->top_p == p->top_p)) return ac_errf(err, "sampler: temperature and top-p must be numbers");
    if (p->top_p <= 0.0f) return ac_errf(err, "sampler: top-p must be in (0, 1]");
    s->params = *p;
    /* splitmix64 of the seed: any seed, including 0, gives a nonzero state */
    uint64_t z = p->seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    s->rng = (z ^ (z >> 31)) | 1u;
    s->n_vocab = n_vocab;
    s->items = malloc((size_t)n_vocab * sizeof *s->items);
    if (!s->items) return ac_errf(err, "out of memory");
    return 0;
}

void ac_sampler_free(struct ac_sampler *s) {
    free(s->items);
    s->items = NULL;
}

float ac_rng_uniform(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (float)((x * 0x2545f4914f6cdd1dull) >> 40) / 16777216.0f; /* 24 bits */
}

/* The first i in [from, n) with logits[i] > bound, else n. Runs of 16 are
 * tested at once (a loop the compiler vectorizes): scanning for a new
 * maximum or a better top-k candidate skips almost all of a vocabulary. */
static int next_above(const float *logits, int from, int n, float bound) {
    int i = from;
    for (; i + 16 <= n; i += 16) {
        int any = 0;
        for (int j = 0; j < 16; j++) any |= logits[i + j] > bound;
        if (any) break;
    }
    for (; i < n; i++)
        if (logits[i] > bound) return i;
    return n;
}

int32_t ac_argmax(const float *logits, int n) {
    int32_t best = 0; /* the first maximum wins */
    for (int i = 1; (i = next_above(logits, i, n, logits[best])) < n; i++) best = i;
    return best;
}

static int by_prob_desc(const void *a, const void *b) {
    const struct ac_prob_item *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Whether item a ranks below item b in by_prob_desc's order. */
static inline bool ranks_below(const struct ac_prob_item *a, const struct ac_prob_item *b) {
    return by_prob_desc(a, b) > 0;
}

/* Sifts items[i] down the min-heap items[0..m) ordered by ranks_below. */
static void sift_down(struct ac_prob_item *items, int m, int i) {
    for (;;) {
        const int l = 2 * i + 1, r = l + 1;
        int low = i;
        if (l < m && ranks_below(&items[l], &items[low])) low = l;
        if (r < m && ranks_below(&items[r], &items[low])) low = r;
        if (low == i) return;
        const struct ac_prob_item t = items[i];
        items[i] = items[low];
        items[low] = t;
        i = low;
    }
}

/* The m highest logits (ties by lower id) as items[0..m), sorted: one pass
 * keeping the best m in a min-heap, so that most of a large vocabulary
 * costs one comparison with the heap's root. O(n + m log m) in practice. */
static void top_m(const float *logits, int n, int m, struct ac_prob_item *items) {
    for (int i = 0; i < m; i++) items[i] = (struct ac_prob_item){.p = logits[i], .id = i};
    if (m < n) {
        for (int i = m / 2 - 1; i >= 0; i--) sift_down(items, m, i);
        /* a later id with the root's logit ranks below it: strict > */
        for (int i = m; (i = next_above(logits, i, n, items[0].p)) < n; i++) {
            items[0] = (struct ac_prob_item){.p = logits[i], .id = i};
            sift_down(items, m, 0);
        }
    }
    qsort(items, (size_t)m, sizeof *items, by_prob_desc);
}

int32_t ac_sample_pick(const float *logits, int n, const struct ac_sampler_params *p, float coin,
                       struct ac_prob_item *items) {
    if (p->temp <= 0.0f) return ac_argmax(logits, n);
    const int k = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    int sorted = k < n ? k : (p->top_p < 1.0f ? (n < 256 ? n : 256) : n);
    top_m(logits, n, sorted, items);
    const float maxl = items[0].p;
    /* the softmax normaliser over the k candidates (the top k, or all n
     * logits when k = n: only the best `sorted` are ordered) */
    double sum = 0.0;
    if (k < n)
        for (int i = 0; i < k; i++) sum += exp((double)(items[i].p - maxl) / p->temp);
    else
        for (int i = 0; i < n; i++) sum += exp((double)(logits[i] - maxl) / p->temp);
    /* top-p: the smallest sorted prefix whose mass reaches top_p; widen the
     * sorted prefix when it is not enough */
    int keep = k;
    if (p->top_p < 1.0f) {
        for (;;) {
            double cum = 0.0;
            keep = -1;
            for (int i = 0; i < sorted; i++) {
                cum += exp((double)(items[i].p - maxl) / p->temp) / sum;
                if (cum >= p->top_p) {
                    keep = i + 1;
                    break;
                }
            }
            if (keep > 0) break;
            if (sorted == k) {
                keep = k;
                break;
            }
            sorted = sorted * 4 < k ? sorted * 4 : k;
            top_m(logits, n, sorted, items);
        }
    }
    double kept = 0.0;
    for (int i = 0; i < keep; i++) {
        items[i].p = (float)exp((double)(items[i].p - maxl) / p->temp);
        kept += items[i].p;
    }
    const double target = (double)coin * kept;
    double acc = 0.0;
    for (int i = 0; i < keep; i++) {
        acc += items[i].p;
        if (target < acc) return items[i].id;
    }
    return items[keep - 1].id;
}

int32_t ac_sample(struct ac_sampler *s, const float *logits) {
    if (s->params.temp <= 0.0f) return ac_argmax(logits, s->n_vocab);
    return ac_sample_pick(logits, s->n_vocab, &s->params, ac_rng_uniform(&s->rng), s->items);
}
