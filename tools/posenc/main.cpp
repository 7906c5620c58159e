// posenc: the command-line program. Applies, inspects, plots and compares positional
// encodings on NumPy .npy arrays (docs/cli.md).
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

namespace {

int fail(const std::string& what, int code) {
  std::cerr << "posenc: error: " << posenc_cli::one_line(what) << '\n';
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"posenc: Transformer positional encodings on .npy arrays (see docs/cli.md)",
               "posenc"};
  app.set_version_flag("--version", std::string("posenc ") + POSENC_VERSION);
  app.require_subcommand(1);
  posenc_cli::add_table_command(app);
  posenc_cli::add_rope_command(app);
  posenc_cli::add_bias_command(app);
  posenc_cli::add_attend_command(app);
  posenc_cli::add_plot_command(app);
  posenc_cli::add_compare_command(app);
  // CLI11 reports an unknown first word as "A subcommand is required": name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
      known = known || sub->get_name() == argv[1];
    }
    if (!known)
      return fail(std::string("unknown subcommand '") + argv[1] + "' (expected one of " + names + ")", 2);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0 with their text; every other parse error is one line.
    if (e.get_exit_code() == 0) return app.exit(e);
    return fail(e.what(), 2);
  } catch (const posenc_cli::CliError& e) {
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
