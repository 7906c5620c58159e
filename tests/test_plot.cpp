// The picture renderer of `posenc plot` (tools/posenc/plot.hpp).
#include "test_support.hpp"

#include "../tools/posenc/plot.hpp"

#if defined(POSENC_PLOT_HAVE_PNG) && __has_include(<stb/stb_image.h>)
#define POSENC_TEST_READ_PNG 1
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#endif

#include <cmath>
#include <limits>
#include <string>
#include <vector>

using namespace posenc_test;
namespace plot = posenc_cli::plot;

namespace {

/// Checks that every element is closed in order (a small XML tag matcher: enough for the
/// hand-written SVG, which has no CDATA, comments or '>' inside attribute values).
bool tags_balanced(const std::string& svg, std::string& why) {
  std::vector<std::string> open;
  std::size_t at = 0;
  while ((at = svg.find('<', at)) != std::string::npos) {
    const std::size_t end = svg.find('>', at);
    if (end == std::string::npos) {
      why = "unterminated tag at " + std::to_string(at);
      return false;
    }
    const std::string tag = svg.substr(at + 1, end - at - 1);
    at = end + 1;
    if (tag.empty()) {
      why = "empty tag";
      return false;
    }
    if (tag[0] == '?' || tag[0] == '!') continue;
    if (tag.back() == '/') continue;  // self-closing
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) {
        why = "closing </" + name + "> does not match <" + (open.empty() ? "" : open.back()) + ">";
        return false;
      }
      open.pop_back();
      continue;
    }
    open.push_back(tag.substr(0, tag.find_first_of(" \n\t")));
  }
  if (!open.empty()) {
    why = "<" + open.back() + "> never closed";
    return false;
  }
  return true;
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size()))
    ++n;
  return n;
}

/// <rect> elements inside the groups of class "cells" (the heatmap cells).
std::size_t cell_count(const std::string& svg) {
  std::size_t n = 0, at = 0;
  while ((at = svg.find("<g class=\"cells\"", at)) != std::string::npos) {
    const std::size_t end = svg.find("</g>", at);
    n += count(svg.substr(at, end - at), "<rect");
    at = end;
  }
  return n;
}

plot::Figure sinusoid_figure(Index len, Index dim) {
  plot::Figure f;
  f.title = "Sinusoidal table";
  f.subtitle = "D = 16";
  f.colorbar_label = "PE value";
  plot::Heatmap h;
  h.values = posenc::SinusoidalEncoding<double>(dim).table(posenc::Positions(0, len));
  h.x_label = "dimension i";
  h.y_label = "position p";
  f.panels.push_back({h, {}});
  return f;
}

}  // namespace

TEST_CASE(
    "plot: SVG heatmap is well-formed with title, labels, colour-bar ticks and one rect per cell",
    "[plot]") {
  const plot::Figure f = sinusoid_figure(12, 16);
  const std::string svg = plot::render_svg(f);
  std::string why;
  INFO(why);
  CHECK(tags_balanced(svg, why));
  CHECK(svg.rfind("<?xml", 0) == 0);
  CHECK(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  for (const char* text : {">Sinusoidal table</text>", ">D = 16</text>", ">dimension i</text>",
                           ">position p</text>", ">PE value</text>"})
    CHECK(svg.find(text) != std::string::npos);
  // values span [-1, 1]: a diverging scale with ticks -1.0 .. 1.0
  for (const char* tick :
       {">-1.0</text>", ">-0.5</text>", ">0</text>", ">0.5</text>", ">1.0</text>"}) {
    INFO(tick);
    CHECK(svg.find(tick) != std::string::npos);
  }
  CHECK(count(svg, "class=\"colorbar\"") == 1);
  CHECK(cell_count(svg) == 12u * 16u);
}

TEST_CASE("plot: several panels share one colour scale and masked cells get a legend", "[plot]") {
  plot::Figure f;
  f.title = "ALiBi";
  const posenc::AlibiEncoding<double> alibi(4);
  const posenc::Positions pos(0, 5);
  for (Index h = 0; h < 4; ++h) {
    plot::Heatmap m;
    m.title = "head " + std::to_string(h);
    m.values = alibi.bias(h, pos, pos, true);
    f.panels.push_back({m, {}});
  }
  const std::string svg = plot::render_svg(f);
  std::string why;
  INFO(why);
  CHECK(tags_balanced(svg, why));
  CHECK(cell_count(svg) == 4u * 5u * 5u);
  CHECK(count(svg, "class=\"colorbar\"") == 1);
  CHECK(svg.find("masked (-inf)") != std::string::npos);
  CHECK(svg.find("#dddddd") != std::string::npos);  // the masked colour
  for (int h = 0; h < 4; ++h)
    CHECK(svg.find(">head " + std::to_string(h) + "</text>") != std::string::npos);
}

TEST_CASE("plot: line plots draw one polyline per series with a legend and escape text", "[plot]") {
  plot::Figure f;
  f.title = "q<k & \"d\"";
  plot::LinePlot lp;
  lp.x_label = "distance";
  lp.y_label = "score";
  lp.y_reference = 0.0;
  for (int s = 0; s < 3; ++s) {
    plot::Series ser;
    ser.name = "series " + std::to_string(s);
    for (int i = 0; i < 50; ++i) {
      ser.x.push_back(i);
      ser.y.push_back(std::cos(0.1 * i * (s + 1)));
    }
    lp.series.push_back(ser);
  }
  f.panels.push_back({{}, lp});
  const std::string svg = plot::render_svg(f);
  std::string why;
  INFO(why);
  CHECK(tags_balanced(svg, why));
  CHECK(count(svg, "<polyline") == 3);
  CHECK(svg.find("q&lt;k &amp; &quot;d&quot;") != std::string::npos);
  for (const char* t :
       {">series 0</text>", ">series 2</text>", ">distance</text>", ">score</text>"})
    CHECK(svg.find(t) != std::string::npos);
  CHECK(count(svg, "class=\"colorbar\"") == 0);  // no heatmap, no colour bar
}

TEST_CASE("plot: ticks and numbers", "[plot]") {
  CHECK(plot::nice_ticks(0, 100, 5) == std::vector<double>{0, 20, 40, 60, 80, 100});
  CHECK(plot::nice_ticks(-1, 1, 4) == std::vector<double>{-1, -0.5, 0, 0.5, 1});
  CHECK(plot::nice_ticks(3, 3).size() == 1);
  CHECK(plot::format_number(0.5, 0.5) == "0.5");
  CHECK(plot::format_number(-1, 0.5) == "-1.0");
  CHECK(plot::format_number(40, 20) == "40");
  CHECK(plot::format_number(0.25, 0.25) == "0.25");
  CHECK(plot::format_number(2e-7) == "2e-07");
  CHECK(plot::format_of("a/b.svg") == plot::Format::svg);
  CHECK(plot::format_of("PIC.PNG") == plot::Format::png);
  CHECK_FALSE(plot::format_of("pic.jpg"));
  CHECK_FALSE(plot::format_of("dir.svg/pic"));
  CHECK_FALSE(plot::format_of("pic"));
}

TEST_CASE("plot: figures that cannot be drawn throw", "[plot]") {
  plot::Figure empty;
  CHECK_THROWS_AS(plot::render_svg(empty), plot::PlotError);
  plot::Figure f = sinusoid_figure(4, 8);
  f.vmin = 1.0;
  f.vmax = -1.0;
  CHECK_THROWS_AS(plot::render_svg(f), plot::PlotError);
  plot::Figure g = sinusoid_figure(4, 8);
  g.panels[0].heatmap->values.resize(0, 3);
  CHECK_THROWS_AS(plot::render_svg(g), plot::PlotError);
}

#ifdef POSENC_TEST_READ_PNG
TEST_CASE("plot: PNG decodes to the rendered size with non-constant pixels", "[plot]") {
  const plot::Figure f = sinusoid_figure(20, 16);
  const plot::Image img = plot::render_image(f);
  const std::vector<unsigned char> png = plot::render_png(f);
  REQUIRE(png.size() > 8);
  CHECK(std::string(png.begin() + 1, png.begin() + 4) == "PNG");
  int w = 0, h = 0, comp = 0;
  unsigned char* px =
      stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &comp, 3);
  REQUIRE(px != nullptr);
  CHECK(w == img.width);
  CHECK(h == img.height);
  CHECK(w > 200);
  CHECK(h > 200);
  bool varies = false, has_dark = false;
  for (int i = 0; i < w * h * 3; ++i) {
    varies = varies || px[i] != px[0];
    has_dark = has_dark || px[i] < 60;  // text and frames
  }
  CHECK(varies);
  CHECK(has_dark);
  CHECK(std::equal(img.rgb.begin(), img.rgb.end(), px));
  stbi_image_free(px);
}
