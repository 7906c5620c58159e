// Peak heap memory of attention, with a counting allocator: this program interposes malloc,
// free and friends (glibc), so every allocation of posenc, Eigen, OpenMP and the C++ runtime
// is counted by its usable size. Each benchmark runs once (Iterations(1)) and reports
//   peak_MiB   the highest live heap during the call, beyond what was live before it
//   limit_MiB  the stated bound (below)
//   ratio      peak / limit (below 1 meets it)
//   core/<enc>    detail::attend on given Q, K, V, O [N, D]: bound 64 MiB beyond Q, K, V, O
//   module/<enc>  attention(x, W..., y):                    bound 5 |X| beyond X, the weights, Y
//                 (steady state: a second call, once the encoder's position cache exists;
//                 first_call_peak_over_X includes building that cache)
//   core_backward/<enc>   attend_backward (posenc/gradients.hpp) given Q, K, V, O, lse, dO:
//                 peak beyond those and the gradients it returns (dQ, dK, dV); bound
//                 t |Q| + 32 MiB with t threads (each thread beyond the first adds up its own
//                 dQ [N, D], summed in thread order at the end; then D = rowsum(dO o O) [H, N]
//                 and the tiles), so linear in N: measured at N = 4096 and 16384
//   layer_backward/<enc>  attention_backward(x, W..., dy): peak beyond X, the weights, dY and
//                 the gradients it returns (dX, dW); bound (8 + t) |X| + 32 MiB: the
//                 recomputed forward's Q, K, V, O (4 |X|), dO (|X|), the core's dQ, dK, dV
//                 (3 |X|) and its t per-thread dQ, as above
// N = 16384, H = 8, Dh = 64, float, causal (the scratch does not depend on the mask; causal
// halves the run time), with the largest thread count (per-thread scratch is counted).
#include <malloc.h>

#include <atomic>
#include <cstdlib>

#include "make_encoder.hpp"

// ---- counting allocator (glibc) ----------------------------------------------------------------
extern "C" {
void* __libc_malloc(std::size_t);
void __libc_free(void*);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {
std::atomic<long long> g_live{0}, g_peak{0};

void note_alloc(void* p) {
  if (!p) return;
  const long long now = g_live += static_cast<long long>(malloc_usable_size(p));
  long long peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
}
void note_free(void* p) {
  if (p) g_live -= static_cast<long long>(malloc_usable_size(p));
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  void* p = __libc_malloc(n);
  note_alloc(p);
  return p;
}
void free(void* p) {
  note_free(p);
  __libc_free(p);
}
void* calloc(std::size_t a, std::size_t b) {
  void* p = __libc_calloc(a, b);
  note_alloc(p);
  return p;
}
void* realloc(void* old, std::size_t n) {
  note_free(old);
  void* p = __libc_realloc(old, n);
  note_alloc(p ? p : (n == 0 ? nullptr : old));
  return p;
}
void* memalign(std::size_t a, std::size_t n) {
  void* p = __libc_memalign(a, n);
  note_alloc(p);
  return p;
}
void* aligned_alloc(std::size_t a, std::size_t n) {
  return memalign(a, n);
}
int posix_memalign(void** out, std::size_t a, std::size_t n) {
  void* p = memalign(a, n);
  if (!p) return 12;  // ENOMEM
  *out = p;
  return 0;
}
}

namespace posenc_bench {
namespace {

constexpr Index kN = 16384, kHeads = 8, kDh = 64;

double mib(long long b) {
  return double(b) / double(1 << 20);
}

template <int E>
void BM_core_memory(benchmark::State& st) {
  using T = float;
  const Index n = st.range(0), d = kHeads * kDh;
  set_threads(max_threads());
  const auto enc = make_encoder<T, E>(n, kHeads, kDh);
  Matrix<T> q = random<T>(n, d), k = random<T>(n, d), v = random<T>(n, d), o(n, d);
  const posenc::Positions pos(0, n);
  const T scale = T(1) / std::sqrt(T(kDh));
  long long peak = 0;
  for (auto _ : st) {
    const long long base = g_live.load();
    g_peak = base;
    if constexpr (posenc::encoder_traits<decltype(enc)>::rotates_qk) {
      enc.rotate(q, pos, kHeads);
      enc.rotate(k, pos, kHeads);
    }
    posenc::detail::attend(enc, q, k, v, pos, pos, kHeads, scale, true, o);
    benchmark::DoNotOptimize(o.data());
    peak = g_peak.load() - base;
  }
  st.counters["peak_MiB"] = mib(peak);
  st.counters["limit_MiB"] = 64.0;
  st.counters["ratio"] = mib(peak) / 64.0;
}

template <int E>
void BM_module_memory(benchmark::State& st) {
  using T = float;
  const Index n = st.range(0), d = kHeads * kDh;
  set_threads(max_threads());
  const auto enc = make_encoder<T, E>(n, kHeads, kDh);
  const Matrix<T> x = random<T>(n, d), wq = random<T>(d, d, 0.05), wk = random<T>(d, d, 0.05),
                  wv = random<T>(d, d, 0.05), wo = random<T>(d, d, 0.05);
  Matrix<T> y(n, d);
  posenc::AttentionOptions<T> opt;
  opt.heads = kHeads;
  opt.causal = true;
  // The first call also builds the encoder's per-length cache (sinusoid table, cos/sin rows),
  // which persists in the encoder like its weights: reported separately.
  long long base = g_live.load();
  g_peak = base;
  posenc::attention(x, wq, wk, wv, wo, enc, opt, y);
  const long long first = g_peak.load() - base;
  long long peak = 0;
  for (auto _ : st) {
    base = g_live.load();
    g_peak = base;
    posenc::attention(x, wq, wk, wv, wo, enc, opt, y);
    benchmark::DoNotOptimize(y.data());
    peak = g_peak.load() - base;
  }
  const double x_mib = mib(static_cast<long long>(x.size() * sizeof(T))), limit = 5.0 * x_mib;
  st.counters["peak_MiB"] = mib(peak);
  st.counters["limit_MiB"] = limit;
  st.counters["ratio"] = mib(peak) / limit;
  st.counters["peak_over_X"] = mib(peak) / x_mib;
  st.counters["first_call_peak_over_X"] = mib(first) / x_mib;
}

template <int E>
void BM_core_backward_memory(benchmark::State& st) {
  using T = float;
  const Index n = st.range(0), d = kHeads * kDh;
  const int threads = max_threads();
  set_threads(threads);
  const auto enc = make_encoder<T, E>(n, kHeads, kDh);
  const Matrix<T> q = random<T>(n, d), k = random<T>(n, d), v = random<T>(n, d),
                  dout = random<T>(n, d);
  Matrix<T> o(n, d), lse(kHeads, n);
  const posenc::Positions pos(0, n);
  posenc::AttendOptions<T> opt;
  opt.heads = kHeads;
  opt.visibility.causal = true;
  posenc::attend(enc, q, k, v, pos, pos, opt, o, lse);
  long long peak = 0, returned = 0;
  for (auto _ : st) {
    const long long base = g_live.load();
    g_peak = base;
    auto g = posenc::attend_backward(enc, q, k, v, pos, pos, opt, o, lse, dout);
    benchmark::DoNotOptimize(g.dq.data());
    returned = g_live.load() - base;  // dQ, dK, dV (and the encoder's gradients) as returned
    peak = g_peak.load() - base - returned;
  }
  const double q_mib = mib(static_cast<long long>(q.size() * sizeof(T)));
  const double limit = threads * q_mib + 32.0;
  st.counters["peak_MiB"] = mib(peak);
  st.counters["returned_MiB"] = mib(returned);
  st.counters["limit_MiB"] = limit;
  st.counters["ratio"] = mib(peak) / limit;
  st.counters["peak_over_X"] = mib(peak) / q_mib;
}

template <int E>
void BM_layer_backward_memory(benchmark::State& st) {
  using T = float;
  const Index n = st.range(0), d = kHeads * kDh;
  const int threads = max_threads();
  set_threads(threads);
  const auto enc = make_encoder<T, E>(n, kHeads, kDh);
  const Matrix<T> x = random<T>(n, d), wq = random<T>(d, d, 0.05), wk = random<T>(d, d, 0.05),
                  wv = random<T>(d, d, 0.05), wo = random<T>(d, d, 0.05), dy = random<T>(n, d);
  posenc::AttentionOptions<T> opt;
  opt.heads = kHeads;
  opt.causal = true;
  {  // the encoder's position cache (persistent, like its weights), as in BM_module_memory
    Matrix<T> y(n, d);
    posenc::attention(x, wq, wk, wv, wo, enc, opt, y);
  }
  long long peak = 0, returned = 0;
  for (auto _ : st) {
    const long long base = g_live.load();
    g_peak = base;
    auto g = posenc::attention_backward(x, wq, wk, wv, wo, enc, opt, dy);
    benchmark::DoNotOptimize(g.dx.data());
    returned = g_live.load() - base;  // dX, dWq, dWk, dWv, dWo
    peak = g_peak.load() - base - returned;
  }
  const double x_mib = mib(static_cast<long long>(x.size() * sizeof(T)));
  const double limit = (8.0 + threads) * x_mib + 32.0;
  st.counters["peak_MiB"] = mib(peak);
  st.counters["returned_MiB"] = mib(returned);
  st.counters["limit_MiB"] = limit;
  st.counters["ratio"] = mib(peak) / limit;
  st.counters["peak_over_X"] = mib(peak) / x_mib;
}

template <int E>
void add_backward(bool core, bool layer) {
  for (Index n : {Index(4096), kN}) {
    if (core)
      benchmark::RegisterBenchmark((std::string("memory/core_backward/") + enc_name(E)).c_str(),
                                   BM_core_backward_memory<E>)
          ->Arg(n)
          ->ArgName("N")
          ->Iterations(1)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    if (layer)
      benchmark::RegisterBenchmark((std::string("memory/layer_backward/") + enc_name(E)).c_str(),
                                   BM_layer_backward_memory<E>)
          ->Arg(n)
          ->ArgName("N")
          ->Iterations(1)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
  }
}

template <int E>
void add(bool full) {
  for (Index n : {Index(2048), kN}) {
    if (n != kN && !full) continue;
    benchmark::RegisterBenchmark((std::string("memory/core/") + enc_name(E)).c_str(),
                                 BM_core_memory<E>)
        ->Arg(n)
        ->ArgName("N")
        ->Iterations(1)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((std::string("memory/module/") + enc_name(E)).c_str(),
                                 BM_module_memory<E>)
        ->Arg(n)
        ->ArgName("N")
        ->Iterations(1)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
}

void register_all(bool full) {
  add<none>(full);
  add<sinusoidal>(full);
  add<rope>(full);
  add<alibi>(full);
  add<t5>(full);
  add_backward<none>(true, true);
  add_backward<alibi>(true, false);
  add_backward<rope>(false, true);
  if (full) {
    add_backward<t5>(true, true);
    add_backward<shaw>(true, false);
    add_backward<xl>(true, false);
    add<learned>(full);
    add<shaw>(full);
    add<xl>(full);
  }
}

}  // namespace
}  // namespace posenc_bench

POSENC_BENCH_MAIN(posenc_bench::register_all)
