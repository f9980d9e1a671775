#include "engine/hpo/space.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integers travel as doubles: keep them where a double is exact. */
#define RF_HP_INT_LIMIT 9007199254740992.0 /* 2^53 */

static const char *const kind_names[] = {"float", "log_float", "int", "log_int", "categorical"};

const char *rf_hp_kind_name(rf_hp_kind k)
{
    return kind_names[k];
}

double rf_hp_dim_top(const rf_hp_dim *d)
{
    if (d->kind != RF_HP_INT && d->kind != RF_HP_LOG_INT) return d->high;
    return d->low + floor((d->high - d->low) / d->step + 1e-9) * d->step;
}

int rf_hp_dim_count(const rf_hp_dim *d)
{
    if (d->kind == RF_HP_CATEGORICAL) return d->n_choices;
    if (d->kind == RF_HP_INT || d->kind == RF_HP_LOG_INT)
        return (int)fmin(floor((d->high - d->low) / d->step + 1e-9) + 1, 2147483647.0);
    return 0;
}

static void dim_free(rf_hp_dim *d)
{
    free(d->name);
    for (int i = 0; i < d->n_choices; i++)
        json_decref(d->choices[i]);
    free(d->choices);
}

void rf_hp_space_free(rf_hp_space *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++)
        dim_free(&s->dims[i]);
    free(s->dims);
    s->dims = NULL;
    s->n = 0;
}

static bool is_integral(const json_t *v)
{
    if (json_is_integer(v)) return true;
    if (!json_is_real(v)) return false;
    double x = json_real_value(v);
    return isfinite(x) && x == floor(x);
}

/* A number field of a dimension: "lr.low". */
static int number_field(const json_t *obj, const char *dim, const char *key, bool integer,
                        bool required, double def, double *out, rf_error *err)
{
    char field[128];
    snprintf(field, sizeof field, "%s.%s", dim, key);
    const json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required) return rf_error_field(err, RF_EINVAL, field, "'%s' is required", field);
        *out = def;
        return 0;
    }
    if (integer ? !is_integral(v) : !json_is_number(v))
        return rf_error_field(err, RF_EINVAL, field, "'%s' must be %s", field,
                              integer ? "an integer" : "a number");
    double x = json_number_value(v);
    if (!isfinite(x) || fabs(x) > (integer ? RF_HP_INT_LIMIT : 1e300))
        return rf_error_field(err, RF_EINVAL, field, "'%s' is out of range", field);
    *out = x;
    return 0;
}

static int parse_choices(const json_t *obj, rf_hp_dim *d, rf_error *err)
{
    char field[128];
    snprintf(field, sizeof field, "%s.choices", d->name);
    const json_t *c = json_object_get(obj, "choices");
    if (!json_is_array(c) || json_array_size(c) == 0)
        return rf_error_field(err, RF_EINVAL, field,
                              "'%s' must be a non-empty array of strings, numbers or booleans",
                              field);
    size_t n = json_array_size(c);
    if (n > RF_HP_MAX_CHOICES)
        return rf_error_field(err, RF_EINVAL, field, "'%s' may hold at most %d choices", field,
                              RF_HP_MAX_CHOICES);
    d->choices = calloc(n, sizeof *d->choices);
    if (!d->choices) return rf_errorf(err, RF_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(c, i);
        snprintf(field, sizeof field, "%s.choices[%zu]", d->name, i);
        if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
            return rf_error_field(err, RF_EINVAL, field,
                                  "'%s' must be a string, a number or a boolean", field);
        if (json_is_real(v) && !isfinite(json_real_value(v)))
            return rf_error_field(err, RF_EINVAL, field, "'%s' must be finite", field);
        for (int j = 0; j < d->n_choices; j++)
            if (json_equal(d->choices[j], v))
                return rf_error_field(err, RF_EINVAL, field, "'%s' repeats choice %d", field, j);
        d->choices[d->n_choices++] = json_incref(v);
    }
    return 0;
}

static int parse_dim(const char *name, const json_t *obj, rf_hp_dim *d, rf_error *err)
{
    char field[128];
    if (!*name) return rf_error_field(err, RF_EINVAL, "", "a dimension's name must not be empty");
    if (strlen(name) > 100)
        return rf_error_field(err, RF_EINVAL, name, "a dimension's name must be at most 100 bytes");
    d->name = strdup(name);
    if (!d->name) return rf_errorf(err, RF_ENOMEM, "out of memory");
    if (!json_is_object(obj))
        return rf_error_field(err, RF_EINVAL, name,
                              "'%s' must be an object such as {\"type\": \"float\", \"low\": 0, "
                              "\"high\": 1}",
                              name);
    snprintf(field, sizeof field, "%s.type", name);
    const char *type = json_string_value(json_object_get(obj, "type"));
    int kind = -1;
    for (int k = 0; type && k < 5; k++)
        if (!strcmp(type, kind_names[k])) kind = k;
    if (kind < 0)
        return rf_error_field(err, RF_EINVAL, field,
                              "'%s' must be one of 'float', 'log_float', 'int', 'log_int', "
                              "'categorical'",
                              field);
    d->kind = (rf_hp_kind)kind;
    /* Refuse keys this type does not take, so a typo ("hgih") is not silently dropped. */
    const char *known = kind == RF_HP_CATEGORICAL ? "type, choices"
                        : kind == RF_HP_INT       ? "type, low, high, step"
                                                  : "type, low, high";
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = !strcmp(key, "type") ||
                  (kind == RF_HP_CATEGORICAL ? !strcmp(key, "choices")
                                             : !strcmp(key, "low") || !strcmp(key, "high") ||
                                                   (kind == RF_HP_INT && !strcmp(key, "step")));
        if (!ok) {
            snprintf(field, sizeof field, "%s.%s", name, key);
            return rf_error_field(err, RF_EINVAL, field,
                                  "'%s' is not a field of a %s dimension (known: %s)", field, type,
                                  known);
        }
    }
    d->step = 1;
    if (kind == RF_HP_CATEGORICAL) return parse_choices(obj, d, err);

    bool integer = kind == RF_HP_INT || kind == RF_HP_LOG_INT;
    int rc;
    if ((rc = number_field(obj, name, "low", integer, true, 0, &d->low, err)) ||
        (rc = number_field(obj, name, "high", integer, true, 0, &d->high, err)))
        return rc;
    if (kind == RF_HP_INT && (rc = number_field(obj, name, "step", true, false, 1, &d->step, err)))
        return rc;
    if (kind == RF_HP_INT && d->step < 1) {
        snprintf(field, sizeof field, "%s.step", name);
        return rf_error_field(err, RF_EINVAL, field, "'%s' must be a positive integer", field);
    }
    snprintf(field, sizeof field, "%s.low", name);
    if (kind == RF_HP_LOG_FLOAT && !(d->low > 0))
        return rf_error_field(err, RF_EINVAL, field, "'%s' must be above 0 for a log_float", field);
    if (kind == RF_HP_LOG_INT && d->low < 1)
        return rf_error_field(err, RF_EINVAL, field, "'%s' must be at least 1 for a log_int",
                              field);
    snprintf(field, sizeof field, "%s.high", name);
    /* A float range must have width (the unit cube divides by it); an int
     * range may hold a single value: its padded share still has width. */
    if (integer ? d->high < d->low : !(d->high > d->low))
        return rf_error_field(err, RF_EINVAL, field, "'%s' (%.17g) must be %s 'low' (%.17g)", field,
                              d->high, integer ? "at least" : "above", d->low);
    return 0;
}

int rf_hp_space_parse(const json_t *space, rf_hp_space *s, rf_error *err)
{
    memset(s, 0, sizeof *s);
    if (!json_is_object(space) || json_object_size(space) == 0)
        return rf_error_field(err, RF_EINVAL, "",
                              "a search space must be a non-empty object of dimensions, such as "
                              "{\"lr\": {\"type\": \"log_float\", \"low\": 1e-5, \"high\": 0.1}}");
    size_t n = json_object_size(space);
    if (n > RF_HP_MAX_DIMS)
        return rf_error_field(err, RF_EINVAL, "",
                              "a search space may hold at most %d dimensions (this one has %zu)",
                              RF_HP_MAX_DIMS, n);
    s->dims = calloc(n, sizeof *s->dims);
    if (!s->dims) return rf_errorf(err, RF_ENOMEM, "out of memory");
    const char *key;
    json_t *v;
    int rc = 0;
    /* json_object_foreach walks in insertion order (Jansson ≥ 2.8), which is the key order. */
    json_object_foreach((json_t *)space, key, v)
    {
        rc = parse_dim(key, v, &s->dims[s->n], err);
        s->n++;
        if (rc) goto fail;
    }
    return 0;
fail:
    rf_hp_space_free(s);
    return rc;
}

json_t *rf_hp_space_json(const rf_hp_space *s)
{
    json_t *out = json_object();
    for (int i = 0; out && i < s->n; i++) {
        const rf_hp_dim *d = &s->dims[i];
        json_t *o = json_pack("{s:s}", "type", kind_names[d->kind]);
        if (!o) goto fail;
        if (d->kind == RF_HP_CATEGORICAL) {
            json_t *c = json_array();
            for (int j = 0; c && j < d->n_choices; j++)
                json_array_append(c, d->choices[j]);
            json_object_set_new(o, "choices", c);
        } else if (d->kind == RF_HP_FLOAT || d->kind == RF_HP_LOG_FLOAT) {
            json_object_set_new(o, "low", json_real(d->low));
            json_object_set_new(o, "high", json_real(d->high));
        } else {
            json_object_set_new(o, "low", json_integer((json_int_t)d->low));
            json_object_set_new(o, "high", json_integer((json_int_t)d->high));
            if (d->kind == RF_HP_INT)
                json_object_set_new(o, "step", json_integer((json_int_t)d->step));
        }
        if (json_object_set_new(out, d->name, o)) goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

json_t *rf_hp_point_json(const rf_hp_space *s, const double *x)
{
    json_t *out = json_object();
    for (int i = 0; out && i < s->n; i++) {
        const rf_hp_dim *d = &s->dims[i];
        json_t *v;
        if (d->kind == RF_HP_CATEGORICAL) {
            int k = (int)x[i];
            if (k < 0) k = 0;
            if (k >= d->n_choices) k = d->n_choices - 1;
            v = json_incref(d->choices[k]);
        } else if (d->kind == RF_HP_INT || d->kind == RF_HP_LOG_INT) {
            v = json_integer((json_int_t)llround(x[i]));
        } else {
            v = json_real(x[i]);
        }
        if (json_object_set_new(out, d->name, v)) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* A told choice matches a stored one by value: 1 and 1.0 are the same number. */
static bool choice_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    return json_equal((json_t *)a, (json_t *)b);
}

int rf_hp_point_parse(const rf_hp_space *s, const json_t *params, double *x, rf_error *err)
{
    if (!json_is_object(params))
        return rf_error_field(err, RF_EINVAL, "",
                              "params must be an object of the space's "
                              "dimensions");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)params, key, v)
    {
        int i = 0;
        while (i < s->n && strcmp(s->dims[i].name, key))
            i++;
        if (i == s->n)
            return rf_error_field(err, RF_EINVAL, key, "'%s' is not a dimension of the space", key);
    }
    for (int i = 0; i < s->n; i++) {
        const rf_hp_dim *d = &s->dims[i];
        v = json_object_get(params, d->name);
        if (!v) return rf_error_field(err, RF_EINVAL, d->name, "'%s' is required", d->name);
        if (d->kind == RF_HP_CATEGORICAL) {
            int k = 0;
            while (k < d->n_choices && !choice_equal(d->choices[k], v))
                k++;
            if (k == d->n_choices)
                return rf_error_field(err, RF_EINVAL, d->name, "'%s' must be one of its %d choices",
                                      d->name, d->n_choices);
            x[i] = k;
            continue;
        }
        bool integer = d->kind == RF_HP_INT || d->kind == RF_HP_LOG_INT;
        if (integer ? !is_integral(v) : !json_is_number(v))
            return rf_error_field(err, RF_EINVAL, d->name, "'%s' must be %s", d->name,
                                  integer ? "an integer" : "a number");
        double val = json_number_value(v), top = rf_hp_dim_top(d);
        if (!(val >= d->low && val <= top))
            return rf_error_field(err, RF_EINVAL, d->name, "'%s' (%.17g) must be in [%.17g, %.17g]",
                                  d->name, val, d->low, top);
        if (d->kind == RF_HP_INT && fmod(val - d->low, d->step) != 0)
            return rf_error_field(err, RF_EINVAL, d->name,
                                  "'%s' (%.17g) must be %.17g plus a multiple of %.17g", d->name,
                                  val, d->low, d->step);
        x[i] = val;
    }
    return 0;
}

static double clamp01(double u)
{
    return u < 0 ? 0 : u > 1 ? 1 : u;
}

/* The padded interval a numeric dimension spans in its working scale
 * (log for log kinds): ints own [v - step/2, v + step/2] each. */
static void working_range(const rf_hp_dim *d, double *lo, double *hi)
{
    double top = rf_hp_dim_top(d);
    switch (d->kind) {
    case RF_HP_FLOAT:
        *lo = d->low, *hi = d->high;
        break;
    case RF_HP_LOG_FLOAT:
        *lo = log(d->low), *hi = log(d->high);
        break;
    case RF_HP_INT:
        *lo = d->low - 0.5 * d->step, *hi = top + 0.5 * d->step;
        break;
    case RF_HP_LOG_INT:
        *lo = log(d->low - 0.5), *hi = log(top + 0.5);
        break;
    default:
        *lo = 0, *hi = 1;
    }
}

double rf_hp_dim_to_unit(const rf_hp_dim *d, double x)
{
    if (d->kind == RF_HP_CATEGORICAL) return clamp01((floor(x) + 0.5) / d->n_choices);
    double lo, hi;
    working_range(d, &lo, &hi);
    double w = d->kind == RF_HP_LOG_FLOAT || d->kind == RF_HP_LOG_INT ? log(x) : x;
    return clamp01((w - lo) / (hi - lo));
}

double rf_hp_dim_from_unit(const rf_hp_dim *d, double u)
{
    u = clamp01(u);
    if (d->kind == RF_HP_CATEGORICAL) {
        int k = (int)floor(u * d->n_choices);
        return k >= d->n_choices ? d->n_choices - 1 : k;
    }
    double lo, hi, top = rf_hp_dim_top(d);
    working_range(d, &lo, &hi);
    double w = lo + u * (hi - lo);
    switch (d->kind) {
    case RF_HP_FLOAT:
        return fmin(fmax(w, d->low), d->high);
    case RF_HP_LOG_FLOAT:
        return fmin(fmax(exp(w), d->low), d->high);
    case RF_HP_INT: {
        double k = round((w - d->low) / d->step);
        return fmin(fmax(d->low + k * d->step, d->low), top);
    }
    default: /* RF_HP_LOG_INT */
        return fmin(fmax(round(exp(w)), d->low), top);
    }
}

void rf_hp_to_unit(const rf_hp_space *s, const double *x, double *u)
{
    for (int i = 0; i < s->n; i++)
        u[i] = rf_hp_dim_to_unit(&s->dims[i], x[i]);
}

void rf_hp_from_unit(const rf_hp_space *s, const double *u, double *x)
{
    for (int i = 0; i < s->n; i++)
        x[i] = rf_hp_dim_from_unit(&s->dims[i], u[i]);
}
