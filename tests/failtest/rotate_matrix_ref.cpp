// A rotate hook taking Matrix& instead of MatrixRef cannot receive the kernel's views: it
// must not compile.
#include "common.hpp"

struct Encoder {
  using Scalar = float;
#ifdef POSENC_FAILTEST
  void rotate(posenc::Matrix<float>& qk, const posenc::Positions&, posenc::Index) const {
    qk *= 2;
  }
#else
  void rotate(posenc::MatrixRef<float> qk, const posenc::Positions&, posenc::Index) const {
    qk *= 2;
  }
#endif
};

int main() {
  run_attention(Encoder{});
}
