// posenc command line: `posenc inspect --config config.json [--layer L] [--json]`, what posenc
// builds for each layer of a Hugging Face model (defined in inspect_command.cpp).
#pragma once

namespace CLI {
class App;
}

namespace posenc_cli {

/// posenc inspect: the layers of a config.json as posenc reads them, as text or one JSON object.
void add_inspect_command(CLI::App& app);

}  // namespace posenc_cli
