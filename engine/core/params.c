#include "engine/core/params.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *type_name(rf_param_type t)
{
    static const char *const names[] = {"string", "integer", "number", "boolean",
                                        "enum",   "object",  "array",  "any"};
    return names[t];
}

void rf_params_names(const rf_param *spec, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap) buf[0] = '\0';
    for (const rf_param *p = spec; p && p->name && n + 1 < cap; p++) {
        int w = snprintf(buf + n, cap - n, "%s%s", p == spec ? "" : ", ", p->name);
        if (w < 0) break;
        n += (size_t)w;
    }
}

const rf_param *rf_param_find(const rf_param *spec, const char *name)
{
    for (const rf_param *p = spec; p && p->name; p++)
        if (!strcmp(p->name, name)) return p;
    return NULL;
}

static void join(char *out, size_t cap, const char *path, const char *name)
{
    snprintf(out, cap, "%s%s%s", path, *path && *name ? "." : "", name);
}

static bool bounded(const rf_param *p)
{
    return p->lo != 0 || p->hi != 0;
}

/* "[lo, hi]" with the open ends the flags say. */
static void range_text(const rf_param *p, char *buf, size_t cap)
{
    snprintf(buf, cap, "%c%.17g, %.17g%c", p->flags & RF_PARAM_LO_OPEN ? '(' : '[', p->lo, p->hi,
             p->flags & RF_PARAM_HI_OPEN ? ')' : ']');
}

static bool in_range(const rf_param *p, double v)
{
    if (!bounded(p)) return true;
    if (v < p->lo || v > p->hi) return false;
    if ((p->flags & RF_PARAM_LO_OPEN) && v == p->lo) return false;
    if ((p->flags & RF_PARAM_HI_OPEN) && v == p->hi) return false;
    return true;
}

static int check_value(const json_t *v, const rf_param *p, const char *field, rf_error *err);

static int check_choices(const json_t *v, const rf_param *p, const char *field, rf_error *err)
{
    if (json_is_string(v))
        for (const char *const *c = p->choices; c && *c; c++)
            if (!strcmp(*c, json_string_value(v))) return 0;
    char list[512] = "";
    size_t n = 0;
    for (const char *const *c = p->choices; c && *c && n + 1 < sizeof list; c++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s'%s'", c == p->choices ? "" : ", ", *c);
    return rf_error_field(err, RF_EINVAL, field, "'%s' must be one of %s", field, list);
}

static int check_value(const json_t *v, const rf_param *p, const char *field, rf_error *err)
{
    char r[96];
    switch (p->type) {
    case RF_PARAM_STRING:
        if (!json_is_string(v) || !*json_string_value(v))
            return rf_error_field(err, RF_EINVAL, field, "'%s' must be a non-empty string%s%s",
                                  field, p->help ? ": " : "", p->help ? p->help : "");
        return 0;
    case RF_PARAM_INT:
        if (!json_is_integer(v) || !in_range(p, (double)json_integer_value(v))) {
            if (!bounded(p))
                return rf_error_field(err, RF_EINVAL, field, "'%s' must be an integer", field);
            return rf_error_field(err, RF_EINVAL, field, "'%s' must be an integer in [%lld, %lld]",
                                  field, (long long)p->lo, (long long)p->hi);
        }
        return 0;
    case RF_PARAM_NUMBER:
        if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
            !in_range(p, json_number_value(v))) {
            range_text(p, r, sizeof r);
            return rf_error_field(err, RF_EINVAL, field, "'%s' must be a number%s%s", field,
                                  bounded(p) ? " in " : "", bounded(p) ? r : "");
        }
        return 0;
    case RF_PARAM_BOOL:
        if (!json_is_boolean(v))
            return rf_error_field(err, RF_EINVAL, field, "'%s' must be true or false", field);
        return 0;
    case RF_PARAM_ENUM:
        return check_choices(v, p, field, err);
    case RF_PARAM_OBJECT:
        if (!json_is_object(v))
            return rf_error_field(err, RF_EINVAL, field, "'%s' must be an object%s%s", field,
                                  p->help ? ": " : "", p->help ? p->help : "");
        if (!p->fields) return 0;
        if (p->flags & RF_PARAM_OPEN) {
            /* only the fields the table names are checked */
            for (const rf_param *f = p->fields; f->name; f++) {
                json_t *fv = json_object_get(v, f->name);
                char sub[256];
                join(sub, sizeof sub, field, f->name);
                if (fv && !(json_is_null(fv) && (f->flags & RF_PARAM_NULLABLE))) {
                    int rc = check_value(fv, f, sub, err);
                    if (rc < 0) return rc;
                }
            }
            return 0;
        }
        return rf_params_check(v, p->fields, field, err);
    case RF_PARAM_ARRAY: {
        if (!json_is_array(v))
            return rf_error_field(err, RF_EINVAL, field, "'%s' must be an array%s%s", field,
                                  p->help ? ": " : "", p->help ? p->help : "");
        size_t n = json_array_size(v);
        if (bounded(p) && (n < (size_t)p->lo || n > (size_t)p->hi))
            return rf_error_field(err, RF_EINVAL, field, "'%s' must have %lld to %lld elements",
                                  field, (long long)p->lo, (long long)p->hi);
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%zu]", field, i);
            int rc = p->items ? check_value(e, p->items, sub, err) : 0;
            if (rc < 0) return rc;
        }
        return 0;
    }
    case RF_PARAM_JSON:
        return 0;
    }
    return 0;
}

int rf_params_check(const json_t *obj, const rf_param *spec, const char *path, rf_error *err)
{
    if (obj && !json_is_object(obj))
        return rf_error_field(err, RF_EINVAL, path, "%s%smust be an object", path,
                              *path ? " " : "params ");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (rf_param_find(spec, k)) continue;
        char field[256], names[768];
        join(field, sizeof field, path, k);
        rf_params_names(spec, names, sizeof names);
        return rf_error_field(err, RF_EINVAL, field, "unknown parameter '%s'; known: %s", field,
                              names);
    }
    for (const rf_param *p = spec; p->name; p++) {
        char field[256];
        join(field, sizeof field, path, p->name);
        v = obj ? json_object_get(obj, p->name) : NULL;
        if (v && json_is_null(v) && (p->flags & RF_PARAM_NULLABLE)) v = NULL;
        if (!v) {
            if (p->flags & RF_PARAM_REQUIRED)
                return rf_error_field(err, RF_EINVAL, field, "'%s' is required%s%s", field,
                                      p->help ? ": " : "", p->help ? p->help : "");
            continue;
        }
        int rc = check_value(v, p, field, err);
        if (rc < 0) return rc;
    }
    return 0;
}

/* The value of name in obj, or NULL (absent, null, or not in the table). */
static const json_t *value(const json_t *obj, const rf_param *p, const char *name)
{
    if (!p || !obj) return NULL;
    const json_t *v = json_object_get(obj, name);
    return v && !json_is_null(v) ? v : NULL;
}

/* The default of p parsed (a new reference), or NULL. */
static json_t *parsed_default(const rf_param *p)
{
    if (!p || !p->def) return NULL;
    if (p->type == RF_PARAM_STRING || p->type == RF_PARAM_ENUM) return json_string(p->def);
    return json_loads(p->def, JSON_DECODE_ANY, NULL);
}

long long rf_param_int(const json_t *obj, const rf_param *spec, const char *name,
                       long long fallback)
{
    const rf_param *p = rf_param_find(spec, name);
    const json_t *v = value(obj, p, name);
    if (v && json_is_integer(v)) return json_integer_value(v);
    json_t *d = parsed_default(p);
    long long out = json_is_integer(d) ? json_integer_value(d) : fallback;
    json_decref(d);
    return out;
}

double rf_param_num(const json_t *obj, const rf_param *spec, const char *name, double fallback)
{
    const rf_param *p = rf_param_find(spec, name);
    const json_t *v = value(obj, p, name);
    if (v && json_is_number(v)) return json_number_value(v);
    json_t *d = parsed_default(p);
    double out = json_is_number(d) ? json_number_value(d) : fallback;
    json_decref(d);
    return out;
}

bool rf_param_bool(const json_t *obj, const rf_param *spec, const char *name, bool fallback)
{
    const rf_param *p = rf_param_find(spec, name);
    const json_t *v = value(obj, p, name);
    if (v && json_is_boolean(v)) return json_is_true(v);
    json_t *d = parsed_default(p);
    bool out = json_is_boolean(d) ? json_is_true(d) : fallback;
    json_decref(d);
    return out;
}

const char *rf_param_str(const json_t *obj, const rf_param *spec, const char *name,
                         const char *fallback)
{
    const rf_param *p = rf_param_find(spec, name);
    const json_t *v = value(obj, p, name);
    if (v && json_is_string(v)) return json_string_value(v);
    return p && p->def && (p->type == RF_PARAM_STRING || p->type == RF_PARAM_ENUM) ? p->def
                                                                                   : fallback;
}

int rf_param_enum(const json_t *obj, const rf_param *spec, const char *name, int fallback)
{
    const rf_param *p = rf_param_find(spec, name);
    const char *s = rf_param_str(obj, spec, name, NULL);
    for (int i = 0; p && s && p->choices && p->choices[i]; i++)
        if (!strcmp(p->choices[i], s)) return i;
    return fallback;
}

static int refs_value(const json_t *v, const rf_param *p, const char *field, rf_param_ref_fn fn,
                      void *user)
{
    if (p->ref && json_is_string(v)) return fn(user, p->ref, field, json_string_value(v));
    if (p->type == RF_PARAM_OBJECT && p->fields && json_is_object(v))
        return rf_params_refs(v, p->fields, field, fn, user);
    if (p->type == RF_PARAM_ARRAY && p->items && json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%zu]", field, i);
            int rc = refs_value(e, p->items, sub, fn, user);
            if (rc) return rc;
        }
    }
    return 0;
}

int rf_params_refs(const json_t *obj, const rf_param *spec, const char *path, rf_param_ref_fn fn,
                   void *user)
{
    for (const rf_param *p = spec; p && p->name; p++) {
        const json_t *v = json_object_get(obj, p->name);
        if (!v) continue;
        char field[256];
        join(field, sizeof field, path, p->name);
        int rc = refs_value(v, p, field, fn, user);
        if (rc) return rc;
    }
    return 0;
}

static json_t *describe_one(const rf_param *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(p->name ? p->name : "item"));
    json_object_set_new(o, "type", json_string(type_name(p->type)));
    if (p->help) json_object_set_new(o, "description", json_string(p->help));
    json_object_set_new(o, "required", json_boolean(p->flags & RF_PARAM_REQUIRED));
    json_t *d = parsed_default(p);
    if (d) json_object_set_new(o, "default", d);
    if (bounded(p) && (p->type == RF_PARAM_INT || p->type == RF_PARAM_NUMBER)) {
        json_object_set_new(o, "minimum",
                            p->type == RF_PARAM_INT ? json_integer((json_int_t)p->lo)
                                                    : json_real(p->lo));
        json_object_set_new(o, "maximum",
                            p->type == RF_PARAM_INT ? json_integer((json_int_t)p->hi)
                                                    : json_real(p->hi));
        if (p->flags & RF_PARAM_LO_OPEN) json_object_set_new(o, "exclusive_minimum", json_true());
        if (p->flags & RF_PARAM_HI_OPEN) json_object_set_new(o, "exclusive_maximum", json_true());
    }
    if (bounded(p) && p->type == RF_PARAM_ARRAY) {
        json_object_set_new(o, "min_items", json_integer((json_int_t)p->lo));
        json_object_set_new(o, "max_items", json_integer((json_int_t)p->hi));
    }
    if (p->choices) {
        json_t *e = json_array();
        for (const char *const *c = p->choices; *c; c++)
            json_array_append_new(e, json_string(*c));
        json_object_set_new(o, "enum", e);
    }
    if (p->ref) json_object_set_new(o, "ref", json_string(p->ref));
    if (p->type == RF_PARAM_OBJECT && p->fields)
        json_object_set_new(o, "fields", rf_params_describe(p->fields));
    if (p->type == RF_PARAM_ARRAY && p->items)
        json_object_set_new(o, "items", describe_one(p->items));
    return o;
}

json_t *rf_params_describe(const rf_param *spec)
{
    json_t *a = json_array();
    for (const rf_param *p = spec; p && p->name; p++)
        json_array_append_new(a, describe_one(p));
    return a;
}
