// custom_encoder: writing your own positional encoding and plugging it into posenc's attention.
//
// An encoder is one small class: a `Scalar` type and only the hooks it needs (see
// include/posenc/encoder.hpp). The kernel detects the hooks at compile time; the others cost
// nothing. This one is a "windowed" relative bias: each head sees only keys within `window`
// positions and pays a learned-looking per-head penalty per step of distance, a Longformer-style
// local attention expressed as a score bias.
#include <posenc/posenc.hpp>

#include <cstdio>
#include <limits>

using namespace posenc;

template <class T>
class WindowedDistanceBias {
 public:
  using Scalar = T;

  WindowedDistanceBias(Index heads, std::int64_t window) : penalty_(heads), window_(window) {
    detail::require(window >= 0, "WindowedDistanceBias: window = ", window, " must be >= 0");
    for (Index h = 0; h < heads; ++h)
      penalty_[h] = T(0.1) * T(h + 1);
  }

  // Optional hook: reject attention shapes this encoder was not built for.
  void check(Index /*d_model*/, Index heads) const {
    detail::require(heads == penalty_.size(), "WindowedDistanceBias: built for ", penalty_.size(),
                    " heads, the attention has H = ", heads);
  }

  // The score hook: a per-call object whose add() biases one tile of scores.
  struct Bias {
    const WindowedDistanceBias* self;
    Positions q, k;
    void add(Index h, Index i0, Index j0, const ConstMatrixRef<T>& /*q tile*/,
             const ConstMatrixRef<T>& /*k tile*/, MatrixRef<T> s) const {
      for (Index i = 0; i < s.rows(); ++i)
        for (Index j = 0; j < s.cols(); ++j) {
          const std::int64_t d = std::llabs(q[i0 + i] - k[j0 + j]);
          s(i, j) += d > self->window_ ? -std::numeric_limits<T>::infinity()
                                       : -self->penalty_[h] * static_cast<T>(d);
        }
    }
  };
  Bias score_bias(const Positions& q, const Positions& k, Index /*heads*/, Index /*head_dim*/,
                  T /*scale*/) const {
    return Bias{this, q, k};
  }

 private:
  Vector<T> penalty_;
  std::int64_t window_;
};

int main() {
  using T = float;
  const Index n = 12, d = 16, heads = 2;
  const Matrix<T> x = LearnedEncoding<T>::normal(n, d, 1, 1.0).table();
  const Matrix<T> w = LearnedEncoding<T>::normal(d, d, 2, 0.25).table();
  static_assert(encoder_traits<WindowedDistanceBias<T>>::biases_scores);
  static_assert(!encoder_traits<WindowedDistanceBias<T>>::rotates_qk);

  AttentionOptions<T> opt;
  opt.heads = heads;
  // A window of 0 lets each token see only itself: attention reduces to y = x Wv Wo.
  const Matrix<T> only_self = attention(x, w, w, w, w, WindowedDistanceBias<T>(heads, 0), opt);
  const Matrix<T> direct = x * w * w;
  const double self_err = (only_self - direct).cwiseAbs().maxCoeff();
  std::printf("window 0 equals x Wv Wo: max |diff| = %.2e -> %s\n", self_err,
              self_err < 1e-5 ? "ok" : "MISMATCH");

  // A window as wide as the sequence with zero penalty is plain attention.
  const Matrix<T> wide = attention(x, w, w, w, w, WindowedDistanceBias<T>(heads, n), opt);
  const Matrix<T> none = attention(x, w, w, w, w, NoEncoding<T>{}, opt);
  std::printf("window %ld differs from no encoding by %.3f (the distance penalty)\n",
              static_cast<long>(n), (wide - none).cwiseAbs().maxCoeff());

  // Combined with a causal mask and the KV cache, exactly like the built-in encoders.
  opt.causal = true;
  const WindowedDistanceBias<T> enc(heads, 3);
  const Matrix<T> full = attention(x, w, w, w, w, enc, opt);
  KVCache<T> cache;
  Matrix<T> steps(n, d);
  for (Index i = 0; i < n; ++i)
    attention_step(x.row(i), w, w, w, w, enc, opt, cache, steps.row(i));
  const double kv_err = (full - steps).cwiseAbs().maxCoeff();
  std::printf("causal, window 3, token by token vs full: max |diff| = %.2e -> %s\n", kv_err,
              kv_err < 1e-5 ? "ok" : "MISMATCH");

  // Its own parameter checks surface as posenc::error like the library's.
  try {
    attention(x, w, w, w, w, WindowedDistanceBias<T>(4, 3), opt);
  } catch (const posenc::error& e) {
    std::printf("shape check: %s\n", e.what());
  }
  return self_err < 1e-5 && kv_err < 1e-5 ? 0 : 1;
}
