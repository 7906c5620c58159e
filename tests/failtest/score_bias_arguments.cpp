// A score_bias hook without the scale parameter must not compile.
#include "common.hpp"

struct Encoder {
  using Scalar = float;
  struct Bias {
    void add(posenc::Index, posenc::Index, posenc::Index, const posenc::ConstMatrixRef<float>&,
             const posenc::ConstMatrixRef<float>&, posenc::MatrixRef<float> s) const {
      s.array() += 1;
    }
  };
#ifdef POSENC_FAILTEST
  Bias score_bias(const posenc::Positions&, const posenc::Positions&, posenc::Index,
                  posenc::Index) const {
    return {};
  }
#else
  Bias score_bias(const posenc::Positions&, const posenc::Positions&, posenc::Index, posenc::Index,
                  float) const {
    return {};
  }
#endif
};

int main() {
  run_attention(Encoder{});
}
