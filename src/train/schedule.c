/* Learning-rate schedules with Hugging Face transformers semantics. */
#include "leanprop/schedule.h"

#include <math.h>
#include <string.h>

lp_schedule lp_schedule_defaults(void)
{
    lp_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = LP_SCHED_COSINE;
    s.lr = 1e-4;
    s.num_cycles = 0.5;
    return s;
}

static const char *const g_names[] = {"constant", "linear", "cosine"};

const char *lp_schedule_kind_name(lp_schedule_kind kind)
{
    return (int)kind >= 0 && kind <= LP_SCHED_COSINE ? g_names[kind] : "invalid";
}

lp_status lp_schedule_parse_kind(lp_schedule_kind *out, const char *name)
{
    if (!out || !name) return lp_error(LP_ERR_INVALID_ARG, "schedule: NULL argument");
    for (int i = 0; i <= LP_SCHED_COSINE; i++)
        if (!strcmp(name, g_names[i])) { *out = (lp_schedule_kind)i; return LP_OK; }
    return lp_error(LP_ERR_INVALID_ARG, "unknown schedule \"%s\" (constant, linear, cosine)", name);
}

lp_status lp_schedule_validate(const lp_schedule *s)
{
    if (!s) return lp_error(LP_ERR_INVALID_ARG, "schedule: NULL");
    if ((int)s->kind < 0 || s->kind > LP_SCHED_COSINE)
        return lp_error(LP_ERR_INVALID_ARG, "schedule: invalid kind %d", (int)s->kind);
    if (!(s->lr >= 0.0) || !isfinite(s->lr)) return lp_error(LP_ERR_INVALID_ARG, "schedule: lr %g must be >= 0", s->lr);
    if (!(s->min_lr >= 0.0 && s->min_lr <= s->lr))
        return lp_error(LP_ERR_INVALID_ARG, "schedule: min_lr %g must be in [0, lr = %g]", s->min_lr, s->lr);
    if (s->warmup_steps < 0) return lp_error(LP_ERR_INVALID_ARG, "schedule: warmup_steps %lld < 0", (long long)s->warmup_steps);
    if (s->kind != LP_SCHED_CONSTANT && s->total_steps < s->warmup_steps)
        return lp_error(LP_ERR_INVALID_ARG, "schedule: total_steps %lld < warmup_steps %lld",
                        (long long)s->total_steps, (long long)s->warmup_steps);
    if (s->kind == LP_SCHED_COSINE && !(s->num_cycles > 0.0))
        return lp_error(LP_ERR_INVALID_ARG, "schedule: num_cycles %g must be > 0", s->num_cycles);
    return LP_OK;
}

double lp_schedule_lr(const lp_schedule *s, int64_t step)
{
    if (step < 0) step = 0;
    if (step < s->warmup_steps) {
        int64_t w = s->warmup_steps > 1 ? s->warmup_steps : 1;
        return s->lr * (double)step / (double)w;
    }
    if (s->kind == LP_SCHED_CONSTANT) return s->lr;
    int64_t span = s->total_steps - s->warmup_steps;
    if (span < 1) span = 1;
    double progress = (double)(step - s->warmup_steps) / (double)span;
    if (progress > 1.0) progress = 1.0;
    double factor;
    if (s->kind == LP_SCHED_LINEAR) {
        factor = 1.0 - progress;
    } else {
        factor = 0.5 * (1.0 + cos(M_PI * 2.0 * s->num_cycles * progress));
        if (factor < 0.0) factor = 0.0;
    }
    return s->min_lr + (s->lr - s->min_lr) * factor;
}
