/* lp_ft_plan_memory: exact per-category memory of one training step. */
#include "train/finetune_internal.h"

lp_status lp_ft_plan_memory(const lp_transformer_config *cfg, const lp_ft_setup *s, int64_t B, int64_t T,
                            int64_t n_selected, const char *optimizer, lp_mem_plan *out)
{
    (void)cfg; (void)s; (void)B; (void)T; (void)n_selected; (void)optimizer; (void)out;
    return lp_error(LP_ERR_UNSUPPORTED, "lp_ft_plan_memory: not implemented yet");
}
