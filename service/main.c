/* refinery — one binary: serve | worker | migrate | keys | run. */
#include <stdio.h>
#include <string.h>

#include "service/cli_tokenize.h"

static int usage(FILE *f)
{
    fprintf(f, "usage: refinery serve | worker | migrate | keys create --tenant NAME | keys revoke ID\n");
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage(stderr);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) return usage(stdout);
    else if (!strcmp(argv[1], "tokenize")) return rf_cmd_tokenize(argc - 1, argv + 1);
    fprintf(stderr, "refinery: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
