/* The template parser: Jinja2 3.1's grammar (parser.py) over the lexer's
 * tokens — statements for, if/elif/else, set (and block set), macro, call,
 * filter, with, block, break/continue (the loopcontrols extension) and
 * transformers' {% generation %}; expressions with Jinja's precedence
 * (condexpr < or < and < not < compare < + - < ~ < * / // % < ** < unary <
 * postfix and filters). Unknown tags, filters and tests are refused here,
 * as Jinja refuses them when it compiles, with line and column. */
#ifndef RF_JINJA_PARSE_H
#define RF_JINJA_PARSE_H

#include "engine/core/error.h"
#include "engine/tokenizer/jinja_ast.h"
#include "engine/tokenizer/jinja_lex.h"

int rf_jinja_parse(rf_jarena *a, const rf_jtoks *toks, rf_jnodes *body, rf_error *err);

#endif
