// posenc command line: argument parsing, dispatch to the subcommands, and the exit status
// (docs/cli.md).
#include "run.hpp"

#include <CLI/CLI.hpp>

#include <posenc/error.hpp>

#include <exception>
#include <iostream>
#include <new>
#include <string>

#include "apply_commands.hpp"
#include "cli_common.hpp"
#include "compare_command.hpp"
#include "plot_command.hpp"

#ifndef POSENC_VERSION
#define POSENC_VERSION "unknown"
#endif

namespace posenc_cli {

void add_commands(CLI::App& app) {
  add_table_command(app);
  add_rope_command(app);
  add_bias_command(app);
  add_attend_command(app);
  add_plot_command(app);
  add_compare_command(app);
}

int run(int argc, char** argv, std::ostream& out, std::ostream& err) {
  const auto fail = [&err](const std::string& what, int code) {
    err << "posenc: error: " << one_line(what) << '\n';
    return code;
  };
  CLI::App app{"posenc: Transformer positional encodings on .npy arrays (see docs/cli.md)",
               "posenc"};
  app.set_version_flag("--version", std::string("posenc ") + POSENC_VERSION);
  app.require_subcommand(1);
  add_commands(app);
  // CLI11 reports an unknown first word as "A subcommand is required": name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
      known = known || sub->get_name() == argv[1];
    }
    if (!known)
      return fail(
          std::string("unknown subcommand '") + argv[1] + "' (expected one of " + names + ")", 2);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0 with their text; every other parse error is one line.
    if (e.get_exit_code() == 0) return app.exit(e, out, err);
    return fail(e.what(), 2);
  } catch (const CliError& e) {
    return fail(e.what(), 2);
  } catch (const posenc::error& e) {
    return fail(e.what(), 2);
  } catch (const std::bad_alloc&) {
    return fail("out of memory", 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
  return 0;
}

int run(int argc, char** argv) {
  return run(argc, argv, std::cout, std::cerr);
}

}  // namespace posenc_cli
