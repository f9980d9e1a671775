/* A PEFT LoRA adapter applied to a loaded rf_lm for serving, as vLLM serves
 * a LoRA adapter beside its base: each weight the adapter targets is copied
 * out of the mapping and W + s·B·A (FORMATS.md "PEFT LoRA adapter") written
 * into the copy, so the forward pass runs unchanged and the base's files
 * are never written. Only the targeted weights take memory of their own. */
#ifndef RF_LM_ADAPTER_H
#define RF_LM_ADAPTER_H

#include <stddef.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/model/lm.h"

typedef struct rf_lm_adapter {
    rf_tensor
        *copies; /* [n_layers × RF_LIN_COUNT]: the merged weights (empty where not targeted) */
    int n;
    size_t bytes; /* what the copies take */
} rf_lm_adapter;

/* Merge the adapter in adapter_dir (adapter_config.json and
 * adapter_model.safetensors) into lm. RF_EINVAL when it does not fit the
 * model (shapes), RF_EUNSUPPORTED when the model is GPTQ (4-bit codes cannot
 * hold W + s·B·A; the forward pass for serving takes no unmerged adapter).
 * Free a with rf_lm_adapter_free after lm itself. */
int rf_lm_adapter_apply(rf_lm *lm, const char *adapter_dir, rf_lm_adapter *a, rf_error *err);
void rf_lm_adapter_free(rf_lm_adapter *a);

#endif
