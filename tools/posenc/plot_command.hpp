// posenc command line: registration of `posenc plot` and its subcommands, defined in
// plot_command.cpp (docs/plots.md).
#pragma once

namespace CLI {
class App;
}

namespace posenc_cli {

/// posenc plot <kind>: pictures as SVG or PNG.
void add_plot_command(CLI::App& app);

}  // namespace posenc_cli
