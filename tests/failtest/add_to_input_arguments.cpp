// An add_to_input hook with the wrong parameters must not compile.
#include "common.hpp"

struct Encoder {
  using Scalar = float;
#ifdef POSENC_FAILTEST
  void add_to_input(posenc::MatrixRef<float> x, posenc::Index) const {
    x.array() += 1;
  }
#else
  void add_to_input(posenc::MatrixRef<float> x, const posenc::Positions&) const {
    x.array() += 1;
  }
#endif
};

int main() {
  run_attention(Encoder{});
}
