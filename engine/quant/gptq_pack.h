/* GPTQ results into the checkpoint layout and back (the layout itself and
 * the view the engine computes with: engine/core/gptq_weight.h). */
#ifndef RF_GPTQ_PACK_H
#define RF_GPTQ_PACK_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/quant/gptq.h"
#include "engine/core/gptq_weight.h"
#include "engine/core/tensor.h"

/* 4-bit layers only; N and K multiples of 8. */
int rf_gptq_pack(const rf_qlayer *l, rf_gptq_packed *p, rf_error *err);
/* Back to integers, scales (f16 → f32), true zeros (stored + 1) and g_idx.
 * A true zero of 0 is stored as −1 & 0xF and reads back as 16: a limit of
 * the v1 format, shared by every loader of it. */
int rf_gptq_unpack(const rf_gptq_weight *w, rf_qlayer *l, rf_error *err);

#endif
