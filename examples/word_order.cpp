// word_order: the quick start's example. "猫追老鼠" (the cat chases the mouse) and "老鼠追猫"
// (the mouse chases the cat) hold the same four characters in another order. Self-attention
// without position information sees a set: the second sentence's outputs are the first's,
// permuted, and a pooled sentence vector is identical. Each encoder breaks that symmetry;
// this program measures by how much.
#include <posenc/posenc.hpp>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

using namespace posenc;
using T = double;

namespace {

constexpr Index kDim = 32, kHeads = 4, kHeadDim = kDim / kHeads;
const char* const kVocab[] = {"猫", "追", "老", "鼠"};

Matrix<T> seeded(Index rows, Index cols, std::uint64_t seed, double stddev) {
  return LearnedEncoding<T>::normal(rows, cols, seed, stddev).table();
}

struct Model {
  Matrix<T> wq = seeded(kDim, kDim, 11, 1.0 / std::sqrt(double(kDim)));
  Matrix<T> wk = seeded(kDim, kDim, 12, 1.0 / std::sqrt(double(kDim)));
  Matrix<T> wv = seeded(kDim, kDim, 13, 1.0 / std::sqrt(double(kDim)));
  Matrix<T> wo = seeded(kDim, kDim, 14, 1.0 / std::sqrt(double(kDim)));
};

Matrix<T> embed(const Matrix<T>& vocab, const std::vector<Index>& tokens) {
  Matrix<T> x(static_cast<Index>(tokens.size()), vocab.cols());
  for (std::size_t i = 0; i < tokens.size(); ++i)
    x.row(static_cast<Index>(i)) = vocab.row(tokens[i]);
  return x;
}

template <class E>
void compare(const char* name, const char* acts, const E& enc, const Model& m, const Matrix<T>& xa,
             const Matrix<T>& xb, const std::vector<Index>& perm,
             std::optional<T> scale = std::nullopt) {
  AttentionOptions<T> opt;
  opt.heads = kHeads;  // bidirectional, as in an encoder: a causal mask alone reveals order
  opt.scale = scale;   // the encoder's own, where it is not 1/sqrt(Dh)
  const Matrix<T> ya = attention(xa, m.wq, m.wk, m.wv, m.wo, enc, opt);
  const Matrix<T> yb = attention(xb, m.wq, m.wk, m.wv, m.wo, enc, opt);
  // Same token, other sentence: row i of B against the row of A that holds the same token.
  double token_gap = 0.0;
  for (Index i = 0; i < yb.rows(); ++i)
    token_gap = std::max(token_gap, (yb.row(i) - ya.row(perm[static_cast<std::size_t>(i)])).norm() /
                                        ya.row(perm[static_cast<std::size_t>(i)]).norm());
  const double pooled_gap =
      (yb.colwise().mean() - ya.colwise().mean()).norm() / ya.colwise().mean().norm();
  const bool apart = token_gap > 1e-9;
  std::printf("| %-24s | %-15s | %12.3e | %12.3e | %-5s |\n", name, acts, token_gap, pooled_gap,
              apart ? "yes" : "no");
}

}  // namespace

int main() {
  const Matrix<T> vocab = seeded(4, kDim, 2024, 1.0);
  const std::vector<Index> a = {0, 1, 2, 3};     // 猫 追 老 鼠
  const std::vector<Index> b = {2, 3, 1, 0};     // 老 鼠 追 猫
  const std::vector<Index> perm = {2, 3, 1, 0};  // row i of B holds A's token at row perm[i]
  std::string sa, sb;
  for (Index t : a)
    sa += kVocab[t];
  for (Index t : b)
    sb += kVocab[t];
  std::printf("Sentence A: %s   Sentence B: %s   (D = %ld, H = %ld, bidirectional attention)\n\n",
              sa.c_str(), sb.c_str(), static_cast<long>(kDim), static_cast<long>(kHeads));
  std::printf("token gap: max over tokens of |y_B(token) - y_A(token)| / |y_A(token)|\n");
  std::printf("pooled gap: |mean_B - mean_A| / |mean_A| of the sentence vectors\n\n");
  std::printf("| %-24s | %-15s | %12s | %12s | %-5s |\n", "encoder", "acts on", "token gap",
              "pooled gap", "apart");
  std::printf(
      "|--------------------------|-----------------|--------------|--------------|-------|\n");

  const Model m;
  const Matrix<T> xa = embed(vocab, a), xb = embed(vocab, b);
  compare("none", "-", NoEncoding<T>{}, m, xa, xb, perm);
  compare("sinusoidal", "input", SinusoidalEncoding<T>(kDim), m, xa, xb, perm);
  compare("learned (seeded)", "input", LearnedEncoding<T>::normal(16, kDim, 7, 0.5), m, xa, xb,
          perm);
  compare("RoPE (half)", "Q, K", RotaryEncoding<T>(kHeadDim), m, xa, xb, perm);
  RotaryOptions ro;
  ro.layout = RotaryLayout::interleaved;
  ro.rotary_dim = kHeadDim / 2;
  compare("RoPE (interleaved, R/2)", "Q, K", RotaryEncoding<T>(kHeadDim, ro), m, xa, xb, perm);
  compare("ALiBi", "scores", AlibiEncoding<T>(kHeads), m, xa, xb, perm);
  compare("T5 bias (seeded)", "scores", T5Encoding<T>(seeded(32, kHeads, 21, 1.0)), m, xa, xb,
          perm);
  compare("Shaw (seeded, K=2)", "scores, values",
          ShawEncoding<T>(seeded(5, kHeadDim, 22, 1.0), seeded(5, kHeadDim, 23, 1.0)), m, xa, xb,
          perm);
  compare(
      "Transformer-XL (seeded)", "scores",
      TransformerXLEncoding<T>(seeded(kHeads, kHeadDim, 24, 1.0), seeded(kHeads, kHeadDim, 25, 1.0),
                               seeded(kDim, kDim, 26, 1.0 / std::sqrt(double(kDim)))),
      m, xa, xb, perm);
  compare("BERT relative (seeded)", "scores",
          BertRelativeEncoding<T>(seeded(2 * 16 - 1, kHeadDim, 27, 1.0),
                                  BertRelativeType::relative_key_query),
          m, xa, xb, perm);
  DebertaOptions deberta;
  deberta.position_buckets = 8;
  deberta.max_relative_positions = 16;
  const DebertaEncoding<T> deb(seeded(16, kDim, 28, 1.0), seeded(16, kDim, 29, 1.0), kHeads,
                               deberta);
  compare("DeBERTa (seeded, b=8)", "scores", deb, m, xa, xb, perm, deb.attention_scale());
  std::printf(
      "\nWithout an encoder the two sentences give the same bag of outputs: attention\n"
      "alone cannot tell who chases whom. Every encoder above tells them apart.\n");
  return 0;
}
