// A check hook with a parameter list the kernel does not call must not compile.
#include "common.hpp"

struct Encoder {
  using Scalar = float;
#ifdef POSENC_FAILTEST
  void check(int heads) const {
    (void)heads;
  }
#else
  void check(const posenc::AttentionShape& shape) const {
    (void)shape;
  }
#endif
};

int main() {
  run_attention(Encoder{});
}
