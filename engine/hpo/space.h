/* A search space and its points (DESIGN.md "Studies"; FORMATS.md "Bayesian
 * optimisation"). The JSON a study is created with:
 *   {"lr": {"type": "log_float", "low": 1e-5, "high": 1e-1},
 *    "r": {"type": "int", "low": 4, "high": 64, "step": 4},
 *    "alpha": {"type": "float", "low": 0, "high": 1},
 *    "opt": {"type": "categorical", "choices": ["muon", "adamw"]}}
 * Types: float, log_float (low > 0), int (optional step, default 1; the
 * values are low, low+step, … ≤ high), log_int (low ≥ 1), categorical
 * (choices: strings, numbers or booleans, at least one). Dimensions keep
 * the object's key order. A point is one double per dimension in natural
 * units; a categorical's double is the index of its choice. At most
 * RF_HP_MAX_DIMS dimensions (the Sobol tables the samplers use stop there)
 * and RF_HP_MAX_CHOICES choices per categorical. */
#ifndef RF_HPO_SPACE_H
#define RF_HPO_SPACE_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/core/error.h"

#define RF_HP_MAX_DIMS 32
#define RF_HP_MAX_CHOICES 1024

typedef enum rf_hp_kind {
    RF_HP_FLOAT,
    RF_HP_LOG_FLOAT,
    RF_HP_INT,
    RF_HP_LOG_INT,
    RF_HP_CATEGORICAL,
} rf_hp_kind;

typedef struct rf_hp_dim {
    char *name;
    rf_hp_kind kind;
    double low, high, step; /* step: int kinds only (1 when not given) */
    int n_choices;
    json_t **choices; /* categorical: the values as given (owned references) */
} rf_hp_dim;

typedef struct rf_hp_space {
    int n;
    rf_hp_dim *dims;
} rf_hp_space;

/* Parse and validate; err->field names the dimension ("lr.low"). */
int rf_hp_space_parse(const json_t *space, rf_hp_space *s, rf_error *err);
void rf_hp_space_free(rf_hp_space *s);
/* The space back as JSON (what GET /v1/studies/{id} shows). */
json_t *rf_hp_space_json(const rf_hp_space *s);

/* x [n] → {"lr": 0.001, "r": 16, "opt": "muon"} (ints as integers). */
json_t *rf_hp_point_json(const rf_hp_space *s, const double *x);
/* The reverse, for a client that tells a point it chose itself: every
 * dimension present, inside its bounds, on its step, a known choice. */
int rf_hp_point_parse(const rf_hp_space *s, const json_t *params, double *x, rf_error *err);

/* To and from the unit cube the samplers work in: u[d] in [0, 1] (log
 * scale for log kinds; ints padded by half a step each side, so every
 * value owns an equal share — log_int: [log(low - ½), log(high + ½)], as
 * Optuna; categoricals: choice k owns [k, k+1) / n_choices and goes to the
 * centre of its share). from_unit rounds ints to their step, takes the
 * share u falls in for categoricals, and clamps into bounds. */
void rf_hp_to_unit(const rf_hp_space *s, const double *x, double *u);
void rf_hp_from_unit(const rf_hp_space *s, const double *u, double *x);
/* The same for one dimension. */
double rf_hp_dim_to_unit(const rf_hp_dim *d, double x);
double rf_hp_dim_from_unit(const rf_hp_dim *d, double u);

/* "float", "log_float", … */
const char *rf_hp_kind_name(rf_hp_kind k);
/* The largest value an int kind takes (low + k·step ≤ high); high otherwise. */
double rf_hp_dim_top(const rf_hp_dim *d);
/* How many values a discrete dimension takes (ints, categoricals); 0 for floats. */
int rf_hp_dim_count(const rf_hp_dim *d);

#endif
