// posenc command line: registration of `posenc compare`, defined in compare_command.cpp
// (docs/compare.md).
#pragma once

namespace CLI {
class App;
}

namespace posenc_cli {

/// posenc compare: every encoder's measured properties as a Markdown table.
void add_compare_command(CLI::App& app);

}  // namespace posenc_cli
