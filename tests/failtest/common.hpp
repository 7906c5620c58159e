// Shared by the failtests: each test compiles as it is (the control) and must fail to compile
// with -DPOSENC_FAILTEST, with the static assertion naming the malformed hook.
#pragma once

#include <posenc/posenc.hpp>

/// Instantiates the attention layer with encoder E.
template <class E>
void run_attention(const E& enc) {
  using T = typename E::Scalar;
  const posenc::Matrix<T> x = posenc::Matrix<T>::Zero(4, 8), w = posenc::Matrix<T>::Zero(8, 8);
  posenc::AttentionOptions<T> opt;
  opt.heads = 2;
  (void)posenc::attention(x, w, w, w, w, enc, opt);
}

/// Instantiates the attention layer's backward pass with encoder E.
template <class E>
void run_attention_backward(const E& enc) {
  using T = typename E::Scalar;
  const posenc::Matrix<T> x = posenc::Matrix<T>::Zero(4, 8), w = posenc::Matrix<T>::Zero(8, 8);
  posenc::AttentionOptions<T> opt;
  opt.heads = 2;
  (void)posenc::attention_backward(x, w, w, w, w, enc, opt, x);
}
