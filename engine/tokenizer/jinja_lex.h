/* The template lexer: Jinja2 3.1's tokenizer configured as transformers
 * configures it (default delimiters, trim_blocks, lstrip_blocks, no
 * trailing newline kept). Whitespace control is settled here, as Jinja
 * settles it: `{%-`/`-%}` strip all whitespace on that side, `{%+`/`+%}`
 * keep it, lstrip_blocks removes spaces and tabs from a line's start up to
 * a block or comment tag, trim_blocks one newline after a block or comment
 * tag. Data comes out with \r\n and \r already turned into \n. */
#ifndef RF_JINJA_LEX_H
#define RF_JINJA_LEX_H

#include <stddef.h>

#include "engine/core/error.h"
#include "engine/tokenizer/jinja_value.h"

typedef enum rf_jtok_type {
    RF_JT_EOF,
    RF_JT_DATA,
    RF_JT_VAR_BEGIN,
    RF_JT_VAR_END,
    RF_JT_BLOCK_BEGIN,
    RF_JT_BLOCK_END,
    RF_JT_NAME,
    RF_JT_STRING,
    RF_JT_INT,
    RF_JT_FLOAT,
    RF_JT_OP,
} rf_jtok_type;

typedef enum rf_jop {
    RF_JOP_ADD,
    RF_JOP_SUB,
    RF_JOP_DIV,
    RF_JOP_FLOORDIV,
    RF_JOP_MUL,
    RF_JOP_MOD,
    RF_JOP_POW,
    RF_JOP_TILDE,
    RF_JOP_LBRACKET,
    RF_JOP_RBRACKET,
    RF_JOP_LPAREN,
    RF_JOP_RPAREN,
    RF_JOP_LBRACE,
    RF_JOP_RBRACE,
    RF_JOP_EQ,
    RF_JOP_NE,
    RF_JOP_GT,
    RF_JOP_GTEQ,
    RF_JOP_LT,
    RF_JOP_LTEQ,
    RF_JOP_ASSIGN,
    RF_JOP_DOT,
    RF_JOP_COLON,
    RF_JOP_PIPE,
    RF_JOP_COMMA,
    RF_JOP_SEMICOLON,
} rf_jop;

typedef struct rf_jtok {
    int type, op;
    const char *s; /* DATA and NAME text, STRING value (NUL-terminated) */
    size_t n;
    long long i;
    double f;
    int line, col; /* 1-based, col in code points */
} rf_jtok;

typedef struct rf_jtoks {
    rf_jtok *v;
    size_t n;
} rf_jtoks;

/* Tokens of src (valid UTF-8) into the arena; RF_EINVAL with line and
 * column for a lexical error (an unclosed tag, string or comment). */
int rf_jinja_lex(rf_jarena *a, const char *src, size_t n, rf_jtoks *out, rf_error *err);

#endif
