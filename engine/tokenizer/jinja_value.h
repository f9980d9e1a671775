/* Values of the template engine: what a Jinja2 expression evaluates to,
 * with Python's semantics for truth, equality, ordering, str() and repr()
 * (a template that prints a list gets Python's spelling of it), and
 * transformers' tojson (json.dumps with ensure_ascii=False, indent,
 * separators, sort_keys).
 *
 * Every value of one render lives in one arena that is freed at once when
 * the render ends, so values are plain 16-byte structs copied freely; the
 * arena has a byte cap, which is what bounds a hostile template's memory.
 * Lists, tuples and dicts from the data are never changed (the immutable
 * sandbox); only namespace() objects are. */
#ifndef RF_JINJA_VALUE_H
#define RF_JINJA_VALUE_H

#include <jansson.h>
#include <stddef.h>

#include "engine/core/error.h"
#include "engine/tokenizer/jinja_text.h"

typedef struct rf_jarena_blk rf_jarena_blk;
typedef struct rf_jarena {
    rf_jarena_blk *head;
    size_t used, max; /* bytes handed out; cap (0: none) */
} rf_jarena;

/* Zeroed memory, or NULL past the cap or out of memory. */
void *rf_jarena_alloc(rf_jarena *a, size_t n);
void rf_jarena_free(rf_jarena *a);

typedef enum rf_jv_type {
    RF_JV_UNDEF,
    RF_JV_NONE,
    RF_JV_BOOL,
    RF_JV_INT,
    RF_JV_FLOAT,
    RF_JV_STR,
    RF_JV_LIST,
    RF_JV_TUPLE,
    RF_JV_DICT,
    RF_JV_NS,    /* namespace(): a dict that `set ns.x = …` may change */
    RF_JV_MACRO, /* a macro (or a call block's caller) */
    RF_JV_FUNC,  /* a built-in function or a bound method */
    RF_JV_LOOP,  /* a for loop's `loop` */
} rf_jv_type;

typedef struct rf_jstr {
    size_t n;
    char s[]; /* n bytes of UTF-8, then a NUL */
} rf_jstr;

typedef struct rf_jv rf_jv;
typedef struct rf_jlist rf_jlist;
typedef struct rf_jdict rf_jdict;

/* Why a value is undefined, for the message when it is used. */
typedef struct rf_jundef {
    const char *name;  /* the variable, attribute or key (NUL-terminated) */
    const char *owner; /* "dict object" … when an attribute was missing, else NULL */
    int unsafe;        /* the attribute exists but the sandbox hides it */
    const char *hint;  /* a ready-made message instead (first of an empty list …) */
} rf_jundef;

struct rf_jv {
    unsigned char t;
    union {
        long long i; /* INT, BOOL */
        double f;
        const rf_jstr *s;
        rf_jlist *l; /* LIST, TUPLE */
        rf_jdict *d; /* DICT, NS */
        const rf_jundef *u;
        const void *p; /* MACRO, FUNC, LOOP: the evaluator's */
    } u;
};

struct rf_jlist {
    size_t n, cap;
    rf_jv *v;
};

struct rf_jdict {
    size_t n, cap;
    rf_jv *k, *v; /* insertion order, as Python's dict */
};

static inline rf_jv rf_jv_none(void)
{
    rf_jv v = {.t = RF_JV_NONE};
    return v;
}
static inline rf_jv rf_jv_bool(int b)
{
    rf_jv v = {.t = RF_JV_BOOL, .u.i = b != 0};
    return v;
}
static inline rf_jv rf_jv_int(long long i)
{
    rf_jv v = {.t = RF_JV_INT, .u.i = i};
    return v;
}
static inline rf_jv rf_jv_float(double f)
{
    rf_jv v = {.t = RF_JV_FLOAT, .u.f = f};
    return v;
}

/* Constructors; each returns 0 or RF_ETOOBIG (the arena's cap). */
int rf_jv_str(rf_jarena *a, const char *s, size_t n, rf_jv *out);
int rf_jv_undef(rf_jarena *a, const char *name, size_t n, const char *owner, int unsafe,
                rf_jv *out);
int rf_jv_list(rf_jarena *a, int type, size_t cap, rf_jv *out);
int rf_jv_list_push(rf_jarena *a, rf_jlist *l, rf_jv v);
int rf_jv_dict(rf_jarena *a, int type, size_t cap, rf_jv *out);
/* Insert or replace. */
int rf_jv_dict_set(rf_jarena *a, rf_jdict *d, rf_jv k, rf_jv v);
/* The value at key k, or NULL. */
rf_jv *rf_jv_dict_get(const rf_jdict *d, rf_jv k);
rf_jv *rf_jv_dict_gets(const rf_jdict *d, const char *k, size_t n);

/* JSON data → values (objects become dicts, arrays lists, numbers int or
 * float as json.loads reads them). */
int rf_jv_from_json(rf_jarena *a, const json_t *j, rf_jv *out);

int rf_jv_truthy(rf_jv v);
/* Python ==: 1 == 1.0 == True, lists and dicts element-wise. */
int rf_jv_eq(rf_jv a, rf_jv b);
/* Python <: numbers, strings (code point order), lists and tuples;
 * RF_EINVAL for other pairs. *lt receives a < b. */
int rf_jv_lt(rf_jv a, rf_jv b, int *lt, rf_error *err);
/* Python's type name: "str", "int", "dict", "NoneType" … */
const char *rf_jv_type_name(rf_jv v);
/* Jinja's object description for messages: "dict object", "None" … */
const char *rf_jv_owner_name(rf_jv v);
int rf_jv_is_seq(rf_jv v); /* LIST or TUPLE */
int rf_jv_is_map(rf_jv v); /* DICT or NS */

/* str(v) and repr(v) appended to b; RF_ETOOBIG when b is full, RF_EINVAL
 * for values with no stable spelling (a bound method's address). */
int rf_jv_to_str(rf_jbuf *b, rf_jv v, rf_error *err);
int rf_jv_repr(rf_jbuf *b, rf_jv v, rf_error *err);
/* str(v) as a value (a string stays itself). */
int rf_jv_stringify(rf_jarena *a, rf_jv v, size_t max, rf_jv *out, rf_error *err);

/* json.dumps(v, ensure_ascii=False, indent=…, separators=…, sort_keys=…):
 * indent NULL for none (a number becomes that many spaces, a string itself);
 * item_sep/key_sep NULL for Python's defaults. */
typedef struct rf_jjson_opts {
    const char *indent; /* NULL: no newlines */
    size_t indent_n;
    const char *item_sep, *key_sep;
    size_t item_n, key_n;
    int sort_keys;
    int ensure_ascii; /* \uXXXX for every non-ASCII character */
} rf_jjson_opts;
int rf_jv_tojson(rf_jbuf *b, rf_jv v, const rf_jjson_opts *o, rf_error *err);

#endif
