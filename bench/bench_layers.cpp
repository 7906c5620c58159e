// Attention layers of real models: the core (posenc::attend on projected Q, K, V) with grouped
// heads and sliding windows, against the same work without them.
//   gqa/<T>        H = 32 query heads over H_kv key/value heads (Args: N, Dh, H_kv, threads),
//                  causal, no encoder: H_kv = 32 is the MHA kernel with the same query heads.
//   window/<T>     H = 8, Dh = 64, causal, sliding window W (0: full causal) (Args: N, W,
//                  threads).
//   llama3/<T>     a LLaMA-3-shaped layer through attention(): D = 4096, H = 32, H_kv = 8,
//                  Dh = 128, llama3 RoPE, causal (Args: N, threads).
// FLOP counted: 4 N^2 Dh H for gqa (the dense count, also for causal), so FLOP/s compare
// across H_kv; for window, the same dense count of the full layer, so the ratio of two rows'
// times is what a window saves.
#include "make_encoder.hpp"

namespace posenc_bench {
namespace {

/// Times posenc::attend on random Q [N, H Dh], K, V [N, H_kv Dh] under `opt`.
template <class T>
void time_attend(benchmark::State& st, Index n, Index dh, const posenc::AttendOptions<T>& opt) {
  const Index kv_heads = opt.kv_heads == 0 ? opt.heads : opt.kv_heads;
  const Matrix<T> q = random<T>(n, opt.heads * dh), k = random<T>(n, kv_heads * dh),
                  v = random<T>(n, kv_heads * dh);
  Matrix<T> o(n, opt.heads * dh);
  const posenc::Positions pos(0, n);
  const posenc::NoEncoding<T> enc;
  posenc::attend(enc, q, k, v, pos, pos, opt, o);
  for (auto _ : st) {
    posenc::attend(enc, q, k, v, pos, pos, opt, o);
    benchmark::DoNotOptimize(o.data());
    benchmark::ClobberMemory();
  }
}

template <class T>
void BM_gqa(benchmark::State& st) {
  const Index n = st.range(0), dh = st.range(1);
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  posenc::AttendOptions<T> opt;
  opt.heads = 32;
  opt.kv_heads = st.range(2);
  opt.visibility.causal = true;
  time_attend<T>(st, n, dh, opt);
  report_flops<T>(st, 4.0 * double(n) * double(n) * double(dh) * double(opt.heads), threads);
}

template <class T>
void BM_window(benchmark::State& st) {
  const Index n = st.range(0), dh = 64;
  const int threads = static_cast<int>(st.range(2));
  set_threads(threads);
  posenc::AttendOptions<T> opt;
  opt.heads = 8;
  opt.visibility.causal = true;
  opt.visibility.window = st.range(1);
  time_attend<T>(st, n, dh, opt);
  report_flops<T>(st, 4.0 * double(n) * double(n) * double(dh) * double(opt.heads), threads);
}

template <class T>
void BM_llama3(benchmark::State& st) {
  const Index n = st.range(0), d = 4096, heads = 32, kv_heads = 8, dh = 128;
  const int threads = static_cast<int>(st.range(1));
  set_threads(threads);
  const double ws = 1.0 / std::sqrt(double(d));
  const Matrix<T> x = random<T>(n, d), wq = random<T>(d, heads * dh, ws),
                  wk = random<T>(d, kv_heads * dh, ws), wv = random<T>(d, kv_heads * dh, ws),
                  wo = random<T>(heads * dh, d, ws);
  posenc::RotaryOptions ro;
  ro.base = 500000.0;
  ro.scaling = posenc::RopeScaling::llama3;
  const posenc::RotaryEncoding<T> enc(dh, ro);
  posenc::AttentionOptions<T> opt;
  opt.heads = heads;
  opt.kv_heads = kv_heads;
  opt.causal = true;
  Matrix<T> y(n, d);
  posenc::attention(x, wq, wk, wv, wo, enc, opt, y);
  for (auto _ : st) {
    posenc::attention(x, wq, wk, wv, wo, enc, opt, y);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double proj = 2.0 * double(n) * double(d) * double(2 * heads * dh + 2 * kv_heads * dh);
  report_flops<T>(st, 4.0 * double(n) * double(n) * double(dh) * double(heads) + proj, threads);
}

void register_all(bool full) {
  for (int th = 1; th <= max_threads(); ++th) {
    for (Index kv : {Index(8), Index(32)})
      benchmark::RegisterBenchmark("gqa/float", BM_gqa<float>)
          ->Args({2048, 128, kv, th})
          ->ArgNames({"N", "Dh", "Hkv", "threads"})
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    for (Index w : {Index(4096), Index(0), Index(1024), Index(16384)})
      benchmark::RegisterBenchmark("window/float", BM_window<float>)
          ->Args({16384, w, th})
          ->ArgNames({"N", "W", "threads"})
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    if (full || th == 1)
      benchmark::RegisterBenchmark("llama3/float", BM_llama3<float>)
          ->Args({512, th})
          ->ArgNames({"N", "threads"})
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
  }
  if (full)
    for (Index kv : {Index(1), Index(2), Index(4)})
      benchmark::RegisterBenchmark("gqa/float", BM_gqa<float>)
          ->Args({2048, 128, kv, 1})
          ->ArgNames({"N", "Dh", "Hkv", "threads"})
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
}

}  // namespace
}  // namespace posenc_bench

POSENC_BENCH_MAIN(posenc_bench::register_all)
