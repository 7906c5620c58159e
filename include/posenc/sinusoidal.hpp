// posenc: the sinusoidal absolute encoding (Vaswani et al. 2017, section 3.5).
#pragma once

#include <cmath>
#include <vector>

#include "detail/row_cache.hpp"
#include "detail/sinusoid.hpp"
#include "types.hpp"

namespace posenc {

/// Where sin and cos of frequency i go: `interleaved` (2i, 2i+1), the paper's; `split`
/// (i, D/2+i), Transformer-XL's, Marian's, tensor2tensor's.
enum class SinusoidalLayout { interleaved, split };
/// `vaswani`: base^(-2i/D); `log_timescale`: base^(-i/(D/2-1)) (tensor2tensor, fairseq).
enum class SinusoidalFrequencies { vaswani, log_timescale };

struct SinusoidalOptions {
  SinusoidalLayout layout = SinusoidalLayout::interleaved;
  SinusoidalFrequencies frequencies = SinusoidalFrequencies::vaswani;
  double base = 10000.0;
  /// X' = X + scale * PE (x-transformers' scaled sinusoidal uses a learned scalar here).
  double scale = 1.0;
};

/// PE[p, 2i] = sin(p * inv_freq_i), PE[p, 2i+1] = cos(p * inv_freq_i) (interleaved), added to
/// the token embeddings before the projections. Rows for positions below the cache cap are
/// built once and reused.
template <class T>
class SinusoidalEncoding {
 public:
  using Scalar = T;

  explicit SinusoidalEncoding(Index dim, SinusoidalOptions options = {})
      : dim_(dim), options_(options) {
    detail::require(dim > 0 && dim % 2 == 0, "SinusoidalEncoding: dim = ", dim,
                    " must be positive and even");
    detail::require(std::isfinite(options.base) && options.base > 0.0,
                    "SinusoidalEncoding: base = ", options.base, " must be finite and > 0");
    detail::require(std::isfinite(options.scale), "SinusoidalEncoding: scale = ", options.scale,
                    " must be finite");
    if (options.frequencies == SinusoidalFrequencies::log_timescale) {
      detail::require(dim >= 4, "SinusoidalEncoding: dim = ", dim,
                      " must be >= 4 for log_timescale frequencies");
      inv_freq_ = detail::log_timescale_inv_freq(dim, options.base);
    } else {
      inv_freq_ = detail::vaswani_inv_freq(dim, options.base);
    }
  }

  Index dim() const { return dim_; }
  const SinusoidalOptions& options() const { return options_; }
  /// The frequencies inv_freq_i, i = 0 .. D/2-1, in double.
  const std::vector<double>& inv_freq() const { return inv_freq_; }

  /// Writes PE(p) (without the scale) for every position into out [N, D].
  void table(const Positions& pos, MatrixRef<T> out) const {
    detail::require(out.rows() == pos.size() && out.cols() == dim_,
                    "SinusoidalEncoding::table: out is [", out.rows(), ", ", out.cols(),
                    "], expected [", pos.size(), ", ", dim_, "]");
    for (Index i = 0; i < pos.size(); ++i) row(static_cast<double>(pos[i]), 1.0, out.row(i).data());
  }
  Matrix<T> table(const Positions& pos) const {
    Matrix<T> out(pos.size(), dim_);
    table(pos, out);
    return out;
  }

  /// x += scale * PE(p): x is [N, D] with row i at position pos[i].
  void add_to_input(MatrixRef<T> x, const Positions& pos) const {
    detail::require(x.rows() == pos.size() && x.cols() == dim_,
                    "SinusoidalEncoding: input is [", x.rows(), ", ", x.cols(), "], expected [",
                    pos.size(), ", ", dim_, "] (positions x dim)");
    if (pos.empty()) return;
    const T scale = static_cast<T>(options_.scale);
    auto cached = cache_.get(inv_freq_, static_cast<Index>(pos.max()) + 1, dim_,
                             [this](Index p0, Index p1, MatrixRef<T> out) {
                               for (Index p = p0; p < p1; ++p)
                                 row(static_cast<double>(p), 1.0, out.row(p - p0).data());
                             });
    if (cached) {
      const Matrix<T>& t = cached->rows;
      const Index n = pos.size();
      const bool contiguous = pos.contiguous();
      const std::int64_t off = pos.offset();
      // x_i += scale PE(p_i), row by row; rows split over threads when there is enough work.
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n > 1 && n * dim_ >= (Index(1) << 17))
#endif
      for (Index i = 0; i < n; ++i) {
        const Index p = contiguous ? static_cast<Index>(off + i) : static_cast<Index>(pos[i]);
        if (scale == T(1))
          x.row(i) += t.row(p);
        else
          x.row(i) += scale * t.row(p);
      }
    } else {
      Vector<T> r(dim_);
      for (Index i = 0; i < pos.size(); ++i) {
        row(static_cast<double>(pos[i]), options_.scale, r.data());
        x.row(i) += r.transpose();
      }
    }
  }

  /// x must be [N, d_model] with d_model = dim.
  void check(Index d_model, Index /*heads*/) const {
    detail::require(d_model == dim_, "SinusoidalEncoding: dim = ", dim_,
                    " does not match the model width D = ", d_model);
  }

  /// Caps the cached table at n scalars (0 disables caching).
  void set_cache_limit(Index n) { cache_.set_max_elements(n); }

 private:
  void row(double p, double scale, T* out) const {
    detail::sinusoid_row(p, inv_freq_, options_.layout == SinusoidalLayout::split, scale, out);
  }

  Index dim_;
  SinusoidalOptions options_;
  std::vector<double> inv_freq_;
  detail::RowCache<T> cache_;
};

}  // namespace posenc
