// posenc: query-only attention temperature by position (Llama 4's attention temperature tuning
// on its NoPE layers; conventions.md 3b).
#pragma once

#include <cmath>
#include <cstdint>

#include "types.hpp"

POSENC_NAMESPACE_BEGIN

struct AttentionTemperatureOptions {
  /// Hugging Face Llama4TextConfig.attn_scale.
  double attn_scale = 0.1;
  /// Hugging Face Llama4TextConfig.floor_scale.
  double floor_scale = 8192.0;
};

/// Scales each query by its position, keys untouched (conventions.md 3b; Hugging Face
/// Llama4TextAttention): q_i *= 1 + attn_scale * ln(floor((p_i + 1) / floor_scale) + 1). The
/// factor is 1 for p_i + 1 < floor_scale and grows with the log of the position past it, which
/// keeps attention sharp at long context on layers without position encoding.
template <class T>
class AttentionTemperatureEncoding {
 public:
  using Scalar = T;

  explicit AttentionTemperatureEncoding(AttentionTemperatureOptions options = {})
      : options_(options) {
    detail::require(std::isfinite(options_.attn_scale),
                    "AttentionTemperatureEncoding: attn_scale = ", options_.attn_scale,
                    " must be finite");
    detail::require(std::isfinite(options_.floor_scale) && options_.floor_scale > 0.0,
                    "AttentionTemperatureEncoding: floor_scale = ", options_.floor_scale,
                    " must be finite and > 0");
  }

  const AttentionTemperatureOptions& options() const { return options_; }

  /// The factor of a query at position p (in double: p + 1 may exceed INT64_MAX).
  double scale_at(std::int64_t p) const {
    return 1.0 +
           options_.attn_scale *
               std::log(std::floor((static_cast<double>(p) + 1.0) / options_.floor_scale) + 1.0);
  }

  /// The query hook: q [N, H Dh], row i times scale_at(p_i); the keys keep theirs.
  void rotate_queries(MatrixRef<T> q, const Positions& pos, Index /*heads*/) const {
    detail::require(q.rows() == pos.size(), "AttentionTemperatureEncoding: Q has ", q.rows(),
                    " rows, there are ", pos.size(), " positions");
    for (Index i = 0; i < q.rows(); ++i)
      q.row(i) *= static_cast<T>(scale_at(pos[i]));
  }
  /// The gradient of rotate_queries: the same per-row scaling (it is diagonal).
  void rotate_queries_backward(MatrixRef<T> g, const Positions& pos, Index heads) const {
    rotate_queries(g, pos, heads);
  }

 private:
  AttentionTemperatureOptions options_;
};

POSENC_NAMESPACE_END
