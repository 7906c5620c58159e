// A rotate hook that is not const would be skipped by a kernel that calls it on a const
// encoder: it must not compile.
#include "common.hpp"

struct Encoder {
  using Scalar = float;
#ifdef POSENC_FAILTEST
  void rotate(posenc::MatrixRef<float> qk, const posenc::Positions&, posenc::Index) {
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
