/* kld.c - see kld.h. Windows are scored one at a time with all-position
 * logits, so memory is window x n_vocab floats plus the halves of the
 * reference. */
#include "compress/kld.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "quant/quant.h"
#include "sample/sample.h"

/* log-softmax of one row in place; returns the index of the maximum */
static int32_t log_softmax(float *x, int n) {
    const int32_t best = ac_argmax(x, n);
    const float mx = x[best];
    double z = 1.0; /* the maximum's own term */
    for (int i = 0; i < n; i++)
        if (i != best) z += exp((double)x[i] - mx);
    const float lz = mx + (float)log(z);
    for (int i = 0; i < n; i++) x[i] -= lz;
    return best;
}

static int windows(int n_tokens, int window) { return (n_tokens + window - 1) / window; }

/* Calls fn on each window's all-position log-probabilities. */
typedef void (*window_fn)(void *user, int pos0, int n, float *logp);

static int run_windows(const struct ac_model *m, const struct ac_run_config *rc, const int32_t *tokens, int n_tokens,
                       int window, int n_threads, window_fn fn, void *user, double *bytes_per_token, char *err) {
    const int n_vocab = m->cfg.n_vocab;
    struct ac_context *c;
    struct ac_context_params cp = {.n_ctx = window, .n_threads = n_threads};
    if (ac_context_new(&c, m, &cp, err) != 0) return -1;
    float *logits = malloc(sizeof(float) * (size_t)window * n_vocab);
    int rc_ = -1, pos = 0;
    double bytes = 0.0;
    long toks = 0;
    if (!logits) {
        ac_errf(err, "out of memory");
        goto done;
    }
    if (ac_context_set_run_config(c, rc, err) != 0) goto done;
    for (int w = 0; w < windows(n_tokens, window); w++) {
        const int n = n_tokens - pos < window ? n_tokens - pos : window;
        ac_context_reset(c);
        if (ac_decode(c, tokens + pos, n, AC_LOGITS_ALL, logits, err) != 0) goto done;
        bytes += ac_context_weight_bytes(c);
        toks += ac_context_tokens_processed(c);
        for (int t = 0; t < n; t++) log_softmax(logits + (size_t)t * n_vocab, n_vocab);
        fn(user, pos, n, logits);
        pos += n;
    }
    if (bytes_per_token) *bytes_per_token = toks ? bytes / (double)toks : 0.0;
    rc_ = 0;
done:
    free(logits);
    ac_context_free(c);
    return rc_;
}

struct ref_build {
    struct ac_kld_reference *ref;
};

/* position p of the text predicts token p + 1 of the same window */
static void store_reference(void *user, int pos0, int n, float *logp) {
    struct ac_kld_reference *ref = ((struct ref_build *)user)->ref;
    for (int t = 0; t + 1 < n; t++) {
        const int slot = ref->n_positions++;
        const float *row = logp + (size_t)t * ref->n_vocab;
        uint16_t *dst = ref->logprob + (size_t)slot * ref->n_vocab;
        for (int i = 0; i < ref->n_vocab; i++) dst[i] = ac_fp32_to_fp16(row[i] < -60000.0f ? -60000.0f : row[i]);
        ref->top1[slot] = ac_argmax(row, ref->n_vocab);
    }
    (void)pos0;
}

int ac_kld_reference_build(const struct ac_model *f16, const int32_t *tokens, int n_tokens, int window, int n_threads,
                           struct ac_kld_reference *ref, char *err) {
    memset(ref, 0, sizeof *ref);
    if (window < 2) return ac_errf(err, "window must be at least 2 tokens");
    if (n_tokens < 2) return ac_errf(err, "the text needs at least 2 tokens");
    const size_t max_pos = (size_t)n_tokens;
    ref->n_vocab = f16->cfg.n_vocab;
    ref->window = window;
    ref->tokens = tokens;
    ref->n_tokens = n_tokens;
    ref->logprob = malloc(sizeof(uint16_t) * max_pos * ref->n_vocab);
    ref->top1 = malloc(sizeof(int32_t) * max_pos);
    if (!ref->logprob || !ref->top1) {
        ac_kld_reference_free(ref);
        return ac_errf(err, "out of memory for the reference distributions");
    }
    struct ref_build rb = {ref};
    if (run_windows(f16, NULL, tokens, n_tokens, window, n_threads, store_reference, &rb, NULL, err) != 0) {
        ac_kld_reference_free(ref);
        return -1;
    }
    return 0;
}

void ac_kld_reference_free(struct ac_kld_reference *ref) {
    free(ref->logprob);
    free(ref->top1);
    memset(ref, 0, sizeof *ref);
}

struct measure {
    const struct ac_kld_reference *ref;
    int slot;
    double nll, kl;
    long same;
};

static void score_window(void *user, int pos0, int n, float *logp) {
    struct measure *ms = user;
    const struct ac_kld_reference *ref = ms->ref;
    for (int t = 0; t + 1 < n; t++, ms->slot++) {
        const float *q = logp + (size_t)t * ref->n_vocab;
        const uint16_t *p = ref->logprob + (size_t)ms->slot * ref->n_vocab;
        ms->nll -= q[ref->tokens[pos0 + t + 1]];
        double kl = 0.0;
        for (int i = 0; i < ref->n_vocab; i++) {
            const float lp = ac_fp16_to_fp32(p[i]);
            kl += exp((double)lp) * ((double)lp - q[i]);
        }
        ms->kl += kl;
        ms->same += ac_argmax(q, ref->n_vocab) == ref->top1[ms->slot];
    }
}

int ac_kld_measure(const struct ac_model *model, const struct ac_run_config *rc, const struct ac_kld_reference *ref,
                   int n_threads, struct ac_kld_result *out, char *err) {
    if (model->cfg.n_vocab != ref->n_vocab)
        return ac_errf(err, "vocabulary of %d differs from the reference's %d", model->cfg.n_vocab, ref->n_vocab);
    struct measure ms = {.ref = ref};
    if (run_windows(model, rc, ref->tokens, ref->n_tokens, ref->window, n_threads, score_window, &ms,
                    &out->bytes_per_token, err) != 0)
        return -1;
    out->ppl = exp(ms.nll / ref->n_positions);
    out->kld = ms.kl / ref->n_positions;
    out->same_top1 = (double)ms.same / ref->n_positions;
    return 0;
}
