/* Job parameters described once, as a table: the validators check params
 * against it (unknown keys, types, ranges, choices, required fields, nested
 * objects and arrays, with the dotted path of the field at fault), the
 * runners read values and defaults through it, and GET /v1/job-types
 * publishes it (rf_params_describe), so the three cannot drift.
 *
 * A table is an array of rf_param ended by an entry whose name is NULL.
 * Cross-field rules (either a or b, b only with a) stay in the runner's own
 * validate function, which runs after the table check. */
#ifndef RF_PARAMS_H
#define RF_PARAMS_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/core/error.h"

typedef enum rf_param_type {
    RF_PARAM_STRING, /* a non-empty string */
    RF_PARAM_INT,    /* an integer in [lo, hi] */
    RF_PARAM_NUMBER, /* a finite number in [lo, hi] (open ends by flag) */
    RF_PARAM_BOOL,
    RF_PARAM_ENUM,   /* a string, one of choices */
    RF_PARAM_OBJECT, /* an object checked against fields */
    RF_PARAM_ARRAY,  /* an array whose elements are checked against items */
    RF_PARAM_JSON,   /* any value; the runner's validate checks it (help says what) */
} rf_param_type;

enum {
    RF_PARAM_REQUIRED = 1u << 0,
    RF_PARAM_LO_OPEN = 1u << 1, /* lo itself is excluded */
    RF_PARAM_HI_OPEN = 1u << 2,
    RF_PARAM_NULLABLE = 1u << 3, /* null is accepted and means "absent" */
    RF_PARAM_OPEN = 1u << 4,     /* OBJECT: keys beyond fields are accepted (passed through) */
};

typedef struct rf_param {
    const char *name;
    rf_param_type type;
    const char *help; /* one sentence: what it is, and what to give */
    unsigned flags;
    double lo, hi;              /* INT, NUMBER; lo == hi == 0: unbounded. ARRAY: item count */
    const char *const *choices; /* ENUM: NULL-terminated */
    /* The default: JSON text ("600", "[0.9, 0.999]"), except for STRING and
     * ENUM, where it is the string itself ("qa"). NULL: none, or one that
     * depends on other params (help says which). */
    const char *def;
    const struct rf_param *fields; /* OBJECT: its table */
    const struct rf_param *items;  /* ARRAY: one entry describing every element */
    /* A string value names a registered object of this kind ("model",
     * "dataset", "artifact", "adapter"): the service checks that it exists
     * for the tenant at POST. Also on JSON params, for the string case. */
    const char *ref;
} rf_param;

/* Check obj (an object, or NULL for none) against spec. path is the dotted
 * prefix of obj's fields in messages ("" at the top). err->field gets the
 * full path of the field at fault ("optimizer.lr", "datasets[2]"). */
int rf_params_check(const json_t *obj, const rf_param *spec, const char *path, rf_error *err);

/* The entry for name, or NULL. */
const rf_param *rf_param_find(const rf_param *spec, const char *name);

/* Values of a checked object, the table's default when absent (or null).
 * Asking for a name the table lacks, or one without a default that is
 * absent, gives the fallback. */
long long rf_param_int(const json_t *obj, const rf_param *spec, const char *name,
                       long long fallback);
double rf_param_num(const json_t *obj, const rf_param *spec, const char *name, double fallback);
bool rf_param_bool(const json_t *obj, const rf_param *spec, const char *name, bool fallback);
/* Strings point into obj, or are the table's default itself. */
const char *rf_param_str(const json_t *obj, const rf_param *spec, const char *name,
                         const char *fallback);
/* ENUM: the index of the value among choices (or of the default). */
int rf_param_enum(const json_t *obj, const rf_param *spec, const char *name, int fallback);

/* The table as JSON for GET /v1/job-types: [{name, type, description,
 * required, default, minimum, maximum, exclusive_minimum, enum, ref,
 * fields, items}, …], only the members that apply. */
json_t *rf_params_describe(const rf_param *spec);

/* Every string in obj that a table entry marks with ref (nested objects
 * and arrays included), in table order: fn(user, kind, field, value) with
 * field the full path; a non-zero return stops the walk and is returned. */
typedef int (*rf_param_ref_fn)(void *user, const char *kind, const char *field, const char *value);
int rf_params_refs(const json_t *obj, const rf_param *spec, const char *path, rf_param_ref_fn fn,
                   void *user);

/* "a, b, c": the names of a table, for messages. */
void rf_params_names(const rf_param *spec, char *buf, size_t cap);

#endif
