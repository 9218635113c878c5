/* commands.h: entry points of the subcommands listed in commands.def. */
#ifndef CRATE_TOOLS_COMMANDS_H
#define CRATE_TOOLS_COMMANDS_H

#define CRATE_COMMAND(name, fn, summary) int fn(int argc, char **argv);
#include "commands.def"
#undef CRATE_COMMAND

#endif
