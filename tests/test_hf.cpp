// posenc::hf, the config.json front-end: every fixture of tests/hf/configs (published configs of
// real models) against tests/hf/golden, which tests/reference/make_hf_golden.py derived in
// float64 from a transcription of Hugging Face's own formulas; then the errors.
#include <posenc/hf.hpp>

#include <catch2/catch.hpp>

#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using nlohmann::json;
using posenc::name_of;
using posenc::hf::EncoderKind;
using posenc::hf::LayerConfig;
using posenc::hf::ModelConfig;

std::string hf_dir() {
  return POSENC_TEST_HF_DIR;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return json::parse(in);
}

std::vector<std::string> golden_names() {
  std::vector<std::string> out;
  DIR* d = opendir((hf_dir() + "/golden").c_str());
  REQUIRE(d != nullptr);
  while (const dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() > 5 && n.substr(n.size() - 5) == ".json") out.push_back(n.substr(0, n.size() - 5));
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool close(double a, double b, double rel = 1e-12) {
  return std::fabs(a - b) <= rel * std::max({1.0e-300, std::fabs(a), std::fabs(b)});
}

void require_numbers(const std::vector<double>& got, const json& want, const std::string& what) {
  INFO(what);
  REQUIRE(want.is_array());
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(what << "[" << i << "] posenc " << got[i] << " reference " << want[i].get<double>());
    REQUIRE(close(got[i], want[i].get<double>()));
  }
}

void require_null_or(const json& want, std::int64_t got_or_zero, const char* key) {
  INFO(key);
  if (want.is_null())
    REQUIRE(got_or_zero == 0);
  else
    REQUIRE(want.get<std::int64_t>() == got_or_zero);
}

/// One layer of posenc's description against one golden layer object.
void check_layer(const LayerConfig& l, const json& g, std::int64_t max_positions) {
  REQUIRE(g.at("layer").get<posenc::Index>() == l.layer);
  REQUIRE(g.at("attention_type").get<std::string>() == std::string(name_of(l.attention_type)));
  // Llama 4's layers without RoPE scale their queries (temperature); the schema calls them none.
  const std::string enc =
      l.encoder == EncoderKind::temperature ? "none" : name_of(l.encoder).data();
  REQUIRE(g.at("encoder").get<std::string>() == enc);
  REQUIRE(g.at("heads").get<posenc::Index>() == l.heads);
  REQUIRE(g.at("kv_heads").get<posenc::Index>() == l.kv_heads);
  REQUIRE(g.at("head_dim").get<posenc::Index>() == l.head_dim);
  REQUIRE(g.at("value_head_dim").get<posenc::Index>() == l.value_head_dim);
  REQUIRE(g.at("causal").get<bool>() == l.causal);
  REQUIRE(close(g.at("scale").get<double>(), l.scale));
  require_null_or(g.at("window"), l.window, "window");
  require_null_or(g.at("chunk"), l.chunk, "chunk");
  if (g.at("softcap").is_null())
    REQUIRE_FALSE(l.softcap.has_value());
  else
    REQUIRE((l.softcap && close(*l.softcap, g.at("softcap").get<double>())));
  REQUIRE(g.at("sinks").get<bool>() == l.sinks);

  const bool rope = l.encoder == EncoderKind::rope || l.encoder == EncoderKind::mrope;
  if (!rope) {
    for (const char* k : {"rope_theta", "rotary_dim", "layout", "block", "scaling", "inv_freq",
                          "attention_factor", "inv_freq_long", "attention_factor_long"}) {
      INFO(k);
      REQUIRE(g.at(k).is_null());
    }
  } else {
    const auto r = posenc::hf::rotary_encoding<double>(l);
    REQUIRE(close(g.at("rope_theta").get<double>(), l.rotary.base));
    REQUIRE(g.at("rotary_dim").get<posenc::Index>() == r.rotary_dim());
    REQUIRE(g.at("layout").get<std::string>() == std::string(name_of(l.rotary.layout)));
    REQUIRE(g.at("block").get<std::string>() == std::string(name_of(l.rotary.block)));
    REQUIRE(g.at("scaling").get<std::string>() == std::string(name_of(l.rotary.scaling)));
    const auto f = r.frequencies(0);
    require_numbers(f.inv_freq, g.at("inv_freq"), "inv_freq");
    REQUIRE(close(g.at("attention_factor").get<double>(), f.attention_factor));
    if (g.at("inv_freq_long").is_null()) {
      REQUIRE(g.at("attention_factor_long").is_null());
      REQUIRE(l.rotary.scaling != posenc::RopeScaling::longrope);
      REQUIRE(l.rotary.scaling != posenc::RopeScaling::dynamic);
    } else {
      // longrope: the long set (past M); dynamic: at seq_len 2 max_position_embeddings.
      const std::int64_t p = l.rotary.scaling == posenc::RopeScaling::longrope
                                 ? *l.rotary.original_max_positions
                                 : 2 * max_positions - 1;
      const auto fl = r.frequencies(p);
      require_numbers(fl.inv_freq, g.at("inv_freq_long"), "inv_freq_long");
      REQUIRE(close(g.at("attention_factor_long").get<double>(), fl.attention_factor));
    }
  }
  if (g.at("mrope_section").is_null()) {
    REQUIRE(l.mrope_section.empty());
  } else {
    std::vector<posenc::Index> want = g.at("mrope_section").get<std::vector<posenc::Index>>();
    REQUIRE(want == l.mrope_section);
  }
  if (g.at("alibi_slopes").is_null())
    REQUIRE(l.alibi_slopes.empty());
  else
    require_numbers(l.alibi_slopes, g.at("alibi_slopes"), "alibi_slopes");
  if (l.encoder == EncoderKind::t5) {
    REQUIRE(g.at("t5_num_buckets").get<posenc::Index>() == l.t5_num_buckets);
    REQUIRE(g.at("t5_max_distance").get<posenc::Index>() == l.t5_max_distance);
    REQUIRE(g.at("t5_bidirectional").get<bool>() == l.t5_bidirectional);
    REQUIRE(g.at("t5_has_bias").get<bool>() == l.t5_has_bias);
  } else {
    REQUIRE(g.at("t5_num_buckets").is_null());
  }
  if (l.encoder == EncoderKind::learned) {
    REQUIRE(g.at("learned_positions").get<posenc::Index>() == l.learned_positions);
    REQUIRE(g.at("learned_offset").get<posenc::Index>() == l.learned_offset);
  } else {
    REQUIRE(g.at("learned_positions").is_null());
  }
  if (l.encoder == EncoderKind::bert_relative)
    REQUIRE(g.at("bert_relative_type").get<std::string>() ==
            std::string(name_of(l.bert_relative_type)));
  else
    REQUIRE(g.at("bert_relative_type").is_null());
  if (l.encoder == EncoderKind::deberta) {
    REQUIRE(g.at("deberta_position_buckets").get<posenc::Index>() == l.deberta.position_buckets);
    REQUIRE(g.at("deberta_max_relative_positions").get<posenc::Index>() ==
            l.deberta.max_relative_positions);
    auto terms = g.at("deberta_pos_att_type").get<std::vector<std::string>>();
    std::sort(terms.begin(), terms.end());
    const bool c2p = std::count(terms.begin(), terms.end(), "c2p") != 0;
    const bool p2c = std::count(terms.begin(), terms.end(), "p2c") != 0;
    REQUIRE(l.deberta.terms == (c2p && p2c ? posenc::DebertaTerms::both
                                : c2p      ? posenc::DebertaTerms::c2p
                                           : posenc::DebertaTerms::p2c));
  } else {
    REQUIRE(g.at("deberta_pos_att_type").is_null());
  }
}

}  // namespace

TEST_CASE("hf: every fixture config gives the reference's layers", "[hf]") {
  const auto names = golden_names();
  REQUIRE(names.size() >= 23);
  for (const auto& name : names) {
    INFO("fixture " << name);
    const json golden = read_json(hf_dir() + "/golden/" + name + ".json");
    const ModelConfig m = posenc::hf::read_config(hf_dir() + "/configs/" + name + ".json");
    REQUIRE(m.model_type == golden.at("model_type").get<std::string>());
    REQUIRE(m.hidden_size == golden.at("hidden_size").get<posenc::Index>());
    const json& layers = golden.at("layers");
    REQUIRE(m.layers.size() == layers.size());
    for (std::size_t i = 0; i < layers.size(); ++i) {
      INFO("layer " << i);
      check_layer(m.layers[i], layers[i], m.max_positions);
    }
  }
}

TEST_CASE("hf: every fixture's layers build their encoders and attention options", "[hf]") {
  for (const auto& name : golden_names()) {
    INFO("fixture " << name);
    const ModelConfig m = posenc::hf::read_config(hf_dir() + "/configs/" + name + ".json");
    for (const LayerConfig& l : m.layers) {
      const auto o = posenc::hf::attention_options<float>(l);
      REQUIRE(o.heads == l.heads);
      REQUIRE(o.resolved_kv_heads() == l.kv_heads);
      REQUIRE(*o.scale == static_cast<float>(l.scale));
      const bool tables = l.encoder == EncoderKind::t5 || l.encoder == EncoderKind::deberta ||
                          l.encoder == EncoderKind::bert_relative ||
                          l.encoder == EncoderKind::transformer_xl;
      if (tables) {
        REQUIRE_THROWS_WITH(posenc::hf::make_encoder<float>(l),
                            Catch::Contains("tables come from the checkpoint"));
      } else {
        const auto e = posenc::hf::make_encoder<float>(l);
        const char* want = l.encoder == EncoderKind::learned ? "none" : name_of(l.encoder).data();
        INFO(want);
        switch (e.index()) {
          case 0:
            REQUIRE(std::string(want) == "none");
            break;
          case 1:
            REQUIRE(std::string(want) == "rope");
            break;
          case 2:
            REQUIRE(std::string(want) == "mrope");
            break;
          case 3:
            REQUIRE(std::string(want) == "alibi");
            break;
          case 4:
            REQUIRE(std::string(want) == "temperature");
            break;
          default:
            FAIL("unexpected alternative " << e.index());
        }
      }
    }
  }
}

namespace {

ModelConfig parse(const std::string& text) {
  return posenc::hf::parse_config(json::parse(text));
}

const char* llama_base = R"({"model_type": "llama", "hidden_size": 256, "num_attention_heads": 4,
  "num_key_value_heads": 2, "num_hidden_layers": 2, "max_position_embeddings": 4096,
  "rope_theta": 10000.0)";

std::string llama_with(const std::string& extra) {
  return std::string(llama_base) + extra + "}";
}

}  // namespace

TEST_CASE("hf: rope_scaling and rope_parameters spell the same parameters", "[hf]") {
  const auto a = parse(llama_with(
      R"(, "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024})"));
  const auto b = parse(llama_with(
      R"(, "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024, "rope_theta": 10000.0})"));
  const auto fa = posenc::hf::rotary_encoding<double>(a.layer(0)).frequencies(0);
  const auto fb = posenc::hf::rotary_encoding<double>(b.layer(1)).frequencies(0);
  REQUIRE(fa == fb);
  REQUIRE(a.layer(0).rotary.scaling == posenc::RopeScaling::yarn);
  REQUIRE(*a.layer(0).rotary.original_max_positions == 1024);
  REQUIRE(*a.layer(0).rotary.factor == 4.0);
  // yarn without a factor: max_position_embeddings / M.
  const auto c = parse(llama_with(
      R"(, "rope_scaling": {"rope_type": "yarn", "original_max_position_embeddings": 1024})"));
  REQUIRE(*c.layer(0).rotary.factor == 4.0);
}

TEST_CASE("hf: bad and contradictory fields are errors naming field and value", "[hf]") {
  using posenc_test::require_error;
  require_error([] { parse(R"({"model_type": "llama"})"); }, {"hidden size missing"});
  require_error([] { parse(R"([1, 2])"); }, {"expected a JSON object"});
  require_error([] { parse(R"({"model_type": "gpt5", "hidden_size": 8})"); },
                {"model_type = gpt5", "not a model type posenc knows", "llama"});
  require_error([] { parse(llama_with(R"(, "rope_scaling": {"rope_type": "linear"})")); },
                {"rope_type linear needs factor"});
  require_error(
      [] {
        parse(llama_with(R"(, "rope_scaling": {"rope_type": "linear", "factor": 2, "beta": 1})"));
      },
      {"rope_scaling.beta = 1", "not a field of rope_type linear"});
  require_error([] { parse(llama_with(R"(, "rope_scaling": {"rope_type": "su", "factor": 2})")); },
                {"rope_scaling.rope_type = su", "not a rope_type posenc knows"});
  require_error(
      [] {
        parse(llama_with(
            R"(, "rope_scaling": {"rope_type": "linear", "type": "yarn", "factor": 2})"));
      },
      {"rope_type = linear", "type = yarn", "contradict"});
  require_error(
      [] { parse(llama_with(R"(, "rope_scaling": {"rope_type": "linear", "factor": "2"})")); },
      {"rope_scaling.factor = \"2\"", "expected a number"});
  require_error(
      [] {
        parse(llama_with(
            R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4})"));
      },
      {"rope_type llama3 needs original_max_position_embeddings"});
  require_error(
      [] {
        parse(llama_with(
            R"(, "rope_scaling": {"rope_type": "linear", "factor": 2}, "rope_parameters": {"rope_type": "default"})"));
      },
      {"rope_parameters and rope_scaling are both given"});
  require_error([] { parse(llama_with(R"(, "num_key_value_heads": 3)")); },
                {"num_key_value_heads = 3", "divide num_attention_heads = 4"});
  require_error([] { parse(llama_with(R"(, "partial_rotary_factor": 1.5)")); },
                {"partial rotary factor 1.5", "(0, 1]"});
  require_error([] { parse(llama_with(R"(, "partial_rotary_factor": 0.5, "rotary_pct": 0.25)")); },
                {"partial_rotary_factor = 0.5", "rotary_pct = 0.25", "contradict"});
  require_error([] { parse(llama_with(R"(, "rope_theta": -1.0)")); }, {"rope_theta = -1"});
  require_error([] { parse(llama_with(R"(, "layer_types": ["full_attention"])")); },
                {"layer_types must be an array of num_hidden_layers = 2"});
  require_error([] { parse(llama_with(R"(, "layer_types": ["full_attention", "local"])")); },
                {"layer_types[1] = \"local\"", "full_attention"});
  require_error(
      [] { parse(llama_with(R"(, "layer_types": ["full_attention", "sliding_attention"])")); },
      {"layer 1 is sliding_attention but sliding_window is not set"});
  require_error(
      [] {
        parse(llama_with(
            R"(, "rope_scaling": {"rope_type": "longrope", "short_factor": [1, 1], "long_factor": [1, 1]})"));
      },
      {"short_factor has 2 entries", "R/2 = 32"});
  require_error(
      [] {
        parse(R"({"model_type": "deberta-v2", "hidden_size": 64, "num_attention_heads": 2,
          "num_hidden_layers": 1, "max_position_embeddings": 512, "relative_attention": true,
          "pos_att_type": ["c2p", "p2p"]})");
      },
      {"pos_att_type", "p2p is not one of c2p, p2c"});
  require_error([] { posenc::hf::read_config("/nonexistent/config.json"); },
                {"/nonexistent/config.json", "cannot open"});
}

TEST_CASE("hf: a layer index outside the model is an error", "[hf]") {
  const auto m = parse(llama_with(""));
  posenc_test::require_error([&] { m.layer(2); }, {"layer 2 is outside 0 .. 1"});
}

TEST_CASE("hf: GPT-2's scale flags", "[hf]") {
  const char* base = R"({"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 3,
    "n_positions": 128)";
  const auto by_layer = parse(std::string(base) + R"(, "scale_attn_by_inverse_layer_idx": true})");
  for (posenc::Index l = 0; l < 3; ++l)
    REQUIRE(close(by_layer.layer(l).scale, 0.25 / static_cast<double>(l + 1)));
  const auto unscaled = parse(std::string(base) + R"(, "scale_attn_weights": false})");
  REQUIRE(unscaled.layer(2).scale == 1.0);
}
