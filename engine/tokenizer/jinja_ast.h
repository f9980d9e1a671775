/* The syntax tree the parser builds and the evaluator walks: one node type
 * for statements and expressions, its fields read per kind (below). The
 * tree lives in the compiled template's arena and is never changed after
 * parsing, so one compiled template serves any number of renders, also at
 * once from several threads. */
#ifndef RF_JINJA_AST_H
#define RF_JINJA_AST_H

#include <stddef.h>

#include "engine/tokenizer/jinja_value.h"

typedef enum rf_jkind {
    /* statements */
    RF_JN_DATA,        /* name: the text */
    RF_JN_OUTPUT,      /* a: the expression printed */
    RF_JN_IF,          /* a: test, list: body, list2: else (an elif is an IF there) */
    RF_JN_FOR,         /* a: target, b: iterable, c: filter or NULL, list: body, list2: else */
    RF_JN_SET,         /* a: target (NAME, TUPLE of names, NSATTR), b: value */
    RF_JN_SETBLOCK,    /* a: target, b: filter chain or NULL, list: body */
    RF_JN_MACRO,       /* name, names: parameters, list2: defaults of the last ones, list: body */
    RF_JN_CALLBLOCK,   /* a: the CALL, names/list2: caller's parameters and defaults, list: body */
    RF_JN_FILTERBLOCK, /* b: filter chain (innermost operand NULL), list: body */
    RF_JN_WITH,        /* names: targets, list2: values, list: body */
    RF_JN_SCOPE,       /* list: body (a block, or {% generation %}) */
    RF_JN_BREAK,
    RF_JN_CONTINUE,
    /* expressions */
    RF_JN_CONST,   /* value */
    RF_JN_NAME,    /* name */
    RF_JN_NSATTR,  /* a: NAME, name: attribute (only as a set target) */
    RF_JN_TUPLE,   /* list: items */
    RF_JN_LIST,    /* list: items */
    RF_JN_DICT,    /* list: keys, list2: values */
    RF_JN_GETATTR, /* a: object, name: attribute */
    RF_JN_GETITEM, /* a: object, b: key or SLICE */
    RF_JN_SLICE,   /* a, b, c: start, stop, step (each may be NULL) */
    RF_JN_CALL,    /* a: callee, list: args, names/list2: keyword args, b: *args, c: **kwargs */
    RF_JN_FILTER,  /* a: operand, name, op: filter id, arguments as CALL */
    RF_JN_TEST,    /* a: operand, name, op: test id, arguments as CALL */
    RF_JN_NOT,     /* a */
    RF_JN_NEG,     /* a */
    RF_JN_POS,     /* a */
    RF_JN_BIN,     /* op (RF_JB_…), a, b */
    RF_JN_CONCAT,  /* list: operands of ~ */
    RF_JN_COMPARE, /* a: first operand, list: OPERAND nodes */
    RF_JN_OPERAND, /* op (RF_JB_EQ …), a */
    RF_JN_COND,    /* a: test, b: value when true, c: else or NULL */
} rf_jkind;

typedef enum rf_jbinop {
    RF_JB_ADD,
    RF_JB_SUB,
    RF_JB_MUL,
    RF_JB_DIV,
    RF_JB_FLOORDIV,
    RF_JB_MOD,
    RF_JB_POW,
    RF_JB_AND,
    RF_JB_OR,
    RF_JB_EQ,
    RF_JB_NE,
    RF_JB_LT,
    RF_JB_LTEQ,
    RF_JB_GT,
    RF_JB_GTEQ,
    RF_JB_IN,
    RF_JB_NOTIN,
} rf_jbinop;

typedef struct rf_jnode rf_jnode;

typedef struct rf_jnodes {
    rf_jnode **v;
    size_t n;
} rf_jnodes;

typedef struct rf_jname {
    const char *s; /* NUL-terminated */
    size_t n;
} rf_jname;

struct rf_jnode {
    int kind, op;
    int line, col;
    rf_jname name;
    rf_jv value;
    rf_jnode *a, *b, *c;
    rf_jnodes list, list2;
    rf_jname *names;
    size_t n_names;
};

#endif
