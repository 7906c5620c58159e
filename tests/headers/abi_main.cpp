// Links abi_tiles.cpp compiled with 16 x 16 attention tiles and with the default tiles: the two
// configurations name different types, keep their own tile sizes, and compute the same attention.
#include <posenc/posenc.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>

const char* encoder_type_small();
const char* encoder_type_default();
long query_tile_small();
long query_tile_default();
posenc::Matrix<double> attention_small(const posenc::Matrix<double>&,
                                       const posenc::Matrix<double>&);
posenc::Matrix<double> attention_default(const posenc::Matrix<double>&,
                                         const posenc::Matrix<double>&);

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "abi: %s\n", what);
      ++failures;
    }
  };
  check(std::strcmp(encoder_type_small(), encoder_type_default()) != 0,
        "the two tile configurations name the same RotaryEncoding<double> type");
  check(query_tile_small() == 16, "the small-tile TU does not see 16-query tiles");
  check(query_tile_default() != 16, "the default TU sees 16-query tiles");
  // 70 tokens: several 16-row tiles, a partial last tile, and a single default tile.
  const posenc::Index n = 70, d = 32;
  posenc::Matrix<double> x(n, d), w(d, d);
  for (posenc::Index i = 0; i < n; ++i)
    for (posenc::Index j = 0; j < d; ++j)
      x(i, j) = std::sin(0.37 * double(i * d + j));
  for (posenc::Index i = 0; i < d; ++i)
    for (posenc::Index j = 0; j < d; ++j)
      w(i, j) = std::cos(0.11 * double(i * d + j)) / 6.0;
  const posenc::Matrix<double> a = attention_small(x, w), b = attention_default(x, w);
  const double diff = (a - b).cwiseAbs().maxCoeff(), scale = b.cwiseAbs().maxCoeff();
  check(diff <= 1e-12 * scale, "16 x 16 tiles and the default tiles give different attention");
  if (failures == 0)
    std::printf("abi: tile configurations kept apart; attention agrees to %.1e\n", diff / scale);
  return failures == 0 ? 0 : 1;
}
