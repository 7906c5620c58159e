// An encoder that rotates Q and K but has no rotate_backward cannot be differentiated: the
// backward pass must not compile (instead of passing the gradient through unrotated).
#include "common.hpp"

struct Encoder {
  using Scalar = float;
  void rotate(posenc::MatrixRef<float> qk, const posenc::Positions&, posenc::Index) const {
    qk *= 2;
  }
#ifndef POSENC_FAILTEST
  void rotate_backward(posenc::MatrixRef<float> g, const posenc::Positions&, posenc::Index) const {
    g *= 2;
  }
#endif
};

int main() {
  run_attention_backward(Encoder{});
}
