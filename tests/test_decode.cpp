// The decoding kernel (attend with at most 8 queries: detail/attend_decode.hpp) against a dense
// float64 evaluation of conventions.md sections 6 and 6b written out here (scores, the
// encoder's bias on the whole matrix, soft-cap, the visibility rules, sinks, softmax, P V and
// Shaw's value term), on many shapes: one to eight queries, one key to several spans of
// keys, grouped heads, Dh with and without a SIMD-width multiple; also its log-sum-exp, rows
// that see nothing, NaN propagation, equality with the tiled kernel (more than 8 queries),
// and one result for any thread count.
#include "attention_support.hpp"

#include <cmath>
#include <limits>
#include <random>

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace attention_test;

namespace {

struct Rules {
  bool causal = false;
  std::int64_t window = 0, chunk = 0;
  std::vector<std::int64_t> qseg, kseg;
};

// Conventions 6b, pair by pair.
bool visible(const Rules& r, std::int64_t pi, std::int64_t pj, Index i, Index j) {
  if (r.causal && pj > pi) return false;
  if (r.window > 0) {
    const std::int64_t d = pi - pj;
    if (d >= r.window || (!r.causal && -d >= r.window)) return false;
  }
  if (r.chunk > 0 && pi / r.chunk != pj / r.chunk) return false;
  if (!r.qseg.empty()) {
    const std::int64_t a = r.qseg[static_cast<std::size_t>(i)],
                       b = r.kseg[static_cast<std::size_t>(j)];
    if (a < 0 || b < 0 || a != b) return false;
  }
  return true;
}

struct Reference {
  Matrix<double> out, lse;
};

// Section 6 densely in double, head by head (query head h reads key/value head h H_kv / H).
template <class E>
Reference dense_reference(const E& enc, const Matrix<double>& q, const Matrix<double>& k,
                          const Matrix<double>& v, const Positions& qpos, const Positions& kpos,
                          Index heads, Index kv_heads, double scale, const Rules& rules,
                          double softcap, const std::vector<double>& sinks) {
  const Index nq = q.rows(), nk = k.rows(), dh = q.cols() / heads;
  Reference r{Matrix<double>::Zero(nq, q.cols()), Matrix<double>(heads, nq)};
  for (Index h = 0; h < heads; ++h) {
    const Index g = h * kv_heads / heads;
    const Matrix<double> qh = q.middleCols(h * dh, dh), kh = k.middleCols(g * dh, dh),
                         vh = v.middleCols(g * dh, dh);
    Matrix<double> s = scale * qh * kh.transpose();
    if constexpr (encoder_traits<E>::biases_scores)
      enc.score_bias(qpos, kpos, heads, dh, scale).add(h, 0, 0, qh, kh, s);
    if (softcap > 0) s = softcap * (s.array() / softcap).tanh();
    Matrix<double> p = Matrix<double>::Zero(nq, nk);
    for (Index i = 0; i < nq; ++i) {
      double m = -std::numeric_limits<double>::infinity();
      for (Index j = 0; j < nk; ++j)
        if (visible(rules, qpos[i], kpos[j], i, j)) m = std::max(m, s(i, j));
      const double sink = sinks.empty() ? -std::numeric_limits<double>::infinity()
                                        : sinks[static_cast<std::size_t>(h)];
      if (m == -std::numeric_limits<double>::infinity()) {  // sees nothing
        r.lse(h, i) = std::numeric_limits<double>::infinity();
        continue;
      }
      m = std::max(m, sink);
      double sum = std::exp(sink - m);
      for (Index j = 0; j < nk; ++j)
        if (visible(rules, qpos[i], kpos[j], i, j)) sum += (p(i, j) = std::exp(s(i, j) - m));
      p.row(i) /= sum;
      r.lse(h, i) = m + std::log(sum);
    }
    Matrix<double> oh = p * vh;
    if constexpr (adds_values<E>())
      enc.score_bias(qpos, kpos, heads, dh, scale).add_values(h, 0, 0, p, oh);
    r.out.middleCols(h * dh, dh) = oh;
  }
  return r;
}

template <class F>
void for_each_encoder(Index heads, Index dh, std::uint64_t seed, F&& f) {
  f("none", NoEncoding<double>{});
  f("alibi", AlibiEncoding<double>(heads));
  f("t5", T5Encoding<double>(random_matrix<double>(32, heads, seed)));
  f("shaw", ShawEncoding<double>(random_matrix<double>(9, dh, seed + 1),
                                 random_matrix<double>(9, dh, seed + 2)));
  const Index d = heads * dh;
  if (d % 2 == 0)
    f("xl", TransformerXLEncoding<double>(random_matrix<double>(heads, dh, seed + 3, 0.3),
                                          random_matrix<double>(heads, dh, seed + 4, 0.3),
                                          random_matrix<double>(d, d, seed + 5, 0.2)));
}

AttendOptions<double> attend_options(Index heads, Index kv_heads, const Rules& r, double softcap,
                                     const std::vector<double>& sinks) {
  AttendOptions<double> o;
  o.heads = heads;
  o.kv_heads = kv_heads;
  o.visibility.causal = r.causal;
  o.visibility.window = r.window;
  o.visibility.chunk = r.chunk;
  o.query_segments = r.qseg;
  o.key_segments = r.kseg;
  if (softcap > 0) o.softcap = softcap;
  o.sinks = sinks;
  return o;
}

}  // namespace

TEST_CASE("decoding: few queries against many keys equal the dense reference",
          "[attention][decode]") {
  std::mt19937_64 rng(777);
  // one key, around the block (32) and the span (1024), several spans
  const std::vector<Index> nks = {1, 3, 31, 33, 100, 1024, 1025, 2600};
  const std::vector<std::pair<Index, Index>> groups = {{4, 4}, {8, 2}, {12, 1}, {3, 1}};
  const std::vector<Index> dhs = {5, 8, 16};
  for (int trial = 0; trial < 24; ++trial) {
    const Index nq = 1 + static_cast<Index>(rng() % 8), nk = nks[rng() % nks.size()];
    const auto [heads, kv_heads] = groups[rng() % groups.size()];
    const Index dh = dhs[rng() % dhs.size()];
    const int kind = trial % 6;
    Rules rules;
    double softcap = 0;
    std::vector<double> sinks;
    // queries after the keys (a decoding step) or among them
    std::int64_t q0 = kind == 5 ? nk / 2 : nk;
    if (kind == 1) rules.causal = true;
    if (kind == 2) {
      rules.causal = true;
      rules.window = 40;
      q0 = nk - 1;  // the last queries of the sequence themselves cached
    }
    if (kind == 3) {
      rules.chunk = 300;
      softcap = 2.5;
    }
    if (kind == 4) {
      for (Index i = 0; i < nq; ++i)
        rules.qseg.push_back(i == 0 ? -1 : i % 2);  // the first query is padding
      for (Index j = 0; j < nk; ++j)
        rules.kseg.push_back(j % 7 == 0 ? -1 : (j / 5) % 2);
    }
    if (kind == 5) {
      rules.causal = true;
      for (Index h = 0; h < heads; ++h)
        sinks.push_back(h % 3 == 2 ? -std::numeric_limits<double>::infinity() : 0.3 * double(h));
    }
    const Positions kpos(0, nk), qpos(q0, nq);
    const std::uint64_t seed = 5000 + 31 * static_cast<std::uint64_t>(trial);
    const Matrix<double> q = random_matrix<double>(nq, heads * dh, seed),
                         k = random_matrix<double>(nk, kv_heads * dh, seed + 1),
                         v = random_matrix<double>(nk, kv_heads * dh, seed + 2);
    const double scale = 1.0 / std::sqrt(double(dh));
    for_each_encoder(heads, dh, seed, [&](const char* name, const auto& enc) {
      if (std::string(name) == "xl" && kv_heads != heads) return;  // XL: one K head per head
      INFO(name << ": Nq = " << nq << ", Nk = " << nk << ", H = " << heads
                << ", H_kv = " << kv_heads << ", Dh = " << dh << ", kind " << kind);
      const auto opt = attend_options(heads, kv_heads, rules, softcap, sinks);
      Matrix<double> out(nq, heads * dh), lse(heads, nq);
      attend(enc, q, k, v, qpos, kpos, opt, out, lse);
      const Reference ref =
          dense_reference(enc, q, k, v, qpos, kpos, heads, kv_heads, scale, rules, softcap, sinks);
      CHECK(max_abs_diff(out, ref.out) <= 1e-12);
      for (Index h = 0; h < heads; ++h)
        for (Index i = 0; i < nq; ++i) {
          if (std::isinf(ref.lse(h, i))) {
            CHECK(lse(h, i) == std::numeric_limits<double>::infinity());
            CHECK(out.row(i).segment(h * dh, dh).isZero(0));
          } else {
            CHECK(std::abs(lse(h, i) - ref.lse(h, i)) <= 1e-12);
          }
        }
    });
  }
}

TEST_CASE("decoding: float32 over several spans within float rounding of float64",
          "[attention][decode]") {
  const Index nq = 1, nk = 3000, heads = 32, kv_heads = 8, dh = 128;
  const Matrix<double> q = random_matrix<double>(nq, heads * dh, 11),
                       k = random_matrix<double>(nk, kv_heads * dh, 12),
                       v = random_matrix<double>(nk, kv_heads * dh, 13);
  const Positions kpos(0, nk), qpos(nk, nq);
  AttendOptions<float> of;
  of.heads = heads;
  of.kv_heads = kv_heads;
  Matrix<float> out(nq, heads * dh);
  attend(AlibiEncoding<float>(heads), Matrix<float>(q.cast<float>()),
         Matrix<float>(k.cast<float>()), Matrix<float>(v.cast<float>()), qpos, kpos, of, out);
  const Reference ref = dense_reference(AlibiEncoding<double>(heads), q, k, v, qpos, kpos, heads,
                                        kv_heads, 1.0 / std::sqrt(double(dh)), Rules{}, 0, {});
  CHECK(max_abs_diff(out.cast<double>(), ref.out) <= 2e-6);
}

TEST_CASE("decoding: the same rows as the tiled kernel", "[attention][decode]") {
  // 20 queries take the tiled kernel; each slice of at most 8 of them the decoding one
  const Index nq = 20, nk = 1500, heads = 6, kv_heads = 2, dh = 16;
  const Matrix<double> q = random_matrix<double>(nq, heads * dh, 21),
                       k = random_matrix<double>(nk, kv_heads * dh, 22),
                       v = random_matrix<double>(nk, kv_heads * dh, 23);
  const Positions kpos(0, nk);
  Rules rules;
  rules.causal = true;
  const auto opt = attend_options(heads, kv_heads, rules, 0, {});
  const T5Encoding<double> enc(random_matrix<double>(32, heads, 24), T5Options{32, false});
  Matrix<double> all(nq, heads * dh);
  attend(enc, q, k, v, Positions(nk - nq, nq), kpos, opt, all);
  for (Index i0 = 0; i0 < nq; i0 += 7) {
    const Index n = std::min<Index>(7, nq - i0);
    Matrix<double> part(n, heads * dh);
    attend(enc, q.middleRows(i0, n), k, v, Positions(nk - nq + i0, n), kpos, opt, part);
    CHECK(max_abs_diff(part, all.middleRows(i0, n)) <= 1e-13);
  }
}

TEST_CASE("decoding: NaN stays in its head", "[attention][decode]") {
  const Index nk = 2100, heads = 4, kv_heads = 2, dh = 8;
  Matrix<double> q = random_matrix<double>(1, heads * dh, 31);
  const Matrix<double> k = random_matrix<double>(nk, kv_heads * dh, 32),
                       v = random_matrix<double>(nk, kv_heads * dh, 33);
  q(0, 2 * dh + 3) = std::numeric_limits<double>::quiet_NaN();  // head 2
  AttendOptions<double> opt;
  opt.heads = heads;
  opt.kv_heads = kv_heads;
  Matrix<double> out(1, heads * dh);
  attend(NoEncoding<double>{}, q, k, v, Positions(nk, 1), Positions(0, nk), opt, out);
  CHECK(out.middleCols(2 * dh, dh).array().isNaN().all());
  CHECK(out.leftCols(2 * dh).allFinite());
  CHECK(out.rightCols(dh).allFinite());
}

#if defined(_OPENMP)
TEST_CASE("decoding: one result for any thread count", "[attention][decode]") {
  const Index nk = 5000, heads = 8, kv_heads = 2, dh = 16;
  const Matrix<float> q = random_matrix<float>(3, heads * dh, 41),
                      k = random_matrix<float>(nk, kv_heads * dh, 42),
                      v = random_matrix<float>(nk, kv_heads * dh, 43);
  AttendOptions<float> opt;
  opt.heads = heads;
  opt.kv_heads = kv_heads;
  const int saved = omp_get_max_threads();
  Matrix<float> one(3, heads * dh), two(3, heads * dh);
  omp_set_num_threads(1);
  attend(AlibiEncoding<float>(heads), q, k, v, Positions(nk, 3), Positions(0, nk), opt, one);
  omp_set_num_threads(2);
  attend(AlibiEncoding<float>(heads), q, k, v, Positions(nk, 3), Positions(0, nk), opt, two);
  omp_set_num_threads(saved);
  CHECK((one.array() == two.array()).all());
}
#endif
