/* CLI commands over the model engine. Each takes the arguments after its
 * own name (argv[0] is the command name) and returns the process exit
 * status: 0 on success, 1 when the work failed, 2 on a usage error. */
#ifndef RF_CLI_MODEL_H
#define RF_CLI_MODEL_H

/* refinery forward --model DIR --ids 1,2,3 --out FILE.safetensors
 * Writes every position's logits, F32 tensor `logits` [T, vocab]. */
int rf_cmd_forward(int argc, char **argv);

#endif
