// An encoder's Scalar must be float or double.
#include "common.hpp"

struct Encoder {
#ifdef POSENC_FAILTEST
  using Scalar = int;
#else
  using Scalar = float;
#endif
};

int main() {
  (void)posenc::encoder_traits<Encoder>::rotates_qk;
}
