// One of two translation units compiled with different attention tile sizes and linked into one
// program (abi_main.cpp): POSENC_ATTN_BQ / POSENC_ATTN_BK change inline bodies, so each
// configuration must have entities of its own (detail/config.hpp's inline namespace) rather than
// the linker keeping one TU's kernel for both. Built twice: with ABI_SMALL_TILES defined (16 x 16
// tiles) and without (the defaults).
#ifdef ABI_SMALL_TILES
#define POSENC_ATTN_BQ 16
#define POSENC_ATTN_BK 16
#define ABI_NAME(x) x##_small
#else
#define ABI_NAME(x) x##_default
#endif
#include <posenc/posenc.hpp>

#include <typeinfo>

const char* ABI_NAME(encoder_type)() {
  return typeid(posenc::RotaryEncoding<double>).name();
}

long ABI_NAME(query_tile)() {
  return posenc::detail::attention_tiles<double>::query;
}

posenc::Matrix<double> ABI_NAME(attention)(const posenc::Matrix<double>& x,
                                           const posenc::Matrix<double>& w) {
  posenc::AlibiEncoding<double> enc(4);
  posenc::AttentionOptions<double> opt;
  opt.heads = 4;
  opt.causal = true;
  return posenc::attention(x, w, w, w, w, enc, opt);
}
