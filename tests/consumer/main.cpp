// A downstream program: it only has to find, compile and link against posenc::posenc.
#include <posenc/posenc.hpp>

int main() {
  posenc::SinusoidalEncoding<float> enc(16);
  (void)enc;
  return 0;
}
