// posenc: Hugging Face config.json front-end. Reads a model's config.json into one description
// per attention layer (encoder and its options, heads, head size, scale, window, chunk,
// soft-cap, sinks) and builds the layer's encoder. The mapping follows Hugging Face
// transformers' own code: modeling_rope_utils.py for the rotary frequencies, each model's
// configuration_*.py and modeling_*.py for the rest; the function or field each rule comes from
// is cited beside it. Needs nlohmann/json (target posenc::hf).
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "alibi.hpp"
#include "attention.hpp"
#include "bert_relative.hpp"
#include "deberta.hpp"
#include "encoder.hpp"
#include "learned.hpp"
#include "mrope.hpp"
#include "rope.hpp"
#include "t5.hpp"
#include "temperature.hpp"
#include "transformer_xl.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

namespace hf {

/// Hugging Face's layer_types entries.
enum class AttentionType { full, sliding, chunked };

/// The position encoder of a layer. `learned` layers take their positions from a table added to
/// the embeddings before the first layer (the layer's own attention then adds nothing);
/// `temperature` is Llama 4's query scaling on its layers without RoPE.
enum class EncoderKind {
  none,
  learned,
  rope,
  mrope,
  alibi,
  t5,
  bert_relative,
  deberta,
  transformer_xl,
  temperature
};

}  // namespace hf

template <>
struct enum_names<hf::AttentionType> {
  static constexpr std::array<std::pair<std::string_view, hf::AttentionType>, 3> table{
      {{"full_attention", hf::AttentionType::full},
       {"sliding_attention", hf::AttentionType::sliding},
       {"chunked_attention", hf::AttentionType::chunked}}};
};
template <>
struct enum_names<hf::EncoderKind> {
  static constexpr std::array<std::pair<std::string_view, hf::EncoderKind>, 10> table{
      {{"none", hf::EncoderKind::none},
       {"learned", hf::EncoderKind::learned},
       {"rope", hf::EncoderKind::rope},
       {"mrope", hf::EncoderKind::mrope},
       {"alibi", hf::EncoderKind::alibi},
       {"t5", hf::EncoderKind::t5},
       {"bert-relative", hf::EncoderKind::bert_relative},
       {"deberta", hf::EncoderKind::deberta},
       {"transformer-xl", hf::EncoderKind::transformer_xl},
       {"temperature", hf::EncoderKind::temperature}}};
};

namespace hf {

/// What posenc builds for one attention layer of a model.
struct LayerConfig {
  /// The layer's index in its stack (T5: the decoder's stack follows the encoder's).
  Index layer = 0;
  /// An encoder-decoder's decoder stack (T5).
  bool decoder_stack = false;
  AttentionType attention_type = AttentionType::full;
  EncoderKind encoder = EncoderKind::none;
  /// H, H_kv, Dh of queries and keys, Dh of values (differs only in DeepSeek's MLA).
  Index heads = 0, kv_heads = 0, head_dim = 0, value_head_dim = 0;
  /// Decoder self-attention (true) or encoder (false).
  bool causal = true;
  /// The softmax scale on q.k.
  double scale = 0.0;
  /// Sliding window W (p_i - p_j < W) and attention chunk C; 0: none.
  std::int64_t window = 0, chunk = 0;
  std::optional<double> softcap;
  /// Per-head attention sinks (gpt-oss): the checkpoint's self_attn.sinks.
  bool sinks = false;
  /// rope and mrope: the options, rotary_dim resolved (never 0).
  RotaryOptions rotary;
  /// mrope: Hugging Face's mrope_section.
  std::vector<Index> mrope_section;
  /// alibi: the H slopes as the model adds them to scaled scores.
  std::vector<double> alibi_slopes;
  /// t5: bucket parameters; only the layer that owns relative_attention_bias has t5_has_bias
  /// (T5's first layer: the others reuse its table).
  Index t5_num_buckets = 0, t5_max_distance = 0;
  bool t5_bidirectional = true, t5_has_bias = false;
  /// learned: the table's rows and the row of position 0 (OPT: 2).
  Index learned_positions = 0, learned_offset = 0;
  /// bert-relative: the terms and L (the table has 2L - 1 rows).
  BertRelativeType bert_relative_type = BertRelativeType::relative_key;
  Index bert_max_positions = 0;
  /// deberta: buckets, reach, terms (share_att_key only).
  DebertaOptions deberta;
  /// transformer-xl: clamp_len (Hugging Face's TransfoXL; u, v, W_R per layer with untie_r).
  TransformerXLOptions transformer_xl;
  bool xl_untie_r = true;
  /// temperature: Llama 4's attn_scale and floor_scale.
  AttentionTemperatureOptions temperature;
};

/// A model's config.json, as posenc reads it.
struct ModelConfig {
  std::string model_type;
  /// D, the width of the residual stream (the attention input).
  Index hidden_size = 0;
  /// max_position_embeddings (n_positions, max_seq_len), 0 when the config has none.
  std::int64_t max_positions = 0;
  /// layer_norm_eps (DeBERTa's layer norm of its relative embeddings; 1e-7 there by default).
  double layer_norm_eps = 1e-7;
  std::vector<LayerConfig> layers;

  const LayerConfig& layer(Index l) const {
    detail::require(l >= 0 && l < static_cast<Index>(layers.size()), "hf::ModelConfig: layer ", l,
                    " is outside 0 .. ", static_cast<Index>(layers.size()) - 1, " (", model_type,
                    " has ", layers.size(), " layers)");
    return layers[static_cast<std::size_t>(l)];
  }
};

namespace detail {

using json = nlohmann::json;
using posenc::detail::require;

/// The value of E named s, if any (from_name throws).
template <class E>
std::optional<E> find_name(std::string_view s) {
  for (const auto& entry : enum_names<E>::table)
    if (entry.first == s) return entry.second;
  return std::nullopt;
}

inline std::string dump(const json& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

/// Typed access to one JSON object, naming the field's path in every error.
class Fields {
 public:
  Fields(const json& object, std::string where) : j_(&object), where_(std::move(where)) {
    require(j_->is_object(), where_, ": expected a JSON object, got ", dump(*j_));
  }
  const std::string& where() const { return where_; }
  std::string path(const std::string& key) const { return where_ + "." + key; }
  bool has(const std::string& key) const {
    const auto it = j_->find(key);
    return it != j_->end() && !it->is_null();
  }
  const json& raw(const std::string& key) const { return j_->at(key); }
  const json& object() const { return *j_; }

  std::optional<double> number(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    const json& v = raw(key);
    require(v.is_number(), path(key), " = ", dump(v), ": expected a number");
    const double d = v.get<double>();
    require(std::isfinite(d), path(key), " = ", dump(v), ": expected a finite number");
    return d;
  }
  std::optional<std::int64_t> integer(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    const json& v = raw(key);
    if (v.is_number_integer()) return v.get<std::int64_t>();
    // Some configs write integers as 4096.0.
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15)
        return static_cast<std::int64_t>(d);
    }
    posenc::detail::fail(path(key), " = ", dump(v), ": expected an integer");
  }
  std::optional<bool> boolean(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    const json& v = raw(key);
    require(v.is_boolean(), path(key), " = ", dump(v), ": expected true or false");
    return v.get<bool>();
  }
  std::optional<std::string> string(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    const json& v = raw(key);
    require(v.is_string(), path(key), " = ", dump(v), ": expected a string");
    return v.get<std::string>();
  }
  std::optional<std::vector<double>> numbers(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    const json& v = raw(key);
    require(v.is_array(), path(key), " = ", dump(v), ": expected an array of numbers");
    std::vector<double> out;
    for (std::size_t i = 0; i < v.size(); ++i) {
      require(v[i].is_number() && std::isfinite(v[i].get<double>()), path(key), "[", i,
              "] = ", dump(v[i]), ": expected a finite number");
      out.push_back(v[i].get<double>());
    }
    return out;
  }
  std::optional<std::vector<std::int64_t>> integers(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    const json& v = raw(key);
    require(v.is_array(), path(key), " = ", dump(v), ": expected an array of integers");
    std::vector<std::int64_t> out;
    for (std::size_t i = 0; i < v.size(); ++i) {
      require(v[i].is_number_integer(), path(key), "[", i, "] = ", dump(v[i]),
              ": expected an integer");
      out.push_back(v[i].get<std::int64_t>());
    }
    return out;
  }
  /// The first of `keys` present (aliases such as n_head / num_attention_heads); they must
  /// agree when several are.
  std::optional<std::int64_t> integer_of(std::initializer_list<const char*> keys) const {
    std::optional<std::int64_t> out;
    std::string first;
    for (const char* k : keys) {
      const auto v = integer(k);
      if (!v) continue;
      require(!out || *out == *v, path(first), " = ", out.value_or(0), " and ", path(k), " = ", *v,
              " contradict each other");
      if (!out) first = k;
      out = v;
    }
    return out;
  }

 private:
  const json* j_;
  std::string where_;
};

/// Reads `key` as a positive extent, naming it.
inline Index positive(const Fields& f, std::initializer_list<const char*> keys, const char* what) {
  const auto v = f.integer_of(keys);
  require(v.has_value(), f.where(), ": ", what, " missing (", *keys.begin(), ")");
  require(*v > 0 && *v <= posenc::max_extent, f.where(), ": ", what, " = ", *v,
          " must be in [1, 2^24]");
  return static_cast<Index>(*v);
}

/// The rope parameters of one layer type, before they meet a head size.
struct RopeParameters {
  std::string where;  // e.g. "config.json: rope_scaling"
  std::string type = "default";
  double theta = 10000.0;
  const json* scaling = nullptr;  // the rope_scaling / rope_parameters object, if any
  bool per_layer_type = false;    // from a rope_parameters object per layer type
};

/// Keys each Hugging Face rope_type reads (modeling_rope_utils.py, _validate_*_rope_parameters:
/// required and optional keys). Any other key is an error: a silent default would compute other
/// frequencies than the model was trained with.
inline void check_rope_keys(const Fields& s, const std::string& type) {
  std::set<std::string> allowed{"rope_type",     "type",
                                "rope_theta",    "partial_rotary_factor",
                                "mrope_section", "mrope_interleaved"};
  std::vector<std::string> required;
  if (type == "linear") required = {"factor"};
  if (type == "dynamic") {
    required = {"factor"};
    allowed.insert("original_max_position_embeddings");
  }
  if (type == "yarn") {
    for (const char* k : {"factor", "attention_factor", "beta_fast", "beta_slow", "mscale",
                          "mscale_all_dim", "original_max_position_embeddings", "truncate"})
      allowed.insert(k);
  }
  if (type == "longrope") {
    required = {"short_factor", "long_factor"};
    for (const char* k : {"attention_factor", "factor", "original_max_position_embeddings",
                          "short_mscale", "long_mscale"})
      allowed.insert(k);
  }
  if (type == "llama3")
    required = {"factor", "original_max_position_embeddings", "low_freq_factor",
                "high_freq_factor"};
  if (type == "proportional") allowed.insert("factor");
  for (const auto& k : required) {
    require(s.has(k), s.where(), ": rope_type ", type, " needs ", k);
    allowed.insert(k);
  }
  if (type == "default" || type == "mrope") allowed.insert("factor");  // checked below
  for (auto it = s.object().begin(); it != s.object().end(); ++it)
    require(allowed.count(it.key()) != 0, s.path(it.key()), " = ", dump(it.value()),
            ": not a field of rope_type ", type, " (it would change the frequencies)");
}

/// rope_type of a rope_scaling / rope_parameters object: the key rope_type, or the legacy type
/// (modeling_rope_utils.py rope_config_validation: "type" is read when rope_type is absent);
/// "mrope" (Qwen2-VL's legacy type) is the default frequencies with mrope_section.
inline std::string rope_type_of(const Fields& s) {
  const auto a = s.string("rope_type"), b = s.string("type");
  require(!a || !b || *a == *b, s.path("rope_type"), " = ", a.value_or(""), " and ", s.path("type"),
          " = ", b.value_or(""), " contradict each other");
  std::string t = a ? *a : b ? *b : "default";
  if (t == "mrope") t = "default";
  static const std::set<std::string> known{"default",  "linear", "dynamic",     "yarn",
                                           "longrope", "llama3", "proportional"};
  require(known.count(t) != 0, s.path(a ? "rope_type" : "type"), " = ", t,
          ": not a rope_type posenc knows (default, linear, dynamic, yarn, longrope, llama3, "
          "proportional)");
  return t;
}

/// Fills options from a Hugging Face rope_type with its parameters. R is the rotated width,
/// max_positions the config's max_position_embeddings, top the config object (for Phi-3's
/// top-level original_max_position_embeddings).
inline void apply_rope_type(RotaryOptions& o, const RopeParameters& rp, Index rotary_dim,
                            std::int64_t max_positions, const Fields& top) {
  o.base = rp.theta;
  o.scaling = RopeScaling::none;
  if (!rp.scaling) return;
  const Fields s(*rp.scaling, rp.where);
  const std::string& t = rp.type;
  check_rope_keys(s, t);
  const auto need_max = [&](const char* who) {
    require(max_positions > 0, top.where(), ": rope_type ", who, " needs max_position_embeddings");
  };
  const auto factor = s.number("factor");
  if (t == "default") {
    // The default frequencies ignore factor (Hugging Face reads it only for the scalings).
    return;
  }
  if (t == "linear") {
    // _compute_linear_scaling_rope_parameters: inv_freq /= factor.
    o.scaling = RopeScaling::linear;
    o.factor = *factor;
    return;
  }
  if (t == "dynamic") {
    // _compute_dynamic_ntk_parameters: M = config.max_position_embeddings (not
    // original_max_position_embeddings), base' = base ((factor L / M) - (factor - 1))^(R/(R-2)).
    need_max("dynamic");
    o.scaling = RopeScaling::dynamic;
    o.factor = *factor;
    o.original_max_positions = max_positions;
    return;
  }
  // M and the factor of yarn and longrope (modeling_rope_utils.py standardize_rope_params and
  // _compute_yarn_parameters / _compute_longrope_parameters): M is the config's top-level
  // original_max_position_embeddings (Phi-3) for a single parameter set, else the set's own,
  // else max_position_embeddings; the factor as written, or max_position_embeddings / M when
  // the set has none.
  const auto original_and_factor = [&](const char* who) {
    need_max(who);
    const bool has_top = !rp.per_layer_type && top.has("original_max_position_embeddings");
    const bool has_own = s.has("original_max_position_embeddings");
    const std::int64_t top_m = has_top ? *top.integer("original_max_position_embeddings") : 0;
    const std::int64_t own_m = has_own ? *s.integer("original_max_position_embeddings") : 0;
    require(!has_top || !has_own || top_m == own_m, top.path("original_max_position_embeddings"),
            " = ", top_m, " and ", s.path("original_max_position_embeddings"), " = ", own_m,
            " contradict each other");
    const std::int64_t m = has_top ? top_m : has_own ? own_m : max_positions;
    require(m > 0, s.where(), ": original_max_position_embeddings = ", m, " must be > 0");
    o.original_max_positions = m;
    o.factor = factor ? *factor : static_cast<double>(max_positions) / static_cast<double>(m);
  };
  if (t == "yarn") {
    // _compute_yarn_parameters: beta_fast / beta_slow default 32 / 1 (`or`: 0 counts as
    // absent); truncate (default true) is read from the config's top-level parameter set, so a
    // per-layer-type set's own truncate is not seen.
    o.scaling = RopeScaling::yarn;
    original_and_factor("yarn");
    const auto bf = s.number("beta_fast"), bs = s.number("beta_slow");
    o.beta_fast = bf && *bf != 0.0 ? *bf : 32.0;
    o.beta_slow = bs && *bs != 0.0 ? *bs : 1.0;
    o.truncate = rp.per_layer_type ? true : s.boolean("truncate").value_or(true);
    o.attention_factor = s.number("attention_factor");
    o.mscale = s.number("mscale");
    o.mscale_all_dim = s.number("mscale_all_dim");
    return;
  }
  if (t == "longrope") {
    // _compute_longrope_parameters: the short set up to M, the long one past it; the attention
    // factor sqrt(1 + ln(factor) / ln(M)) unless given.
    o.scaling = RopeScaling::longrope;
    original_and_factor("longrope");
    o.short_factors = *s.numbers("short_factor");
    o.long_factors = *s.numbers("long_factor");
    const std::size_t half = static_cast<std::size_t>(rotary_dim / 2);
    require(o.short_factors.size() == half, s.path("short_factor"), " has ", o.short_factors.size(),
            " entries, the rotary width R = ", rotary_dim, " needs R/2 = ", half);
    require(o.long_factors.size() == half, s.path("long_factor"), " has ", o.long_factors.size(),
            " entries, the rotary width R = ", rotary_dim, " needs R/2 = ", half);
    o.attention_factor = s.number("attention_factor");
    o.short_mscale = s.number("short_mscale");
    o.long_mscale = s.number("long_mscale");
    require(o.short_mscale.has_value() == o.long_mscale.has_value(), s.where(),
            ": short_mscale and long_mscale come together");
    return;
  }
  if (t == "llama3") {
    // _compute_llama3_parameters: every parameter required.
    o.scaling = RopeScaling::llama3;
    o.factor = *factor;
    o.low_freq_factor = *s.number("low_freq_factor");
    o.high_freq_factor = *s.number("high_freq_factor");
    o.original_max_positions = *s.integer("original_max_position_embeddings");
    return;
  }
  if (t == "proportional") {
    // _compute_proportional_rope_parameters (Gemma 4's full-attention layers).
    o.scaling = RopeScaling::proportional;
    o.partial_rotary_factor = s.number("partial_rotary_factor").value_or(1.0);
    if (factor) o.factor = *factor;
    return;
  }
}

/// How a model family lays out its attention (from its modeling_*.py).
struct Family {
  const char* model_type;
  EncoderKind encoder;
  RotaryLayout layout;
  bool causal;
};

// Model types and their position encoders. rope layouts: rotate_half (half) unless the model
// pairs dimensions (2i, 2i+1): GPT-J's rotate_every_two, Llama 4's complex product
// (view_as_complex), DeepSeek-V3 with rope_interleave.
inline constexpr Family families[] = {
    {"llama", EncoderKind::rope, RotaryLayout::half, true},
    {"mistral", EncoderKind::rope, RotaryLayout::half, true},
    {"mixtral", EncoderKind::rope, RotaryLayout::half, true},
    {"qwen2", EncoderKind::rope, RotaryLayout::half, true},
    {"qwen2_moe", EncoderKind::rope, RotaryLayout::half, true},
    {"qwen3", EncoderKind::rope, RotaryLayout::half, true},
    {"qwen3_moe", EncoderKind::rope, RotaryLayout::half, true},
    {"qwen2_vl", EncoderKind::mrope, RotaryLayout::half, true},
    {"qwen2_5_vl", EncoderKind::mrope, RotaryLayout::half, true},
    {"phi3", EncoderKind::rope, RotaryLayout::half, true},
    {"phi", EncoderKind::rope, RotaryLayout::half, true},
    {"gemma", EncoderKind::rope, RotaryLayout::half, true},
    {"gemma2", EncoderKind::rope, RotaryLayout::half, true},
    {"gemma3_text", EncoderKind::rope, RotaryLayout::half, true},
    {"gptj", EncoderKind::rope, RotaryLayout::interleaved, true},
    {"gpt_neox", EncoderKind::rope, RotaryLayout::half, true},
    {"falcon", EncoderKind::rope, RotaryLayout::half, true},
    {"deepseek_v3", EncoderKind::rope, RotaryLayout::interleaved, true},
    {"gpt_oss", EncoderKind::rope, RotaryLayout::half, true},
    {"llama4_text", EncoderKind::rope, RotaryLayout::interleaved, true},
    {"bloom", EncoderKind::alibi, RotaryLayout::half, true},
    {"mpt", EncoderKind::alibi, RotaryLayout::half, true},
    {"t5", EncoderKind::t5, RotaryLayout::half, false},
    {"gpt2", EncoderKind::learned, RotaryLayout::half, true},
    {"opt", EncoderKind::learned, RotaryLayout::half, true},
    {"bert", EncoderKind::learned, RotaryLayout::half, false},
    {"deberta-v2", EncoderKind::deberta, RotaryLayout::half, false},
    {"transfo-xl", EncoderKind::transformer_xl, RotaryLayout::half, true},
};

inline std::string family_names() {
  std::string s;
  for (const Family& f : families) {
    if (!s.empty()) s += ", ";
    s += f.model_type;
  }
  return s;
}

/// MPT's gen_slopes (modeling_mpt.py build_mpt_alibi_tensor): with n = 2^ceil(log2 H),
/// m_k = 2^(-k b / n), k = 1 .. n; for n != H the odd-indexed slopes then the even ones, first H.
inline std::vector<double> mpt_alibi_slopes(Index heads, double max_bias) {
  Index n = 1;
  while (n < heads)
    n *= 2;
  std::vector<double> m(static_cast<std::size_t>(n));
  for (Index k = 1; k <= n; ++k)
    m[static_cast<std::size_t>(k - 1)] =
        std::exp2(-static_cast<double>(k) * max_bias / static_cast<double>(n));
  if (n == heads) return m;
  std::vector<double> out;
  for (std::size_t i = 1; i < m.size(); i += 2)
    out.push_back(m[i]);
  for (std::size_t i = 0; i < m.size(); i += 2)
    out.push_back(m[i]);
  out.resize(static_cast<std::size_t>(heads));
  return out;
}

/// The defaults of each configuration class (configuration_*.py) for the fields posenc reads:
/// a published config.json leaves out what equals its class's default (Gemma 3's text_config
/// has no num_attention_heads), and Hugging Face fills it in from the class.
inline json class_defaults(const std::string& model_type) {
  if (model_type == "gemma3_text")  // Gemma3TextConfig
    return {{"num_attention_heads", 8},
            {"num_key_value_heads", 4},
            {"head_dim", 256},
            {"hidden_size", 2304},
            {"num_hidden_layers", 26},
            {"max_position_embeddings", 131072},
            {"rope_theta", 1000000.0},
            {"rope_local_base_freq", 10000.0},
            {"query_pre_attn_scalar", 256},
            {"sliding_window", 4096},
            {"sliding_window_pattern", 6}};
  if (model_type == "gemma2")  // Gemma2Config
    return {{"head_dim", 256},
            {"query_pre_attn_scalar", 256},
            {"attn_logit_softcapping", 50.0},
            {"sliding_window", 4096},
            {"rope_theta", 10000.0}};
  if (model_type == "llama4_text")  // Llama4TextConfig
    return {{"head_dim", 128},
            {"rope_theta", 500000.0},
            {"attention_chunk_size", 8192},
            {"attn_temperature_tuning", true},
            {"floor_scale", 8192},
            {"attn_scale", 0.1},
            {"no_rope_layer_interval", 4}};
  if (model_type == "gpt_oss")  // GptOssConfig
    return {{"head_dim", 64}, {"sliding_window", 128}, {"rope_theta", 150000.0}};
  if (model_type == "t5")  // T5Config
    return {{"d_kv", 64},
            {"relative_attention_num_buckets", 32},
            {"relative_attention_max_distance", 128}};
  return json::object();
}

/// The config object describing the layers: text_config for the multimodal wrappers (Gemma 3,
/// Llama 4, Qwen2-VL in newer releases) whose top level has no attention fields.
inline const json& text_part(const json& root) {
  const auto it = root.find("text_config");
  if (it == root.end() || !it->is_object()) return root;
  for (const char* k : {"num_attention_heads", "n_head", "num_heads", "n_heads"})
    if (root.contains(k) && !root[k].is_null()) return root;
  return *it;
}

}  // namespace detail

/// Parses a config.json object. `source` names it in errors (e.g. its path).
inline ModelConfig parse_config(const nlohmann::json& root, const std::string& source = "config") {
  using namespace detail;
  using posenc::detail::require;
  require(root.is_object(), source, ": expected a JSON object, got ", dump(root));
  const json& tj = text_part(root);
  const std::string where = &tj == &root ? source : source + ": text_config";
  require(tj.is_object(), where, ": expected a JSON object, got ", dump(tj));

  ModelConfig m;
  {
    const Fields t(tj, where);
    const auto mt =
        t.string("model_type") ? t.string("model_type") : Fields(root, source).string("model_type");
    require(mt.has_value(), where, ": model_type missing");
    m.model_type = *mt;
  }
  // The multimodal wrappers' text models; model_type stays the file's own (gemma3, llama4).
  std::string family_type = m.model_type;
  if (const auto rt = Fields(root, source).string("model_type")) m.model_type = *rt;
  if (family_type == "gemma3") family_type = "gemma3_text";
  if (family_type == "llama4") family_type = "llama4_text";
  if (family_type == "qwen2_vl_text") family_type = "qwen2_vl";
  if (family_type == "qwen2_5_vl_text") family_type = "qwen2_5_vl";
  const Family* fam = nullptr;
  for (const Family& f : families)
    if (family_type == f.model_type) fam = &f;
  require(fam != nullptr, where, ".model_type = ", m.model_type,
          ": not a model type posenc knows (", family_names(), ")");
  const std::string& mt = family_type;
  // The config over its class's defaults (an explicit null stays null, as None in Python).
  json merged = class_defaults(mt);
  for (auto it = tj.begin(); it != tj.end(); ++it)
    merged[it.key()] = it.value();
  const Fields c(merged, where);

  // Shapes (each configuration_*.py's attribute_map: n_embd, n_head, n_layer for GPT-2 and
  // GPT-J, d_model / num_heads / num_layers for T5, d_model / n_heads / n_layers for MPT).
  m.hidden_size = positive(c, {"hidden_size", "n_embd", "d_model"}, "hidden size");
  const Index heads =
      positive(c, {"num_attention_heads", "n_head", "num_heads", "n_heads"}, "attention heads");
  const Index layers =
      positive(c, {"num_hidden_layers", "n_layer", "num_layers", "n_layers"}, "number of layers");
  if (const auto mp = c.integer_of({"max_position_embeddings", "n_positions", "max_seq_len"})) {
    require(*mp > 0, where, ": max_position_embeddings = ", *mp, " must be > 0");
    m.max_positions = *mp;
  }
  if (const auto eps = c.number("layer_norm_eps")) {
    require(*eps > 0.0, c.path("layer_norm_eps"), " = ", *eps, " must be > 0");
    m.layer_norm_eps = *eps;
  }
  Index kv_heads = heads;
  if (const auto kv = c.integer("num_key_value_heads")) kv_heads = static_cast<Index>(*kv);
  if (mt == "falcon") {
    // configuration_falcon.py / modeling_falcon.py: new_decoder_architecture uses num_kv_heads,
    // else multi_query means one key/value head.
    const bool nda = c.boolean("new_decoder_architecture").value_or(false);
    const bool mq = c.boolean("multi_query").value_or(true);
    if (nda)
      kv_heads = static_cast<Index>(c.integer("num_kv_heads").value_or(heads));
    else if (mq)
      kv_heads = 1;
  }
  require(kv_heads > 0 && heads % kv_heads == 0, where, ": num_key_value_heads = ", kv_heads,
          " must be > 0 and divide num_attention_heads = ", heads);
  Index head_dim = 0;
  if (mt == "t5") {
    head_dim = positive(c, {"d_kv"}, "head size");
  } else if (mt == "transfo-xl") {
    head_dim = positive(c, {"d_head"}, "head size");
  } else if (mt == "deepseek_v3") {
    // modeling_deepseek_v3.py: qk_head_dim = qk_nope_head_dim + qk_rope_head_dim.
    head_dim = positive(c, {"qk_nope_head_dim"}, "nope head size") +
               positive(c, {"qk_rope_head_dim"}, "rope head size");
  } else if (const auto hd = c.integer("head_dim")) {
    require(*hd > 0 && *hd <= posenc::max_extent, c.path("head_dim"), " = ", *hd,
            " must be in [1, 2^24]");
    head_dim = static_cast<Index>(*hd);
  } else {
    require(m.hidden_size % heads == 0, where, ": hidden size ", m.hidden_size,
            " is not a multiple of the ", heads, " heads, and there is no head_dim");
    head_dim = m.hidden_size / heads;
  }
  const Index value_head_dim =
      mt == "deepseek_v3" ? positive(c, {"v_head_dim"}, "value head size") : head_dim;

  // --- Which encoder -----------------------------------------------------------------------
  EncoderKind encoder = fam->encoder;
  if (mt == "falcon" && c.boolean("alibi").value_or(false)) encoder = EncoderKind::alibi;
  const json* attn_config = nullptr;
  if (mt == "mpt") {
    // MPT's attn_config: alibi (default false in MptAttentionConfig) and alibi_bias_max (8).
    require(c.has("attn_config"), where, ": attn_config missing (MPT)");
    attn_config = &c.raw("attn_config");
    const Fields ac(*attn_config, c.path("attn_config"));
    // Without alibi Hugging Face's MptModel has no position encoding (it ignores
    // learned_pos_emb).
    if (!ac.boolean("alibi").value_or(false)) encoder = EncoderKind::none;
  }
  if (mt == "bert") {
    // BertSelfAttention: position_embedding_type absolute (default), relative_key,
    // relative_key_query.
    const std::string t = c.string("position_embedding_type").value_or("absolute");
    if (t == "relative_key" || t == "relative_key_query")
      encoder = EncoderKind::bert_relative;
    else
      require(t == "absolute", c.path("position_embedding_type"), " = ", t,
              ": expected absolute, relative_key or relative_key_query");
  }
  if (mt == "deberta-v2") {
    // DebertaV2Config: relative_attention (false by default: then only the absolute table).
    if (!c.boolean("relative_attention").value_or(false)) encoder = EncoderKind::learned;
  }

  // --- Rotary parameters -------------------------------------------------------------------
  // The rotated width R of modeling_rope_utils.py: int(head_dim * partial_rotary_factor), where
  // head_dim is config.head_dim or hidden_size / heads (DeepSeek-V3: qk_rope_head_dim).
  Index rope_head = head_dim;
  if (mt == "deepseek_v3") rope_head = positive(c, {"qk_rope_head_dim"}, "rope head size");
  Index rotary_dim = rope_head;
  RotaryBlock block = mt == "deepseek_v3" ? RotaryBlock::trailing : RotaryBlock::leading;
  RotaryLayout layout = fam->layout;
  if (mt == "deepseek_v3" && !c.boolean("rope_interleave").value_or(true))
    layout = RotaryLayout::half;
  {
    const auto prf = c.number("partial_rotary_factor");
    const auto pct = c.number("rotary_pct");
    require(!prf || !pct || *prf == *pct, c.path("partial_rotary_factor"), " = ", prf.value_or(0),
            " and ", c.path("rotary_pct"), " = ", pct.value_or(0), " contradict each other");
    std::optional<double> p = prf ? prf : pct;
    // PhiConfig's default partial_rotary_factor is 0.5, GPTNeoXConfig's rotary_pct 0.25.
    if (!p && mt == "phi") p = 0.5;
    if (!p && mt == "gpt_neox") p = 0.25;
    if (p) {
      require(*p > 0.0 && *p <= 1.0, where, ": partial rotary factor ", *p, " must be in (0, 1]");
      rotary_dim = static_cast<Index>(static_cast<double>(rope_head) * *p);
    }
    if (mt == "gptj") {
      // GPTJConfig.rotary_dim (default 64); null: the whole head (modeling_gptj.py).
      const auto rd = c.has("rotary_dim")
                          ? c.integer("rotary_dim")
                          : (c.object().contains("rotary_dim") ? std::optional<std::int64_t>{}
                                                               : std::optional<std::int64_t>{64});
      if (rd) rotary_dim = static_cast<Index>(*rd);
    } else if (c.has("rotary_dim")) {
      posenc::detail::fail(c.path("rotary_dim"), " = ", *c.integer("rotary_dim"), ": ",
                           m.model_type, " does not read rotary_dim");
    }
    // Modeling code rounds R down to even through arange(0, dim, 2).
    require(rotary_dim >= 2 && rotary_dim <= rope_head, where,
            ": the rotary width R = ", rotary_dim, " must be in [2, ", rope_head, "]");
    rotary_dim -= rotary_dim % 2;
  }

  // rope_theta: rope_parameters / rope_theta / GPT-NeoX's rotary_emb_base, else 10000.
  std::optional<double> theta = c.number("rope_theta");
  if (const auto reb = c.number("rotary_emb_base")) {
    require(!theta || *theta == *reb, c.path("rope_theta"), " = ", theta.value_or(0), " and ",
            c.path("rotary_emb_base"), " = ", *reb, " contradict each other");
    theta = reb;
  }
  // The rope parameters of each layer type. rope_parameters (transformers v5) is one object
  // or one per layer type; rope_scaling (v4) one object for all.
  const bool has_params = c.has("rope_parameters");
  require(!(has_params && c.has("rope_scaling")), where,
          ": rope_parameters and rope_scaling are both given");
  const auto rope_for = [&](AttentionType at) {
    RopeParameters rp;
    rp.theta = theta.value_or(10000.0);
    const json* obj = nullptr;
    if (has_params) {
      const json& rpj = c.raw("rope_parameters");
      require(rpj.is_object(), c.path("rope_parameters"), " = ", dump(rpj), ": expected an object");
      const std::string key(name_of(at));
      if (rpj.contains(key) && rpj[key].is_object()) {
        obj = &rpj[key];
        rp.where = c.path("rope_parameters") + "." + key;
        rp.per_layer_type = true;
      } else {
        bool nested = false;
        for (auto it = rpj.begin(); it != rpj.end(); ++it)
          nested =
              nested || (it.value().is_object() && find_name<AttentionType>(it.key()).has_value());
        require(!nested, c.path("rope_parameters"), ": no parameters for layer type ", key);
        obj = &rpj;
        rp.where = c.path("rope_parameters");
      }
      const Fields pf(*obj, rp.where);
      if (const auto th = pf.number("rope_theta")) rp.theta = *th;
    } else if (c.has("rope_scaling")) {
      obj = &c.raw("rope_scaling");
      rp.where = c.path("rope_scaling");
      require(obj->is_object(), rp.where, " = ", dump(*obj), ": expected an object");
    }
    // Gemma 3's local layers: rope_local_base_freq, default frequencies
    // (modeling_gemma3.py rotary_emb_local); rope_scaling applies to its global layers only.
    if (mt == "gemma3_text" && at == AttentionType::sliding && !has_params) {
      rp.theta = c.number("rope_local_base_freq").value_or(10000.0);
      obj = nullptr;
    }
    if (obj) {
      rp.scaling = obj;
      rp.type = rope_type_of(Fields(*obj, rp.where));
    }
    require(rp.theta > 0.0 && std::isfinite(rp.theta), where, ": rope_theta = ", rp.theta,
            " must be finite and > 0");
    return rp;
  };
  std::vector<Index> mrope_section;
  if (encoder == EncoderKind::mrope) {
    // Qwen2-VL: rope_scaling.mrope_section (rope_parameters in v5).
    const json* obj = has_params              ? &c.raw("rope_parameters")
                      : c.has("rope_scaling") ? &c.raw("rope_scaling")
                                              : nullptr;
    require(obj != nullptr, where, ": ", m.model_type, " needs rope_scaling.mrope_section");
    const Fields s(*obj, has_params ? c.path("rope_parameters") : c.path("rope_scaling"));
    const auto sec = s.integers("mrope_section");
    require(sec.has_value(), s.where(), ": mrope_section missing");
    for (auto v : *sec)
      mrope_section.push_back(static_cast<Index>(v));
  }

  // --- Per-layer pattern -------------------------------------------------------------------
  std::vector<AttentionType> types(static_cast<std::size_t>(layers), AttentionType::full);
  std::int64_t window = 0;
  if (const auto sw = c.integer("sliding_window")) {
    require(*sw > 0, c.path("sliding_window"), " = ", *sw, " must be > 0");
    window = *sw;
  }
  bool explicit_types = false;
  if (c.has("layer_types")) {
    const json& lt = c.raw("layer_types");
    require(lt.is_array() && static_cast<Index>(lt.size()) == layers, c.path("layer_types"),
            " must be an array of num_hidden_layers = ", layers, " entries, got ", dump(lt));
    for (std::size_t i = 0; i < lt.size(); ++i) {
      const auto t = lt[i].is_string() ? find_name<AttentionType>(lt[i].get<std::string>())
                                       : std::optional<AttentionType>{};
      require(t.has_value(), c.path("layer_types"), "[", i, "] = ", dump(lt[i]),
              ": expected one of ", names_list<AttentionType>());
      types[i] = *t;
    }
    explicit_types = true;
  } else if (mt == "gemma2") {
    // Gemma2Config: layer_types = sliding if (i + 1) % 2 else full (layer 0 slides).
    for (Index i = 0; i < layers; ++i)
      types[static_cast<std::size_t>(i)] =
          (i + 1) % 2 ? AttentionType::sliding : AttentionType::full;
  } else if (mt == "gemma3_text") {
    // Gemma3TextConfig: sliding if (i + 1) % sliding_window_pattern else full (pattern 6).
    const std::int64_t pattern = c.integer("sliding_window_pattern").value_or(6);
    require(pattern > 0, c.path("sliding_window_pattern"), " = ", pattern, " must be > 0");
    for (Index i = 0; i < layers; ++i)
      types[static_cast<std::size_t>(i)] =
          (i + 1) % pattern ? AttentionType::sliding : AttentionType::full;
  } else if (mt == "qwen2" || mt == "qwen2_moe" || mt == "qwen3" || mt == "qwen3_moe" ||
             mt == "qwen2_vl" || mt == "qwen2_5_vl") {
    // Qwen2Config: sliding_window only with use_sliding_window; layers from max_window_layers
    // on slide: sliding if use_sliding_window and i >= max_window_layers.
    const bool use = c.boolean("use_sliding_window").value_or(false);
    const std::int64_t mwl = c.integer("max_window_layers").value_or(layers);
    if (!use) window = 0;
    for (Index i = 0; i < layers; ++i)
      if (use && window > 0 && i >= mwl)
        types[static_cast<std::size_t>(i)] = AttentionType::sliding;
  } else if (mt == "mistral" || mt == "mixtral" || mt == "phi3") {
    // Mistral, Mixtral, Phi-3: sliding_window on every layer when set.
    if (window > 0) std::fill(types.begin(), types.end(), AttentionType::sliding);
  }
  std::vector<bool> use_rope(static_cast<std::size_t>(layers), true);
  std::int64_t chunk = 0;
  AttentionTemperatureOptions temperature;
  bool temperature_tuning = false;
  if (mt == "llama4_text") {
    // Llama4TextConfig: no_rope_layers[i] = 1 uses RoPE (default: every no_rope_layer_interval
    // = 4th layer without); attention_chunk_size on the RoPE layers (layer_types chunked);
    // attn_temperature_tuning with floor_scale and attn_scale on the others.
    std::vector<std::int64_t> nrl;
    if (const auto v = c.integers("no_rope_layers"); v && !v->empty()) {
      nrl = *v;
      require(static_cast<Index>(nrl.size()) == layers, c.path("no_rope_layers"), " has ",
              nrl.size(), " entries, num_hidden_layers = ", layers);
    } else {
      const std::int64_t interval = c.integer("no_rope_layer_interval").value_or(4);
      for (Index i = 0; i < layers; ++i)
        nrl.push_back((i + 1) % interval != 0 ? 1 : 0);
    }
    chunk = c.integer("attention_chunk_size").value_or(0);
    require(chunk >= 0, c.path("attention_chunk_size"), " = ", chunk, " must be >= 0");
    for (Index i = 0; i < layers; ++i) {
      const auto v = nrl[static_cast<std::size_t>(i)];
      require(v == 0 || v == 1, c.path("no_rope_layers"), "[", i, "] = ", v, ": expected 0 or 1");
      use_rope[static_cast<std::size_t>(i)] = v == 1;
      if (!explicit_types)
        types[static_cast<std::size_t>(i)] =
            v == 1 && chunk > 0 ? AttentionType::chunked : AttentionType::full;
    }
    // attn_temperature_tuning is tested for truth (Llama 4 Scout publishes 4).
    if (c.has("attn_temperature_tuning")) {
      const json& v = c.raw("attn_temperature_tuning");
      require(v.is_boolean() || v.is_number_integer(), c.path("attn_temperature_tuning"), " = ",
              dump(v), ": expected true, false or an integer");
      temperature_tuning = v.is_boolean() ? v.get<bool>() : v.get<std::int64_t>() != 0;
    }
    temperature.floor_scale = c.number("floor_scale").value_or(8192.0);
    temperature.attn_scale = c.number("attn_scale").value_or(0.1);
  }
  for (Index i = 0; i < layers; ++i)
    if (types[static_cast<std::size_t>(i)] == AttentionType::sliding)
      require(window > 0, where, ": layer ", i, " is sliding_attention but sliding_window is ",
              "not set");

  // --- Scale, soft-cap, sinks --------------------------------------------------------------
  double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  if (mt == "gemma2" || mt == "gemma3_text") {
    // query_pre_attn_scalar ** -0.5 (Gemma2Attention.scaling).
    const double qpas = c.number("query_pre_attn_scalar").value_or(static_cast<double>(head_dim));
    require(qpas > 0.0, c.path("query_pre_attn_scalar"), " = ", qpas, " must be > 0");
    scale = 1.0 / std::sqrt(qpas);
  }
  if (mt == "t5") scale = 1.0;  // T5Attention: no 1/sqrt(d_kv)
  // GPT2Attention: scale_attn_weights (true) divides by sqrt(Dh); scale_attn_by_inverse_layer_idx
  // (false) also by layer_idx + 1.
  const bool gpt2_scaled = mt != "gpt2" || c.boolean("scale_attn_weights").value_or(true);
  const bool gpt2_by_layer =
      mt == "gpt2" && c.boolean("scale_attn_by_inverse_layer_idx").value_or(false);
  if (!gpt2_scaled) scale = 1.0;
  if (mt == "mpt" && attn_config) {
    // MptAttention: softmax_scale, default 1/sqrt(d_model / n_heads).
    if (const auto ss = Fields(*attn_config, c.path("attn_config")).number("softmax_scale"))
      scale = *ss;
  }
  std::optional<double> softcap;
  if (mt == "gemma2" || mt == "gemma3_text") {
    softcap = c.number("attn_logit_softcapping");
    if (softcap)
      require(*softcap > 0.0, c.path("attn_logit_softcapping"), " = ", *softcap, " must be > 0");
  }

  // --- Layers ------------------------------------------------------------------------------
  // T5 (T5Stack): the encoder's num_layers blocks, then the decoder's num_decoder_layers
  // (default num_layers) causal self-attention blocks, each stack numbered from 0 with its own
  // relative_attention_bias in block 0 and causal buckets in the decoder.
  Index decoder_layers = 0;
  if (mt == "t5") {
    const bool enc_dec = c.boolean("is_encoder_decoder").value_or(true);
    if (enc_dec) {
      const auto nd = c.integer("num_decoder_layers");
      decoder_layers = nd ? static_cast<Index>(*nd) : layers;
      require(decoder_layers >= 0 && decoder_layers <= posenc::max_extent,
              c.path("num_decoder_layers"), " = ", decoder_layers, " must be in [0, 2^24]");
    }
    types.resize(static_cast<std::size_t>(layers + decoder_layers), AttentionType::full);
    use_rope.resize(types.size(), true);
  }
  for (Index flat = 0; flat < layers + decoder_layers; ++flat) {
    const bool decoder_stack = flat >= layers;
    const Index i = decoder_stack ? flat - layers : flat;
    LayerConfig L;
    L.layer = i;
    L.attention_type = types[static_cast<std::size_t>(flat)];
    L.encoder = encoder;
    L.heads = heads;
    L.kv_heads = kv_heads;
    L.head_dim = head_dim;
    L.value_head_dim = value_head_dim;
    L.causal = fam->causal || decoder_stack;
    L.decoder_stack = decoder_stack;
    L.scale = gpt2_by_layer ? scale / static_cast<double>(i + 1) : scale;
    L.softcap = softcap;
    L.sinks = mt == "gpt_oss";
    if (L.attention_type == AttentionType::sliding) L.window = window;
    if (L.attention_type == AttentionType::chunked) L.chunk = chunk;
    if (encoder == EncoderKind::rope || encoder == EncoderKind::mrope) {
      if (!use_rope[static_cast<std::size_t>(flat)]) {
        L.encoder = temperature_tuning ? EncoderKind::temperature : EncoderKind::none;
        L.temperature = temperature;
      } else {
        L.rotary.rotary_dim = rotary_dim;
        L.rotary.layout = layout;
        L.rotary.block = block;
        const RopeParameters rp = rope_for(L.attention_type);
        apply_rope_type(L.rotary, rp, rotary_dim, m.max_positions, c);
        L.mrope_section = mrope_section;
        if (mt == "deepseek_v3" && L.rotary.scaling == RopeScaling::yarn &&
            L.rotary.mscale_all_dim && *L.rotary.mscale_all_dim != 0.0) {
          // DeepseekV3Attention: softmax_scale *= yarn_get_mscale(factor, mscale_all_dim)^2,
          // with rope_scaling.factor as written.
          const double f = Fields(*rp.scaling, rp.where).number("factor").value_or(1.0);
          const double g = f <= 1.0 ? 1.0 : 0.1 * *L.rotary.mscale_all_dim * std::log(f) + 1.0;
          L.scale *= g * g;
        }
      }
    }
    if (L.encoder == EncoderKind::alibi) {
      if (mt == "mpt") {
        const Fields ac(*attn_config, c.path("attn_config"));
        const double bmax = ac.number("alibi_bias_max").value_or(8.0);
        require(bmax > 0.0, ac.path("alibi_bias_max"), " = ", bmax, " must be > 0");
        L.alibi_slopes = mpt_alibi_slopes(heads, bmax);
      } else {
        // build_alibi_tensor (BLOOM, Falcon): the paper's slopes with b = 8.
        L.alibi_slopes = alibi_slopes(heads, 8.0);
        if (mt == "falcon") {
          // FalconAttention adds alibi before multiplying by inv_norm_factor = 1/sqrt(Dh):
          // the slopes the scaled scores see are m_h / sqrt(Dh).
          for (double& s : L.alibi_slopes)
            s *= scale;
        }
      }
    }
    if (L.encoder == EncoderKind::t5) {
      // T5Attention: relative_attention_num_buckets (32), relative_attention_max_distance
      // (128); has_relative_attention_bias on the first layer only; the encoder's buckets are
      // bidirectional.
      L.t5_num_buckets =
          static_cast<Index>(c.integer("relative_attention_num_buckets").value_or(32));
      L.t5_max_distance =
          static_cast<Index>(c.integer("relative_attention_max_distance").value_or(128));
      L.t5_bidirectional = !decoder_stack;
      L.t5_has_bias = i == 0;
    }
    if (L.encoder == EncoderKind::transformer_xl) {
      // TransfoXLConfig / RelPartialLearnableMultiHeadAttn: attn_type 0 only, clamp_len > 0
      // clamps the distances, untie_r gives each layer its own r_w_bias / r_r_bias.
      const std::int64_t at = c.integer("attn_type").value_or(0);
      require(at == 0, c.path("attn_type"), " = ", at,
              ": posenc builds Transformer-XL's relative attention (attn_type 0) only");
      const std::int64_t cl = c.integer("clamp_len").value_or(-1);
      L.transformer_xl.clamp_len = cl > 0 ? cl : -1;
      L.xl_untie_r = c.boolean("untie_r").value_or(true);
    }
    if (L.encoder == EncoderKind::learned) {
      L.learned_positions = static_cast<Index>(m.max_positions);
      // OPTLearnedPositionalEmbedding: offset 2, num_embeddings + 2 rows.
      if (mt == "opt") {
        L.learned_offset = 2;
        L.learned_positions += 2;
      }
      require(L.learned_positions > 0, where, ": a learned table needs max_position_embeddings");
    }
    if (L.encoder == EncoderKind::bert_relative) {
      L.bert_relative_type = *find_name<BertRelativeType>(*c.string("position_embedding_type"));
      L.bert_max_positions = static_cast<Index>(m.max_positions);
      require(L.bert_max_positions > 0, where, ": relative_key needs max_position_embeddings");
    }
    if (L.encoder == EncoderKind::deberta) {
      // DebertaV2Config / DisentangledSelfAttention: position_buckets (-1: none),
      // max_relative_positions < 1 means max_position_embeddings, pos_att_type c2p and p2c.
      std::int64_t mrp = c.integer("max_relative_positions").value_or(-1);
      if (mrp < 1) mrp = m.max_positions;
      L.deberta.max_relative_positions = static_cast<Index>(mrp);
      L.deberta.position_buckets = static_cast<Index>(c.integer("position_buckets").value_or(-1));
      bool c2p = false, p2c = false;
      if (c.has("pos_att_type")) {
        const json& pat = c.raw("pos_att_type");
        std::vector<std::string> names;
        if (pat.is_string()) {
          // older configs write "c2p|p2c"
          std::stringstream ss(pat.get<std::string>());
          std::string t;
          while (std::getline(ss, t, '|'))
            names.push_back(t);
        } else {
          require(pat.is_array(), c.path("pos_att_type"), " = ", dump(pat),
                  ": expected an array of c2p, p2c");
          for (const auto& e : pat) {
            require(e.is_string(), c.path("pos_att_type"), " = ", dump(pat),
                    ": expected an array of c2p, p2c");
            names.push_back(e.get<std::string>());
          }
        }
        for (auto& t : names) {
          std::transform(t.begin(), t.end(), t.begin(),
                         [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
          require(t == "c2p" || t == "p2c", c.path("pos_att_type"), " = ", dump(pat), ": ", t,
                  " is not one of c2p, p2c");
          c2p = c2p || t == "c2p";
          p2c = p2c || t == "p2c";
        }
      }
      require(c2p || p2c, c.path("pos_att_type"),
              ": DeBERTa's relative attention needs c2p, p2c "
              "or both");
      L.deberta.terms = c2p && p2c ? DebertaTerms::both
                        : c2p      ? DebertaTerms::c2p
                                   : DebertaTerms::p2c;
      require(c.boolean("share_att_key").value_or(true), c.path("share_att_key"),
              " = false: posenc builds DeBERTa's shared-key tables (share_att_key true) only");
      // DisentangledSelfAttention: scale_factor = 1 + len(pos_att_type); 1/sqrt(Dh f).
      L.scale = 1.0 / std::sqrt(static_cast<double>(head_dim) * (c2p && p2c ? 3.0 : 2.0));
    }
    m.layers.push_back(std::move(L));
  }
  // Every layer's options build (the encoder constructors check the rest).
  return m;
}

/// Reads and parses a config.json file.
inline ModelConfig read_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  posenc::detail::require(static_cast<bool>(in), path, ": cannot open the config file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    posenc::detail::fail(path, ": not valid JSON: ", e.what());
  }
  return parse_config(j, path);
}

/// The encoders a layer can have, as one type for runtime choice (std::visit).
template <class T>
using LayerEncoder =
    std::variant<NoEncoding<T>, RotaryEncoding<T>, MultiAxisRotaryEncoding<T>, AlibiEncoding<T>,
                 AttentionTemperatureEncoding<T>, T5Encoding<T>, BertRelativeEncoding<T>,
                 DebertaEncoding<T>, TransformerXLEncoding<T>>;

/// The RoPE of a rope or mrope layer (for mrope: the 1D rotation its text tokens use, every
/// axis at the same position).
template <class T>
RotaryEncoding<T> rotary_encoding(const LayerConfig& l) {
  posenc::detail::require(l.encoder == EncoderKind::rope || l.encoder == EncoderKind::mrope,
                          "hf::rotary_encoding: layer ", l.layer, " uses ", name_of(l.encoder),
                          ", not rope");
  return RotaryEncoding<T>(l.head_dim, l.rotary);
}

/// The encoder of a layer that needs no trained tables (none, learned (added at the input),
/// rope, mrope, alibi, temperature); T5, BERT-relative and DeBERTa layers need their tables: see
/// posenc/hf_checkpoint.hpp.
template <class T>
LayerEncoder<T> make_encoder(const LayerConfig& l) {
  switch (l.encoder) {
    case EncoderKind::none:
    case EncoderKind::learned:
      return NoEncoding<T>{};
    case EncoderKind::rope:
      return RotaryEncoding<T>(l.head_dim, l.rotary);
    case EncoderKind::mrope: {
      MultiAxisRotaryOptions o;
      o.rope = l.rotary;
      o.layout = MropeLayout::chunked;
      o.sections = l.mrope_section;
      return MultiAxisRotaryEncoding<T>(l.head_dim, o);
    }
    case EncoderKind::alibi:
      return AlibiEncoding<T>(l.alibi_slopes);
    case EncoderKind::temperature:
      return AttentionTemperatureEncoding<T>(l.temperature);
    default:
      break;
  }
  posenc::detail::fail("hf::make_encoder: layer ", l.layer, " uses ", name_of(l.encoder),
                       ", whose tables come from the checkpoint (hf::load_encoder)");
}

/// The attention options of a layer (heads, scale, window, chunk, soft-cap); biases and sinks
/// come from the checkpoint.
template <class T>
AttentionOptions<T> attention_options(const LayerConfig& l) {
  AttentionOptions<T> o;
  o.heads = l.heads;
  o.kv_heads = l.kv_heads;
  o.head_dim = l.head_dim;
  o.causal = l.causal;
  o.window = l.window;
  o.chunk = l.chunk;
  o.scale = static_cast<T>(l.scale);
  if (l.softcap) o.softcap = static_cast<T>(*l.softcap);
  return o;
}

}  // namespace hf

POSENC_NAMESPACE_END
