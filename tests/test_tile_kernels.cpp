// The fast kernels (register-blocked attention tiles, vectorised RoPE, additive encodings and
// score biases) against simple reference evaluations, on random inputs of many shapes: N = 1,
// N not a multiple of the tiles, Dh with and without a SIMD-width multiple (the micro-kernel
// and the Eigen fallback), every encoder, causal or not, offsets, explicit positions, more keys
// than queries (a KV cache), float and double. No timing is asserted.
#include "attention_support.hpp"

#include <random>

using namespace attention_test;

namespace {

// Section 6 directly: dense S = scale Q K^T + B (the encoder's hook on the whole matrix),
// mask by position, plain softmax, P V (+ Shaw's value term).
template <class E>
Matrix<typename E::Scalar> reference_attend(const E& enc, const Matrix<typename E::Scalar>& q,
                                            const Matrix<typename E::Scalar>& k,
                                            const Matrix<typename E::Scalar>& v,
                                            const Positions& qpos, const Positions& kpos,
                                            Index heads, typename E::Scalar scale, bool causal) {
  using T = typename E::Scalar;
  const Index nq = q.rows(), nk = k.rows(), dh = q.cols() / heads;
  Matrix<T> out(nq, q.cols());
  for (Index h = 0; h < heads; ++h) {
    const Matrix<T> qh = q.middleCols(h * dh, dh), kh = k.middleCols(h * dh, dh);
    Matrix<T> s = scale * qh * kh.transpose();
    if constexpr (encoder_traits<E>::biases_scores) {
      const auto b = enc.score_bias(qpos, kpos, heads, dh, scale);
      b.add(h, 0, 0, qh, kh, s);
    }
    if (causal)
      for (Index i = 0; i < nq; ++i)
        for (Index j = 0; j < nk; ++j)
          if (kpos[j] > qpos[i]) s(i, j) = -std::numeric_limits<T>::infinity();
    Matrix<T> p = (s.colwise() - s.rowwise().maxCoeff()).array().exp();
    const Vector<T> sum = p.rowwise().sum();
    p = sum.cwiseInverse().asDiagonal() * p;
    Matrix<T> oh = p * v.middleCols(h * dh, dh);
    if constexpr (adds_values<E>()) {
      const auto b = enc.score_bias(qpos, kpos, heads, dh, scale);
      b.add_values(h, 0, 0, p, oh);
    }
    out.middleCols(h * dh, dh) = oh;
  }
  return out;
}

std::vector<std::int64_t> random_positions(std::mt19937_64& rng, Index n, std::int64_t hi) {
  std::uniform_int_distribution<std::int64_t> u(0, hi);
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  for (auto& x : p)
    x = u(rng);
  return p;
}

template <class T, class F>
void for_each_bias_encoder(Index heads, Index dh, std::uint64_t seed, F&& f) {
  const Index d = heads * dh;
  f("none", NoEncoding<T>{});
  f("alibi", AlibiEncoding<T>(heads));
  f("t5", T5Encoding<T>(random_matrix<T>(32, heads, seed)));
  f("shaw", ShawEncoding<T>(random_matrix<T>(9, dh, seed + 1), random_matrix<T>(9, dh, seed + 2)));
  if (d % 2 == 0)
    f("xl", TransformerXLEncoding<T>(random_matrix<T>(heads, dh, seed + 3, 0.3),
                                     random_matrix<T>(heads, dh, seed + 4, 0.3),
                                     random_matrix<T>(d, d, seed + 5, 1.0 / std::sqrt(double(d)))));
}

template <class T>
double kernel_tol() {
  return std::is_same<T, float>::value ? 2e-5 : 1e-12;
}

}  // namespace

TEMPLATE_TEST_CASE("kernels: attention tiles equal the dense reference on random shapes",
                   "[kernels][attention]", float, double) {
  using T = TestType;
  std::mt19937_64 rng(20240611 + sizeof(T));
  // N = 1, around the query tile, the key tile and the micro-kernel's row/packet blocks.
  const std::vector<Index> ns = {1, 2, 5, 7, 17, 63, 64, 65, 97, 129, 150, 257};
  // Dh: multiples of every SIMD width (micro-kernel), and others (Eigen fallback: 2, 3, 6, 10).
  const std::vector<Index> dhs = {2, 3, 4, 6, 8, 10, 16, 24, 32, 48, 64};
  std::uniform_int_distribution<std::size_t> pick_n(0, ns.size() - 1), pick_dh(0, dhs.size() - 1);
  for (int trial = 0; trial < 40; ++trial) {
    const Index nq = ns[pick_n(rng)], dh = dhs[pick_dh(rng)], heads = 1 + Index(trial % 3);
    const bool kv = trial % 4 == 3;  // more keys than queries, queries at the end
    const Index nk = kv ? nq + ns[pick_n(rng)] : nq;
    const bool causal = trial % 2 == 1;
    const int pos_kind = trial % 5;  // 0..2 contiguous with offsets, 3..4 explicit
    const std::int64_t offset = pos_kind == 0 ? 0 : pos_kind == 1 ? 5 : 1000;
    Positions kpos(offset, nk), qpos(offset + (nk - nq), nq);
    if (pos_kind >= 3) {
      auto kp = random_positions(rng, nk, 3 * nk);
      std::vector<std::int64_t> qp(kp.end() - nq, kp.end());
      if (causal) {  // every query needs an unmasked key
        kp[0] = 0;
      }
      kpos = Positions(kp);
      qpos = Positions(qp);
    }
    const Index d = heads * dh;
    const std::uint64_t seed = 1000 + static_cast<std::uint64_t>(trial);
    const Matrix<T> q = random_matrix<T>(nq, d, seed), k = random_matrix<T>(nk, d, seed + 7),
                    v = random_matrix<T>(nk, d, seed + 9);
    const T scale = T(1) / std::sqrt(T(dh));
    for_each_bias_encoder<T>(heads, dh, seed, [&](const char* name, const auto& enc) {
      INFO(name << ": Nq = " << nq << ", Nk = " << nk << ", H = " << heads << ", Dh = " << dh
                << (causal ? ", causal" : "") << ", positions kind " << pos_kind);
      Matrix<T> out(nq, d);
      detail::attend(enc, q, k, v, qpos, kpos, heads, scale, causal, out);
      const Matrix<T> ref = reference_attend(enc, q, k, v, qpos, kpos, heads, scale, causal);
      CHECK(max_abs_diff(out, ref) <= kernel_tol<T>());
    });
  }
}

TEMPLATE_TEST_CASE("kernels: attention over blocks with an outer stride and a user encoder",
                   "[kernels][attention]", float, double) {
  using T = TestType;
  // Q, K, V as column blocks of wider matrices (outer stride != D), as a user's buffers may be.
  const Index n = 70, heads = 2, dh = 16, d = heads * dh;
  const Matrix<T> big = random_matrix<T>(n, 3 * d + 5, 42);
  const Matrix<T> q = big.middleCols(0, d), k = big.middleCols(d + 1, d),
                  v = big.middleCols(2 * d + 3, d);
  const Positions pos(3, n);
  for (bool causal : {false, true}) {
    Matrix<T> out(n, d);
    detail::attend(AlibiEncoding<T>(heads), big.middleCols(0, d), big.middleCols(d + 1, d),
                   big.middleCols(2 * d + 3, d), pos, pos, heads, T(0.25), causal, out);
    CHECK(max_abs_diff(out, reference_attend(AlibiEncoding<T>(heads), q, k, v, pos, pos, heads,
                                             T(0.25), causal)) <= kernel_tol<T>());
  }
}

TEMPLATE_TEST_CASE("kernels: RoPE rotation equals the pair formula", "[kernels][rope]", float,
                   double) {
  using T = TestType;
  std::mt19937_64 rng(7);
  for (auto layout : {RotaryLayout::half, RotaryLayout::interleaved})
    for (Index dh : {2, 6, 8, 32, 64, 128})
      for (Index rot : {dh, dh / 2 - (dh / 2) % 2}) {
        if (rot < 2) continue;
        for (Index n : {1, 3, 33}) {
          for (int kind : {0, 1, 2}) {  // offset 0, large offset, explicit positions
            const Index heads = 3;
            const Positions pos = kind == 0   ? Positions(0, n)
                                  : kind == 1 ? Positions(std::int64_t(1) << 20, n)
                                              : Positions(random_positions(rng, n, 5000));
            RotaryEncoding<T> enc(dh, rope_options(rot, layout));
            for (bool cached : {true, false}) {
              // (a cache of 2^20 rows would only make the test slow: far positions uncached)
              if (cached && kind == 1) continue;
              if (!cached) enc.set_cache_limit(0);
              const Matrix<T> x =
                  random_matrix<T>(n, heads * dh, 11 + static_cast<std::uint64_t>(n));
              Matrix<T> y = x;
              enc.rotate(y, pos, heads);
              // reference in double
              const std::vector<double> f = enc.inv_freq(pos.max());
              double err = 0;
              for (Index i = 0; i < n; ++i)
                for (Index h = 0; h < heads; ++h)
                  for (Index c = 0; c < rot / 2; ++c) {
                    const Index a = layout == RotaryLayout::half ? c : 2 * c;
                    const Index b = layout == RotaryLayout::half ? c + rot / 2 : 2 * c + 1;
                    const double th = double(pos[i]) * f[static_cast<std::size_t>(c)];
                    const double xa = double(x(i, h * dh + a)), xb = double(x(i, h * dh + b));
                    err = std::max(err, std::abs(double(y(i, h * dh + a)) -
                                                 (xa * std::cos(th) - xb * std::sin(th))));
                    err = std::max(err, std::abs(double(y(i, h * dh + b)) -
                                                 (xb * std::cos(th) + xa * std::sin(th))));
                  }
              for (Index i = 0; i < n; ++i)
                for (Index h = 0; h < heads; ++h)
                  for (Index c = rot; c < dh; ++c)
                    err = std::max(err, std::abs(double(y(i, h * dh + c) - x(i, h * dh + c))));
              INFO("layout " << int(layout) << ", Dh = " << dh << ", R = " << rot << ", N = " << n
                             << ", kind " << kind << (cached ? ", cached" : ", uncached"));
              CHECK(err <= (std::is_same<T, float>::value ? 2e-6 : 1e-12) * 8);
            }
          }
        }
      }
}

TEMPLATE_TEST_CASE("kernels: additive encodings equal X + table", "[kernels][additive]", float,
                   double) {
  using T = TestType;
  std::mt19937_64 rng(9);
  for (Index d : {2, 6, 64, 130})
    for (Index n : {1, 5, 77})
      for (int kind : {0, 1, 2}) {
        const Positions pos = kind == 0   ? Positions(0, n)
                              : kind == 1 ? Positions(300, n)
                                          : Positions(random_positions(rng, n, 350));
        const Matrix<T> x = random_matrix<T>(n, d, 5);
        for (auto layout : {SinusoidalLayout::interleaved, SinusoidalLayout::split}) {
          SinusoidalOptions o;
          o.layout = layout;
          o.scale = 0.5;
          SinusoidalEncoding<T> enc(d, o);
          for (bool cached : {true, false}) {
            if (!cached) enc.set_cache_limit(0);
            Matrix<T> y = x;
            enc.add_to_input(y, pos);
            const Matrix<T> ref = x + T(0.5) * enc.table(pos);
            INFO("sinusoidal D = " << d << ", N = " << n << ", kind " << kind);
            CHECK(max_abs_diff(y, ref) <= 4 * tolerance<T>());
          }
        }
        const auto learned = LearnedEncoding<T>::normal(400, d, 3, 0.5, 2);
        Matrix<T> y = x;
        learned.add_to_input(y, pos);
        double err = 0;
        for (Index i = 0; i < n; ++i)
          for (Index c = 0; c < d; ++c)
            err = std::max(
                err, std::abs(double(y(i, c)) - double(x(i, c) + learned.table()(pos[i] + 2, c))));
        CHECK(err == 0.0);
      }
}

TEMPLATE_TEST_CASE("kernels: ALiBi and T5 tile biases equal their dense matrices",
                   "[kernels][bias]", float, double) {
  using T = TestType;
  std::mt19937_64 rng(11);
  const Index heads = 3;
  const AlibiEncoding<T> alibi(heads);
  for (bool bidirectional : {true, false}) {
    T5Options o;
    o.bidirectional = bidirectional;
    const T5Encoding<T> t5(random_matrix<T>(32, heads, 4), o);
    for (int kind : {0, 1, 2, 3}) {
      const Index nq = 37, nk = 300;
      // contiguous (near and far offsets: dense and sparse T5 lookups) and explicit
      const Positions qpos = kind == 0   ? Positions(250, nq)
                             : kind == 1 ? Positions(100000, nq)
                             : kind == 2 ? Positions(10, nq)
                                         : Positions(random_positions(rng, nq, 1000));
      const Positions kpos =
          kind == 3 ? Positions(random_positions(rng, nk, 1000)) : Positions(kind == 1 ? 7 : 0, nk);
      for (Index h = 0; h < heads; ++h) {
        const Matrix<T> ba = alibi.bias(h, qpos, kpos), bt = t5.bias(h, qpos, kpos);
        const auto sa = alibi.score_bias(qpos, kpos, heads, 4, T(1));
        const auto st = t5.score_bias(qpos, kpos, heads, 4, T(1));
        const Matrix<T> dummy(1, 1);
        for (Index i0 : {Index(0), Index(5)})
          for (Index j0 : {Index(0), Index(13), Index(200)}) {
            const Index bi = std::min<Index>(19, nq - i0), bj = std::min<Index>(71, nk - j0);
            Matrix<T> s1 = Matrix<T>::Zero(bi, bj), s2 = Matrix<T>::Zero(bi, bj);
            sa.add(h, i0, j0, dummy, dummy, s1);
            st.add(h, i0, j0, dummy, dummy, s2);
            INFO("kind " << kind << ", h " << h << ", tile at " << i0 << ", " << j0);
            CHECK(max_abs_diff(s1, ba.block(i0, j0, bi, bj)) <= tolerance<T>(1e5));
            CHECK(max_abs_diff(s2, bt.block(i0, j0, bi, bj)) == 0.0);
          }
      }
    }
  }
}
