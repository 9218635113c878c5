/* gmm.h: entry points of the `crate gmm` subcommands (gmm_commands.def). */
#ifndef CRATE_TOOLS_GMM_H
#define CRATE_TOOLS_GMM_H

#define CRATE_GMM_COMMAND(name, fn, summary) int fn(int argc, char **argv);
#include "gmm_commands.def"
#undef CRATE_GMM_COMMAND

#endif
