// Two translation units including everything: a non-inline function or variable defined in a
// header makes this executable fail to link (multiple definition).
#include <posenc/posenc.hpp>

int posenc_odr_b();

int main() {
  return posenc_odr_b();
}
