#include "engine/tokenizer/jinja_parse.h"

#include <string.h>

#include "engine/tokenizer/jinja_filters.h"

/* Deeper nesting than this (brackets, unary minus, blocks) is refused
 * before it can exhaust the C stack. */
#define MAX_NEST 200

typedef struct parser {
    rf_jarena *a;
    const rf_jtok *t;
    size_t n, i;
    int nest;
    char tags[MAX_NEST][24]; /* blocks open, for messages and break/continue */
    int ntags;
    rf_error *err;
} parser;

typedef struct ends {
    const char *v[4];
} ends;

static const rf_jtok *cur(parser *P)
{
    return &P->t[P->i];
}

static const rf_jtok *peek(parser *P, size_t k)
{
    return &P->t[P->i + k < P->n ? P->i + k : P->n - 1];
}

static void next(parser *P)
{
    if (P->i + 1 < P->n) P->i++;
}

static const char *describe(const rf_jtok *t, char *buf, size_t n)
{
    static const char *const names[] = {[RF_JT_EOF] = "end of template",
                                        [RF_JT_DATA] = "template data",
                                        [RF_JT_VAR_BEGIN] = "begin of print statement",
                                        [RF_JT_VAR_END] = "end of print statement",
                                        [RF_JT_BLOCK_BEGIN] = "begin of statement block",
                                        [RF_JT_BLOCK_END] = "end of statement block"};
    if (t->type == RF_JT_NAME || t->type == RF_JT_OP || t->type == RF_JT_INT ||
        t->type == RF_JT_FLOAT)
        snprintf(buf, n, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
    else if (t->type == RF_JT_STRING)
        snprintf(buf, n, "a string");
    else
        snprintf(buf, n, "%s", names[t->type]);
    return buf;
}

static int fail_at(parser *P, const rf_jtok *t, const char *fmt, const char *arg)
{
    char msg[300];
    snprintf(msg, sizeof msg, fmt, arg);
    return rf_errorf(P->err, RF_EINVAL, "template syntax error at line %d, column %d: %s", t->line,
                     t->col, msg);
}

static int unexpected(parser *P, const char *wanted)
{
    char d[64], m[200];
    snprintf(m, sizeof m, "expected %s, got %s", wanted, describe(cur(P), d, sizeof d));
    return fail_at(P, cur(P), "%s", m);
}

static int is_op(parser *P, int op)
{
    return cur(P)->type == RF_JT_OP && cur(P)->op == op;
}

static int is_name(const rf_jtok *t, const char *s)
{
    return t->type == RF_JT_NAME && t->n == strlen(s) && !memcmp(t->s, s, t->n);
}

static int expect_op(parser *P, int op, const char *what)
{
    if (!is_op(P, op)) return unexpected(P, what);
    next(P);
    return 0;
}

static int expect(parser *P, int type, const char *what)
{
    if (cur(P)->type != type) return unexpected(P, what);
    next(P);
    return 0;
}

static int node(parser *P, int kind, const rf_jtok *at, rf_jnode **out)
{
    rf_jnode *n = rf_jarena_alloc(P->a, sizeof *n);
    *out = n;
    if (!n) return rf_errorf(P->err, RF_ETOOBIG, "the template is too large");
    n->kind = kind, n->line = at->line, n->col = at->col;
    *out = n;
    return 0;
}

static int add(parser *P, rf_jnodes *l, rf_jnode *n)
{
    /* Lists grow by doubling; the count is a power of two at each growth. */
    if ((l->n & (l->n - 1)) == 0) {
        size_t cap = l->n ? 2 * l->n : 1;
        rf_jnode **v = rf_jarena_alloc(P->a, cap * sizeof *v);
        if (!v) return rf_errorf(P->err, RF_ETOOBIG, "the template is too large");
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
    }
    l->v[l->n++] = n;
    return 0;
}

static int add_name(parser *P, rf_jnode *n, const rf_jtok *t)
{
    if ((n->n_names & (n->n_names - 1)) == 0) {
        size_t cap = n->n_names ? 2 * n->n_names : 1;
        rf_jname *v = rf_jarena_alloc(P->a, cap * sizeof *v);
        if (!v) return rf_errorf(P->err, RF_ETOOBIG, "the template is too large");
        if (n->n_names) memcpy(v, n->names, n->n_names * sizeof *v);
        n->names = v;
    }
    char *s = rf_jarena_alloc(P->a, t->n + 1);
    if (!s) return rf_errorf(P->err, RF_ETOOBIG, "the template is too large");
    memcpy(s, t->s, t->n);
    n->names[n->n_names++] = (rf_jname){s, t->n};
    return 0;
}

static int set_name(parser *P, rf_jname *d, const rf_jtok *t)
{
    char *s = rf_jarena_alloc(P->a, t->n + 1);
    if (!s) return rf_errorf(P->err, RF_ETOOBIG, "the template is too large");
    memcpy(s, t->s, t->n);
    *d = (rf_jname){s, t->n};
    return 0;
}

static int expression(parser *P, int condexpr, rf_jnode **out);
static int tuple(parser *P, int simplified, int condexpr, const char *end_name, int parens,
                 rf_jnode **out);
static int unary(parser *P, int with_filter, rf_jnode **out);
static int primary(parser *P, rf_jnode **out);
static int postfix(parser *P, rf_jnode **n);

static int enter(parser *P)
{
    if (++P->nest > MAX_NEST) return fail_at(P, cur(P), "%s", "expression nested too deeply");
    return 0;
}

/* ( args, kw=value, *args, **kwargs ) into a CALL/FILTER/TEST node. */
static int call_args(parser *P, rf_jnode *n)
{
    int rc;
    if ((rc = expect_op(P, RF_JOP_LPAREN, "'('"))) return rc;
    int comma = 0;
    while (!is_op(P, RF_JOP_RPAREN)) {
        if (comma) {
            if ((rc = expect_op(P, RF_JOP_COMMA, "','"))) return rc;
            if (is_op(P, RF_JOP_RPAREN)) break;
        }
        rf_jnode *v;
        if (is_op(P, RF_JOP_MUL) || is_op(P, RF_JOP_POW)) {
            int star = is_op(P, RF_JOP_MUL);
            if ((star ? n->b : n->c) != NULL)
                return fail_at(P, cur(P), "%s", "invalid syntax for function call expression");
            next(P);
            if ((rc = expression(P, 1, &v))) return rc;
            if (star)
                n->b = v;
            else
                n->c = v;
        } else if (cur(P)->type == RF_JT_NAME && peek(P, 1)->type == RF_JT_OP &&
                   peek(P, 1)->op == RF_JOP_ASSIGN) {
            if (n->c)
                return fail_at(P, cur(P), "%s", "invalid syntax for function call expression");
            const rf_jtok *k = cur(P);
            next(P), next(P);
            if ((rc = expression(P, 1, &v)) || (rc = add_name(P, n, k)) ||
                (rc = add(P, &n->list2, v)))
                return rc;
        } else {
            if (n->b || n->c || n->n_names)
                return fail_at(P, cur(P), "%s", "invalid syntax for function call expression");
            if ((rc = expression(P, 1, &v)) || (rc = add(P, &n->list, v))) return rc;
        }
        comma = 1;
    }
    next(P);
    return 0;
}

/* name(.name)* of a filter or test. */
static int dotted(parser *P, rf_jname *out, const rf_jtok **at)
{
    *at = cur(P);
    if (cur(P)->type != RF_JT_NAME) return unexpected(P, "a name");
    const char *s = cur(P)->s;
    size_t n = cur(P)->n;
    next(P);
    while (is_op(P, RF_JOP_DOT) && peek(P, 1)->type == RF_JT_NAME) {
        n = (size_t)(peek(P, 1)->s + peek(P, 1)->n - s);
        next(P), next(P);
    }
    rf_jtok t = {.s = s, .n = n};
    return set_name(P, out, &t);
}

static int filter(parser *P, rf_jnode *operand, int inline_start, rf_jnode **out)
{
    int rc;
    while (is_op(P, RF_JOP_PIPE) || inline_start) {
        if (!inline_start) next(P);
        inline_start = 0;
        rf_jnode *f;
        const rf_jtok *at;
        if ((rc = node(P, RF_JN_FILTER, cur(P), &f)) || (rc = dotted(P, &f->name, &at))) return rc;
        if ((f->op = rf_jinja_filter_id(f->name.s, f->name.n)) < 0)
            return fail_at(P, at, "no filter named '%s'", f->name.s);
        if (is_op(P, RF_JOP_LPAREN) && (rc = call_args(P, f))) return rc;
        f->a = operand;
        operand = f;
    }
    *out = operand;
    return 0;
}

static int test(parser *P, rf_jnode *operand, rf_jnode **out)
{
    int rc;
    next(P); /* is */
    int negated = 0;
    if (is_name(cur(P), "not")) negated = 1, next(P);
    rf_jnode *t;
    const rf_jtok *at;
    if ((rc = node(P, RF_JN_TEST, cur(P), &t)) || (rc = dotted(P, &t->name, &at))) return rc;
    if ((t->op = rf_jinja_test_id(t->name.s, t->name.n)) < 0)
        return fail_at(P, at, "no test named '%s'", t->name.s);
    t->a = operand;
    const rf_jtok *c = cur(P);
    if (is_op(P, RF_JOP_LPAREN)) {
        if ((rc = call_args(P, t))) return rc;
    } else if ((c->type == RF_JT_NAME || c->type == RF_JT_STRING || c->type == RF_JT_INT ||
                c->type == RF_JT_FLOAT ||
                (c->type == RF_JT_OP && (c->op == RF_JOP_LBRACKET || c->op == RF_JOP_LBRACE))) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) return fail_at(P, c, "%s", "You cannot chain multiple tests with is");
        rf_jnode *arg;
        if ((rc = primary(P, &arg)) || (rc = postfix(P, &arg)) || (rc = add(P, &t->list, arg)))
            return rc;
    }
    if (negated) {
        rf_jnode *n;
        if ((rc = node(P, RF_JN_NOT, at, &n))) return rc;
        n->a = t;
        t = n;
    }
    *out = t;
    return 0;
}

static int call(parser *P, rf_jnode *callee, rf_jnode **out)
{
    rf_jnode *c;
    int rc;
    if ((rc = node(P, RF_JN_CALL, cur(P), &c)) || (rc = call_args(P, c))) return rc;
    c->a = callee;
    *out = c;
    return 0;
}

/* One subscript: an expression or a slice start:stop:step. */
static int subscribed(parser *P, rf_jnode **out)
{
    int rc;
    const rf_jtok *at = cur(P);
    rf_jnode *first = NULL;
    if (!is_op(P, RF_JOP_COLON)) {
        if ((rc = expression(P, 1, &first))) return rc;
        if (!is_op(P, RF_JOP_COLON)) {
            *out = first;
            return 0;
        }
    }
    next(P);
    rf_jnode *s;
    if ((rc = node(P, RF_JN_SLICE, at, &s))) return rc;
    s->a = first;
    if (!is_op(P, RF_JOP_COLON) && !is_op(P, RF_JOP_RBRACKET) && !is_op(P, RF_JOP_COMMA) &&
        (rc = expression(P, 1, &s->b)))
        return rc;
    if (is_op(P, RF_JOP_COLON)) {
        next(P);
        if (!is_op(P, RF_JOP_RBRACKET) && !is_op(P, RF_JOP_COMMA) && (rc = expression(P, 1, &s->c)))
            return rc;
    }
    *out = s;
    return 0;
}

static int subscript(parser *P, rf_jnode **n)
{
    int rc;
    const rf_jtok *at = cur(P);
    rf_jnode *g;
    if (is_op(P, RF_JOP_DOT)) {
        next(P);
        const rf_jtok *t = cur(P);
        if (t->type == RF_JT_NAME) {
            if ((rc = node(P, RF_JN_GETATTR, at, &g)) || (rc = set_name(P, &g->name, t))) return rc;
            next(P);
            g->a = *n;
            *n = g;
            return 0;
        }
        if (t->type != RF_JT_INT) return unexpected(P, "a name or number");
        rf_jnode *k;
        if ((rc = node(P, RF_JN_GETITEM, at, &g)) || (rc = node(P, RF_JN_CONST, t, &k))) return rc;
        k->value = rf_jv_int(t->i);
        next(P);
        g->a = *n, g->b = k;
        *n = g;
        return 0;
    }
    next(P); /* [ */
    rf_jnode *tup = NULL, *arg = NULL;
    while (!is_op(P, RF_JOP_RBRACKET)) {
        if (arg) {
            if ((rc = expect_op(P, RF_JOP_COMMA, "','"))) return rc;
            if (!tup) {
                if ((rc = node(P, RF_JN_TUPLE, at, &tup)) || (rc = add(P, &tup->list, arg)))
                    return rc;
            }
        }
        if ((rc = subscribed(P, &arg))) return rc;
        if (tup && (rc = add(P, &tup->list, arg))) return rc;
    }
    if (!arg) return fail_at(P, at, "%s", "expected subscript expression");
    next(P);
    if ((rc = node(P, RF_JN_GETITEM, at, &g))) return rc;
    g->a = *n, g->b = tup ? tup : arg;
    *n = g;
    return 0;
}

static int postfix(parser *P, rf_jnode **n)
{
    int rc;
    for (;;) {
        if (is_op(P, RF_JOP_DOT) || is_op(P, RF_JOP_LBRACKET)) {
            if ((rc = subscript(P, n))) return rc;
        } else if (is_op(P, RF_JOP_LPAREN)) {
            if ((rc = call(P, *n, n))) return rc;
        } else {
            return 0;
        }
    }
}

static int filter_expr(parser *P, rf_jnode **n)
{
    int rc;
    for (;;) {
        if (is_op(P, RF_JOP_PIPE)) {
            if ((rc = filter(P, *n, 0, n))) return rc;
        } else if (is_name(cur(P), "is")) {
            if ((rc = test(P, *n, n))) return rc;
        } else if (is_op(P, RF_JOP_LPAREN)) {
            if ((rc = call(P, *n, n))) return rc;
        } else {
            return 0;
        }
    }
}

static int primary(parser *P, rf_jnode **out)
{
    const rf_jtok *t = cur(P);
    rf_jnode *n;
    int rc;
    if ((rc = enter(P))) return rc;
    if (t->type == RF_JT_NAME) {
        if (is_name(t, "true") || is_name(t, "True") || is_name(t, "false") ||
            is_name(t, "False")) {
            if ((rc = node(P, RF_JN_CONST, t, &n))) return rc;
            n->value = rf_jv_bool(t->s[0] == 't' || t->s[0] == 'T');
        } else if (is_name(t, "none") || is_name(t, "None")) {
            if ((rc = node(P, RF_JN_CONST, t, &n))) return rc;
            n->value = rf_jv_none();
        } else {
            if ((rc = node(P, RF_JN_NAME, t, &n)) || (rc = set_name(P, &n->name, t))) return rc;
        }
        next(P);
    } else if (t->type == RF_JT_STRING) {
        /* Adjacent literals join, as in Python. */
        rf_jbuf b = {0};
        while (cur(P)->type == RF_JT_STRING) {
            if (rf_jbuf_add(&b, cur(P)->s, cur(P)->n)) {
                rf_jbuf_free(&b);
                return rf_errorf(P->err, RF_ENOMEM, "out of memory parsing the template");
            }
            next(P);
        }
        rc = node(P, RF_JN_CONST, t, &n);
        if (!rc && rf_jv_str(P->a, b.s ? b.s : "", b.n, &n->value))
            rc = rf_errorf(P->err, RF_ETOOBIG, "the template is too large");
        rf_jbuf_free(&b);
        if (rc) return rc;
    } else if (t->type == RF_JT_INT || t->type == RF_JT_FLOAT) {
        if ((rc = node(P, RF_JN_CONST, t, &n))) return rc;
        n->value = t->type == RF_JT_INT ? rf_jv_int(t->i) : rf_jv_float(t->f);
        next(P);
    } else if (is_op(P, RF_JOP_LPAREN)) {
        next(P);
        if ((rc = tuple(P, 0, 1, NULL, 1, &n)) || (rc = expect_op(P, RF_JOP_RPAREN, "')'")))
            return rc;
    } else if (is_op(P, RF_JOP_LBRACKET) || is_op(P, RF_JOP_LBRACE)) {
        int dict = is_op(P, RF_JOP_LBRACE);
        int close = dict ? RF_JOP_RBRACE : RF_JOP_RBRACKET;
        if ((rc = node(P, dict ? RF_JN_DICT : RF_JN_LIST, t, &n))) return rc;
        next(P);
        while (!is_op(P, close)) {
            if (n->list.n) {
                if ((rc = expect_op(P, RF_JOP_COMMA, "','"))) return rc;
                if (is_op(P, close)) break;
            }
            rf_jnode *k, *v;
            if ((rc = expression(P, 1, &k)) || (rc = add(P, &n->list, k))) return rc;
            if (dict && ((rc = expect_op(P, RF_JOP_COLON, "':'")) || (rc = expression(P, 1, &v)) ||
                         (rc = add(P, &n->list2, v))))
                return rc;
        }
        next(P);
    } else {
        char d[64];
        return fail_at(P, t, "unexpected %s", describe(t, d, sizeof d));
    }
    P->nest--;
    *out = n;
    return 0;
}

static int unary(parser *P, int with_filter, rf_jnode **out)
{
    int rc;
    const rf_jtok *t = cur(P);
    rf_jnode *n;
    if ((rc = enter(P))) return rc;
    if (is_op(P, RF_JOP_SUB) || is_op(P, RF_JOP_ADD)) {
        if ((rc = node(P, is_op(P, RF_JOP_SUB) ? RF_JN_NEG : RF_JN_POS, t, &n))) return rc;
        next(P);
        if ((rc = unary(P, 0, &n->a))) return rc;
    } else if ((rc = primary(P, &n))) {
        return rc;
    }
    if ((rc = postfix(P, &n)) || (with_filter && (rc = filter_expr(P, &n)))) return rc;
    P->nest--;
    *out = n;
    return 0;
}

static int binop_of(const rf_jtok *t, const int *ops, const int *bins, int k)
{
    if (t->type != RF_JT_OP) return -1;
    for (int i = 0; i < k; i++)
        if (t->op == ops[i]) return bins[i];
    return -1;
}

/* Left-associative binary levels, loosest first: + -, then ~, then * / // %, then **. */
static int level(parser *P, int lv, rf_jnode **out)
{
    static const int o1[] = {RF_JOP_ADD, RF_JOP_SUB}, b1[] = {RF_JB_ADD, RF_JB_SUB};
    static const int o3[] = {RF_JOP_MUL, RF_JOP_DIV, RF_JOP_FLOORDIV, RF_JOP_MOD},
                     b3[] = {RF_JB_MUL, RF_JB_DIV, RF_JB_FLOORDIV, RF_JB_MOD};
    static const int o4[] = {RF_JOP_POW}, b4[] = {RF_JB_POW};
    int rc;
    rf_jnode *left;
    if (lv == 4) return unary(P, 1, out);
    if ((rc = level(P, lv + 1, &left))) return rc;
    if (lv == 1) { /* ~ gathers its operands in one node */
        if (!is_op(P, RF_JOP_TILDE)) {
            *out = left;
            return 0;
        }
        rf_jnode *c;
        if ((rc = node(P, RF_JN_CONCAT, cur(P), &c)) || (rc = add(P, &c->list, left))) return rc;
        while (is_op(P, RF_JOP_TILDE)) {
            next(P);
            rf_jnode *r;
            if ((rc = level(P, 2, &r)) || (rc = add(P, &c->list, r))) return rc;
        }
        *out = c;
        return 0;
    }
    const int *ops = lv == 0 ? o1 : lv == 2 ? o3 : o4, *bins = lv == 0 ? b1 : lv == 2 ? b3 : b4;
    int k = lv == 0 ? 2 : lv == 2 ? 4 : 1, b;
    while ((b = binop_of(cur(P), ops, bins, k)) >= 0) {
        rf_jnode *n;
        if ((rc = node(P, RF_JN_BIN, cur(P), &n))) return rc;
        next(P);
        n->op = b, n->a = left;
        if ((rc = level(P, lv + 1, &n->b))) return rc;
        left = n;
    }
    *out = left;
    return 0;
}

static int compare(parser *P, rf_jnode **out)
{
    static const int ops[] = {RF_JOP_EQ, RF_JOP_NE, RF_JOP_LT, RF_JOP_LTEQ, RF_JOP_GT, RF_JOP_GTEQ};
    static const int bins[] = {RF_JB_EQ, RF_JB_NE, RF_JB_LT, RF_JB_LTEQ, RF_JB_GT, RF_JB_GTEQ};
    int rc, b;
    rf_jnode *first, *c = NULL;
    if ((rc = level(P, 0, &first))) return rc;
    for (;;) {
        const rf_jtok *t = cur(P);
        if ((b = binop_of(t, ops, bins, 6)) >= 0) {
            next(P);
        } else if (is_name(t, "in")) {
            b = RF_JB_IN;
            next(P);
        } else if (is_name(t, "not") && is_name(peek(P, 1), "in")) {
            b = RF_JB_NOTIN;
            next(P), next(P);
        } else {
            break;
        }
        rf_jnode *o;
        if (!c && ((rc = node(P, RF_JN_COMPARE, t, &c)))) return rc;
        if ((rc = node(P, RF_JN_OPERAND, t, &o)) || (rc = level(P, 0, &o->a)) ||
            (rc = add(P, &c->list, o)))
            return rc;
        o->op = b;
    }
    if (c) c->a = first;
    *out = c ? c : first;
    return 0;
}

static int not_expr(parser *P, rf_jnode **out)
{
    int rc;
    if (is_name(cur(P), "not")) {
        rf_jnode *n;
        if ((rc = enter(P)) || (rc = node(P, RF_JN_NOT, cur(P), &n))) return rc;
        next(P);
        if ((rc = not_expr(P, &n->a))) return rc;
        P->nest--;
        *out = n;
        return 0;
    }
    return compare(P, out);
}

static int andor(parser *P, int is_or, rf_jnode **out)
{
    int rc;
    rf_jnode *left;
    if ((rc = is_or ? andor(P, 0, &left) : not_expr(P, &left))) return rc;
    while (is_name(cur(P), is_or ? "or" : "and")) {
        rf_jnode *n;
        if ((rc = node(P, RF_JN_BIN, cur(P), &n))) return rc;
        next(P);
        n->op = is_or ? RF_JB_OR : RF_JB_AND, n->a = left;
        if ((rc = is_or ? andor(P, 0, &n->b) : not_expr(P, &n->b))) return rc;
        left = n;
    }
    *out = left;
    return 0;
}

static int expression(parser *P, int condexpr, rf_jnode **out)
{
    int rc;
    rf_jnode *e;
    if ((rc = enter(P)) || (rc = andor(P, 1, &e))) return rc;
    while (condexpr && is_name(cur(P), "if")) {
        rf_jnode *c;
        if ((rc = node(P, RF_JN_COND, cur(P), &c))) return rc;
        next(P);
        c->b = e;
        if ((rc = andor(P, 1, &c->a))) return rc;
        if (is_name(cur(P), "else")) {
            next(P);
            if ((rc = expression(P, 1, &c->c))) return rc;
        }
        e = c;
    }
    P->nest--;
    *out = e;
    return 0;
}

static int tuple_end(parser *P, const char *end_name)
{
    const rf_jtok *t = cur(P);
    if (t->type == RF_JT_VAR_END || t->type == RF_JT_BLOCK_END || t->type == RF_JT_EOF) return 1;
    if (t->type == RF_JT_OP && t->op == RF_JOP_RPAREN) return 1;
    return end_name && is_name(t, end_name);
}

/* Jinja's parse_tuple: one expression, or several with commas (a tuple). */
static int tuple(parser *P, int simplified, int condexpr, const char *end_name, int parens,
                 rf_jnode **out)
{
    int rc;
    const rf_jtok *at = cur(P);
    rf_jnode *t = NULL, *first = NULL;
    for (;;) {
        if (first && (rc = expect_op(P, RF_JOP_COMMA, "','"))) return rc;
        if (tuple_end(P, end_name)) break;
        rf_jnode *e;
        if ((rc = simplified ? primary(P, &e) : expression(P, condexpr, &e))) return rc;
        if (!first) {
            first = e;
        } else {
            if (!t && ((rc = node(P, RF_JN_TUPLE, at, &t)) || (rc = add(P, &t->list, first))))
                return rc;
            if ((rc = add(P, &t->list, e))) return rc;
        }
        if (!is_op(P, RF_JOP_COMMA)) break;
        if (!t && ((rc = node(P, RF_JN_TUPLE, at, &t)) || (rc = add(P, &t->list, first))))
            return rc;
    }
    if (t) {
        *out = t;
        return 0;
    }
    if (first) {
        *out = first;
        return 0;
    }
    if (!parens) return unexpected(P, "an expression");
    return node(P, RF_JN_TUPLE, at, out);
}

/* A for/set target: a name, a namespace attribute (set only) or a tuple of names. */
static int assign_target(parser *P, int with_ns, const char *end_name, rf_jnode **out)
{
    int rc;
    rf_jnode *t;
    if (with_ns && cur(P)->type == RF_JT_NAME && peek(P, 1)->type == RF_JT_OP &&
        peek(P, 1)->op == RF_JOP_DOT && peek(P, 2)->type == RF_JT_NAME) {
        rf_jnode *name;
        if ((rc = node(P, RF_JN_NSATTR, cur(P), &t)) || (rc = node(P, RF_JN_NAME, cur(P), &name)) ||
            (rc = set_name(P, &name->name, cur(P))) || (rc = set_name(P, &t->name, peek(P, 2))))
            return rc;
        t->a = name;
        next(P), next(P), next(P);
        *out = t;
        return 0;
    }
    const rf_jtok *at = cur(P);
    if ((rc = tuple(P, 1, 0, end_name, 0, &t))) return rc;
    int ok = t->kind == RF_JN_NAME;
    if (t->kind == RF_JN_TUPLE) {
        ok = 1;
        for (size_t i = 0; i < t->list.n; i++)
            ok &= t->list.v[i]->kind == RF_JN_NAME;
    }
    if (!ok) return fail_at(P, at, "%s", "can't assign to this expression");
    *out = t;
    return 0;
}

static int subparse(parser *P, const ends *e, rf_jnodes *body);

/* %} then statements up to one of the end tags (left current). */
static int statements(parser *P, const ends *e, rf_jnodes *body, int drop)
{
    int rc;
    if (is_op(P, RF_JOP_COLON)) next(P);
    if ((rc = expect(P, RF_JT_BLOCK_END, "end of statement block")) || (rc = subparse(P, e, body)))
        return rc;
    if (cur(P)->type == RF_JT_EOF) {
        char msg[300];
        int k = snprintf(msg, sizeof msg, "unexpected end of template, looking for ");
        for (int i = 0; i < 4 && e->v[i]; i++)
            k += snprintf(msg + k, sizeof msg - (size_t)k, "%s'%s'", i ? " or " : "", e->v[i]);
        if (P->ntags)
            snprintf(msg + k, sizeof msg - (size_t)k, "; the innermost open block is '%s'",
                     P->tags[P->ntags - 1]);
        return fail_at(P, cur(P), "%s", msg);
    }
    if (drop) next(P);
    return 0;
}

/* A macro's or call block's (a, b=default) parameters. */
static int signature(parser *P, rf_jnode *n)
{
    int rc;
    if ((rc = expect_op(P, RF_JOP_LPAREN, "'('"))) return rc;
    while (!is_op(P, RF_JOP_RPAREN)) {
        if (n->n_names && (rc = expect_op(P, RF_JOP_COMMA, "','"))) return rc;
        if (cur(P)->type != RF_JT_NAME) return unexpected(P, "a parameter name");
        if ((rc = add_name(P, n, cur(P)))) return rc;
        next(P);
        if (is_op(P, RF_JOP_ASSIGN)) {
            next(P);
            rf_jnode *d;
            if ((rc = expression(P, 1, &d)) || (rc = add(P, &n->list2, d))) return rc;
        } else if (n->list2.n) {
            return fail_at(P, cur(P), "%s", "non-default argument follows default argument");
        }
    }
    next(P);
    return 0;
}

static int statement(parser *P, rf_jnode **out)
{
    const rf_jtok *t = cur(P);
    rf_jnode *n = NULL;
    int rc;
    *out = NULL;
    if (t->type != RF_JT_NAME) return fail_at(P, t, "%s", "tag name expected");
    if (P->ntags == MAX_NEST) return fail_at(P, t, "%s", "blocks nested too deeply");
    char tagname[32];
    snprintf(tagname, sizeof tagname, "%.*s", (int)(t->n < 31 ? t->n : 31), t->s);
    snprintf(P->tags[P->ntags++], sizeof P->tags[0], "%s", tagname);
    next(P);
    if (!strcmp(tagname, "for")) {
        if ((rc = node(P, RF_JN_FOR, t, &n)) || (rc = assign_target(P, 0, "in", &n->a))) return rc;
        if (!is_name(cur(P), "in")) return unexpected(P, "'in'");
        next(P);
        if ((rc = tuple(P, 0, 0, "recursive", 0, &n->b))) return rc;
        if (is_name(cur(P), "if")) {
            next(P);
            if ((rc = expression(P, 1, &n->c))) return rc;
        }
        if (is_name(cur(P), "recursive"))
            return fail_at(P, cur(P), "%s", "recursive loops are not supported by this engine");
        ends e = {{"endfor", "else"}};
        if ((rc = statements(P, &e, &n->list, 0))) return rc;
        int has_else = is_name(cur(P), "else");
        next(P);
        ends e2 = {{"endfor"}};
        if (has_else && (rc = statements(P, &e2, &n->list2, 1))) return rc;
    } else if (!strcmp(tagname, "if")) {
        rf_jnode *cond = NULL;
        if ((rc = node(P, RF_JN_IF, t, &n))) return rc;
        cond = n;
        for (;;) {
            if ((rc = tuple(P, 0, 0, NULL, 0, &cond->a))) return rc;
            ends e = {{"elif", "else", "endif"}};
            if ((rc = statements(P, &e, &cond->list, 0))) return rc;
            const rf_jtok *k = cur(P);
            next(P);
            if (is_name(k, "elif")) {
                rf_jnode *el;
                if ((rc = node(P, RF_JN_IF, k, &el)) || (rc = add(P, &cond->list2, el))) return rc;
                cond = el;
                continue;
            }
            ends e2 = {{"endif"}};
            if (is_name(k, "else") && (rc = statements(P, &e2, &cond->list2, 1))) return rc;
            break;
        }
    } else if (!strcmp(tagname, "set")) {
        rf_jnode *target;
        if ((rc = assign_target(P, 1, NULL, &target))) return rc;
        if (is_op(P, RF_JOP_ASSIGN)) {
            next(P);
            if ((rc = node(P, RF_JN_SET, t, &n))) return rc;
            n->a = target;
            if ((rc = tuple(P, 0, 1, NULL, 0, &n->b))) return rc;
        } else {
            if ((rc = node(P, RF_JN_SETBLOCK, t, &n))) return rc;
            n->a = target;
            if ((rc = filter(P, NULL, 0, &n->b))) return rc;
            ends e = {{"endset"}};
            if ((rc = statements(P, &e, &n->list, 1))) return rc;
        }
    } else if (!strcmp(tagname, "macro")) {
        if ((rc = node(P, RF_JN_MACRO, t, &n))) return rc;
        if (cur(P)->type != RF_JT_NAME) return unexpected(P, "a macro name");
        if ((rc = set_name(P, &n->name, cur(P)))) return rc;
        next(P);
        ends e = {{"endmacro"}};
        if ((rc = signature(P, n)) || (rc = statements(P, &e, &n->list, 1))) return rc;
    } else if (!strcmp(tagname, "call")) {
        if ((rc = node(P, RF_JN_CALLBLOCK, t, &n))) return rc;
        if (is_op(P, RF_JOP_LPAREN) && (rc = signature(P, n))) return rc;
        if ((rc = expression(P, 1, &n->a))) return rc;
        if (n->a->kind != RF_JN_CALL) return fail_at(P, t, "%s", "expected call");
        ends e = {{"endcall"}};
        if ((rc = statements(P, &e, &n->list, 1))) return rc;
    } else if (!strcmp(tagname, "filter")) {
        if ((rc = node(P, RF_JN_FILTERBLOCK, t, &n)) || (rc = filter(P, NULL, 1, &n->b))) return rc;
        ends e = {{"endfilter"}};
        if ((rc = statements(P, &e, &n->list, 1))) return rc;
    } else if (!strcmp(tagname, "with")) {
        if ((rc = node(P, RF_JN_WITH, t, &n))) return rc;
        while (cur(P)->type != RF_JT_BLOCK_END) {
            if (n->n_names && (rc = expect_op(P, RF_JOP_COMMA, "','"))) return rc;
            if (cur(P)->type != RF_JT_NAME) return unexpected(P, "a name");
            if ((rc = add_name(P, n, cur(P)))) return rc;
            next(P);
            rf_jnode *v;
            if ((rc = expect_op(P, RF_JOP_ASSIGN, "'='")) || (rc = expression(P, 1, &v)) ||
                (rc = add(P, &n->list2, v)))
                return rc;
        }
        ends e = {{"endwith"}};
        if ((rc = statements(P, &e, &n->list, 1))) return rc;
    } else if (!strcmp(tagname, "generation") || !strcmp(tagname, "block")) {
        /* transformers' {% generation %} marks assistant text and renders it;
         * a block outside inheritance renders in place. */
        int block = tagname[0] == 'b';
        if ((rc = node(P, RF_JN_SCOPE, t, &n))) return rc;
        if (block) {
            if (cur(P)->type != RF_JT_NAME) return unexpected(P, "a block name");
            next(P);
            if (is_name(cur(P), "scoped") || is_name(cur(P), "required")) next(P);
        }
        ends e = {{block ? "endblock" : "endgeneration"}};
        if ((rc = statements(P, &e, &n->list, 1))) return rc;
        if (block && cur(P)->type == RF_JT_NAME) next(P);
    } else if (!strcmp(tagname, "print")) {
        if ((rc = node(P, RF_JN_OUTPUT, t, &n)) || (rc = tuple(P, 0, 1, NULL, 0, &n->a))) return rc;
    } else if (!strcmp(tagname, "break") || !strcmp(tagname, "continue")) {
        int in_loop = 0;
        for (int i = 0; i < P->ntags - 1; i++)
            in_loop |= !strcmp(P->tags[i], "for");
        if (!in_loop) return fail_at(P, t, "'%s' is not inside a loop", tagname);
        if ((rc = node(P, tagname[0] == 'b' ? RF_JN_BREAK : RF_JN_CONTINUE, t, &n))) return rc;
    } else if (!strcmp(tagname, "include") || !strcmp(tagname, "import") ||
               !strcmp(tagname, "from") || !strcmp(tagname, "extends")) {
        return fail_at(P, t,
                       "tag '%s' is not supported: a chat template cannot load other templates",
                       tagname);
    } else {
        return fail_at(P, t, "encountered unknown tag '%s'", tagname);
    }
    P->ntags--;
    *out = n;
    return 0;
}

static int subparse(parser *P, const ends *e, rf_jnodes *body)
{
    int rc;
    for (;;) {
        const rf_jtok *t = cur(P);
        rf_jnode *n = NULL;
        if (t->type == RF_JT_EOF) return 0;
        if (t->type == RF_JT_DATA) {
            if ((rc = node(P, RF_JN_DATA, t, &n))) return rc;
            n->name = (rf_jname){t->s, t->n};
            next(P);
        } else if (t->type == RF_JT_VAR_BEGIN) {
            next(P);
            if ((rc = node(P, RF_JN_OUTPUT, t, &n)) || (rc = tuple(P, 0, 1, NULL, 0, &n->a)) ||
                (rc = expect(P, RF_JT_VAR_END, "end of print statement")))
                return rc;
        } else if (t->type == RF_JT_BLOCK_BEGIN) {
            next(P);
            for (int i = 0; e && i < 4 && e->v[i]; i++)
                if (is_name(cur(P), e->v[i])) return 0;
            if ((rc = statement(P, &n)) ||
                (rc = expect(P, RF_JT_BLOCK_END, "end of statement block")))
                return rc;
        } else {
            char d[64];
            return fail_at(P, t, "unexpected %s", describe(t, d, sizeof d));
        }
        if ((rc = add(P, body, n))) return rc;
    }
}

int rf_jinja_parse(rf_jarena *a, const rf_jtoks *toks, rf_jnodes *body, rf_error *err)
{
    parser P = {.a = a, .t = toks->v, .n = toks->n, .err = err};
    memset(body, 0, sizeof *body);
    int rc = subparse(&P, NULL, body);
    if (!rc && cur(&P)->type != RF_JT_EOF) {
        char d[64];
        rc = fail_at(&P, cur(&P), "unexpected %s", describe(cur(&P), d, sizeof d));
    }
    return rc;
}
