// posenc command line: `posenc inspect --config config.json [--layer L] [--json]`. Prints what
// posenc builds for each layer of a Hugging Face model (posenc::hf, include/posenc/hf.hpp): as
// text, consecutive identical layers grouped ("layers 0-31: ..."), or with --json as one JSON
// object whose layer entries have the keys of tests/hf/README.md ("Golden schema").
#include "inspect_command.hpp"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "config_flags.hpp"

namespace posenc_cli {

#if POSENC_CLI_HAVE_HF

namespace {

namespace hf = posenc::hf;

// Keys in the order of the schema (ordered_json from nlohmann/json 3.9 on; sorted before).
#if NLOHMANN_JSON_VERSION_MAJOR > 3 || \
    (NLOHMANN_JSON_VERSION_MAJOR == 3 && NLOHMANN_JSON_VERSION_MINOR >= 9)
using Json = nlohmann::ordered_json;
#else
using Json = nlohmann::json;
#endif

constexpr double two_pi = 6.283185307179586476925286766559;

bool is_rope(const hf::LayerConfig& l) {
  return l.encoder == hf::EncoderKind::rope || l.encoder == hf::EncoderKind::mrope;
}

template <class V>
Json or_null(bool present, const V& v) {
  return present ? Json(v) : Json(nullptr);
}

/// 2 max_position_embeddings - 1, or 2^63 - 1 past it.
std::int64_t largest_dynamic_position(const hf::ModelConfig& m) {
  return m.max_positions > max_position / 2 ? max_position : 2 * m.max_positions - 1;
}

/// The long frequency set of a layer whose set depends on the length: longrope's long set (a call
/// reaching position M), dynamic's at the largest position 2 max_position_embeddings - 1 (a
/// sequence of twice the context); none otherwise.
struct LongSet {
  bool present = false;
  posenc::RotaryFrequencies f;
};

LongSet long_set(const hf::ModelConfig& m, const hf::LayerConfig& l,
                 const posenc::RotaryEncoding<double>& enc) {
  LongSet s;
  if (l.rotary.scaling == posenc::RopeScaling::longrope) {
    s.present = true;
    s.f = enc.frequencies(*l.rotary.original_max_positions);
  } else if (l.rotary.scaling == posenc::RopeScaling::dynamic) {
    s.present = true;
    s.f = enc.frequencies(largest_dynamic_position(m));
  }
  return s;
}

/// The parameters of the layer's rope scaling (those that apply to it).
Json scaling_parameters(const posenc::RotaryOptions& o) {
  using S = posenc::RopeScaling;
  Json p = Json::object();
  if (o.factor) p["factor"] = *o.factor;
  if (o.original_max_positions) p["original_max_position_embeddings"] = *o.original_max_positions;
  if (o.scaling == S::yarn) {
    p["beta_fast"] = o.beta_fast;
    p["beta_slow"] = o.beta_slow;
    p["truncate"] = o.truncate;
    if (o.mscale) p["mscale"] = *o.mscale;
    if (o.mscale_all_dim) p["mscale_all_dim"] = *o.mscale_all_dim;
  }
  if ((o.scaling == S::yarn || o.scaling == S::longrope) && o.attention_factor)
    p["attention_factor"] = *o.attention_factor;
  if (o.scaling == S::llama3) {
    p["low_freq_factor"] = o.low_freq_factor;
    p["high_freq_factor"] = o.high_freq_factor;
  }
  if (o.scaling == S::longrope) {
    p["short_factor"] = o.short_factors;
    p["long_factor"] = o.long_factors;
    if (o.short_mscale) p["short_mscale"] = *o.short_mscale;
    if (o.long_mscale) p["long_mscale"] = *o.long_mscale;
  }
  if (o.scaling == S::proportional) p["partial_rotary_factor"] = o.partial_rotary_factor;
  return p;
}

/// One layer as the schema of tests/hf/README.md has it (null where a key does not apply), plus
/// rope_parameters (the scaling's own parameters), bert_max_positions and Llama 4's temperature.
Json layer_json(const hf::ModelConfig& m, const hf::LayerConfig& l) {
  using K = hf::EncoderKind;
  Json j;
  j["layer"] = l.layer;
  j["attention_type"] = std::string(posenc::name_of(l.attention_type));
  j["encoder"] = std::string(posenc::name_of(l.encoder));
  j["heads"] = l.heads;
  j["kv_heads"] = l.kv_heads;
  j["head_dim"] = l.head_dim;
  j["value_head_dim"] = l.value_head_dim;
  j["causal"] = l.causal;
  j["scale"] = l.scale;
  j["window"] = or_null(l.window != 0, l.window);
  j["chunk"] = or_null(l.chunk != 0, l.chunk);
  j["softcap"] = or_null(l.softcap.has_value(), l.softcap.value_or(0.0));
  j["sinks"] = l.sinks;
  const bool rope = is_rope(l);
  const posenc::RotaryOptions& o = l.rotary;
  j["rope_theta"] = or_null(rope, o.base);
  j["rotary_dim"] = nullptr;
  j["layout"] = or_null(rope, std::string(posenc::name_of(o.layout)));
  j["block"] = or_null(rope, std::string(posenc::name_of(o.block)));
  j["scaling"] = or_null(rope, std::string(posenc::name_of(o.scaling)));
  j["inv_freq"] = nullptr;
  j["attention_factor"] = nullptr;
  j["inv_freq_long"] = nullptr;
  j["attention_factor_long"] = nullptr;
  if (rope) {
    const posenc::RotaryEncoding<double> enc = hf::rotary_encoding<double>(l);
    const posenc::RotaryFrequencies f = enc.frequencies(0);
    j["rotary_dim"] = enc.rotary_dim();
    j["inv_freq"] = f.inv_freq;
    j["attention_factor"] = f.attention_factor;
    const LongSet s = long_set(m, l, enc);
    if (s.present) {
      j["inv_freq_long"] = s.f.inv_freq;
      j["attention_factor_long"] = s.f.attention_factor;
    }
  }
  j["mrope_section"] = or_null(l.encoder == K::mrope, l.mrope_section);
  j["alibi_slopes"] = or_null(l.encoder == K::alibi, l.alibi_slopes);
  const bool t5 = l.encoder == K::t5;
  j["t5_num_buckets"] = or_null(t5, l.t5_num_buckets);
  j["t5_max_distance"] = or_null(t5, l.t5_max_distance);
  j["t5_bidirectional"] = or_null(t5, l.t5_bidirectional);
  j["t5_has_bias"] = or_null(t5, l.t5_has_bias);
  const bool learned = l.learned_positions > 0;
  j["learned_positions"] = or_null(learned, l.learned_positions);
  j["learned_offset"] = or_null(learned, l.learned_offset);
  const bool bert = l.encoder == K::bert_relative;
  j["bert_relative_type"] = or_null(bert, std::string(posenc::name_of(l.bert_relative_type)));
  const bool deberta = l.encoder == K::deberta;
  j["deberta_position_buckets"] = or_null(deberta, l.deberta.position_buckets);
  j["deberta_max_relative_positions"] = or_null(deberta, l.deberta.max_relative_positions);
  j["deberta_pos_att_type"] = nullptr;
  if (deberta) {
    std::vector<std::string> terms;
    if (l.deberta.terms != posenc::DebertaTerms::c2p) terms.push_back("p2c");
    if (l.deberta.terms != posenc::DebertaTerms::p2c) terms.push_back("c2p");
    j["deberta_pos_att_type"] = terms;
  }
  // Beyond the schema.
  j["rope_parameters"] = rope ? scaling_parameters(o) : Json(nullptr);
  j["bert_max_positions"] = or_null(bert, l.bert_max_positions);
  j["temperature"] = nullptr;
  if (l.encoder == K::temperature) {
    Json t;
    t["attn_scale"] = l.temperature.attn_scale;
    t["floor_scale"] = l.temperature.floor_scale;
    j["temperature"] = t;
  }
  return j;
}

std::string num(double v) {
  return number_str(v);
}

/// "[64] 1 .. 3.92e-07 (wavelengths 2 pi / inv_freq 6.283185307 .. 1.6e+07)"
std::string freq_line(const std::vector<double>& f) {
  if (f.empty()) return "[0]";
  std::string s = "[" + std::to_string(f.size()) + "] " + num(f.front()) + " .. " + num(f.back());
  const auto wl = [](double x) { return x > 0 ? num(two_pi / x) : std::string("inf"); };
  return s + " (wavelength 2 pi / inv_freq " + wl(f.front()) + " .. " + wl(f.back()) + ")";
}

/// The text of one layer (without its number): the lines after "layer(s) ...:".
std::vector<std::string> layer_text(const hf::ModelConfig& m, const hf::LayerConfig& l) {
  using K = hf::EncoderKind;
  std::vector<std::string> out;
  const auto opt = [](std::int64_t v) { return v ? std::to_string(v) : std::string("none"); };
  out.push_back(std::string(posenc::name_of(l.attention_type)) + ", encoder " +
                std::string(posenc::name_of(l.encoder)) + ", " +
                (l.causal ? "causal" : "bidirectional"));
  out.push_back("attention: H " + std::to_string(l.heads) + ", H_kv " + std::to_string(l.kv_heads) +
                ", Dh " + std::to_string(l.head_dim) + ", value Dh " +
                std::to_string(l.value_head_dim) + ", scale " + num(l.scale) + ", window " +
                opt(l.window) + ", chunk " + opt(l.chunk) + ", softcap " +
                (l.softcap ? num(*l.softcap) : std::string("none")) + ", sinks " +
                (l.sinks ? "yes (the checkpoint's self_attn.sinks)" : "no"));
  if (is_rope(l)) {
    const posenc::RotaryOptions& o = l.rotary;
    std::string r = "rope: base " + num(o.base) + ", R " + std::to_string(o.rotary_dim) +
                    ", layout " + std::string(posenc::name_of(o.layout)) + ", block " +
                    std::string(posenc::name_of(o.block)) + ", scaling " +
                    std::string(posenc::name_of(o.scaling));
    const Json p = scaling_parameters(o);
    std::string params;
    for (auto it = p.begin(); it != p.end(); ++it) {
      if (it.key() == "short_factor" || it.key() == "long_factor") continue;
      const std::string key = it.key() == "original_max_position_embeddings" ? "M" : it.key();
      params += (params.empty() ? "" : ", ") + key + " " +
                (it->is_number_float() ? num(it->get<double>()) : it->dump());
    }
    if (!params.empty()) r += " (" + params + ")";
    out.push_back(r);
    if (l.encoder == K::mrope) {
      std::string sec;
      for (auto v : l.mrope_section)
        sec += (sec.empty() ? "" : ", ") + std::to_string(v);
      out.push_back("mrope: chunked, mrope_section [" + sec +
                    "] (1D positions: every axis at the token's position)");
    }
    const posenc::RotaryEncoding<double> enc = hf::rotary_encoding<double>(l);
    const posenc::RotaryFrequencies f = enc.frequencies(0);
    const LongSet s = long_set(m, l, enc);
    out.push_back(
        std::string(s.present ? "inv_freq (short, within the original context) " : "inv_freq ") +
        freq_line(f.inv_freq) + ", attention factor " + num(f.attention_factor));
    if (s.present)
      out.push_back(std::string("inv_freq (long, ") +
                    (o.scaling == posenc::RopeScaling::longrope
                         ? "past M"
                         : "at the largest position 2 max_position_embeddings - 1 = " +
                               std::to_string(largest_dynamic_position(m))) +
                    ") " + freq_line(s.f.inv_freq) + ", attention factor " +
                    num(s.f.attention_factor));
    if (o.scaling == posenc::RopeScaling::longrope)
      out.push_back("longrope factors [" + std::to_string(o.short_factors.size()) + "]: short " +
                    num(o.short_factors.front()) + " .. " + num(o.short_factors.back()) +
                    ", long " + num(o.long_factors.front()) + " .. " + num(o.long_factors.back()));
  }
  if (l.encoder == K::alibi && !l.alibi_slopes.empty())
    out.push_back("alibi: slopes [" + std::to_string(l.alibi_slopes.size()) + "] " +
                  num(l.alibi_slopes.front()) + " .. " + num(l.alibi_slopes.back()));
  if (l.encoder == K::t5)
    out.push_back("t5: num_buckets " + std::to_string(l.t5_num_buckets) + ", max_distance " +
                  std::to_string(l.t5_max_distance) + ", " +
                  (l.t5_bidirectional ? "bidirectional" : "causal") + " buckets, " +
                  (l.t5_has_bias
                       ? "owns relative_attention_bias [" + std::to_string(l.t5_num_buckets) +
                             ", " + std::to_string(l.heads) + "]"
                       : "uses layer 0's relative_attention_bias"));
  if (l.learned_positions > 0)
    out.push_back("learned: table [" + std::to_string(l.learned_positions) + ", " +
                  std::to_string(m.hidden_size) + "] added to the embeddings, position 0 at row " +
                  std::to_string(l.learned_offset));
  if (l.encoder == K::bert_relative)
    out.push_back("bert-relative: " + std::string(posenc::name_of(l.bert_relative_type)) + ", L " +
                  std::to_string(l.bert_max_positions) + " (distance table [" +
                  std::to_string(l.bert_max_positions > max_position / 2
                                     ? max_position
                                     : 2 * l.bert_max_positions - 1) +
                  ", " + std::to_string(l.head_dim) + "])");
  if (l.encoder == K::deberta) {
    const posenc::Index b = l.deberta.position_buckets, mrp = l.deberta.max_relative_positions;
    const posenc::Index span = b > 0 ? b : mrp;
    out.push_back("deberta: position_buckets " + std::to_string(b) + ", max_relative_positions " +
                  std::to_string(mrp) + ", pos_att_type " +
                  std::string(posenc::name_of(l.deberta.terms)) + " (tables [" +
                  std::to_string(2 * span) + ", " + std::to_string(l.heads * l.head_dim) + "])");
  }
  if (l.encoder == K::temperature)
    out.push_back("temperature: attn_scale " + num(l.temperature.attn_scale) + ", floor_scale " +
                  num(l.temperature.floor_scale) + " (no RoPE)");
  return out;
}

void run_inspect(const ConfigFlags& cf, bool as_json, bool one_layer) {
  const hf::ModelConfig m = read_model_config(cf.path);
  std::vector<const hf::LayerConfig*> layers;
  if (one_layer)
    layers.push_back(&config_layer(cf, m));
  else
    for (const hf::LayerConfig& l : m.layers)
      layers.push_back(&l);
  // Everything is built (and every error found) before anything is printed.
  std::vector<Json> js;
  for (const hf::LayerConfig* l : layers)
    js.push_back(layer_json(m, *l));
  if (as_json) {
    Json root;
    root["model_type"] = m.model_type;
    root["hidden_size"] = m.hidden_size;
    root["max_position_embeddings"] = or_null(m.max_positions > 0, m.max_positions);
    root["num_layers"] = m.layers.size();
    root["layers"] = js;
    const std::string s = root.dump(1) + "\n";
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
    return;
  }
  std::string text = cf.path + ": model_type " + m.model_type + ", hidden_size " +
                     std::to_string(m.hidden_size) + ", max_position_embeddings " +
                     (m.max_positions > 0 ? std::to_string(m.max_positions) : "none") + ", " +
                     std::to_string(m.layers.size()) + " layer" +
                     (m.layers.size() == 1 ? "" : "s") + "\n";
  // Consecutive layers whose descriptions differ only in their index share one block.
  const auto same = [&](std::size_t a, std::size_t b) {
    Json x = js[a], y = js[b];
    x.erase("layer");
    y.erase("layer");
    return x == y;
  };
  for (std::size_t i = 0; i < layers.size();) {
    std::size_t k = i + 1;
    while (k < layers.size() && same(i, k))
      ++k;
    const std::string first = std::to_string(layers[i]->layer);
    text += k - i == 1 ? "layer " + first
                       : "layers " + first + "-" + std::to_string(layers[k - 1]->layer);
    const std::vector<std::string> lines = layer_text(m, *layers[i]);
    text += ": " + lines.front() + "\n";
    for (std::size_t j = 1; j < lines.size(); ++j)
      text += "  " + lines[j] + "\n";
    i = k;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

#endif  // POSENC_CLI_HAVE_HF

void add_inspect_command(CLI::App& app) {
  struct Args {
    ConfigFlags config;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "inspect",
      "Print what posenc builds for each layer of a Hugging Face config.json (docs/cli.md)");
  a->config.add(sub, "the model to describe");
  a->config.o_config->required();
  a->config.o_layer->description("Describe this layer only (default: every layer)");
  sub->add_flag("--json", a->json,
                "Print one JSON object {model_type, hidden_size, max_position_embeddings, "
                "layers: [...]} (keys of tests/hf/README.md)");
  sub->callback([a] {
#if POSENC_CLI_HAVE_HF
    run_inspect(a->config, a->json, a->config.o_layer->count() > 0);
#else
    config_unavailable();
#endif
  });
}

}  // namespace posenc_cli
