/* Prompt templates of the Self-Instruct stages: the built-in defaults, the
 * placeholder check a user's template must pass (an unknown {name} is a 422
 * at POST), rendering, and the {examples} block. A placeholder is {name}
 * with name made of lowercase letters and underscores; other braces (JSON
 * in a template) are text. Each rendered template is sent as one user
 * message, without a system message. */
#ifndef RF_PROMPTS_H
#define RF_PROMPTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/core/error.h"

/* The defaults. Their wording is what the demo's tiny teacher is trained on:
 * change it only together with that model. */
extern const char rf_prompt_subtopics[];
extern const char rf_prompt_pairs_qa[];
extern const char rf_prompt_pairs_mc[];
extern const char rf_prompt_judge[];
extern const char rf_prompt_rubric[];

typedef struct rf_prompt_vars {
    const char *task, *description, *seed, *subtopic, *question, *answer, *rubric, *examples;
    int n;
} rf_prompt_vars;

/* Every placeholder of tmpl is one of task, description, seed, subtopic,
 * n, question, answer, rubric, examples; field names the template. */
int rf_prompt_check(const char *tmpl, const char *field, rf_error *err);
/* tmpl with its placeholders replaced (NULL values render as ""); malloc'd,
 * NULL when out of memory. */
char *rf_prompt_render(const char *tmpl, const rf_prompt_vars *v);

/* One example for {examples}: a seed (question only) or a kept pair. */
typedef struct rf_prompt_example {
    const char *question;
    const char *answer;    /* qa: the answer; NULL for a seed */
    const json_t *choices; /* multiple choice: the strings; NULL for a seed */
    int answer_index;
} rf_prompt_example;

/* "Q: …" lines, with "A: …" for a kept qa pair, "Choices: a | b | c | d"
 * and "Answer: i" for a kept multiple-choice one; malloc'd. */
char *rf_prompt_examples(const rf_prompt_example *ex, size_t n);

#endif
