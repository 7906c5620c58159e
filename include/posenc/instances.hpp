// posenc: the built-in encoders and the attention entry points for float and double, compiled
// once in the library posenc::instances instead of in every translation unit that calls them.
//
// posenc stays header-only. Linking the CMake target posenc::instances defines
// POSENC_EXTERN_INSTANCES, and posenc.hpp then declares these instances `extern template`: a
// translation unit that runs `posenc::attention<posenc::RotaryEncoding<float>>` compiles a call
// instead of the attention kernel (README "Compile time" has the measurements). The library was
// built with one configuration (detail/config.hpp: OpenMP, tile sizes); its users compile with
// the same, which the target's interface carries. User-defined encoders and other scalar types are
// instantiated in the user's own translation units as before.
#pragma once

#include "posenc.hpp"

/// PREFIX (`extern` or nothing) `template` the class E, every attention entry point for E (the
/// layer, the cached step, the core on projected tensors, the class MultiHeadAttention) with
/// T = E::Scalar.
#define POSENC_INSTANCES_OF(PREFIX, E, T)                                                   \
  PREFIX template class E;                                                                  \
  PREFIX template void posenc::attention<E>(                                                \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,                   \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,                   \
      const posenc::ConstMatrixRef<T>&, const E&, const posenc::AttentionOptions<T>&,       \
      posenc::MatrixRef<T>);                                                                \
  PREFIX template posenc::Matrix<T> posenc::attention<E>(                                   \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,                   \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,                   \
      const posenc::ConstMatrixRef<T>&, const E&, const posenc::AttentionOptions<T>&);      \
  PREFIX template void posenc::attention_step<E>(                                           \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,                   \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,                   \
      const posenc::ConstMatrixRef<T>&, const E&, const posenc::AttentionOptions<T>&,       \
      posenc::KVCache<T>&, posenc::MatrixRef<T>);                                           \
  PREFIX template void posenc::attend<E>(                                                   \
      const E&, const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,         \
      const posenc::ConstMatrixRef<T>&, const posenc::Positions&, const posenc::Positions&, \
      const posenc::AttendOptions<T>&, posenc::MatrixRef<T>);                               \
  PREFIX template void posenc::detail::attend<E>(                                           \
      const E&, const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,         \
      const posenc::ConstMatrixRef<T>&, const posenc::Positions&, const posenc::Positions&, \
      posenc::Index, T, bool, posenc::MatrixRef<T>);                                        \
  PREFIX template class posenc::MultiHeadAttention<E>;

/// The instances of every built-in encoder, and of KVCache, with scalar T.
#define POSENC_INSTANCES(PREFIX, T)                                       \
  PREFIX template class posenc::KVCache<T>;                               \
  POSENC_INSTANCES_OF(PREFIX, posenc::NoEncoding<T>, T)                   \
  POSENC_INSTANCES_OF(PREFIX, posenc::SinusoidalEncoding<T>, T)           \
  POSENC_INSTANCES_OF(PREFIX, posenc::LearnedEncoding<T>, T)              \
  POSENC_INSTANCES_OF(PREFIX, posenc::RotaryEncoding<T>, T)               \
  POSENC_INSTANCES_OF(PREFIX, posenc::AlibiEncoding<T>, T)                \
  POSENC_INSTANCES_OF(PREFIX, posenc::T5Encoding<T>, T)                   \
  POSENC_INSTANCES_OF(PREFIX, posenc::ShawEncoding<T>, T)                 \
  POSENC_INSTANCES_OF(PREFIX, posenc::TransformerXLEncoding<T>, T)        \
  POSENC_INSTANCES_OF(PREFIX, posenc::AttentionTemperatureEncoding<T>, T) \
  POSENC_INSTANCES_OF(PREFIX, posenc::BertRelativeEncoding<T>, T)         \
  POSENC_INSTANCES_OF(PREFIX, posenc::DebertaEncoding<T>, T)

#ifdef POSENC_EXTERN_INSTANCES
POSENC_INSTANCES(extern, float)
POSENC_INSTANCES(extern, double)
#endif
