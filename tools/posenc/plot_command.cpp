// posenc plot: pictures of encodings, biases and attention maps as SVG or PNG (docs/plots.md).
// Each kind computes its figure's arrays with the library; plot.hpp has matplotlib draw them.
//
//   posenc plot table     --dim D --len N [--offset P] [--layout] [--frequencies] [--base]
//   posenc plot rope      [--head-dim Dh] [--max-distance N] [--base B,...] [--scaling S,...]
//                         [--factor F] [--original-max-positions M] [--rotary-dim R]
//                         [--layout half|interleaved] [--query ones|random] [--style line|heatmap]
//   posenc plot bias      --encoder alibi|t5 [--heads H] [--len N] [--max-bias] [--table t.npy]
//                         [--num-buckets] [--max-distance] [--causal] [--head h] [--style
//                         heatmap|line]
//   posenc plot attention [--encoders e1,e2,...] [--len N] [--dim D] [--heads H] [--head h|mean]
//                         [--causal] [--offset P] [--x x.npy --wq wq.npy --wk wk.npy] [--labels
//                         a,b,...]
//   posenc plot npy       --in a.npy [--index k] [--x-label] [--y-label]
// and, for each: -o picture.svg|picture.png [--title] [--colormap auto|viridis|diverging|gray]
//                [--vmin] [--vmax] [--panel-size PX] [--columns C]
#include "plot_command.hpp"

#include <CLI/CLI.hpp>

#include <posenc/posenc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <posenc/compare.hpp>
#include "cli_common.hpp"
#include "plot.hpp"

namespace posenc_cli {

namespace compare = posenc::compare;

namespace plot_detail {

using posenc::Index;
using posenc::Matrix;
using posenc::Positions;

/// Flags every plot kind has.
struct Common {
  std::string out, title, colormap = "auto";
  double vmin = 0, vmax = 0, panel_size = 240;
  int columns = 0;
  CLI::Option *o_vmin = nullptr, *o_vmax = nullptr, *o_title = nullptr;

  void add(CLI::App* sub) {
    sub->add_option("-o,--output", out,
                    "Output picture: .svg or .png (a new or replaced file is written "
                    "atomically; docs/cli.md)")
        ->required();
    o_title = sub->add_option("--title", title, "Figure title (default: one describing the plot)");
    sub->add_option("--colormap", colormap,
                    "Heatmap colours: auto (diverging when values have both signs, else viridis), "
                    "viridis, diverging, gray")
        ->capture_default_str();
    o_vmin =
        sub->add_option("--vmin", vmin,
                        "Value at the bottom of every colour scale (default: each panel's data)")
            ->check(finite());
    o_vmax = sub->add_option("--vmax", vmax,
                             "Value at the top of every colour scale (default: each panel's data)")
                 ->check(finite());
    sub->add_option("--panel-size", panel_size,
                    "Longest side of each panel's plotting area, pixels (40 .. 4000)")
        ->check(finite())
        ->capture_default_str();
    sub->add_option("--columns", columns, "Panels per row (default: about square)");
  }

  /// Checks the generic flags before any work; returns the output format.
  plot::Format check() const {
    const auto f = plot::format_of(out);
    if (!f)
      throw CliError("-o " + out + ": unknown picture format (expected a .svg or .png file name)");
    resolve_output(out);
    if (!plot::parse_colormap(colormap))
      throw CliError("--colormap: '" + colormap + "' is not auto, viridis, diverging or gray");
    if (o_vmin->count() && !std::isfinite(vmin)) throw CliError("--vmin: must be finite");
    if (o_vmax->count() && !std::isfinite(vmax)) throw CliError("--vmax: must be finite");
    if (o_vmin->count() && o_vmax->count() && !(vmin < vmax))
      throw CliError("--vmin " + plot::format_number(vmin) + " must be below --vmax " +
                     plot::format_number(vmax));
    if (!(panel_size >= 40 && panel_size <= 4000))
      throw CliError("--panel-size: " + plot::format_number(panel_size) + " must be in [40, 4000]");
    if (columns < 0 || columns > 64)
      throw CliError("--columns: " + std::to_string(columns) + " must be in [0, 64]");
    return *f;
  }

  /// Applies the generic flags to the figure, has it drawn, and writes it as every output is
  /// written (docs/cli.md, "Output files"); a dry run (plot::dry_run()) writes nothing.
  void finish(plot::Figure& f, plot::Format format) const {
    if (o_title->count()) f.title = title;
    f.colormap = *plot::parse_colormap(colormap);
    if (o_vmin->count()) f.vmin = vmin;
    if (o_vmax->count()) f.vmax = vmax;
    f.panel_size = panel_size;
    f.columns = columns;
    const std::optional<std::string> bytes = plot::render(f, format);
    if (!bytes) return;
    write_output(out, [&](OutputFile& file) { file.write(bytes->data(), bytes->size()); });
  }
};

inline void require_range(const std::string& flag, std::int64_t v, std::int64_t lo,
                          std::int64_t hi) {
  if (v < lo || v > hi)
    throw CliError(flag + ": " + std::to_string(v) + " must be in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "]");
}

inline void require_finite_positive(const std::string& flag, double v) {
  if (!(std::isfinite(v) && v > 0))
    throw CliError(flag + ": " + plot::format_number(v) + " must be finite and > 0");
}

/// Runs a library call, turning posenc::error into a CliError that names the flag(s).
template <class F>
auto library(const std::string& flags, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const posenc::error& e) {
    throw CliError(flags + ": " + e.what());
  }
}

inline std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i)
    s += (i ? sep : "") + v[i];
  return s;
}

}  // namespace plot_detail

// --- plot table ---------------------------------------------------------------------------------
inline void add_plot_table(CLI::App* plot_app) {
  using namespace plot_detail;
  struct Args {
    Common common;
    std::string encoder = "sinusoidal", layout = "interleaved", frequencies = "vaswani";
    std::int64_t dim = 64, len = 64, offset = 0;
    double base = 10000.0;
  };
  auto a = std::make_shared<Args>();
  auto* sub = plot_app->add_subcommand(
      "table", "Heatmap of the sinusoidal table PE[p, i]: positions (rows) x dimensions (columns)");
  sub->add_option("--encoder", a->encoder, "Encoder (sinusoidal)")->capture_default_str();
  sub->add_option("--dim", a->dim, "Model width D (even)")->capture_default_str();
  sub->add_option("--len", a->len, "Number of positions N")->capture_default_str();
  sub->add_option("--offset", a->offset, "First position P")->capture_default_str();
  sub->add_option("--layout", a->layout, "Where sin and cos go")
      ->check(enum_name<posenc::SinusoidalLayout>())
      ->capture_default_str();
  sub->add_option("--frequencies", a->frequencies, "base^(-2i/D) or base^(-i/(D/2-1))")
      ->check(enum_name<posenc::SinusoidalFrequencies>())
      ->capture_default_str();
  sub->add_option("--base", a->base, "Frequency base")->check(finite())->capture_default_str();
  a->common.add(sub);
  sub->callback([a] {
    const plot::Format fmt = a->common.check();
    if (a->encoder != "sinusoidal")
      throw CliError("--encoder: '" + a->encoder +
                     "' has no table to plot here (expected sinusoidal; "
                     "plot a learned table with `posenc plot npy --in table.npy`)");
    require_range("--dim", a->dim, 2, 4096);
    require_range("--len", a->len, 1, 4096);
    require_range("--offset", a->offset, 0, std::int64_t{1} << 40);
    posenc::SinusoidalOptions o;
    o.layout = posenc::from_name<posenc::SinusoidalLayout>(a->layout, "--layout");
    o.frequencies =
        posenc::from_name<posenc::SinusoidalFrequencies>(a->frequencies, "--frequencies");
    o.base = a->base;
    const auto enc =
        library("--dim/--base", [&] { return posenc::SinusoidalEncoding<double>(a->dim, o); });
    plot::Heatmap h;
    h.values = enc.table(Positions(a->offset, a->len));
    h.x_label = "dimension i";
    h.y_label = "position p";
    h.y0 = static_cast<double>(a->offset);
    plot::Figure f;
    f.title = "Sinusoidal encoding PE[p, i]";
    f.subtitle = "D = " + std::to_string(a->dim) + ", base " + plot::format_number(a->base) + ", " +
                 a->layout + " layout, " + a->frequencies + " frequencies";
    f.colorbar_label = "PE value";
    f.panels.push_back({h, {}});
    a->common.finish(f, fmt);
  });
}

// --- plot rope
// ------------------------------------------------------------------------------------
inline void add_plot_rope(CLI::App* plot_app) {
  using namespace plot_detail;
  struct Args {
    Common common;
    std::int64_t head_dim = 64, max_distance = 256, rotary_dim = 0, original_max_positions = 0,
                 seed = 0;
    std::vector<double> bases{10000.0};
    std::vector<std::string> scalings{"none"};
    double factor = 0;
    std::string layout = "half", query = "ones", style = "line";
    CLI::Option *o_factor = nullptr, *o_omp = nullptr;
  };
  auto a = std::make_shared<Args>();
  auto* sub = plot_app->add_subcommand(
      "rope",
      "RoPE's q.k as a function of distance: q = k, q rotated at position d, k at 0, "
      "normalised by |q||k| (line: one curve per base and scaling; heatmap: each "
      "frequency pair's cos(d theta_i) over distance)");
  sub->add_option("--head-dim", a->head_dim, "Head dimension Dh (even)")->capture_default_str();
  sub->add_option("--max-distance", a->max_distance, "Largest distance d plotted")
      ->capture_default_str();
  sub->add_option("--base", a->bases, "Frequency base(s), comma-separated: one curve each")
      ->delimiter(',')
      ->check(finite())
      ->capture_default_str();
  sub->add_option("--scaling", a->scalings,
                  "Scaling(s), comma-separated, one curve each (longrope needs per-frequency "
                  "factors: see `posenc rope`)")
      ->delimiter(',')
      ->check(enum_name<posenc::RopeScaling>())
      ->capture_default_str();
  a->o_factor =
      sub->add_option("--factor", a->factor, "Scaling factor (linear, ntk, dynamic, yarn, llama3)")
          ->check(finite());
  a->o_omp = sub->add_option("--original-max-positions", a->original_max_positions,
                             "Original context M (dynamic, yarn, llama3)");
  sub->add_option("--rotary-dim", a->rotary_dim, "Rotary width R (default Dh)");
  sub->add_option("--layout", a->layout, "Pair layout")
      ->check(enum_name<posenc::RotaryLayout>())
      ->capture_default_str();
  sub->add_option("--query", a->query, "q = k = all ones, or a seeded random vector (random)")
      ->capture_default_str();
  sub->add_option("--seed", a->seed, "Seed of the random query")->capture_default_str();
  sub->add_option("--style", a->style, "line (q.k vs distance) or heatmap (per frequency pair)")
      ->capture_default_str();
  a->common.add(sub);
  sub->callback([a] {
    const plot::Format fmt = a->common.check();
    require_range("--head-dim", a->head_dim, 2, 4096);
    require_range("--max-distance", a->max_distance, 1, 1 << 20);
    if (a->query != "ones" && a->query != "random")
      throw CliError("--query: '" + a->query + "' is not ones or random");
    if (a->style != "line" && a->style != "heatmap")
      throw CliError("--style: '" + a->style + "' is not line or heatmap");
    const auto layout = posenc::from_name<posenc::RotaryLayout>(a->layout, "--layout");
    if (a->bases.empty()) throw CliError("--base: needs at least one value");
    for (double b : a->bases)
      require_finite_positive("--base", b);
    if (a->scalings.empty()) throw CliError("--scaling: needs at least one value");
    std::vector<posenc::RopeScaling> scalings;
    for (const std::string& sc : a->scalings)
      scalings.push_back(posenc::from_name<posenc::RopeScaling>(sc, "--scaling"));
    if (a->o_factor->count()) require_finite_positive("--factor", a->factor);
    if (a->o_omp->count())
      require_range("--original-max-positions", a->original_max_positions, 1,
                    std::int64_t{1} << 40);
    const std::size_t curves = a->bases.size() * a->scalings.size();
    if (curves > 10)
      throw CliError("--base x --scaling: " + std::to_string(curves) + " curves, at most 10");
    if (a->style == "heatmap" && curves != 1)
      throw CliError("--style heatmap: draws one base and one scaling, got " +
                     std::to_string(curves));
    if (a->style == "heatmap") {
      require_range("--max-distance", a->max_distance, 1, 8192);
      const std::int64_t pairs = (a->rotary_dim > 0 ? a->rotary_dim : a->head_dim) / 2;
      if (pairs * (a->max_distance + 1) > plot::max_cells)
        throw CliError("--style heatmap: " + std::to_string(pairs) + " pairs x " +
                       std::to_string(a->max_distance + 1) +
                       " distances, more than the limit 2^24 cells a figure holds (a smaller "
                       "--head-dim or --max-distance)");
    }

    const Index dh = a->head_dim, n = a->max_distance + 1;
    Matrix<double> q0(1, dh);
    if (a->query == "ones")
      q0.setOnes();
    else
      q0 = compare::seeded<double>(1, dh, static_cast<std::uint64_t>(a->seed) + 77);
    plot::Figure f;
    plot::LinePlot lp;
    lp.x_label = "distance d = p_q − p_k";
    lp.y_label = "q·k / (|q| |k|)";
    lp.y_reference = 0.0;
    for (std::size_t si = 0; si < scalings.size(); ++si)
      for (double base : a->bases) {
        const std::string& sc = a->scalings[si];
        posenc::RotaryOptions o;
        o.base = base;
        o.rotary_dim = a->rotary_dim;
        o.layout = layout;
        o.scaling = scalings[si];
        if (a->o_factor->count()) o.factor = a->factor;
        if (a->o_omp->count()) o.original_max_positions = a->original_max_positions;
        const auto enc =
            library("--scaling " + sc, [&] { return posenc::RotaryEncoding<double>(dh, o); });
        // Every row is q; rotated in one call (so dynamic scaling uses one base for all rows).
        Matrix<double> q = q0.replicate(n, 1), k = q0.replicate(n, 1);
        enc.rotate(q, Positions(0, n));
        enc.rotate(k, Positions(0, n));
        const double norm = q0.squaredNorm();
        std::string name = "base " + plot::format_number(base);
        if (sc != "none") name += ", " + sc;
        if (a->style == "line") {
          plot::Series s;
          s.name = curves > 1 ? name : "";
          for (Index d = 0; d < n; ++d) {
            s.x.push_back(static_cast<double>(d));
            s.y.push_back(q.row(d).dot(k.row(0)) / norm);
          }
          lp.series.push_back(std::move(s));
        } else {
          const Index r = enc.rotary_dim(), half = r / 2;
          plot::Heatmap h;
          h.values.resize(half, n);
          for (Index i = 0; i < half; ++i) {
            const Index ia = a->layout == "half" ? i : 2 * i,
                        ib = a->layout == "half" ? i + half : 2 * i + 1;
            const double pn = q0(0, ia) * q0(0, ia) + q0(0, ib) * q0(0, ib);
            for (Index d = 0; d < n; ++d)
              h.values(i, d) = pn > 0 ? (q(d, ia) * k(0, ia) + q(d, ib) * k(0, ib)) / pn : 0.0;
          }
          h.x_label = "distance d";
          h.y_label = "frequency pair i";
          f.colorbar_label = "pair's q·k / |qᵢ|²";
          f.subtitle = name + ", Dh = " + std::to_string(dh) + ", R = " + std::to_string(r) +
                       " (pair i turns by d·θᵢ, θᵢ = base^(−2i/R))";
          f.panels.push_back({h, {}});
        }
      }
    f.title = a->style == "line" ? "RoPE: q·k as a function of distance"
                                 : "RoPE: each frequency pair's q·k over distance";
    if (a->style == "line") {
      f.subtitle =
          "Dh = " + std::to_string(dh) + ", q = k = " +
          (a->query == "ones" ? "all ones" : "random (seed " + std::to_string(a->seed) + ")") +
          ", " + a->layout + " layout" +
          (curves == 1 ? ", base " + plot::format_number(a->bases[0]) +
                             (a->scalings[0] != "none" ? ", " + a->scalings[0] : "")
                       : "") +
          (a->o_factor->count() ? ", factor " + plot::format_number(a->factor) : "") +
          (a->o_omp->count() ? ", M = " + std::to_string(a->original_max_positions) : "");
      f.panels.push_back({{}, lp});
    }
    a->common.finish(f, fmt);
  });
}

// --- plot bias
// --------------------------------------------------------------------------------------
inline void add_plot_bias(CLI::App* plot_app) {
  using namespace plot_detail;
  struct Args {
    Common common;
    std::string encoder, table, style = "heatmap", head = "all";
    std::int64_t heads = 8, len = 32, num_buckets = 32, max_distance = 128, seed = 0;
    double max_bias = 8.0;
    bool causal = false;
    CLI::Option *o_table = nullptr, *o_heads = nullptr, *o_max_bias = nullptr, *o_nb = nullptr,
                *o_md = nullptr, *o_seed = nullptr;
  };
  auto a = std::make_shared<Args>();
  auto* sub = plot_app->add_subcommand(
      "bias",
      "ALiBi's or T5's score bias B[h, i, j], one panel per head (or one --head), as "
      "heatmaps over query x key, or as lines over the distance j - i");
  sub->add_option("--encoder", a->encoder, "alibi or t5")->required();
  a->o_heads = sub->add_option("--heads", a->heads, "Heads H (t5: taken from --table)")
                   ->capture_default_str();
  sub->add_option("--len", a->len, "Tokens N (positions 0 .. N-1)")->capture_default_str();
  a->o_max_bias =
      sub->add_option("--max-bias", a->max_bias, "ALiBi max_bias b (slopes 2^(-b(h+1)/H))")
          ->check(finite())
          ->capture_default_str();
  a->o_table =
      sub->add_option("--table", a->table,
                      "T5: trained table .npy [num_buckets, H] (default: a seeded N(0,1) table)");
  a->o_nb = sub->add_option("--num-buckets", a->num_buckets, "T5 buckets (without --table)")
                ->capture_default_str();
  a->o_md =
      sub->add_option("--max-distance", a->max_distance, "T5 max_distance")->capture_default_str();
  a->o_seed = sub->add_option("--seed", a->seed, "T5: seed of the random table (without --table)")
                  ->capture_default_str();
  sub->add_flag("--causal", a->causal, "Causal: -inf above the diagonal (T5: causal buckets)");
  sub->add_option("--head", a->head, "One head h (0-based), or all")->capture_default_str();
  sub->add_option("--style", a->style, "heatmap or line")->capture_default_str();
  a->common.add(sub);
  sub->callback([a] {
    const plot::Format fmt = a->common.check();
    if (a->encoder != "alibi" && a->encoder != "t5")
      throw CliError("--encoder: '" + a->encoder + "' has no bias to plot (expected alibi or t5)");
    if (a->style != "heatmap" && a->style != "line")
      throw CliError("--style: '" + a->style + "' is not heatmap or line");
    require_range("--len", a->len, 1, 1024);
    const bool t5 = a->encoder == "t5";
    if (!t5) {
      if (a->o_table->count() || a->o_nb->count() || a->o_md->count() || a->o_seed->count())
        throw CliError(
            "--table, --num-buckets, --max-distance and --seed apply to --encoder t5, not alibi");
    } else if (a->o_max_bias->count()) {
      throw CliError("--max-bias applies to --encoder alibi, not t5");
    }
    // The heads drawn (--head) of H, checked before any bias is computed.
    std::vector<Index> heads;
    const auto pick_heads = [&](Index count) {
      if (a->head == "all") {
        for (Index h = 0; h < count; ++h)
          heads.push_back(h);
      } else {
        long long h = -1;
        try {
          std::size_t used = 0;
          h = std::stoll(a->head, &used);
          if (used != a->head.size()) h = -1;
        } catch (const std::exception&) {
          h = -1;
        }
        if (h < 0 || h >= static_cast<long long>(count))
          throw CliError("--head: '" + a->head + "' is not all or a head in [0, " +
                         std::to_string(count) + ")");
        heads.push_back(static_cast<Index>(h));
      }
      const auto shown = static_cast<std::int64_t>(heads.size());
      if (a->style == "line" && shown > 10)
        throw CliError("--style line: at most 10 heads, got " + std::to_string(shown) +
                       " (pick one with --head)");
      if (a->style == "heatmap" && shown * a->len * a->len > plot::max_cells)
        throw CliError("--heads/--len: " + std::to_string(shown) + " panels of " +
                       std::to_string(a->len) + " x " + std::to_string(a->len) +
                       " cells, more than the limit 2^24 a figure holds (pick one with --head)");
    };
    std::vector<Matrix<double>> b;  // per drawn head [N, N]
    std::vector<std::string> names;
    const Positions pos(0, a->len);
    std::string what;
    if (!t5) {
      require_range("--heads", a->heads, 1, 256);
      const auto enc = library("--heads/--max-bias", [&] {
        return posenc::AlibiEncoding<double>(a->heads, a->max_bias);
      });
      pick_heads(enc.heads());
      for (Index h : heads) {
        b.push_back(enc.bias(h, pos, pos, a->causal));
        char m[32];
        std::snprintf(m, sizeof m, "%.4g", enc.slopes()[static_cast<std::size_t>(h)]);
        names.push_back("head " + std::to_string(h) + ", m = " + m);
      }
      what = "ALiBi bias −mₕ·|i − j|";
      what +=
          ", H = " + std::to_string(enc.heads()) + ", max_bias " + plot::format_number(a->max_bias);
    } else {
      Matrix<double> table;
      if (a->o_table->count()) {
        if (a->o_nb->count() || a->o_seed->count())
          throw CliError(
              "--num-buckets and --seed apply without --table (the table sets the buckets)");
        const Array t = load_array("--table", a->table);
        expect_shape("--table", a->table, t, {-1, -1}, "[num_buckets, H]");
        if (a->o_heads->count() && t.shape[1] != a->heads)
          throw CliError("--table: " + a->table + ": has " + std::to_string(t.shape[1]) +
                         " heads (columns), --heads is " + std::to_string(a->heads));
        table = t.data;
        what = "T5 bias T[bucket(j − i), h] from " + a->table;
      } else {
        require_range("--heads", a->heads, 1, 256);
        require_range("--num-buckets", a->num_buckets, 2, 4096);
        table = compare::seeded<double>(a->num_buckets, a->heads,
                                        static_cast<std::uint64_t>(a->seed) + 102);
        what = "T5 bias T[bucket(j − i), h], seeded N(0, 1) table (seed " +
               std::to_string(a->seed) + ")";
      }
      posenc::T5Options o;
      o.max_distance = a->max_distance;
      o.bidirectional = !a->causal;
      const auto enc = library("--table/--num-buckets/--max-distance",
                               [&] { return posenc::T5Encoding<double>(table, o); });
      pick_heads(enc.heads());
      for (Index h : heads) {
        b.push_back(enc.bias(h, pos, pos, a->causal));
        names.push_back("head " + std::to_string(h));
      }
      what += ", " + std::to_string(enc.num_buckets()) +
              (a->causal ? " causal" : " bidirectional") + " buckets, max_distance " +
              std::to_string(a->max_distance);
    }
    plot::Figure f;
    f.title = (t5 ? "T5 relative bias" : "ALiBi bias") +
              std::string(heads.size() > 1 ? " per head" : ", head " + std::to_string(heads[0]));
    f.subtitle = what + ", N = " + std::to_string(a->len) + (a->causal ? ", causal" : "");
    f.colorbar_label = "bias";
    if (a->style == "heatmap") {
      for (std::size_t k = 0; k < heads.size(); ++k) {
        plot::Heatmap m;
        m.title = names[k];
        m.values = b[k];
        m.x_label = "key j";
        m.y_label = "query i";
        f.panels.push_back({m, {}});
      }
    } else {
      // B as a function of j - i, read off row N-1 (keys before) and row 0 (keys after).
      plot::LinePlot lp;
      lp.x_label = "distance j − i (key minus query)";
      lp.y_label = "bias";
      const Index n = a->len;
      for (std::size_t k = 0; k < heads.size(); ++k) {
        plot::Series s;
        s.name = names[k];
        const auto& m = b[k];
        for (Index j = 0; j < n; ++j) {
          s.x.push_back(static_cast<double>(j - (n - 1)));
          s.y.push_back(m(n - 1, j));
        }
        if (!a->causal)
          for (Index j = 1; j < n; ++j) {
            s.x.push_back(static_cast<double>(j));
            s.y.push_back(m(0, j));
          }
        lp.series.push_back(std::move(s));
      }
      f.panels.push_back({{}, lp});
    }
    a->common.finish(f, fmt);
  });
}

// --- plot attention
// ---------------------------------------------------------------------------------
inline void add_plot_attention(CLI::App* plot_app) {
  using namespace plot_detail;
  struct Args {
    Common common;
    std::vector<std::string> encoders = compare::all_keys();
    std::vector<std::string> labels;
    std::string head = "0", x, wq, wk, input = "random";
    std::int64_t len = 16, dim = 64, heads = 4, offset = 0, seed = 0;
    double weight_scale = 1.0;
    bool causal = false;
    CLI::Option *o_x = nullptr, *o_wq = nullptr, *o_wk = nullptr, *o_len = nullptr,
                *o_dim = nullptr;
  };
  auto a = std::make_shared<Args>();
  auto* sub = plot_app->add_subcommand(
      "attention",
      "Attention maps softmax(S_h) of one input under each encoder, one panel per "
      "encoder (trained parameters seeded as in `posenc compare`)");
  sub->add_option("--encoders", a->encoders,
                  "Comma-separated: none, sinusoidal, learned, rope, alibi, t5, shaw, xl, "
                  "bert-relative, deberta")
      ->delimiter(',')
      ->capture_default_str();
  a->o_len = sub->add_option("--len", a->len, "Tokens N (seeded input)")->capture_default_str();
  a->o_dim =
      sub->add_option("--dim", a->dim, "Model width D (seeded input)")->capture_default_str();
  sub->add_option("--heads", a->heads, "Heads H")->capture_default_str();
  sub->add_option("--head", a->head, "Head h to show (0-based), or mean (the average over heads)")
      ->capture_default_str();
  sub->add_flag("--causal", a->causal, "Causal mask");
  sub->add_option("--offset", a->offset, "First position P")->capture_default_str();
  sub->add_option("--seed", a->seed, "Seed of the input, the weights and the trained parameters")
      ->capture_default_str();
  sub->add_option("--input", a->input,
                  "Seeded input: random (N different tokens) or repeated (one token N times: "
                  "the maps then show position alone)")
      ->capture_default_str();
  sub->add_option("--weight-scale", a->weight_scale,
                  "Seeded Wq, Wk have stddev weight-scale/sqrt(D) (larger: sharper maps)")
      ->check(finite())
      ->capture_default_str();
  a->o_x = sub->add_option("--x", a->x,
                           "Input .npy [N, D] instead of a seeded one (needs --wq and --wk)");
  a->o_wq = sub->add_option("--wq", a->wq, "Wq .npy [D, D]");
  a->o_wk = sub->add_option("--wk", a->wk, "Wk .npy [D, D]");
  sub->add_option("--labels", a->labels, "Comma-separated names of the N tokens (tick labels)")
      ->delimiter(',');
  a->common.add(sub);
  sub->callback([a] {
    const plot::Format fmt = a->common.check();
    if (a->encoders.empty()) throw CliError("--encoders: needs at least one encoder");
    if (a->encoders.size() > 16) throw CliError("--encoders: at most 16 panels");
    for (const auto& e : a->encoders) {
      const auto& keys = compare::all_keys();
      if (std::find(keys.begin(), keys.end(), e) == keys.end())
        throw CliError("--encoders: unknown encoder '" + e + "' (expected " + join(keys, ", ") +
                       ")");
    }
    const bool files = a->o_x->count() || a->o_wq->count() || a->o_wk->count();
    if (files && !(a->o_x->count() && a->o_wq->count() && a->o_wk->count()))
      throw CliError("--x, --wq and --wk go together (got " +
                     std::string(a->o_x->count() ? "--x " : "") +
                     (a->o_wq->count() ? "--wq " : "") + (a->o_wk->count() ? "--wk" : "") + ")");
    if (a->input != "random" && a->input != "repeated")
      throw CliError("--input: '" + a->input + "' is not random or repeated");
    if (files && (a->o_len->count() || a->o_dim->count()))
      throw CliError("--len and --dim come from --x when it is given");
    require_range("--offset", a->offset, 0, std::int64_t{1} << 40);
    if (!(std::isfinite(a->weight_scale) && a->weight_scale > 0))
      throw CliError("--weight-scale: " + plot::format_number(a->weight_scale) +
                     " must be finite and > 0");
    Matrix<double> x, wq, wk;
    if (files) {
      const Array ax = load_array("--x", a->x, ArrayRules::sequence());
      expect_shape("--x", a->x, ax, {-1, -1}, "[N, D]");
      const std::int64_t d = ax.shape[1];
      const Array aq = load_array("--wq", a->wq), ak = load_array("--wk", a->wk);
      expect_shape("--wq", a->wq, aq, {d, d}, "[D, D]");
      expect_shape("--wk", a->wk, ak, {d, d}, "[D, D]");
      x = ax.data;
      wq = aq.data;
      wk = ak.data;
      a->len = ax.shape[0];
      a->dim = d;
      require_range("--x: N", a->len, 1, 1024);
    } else {
      require_range("--len", a->len, 1, 1024);
      require_range("--dim", a->dim, 2, 4096);
    }
    require_range("--heads", a->heads, 1, 256);
    if (a->dim % a->heads != 0 || (a->dim / a->heads) % 2 != 0)
      throw CliError("--heads: H = " + std::to_string(a->heads) + " must divide D = " +
                     std::to_string(a->dim) + " into an even head dimension (RoPE)");
    if (!a->labels.empty() && static_cast<std::int64_t>(a->labels.size()) != a->len)
      throw CliError("--labels: " + std::to_string(a->labels.size()) +
                     " names for N = " + std::to_string(a->len) + " tokens");
    bool mean = a->head == "mean";
    long long head = 0;
    if (!mean) {
      try {
        std::size_t used = 0;
        head = std::stoll(a->head, &used);
        if (used != a->head.size()) head = -1;
      } catch (const std::exception&) {
        head = -1;
      }
      if (head < 0 || head >= a->heads)
        throw CliError("--head: '" + a->head + "' is not mean or a head in [0, " +
                       std::to_string(a->heads) + ")");
    }
    compare::Config c;
    c.dim = a->dim;
    c.heads = a->heads;
    c.max_len = std::max<std::int64_t>(512, a->offset + a->len);
    c.seed = static_cast<std::uint64_t>(a->seed) + 1;
    if (!files) {
      const double w = a->weight_scale / std::sqrt(static_cast<double>(a->dim));
      x = compare::seeded<double>(a->len, a->dim, c.seed + 11);
      if (a->input == "repeated") x = x.topRows(1).replicate(a->len, 1).eval();
      wq = compare::seeded<double>(a->dim, a->dim, c.seed + 12, w);
      wk = compare::seeded<double>(a->dim, a->dim, c.seed + 13, w);
    }
    const compare::Encoders<double> enc(c);
    const Positions pos(a->offset, a->len);
    plot::Figure f;
    compare::for_each_encoder(enc, a->encoders, [&](const compare::Info& info, const auto& e) {
      const auto maps = library("--encoders " + info.key, [&] {
        return compare::attention_maps(e, x, pos, wq, wk, a->heads, std::nullopt, a->causal);
      });
      plot::Heatmap h;
      h.title = info.name;
      if (mean) {
        h.values = Matrix<double>::Zero(a->len, a->len);
        for (const auto& m : maps)
          h.values += m;
        h.values /= static_cast<double>(maps.size());
      } else {
        h.values = maps[static_cast<std::size_t>(head)];
      }
      if (a->causal)
        for (Index i = 0; i < h.values.rows(); ++i)
          for (Index j = i + 1; j < h.values.cols(); ++j)
            h.values(i, j) = -std::numeric_limits<double>::infinity();
      h.x_label = "key j";
      h.y_label = "query i";
      h.x0 = h.y0 = static_cast<double>(a->offset);
      h.x_names = h.y_names = a->labels;
      f.panels.push_back({h, {}});
    });
    f.title = "Attention maps under each encoder";
    f.subtitle =
        std::string(files ? "input " + a->x
                    : a->input == "repeated"
                        ? "one seeded token repeated (seed " + std::to_string(a->seed) + ")"
                        : "seeded random input (seed " + std::to_string(a->seed) + ")") +
        ", N = " + std::to_string(a->len) + ", D = " + std::to_string(a->dim) +
        ", H = " + std::to_string(a->heads) + (mean ? ", mean over heads" : ", head " + a->head) +
        (a->causal ? ", causal" : "") + ", positions from " + std::to_string(a->offset);
    f.colorbar_label = "attention weight";
    if (!a->common.o_vmin->count()) f.vmin = 0.0;
    if (a->common.colormap == "auto") f.colormap = plot::Colormap::viridis;
    a->common.finish(f, fmt);
  });
}

// --- plot npy
// -------------------------------------------------------------------------------------
inline void add_plot_npy(CLI::App* plot_app) {
  using namespace plot_detail;
  struct Args {
    Common common;
    std::string in, x_label, y_label;
    std::int64_t index = -1;
    CLI::Option* o_index = nullptr;
  };
  auto a = std::make_shared<Args>();
  auto* sub = plot_app->add_subcommand(
      "npy",
      "Any float .npy: [N] as a line, [R, C] as a heatmap, [K, R, C] as K panels (e.g. "
      "the output of `posenc bias`); -inf entries are drawn as masked");
  sub->add_option("--in", a->in, "Input .npy (<f4 or <f8, 1 to 3 dimensions)")->required();
  a->o_index = sub->add_option("--index", a->index, "For [K, R, C]: only panel k");
  sub->add_option("--x-label", a->x_label, "x axis label");
  sub->add_option("--y-label", a->y_label, "y axis label");
  a->common.add(sub);
  sub->callback([a] {
    const plot::Format fmt = a->common.check();
    const Array arr = load_array("--in", a->in, {max_elements, true});
    const auto& s = arr.shape;
    if (s.size() > 3)
      throw CliError("--in: " + a->in + ": expected 1 to 3 dimensions, got shape " + shape_str(s));
    for (auto e : s)
      if (e == 0) throw CliError("--in: " + a->in + ": nothing to plot in shape " + shape_str(s));
    if (a->o_index->count() && s.size() != 3)
      throw CliError("--index applies to a 3-d array, got shape " + shape_str(s));
    plot::Figure f;
    f.title = a->in;
    f.subtitle = "shape " + shape_str(s) + ", " + arr.dtype;
    f.colorbar_label = "value";
    if (s.size() == 1) {
      if (s[0] > plot::max_cells)
        throw CliError("--in: " + a->in + ": " + std::to_string(s[0]) +
                       " points, more than the limit 2^24 a figure holds");
      plot::LinePlot lp;
      lp.x_label = a->x_label.empty() ? "index" : a->x_label;
      lp.y_label = a->y_label.empty() ? "value" : a->y_label;
      plot::Series ser;
      for (Index i = 0; i < arr.data.rows(); ++i) {
        ser.x.push_back(static_cast<double>(i));
        ser.y.push_back(arr.data(i, 0));
      }
      lp.series.push_back(std::move(ser));
      f.panels.push_back({{}, lp});
    } else {
      const std::int64_t k = s.size() == 3 ? s[0] : 1, r = s.size() == 3 ? s[1] : s[0],
                         cdim = s.back();
      if (r * cdim > (1 << 22))
        throw CliError("--in: " + a->in + ": a panel of " + std::to_string(r) + " x " +
                       std::to_string(cdim) + " cells is too large to draw (limit 2^22)");
      std::int64_t first = 0, last = k;
      if (a->o_index->count()) {
        if (a->index < 0 || a->index >= k)
          throw CliError("--index: " + std::to_string(a->index) + " is outside [0, " +
                         std::to_string(k) + ")");
        first = a->index;
        last = a->index + 1;
      } else if (k > 64) {
        throw CliError("--in: " + a->in + ": " + std::to_string(k) +
                       " panels (at most 64; pick one with --index)");
      }
      if ((last - first) * r * cdim > plot::max_cells)
        throw CliError("--in: " + a->in + ": " + std::to_string(last - first) + " panels of " +
                       std::to_string(r) + " x " + std::to_string(cdim) +
                       " cells, more than the limit 2^24 a figure holds (pick one with --index)");
      for (std::int64_t p = first; p < last; ++p) {
        plot::Heatmap h;
        h.values.resize(r, cdim);
        // arr.data holds the array in C order whatever its rank ([N, prod(rest)] as a matrix):
        // element [p, i, j] (or [i, j] of a 2-d array, p = 0) is at (p r + i) cdim + j
        const double* values = arr.data.data();
        for (std::int64_t i = 0; i < r; ++i)
          for (std::int64_t j = 0; j < cdim; ++j)
            h.values(i, j) = values[(p * r + i) * cdim + j];
        h.title = s.size() == 3 ? "[" + std::to_string(p) + "]" : "";
        h.x_label = a->x_label.empty() ? "column" : a->x_label;
        h.y_label = a->y_label.empty() ? "row" : a->y_label;
        f.panels.push_back({h, {}});
      }
    }
    a->common.finish(f, fmt);
  });
}

/// `posenc plot <kind> ...`.
void add_plot_command(CLI::App& app) {
  auto* plot_app = app.add_subcommand(
      "plot",
      "Pictures as SVG or PNG, drawn by matplotlib (Python 3): the sinusoidal table, RoPE's q.k "
      "over distance, ALiBi and T5 biases per head, attention maps under each encoder, any .npy "
      "(docs/plots.md)");
  plot_app->require_subcommand(1);
  add_plot_table(plot_app);
  add_plot_rope(plot_app);
  add_plot_bias(plot_app);
  add_plot_attention(plot_app);
  add_plot_npy(plot_app);
}

}  // namespace posenc_cli
