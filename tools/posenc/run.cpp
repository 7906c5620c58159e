// posenc command line: argument parsing, dispatch to the subcommands, and the exit status
// (docs/cli.md).
#include "run.hpp"

// The version string of --version: tools/CMakeLists.txt passes -DPOSENC_VERSION="x.y.z", taken
// here before posenc/version.hpp (through posenc/error.hpp) redefines POSENC_VERSION as a number.
#ifdef POSENC_VERSION
namespace {
constexpr const char* cli_version = POSENC_VERSION;
}
#undef POSENC_VERSION
#else
namespace {
constexpr const char* cli_version = "unknown";
}
#endif

#include <CLI/CLI.hpp>

#include <posenc/error.hpp>

#include <exception>
#include <iostream>
#include <new>
#include <string>

#include "apply_commands.hpp"
#include "cli_common.hpp"
#include "compare_command.hpp"
#include "inspect_command.hpp"
#include "plot_command.hpp"

namespace posenc_cli {

void add_commands(CLI::App& app) {
  add_table_command(app);
  add_rope_command(app);
  add_bias_command(app);
  add_attend_command(app);
  add_convert_layout_command(app);
  add_plot_command(app);
  add_compare_command(app);
  add_inspect_command(app);
}

namespace {

/// CLI11 2.1.2 loops for ever on an empty word that is not an option's value in a command with
/// option groups (`posenc attend '' --x a.npy`: the empty word matches a nameless group as a
/// subcommand name). No posenc command takes positional arguments, so such a word is refused
/// before parsing. CLI11 takes the word after an option that needs a value and has none attached
/// (`--len`, and `--len=` too) as that value, whatever it looks like (`--len --dim` sets --len to
/// "--dim"), so an empty value (--title '') is not affected. Returns the message, or "" when
/// there is no such word.
std::string stray_empty_word(CLI::App& app, int argc, char** argv) {
  CLI::App* command = &app;
  bool value_next = false;  // the previous word is an option that needs a value
  bool positional = false;  // after "--"
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (value_next) {
      value_next = false;
      continue;
    }
    if (word.empty())
      return "argument " + std::to_string(i) +
             " is empty (no posenc command takes positional arguments)";
    if (positional) continue;
    if (word == "--") {
      positional = true;
    } else if (word.size() > 1 && word[0] == '-') {
      const auto eq = word.find('=');
      const CLI::Option* opt = command->get_option_no_throw(word.substr(0, eq));
      value_next =
          opt && opt->get_expected_max() > 0 && (eq == std::string::npos || eq + 1 == word.size());
    } else {
      for (CLI::App* sub : command->get_subcommands({}))
        if (!sub->get_name().empty() && sub->check_name(word)) {
          command = sub;
          break;
        }
    }
  }
  return "";
}

}  // namespace

int run(int argc, char** argv, std::ostream& out, std::ostream& err) {
  const auto fail = [&err](const std::string& what, int code) {
    err << "posenc: error: " << one_line(what) << '\n';
    return code;
  };
  CLI::App app{"posenc: Transformer positional encodings on .npy arrays (see docs/cli.md)",
               "posenc"};
  app.set_version_flag("--version", std::string("posenc ") + cli_version);
  app.require_subcommand(1);
  bf16_inputs = false;
  app.add_flag("--bf16", bf16_inputs,
               "Read input arrays of dtype <u2 as bfloat16 bit patterns (NumPy has no bfloat16; "
               "--dtype bf16 writes them so)");
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
  const std::string stray = stray_empty_word(app, argc, argv);
  if (!stray.empty()) return fail(stray, 2);
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
