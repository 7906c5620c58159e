// posenc command line: the whole program as a function, for main() and for the fuzzer
// (fuzz/fuzz_cli.cpp).
#pragma once

#include <iosfwd>

namespace CLI {
class App;
}

namespace posenc_cli {

/// Registers every subcommand (table, rope, bias, attend, convert-layout, plot,
/// compare, inspect) on `app`.
void add_commands(CLI::App& app);

/// Parses the command line and runs the subcommand. Returns the exit status: 0 on success
/// (and for --help and --version), 2 for a usage error or bad input (one line
/// "posenc: error: ..." on `err`), 1 when the machine fails (out of memory). --help and
/// --version print to `out`; a subcommand's results go where the subcommand writes them.
int run(int argc, char** argv, std::ostream& out, std::ostream& err);

/// run() with std::cout and std::cerr.
int run(int argc, char** argv);

}  // namespace posenc_cli
