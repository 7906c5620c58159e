// libFuzzer target: the posenc command line (posenc_cli::run) on argument vectors built from the
// input by a grammar.
//
// The input is read as lines. Line 0 picks the command: a name ("table", "plot npy", ...) or, for
// any other text, its first byte modulo the number of commands; "!" followed by text is a lone
// junk word instead (--version, --help, an unknown subcommand...). Every further line is NAME or
// NAME=VALUE and becomes one argument. NAME is a flag of that command, read from the CLI11 app
// itself (posenc_cli::add_commands), so the grammar follows the real flags: an exact name with
// or without the dashes, else its first byte modulo the number of flags; NAME starting with '!'
// is a junk word instead. VALUE becomes the flag's value by the flag's type:
//   - integer and float flags: a short decimal (up to 3 digits, e.g. 8, -3, 0.25) is kept; any
//     other text maps (exactly, or by its first byte) to a table of boundary and extreme values
//     (2^24, 2^31, 2^32, 2^62, 2^63 - 1, 2^63, -2^63, nan, inf, 1e308, "0x10", "", ...), which the
//     command must reject quickly or handle; lists (--shifts 1,2) map each item;
//   - input files (--in, --x, --table, ...): one of a few valid and corrupt .npy files, a FIFO,
//     a directory and a missing file, written at start-up into a private temporary directory;
//   - -o/--output: a path inside that directory's out/ (an .npy, .svg, .png, .md or other name,
//     a missing subdirectory, an existing directory, or the empty path);
//   - output directories (attend --grads): out/dir (existing; the files written there are
//     removed after each run like every output), out/dir/ with its slash, a missing directory,
//     an input file (not a directory), or the empty path;
//   - names and free text (--encoder, --scaling, --title, --labels ...): the text itself, up to
//     48 bytes.
// Values are attached with '=' (a value can never be read as another flag; a line without '='
// gives the flag bare, i.e. a missing value, except for path flags; the empty output path is
// "--output" "", since CLI11 reads an empty attached value as none and takes the next word),
// junk words take no value, and paths are never taken from the input, so a run cannot read or
// write outside the directory. A
// text flag the grammar does not know is refused at start-up: add it to text_flags, input_flags,
// output_flags or output_dir_flags below after checking which it is.
//
// `plot` runs as a dry run (POSENC_PLOT_DRY_RUN=1, set at start-up; docs/plots.md): each kind
// checks its flags, computes its arrays and writes the figure's .npy files and JSON description
// into its temporary directory, but does not start Python to draw it, so no picture is written.
//
// compare is run with small measurement defaults (--dim 8, --time-budget 0, ...) for every
// such flag the input does not give, and a --time-budget it accepts (seconds spent timing, up
// to 60) becomes 0, so that one execution stays in milliseconds.
//
// A finding (abort) is: run() throwing, an exit status other than 0 and 2 (1 is accepted only
// for "out of memory"), an error message that is not exactly one line "posenc: error: ...",
// text on the error stream after a success, an output file left behind by a failed run, or a
// file in the working directory named like one of the arguments (a word taken for a path).
// Slow inputs (-timeout) are reported by libFuzzer itself; scripts/fuzz.sh makes ASan refuse
// a single allocation above 1 GiB (malloc returns null), so that a legal but huge request
// ends as the program's "out of memory" or posenc::error rather than in libFuzzer's malloc
// limit.
//
// Environment: POSENC_FUZZ_PRINT=1 prints each argument vector (shell-quoted) to stderr, to
// turn a crash file into a command line; POSENC_FUZZ_DIR=<dir> writes the input files there and
// keeps them, so that the printed command line also runs with the posenc program.
#include <CLI/CLI.hpp>

#include <npy.hpp>

#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "run.hpp"
#include "scratch_dir.hpp"

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fatal(const std::string& what) {
  std::fprintf(stderr, "fuzz_cli: %s\n", what.c_str());
  std::abort();
}

// --- The files the input flags point at ----------------------------------------------------------

/// Shapes fit one small configuration: X [N = 4, D = 8], H = 2 heads of Dh = 4.
struct Fixture {
  std::string name;
  std::string bytes;  // empty for the special entries below
};

std::string npy_f8(const std::vector<std::int64_t>& shape, double scale, std::uint64_t seed) {
  std::int64_t n = 1;
  for (auto s : shape)
    n *= s;
  std::vector<double> v(static_cast<std::size_t>(n));
  for (auto& x : v) {  // a 64-bit LCG (Knuth's MMIX constants), uniform in [-scale, scale)
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    x = scale * (static_cast<double>(seed >> 11) / 9007199254740992.0 * 2 - 1);
  }
  std::string s = posenc_npy::npy_header_bytes("<f8", shape);
  s.append(reinterpret_cast<const char*>(v.data()), v.size() * 8);
  return s;
}

std::string npy_f4(const std::vector<std::int64_t>& shape, std::uint64_t seed) {
  const std::string d = npy_f8(shape, 1.0, seed);
  const std::string header = posenc_npy::npy_header_bytes("<f8", shape);
  std::string s = posenc_npy::npy_header_bytes("<f4", shape);
  for (std::size_t i = header.size(); i + 8 <= d.size(); i += 8) {
    double x;
    std::memcpy(&x, d.data() + i, 8);
    const float f = static_cast<float>(x);
    s.append(reinterpret_cast<const char*>(&f), 4);
  }
  return s;
}

std::string npy_i8(const std::vector<std::int64_t>& v) {
  std::string s = posenc_npy::npy_header_bytes("<i8", {static_cast<std::int64_t>(v.size())});
  s.append(reinterpret_cast<const char*>(v.data()), v.size() * 8);
  return s;
}

std::string raw_npy(const std::string& header, const std::string& data) {
  std::string s("\x93NUMPY\x01\x00", 8);
  s += static_cast<char>(header.size() & 0xff);
  s += static_cast<char>(header.size() >> 8);
  return s + header + data;
}

std::vector<Fixture> make_fixtures() {
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  std::string nan_x = npy_f8({4, 8}, 1.0, 7);
  const double specials[3] = {std::nan(""), INFINITY, -INFINITY};
  std::memcpy(&nan_x[nan_x.size() - 24], specials, 24);
  return {
      {"x.npy", npy_f8({4, 8}, 1.0, 1)},
      {"x_f4.npy", npy_f4({4, 8}, 2)},
      {"x3.npy", npy_f8({4, 2, 4}, 1.0, 3)},
      {"w.npy", npy_f8({8, 8}, 0.35, 4)},
      {"pos.npy", npy_i8({0, 1, 2, 3})},
      {"pos_big.npy", npy_i8({0, std::int64_t{1} << 40, (std::int64_t{1} << 53) + 1, big})},
      {"pos_neg.npy", npy_i8({0, -1, 2, 3})},
      {"learned.npy", npy_f8({6, 8}, 1.0, 5)},
      {"t5.npy", npy_f8({32, 2}, 1.0, 6)},
      {"shaw.npy", npy_f8({7, 4}, 1.0, 8)},
      {"uv.npy", npy_f8({2, 4}, 1.0, 9)},
      {"factors2.npy", npy_f8({2}, 0.5, 10)},
      {"factors4.npy", npy_f8({4}, 0.5, 11)},
      {"vec8.npy", npy_f8({8}, 0.5, 17)},
      {"w_kv.npy", npy_f8({8, 4}, 0.35, 18)},
      {"vec4.npy", npy_f8({4}, 0.5, 19)},
      {"segments.npy", npy_i8({0, 0, 1, 1})},
      {"nan.npy", nan_x},
      {"empty.npy", npy_f8({0, 8}, 1.0, 12)},
      {"scalar.npy", npy_f8({}, 1.0, 13)},
      {"one.npy", npy_f8({1, 1}, 1.0, 14)},
      {"panels.npy", npy_f8({3, 2, 5}, 1.0, 15)},
      {"i8_2d.npy", raw_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (4, 8), }\n",
                            std::string(256, '\0'))},
      {"huge_shape.npy",
       raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }\n", "")},
      {"truncated.npy", npy_f8({4, 8}, 1.0, 16).substr(0, 150)},
      {"text.npy", "this is not numpy\n"},
      {"nul.npy",
       raw_npy(std::string("{'descr': '<f8\0', 'fortran_order': False, 'shape': (1,)}", 57),
               std::string(8, '\0'))},
      {"fortran.npy", raw_npy("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }\n",
                              std::string(32, '\0'))},
      {"big_endian.npy", raw_npy("{'descr': '>f8', 'fortran_order': False, 'shape': (4, 8), }\n",
                                 std::string(256, '\0'))},
      // Hugging Face config.json files for --config (posenc inspect, rope, attend, table): models
      // of the fixture's shape (D = 8, H = 2, Dh = 4), one that posenc refuses, and bad JSON.
      {"config_llama.json",
       R"({"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2,
           "num_key_value_heads": 1, "num_hidden_layers": 2, "max_position_embeddings": 64,
           "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 16}})"},
      {"config_yarn.json",
       R"({"model_type": "qwen2", "hidden_size": 8, "num_attention_heads": 2,
           "num_hidden_layers": 1, "max_position_embeddings": 64,
           "rope_scaling": {"type": "yarn", "factor": 4.0,
           "original_max_position_embeddings": 16}})"},
      {"config_t5.json",
       R"({"model_type": "t5", "d_model": 8, "num_heads": 2, "d_kv": 4, "num_layers": 2,
           "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128})"},
      {"config_bloom.json",
       R"({"model_type": "bloom", "hidden_size": 8, "n_head": 2, "n_layer": 1})"},
      {"config_unknown.json", R"({"model_type": "nope", "hidden_size": 8})"},
      {"config_bad.json", "{\"model_type\": \"llama\", "},
      {"fifo.npy", ""},
      {"dir.npy", ""},
      {"missing.npy", ""},
  };
}

/// Output directory names (attend --grads), inside out/: "dir" exists, "sub" does not; "@x.npy"
/// stands for the input x.npy, a regular file, which is never written to (it is not a
/// directory).
const std::vector<std::string>& output_dir_names() {
  static const std::vector<std::string> names = {"dir", "dir/", "sub", "@x.npy", ""};
  return names;
}

/// Output names, inside out/: "sub/" does not exist, "dir" is a directory.
const std::vector<std::string>& output_names() {
  static const std::vector<std::string> names = {"out.npy", "out.svg", "out.png", "out.md",
                                                 "out",     "out.SVG", ".npy",    "sub/out.npy",
                                                 "dir",     ""};
  return names;
}

struct Env {
  std::string dir, in, out;
  std::vector<std::string> inputs;  // paths, by fixture
  std::vector<std::string> fixture_names;
  bool print = false;
};

const Env& env() {
  static const Env e = [] {
    Env e;
    e.print = std::getenv("POSENC_FUZZ_PRINT") != nullptr;
    const char* keep = std::getenv("POSENC_FUZZ_DIR");
    std::error_code ec;
    if (keep) {
      e.dir = keep;
      fs::create_directories(e.dir, ec);
    } else {
      e.dir = posenc_fuzz::make_scratch_dir(fs::temp_directory_path(), "posenc_fuzz_cli");
      if (e.dir.empty()) fatal("cannot create a temporary directory");
    }
    e.in = e.dir + "/in";
    e.out = e.dir + "/out";
    fs::create_directories(e.in, ec);
    fs::create_directories(e.out + "/dir", ec);
    for (const Fixture& f : make_fixtures()) {
      const std::string path = e.in + "/" + f.name;
      e.fixture_names.push_back(f.name);
      e.inputs.push_back(path);
      if (f.name == "fifo.npy") {
        if (!fs::exists(path, ec) && ::mkfifo(path.c_str(), 0600) != 0)
          fatal("cannot create the FIFO " + path);
      } else if (f.name == "dir.npy") {
        fs::create_directories(path, ec);
      } else if (f.name != "missing.npy") {
        std::FILE* fp = std::fopen(path.c_str(), "wb");
        if (!fp || std::fwrite(f.bytes.data(), 1, f.bytes.size(), fp) != f.bytes.size() ||
            std::fclose(fp) != 0)
          fatal("cannot write " + path);
      }
    }
    return e;
  }();
  return e;
}

// --- The commands and their flags, from the CLI11 app
// ---------------------------------------------

enum class Kind { flag, integer, real, text, input, output, output_dir };

struct Flag {
  std::string name;  // the long name, without dashes
  Kind kind;
  bool list;  // a vector option (comma-separated values)
};

struct Command {
  std::vector<std::string> words;  // e.g. {"plot", "npy"}
  std::vector<Flag> flags;
};

// clang-format off
const std::set<std::string> input_flags = {
    "in", "positions", "x", "wq", "wk", "wv", "wo", "table", "short-factors", "long-factors", "freq-factors",
    "rel-k", "rel-v", "u", "v", "wr", "bq", "bk", "bv", "bo", "segments", "sinks", "distance-table",
    "rel-key-table", "rel-query-table", "rel-embeddings", "rel-ln-weight", "rel-ln-bias", "config", "weights",
    "grad-y"};
const std::set<std::string> output_flags = {"output"};
// Flags that name a directory the command writes files into.
const std::set<std::string> output_dir_flags = {"grads"};
// Text flags that are not paths.
const std::set<std::string> text_flags = {
    "encoder", "encoders", "layout", "frequencies", "dtype", "scaling", "truncate", "title", "rotary-dims", "from", "to", "mrope-layout",
    "colormap", "query", "style", "head", "input", "labels", "x-label", "y-label",
    "position-embedding-type", "pos-att-type"};
// clang-format on

/// The options of `app` and of its option groups (nameless subcommands), once per name.
void collect(const CLI::App* app, const std::string& where, std::vector<Flag>& out) {
  for (const CLI::Option* o : app->get_options()) {
    if (o->get_lnames().empty()) fatal(where + ": option " + o->get_name() + " has no long name");
    Flag f{o->get_lnames().front(), Kind::text, o->get_expected_max() > 1};
    bool seen = false;
    for (const Flag& g : out)
      seen = seen || g.name == f.name;
    if (seen) continue;
    const std::string type = o->get_type_name();
    if (o->get_expected_max() == 0)
      f.kind = Kind::flag;
    else if (type.compare(0, 3, "INT") == 0)
      f.kind = Kind::integer;
    else if (type.compare(0, 5, "FLOAT") == 0)
      f.kind = Kind::real;
    else if (input_flags.count(f.name))
      f.kind = Kind::input;
    else if (output_flags.count(f.name))
      f.kind = Kind::output;
    else if (output_dir_flags.count(f.name))
      f.kind = Kind::output_dir;
    else if (text_flags.count(f.name))
      f.kind = Kind::text;
    else
      fatal(where + ": flag --" + f.name + " of type '" + type +
            "' is unknown to the grammar: add it to input_flags, output_flags, output_dir_flags or "
            "text_flags");
    out.push_back(f);
  }
  for (const CLI::App* sub : app->get_subcommands({}))
    if (sub->get_name().empty()) collect(sub, where, out);
}

const std::vector<Command>& commands() {
  static const std::vector<Command> all = [] {
    CLI::App app;
    posenc_cli::add_commands(app);
    std::vector<Command> cs;
    for (const CLI::App* sub : app.get_subcommands({})) {
      if (sub->get_name().empty()) continue;
      Command c{{sub->get_name()}, {}};
      collect(sub, sub->get_name(), c.flags);
      cs.push_back(c);
      for (const CLI::App* kind : sub->get_subcommands({})) {
        if (kind->get_name().empty()) continue;
        Command k{{sub->get_name(), kind->get_name()}, c.flags};
        collect(kind, sub->get_name() + " " + kind->get_name(), k.flags);
        cs.push_back(k);
      }
    }
    if (cs.empty()) fatal("the app has no subcommands");
    return cs;
  }();
  return all;
}

// --- Values ------------------------------------------------------------------------------------

// Words that are not flags of the command (none takes a value, so none can swallow a path).
const std::vector<std::string> junk = {"--help", "-h",     "--version", "--",         "-",
                                       "extra",  "--nope", "-x",        "frobnicate", ""};

const std::vector<std::string> extremes = {"-1",
                                           "-2",
                                           "0",
                                           "1",
                                           "2",
                                           "3",
                                           "4",
                                           "7",
                                           "8",
                                           "16",
                                           "32",
                                           "64",
                                           "16777216",
                                           "16777217",
                                           "2147483647",
                                           "2147483648",
                                           "4294967295",
                                           "4294967296",
                                           "4294967297",
                                           "1099511627776",
                                           "1099511627777",
                                           "9007199254740993",
                                           "4611686018427387904",
                                           "9223372036854775807",
                                           "9223372036854775808",
                                           "-9223372036854775808",
                                           "18446744073709551616",
                                           "1e3",
                                           "1e308",
                                           "-1e308",
                                           "1e-320",
                                           "1e400",
                                           "nan",
                                           "-nan",
                                           "inf",
                                           "-inf",
                                           "0.5",
                                           "1.5",
                                           "-0",
                                           "+3",
                                           "0x10",
                                           "1_000",
                                           "",
                                           "abc",
                                           " 5",
                                           "5 ",
                                           "0.1e1",
                                           "3.14159",
                                           "1e-9",
                                           "-0.5"};

bool short_number(const std::string& s, bool real) {
  std::size_t i = s.size() > 1 && s[0] == '-' ? 1 : 0, digits = 0, frac = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
    ++i, ++digits;
  if (real && i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      ++i, ++frac;
    if (frac == 0) return false;
  }
  return i == s.size() && digits >= 1 && digits <= 3 && frac <= 3;
}

template <class List>
const std::string& pick(const List& list, const std::string& v) {
  for (const auto& item : list)
    if (item == v) return item;
  return list[v.empty() ? 0 : static_cast<unsigned char>(v[0]) % list.size()];
}

std::string number(const std::string& v, bool real) {
  return short_number(v, real) ? v : pick(extremes, v);
}

std::string value_of(const Flag& f, const std::string& v) {
  const Env& e = env();
  switch (f.kind) {
    case Kind::integer:
    case Kind::real: {
      if (f.name == "time-budget") {  // seconds of timing the user asks for: any accepted one is 0
        const std::string t = number(v, true);
        char* end = nullptr;
        const double x = std::strtod(t.c_str(), &end);
        return !t.empty() && *end == '\0' && x > 0 && x <= 60 ? "0" : t;
      }
      if (!f.list) return number(v, f.kind == Kind::real);
      std::string out;
      std::size_t start = 0;
      for (int items = 0; items < 4; ++items) {
        const std::size_t comma = v.find(',', start);
        out += (items ? "," : "") + number(v.substr(start, comma - start), f.kind == Kind::real);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      return out;
    }
    case Kind::input: {
      for (std::size_t i = 0; i < e.fixture_names.size(); ++i)
        if (e.fixture_names[i] == v) return e.inputs[i];
      return e.inputs[v.empty() ? 0 : static_cast<unsigned char>(v[0]) % e.inputs.size()];
    }
    case Kind::output: {
      const std::string& name = pick(output_names(), v);
      return name.empty() ? name : e.out + "/" + name;
    }
    case Kind::output_dir: {
      const std::string& name = pick(output_dir_names(), v);
      if (name.empty()) return name;
      return name[0] == '@' ? e.in + "/" + name.substr(1) : e.out + "/" + name;
    }
    case Kind::text:
    case Kind::flag:
      break;
  }
  return v.substr(0, 48);
}

// --- One input ---------------------------------------------------------------------------------

std::vector<std::string> split_lines(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> lines(1);
  for (std::size_t i = 0; i < size && lines.size() <= 32; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '\n')
      lines.emplace_back();
    else if (c != '\0')  // an argument cannot hold NUL
      lines.back() += c;
  }
  return lines;
}

std::vector<std::string> build_args(const std::vector<std::string>& lines) {
  const std::vector<Command>& cs = commands();
  std::vector<std::string> args{"posenc"};
  const std::string& first = lines[0];
  if (!first.empty() && first[0] == '!') {
    args.push_back(pick(junk, first.substr(1)));
    return args;
  }
  std::size_t pick_cmd = first.empty() ? 0 : static_cast<unsigned char>(first[0]) % cs.size();
  for (std::size_t i = 0; i < cs.size(); ++i) {
    std::string words;
    for (const auto& w : cs[i].words)
      words += (words.empty() ? "" : " ") + w;
    if (words == first) pick_cmd = i;
  }
  const Command& c = cs[pick_cmd];
  args.insert(args.end(), c.words.begin(), c.words.end());
  std::set<std::string> given;
  for (std::size_t l = 1; l < lines.size(); ++l) {
    const std::string& line = lines[l];
    if (!line.empty() && line[0] == '!') {
      args.push_back(pick(junk, line.substr(1)));
      continue;
    }
    const std::size_t eq = line.find('=');
    std::string name = line.substr(0, eq);
    while (!name.empty() && name[0] == '-')
      name.erase(0, 1);
    const Flag* flag = nullptr;
    for (const Flag& f : c.flags)
      if (f.name == name) flag = &f;
    if (!flag)
      flag = &c.flags[line.empty() ? 0 : static_cast<unsigned char>(line[0]) % c.flags.size()];
    given.insert(flag->name);
    const std::string dashed = "--" + flag->name;
    const bool path =
        flag->kind == Kind::input || flag->kind == Kind::output || flag->kind == Kind::output_dir;
    if (eq == std::string::npos && !path) {
      args.push_back(dashed);  // a flag, or a missing value
      continue;
    }
    const std::string value = value_of(*flag, eq == std::string::npos ? "" : line.substr(eq + 1));
    if (value.empty() && (flag->kind == Kind::output || flag->kind == Kind::output_dir)) {
      // CLI11 reads `--output=` as `--output` and takes the next word as the path: the empty
      // path goes as a word of its own.
      args.push_back(dashed);
      args.push_back("");
    } else {
      args.push_back(dashed + "=" + value);
    }
  }
  if (c.words.size() == 1 && c.words[0] == "compare") {
    static const std::vector<std::pair<std::string, std::string>> small = {
        {"dim", "8"},          {"heads", "2"},       {"max-len", "16"},    {"tokens", "4"},
        {"time-len", "4"},     {"time-budget", "0"}, {"num-buckets", "4"}, {"max-distance", "8"},
        {"max-relative", "2"}, {"shifts", "1,3"}};
    for (const auto& d : small)
      if (!given.count(d.first)) args.push_back("--" + d.first + "=" + d.second);
  }
  return args;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_=./,+:") == std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

/// Regular files under out/ (every one is removed after each run).
std::vector<std::string> outputs_left() {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(env().out, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) files.push_back(it->path().string());
  return files;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::setenv("POSENC_PLOT_DRY_RUN", "1", 1);
  (void)env();
  (void)commands();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::string> args = build_args(split_lines(data, size));
  std::string line;
  for (const auto& a : args)
    line += (line.empty() ? "" : " ") + shell_quote(a);
  if (env().print) std::fprintf(stderr, "%s\n", line.c_str());

  std::vector<std::vector<char>> storage;
  std::vector<char*> argv;
  for (const auto& a : args) {
    storage.emplace_back(a.begin(), a.end());
    storage.back().push_back('\0');
  }
  for (auto& s : storage)
    argv.push_back(s.data());
  argv.push_back(nullptr);

  std::vector<bool> existed(args.size());
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::error_code ec;
    existed[i] = args[i].empty() || fs::exists(args[i], ec);
  }

  std::ostringstream out, err;
  const int rc = posenc_cli::run(static_cast<int>(args.size()), argv.data(), out, err);
  const std::string message = err.str();
  const auto finding = [&](const std::string& what) {
    fatal(what + "\n  command: " + line + "\n  exit status " + std::to_string(rc) +
          ", error stream: " + message);
  };
  if (rc == 2 || (rc == 1 && message.find("out of memory") != std::string::npos)) {
    const std::string prefix = "posenc: error: ";
    if (message.compare(0, prefix.size(), prefix) != 0 || message.back() != '\n' ||
        message.find('\n') != message.size() - 1)
      finding("the error is not one line \"posenc: error: ...\"");
    const auto left = outputs_left();
    if (!left.empty()) finding("a failed run left " + left[0] + " behind");
  } else if (rc == 0) {
    if (!message.empty()) finding("a successful run wrote to the error stream");
  } else {
    finding("unexpected exit status");
  }
  // A tripwire for a grammar that lets a word become an output path: no argument may have
  // appeared as a file in the working directory.
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::error_code ec;
    if (!args[i].empty() && args[i][0] != '/' && !existed[i] && fs::exists(args[i], ec))
      finding("the run wrote '" + args[i] + "' into the working directory");
  }
  for (const auto& f : outputs_left())
    std::remove(f.c_str());
  return 0;
}
