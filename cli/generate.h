/* CLI commands over rf_lm: text generation and dataset evaluation. Each
 * takes the arguments after its own name (argv[0] is the command name) and
 * returns the exit status: 0 success, 1 the work failed, 2 a usage error. */
#ifndef RF_CLI_GENERATE_H
#define RF_CLI_GENERATE_H

/* refinery generate --model DIR (--prompt TEXT | --ids 1,2,3) [--chat]
 *   [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]
 *   [--stop STR]… [--json]
 * Streams the continuation to stdout; --json prints one object instead:
 * {text, tokens, finish_reason, prompt_tokens, completion_tokens}. */
int rf_cmd_generate(int argc, char **argv);

/* refinery eval --model DIR --dataset FILE.jsonl [--split S]
 *   [--metrics perplexity,accuracy,exact_match] [--limit N] [--chat]
 *   [--max-new-tokens N]
 * Prints the metrics as one JSON object. */
int rf_cmd_eval(int argc, char **argv);

#endif
