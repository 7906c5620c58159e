#include <posenc/posenc.hpp>

int posenc_odr_b() {
  return 0;
}
