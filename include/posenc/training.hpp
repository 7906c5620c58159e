// posenc::training: a small trainer for comparing the position encoders, not a framework.
//
//   Adam / AdamW with global gradient-norm clipping over a list of parameter tensors
//   (ParameterList, GradientList; an encoder's tables through for_each_parameter and
//   Gradients::for_each, posenc/gradients.hpp);
//   Model<E>: a tiny decoder-style Transformer of posenc layers with encoder E, its loss
//   (softmax cross-entropy over the target tokens) and its full backward pass.
//
// The model (pre-norm residual blocks, Xiong et al. 2020; GPT-2, Radford et al. 2019):
//   X_0 = Emb[t] (+ PE(p) once, for an encoder added to the input: sinusoidal, learned)
//   for each block l:  X <- X + Attention_l(RMSNorm(X; g1_l))      (posenc::attention, E)
//                      X <- X + MLP_l(RMSNorm(X; g2_l)),  MLP(h) = act(h W1 + b1) W2 + b2
//   logits = RMSNorm(X; g_f) W_out + b_out;   loss = mean over targets of -log softmax(logits)
// RMSNorm (Zhang & Sennrich 2019): y = x / sqrt(mean(x^2) + eps) o g. act: GELU in its tanh
// form (Hendrycks & Gimpel 2016), 0.5 u (1 + tanh(sqrt(2/pi) (u + 0.044715 u^3))), or ReLU.
// Memory per block: O(N (D + F)) of saved activations; the attention itself keeps O(N D)
// (posenc::attention_backward recomputes its scores tile by tile from the row log-sum-exp).
// Scores are never stored as [N, N]; the logits and their softmax are [N, V].
//
// Training a model with encoder E:
//   posenc::training::ModelConfig cfg;
//   cfg.vocab = 64; cfg.dim = 64; cfg.layers = 2; cfg.heads = 4; cfg.seed = 1;
//   posenc::training::Model<posenc::RotaryEncoding<float>> model(cfg,
//       posenc::RotaryEncoding<float>(cfg.dim / cfg.heads));
//   posenc::training::Adam<float> adam({/*learning_rate*/ 3e-3, 0.9, 0.999, 1e-8,
//                                       /*weight_decay*/ 0.01, /*clip_norm*/ 1.0});
//   for (int step = 0; step < 1000; ++step) {
//     std::vector<posenc::training::Sequence> batch = ...;  // tokens and targets
//     float loss = model.train_step(batch, adam);  // zero_gradients, accumulate_gradients, step
//   }
//   posenc::training::save(model, "run1");  // posenc/training_io.hpp
// Determinism: one seed and one batch order give the same parameters bit for bit at a given
// thread count (the attention backward adds its per-thread sums in thread order).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attention.hpp"
#include "encoder.hpp"
#include "gradients.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN
namespace training {

// --- Parameter and gradient lists --------------------------------------------------------------

/// A view of one trained tensor's contiguous storage ([rows, cols]; a vector is [size, 1]).
template <class T>
struct Tensor {
  std::string name;
  T* data = nullptr;
  Index rows = 0, cols = 0;
  /// Whether AdamW's decoupled weight decay applies (projection matrices only, as minGPT:
  /// not embeddings, norms' gains, biases or position tables).
  bool decay = false;
  /// A Vector (saved as a 1-D array), not a Matrix.
  bool is_vector = false;
  Index size() const { return rows * cols; }
};

template <class T>
struct ConstTensor {
  std::string name;
  const T* data = nullptr;
  Index rows = 0, cols = 0;
  Index size() const { return rows * cols; }
};

namespace detail {
struct parameter_probe {
  template <class N, class M>
  void operator()(const N&, M&) const {}
};
template <class E, class = void>
struct has_parameters_changed : std::false_type {};
template <class E>
struct has_parameters_changed<
    E, posenc::detail::void_t<decltype(std::declval<E&>().parameters_changed())>> : std::true_type {
};

template <class E, class = void>
struct has_for_each_parameter : std::false_type {};
template <class E>
struct has_for_each_parameter<
    E, posenc::detail::void_t<decltype(std::declval<E&>().for_each_parameter(parameter_probe{}))>>
    : std::true_type {};
}  // namespace detail

/// The tensors an optimiser updates, in order.
template <class T>
class ParameterList {
 public:
  ParameterList& add(std::string name, Matrix<T>& m, bool decay = true) {
    items_.push_back({std::move(name), m.data(), m.rows(), m.cols(), decay, false});
    return *this;
  }
  ParameterList& add(std::string name, Vector<T>& v, bool decay = false) {
    items_.push_back({std::move(name), v.data(), v.size(), 1, decay, true});
    return *this;
  }
  /// Every trained tensor of encoder enc (for_each_parameter), named prefix + its name; none
  /// for an encoder without trained parameters.
  template <class E>
  ParameterList& add_encoder(const std::string& prefix, E& enc, bool decay = false) {
    if constexpr (detail::has_for_each_parameter<E>::value)
      enc.for_each_parameter(
          [&](const auto& name, Matrix<T>& m) { add(prefix + std::string(name), m, decay); });
    return *this;
  }
  const std::vector<Tensor<T>>& tensors() const& { return items_; }
  /// By value on a temporary list (`for (auto& t : model.parameters().tensors())` is safe).
  std::vector<Tensor<T>> tensors() && { return std::move(items_); }
  std::size_t size() const { return items_.size(); }
  const Tensor<T>& operator[](std::size_t i) const { return items_[i]; }

 private:
  std::vector<Tensor<T>> items_;
};

/// The gradients matching a ParameterList, in the same order.
template <class T>
class GradientList {
 public:
  GradientList& add(std::string name, const Matrix<T>& m) {
    items_.push_back({std::move(name), m.data(), m.rows(), m.cols()});
    return *this;
  }
  GradientList& add(std::string name, const Vector<T>& v) {
    items_.push_back({std::move(name), v.data(), v.size(), 1});
    return *this;
  }
  /// Every tensor of an encoder's Gradients (Gradients::for_each); none for NoGradients.
  template <class G>
  GradientList& add_encoder(const std::string& prefix, const G& g) {
    g.for_each([&](const auto& name, const Matrix<T>& m) { add(prefix + std::string(name), m); });
    return *this;
  }
  const std::vector<ConstTensor<T>>& tensors() const& { return items_; }
  /// By value on a temporary list (`for (auto& t : model.parameters().tensors())` is safe).
  std::vector<ConstTensor<T>> tensors() && { return std::move(items_); }
  std::size_t size() const { return items_.size(); }
  const ConstTensor<T>& operator[](std::size_t i) const { return items_[i]; }

 private:
  std::vector<ConstTensor<T>> items_;
};

// --- Adam ----------------------------------------------------------------------------------------

struct AdamOptions {
  /// alpha, the step size.
  double learning_rate = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
  /// lambda > 0: decoupled weight decay (AdamW) on the tensors marked `decay`.
  double weight_decay = 0.0;
  /// c > 0: the gradients are scaled by c / ||g|| when their global L2 norm ||g|| (over every
  /// tensor) exceeds c; 0: no clipping.
  double clip_norm = 0.0;
};

/// Adam (Kingma & Ba 2015, Algorithm 1), per element of every tensor at step t = 1, 2, ...:
///   g <- g * min(1, c / ||g||)                   (global norm clipping, when clip_norm c > 0)
///   m <- beta1 m + (1 - beta1) g;   v <- beta2 v + (1 - beta2) g^2
///   m^ = m / (1 - beta1^t);         v^ = v / (1 - beta2^t)
///   theta <- theta - alpha lambda theta          (AdamW, Loshchilov & Hutter 2019, Algorithm 2
///                                                 with eta_t = 1; as PyTorch's AdamW; only on
///                                                 tensors marked decay, when lambda > 0)
///   theta <- theta - alpha m^ / (sqrt(v^) + epsilon)
/// The moments m, v are kept per tensor, created at the first step; later steps must pass
/// lists of the same tensors' shapes.
template <class T>
class Adam {
 public:
  explicit Adam(AdamOptions options = {}) : o_(options) {
    const auto finite = [](double x) { return std::isfinite(x); };
    posenc::detail::require(finite(o_.learning_rate) && o_.learning_rate > 0,
                            "Adam: learning_rate = ", o_.learning_rate, " must be finite and > 0");
    posenc::detail::require(finite(o_.beta1) && o_.beta1 >= 0 && o_.beta1 < 1,
                            "Adam: beta1 = ", o_.beta1, " must be in [0, 1)");
    posenc::detail::require(finite(o_.beta2) && o_.beta2 >= 0 && o_.beta2 < 1,
                            "Adam: beta2 = ", o_.beta2, " must be in [0, 1)");
    posenc::detail::require(finite(o_.epsilon) && o_.epsilon > 0, "Adam: epsilon = ", o_.epsilon,
                            " must be finite and > 0");
    posenc::detail::require(finite(o_.weight_decay) && o_.weight_decay >= 0,
                            "Adam: weight_decay = ", o_.weight_decay, " must be finite and >= 0");
    posenc::detail::require(finite(o_.clip_norm) && o_.clip_norm >= 0,
                            "Adam: clip_norm = ", o_.clip_norm,
                            " must be finite and >= 0 (0: no clipping)");
  }

  const AdamOptions& options() const { return o_; }
  /// Changes alpha (a schedule); the moments are kept.
  void set_learning_rate(double lr) {
    posenc::detail::require(std::isfinite(lr) && lr > 0, "Adam: learning_rate = ", lr,
                            " must be finite and > 0");
    o_.learning_rate = lr;
  }
  /// Steps taken (t of the last step).
  std::int64_t steps() const { return t_; }
  /// The global gradient norm of the last step, before clipping.
  double last_gradient_norm() const { return last_norm_; }

  /// One update of params from grads (the same count of tensors, each of the same shape).
  void step(const ParameterList<T>& params, const GradientList<T>& grads) {
    const std::size_t n = params.size();
    posenc::detail::require(grads.size() == n, "Adam::step: ", n, " parameter tensors but ",
                            grads.size(), " gradient tensors");
    for (std::size_t i = 0; i < n; ++i) {
      const auto& p = params[i];
      const auto& g = grads[i];
      posenc::detail::require(p.rows == g.rows && p.cols == g.cols, "Adam::step: parameter ", i,
                              " '", p.name, "' is [", p.rows, ", ", p.cols, "], its gradient '",
                              g.name, "' is [", g.rows, ", ", g.cols, "]");
    }
    if (t_ == 0) {
      m_.clear();
      v_.clear();
      for (std::size_t i = 0; i < n; ++i) {
        m_.push_back(Vector<T>::Zero(params[i].size()));
        v_.push_back(Vector<T>::Zero(params[i].size()));
      }
    } else {
      posenc::detail::require(m_.size() == n, "Adam::step: ", n,
                              " parameter tensors, the optimiser's state has ", m_.size(),
                              " (use one Adam per list of parameters)");
      for (std::size_t i = 0; i < n; ++i)
        posenc::detail::require(m_[i].size() == params[i].size(), "Adam::step: parameter ", i, " '",
                                params[i].name, "' has ", params[i].size(),
                                " entries, the optimiser's state has ", m_[i].size());
    }
    double sq = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const auto g =
          Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(grads[i].data, grads[i].size());
      const double s = g.template cast<double>().square().sum();
      posenc::detail::require(std::isfinite(s), "Adam::step: the gradient '", grads[i].name,
                              "' has non-finite entries");
      sq += s;
    }
    last_norm_ = std::sqrt(sq);
    const double clip =
        o_.clip_norm > 0 && last_norm_ > o_.clip_norm ? o_.clip_norm / last_norm_ : 1.0;
    ++t_;
    const double c1 = 1.0 - std::pow(o_.beta1, static_cast<double>(t_));
    const double c2 = 1.0 - std::pow(o_.beta2, static_cast<double>(t_));
    const T b1 = static_cast<T>(o_.beta1), b2 = static_cast<T>(o_.beta2);
    const T gscale = static_cast<T>(clip), eps = static_cast<T>(o_.epsilon);
    const T lr = static_cast<T>(o_.learning_rate);
    const T inv_c1 = static_cast<T>(1.0 / c1), inv_c2 = static_cast<T>(1.0 / c2);
    const T decay = static_cast<T>(1.0 - o_.learning_rate * o_.weight_decay);
    for (std::size_t i = 0; i < n; ++i) {
      using A = Eigen::Array<T, Eigen::Dynamic, 1>;
      Eigen::Map<A> p(params[i].data, params[i].size());
      const Eigen::Map<const A> graw(grads[i].data, grads[i].size());
      auto m = m_[i].array();
      auto v = v_[i].array();
      if (clip != 1.0) {
        m = b1 * m + (T(1) - b1) * (gscale * graw);
        v = b2 * v + (T(1) - b2) * (gscale * graw).square();
      } else {
        m = b1 * m + (T(1) - b1) * graw;
        v = b2 * v + (T(1) - b2) * graw.square();
      }
      if (o_.weight_decay > 0 && params[i].decay) p *= decay;
      p -= lr * (m * inv_c1) / ((v * inv_c2).sqrt() + eps);
    }
  }

 private:
  AdamOptions o_;
  std::int64_t t_ = 0;
  double last_norm_ = 0;
  std::vector<Vector<T>> m_, v_;
};

// --- Seeded initialisation -----------------------------------------------------------------------

/// N(0, 1) draws from a std::mt19937_64 (Box-Muller over 53-bit uniforms: the same numbers on
/// every standard library, unlike std::normal_distribution).
class NormalSource {
 public:
  explicit NormalSource(std::uint64_t seed) : rng_(seed) {}
  double operator()() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const double u1 = uniform(), u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 6.283185307179586 * u2;
    spare_ = r * std::sin(a);
    have_spare_ = true;
    return r * std::cos(a);
  }
  /// Fills m with independent N(0, stddev^2) entries, row by row.
  template <class M>
  void fill(M& m, double stddev) {
    for (Index i = 0; i < m.size(); ++i)
      m.data()[i] = static_cast<typename M::Scalar>(stddev * (*this)());
  }

 private:
  double uniform() {  // in (0, 1)
    return (static_cast<double>(rng_() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  }
  std::mt19937_64 rng_;
  double spare_ = 0;
  bool have_spare_ = false;
};

// --- The model -----------------------------------------------------------------------------------

enum class Activation { gelu, relu };

struct ModelConfig {
  /// V tokens, width D, 1..4 blocks, H query heads (H_kv key/value heads, 0: H), MLP width F
  /// (0: 4 D).
  Index vocab = 0;
  Index dim = 0;
  Index layers = 2;
  Index heads = 1;
  Index kv_heads = 0;
  Index mlp_dim = 0;
  Activation activation = Activation::gelu;
  /// Causal self-attention (a language model); false: bidirectional.
  bool causal = true;
  /// The attention's score scale (absent: 1/sqrt(Dh); T5 uses 1).
  std::optional<double> attention_scale;
  /// RMSNorm's epsilon.
  double norm_epsilon = 1e-6;
  /// The initialisation's seed (std::mt19937_64).
  std::uint64_t seed = 0;
};

/// A target < 0 is not predicted (the ignore mask).
constexpr std::int64_t ignore_index = -1;

/// One training sequence: tokens t_0 .. t_{N-1} at positions 0 .. N-1, and at each position
/// the token to predict there (or ignore_index).
struct Sequence {
  std::vector<std::int64_t> tokens;
  std::vector<std::int64_t> targets;

  /// Next-token prediction: targets[i] = tokens[i + 1], the last one ignored.
  static Sequence next_token(std::vector<std::int64_t> tokens) {
    Sequence s;
    s.targets.assign(tokens.size(), ignore_index);
    for (std::size_t i = 0; i + 1 < tokens.size(); ++i)
      s.targets[i] = tokens[i + 1];
    s.tokens = std::move(tokens);
    return s;
  }
};

/// The trained tensors of one block.
template <class T>
struct Block {
  Vector<T> norm1;           // [D]
  Matrix<T> wq, wk, wv, wo;  // [D, H Dh], [D, H_kv Dh] x 2, [H Dh, D]
  Vector<T> norm2;           // [D]
  Matrix<T> w1;              // [D, F]
  Vector<T> b1;              // [F]
  Matrix<T> w2;              // [F, D]
  Vector<T> b2;              // [D]
};

/// The trained tensors of the model apart from the encoders'.
template <class T>
struct Weights {
  Matrix<T> embedding;  // [V, D]
  std::vector<Block<T>> blocks;
  Vector<T> norm_f;        // [D]
  Matrix<T> readout;       // [D, V]
  Vector<T> readout_bias;  // [V]

  /// f(name, tensor, decay) for every tensor, in the order of the parameter lists (W is
  /// Weights or const Weights).
  template <class W, class F>
  static void visit(W& w, F&& f) {
    f(std::string("embedding"), w.embedding, false);
    for (std::size_t l = 0; l < w.blocks.size(); ++l) {
      auto& b = w.blocks[l];
      const std::string p = "layer" + std::to_string(l) + ".";
      f(p + "norm1", b.norm1, false);
      f(p + "wq", b.wq, true);
      f(p + "wk", b.wk, true);
      f(p + "wv", b.wv, true);
      f(p + "wo", b.wo, true);
      f(p + "norm2", b.norm2, false);
      f(p + "w1", b.w1, true);
      f(p + "b1", b.b1, false);
      f(p + "w2", b.w2, true);
      f(p + "b2", b.b2, false);
    }
    f(std::string("norm_f"), w.norm_f, false);
    f(std::string("readout"), w.readout, true);
    f(std::string("readout_bias"), w.readout_bias, false);
  }

  /// The same shapes, zero.
  Weights zeros_like() const {
    Weights z;
    z.embedding = Matrix<T>::Zero(embedding.rows(), embedding.cols());
    z.blocks.resize(blocks.size());
    for (std::size_t l = 0; l < blocks.size(); ++l) {
      const auto& b = blocks[l];
      auto& o = z.blocks[l];
      o.norm1 = Vector<T>::Zero(b.norm1.size());
      o.wq = Matrix<T>::Zero(b.wq.rows(), b.wq.cols());
      o.wk = Matrix<T>::Zero(b.wk.rows(), b.wk.cols());
      o.wv = Matrix<T>::Zero(b.wv.rows(), b.wv.cols());
      o.wo = Matrix<T>::Zero(b.wo.rows(), b.wo.cols());
      o.norm2 = Vector<T>::Zero(b.norm2.size());
      o.w1 = Matrix<T>::Zero(b.w1.rows(), b.w1.cols());
      o.b1 = Vector<T>::Zero(b.b1.size());
      o.w2 = Matrix<T>::Zero(b.w2.rows(), b.w2.cols());
      o.b2 = Vector<T>::Zero(b.b2.size());
    }
    z.norm_f = Vector<T>::Zero(norm_f.size());
    z.readout = Matrix<T>::Zero(readout.rows(), readout.cols());
    z.readout_bias = Vector<T>::Zero(readout_bias.size());
    return z;
  }
};

/// The gradients of a Model<E>: of every weight, and of each encoder object's trained tensors.
template <class E>
struct ModelGradients {
  using T = typename E::Scalar;
  Weights<T> weights;
  std::vector<gradients_t<E>> encoders;

  /// The list an optimiser reads, in the order of Model::parameters().
  GradientList<T> list() const {
    GradientList<T> g;
    Weights<T>::visit(weights,
                      [&](const std::string& name, const auto& t, bool) { g.add(name, t); });
    for (std::size_t i = 0; i < encoders.size(); ++i)
      g.add_encoder(encoder_prefix(i, encoders.size()), encoders[i]);
    return g;
  }
  static std::string encoder_prefix(std::size_t i, std::size_t count) {
    return count == 1 ? std::string("encoder.") : "layer" + std::to_string(i) + ".encoder.";
  }
};

namespace detail {

/// GELU, tanh form, on a whole matrix (Eigen's vectorised tanh): z = 0.5 u (1 + t) with
/// t = tanh(c (u + a u^3)); t is kept for the backward pass.
template <class T>
void gelu_forward(const Matrix<T>& u, Matrix<T>& t, Matrix<T>& z) {
  const T c = static_cast<T>(0.7978845608028654), a = static_cast<T>(0.044715);  // sqrt(2/pi)
  t.resize(u.rows(), u.cols());
  z.resize(u.rows(), u.cols());
  t.array() = (c * (u.array() + a * u.array().cube())).tanh();
  z.array() = T(0.5) * u.array() * (T(1) + t.array());
}
/// du *= gelu'(u) = 0.5 (1 + t) + 0.5 u (1 - t^2) c (1 + 3 a u^2).
template <class T>
void gelu_backward(const Matrix<T>& u, const Matrix<T>& t, Matrix<T>& du) {
  const T c = static_cast<T>(0.7978845608028654), a = static_cast<T>(0.044715);
  du.array() *= T(0.5) * (T(1) + t.array()) + T(0.5) * c * u.array() * (T(1) - t.array().square()) *
                                                  (T(1) + T(3) * a * u.array().square());
}

/// RMSNorm forward: xhat = x r (r_i = 1 / sqrt(mean_j x_ij^2 + eps)), y = xhat o g.
template <class T>
void rms_forward(const Matrix<T>& x, const Vector<T>& g, T eps, Matrix<T>& xhat, Vector<T>& r,
                 Matrix<T>& y) {
  const Index d = x.cols();
  r = (x.rowwise().squaredNorm().array() / static_cast<T>(d) + eps).rsqrt().matrix();
  xhat = r.asDiagonal() * x;
  y = xhat * g.asDiagonal();
}

/// RMSNorm backward given dy: dg += colsum(dy o xhat), returns
/// dx = r o (dxhat - xhat o mean_j(dxhat o xhat)) with dxhat = dy o g.
template <class T>
Matrix<T> rms_backward(const Matrix<T>& dy, const Vector<T>& g, const Matrix<T>& xhat,
                       const Vector<T>& r, Vector<T>& dg) {
  dg += dy.cwiseProduct(xhat).colwise().sum().transpose();
  Matrix<T> dxhat = dy * g.asDiagonal();
  const Vector<T> mean = dxhat.cwiseProduct(xhat).rowwise().sum() / static_cast<T>(xhat.cols());
  dxhat -= mean.asDiagonal() * xhat;
  return r.asDiagonal() * dxhat;
}

}  // namespace detail

/// A tiny Transformer language model over posenc layers with position encoder E (see the top
/// of this file). The encoder is shared by every block (one object) or given per block; an
/// encoder added to the input (sinusoidal, learned) is added once to the token embeddings, and
/// the blocks' attention then has no encoder of its own.
template <class E>
class Model {
 public:
  using T = typename E::Scalar;
  using Encoder = E;
  static constexpr bool additive = encoder_traits<E>::adds_to_input;

  /// One encoder object shared by every block.
  Model(const ModelConfig& config, E encoder) : Model(config, std::vector<E>{std::move(encoder)}) {}

  /// One encoder object per block (config.layers of them), or one shared (a list of one); an
  /// encoder added to the input takes exactly one.
  Model(const ModelConfig& config, std::vector<E> encoders)
      : cfg_(config), encoders_(std::move(encoders)) {
    static_assert(posenc::detail::check_backward_hooks<E>::value);
    using posenc::detail::require;
    require(cfg_.vocab > 0, "Model: vocab V = ", cfg_.vocab, " must be > 0");
    require(cfg_.dim > 0, "Model: dim D = ", cfg_.dim, " must be > 0");
    require(cfg_.layers >= 1 && cfg_.layers <= 4, "Model: layers = ", cfg_.layers,
            " is outside 1..4");
    require(cfg_.heads > 0, "Model: heads H = ", cfg_.heads, " must be > 0");
    require(cfg_.dim % cfg_.heads == 0, "Model: heads H = ", cfg_.heads,
            " does not divide dim D = ", cfg_.dim);
    const Index hkv = cfg_.kv_heads == 0 ? cfg_.heads : cfg_.kv_heads;
    require(hkv > 0 && cfg_.heads % hkv == 0, "Model: kv_heads H_kv = ", cfg_.kv_heads,
            " must divide heads H = ", cfg_.heads);
    require(cfg_.mlp_dim >= 0, "Model: mlp_dim F = ", cfg_.mlp_dim, " must be >= 0 (0: 4 D)");
    require(std::isfinite(cfg_.norm_epsilon) && cfg_.norm_epsilon > 0,
            "Model: norm_epsilon = ", cfg_.norm_epsilon, " must be finite and > 0");
    if (cfg_.attention_scale)
      require(std::isfinite(*cfg_.attention_scale),
              "Model: attention_scale = ", *cfg_.attention_scale, " must be finite");
    require(!encoders_.empty(), "Model: no encoder given");
    if constexpr (additive)
      require(encoders_.size() == 1,
              "Model: an encoder added to the input is added once, "
              "before the first block: give one, not ",
              encoders_.size());
    else
      require(encoders_.size() == 1 || static_cast<Index>(encoders_.size()) == cfg_.layers,
              "Model: ", encoders_.size(), " encoders for ", cfg_.layers,
              " layers (give one shared encoder or one per layer)");
    const Index d = cfg_.dim, dh = d / cfg_.heads, f = mlp_dim();
    const AttentionShape shape{d, cfg_.heads, hkv, dh};
    for (const auto& e : encoders_)
      posenc::detail::check_encoder(e, shape);

    opt_.heads = cfg_.heads;
    opt_.kv_heads = hkv;
    opt_.causal = cfg_.causal;
    if (cfg_.attention_scale) opt_.scale = static_cast<T>(*cfg_.attention_scale);

    // Initialisation: the embedding N(0, 1) (Vaswani et al.'s embedding scaled by sqrt(D));
    // projections Xavier/Glorot normal, std = sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio
    // 2010), the residual branches' output projections (Wo, W2) further by 1 / sqrt(2 L)
    // (GPT-2); gains 1, biases 0.
    NormalSource rng(cfg_.seed);
    const auto xavier = [&](Index in, Index out, double extra) {
      Matrix<T> m(in, out);
      rng.fill(m, extra * std::sqrt(2.0 / static_cast<double>(in + out)));
      return m;
    };
    const double res = 1.0 / std::sqrt(2.0 * static_cast<double>(cfg_.layers));
    w_.embedding.resize(cfg_.vocab, d);
    rng.fill(w_.embedding, 1.0);
    w_.blocks.resize(static_cast<std::size_t>(cfg_.layers));
    for (auto& b : w_.blocks) {
      b.norm1 = Vector<T>::Ones(d);
      b.wq = xavier(d, cfg_.heads * dh, 1.0);
      b.wk = xavier(d, hkv * dh, 1.0);
      b.wv = xavier(d, hkv * dh, 1.0);
      b.wo = xavier(cfg_.heads * dh, d, res);
      b.norm2 = Vector<T>::Ones(d);
      b.w1 = xavier(d, f, 1.0);
      b.b1 = Vector<T>::Zero(f);
      b.w2 = xavier(f, d, res);
      b.b2 = Vector<T>::Zero(d);
    }
    w_.norm_f = Vector<T>::Ones(d);
    w_.readout = xavier(d, cfg_.vocab, 1.0);
    w_.readout_bias = Vector<T>::Zero(cfg_.vocab);
  }

  const ModelConfig& config() const { return cfg_; }
  Index mlp_dim() const { return cfg_.mlp_dim == 0 ? 4 * cfg_.dim : cfg_.mlp_dim; }
  const Weights<T>& weights() const { return w_; }
  Weights<T>& weights() { return w_; }
  const std::vector<E>& encoders() const { return encoders_; }
  std::vector<E>& encoders() { return encoders_; }
  /// The attention options every block uses.
  const AttentionOptions<T>& attention_options() const { return opt_; }

  /// Every trained tensor (weights, then each encoder object's tables), the optimiser's view.
  ParameterList<T> parameters() {
    ParameterList<T> p;
    Weights<T>::visit(w_,
                      [&](const std::string& name, auto& t, bool decay) { p.add(name, t, decay); });
    for (std::size_t i = 0; i < encoders_.size(); ++i)
      p.add_encoder(ModelGradients<E>::encoder_prefix(i, encoders_.size()), encoders_[i]);
    return p;
  }

  ModelGradients<E> zero_gradients() const {
    ModelGradients<E> g;
    g.weights = w_.zeros_like();
    for (const auto& e : encoders_)
      g.encoders.push_back(posenc::detail::zero_gradients_of(e));
    return g;
  }

  /// The logits [N, V] of a token sequence.
  Matrix<T> logits(const std::vector<std::int64_t>& tokens) const {
    Cache c;
    forward(tokens, c, false);
    return std::move(c.logits);
  }

  /// The mean cross-entropy over every target of the batch (forward only).
  T loss(const std::vector<Sequence>& batch) const {
    const double count = static_cast<double>(count_targets(batch));
    double total = 0;
    for (const auto& s : batch) {
      Cache c;
      check_sequence(s);
      forward(s.tokens, c, false);
      total += cross_entropy(c.logits, s.targets, nullptr, 0);
    }
    return static_cast<T>(total / count);
  }
  T loss(const Sequence& s) const { return loss(std::vector<Sequence>{s}); }

  /// Adds the gradients of the batch's mean cross-entropy (over every target of every
  /// sequence) to g; returns that loss.
  T accumulate_gradients(const std::vector<Sequence>& batch, ModelGradients<E>& g) const {
    check_gradients(g);
    const double count = static_cast<double>(count_targets(batch));
    double total = 0;
    for (const auto& s : batch) {
      check_sequence(s);
      Cache c;
      forward(s.tokens, c, true);
      Matrix<T> dlogits;
      total += cross_entropy(c.logits, s.targets, &dlogits, static_cast<T>(1.0 / count));
      backward(s.tokens, c, dlogits, g);
    }
    return static_cast<T>(total / count);
  }

  /// One optimiser step on the batch; returns the loss before the step.
  T train_step(const std::vector<Sequence>& batch, Adam<T>& adam) {
    ModelGradients<E> g = zero_gradients();
    const T l = accumulate_gradients(batch, g);
    adam.step(parameters(), g.list());
    parameters_changed();
    return l;
  }

  /// Tells the encoders whose forward pass reads copies derived from their tables (BERT
  /// relative, DeBERTa: parameters_changed()) that an optimiser wrote the tables; train_step
  /// calls it, a caller that updates parameters() itself must too.
  void parameters_changed() {
    if constexpr (detail::has_parameters_changed<E>::value)
      for (auto& e : encoders_)
        e.parameters_changed();
  }

 private:
  struct BlockCache {
    Matrix<T> xhat1, h1, xhat2, h2, u, t, z;  // t: GELU's tanh
    Vector<T> r1, r2;
  };
  struct Cache {
    std::vector<BlockCache> blocks;
    Matrix<T> xhatf, hf, logits;
    Vector<T> rf;
  };

  const E& encoder(std::size_t l) const { return encoders_[encoders_.size() == 1 ? 0 : l]; }

  void check_sequence(const Sequence& s) const {
    using posenc::detail::require;
    require(!s.tokens.empty(), "Model: a sequence has no tokens");
    require(s.targets.size() == s.tokens.size(), "Model: a sequence has ", s.tokens.size(),
            " tokens but ", s.targets.size(), " targets (one per token, ignore_index for none)");
    for (std::size_t i = 0; i < s.tokens.size(); ++i)
      require(s.tokens[i] >= 0 && s.tokens[i] < cfg_.vocab, "Model: token[", i, "] = ", s.tokens[i],
              " is outside the vocabulary [0, ", cfg_.vocab, ")");
    for (std::size_t i = 0; i < s.targets.size(); ++i)
      require(s.targets[i] < cfg_.vocab, "Model: target[", i, "] = ", s.targets[i],
              " is outside the vocabulary [0, ", cfg_.vocab, ") (negative: ignored)");
  }

  static std::int64_t count_targets(const std::vector<Sequence>& batch) {
    std::int64_t count = 0;
    for (const auto& s : batch)
      for (const auto t : s.targets)
        count += t >= 0;
    posenc::detail::require(count > 0, "Model: the batch has no target to predict (", batch.size(),
                            " sequences, every target ignored)");
    return count;
  }

  void check_gradients(const ModelGradients<E>& g) const {
    posenc::detail::require(g.weights.blocks.size() == w_.blocks.size() &&
                                g.weights.embedding.rows() == w_.embedding.rows() &&
                                g.weights.embedding.cols() == w_.embedding.cols() &&
                                g.encoders.size() == encoders_.size(),
                            "Model::accumulate_gradients: the gradients are not this model's "
                            "(use model.zero_gradients())");
  }

  template <class F>
  void with_block_encoder(std::size_t l, F&& f) const {
    if constexpr (additive) {
      (void)l;
      f(NoEncoding<T>{});
    } else {
      f(encoder(l));
    }
  }

  void forward(const std::vector<std::int64_t>& tokens, Cache& c, bool keep) const {
    using posenc::detail::require;
    const Index n = static_cast<Index>(tokens.size()), d = cfg_.dim;
    require(n > 0, "Model: a sequence has no tokens");
    Matrix<T> x(n, d);
    for (Index i = 0; i < n; ++i) {
      const std::int64_t t = tokens[static_cast<std::size_t>(i)];
      require(t >= 0 && t < cfg_.vocab, "Model: token[", i, "] = ", t,
              " is outside the vocabulary [0, ", cfg_.vocab, ")");
      x.row(i) = w_.embedding.row(static_cast<Index>(t));
    }
    const Positions pos(0, n);
    if constexpr (additive) encoders_[0].add_to_input(x, pos);
    const T eps = static_cast<T>(cfg_.norm_epsilon);
    c.blocks.resize(keep ? w_.blocks.size() : 1);
    Matrix<T> tmp(n, d);
    for (std::size_t l = 0; l < w_.blocks.size(); ++l) {
      const Block<T>& b = w_.blocks[l];
      BlockCache& k = c.blocks[keep ? l : 0];
      detail::rms_forward(x, b.norm1, eps, k.xhat1, k.r1, k.h1);
      with_block_encoder(
          l, [&](const auto& enc) { attention(k.h1, b.wq, b.wk, b.wv, b.wo, enc, opt_, tmp); });
      x += tmp;
      detail::rms_forward(x, b.norm2, eps, k.xhat2, k.r2, k.h2);
      k.u.noalias() = k.h2 * b.w1;
      k.u.rowwise() += b.b1.transpose();
      if (cfg_.activation == Activation::gelu)
        detail::gelu_forward(k.u, k.t, k.z);
      else
        k.z = k.u.cwiseMax(T(0));
      x.noalias() += k.z * b.w2;
      x.rowwise() += b.b2.transpose();
    }
    detail::rms_forward(x, w_.norm_f, eps, c.xhatf, c.rf, c.hf);
    c.logits.noalias() = c.hf * w_.readout;
    c.logits.rowwise() += w_.readout_bias.transpose();
  }

  /// Sum over the targets of -log softmax(logits)[target]; with dlogits, also
  /// dlogits = weight (softmax - onehot) on target rows, 0 on ignored ones.
  static double cross_entropy(const Matrix<T>& logits, const std::vector<std::int64_t>& targets,
                              Matrix<T>* dlogits, T weight) {
    double total = 0;
    if (dlogits) *dlogits = Matrix<T>::Zero(logits.rows(), logits.cols());
    for (Index i = 0; i < logits.rows(); ++i) {
      const std::int64_t t = targets[static_cast<std::size_t>(i)];
      if (t < 0) continue;
      const T mx = logits.row(i).maxCoeff();
      const Eigen::Array<T, 1, Eigen::Dynamic> e = (logits.row(i).array() - mx).exp();
      const T sum = e.sum();
      total += static_cast<double>(std::log(sum) + mx - logits(i, static_cast<Index>(t)));
      if (dlogits) {
        dlogits->row(i) = (weight / sum) * e.matrix();
        (*dlogits)(i, static_cast<Index>(t)) -= weight;
      }
    }
    return total;
  }

  void backward(const std::vector<std::int64_t>& tokens, const Cache& c, const Matrix<T>& dlogits,
                ModelGradients<E>& g) const {
    const Index n = static_cast<Index>(tokens.size());
    Weights<T>& gw = g.weights;
    gw.readout.noalias() += c.hf.transpose() * dlogits;
    gw.readout_bias += dlogits.colwise().sum().transpose();
    Matrix<T> dh = dlogits * w_.readout.transpose();
    Matrix<T> dx = detail::rms_backward(dh, w_.norm_f, c.xhatf, c.rf, gw.norm_f);
    for (std::size_t l = w_.blocks.size(); l-- > 0;) {
      const Block<T>& b = w_.blocks[l];
      const BlockCache& k = c.blocks[l];
      Block<T>& gb = gw.blocks[l];
      // x_out = x_mid + z W2 + b2, z = act(u), u = h2 W1 + b1, h2 = RMSNorm(x_mid)
      gb.w2.noalias() += k.z.transpose() * dx;
      gb.b2 += dx.colwise().sum().transpose();
      Matrix<T> du = dx * b.w2.transpose();
      if (cfg_.activation == Activation::gelu)
        detail::gelu_backward(k.u, k.t, du);
      else
        du.array() *= (k.u.array() > T(0)).template cast<T>();
      gb.w1.noalias() += k.h2.transpose() * du;
      gb.b1 += du.colwise().sum().transpose();
      dh.noalias() = du * b.w1.transpose();
      dx += detail::rms_backward(dh, b.norm2, k.xhat2, k.r2, gb.norm2);
      // x_mid = x_in + Attention(h1), h1 = RMSNorm(x_in)
      with_block_encoder(l, [&](const auto& enc) {
        auto r = attention_backward(k.h1, b.wq, b.wk, b.wv, b.wo, enc, opt_, dx);
        gb.wq += r.dwq;
        gb.wk += r.dwk;
        gb.wv += r.dwv;
        gb.wo += r.dwo;
        if constexpr (!additive) g.encoders[encoders_.size() == 1 ? 0 : l] += r.encoder;
        dx += detail::rms_backward(r.dx, b.norm1, k.xhat1, k.r1, gb.norm1);
      });
    }
    if constexpr (additive && posenc::detail::has_add_to_input_backward<E>::value)
      encoders_[0].add_to_input_backward(dx, Positions(0, n), g.encoders[0]);
    for (Index i = 0; i < n; ++i)
      gw.embedding.row(static_cast<Index>(tokens[static_cast<std::size_t>(i)])) += dx.row(i);
  }

  ModelConfig cfg_;
  std::vector<E> encoders_;
  Weights<T> w_;
  AttentionOptions<T> opt_;
};

}  // namespace training
POSENC_NAMESPACE_END
