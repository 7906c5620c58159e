// The cost of applying each encoder on its own:
//   RoPE      rotate Q in place, [N, H*Dh], cos/sin cached      bytes = 2 |X| (read + write)
//   rope_stored/<bf16|f16>  RoPE in place on X kept in half precision   bytes = 2 |X|
//   sinusoidal X += PE, seed rows rotated in cache               bytes = 2 |X| (read + write)
//   learned   X += table[p]                                     bytes = 3 |X| (X, table, X)
//   biases    add B_h to every [tile] of scores of every head   bytes = 2 N^2 H sizeof(T)
//             (score tiles stay in cache, so a ratio above 1 is possible for these)
// Arguments: N, H, Dh, threads.  Ratios are against the copy bandwidth (common.hpp).
#include "make_encoder.hpp"

namespace posenc_bench {
namespace {

template <class T, int E>
void BM_rope(benchmark::State& st) {
  const Index n = st.range(0), heads = st.range(1), dh = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  const auto enc = make_encoder<T, E>(n, heads, dh);
  Matrix<T> x = random<T>(n, heads * dh);
  const posenc::Positions pos(0, n);
  enc.rotate(x, pos, heads);  // builds the cos/sin cache
  for (auto _ : st) {
    enc.rotate(x, pos, heads);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  report_bytes(st, 2.0 * double(x.size()) * sizeof(T), threads);
}

// RoPE in place on X kept as bfloat16 or half (angles and pairs in double, one rounding per
// output): bytes = 2 |X| sizeof(S).
template <class S>
void BM_rope_stored(benchmark::State& st) {
  const Index n = st.range(0), heads = st.range(1), dh = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  const posenc::RotaryEncoding<float> enc(dh);
  posenc::Matrix<S> x = random<float>(n, heads * dh).template cast<S>();
  const posenc::Positions pos(0, n);
  for (auto _ : st) {
    enc.rotate(x, pos, heads);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  report_bytes(st, 2.0 * double(x.size()) * sizeof(S), threads);
}

// Multi-axis RoPE (Qwen2-VL's chunked sections over Dh = 128) at the shape of BM_rope, the
// positions of an image of sqrt(N) x sqrt(N) patches at one time step: its target is at most
// 1.1 x RoPE's time in the same run.
template <class T>
void BM_mrope(benchmark::State& st) {
  const Index n = st.range(0), heads = st.range(1), dh = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  posenc::MultiAxisRotaryOptions o;
  o.layout = posenc::MropeLayout::chunked;
  o.sections = {dh / 8, 3 * dh / 16, 3 * dh / 16};
  const posenc::MultiAxisRotaryEncoding<T> enc(dh, o);
  posenc::AxisPositions pos(3, n);
  const Index side = std::max<Index>(1, static_cast<Index>(std::sqrt(double(n))));
  for (Index i = 0; i < n; ++i) {
    pos(0, i) = 1;
    pos(1, i) = 1 + i / side;
    pos(2, i) = 1 + i % side;
  }
  Matrix<T> x = random<T>(n, heads * dh);
  enc.rotate(x, pos, heads);  // builds the cos/sin cache
  for (auto _ : st) {
    enc.rotate(x, pos, heads);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  report_bytes(st, 2.0 * double(x.size()) * sizeof(T), threads);
}

// Llama 4's query temperature (a scale per row) at the shape of BM_rope, positions past its
// floor scale: its closest encoder is RoPE on the queries, which it must not cost more than.
template <class T>
void BM_temperature(benchmark::State& st) {
  const Index n = st.range(0), heads = st.range(1), dh = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  const posenc::AttentionTemperatureEncoding<T> enc;
  Matrix<T> x = random<T>(n, heads * dh);
  const posenc::Positions pos(100000, n);
  for (auto _ : st) {
    enc.rotate_queries(x, pos, heads);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  report_bytes(st, 2.0 * double(x.size()) * sizeof(T), threads);
}

template <class T, int E>
void BM_add(benchmark::State& st) {
  const Index n = st.range(0), heads = st.range(1), dh = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  const auto enc = make_encoder<T, E>(n, heads, dh);
  Matrix<T> x = random<T>(n, heads * dh);
  const posenc::Positions pos(0, n);
  enc.add_to_input(x, pos);  // builds the sinusoid seed cache
  for (auto _ : st) {
    enc.add_to_input(x, pos);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  // Sinusoidal rows are computed from seeds that stay in cache; a learned table is streamed.
  const double streams = E == sinusoidal ? 2.0 : 3.0;
  report_bytes(st, streams * double(x.size()) * sizeof(T), threads);
}

// The bias hook over all [N, N] scores of every head, tile by tile as the kernel calls it.
template <class T, int E>
void BM_bias(benchmark::State& st) {
  const Index n = st.range(0), heads = st.range(1), dh = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  const auto enc = make_encoder<T, E>(n, heads, dh);
  const Matrix<T> q = random<T>(n, heads * dh), k = random<T>(n, heads * dh);
  const posenc::Positions pos(0, n);
  const T scale = T(1) / std::sqrt(T(dh));
  const Index bq = posenc::detail::attention_tiles<T>::query,
              bk = posenc::detail::attention_tiles<T>::key;
  const Index qt = (n + bq - 1) / bq;
  for (auto _ : st) {
    const auto bias = enc.score_bias(pos, pos, heads, dh, scale);
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
#endif
    {
      Matrix<T> s = Matrix<T>::Zero(bq, bk);
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (Index w = 0; w < heads * qt; ++w) {
        const Index h = w / qt, i0 = (w % qt) * bq, bi = std::min(bq, n - i0);
        for (Index j0 = 0; j0 < n; j0 += bk) {
          const Index bj = std::min(bk, n - j0);
          auto tile = s.topLeftCorner(bi, bj);
          bias.add(h, i0, j0, q.block(i0, h * dh, bi, dh), k.block(j0, h * dh, bj, dh), tile);
        }
        benchmark::DoNotOptimize(s.data());
      }
    }
  }
  report_bytes(st, 2.0 * double(n) * double(n) * double(heads) * sizeof(T), threads);
  st.counters["scores_per_second"] = benchmark::Counter(
      double(n) * double(n) * double(heads), benchmark::Counter::kIsIterationInvariantRate);
}

template <class T>
void register_type(bool full) {
  const std::string t = type_name<T>();
  const std::vector<Index> ns = {128, 512, 2048, 8192};
  const std::vector<Index> dhs = {64, 128};
  std::vector<int> thr;
  for (int i = 1; i <= max_threads(); ++i)
    thr.push_back(i);
  auto grid = [&](benchmark::internal::Benchmark* b, const std::vector<Index>& hs,
                  const std::vector<Index>& nlist) {
    for (Index n : nlist)
      for (Index h : hs)
        for (Index dh : dhs)
          for (int th : thr)
            b->Args({n, h, dh, th});
    b->ArgNames({"N", "H", "Dh", "threads"})->UseRealTime();
  };
  // The RoPE target shape [4096, 32, 128] (bench/RESULTS.md), both layouts, and the additive
  // encoders at the same size of X ([4096, 4096]); always registered, every thread count.
  for (int th : thr) {
    for (auto [name, fn] :
         {std::pair{"rope/", BM_rope<T, rope>},
          std::pair{"rope_interleaved/", BM_rope<T, rope_interleaved>},
          std::pair{"mrope_chunked/", BM_mrope<T>}, std::pair{"temperature/", BM_temperature<T>},
          std::pair{"sinusoidal/", BM_add<T, sinusoidal>},
          std::pair{"learned/", BM_add<T, learned>}})
      benchmark::RegisterBenchmark((name + t).c_str(), fn)
          ->Args({4096, 32, 128, th})
          ->ArgNames({"N", "H", "Dh", "threads"})
          ->UseRealTime();
  }
  if (!full) return;
  grid(benchmark::RegisterBenchmark(("rope/" + t).c_str(), BM_rope<T, rope>), {8, 32}, ns);
  grid(
      benchmark::RegisterBenchmark(("rope_interleaved/" + t).c_str(), BM_rope<T, rope_interleaved>),
      {8, 32}, ns);
  grid(benchmark::RegisterBenchmark(("sinusoidal/" + t).c_str(), BM_add<T, sinusoidal>), {8}, ns);
  grid(benchmark::RegisterBenchmark(("learned/" + t).c_str(), BM_add<T, learned>), {8}, ns);
  grid(benchmark::RegisterBenchmark(("alibi_bias/" + t).c_str(), BM_bias<T, alibi>), {8}, ns);
  grid(benchmark::RegisterBenchmark(("t5_bias/" + t).c_str(), BM_bias<T, t5>), {8}, ns);
  grid(benchmark::RegisterBenchmark(("shaw_bias/" + t).c_str(), BM_bias<T, shaw>), {8}, ns);
  grid(benchmark::RegisterBenchmark(("xl_bias/" + t).c_str(), BM_bias<T, xl>), {8},
       {128, 512, 2048});
}

void register_all(bool full) {
  register_type<float>(full);
  register_type<double>(full);
  for (int th = 1; th <= max_threads(); ++th) {
    benchmark::RegisterBenchmark("rope_stored/bf16", BM_rope_stored<Eigen::bfloat16>)
        ->Args({4096, 32, 128, th})
        ->ArgNames({"N", "H", "Dh", "threads"})
        ->UseRealTime();
    benchmark::RegisterBenchmark("rope_stored/f16", BM_rope_stored<Eigen::half>)
        ->Args({4096, 32, 128, th})
        ->ArgNames({"N", "H", "Dh", "threads"})
        ->UseRealTime();
  }
  if (full) return;
  // Default run: the grid at H = 8, Dh = 64 for the score biases, float, one thread.
  for (Index n : {512, 2048}) {
    benchmark::RegisterBenchmark("alibi_bias/float", BM_bias<float, alibi>)
        ->Args({n, 8, 64, 1})
        ->ArgNames({"N", "H", "Dh", "threads"})
        ->UseRealTime();
    benchmark::RegisterBenchmark("t5_bias/float", BM_bias<float, t5>)
        ->Args({n, 8, 64, 1})
        ->ArgNames({"N", "H", "Dh", "threads"})
        ->UseRealTime();
    benchmark::RegisterBenchmark("shaw_bias/float", BM_bias<float, shaw>)
        ->Args({n, 8, 64, 1})
        ->ArgNames({"N", "H", "Dh", "threads"})
        ->UseRealTime();
    benchmark::RegisterBenchmark("xl_bias/float", BM_bias<float, xl>)
        ->Args({n, 8, 64, 1})
        ->ArgNames({"N", "H", "Dh", "threads"})
        ->UseRealTime();
  }
  for (int th = 1; th <= max_threads(); ++th)
    for (Index n : {512, 8192}) {
      benchmark::RegisterBenchmark("rope/float", BM_rope<float, rope>)
          ->Args({n, 8, 64, th})
          ->ArgNames({"N", "H", "Dh", "threads"})
          ->UseRealTime();
      benchmark::RegisterBenchmark("sinusoidal/float", BM_add<float, sinusoidal>)
          ->Args({n, 8, 64, th})
          ->ArgNames({"N", "H", "Dh", "threads"})
          ->UseRealTime();
    }
}

}  // namespace
}  // namespace posenc_bench

POSENC_BENCH_MAIN(posenc_bench::register_all)
