// A score-bias object whose add_values is not const must not compile (the value term would
// silently vanish).
#include "common.hpp"

struct Encoder {
  using Scalar = float;
  struct Bias {
    void add(posenc::Index, posenc::Index, posenc::Index, const posenc::ConstMatrixRef<float>&,
             const posenc::ConstMatrixRef<float>&, posenc::MatrixRef<float>) const {}
#ifdef POSENC_FAILTEST
    void add_values(posenc::Index, posenc::Index, posenc::Index,
                    const posenc::ConstMatrixRef<float>&, posenc::MatrixRef<float> out) {
      out.array() += 1;
    }
#else
    void add_values(posenc::Index, posenc::Index, posenc::Index,
                    const posenc::ConstMatrixRef<float>&, posenc::MatrixRef<float> out) const {
      out.array() += 1;
    }
#endif
  };
  Bias score_bias(const posenc::Positions&, const posenc::Positions&, posenc::Index, posenc::Index,
                  float) const {
    return {};
  }
};

int main() {
  run_attention(Encoder{});
}
