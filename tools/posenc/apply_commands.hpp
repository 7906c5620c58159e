// posenc command line: registration of the subcommands that apply an encoder to arrays
// (table, rope, bias, attend, convert-layout), defined in apply_commands.cpp.
#pragma once

namespace CLI {
class App;
}

namespace posenc_cli {

/// posenc table: the absolute encoding table PE [N, D].
void add_table_command(CLI::App& app);
/// posenc rope: RoPE applied to an array.
void add_rope_command(CLI::App& app);
/// posenc bias: an encoder's score bias.
void add_bias_command(CLI::App& app);
/// posenc attend: multi-head attention under any encoder.
void add_attend_command(CLI::App& app);
/// posenc convert-layout: a projection's columns permuted between RoPE pair layouts.
void add_convert_layout_command(CLI::App& app);

}  // namespace posenc_cli
