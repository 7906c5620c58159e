// The picture renderer of `posenc plot` (tools/posenc/plot.hpp) and the measurements of
// `posenc compare` and examples/compare.cpp (tools/posenc/compare.hpp).
#include "test_support.hpp"

#include "../tools/posenc/compare.hpp"
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
namespace cmp = posenc_cli::compare;

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
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
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

TEST_CASE("plot: SVG heatmap is well-formed with title, labels, colour-bar ticks and one rect per cell",
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
  for (const char* tick : {">-1.0</text>", ">-0.5</text>", ">0</text>", ">0.5</text>", ">1.0</text>"}) {
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
  for (int h = 0; h < 4; ++h) CHECK(svg.find(">head " + std::to_string(h) + "</text>") != std::string::npos);
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
  for (const char* t : {">series 0</text>", ">series 2</text>", ">distance</text>", ">score</text>"})
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
  unsigned char* px = stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &comp, 3);
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
#endif

TEST_CASE("compare: attention maps reproduce the attention kernel for every encoder", "[compare]") {
  cmp::Config c;
  c.dim = 16;
  c.heads = 2;
  c.max_len = 64;
  c.max_relative = 3;
  const cmp::Encoders<double> enc(c);
  const Matrix<double> x = random_matrix<double>(7, 16, 5), wq = random_matrix<double>(16, 16, 6, 0.3),
                       wk = random_matrix<double>(16, 16, 7, 0.3), wv = random_matrix<double>(16, 16, 8, 0.3),
                       wo = random_matrix<double>(16, 16, 9, 0.3);
  for (bool causal : {false, true}) {
    cmp::for_each_encoder(enc, cmp::all_keys(), [&](const cmp::Info& info, const auto& e) {
      INFO(info.name << (causal ? " causal" : ""));
      posenc::AttentionOptions<double> opt;
      opt.heads = 2;
      opt.causal = causal;
      opt.offset = 3;
      const posenc::Positions pos(3, 7);
      const auto maps = cmp::attention_maps(e, x, pos, wq, wk, 2, std::nullopt, causal);
      REQUIRE(maps.size() == 2);
      for (const auto& m : maps) {
        CHECK(m.rows() == 7);
        CHECK((m.rowwise().sum().array() - 1.0).abs().maxCoeff() < 1e-12);
        if (causal) CHECK(m(0, 1) == 0.0);
      }
      const Matrix<double> y = posenc::attention(x, wq, wk, wv, wo, e, opt);
      const Matrix<double> y2 = cmp::attention_from_maps(e, maps, x, pos, wv, wo, 2);
      CHECK(max_abs_diff(y, y2) < 1e-12);
    });
  }
}

TEST_CASE("compare: relative-only is measured true for RoPE, ALiBi, T5, Shaw, XL and false for absolute encoders",
          "[compare]") {
  cmp::Config c;
  c.dim = 16;
  c.heads = 2;
  c.max_len = 64;
  c.max_relative = 4;
  c.max_distance = 20;
  c.num_buckets = 8;
  c.tokens = 8;
  c.shifts = {1, 5, 40, 100000};
  c.time_len = 8;
  c.time_budget = 0.0;
  const auto rows = cmp::measure<double>(c);
  REQUIRE(rows.size() == 8);
  for (const auto& r : rows) {
    INFO(r.info.name << ": change " << r.shift_change << ", past L: " << r.past_length);
    const std::string& k = r.info.key;
    if (k == "sinusoidal" || k == "learned") {
      CHECK_FALSE(r.relative_only);
      CHECK(r.shift_change > 1e-3);
    } else {
      CHECK(r.relative_only);
      CHECK(r.shift_change < 1e-9);
    }
    if (k == "learned") {
      CHECK(r.past_length_error);
      CHECK(r.past_length.find("LearnedEncoding: position p = ") != std::string::npos);
      CHECK(r.past_length.find("outside the table: L_max = 64") != std::string::npos);
      CHECK(r.shifts_used == std::vector<std::int64_t>{1, 5, 40});  // s + N <= L only
      CHECK(r.parameters == 64 * 16);
    } else {
      CHECK_FALSE(r.past_length_error);
      CHECK(r.past_length == "finite at 2L and 8L");
    }
    CHECK(r.attention_ns_per_token > 0.0);
  }
  CHECK(rows[0].parameters == 0);
  CHECK(rows[5].parameters == 8 * 2);                 // T5 [buckets, H]
  CHECK(rows[6].parameters == 2 * (2 * 4 + 1) * 8);   // Shaw 2 (2K+1) Dh
  CHECK(rows[7].parameters == 2 * 16 + 16 * 16);      // XL u, v, W_R
  // distances told apart: Shaw stops at K, T5 at its last bucket, ALiBi and RoPE never (<= 8L)
  CHECK(rows[6].distinct_up_to == 4);
  CHECK(rows[5].distinct_up_to < 20);
  CHECK(rows[5].distinct_up_to > 2);
  CHECK(rows[4].distinct_up_to == 8 * 64);
  CHECK(rows[3].distinct_up_to == 8 * 64);
  CHECK(rows[0].distinct_up_to == 0);
  const std::string md = cmp::markdown(rows, c, "float64");
  CHECK(md.find("| RoPE | Q, K | 0 | yes |") != std::string::npos);
  CHECK(md.find("| learned | input | 1024 (L·D) | no |") != std::string::npos);
}

TEST_CASE("compare: float measurements agree on what is relative", "[compare]") {
  cmp::Config c;
  c.dim = 16;
  c.heads = 2;
  c.max_len = 32;
  c.tokens = 8;
  c.shifts = {1, 7, 1000};
  c.time_len = 8;
  c.time_budget = 0.0;
  const auto rows = cmp::measure<float>(c, {"sinusoidal", "rope", "alibi"});
  REQUIRE(rows.size() == 3);
  CHECK_FALSE(rows[0].relative_only);
  CHECK(rows[1].relative_only);
  CHECK(rows[2].relative_only);
  require_error([&] { cmp::measure<float>(c, {"bogus"}); }, {"unknown encoder 'bogus'"});
  c.heads = 3;
  require_error([&] { cmp::measure<float>(c, {"rope"}); }, {"heads H = 3", "D = 16"});
}
