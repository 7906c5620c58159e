// Attention with every encoder.
//   core/<enc>/<T>     the part after the projections: RoPE's rotation of Q and K (for rope),
//                      scores + the encoder's bias + mask + online softmax + P V, all heads.
//                      FLOP counted: 4 N^2 Dh H (the dense count, also for causal).
//   module/<enc>/<T>   attention(x, Wq, Wk, Wv, Wo, enc, opt, y): X + PE, the four projections,
//                      the core. FLOP counted: 4 N^2 Dh H + 8 N D^2.
// Arguments: N, Dh, causal, threads; H = 8. Ratios are against Eigen's GEMM FLOP/s for the
// same scalar type and thread count, measured at start-up (common.hpp).
//   core/bert_key, core/bert_key_query, core/deberta (and module/...)   BERT's relative
//                      embeddings with a table of 2N - 1 rows (every distance of the sequence)
//                      and DeBERTa-v3's (256 buckets, 512 relative positions, both terms, its
//                      scale), at the shapes of core/shaw (bench/RESULTS.md compares them).
#include "make_encoder.hpp"

#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace posenc_bench {
namespace {

constexpr Index kHeads = 8;

template <class T, int E>
void BM_core(benchmark::State& st) {
  const Index n = st.range(0), dh = st.range(1), heads = kHeads, d = heads * dh;
  const bool causal = st.range(2) != 0;
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  const auto enc = make_encoder<T, E>(n, heads, dh);
  Matrix<T> q = random<T>(n, d), k = random<T>(n, d);
  const Matrix<T> v = random<T>(n, d);
  Matrix<T> o(n, d);
  const posenc::Positions pos(0, n);
  const T scale = T(1) / std::sqrt(T(dh));
  auto run = [&] {
    if constexpr (posenc::encoder_traits<decltype(enc)>::rotates_qk) {
      enc.rotate(q, pos, heads);
      enc.rotate(k, pos, heads);
    }
    posenc::detail::attend(enc, q, k, v, pos, pos, heads, scale, causal, o);
  };
  run();
  for (auto _ : st) {
    run();
    benchmark::DoNotOptimize(o.data());
    benchmark::ClobberMemory();
  }
  report_flops<T>(st, 4.0 * double(n) * double(n) * double(dh) * double(heads), threads);
}

template <class T, int E>
void BM_module(benchmark::State& st) {
  const Index n = st.range(0), dh = st.range(1), heads = kHeads, d = heads * dh;
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  const auto enc = make_encoder<T, E>(n, heads, dh);
  const Matrix<T> x = random<T>(n, d), wq = random<T>(d, d, 0.05), wk = random<T>(d, d, 0.05),
                  wv = random<T>(d, d, 0.05), wo = random<T>(d, d, 0.05);
  Matrix<T> y(n, d);
  posenc::AttentionOptions<T> opt;
  opt.heads = heads;
  opt.causal = st.range(2) != 0;
  posenc::attention(x, wq, wk, wv, wo, enc, opt, y);
  for (auto _ : st) {
    posenc::attention(x, wq, wk, wv, wo, enc, opt, y);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report_flops<T>(st,
                  4.0 * double(n) * double(n) * double(dh) * double(heads) +
                      8.0 * double(n) * double(d) * double(d),
                  threads);
}

// The encoders that make_encoder.hpp does not build: BERT relative and DeBERTa.
// shaw_full: Shaw with K = N - 1 (tables of 2N - 1 rows, every distance of the sequence apart),
// the table size of bert_key, which reads as many distinct rows.
enum RelativeEnc : int { bert_key, bert_key_query, deberta, shaw_full };

inline const char* relative_name(int e) {
  static const char* names[] = {"bert_key", "bert_key_query", "deberta", "shaw_full"};
  return names[e];
}

template <class T, int E>
auto make_relative(Index n, Index heads, Index head_dim) {
  using namespace posenc;
  if constexpr (E == shaw_full) {
    return ShawEncoding<T>(random<T>(2 * n - 1, head_dim, 0.1),
                           random<T>(2 * n - 1, head_dim, 0.1));
  } else if constexpr (E == deberta) {
    // K_r, Q_r [2 span, H Dh] with DeBERTa-v3's span of 256
    return DebertaEncoding<T>(random<T>(512, heads * head_dim, 0.1),
                              random<T>(512, heads * head_dim, 0.1), heads);
  } else {
    return BertRelativeEncoding<T>(
        random<T>(2 * n - 1, head_dim, 0.1),
        E == bert_key ? BertRelativeType::relative_key : BertRelativeType::relative_key_query);
  }
}

// The encoder's own score scale (DeBERTa's 1/sqrt(3 Dh)), else 1/sqrt(Dh).
template <class E>
typename E::Scalar scale_of(const E& enc, Index dh) {
  using T = typename E::Scalar;
  if constexpr (std::is_same<E, posenc::DebertaEncoding<T>>::value) {
    return enc.attention_scale();
  } else {
    return T(1) / std::sqrt(T(dh));
  }
}

template <class T, int E>
void BM_core_relative(benchmark::State& st) {
  const Index n = st.range(0), dh = st.range(1), heads = kHeads, d = heads * dh;
  const bool causal = st.range(2) != 0;
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  const auto enc = make_relative<T, E>(n, heads, dh);
  const Matrix<T> q = random<T>(n, d), k = random<T>(n, d), v = random<T>(n, d);
  Matrix<T> o(n, d);
  const posenc::Positions pos(0, n);
  const T scale = scale_of(enc, dh);
  posenc::detail::attend(enc, q, k, v, pos, pos, heads, scale, causal, o);
  for (auto _ : st) {
    posenc::detail::attend(enc, q, k, v, pos, pos, heads, scale, causal, o);
    benchmark::DoNotOptimize(o.data());
    benchmark::ClobberMemory();
  }
  report_flops<T>(st, 4.0 * double(n) * double(n) * double(dh) * double(heads), threads);
}

template <class T, int E>
void BM_module_relative(benchmark::State& st) {
  const Index n = st.range(0), dh = st.range(1), heads = kHeads, d = heads * dh;
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  const auto enc = make_relative<T, E>(n, heads, dh);
  const Matrix<T> x = random<T>(n, d), wq = random<T>(d, d, 0.05), wk = random<T>(d, d, 0.05),
                  wv = random<T>(d, d, 0.05), wo = random<T>(d, d, 0.05);
  Matrix<T> y(n, d);
  posenc::AttentionOptions<T> opt;
  opt.heads = heads;
  opt.causal = st.range(2) != 0;
  opt.scale = scale_of(enc, dh);
  posenc::attention(x, wq, wk, wv, wo, enc, opt, y);
  for (auto _ : st) {
    posenc::attention(x, wq, wk, wv, wo, enc, opt, y);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report_flops<T>(st,
                  4.0 * double(n) * double(n) * double(dh) * double(heads) +
                      8.0 * double(n) * double(d) * double(d),
                  threads);
}

using Fn = void (*)(benchmark::State&);

template <class T>
std::vector<std::pair<int, std::pair<Fn, Fn>>> relative_encoders() {
  return {{bert_key, {BM_core_relative<T, bert_key>, BM_module_relative<T, bert_key>}},
          {bert_key_query,
           {BM_core_relative<T, bert_key_query>, BM_module_relative<T, bert_key_query>}},
          {deberta, {BM_core_relative<T, deberta>, BM_module_relative<T, deberta>}},
          {shaw_full, {BM_core_relative<T, shaw_full>, BM_module_relative<T, shaw_full>}}};
}

void add_named(const std::string& kind, const char* enc, const char* t, Fn f, Index n, Index dh,
               int causal, int th) {
  benchmark::RegisterBenchmark((kind + "/" + enc + "/" + t).c_str(), f)
      ->Args({n, dh, causal, th})
      ->ArgNames({"N", "Dh", "causal", "threads"})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

template <class T>
std::vector<std::pair<int, std::pair<Fn, Fn>>> all_encoders() {
  return {{none, {BM_core<T, none>, BM_module<T, none>}},
          {sinusoidal, {BM_core<T, sinusoidal>, BM_module<T, sinusoidal>}},
          {learned, {BM_core<T, learned>, BM_module<T, learned>}},
          {rope, {BM_core<T, rope>, BM_module<T, rope>}},
          {rope_interleaved, {BM_core<T, rope_interleaved>, BM_module<T, rope_interleaved>}},
          {alibi, {BM_core<T, alibi>, BM_module<T, alibi>}},
          {t5, {BM_core<T, t5>, BM_module<T, t5>}},
          {shaw, {BM_core<T, shaw>, BM_module<T, shaw>}},
          {xl, {BM_core<T, xl>, BM_module<T, xl>}}};
}

void add(const std::string& kind, int e, const char* t, Fn f, Index n, Index dh, int causal,
         int th) {
  add_named(kind, enc_name(e), t, f, n, dh, causal, th);
}

template <class T>
void register_grid(const std::vector<Index>& ns) {
  for (const auto& [e, fns] : all_encoders<T>())
    for (Index n : ns)
      for (Index dh : {64, 128})
        for (int causal : {0, 1})
          for (int th = 1; th <= max_threads(); ++th) {
            add("core", e, type_name<T>(), fns.first, n, dh, causal, th);
            add("module", e, type_name<T>(), fns.second, n, dh, causal, th);
          }
  for (const auto& [e, fns] : relative_encoders<T>())
    for (Index n : ns)
      for (Index dh : {64, 128})
        for (int causal : {0, 1})
          for (int th = 1; th <= max_threads(); ++th) {
            add_named("core", relative_name(e), type_name<T>(), fns.first, n, dh, causal, th);
            add_named("module", relative_name(e), type_name<T>(), fns.second, n, dh, causal, th);
          }
}

void register_all(bool full) {
  if (full) {
    register_grid<float>({128, 512, 2048, 8192});
    register_grid<double>({128, 512, 2048, 8192});
    return;
  }
  // Default: the targets' workloads (float, N = 2048, Dh = 64), every encoder, both masks and
  // both thread counts; N = 128 and 512 for the module; one double row.
  for (const auto& [e, fns] : all_encoders<float>()) {
    for (int causal : {0, 1})
      for (int th = 1; th <= max_threads(); ++th)
        add("core", e, "float", fns.first, 2048, 64, causal, th);
    for (Index n : {128, 512, 2048})
      add("module", e, "float", fns.second, n, 64, 0, 1);
  }
  for (int th = 1; th <= max_threads(); ++th) {
    if (th > 1)
      add("module", none, "float", all_encoders<float>()[0].second.second, 2048, 64, 0, th);
    add("module", alibi, "float", all_encoders<float>()[5].second.second, 2048, 64, 1, th);
  }
  // BERT relative and DeBERTa at core/shaw's shapes, and the module at N = 512 and 2048
  for (const auto& [e, fns] : relative_encoders<float>()) {
    for (int causal : {0, 1})
      for (int th = 1; th <= max_threads(); ++th)
        add_named("core", relative_name(e), "float", fns.first, 2048, 64, causal, th);
    for (Index n : {512, 2048})
      add_named("module", relative_name(e), "float", fns.second, n, 64, 0, 1);
  }
  add("core", none, "double", all_encoders<double>()[0].second.first, 2048, 64, 0, 1);
  add("core", none, "float", all_encoders<float>()[0].second.first, 2048, 128, 0, 1);
}

}  // namespace
}  // namespace posenc_bench

POSENC_BENCH_MAIN(posenc_bench::register_all)
