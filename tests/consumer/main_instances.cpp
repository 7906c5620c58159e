// A downstream program that links posenc::instances: the attention kernel comes from the
// installed library (the extern declarations are active), and its result is the kernel's.
#include <posenc/posenc.hpp>

#include <cstdio>

#ifndef POSENC_EXTERN_INSTANCES
#error "linking posenc::instances must define POSENC_EXTERN_INSTANCES"
#endif

int main() {
  const posenc::Index n = 5, d = 16;
  posenc::Matrix<float> x = posenc::Matrix<float>::Zero(n, d);
  for (posenc::Index i = 0; i < n; ++i)
    x(i, i) = 1.0f;
  const posenc::Matrix<float> w = posenc::Matrix<float>::Identity(d, d);
  posenc::RotaryEncoding<float> enc(8);
  posenc::AttentionOptions<float> opt;
  opt.heads = 2;
  opt.causal = true;
  const posenc::Matrix<float> y = posenc::attention(x, w, w, w, w, enc, opt);
  // Token 0 sees only itself under the causal mask: y[0] = x[0] (V = X, Wo = I).
  if (!y.allFinite() || (y.row(0) - x.row(0)).norm() > 1e-6f) {
    std::fprintf(stderr, "consumer_instances: unexpected attention output\n");
    return 1;
  }
  return 0;
}
