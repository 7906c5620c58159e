// posenc command line: `--config config.json [--layer L]`, a Hugging Face config.json read through
// posenc::hf (include/posenc/hf.hpp) in place of the encoder flags (docs/cli.md, "--config").
// posenc::hf needs nlohmann/json: without it (POSENC_CLI_HAVE_HF unset) the flags still exist and
// answer with one line saying so.
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "cli_common.hpp"

#if POSENC_CLI_HAVE_HF
#include <posenc/hf.hpp>
#endif

namespace posenc_cli {

/// The one line of every --config path in a program built without nlohmann/json.
inline const char* const no_hf_message =
    "posenc was built without nlohmann/json: --config is not available";

/// --config config.json and --layer L (default 0) of one subcommand.
struct ConfigFlags {
  std::string path;
  std::int64_t layer = 0;
  CLI::Option *o_config = nullptr, *o_layer = nullptr;

  /// Adds --config (help: `what`) and, with `with_layer`, --layer (which needs --config).
  void add(CLI::App* sub, const std::string& what, bool with_layer = true) {
    o_config = sub->add_option("--config", path, "Hugging Face config.json: " + what);
    if (with_layer)
      o_layer = sub->add_option("--layer", layer, "The layer of --config (default 0)")
                    ->check(in_range(0, max_extent))
                    ->needs(o_config);
  }
  bool given() const { return o_config && o_config->count() > 0; }
  /// --config replaces each of `flags`: given together, CLI11 refuses them while it parses
  /// ("--config excludes --encoder").
  void replaces(const std::vector<CLI::Option*>& flags) const {
    for (CLI::Option* o : flags)
      if (o && o != o_config && o != o_layer) o_config->excludes(o);
  }
  void replaces(CLI::App* group) const { replaces(group->get_options()); }
  /// --config replaces every flag of `sub` (and of its option groups) but --help and `keep`.
  void replaces_all_except(CLI::App* sub, const std::vector<CLI::Option*>& keep) const {
    for (CLI::Option* o : sub->get_options())
      if (o != sub->get_help_ptr() && o != sub->get_help_all_ptr() &&
          std::find(keep.begin(), keep.end(), o) == keep.end())
        replaces({o});
    for (CLI::App* g : sub->get_subcommands({}))
      if (g->get_name().empty()) replaces_all_except(g, keep);
  }
};

/// Throws the one line of a program built without nlohmann/json.
[[noreturn]] inline void config_unavailable() {
  throw CliError(no_hf_message);
}

#if POSENC_CLI_HAVE_HF

/// config.json files larger than this are refused before they are read (published ones are a
/// few kilobytes).
constexpr std::int64_t max_config_bytes = std::int64_t{64} << 20;

/// Reads and parses `path` (a regular file: a directory or FIFO is refused without being opened)
/// into what posenc builds for each layer; every error is "--config: <path>: ...".
inline posenc::hf::ModelConfig read_model_config(const std::string& path) {
  const std::string where = "--config: " + path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw CliError(where + ": cannot open (" + std::strerror(errno) + ")");
  if (S_ISDIR(st.st_mode)) throw CliError(where + ": is a directory");
  if (!S_ISREG(st.st_mode)) throw CliError(where + ": is not a regular file");
  if (st.st_size > max_config_bytes)
    throw CliError(where + ": " + std::to_string(st.st_size) + " bytes, more than the limit " +
                   limit_str(max_config_bytes) + " of a config file");
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) throw CliError(where + ": cannot open (" + std::strerror(errno) + ")");
  std::string text;
  char buf[65536];
  for (;;) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, fp);
    text.append(buf, n);
    if (static_cast<std::int64_t>(text.size()) > max_config_bytes) break;
    if (n < sizeof buf) break;
  }
  const bool failed = std::ferror(fp) != 0;
  const int err = errno;
  std::fclose(fp);
  if (failed) throw CliError(where + ": read failed (" + std::strerror(err) + ")");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw CliError(where + ": not valid JSON: " + e.what());
  }
  try {
    return posenc::hf::parse_config(j, path);
  } catch (const posenc::error& e) {
    throw CliError(std::string("--config: ") + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw CliError(where + ": " + e.what());
  }
}

/// "layer 3 of c.json (llama)", for messages.
inline std::string layer_name(const ConfigFlags& f, const posenc::hf::ModelConfig& m) {
  return "layer " + std::to_string(f.layer) + " of " + f.path + " (" + m.model_type + ")";
}

/// The layer --layer names (0 without it); "--layer: 40 is outside 0 .. 31 (...)" otherwise.
inline const posenc::hf::LayerConfig& config_layer(const ConfigFlags& f,
                                                   const posenc::hf::ModelConfig& m) {
  const auto n = static_cast<std::int64_t>(m.layers.size());
  if (f.layer >= n)
    throw CliError("--layer: " + std::to_string(f.layer) + " is outside 0 .. " +
                   std::to_string(n - 1) + " (" + f.path + ": " + m.model_type + " has " +
                   std::to_string(n) + " layer" + (n == 1 ? "" : "s") + ")");
  return m.layers[static_cast<std::size_t>(f.layer)];
}

#endif  // POSENC_CLI_HAVE_HF

}  // namespace posenc_cli
