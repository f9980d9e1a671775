/* `refinery tokenize`: the tokenizer from the command line, for people and
 * for the tests that compare it with the reference implementation. */
#ifndef RF_CLI_TOKENIZE_H
#define RF_CLI_TOKENIZE_H

/* argv[0] is "tokenize". Returns the process exit status. */
int rf_cmd_tokenize(int argc, char **argv);

#endif
