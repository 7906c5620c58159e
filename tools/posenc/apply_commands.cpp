// posenc command line: the subcommands that apply an encoder to arrays: table, rope, bias, attend.
// Every computation is the library's (conventions.md); this file only parses, checks shapes
// with messages that name the flags and files, converts to the output dtype and writes.
#include "apply_commands.hpp"

#include <CLI/CLI.hpp>

#include <posenc/posenc.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "cli_common.hpp"
#include "config_flags.hpp"
#if POSENC_CLI_HAVE_HF
#include <posenc/hf_checkpoint.hpp>
#endif

namespace posenc_cli {

namespace detail {

// --- RoPE flags, shared by `rope` and `attend --encoder rope` ----------------------------------

struct RopeFlags {
  double base = 10000.0;
  std::int64_t rotary_dim = 0;
  posenc::RotaryLayout layout = posenc::RotaryLayout::half;
  posenc::RotaryBlock block = posenc::RotaryBlock::leading;
  posenc::RopeScaling scaling = posenc::RopeScaling::none;
  double factor = 0, attention_factor = 0, mscale = 0, mscale_all_dim = 0;
  double short_mscale = 0, long_mscale = 0, partial_rotary_factor = 1.0;
  std::string freq_factors;
  std::int64_t original_max_positions = 0;
  double beta_fast = 32.0, beta_slow = 1.0;
  Bool truncate = Bool::yes;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  std::string short_factors, long_factors;

  CLI::Option *o_rotary_dim = nullptr, *o_factor = nullptr, *o_omp = nullptr,
              *o_attention_factor = nullptr, *o_mscale = nullptr, *o_mscale_all_dim = nullptr,
              *o_short = nullptr, *o_long = nullptr, *o_short_mscale = nullptr,
              *o_long_mscale = nullptr, *o_prf = nullptr, *o_freq_factors = nullptr;

  /// Adds every RoPE flag except --base and --layout (shared with other encoders in attend).
  void add(CLI::App* sub) {
    o_rotary_dim =
        sub->add_option("--rotary-dim", rotary_dim,
                        "Rotary width R (even, <= Dh; default Dh); dims >= R pass through")
            ->check(extent());
    add_enum_option(sub, "--scaling", scaling, "Context-extension scaling");
    o_factor =
        sub->add_option("--factor", factor, "Scaling factor (llama3: default 8)")->check(finite());
    o_omp =
        sub->add_option("--original-max-positions", original_max_positions,
                        "Original context length M (dynamic, yarn, longrope; llama3: default 8192)")
            ->check(in_range(1, max_position));
    sub->add_option("--beta-fast", beta_fast, "YaRN beta_fast")
        ->check(finite())
        ->capture_default_str();
    sub->add_option("--beta-slow", beta_slow, "YaRN beta_slow")
        ->check(finite())
        ->capture_default_str();
    add_enum_option(sub, "--truncate", truncate, "YaRN: round the ramp bounds");
    o_attention_factor =
        sub->add_option("--attention-factor", attention_factor,
                        "Output factor of yarn / longrope (overrides the computed one)")
            ->check(finite());
    o_mscale = sub->add_option("--mscale", mscale, "YaRN mscale")->check(finite());
    o_mscale_all_dim =
        sub->add_option("--mscale-all-dim", mscale_all_dim, "YaRN mscale_all_dim")->check(finite());
    sub->add_option("--low-freq-factor", low_freq_factor, "Llama 3 low_freq_factor")
        ->check(finite())
        ->capture_default_str();
    sub->add_option("--high-freq-factor", high_freq_factor, "Llama 3 high_freq_factor")
        ->check(finite())
        ->capture_default_str();
    o_short =
        sub->add_option("--short-factors", short_factors, "LongRoPE short factors, .npy [R/2]");
    o_long = sub->add_option("--long-factors", long_factors, "LongRoPE long factors, .npy [R/2]");
    o_short_mscale = sub->add_option("--short-mscale", short_mscale,
                                     "LongRoPE: attention factor of the short set (Phi-3-small)")
                         ->check(finite());
    o_long_mscale = sub->add_option("--long-mscale", long_mscale,
                                    "LongRoPE: attention factor of the long set (Phi-3-small)")
                        ->check(finite());
    o_prf = sub->add_option("--partial-rotary-factor", partial_rotary_factor,
                            "proportional (Gemma 4): the share of each head's frequencies that "
                            "rotate, in [0, 1]")
                ->check(finite())
                ->capture_default_str();
    add_enum_option(sub, "--rotary-dims", block,
                    "Which R dims of each head rotate: the first (leading) or the last (trailing, "
                    "DeepSeek MLA's rope part)");
    o_freq_factors = sub->add_option(
        "--freq-factors", freq_factors,
        "Frequency factors ff, .npy [R/2]: inv_freq_i / ff_i after the scaling (GGUF rope_freqs)");
  }

  /// The library's options for head width `head_dim`.
  posenc::RotaryOptions options(posenc::Index head_dim) const {
    using S = posenc::RopeScaling;
    posenc::RotaryOptions o;
    o.base = base;
    if (o_rotary_dim->count()) o.rotary_dim = static_cast<posenc::Index>(rotary_dim);
    o.layout = layout;
    o.scaling = scaling;
    if (o_factor->count()) o.factor = factor;
    if (o_omp->count()) o.original_max_positions = original_max_positions;
    o.beta_fast = beta_fast;
    o.beta_slow = beta_slow;
    o.truncate = truncate == Bool::yes;
    if (o_attention_factor->count()) o.attention_factor = attention_factor;
    if (o_mscale->count()) o.mscale = mscale;
    if (o_mscale_all_dim->count()) o.mscale_all_dim = mscale_all_dim;
    o.low_freq_factor = low_freq_factor;
    o.high_freq_factor = high_freq_factor;
    o.block = block;
    if (o_short_mscale->count()) o.short_mscale = short_mscale;
    if (o_long_mscale->count()) o.long_mscale = long_mscale;
    if (o_prf->count()) o.partial_rotary_factor = partial_rotary_factor;
    if (o_freq_factors->count()) {
      const std::int64_t r = o.rotary_dim == 0 ? head_dim : o.rotary_dim;
      const Array f = load_array("--freq-factors", freq_factors);
      expect_shape("--freq-factors", freq_factors, f, {r / 2},
                   "(rotary_dim / 2 = " + std::to_string(r) + " / 2)");
      o.freq_factors.assign(f.data.data(), f.data.data() + f.data.size());
    }

    const bool has_short = o_short->count() > 0, has_long = o_long->count() > 0;
    if (o.scaling == S::longrope) {
      if (!has_short || !has_long)
        throw CliError("--scaling " + std::string(posenc::name_of(S::longrope)) +
                       " needs --short-factors s.npy and --long-factors l.npy");
      const std::int64_t r = o.rotary_dim == 0 ? head_dim : o.rotary_dim;
      const Array s = load_array("--short-factors", short_factors);
      const Array l = load_array("--long-factors", long_factors);
      const std::string why = "(rotary_dim / 2 = " + std::to_string(r) + " / 2)";
      expect_shape("--short-factors", short_factors, s, {r / 2}, why);
      expect_shape("--long-factors", long_factors, l, {r / 2}, why);
      o.short_factors.assign(s.data.data(), s.data.data() + s.data.size());
      o.long_factors.assign(l.data.data(), l.data.data() + l.data.size());
    } else if (has_short || has_long) {
      throw CliError(std::string(has_short ? "--short-factors" : "--long-factors") +
                     " applies only to --scaling " + std::string(posenc::name_of(S::longrope)) +
                     ", not " + std::string(posenc::name_of(scaling)));
    }
    return o;
  }
};

/// --dtype, defaulting to `dtype`'s value, or with `input` (its help's "the dtype of --x") to
/// the input's dtype.
inline CLI::Option* add_dtype(CLI::App* sub, Dtype& dtype, const std::string& input = "") {
  if (input.empty()) return add_enum_option(sub, "--dtype", dtype, "Output dtype");
  return add_enum_option(sub, "--dtype", dtype, "Output dtype (default: " + input + ")")
      ->default_str("");
}

inline void add_output(CLI::App* sub, std::string& out) {
  sub->add_option("-o,--output", out,
                  "Output .npy (a new or replaced file is written atomically; docs/cli.md)")
      ->required();
}

/// Every encoder `attend` can run, chosen at run time.
template <class T>
using AnyEncoder =
    std::variant<posenc::NoEncoding<T>, posenc::SinusoidalEncoding<T>, posenc::LearnedEncoding<T>,
                 posenc::RotaryEncoding<T>, posenc::AlibiEncoding<T>, posenc::T5Encoding<T>,
                 posenc::ShawEncoding<T>, posenc::TransformerXLEncoding<T>,
                 posenc::AttentionTemperatureEncoding<T>, posenc::BertRelativeEncoding<T>,
                 posenc::DebertaEncoding<T>>;

/// Calls f(T{}) with T = float for f32, double for f64, f16 and bf16 (computed in double,
/// rounded once when written).
template <class F>
void with_dtype(Dtype dtype, F&& f) {
  if (dtype == Dtype::f32)
    f(float{});
  else
    f(double{});
}

/// Positions from --positions (length must be n when n >= 0) or offset + i, i < n.
inline posenc::Positions positions_from(const CLI::Option* pos_opt, const std::string& pos_path,
                                        std::int64_t offset, std::int64_t n,
                                        const std::string& n_source) {
  if (pos_opt && pos_opt->count()) {
    auto p = load_positions("--positions", pos_path);
    if (n >= 0 && static_cast<std::int64_t>(p.size()) != n)
      throw CliError("--positions: " + pos_path + ": expected shape [" + std::to_string(n) +
                     "] (N from " + n_source + "), got [" + std::to_string(p.size()) + "]");
    return posenc::Positions(std::move(p));
  }
  if (n > 0 && offset > max_position - (n - 1))
    throw CliError("--offset: " + std::to_string(offset) + " with N = " + std::to_string(n) +
                   " (from " + n_source + "): the last position P + N - 1 is more than the " +
                   "largest position " + limit_str(max_position));
  return posenc::Positions(offset, static_cast<posenc::Index>(n));
}

}  // namespace detail

// ------------------------------------------------------------------------------------------------
// posenc table --encoder sinusoidal --dim D (--len N [--offset P] | --positions pos.npy) ... -o out
void add_table_command(CLI::App& app) {
  struct Args {
    std::string encoder, positions, out;
    posenc::SinusoidalOptions sin;
    Dtype dtype = Dtype::f32;
    std::int64_t dim = 0, len = 0, offset = 0;
    CLI::Option *len_opt = nullptr, *pos_opt = nullptr, *encoder_opt = nullptr, *dim_opt = nullptr;
    ConfigFlags config;
    std::string weights;
    CLI::Option* weights_opt = nullptr;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("table", "Write the absolute encoding table PE [N, D]");
  EncoderFlags encoders(sub, a->encoder, "Encoder");
  a->encoder_opt = encoders.option();
  a->dim_opt = sub->add_option("--dim", a->dim, "Model width D (even)")->check(extent());
  a->len_opt =
      sub->add_option("--len", a->len, "Number of positions N")->check(in_range(0, max_elements));
  auto* off = sub->add_option("--offset", a->offset, "First position P (positions P .. P+N-1)")
                  ->check(in_range(0, max_position))
                  ->capture_default_str();
  a->pos_opt = sub->add_option("--positions", a->positions, "Explicit positions, .npy <i8 [N]");
  a->pos_opt->excludes(a->len_opt)->excludes(off);
  add_enum_option(sub, "--layout", a->sin.layout, "Column layout");
  add_enum_option(sub, "--frequencies", a->sin.frequencies, "Frequency schedule");
  sub->add_option("--base", a->sin.base, "Frequency base")->check(finite())->capture_default_str();
  sub->add_option("--scale", a->sin.scale, "Multiplies the table")
      ->check(finite())
      ->capture_default_str();
  detail::add_dtype(sub, a->dtype);
  detail::add_output(sub, a->out);
  // The flags of each --encoder (EncoderFlags), as in attend. With one encoder every flag is its
  // own; another encoder would be a row here, and the flags that are sinusoidal's alone would be
  // named in sinusoidal's row.
  encoders.define({{"sinusoidal", {}}});
  // --config replaces --encoder and the table's flags; without it --encoder and --dim are needed.
  a->config.add(sub,
                "the absolute table of --layer L's model, in place of --encoder and its flags");
  a->encoder_opt->required(false);
  a->config.replaces_all_except(
      sub, {a->len_opt, off, a->pos_opt, sub->get_option("--dtype"), sub->get_option("--output")});
  a->weights_opt = sub->add_option("--weights", a->weights,
                                   "A Hugging Face .safetensors checkpoint holding --layer's "
                                   "learned table (GPT-2 wpe, OPT, BERT; with --config)")
                       ->needs(a->config.o_config);
  sub->callback([a] {
#if POSENC_CLI_HAVE_HF
    if (a->config.given()) {
      const posenc::hf::ModelConfig m = read_model_config(a->config.path);
      const posenc::hf::LayerConfig& l = config_layer(a->config, m);
      if (l.learned_positions > 0 && a->weights_opt->count()) {
        // PE[p] = W[p + offset] for the positions asked (rows of the checkpoint's table)
        resolve_output(a->out);
        if (!a->len_opt->count() && !a->pos_opt->count())
          throw CliError("table: one of --len N or --positions pos.npy is required");
        const posenc::Positions pos = detail::positions_from(
            a->pos_opt, a->positions, a->offset, a->len_opt->count() ? a->len : -1, "--len");
        detail::with_dtype(a->dtype, [&](auto zero) {
          using T = decltype(zero);
          std::optional<posenc::LearnedEncoding<T>> table;
          try {
            table.emplace(
                posenc::hf::load_position_table<T>(m, posenc::safetensors::Checkpoint(a->weights)));
          } catch (const posenc::error& e) {
            throw CliError(std::string("--weights: ") + e.what());
          }
          posenc::Matrix<T> t = posenc::Matrix<T>::Zero(pos.size(), m.hidden_size);
          try {
            table->add_to_input(t, pos);
          } catch (const posenc::error& e) {
            throw CliError(std::string("--positions: ") + e.what());
          }
          write_npy_matrix(a->out, t, {pos.size(), m.hidden_size}, a->dtype);
        });
        return;
      }
      if (a->weights_opt->count() && l.learned_positions == 0)
        throw CliError("--weights: " + layer_name(a->config, m) + " uses encoder " +
                       std::string(posenc::name_of(l.encoder)) + ", which has no learned table");
      if (l.learned_positions > 0)
        throw CliError("--config: " + layer_name(a->config, m) + " has a learned table [" +
                       std::to_string(l.learned_positions) + ", " + std::to_string(m.hidden_size) +
                       "] (learned_positions x hidden_size): its values are trained, in the "
                       "checkpoint: give --weights model.safetensors");
      throw CliError(
          "--config: " + layer_name(a->config, m) + " uses encoder " +
          std::string(posenc::name_of(l.encoder)) + ", which has no absolute table to write" +
          (l.encoder == posenc::hf::EncoderKind::rope || l.encoder == posenc::hf::EncoderKind::mrope
               ? " (posenc rope --config applies its RoPE)"
               : ""));
    }
#else
    if (a->config.given() || a->weights_opt->count()) config_unavailable();
#endif
    if (!a->encoder_opt->count()) throw CliError("--encoder is required (or --config config.json)");
    if (!a->dim_opt->count()) throw CliError("--dim is required");
    resolve_output(a->out);
    if (!a->len_opt->count() && !a->pos_opt->count())
      throw CliError("table: one of --len N or --positions pos.npy is required");
    const posenc::Positions pos = detail::positions_from(
        a->pos_opt, a->positions, a->offset, a->len_opt->count() ? a->len : -1, "--len");
    check_elements("the table [N, D]", {pos.size(), a->dim});
    detail::with_dtype(a->dtype, [&](auto zero) {
      using T = decltype(zero);
      to_scalar<T>("--scale", a->sin.scale);  // the factor the table is multiplied by, in T
      const posenc::SinusoidalEncoding<T> enc(static_cast<posenc::Index>(a->dim), a->sin);
      posenc::Matrix<T> t;
      if (a->sin.scale == 1.0) {
        t = enc.table(pos);
      } else {  // the scaled table as the encoder adds it: 0 + scale * PE
        t = posenc::Matrix<T>::Zero(pos.size(), enc.dim());
        enc.add_to_input(t, pos);
      }
      write_npy_matrix(a->out, t, {pos.size(), a->dim}, a->dtype);
    });
  });
}

// ------------------------------------------------------------------------------------------------
// posenc rope --in x.npy ([N, Dh] or [N, H, Dh]) [--offset P | --positions pos.npy] ... -o out
void add_rope_command(CLI::App& app) {
  struct Args {
    std::string in, positions, out;
    Dtype dtype = Dtype::f64;
    std::int64_t offset = 0;
    bool inverse = false;
    detail::RopeFlags rope;
    posenc::MropeLayout mrope_layout = posenc::MropeLayout::chunked;
    std::vector<std::int64_t> mrope_section;
    CLI::Option *pos_opt = nullptr, *dtype_opt = nullptr, *mrope_layout_opt = nullptr,
                *mrope_section_opt = nullptr;
    ConfigFlags config;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("rope", "Rotate an array of queries or keys with RoPE");
  auto* in_opt = sub->add_option("--in", a->in, "Input .npy [N, Dh] or [N, H, Dh]")->required();
  auto* off = sub->add_option("--offset", a->offset, "First position P")
                  ->check(in_range(0, max_position))
                  ->capture_default_str();
  a->pos_opt = sub->add_option("--positions", a->positions, "Explicit positions, .npy <i8 [N]")
                   ->excludes(off);
  sub->add_option("--base", a->rope.base, "Frequency base")->check(finite())->capture_default_str();
  add_enum_option(sub, "--layout", a->rope.layout, "Pair layout");
  sub->add_flag("--inverse", a->inverse,
                "Undo the rotation: R(-theta) divided by the attention factor, with the frequency "
                "set the same positions would be rotated with");
  a->mrope_layout_opt = add_enum_option(
      sub, "--mrope-layout", a->mrope_layout,
      "Multi-axis RoPE: --positions is [A, N]; which axis each frequency takes its angle from");
  a->mrope_section_opt =
      sub->add_option("--mrope-section", a->mrope_section,
                      "Multi-axis RoPE sections s0,s1,... (chunked: sum R/2; interleaved: three)")
          ->delimiter(',')
          ->check(CLI::Validator(
              [](std::string& v) {
                return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos
                           ? std::string()
                           : "'" + v + "' is not a section size (an integer >= 0)";
              },
              "INT>=0", "section"));
  a->rope.add(sub);
  a->dtype_opt = detail::add_dtype(sub, a->dtype, "the input's");
  detail::add_output(sub, a->out);
  auto* inverse_opt = sub->get_option("--inverse");
  a->config.add(sub,
                "the RoPE of --layer L, in place of the RoPE flags (mrope layers: 1D positions "
                "turn every axis alike, [A, N] positions use its mrope_section)");
  a->config.replaces_all_except(
      sub, {in_opt, off, a->pos_opt, inverse_opt, a->dtype_opt, sub->get_option("--output")});
  // Multi-axis RoPE (conventions.md 3c): positions [A, N] from --positions.
  const auto rotate_multi_axis = [](const Args& args, const Array& x, std::int64_t n,
                                    std::int64_t heads, std::int64_t dh,
                                    const posenc::RotaryOptions& opts, posenc::MropeLayout layout,
                                    const std::vector<std::int64_t>& sections) {
    const auto p = read_npy_for("--positions", args.positions);
    if (p.dtype != "<i8" || p.shape.size() != 2 || p.shape[1] != n)
      throw CliError("--positions: " + args.positions + ": expected <i8 of shape [A, " +
                     std::to_string(n) + "] (A axes, N from --in), got " + p.dtype + " " +
                     shape_str(p.shape));
    check_input_shape("--positions", args.positions, p.shape, max_elements);
    posenc::AxisPositions axes(static_cast<posenc::Index>(p.shape[0]),
                               static_cast<posenc::Index>(n));
    for (posenc::Index i = 0; i < axes.size(); ++i) {
      axes.data()[i] = p.as_int(static_cast<std::int64_t>(i));
      if (axes.data()[i] < 0 || axes.data()[i] > max_position)
        throw CliError("--positions: " + args.positions + ": position " +
                       std::to_string(axes.data()[i]) + " is outside [0, " +
                       limit_str(max_position) + "]");
    }
    posenc::MultiAxisRotaryOptions mo;
    mo.rope = opts;
    mo.layout = layout;
    mo.axes = axes.rows();
    for (const std::int64_t v : sections)
      mo.sections.push_back(static_cast<posenc::Index>(v));
    const Dtype dtype =
        args.dtype_opt->count() ? args.dtype : posenc::from_name<Dtype>(x.dtype, "--in");
    detail::with_dtype(dtype, [&](auto zero) {
      using T = decltype(zero);
      const posenc::MultiAxisRotaryEncoding<T> enc(static_cast<posenc::Index>(dh), mo);
      posenc::Matrix<T> m = x.as<T>();
      enc.rotate(m, axes, static_cast<posenc::Index>(heads));
      write_npy_matrix(args.out, m, x.shape, dtype);
    });
  };
  sub->callback([a, rotate_multi_axis] {
#if !POSENC_CLI_HAVE_HF
    if (a->config.given()) config_unavailable();
#endif
    resolve_output(a->out);
#if POSENC_CLI_HAVE_HF
    std::optional<posenc::hf::ModelConfig> model;
    const posenc::hf::LayerConfig* layer = nullptr;
    if (a->config.given()) {
      model = read_model_config(a->config.path);
      layer = &config_layer(a->config, *model);
      if (layer->encoder != posenc::hf::EncoderKind::rope &&
          layer->encoder != posenc::hf::EncoderKind::mrope)
        throw CliError("--config: " + layer_name(a->config, *model) + " uses encoder " +
                       std::string(posenc::name_of(layer->encoder)) +
                       ", not rope: posenc rope --config needs a RoPE layer");
    }
#endif
    const Array x = load_array("--in", a->in, ArrayRules::sequence());
    if (x.shape.size() != 2 && x.shape.size() != 3)
      throw CliError("--in: " + a->in + ": expected shape [N, Dh] or [N, H, Dh], got " +
                     shape_str(x.shape));
    const std::int64_t n = x.shape[0];
    const std::int64_t heads = x.shape.size() == 3 ? x.shape[1] : 1;
    const std::int64_t dh = x.shape.back();
    if (heads <= 0 || dh <= 0)
      throw CliError("--in: " + a->in + ": expected H > 0 and Dh > 0, got shape " +
                     shape_str(x.shape));
#if POSENC_CLI_HAVE_HF
    if (layer) {
      if (dh != layer->head_dim)
        throw CliError("--in: " + a->in + ": shape " + shape_str(x.shape) + " has Dh = " +
                       std::to_string(dh) + ", but " + layer_name(a->config, *model) +
                       " has head_dim " + std::to_string(layer->head_dim));
      if (layer->encoder == posenc::hf::EncoderKind::mrope && a->pos_opt->count() &&
          read_npy_for("--positions", a->positions).shape.size() == 2) {
        if (a->inverse) throw CliError("--inverse: not with multi-axis positions [A, N]");
        const std::vector<std::int64_t> sections(layer->mrope_section.begin(),
                                                 layer->mrope_section.end());
        rotate_multi_axis(*a, x, n, heads, dh, layer->rotary, posenc::MropeLayout::chunked,
                          sections);
        return;
      }
    }
    const posenc::RotaryOptions opts =
        layer ? layer->rotary : a->rope.options(static_cast<posenc::Index>(dh));
#else
    const posenc::RotaryOptions opts = a->rope.options(static_cast<posenc::Index>(dh));
#endif
    if (a->mrope_layout_opt->count() || a->mrope_section_opt->count()) {
      if (!a->mrope_layout_opt->count())
        throw CliError("--mrope-section: needs --mrope-layout chunked|interleaved|axial");
      if (!a->pos_opt->count())
        throw CliError("--mrope-layout: needs --positions pos.npy of shape [A, N]");
      if (a->inverse) throw CliError("--inverse: not with --mrope-layout");
      rotate_multi_axis(*a, x, n, heads, dh, opts, a->mrope_layout, a->mrope_section);
      return;
    }
    const posenc::Positions pos =
        detail::positions_from(a->pos_opt, a->positions, a->offset, n, "--in");
    const Dtype dtype =
        a->dtype_opt->count() ? a->dtype : posenc::from_name<Dtype>(x.dtype, "--in");
    detail::with_dtype(dtype, [&](auto zero) {
      using T = decltype(zero);
      const posenc::RotaryEncoding<T> enc(static_cast<posenc::Index>(dh), opts);
      posenc::Matrix<T> m = x.as<T>();
      if (a->inverse)
        enc.unrotate(m, pos, static_cast<posenc::Index>(heads));
      else
        enc.rotate(m, pos, static_cast<posenc::Index>(heads));
      write_npy_matrix(a->out, m, x.shape, dtype);
    });
  });
}

// ------------------------------------------------------------------------------------------------
// posenc bias --encoder alibi|t5 --heads H --len N ... -o b.npy  -> [H, N, N]
void add_bias_command(CLI::App& app) {
  struct Args {
    std::string encoder, table, out;
    Dtype dtype = Dtype::f32;
    std::int64_t heads = 0, len = 0, num_buckets = 0, max_distance = 128;
    double max_bias = 8.0;
    bool causal = false;
    CLI::Option *max_bias_opt = nullptr, *table_opt = nullptr, *nb_opt = nullptr, *md_opt = nullptr;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub =
      app.add_subcommand("bias", "Write the attention-score bias B [H, N, N] of ALiBi or T5");
  EncoderFlags encoders(sub, a->encoder, "Encoder");
  sub->add_option("--heads", a->heads, "Number of heads H")->required()->check(extent());
  sub->add_option("--len", a->len, "Sequence length N (positions 0 .. N-1)")
      ->required()
      ->check(in_range(0, max_elements));
  a->max_bias_opt = sub->add_option("--max-bias", a->max_bias, "Slope parameter b")
                        ->check(finite())
                        ->capture_default_str();
  a->table_opt = sub->add_option("--table", a->table, "Bias table .npy [num_buckets, H]");
  a->nb_opt = sub->add_option("--num-buckets", a->num_buckets,
                              "Number of buckets (default: the table's rows, 32 for T5)")
                  ->check(extent());
  a->md_opt = sub->add_option("--max-distance", a->max_distance, "Max distance")
                  ->check(in_range(1, max_position))
                  ->capture_default_str();
  sub->add_flag("--causal", a->causal,
                "Mask p_j > p_i with -inf (t5: also causal buckets, as T5's decoder)");
  detail::add_dtype(sub, a->dtype);
  detail::add_output(sub, a->out);
  // The flags of each --encoder (EncoderFlags), as in attend: a new encoder is one row here,
  // plus its computation in the callback; a new flag of some encoders is added above and named
  // in their rows.
  encoders.define({
      {"alibi", {a->max_bias_opt}},
      {"t5",
       {EncoderFlags::needed(a->table_opt, "t.npy ([num_buckets, H])"), a->nb_opt, a->md_opt}},
  });
  sub->callback([a] {
    resolve_output(a->out);
    check_elements("the bias [H, N, N]", {a->heads, a->len, a->len});
    const posenc::Positions pos(0, static_cast<posenc::Index>(a->len));
    const auto n = static_cast<posenc::Index>(a->len);
    const auto h_count = static_cast<posenc::Index>(a->heads);
    const std::vector<std::int64_t> shape{a->heads, a->len, a->len};
    // B[h, i, j] = -inf where j > i under --causal: the mask, not an overflow.
    const bool causal = a->causal;
    const std::function<bool(std::int64_t)> masked = [causal, n](std::int64_t k) {
      return causal && k % n > (k / n) % n;
    };
    if (a->encoder == "alibi") {
      detail::with_dtype(a->dtype, [&](auto zero) {
        using T = decltype(zero);
        const posenc::AlibiEncoding<T> enc(h_count, a->max_bias);
        posenc::Matrix<T> out(h_count, n * n);
        for (posenc::Index h = 0; h < h_count; ++h) {
          const posenc::Matrix<T> b = enc.bias(h, pos, pos, a->causal);
          out.row(h) = Eigen::Map<const posenc::Vector<T>>(b.data(), b.size()).transpose();
        }
        write_npy_matrix(a->out, out, shape, a->dtype, masked);
      });
      return;
    }
    const Array table = load_array("--table", a->table);
    const std::int64_t nb = a->nb_opt->count() ? a->num_buckets : -1;
    expect_shape("--table", a->table, table, {nb, a->heads},
                 "([num_buckets, H] with H = --heads" +
                     std::string(a->nb_opt->count() ? " and num_buckets = --num-buckets)" : ")"));
    posenc::T5Options o;
    o.max_distance = static_cast<posenc::Index>(a->max_distance);
    o.bidirectional = !a->causal;
    detail::with_dtype(a->dtype, [&](auto zero) {
      using T = decltype(zero);
      const posenc::T5Encoding<T> enc(table.as<T>(), o);
      posenc::Matrix<T> out(h_count, n * n);
      for (posenc::Index h = 0; h < h_count; ++h) {
        const posenc::Matrix<T> b = enc.bias(h, pos, pos, a->causal);
        out.row(h) = Eigen::Map<const posenc::Vector<T>>(b.data(), b.size()).transpose();
      }
      write_npy_matrix(a->out, out, shape, a->dtype, masked);
    });
  });
}

// ------------------------------------------------------------------------------------------------
// posenc attend --x x.npy --wq .. --wk .. --wv .. --wo .. --heads H --encoder E ... -o y.npy
namespace detail {

/// "(what with a, b, c)": an expected shape and where each of its numbers came from.
inline std::string shape_from(const std::string& what, std::initializer_list<std::string> parts) {
  std::string s = "(" + what + " with ";
  bool first = true;
  for (const std::string& p : parts) {
    s += (first ? "" : ", ") + p;
    first = false;
  }
  return s + ")";
}

/// Throws unless running tokens [0, P) in one call and every later token as one step of a
/// decode loop sees what one call over all the tokens sees: each token from P on must have a
/// larger position than every earlier token of its sequence (segment; padding sees nothing).
inline void check_decode_order(const posenc::Positions& pos, const std::vector<std::int64_t>& seg,
                               std::int64_t prefill, const std::string& pos_path) {
  struct Last {
    std::int64_t position, index;
  };
  std::map<std::int64_t, Last> last;  // the largest position so far, per segment
  for (posenc::Index j = 0; j < pos.size(); ++j) {
    const std::int64_t s = seg.empty() ? 0 : seg[static_cast<std::size_t>(j)];
    if (s < 0) continue;
    const auto it = last.find(s);
    if (j >= prefill && it != last.end() && it->second.position >= pos[j])
      throw CliError("--prefill " + std::to_string(prefill) + ": the token at index " +
                     std::to_string(j) + " has position " + std::to_string(pos[j]) +
                     ", not after position " + std::to_string(it->second.position) +
                     " of the earlier token at index " + std::to_string(it->second.index) +
                     (seg.empty() ? "" : " of its segment") + " (--positions " + pos_path +
                     "); a decode loop appends tokens in increasing order of position, so its "
                     "steps would not reproduce one call");
    if (it == last.end() || pos[j] > it->second.position) last[s] = Last{pos[j], j};
  }
}

/// Y [N, D] computed as a decode loop: tokens [0, P) in one call on an empty cache, then every
/// later token as one step. `drop_keys`: the cache drops the keys that no later query of the
/// layer's window can see (positions strictly increasing).
template <class E, class T>
posenc::Matrix<T> decode_loop(const E& enc, const posenc::Matrix<T>& x, const posenc::Matrix<T>& wq,
                              const posenc::Matrix<T>& wk, const posenc::Matrix<T>& wv,
                              const posenc::Matrix<T>& wo, const posenc::AttentionOptions<T>& opt,
                              posenc::Index prefill, bool drop_keys) {
  const posenc::Index n = x.rows();
  posenc::Matrix<T> y(n, x.cols());
  posenc::KVCache<T> cache;
  if (drop_keys) cache.set_window(opt.window);
  // about 2 W tokens stay cached with a window (KVCache::drop_invisible)
  const posenc::Index held =
      drop_keys
          ? std::min<posenc::Index>(n, prefill + 2 * std::min<std::int64_t>(opt.window, n) + 1)
          : n;
  cache.reserve(wk.cols(), held);
  posenc::AttentionOptions<T> step = opt;
  step.positions.reset();
  step.segments.clear();
  const auto run = [&](posenc::Index i0, posenc::Index m) {
    if (opt.positions) step.positions = opt.positions->slice(i0, m);
    if (!opt.segments.empty())
      step.segments.assign(opt.segments.begin() + i0, opt.segments.begin() + i0 + m);
    posenc::attention_step(x.middleRows(i0, m), wq, wk, wv, wo, enc, step, cache,
                           y.middleRows(i0, m));
  };
  if (prefill > 0) run(0, prefill);
  for (posenc::Index i = prefill; i < n; ++i)
    run(i, 1);
  return y;
}

/// The flags of `attend --encoder bert-relative` (conventions.md 5d) and `--encoder deberta`
/// (5e), checked with messages that name them, and the encoders built from them.
struct RelativeEmbeddingFlags {
  // bert-relative
  std::string distance_table;
  posenc::BertRelativeType bert_type = posenc::BertRelativeType::relative_key;
  // deberta
  std::string k_r, q_r, rel_embeddings, ln_weight, ln_bias;
  double ln_eps = 1e-7;
  std::int64_t position_buckets = 256, max_relative_positions = 512;
  posenc::DebertaTerms terms = posenc::DebertaTerms::both;
  CLI::Option *o_table = nullptr, *o_type = nullptr, *o_k_r = nullptr, *o_q_r = nullptr,
              *o_rel = nullptr, *o_ln_w = nullptr, *o_ln_b = nullptr, *o_eps = nullptr;

  void add_bert(CLI::App* g) {
    o_table = g->add_option("--distance-table", distance_table,
                            "Distance embeddings E, .npy [2L-1, Dh] (Hugging Face "
                            "distance_embedding, L = max_position_embeddings)");
    o_type = add_enum_option(g, "--position-embedding-type", bert_type,
                             "Relative terms (Hugging Face position_embedding_type)");
  }
  void add_deberta(CLI::App* g) {
    o_k_r = g->add_option("--rel-key-table", k_r,
                          "K_r, .npy [2*span, H*Dh]: the layer's key projection of its relative "
                          "embeddings (c2p)");
    o_q_r = g->add_option("--rel-query-table", q_r,
                          "Q_r, .npy [2*span, H*Dh]: their query projection (p2c)");
    o_rel = g->add_option("--rel-embeddings", rel_embeddings,
                          "Instead of the tables: the relative embeddings, .npy [2*span, D]; K_r, "
                          "Q_r = LayerNorm(them) Wk + bk, Wq + bq (--wk, --bk, --wq, --bq)");
    o_ln_w = g->add_option("--rel-ln-weight", ln_weight,
                           "Their layer norm's weight, .npy [D] (none: no layer norm)");
    o_ln_b = g->add_option("--rel-ln-bias", ln_bias, "Their layer norm's bias, .npy [D]");
    o_eps = g->add_option("--rel-ln-eps", ln_eps, "Their layer norm's eps")
                ->check(finite())
                ->check(positive())
                ->capture_default_str();
    g->add_option("--position-buckets", position_buckets,
                  "Log buckets b (span = b); 0 or -1: none (span = m)")
        ->check(in_range(-1, max_extent / 2))
        ->capture_default_str();
    g->add_option("--max-relative-positions", max_relative_positions,
                  "Max relative positions m of the log buckets")
        ->check(in_range(1, max_extent))
        ->capture_default_str();
    add_enum_option(g, "--pos-att-type", terms,
                    "Relative terms (Hugging Face pos_att_type; both: c2p|p2c)");
  }

  /// E [2L-1, Dh], for self-attention at positions `pos` (every pair at most L - 1 apart).
  template <class T>
  posenc::BertRelativeEncoding<T> bert(std::int64_t dh, const std::string& from_dh,
                                       const posenc::Positions& pos, const std::string& pos_source,
                                       std::int64_t l = 0, const std::string& from_l = "") const {
    const std::string& path = distance_table;
    const auto t = load_array_as<T>(
        "--distance-table", path, {l > 0 ? 2 * l - 1 : -1, dh},
        "([2L - 1, Dh] with " + (l > 0 ? "L = " + std::to_string(l) + " " + from_l + ", " : "") +
            from_dh + ")");
    if (t.shape[0] % 2 == 0)
      throw CliError("--distance-table: " + path +
                     ": expected an odd number of rows 2L - 1, got shape " + shape_str(t.shape));
    const std::int64_t lim = (t.shape[0] - 1) / 2;  // L - 1
    if (!pos.empty() && pos.max() - pos.min() > lim)
      throw CliError("--distance-table: " + path + ": " + std::to_string(t.shape[0]) +
                     " rows reach distances up to L - 1 = " + std::to_string(lim) +
                     ", but positions " + std::to_string(pos.min()) + " and " +
                     std::to_string(pos.max()) + " (" + pos_source + ") are " +
                     std::to_string(pos.max() - pos.min()) + " apart");
    return posenc::BertRelativeEncoding<T>(t.data, bert_type);
  }

  bool c2p() const { return terms != posenc::DebertaTerms::p2c; }
  bool p2c() const { return terms != posenc::DebertaTerms::c2p; }
  std::int64_t span() const {
    return position_buckets > 0 ? position_buckets : max_relative_positions;
  }
  /// DeBERTa's score scale, the default --scale of --encoder deberta: 1 / sqrt(f Dh), f = 3
  /// with both terms, 2 with one.
  double scale(std::int64_t dh) const {
    return 1.0 /
           std::sqrt((terms == posenc::DebertaTerms::both ? 3.0 : 2.0) * static_cast<double>(dh));
  }

  /// The checks of the deberta flags among themselves, before any file is read.
  void check_deberta() const {
    const std::string b = std::to_string(position_buckets),
                      m = std::to_string(max_relative_positions);
    if (position_buckets > 0 && position_buckets < 4)
      throw CliError("--position-buckets: " + b + " must be >= 4 (or 0, -1: no buckets)");
    if (position_buckets > 0 && max_relative_positions - 1 <= position_buckets / 2)
      throw CliError(
          "--max-relative-positions: " + m +
          " must exceed --position-buckets / 2 + 1 = " + std::to_string(position_buckets / 2 + 1) +
          " (the log buckets divide by ln((m - 1) / (b / 2)))");
    if (position_buckets <= 0 && max_relative_positions > max_extent / 2)
      throw CliError("--max-relative-positions: " + m +
                     " must be at most 2^23 without buckets (the tables have 2m rows)");
    const std::string type(posenc::name_of(terms));
    if (o_rel->count()) {
      for (const CLI::Option* o : {o_k_r, o_q_r})
        if (o->count())
          throw CliError(o->get_name() +
                         ": not with --rel-embeddings (give the tables, or the "
                         "embeddings that the layer's --wk and --wq project)");
      if (o_ln_w->count() != o_ln_b->count())
        throw CliError(std::string(o_ln_w->count() ? "--rel-ln-weight: needs --rel-ln-bias"
                                                   : "--rel-ln-bias: needs --rel-ln-weight") +
                       " (a layer norm has both)");
      return;
    }
    for (const CLI::Option* o : {o_ln_w, o_ln_b, o_eps})
      if (o->count()) throw CliError(o->get_name() + ": applies only with --rel-embeddings");
    if (c2p() && !o_k_r->count())
      throw CliError(
          "--encoder deberta needs --rel-key-table kr.npy ([2*span, H*Dh]) or "
          "--rel-embeddings rel.npy ([2*span, D]): --pos-att-type " +
          type + " reads K_r");
    if (p2c() && !o_q_r->count())
      throw CliError(
          "--encoder deberta needs --rel-query-table qr.npy ([2*span, H*Dh]) or "
          "--rel-embeddings rel.npy ([2*span, D]): --pos-att-type " +
          type + " reads Q_r");
    if (!c2p() && o_k_r->count())
      throw CliError("--rel-key-table: --pos-att-type " + type + " reads no K_r");
    if (!p2c() && o_q_r->count())
      throw CliError("--rel-query-table: --pos-att-type " + type + " reads no Q_r");
  }

  /// K_r, Q_r from their files, or from the relative embeddings and the layer's projections.
  template <class T>
  posenc::DebertaEncoding<T> deberta(std::int64_t h, std::int64_t d, std::int64_t dh,
                                     const posenc::Matrix<T>& wq, const posenc::Vector<T>& bq,
                                     const posenc::Matrix<T>& wk, const posenc::Vector<T>& bk,
                                     const std::string& from_h, const std::string& from_dh,
                                     const std::string& from_d) const {
    posenc::DebertaOptions o;
    o.position_buckets = static_cast<posenc::Index>(position_buckets);
    o.max_relative_positions = static_cast<posenc::Index>(max_relative_positions);
    o.terms = terms;
    const std::int64_t rows = 2 * span();
    const std::string from_span =
        "span = " + std::to_string(span()) + " from " +
        (position_buckets > 0 ? "--position-buckets" : "--max-relative-positions");
    const auto index = static_cast<posenc::Index>(h);
    if (o_rel->count()) {
      const auto rel = load_array_as<T>("--rel-embeddings", rel_embeddings, {rows, d},
                                        "([2 span, D] with " + from_span + ", " + from_d + ")");
      posenc::Vector<T> w, b;
      if (o_ln_w->count()) {
        const std::string why = "([D] with " + from_d + ")";
        w = load_array_as<T>("--rel-ln-weight", ln_weight, {d}, why).vector();
        b = load_array_as<T>("--rel-ln-bias", ln_bias, {d}, why).vector();
      }
      const auto t =
          posenc::deberta_relative_tables<T>(rel.data, w, b, ln_eps, wq, bq, wk, bk, index);
      return posenc::DebertaEncoding<T>(t.k_r, t.q_r, index, o);
    }
    const std::string why =
        "([2 span, H * Dh] with " + from_span + ", " + from_h + ", " + from_dh + ")";
    posenc::Matrix<T> kr, qr;
    if (c2p()) kr = load_array_as<T>("--rel-key-table", k_r, {rows, h * dh}, why).data;
    if (p2c()) qr = load_array_as<T>("--rel-query-table", q_r, {rows, h * dh}, why).data;
    return posenc::DebertaEncoding<T>(kr, qr, index, o);
  }
};

#if POSENC_CLI_HAVE_HF
template <class E>
struct is_multi_axis : std::false_type {};
template <class T>
struct is_multi_axis<posenc::MultiAxisRotaryEncoding<T>> : std::true_type {};

/// `posenc attend --config c.json --weights m.safetensors --layer L --x x.npy -o y.npy`: layer
/// L of the checkpoint (posenc/hf_checkpoint.hpp), its weights, biases, sinks and tables by the
/// model's tensor names, at --offset / --positions, with --segments and --prefill as attend's.
template <class Args>
void attend_checkpoint(const Args& a, const posenc::hf::ModelConfig& model,
                       const ConfigFlags& config) {
  const posenc::Index index = static_cast<posenc::Index>(config.layer);
  const posenc::hf::LayerConfig& layer = model.layers[static_cast<std::size_t>(index)];
  const std::string name = layer_name(config, model);
  if (layer.value_head_dim != layer.head_dim)
    throw CliError("--config: " + name + " has value heads of " +
                   std::to_string(layer.value_head_dim) + " and query/key heads of " +
                   std::to_string(layer.head_dim) + " (MLA), which posenc attend does not run");
  if (a.prefill_opt->count() && !layer.causal)
    throw CliError("--prefill " + std::to_string(a.prefill) + ": " + name +
                   " is not causal: a decode loop reproduces only a causal layer");
  resolve_output(a.out);
  posenc_npy::NpyArray xr = read_float_npy("--x", a.x, ArrayRules::sequence());
  if (xr.shape.size() != 2 || xr.shape[1] != model.hidden_size)
    throw CliError("--x: " + a.x + ": expected shape [N, " + std::to_string(model.hidden_size) +
                   "] (D = hidden_size from " + name + "), got " + shape_str(xr.shape));
  const std::int64_t n = xr.shape[0];
  const posenc::Positions pos = positions_from(a.pos_opt, a.positions, a.offset, n, "--x " + a.x);
  if (a.prefill_opt->count() && a.prefill > n)
    throw CliError("--prefill: " + std::to_string(a.prefill) +
                   " is more than N = " + std::to_string(n) + " (from --x " + a.x + ")");
  std::vector<std::int64_t> segments;
  if (a.seg_opt->count()) {
    segments = load_int_vector("--segments", a.segments);
    if (static_cast<std::int64_t>(segments.size()) != n)
      throw CliError("--segments: " + a.segments + ": expected shape [" + std::to_string(n) +
                     "] (N from --x " + a.x + "), got [" + std::to_string(segments.size()) + "]");
  }
  if (a.prefill_opt->count() && a.pos_opt->count())
    check_decode_order(pos, segments, a.prefill, a.positions);
  const Dtype dtype = a.dtype_opt->count() ? a.dtype : dtype_of_descr(xr.dtype);
  with_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    const posenc::Matrix<T> xt =
        std::move(array_values<T>("--x", a.x, xr, ArrayRules::sequence()).data);
    std::vector<char>().swap(xr.data);
    std::optional<posenc::hf::Layer<T>> l;
    try {
      const posenc::safetensors::Checkpoint ck(a.weights);
      l.emplace(posenc::hf::load_layer<T>(model, index, ck));
    } catch (const posenc::error& e) {
      throw CliError(std::string("--weights: ") + e.what());
    }
    posenc::AttentionOptions<T> opt = l->options;
    if (a.pos_opt->count())
      opt.positions = pos;
    else
      opt.offset = a.offset;
    opt.segments = segments;
    posenc::Matrix<T> y;
    if (!a.prefill_opt->count()) {
      y = l->run(xt, opt);
    } else {
      bool increasing = true;
      for (posenc::Index i = 1; i < pos.size() && increasing; ++i)
        increasing = pos[i] > pos[i - 1];
      std::visit(
          [&](const auto& enc) {
            if constexpr (is_multi_axis<std::decay_t<decltype(enc)>>::value) {
              throw CliError("--prefill: " + name +
                             " uses M-RoPE, whose decode loop needs its axis positions; run it "
                             "without --prefill");
            } else {
              y = decode_loop(enc, xt, l->weights.wq, l->weights.wk, l->weights.wv, l->weights.wo,
                              opt, static_cast<posenc::Index>(a.prefill),
                              opt.window > 0 && increasing);
            }
          },
          l->encoder);
    }
    write_npy_matrix(a.out, y, {n, model.hidden_size}, dtype);
  });
}
#endif

// --- attend --grad-y gy.npy --grads DIR: every gradient as DIR/<flag>.npy ----------------------

/// Throws unless `dir` names an existing directory the program may create files in.
inline void check_grads_dir(const std::string& dir) {
  if (dir.empty()) throw CliError("--grads: empty directory path");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) io_error("--grads " + dir, errno);
  if (!S_ISDIR(st.st_mode)) throw CliError("--grads " + dir + ": is not a directory");
  if (::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0)
    io_error("--grads " + dir + ": cannot create files in it", errno);
}

/// DIR/NAME.npy
inline std::string grad_path(const std::string& dir, const std::string& name) {
  return dir + (dir.back() == '/' ? "" : "/") + name + ".npy";
}

/// One file of the set `attend` writes: -o's Y or a gradient. `label` is how messages name it
/// ("-o y.npy", "--grads g/wq.npy").
template <class T>
struct SetFile {
  std::string name;  // the flag of a gradient ("wq", "rel-k", ...); empty for -o
  std::string path, label;
  std::vector<std::int64_t> shape;
  posenc::Matrix<T> values;  // row-major, as many values as the shape has elements
};

/// The file a path would write, as a key to compare two outputs by: the real path of the
/// (final) target's directory and the target's name.
inline std::string output_key(const std::string& path) {
  const std::string t = final_target(path);
  const std::string dir = dir_of(t);
  std::vector<char> buf(PATH_MAX + 1);
  const std::string real = ::realpath(dir.c_str(), buf.data()) ? std::string(buf.data()) : dir;
  const auto slash = t.find_last_of('/');
  return real + "/" + (slash == std::string::npos ? t : t.substr(slash + 1));
}

/// Before anything is computed: each file of the set can be written (resolve_output's checks,
/// in the gradient's own words), no two are the same file, and no gradient would replace an
/// input file (`inputs`: flag and path of every file read).
template <class T>
void check_set(const std::vector<SetFile<T>>& files,
               const std::vector<std::pair<std::string, std::string>>& inputs) {
  std::map<std::string, std::string> seen;  // output_key -> label
  for (const SetFile<T>& f : files) {
    const std::string o = "-o " + f.path;
    const auto relabel = [&](const std::string& m) {
      return m.compare(0, o.size(), o) == 0 ? f.label + m.substr(o.size()) : m;
    };
    try {
      resolve_output(f.path);
    } catch (const CliError& e) {
      throw CliError(relabel(e.what()));
    } catch (const ResourceError& e) {
      throw ResourceError(relabel(e.what()));
    }
    const std::string key = output_key(f.path);
    const auto it = seen.find(key);
    if (it != seen.end())
      throw CliError(f.label + ": is the same file as " + it->second +
                     "; give -o a path outside --grads' directory or another name");
    seen.emplace(key, f.label);
    struct stat out {};
    if (f.label.compare(0, 2, "-o") == 0 || ::stat(f.path.c_str(), &out) != 0) continue;
    for (const auto& in : inputs) {
      struct stat st {};
      if (::stat(in.second.c_str(), &st) == 0 && st.st_dev == out.st_dev && st.st_ino == out.st_ino)
        throw CliError(f.label + ": is the input " + in.first + " " + in.second +
                       ", which the gradient would replace; give --grads another directory");
    }
  }
}

/// Throws unless every value of `f` is finite in the output dtype `dtype`.
template <class T>
void check_finite(const SetFile<T>& f, Dtype dtype) {
  const T* v = f.values.data();
  for (posenc::Index i = 0; i < f.values.size(); ++i) {
    const double x = stored_value(dtype, static_cast<double>(v[i]));
    if (std::isfinite(x)) continue;
    const std::string dt(posenc::name_of(dtype));
    throw CliError(f.label + (f.name.empty() ? ": the result " : ": the gradient ") +
                   (std::isnan(x) ? "is nan at " + index_str(i, f.shape) +
                                        " (an intermediate value overflowed " + dt + ")"
                                  : "overflows " + dt + " at " + index_str(i, f.shape) + " (" +
                                        number_str(x) + ")") +
                   "; nothing was written");
  }
}

/// The values of `m` in `dtype`, converted in blocks.
template <class T>
void write_values(OutputFile& out, const posenc::Matrix<T>& m, Dtype dtype) {
  const auto n = static_cast<std::size_t>(m.size());
  if (dtype_of<T>() == dtype) {
    out.write(m.data(), n * sizeof(T));
    return;
  }
  if (dtype == Dtype::f16 || dtype == Dtype::bf16) {
    std::vector<std::uint16_t> buf(std::min<std::size_t>(n, 8192));
    for (std::size_t i0 = 0; i0 < n; i0 += buf.size()) {
      const std::size_t k = std::min(buf.size(), n - i0);
      for (std::size_t i = 0; i < k; ++i)
        buf[i] = half_bits(dtype, static_cast<double>(m.data()[i0 + i]));
      out.write(buf.data(), k * 2);
    }
    return;
  }
  const auto convert = [&](auto zero) {
    using S = decltype(zero);
    std::vector<S> buf(std::min<std::size_t>(n, 8192));
    for (std::size_t i0 = 0; i0 < n; i0 += buf.size()) {
      const std::size_t k = std::min(buf.size(), n - i0);
      for (std::size_t i = 0; i < k; ++i)
        buf[i] = static_cast<S>(m.data()[i0 + i]);
      out.write(buf.data(), k * sizeof(S));
    }
  };
  if (dtype == Dtype::f32)
    convert(float{});
  else
    convert(double{});
}

/// Writes files[i..] each through write_output (a temporary file renamed into place), nested:
/// file i's temporary file stays open and unrenamed until every later file is complete and
/// renamed, so an error while any data is written leaves none of them (only a failed close or
/// rename after the first rename could leave part of the set).
template <class T>
void write_nested(const std::vector<SetFile<T>>& files, std::size_t i, Dtype dtype) {
  if (i == files.size()) return;
  const SetFile<T>& f = files[i];
  const std::string header = posenc_npy::npy_header_bytes(npy_descr(dtype), f.shape);
  const std::string o = "-o " + f.path;
  const auto relabel = [&](const std::string& m) {
    return m.compare(0, o.size(), o) == 0 ? f.label + m.substr(o.size()) : m;
  };
  try {
    write_output(f.path, [&](OutputFile& out) {
      out.write(header.data(), header.size());
      write_values(out, f.values, dtype);
      write_nested(files, i + 1, dtype);
    });
  } catch (const CliError& e) {
    throw CliError(relabel(e.what()));
  } catch (const ResourceError& e) {
    throw ResourceError(relabel(e.what()));
  }
}

/// The gradients of DeBERTa's relative embeddings, their layer norm and (added into the given
/// dwq, dwk, dbq, dbk) the projections that made K_r and Q_r of them (deberta_relative_tables:
/// R = LayerNorm(rel), K_r = R Wk + bk per query head's key/value head, Q_r = R Wq + bq), from
/// dL/dK_r and dL/dQ_r (empty: that table is not read). In double, as the forward's layer norm.
template <class T>
struct DebertaEmbeddingGradients {
  posenc::Matrix<T> rel;
  posenc::Vector<T> ln_weight, ln_bias;
};

template <class T>
DebertaEmbeddingGradients<T> deberta_embedding_backward(
    const posenc::Matrix<T>& rel_t, const posenc::Vector<T>& lnw_t, const posenc::Vector<T>& lnb_t,
    double eps, const posenc::Matrix<T>& wq_t, const posenc::Matrix<T>& wk_t, std::int64_t heads,
    const posenc::Matrix<T>& dkr_t, const posenc::Matrix<T>& dqr_t, posenc::Matrix<T>& dwq,
    posenc::Matrix<T>& dwk, posenc::Vector<T>& dbq, posenc::Vector<T>& dbk) {
  using M = posenc::Matrix<double>;
  using posenc::Index;
  const M rel = rel_t.template cast<double>(), wq = wq_t.template cast<double>(),
          wk = wk_t.template cast<double>();
  const Index n = rel.rows(), d = rel.cols(), qw = wq.cols(), kw = wk.cols();
  const Index h = static_cast<Index>(heads), dh = qw / h, hkv = kw / dh;
  const bool ln = lnw_t.size() > 0;
  // R and the normalised rows xhat (R = xhat w + b)
  M xhat = rel;
  std::vector<double> inv(static_cast<std::size_t>(n), 1.0);
  if (ln) {
    for (Index i = 0; i < n; ++i) {
      const double mean = rel.row(i).mean();
      const double var = (rel.row(i).array() - mean).square().mean();
      inv[static_cast<std::size_t>(i)] = 1.0 / std::sqrt(var + eps);
      xhat.row(i) = (rel.row(i).array() - mean) * inv[static_cast<std::size_t>(i)];
    }
  }
  const posenc::Vector<double> w =
      ln ? posenc::Vector<double>(lnw_t.template cast<double>()) : posenc::Vector<double>::Ones(d);
  M r = xhat;
  if (ln) {
    const posenc::Vector<double> b = lnb_t.template cast<double>();
    for (Index i = 0; i < n; ++i)
      r.row(i) = xhat.row(i).cwiseProduct(w.transpose()) + b.transpose();
  }
  // dL/d(R Wk + bk) [2 span, Hkv Dh]: each query head's block of dK_r into its key/value head's
  M dkp = M::Zero(n, kw), dqr = M::Zero(n, qw);
  if (dkr_t.size() > 0)
    for (Index q = 0; q < h; ++q)
      dkp.middleCols(((q * hkv) / h) * dh, dh) +=
          dkr_t.middleCols(q * dh, dh).template cast<double>();
  if (dqr_t.size() > 0) dqr = dqr_t.template cast<double>();
  dwq += (r.transpose() * dqr).template cast<T>();
  dwk += (r.transpose() * dkp).template cast<T>();
  if (dbq.size()) dbq += dqr.colwise().sum().transpose().template cast<T>();
  if (dbk.size()) dbk += dkp.colwise().sum().transpose().template cast<T>();
  const M dr = dqr * wq.transpose() + dkp * wk.transpose();
  DebertaEmbeddingGradients<T> g;
  if (!ln) {
    g.rel = dr.template cast<T>();
    return g;
  }
  // torch.nn.LayerNorm's backward: dxhat = dR o w, dx = inv (dxhat - mean(dxhat) - xhat
  // mean(dxhat o xhat)), dw = sum_i dR_i o xhat_i, db = sum_i dR_i
  M drel(n, d);
  for (Index i = 0; i < n; ++i) {
    const Eigen::Array<double, 1, Eigen::Dynamic> dxh = dr.row(i).array() * w.transpose().array();
    const double m1 = dxh.mean(), m2 = (dxh * xhat.row(i).array()).mean();
    drel.row(i) =
        (inv[static_cast<std::size_t>(i)] * (dxh - m1 - xhat.row(i).array() * m2)).matrix();
  }
  g.rel = drel.template cast<T>();
  g.ln_weight = (dr.cwiseProduct(xhat)).colwise().sum().transpose().template cast<T>();
  g.ln_bias = dr.colwise().sum().transpose().template cast<T>();
  return g;
}

}  // namespace detail

void add_attend_command(CLI::App& app) {
  struct Args {
    std::string x, wq, wk, wv, wo, encoder, out;
    Dtype dtype = Dtype::f64;
    std::int64_t heads = 0, kv_heads = 0, head_dim = 0, offset = 0;
    bool causal = false;
    double scale = 0;
    CLI::Option *scale_opt = nullptr, *kv_heads_opt = nullptr, *head_dim_opt = nullptr,
                *dtype_opt = nullptr;
    // projection biases, positions, visibility, sinks, soft-capping, decoding
    std::string bq, bk, bv, bo, positions, segments, sinks;
    std::int64_t window = 0, chunk = 0, prefill = 0;
    double softcap = 0;
    CLI::Option *bq_opt = nullptr, *bk_opt = nullptr, *bv_opt = nullptr, *bo_opt = nullptr,
                *pos_opt = nullptr, *seg_opt = nullptr, *sinks_opt = nullptr, *window_opt = nullptr,
                *chunk_opt = nullptr, *softcap_opt = nullptr, *prefill_opt = nullptr;
    // sinusoidal (its layout, frequencies, scale), and --layout, --base shared with rope / xl
    posenc::SinusoidalOptions sin;
    std::string layout;  // a name of the encoder's layout enum: "" for its default
    CLI::Option *layout_opt = nullptr, *freq_opt = nullptr, *pe_scale_opt = nullptr,
                *base_opt = nullptr;
    // learned, t5
    std::string table;
    std::int64_t table_offset = 0, num_buckets = 0, max_distance = 128;
    CLI::Option *table_opt = nullptr, *table_offset_opt = nullptr, *nb_opt = nullptr,
                *md_opt = nullptr;
    // alibi
    double max_bias = 8.0;
    CLI::Option* max_bias_opt = nullptr;
    // rope
    detail::RopeFlags rope;
    // temperature (Llama 4's query temperature)
    posenc::AttentionTemperatureOptions temperature;
    // shaw
    std::string rel_k, rel_v;
    std::int64_t max_relative = 0;
    CLI::Option *rel_k_opt = nullptr, *rel_v_opt = nullptr, *max_rel_opt = nullptr;
    // xl
    std::string u, v, wr;
    std::int64_t clamp_len = -1;
    CLI::Option *u_opt = nullptr, *v_opt = nullptr, *wr_opt = nullptr, *clamp_opt = nullptr;
    // bert-relative, deberta
    detail::RelativeEmbeddingFlags relemb;
    // --config: the layer's encoder and attention options in place of the flags above
    ConfigFlags config;
    CLI::Option *encoder_opt = nullptr, *heads_opt = nullptr, *causal_opt = nullptr;
    // --weights: the layer's weights, biases, sinks and tables from a checkpoint
    std::string weights;
    CLI::Option *weights_opt = nullptr, *wq_opt = nullptr, *wk_opt = nullptr, *wv_opt = nullptr,
                *wo_opt = nullptr;
    // --grad-y gy.npy --grads DIR: the backward pass, every gradient written as DIR/<flag>.npy
    std::string grad_y, grads;
    CLI::Option *grad_y_opt = nullptr, *grads_opt = nullptr;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "attend", "Multi-head self-attention Y [N, D] of X with projections and an encoder");
  sub->add_option("--x", a->x, "Input X, .npy [N, D]")->required();
  a->wq_opt = sub->add_option("--wq", a->wq, "Wq, .npy [D, H*Dh] (y = x.W)");
  a->wk_opt = sub->add_option("--wk", a->wk, "Wk, .npy [D, Hkv*Dh]");
  a->wv_opt = sub->add_option("--wv", a->wv, "Wv, .npy [D, Hkv*Dh]");
  a->wo_opt = sub->add_option("--wo", a->wo, "Wo, .npy [H*Dh, D]");
  a->heads_opt =
      sub->add_option("--heads", a->heads, "Query heads H (divides D unless --head-dim is given)")
          ->check(extent());
  a->kv_heads_opt = sub->add_option("--kv-heads", a->kv_heads,
                                    "Key/value heads Hkv, dividing H (default H; 1: multi-query)")
                        ->check(extent());
  a->head_dim_opt =
      sub->add_option("--head-dim", a->head_dim, "Head size Dh (default D / H)")->check(extent());
  a->bq_opt = sub->add_option("--bq", a->bq, "Query bias, .npy [H*Dh] (Q = X'.Wq + bq)");
  a->bk_opt = sub->add_option("--bk", a->bk, "Key bias, .npy [Hkv*Dh]");
  a->bv_opt = sub->add_option("--bv", a->bv, "Value bias, .npy [Hkv*Dh]");
  a->bo_opt = sub->add_option("--bo", a->bo, "Output bias, .npy [D] (Y = O.Wo + bo)");
  a->causal_opt = sub->add_flag("--causal", a->causal, "Causal mask (t5: also causal buckets)");
  auto* off = sub->add_option("--offset", a->offset, "First position P")
                  ->check(in_range(0, max_position))
                  ->capture_default_str();
  a->pos_opt = sub->add_option("--positions", a->positions, "Explicit positions, .npy <i8 [N]")
                   ->excludes(off);
  a->window_opt =
      sub->add_option("--window", a->window,
                      "Sliding window W: p_i - p_j < W (causal), |p_i - p_j| < W (otherwise)")
          ->check(in_range(1, max_position));
  a->chunk_opt = sub->add_option("--chunk", a->chunk,
                                 "Chunked attention: keys of the same chunk floor(p / C) only")
                     ->check(in_range(1, max_position));
  a->seg_opt = sub->add_option("--segments", a->segments,
                               "Segment ids of a packed batch, .npy <i8 [N] (negative: padding)");
  a->sinks_opt =
      sub->add_option("--sinks", a->sinks, "Attention sinks, one logit per query head, .npy [H]");
  a->softcap_opt = sub->add_option("--softcap", a->softcap,
                                   "Logit soft-capping c > 0: S <- c tanh(S / c) (Gemma 2)")
                       ->check(finite())
                       ->check(positive());
  a->prefill_opt =
      sub->add_option("--prefill", a->prefill,
                      "Decode loop (causal): tokens [0, P) in one call, then one step per token")
          ->check(in_range(0, max_elements));
  a->scale_opt =
      sub->add_option("--scale", a->scale, "Score scale (default 1/sqrt(Dh); T5 models use 1)")
          ->check(finite());
  EncoderFlags encoders(sub, a->encoder, "Positional encoding");
  // The option groups only arrange --help; the table below says which encoder takes which flag.
  auto* g_sin = sub->add_option_group("sinusoidal");
  a->layout_opt =
      g_sin
          ->add_option("--layout", a->layout,
                       "Column or pair layout (default: " +
                           std::string(posenc::name_of(posenc::SinusoidalOptions{}.layout)) +
                           " for sinusoidal, " + std::string(posenc::name_of(a->rope.layout)) +
                           " for rope)")
          ->type_name("NAME");
  a->freq_opt = add_enum_option(g_sin, "--frequencies", a->sin.frequencies, "Frequency schedule");
  a->base_opt = g_sin->add_option("--base", a->rope.base, "Frequency base")
                    ->check(finite())
                    ->capture_default_str();
  a->pe_scale_opt = g_sin->add_option("--pe-scale", a->sin.scale, "X + pe_scale * PE")
                        ->check(finite())
                        ->capture_default_str();
  auto* g_tab = sub->add_option_group("learned, t5");
  a->table_opt = g_tab->add_option("--table", a->table,
                                   "learned: PE table [L, D]; t5: bias table [num_buckets, H]");
  a->table_offset_opt = g_tab
                            ->add_option("--table-offset", a->table_offset,
                                         "Row p + O is position p's (2 for OPT/BART)")
                            ->check(in_range(0, max_position))
                            ->capture_default_str();
  a->nb_opt =
      g_tab->add_option("--num-buckets", a->num_buckets, "Buckets (default: the table's rows)")
          ->check(extent());
  a->md_opt = g_tab->add_option("--max-distance", a->max_distance, "Max distance")
                  ->check(in_range(1, max_position))
                  ->capture_default_str();
  auto* g_alibi = sub->add_option_group("alibi");
  a->max_bias_opt = g_alibi->add_option("--max-bias", a->max_bias, "Slope parameter b")
                        ->check(finite())
                        ->capture_default_str();
  auto* g_rope = sub->add_option_group("rope");
  a->rope.add(g_rope);
  auto* g_shaw = sub->add_option_group("shaw");
  a->rel_k_opt = g_shaw->add_option("--rel-k", a->rel_k, "A_K, .npy [2K+1, Dh]");
  a->rel_v_opt = g_shaw->add_option("--rel-v", a->rel_v, "A_V, .npy [2K+1, Dh]");
  // K with tables of 2K + 1 <= 2^24 rows.
  a->max_rel_opt = g_shaw
                       ->add_option("--max-relative", a->max_relative,
                                    "Clip distance K (default: from the tables)")
                       ->check(in_range(0, (max_extent - 1) / 2));
  auto* g_xl = sub->add_option_group("xl");
  a->u_opt = g_xl->add_option("--u", a->u, "u, .npy [H, Dh]");
  a->v_opt = g_xl->add_option("--v", a->v, "v, .npy [H, Dh]");
  a->wr_opt = g_xl->add_option("--wr", a->wr, "W_R, .npy [D, H*Dh]");
  a->clamp_opt =
      g_xl->add_option("--clamp-len", a->clamp_len, "Clamp |p_i - p_j| (default: no clamp)")
          ->check(in_range(0, max_position));
  auto* g_bert = sub->add_option_group("bert-relative");
  a->relemb.add_bert(g_bert);
  auto* g_deberta = sub->add_option_group("deberta");
  a->relemb.add_deberta(g_deberta);
  auto* g_temp = sub->add_option_group("temperature");
  g_temp->add_option("--attn-scale", a->temperature.attn_scale, "q *= 1 + s ln(floor((p+1)/f) + 1)")
      ->check(finite())
      ->capture_default_str();
  g_temp->add_option("--floor-scale", a->temperature.floor_scale, "f of the query temperature")
      ->check(finite())
      ->capture_default_str();
  a->dtype_opt = detail::add_dtype(sub, a->dtype, "the dtype of --x");
  detail::add_output(sub, a->out);
  a->grad_y_opt = sub->add_option("--grad-y", a->grad_y,
                                  "dL/dY, .npy [N, D]: with --grads, also run the backward pass");
  a->grads_opt = sub->add_option("--grads", a->grads,
                                 "An existing directory for every gradient (with --grad-y): "
                                 "x.npy, wq.npy, ..., each named after its flag (docs/cli.md)");
  a->grad_y_opt->needs(a->grads_opt);
  a->grads_opt->needs(a->grad_y_opt);

  // The flags of each --encoder (EncoderFlags): a row names the flags its encoder takes beyond
  // those every encoder takes (the flags in no row); F::needed marks one the encoder cannot do
  // without, and {flag, check} checks a value by that encoder's rule. A new encoder is one row
  // here, plus its construction in make() below; a new flag of some encoders is added above and
  // named in their rows.
  using F = EncoderFlags;
  encoders.define({
      {"none", {}},
      {"sinusoidal",
       {{a->layout_opt, enum_name<posenc::SinusoidalLayout>()},
        a->freq_opt,
        a->base_opt,
        a->pe_scale_opt}},
      {"learned", {F::needed(a->table_opt, "pe.npy ([L, D])"), a->table_offset_opt}},
      {"rope", {{a->layout_opt, enum_name<posenc::RotaryLayout>()}, a->base_opt, g_rope}},
      {"alibi", {a->max_bias_opt}},
      {"t5", {F::needed(a->table_opt, "t.npy ([num_buckets, H])"), a->nb_opt, a->md_opt}},
      {"shaw",
       {F::needed(a->rel_k_opt, "ak.npy ([2K+1, Dh])"),
        F::needed(a->rel_v_opt, "av.npy ([2K+1, Dh])"), a->max_rel_opt}},
      {"xl",
       {F::needed(a->u_opt, "u.npy ([H, Dh])"), F::needed(a->v_opt, "v.npy ([H, Dh])"),
        F::needed(a->wr_opt, "wr.npy ([D, H*Dh])"), a->clamp_opt, a->base_opt}},
      {"temperature", {g_temp}},
      {"bert-relative", {F::needed(a->relemb.o_table, "e.npy ([2L-1, Dh])"), a->relemb.o_type}},
      {"deberta", {g_deberta}},
  });
  // --config replaces --encoder, the encoders' flags except their tables, the head counts and
  // sizes, --causal, --scale, --window, --chunk and --softcap.
  a->encoder_opt = encoders.option();
  a->encoder_opt->required(false);
  a->config.add(sub,
                "the encoder, heads, head size, causality, scale, window, chunk and soft-cap of "
                "--layer L, in place of those flags (T5, BERT-relative and DeBERTa layers take "
                "their tables from the table flags)");
  {
    std::vector<CLI::Option*> replaced = encoders.specific_flags();
    const std::vector<CLI::Option*> tables{a->table_opt,     a->relemb.o_table, a->relemb.o_k_r,
                                           a->relemb.o_q_r,  a->relemb.o_rel,   a->relemb.o_ln_w,
                                           a->relemb.o_ln_b, a->relemb.o_eps};
    replaced.erase(std::remove_if(replaced.begin(), replaced.end(),
                                  [&](CLI::Option* o) {
                                    return std::find(tables.begin(), tables.end(), o) !=
                                           tables.end();
                                  }),
                   replaced.end());
    for (CLI::Option* o :
         {a->encoder_opt, a->heads_opt, a->kv_heads_opt, a->head_dim_opt, a->causal_opt,
          a->scale_opt, a->window_opt, a->chunk_opt, a->softcap_opt})
      replaced.push_back(o);
    a->config.replaces(replaced);
  }
  // --weights (with --config) replaces the weight, bias, sink and table flags as well.
  a->weights_opt =
      sub->add_option(
             "--weights", a->weights,
             "A Hugging Face .safetensors checkpoint (a file, model.safetensors.index.json "
             "or their directory): --layer's projections, biases, sinks and position "
             "tables, by the model's tensor names (with --config)")
          ->needs(a->config.o_config);
  for (CLI::Option* o : std::vector<CLI::Option*>{a->wq_opt,
                                                  a->wk_opt,
                                                  a->wv_opt,
                                                  a->wo_opt,
                                                  a->bq_opt,
                                                  a->bk_opt,
                                                  a->bv_opt,
                                                  a->bo_opt,
                                                  a->sinks_opt,
                                                  a->table_opt,
                                                  a->table_offset_opt,
                                                  a->relemb.o_table,
                                                  a->relemb.o_k_r,
                                                  a->relemb.o_q_r,
                                                  a->relemb.o_rel,
                                                  a->relemb.o_ln_w,
                                                  a->relemb.o_ln_b,
                                                  a->relemb.o_eps,
                                                  a->rel_k_opt,
                                                  a->rel_v_opt,
                                                  a->u_opt,
                                                  a->v_opt,
                                                  a->wr_opt})
    if (o) a->weights_opt->excludes(o);

  sub->callback([a] {
    const bool grads = a->grads_opt->count() > 0;
    if (grads) {
      if (a->weights_opt->count())
        throw CliError(
            "--grads: not supported with --weights (a checkpoint layer's tensors have no flags "
            "to name their gradients after); give the layer's arrays with --wq, --wk, --wv, --wo "
            "and the table flags");
      if (a->prefill_opt->count())
        throw CliError(
            "--grads: not with --prefill: a decode loop has no backward pass here "
            "(run the one call, whose gradients are the layer's)");
      detail::check_grads_dir(a->grads);
    }
#if POSENC_CLI_HAVE_HF
    std::optional<posenc::hf::ModelConfig> model;
    const posenc::hf::LayerConfig* layer = nullptr;
    std::string from_config;  // "from layer 0 of c.json (llama)"
    if (a->config.given()) {
      model = read_model_config(a->config.path);
      layer = &config_layer(a->config, *model);
      from_config = "from " + layer_name(a->config, *model);
      if (a->weights_opt->count()) return detail::attend_checkpoint(*a, *model, a->config);
      using K = posenc::hf::EncoderKind;
      // The encoder of `attend --encoder` that runs the layer's (make() builds it from the layer).
      switch (layer->encoder) {
        case K::none:
          a->encoder = "none";
          break;
        case K::learned:  // added at the input: with --table, as layer 0 sees it
          a->encoder = a->table_opt->count() ? "learned" : "none";
          break;
        case K::rope:
        case K::mrope:  // 1D positions: every axis at the token's position
          a->encoder = "rope";
          break;
        default:
          a->encoder = std::string(posenc::name_of(layer->encoder));
          break;
      }
      a->heads = layer->heads;
      a->causal = layer->causal;
      if (layer->value_head_dim != layer->head_dim)
        throw CliError("--config: " + layer_name(a->config, *model) + " has value heads of " +
                       std::to_string(layer->value_head_dim) + " and query/key heads of " +
                       std::to_string(layer->head_dim) +
                       " (MLA), which posenc attend does not run");
      if (layer->sinks && !a->sinks_opt->count())
        throw CliError("--config: " + layer_name(a->config, *model) +
                       " has attention sinks: give --sinks s.npy ([H] = [" +
                       std::to_string(layer->heads) + "], the checkpoint's self_attn.sinks)");
      if (!layer->sinks && a->sinks_opt->count())
        throw CliError("--sinks: " + layer_name(a->config, *model) + " has no attention sinks");
      const auto needs = [&](CLI::Option* o, const std::string& value, const std::string& what) {
        if (!o->count())
          throw CliError("--config: " + layer_name(a->config, *model) + " uses encoder " +
                         a->encoder + ", which needs " + what + ": give " + o->get_name() + " " +
                         value + " (posenc attend reads no checkpoint)");
      };
      if (layer->encoder == K::t5)
        needs(a->table_opt,
              "t.npy ([num_buckets, H] = [" + std::to_string(layer->t5_num_buckets) + ", " +
                  std::to_string(layer->heads) + "])",
              "its relative_attention_bias");
      if (layer->encoder == K::bert_relative) {
        needs(a->relemb.o_table,
              "e.npy ([2L - 1, Dh] = [" +
                  std::to_string(layer->bert_max_positions > max_extent
                                     ? 2 * max_extent - 1
                                     : 2 * layer->bert_max_positions - 1) +
                  ", " + std::to_string(layer->head_dim) + "])",
              "its distance_embedding");
        a->relemb.bert_type = layer->bert_relative_type;
      }
      if (layer->encoder == K::deberta) {
        const posenc::Index b = layer->deberta.position_buckets;
        const posenc::Index span = b > 0 ? b : layer->deberta.max_relative_positions;
        if (!a->relemb.o_k_r->count() && !a->relemb.o_q_r->count() && !a->relemb.o_rel->count())
          throw CliError(
              "--config: " + layer_name(a->config, *model) +
              " uses encoder deberta, which needs its relative tables: give "
              "--rel-key-table kr.npy and --rel-query-table qr.npy ([2*span, H*Dh] = [" +
              std::to_string(2 * span) + ", " + std::to_string(layer->heads * layer->head_dim) +
              "]) or --rel-embeddings rel.npy ([2*span, D] = [" + std::to_string(2 * span) + ", " +
              std::to_string(model->hidden_size) + "]) (posenc attend reads no checkpoint)");
        a->relemb.position_buckets = layer->deberta.position_buckets;
        a->relemb.max_relative_positions = layer->deberta.max_relative_positions;
        a->relemb.terms = layer->deberta.terms;
      }
      if (layer->encoder == K::temperature) a->temperature = layer->temperature;
    } else {
      if (!a->encoder_opt->count())
        throw CliError("--encoder is required (or --config config.json)");
      if (!a->heads_opt->count()) throw CliError("--heads is required (or --config config.json)");
    }
#else
    if (a->weights_opt->count()) config_unavailable();
    if (a->config.given()) config_unavailable();
    if (!a->encoder_opt->count()) throw CliError("--encoder is required (or --config config.json)");
    if (!a->heads_opt->count()) throw CliError("--heads is required (or --config config.json)");
#endif
    for (const CLI::Option* o : {a->wq_opt, a->wk_opt, a->wv_opt, a->wo_opt})
      if (!o->count())
        throw CliError(o->get_name() +
                       " is required (or --weights model.safetensors with --config)");
    resolve_output(a->out);
    const std::string& e = a->encoder;
    if (a->prefill_opt->count() && !a->causal)
      throw CliError("--prefill " + std::to_string(a->prefill) +
                     " needs --causal: a decode loop appends each token after those it attends "
                     "to, which only a causal layer reproduces");
    const std::int64_t h = a->heads;
    bool kv_given = a->kv_heads_opt->count() > 0, dh_given = a->head_dim_opt->count() > 0;
    std::string h_flag = "--heads", kv_flag = "--kv-heads", dh_flag = "--head-dim";
#if POSENC_CLI_HAVE_HF
    if (layer) {
      kv_given = dh_given = true;
      a->kv_heads = layer->kv_heads;
      a->head_dim = layer->head_dim;
      h_flag = kv_flag = dh_flag = from_config.substr(5);
    }
#endif
    const std::int64_t hkv = kv_given ? a->kv_heads : h;
    if (h % hkv != 0)
      throw CliError("--kv-heads = " + std::to_string(hkv) + " does not divide --heads = " +
                     std::to_string(h) + " (each key/value head serves H / Hkv query heads)");

    // X's bytes: its shape gives N and D; its values are converted once the dtype is known, and
    // the bytes freed before the layer runs.
    posenc_npy::NpyArray xr = read_float_npy("--x", a->x, ArrayRules::sequence());
    if (xr.shape.size() != 2)
      throw CliError("--x: " + a->x + ": expected shape [N, D], got " + shape_str(xr.shape));
    const std::int64_t n = xr.shape[0], d = xr.shape[1];
    if (d <= 0)
      throw CliError("--x: " + a->x + ": expected D > 0, got shape " + shape_str(xr.shape));
    if (!dh_given && d % h != 0)
      throw CliError("--heads = " + std::to_string(h) +
                     " does not divide D = " + std::to_string(d) + " (from --x " + a->x +
                     "); give --head-dim for a head size other than D / H");
    const std::int64_t dh = dh_given ? a->head_dim : d / h;
    const std::int64_t qw = h * dh, kw = hkv * dh;  // each factor <= 2^24
    // Where each number of an expected shape came from.
#if POSENC_CLI_HAVE_HF
    if (layer && d != model->hidden_size)
      throw CliError("--x: " + a->x + ": expected shape [N, " + std::to_string(model->hidden_size) +
                     "] (D = hidden_size " + from_config + "), got " + shape_str(xr.shape));
#endif
    const std::string from_d = "D = " + std::to_string(d) + " from --x";
    const std::string from_h = "H = " + std::to_string(h) + " from " + h_flag;
    const std::string from_hkv = kv_given ? "Hkv = " + std::to_string(hkv) + " from " + kv_flag
                                          : "Hkv = H = " + std::to_string(h) + " (no --kv-heads)";
    const std::string from_dh = dh_given ? "Dh = " + std::to_string(dh) + " from " + dh_flag
                                         : "Dh = D / H = " + std::to_string(d) + " / " +
                                               std::to_string(h) + " = " + std::to_string(dh);
    const posenc::Positions pos =
        detail::positions_from(a->pos_opt, a->positions, a->offset, n, "--x " + a->x);
    if (a->prefill_opt->count() && a->prefill > n)
      throw CliError("--prefill: " + std::to_string(a->prefill) +
                     " is more than N = " + std::to_string(n) + " (from --x " + a->x + ")");
    std::vector<std::int64_t> segments;
    if (a->seg_opt->count()) {
      segments = load_int_vector("--segments", a->segments);
      if (static_cast<std::int64_t>(segments.size()) != n)
        throw CliError("--segments: " + a->segments + ": expected shape [" + std::to_string(n) +
                       "] (N from --x " + a->x + "), got [" + std::to_string(segments.size()) +
                       "]");
    }
    if (a->prefill_opt->count() && a->pos_opt->count())
      detail::check_decode_order(pos, segments, a->prefill, a->positions);
    const Dtype dtype = a->dtype_opt->count() ? a->dtype : dtype_of_descr(xr.dtype);
    posenc::RotaryOptions rope_opts;
#if POSENC_CLI_HAVE_HF
    if (layer && e == "rope") {
      rope_opts = layer->rotary;
    } else
#endif
        if (e == "rope") {
      detail::RopeFlags rope = a->rope;
      if (a->layout_opt->count())
        rope.layout = posenc::from_name<posenc::RotaryLayout>(a->layout, "--layout");
      rope_opts = rope.options(static_cast<posenc::Index>(dh));
    }
    if (e == "deberta") a->relemb.check_deberta();

    detail::with_dtype(dtype, [&](auto zero) {
      using T = decltype(zero);
      const posenc::Matrix<T> xt =
          std::move(array_values<T>("--x", a->x, xr, ArrayRules::sequence()).data);
      std::vector<char>().swap(xr.data);
      const auto weight = [&](const char* flag, const std::string& path,
                              std::vector<std::int64_t> shape, const std::string& why) {
        return std::move(load_array_as<T>(flag, path, shape, why).data);
      };
      const posenc::Matrix<T> wq = weight(
          "--wq", a->wq, {d, qw}, detail::shape_from("[D, H * Dh]", {from_d, from_h, from_dh}));
      const posenc::Matrix<T> wk = weight(
          "--wk", a->wk, {d, kw}, detail::shape_from("[D, Hkv * Dh]", {from_d, from_hkv, from_dh}));
      const posenc::Matrix<T> wv = weight(
          "--wv", a->wv, {d, kw}, detail::shape_from("[D, Hkv * Dh]", {from_d, from_hkv, from_dh}));
      const posenc::Matrix<T> wo = weight(
          "--wo", a->wo, {qw, d}, detail::shape_from("[H * Dh, D]", {from_h, from_dh, from_d}));

      posenc::AttentionOptions<T> opt;
      opt.heads = static_cast<posenc::Index>(h);
      opt.kv_heads = static_cast<posenc::Index>(hkv);
      opt.head_dim = static_cast<posenc::Index>(dh);
      opt.causal = a->causal;
      if (a->pos_opt->count())
        opt.positions = pos;
      else
        opt.offset = a->offset;
      if (a->window_opt->count()) opt.window = a->window;
      if (a->chunk_opt->count()) opt.chunk = a->chunk;
      opt.segments = std::move(segments);
      if (a->scale_opt->count())
        opt.scale = to_scalar<T>("--scale", a->scale);
      else if (e == "deberta")  // DeBERTa's own: 1 / sqrt(f Dh)
        opt.scale = static_cast<T>(a->relemb.scale(dh));
      if (a->softcap_opt->count()) opt.softcap = to_scalar<T>("--softcap", a->softcap);
#if POSENC_CLI_HAVE_HF
      if (layer) {
        opt.window = layer->window;
        opt.chunk = layer->chunk;
        opt.scale = to_scalar<T>("the scale " + from_config, layer->scale);
        if (layer->softcap)
          opt.softcap = to_scalar<T>("the softcap " + from_config, *layer->softcap);
      }
#endif
      const auto bias = [&](CLI::Option* o, const char* flag, const std::string& path,
                            std::int64_t size, const std::string& why) {
        return o->count() ? load_array_as<T>(flag, path, {size}, why).vector()
                          : posenc::Vector<T>();
      };
      opt.bq =
          bias(a->bq_opt, "--bq", a->bq, qw, detail::shape_from("[H * Dh]", {from_h, from_dh}));
      opt.bk =
          bias(a->bk_opt, "--bk", a->bk, kw, detail::shape_from("[Hkv * Dh]", {from_hkv, from_dh}));
      opt.bv =
          bias(a->bv_opt, "--bv", a->bv, kw, detail::shape_from("[Hkv * Dh]", {from_hkv, from_dh}));
      opt.bo = bias(a->bo_opt, "--bo", a->bo, d, detail::shape_from("[D]", {from_d}));
      if (a->sinks_opt->count()) {
        const posenc::Vector<T> s =
            bias(a->sinks_opt, "--sinks", a->sinks, h, detail::shape_from("[H]", {from_h}));
        opt.sinks.assign(s.data(), s.data() + s.size());
      }

      // The runtime choice of encoder: a std::variant, visited once (no virtual calls).
      const auto make = [&]() -> detail::AnyEncoder<T> {
        using posenc::Index;
        if (e == "none") return posenc::NoEncoding<T>{};
        if (e == "sinusoidal") {
          posenc::SinusoidalOptions o = a->sin;
          if (a->layout_opt->count())
            o.layout = posenc::from_name<posenc::SinusoidalLayout>(a->layout, "--layout");
          o.base = a->rope.base;
          o.scale = to_scalar<T>("--pe-scale", a->sin.scale);
          return posenc::SinusoidalEncoding<T>(static_cast<Index>(d), o);
        }
#if POSENC_CLI_HAVE_HF
        if (layer) {
          using K = posenc::hf::EncoderKind;
          if (layer->encoder == K::learned && e == "learned") {
            const std::int64_t rows = layer->learned_positions;
            const auto table = load_array_as<T>(
                "--table", a->table, {rows, d},
                detail::shape_from("[L, D]", {"L = " + std::to_string(rows) +
                                                  " (learned_positions " + from_config + ")",
                                              from_d}));
            return posenc::LearnedEncoding<T>(table.data, layer->learned_offset);
          }
          if (layer->encoder == K::alibi) return posenc::AlibiEncoding<T>(layer->alibi_slopes);
          if (layer->encoder == K::t5) {
            const auto table = load_array_as<T>(
                "--table", a->table, {layer->t5_num_buckets, h},
                "([num_buckets, H] with num_buckets = " + std::to_string(layer->t5_num_buckets) +
                    " and " + from_h + ")");
            posenc::T5Options o;
            o.max_distance = layer->t5_max_distance;
            o.bidirectional = layer->t5_bidirectional;
            return posenc::T5Encoding<T>(table.data, o);
          }
          if (layer->encoder == K::bert_relative)
            return a->relemb.bert<T>(dh, from_dh, pos,
                                     a->pos_opt->count() ? "--positions " + a->positions
                                                         : "offset " + std::to_string(a->offset) +
                                                               ", N from --x " + a->x,
                                     layer->bert_max_positions, from_config);
        }
#endif
        if (e == "learned") {
          const auto table = load_array_as<T>("--table", a->table, {-1, d},
                                              detail::shape_from("[L, D]", {from_d}));
          return posenc::LearnedEncoding<T>(table.data, static_cast<Index>(a->table_offset));
        }
        if (e == "rope") return posenc::RotaryEncoding<T>(static_cast<Index>(dh), rope_opts);
        if (e == "temperature") return posenc::AttentionTemperatureEncoding<T>(a->temperature);
        if (e == "alibi") return posenc::AlibiEncoding<T>(static_cast<Index>(h), a->max_bias);
        if (e == "t5") {
          const bool nb = a->nb_opt->count() > 0;
          const auto table =
              load_array_as<T>("--table", a->table, {nb ? a->num_buckets : -1, h},
                               "([num_buckets, H] with H = --heads" +
                                   std::string(nb ? " and num_buckets = --num-buckets)" : ")"));
          posenc::T5Options o;
          o.max_distance = static_cast<Index>(a->max_distance);
          o.bidirectional = !a->causal;
          return posenc::T5Encoding<T>(table.data, o);
        }
        if (e == "shaw") {
          const bool k_given = a->max_rel_opt->count() > 0;
          const std::string why =
              k_given ? detail::shape_from("[2K+1, Dh]", {"K = " + std::to_string(a->max_relative) +
                                                              " from --max-relative",
                                                          from_dh})
                      : detail::shape_from("[2K+1, Dh]", {from_dh});
          const auto rel_k = load_array_as<T>("--rel-k", a->rel_k,
                                              {k_given ? 2 * a->max_relative + 1 : -1, dh}, why);
          const auto rel_v = load_array_as<T>("--rel-v", a->rel_v, {rel_k.shape[0], dh}, why);
          if (rel_k.shape[0] % 2 == 0)
            throw CliError("--rel-k: " + a->rel_k +
                           ": expected an odd number of rows 2K+1, got shape " +
                           shape_str(rel_k.shape));
          return posenc::ShawEncoding<T>(rel_k.data, rel_v.data);
        }
        if (e == "xl") {
          const std::string why = detail::shape_from("[H, Dh]", {from_h, from_dh});
          const auto u = load_array_as<T>("--u", a->u, {h, dh}, why);
          const auto v = load_array_as<T>("--v", a->v, {h, dh}, why);
          const auto wr = load_array_as<T>(
              "--wr", a->wr, {d, qw}, detail::shape_from("[D, H * Dh]", {from_d, from_h, from_dh}));
          posenc::TransformerXLOptions o;
          o.clamp_len = a->clamp_len;
          o.base = a->rope.base;
          return posenc::TransformerXLEncoding<T>(u.data, v.data, wr.data, o);
        }
        if (e == "bert-relative")
          return a->relemb.bert<T>(
              dh, from_dh, pos,
              a->pos_opt->count() ? "--positions " + a->positions
                                  : "offset " + std::to_string(a->offset) + ", N from --x " + a->x);
        if (e == "deberta")
          return a->relemb.deberta<T>(h, d, dh, wq, opt.bq, wk, opt.bk, from_h, from_dh, from_d);
        throw CliError("--encoder: unknown encoder '" + e + "'");
      };
      // dL/dY, with --grads
      const std::string n_d = "N = " + std::to_string(n) + " from --x, " + from_d;
      const posenc::Matrix<T> gy =
          grads ? std::move(load_array_as<T>("--grad-y", a->grad_y, {n, d},
                                             "([N, D], the shape of Y, with " + n_d + ")",
                                             ArrayRules::sequence())
                                .data)
                : posenc::Matrix<T>();
      // With --grads: Y and every gradient, written as one set once all are computed.
      const auto attend_gradients = [&](const auto& enc) {
        using E = std::decay_t<decltype(enc)>;
        const bool rel_emb = e == "deberta" && a->relemb.o_rel->count() > 0;
        const bool rel_ln = rel_emb && a->relemb.o_ln_w->count() > 0;
        std::vector<detail::SetFile<T>> files;
        const auto add = [&](const std::string& name, std::vector<std::int64_t> shape) {
          const std::string path = name.empty() ? a->out : detail::grad_path(a->grads, name);
          files.push_back(
              {name, path, (name.empty() ? "-o " : "--grads ") + path, std::move(shape), {}});
        };
        add("", {n, d});
        add("x", {n, d});
        add("wq", {d, qw});
        add("wk", {d, kw});
        add("wv", {d, kw});
        add("wo", {qw, d});
        if (opt.bq.size()) add("bq", {qw});
        if (opt.bk.size()) add("bk", {kw});
        if (opt.bv.size()) add("bv", {kw});
        if (opt.bo.size()) add("bo", {d});
        if (!opt.sinks.empty()) add("sinks", {h});
        // DeBERTa's tables made of --rel-embeddings: the gradients of what was given (the
        // embeddings, their layer norm; the projections' share is in wq, wk, bq, bk).
        if (rel_emb) {
          add("rel-embeddings", {2 * a->relemb.span(), d});
          if (rel_ln) {
            add("rel-ln-weight", {d});
            add("rel-ln-bias", {d});
          }
        } else if constexpr (!std::is_same<posenc::gradients_t<E>, posenc::NoGradients>::value) {
          enc.zero_gradients().for_each([&](const auto& name, const posenc::Matrix<T>& m) {
            add(name, {static_cast<std::int64_t>(m.rows()), static_cast<std::int64_t>(m.cols())});
          });
        }
        const std::vector<std::pair<std::string, std::string>> inputs = {
            {"--x", a->x},
            {"--wq", a->wq},
            {"--wk", a->wk},
            {"--wv", a->wv},
            {"--wo", a->wo},
            {"--bq", a->bq},
            {"--bk", a->bk},
            {"--bv", a->bv},
            {"--bo", a->bo},
            {"--positions", a->positions},
            {"--segments", a->segments},
            {"--sinks", a->sinks},
            {"--table", a->table},
            {"--rel-k", a->rel_k},
            {"--rel-v", a->rel_v},
            {"--u", a->u},
            {"--v", a->v},
            {"--wr", a->wr},
            {"--short-factors", a->rope.short_factors},
            {"--long-factors", a->rope.long_factors},
            {"--freq-factors", a->rope.freq_factors},
            {"--distance-table", a->relemb.distance_table},
            {"--rel-key-table", a->relemb.k_r},
            {"--rel-query-table", a->relemb.q_r},
            {"--rel-embeddings", a->relemb.rel_embeddings},
            {"--rel-ln-weight", a->relemb.ln_weight},
            {"--rel-ln-bias", a->relemb.ln_bias},
            {"--grad-y", a->grad_y},
            {"--config", a->config.path}};
        detail::check_set(files, inputs);

        files[0].values = posenc::attention(xt, wq, wk, wv, wo, enc, opt);
        auto g = posenc::attention_backward(xt, wq, wk, wv, wo, enc, opt, gy);
        std::map<std::string, posenc::Matrix<T>> values;
        if constexpr (std::is_same<E, posenc::DebertaEncoding<T>>::value) {
          if (rel_emb) {
            const auto& r = a->relemb;
            const auto rel =
                load_array_as<T>("--rel-embeddings", r.rel_embeddings, {2 * r.span(), d}, "");
            posenc::Vector<T> lw, lb;
            if (rel_ln) {
              lw = load_array_as<T>("--rel-ln-weight", r.ln_weight, {d}, "").vector();
              lb = load_array_as<T>("--rel-ln-bias", r.ln_bias, {d}, "").vector();
            }
            auto eg = detail::deberta_embedding_backward<T>(rel.data, lw, lb, r.ln_eps, wq, wk, h,
                                                            g.encoder.k_r, g.encoder.q_r, g.dwq,
                                                            g.dwk, g.dbq, g.dbk);
            values["rel-embeddings"] = std::move(eg.rel);
            if (rel_ln) {
              values["rel-ln-weight"] = eg.ln_weight;
              values["rel-ln-bias"] = eg.ln_bias;
            }
          }
        }
        if (!rel_emb)
          g.encoder.for_each(
              [&](const auto& name, const posenc::Matrix<T>& m) { values[std::string(name)] = m; });
        values["x"] = std::move(g.dx);
        values["wq"] = std::move(g.dwq);
        values["wk"] = std::move(g.dwk);
        values["wv"] = std::move(g.dwv);
        values["wo"] = std::move(g.dwo);
        values["bq"] = g.dbq;
        values["bk"] = g.dbk;
        values["bv"] = g.dbv;
        values["bo"] = g.dbo;
        values["sinks"] = Eigen::Map<const posenc::Vector<T>>(
            g.dsinks.data(), static_cast<posenc::Index>(g.dsinks.size()));
        for (std::size_t i = 1; i < files.size(); ++i) {
          detail::SetFile<T>& f = files[i];
          std::int64_t count = 1;
          for (const std::int64_t s : f.shape)
            count *= s;
          auto it = values.find(f.name);
          if (it == values.end() || it->second.size() != count)
            throw CliError("internal: the gradient of " + f.name + " is missing or of size " +
                           std::to_string(it == values.end() ? -1 : it->second.size()) +
                           ", expected " + shape_str(f.shape));
          f.values = std::move(it->second);
        }
        for (const auto& f : files)
          detail::check_finite(f, dtype);
        detail::write_nested(files, 0, dtype);
      };
      std::visit(
          [&](const auto& enc) {
            if (grads) {
              attend_gradients(enc);
              return;
            }
            if (!a->prefill_opt->count()) {
              const posenc::Matrix<T> y = posenc::attention(xt, wq, wk, wv, wo, enc, opt);
              write_npy_matrix(a->out, y, {n, d}, dtype);
              return;
            }
            // The cache may drop the keys outside the window when every later token comes
            // after every earlier one.
            bool increasing = true;
            for (posenc::Index i = 1; i < pos.size() && increasing; ++i)
              increasing = pos[i] > pos[i - 1];
            const posenc::Matrix<T> y = detail::decode_loop(
                enc, xt, wq, wk, wv, wo, opt, static_cast<posenc::Index>(a->prefill),
                a->window_opt->count() > 0 && increasing);
            write_npy_matrix(a->out, y, {n, d}, dtype);
          },
          make());
    });
  });
}

// ------------------------------------------------------------------------------------------------
// posenc convert-layout --in w.npy ([rows, H*Dh] or [H*Dh]) --heads H --head-dim Dh
//                       [--rotary-dim R] [--rotary-dims leading|trailing]
//                       --from half|interleaved --to half|interleaved -o w2.npy
void add_convert_layout_command(CLI::App& app) {
  struct Args {
    std::string in, out;
    std::int64_t heads = 0, head_dim = 0, rotary_dim = 0;
    posenc::RotaryLayout from = posenc::RotaryLayout::interleaved, to = posenc::RotaryLayout::half;
    posenc::RotaryBlock block = posenc::RotaryBlock::leading;
    Dtype dtype = Dtype::f64;
    CLI::Option* dtype_opt = nullptr;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "convert-layout",
      "Permute the output columns of a query or key projection (or its bias) between the RoPE "
      "pair layouts, so that a checkpoint trained with one runs with the other");
  sub->add_option("--in", a->in, "Projection .npy [rows, H * Dh] (Wq, Wk) or bias [H * Dh]")
      ->required();
  sub->add_option("--heads", a->heads, "Heads H of the projection (H_kv for Wk)")
      ->required()
      ->check(extent());
  sub->add_option("--head-dim", a->head_dim, "Head size Dh")->required()->check(extent());
  sub->add_option("--rotary-dim", a->rotary_dim, "Rotary width R (default Dh)")->check(extent());
  add_enum_option(sub, "--rotary-dims", a->block, "Which R dims of each head rotate");
  add_enum_option(sub, "--from", a->from, "The layout the checkpoint was trained with")->required();
  add_enum_option(sub, "--to", a->to, "The layout to run it with")->required();
  a->dtype_opt = detail::add_dtype(sub, a->dtype, "the input's");
  detail::add_output(sub, a->out);
  sub->callback([a] {
    resolve_output(a->out);
    const Array w = load_array("--in", a->in);
    if (w.shape.size() != 1 && w.shape.size() != 2)
      throw CliError("--in: " + a->in + ": expected shape [rows, H * Dh] or [H * Dh], got " +
                     shape_str(w.shape));
    const std::int64_t width = w.shape.back(), rows = w.shape.size() == 2 ? w.shape[0] : 1;
    if (width != a->heads * a->head_dim)
      throw CliError("--in: " + a->in + ": shape " + shape_str(w.shape) + " has " +
                     std::to_string(width) + " columns, expected H * Dh = " +
                     std::to_string(a->heads) + " * " + std::to_string(a->head_dim) + " = " +
                     std::to_string(a->heads * a->head_dim) + " (--heads, --head-dim)");
    const std::int64_t r = a->rotary_dim == 0 ? a->head_dim : a->rotary_dim;
    if (r % 2 != 0 || r > a->head_dim)
      throw CliError("--rotary-dim: " + std::to_string(r) + " must be even and <= --head-dim " +
                     std::to_string(a->head_dim));
    const Dtype dtype =
        a->dtype_opt->count() ? a->dtype : posenc::from_name<Dtype>(w.dtype, "--in");
    detail::with_dtype(dtype, [&](auto zero) {
      using T = decltype(zero);
      const posenc::Matrix<T> m = w.template as<T>().template reshaped<Eigen::RowMajor>(
          static_cast<posenc::Index>(rows), static_cast<posenc::Index>(width));
      const posenc::Matrix<T> out = posenc::convert_rotary_layout<T>(
          m, static_cast<posenc::Index>(a->heads), static_cast<posenc::Index>(a->head_dim),
          static_cast<posenc::Index>(r), a->from, a->to, a->block);
      write_npy_matrix(a->out, out, w.shape, dtype);
    });
  });
}

}  // namespace posenc_cli
