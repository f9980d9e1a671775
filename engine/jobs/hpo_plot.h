/* The hpo job's plot, as hand-written SVG (no scripts, fonts or images from
 * anywhere): the objective by trial (complete, pruned, failed; the best so
 * far as a step line), then one panel per parameter of the space showing
 * the objective against its values (log axis for log kinds, one column per
 * choice for categoricals). */
#ifndef RF_JOBS_HPO_PLOT_H
#define RF_JOBS_HPO_PLOT_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/core/error.h"
#include "engine/hpo/space.h"

/* trials: [{"number", "state", "params", "value"}, …] as the hpo result
 * lists them. The file is written to a temporary name, fsynced, renamed. */
int rf_hpo_plot_svg(const char *path, const json_t *trials, const rf_hp_space *space,
                    const char *metric, bool maximize, rf_error *err);

#endif
