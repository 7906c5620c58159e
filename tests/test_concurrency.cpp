// Shared use from several threads, as the headers state it: an encoder's const members
// (and the position caches they grow) and attention() may be used concurrently; a KVCache
// belongs to one caller at a time. Every thread's result must equal the single-threaded
// one exactly. ThreadSanitizer runs this file in CI (posenc_concurrency_tests).
#include <atomic>
#include <thread>

#include "attention_support.hpp"

using namespace attention_test;

namespace {

constexpr int kThreads = 4;

/// Runs f(t) on kThreads threads at once (released together) and joins them.
template <class F>
void on_threads(F&& f) {
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      ++ready;
      while (ready.load() < kThreads)
        std::this_thread::yield();
      f(t);
    });
  for (auto& th : threads)
    th.join();
}

}  // namespace

TEST_CASE("concurrency: one RoPE encoder rotated from several threads while its caches grow",
          "[concurrency][rope]") {
  RotaryOptions o;
  o.scaling = RopeScaling::longrope;
  o.factor = 4.0;
  o.original_max_positions = 96;
  o.short_factors = {1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7};
  o.long_factors = {2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5};
  const RotaryEncoding<float> shared(16, o);
  RotaryEncoding<float> uncached(16, o);
  uncached.set_cache_limit(0);
  const Index heads = 2, n = 24;
  const Matrix<float> x = random_matrix<float>(n, heads * 16, 71);
  // Thread t rotates blocks at offsets that grow (each growth swaps in a larger table) and
  // cross M (short set, then long set).
  std::vector<int> mismatches(kThreads, 0);
  on_threads([&](int t) {
    for (int step = 0; step < 12; ++step) {
      const std::int64_t offset = (step * kThreads + t) * 9;
      Matrix<float> a = x, b = x;
      shared.rotate(a, Positions(offset, n), heads);
      uncached.rotate(b, Positions(offset, n), heads);
      if (!(a == b)) ++mismatches[static_cast<std::size_t>(t)];
    }
  });
  for (int t = 0; t < kThreads; ++t)
    CHECK(mismatches[static_cast<std::size_t>(t)] == 0);
}

TEST_CASE("concurrency: one sinusoidal encoder adds to inputs from several threads",
          "[concurrency][sinusoidal]") {
  const SinusoidalEncoding<double> shared(64);
  const Index n = 40;
  std::vector<double> worst(kThreads, 0.0);
  on_threads([&](int t) {
    for (int step = 0; step < 10; ++step) {
      const std::int64_t offset = (step * kThreads + t) * 37;
      Matrix<double> x = Matrix<double>::Zero(n, 64);
      shared.add_to_input(x, Positions(offset, n));
      const Matrix<double> table = shared.table(Positions(offset, n));
      worst[static_cast<std::size_t>(t)] =
          std::max(worst[static_cast<std::size_t>(t)], max_abs_diff(x, table));
    }
  });
  for (int t = 0; t < kThreads; ++t)
    CHECK(worst[static_cast<std::size_t>(t)] < 1e-12);
}

TEMPLATE_TEST_CASE("concurrency: attention from several threads, each with OpenMP inside",
                   "[concurrency][attention]", float, double) {
  using T = TestType;
  const Index n = 160, d = 64, heads = 4;  // large enough for the kernel's parallel region
  const Weights<T> w(n, d, 81);
  const AttentionOptions<T> opt = options<T>(heads, true);
  const MultiHeadAttention<RotaryEncoding<T>> rope(w.wq, w.wk, w.wv, w.wo,
                                                   RotaryEncoding<T>(d / heads), opt);
  const MultiHeadAttention<T5Encoding<T>> t5(w.wq, w.wk, w.wv, w.wo,
                                             T5Encoding<T>(random_matrix<T>(32, heads, 82)), opt);
  const Matrix<T> rope_ref = rope(w.x), t5_ref = t5(w.x);
  std::vector<int> mismatches(kThreads, 0);
  on_threads([&](int t) {
    int bad = 0;
    for (int step = 0; step < 3; ++step) {
      // (equal to rounding: the projections split rows by each thread's OpenMP team size)
      bad += !(max_abs_diff(rope(w.x), rope_ref) < attn_tol<T>());
      bad += !(max_abs_diff(t5(w.x), t5_ref) < attn_tol<T>());
      // each thread decodes with its own cache; the encoder and weights are shared
      KVCache<T> cache;
      const Matrix<T> prefix = rope.step(w.x.topRows(n - 4), cache);
      const Matrix<T> rest = rope.step(w.x.bottomRows(4), cache);
      bad += !(max_abs_diff(rest, rope_ref.bottomRows(4)) < attn_tol<T>());
      bad += !(max_abs_diff(prefix, rope_ref.topRows(n - 4)) < attn_tol<T>());
    }
    mismatches[static_cast<std::size_t>(t)] = bad;
  });
  for (int t = 0; t < kThreads; ++t)
    CHECK(mismatches[static_cast<std::size_t>(t)] == 0);
}

TEMPLATE_TEST_CASE("concurrency: the backward pass from several threads, each with OpenMP inside",
                   "[concurrency][gradients]", float, double) {
  using T = TestType;
  const Index n = 300, d = 64, heads = 4;  // several key tiles: the backward's parallel region
  const Weights<T> w(n, d, 91);
  const AttentionOptions<T> opt = options<T>(heads, true);
  const T5Encoding<T> t5(random_matrix<T>(32, heads, 92));
  const ShawEncoding<T> shaw(random_matrix<T>(9, d / heads, 93, 0.1),
                             random_matrix<T>(9, d / heads, 94, 0.1));
  const Matrix<T> dy = random_matrix<T>(n, d, 95);
  const auto t5_ref = posenc::attention_backward(w.x, w.wq, w.wk, w.wv, w.wo, t5, opt, dy);
  const auto shaw_ref = posenc::attention_backward(w.x, w.wq, w.wk, w.wv, w.wo, shaw, opt, dy);
  std::vector<int> mismatches(kThreads, 0);
  on_threads([&](int t) {
    int bad = 0;
    for (int step = 0; step < 2; ++step) {
      // one encoder shared by every thread; each thread's OpenMP team has its own sums
      const auto g = posenc::attention_backward(w.x, w.wq, w.wk, w.wv, w.wo, t5, opt, dy);
      bad += !(max_abs_diff(g.dx, t5_ref.dx) < attn_tol<T>());
      bad += !(max_abs_diff(g.dwq, t5_ref.dwq) < attn_tol<T>());
      bad += !(max_abs_diff(g.encoder.table, t5_ref.encoder.table) < 100 * attn_tol<T>());
      const auto s = posenc::attention_backward(w.x, w.wq, w.wk, w.wv, w.wo, shaw, opt, dy);
      bad += !(max_abs_diff(s.dx, shaw_ref.dx) < attn_tol<T>());
      bad += !(max_abs_diff(s.encoder.a_k, shaw_ref.encoder.a_k) < 100 * attn_tol<T>());
    }
    mismatches[static_cast<std::size_t>(t)] = bad;
  });
  for (int t = 0; t < kThreads; ++t)
    CHECK(mismatches[static_cast<std::size_t>(t)] == 0);
}
