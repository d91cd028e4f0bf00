/* SGD with momentum, torch.optim.SGD semantics (dampening 0); momentum in LP_MEM_OPTIMIZER. */
#include "leanprop/kernels/optim.h"

#include <math.h>

#include "kernels/kcheck.h"
#include "leanprop/alloc.h"

#define LPK_PAR_MIN 32768

struct lp_sgd {
    lp_sgd_config cfg;
    int64_t n;
    int64_t t;
    float *buf;   /* momentum buffer, NULL when momentum == 0 */
};

lp_sgd_config lp_sgd_defaults(void)
{
    lp_sgd_config c = {1e-2f, 0.9f, 0.0f, 0};
    return c;
}

lp_status lp_sgd_new(lp_sgd **out, int64_t n, const lp_sgd_config *cfg)
{
    static const char fn[] = "lp_sgd_new";
    LPK_NONNULL(fn, out);
    *out = NULL;
    LPK_NONNULL(fn, cfg);
    LPK_DIMS(fn, NULL, "n", n);
    if (!(cfg->lr >= 0.0f && isfinite(cfg->lr))) return lp_error(LP_ERR_INVALID_ARG, "%s: lr must be >= 0, got %g", fn, cfg->lr);
    if (!(cfg->momentum >= 0.0f && isfinite(cfg->momentum)))
        return lp_error(LP_ERR_INVALID_ARG, "%s: momentum must be >= 0, got %g", fn, cfg->momentum);
    if (!(cfg->weight_decay >= 0.0f && isfinite(cfg->weight_decay)))
        return lp_error(LP_ERR_INVALID_ARG, "%s: weight_decay must be >= 0, got %g", fn, cfg->weight_decay);
    if (cfg->nesterov != 0 && (cfg->nesterov != 1 || cfg->momentum <= 0.0f))
        return lp_error(LP_ERR_INVALID_ARG, "%s: nesterov must be 0 or 1 and needs momentum > 0", fn);
    lp_sgd *s = lp_alloc(LP_MEM_OPTIMIZER, sizeof *s);
    if (!s) return LP_ERR_NOMEM;
    s->cfg = *cfg;
    s->n = n;
    if (cfg->momentum > 0.0f) {
        s->buf = lp_alloc_array(LP_MEM_OPTIMIZER, (size_t)n, sizeof(float));
        if (!s->buf) {
            lp_free(s);
            return lp_error_context(LP_ERR_NOMEM, "%s: momentum for %lld parameters", fn, (long long)n);
        }
    }
    *out = s;
    return LP_OK;
}

void lp_sgd_free(lp_sgd *s)
{
    if (!s) return;
    lp_free(s->buf);
    lp_free(s);
}

lp_status lp_sgd_set_lr(lp_sgd *s, float lr)
{
    LPK_NONNULL("lp_sgd_set_lr", s);
    if (!(lr >= 0.0f && isfinite(lr))) return lp_error(LP_ERR_INVALID_ARG, "lp_sgd_set_lr: lr must be >= 0, got %g", lr);
    s->cfg.lr = lr;
    return LP_OK;
}

int64_t lp_sgd_steps(const lp_sgd *s) { return s ? s->t : 0; }

float *lp_sgd_momentum(lp_sgd *s) { return s ? s->buf : NULL; }

lp_status lp_sgd_begin_step(lp_sgd *s)
{
    LPK_NONNULL("lp_sgd_begin_step", s);
    s->t++;
    return LP_OK;
}

lp_status lp_sgd_update(lp_sgd *s, int64_t offset, float *param, const float *grad, int64_t n)
{
    static const char fn[] = "lp_sgd_update";
    LPK_NONNULL(fn, s);
    LPK_NONNULL(fn, param);
    LPK_NONNULL(fn, grad);
    LPK_DIMS(fn, NULL, "n", n);
    if (offset < 0 || offset > s->n || n > s->n - offset)
        return lp_error(LP_ERR_INVALID_ARG, "%s: slice [%lld, %lld+%lld) outside the state's %lld parameters", fn,
                        (long long)offset, (long long)offset, (long long)n, (long long)s->n);
    if (s->t < 1) return lp_error(LP_ERR_INVALID_ARG, "%s: step counter is 0; call lp_sgd_begin_step first", fn);
    const float lr = s->cfg.lr, mu = s->cfg.momentum, wd = s->cfg.weight_decay;
    const int first = s->t == 1, nesterov = s->cfg.nesterov;
    float *buf = s->buf ? s->buf + offset : NULL;
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        if (wd != 0.0f) g += wd * param[i];
        if (buf) {
            float b = first ? g : mu * buf[i] + g;
            buf[i] = b;
            g = nesterov ? g + mu * b : b;
        }
        param[i] -= lr * g;
    }
    return LP_OK;
}

lp_status lp_sgd_step(lp_sgd *s, float *param, const float *grad, int64_t n)
{
    LPK_NONNULL("lp_sgd_step", s);
    if (n != s->n)
        return lp_error(LP_ERR_INVALID_ARG, "lp_sgd_step: n = %lld but the state holds %lld parameters", (long long)n,
                        (long long)s->n);
    LPK_NONNULL("lp_sgd_step", param);
    LPK_NONNULL("lp_sgd_step", grad);
    LP_TRY(lp_sgd_begin_step(s));
    return lp_sgd_update(s, 0, param, grad, n);
}
