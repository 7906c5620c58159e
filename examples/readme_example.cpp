#include <posenc/posenc.hpp>

#include <iostream>

int main() {
  using namespace posenc;
  const Index n = 6, d = 64, heads = 8;
  Matrix<float> x = Matrix<float>::Random(n, d);  // your token embeddings [N, D]
  Matrix<float> wq = Matrix<float>::Random(d, d) * 0.1f, wk = wq, wv = wq, wo = wq;

  // LLaMA-style RoPE on every head (head_dim 8), YaRN-extended 4x from an 8k context.
  RotaryOptions rope;
  rope.scaling = RopeScaling::yarn;
  rope.factor = 4.0;
  rope.original_max_positions = 8192;
  const RotaryEncoding<float> enc(d / heads, rope);

  AttentionOptions<float> opt;
  opt.heads = heads;
  opt.causal = true;
  opt.offset = 100000;  // positions 100000 .. 100005
  const Matrix<float> y = attention(x, wq, wk, wv, wo, enc, opt);

  // The same layer with ALiBi instead: only the encoder changes.
  const Matrix<float> y2 = attention(x, wq, wk, wv, wo, AlibiEncoding<float>(heads), opt);

  // Or rotate your own Q buffer in place, no copy: [N, heads * head_dim].
  Matrix<float> q = x * wq;
  enc.rotate(q, Positions(100000, n), heads);

  std::cout << "y is " << y.rows() << " x " << y.cols() << ", |y - y2| = " << (y - y2).norm()
            << "\n";
}
