// kv_cache: token-by-token generation with a KV cache, with RoPE and with ALiBi, checked
// against a full recomputation of the generated sequence.
//
// A toy one-layer model: embeddings E [V, D], one causal attention layer, and the next token is
// argmax_v (y_last . E_v). Each step appends one key/value to the cache and attends at the token's
// true position; the outputs must equal attention over the whole sequence at once.
#include <posenc/posenc.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

using namespace posenc;
using T = float;

namespace {

constexpr Index kVocab = 50, kDim = 64, kHeads = 4, kSteps = 48;

Matrix<T> seeded(Index rows, Index cols, std::uint64_t seed, double stddev) {
  return LearnedEncoding<T>::normal(rows, cols, seed, stddev).table();
}

template <class E>
bool generate(const char* name, const E& enc) {
  const Matrix<T> emb = seeded(kVocab, kDim, 1, 1.0);
  const double s = 1.0 / std::sqrt(double(kDim));
  AttentionOptions<T> opt;
  opt.heads = kHeads;
  opt.causal = true;
  const MultiHeadAttention<E> layer(seeded(kDim, kDim, 2, s), seeded(kDim, kDim, 3, s),
                                    seeded(kDim, kDim, 4, s), seeded(kDim, kDim, 5, s), enc, opt);

  std::vector<Index> tokens = {7, 3, 11};  // the prompt
  Matrix<T> prompt(static_cast<Index>(tokens.size()), kDim);
  for (std::size_t i = 0; i < tokens.size(); ++i)
    prompt.row(static_cast<Index>(i)) = emb.row(tokens[i]);

  KVCache<T> cache;
  cache.reserve(kDim, kSteps + 3);
  Matrix<T> outputs(kSteps + 3, kDim);
  const auto t0 = std::chrono::steady_clock::now();
  Matrix<T> y = layer.step(prompt, cache);  // the prompt in one call
  outputs.topRows(y.rows()) = y;
  for (Index step = 0; step < kSteps; ++step) {
    Eigen::Index next = 0;
    const Vector<T> logits = emb * y.bottomRows(1).transpose();
    logits.maxCoeff(&next);
    tokens.push_back(next);
    y = layer.step(emb.row(next), cache);  // one new token at position cache.next_position()
    outputs.row(cache.size() - 1) = y;
  }
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();

  Matrix<T> x(static_cast<Index>(tokens.size()), kDim);
  for (std::size_t i = 0; i < tokens.size(); ++i)
    x.row(static_cast<Index>(i)) = emb.row(tokens[i]);
  const Matrix<T> full = layer(x.topRows(cache.size()));
  const double err = (full - outputs.topRows(cache.size())).cwiseAbs().maxCoeff();
  std::printf("%-6s generated:", name);
  for (std::size_t i = 3; i < 15; ++i)
    std::printf(" %ld", static_cast<long>(tokens[i]));
  std::printf(" ...  (%ld tokens, %.1f us/token)\n", static_cast<long>(cache.size()),
              us / static_cast<double>(kSteps + 1));
  std::printf("%-6s cached vs full recomputation: max |diff| = %.2e -> %s\n", name, err,
              err < 1e-4 ? "ok" : "MISMATCH");
  return err < 1e-4;
}

}  // namespace

int main() {
  const bool rope = generate("RoPE", RotaryEncoding<T>(kDim / kHeads));
  const bool alibi = generate("ALiBi", AlibiEncoding<T>(kHeads));
  return rope && alibi ? 0 : 1;
}
