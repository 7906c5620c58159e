// posenc plot: a small figure renderer for heatmaps and line plots, with axes, tick labels, a
// title, axis labels and a colour bar, written as SVG (hand-written XML) or PNG (pixels drawn
// here, text from stb_easy_font, encoded by stb_image_write).
//
// A Figure is a title and a grid of panels; every heatmap panel shares one colour scale
// (shown once, as a colour bar on the right). The layout is computed once and drawn on either
// canvas, so the SVG and the PNG of a figure look the same.
//
// This header carries the stb_image_write implementation (static functions, so including it
// in several translation units is fine); define POSENC_PLOT_NO_STB_IMPLEMENTATION when another
// file of the program already has it.
#pragma once

#include <posenc/types.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// PNG output needs stb (Debian: libstb-dev); without it only SVG is available.
#if defined(__has_include)
#if __has_include(<stb/stb_image_write.h>) && __has_include(<stb/stb_easy_font.h>)
#define POSENC_PLOT_HAVE_PNG 1
#endif
#endif

#ifdef POSENC_PLOT_HAVE_PNG
#ifndef POSENC_PLOT_NO_STB_IMPLEMENTATION
#ifndef STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#endif
#endif
#include <stb/stb_easy_font.h>
#include <stb/stb_image_write.h>
#endif

namespace posenc_cli {
namespace plot {

struct Rgb {
  unsigned char r = 0, g = 0, b = 0;
};

enum class Colormap { automatic, viridis, diverging, gray };

/// "auto", "viridis", "diverging", "gray"; nullopt for anything else.
inline std::optional<Colormap> parse_colormap(const std::string& s) {
  if (s == "auto") return Colormap::automatic;
  if (s == "viridis") return Colormap::viridis;
  if (s == "diverging") return Colormap::diverging;
  if (s == "gray" || s == "grey") return Colormap::gray;
  return std::nullopt;
}

namespace detail {
inline Rgb lerp(const Rgb& a, const Rgb& b, double t) {
  const auto mix = [t](unsigned char x, unsigned char y) {
    return static_cast<unsigned char>(std::lround(x + (static_cast<double>(y) - x) * t));
  };
  return {mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
}
template <std::size_t N>
Rgb sample(const Rgb (&stops)[N], double t) {
  if (!(t > 0.0)) return stops[0];
  if (t >= 1.0) return stops[N - 1];
  const double x = t * static_cast<double>(N - 1);
  const std::size_t i = static_cast<std::size_t>(x);
  return lerp(stops[i], stops[std::min(i + 1, N - 1)], x - static_cast<double>(i));
}
}  // namespace detail

/// The colour of t in [0, 1] (clamped). `automatic` must be resolved before.
inline Rgb colour(Colormap cmap, double t) {
  // matplotlib's viridis at 0, 1/8, ..., 1; a ColorBrewer RdBu ramp, blue (low) to red (high).
  static const Rgb viridis[] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},
                                {44, 113, 142}, {33, 144, 141}, {39, 173, 129},
                                {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
  static const Rgb diverging[] = {{33, 102, 172},  {103, 169, 207}, {209, 229, 240},
                                  {247, 247, 247}, {253, 219, 199}, {239, 138, 98},
                                  {178, 24, 43}};
  static const Rgb gray[] = {{255, 255, 255}, {0, 0, 0}};
  switch (cmap) {
    case Colormap::diverging:
      return detail::sample(diverging, t);
    case Colormap::gray:
      return detail::sample(gray, t);
    default:
      return detail::sample(viridis, t);
  }
}

inline const Rgb kMaskedColour{221, 221, 221};
inline const Rgb kInk{34, 34, 34};
inline const Rgb kGridColour{230, 230, 230};
/// Line colours (matplotlib's tab10).
inline Rgb series_colour(std::size_t i) {
  static const Rgb tab10[] = {{31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                              {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
                              {188, 189, 34},  {23, 190, 207}};
  return tab10[i % 10];
}

/// One heatmap panel: values [rows, cols] (row 0 at the top); non-finite entries are drawn
/// as masked. Column j is labelled x0 + j*x_step, row i y0 + i*y_step, unless explicit
/// per-cell labels are given.
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
  std::optional<double> vmin, vmax;
  std::string colorbar_label;
  /// Panels per row (0: about square).
  int columns = 0;
  /// Longest side of a heatmap's plotting area, in pixels (line plots are 1.6x as wide).
  double panel_size = 240.0;
};

/// Thrown for a figure that cannot be drawn (no panels, empty matrix, bad colour range).
class PlotError : public std::runtime_error {
 public:
  explicit PlotError(const std::string& what) : std::runtime_error(what) {}
};

// --- numbers and ticks --------------------------------------------------------------------------

/// Ticks at 1, 2 or 5 times a power of ten covering [lo, hi], about `target` of them.
inline std::vector<double> nice_ticks(double lo, double hi, int target = 5) {
  std::vector<double> ticks;
  if (!(std::isfinite(lo) && std::isfinite(hi))) return ticks;
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  const double first = std::ceil(lo / step - 1e-9) * step;
  for (double v = first; v <= hi + step * 1e-9; v += step)
    ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return ticks;
}

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

// --- text metrics (stb_easy_font: cap height 7 units, descent 2, advance ~6) -------------------

namespace detail {
/// ASCII version of s for the bitmap font: a few symbols spelled out, control bytes and other
/// symbols as '?'.
inline std::string ascii(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      // stb_easy_font's glyph table covers 0x20 .. 0x7E (and '\n'): other bytes would index
      // outside it
      out += (c >= 0x20 && c < 0x7F) || c == '\n' ? static_cast<char>(c) : '?';
      ++i;
      continue;
    }
    std::size_t len = (c >= 0xF0) ? 4 : (c >= 0xE0) ? 3 : (c >= 0xC0) ? 2 : 1;
    const std::string u = s.substr(i, len);
    if (u == "\u00b7" || u == "\u22c5")
      out += '.';
    else if (u == "\u00d7")
      out += 'x';
    else if (u == "\u2212" || u == "\u2013" || u == "\u2014")
      out += '-';
    else if (u == "\u03b8")
      out += "theta";
    else if (u == "\u2264")
      out += "<=";
    else if (u == "\u2265")
      out += ">=";
    else if (u == "\u221e")
      out += "inf";
    else
      out += '?';
    i += len;
  }
  return out;
}
}  // namespace detail

/// Font scale for a size in pixels (the size is about the em height).
inline double font_scale(double size) {
  return size / 10.0;
}

/// Width in pixels of s at that size.
inline double text_width(const std::string& s, double size) {
  std::string a = detail::ascii(s);
  if (a.empty()) return 0.0;
#ifdef POSENC_PLOT_HAVE_PNG
  return stb_easy_font_width(&a[0]) * font_scale(size);
#else
  return 0.6 * size * static_cast<double>(a.size());
#endif
}

enum class Anchor { start, middle, end };

// --- the SVG canvas
// -------------------------------------------------------------------------------

namespace detail {
inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  while (!s.empty() && s.back() == '0')
    s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}
inline std::string hex(const Rgb& c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}
inline std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}
}  // namespace detail

class SvgCanvas {
 public:
  SvgCanvas(double width, double height) : w_(width), h_(height) {
    using detail::num;
    out_ << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(w_) << "\" height=\""
         << num(h_) << "\" viewBox=\"0 0 " << num(w_) << ' ' << num(h_)
         << "\" font-family=\"DejaVu Sans, Verdana, Arial, sans-serif\">\n"
         << "<rect x=\"0\" y=\"0\" width=\"" << num(w_) << "\" height=\"" << num(h_)
         << "\" fill=\"#ffffff\"/>\n";
  }

  void rect(double x, double y, double w, double h, Rgb fill) {
    using detail::num;
    out_ << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(w)
         << "\" height=\"" << num(h) << "\" fill=\"" << detail::hex(fill) << "\"/>\n";
  }
  void frame(double x, double y, double w, double h, Rgb stroke, double width) {
    using detail::num;
    out_ << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(w)
         << "\" height=\"" << num(h) << "\" fill=\"none\" stroke=\"" << detail::hex(stroke)
         << "\" stroke-width=\"" << num(width) << "\"/>\n";
  }
  void line(double x0, double y0, double x1, double y1, Rgb stroke, double width,
            bool dashed = false) {
    using detail::num;
    out_ << "<line x1=\"" << num(x0) << "\" y1=\"" << num(y0) << "\" x2=\"" << num(x1) << "\" y2=\""
         << num(y1) << "\" stroke=\"" << detail::hex(stroke) << "\" stroke-width=\"" << num(width)
         << '"' << (dashed ? " stroke-dasharray=\"4 3\"" : "") << "/>\n";
  }
  void polyline(const std::vector<std::pair<double, double>>& pts, Rgb stroke, double width) {
    using detail::num;
    out_ << "<polyline fill=\"none\" stroke=\"" << detail::hex(stroke) << "\" stroke-width=\""
         << num(width) << "\" stroke-linejoin=\"round\" points=\"";
    for (std::size_t i = 0; i < pts.size(); ++i)
      out_ << (i ? " " : "") << num(pts[i].first) << ',' << num(pts[i].second);
    out_ << "\"/>\n";
  }
  /// (x, y) is the baseline point at the anchor; vertical text reads bottom to top.
  void text(double x, double y, const std::string& s, double size, Anchor anchor, Rgb colour,
            bool vertical = false, bool bold = false) {
    using detail::num;
    static const char* const anchors[] = {"start", "middle", "end"};
    out_ << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\" font-size=\"" << num(size) << '"';
    if (anchor != Anchor::start)
      out_ << " text-anchor=\"" << anchors[static_cast<int>(anchor)] << '"';
    if (colour.r != 0 || colour.g != 0 || colour.b != 0)
      out_ << " fill=\"" << detail::hex(colour) << '"';
    if (bold) out_ << " font-weight=\"bold\"";
    if (vertical) out_ << " transform=\"rotate(-90 " << num(x) << ' ' << num(y) << ")\"";
    out_ << '>' << detail::xml_escape(s) << "</text>\n";
  }
  /// A heatmap's cells: one <rect> per cell, in a group of class "cells".
  void cells(double x, double y, double cw, double ch, posenc::Index rows, posenc::Index cols,
             const std::vector<Rgb>& colours) {
    using detail::num;
    out_ << "<g class=\"cells\" shape-rendering=\"crispEdges\" transform=\"translate(" << num(x)
         << ' ' << num(y) << ")\">\n";
    for (posenc::Index i = 0; i < rows; ++i)
      for (posenc::Index j = 0; j < cols; ++j)
        out_ << "<rect x=\"" << num(j * cw) << "\" y=\"" << num(i * ch) << "\" width=\"" << num(cw)
             << "\" height=\"" << num(ch) << "\" fill=\""
             << detail::hex(colours[static_cast<std::size_t>(i * cols + j)]) << "\"/>\n";
    out_ << "</g>\n";
  }
  /// A vertical colour ramp, top = t 1, bottom = t 0.
  void ramp(double x, double y, double w, double h, Colormap cmap) {
    using detail::num;
    const int id = ++gradients_;
    out_ << "<defs><linearGradient id=\"ramp" << id << "\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
    for (int k = 0; k <= 16; ++k) {
      const double t = k / 16.0;
      out_ << "<stop offset=\"" << num(t) << "\" stop-color=\"" << detail::hex(colour(cmap, t))
           << "\"/>";
    }
    out_ << "</linearGradient></defs>\n<rect class=\"colorbar\" x=\"" << num(x) << "\" y=\""
         << num(y) << "\" width=\"" << num(w) << "\" height=\"" << num(h) << "\" fill=\"url(#ramp"
         << id << ")\"/>\n";
  }

  std::string finish() {
    out_ << "</svg>\n";
    return out_.str();
  }

 private:
  double w_, h_;
  int gradients_ = 0;
  std::ostringstream out_;
};

// --- the PNG canvas
// --------------------------------------------------------------------------------
#ifdef POSENC_PLOT_HAVE_PNG

class PngCanvas {
 public:
  PngCanvas(double width, double height)
      : w_(static_cast<int>(std::ceil(width))),
        h_(static_cast<int>(std::ceil(height))),
        px_(static_cast<std::size_t>(w_) * static_cast<std::size_t>(h_) * 3, 255) {}

  int width() const { return w_; }
  int height() const { return h_; }
  const std::vector<unsigned char>& pixels() const { return px_; }

  /// Blends colour into pixel (x, y) with weight a in [0, 1].
  void blend(int x, int y, Rgb c, double a) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_ || !(a > 0.0)) return;
    if (a > 1.0) a = 1.0;
    unsigned char* p = &px_[(static_cast<std::size_t>(y) * static_cast<std::size_t>(w_) +
                             static_cast<std::size_t>(x)) *
                            3];
    const auto mix = [a](unsigned char dst, unsigned char src) {
      return static_cast<unsigned char>(std::lround(dst + (static_cast<double>(src) - dst) * a));
    };
    p[0] = mix(p[0], c.r);
    p[1] = mix(p[1], c.g);
    p[2] = mix(p[2], c.b);
  }

  /// An axis-aligned rectangle with fractional edges (edge pixels partly covered).
  void rect(double x, double y, double w, double h, Rgb fill, double alpha = 1.0) {
    const double x1 = x + w, y1 = y + h;
    for (int py = static_cast<int>(std::floor(y)); py < static_cast<int>(std::ceil(y1)); ++py) {
      const double cy = std::min<double>(py + 1, y1) - std::max<double>(py, y);
      if (cy <= 0) continue;
      for (int px = static_cast<int>(std::floor(x)); px < static_cast<int>(std::ceil(x1)); ++px) {
        const double cx = std::min<double>(px + 1, x1) - std::max<double>(px, x);
        if (cx > 0) blend(px, py, fill, cx * cy * alpha);
      }
    }
  }
  void frame(double x, double y, double w, double h, Rgb stroke, double width) {
    const double hw = width / 2;
    rect(x - hw, y - hw, w + width, width, stroke);
    rect(x - hw, y + h - hw, w + width, width, stroke);
    rect(x - hw, y + hw, width, h - width, stroke);
    rect(x + w - hw, y + hw, width, h - width, stroke);
  }
  /// An anti-aliased segment of the given width (distance-to-segment coverage).
  void line(double x0, double y0, double x1, double y1, Rgb stroke, double width,
            bool dashed = false) {
    if (dashed) {
      const double len = std::hypot(x1 - x0, y1 - y0);
      for (double s = 0; s < len; s += 7.0) {
        const double e = std::min(len, s + 4.0);
        line(x0 + (x1 - x0) * s / len, y0 + (y1 - y0) * s / len, x0 + (x1 - x0) * e / len,
             y0 + (y1 - y0) * e / len, stroke, width);
      }
      return;
    }
    if (x0 == x1 || y0 == y1) {  // axis-aligned: exact box coverage
      if (x0 == x1)
        rect(x0 - width / 2, std::min(y0, y1), width, std::abs(y1 - y0), stroke);
      else
        rect(std::min(x0, x1), y0 - width / 2, std::abs(x1 - x0), width, stroke);
      return;
    }
    const double r = width / 2;
    const int bx0 = static_cast<int>(std::floor(std::min(x0, x1) - r - 1)),
              bx1 = static_cast<int>(std::ceil(std::max(x0, x1) + r + 1)),
              by0 = static_cast<int>(std::floor(std::min(y0, y1) - r - 1)),
              by1 = static_cast<int>(std::ceil(std::max(y0, y1) + r + 1));
    const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int py = std::max(by0, 0); py <= std::min(by1, h_ - 1); ++py)
      for (int px = std::max(bx0, 0); px <= std::min(bx1, w_ - 1); ++px) {
        const double cx = px + 0.5, cy = py + 0.5;
        double t = len2 > 0 ? ((cx - x0) * dx + (cy - y0) * dy) / len2 : 0.0;
        t = std::clamp(t, 0.0, 1.0);
        const double d = std::hypot(cx - (x0 + t * dx), cy - (y0 + t * dy));
        const double cov = std::clamp(r + 0.5 - d, 0.0, 1.0);
        if (cov > 0) {
          // keep the darkest coverage per pixel so joints do not double up
          blend(px, py, stroke, cov);
        }
      }
  }
  void polyline(const std::vector<std::pair<double, double>>& pts, Rgb stroke, double width) {
    for (std::size_t i = 1; i < pts.size(); ++i)
      line(pts[i - 1].first, pts[i - 1].second, pts[i].first, pts[i].second, stroke, width);
  }
  void text(double x, double y, const std::string& s, double size, Anchor anchor, Rgb colour,
            bool vertical = false, bool bold = false) {
    std::string a = detail::ascii(s);
    if (a.empty()) return;
    const double k = font_scale(size);
    const double w = stb_easy_font_width(&a[0]) * k;
    const double shift = anchor == Anchor::start ? 0.0 : anchor == Anchor::middle ? -w / 2 : -w;
    std::vector<char> buf(a.size() * 1200 + 1024);  // up to ~14 quads of 64 bytes a glyph
    const int quads =
        stb_easy_font_print(0.0f, 0.0f, &a[0], nullptr, buf.data(), static_cast<int>(buf.size()));
    for (int q = 0; q < quads; ++q) {
      const float* v0 = reinterpret_cast<const float*>(buf.data() + (q * 4) * 16);
      const float* v2 = reinterpret_cast<const float*>(buf.data() + (q * 4 + 2) * 16);
      // glyph units: u along the text, v downwards; the baseline is at v = 7
      const double u0 = std::min(v0[0], v2[0]) * k + shift, u1 = std::max(v0[0], v2[0]) * k + shift;
      const double t0 = (std::min(v0[1], v2[1]) - 7.0) * k, t1 = (std::max(v0[1], v2[1]) - 7.0) * k;
      for (int pass = 0; pass < (bold ? 2 : 1); ++pass) {
        const double extra = pass * 0.55 * k;
        if (!vertical)
          rect(x + u0 + extra, y + t0, u1 - u0, t1 - t0, colour);
        else
          rect(x + t0, y - u1 - extra, t1 - t0, u1 - u0, colour);
      }
    }
  }
  /// A heatmap's cells, sampled at each pixel centre (crisp at any cell size).
  void cells(double x, double y, double cw, double ch, posenc::Index rows, posenc::Index cols,
             const std::vector<Rgb>& colours) {
    const int px0 = static_cast<int>(std::lround(x)), py0 = static_cast<int>(std::lround(y));
    const int pw = static_cast<int>(std::lround(cw * cols)),
              ph = static_cast<int>(std::lround(ch * rows));
    for (int py = 0; py < ph; ++py) {
      const posenc::Index i =
          std::min<posenc::Index>(rows - 1, static_cast<posenc::Index>((py + 0.5) / ch));
      for (int px = 0; px < pw; ++px) {
        const posenc::Index j =
            std::min<posenc::Index>(cols - 1, static_cast<posenc::Index>((px + 0.5) / cw));
        blend(px0 + px, py0 + py, colours[static_cast<std::size_t>(i * cols + j)], 1.0);
      }
    }
  }
  void ramp(double x, double y, double w, double h, Colormap cmap) {
    const int px0 = static_cast<int>(std::lround(x)), py0 = static_cast<int>(std::lround(y));
    const int pw = static_cast<int>(std::lround(w)), ph = static_cast<int>(std::lround(h));
    for (int py = 0; py < ph; ++py) {
      const Rgb c = colour(cmap, 1.0 - (py + 0.5) / ph);
      for (int px = 0; px < pw; ++px)
        blend(px0 + px, py0 + py, c, 1.0);
    }
  }

 private:
  int w_, h_;
  std::vector<unsigned char> px_;
};

#endif  // POSENC_PLOT_HAVE_PNG

// --- layout
// ----------------------------------------------------------------------------------------

namespace detail {

struct Style {
  double margin = 16, title = 17, subtitle = 12, panel_title = 13, label = 12, tick = 11;
  double tick_len = 4, gap = 5;
};

/// Colour range and colormap shared by every heatmap of the figure.
struct Scale {
  double lo = 0, hi = 1;
  Colormap cmap = Colormap::viridis;
  bool any_masked = false;
  bool any_heatmap = false;
};

inline Scale resolve_scale(const Figure& f) {
  Scale s;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Panel& p : f.panels) {
    if (!p.heatmap) continue;
    s.any_heatmap = true;
    const auto& v = p.heatmap->values;
    for (posenc::Index i = 0; i < v.size(); ++i) {
      const double x = v.data()[i];
      if (!std::isfinite(x)) {
        s.any_masked = true;
        continue;
      }
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
  }
  if (!s.any_heatmap) return s;
  if (!std::isfinite(lo)) lo = 0, hi = 1;  // every entry masked
  s.cmap = f.colormap;
  if (s.cmap == Colormap::automatic)
    s.cmap = (lo < 0 && hi > 0) ? Colormap::diverging : Colormap::viridis;
  if (s.cmap == Colormap::diverging && !f.vmin && !f.vmax) {
    const double m = std::max(std::abs(lo), std::abs(hi));
    lo = -m;
    hi = m;
  }
  if (f.vmin) lo = *f.vmin;
  if (f.vmax) hi = *f.vmax;
  if (!(std::isfinite(lo) && std::isfinite(hi)) || hi < lo)
    throw PlotError("colour range [" + format_number(lo) + ", " + format_number(hi) +
                    "] is empty or not finite");
  if (hi == lo) {  // a constant picture: centre it
    lo -= 0.5;
    hi += 0.5;
  }
  s.lo = lo;
  s.hi = hi;
  return s;
}

struct HeatAxis {
  std::vector<double> pos;  // cell index (fractional) of each tick
  std::vector<std::string> text;
};

/// Ticks along a heatmap axis of n cells labelled v0 + i*step (or names).
inline HeatAxis heat_ticks(posenc::Index n, double v0, double step,
                           const std::vector<std::string>& names, double cell_px, bool horizontal,
                           double tick_size) {
  HeatAxis a;
  if (!names.empty()) {
    // label every k-th cell so that labels do not overlap
    double widest = 0;
    for (const auto& s : names)
      widest = std::max(widest, text_width(s, tick_size));
    const double need = horizontal ? widest + 6 : tick_size * 1.2;
    const posenc::Index every = std::max<posenc::Index>(
        1, static_cast<posenc::Index>(std::ceil(need / std::max(cell_px, 1e-9))));
    for (posenc::Index i = 0; i < n && i < static_cast<posenc::Index>(names.size()); i += every) {
      a.pos.push_back(static_cast<double>(i));
      a.text.push_back(names[static_cast<std::size_t>(i)]);
    }
    return a;
  }
  const double lo = v0, hi = v0 + static_cast<double>(n - 1) * step;
  const double length_px = static_cast<double>(n) * cell_px;
  const int target =
      std::max(2, std::min(8, static_cast<int>(length_px / (horizontal ? 55.0 : 28.0))));
  std::vector<double> t = nice_ticks(std::min(lo, hi), std::max(lo, hi), target);
  const double spacing = t.size() > 1 ? t[1] - t[0] : 0.0;
  for (double v : t) {
    const double idx = step != 0.0 ? (v - v0) / step : 0.0;
    if (idx < -1e-9 || idx > static_cast<double>(n - 1) + 1e-9) continue;
    a.pos.push_back(idx);
    a.text.push_back(format_number(v, spacing));
  }
  return a;
}

struct LineAxes {
  double x_lo, x_hi, y_lo, y_hi;
  std::vector<double> xt, yt;
};

inline LineAxes line_axes(const LinePlot& lp) {
  double xl = std::numeric_limits<double>::infinity(), xh = -xl, yl = xl, yh = -xl;
  for (const Series& s : lp.series)
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xl = std::min(xl, s.x[i]);
      xh = std::max(xh, s.x[i]);
      yl = std::min(yl, s.y[i]);
      yh = std::max(yh, s.y[i]);
    }
  if (lp.y_reference) {
    yl = std::min(yl, *lp.y_reference);
    yh = std::max(yh, *lp.y_reference);
  }
  if (!std::isfinite(xl)) xl = 0, xh = 1, yl = 0, yh = 1;
  if (xh == xl) xl -= 0.5, xh += 0.5;
  if (yh == yl) yl -= 0.5, yh += 0.5;
  const double pad = 0.05 * (yh - yl);
  LineAxes a{xl, xh, yl - pad, yh + pad, {}, {}};
  a.xt = nice_ticks(a.x_lo, a.x_hi, 6);
  a.yt = nice_ticks(a.y_lo, a.y_hi, 5);
  return a;
}

struct PanelBox {
  double plot_w = 0, plot_h = 0;  // the plotting area
  double cell_w = 0, cell_h = 0;  // heatmaps
  double left = 0;                // y ticks + y label, left of the plotting area
  double legend_w = 0;            // line plots: legend right of the plotting area
};

struct Layout {
  Style st;
  Scale scale;
  int columns = 1, rows = 1;
  std::vector<PanelBox> boxes;
  double slot_w = 0, slot_h = 0;  // one grid slot
  double top = 0;                 // y of the first grid row
  double grid_x = 0;
  double bar_x = 0, bar_y = 0, bar_w = 14, bar_h = 0, bar_right = 0;
  double width = 0, height = 0;
  double above = 0, below = 0;  // in a slot: above the plot area, below it
};

inline Layout layout(const Figure& f) {
  if (f.panels.empty()) throw PlotError("nothing to plot (no panels)");
  if (!(f.panel_size >= 40 && f.panel_size <= 4000))
    throw PlotError("panel size " + format_number(f.panel_size) + " must be in [40, 4000] pixels");
  Layout L;
  const Style& st = L.st;
  L.scale = resolve_scale(f);
  const int n = static_cast<int>(f.panels.size());
  L.columns = f.columns > 0 ? std::min(f.columns, n)
                            : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n)) - 1e-9));
  if (n == 3) L.columns = f.columns > 0 ? L.columns : 3;
  L.rows = (n + L.columns - 1) / L.columns;

  double max_left = 0, max_w = 0, max_h = 0, max_legend = 0;
  for (const Panel& p : f.panels) {
    PanelBox b;
    if (p.heatmap) {
      const Heatmap& hm = *p.heatmap;
      if (hm.values.rows() == 0 || hm.values.cols() == 0)
        throw PlotError("panel '" + hm.title + "' has an empty matrix");
      // Each side about panel_size, cells at most 4:1, whole pixels when >= 2 (crisp).
      const auto side = [&](posenc::Index n) {
        double c = std::min(f.panel_size / static_cast<double>(n), 40.0);
        return c >= 2 ? std::floor(c) : c;
      };
      double cw = side(hm.values.cols()), ch = side(hm.values.rows());
      cw = std::min(cw, 4 * ch);
      ch = std::min(ch, 4 * cw);
      b.cell_w = cw;
      b.cell_h = ch;
      b.plot_w = cw * static_cast<double>(hm.values.cols());
      b.plot_h = ch * static_cast<double>(hm.values.rows());
      const HeatAxis ya =
          heat_ticks(hm.values.rows(), hm.y0, hm.y_step, hm.y_names, ch, false, st.tick);
      double tw = 0;
      for (const auto& t : ya.text)
        tw = std::max(tw, text_width(t, st.tick));
      b.left = tw + st.tick_len + st.gap + (hm.y_label.empty() ? 0 : st.label + st.gap);
    } else if (p.line) {
      b.plot_h = f.panel_size;
      b.plot_w = std::round(f.panel_size * 1.6);
      const LineAxes a = line_axes(*p.line);
      const double spacing = a.yt.size() > 1 ? a.yt[1] - a.yt[0] : 0;
      double tw = 0;
      for (double v : a.yt)
        tw = std::max(tw, text_width(format_number(v, spacing), st.tick));
      b.left = tw + st.tick_len + st.gap + (p.line->y_label.empty() ? 0 : st.label + st.gap);
      if (p.line->series.size() > 1 ||
          (!p.line->series.empty() && !p.line->series[0].name.empty())) {
        double lw = 0;
        for (const Series& s : p.line->series)
          lw = std::max(lw, text_width(s.name, st.tick));
        b.legend_w = 12 + 22 + 6 + lw;
      }
    } else {
      throw PlotError("a panel is neither a heatmap nor a line plot");
    }
    max_left = std::max(max_left, b.left);
    max_w = std::max(max_w, b.plot_w);
    max_h = std::max(max_h, b.plot_h);
    max_legend = std::max(max_legend, b.legend_w);
    L.boxes.push_back(b);
  }
  L.above = st.panel_title + 2 * st.gap;
  L.below = st.tick_len + st.gap + st.tick + st.gap + st.label + st.gap;
  L.slot_w = max_left + max_w + max_legend + 2 * st.margin;
  L.slot_h = L.above + max_h + L.below;
  L.top = st.margin + (f.title.empty() ? 0 : st.title + st.gap) +
          (f.subtitle.empty() ? 0 : st.subtitle + st.gap) + st.gap;
  L.grid_x = 0;
  double right = L.columns * L.slot_w;
  if (L.scale.any_heatmap) {
    L.bar_x = right + 4;
    L.bar_h = std::max(120.0, std::min(max_h, 360.0));
    L.bar_y = L.top + L.above;
    const std::vector<double> t = nice_ticks(L.scale.lo, L.scale.hi, 6);
    const double spacing = t.size() > 1 ? t[1] - t[0] : 0;
    double tw = 0;
    for (double v : t)
      tw = std::max(tw, text_width(format_number(v, spacing), st.tick));
    L.bar_right = L.bar_x + L.bar_w + st.tick_len + st.gap + tw + st.gap +
                  (f.colorbar_label.empty() ? 0 : st.label + st.gap);
    if (L.scale.any_masked)
      L.bar_right = std::max(L.bar_right, L.bar_x + 14 + 6 + text_width("masked (-inf)", st.tick));
    right = L.bar_right + st.margin;
  }
  const double title_w =
      std::max(text_width(f.title, st.title), text_width(f.subtitle, st.subtitle)) + 2 * st.margin;
  L.width = std::ceil(std::max(right, title_w));
  L.height = std::ceil(L.top + L.rows * L.slot_h + st.margin);
  return L;
}

template <class Canvas>
void draw_heatmap(Canvas& c, const Layout& L, const PanelBox& b, const Heatmap& hm, double px,
                  double py) {
  const Style& st = L.st;
  const posenc::Index rows = hm.values.rows(), cols = hm.values.cols();
  std::vector<Rgb> colours(static_cast<std::size_t>(rows * cols));
  for (posenc::Index i = 0; i < rows; ++i)
    for (posenc::Index j = 0; j < cols; ++j) {
      const double v = hm.values(i, j);
      colours[static_cast<std::size_t>(i * cols + j)] =
          std::isfinite(v) ? colour(L.scale.cmap, (v - L.scale.lo) / (L.scale.hi - L.scale.lo))
                           : kMaskedColour;
    }
  c.cells(px, py, b.cell_w, b.cell_h, rows, cols, colours);
  c.frame(px, py, b.plot_w, b.plot_h, kInk, 1.0);
  // x ticks (bottom)
  const HeatAxis xa = heat_ticks(cols, hm.x0, hm.x_step, hm.x_names, b.cell_w, true, st.tick);
  for (std::size_t k = 0; k < xa.pos.size(); ++k) {
    const double x = px + (xa.pos[k] + 0.5) * b.cell_w;
    c.line(x, py + b.plot_h, x, py + b.plot_h + st.tick_len, kInk, 1.0);
    c.text(x, py + b.plot_h + st.tick_len + st.gap + st.tick * 0.75, xa.text[k], st.tick,
           Anchor::middle, kInk);
  }
  const HeatAxis ya = heat_ticks(rows, hm.y0, hm.y_step, hm.y_names, b.cell_h, false, st.tick);
  double widest = 0;
  for (std::size_t k = 0; k < ya.pos.size(); ++k) {
    const double y = py + (ya.pos[k] + 0.5) * b.cell_h;
    c.line(px - st.tick_len, y, px, y, kInk, 1.0);
    c.text(px - st.tick_len - st.gap * 0.6, y + st.tick * 0.35, ya.text[k], st.tick, Anchor::end,
           kInk);
    widest = std::max(widest, text_width(ya.text[k], st.tick));
  }
  if (!hm.x_label.empty())
    c.text(px + b.plot_w / 2,
           py + b.plot_h + st.tick_len + st.gap + st.tick + st.gap + st.label * 0.8, hm.x_label,
           st.label, Anchor::middle, kInk);
  if (!hm.y_label.empty())
    c.text(px - st.tick_len - st.gap - widest - st.gap - st.label * 0.2, py + b.plot_h / 2,
           hm.y_label, st.label, Anchor::middle, kInk, true);
}

template <class Canvas>
void draw_line_plot(Canvas& c, const Layout& L, const PanelBox& b, const LinePlot& lp, double px,
                    double py) {
  const Style& st = L.st;
  const LineAxes a = line_axes(lp);
  const auto X = [&](double v) { return px + (v - a.x_lo) / (a.x_hi - a.x_lo) * b.plot_w; };
  const auto Y = [&](double v) {
    return py + b.plot_h - (v - a.y_lo) / (a.y_hi - a.y_lo) * b.plot_h;
  };
  const double xs = a.xt.size() > 1 ? a.xt[1] - a.xt[0] : 0,
               ys = a.yt.size() > 1 ? a.yt[1] - a.yt[0] : 0;
  for (double v : a.xt)
    c.line(X(v), py, X(v), py + b.plot_h, kGridColour, 1.0);
  for (double v : a.yt)
    c.line(px, Y(v), px + b.plot_w, Y(v), kGridColour, 1.0);
  if (lp.y_reference)
    c.line(px, Y(*lp.y_reference), px + b.plot_w, Y(*lp.y_reference), Rgb{120, 120, 120}, 1.0,
           true);
  for (std::size_t s = 0; s < lp.series.size(); ++s) {
    std::vector<std::pair<double, double>> pts;
    const Series& ser = lp.series[s];
    for (std::size_t i = 0; i < ser.x.size() && i < ser.y.size(); ++i)
      if (std::isfinite(ser.x[i]) && std::isfinite(ser.y[i]))
        pts.emplace_back(X(ser.x[i]), Y(ser.y[i]));
    c.polyline(pts, series_colour(s), 1.6);
  }
  c.frame(px, py, b.plot_w, b.plot_h, kInk, 1.0);
  double widest = 0;
  for (double v : a.xt) {
    c.line(X(v), py + b.plot_h, X(v), py + b.plot_h + st.tick_len, kInk, 1.0);
    c.text(X(v), py + b.plot_h + st.tick_len + st.gap + st.tick * 0.75, format_number(v, xs),
           st.tick, Anchor::middle, kInk);
  }
  for (double v : a.yt) {
    c.line(px - st.tick_len, Y(v), px, Y(v), kInk, 1.0);
    const std::string t = format_number(v, ys);
    c.text(px - st.tick_len - st.gap * 0.6, Y(v) + st.tick * 0.35, t, st.tick, Anchor::end, kInk);
    widest = std::max(widest, text_width(t, st.tick));
  }
  if (!lp.x_label.empty())
    c.text(px + b.plot_w / 2,
           py + b.plot_h + st.tick_len + st.gap + st.tick + st.gap + st.label * 0.8, lp.x_label,
           st.label, Anchor::middle, kInk);
  if (!lp.y_label.empty())
    c.text(px - st.tick_len - st.gap - widest - st.gap - st.label * 0.2, py + b.plot_h / 2,
           lp.y_label, st.label, Anchor::middle, kInk, true);
  if (b.legend_w > 0) {
    const double lx = px + b.plot_w + 12;
    for (std::size_t s = 0; s < lp.series.size(); ++s) {
      const double ly = py + 8 + static_cast<double>(s) * (st.tick + 7);
      c.line(lx, ly, lx + 22, ly, series_colour(s), 2.0);
      c.text(lx + 28, ly + st.tick * 0.35, lp.series[s].name, st.tick, Anchor::start, kInk);
    }
  }
}

template <class Canvas>
void draw(const Figure& f, const Layout& L, Canvas& c) {
  const Style& st = L.st;
  double y = st.margin;
  if (!f.title.empty()) {
    y += st.title * 0.8;
    c.text(L.width / 2, y, f.title, st.title, Anchor::middle, kInk, false, true);
    y += st.gap + st.title * 0.2;
  }
  if (!f.subtitle.empty()) {
    y += st.subtitle * 0.8;
    c.text(L.width / 2, y, f.subtitle, st.subtitle, Anchor::middle, Rgb{80, 80, 80});
  }
  double max_left = 0;
  for (const PanelBox& b : L.boxes)
    max_left = std::max(max_left, b.left);
  for (std::size_t k = 0; k < f.panels.size(); ++k) {
    const int col = static_cast<int>(k) % L.columns, row = static_cast<int>(k) / L.columns;
    const double sx = L.grid_x + col * L.slot_w, sy = L.top + row * L.slot_h;
    const PanelBox& b = L.boxes[k];
    const double px = sx + st.margin + max_left, py = sy + L.above;
    const Panel& p = f.panels[k];
    const std::string& title = p.heatmap ? p.heatmap->title : p.line->title;
    if (!title.empty())
      c.text(px + b.plot_w / 2, py - st.gap - st.panel_title * 0.25, title, st.panel_title,
             Anchor::middle, kInk, false, true);
    if (p.heatmap)
      draw_heatmap(c, L, b, *p.heatmap, px, py);
    else
      draw_line_plot(c, L, b, *p.line, px, py);
  }
  if (L.scale.any_heatmap) {
    c.ramp(L.bar_x, L.bar_y, L.bar_w, L.bar_h, L.scale.cmap);
    c.frame(L.bar_x, L.bar_y, L.bar_w, L.bar_h, kInk, 1.0);
    const std::vector<double> t = nice_ticks(L.scale.lo, L.scale.hi, 6);
    const double spacing = t.size() > 1 ? t[1] - t[0] : 0;
    double widest = 0;
    for (double v : t) {
      const double ty = L.bar_y + L.bar_h - (v - L.scale.lo) / (L.scale.hi - L.scale.lo) * L.bar_h;
      const std::string s = format_number(v, spacing);
      c.line(L.bar_x + L.bar_w, ty, L.bar_x + L.bar_w + st.tick_len, ty, kInk, 1.0);
      c.text(L.bar_x + L.bar_w + st.tick_len + st.gap * 0.6, ty + st.tick * 0.35, s, st.tick,
             Anchor::start, kInk);
      widest = std::max(widest, text_width(s, st.tick));
    }
    if (!f.colorbar_label.empty())
      c.text(L.bar_x + L.bar_w + st.tick_len + st.gap + widest + st.gap + st.label * 0.8,
             L.bar_y + L.bar_h / 2, f.colorbar_label, st.label, Anchor::middle, kInk, true);
    if (L.scale.any_masked) {
      const double my = L.bar_y + L.bar_h + 14;
      c.rect(L.bar_x, my, 14, 12, kMaskedColour);
      c.frame(L.bar_x, my, 14, 12, kInk, 1.0);
      c.text(L.bar_x + 20, my + 10, "masked (-inf)", st.tick, Anchor::start, kInk);
    }
  }
}

[[maybe_unused]] inline void png_append(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<unsigned char>*>(context);
  const auto* p = static_cast<const unsigned char*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace detail

/// The figure as an SVG document.
inline std::string render_svg(const Figure& f) {
  const detail::Layout L = detail::layout(f);
  SvgCanvas c(L.width, L.height);
  detail::draw(f, L, c);
  return c.finish();
}

/// The figure as RGB pixels (width, height, 3 bytes per pixel, row-major).
struct Image {
  int width = 0, height = 0;
  std::vector<unsigned char> rgb;
};

/// True when this build can write PNG (stb found).
inline constexpr bool png_available() {
#ifdef POSENC_PLOT_HAVE_PNG
  return true;
#else
  return false;
#endif
}

inline Image render_image(const Figure& f) {
#ifdef POSENC_PLOT_HAVE_PNG
  const detail::Layout L = detail::layout(f);
  PngCanvas c(L.width, L.height);
  detail::draw(f, L, c);
  return Image{c.width(), c.height(), c.pixels()};
#else
  (void)f;
  throw PlotError("PNG output needs stb_image_write (Debian: libstb-dev); write .svg instead");
#endif
}

/// The figure as a PNG file's bytes.
inline std::vector<unsigned char> render_png(const Figure& f) {
  const Image img = render_image(f);
  std::vector<unsigned char> out;
#ifdef POSENC_PLOT_HAVE_PNG
  if (!stbi_write_png_to_func(&detail::png_append, &out, img.width, img.height, 3, img.rgb.data(),
                              img.width * 3))
    throw PlotError("PNG encoding failed");
#endif
  return out;
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

/// Renders the figure and writes it to `file` (no atomic rename here:
/// the command line writes to a temporary file and renames it).
/// The figure's file contents in the given format.
inline std::string render(const Figure& f, Format format) {
  if (format == Format::svg) return render_svg(f);
  const auto png = render_png(f);
  return std::string(png.begin(), png.end());
}

inline void write_figure(const Figure& f, Format format, const std::string& file) {
  const std::string bytes = render(f, format);
  std::FILE* out = std::fopen(file.c_str(), "wb");
  if (!out) throw PlotError(file + ": cannot open for writing");
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), out) == bytes.size();
  const bool closed = std::fclose(out) == 0;
  if (!ok || !closed) throw PlotError(file + ": write failed");
}

}  // namespace plot
}  // namespace posenc_cli
