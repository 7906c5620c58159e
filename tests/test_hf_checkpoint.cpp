// posenc::hf::load_layer: one attention layer of a Hugging Face checkpoint (config.json and
// .safetensors by the model's own tensor names) against tests/hf/layers, whose outputs
// tests/reference/make_hf_layers.py computed in float64 by transcribing each model's attention
// module (its projections, fused layouts, position mechanism, masks and scale).
#include <posenc/hf_checkpoint.hpp>

#include <catch2/catch.hpp>

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using posenc::Index;
using posenc::Matrix;

std::string layers_dir() {
  return std::string(POSENC_TEST_HF_DIR) + "/layers";
}

std::vector<std::string> entries(const std::string& dir, bool want_dirs) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (const dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st {};
    const bool is_dir = stat((dir + "/" + n).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir == want_dirs) out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

template <class T>
Matrix<T> read_matrix(const std::string& path) {
  const auto a = posenc_npy::read_npy(path);
  REQUIRE(a.shape.size() == 2);
  Matrix<T> m(a.shape[0], a.shape[1]);
  for (Index i = 0; i < m.size(); ++i)
    m.data()[i] = static_cast<T>(a.as_double(i));
  return m;
}

posenc::Positions read_positions(const std::string& path) {
  const auto a = posenc_npy::read_npy(path);
  std::vector<std::int64_t> v(static_cast<std::size_t>(a.size()));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = a.as_int(static_cast<std::int64_t>(i));
  return posenc::Positions(v);
}

/// The layer (ModelConfig::layers index) an output file is for: y_L<l>.npy, or T5's
/// y_enc<l>.npy / y_dec<l>.npy (the decoder's layers follow the encoder's).
Index layer_of(const std::string& file, const posenc::hf::ModelConfig& m) {
  const std::string stem = file.substr(0, file.size() - 4);
  if (stem.rfind("y_L", 0) == 0) return std::stoi(stem.substr(3));
  if (stem.rfind("y_enc", 0) == 0) return std::stoi(stem.substr(5));
  if (stem.rfind("y_dec", 0) == 0) {
    Index encoder_layers = 0;
    for (const auto& l : m.layers)
      encoder_layers += l.decoder_stack ? 0 : 1;
    return encoder_layers + std::stoi(stem.substr(5));
  }
  FAIL("unexpected output file " << file);
  return -1;
}

template <class T>
void check_case(const std::string& name, double rel_tolerance) {
  const std::string dir = layers_dir() + "/" + name;
  const auto m = posenc::hf::read_config(dir + "/config.json");
  const posenc::safetensors::Checkpoint ck(dir);
  const Matrix<T> x = read_matrix<T>(dir + "/x.npy");
  const posenc::Positions pos = read_positions(dir + "/positions.npy");
  int outputs = 0;
  for (const auto& f : entries(dir, false)) {
    if (f.rfind("y_", 0) != 0 || f.size() < 5 || f.substr(f.size() - 4) != ".npy") continue;
    INFO("case " << name << ", " << f);
    const Index l = layer_of(f, m);
    const Matrix<double> want = read_matrix<double>(dir + "/" + f);
    const auto layer = posenc::hf::load_layer<T>(m, l, ck);
    const Matrix<T> y = layer(x, pos);
    REQUIRE(y.rows() == want.rows());
    REQUIRE(y.cols() == want.cols());
    const double err = posenc_test::max_abs_diff(y.template cast<double>(), want);
    const double mag = want.cwiseAbs().maxCoeff();
    INFO("max |y - reference| = " << err << ", max |reference| = " << mag);
    REQUIRE(mag > 0.0);
    REQUIRE(err <= rel_tolerance * mag);
    ++outputs;
  }
  INFO("case " << name);
  REQUIRE(outputs >= 2);
}

}  // namespace

TEST_CASE("hf checkpoint: every reference layer in double", "[hf][checkpoint]") {
  const auto cases = entries(layers_dir(), true);
  REQUIRE(cases.size() >= 14);
  for (const auto& c : cases)
    check_case<double>(c, 1e-10);
}

TEST_CASE("hf checkpoint: every reference layer in float", "[hf][checkpoint]") {
  for (const auto& c : entries(layers_dir(), true))
    check_case<float>(c, 2e-5);
}

TEST_CASE("hf checkpoint: learned tables with their offset", "[hf][checkpoint]") {
  for (const char* name : {"gpt2-conv1d", "opt", "bert-absolute"}) {
    INFO("case " << name);
    const std::string dir = layers_dir() + "/" + name;
    const auto m = posenc::hf::read_config(dir + "/config.json");
    const posenc::safetensors::Checkpoint ck(dir);
    const auto table = posenc::hf::load_position_table<double>(m, ck);
    const posenc::Positions pos = read_positions(dir + "/positions.npy");
    const Matrix<double> want = read_matrix<double>(dir + "/pe.npy");
    Matrix<double> x = Matrix<double>::Zero(pos.size(), m.hidden_size);
    table.add_to_input(x, pos);
    REQUIRE(posenc_test::max_abs_diff(x, want) == 0.0);
  }
}

TEST_CASE("hf checkpoint: a config that does not fit its checkpoint is an error",
          "[hf][checkpoint]") {
  using posenc_test::require_error;
  const std::string dir = layers_dir() + "/llama3-gqa";
  const posenc::safetensors::Checkpoint ck(dir);
  auto j = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
  j["num_key_value_heads"] = 4;
  require_error([&] { posenc::hf::load_layer<float>(posenc::hf::parse_config(j), 0, ck); },
                {"model.layers.0.self_attn.k_proj.weight", "[32, 32]", "expected [64, 32]"});
  // A name the checkpoint does not have: the reader lists close names.
  j = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
  j["model_type"] = "phi3";
  require_error([&] { posenc::hf::load_layer<float>(posenc::hf::parse_config(j), 0, ck); },
                {"qkv_proj.weight", "q_proj.weight"});
  // DeepSeek's latent attention is refused, naming it.
  const auto ds =
      posenc::hf::read_config(std::string(POSENC_TEST_HF_DIR) + "/configs/deepseek-v3.json");
  require_error([&] { posenc::hf::load_layer<float>(ds, 0, ck); },
                {"multi-head latent attention", "value head size 128"});
}
