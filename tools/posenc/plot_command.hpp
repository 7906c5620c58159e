// PLACEHOLDER for `posenc plot`: the helper writing the real subcommand overwrites this file.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>

namespace posenc_cli {

inline void add_plot_command(CLI::App& app) {
  auto* sub = app.add_subcommand("plot", "(not implemented yet)");
  sub->allow_extras();
  sub->callback([] {
    std::cerr << "posenc: error: plot: not implemented\n";
    std::exit(2);
  });
}

}  // namespace posenc_cli
