// posenc benchmarks: the machine's limits (copy bandwidth, Eigen GEMM throughput), measured
// at start-up of every benchmark program, and the counters that report each result as a
// fraction of them.
//
// Every benchmark reports
//   bytes_per_second or FLOP/s   what it achieved (Google Benchmark rate counters, real time),
//   ratio                        achieved / the limit measured in the same process.
// The limits are also in the JSON "context" (limit_copy_Bps_<threads>t, limit_gemm_flops_<T>_<t>t),
// and run again as benchmarks named limit/... (see register_limits).
#pragma once

#include <benchmark/benchmark.h>

#include <posenc/posenc.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace posenc_bench {

using posenc::Index;
using posenc::Matrix;

/// Sets the OpenMP and Eigen thread counts used by the library's kernels.
inline void set_threads(int t) {
#if defined(_OPENMP)
  omp_set_num_threads(t);
#endif
  Eigen::setNbThreads(t);
}

inline int max_threads() {
#if defined(_OPENMP)
  return std::min(2, omp_get_num_procs());
#else
  return 1;
#endif
}

template <class F>
double best_seconds(int reps, F&& f) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}

/// The limits of this machine, measured once per process (best of several runs: the
/// highest throughput seen, so ratios are conservative).
struct Limits {
  // bytes moved per second (read + write) by the faster of memcpy and an Eigen copy of 64 MiB
  double copy_Bps[3] = {0, 0, 0};
  double memcpy_Bps[3] = {0, 0, 0};
  double eigen_copy_Bps[3] = {0, 0, 0};
  // bytes moved per second (read + write) by an in-place Eigen x *= c over 64 MiB: the bound of
  // an in-place kernel such as RoPE (no write-allocate traffic), reported for comparison
  double inplace_Bps[3] = {0, 0, 0};
  // Eigen GEMM, 1024^3, FLOP/s (2 n^3 per product)
  double gemm_float[3] = {0, 0, 0};
  double gemm_double[3] = {0, 0, 0};

  template <class T>
  double gemm(int threads) const {
    return std::is_same<T, float>::value ? gemm_float[threads] : gemm_double[threads];
  }
};

inline Limits& limits() {
  static Limits l;
  return l;
}

/// The limit kernels over buffers of `bytes`, split into one contiguous part per thread:
/// memcpy, an Eigen copy, and an in-place Eigen x *= 1 (opaque to the optimiser).
struct LimitKernels {
  static constexpr std::size_t bytes = std::size_t(64) << 20;
  std::vector<char> src = std::vector<char>(bytes, 1), dst = std::vector<char>(bytes, 2);
  int threads;

  explicit LimitKernels(int t) : threads(t) {}

  template <class F>
  void split(std::size_t n, std::size_t align, F&& f) const {
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
    {
      const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
      const std::size_t nt = static_cast<std::size_t>(omp_get_num_threads());
      const std::size_t chunk = (n / nt) & ~(align - 1);
      const std::size_t b = t * chunk, e = t + 1 == nt ? n : b + chunk;
      f(b, e - b);
    }
#else
    f(std::size_t(0), n);
#endif
  }
  Eigen::Map<Eigen::ArrayXf> floats(std::vector<char>& v) {
    return Eigen::Map<Eigen::ArrayXf>(reinterpret_cast<float*>(v.data()), Index(bytes / 4));
  }
  void memcpy_copy() {
    split(bytes, 64,
          [&](std::size_t b, std::size_t n) { std::memcpy(dst.data() + b, src.data() + b, n); });
    benchmark::DoNotOptimize(dst.data());
  }
  void eigen_copy() {
    auto s = floats(src), d = floats(dst);
    split(bytes / 4, 16, [&](std::size_t b, std::size_t n) {
      d.segment(Index(b), Index(n)) = s.segment(Index(b), Index(n));
    });
    benchmark::DoNotOptimize(dst.data());
  }
  void scale_in_place() {
    volatile float one = 1.0f;
    const float factor = one;
    auto d = floats(dst);
    split(bytes / 4, 16,
          [&](std::size_t b, std::size_t n) { d.segment(Index(b), Index(n)) *= factor; });
    benchmark::DoNotOptimize(dst.data());
  }
};

/// An Eigen GEMM of 1024^3 (2 n^3 FLOP per product).
template <class T>
struct GemmKernel {
  static constexpr Index n = 1024;
  using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  M a = M::Random(n, n), b = M::Random(n, n), c = M(n, n);
  static constexpr double flop = 2.0 * double(n) * double(n) * double(n);
  void run() {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
};

inline void measure_copy(int threads) {
  LimitKernels k(threads);
  set_threads(threads);
  k.memcpy_copy();
  const double t_memcpy = best_seconds(12, [&] { k.memcpy_copy(); });
  k.eigen_copy();
  const double t_eigen = best_seconds(12, [&] { k.eigen_copy(); });
  const double t_inplace = best_seconds(12, [&] { k.scale_in_place(); });
  Limits& l = limits();
  const double moved = 2.0 * double(LimitKernels::bytes);
  l.inplace_Bps[threads] = moved / t_inplace;
  l.memcpy_Bps[threads] = moved / t_memcpy;
  l.eigen_copy_Bps[threads] = moved / t_eigen;
  l.copy_Bps[threads] = std::max(l.memcpy_Bps[threads], l.eigen_copy_Bps[threads]);
}

template <class T>
double measure_gemm(int threads) {
  set_threads(threads);
  GemmKernel<T> g;
  g.run();
  return GemmKernel<T>::flop / best_seconds(5, [&] { g.run(); });
}

/// The limits once more as benchmarks (limit/memcpy, limit/eigen_copy, limit/inplace,
/// limit/gemm/<T>), so that under --benchmark_enable_random_interleaving they are sampled over
/// the same stretch of time as the kernels; make_results.py divides by the larger of these and
/// the start-up measurement.
inline void register_limits() {
  for (int t = 1; t <= max_threads(); ++t) {
    const std::string th = "/threads:" + std::to_string(t);
    const std::pair<const char*, void (LimitKernels::*)()> memory[] = {
        {"limit/memcpy", &LimitKernels::memcpy_copy},
        {"limit/eigen_copy", &LimitKernels::eigen_copy},
        {"limit/inplace", &LimitKernels::scale_in_place}};
    for (const auto& [name, fn] : memory)
      benchmark::RegisterBenchmark((name + th).c_str(), [t, fn = fn](benchmark::State& st) {
        set_threads(t);
        LimitKernels k(t);
        (k.*fn)();
        for (auto _ : st)
          (k.*fn)();
        st.counters["bytes_per_second"] = benchmark::Counter(
            2.0 * double(LimitKernels::bytes), benchmark::Counter::kIsIterationInvariantRate,
            benchmark::Counter::kIs1024);
      })->UseRealTime();
    auto gemm = [t](auto tag) {
      using T = decltype(tag);
      return [t](benchmark::State& st) {
        set_threads(t);
        GemmKernel<T> g;
        g.run();
        for (auto _ : st)
          g.run();
        st.counters["FLOP/s"] =
            benchmark::Counter(GemmKernel<T>::flop, benchmark::Counter::kIsIterationInvariantRate);
      };
    };
    benchmark::RegisterBenchmark(("limit/gemm/float" + th).c_str(), gemm(float{}))->UseRealTime();
    benchmark::RegisterBenchmark(("limit/gemm/double" + th).c_str(), gemm(double{}))->UseRealTime();
  }
}

/// Measures every limit (1 and, with OpenMP, 2 threads) and records them in the context.
inline void measure_limits() {
  Limits& l = limits();
  for (int t = 1; t <= max_threads(); ++t) {
    measure_copy(t);
    l.gemm_float[t] = measure_gemm<float>(t);
    l.gemm_double[t] = measure_gemm<double>(t);
    const std::string s = std::to_string(t) + "t";
    benchmark::AddCustomContext("limit_copy_Bps_" + s, std::to_string(l.copy_Bps[t]));
    benchmark::AddCustomContext("limit_memcpy_Bps_" + s, std::to_string(l.memcpy_Bps[t]));
    benchmark::AddCustomContext("limit_eigen_copy_Bps_" + s, std::to_string(l.eigen_copy_Bps[t]));
    benchmark::AddCustomContext("limit_inplace_Bps_" + s, std::to_string(l.inplace_Bps[t]));
    benchmark::AddCustomContext("limit_gemm_flops_float_" + s, std::to_string(l.gemm_float[t]));
    benchmark::AddCustomContext("limit_gemm_flops_double_" + s, std::to_string(l.gemm_double[t]));
    std::fprintf(stderr,
                 "limits, %d thread(s): copy %.2f GB/s (memcpy %.2f, Eigen %.2f; in place %.2f), "
                 "Eigen GEMM float %.1f GFLOP/s, double %.1f GFLOP/s\n",
                 t, l.copy_Bps[t] * 1e-9, l.memcpy_Bps[t] * 1e-9, l.eigen_copy_Bps[t] * 1e-9,
                 l.inplace_Bps[t] * 1e-9, l.gemm_float[t] * 1e-9, l.gemm_double[t] * 1e-9);
  }
  set_threads(1);
}

/// Counters for a memory-bound kernel that moves `bytes` per iteration.
inline void report_bytes(benchmark::State& st, double bytes, int threads) {
  st.counters["bytes_per_second"] = benchmark::Counter(
      bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
  st.counters["ratio"] = benchmark::Counter(bytes / limits().copy_Bps[threads],
                                            benchmark::Counter::kIsIterationInvariantRate);
  st.counters["ratio_inplace"] = benchmark::Counter(bytes / limits().inplace_Bps[threads],
                                                    benchmark::Counter::kIsIterationInvariantRate);
}

/// Counters for a compute-bound kernel of `flop` per iteration.
template <class T>
void report_flops(benchmark::State& st, double flop, int threads) {
  st.counters["FLOP/s"] = benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["ratio"] = benchmark::Counter(flop / limits().gemm<T>(threads),
                                            benchmark::Counter::kIsIterationInvariantRate);
}

template <class T>
const char* type_name() {
  return std::is_same<T, float>::value ? "float" : "double";
}

/// Removes `flag` from argv; true when it was there.
inline bool take_flag(int& argc, char** argv, const char* flag) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], flag) == 0) {
      for (int j = i; j + 1 < argc; ++j)
        argv[j] = argv[j + 1];
      --argc;
      return true;
    }
  return false;
}

}  // namespace posenc_bench

/// main() of a benchmark program: measures the limits, registers the benchmarks (the full
/// grid with --full), runs them. `--no-limits` skips the limit measurement (ratios are then 0/inf).
#define POSENC_BENCH_MAIN(register_fn)                                         \
  int main(int argc, char** argv) {                                            \
    const bool full = posenc_bench::take_flag(argc, argv, "--full");           \
    const bool no_limits = posenc_bench::take_flag(argc, argv, "--no-limits"); \
    benchmark::Initialize(&argc, argv);                                        \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;          \
    if (!no_limits) posenc_bench::measure_limits();                            \
    register_fn(full);                                                         \
    if (!no_limits) posenc_bench::register_limits();                           \
    benchmark::RunSpecifiedBenchmarks();                                       \
    benchmark::Shutdown();                                                     \
    return 0;                                                                  \
  }
