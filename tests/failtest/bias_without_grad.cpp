// A score bias without add_grad cannot be differentiated: the backward pass must not compile
// (instead of a silent zero gradient for the bias's inputs).
#include "common.hpp"

struct Encoder {
  using Scalar = float;
  struct Bias {
    void add(posenc::Index, posenc::Index, posenc::Index, const posenc::ConstMatrixRef<float>&,
             const posenc::ConstMatrixRef<float>&, posenc::MatrixRef<float> s) const {
      s.array() += 1.0f;
    }
#ifndef POSENC_FAILTEST
    void add_grad(posenc::Index, posenc::Index, posenc::Index, const posenc::ConstMatrixRef<float>&,
                  const posenc::ConstMatrixRef<float>&, const posenc::ConstMatrixRef<float>&,
                  posenc::MatrixRef<float>, posenc::MatrixRef<float>, posenc::NoGradients&) const {}
#endif
  };
  Bias score_bias(const posenc::Positions&, const posenc::Positions&, posenc::Index, posenc::Index,
                  float) const {
    return {};
  }
};

int main() {
  run_attention_backward(Encoder{});
}
