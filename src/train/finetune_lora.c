/* LoRA / QLoRA side of lp_ft_model: adapters on the targeted linears, NF4
 * base weights, PEFT save/load, merge. See leanprop/finetune.h. */
#include "train/finetune_internal.h"

#include <stdlib.h>
#include <string.h>

lp_status lp_ft_attach_adapters(lp_ft_model *f, const lp_peft_adapter *peft)
{
    (void)peft;
    return lp_error(LP_ERR_UNSUPPORTED, "%s fine-tuning: not implemented yet", lp_ft_method_name(f->setup.method));
}

void lp_ft_detach_adapters(lp_ft_model *f)
{
    for (int i = 0; i < f->n_ad; i++) {
        lp_ft_adapter *a = &f->ad[i];
        if (a->lin && a->lin->hooks == &a->hooks) a->lin->hooks = NULL;
        lp_lora_free(a->lora);
        lp_nf4_free(a->nf4);
        free(a->module);
    }
    free(f->ad);
    f->ad = NULL;
    f->n_ad = 0;
}

lp_status lp_ft_save_adapter(const lp_ft_model *f, const char *dir)
{
    (void)dir;
    return lp_error(LP_ERR_UNSUPPORTED, "%s: saving adapters not implemented yet", lp_ft_method_name(f->setup.method));
}

lp_status lp_ft_model_load_adapter(lp_ft_model *f, const char *dir)
{
    (void)dir;
    if (!f) return lp_error(LP_ERR_INVALID_ARG, "lp_ft_model_load_adapter: NULL model");
    return lp_error(LP_ERR_UNSUPPORTED, "lp_ft_model_load_adapter: not implemented yet");
}

lp_status lp_ft_model_merge(lp_ft_model *f)
{
    if (!f) return lp_error(LP_ERR_INVALID_ARG, "lp_ft_model_merge: NULL model");
    if (f->setup.method == LP_FT_FULL) return LP_OK;
    return lp_error(LP_ERR_UNSUPPORTED, "lp_ft_model_merge: not implemented yet");
}
