// posenc::training (posenc/training.hpp, posenc/training_io.hpp): the model's full backward pass
// against central finite differences in double for several encoders, Adam against a hand
// transcription of Kingma & Ba's Algorithm 1, clipping, decoupled weight decay, determinism,
// a tiny copy task learnt in float, and save/load of every trained tensor as .npy files.
#include <posenc/posenc.hpp>
#include <posenc/training.hpp>
#include <posenc/training_io.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using posenc::Index;
using posenc::Matrix;
using posenc::Vector;
namespace tr = posenc::training;

tr::ModelConfig tiny_config(std::uint64_t seed = 7) {
  tr::ModelConfig c;
  c.vocab = 7;
  c.dim = 8;
  c.layers = 2;
  c.heads = 2;
  c.seed = seed;
  return c;
}

/// Two sequences (N = 6 and N = 4), some targets ignored.
std::vector<tr::Sequence> tiny_batch() {
  tr::Sequence a;
  a.tokens = {3, 1, 4, 1, 5, 6};
  a.targets = {1, tr::ignore_index, 1, 5, 6, 2};
  tr::Sequence b = tr::Sequence::next_token({0, 2, 6, 2});
  return {a, b};
}

/// Perturbs the model's parameters away from the initialisation (gains 1, biases 0), so that
/// every term of the backward pass is exercised.
template <class E>
void perturb(tr::Model<E>& m, std::uint64_t seed) {
  tr::NormalSource rng(seed);
  for (const auto& t : m.parameters().tensors())
    for (Index e = 0; e < t.size(); ++e)
      t.data[e] += 0.1 * rng();
}

/// Every entry of every trained tensor: the analytic gradient against
/// (L(p + h) - L(p - h)) / 2h.
template <class E>
void check_model_fd(tr::Model<E>& m, const std::vector<tr::Sequence>& batch,
                    const std::string& what) {
  INFO(what);
  auto g = m.zero_gradients();
  const double l0 = m.accumulate_gradients(batch, g);
  REQUIRE(std::fabs(l0 - m.loss(batch)) < 1e-12);
  const auto params = m.parameters();
  const auto grads = g.list();
  REQUIRE(params.size() == grads.size());
  const double h = 1e-5;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    const auto& gr = grads[i];
    REQUIRE(p.name == gr.name);
    REQUIRE(p.size() == gr.size());
    double scale = 1e-3;
    for (Index e = 0; e < gr.size(); ++e)
      scale = std::max(scale, std::fabs(gr.data[e]));
    for (Index e = 0; e < p.size(); ++e) {
      double& x = p.data[e];
      const double keep = x;
      x = keep + h;
      const double up = m.loss(batch);
      x = keep - h;
      const double down = m.loss(batch);
      x = keep;
      const double fd = (up - down) / (2 * h);
      INFO(p.name << "[" << e / p.cols << ", " << e % p.cols << "] analytic " << gr.data[e]
                  << " finite difference " << fd);
      REQUIRE(std::fabs(fd - gr.data[e]) <= 1e-6 * scale + 1e-7 * std::fabs(fd));
    }
  }
}

}  // namespace

TEST_CASE("training: the model's backward pass against finite differences", "[training]") {
  const auto batch = tiny_batch();
  const auto cfg = tiny_config();
  const Index dh = cfg.dim / cfg.heads;
  {
    tr::Model<posenc::NoEncoding<double>> m(cfg, posenc::NoEncoding<double>{});
    perturb(m, 1);
    check_model_fd(m, batch, "none");
  }
  {
    tr::Model<posenc::SinusoidalEncoding<double>> m(cfg, posenc::SinusoidalEncoding<double>(8));
    perturb(m, 2);
    check_model_fd(m, batch, "sinusoidal");
  }
  {
    using L = posenc::LearnedEncoding<double>;
    tr::Model<L> m(cfg, L::normal(16, 8, 99, 0.5));
    perturb(m, 3);
    REQUIRE(m.parameters().tensors().back().name == "encoder.table");
    check_model_fd(m, batch, "learned");
  }
  {
    tr::Model<posenc::RotaryEncoding<double>> m(cfg, posenc::RotaryEncoding<double>(dh));
    perturb(m, 4);
    check_model_fd(m, batch, "RoPE");
  }
  {
    tr::Model<posenc::AlibiEncoding<double>> m(cfg, posenc::AlibiEncoding<double>(2));
    perturb(m, 5);
    check_model_fd(m, batch, "ALiBi");
  }
  {
    using T5 = posenc::T5Encoding<double>;
    const Matrix<double> t0 = posenc_test::random_matrix<double>(8, 2, 41, 0.5);
    const Matrix<double> t1 = posenc_test::random_matrix<double>(8, 2, 42, 0.5);
    auto c = cfg;
    c.attention_scale = 1.0;
    tr::Model<T5> shared(c, T5(t0, posenc::T5Options{16, false}));
    perturb(shared, 6);
    check_model_fd(shared, batch, "T5, one table shared by the layers");
    tr::Model<T5> per_layer(c, {T5(t0, {16, false}), T5(t1, {16, false})});
    perturb(per_layer, 7);
    REQUIRE(per_layer.parameters().tensors().back().name == "layer1.encoder.table");
    check_model_fd(per_layer, batch, "T5, one table per layer");
  }
  {
    auto c = cfg;
    c.causal = false;
    c.kv_heads = 1;
    c.layers = 1;
    c.mlp_dim = 12;
    tr::Model<posenc::RotaryEncoding<double>> m(c, posenc::RotaryEncoding<double>(dh));
    perturb(m, 8);
    check_model_fd(m, batch, "RoPE, bidirectional, MQA, 1 layer, F = 12");
  }
  {
    auto c = cfg;
    c.activation = tr::Activation::relu;
    tr::Model<posenc::AlibiEncoding<double>> m(c, posenc::AlibiEncoding<double>(2));
    perturb(m, 9);
    check_model_fd(m, batch, "ALiBi, ReLU");
  }
}

TEST_CASE("training: Adam's first steps against Algorithm 1 on a quadratic", "[training]") {
  // f(theta) = (theta_0 - 3)^2 + 10 (theta_1 + 1)^2
  const auto grad = [](double a, double b) {
    return std::vector<double>{2 * (a - 3), 20 * (b + 1)};
  };
  for (const double wd : {0.0, 0.1}) {
    INFO("weight decay " << wd);
    tr::AdamOptions o;
    o.learning_rate = 0.1;
    o.beta1 = 0.8;
    o.beta2 = 0.95;
    o.epsilon = 1e-3;
    o.weight_decay = wd;
    tr::Adam<double> adam(o);
    Matrix<double> theta(1, 2);
    theta << 0.5, 0.25;
    Matrix<double> g(1, 2);
    // the transcription: plain scalars
    double th[2] = {0.5, 0.25}, m[2] = {0, 0}, v[2] = {0, 0};
    for (int t = 1; t <= 6; ++t) {
      const auto gg = grad(theta(0, 0), theta(0, 1));
      g << gg[0], gg[1];
      tr::ParameterList<double> p;
      p.add("theta", theta);  // a matrix: decayed
      tr::GradientList<double> gl;
      gl.add("theta", g);
      adam.step(p, gl);
      const auto hg = grad(th[0], th[1]);
      for (int i = 0; i < 2; ++i) {
        m[i] = 0.8 * m[i] + 0.2 * hg[i];
        v[i] = 0.95 * v[i] + 0.05 * hg[i] * hg[i];
        const double mh = m[i] / (1 - std::pow(0.8, t)), vh = v[i] / (1 - std::pow(0.95, t));
        th[i] -= 0.1 * wd * th[i];
        th[i] -= 0.1 * mh / (std::sqrt(vh) + 1e-3);
      }
      CHECK(adam.steps() == t);
      CHECK(theta(0, 0) == Approx(th[0]).epsilon(1e-14));
      CHECK(theta(0, 1) == Approx(th[1]).epsilon(1e-14));
    }
    if (wd == 0.0) {  // the first step moves each coordinate by about -lr sign(g)
      CHECK(theta(0, 0) > 0.5);
      CHECK(theta(0, 1) < 0.25);
    }
  }
}

TEST_CASE("training: global gradient-norm clipping", "[training]") {
  tr::AdamOptions o;
  o.learning_rate = 0.1;
  o.epsilon = 1.0;  // large: the step then depends on the gradient's size
  const auto run = [&](double clip, double g0, double g1) {
    auto oo = o;
    oo.clip_norm = clip;
    tr::Adam<double> adam(oo);
    Matrix<double> a(1, 1);
    Vector<double> b(1);
    a << 1.0;
    b << 2.0;
    Matrix<double> ga(1, 1);
    Vector<double> gb(1);
    ga << g0;
    gb << g1;
    tr::ParameterList<double> p;
    p.add("a", a).add("b", b);
    tr::GradientList<double> g;
    g.add("a", ga).add("b", gb);
    adam.step(p, g);
    adam.step(p, g);
    return std::vector<double>{a(0, 0), b(0), adam.last_gradient_norm()};
  };
  // ||(3, 4)|| = 5 clipped to 1: as the gradient (0.6, 0.8) unclipped
  const auto clipped = run(1.0, 3.0, 4.0), scaled = run(0.0, 0.6, 0.8);
  CHECK(clipped[0] == Approx(scaled[0]).epsilon(1e-14));
  CHECK(clipped[1] == Approx(scaled[1]).epsilon(1e-14));
  CHECK(clipped[2] == Approx(5.0));
  // below the threshold nothing changes
  const auto loose = run(10.0, 3.0, 4.0), plain = run(0.0, 3.0, 4.0);
  CHECK(loose[0] == plain[0]);
  CHECK(loose[1] == plain[1]);
  CHECK(plain[0] != clipped[0]);
}

TEST_CASE("training: decoupled weight decay", "[training]") {
  tr::AdamOptions o;
  o.learning_rate = 0.01;
  o.weight_decay = 0.5;
  tr::Adam<double> adam(o);
  Matrix<double> w(2, 2);
  w << 1, -2, 3, -4;
  Vector<double> bias(2);
  bias << 1, 2;
  const Matrix<double> w0 = w;
  const Vector<double> b0 = bias;
  const Matrix<double> gw = Matrix<double>::Zero(2, 2);
  const Vector<double> gb = Vector<double>::Zero(2);
  tr::ParameterList<double> p;
  p.add("w", w).add("bias", bias);  // a matrix decays, a vector (by default) does not
  tr::GradientList<double> g;
  g.add("w", gw).add("bias", gb);
  adam.step(p, g);
  // zero gradient: the Adam term is 0 / (0 + eps) = 0, so only the decay moves w
  CHECK((w - w0 * (1 - 0.01 * 0.5)).cwiseAbs().maxCoeff() < 1e-15);
  CHECK(bias == b0);
  // in the model: projections decay, embedding, norms, biases and encoder tables do not
  using L = posenc::LearnedEncoding<float>;
  tr::Model<L> m(tiny_config(), L::normal(8, 8, 1));
  for (const auto& t : m.parameters().tensors()) {
    const bool proj = t.name.find(".w") != std::string::npos || t.name == "readout";
    INFO(t.name);
    CHECK(t.decay == proj);
  }
}

TEST_CASE("training: the loss falls on a tiny copy task (float, RoPE)", "[training]") {
  // [a_0 .. a_4, SEP, a_0 .. a_4] over 6 symbols; the second half is predicted.
  const Index k = 5, symbols = 6, sep = symbols;
  std::mt19937_64 rng(2024);
  const auto sample = [&] {
    std::vector<std::int64_t> t;
    for (Index i = 0; i < k; ++i)
      t.push_back(static_cast<std::int64_t>(rng() % symbols));
    t.push_back(sep);
    for (Index i = 0; i < k; ++i)
      t.push_back(t[static_cast<std::size_t>(i)]);
    auto s = tr::Sequence::next_token(t);
    for (Index i = 0; i < k; ++i)
      s.targets[static_cast<std::size_t>(i)] = tr::ignore_index;
    return s;
  };
  std::vector<tr::Sequence> held_out;
  for (int i = 0; i < 32; ++i)
    held_out.push_back(sample());
  tr::ModelConfig c;
  c.vocab = symbols + 1;
  c.dim = 32;
  c.layers = 2;
  c.heads = 2;
  c.seed = 11;
  tr::Model<posenc::RotaryEncoding<float>> m(c, posenc::RotaryEncoding<float>(16));
  tr::AdamOptions o;
  o.learning_rate = 3e-3;
  o.clip_norm = 1.0;
  tr::Adam<float> adam(o);
  const float before = m.loss(held_out);
  const int steps = 300;
  for (int s = 0; s < steps; ++s) {
    std::vector<tr::Sequence> batch;
    for (int i = 0; i < 8; ++i)
      batch.push_back(sample());
    m.train_step(batch, adam);
  }
  const float after = m.loss(held_out);
  INFO("held-out loss " << before << " -> " << after << " after " << steps << " steps");
  CHECK(std::log(float(symbols)) == Approx(1.79).margin(0.01));
  REQUIRE(after < before / 10);  // measured: 2.71 -> 0.0009
}

namespace {

/// A batch of next-token sequences of length n over vocabulary v from a seeded generator.
std::vector<tr::Sequence> random_batch(Index count, Index n, Index v, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<tr::Sequence> out;
  for (Index s = 0; s < count; ++s) {
    std::vector<std::int64_t> t;
    for (Index i = 0; i < n; ++i)
      t.push_back(static_cast<std::int64_t>(rng() % v));
    out.push_back(tr::Sequence::next_token(t));
  }
  return out;
}

template <class E>
std::vector<Matrix<double>> snapshot(tr::Model<E>& m) {
  std::vector<Matrix<double>> out;
  for (const auto& t : m.parameters().tensors()) {
    Matrix<double> a(t.rows, t.cols);
    for (Index e = 0; e < t.size(); ++e)
      a.data()[e] = static_cast<double>(t.data[e]);
    out.push_back(a);
  }
  return out;
}

}  // namespace

TEST_CASE("training: one seed, one result", "[training]") {
  using T5 = posenc::T5Encoding<float>;
  const Matrix<float> table = Matrix<float>::Zero(8, 2);
  const auto batch = random_batch(4, 9, 7, 3);
  const auto run = [&](std::uint64_t seed) {
    tr::Model<T5> m(tiny_config(seed), T5(table, {16, false}));
    tr::AdamOptions o;
    o.learning_rate = 1e-2;
    o.weight_decay = 0.01;
    o.clip_norm = 0.5;
    tr::Adam<float> adam(o);
    for (int s = 0; s < 20; ++s)
      m.train_step(batch, adam);
    return snapshot(m);
  };
  const auto a = run(5), b = run(5), c = run(6);
  REQUIRE(a.size() == b.size());
  bool any_difference = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i] == b[i]);  // bit for bit
    any_difference = any_difference || a[i] != c[i];
  }
  CHECK(any_difference);
  // the T5 table was trained (zero at the start)
  CHECK(a.back().cwiseAbs().maxCoeff() > 0);
  // the generator is portable: the first draws of seed 0 (mt19937_64, Box-Muller)
  tr::NormalSource n0(0);
  std::mt19937_64 g(0);
  const double u1 = (static_cast<double>(g() >> 11) + 0.5) / 9007199254740992.0;
  const double u2 = (static_cast<double>(g() >> 11) + 0.5) / 9007199254740992.0;
  CHECK(n0() == std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  CHECK(n0() == std::sqrt(-2 * std::log(u1)) * std::sin(6.283185307179586 * u2));
}

TEST_CASE("training: save and load every trained tensor as .npy", "[training]") {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("posenc_training_" + std::to_string(std::random_device{}()));
  using L = posenc::LearnedEncoding<float>;
  auto cfg = tiny_config(1);
  tr::Model<L> m(cfg, L::normal(12, 8, 4));
  tr::Adam<float> adam;
  const auto batch = random_batch(2, 6, 7, 9);
  for (int s = 0; s < 3; ++s)
    m.train_step(batch, adam);
  const auto files = tr::save(m, dir.string());
  REQUIRE(files.size() == m.parameters().size());
  for (const char* name : {"embedding", "layer0.wq", "layer1.norm2", "layer1.b1", "norm_f",
                           "readout", "readout_bias", "encoder.table"})
    CHECK(fs::is_regular_file(dir / (std::string(name) + ".npy")));

  // the files are numpy's: the tools' reader sees the dtype, shape and values
  const auto emb = posenc_npy::read_npy((dir / "embedding.npy").string());
  CHECK(emb.dtype == "<f4");
  CHECK(emb.shape == std::vector<std::int64_t>{7, 8});
  CHECK(static_cast<float>(emb.as_double(9)) == m.weights().embedding(1, 1));
  const auto b1 = posenc_npy::read_npy((dir / "layer0.b1.npy").string());
  CHECK(b1.shape == std::vector<std::int64_t>{32});
  const auto tab = posenc_npy::read_npy((dir / "encoder.table.npy").string());
  CHECK(tab.shape == std::vector<std::int64_t>{12, 8});

  // a model with another seed and a zero table becomes the saved one
  tr::Model<L> other(tiny_config(2), L(12, 8));
  tr::load(other, dir.string());
  CHECK(snapshot(other) == snapshot(m));
  CHECK(other.logits({1, 2, 3}) == m.logits({1, 2, 3}));

  // numpy float64 files are read too (converted)
  Matrix<double> ro = m.weights().readout.cast<double>() * 2.0;
  posenc_npy::write_npy((dir / "readout.npy").string(), "<f8", {8, 7}, ro.data());
  tr::load(other, dir.string());
  CHECK(other.weights().readout == ro.cast<float>());
  // double models save '<f8'
  tr::Model<posenc::NoEncoding<double>> md(cfg, posenc::NoEncoding<double>{});
  const fs::path ddir = dir / "double";
  tr::save(md, ddir.string());
  CHECK(posenc_npy::read_npy((ddir / "readout.npy").string()).dtype == "<f8");

  // errors name the file; a failed load changes nothing
  const auto before = snapshot(other);
  posenc_npy::write_npy((dir / "layer1.wk.npy").string(), "<f8", {8, 3}, ro.data());
  CHECK_THROWS_WITH(tr::load(other, dir.string()),
                    Catch::Contains("layer1.wk.npy has shape (8, 3), the model's 'layer1.wk' is "
                                    "(8, 8)"));
  CHECK(snapshot(other) == before);
  fs::remove(dir / "layer1.wk.npy");
  CHECK_THROWS_WITH(tr::load(other, dir.string()), Catch::Contains("layer1.wk.npy is missing"));
  std::vector<std::int64_t> ints(56, 1);
  posenc_npy::write_npy((dir / "layer1.wk.npy").string(), "<i8", {8, 7}, ints.data());
  CHECK_THROWS_WITH(tr::load(other, dir.string()), Catch::Contains("dtype '<i8' is not supported"));
  {
    std::FILE* f = std::fopen((dir / "layer1.wk.npy").string().c_str(), "wb");
    std::fputs("not numpy", f);
    std::fclose(f);
  }
  CHECK_THROWS_WITH(tr::load(other, dir.string()), Catch::Contains("not a .npy file"));
  CHECK_THROWS_WITH(tr::load(other, (dir / "nowhere").string()),
                    Catch::Contains("is not a directory"));
  CHECK(snapshot(other) == before);
  fs::remove_all(dir);
}

TEST_CASE("training: bad configurations and inputs are errors", "[training]") {
  using N = posenc::NoEncoding<float>;
  using M = tr::Model<N>;
  const auto with = [](auto f) {
    auto c = tiny_config();
    f(c);
    return c;
  };
  CHECK_THROWS_WITH(M(with([](auto& c) { c.vocab = 0; }), N{}),
                    Catch::Contains("vocab V = 0 must be > 0"));
  CHECK_THROWS_WITH(M(with([](auto& c) { c.layers = 0; }), N{}),
                    Catch::Contains("layers = 0 is outside 1..4"));
  CHECK_THROWS_WITH(M(with([](auto& c) { c.layers = 5; }), N{}),
                    Catch::Contains("layers = 5 is outside 1..4"));
  CHECK_THROWS_WITH(M(with([](auto& c) { c.heads = 3; }), N{}),
                    Catch::Contains("heads H = 3 does not divide dim D = 8"));
  CHECK_THROWS_WITH(M(with([](auto& c) { c.kv_heads = 3; }), N{}),
                    Catch::Contains("kv_heads H_kv = 3 must divide heads H = 2"));
  CHECK_THROWS_WITH(M(with([](auto& c) { c.norm_epsilon = 0; }), N{}),
                    Catch::Contains("norm_epsilon"));
  CHECK_THROWS_WITH(M(tiny_config(), std::vector<N>(3)),
                    Catch::Contains("3 encoders for 2 layers"));
  using L = posenc::LearnedEncoding<float>;
  CHECK_THROWS_WITH(tr::Model<L>(tiny_config(), {L(8, 8), L(8, 8)}), Catch::Contains("added once"));
  CHECK_THROWS_WITH(tr::Model<L>(tiny_config(), L(8, 6)),
                    Catch::Contains("does not match the model width D = 8"));
  using T5 = posenc::T5Encoding<float>;
  CHECK_THROWS_WITH(tr::Model<T5>(tiny_config(), T5(Matrix<float>::Zero(8, 3))),
                    Catch::Contains("the attention has H = 2"));

  M m(tiny_config(), N{});
  tr::Sequence s = tr::Sequence::next_token({1, 2, 7});
  CHECK_THROWS_WITH(m.loss(s), Catch::Contains("token[2] = 7 is outside the vocabulary [0, 7)"));
  s.tokens = {1, -1, 2};
  CHECK_THROWS_WITH(m.loss(s), Catch::Contains("token[1] = -1 is outside the vocabulary"));
  s = tr::Sequence::next_token({1, 2, 3});
  s.targets[0] = 9;
  CHECK_THROWS_WITH(m.loss(s), Catch::Contains("target[0] = 9 is outside the vocabulary"));
  s.targets = {1, 2};
  CHECK_THROWS_WITH(m.loss(s), Catch::Contains("3 tokens but 2 targets"));
  s.targets = {-1, -1, -1};
  CHECK_THROWS_WITH(m.loss(s), Catch::Contains("no target to predict"));
  CHECK_THROWS_WITH(m.loss(tr::Sequence{}), Catch::Contains("no target"));
  CHECK_THROWS_WITH(m.logits({}), Catch::Contains("a sequence has no tokens"));
  tr::Model<L> learned(tiny_config(), L(4, 8));
  CHECK_THROWS_WITH(learned.loss(tr::Sequence::next_token({1, 2, 3, 4, 5})),
                    Catch::Contains("outside the table: L_max = 4"));
  auto g = M(with([](auto& c) { c.layers = 1; }), N{}).zero_gradients();
  CHECK_THROWS_WITH(m.accumulate_gradients({tr::Sequence::next_token({1, 2})}, g),
                    Catch::Contains("the gradients are not this model's"));

  for (const auto& [o, what] : std::vector<std::pair<tr::AdamOptions, std::string>>{
           {{0.0}, "learning_rate = 0 must be finite and > 0"},
           {{1e-3, 1.0}, "beta1 = 1 must be in [0, 1)"},
           {{1e-3, 0.9, -0.1}, "beta2 = -0.10000000000000001 must be in [0, 1)"},
           {{1e-3, 0.9, 0.999, 0.0}, "epsilon = 0 must be finite and > 0"},
           {{1e-3, 0.9, 0.999, 1e-8, -1.0}, "weight_decay = -1 must be finite and >= 0"},
           {{1e-3, 0.9, 0.999, 1e-8, 0.0, -2.0}, "clip_norm = -2 must be finite and >= 0"}}) {
    const auto opts = o;
    CHECK_THROWS_WITH(tr::Adam<float>(opts), Catch::Contains(what));
  }
  tr::Adam<float> adam;
  Matrix<float> a = Matrix<float>::Zero(2, 2), ga = Matrix<float>::Zero(2, 3);
  tr::ParameterList<float> p;
  p.add("a", a);
  tr::GradientList<float> gl;
  CHECK_THROWS_WITH(adam.step(p, gl), Catch::Contains("1 parameter tensors but 0 gradient"));
  gl.add("ga", ga);
  CHECK_THROWS_WITH(adam.step(p, gl),
                    Catch::Contains("'a' is [2, 2], its gradient 'ga' is [2, 3]"));
  Matrix<float> gok = Matrix<float>::Constant(2, 2, std::nanf(""));
  tr::GradientList<float> gn;
  gn.add("a", gok);
  CHECK_THROWS_WITH(adam.step(p, gn), Catch::Contains("the gradient 'a' has non-finite entries"));
  gok.setOnes();
  tr::GradientList<float> g1;
  g1.add("a", gok);
  adam.step(p, g1);
  Matrix<float> b = Matrix<float>::Zero(1, 1);
  p.add("b", b);
  g1.add("b", b);
  CHECK_THROWS_WITH(adam.step(p, g1), Catch::Contains("the optimiser's state has 1"));
}
