/* refinery sample DIR: a small model with its tokenizer and two datasets,
 * made by refinery itself, for trying the API (README "Try it"). */
#ifndef RF_CLI_SAMPLE_H
#define RF_CLI_SAMPLE_H

/* argv[0] is "sample"; returns the exit status. */
int rf_cmd_sample(int argc, char **argv);

#endif
