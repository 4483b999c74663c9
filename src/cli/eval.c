/* eval.c - `agentcompress eval` (placeholder until the eval library lands). */
#include <stddef.h>

#include "cli/cli.h"

int cmd_eval(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("eval", "not implemented yet");
}
