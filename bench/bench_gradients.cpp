// The backward pass against the forward one, in one run (posenc/gradients.hpp).
//   grad/forward/<enc>/float/N:2048/Dh:64/causal:c/threads:t
//        attend with its row log-sum-exp kept (what training runs), Q, K, V given: scores +
//        bias + mask + online softmax + P V, all heads.
//   grad/backward/<enc>/...   attend_backward: dQ, dK, dV and the encoder's table gradient from
//        dO, recomputing the scores from lse (its outputs' allocation and zeroing included).
//   grad/layer_fwd/<enc>/..., grad/layer_bwd/<enc>/...   attention and attention_backward
//        (projections included; the backward recomputes its forward, as training does).
// Encoders of the core: none, alibi, t5, shaw (K = 16, value term), xl, bert_key,
// bert_key_query (tables of 2N - 1 rows), deberta (DeBERTa-v3's 256 buckets, its scale
// 1/sqrt(3 Dh)); RoPE rotates Q and K outside the core (the core is then none's), so it is
// measured in the layer (none and rope there). N = 2048, H = 8, Dh = 64, float, 1 thread
// (`--full`: also 2 threads and N = 512). The target: backward time <= 2.5 x forward time
// (bench/RESULTS.md). FLOP/s use the dense counts (forward 4 N^2 Dh H, backward 10 N^2 Dh H:
// five tile products instead of two; also under a causal mask).
#include <posenc/gradients.hpp>

#include "make_encoder.hpp"

#include <cmath>
#include <string>

namespace posenc_bench {
namespace {

constexpr Index kHeads = 8;

// make_encoder.hpp's encoders, then BERT relative and DeBERTa (as bench_attention builds them).
enum GradEnc : int { bert_key = n_enc, bert_key_query, deberta };

inline const char* grad_enc_name(int e) {
  if (e < n_enc) return enc_name(e);
  static const char* names[] = {"bert_key", "bert_key_query", "deberta"};
  return names[e - n_enc];
}

template <class T, int E>
auto make_grad_encoder(Index n, Index heads, Index head_dim) {
  using namespace posenc;
  if constexpr (E < n_enc) {
    return make_encoder<T, E>(n, heads, head_dim);
  } else if constexpr (E == deberta) {
    return DebertaEncoding<T>(random<T>(512, heads * head_dim, 0.1),
                              random<T>(512, heads * head_dim, 0.1), heads);
  } else {
    return BertRelativeEncoding<T>(
        random<T>(2 * n - 1, head_dim, 0.1),
        E == bert_key ? BertRelativeType::relative_key : BertRelativeType::relative_key_query);
  }
}

// The encoder's own score scale (DeBERTa's 1/sqrt(3 Dh)); none: the default 1/sqrt(Dh).
template <class E>
std::optional<typename E::Scalar> scale_of(const E& enc) {
  using T = typename E::Scalar;
  if constexpr (std::is_same<E, posenc::DebertaEncoding<T>>::value)
    return enc.attention_scale();
  else
    return std::nullopt;
}

template <class T, int E>
struct CoreData {
  const Index n, dh, d;
  decltype(make_grad_encoder<T, E>(1, 1, 1)) enc;
  Matrix<T> q, k, v, o, lse, dout;
  posenc::AttendOptions<T> opt;
  posenc::Positions pos;
  CoreData(Index n_, Index dh_, bool causal)
      : n(n_),
        dh(dh_),
        d(kHeads * dh_),
        enc(make_grad_encoder<T, E>(n_, kHeads, dh_)),
        q(random<T>(n_, kHeads * dh_)),
        k(random<T>(n_, kHeads * dh_)),
        v(random<T>(n_, kHeads * dh_)),
        o(n_, kHeads * dh_),
        lse(kHeads, n_),
        dout(random<T>(n_, kHeads * dh_)),
        pos(0, n_) {
    opt.heads = kHeads;
    opt.visibility.causal = causal;
    opt.scale = scale_of(enc);
    posenc::attend(enc, q, k, v, pos, pos, opt, o, lse);
  }
};

template <class T, int E>
void BM_forward(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  CoreData<T, E> c(st.range(0), st.range(1), st.range(2) != 0);
  for (auto _ : st) {
    posenc::attend(c.enc, c.q, c.k, c.v, c.pos, c.pos, c.opt, c.o, c.lse);
    benchmark::DoNotOptimize(c.o.data());
    benchmark::ClobberMemory();
  }
  report_flops<T>(st, 4.0 * double(c.n) * double(c.n) * double(c.dh) * double(kHeads), threads);
}

template <class T, int E>
void BM_backward(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  CoreData<T, E> c(st.range(0), st.range(1), st.range(2) != 0);
  for (auto _ : st) {
    auto g = posenc::attend_backward(c.enc, c.q, c.k, c.v, c.pos, c.pos, c.opt, c.o, c.lse, c.dout);
    benchmark::DoNotOptimize(g.dq.data());
    benchmark::ClobberMemory();
  }
  report_flops<T>(st, 10.0 * double(c.n) * double(c.n) * double(c.dh) * double(kHeads), threads);
}

template <class T, int E, bool Backward>
void BM_layer(benchmark::State& st) {
  const Index n = st.range(0), dh = st.range(1), d = kHeads * dh;
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  const auto enc = make_grad_encoder<T, E>(n, kHeads, dh);
  const Matrix<T> x = random<T>(n, d), wq = random<T>(d, d, 0.05), wk = random<T>(d, d, 0.05),
                  wv = random<T>(d, d, 0.05), wo = random<T>(d, d, 0.05), dy = random<T>(n, d);
  posenc::AttentionOptions<T> opt;
  opt.heads = kHeads;
  opt.causal = st.range(2) != 0;
  opt.scale = scale_of(enc);
  Matrix<T> y(n, d);
  posenc::attention(x, wq, wk, wv, wo, enc, opt, y);  // the encoder's position cache
  for (auto _ : st) {
    if constexpr (Backward) {
      auto g = posenc::attention_backward(x, wq, wk, wv, wo, enc, opt, dy);
      benchmark::DoNotOptimize(g.dx.data());
    } else {
      posenc::attention(x, wq, wk, wv, wo, enc, opt, y);
      benchmark::DoNotOptimize(y.data());
    }
    benchmark::ClobberMemory();
  }
  // forward: the core and four projections; backward: the recomputed forward, the core's
  // backward and eight projection-sized products
  const double core = double(n) * double(n) * double(dh) * double(kHeads),
               proj = 2.0 * double(n) * double(d) * double(d);
  report_flops<T>(st, Backward ? 14.0 * core + 12.0 * proj : 4.0 * core + 4.0 * proj, threads);
}

std::string tail(int e, Index n, Index dh, int causal, int th) {
  return std::string("/") + grad_enc_name(e) + "/float/N:" + std::to_string(n) +
         "/Dh:" + std::to_string(dh) + "/causal:" + std::to_string(causal) +
         "/threads:" + std::to_string(th);
}

template <int E>
void add_core(Index n, Index dh, int causal, int th) {
  benchmark::RegisterBenchmark(("grad/forward" + tail(E, n, dh, causal, th)).c_str(),
                               BM_forward<float, E>)
      ->Args({n, dh, causal, th})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("grad/backward" + tail(E, n, dh, causal, th)).c_str(),
                               BM_backward<float, E>)
      ->Args({n, dh, causal, th})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

template <int E>
void add_layer(Index n, Index dh, int causal, int th) {
  benchmark::RegisterBenchmark(("grad/layer_fwd" + tail(E, n, dh, causal, th)).c_str(),
                               BM_layer<float, E, false>)
      ->Args({n, dh, causal, th})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("grad/layer_bwd" + tail(E, n, dh, causal, th)).c_str(),
                               BM_layer<float, E, true>)
      ->Args({n, dh, causal, th})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

void register_all(bool full) {
  for (Index n : {Index(512), Index(2048)}) {
    if (n != 2048 && !full) continue;
    for (int causal : {0, 1})
      for (int th = 1; th <= (full ? max_threads() : 1); ++th) {
        add_core<none>(n, 64, causal, th);
        add_core<alibi>(n, 64, causal, th);
        add_core<t5>(n, 64, causal, th);
        add_core<shaw>(n, 64, causal, th);
        add_core<xl>(n, 64, causal, th);
        add_core<bert_key>(n, 64, causal, th);
        add_core<bert_key_query>(n, 64, causal, th);
        add_core<deberta>(n, 64, causal, th);
        add_layer<none>(n, 64, causal, th);
        add_layer<rope>(n, 64, causal, th);
      }
  }
}

}  // namespace
}  // namespace posenc_bench

POSENC_BENCH_MAIN(posenc_bench::register_all)
