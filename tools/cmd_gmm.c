/* cmd_gmm.c: `crate gmm <subcommand>`, demos and experiments on the mixture
 * of low-rank Gaussians (MATH.md §3-5).  Each gmm subcommand lives in its
 * own tools/gmm_*.c file and is listed in gmm_commands.def. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gmm.h"

static const cli_command gmm_commands[] = {
#define CRATE_GMM_COMMAND(name, fn, summary) {name, fn, summary},
#include "gmm_commands.def"
#undef CRATE_GMM_COMMAND
};
static const size_t n_gmm = sizeof gmm_commands / sizeof gmm_commands[0];

static void gmm_usage(FILE *f) {
  fprintf(f, "usage: crate gmm <subcommand> [options]   (crate gmm <subcommand> --help)\n\n"
             "Experiments on the mixture of low-rank Gaussians; defaults are the MATH.md\n"
             "fixture (d=6, K=3, p_k=2, random bases from a fixed seed, Karras rho=7,\n"
             "sigma in [0.02, 10]).\n\nSubcommands:\n");
  for (size_t i = 0; i < n_gmm; i++)
    fprintf(f, "  %-14s %s\n", gmm_commands[i].name, gmm_commands[i].summary);
}

int cmd_gmm(int argc, char **argv) {
  if (argc < 2) {
    gmm_usage(stderr);
    return CLI_USAGE;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    gmm_usage(stdout);
    return CLI_OK;
  }
  for (size_t i = 0; i < n_gmm; i++)
    if (!strcmp(argv[1], gmm_commands[i].name)) {
      cli_getopt_reset();
      return gmm_commands[i].run(argc - 1, argv + 1);
    }
  fprintf(stderr, "crate gmm: unknown subcommand '%s'\nTry 'crate gmm --help'.\n", argv[1]);
  return CLI_USAGE;
}
