// One training step of posenc::training::Model (posenc/training.hpp): forward, cross-entropy,
// the full backward pass and an AdamW step (global-norm clipping at 1, weight decay 0.01 on
// the projections), as Model::train_step runs it.
//   train/<enc>/float/D:<D>/N:<N>/B:<B>/threads:<t>
// V = 64 tokens, D = 64 or 128, 2 blocks, 4 heads (Dh = D / 4), MLP 4 D, GELU (tanh),
// RMSNorm, causal; encoder rope (RotaryEncoding, half layout, base 10000) or none; a batch of
// B = 4 sequences of N = 128 or 512 random tokens (next-token targets), float.
// compare_training.py runs this binary and a PyTorch transcription of the same model and step
// alternately (bench/RESULTS.md).
#include <posenc/training.hpp>

#include "make_encoder.hpp"

#include <random>
#include <string>

namespace posenc_bench {
namespace {

constexpr Index kVocab = 64, kLayers = 2, kHeads = 4, kBatch = 4;

std::vector<posenc::training::Sequence> make_batch(Index n, Index b, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<posenc::training::Sequence> batch;
  for (Index s = 0; s < b; ++s) {
    std::vector<std::int64_t> t(static_cast<std::size_t>(n));
    for (auto& x : t)
      x = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(kVocab));
    batch.push_back(posenc::training::Sequence::next_token(std::move(t)));
  }
  return batch;
}

template <int E>
void BM_train_step(benchmark::State& st) {
  using T = float;
  const Index d = st.range(0), n = st.range(1), b = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  posenc::training::ModelConfig cfg;
  cfg.vocab = kVocab;
  cfg.dim = d;
  cfg.layers = kLayers;
  cfg.heads = kHeads;
  cfg.seed = 1;
  posenc::training::Model<decltype(make_encoder<T, E>(1, 1, 1))> model(
      cfg, make_encoder<T, E>(n, kHeads, d / kHeads));
  posenc::training::Adam<T> adam({3e-3, 0.9, 0.999, 1e-8, 0.01, 1.0});
  const auto batch = make_batch(n, b, 7);
  model.train_step(batch, adam);  // the moments, the encoder's position cache
  for (auto _ : st) {
    const T loss = model.train_step(batch, adam);
    benchmark::DoNotOptimize(loss);
  }
}

template <int E>
void add(Index d, Index n, int th) {
  const std::string name = std::string("train/") + enc_name(E) + "/float/D:" + std::to_string(d) +
                           "/N:" + std::to_string(n) + "/B:" + std::to_string(kBatch) +
                           "/threads:" + std::to_string(th);
  benchmark::RegisterBenchmark(name.c_str(), BM_train_step<E>)
      ->Args({d, n, kBatch, th})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

void register_all(bool) {
  for (int th = 1; th <= max_threads(); ++th)
    for (Index d : {Index(64), Index(128)})
      for (Index n : {Index(128), Index(512)}) {
        add<rope>(d, n, th);
        add<none>(d, n, th);
      }
}

}  // namespace
}  // namespace posenc_bench

POSENC_BENCH_MAIN(posenc_bench::register_all)
