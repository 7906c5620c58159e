// posenc compare: each encoder's measured properties side by side, the measured version of
// the usual "which positional encoding should I choose" table, and the attention logits and maps
// with the [N, N] matrices kept (for pictures and for checking the kernel). Used by
// `posenc compare`, `posenc plot attention` and examples/compare.cpp. Not included by
// posenc.hpp: it is a study tool, with timings.
//
// Measured, for every built-in encoder with seeded parameters of the configured size:
//  - parameters: the number of trained scalars the encoder object holds;
//  - relative only: the largest change of the attention logits (scale q.k plus the encoder's
//    bias and content terms, every head) when every position shifts by s, relative to the
//    largest logit, over a seeded random input and several shifts s;
//  - past L: attention on tokens around 2L and 8L (L = the learned table's length, taken as
//    the trained length of every encoder): the error it throws, or whether outputs are finite;
//  - distances told apart: one query at 8L (L-1 for the learned table and for BERT's distance
//    table, which end there) and keys at every position before it, all with the same content:
//    the largest distance d at which the logit still differs from the logit at d-1 (T5's and
//    DeBERTa's buckets and Shaw's clipping saturate);
//  - cost per token: the encoder's own work (adding PE, rotating Q and K, or building the
//    bias of every head over all N x N scores) and a whole attention call, divided by N.
#pragma once

#include "posenc.hpp"

#if !POSENC_HAS_EXCEPTIONS
#error "posenc/compare.hpp reports the errors encoders throw past their length: it needs exceptions"
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

POSENC_NAMESPACE_BEGIN
namespace compare {

/// The sizes of the compared encoders and of the measurements.
struct Config {
  Index dim = 64;                      // D
  Index heads = 4;                     // H (Dh = D / H)
  Index max_len = 512;                 // L: the learned table's rows, the "trained length" of all
  Index num_buckets = 32;              // T5
  Index max_distance = 128;            // T5
  Index max_relative = 16;             // Shaw's K
  Index position_buckets = 256;        // DeBERTa's b (v2, v3)
  Index max_relative_positions = 512;  // DeBERTa's m
  std::int64_t clamp_len = -1;         // Transformer-XL (-1: none)
  double rope_base = 10000.0;
  Index tokens = 32;  // N for the shift and past-L measurements
  std::vector<std::int64_t> shifts = {1, 3, 17, 100, 480, 100000};
  Index time_len = 256;       // N for the timings
  double time_budget = 0.05;  // seconds spent on each timing (at least one call)
  std::uint64_t seed = 1;
  /// OpenMP threads during the measurements (0: leave as is). One thread by default: a cost
  /// per token is clearest single-threaded, and a busy machine makes threads noisy.
  int threads = 1;
};

/// Every encoder key, in table order.
inline const std::vector<std::string>& all_keys() {
  static const std::vector<std::string> keys = {"none",          "sinusoidal", "learned", "rope",
                                                "alibi",         "t5",         "shaw",    "xl",
                                                "bert-relative", "deberta"};
  return keys;
}

struct Info {
  std::string key, name, acts_on;
};

inline Info info(const std::string& key) {
  if (key == "none") return {key, "none", "-"};
  if (key == "sinusoidal") return {key, "sinusoidal", "input"};
  if (key == "learned") return {key, "learned", "input"};
  if (key == "rope") return {key, "RoPE", "Q, K"};
  if (key == "alibi") return {key, "ALiBi", "scores"};
  if (key == "t5") return {key, "T5 bias", "scores"};
  if (key == "shaw") return {key, "Shaw", "scores, values"};
  if (key == "xl") return {key, "Transformer-XL", "scores"};
  if (key == "bert-relative") return {key, "BERT relative", "scores"};
  if (key == "deberta") return {key, "DeBERTa", "scores"};
  POSENC_THROW(posenc::error("unknown encoder '" + key +
                             "' (expected none, sinusoidal, learned, rope, alibi, t5, shaw, xl, "
                             "bert-relative or deberta)"));
}

/// A seeded N(0, stddev^2) matrix (portable generator).
template <class T>
Matrix<T> seeded(Index rows, Index cols, std::uint64_t seed, double stddev = 1.0) {
  return posenc::LearnedEncoding<T>::normal(rows, cols, seed, stddev).table();
}

/// The built-in encoders with seeded trained parameters (the same seeds as the
/// examples use: a plausible trained table is not needed to measure these properties).
template <class T>
struct Encoders {
  explicit Encoders(const Config& c)
      : sinusoidal(c.dim),
        learned(posenc::LearnedEncoding<T>::normal(c.max_len, c.dim, c.seed + 101, 0.5)),
        rope(c.dim / std::max<Index>(c.heads, 1), rope_options(c)),
        alibi(c.heads),
        t5(seeded<T>(c.num_buckets, c.heads, c.seed + 102), t5_options(c)),
        shaw(seeded<T>(2 * c.max_relative + 1, c.dim / std::max<Index>(c.heads, 1), c.seed + 103,
                       0.5),
             seeded<T>(2 * c.max_relative + 1, c.dim / std::max<Index>(c.heads, 1), c.seed + 104,
                       0.5)),
        xl(seeded<T>(c.heads, c.dim / std::max<Index>(c.heads, 1), c.seed + 105),
           seeded<T>(c.heads, c.dim / std::max<Index>(c.heads, 1), c.seed + 106),
           seeded<T>(c.dim, c.dim, c.seed + 107, 1.0 / std::sqrt(static_cast<double>(c.dim))),
           xl_options(c)),
        // BERT's distance table [2L - 1, Dh] for every sequence measured (L and the timings' N)
        bert_relative(seeded<T>(2 * std::max(c.max_len, c.time_len) - 1,
                                c.dim / std::max<Index>(c.heads, 1), c.seed + 108, 0.5),
                      posenc::BertRelativeType::relative_key_query),
        deberta(seeded<T>(2 * deberta_span(c), c.dim, c.seed + 109, 0.5),
                seeded<T>(2 * deberta_span(c), c.dim, c.seed + 110, 0.5),
                std::max<Index>(c.heads, 1), deberta_options(c)) {}

  posenc::NoEncoding<T> none;
  posenc::SinusoidalEncoding<T> sinusoidal;
  posenc::LearnedEncoding<T> learned;
  posenc::RotaryEncoding<T> rope;
  posenc::AlibiEncoding<T> alibi;
  posenc::T5Encoding<T> t5;
  posenc::ShawEncoding<T> shaw;
  posenc::TransformerXLEncoding<T> xl;
  posenc::BertRelativeEncoding<T> bert_relative;
  posenc::DebertaEncoding<T> deberta;

 private:
  static posenc::RotaryOptions rope_options(const Config& c) {
    posenc::RotaryOptions o;
    o.base = c.rope_base;
    return o;
  }
  static posenc::T5Options t5_options(const Config& c) {
    posenc::T5Options o;
    o.max_distance = c.max_distance;
    return o;
  }
  static posenc::TransformerXLOptions xl_options(const Config& c) {
    posenc::TransformerXLOptions o;
    o.clamp_len = c.clamp_len;
    return o;
  }
  static posenc::DebertaOptions deberta_options(const Config& c) {
    posenc::DebertaOptions o;
    o.position_buckets = c.position_buckets;
    o.max_relative_positions = c.max_relative_positions;
    return o;
  }
  static Index deberta_span(const Config& c) {
    return c.position_buckets > 0 ? c.position_buckets : c.max_relative_positions;
  }
};

/// Calls f(info, encoder) for each key, in the given order.
template <class T, class F>
void for_each_encoder(const Encoders<T>& e, const std::vector<std::string>& keys, F&& f) {
  for (const std::string& key : keys) {
    const Info i = info(key);
    if (key == "none")
      f(i, e.none);
    else if (key == "sinusoidal")
      f(i, e.sinusoidal);
    else if (key == "learned")
      f(i, e.learned);
    else if (key == "rope")
      f(i, e.rope);
    else if (key == "alibi")
      f(i, e.alibi);
    else if (key == "t5")
      f(i, e.t5);
    else if (key == "shaw")
      f(i, e.shaw);
    else if (key == "xl")
      f(i, e.xl);
    else if (key == "bert-relative")
      f(i, e.bert_relative);
    else
      f(i, e.deberta);
  }
}

// --- attention logits and maps (the kernel's formulas, with the [N, N] matrices kept) ---------

/// The logits S_h = scale Q_h K_h^T + B_h (+ content terms) of every head, before the mask
/// and the softmax, for queries xq at qpos and keys xk at kpos (conventions.md section 6;
/// the same hooks the attention kernel calls). With causal, entries with p_j > p_i are -inf.
template <class E>
std::vector<Matrix<typename E::Scalar>> logits(
    const E& enc, const posenc::ConstMatrixRef<typename E::Scalar>& xq, const Positions& qpos,
    const posenc::ConstMatrixRef<typename E::Scalar>& xk, const Positions& kpos,
    const posenc::ConstMatrixRef<typename E::Scalar>& wq,
    const posenc::ConstMatrixRef<typename E::Scalar>& wk, Index heads,
    std::optional<typename E::Scalar> scale = std::nullopt, bool causal = false) {
  using T = typename E::Scalar;
  using traits = posenc::encoder_traits<E>;
  const Index d = xq.cols();
  posenc::detail::require(heads > 0 && d % heads == 0, "attention: heads H = ", heads,
                          " does not divide D = ", d);
  posenc::detail::require(
      xk.cols() == d && wq.rows() == d && wq.cols() == d && wk.rows() == d && wk.cols() == d,
      "attention: X, Wq, Wk must be [N, D], [D, D], [D, D] with D = ", d);
  posenc::detail::require(xq.rows() == qpos.size() && xk.rows() == kpos.size(),
                          "attention: positions do not match the rows of X");
  if constexpr (traits::checks_shape)
    posenc::detail::check_encoder(enc, posenc::AttentionShape{d, heads, heads, d / heads});
  const Index dh = d / heads;
  const T s = scale ? *scale : static_cast<T>(1.0 / std::sqrt(static_cast<double>(dh)));
  Matrix<T> xq2 = xq, xk2 = xk;
  if constexpr (traits::adds_to_input) {
    enc.add_to_input(xq2, qpos);
    enc.add_to_input(xk2, kpos);
  }
  Matrix<T> q = xq2 * wq, k = xk2 * wk;
  if constexpr (traits::rotates_qk) {
    enc.rotate(q, qpos, heads);
    enc.rotate(k, kpos, heads);
  }
  std::vector<Matrix<T>> out;
  out.reserve(static_cast<std::size_t>(heads));
  for (Index h = 0; h < heads; ++h) {
    Matrix<T> qh = q.middleCols(h * dh, dh), kh = k.middleCols(h * dh, dh);
    Matrix<T> sh = s * (qh * kh.transpose());
    if constexpr (traits::biases_scores) {
      const auto bias = enc.score_bias(qpos, kpos, heads, dh, s);
      bias.add(h, 0, 0, qh, kh, sh);
    }
    if (causal)
      for (Index i = 0; i < sh.rows(); ++i)
        for (Index j = 0; j < sh.cols(); ++j)
          if (kpos[j] > qpos[i]) sh(i, j) = -std::numeric_limits<T>::infinity();
    out.push_back(std::move(sh));
  }
  return out;
}

/// Self-attention logits of x [N, D] at positions pos.
template <class E>
std::vector<Matrix<typename E::Scalar>> logits(
    const E& enc, const posenc::ConstMatrixRef<typename E::Scalar>& x, const Positions& pos,
    const posenc::ConstMatrixRef<typename E::Scalar>& wq,
    const posenc::ConstMatrixRef<typename E::Scalar>& wk, Index heads,
    std::optional<typename E::Scalar> scale = std::nullopt, bool causal = false) {
  return logits(enc, x, pos, x, pos, wq, wk, heads, scale, causal);
}

/// Row-wise softmax; a row with every entry -inf is an error.
template <class T>
Matrix<T> softmax_rows(const Matrix<T>& s) {
  Matrix<T> p(s.rows(), s.cols());
  for (Index i = 0; i < s.rows(); ++i) {
    const T m = s.row(i).maxCoeff();
    posenc::detail::require(m > -std::numeric_limits<T>::infinity(), "attention: query ", i,
                            " has every score masked");
    p.row(i) = (s.row(i).array() - m).exp().matrix();
    // Eigen's vectorised exp clamps its argument, so exp(-inf) comes out subnormal, not 0
    for (Index j = 0; j < s.cols(); ++j)
      if (s(i, j) == -std::numeric_limits<T>::infinity()) p(i, j) = T(0);
    p.row(i) /= p.row(i).sum();
  }
  return p;
}

/// The attention maps P_h = softmax(S_h) of every head.
template <class E>
std::vector<Matrix<typename E::Scalar>> attention_maps(
    const E& enc, const posenc::ConstMatrixRef<typename E::Scalar>& x, const Positions& pos,
    const posenc::ConstMatrixRef<typename E::Scalar>& wq,
    const posenc::ConstMatrixRef<typename E::Scalar>& wk, Index heads,
    std::optional<typename E::Scalar> scale = std::nullopt, bool causal = false) {
  auto s = logits(enc, x, pos, wq, wk, heads, scale, causal);
  for (auto& m : s)
    m = softmax_rows(m);
  return s;
}

/// Y = [P_0 V_0 (+ Shaw's A_V term) ... ] Wo from explicit maps: the kernel's result, computed
/// the slow way (the tests check that the two agree, which checks the maps).
template <class E>
Matrix<typename E::Scalar> attention_from_maps(
    const E& enc, const std::vector<Matrix<typename E::Scalar>>& maps,
    const posenc::ConstMatrixRef<typename E::Scalar>& x, const Positions& pos,
    const posenc::ConstMatrixRef<typename E::Scalar>& wv,
    const posenc::ConstMatrixRef<typename E::Scalar>& wo, Index heads,
    std::optional<typename E::Scalar> scale = std::nullopt) {
  using T = typename E::Scalar;
  const Index n = x.rows(), d = x.cols(), dh = d / heads;
  const T s = scale ? *scale : static_cast<T>(1.0 / std::sqrt(static_cast<double>(dh)));
  Matrix<T> xe = x;
  if constexpr (posenc::encoder_traits<E>::adds_to_input) enc.add_to_input(xe, pos);
  const Matrix<T> v = xe * wv;
  Matrix<T> o(n, d);
  for (Index h = 0; h < heads; ++h) {
    Matrix<T> oh = maps[static_cast<std::size_t>(h)] * v.middleCols(h * dh, dh);
    if constexpr (posenc::adds_values<E>()) {
      const auto bias = enc.score_bias(pos, pos, heads, dh, s);
      bias.add_values(h, 0, 0, maps[static_cast<std::size_t>(h)], oh);
    }
    o.middleCols(h * dh, dh) = oh;
  }
  return o * wo;
}

// --- the measurements ----------------------------------------------------------------------------

struct Row {
  Info info;
  long long parameters = 0;
  std::string parameter_formula;
  /// max over shifts of max|S(p + s) - S(p)| / max|S(p)|.
  double shift_change = 0.0;
  bool relative_only = false;
  std::vector<std::int64_t> shifts_used;
  /// "finite at 2L and 8L", or "error: <the encoder's message>".
  std::string past_length;
  bool past_length_error = false;
  /// Largest distance whose logit differs from the previous distance's (up to `tested`).
  std::int64_t distinct_up_to = 0, distinct_tested = 0;
  double encoder_ns_per_token = 0.0, attention_ns_per_token = 0.0;
};

template <class T>
long long parameter_count(const posenc::LearnedEncoding<T>& e) {
  return e.table().size();
}
template <class T>
long long parameter_count(const posenc::T5Encoding<T>& e) {
  return e.table().size();
}
template <class T>
long long parameter_count(const posenc::ShawEncoding<T>& e) {
  return e.a_k().size() + e.a_v().size();
}
template <class T>
long long parameter_count(const posenc::TransformerXLEncoding<T>& e) {
  const long long d = e.heads() * e.head_dim();
  return 2 * d + d * d;  // u, v [H, Dh] and W_R [D, D]
}
template <class T>
long long parameter_count(const posenc::BertRelativeEncoding<T>& e) {
  return e.table().size();
}
template <class T>
long long parameter_count(const posenc::DebertaEncoding<T>& e) {
  return e.k_r().size() + e.q_r().size();  // K_r, Q_r [2 span, H Dh]
}
template <class E>
long long parameter_count(const E&) {
  return 0;
}

inline std::string parameter_formula(const std::string& key) {
  if (key == "learned") return "L·D";
  if (key == "t5") return "buckets·H";
  if (key == "shaw") return "2(2K+1)·Dh";
  if (key == "xl") return "2H·Dh + D²";
  if (key == "bert-relative") return "(2L-1)·Dh";
  if (key == "deberta") return "2·2b·D";
  return "0";
}

namespace detail {

/// The largest |p_i - p_j| an encoder reads a table at (BERT's E ends at L - 1).
template <class T>
std::int64_t longest_distance(const posenc::BertRelativeEncoding<T>& e) {
  return e.max_positions() - 1;
}
template <class E>
std::int64_t longest_distance(const E&) {
  return std::numeric_limits<std::int64_t>::max();
}

template <class T>
double tolerance() {
  return std::is_same<T, float>::value ? 1e-4 : 1e-9;
}

template <class T>
double max_abs(const std::vector<Matrix<T>>& m) {
  double a = 0.0;
  for (const auto& x : m)
    a = std::max(a, static_cast<double>(x.cwiseAbs().maxCoeff()));
  return a;
}

/// Calls f() repeatedly for about `budget` seconds (at least twice, once as a warm-up) and
/// returns the mean seconds per call.
template <class F>
double time_per_call(F&& f, double budget) {
  using clock = std::chrono::steady_clock;
  f();  // warm-up: caches, allocations
  long calls = 0;
  const auto start = clock::now();
  double elapsed = 0.0;
  do {
    f();
    ++calls;
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  } while (elapsed < budget);
  return elapsed / static_cast<double>(calls);
}

template <class T>
struct Inputs {
  Matrix<T> x, wq, wk, wv, wo, xt;
  Inputs(const Config& c) {
    const double w = 1.0 / std::sqrt(static_cast<double>(c.dim));
    x = seeded<T>(c.tokens, c.dim, c.seed + 1);
    wq = seeded<T>(c.dim, c.dim, c.seed + 2, w);
    wk = seeded<T>(c.dim, c.dim, c.seed + 3, w);
    wv = seeded<T>(c.dim, c.dim, c.seed + 4, w);
    wo = seeded<T>(c.dim, c.dim, c.seed + 5, w);
    xt = seeded<T>(c.time_len, c.dim, c.seed + 6);
  }
};

inline volatile double sink = 0.0;
/// Makes the compiler keep a computed value.
template <class T>
void keep(const T& v) {
  sink = static_cast<double>(v);
}

template <class E>
void measure_one(const Config& c, const Inputs<typename E::Scalar>& in, const E& enc, Row& row) {
  using T = typename E::Scalar;
  using traits = posenc::encoder_traits<E>;
  const Index n = c.tokens, heads = c.heads, dh = c.dim / c.heads;
  const std::int64_t L = c.max_len;

  row.parameters = parameter_count(enc);
  row.parameter_formula = parameter_formula(row.info.key);

  // Relative only: logits at positions s .. s+N-1 against 0 .. N-1.
  const auto base = logits(enc, in.x, Positions(0, n), in.wq, in.wk, heads);
  const double scale = std::max(max_abs(base), 1e-300);
  for (std::int64_t s : c.shifts) {
    if (std::is_same<E, posenc::LearnedEncoding<T>>::value && s + n > L) continue;  // off the table
    const auto shifted = logits(enc, in.x, Positions(s, n), in.wq, in.wk, heads);
    double change = 0.0;
    for (std::size_t h = 0; h < base.size(); ++h)
      change = std::max(change, static_cast<double>((shifted[h] - base[h]).cwiseAbs().maxCoeff()));
    row.shift_change = std::max(row.shift_change, change / scale);
    row.shifts_used.push_back(s);
  }
  row.relative_only = row.shift_change <= tolerance<T>();

  // Past the trained length: N tokens around 2L and around 8L.
  try {
    bool finite = true;
    for (std::int64_t at : {2 * L, 8 * L}) {
      posenc::AttentionOptions<T> opt;
      opt.heads = heads;
      opt.offset = std::max<std::int64_t>(0, at - n / 2);
      const Matrix<T> y = posenc::attention(in.x, in.wq, in.wk, in.wv, in.wo, enc, opt);
      finite = finite && y.allFinite();
    }
    row.past_length = finite ? "finite at 2L and 8L" : "NOT finite at 2L or 8L";
  } catch (const posenc::error& e) {
    row.past_length = std::string("error: ") + e.what();
    row.past_length_error = true;
  }

  // Distances told apart: one query at P, keys at 0 .. P, all with the same content.
  {
    const std::int64_t p = std::min(row.past_length_error ? L - 1 : 8 * L, longest_distance(enc));
    const Matrix<T> xq = in.x.topRows(1);
    const Matrix<T> xk = xq.replicate(static_cast<Index>(p + 1), 1);
    const auto s = logits(enc, xq, Positions(p, 1), xk, Positions(0, static_cast<Index>(p + 1)),
                          in.wq, in.wk, heads);
    const double eps = std::is_same<T, float>::value ? 1e-6 : 1e-12;
    row.distinct_tested = p;
    row.distinct_up_to = 0;
    for (std::int64_t d = 1; d <= p; ++d) {
      // key at position p - d against the key at p - d + 1, in any head
      const Index j = static_cast<Index>(p - d);
      for (const auto& m : s) {
        const double a = static_cast<double>(m(0, j)), b = static_cast<double>(m(0, j + 1));
        if (std::abs(a - b) > eps * std::max({1.0, std::abs(a), std::abs(b)})) {
          row.distinct_up_to = d;
          break;
        }
      }
    }
  }

  // Cost per token.
  const Index nt = c.time_len;
  const Positions pos(0, nt);
  const Matrix<T>& xt = in.xt;
  if constexpr (traits::adds_to_input) {
    Matrix<T> buf = xt;
    row.encoder_ns_per_token = time_per_call(
                                   [&] {
                                     buf = xt;
                                     enc.add_to_input(buf, pos);
                                     keep(buf(0, 0));
                                   },
                                   c.time_budget) *
                               1e9 / static_cast<double>(nt);
  } else if constexpr (traits::rotates_qk) {
    const Matrix<T> q0 = xt * in.wq, k0 = xt * in.wk;
    Matrix<T> q = q0, k = k0;
    row.encoder_ns_per_token = time_per_call(
                                   [&] {
                                     q = q0;
                                     k = k0;
                                     enc.rotate(q, pos, heads);
                                     enc.rotate(k, pos, heads);
                                     keep(q(0, 0) + k(0, 0));
                                   },
                                   c.time_budget) *
                               1e9 / static_cast<double>(nt);
  } else if constexpr (traits::biases_scores) {
    const Matrix<T> q = xt * in.wq, k = xt * in.wk;
    const T sc = static_cast<T>(1.0 / std::sqrt(static_cast<double>(dh)));
    Matrix<T> sm(nt, nt), acc(nt, dh);
    const Matrix<T> uniform = Matrix<T>::Constant(nt, nt, T(1) / static_cast<T>(nt));
    row.encoder_ns_per_token =
        time_per_call(
            [&] {
              const auto bias = enc.score_bias(pos, pos, heads, dh, sc);
              for (Index h = 0; h < heads; ++h) {
                sm.setZero();
                bias.add(h, 0, 0, q.middleCols(h * dh, dh), k.middleCols(h * dh, dh), sm);
                if constexpr (posenc::adds_values<E>()) {
                  acc.setZero();
                  bias.add_values(h, 0, 0, uniform, acc);
                  keep(acc(0, 0));
                }
                keep(sm(nt - 1, 0));
              }
            },
            c.time_budget) *
        1e9 / static_cast<double>(nt);
  }
  {
    posenc::AttentionOptions<T> opt;
    opt.heads = heads;
    Matrix<T> y(nt, c.dim);
    row.attention_ns_per_token =
        time_per_call(
            [&] {
              posenc::attention(xt, in.wq, in.wk, in.wv, in.wo, enc, opt, y);
              keep(y(0, 0));
            },
            c.time_budget) *
        1e9 / static_cast<double>(nt);
  }
}

}  // namespace detail

inline void check_config(const Config& c) {
  posenc::detail::require(c.dim > 0 && c.heads > 0 && c.dim % c.heads == 0,
                          "compare: heads H = ", c.heads, " must divide D = ", c.dim);
  posenc::detail::require((c.dim / c.heads) % 2 == 0, "compare: head dim D/H = ", c.dim / c.heads,
                          " must be even (RoPE)");
  posenc::detail::require(c.tokens > 0 && c.tokens <= c.max_len, "compare: tokens N = ", c.tokens,
                          " must be in [1, L = ", c.max_len, "]");
  posenc::detail::require(c.max_len > 0 && c.max_len <= (1 << 20),
                          "compare: max length L = ", c.max_len, " must be in [1, 2^20]");
  posenc::detail::require(c.time_len > 0 && c.time_len <= 16384,
                          "compare: timing length = ", c.time_len, " must be in [1, 16384]");
  posenc::detail::require(c.time_budget >= 0.0 && c.time_budget <= 60.0,
                          "compare: time budget = ", c.time_budget, " s must be in [0, 60]");
  posenc::detail::require(c.threads >= 0, "compare: threads = ", c.threads, " must be >= 0");
  posenc::detail::require(c.max_relative >= 1, "compare: max relative K = ", c.max_relative,
                          " must be >= 1");
  for (std::int64_t s : c.shifts)
    posenc::detail::require(s >= 1 && s <= (std::int64_t{1} << 40), "compare: shift ", s,
                            " must be in [1, 2^40]");
}

/// Measures every encoder named in `keys` (default: all of them).
template <class T>
std::vector<Row> measure(const Config& c, const std::vector<std::string>& keys = all_keys()) {
  check_config(c);
  for (const auto& k : keys)
    info(k);  // unknown names fail before any work
#if defined(_OPENMP)
  struct Restore {
    int n = omp_get_max_threads();
    ~Restore() { omp_set_num_threads(n); }
  } restore;
  if (c.threads > 0) omp_set_num_threads(c.threads);
#endif
  const Encoders<T> enc(c);
  const detail::Inputs<T> in(c);
  std::vector<Row> rows;
  for_each_encoder(enc, keys, [&](const Info& i, const auto& e) {
    Row r;
    r.info = i;
    detail::measure_one(c, in, e, r);
    rows.push_back(std::move(r));
  });
  return rows;
}

inline std::string format_change(double v) {
  char buf[32];
  if (v == 0.0) return "0";
  std::snprintf(buf, sizeof buf, "%.1e", v);
  return buf;
}

inline std::string format_ns(double ns) {
  char buf[32];
  if (ns == 0.0) return "0";
  if (ns < 10)
    std::snprintf(buf, sizeof buf, "%.1f", ns);
  else
    std::snprintf(buf, sizeof buf, "%.0f", ns);
  return buf;
}

/// The Markdown table, with a header paragraph naming the configuration.
inline std::string markdown(const std::vector<Row>& rows, const Config& c, const char* dtype) {
  std::ostringstream os;
  os << "Measured with D = " << c.dim << ", H = " << c.heads << ", L = " << c.max_len
     << " (learned table rows), T5 " << c.num_buckets << " buckets / max distance "
     << c.max_distance << ", Shaw K = " << c.max_relative << ", BERT relative E of 2L - 1 rows"
     << " (relative_key_query), DeBERTa b = " << c.position_buckets
     << " / m = " << c.max_relative_positions << " (default scale 1/sqrt(Dh) for all), " << dtype
     << ".\n"
     << "relative only: max |S(p+s) - S(p)| / max |S| over shifts s = ";
  for (std::size_t i = 0; i < c.shifts.size(); ++i)
    os << (i ? ", " : "") << c.shifts[i];
  os << " (N = " << c.tokens << " random tokens, every head).\n"
     << "distances told apart: largest d <= 8L whose logit differs from d-1's (identical "
        "tokens, one query).\n"
     << "cost: ns per token at N = " << c.time_len
     << " (encoder: its own hooks; attention: the whole layer)"
     << (c.threads > 0 ? ", " + std::to_string(c.threads) + " thread" + (c.threads > 1 ? "s" : "")
                       : std::string())
     << ".\n\n";
  os << "| encoder | acts on | parameters | relative only | max change under shift | past L | "
        "distances told apart | encoder ns/token | attention ns/token |\n"
     << "|---|---|---|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    std::string params = std::to_string(r.parameters);
    if (r.parameter_formula != "0") params += " (" + r.parameter_formula + ")";
    std::string shift = format_change(r.shift_change);
    if (r.info.key == "learned") {
      std::int64_t mx = 0;
      for (auto s : r.shifts_used)
        mx = std::max(mx, s);
      shift += " (s <= " + std::to_string(mx) + ")";
    }
    std::string distinct = r.distinct_up_to == 0 ? std::string("none")
                           : r.distinct_up_to >= r.distinct_tested
                               ? "all (<= " + std::to_string(r.distinct_tested) + ")"
                               : "up to " + std::to_string(r.distinct_up_to);
    if (r.info.key == "learned" || r.info.key == "bert-relative") distinct += ", inside the table";
    os << "| " << r.info.name << " | " << r.info.acts_on << " | " << params << " | "
       << (r.relative_only ? "yes" : "no") << " | " << shift << " | " << r.past_length << " | "
       << distinct << " | " << format_ns(r.encoder_ns_per_token) << " | "
       << format_ns(r.attention_ns_per_token) << " |\n";
  }
  return os.str();
}

}  // namespace compare
POSENC_NAMESPACE_END
