// Decoding: one new token's attention over a cache of N keys (posenc::attend with one query).
//   decode/<enc>/<S>   one query, H = 32 query heads, H_kv key/value heads, Dh = 128, keys and
//                      values [N, H_kv Dh] (token-major, as KVCache holds them) stored as S
//                      (float, bf16, f16; float queries and arithmetic), no mask.
//                      Bytes counted: what it must read, K and V once (2 N H_kv Dh sizeof(S));
//                      ratio: that over the machine's read bandwidth (limit/read, same threads).
//                      cache:1 reads them from a KVCache (its storage: 2 MiB aligned, huge
//                      pages advised), cache:0 from plain matrices (malloc's pages).
//   limit/read         the read bandwidth: the sum of a 1 GiB buffer (larger than every
//                      cache; huge pages advised), measured at start-up and again as a
//                      benchmark.
// Arguments: N, H_kv, threads, cache.
#include "make_encoder.hpp"

#include <posenc/detail/large_buffer.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace posenc_bench {
namespace {

constexpr Index kHeads = 32, kHeadDim = 128;

/// The read kernel: a 256 MiB float buffer summed (eight independent partial sums per thread,
/// so that the loop is bounded by memory, not by the adds' latency).
struct ReadKernel {
  static constexpr std::size_t floats = std::size_t(256)
                                        << 20;  // 1 GiB: beyond the last-level cache
  // on huge pages where the OS gives them (as KVCache's storage): the best read rate
  posenc::detail::LargeBuffer<float> buf{std::int64_t(floats), "limit/read"};
  int threads;
  explicit ReadKernel(int t) : threads(t) { std::fill(buf.data(), buf.data() + floats, 1.0f); }
  float run() const {
    float total = 0;
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads) reduction(+ : total)
#endif
    {
#if defined(_OPENMP)
      const std::size_t t = static_cast<std::size_t>(omp_get_thread_num()),
                        nt = static_cast<std::size_t>(omp_get_num_threads());
#else
      const std::size_t t = 0, nt = 1;
#endif
      const std::size_t per = floats / nt, b = t * per;
      total += Eigen::Map<const Eigen::ArrayXf>(buf.data() + b, Index(per)).sum();
    }
    return total;
  }
};

std::map<int, double>& read_Bps() {
  static std::map<int, double> m;
  return m;
}

void measure_read(int threads) {
  ReadKernel k(threads);
  benchmark::DoNotOptimize(k.run());
  const double t = best_seconds(10, [&] { benchmark::DoNotOptimize(k.run()); });
  read_Bps()[threads] = double(ReadKernel::floats * sizeof(float)) / t;
  benchmark::AddCustomContext("limit_read_Bps_" + std::to_string(threads) + "t",
                              std::to_string(read_Bps()[threads]));
  std::fprintf(stderr, "read bandwidth, %d thread(s): %.2f GB/s\n", threads,
               read_Bps()[threads] * 1e-9);
}

/// S: how the cache keeps K and V (float, Eigen::bfloat16, Eigen::half); queries, outputs and
/// arithmetic are T = float.
template <class T, int E, class S = T>
void BM_decode(benchmark::State& st) {
  const Index n = st.range(0), kv_heads = st.range(1), dh = kHeadDim;
  const int threads = static_cast<int>(st.range(2));
  set_threads(threads);
  const auto enc = make_encoder<T, E>(n + 1, kHeads, dh);
  const Matrix<T> q = random<T>(1, kHeads * dh), k = random<T>(n, kv_heads * dh),
                  v = random<T>(n, kv_heads * dh);
  Matrix<T> o(1, kHeads * dh);
  posenc::AttendOptions<T> opt;
  opt.heads = kHeads;
  opt.kv_heads = kv_heads;
  const posenc::Positions qpos(n, 1), kpos(0, n);
  // in a KVCache (its own storage: huge pages advised) or in plain matrices (malloc's pages)
  const bool in_cache = st.range(3) != 0;
  posenc::KVCache<T, S> cache;
  if (in_cache) {
    cache.reserve(kv_heads * dh, n);
    cache.append(k, v, kpos);
  }
  const Matrix<S> ks = k.template cast<S>(), vs = v.template cast<S>();
  auto run = [&] {
    if (in_cache)
      posenc::attend(enc, q, cache.keys(), cache.values(), qpos, kpos, opt, o);
    else
      posenc::attend(enc, q, ks, vs, qpos, kpos, opt, o);
  };
  run();
  for (auto _ : st) {
    run();
    benchmark::DoNotOptimize(o.data());
    benchmark::ClobberMemory();
  }
  const double bytes = 2.0 * double(n) * double(kv_heads * dh) * sizeof(S);
  st.counters["bytes_per_second"] = benchmark::Counter(
      bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
  if (read_Bps().count(threads))
    st.counters["ratio"] = benchmark::Counter(bytes / read_Bps()[threads],
                                              benchmark::Counter::kIsIterationInvariantRate);
}

template <int E, class S = float>
void register_decode(const char* name, const char* storage = "float") {
  for (const Index n : {4096, 32768})
    for (const Index kv : {32, 8})
      for (int t = 1; t <= max_threads(); ++t)
        for (const Index cache : {1, 0})
          benchmark::RegisterBenchmark(("decode/" + std::string(name) + "/" + storage).c_str(),
                                       BM_decode<float, E, S>)
              ->Args({n, kv, t, cache})
              ->ArgNames({"N", "Hkv", "threads", "cache"})
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
}

void register_all(bool /*full*/) {
  for (int t = 1; t <= max_threads(); ++t) {
    measure_read(t);
    benchmark::RegisterBenchmark(("limit/read/threads:" + std::to_string(t)).c_str(),
                                 [t](benchmark::State& st) {
                                   ReadKernel k(t);
                                   for (auto _ : st)
                                     benchmark::DoNotOptimize(k.run());
                                   st.counters["bytes_per_second"] = benchmark::Counter(
                                       double(ReadKernel::floats * sizeof(float)),
                                       benchmark::Counter::kIsIterationInvariantRate,
                                       benchmark::Counter::kIs1024);
                                 })
        ->UseRealTime();
  }
  set_threads(1);
  register_decode<none>("none");
  register_decode<alibi>("alibi");
  register_decode<t5>("t5");
  register_decode<none, Eigen::bfloat16>("none", "bf16");
  register_decode<none, Eigen::half>("none", "f16");
  register_decode<alibi, Eigen::bfloat16>("alibi", "bf16");
}

}  // namespace
}  // namespace posenc_bench

POSENC_BENCH_MAIN(posenc_bench::register_all)
