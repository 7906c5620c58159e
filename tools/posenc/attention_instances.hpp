// posenc command line: posenc::attention and posenc::attention_step for each of the eight
// built-in encoders in float and double, the instances that `posenc attend` (apply_commands.cpp)
// and `posenc compare` (compare_command.cpp) run. They are compiled once, in
// attention_instances.cpp, beside the other files, instead of in each file that calls them: the
// attention kernel is the largest part of the program's compile time.
#pragma once

#include <posenc/posenc.hpp>

/// PREFIX (`extern` or nothing) `template` both overloads of posenc::attention<E> and
/// posenc::attention_step<E>, with T = E::Scalar.
#define POSENC_CLI_ATTENTION_INSTANCE(PREFIX, E, T)                                    \
  PREFIX template void posenc::attention<E>(                                           \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,              \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,              \
      const posenc::ConstMatrixRef<T>&, const E&, const posenc::AttentionOptions<T>&,  \
      posenc::MatrixRef<T>);                                                           \
  PREFIX template posenc::Matrix<T> posenc::attention<E>(                              \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,              \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,              \
      const posenc::ConstMatrixRef<T>&, const E&, const posenc::AttentionOptions<T>&); \
  PREFIX template void posenc::attention_step<E>(                                      \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,              \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstMatrixRef<T>&,              \
      const posenc::ConstMatrixRef<T>&, const E&, const posenc::AttentionOptions<T>&,  \
      posenc::KVCache<T>&, posenc::MatrixRef<T>);

/// The instances for every built-in encoder with scalar T.
#define POSENC_CLI_ATTENTION_INSTANCES(PREFIX, T)                         \
  POSENC_CLI_ATTENTION_INSTANCE(PREFIX, posenc::NoEncoding<T>, T)         \
  POSENC_CLI_ATTENTION_INSTANCE(PREFIX, posenc::SinusoidalEncoding<T>, T) \
  POSENC_CLI_ATTENTION_INSTANCE(PREFIX, posenc::LearnedEncoding<T>, T)    \
  POSENC_CLI_ATTENTION_INSTANCE(PREFIX, posenc::RotaryEncoding<T>, T)     \
  POSENC_CLI_ATTENTION_INSTANCE(PREFIX, posenc::AlibiEncoding<T>, T)      \
  POSENC_CLI_ATTENTION_INSTANCE(PREFIX, posenc::T5Encoding<T>, T)         \
  POSENC_CLI_ATTENTION_INSTANCE(PREFIX, posenc::ShawEncoding<T>, T)       \
  POSENC_CLI_ATTENTION_INSTANCE(PREFIX, posenc::TransformerXLEncoding<T>, T)

POSENC_CLI_ATTENTION_INSTANCES(extern, float)
POSENC_CLI_ATTENTION_INSTANCES(extern, double)
