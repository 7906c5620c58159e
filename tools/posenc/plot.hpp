// posenc plot: the figure a plot kind computes (a grid of heatmap and line-plot panels with
// titles, axis labels and colour ranges) and its drawing. The arrays are written as .npy and the
// figure as a JSON description into a private temporary directory, posenc_plot.py (beside this
// file, installed to share/posenc/) draws them with matplotlib into that directory, and the
// picture's bytes come back to the caller, which writes -o. docs/plots.md describes the result.
#pragma once

#include <npy.hpp>
#include <posenc/error.hpp>
#include <posenc/types.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_common.hpp"

extern char** environ;

#ifndef POSENC_PLOT_SCRIPT_INSTALL_DIR
// The script's install directory relative to the program's (tools/CMakeLists.txt sets it from
// CMAKE_INSTALL_BINDIR and CMAKE_INSTALL_DATADIR).
#define POSENC_PLOT_SCRIPT_INSTALL_DIR "../share/posenc"
#endif

namespace posenc_cli {
namespace plot {

enum class Colormap { automatic, viridis, diverging, gray };

/// "auto", "viridis", "diverging", "gray" (or "grey"); nullopt for anything else.
inline std::optional<Colormap> parse_colormap(const std::string& s) {
  if (s == "auto") return Colormap::automatic;
  if (s == "viridis") return Colormap::viridis;
  if (s == "diverging") return Colormap::diverging;
  if (s == "gray" || s == "grey") return Colormap::gray;
  return std::nullopt;
}

/// One heatmap panel: values [rows, cols] (row 0 at the top); -inf entries are drawn as masked.
/// Column j is labelled x0 + j*x_step, row i y0 + i*y_step, unless per-cell names are given.
struct Heatmap {
  std::string title;
  posenc::Matrix<double> values;
  std::string x_label, y_label;
  double x0 = 0.0, x_step = 1.0, y0 = 0.0, y_step = 1.0;
  std::vector<std::string> x_names, y_names;
};

struct Series {
  std::string name;
  std::vector<double> x, y;
};

/// One line-plot panel.
struct LinePlot {
  std::string title;
  std::string x_label, y_label;
  std::vector<Series> series;
  /// A horizontal reference line (e.g. y = 0), drawn dashed.
  std::optional<double> y_reference;
};

struct Panel {
  std::optional<Heatmap> heatmap;
  std::optional<LinePlot> line;
};

struct Figure {
  std::string title;
  std::string subtitle;
  std::vector<Panel> panels;
  Colormap colormap = Colormap::automatic;
  /// Fixed ends of every heatmap's colour range (otherwise each panel's own data).
  std::optional<double> vmin, vmax;
  std::string colorbar_label;
  /// Panels per row (0: about square).
  int columns = 0;
  /// Longest side of a heatmap's plotting area, in pixels (line plots are 1.6x as wide).
  double panel_size = 240.0;
};

/// A tick label: as many decimals as the tick spacing needs, scientific for extreme values.
inline std::string format_number(double v, double step = 0.0) {
  char buf[64];
  const double a = std::abs(v);
  if (v == 0.0) return "0";
  if (a >= 1e6 || a < 1e-4) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
  }
  int decimals = 0;
  const double s = step > 0.0 ? step : a;
  if (s < 1.0) decimals = std::min(6, static_cast<int>(std::ceil(-std::log10(s) - 1e-9)));
  if (step > 0.0) {
    // 2.5, 0.25: one more decimal when the step is not a round multiple at this precision.
    const double scaled = s * std::pow(10.0, decimals);
    if (std::abs(scaled - std::round(scaled)) > 1e-6) ++decimals;
  }
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

enum class Format { svg, png };

/// The format named by a file's extension (.svg or .png, any case); nullopt otherwise.
inline std::optional<Format> format_of(const std::string& path) {
  const auto dot = path.find_last_of('.'), slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && slash > dot)) return std::nullopt;
  std::string ext = path.substr(dot + 1);
  for (char& ch : ext)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (ext == "svg") return Format::svg;
  if (ext == "png") return Format::png;
  return std::nullopt;
}

// --- colour ranges ------------------------------------------------------------------------------

struct Range {
  double lo = 0, hi = 1;
};

/// The colour map of the figure and the colour range of each heatmap panel.
struct Scales {
  Colormap cmap = Colormap::viridis;
  std::vector<Range> range;  // by panel (line plots: unused)
  bool shared = true;        // every heatmap has the same range: one colour bar for all
  bool any_masked = false;
  bool any_heatmap = false;
};

/// `auto` is diverging when the heatmaps' values have both signs, else viridis, for the whole
/// figure. Each panel's range is its own finite values' [min, max] (diverging: [-m, m] with m
/// the largest |value|, unless --vmin or --vmax is given), with --vmin and --vmax replacing
/// either end; a constant range [v, v] becomes [v - 0.5, v + 0.5].
inline Scales resolve_scales(const Figure& f) {
  Scales s;
  s.range.resize(f.panels.size());
  std::vector<Range> data(f.panels.size());
  double lo_all = std::numeric_limits<double>::infinity(), hi_all = -lo_all;
  for (std::size_t k = 0; k < f.panels.size(); ++k) {
    if (!f.panels[k].heatmap) continue;
    s.any_heatmap = true;
    const auto& v = f.panels[k].heatmap->values;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (posenc::Index i = 0; i < v.size(); ++i) {
      const double x = v.data()[i];
      if (!std::isfinite(x)) {
        s.any_masked = true;
        continue;
      }
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    if (!std::isfinite(lo)) lo = 0, hi = 1;  // every entry masked
    data[k] = {lo, hi};
    lo_all = std::min(lo_all, lo);
    hi_all = std::max(hi_all, hi);
  }
  if (!s.any_heatmap) return s;
  s.cmap = f.colormap;
  if (s.cmap == Colormap::automatic)
    s.cmap = (lo_all < 0 && hi_all > 0) ? Colormap::diverging : Colormap::viridis;
  std::optional<Range> first;
  for (std::size_t k = 0; k < f.panels.size(); ++k) {
    if (!f.panels[k].heatmap) continue;
    Range r = data[k];
    if (s.cmap == Colormap::diverging && !f.vmin && !f.vmax) {
      const double m = std::max(std::abs(r.lo), std::abs(r.hi));
      r = {-m, m};
    }
    const std::string& name = f.panels[k].heatmap->title;
    const std::string of = name.empty() ? "the data" : "panel '" + name + "'";
    if (f.vmin) {
      if (!f.vmax && *f.vmin > r.hi)
        throw CliError("--vmin " + format_number(*f.vmin) + " is above every value of " + of +
                       " (largest " + format_number(r.hi) + "); give --vmax too");
      r.lo = *f.vmin;
    }
    if (f.vmax) {
      if (!f.vmin && *f.vmax < r.lo)
        throw CliError("--vmax " + format_number(*f.vmax) + " is below every value of " + of +
                       " (smallest " + format_number(r.lo) + "); give --vmin too");
      r.hi = *f.vmax;
    }
    if (r.hi == r.lo) {
      r.lo -= 0.5;
      r.hi += 0.5;
    }
    if (!first) first = r;
    if (r.lo != first->lo || r.hi != first->hi) s.shared = false;
    s.range[k] = r;
  }
  return s;
}

// --- the grid and the size of each panel
// ----------------------------------------------------------

/// Heatmap cells and line points a figure may hold (as float64 .npy files in the temporary
/// directory: 128 MiB), and the largest picture in pixels (a side, and the area).
constexpr std::int64_t max_cells = std::int64_t{1} << 24;
constexpr double max_side_px = 32768, max_area_px = 67108864;  // 2^15, 2^26

struct Grid {
  int columns = 1, rows = 1;
  std::vector<double> width, height;  // of each panel's plotting area, pixels
};

/// The grid of panels and the plotting area of each: a heatmap's sides about panel_size (cells
/// at most 40 pixels and at most 4:1), a line plot panel_size high and 1.6 times as wide.
/// Throws when the figure is larger than the limits above.
inline Grid grid_of(const Figure& f) {
  if (f.panels.empty()) throw CliError("plot: nothing to plot (no panels)");
  Grid g;
  const int n = static_cast<int>(f.panels.size());
  g.columns = f.columns > 0 ? std::min(f.columns, n)
              : n == 3      ? 3
                            : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n)) - 1e-9));
  g.rows = (n + g.columns - 1) / g.columns;
  std::int64_t cells = 0;
  double max_w = 0, max_h = 0;
  for (const Panel& p : f.panels) {
    double w = 0, h = 0;
    if (p.heatmap) {
      const auto& v = p.heatmap->values;
      if (v.rows() == 0 || v.cols() == 0)
        throw CliError("plot: panel '" + p.heatmap->title + "' has an empty matrix");
      cells += v.rows() * v.cols();
      const auto side = [&](posenc::Index m) {
        return std::min(f.panel_size / static_cast<double>(m), 40.0);
      };
      double cw = side(v.cols()), ch = side(v.rows());
      cw = std::min(cw, 4 * ch);
      ch = std::min(ch, 4 * cw);
      const double least = std::min(f.panel_size, 40.0);
      w = std::max(least, cw * static_cast<double>(v.cols()));
      h = std::max(least, ch * static_cast<double>(v.rows()));
    } else if (p.line) {
      for (const Series& s : p.line->series)
        cells += static_cast<std::int64_t>(s.x.size());
      w = std::round(f.panel_size * 1.6);
      h = f.panel_size;
    } else {
      throw CliError("plot: a panel is neither a heatmap nor a line plot");
    }
    g.width.push_back(w);
    g.height.push_back(h);
    max_w = std::max(max_w, w);
    max_h = std::max(max_h, h);
  }
  if (cells > max_cells)
    throw CliError("plot: the figure would hold " + std::to_string(cells) +
                   " heatmap cells and line points, more than the limit 2^24 (draw fewer or "
                   "smaller panels)");
  // posenc_plot.py adds at most about 300 pixels beside and 150 below each panel's area.
  const double fw = g.columns * (max_w + 300), fh = g.rows * (max_h + 150) + 60;
  if (fw > max_side_px || fh > max_side_px || fw * fh > max_area_px)
    throw CliError("--panel-size " + format_number(f.panel_size) + ": the figure would be about " +
                   std::to_string(static_cast<long long>(fw)) + " x " +
                   std::to_string(static_cast<long long>(fh)) +
                   " pixels, more than the limit (2^15 a side, 2^26 in all); use a smaller "
                   "--panel-size or other --columns");
  return g;
}

// --- the description ----------------------------------------------------------------------------

namespace detail {

/// s as a JSON string: valid UTF-8 kept, control characters escaped, and every byte that is not
/// part of a well-formed UTF-8 sequence (RFC 3629: no overlongs, surrogates or values past
/// U+10FFFF) replaced by U+FFFD.
inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = byte(i);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool ok = len > 0 && i + len <= s.size() && byte(i + 1) >= lo && byte(i + 1) <= hi;
    for (std::size_t k = 2; ok && k < len; ++k)
      ok = byte(i + k) >= 0x80 && byte(i + k) <= 0xBF;
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  return out + "\"";
}

/// A finite double as a JSON number that reads back to the same value.
inline std::string json_number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", std::isfinite(v) ? v : 0.0);
  return buf;
}

inline std::string json_strings(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i)
    out += (i ? ", " : "") + json_string(v[i]);
  return out + "]";
}

inline const char* colormap_name(Colormap c) {
  switch (c) {
    case Colormap::diverging:
      return "diverging";
    case Colormap::gray:
      return "gray";
    default:
      return "viridis";
  }
}

/// Writes a float64 .npy; a failure (a full disk) is the machine's.
inline void save(const std::string& file, const std::vector<std::int64_t>& shape,
                 const double* data) {
  try {
    posenc_npy::write_npy(file, "<f8", shape, data);
  } catch (const posenc::error& e) {
    throw ResourceError(std::string("plot: ") + e.what());
  }
}

}  // namespace detail

/// The name of the picture posenc_plot.py writes into the description's directory.
inline std::string picture_name(Format format) {
  return format == Format::svg ? "picture.svg" : "picture.png";
}

/// Writes the figure into `dir`: panel<k>.npy (a heatmap's values, float64 [rows, cols]),
/// panel<k>_<s>.npy (line series s, float64 [2, n]: x, then y) and description.json, which
/// posenc_plot.py reads. Returns the description's path.
inline std::string describe(const Figure& f, Format format, const std::string& dir) {
  const Grid g = grid_of(f);
  const Scales sc = resolve_scales(f);
  using detail::json_number;
  using detail::json_string;
  std::ostringstream js;
  js << "{\n  \"format\": \"" << (format == Format::svg ? "svg" : "png") << "\",\n"
     << "  \"output\": " << json_string(picture_name(format)) << ",\n"
     << "  \"title\": " << json_string(f.title) << ",\n"
     << "  \"subtitle\": " << json_string(f.subtitle) << ",\n"
     << "  \"colormap\": \"" << detail::colormap_name(sc.cmap) << "\",\n"
     << "  \"colorbar_label\": " << json_string(f.colorbar_label) << ",\n"
     << "  \"shared_scale\": " << (sc.shared ? "true" : "false") << ",\n"
     << "  \"masked\": " << (sc.any_masked ? "true" : "false") << ",\n"
     << "  \"columns\": " << g.columns << ",\n  \"rows\": " << g.rows << ",\n"
     << "  \"panels\": [";
  for (std::size_t k = 0; k < f.panels.size(); ++k) {
    const Panel& p = f.panels[k];
    const std::string stem = "panel" + std::to_string(k);
    js << (k ? "," : "") << "\n    {";
    js << "\"width\": " << json_number(g.width[k]) << ", \"height\": " << json_number(g.height[k])
       << ", ";
    if (p.heatmap) {
      const Heatmap& h = *p.heatmap;
      // Row-major, as .npy's C order: Eigen's default storage is column-major.
      const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = h.values;
      detail::save(dir + "/" + stem + ".npy", {rm.rows(), rm.cols()}, rm.data());
      bool masked = false;
      for (posenc::Index i = 0; i < h.values.size() && !masked; ++i)
        masked = !std::isfinite(h.values.data()[i]);
      js << "\"kind\": \"heatmap\", \"title\": " << json_string(h.title)
         << ", \"values\": " << json_string(stem + ".npy")
         << ", \"x_label\": " << json_string(h.x_label)
         << ", \"y_label\": " << json_string(h.y_label) << ", \"x0\": " << json_number(h.x0)
         << ", \"x_step\": " << json_number(h.x_step) << ", \"y0\": " << json_number(h.y0)
         << ", \"y_step\": " << json_number(h.y_step)
         << ", \"x_names\": " << detail::json_strings(h.x_names)
         << ", \"y_names\": " << detail::json_strings(h.y_names)
         << ", \"vmin\": " << json_number(sc.range[k].lo)
         << ", \"vmax\": " << json_number(sc.range[k].hi)
         << ", \"masked\": " << (masked ? "true" : "false") << "}";
    } else {
      const LinePlot& lp = *p.line;
      const bool legend =
          lp.series.size() > 1 || (!lp.series.empty() && !lp.series[0].name.empty());
      js << "\"kind\": \"line\", \"title\": " << json_string(lp.title)
         << ", \"x_label\": " << json_string(lp.x_label)
         << ", \"y_label\": " << json_string(lp.y_label) << ", \"y_reference\": "
         << (lp.y_reference ? json_number(*lp.y_reference) : std::string("null"))
         << ", \"legend\": " << (legend ? "true" : "false") << ", \"series\": [";
      for (std::size_t s = 0; s < lp.series.size(); ++s) {
        const Series& ser = lp.series[s];
        const std::size_t n = std::min(ser.x.size(), ser.y.size());
        std::vector<double> xy(ser.x.begin(), ser.x.begin() + static_cast<std::ptrdiff_t>(n));
        xy.insert(xy.end(), ser.y.begin(), ser.y.begin() + static_cast<std::ptrdiff_t>(n));
        const std::string file = stem + "_" + std::to_string(s) + ".npy";
        detail::save(dir + "/" + file, {2, static_cast<std::int64_t>(n)}, xy.data());
        js << (s ? ", " : "") << "{\"name\": " << json_string(ser.name)
           << ", \"data\": " << json_string(file) << "}";
      }
      js << "]}";
    }
  }
  js << "\n  ]\n}\n";
  const std::string path = dir + "/description.json";
  std::ofstream out(path, std::ios::binary);
  out << js.str();
  out.close();
  if (!out) throw ResourceError("plot: " + path + ": write failed");
  return path;
}

// --- running posenc_plot.py
// -----------------------------------------------------------------------

/// A private directory (mode 0700) under the system's temporary directory ($TMPDIR, else /tmp),
/// removed with everything in it when this object goes.
class TempDir {
 public:
  TempDir() {
    std::error_code ec;
    const std::filesystem::path base = std::filesystem::temp_directory_path(ec);
    std::string templ = (ec ? std::string("/tmp") : base.string()) + "/posenc_plot.XXXXXX";
    if (!::mkdtemp(&templ[0]))
      throw ResourceError("plot: cannot create a temporary directory " + templ + ": " +
                          std::strerror(errno));
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

namespace detail {

inline bool regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

/// The directory of the running program (/proc/self/exe), "" when it cannot be read.
inline std::string program_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

/// The last non-empty line of a file (at most its last 4 KiB are read).
inline std::string last_line(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > 4096) text.erase(0, text.size() - 4096);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  const auto nl = text.find_last_of('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

inline std::string needs_matplotlib(const std::string& why) {
  return "posenc plot needs Python 3 with matplotlib: " + why +
         "; install matplotlib (Debian: apt-get install python3-matplotlib) or set POSENC_PYTHON "
         "to a Python 3 that has it";
}

}  // namespace detail

/// posenc_plot.py: $POSENC_PLOT_SCRIPT when set; else beside the program (a build tree), else
/// in the install directory relative to the program's (bin/../share/posenc).
inline std::string find_script() {
  if (const char* env = std::getenv("POSENC_PLOT_SCRIPT"); env && *env) {
    if (!detail::regular_file(env))
      throw ResourceError(std::string("POSENC_PLOT_SCRIPT=") + env + ": no such file");
    return env;
  }
  const std::string dir = detail::program_dir();
  std::vector<std::string> tried;
  for (const std::string& candidate :
       {dir + "/posenc_plot.py", dir + "/" + POSENC_PLOT_SCRIPT_INSTALL_DIR + "/posenc_plot.py"}) {
    if (detail::regular_file(candidate)) return candidate;
    tried.push_back(candidate);
  }
  throw ResourceError("posenc plot: its drawing script is missing (no " + tried[0] + " or " +
                      tried[1] + "); reinstall posenc or set POSENC_PLOT_SCRIPT");
}

/// The Python interpreter: $POSENC_PYTHON when set, else python3 (looked up on PATH).
inline std::string python_interpreter() {
  const char* env = std::getenv("POSENC_PYTHON");
  return env && *env ? env : "python3";
}

/// True when POSENC_PLOT_DRY_RUN is set (and not "0"): the figure is computed and described,
/// but not drawn, and no picture is written.
inline bool dry_run() {
  const char* env = std::getenv("POSENC_PLOT_DRY_RUN");
  return env && *env && std::string(env) != "0";
}

/// Runs `python script description` with stdin from /dev/null and stdout and stderr into
/// `log`; throws a ResourceError for a missing interpreter or module and a failed script.
inline void run_script(const std::string& python, const std::string& script,
                       const std::string& description, const std::string& log) {
  posix_spawn_file_actions_t actions;
  if (::posix_spawn_file_actions_init(&actions) != 0)
    throw ResourceError("plot: cannot start " + python);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> words = {python, script, description};
  std::vector<char*> argv;
  for (auto& w : words)
    argv.push_back(&w[0]);
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int err = ::posix_spawnp(&pid, python.c_str(), &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (err == ENOENT || err == ENOTDIR)
    throw ResourceError(detail::needs_matplotlib("there is no " + python));
  if (err != 0) throw ResourceError("plot: cannot run " + python + ": " + std::strerror(err));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      throw ResourceError("plot: waiting for " + python + ": " + std::strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  const std::string last = detail::last_line(log);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3)  // posenc_plot.py: an import failed
    throw ResourceError(detail::needs_matplotlib(python + " " + last));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    throw ResourceError(detail::needs_matplotlib("there is no " + python));
  const std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                            : "signal " + std::to_string(WTERMSIG(status));
  throw ResourceError("plot: " + script + " failed (" + how + ")" +
                      (last.empty() ? "" : ": " + last));
}

/// The picture's bytes, drawn by posenc_plot.py; nullopt for a dry run (dry_run()).
inline std::optional<std::string> render(const Figure& f, Format format) {
  TempDir tmp;
  const std::string description = describe(f, format, tmp.path());
  if (dry_run()) return std::nullopt;
  run_script(python_interpreter(), find_script(), description, tmp.path() + "/log.txt");
  const std::string picture = tmp.path() + "/" + picture_name(format);
  std::ifstream in(picture, std::ios::binary);
  if (!in) throw ResourceError("plot: the drawing script wrote no picture");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw ResourceError("plot: " + picture + ": read failed");
  return bytes;
}

}  // namespace plot
}  // namespace posenc_cli
