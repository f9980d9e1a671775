/* engine/data parse, filters and prompts: a corpus of messy teacher outputs
 * (fenced JSON, prose around JSON, JSON lines, arrays of strings, Q:/A:
 * blocks, numbered and bulleted lists, scores in every common shape), each
 * with what must be read from it; every prefix of each output and random
 * bytes through every parser (ASan: nothing may crash or leak); the
 * Self-Instruct filters; placeholders and the default templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/util.h"
#include "engine/data/filters.h"
#include "engine/data/parse.h"
#include "engine/data/prompts.h"

typedef struct pcase {
    const char *text;
    int mc;
    size_t n;          /* pairs expected */
    const char *q, *a; /* of the first */
    int idx;           /* mc: its answer index */
} pcase;

static const pcase pairs[] = {
    {"[{\"question\": \"What is 2+2?\", \"answer\": \"4\"}, {\"question\": \"Capital of "
     "France?\", \"answer\": \"Paris\"}]",
     0, 2, "What is 2+2?", "4", 0},
    {"Sure! Here are the pairs:\n```json\n[{\"question\": \"Why is the sky blue?\", \"answer\": "
     "\"Rayleigh scattering.\"}]\n```\nHope this helps.",
     0, 1, "Why is the sky blue?", "Rayleigh scattering.", 0},
    {"Here you go: [{\"Question\": \"Q one?\", \"Answer\": 42}] and that is all.", 0, 1, "Q one?",
     "42", 0},
    {"{\"pairs\": [{\"instruction\": \"Name a prime.\", \"output\": \"7\"}]}", 0, 1,
     "Name a prime.", "7", 0},
    {"{\"question\": \"Single object?\", \"answer\": \"yes\"}", 0, 1, "Single object?", "yes", 0},
    {"{\"question\": \"L1?\", \"answer\": \"a1\"}\n{\"question\": \"L2?\", \"answer\": \"a2\"}\n"
     "not json\n",
     0, 2, "L1?", "a1", 0},
    {"[\"Q: What is H2O? A: water\", \"Question: Boiling point? \\nAnswer: 100 C\"]", 0, 1,
     "Boiling point?", "100 C", 0},
    {"1. Q: What is the speed of light?\n   A: About 300,000 km/s.\n2. Q: What is gravity?\n"
     "   A: A force\n   that attracts masses.\n",
     0, 2, "What is the speed of light?", "About 300,000 km/s.", 0},
    {"**Question 1:** Who wrote Hamlet?\n**Answer 1:** Shakespeare\n\n**Question 2:** Who "
     "painted the Mona Lisa?\n**Answer 2:** Leonardo",
     0, 2, "Who wrote Hamlet?", "Shakespeare", 0},
    {"```\n[{\"question\": \"unclosed fence?\", \"answer\": \"still read\"}]", 0, 1,
     "unclosed fence?", "still read", 0},
    {"[{\"question\": \"missing answer\"}, {\"answer\": \"missing question\"}]", 0, 0, NULL, NULL,
     0},
    {"[{\"question\": \"cut off\", \"answer\": \"mid", 0, 0, NULL, NULL, 0},
    {"I cannot help with that.", 0, 0, NULL, NULL, 0},
    {"", 0, 0, NULL, NULL, 0},
    /* multiple choice */
    {"[{\"question\": \"2+2?\", \"choices\": [\"3\", \"4\", \"5\", \"6\"], \"answer\": 1}]", 1, 1,
     "2+2?", "4", 1},
    {"[{\"question\": \"Largest planet?\", \"choices\": [\"Mars\", \"Jupiter\", \"Venus\", "
     "\"Earth\"], \"answer\": \"B\"}]",
     1, 1, "Largest planet?", "Jupiter", 1},
    {"[{\"question\": \"Red planet?\", \"options\": {\"A\": \"Mars\", \"B\": \"Venus\"}, "
     "\"answer\": \"Mars\"}]",
     1, 1, "Red planet?", "Mars", 0},
    {"[{\"question\": \"bad index\", \"choices\": [\"a\", \"b\"], \"answer\": 5}, {\"question\": "
     "\"one choice\", \"choices\": [\"a\"], \"answer\": 0}]",
     1, 0, NULL, NULL, 0},
    {"Q: Which gas do plants absorb?\nA) Oxygen\nB) Carbon dioxide\nC) Helium\nD) Neon\n"
     "Answer: B\n",
     1, 1, "Which gas do plants absorb?", "Carbon dioxide", 1},
    {"Question: 3*3?\nChoices: 6 | 9 | 12 | 3\nAnswer: 1", 1, 1, "3*3?", "9", 1},
    {"[{\"question\": \"qa shape in mc\", \"answer\": \"no choices\"}]", 1, 0, NULL, NULL, 0},
};

static void test_pairs_corpus(void **state)
{
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        const pcase *c = &pairs[i];
        rf_pairs ps = {0};
        size_t n = rf_parse_pairs(c->text, c->mc, &ps);
        if (n != c->n || ps.n != c->n)
            fail_msg("case %zu: %zu pairs, want %zu: %s", i, n, c->n, c->text);
        if (c->n) {
            assert_string_equal(ps.v[0].question, c->q);
            assert_string_equal(ps.v[0].answer, c->a);
            if (c->mc) {
                assert_int_equal(ps.v[0].answer_index, c->idx);
                assert_true(json_array_size(ps.v[0].choices) >= 2);
            } else {
                assert_null(ps.v[0].choices);
            }
        }
        rf_pairs_free(&ps);
    }
}

typedef struct lcase {
    const char *text;
    size_t n;
    const char *first, *last;
} lcase;

static const lcase lists[] = {
    {"1. Photosynthesis\n2. Cell division\n3) Genetics\n", 3, "Photosynthesis", "Genetics"},
    {"Here are some sub-topics:\n- **Ecology**\n- Evolution\n* Botany\n\xE2\x80\xA2 Zoology\n", 4,
     "Ecology", "Zoology"},
    {"```json\n[\"Algebra\", \"Geometry\", \"Algebra\"]\n```", 2, "Algebra", "Geometry"},
    {"{\"subtopics\": [{\"name\": \"Rivers\"}, {\"name\": \"Lakes\"}]}", 2, "Rivers", "Lakes"},
    {"1. a\n2. b\n3. c\n4. d\n5. e\n6. f\n7. g", 5, "a", "e"}, /* at most max */
    {"No list here, just prose.", 0, NULL, NULL},
    {"", 0, NULL, NULL},
};

static void test_lists_corpus(void **state)
{
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        char **items;
        size_t n = rf_parse_list(lists[i].text, 5, &items);
        if (n != lists[i].n) fail_msg("list %zu: %zu items, want %zu", i, n, lists[i].n);
        if (n) {
            assert_string_equal(items[0], lists[i].first);
            assert_string_equal(items[n - 1], lists[i].last);
        }
        rf_parse_list_free(items, n);
    }
}

static void test_scores(void **state)
{
    static const struct {
        const char *text;
        double want; /* NAN: unreadable */
    } cases[] = {
        {"Score: 8/10. The answer is right.", 8},
        {"**Score:** 7/10 — mostly complete.", 7},
        {"I would rate it 9/10 because it is precise.", 9},
        {"{\"score\": 6, \"reason\": \"partial\"}", 6},
        {"```json\n{\"score\": \"5\"}\n```", 5},
        {"Score = 4 out of 5", 8},
        {"10", 10},
        {"Score: 11/10", NAN},
        {"The answer is good.", NAN},
        {"", NAN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double s = -1;
        bool ok = rf_parse_score(cases[i].text, &s);
        if (isnan(cases[i].want)) {
            if (ok) fail_msg("score %zu: read %g from '%s'", i, s, cases[i].text);
        } else {
            if (!ok || s != cases[i].want)
                fail_msg("score %zu: %g (ok %d), want %g", i, s, ok, cases[i].want);
        }
    }
}

/* Every prefix of every case (outputs cut anywhere) and random bytes. */
static void test_never_crashes(void **state)
{
    char buf[1024];
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        size_t len = strlen(pairs[i].text);
        for (size_t k = 0; k <= len && k < sizeof buf; k++) {
            memcpy(buf, pairs[i].text, k);
            buf[k] = '\0';
            for (int mc = 0; mc < 2; mc++) {
                rf_pairs ps = {0};
                rf_parse_pairs(buf, mc, &ps);
                rf_pairs_free(&ps);
            }
            char **items;
            rf_parse_list_free(items, rf_parse_list(buf, 10, &items));
            double s;
            rf_parse_score(buf, &s);
        }
    }
    uint64_t st = 5;
    static const char alphabet[] = "{}[]\":,QA:1./|\n *`abc-()Bx\\";
    for (int t = 0; t < 3000; t++) {
        size_t n = rf_splitmix64(&st) % 200;
        for (size_t k = 0; k < n; k++) {
            uint64_t r = rf_splitmix64(&st);
            buf[k] =
                r & 1 ? alphabet[(r >> 8) % (sizeof alphabet - 1)] : (char)(1 + (r >> 8) % 255);
        }
        buf[n] = '\0';
        rf_pairs ps = {0};
        rf_parse_pairs(buf, t & 1, &ps);
        rf_pairs_free(&ps);
        char **items;
        rf_parse_list_free(items, rf_parse_list(buf, 10, &items));
        double s;
        rf_parse_score(buf, &s);
    }
}

static void test_filters(void **state)
{
    rf_filter_opts o = {.min_words = 4, .max_words = 150};
    static const struct {
        const char *in, *out, *reason;
    } cases[] = {
        {"What is the boiling point of water?", "100 degrees Celsius.", NULL},
        {"Define entropy.", "A measure of disorder.", "too_short"},
        {"Describe the image shown above please.", "It is a cat.", "blacklisted"},
        {"Plot the values of the sine function.", "…", "blacklisted"},
        {"How do I go to the station from here?", "Take the bus.", "blacklisted"},
        {"Explain what a mapping of keys to values is.", "A dictionary.", NULL}, /* whole words */
        {"\"Quoted\" instructions are not allowed here.", "ok", "starts_with_punctuation"},
        {"\xC3\x89tudiez the history of France in detail.", "ok", "starts_non_ascii"},
        {"Write a program that sorts a list of numbers.", "sorted()", "write_a_program"},
        {"Name three primary colors used in painting.", "   ", "empty_output"},
        {"Repeat this sentence back to me now.", "Repeat this sentence back to me now.",
         "output_equals_input"},
        {"List the steps of the scientific method.", "The steps are:", "output_ends_with_colon"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *r = rf_filter_pair(&o, cases[i].in, cases[i].out);
        if ((r == NULL) != (cases[i].reason == NULL) || (r && strcmp(r, cases[i].reason)))
            fail_msg("filter %zu ('%s'): %s, want %s", i, cases[i].in, r ? r : "kept",
                     cases[i].reason ? cases[i].reason : "kept");
    }
    char longer[2000] = "";
    for (int i = 0; i < 151; i++)
        strcat(longer, "word ");
    assert_string_equal(rf_filter_pair(&o, longer, "x"), "too_long");
    static const char *const mine[] = {"banana"};
    rf_filter_opts custom = {.min_words = 1, .max_words = 10, .blacklist = mine, .n_blacklist = 1};
    assert_string_equal(rf_filter_pair(&custom, "Banana bread", "x"), "blacklisted");
    assert_null(rf_filter_pair(&custom, "Draw a cat", "x"));
}

static void test_prompts(void **state)
{
    rf_error err;
    assert_int_equal(rf_prompt_check(rf_prompt_subtopics, "prompts.subtopics", &err), 0);
    assert_int_equal(rf_prompt_check(rf_prompt_pairs_qa, "p", &err), 0);
    assert_int_equal(rf_prompt_check(rf_prompt_pairs_mc, "p", &err), 0);
    assert_int_equal(rf_prompt_check(rf_prompt_judge, "p", &err), 0);
    assert_int_equal(rf_prompt_check("JSON {\"k\": 1} and {n} items", "p", &err), 0);
    assert_int_equal(rf_prompt_check("About {topic}", "prompts.pairs", &err), RF_EINVAL);
    assert_string_equal(err.field, "prompts.pairs");
    assert_non_null(strstr(err.msg, "{topic}"));

    rf_prompt_vars v = {.task = "Biology",
                        .description = "Questions on cells.",
                        .seed = "What is "
                                "a cell?",
                        .n = 5};
    char *s = rf_prompt_render(rf_prompt_subtopics, &v);
    assert_string_equal(s, "Task: Biology\nQuestions on cells.\nExample request: What is a "
                           "cell?\nList 5 distinct sub-topics of this task. Answer with a "
                           "numbered list, one sub-topic per line.");
    free(s);
    s = rf_prompt_render("{x} {n}{ {task}", &v); /* unknown names and lone braces stay text */
    assert_string_equal(s, "{x} 5{ Biology");
    free(s);

    json_t *choices = json_pack("[ssss]", "a", "b", "c", "d");
    rf_prompt_example ex[] = {{.question = "Seed question?"},
                              {.question = "Kept?", .answer = "Yes."},
                              {.question = "MC?", .choices = choices, .answer_index = 2}};
    s = rf_prompt_examples(ex, 3);
    assert_string_equal(s, "Q: Seed question?\nQ: Kept?\nA: Yes.\nQ: MC?\nChoices: a | b | c | "
                           "d\nAnswer: 2");
    free(s);
    json_decref(choices);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pairs_corpus), cmocka_unit_test(test_lists_corpus),
        cmocka_unit_test(test_scores),       cmocka_unit_test(test_never_crashes),
        cmocka_unit_test(test_filters),      cmocka_unit_test(test_prompts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
