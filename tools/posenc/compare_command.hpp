// PLACEHOLDER for `posenc compare`: the helper writing the real subcommand overwrites this file.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>

namespace posenc_cli {

inline void add_compare_command(CLI::App& app) {
  auto* sub = app.add_subcommand("compare", "(not implemented yet)");
  sub->allow_extras();
  sub->callback([] {
    std::cerr << "posenc: error: compare: not implemented\n";
    std::exit(2);
  });
}

}  // namespace posenc_cli
