#include "engine/data/prompts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char rf_prompt_subtopics[] =
    "Task: {task}\n{description}\nExample request: {seed}\nList {n} distinct sub-topics of this "
    "task. Answer with a numbered list, one sub-topic per line.";
const char rf_prompt_pairs_qa[] =
    "Task: {task}\n{description}\nSub-topic: {subtopic}\nExamples:\n{examples}\nWrite {n} new "
    "question and answer pairs on this sub-topic. Answer with a JSON array of objects with the "
    "keys \"question\" and \"answer\".";
const char rf_prompt_pairs_mc[] =
    "Task: {task}\n{description}\nSub-topic: {subtopic}\nExamples:\n{examples}\nWrite {n} new "
    "multiple-choice questions on this sub-topic. Answer with a JSON array of objects with the "
    "keys \"question\", \"choices\" (a list of 4 strings) and \"answer\" (the index of the correct "
    "choice).";
const char rf_prompt_judge[] =
    "Task: {task}\n{description}\nRubric: {rubric}\nQuestion: {question}\nAnswer: {answer}\nRate "
    "the answer from 1 to 10 against the rubric. Reply with \"Score: N/10\" and one sentence of "
    "justification.";
const char rf_prompt_rubric[] =
    "The answer is correct, complete and directly answers the question.";

static const char *const names[] = {"task",     "description", "seed",   "subtopic", "n",
                                    "question", "answer",      "rubric", "examples", NULL};

/* The length of the placeholder name at s (just after '{'), when s holds
 * "name}"; 0 when this brace does not open a placeholder. */
static size_t placeholder(const char *s)
{
    size_t k = 0;
    while ((s[k] >= 'a' && s[k] <= 'z') || s[k] == '_')
        k++;
    return k && s[k] == '}' ? k : 0;
}

static int lookup(const char *s, size_t k)
{
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == k && !memcmp(names[i], s, k)) return i;
    return -1;
}

int rf_prompt_check(const char *tmpl, const char *field, rf_error *err)
{
    for (const char *p = strchr(tmpl, '{'); p; p = strchr(p + 1, '{')) {
        size_t k = placeholder(p + 1);
        if (k && lookup(p + 1, k) < 0)
            return rf_error_field(err, RF_EINVAL, field,
                                  "'%s' has the unknown placeholder {%.*s}; known: {task}, "
                                  "{description}, {seed}, {subtopic}, {n}, {question}, {answer}, "
                                  "{rubric}, {examples}",
                                  field, (int)k, p + 1);
    }
    return 0;
}

typedef struct buf {
    char *s;
    size_t n, cap;
    bool oom;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1)
            c *= 2;
        char *ns = realloc(b->s, c);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns, b->cap = c;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s ? s : "", s ? strlen(s) : 0);
}

static char *finish(buf *b)
{
    if (b->oom) {
        free(b->s);
        return NULL;
    }
    if (!b->s) return strdup("");
    return b->s;
}

char *rf_prompt_render(const char *tmpl, const rf_prompt_vars *v)
{
    buf b = {0};
    const char *p = tmpl;
    for (;;) {
        const char *q = strchr(p, '{');
        size_t k = q ? placeholder(q + 1) : 0;
        int id = k ? lookup(q + 1, k) : -1;
        if (!q) {
            puts_(&b, p);
            break;
        }
        put(&b, p, (size_t)(q - p));
        if (id < 0) { /* a brace that is text */
            put(&b, q, 1);
            p = q + 1;
            continue;
        }
        char num[24];
        const char *vals[] = {v->task,     v->description, v->seed,   v->subtopic, num,
                              v->question, v->answer,      v->rubric, v->examples};
        snprintf(num, sizeof num, "%d", v->n);
        puts_(&b, vals[id]);
        p = q + 1 + k + 1;
    }
    return finish(&b);
}

char *rf_prompt_examples(const rf_prompt_example *ex, size_t n)
{
    buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (i) put(&b, "\n", 1);
        puts_(&b, "Q: ");
        puts_(&b, ex[i].question);
        if (ex[i].choices) {
            puts_(&b, "\nChoices: ");
            size_t j;
            json_t *c;
            json_array_foreach(ex[i].choices, j, c)
            {
                if (j) puts_(&b, " | ");
                puts_(&b, json_string_value(c));
            }
            char num[32];
            snprintf(num, sizeof num, "\nAnswer: %d", ex[i].answer_index);
            puts_(&b, num);
        } else if (ex[i].answer) {
            puts_(&b, "\nA: ");
            puts_(&b, ex[i].answer);
        }
    }
    return finish(&b);
}
