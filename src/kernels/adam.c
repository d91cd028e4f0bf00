/* Adam / AdamW with torch.optim semantics; moments in LP_MEM_OPTIMIZER. */
#include "leanprop/kernels/optim.h"

#include <math.h>

#include "kernels/kcheck.h"
#include "leanprop/alloc.h"

#define LPK_PAR_MIN 32768

struct lp_adam {
    lp_adam_config cfg;
    int64_t n;
    int64_t t;
    float *m;
    float *v;
};

lp_adam_config lp_adamw_defaults(void)
{
    lp_adam_config c = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1};
    return c;
}

lp_adam_config lp_adam_defaults(void)
{
    lp_adam_config c = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0};
    return c;
}

static lp_status check_config(const lp_adam_config *c)
{
    static const char fn[] = "lp_adam_new";
    if (!(c->lr >= 0.0f && isfinite(c->lr))) return lp_error(LP_ERR_INVALID_ARG, "%s: lr must be >= 0, got %g", fn, c->lr);
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return lp_error(LP_ERR_INVALID_ARG, "%s: betas must be in [0, 1), got (%g, %g)", fn, c->beta1, c->beta2);
    if (!(c->eps >= 0.0f && isfinite(c->eps))) return lp_error(LP_ERR_INVALID_ARG, "%s: eps must be >= 0, got %g", fn, c->eps);
    if (!(c->weight_decay >= 0.0f && isfinite(c->weight_decay)))
        return lp_error(LP_ERR_INVALID_ARG, "%s: weight_decay must be >= 0, got %g", fn, c->weight_decay);
    if (c->decoupled != 0 && c->decoupled != 1)
        return lp_error(LP_ERR_INVALID_ARG, "%s: decoupled must be 0 or 1, got %d", fn, c->decoupled);
    return LP_OK;
}

lp_status lp_adam_new(lp_adam **out, int64_t n, const lp_adam_config *cfg)
{
    static const char fn[] = "lp_adam_new";
    LPK_NONNULL(fn, out);
    *out = NULL;
    LPK_NONNULL(fn, cfg);
    LPK_DIMS(fn, NULL, "n", n);
    LP_TRY(check_config(cfg));
    lp_adam *a = lp_alloc(LP_MEM_OPTIMIZER, sizeof *a);
    if (!a) return LP_ERR_NOMEM;
    a->cfg = *cfg;
    a->n = n;
    a->m = lp_alloc_array(LP_MEM_OPTIMIZER, (size_t)n, sizeof(float));
    a->v = a->m ? lp_alloc_array(LP_MEM_OPTIMIZER, (size_t)n, sizeof(float)) : NULL;
    if (!a->v) {
        lp_adam_free(a);
        return lp_error_context(LP_ERR_NOMEM, "%s: Adam moments for %lld parameters", fn, (long long)n);
    }
    *out = a;
    return LP_OK;
}

void lp_adam_free(lp_adam *a)
{
    if (!a) return;
    lp_free(a->m);
    lp_free(a->v);
    lp_free(a);
}

lp_status lp_adam_set_lr(lp_adam *a, float lr)
{
    LPK_NONNULL("lp_adam_set_lr", a);
    if (!(lr >= 0.0f && isfinite(lr))) return lp_error(LP_ERR_INVALID_ARG, "lp_adam_set_lr: lr must be >= 0, got %g", lr);
    a->cfg.lr = lr;
    return LP_OK;
}

int64_t lp_adam_steps(const lp_adam *a) { return a ? a->t : 0; }

void lp_adam_moments(lp_adam *a, float **m, float **v)
{
    if (m) *m = a ? a->m : NULL;
    if (v) *v = a ? a->v : NULL;
}

lp_status lp_adam_set_steps(lp_adam *a, int64_t t)
{
    LPK_NONNULL("lp_adam_set_steps", a);
    if (t < 0) return lp_error(LP_ERR_INVALID_ARG, "lp_adam_set_steps: t must be >= 0, got %lld", (long long)t);
    a->t = t;
    return LP_OK;
}

lp_status lp_adam_begin_step(lp_adam *a)
{
    LPK_NONNULL("lp_adam_begin_step", a);
    a->t++;
    return LP_OK;
}

lp_status lp_adam_update(lp_adam *a, int64_t offset, float *param, const float *grad, int64_t n)
{
    static const char fn[] = "lp_adam_update";
    LPK_NONNULL(fn, a);
    LPK_NONNULL(fn, param);
    LPK_NONNULL(fn, grad);
    LPK_DIMS(fn, NULL, "n", n);
    if (offset < 0 || offset > a->n || n > a->n - offset)
        return lp_error(LP_ERR_INVALID_ARG, "%s: slice [%lld, %lld+%lld) outside the state's %lld parameters", fn,
                        (long long)offset, (long long)offset, (long long)n, (long long)a->n);
    if (a->t < 1) return lp_error(LP_ERR_INVALID_ARG, "%s: step counter is 0; call lp_adam_begin_step first", fn);
    const lp_adam_config c = a->cfg;
    /* As torch: bias corrections and the step size in double (Python floats). */
    const double bc1 = 1.0 - pow((double)c.beta1, (double)a->t);
    const double bc2 = 1.0 - pow((double)c.beta2, (double)a->t);
    const float step_size = (float)((double)c.lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float b1 = c.beta1, b2 = c.beta2, omb1 = 1.0f - c.beta1, omb2 = 1.0f - c.beta2;
    const float wd = c.weight_decay, eps = c.eps;
    const float decay = (float)(1.0 - (double)c.lr * (double)c.weight_decay);
    const int decoupled = c.decoupled;
    float *m = a->m + offset, *v = a->v + offset;
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i], p = param[i];
        if (decoupled) p *= decay;
        else g += wd * p;
        float mi = b1 * m[i] + omb1 * g;
        float vi = b2 * v[i] + omb2 * g * g;
        m[i] = mi;
        v[i] = vi;
        p -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
        param[i] = p;
    }
    return LP_OK;
}

lp_status lp_adam_step(lp_adam *a, float *param, const float *grad, int64_t n)
{
    LPK_NONNULL("lp_adam_step", a);
    if (n != a->n)
        return lp_error(LP_ERR_INVALID_ARG, "lp_adam_step: n = %lld but the state holds %lld parameters (use "
                        "lp_adam_begin_step + lp_adam_update for slices)", (long long)n, (long long)a->n);
    LPK_NONNULL("lp_adam_step", param);
    LPK_NONNULL("lp_adam_step", grad);
    LP_TRY(lp_adam_begin_step(a));
    return lp_adam_update(a, 0, param, grad, n);
}
