// posenc command line: shared helpers (errors, limits and checks of flags, flags naming a value,
// the flags of each --encoder, output files, loading input arrays). docs/cli.md states the rules
// these implement.
#pragma once

#include <CLI/CLI.hpp>

#include <npy.hpp>
#include <posenc/detail/checked.hpp>
#include <posenc/detail/half_storage.hpp>
#include <posenc/error.hpp>
#include <posenc/types.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace posenc_cli {

/// The output's dtype, and with it the computation's scalar: float or double (--dtype).
/// Array dtypes: f32, f64; f16 (.npy <f2); bf16 (.npy <u2 holding the bit patterns, as NumPy
/// has no bfloat16; read as such only with the global --bf16 flag).
enum class Dtype { f32, f64, f16, bf16 };
/// A flag spelled true or false (--truncate).
enum class Bool { no, yes };

}  // namespace posenc_cli

// The command line's own enums name their values through the library's table, as the library's
// enums do, so that one helper (add_enum_option) parses and reports every enumerated flag.
namespace posenc {
template <>
struct enum_names<posenc_cli::Dtype> {
  static constexpr std::array<std::pair<std::string_view, posenc_cli::Dtype>, 4> table{
      {{"f32", posenc_cli::Dtype::f32},
       {"f64", posenc_cli::Dtype::f64},
       {"f16", posenc_cli::Dtype::f16},
       {"bf16", posenc_cli::Dtype::bf16}}};
};
template <>
struct enum_names<posenc_cli::Bool> {
  static constexpr std::array<std::pair<std::string_view, posenc_cli::Bool>, 2> table{
      {{"true", posenc_cli::Bool::yes}, {"false", posenc_cli::Bool::no}}};
};
}  // namespace posenc

namespace posenc_cli {

/// The dtype of scalar T.
template <class T>
constexpr Dtype dtype_of() {
  return std::is_same<T, float>::value ? Dtype::f32 : Dtype::f64;
}

/// The name of the dtype of scalar T ("f32", "f64").
template <class T>
std::string dtype_name() {
  return std::string(posenc::name_of(dtype_of<T>()));
}

/// Set by the global flag --bf16: input arrays of dtype <u2 hold bfloat16 bit patterns.
inline bool bf16_inputs = false;

/// The .npy descr of an output dtype.
inline const char* npy_descr(Dtype d) {
  switch (d) {
    case Dtype::f32:
      return "<f4";
    case Dtype::f64:
      return "<f8";
    case Dtype::f16:
      return "<f2";
    case Dtype::bf16:
      return "<u2";
  }
  return "<f8";
}

/// The dtype of an input file's descr (<u2: bf16, as read_float_npy admits it).
inline Dtype dtype_of_descr(const std::string& descr) {
  return descr == "<f4"   ? Dtype::f32
         : descr == "<f2" ? Dtype::f16
         : descr == "<u2" ? Dtype::bf16
                          : Dtype::f64;
}

/// x as dtype d stores it: rounded once to nearest, ties to even (posenc::detail::round_to).
inline double stored_value(Dtype d, double x) {
  switch (d) {
    case Dtype::f32:
      return static_cast<float>(x);
    case Dtype::f64:
      return x;
    case Dtype::f16:
      return static_cast<float>(posenc::detail::round_to<Eigen::half>(x));
    case Dtype::bf16:
      return static_cast<float>(posenc::detail::round_to<Eigen::bfloat16>(x));
  }
  return x;
}

/// The 16 bits of x rounded to f16 or bf16.
inline std::uint16_t half_bits(Dtype d, double x) {
  std::uint16_t u;
  if (d == Dtype::f16) {
    const Eigen::half h = posenc::detail::round_to<Eigen::half>(x);
    std::memcpy(&u, &h, 2);
  } else {
    const Eigen::bfloat16 b = posenc::detail::round_to<Eigen::bfloat16>(x);
    std::memcpy(&u, &b, 2);
  }
  return u;
}

/// A 16-bit input element (f16 or bf16 bits) widened exactly.
inline double widen_half(Dtype d, std::uint16_t u) {
  if (d == Dtype::f16)
    return static_cast<float>(Eigen::half(Eigen::half_impl::raw_uint16_to_half(u)));
  return static_cast<float>(Eigen::bfloat16(Eigen::bfloat16_impl::raw_uint16_to_bfloat16(u)));
}

/// A user error: printed as one line "posenc: error: <what>", exit status 2.
struct CliError : std::runtime_error {
  using runtime_error::runtime_error;
};

/// A failure of the machine rather than of the input (a full disk, a file size limit, an I/O
/// error): printed as one line like CliError, but exit status 1 (main catches std::exception).
struct ResourceError : std::runtime_error {
  using runtime_error::runtime_error;
};

// --- limits ------------------------------------------------------------------------------------

/// Widths, head counts, head sizes, bucket counts and the rows of a table: the library's limit.
constexpr std::int64_t max_extent = posenc::max_extent;
/// Elements of one output (and of one input array), and the rows of a sequence (N).
constexpr std::int64_t max_elements = std::int64_t{1} << 32;
/// Positions, offsets and distances.
constexpr std::int64_t max_position = std::numeric_limits<std::int64_t>::max();

/// "2^24" for the limits above, the number itself otherwise.
inline std::string limit_name(std::int64_t v) {
  if (v == max_position) return "2^63 - 1";
  for (int k = 10; k < 63; ++k)
    if (v == (std::int64_t{1} << k)) return "2^" + std::to_string(k);
  return std::to_string(v);
}

/// "2^24 = 16777216" for the limits above, the number itself otherwise.
inline std::string limit_str(std::int64_t v) {
  const std::string name = limit_name(v), n = std::to_string(v);
  return name == n ? n : name + " = " + n;
}

/// "[3, 4, 5]"
inline std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// The multi-index "[i, j, k]" of row-major element `flat` of an array of shape `shape`.
inline std::string index_str(std::int64_t flat, const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> idx(shape.size(), 0);
  for (std::size_t k = shape.size(); k-- > 0;) {
    if (shape[k] == 0) break;
    idx[k] = flat % shape[k];
    flat /= shape[k];
  }
  return shape_str(idx);
}

/// A value as a message shows it: "nan", "inf", "-inf", "1e+300", "0.5".
inline std::string number_str(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

/// The message on one line (newlines become "; ").
inline std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  std::string out;
  for (char c : s) {
    if (c == '\n')
      out += "; ";
    else if (c != '\r')
      out += c;
  }
  return out;
}

/// Throws unless the product of `dims` (all >= 0) stays within 2^32 elements.
inline void check_elements(const std::string& what, std::initializer_list<std::int64_t> dims) {
  constexpr std::int64_t limit = max_elements;
  std::int64_t n = 1;
  std::string s;
  for (auto d : dims) {
    s += (s.empty() ? "" : " x ") + std::to_string(d);
    if (d < 0) throw CliError(what + ": negative extent in " + s);
    if (d != 0 && n > limit / d)
      n = limit + 1;
    else
      n *= d;
  }
  if (n > limit) throw CliError(what + " would have " + s + " elements, more than the limit 2^32");
}

// --- checks of flags, run by CLI11 while it parses (its message is "<flag>: <ours>") -----------

/// A floating-point flag must be a finite double: "nan", "inf" and values past the double range
/// (which CLI11 parses as a long double and rounds to inf) are refused.
inline CLI::Validator finite() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        char* end = nullptr;
        const long double v = std::strtold(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size()) return {};  // CLI11 reports the non-number
        if (!std::isfinite(static_cast<double>(v)))
          return s + " is not a finite number" +
                 (std::isfinite(v) ? std::string(" (outside the range of a double)") : "");
        return {};
      },
      "FINITE");
}

/// A floating-point flag must be > 0 (after finite(), which reports what is not a number).
inline CLI::Validator positive() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        char* end = nullptr;
        const long double v = std::strtold(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size()) return {};  // CLI11 reports the non-number
        if (!(v > 0)) return s + " must be > 0";
        return {};
      },
      "POSITIVE");
}

/// An integer flag must lie in [lo, hi]. CLI11 itself saturates a value past int64 at the
/// largest int64 (strtoll), so that is refused here too.
inline CLI::Validator in_range(std::int64_t lo, std::int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(s.c_str(), &end, 0);     // as CLI11 converts it
        if (s.empty() || end != s.c_str() + s.size()) return {};  // CLI11 reports the non-integer
        if (errno == ERANGE) return s + " is outside the range of int64";
        if (v < lo) return s + " must be >= " + std::to_string(lo);
        if (v > hi) return s + " is more than the limit " + limit_str(hi);
        return {};
      },
      "[" + std::to_string(lo) + ", " + limit_name(hi) + "]");
}

/// A width, head count, head size, bucket count or number of table rows: [lo, 2^24].
inline CLI::Validator extent(std::int64_t lo = 1) {
  return in_range(lo, max_extent);
}

/// A flag's double converted to the computation's scalar T, which it must fit.
template <class T>
T to_scalar(const std::string& flag, double v) {
  const T t = static_cast<T>(v);
  if (!std::isfinite(t))
    throw CliError(flag + ": " + number_str(v) + " overflows " + dtype_name<T>());
  return t;
}

// --- flags naming a value ----------------------------------------------------------------------

/// "a, b or c" ("a, b and c" with `conjunction` "and"): posenc::names_list's form, for lists that
/// are not an enum's.
inline std::string join_list(const std::vector<std::string>& names,
                             const std::string& conjunction = "or") {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " " + conjunction + " " : ", ";
    out += names[i];
  }
  return out;
}

/// "'x' is not one of a, b or c" ("'x' is not a" when there is one name).
inline std::string not_one_of(const std::string& given, const std::vector<std::string>& names) {
  return "'" + given + "' is not " + (names.size() == 1 ? "" : "one of ") + join_list(names);
}

/// Accepts the words of `names` only: "<flag>: 'x' is not one of a, b or c".
inline CLI::Validator one_of(std::vector<std::string> names) {
  return CLI::Validator(
      [names](std::string& s) -> std::string {
        return std::find(names.begin(), names.end(), s) != names.end() ? std::string()
                                                                       : not_one_of(s, names);
      },
      "");
}

/// "a|b|c", E's names as --help shows the value of a flag that takes one.
template <class E>
std::string names_placeholder() {
  std::string out;
  for (const auto& entry : posenc::enum_names<E>::table)
    out += (out.empty() ? "" : "|") + std::string(entry.first);
  return out;
}

/// Accepts the names of E's values (posenc::enum_names<E>) and leaves the word as given: a flag
/// that names a value of a different enum depending on another flag (attend's --layout) keeps its
/// word until that is known. Its description is names_placeholder<E>().
template <class E>
CLI::Validator enum_name() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        for (const auto& entry : posenc::enum_names<E>::table)
          if (entry.first == s) return {};
        return "'" + s + "' is not one of " + posenc::names_list<E>();
      },
      names_placeholder<E>());
}

/// Adds `flag`, whose value is the name of one of E's values (posenc::enum_names<E>), stored in
/// `value`. CLI11 refuses any other word while parsing, naming the flag and the valid names
/// ("--scaling: 'magic' is not one of none, linear, ntk, dynamic, yarn, llama3 or longrope");
/// --help shows the names and the name of `value` as the default.
template <class E>
CLI::Option* add_enum_option(CLI::App* app, const std::string& flag, E& value,
                             const std::string& help) {
  CLI::Validator to_value(
      [](std::string& s) -> std::string {
        for (const auto& entry : posenc::enum_names<E>::table)
          if (entry.first == s) {
            // CLI11 converts an enum from its underlying integer; as only a name is turned into
            // one, a number given on the command line is refused like any other word.
            s = std::to_string(static_cast<long long>(entry.second));
            return {};
          }
        return "'" + s + "' is not one of " + posenc::names_list<E>();
      },
      "");
  return app->add_option(flag, value, help)
      ->transform(to_value)
      ->type_name(names_placeholder<E>())
      ->default_str(std::string(posenc::name_of(value)));
}

// --- the flags of each --encoder ---------------------------------------------------------------

/// A command's `--encoder NAME` and its table of the flags each encoder accepts (define()). A flag
/// in no row is every encoder's. A flag in some rows is refused with any other encoder while CLI11
/// parses, before any file is read: "--max-bias: applies to --encoder alibi, not rope". A row also
/// names the flags its encoder cannot do without ("--encoder: t5 needs --table t.npy (...)"), and
/// may check a flag's value by its encoder's rule (--layout names different enums for sinusoidal
/// and rope). --encoder's names, the help's "(--encoder ...)" after each flag and every such
/// message come from the rows.
class EncoderFlags {
 public:
  /// One cell of a row: a flag, or every flag of an option group.
  struct Flags {
    Flags(CLI::Option* o) : options{o} {}
    /// A flag whose value `value` checks for this encoder.
    Flags(CLI::Option* o, CLI::Validator value)
        : options{o}, value(std::move(value)), checked(true) {}
    Flags(CLI::Option_group* group) : options(group->get_options()) {}

    std::vector<CLI::Option*> options;
    CLI::Validator value;
    bool checked = false;
    std::string needed;  // for a flag the encoder needs: the value it takes, for the message
  };
  struct Row {
    std::string encoder;
    std::vector<Flags> flags;
  };

  /// A flag the encoder needs, with the value it takes as the message shows it ("t.npy ([H])").
  static Flags needed(CLI::Option* o, const std::string& value) {
    Flags f(o);
    f.needed = value;
    return f;
  }

  /// Adds the required `--encoder NAME` to `app`; its names are the rows' (define()).
  EncoderFlags(CLI::App* app, std::string& encoder, const std::string& help)
      : t_(std::make_shared<Table>()) {
    const std::shared_ptr<const Table> t = t_;
    t_->encoder =
        app->add_option("--encoder", encoder, help)
            ->required()
            ->check(CLI::Validator([t](std::string& s) { return t->check_encoder(s); }, ""));
  }

  /// --encoder itself (for --config, which replaces it: then it is not required).
  CLI::Option* option() const { return t_->encoder; }
  /// Every flag in some row (those of a specific encoder), once define() has run.
  std::vector<CLI::Option*> specific_flags() const {
    std::vector<CLI::Option*> out;
    for (const Row& row : t_->rows)
      for (const Flags& cell : row.flags)
        for (CLI::Option* o : cell.options)
          if (std::find(out.begin(), out.end(), o) == out.end()) out.push_back(o);
    return out;
  }

  /// The table, once every flag in it has been added to the command.
  void define(std::vector<Row> rows) {
    t_->rows = std::move(rows);
    std::vector<CLI::Option*> specific;
    for (const Row& row : t_->rows)
      for (const Flags& cell : row.flags)
        for (CLI::Option* o : cell.options)
          if (std::find(specific.begin(), specific.end(), o) == specific.end())
            specific.push_back(o);
    std::string placeholder;
    for (const std::string& n : t_->names())
      placeholder += (placeholder.empty() ? "" : "|") + n;
    t_->encoder->type_name(placeholder);
    const std::shared_ptr<const Table> t = t_;
    for (CLI::Option* o : specific) {
      // In front of the flag's own checks: a flag of another encoder is reported as such, not
      // for its value.
      o->transform(CLI::Validator([t, o](std::string& s) { return t->check_flag(o, s); }, ""));
      o->description(o->get_description() + " " + t->help(o));
    }
  }

 private:
  struct Table {
    CLI::Option* encoder = nullptr;
    std::vector<Row> rows;

    std::vector<std::string> names() const {
      std::vector<std::string> out;
      for (const Row& row : rows)
        out.push_back(row.encoder);
      return out;
    }
    const Row* find(const std::string& name) const {
      for (const Row& row : rows)
        if (row.encoder == name) return &row;
      return nullptr;
    }
    static const Flags* cell_of(const Row& row, const CLI::Option* o) {
      for (const Flags& cell : row.flags)
        if (std::find(cell.options.begin(), cell.options.end(), o) != cell.options.end())
          return &cell;
      return nullptr;
    }
    /// --encoder's check: a row's name, whose needed flags are all given.
    std::string check_encoder(const std::string& name) const {
      const Row* row = find(name);
      if (!row) return not_one_of(name, names());
      std::vector<std::string> missing;
      for (const Flags& cell : row->flags)
        for (const CLI::Option* o : cell.options)
          if (!cell.needed.empty() && o->count() == 0)
            missing.push_back(o->get_name() + " " + cell.needed);
      return missing.empty() ? std::string() : name + " needs " + join_list(missing, "and");
    }
    /// A specific flag's check: the encoder given takes it, and its value if the row checks it.
    /// Without a valid --encoder there is nothing to check against: --encoder reports that.
    std::string check_flag(const CLI::Option* o, std::string& value) const {
      if (encoder->results().empty()) return {};
      const Row* row = find(encoder->results().back());
      if (!row) return {};
      if (const Flags* cell = cell_of(*row, o)) {
        if (!cell->checked) return {};
        const std::string err = cell->value(value);
        return err.empty() ? err : err + " (--encoder " + row->encoder + ")";
      }
      std::vector<std::string> takers;
      for (const Row& r : rows)
        if (cell_of(r, o)) takers.push_back(r.encoder);
      return "applies to --encoder " + join_list(takers) + ", not " + row->encoder;
    }
    /// "(--encoder sinusoidal: interleaved|split or rope: half|interleaved)", "(--encoder
    /// learned or t5; needed)".
    std::string help(const CLI::Option* o) const {
      std::vector<std::string> takers, needers;
      for (const Row& r : rows)
        if (const Flags* cell = cell_of(r, o)) {
          takers.push_back(r.encoder + (cell->checked ? ": " + cell->value.get_description() : ""));
          if (!cell->needed.empty()) needers.push_back(r.encoder);
        }
      const std::string needed = needers.empty() ? ""
                                 : needers.size() == takers.size()
                                     ? "; needed"
                                     : "; needed by " + join_list(needers, "and");
      return "(--encoder " + join_list(takers) + needed + ")";
    }
  };
  std::shared_ptr<Table> t_;
};

// --- output files ------------------------------------------------------------------------------

/// Throws "<what>: <strerror(err)>", a CliError when the cause is the path or its permissions
/// and a ResourceError when it is the machine (space, quota, file size limit, I/O, descriptors).
[[noreturn]] inline void io_error(const std::string& what, int err) {
  const std::string msg = what + ": " + std::strerror(err);
  switch (err) {
    case EACCES:
    case EPERM:
    case EROFS:
    case ENOENT:
    case ENOTDIR:
    case EISDIR:
    case ELOOP:
    case ENAMETOOLONG:
    case EXDEV:
    case ETXTBSY:
      throw CliError(msg);
    default:
      throw ResourceError(msg);
  }
}

/// The directory part of a path ("." for a bare name, "/" for a name in the root).
inline std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// Where `-o PATH` is written (docs/cli.md, "Output files").
struct OutputTarget {
  enum class Kind {
    direct,   // an existing character device or FIFO: opened and written in place
    replace,  // an existing regular file: a temporary file renamed over it, mode kept
    create    // a new file: a temporary file renamed into place, mode 0666 & ~umask
  };
  Kind kind = Kind::create;
  std::string path;    // as given
  std::string target;  // the file written or replaced: the end of a chain of symlinks
  struct stat st {};   // the existing file's, for Kind::replace
};

/// Follows `path` through symlinks to the first name that is not one (the name need not exist).
inline std::string final_target(const std::string& path) {
  std::string cur = path;
  for (int hops = 0;; ++hops) {
    struct stat l {};
    if (::lstat(cur.c_str(), &l) != 0 || !S_ISLNK(l.st_mode)) return cur;
    if (hops == 40) io_error("-o " + path, ELOOP);  // the kernel's own limit (path_resolution(7))
    std::vector<char> buf(static_cast<std::size_t>(l.st_size > 0 ? l.st_size : 255) + 1);
    for (;;) {
      const ssize_t n = ::readlink(cur.c_str(), buf.data(), buf.size());
      if (n < 0) io_error("-o " + path + ": cannot read the symlink " + cur, errno);
      if (static_cast<std::size_t>(n) < buf.size()) {
        const std::string to(buf.data(), static_cast<std::size_t>(n));
        cur = to[0] == '/' ? to : dir_of(cur) + "/" + to;
        break;
      }
      buf.resize(buf.size() * 2);
    }
  }
}

/// Classifies `-o PATH` before anything is computed; throws a one-line error for a target the
/// program cannot write correctly.
inline OutputTarget resolve_output(const std::string& path) {
  if (path.empty()) throw CliError("-o: empty output path");
  OutputTarget t;
  t.path = path;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
      t.kind = OutputTarget::Kind::direct;
      t.target = path;
      return t;
    }
    if (S_ISDIR(st.st_mode)) throw CliError("-o " + path + ": is a directory");
    if (!S_ISREG(st.st_mode))
      throw CliError("-o " + path + ": is not a regular file (" +
                     (S_ISBLK(st.st_mode)    ? "a block device"
                      : S_ISSOCK(st.st_mode) ? "a socket"
                                             : "of an unknown kind") +
                     ")");
    t.kind = OutputTarget::Kind::replace;
    t.target = final_target(path);
    t.st = st;
    // As a shell's `>` would: a file the user may not write is not replaced.
    if (::faccessat(AT_FDCWD, t.target.c_str(), W_OK, AT_EACCESS) != 0 && errno != EROFS)
      io_error("-o " + path, errno);
  } else if (errno == ENOENT) {
    // A new file, or a dangling symlink: then the file is created where the link points.
    t.kind = OutputTarget::Kind::create;
    t.target = final_target(path);
  } else {
    io_error("-o " + path, errno);
  }
  const std::string dir = dir_of(t.target);
  struct stat ds {};
  if (::stat(dir.c_str(), &ds) != 0)
    io_error("-o " + path + ": cannot create a file in " + dir, errno);
  if (!S_ISDIR(ds.st_mode)) io_error("-o " + path + ": cannot create a file in " + dir, ENOTDIR);
  if (::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0)
    io_error("-o " + path + ": cannot create a file in " + dir, errno);
  return t;
}

/// The open output, written to with write(); errors name `-o PATH` and strerror.
class OutputFile {
 public:
  OutputFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  void write(const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      // Linux writes at most 0x7ffff000 bytes per call (write(2)).
      const ssize_t w = ::write(fd_, p, std::min<std::size_t>(n, std::size_t{1} << 30));
      if (w < 0) {
        if (errno == EINTR) continue;
        io_error("-o " + path_ + ": write failed", errno);
      }
      if (w == 0) io_error("-o " + path_ + ": write failed", EIO);
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }

 private:
  int fd_;
  std::string path_;
};

/// Writes `-o PATH` with `fill` (docs/cli.md, "Output files"): a character device or FIFO in
/// place; otherwise a temporary file in the directory of the (final) target, renamed over it
/// once complete, so that on any error the target is left absent or untouched.
inline void write_output(const std::string& path, const std::function<void(OutputFile&)>& fill) {
  const OutputTarget t = resolve_output(path);
  if (t.kind == OutputTarget::Kind::direct) {
    // No O_CREAT, O_TRUNC: a device or FIFO is neither created nor truncated. A FIFO's open
    // waits for a reader, as a shell's `>` does.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) io_error("-o " + path + ": cannot open", errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
      ::close(fd);
      throw CliError("-o " + path + ": changed while it was opened (no longer a device or FIFO)");
    }
    try {
      OutputFile f(fd, path);
      fill(f);
    } catch (...) {
      ::close(fd);
      throw;
    }
    if (::close(fd) != 0) io_error("-o " + path + ": write failed", errno);
    return;
  }
  const std::string templ = t.target + ".tmp.XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  const int fd = ::mkstemp(buf.data());
  if (fd < 0)
    io_error("-o " + path + ": cannot create a temporary file in " + dir_of(t.target), errno);
  const std::string tmp(buf.data());
  bool open = true;
  try {
    mode_t mode = 0;
    if (t.kind == OutputTarget::Kind::replace) {
      // Root can give the new file the old one's owner and group; a file system without
      // ownership (vfat) refuses, which leaves root's: best effort.
      if (::geteuid() == 0) {
        [[maybe_unused]] const int ignored = ::fchown(fd, t.st.st_uid, t.st.st_gid);
      }
      mode = t.st.st_mode & 0777;
    } else {
      // mkstemp creates the file 0600; a new output gets what a plain open() would give.
      const mode_t mask = ::umask(0);
      ::umask(mask);
      mode = 0666 & ~mask;
    }
    if (::fchmod(fd, mode) != 0) io_error("-o " + path + ": cannot set the mode", errno);
    OutputFile f(fd, path);
    fill(f);
    open = false;
    if (::close(fd) != 0) io_error("-o " + path + ": write failed", errno);
    if (std::rename(tmp.c_str(), t.target.c_str()) != 0)
      io_error("-o " + path + ": cannot rename the temporary file into place", errno);
  } catch (...) {
    if (open) ::close(fd);
    std::remove(tmp.c_str());
    throw;
  }
}

// --- .npy output -------------------------------------------------------------------------------

/// Throws unless every element of `v` [count] is finite, or -inf where `masked(i)` holds: the
/// message names the element by its index in `shape`, the value and the dtype.
template <class T>
void check_result(const std::string& path, const T* v, std::int64_t count,
                  const std::vector<std::int64_t>& shape,
                  const std::function<bool(std::int64_t)>& masked,
                  const std::string& dtype = dtype_name<T>()) {
  const std::string& dt = dtype;
  for (std::int64_t i = 0; i < count; ++i) {
    if (std::isfinite(v[i])) continue;
    if (masked && std::isinf(v[i]) && v[i] < 0 && masked(i)) continue;
    // Every input and parameter is finite (checked at entry), so a non-finite result is an
    // overflow of the dtype's range, direct (inf) or in an intermediate value (nan).
    throw CliError("-o " + path + ": the result " +
                   (std::isnan(v[i]) ? std::string("is nan at ") + index_str(i, shape) +
                                           " (an intermediate value overflowed " + dt + ")"
                                     : std::string("overflows ") + dt + " at " +
                                           index_str(i, shape) + " (" + number_str(v[i]) + ")") +
                   "; nothing was written");
  }
}

/// .npy output of a row-major matrix with a given logical shape (its product must equal the
/// matrix size), in `dtype`. Every element must be finite, except -inf where
/// `masked(flat index)` holds (a causal mask); then the file is written by write_output.
template <class T>
void write_npy_matrix(const std::string& path, const posenc::Matrix<T>& m,
                      const std::vector<std::int64_t>& shape, Dtype dtype,
                      const std::function<bool(std::int64_t)>& masked = {}) {
  std::int64_t n = 1;
  for (auto s : shape)
    n *= s;
  if (n != static_cast<std::int64_t>(m.size()))
    throw CliError("internal: output shape " + shape_str(shape) + " does not match " +
                   std::to_string(m.size()) + " values");
  const auto write = [&](const auto& values, const char* descr) {
    using S = typename std::decay_t<decltype(values)>::Scalar;
    check_result<S>(path, values.data(), n, shape, masked);
    const std::string header = posenc_npy::npy_header_bytes(descr, shape);
    write_output(path, [&](OutputFile& f) {
      f.write(header.data(), header.size());
      f.write(values.data(), static_cast<std::size_t>(n) * sizeof(S));
    });
  };
  if (dtype == Dtype::f16 || dtype == Dtype::bf16) {
    // rounded once from the computed value; checked as rounded (an overflow of f16's range is
    // an error like any other)
    std::vector<double> rounded(static_cast<std::size_t>(n));
    std::vector<std::uint16_t> bits(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      const double x = static_cast<double>(m.data()[i]);
      rounded[static_cast<std::size_t>(i)] = stored_value(dtype, x);
      bits[static_cast<std::size_t>(i)] = half_bits(dtype, x);
    }
    check_result<double>(path, rounded.data(), n, shape, masked,
                         std::string(posenc::name_of(dtype)));
    const std::string header = posenc_npy::npy_header_bytes(npy_descr(dtype), shape);
    write_output(path, [&](OutputFile& f) {
      f.write(header.data(), header.size());
      f.write(bits.data(), static_cast<std::size_t>(n) * 2);
    });
    return;
  }
  if (dtype == Dtype::f32) {
    if constexpr (std::is_same<T, float>::value)
      write(m, "<f4");
    else
      write(posenc::Matrix<float>(m.template cast<float>()), "<f4");
  } else {
    if constexpr (std::is_same<T, double>::value)
      write(m, "<f8");
    else
      write(posenc::Matrix<double>(m.template cast<double>()), "<f8");
  }
}

// --- input arrays ------------------------------------------------------------------------------

/// What an input array may hold beyond the defaults (every dimension at most 2^24, every value
/// finite).
struct ArrayRules {
  /// The largest first dimension: 2^24 for tables and weights, 2^32 for a sequence [N, ...].
  std::int64_t max_rows = max_extent;
  /// Whether -inf is accepted, as the masked entries of an array to plot.
  bool masked_minus_inf = false;

  static ArrayRules sequence() { return {max_elements, false}; }
};

/// An input array as a matrix of T [shape[0], prod(shape[1:])] (a 1-d array is [n, 1]): double
/// as load_array returns it, or the computation's scalar as load_array_as<T> does.
template <class T>
struct BasicArray {
  std::string flag, path;
  std::vector<std::int64_t> shape;
  std::string dtype;  // of the file: a name of Dtype
  posenc::Matrix<T> data;

  /// The values in the computation's scalar U; an f64 value outside the f32 range is an error.
  template <class U>
  posenc::Matrix<U> as() const {
    if (std::is_same<U, float>::value && !std::is_same<T, float>::value &&
        dtype == dtype_name<double>()) {
      const T* d = data.data();
      for (posenc::Index i = 0; i < data.size(); ++i)
        if (std::isinf(static_cast<float>(d[i])) && std::isfinite(d[i]))
          throw CliError(flag + ": " + path + ": element " + index_str(i, shape) + " = " +
                         number_str(static_cast<double>(d[i])) + " overflows " +
                         dtype_name<float>());
    }
    return data.template cast<U>();
  }
  /// A 1-d array [n] as a vector (the n x 1 matrix's storage).
  posenc::Vector<T> vector() const {
    return Eigen::Map<const posenc::Vector<T>>(data.data(), data.size());
  }
};

using Array = BasicArray<double>;

inline posenc_npy::NpyArray read_npy_for(const std::string& flag, const std::string& path) {
  try {
    return posenc_npy::read_npy(path);
  } catch (const posenc::error& e) {
    throw CliError(flag + ": " + e.what());
  }
}

/// Throws unless the first dimension is at most `max_rows`, every other at most 2^24, and the
/// array has at most 2^32 elements (so that an empty array cannot declare a huge extent).
inline void check_input_shape(const std::string& flag, const std::string& path,
                              const std::vector<std::int64_t>& shape, std::int64_t max_rows) {
  std::int64_t n = 1;
  for (std::size_t k = 0; k < shape.size(); ++k) {
    const std::int64_t limit = k == 0 ? max_rows : max_extent;
    if (shape[k] > limit)
      throw CliError(flag + ": " + path + ": dimension " + std::to_string(k) + " of shape " +
                     shape_str(shape) + " is " + std::to_string(shape[k]) +
                     ", more than the limit " + limit_str(limit));
    n = (shape[k] != 0 && n > max_elements / shape[k]) ? max_elements + 1 : n * shape[k];
  }
  if (n > max_elements)
    throw CliError(flag + ": " + path + ": shape " + shape_str(shape) +
                   " has more elements than the limit 2^32");
}

/// Reads a float .npy ('<f4' or '<f8') as the file's bytes; errors name the flag and the file,
/// and the offending dimension of a shape past the limits. The values are checked when they
/// are converted (array_values).
inline posenc_npy::NpyArray read_float_npy(const std::string& flag, const std::string& path,
                                           const ArrayRules& rules = {}) {
  auto a = read_npy_for(flag, path);
  if (a.dtype == "<u2" && !bf16_inputs)
    throw CliError(flag + ": " + path +
                   ": dtype <u2 is read as bfloat16 bit patterns only with the flag --bf16 "
                   "(before the command: posenc --bf16 ...)");
  if (a.dtype != "<f4" && a.dtype != "<f8" && a.dtype != "<f2" && a.dtype != "<u2")
    throw CliError(flag + ": " + path +
                   ": expected dtype <f4, <f8, <f2 (or <u2 with --bf16), got " + a.dtype);
  if (a.shape.empty()) throw CliError(flag + ": " + path + ": expected an array, got a 0-d scalar");
  check_input_shape(flag, path, a.shape, rules.max_rows);
  return a;
}

/// The values of `a` (from read_float_npy) converted to T, with its shape and dtype; throws at
/// the first element that is not finite (or -inf, when the rules allow it) and, when T is float,
/// at the first f64 value past the f32 range.
template <class T>
BasicArray<T> array_values(const std::string& flag, const std::string& path,
                           const posenc_npy::NpyArray& a, const ArrayRules& rules = {}) {
  BasicArray<T> out;
  out.flag = flag;
  out.path = path;
  out.shape = a.shape;
  out.dtype = std::string(posenc::name_of(dtype_of_descr(a.dtype)));
  std::int64_t cols = 1;
  for (std::size_t i = 1; i < a.shape.size(); ++i)
    cols *= a.shape[i];
  out.data.resize(static_cast<posenc::Index>(a.shape[0]), static_cast<posenc::Index>(cols));
  const auto convert = [&](auto zero) {
    using S = decltype(zero);
    const std::int64_t n = static_cast<std::int64_t>(a.data.size() / sizeof(S));
    const char* src = a.data.data();
    T* dst = out.data.data();
    for (std::int64_t i = 0; i < n; ++i) {
      S s;
      std::memcpy(&s, src + static_cast<std::size_t>(i) * sizeof(S), sizeof(S));
      if (!std::isfinite(s) && !(rules.masked_minus_inf && std::isinf(s) && s < 0))
        throw CliError(flag + ": " + path + ": element " + index_str(i, a.shape) + " is " +
                       number_str(static_cast<double>(s)) +
                       (rules.masked_minus_inf ? "; arrays to plot must be finite or -inf (masked)"
                                               : "; input arrays must be finite"));
      const T t = static_cast<T>(s);
      if (std::isinf(t) && std::isfinite(s))
        throw CliError(flag + ": " + path + ": element " + index_str(i, a.shape) + " = " +
                       number_str(static_cast<double>(s)) + " overflows " + dtype_name<float>());
      dst[i] = t;
    }
  };
  if (a.dtype == "<f4") {
    convert(float{});
  } else if (a.dtype == "<f2" || a.dtype == "<u2") {
    // widened exactly; f16's and bf16's infinities and NaNs are refused as any input's
    const Dtype d = dtype_of_descr(a.dtype);
    const std::int64_t n = static_cast<std::int64_t>(a.data.size() / 2);
    T* dst = out.data.data();
    for (std::int64_t i = 0; i < n; ++i) {
      std::uint16_t u;
      std::memcpy(&u, a.data.data() + static_cast<std::size_t>(i) * 2, 2);
      const double x = widen_half(d, u);
      if (!std::isfinite(x) && !(rules.masked_minus_inf && std::isinf(x) && x < 0))
        throw CliError(flag + ": " + path + ": element " + index_str(i, a.shape) + " is " +
                       number_str(x) +
                       (rules.masked_minus_inf ? "; arrays to plot must be finite or -inf (masked)"
                                               : "; input arrays must be finite"));
      dst[i] = static_cast<T>(x);
    }
  } else {
    convert(double{});
  }
  return out;
}

/// Loads a float .npy ('<f4' or '<f8') as double; errors name the flag and the file, the
/// offending dimension of a shape past the limits, and the first element that is not finite.
inline Array load_array(const std::string& flag, const std::string& path,
                        const ArrayRules& rules = {}) {
  return array_values<double>(flag, path, read_float_npy(flag, path, rules), rules);
}

/// Loads a 1-d '<i8' array; errors name the flag and the file.
inline std::vector<std::int64_t> load_int_vector(const std::string& flag, const std::string& path) {
  const auto a = read_npy_for(flag, path);
  if (a.dtype != "<i8") throw CliError(flag + ": " + path + ": expected dtype <i8, got " + a.dtype);
  if (a.shape.size() != 1)
    throw CliError(flag + ": " + path + ": expected shape [N], got " + shape_str(a.shape));
  check_input_shape(flag, path, a.shape, max_elements);
  std::vector<std::int64_t> v(static_cast<std::size_t>(a.size()));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = a.as_int(static_cast<std::int64_t>(i));
  return v;
}

/// Loads a 1-d '<i8' array of non-negative positions; errors name the flag and the file.
inline std::vector<std::int64_t> load_positions(const std::string& flag, const std::string& path) {
  std::vector<std::int64_t> p = load_int_vector(flag, path);
  for (std::size_t i = 0; i < p.size(); ++i)
    if (p[i] < 0)
      throw CliError(flag + ": " + path + ": position[" + std::to_string(i) +
                     "] = " + std::to_string(p[i]) + " must be >= 0");
  return p;
}

/// Throws unless `shape` is exactly `expected` (-1 in `expected` matches any extent); the
/// message names the flag, the file, both shapes and `what` (where the numbers came from).
inline void expect_shape(const std::string& flag, const std::string& path,
                         const std::vector<std::int64_t>& shape,
                         const std::vector<std::int64_t>& expected, const std::string& what = "") {
  bool ok = shape.size() == expected.size();
  for (std::size_t i = 0; ok && i < expected.size(); ++i)
    ok = expected[i] < 0 || expected[i] == shape[i];
  if (ok) return;
  std::string e = "[";
  for (std::size_t i = 0; i < expected.size(); ++i)
    e += (i ? ", " : "") + (expected[i] < 0 ? std::string("*") : std::to_string(expected[i]));
  e += "]";
  throw CliError(flag + ": " + path + ": expected shape " + e + (what.empty() ? "" : " " + what) +
                 ", got " + shape_str(shape));
}

template <class T>
void expect_shape(const std::string& flag, const std::string& path, const BasicArray<T>& a,
                  const std::vector<std::int64_t>& expected, const std::string& what = "") {
  expect_shape(flag, path, a.shape, expected, what);
}

/// Loads a float .npy of shape `expected` (as expect_shape) straight into T: the file's bytes
/// and the converted values are the only copies, and the bytes are freed on return.
template <class T>
BasicArray<T> load_array_as(const std::string& flag, const std::string& path,
                            const std::vector<std::int64_t>& expected, const std::string& what,
                            const ArrayRules& rules = {}) {
  const auto a = read_float_npy(flag, path, rules);
  expect_shape(flag, path, a.shape, expected, what);
  return array_values<T>(flag, path, a, rules);
}

}  // namespace posenc_cli
