#include <posenc/posenc.hpp>

#include <cmath>
#include <vector>

// -slope_h * |p_i - p_j| on the scores of head h: one hook, nothing else.
struct DistancePenalty {
  using Scalar = float;
  std::vector<float> slope;  // one per head

  struct Bias {
    const DistancePenalty* self;
    posenc::Positions q, k;
    void add(posenc::Index h, posenc::Index i0, posenc::Index j0,
             const posenc::ConstMatrixRef<float>& /*q tile*/,
             const posenc::ConstMatrixRef<float>& /*k tile*/, posenc::MatrixRef<float> s) const {
      for (posenc::Index i = 0; i < s.rows(); ++i)
        for (posenc::Index j = 0; j < s.cols(); ++j)
          s(i, j) -= self->slope[h] * std::abs(float(q[i0 + i] - k[j0 + j]));
    }
  };
  Bias score_bias(const posenc::Positions& q, const posenc::Positions& k, posenc::Index /*heads*/,
                  posenc::Index /*head_dim*/, float /*scale*/) const {
    return Bias{this, q, k};
  }
};
// Use it like any built-in encoder:
//   attention(x, wq, wk, wv, wo, DistancePenalty{{0.5f, 0.25f}}, opt);
