// A score bias's finish_grad that cannot be called with the encoder's gradients (here it is
// not const) must not be skipped silently: the backward pass must not compile.
#include "common.hpp"

struct Encoder {
  using Scalar = float;
  struct Bias {
    void add(posenc::Index, posenc::Index, posenc::Index, const posenc::ConstMatrixRef<float>&,
             const posenc::ConstMatrixRef<float>&, posenc::MatrixRef<float> s) const {
      s.array() += 1.0f;
    }
    void add_grad(posenc::Index, posenc::Index, posenc::Index, const posenc::ConstMatrixRef<float>&,
                  const posenc::ConstMatrixRef<float>&, const posenc::ConstMatrixRef<float>&,
                  posenc::MatrixRef<float>, posenc::MatrixRef<float>, posenc::NoGradients&) const {}
#ifdef POSENC_FAILTEST
    void finish_grad(posenc::NoGradients&) {}
#else
    void finish_grad(posenc::NoGradients&) const {}
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
