// posenc: the sinusoidal absolute encoding (Vaswani et al. 2017, section 3.5).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "detail/row_cache.hpp"
#include "detail/sinusoid.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

/// Where sin and cos of frequency i go: `interleaved` (2i, 2i+1), the paper's; `split`
/// (i, D/2+i), Transformer-XL's, Marian's, tensor2tensor's.
enum class SinusoidalLayout { interleaved, split };
/// `vaswani`: base^(-2i/D); `log_timescale`: base^(-i/(D/2-1)) (tensor2tensor, fairseq).
enum class SinusoidalFrequencies { vaswani, log_timescale };

template <>
struct enum_names<SinusoidalLayout> {
  static constexpr std::array<std::pair<std::string_view, SinusoidalLayout>, 2> table{
      {{"interleaved", SinusoidalLayout::interleaved}, {"split", SinusoidalLayout::split}}};
};
template <>
struct enum_names<SinusoidalFrequencies> {
  static constexpr std::array<std::pair<std::string_view, SinusoidalFrequencies>, 2> table{
      {{"vaswani", SinusoidalFrequencies::vaswani},
       {"log-timescale", SinusoidalFrequencies::log_timescale}}};
};

struct SinusoidalOptions {
  SinusoidalLayout layout = SinusoidalLayout::interleaved;
  SinusoidalFrequencies frequencies = SinusoidalFrequencies::vaswani;
  double base = 10000.0;
  /// X' = X + scale * PE (x-transformers' scaled sinusoidal uses a learned scalar here).
  double scale = 1.0;
};

/// PE[p, 2i] = sin(p * inv_freq_i), PE[p, 2i+1] = cos(p * inv_freq_i) (interleaved), added to
/// the token embeddings before the projections. add_to_input caches one seed row every 16
/// positions (below the cache cap) and rotates it to the positions in between.
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
    detail::require_extent(dim, "SinusoidalEncoding: dim");
    detail::require(
        std::isfinite(options.scale) &&
            std::abs(options.scale) <= static_cast<double>(std::numeric_limits<T>::max()),
        "SinusoidalEncoding: scale = ", options.scale,
        " must be finite and representable in the scalar type");
    if (options.frequencies == SinusoidalFrequencies::log_timescale) {
      detail::require(dim >= 4, "SinusoidalEncoding: dim = ", dim,
                      " must be >= 4 for log_timescale frequencies");
      inv_freq_ = detail::log_timescale_inv_freq(dim, options.base);
    } else {
      inv_freq_ = detail::vaswani_inv_freq(dim, options.base);
    }
    for (std::size_t i = 0; i < inv_freq_.size(); ++i)
      detail::require(std::isfinite(inv_freq_[i]), "SinusoidalEncoding: inv_freq[", i,
                      "] = ", inv_freq_[i], " is not finite (base = ", options.base, ")");
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
    for (Index i = 0; i < pos.size(); ++i)
      row(static_cast<double>(pos[i]), 1.0, out.row(i).data());
  }
  Matrix<T> table(const Positions& pos) const {
    Matrix<T> out = detail::new_matrix<T>(pos.size(), dim_, "SinusoidalEncoding::table: [N, D]");
    table(pos, out);
    return out;
  }

  /// x += scale * PE(p): x is [N, D] with row i at position pos[i].
  ///
  /// PE(sK + j) is PE(sK) rotated by the angles j inv_freq_i (the angle-addition identity the
  /// paper cites for relative positions, Vaswani et al. 2017, section 3.5):
  ///   sin((sK+j)w) = sin(sKw) cos(jw) + cos(sKw) sin(jw)
  ///   cos((sK+j)w) = cos(sKw) cos(jw) - sin(sKw) sin(jw)
  /// so x_i += P_s * U_j + Q_s * V_j elementwise, with seed rows P_s = scale PE(sK),
  /// Q_s = scale (cos, -sin)(sKw) cached every K positions and U_j = cos(jw), V_j = sin(jw)
  /// (j < K) kept per encoder; every angle is taken in double. X is read and written once and
  /// no [N, D] table is read beside it: two thirds of the memory traffic of x += table[p].
  void add_to_input(MatrixRef<T> x, const Positions& pos) const {
    detail::require(x.rows() == pos.size() && x.cols() == dim_, "SinusoidalEncoding: input is [",
                    x.rows(), ", ", x.cols(), "], expected [", pos.size(), ", ", dim_,
                    "] (positions x dim)");
    if (pos.empty()) return;
    const Index n = pos.size();
    const Index seeds_needed = static_cast<Index>(pos.max() / block) + 1;
    auto seeds =
        cache_.get(inv_freq_, seeds_needed, 2 * dim_, [this](Index s0, Index s1, MatrixRef<T> out) {
          for (Index s = s0; s < s1; ++s)
            seed_row(s, out.row(s - s0).data());
        });
    // The 2K rotation rows are built on first use (their size is 32 D, whatever N is).
    auto rotation = seeds
                        ? rotation_.get(
                              inv_freq_, 2 * block, dim_,
                              [this](Index, Index, MatrixRef<T> out) { rotation_rows(out); }, true)
                        : nullptr;
    if (!seeds || !rotation) {
      Vector<T> r(dim_);
      for (Index i = 0; i < n; ++i) {
        row(static_cast<double>(pos[i]), options_.scale, r.data());
        x.row(i) += r.transpose();
      }
      return;
    }
    const Matrix<T>& seed = seeds->rows;
    const Matrix<T>& rot = rotation->rows;
    [[maybe_unused]] const bool parallel = n > 1 && n * dim_ >= (Index(1) << 17);
    if (pos.contiguous()) {
      // Rows sharing a seed form a group; inside it, column tiles keep the seed and the K
      // rotation rows of the tile in L1 while X streams through once.
      const std::int64_t off = pos.offset();
      const Index s_first = static_cast<Index>(off / block);
      const Index s_last = static_cast<Index>((off + (n - 1)) / block);
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (parallel && s_last > s_first)
#endif
      for (Index s = s_first; s <= s_last; ++s) {
        const Index i0 = std::max<Index>(s * block - static_cast<Index>(off), 0);
        const Index i1 = std::min<Index>((s + 1) * block - static_cast<Index>(off), n);
        const T* p = seed.row(s).data();
        for (Index c0 = 0; c0 < dim_; c0 += tile) {
          const Index w = std::min(tile, dim_ - c0);
          for (Index i = i0; i < i1; ++i) {
            const Index j = static_cast<Index>(off) + i - s * block;
            add_rotated(x.row(i).data() + c0, p + c0, p + dim_ + c0, rot.row(2 * j).data() + c0,
                        rot.row(2 * j + 1).data() + c0, w);
          }
        }
      }
    } else {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (parallel)
#endif
      for (Index i = 0; i < n; ++i) {
        const Index s = static_cast<Index>(pos[i] / block), j = static_cast<Index>(pos[i] % block);
        const T* p = seed.row(s).data();
        add_rotated(x.row(i).data(), p, p + dim_, rot.row(2 * j).data(), rot.row(2 * j + 1).data(),
                    dim_);
      }
    }
  }

  /// x must be [N, d_model] with d_model = dim.
  void check(const AttentionShape& shape) const {
    detail::require(shape.d_model == dim_, "SinusoidalEncoding: dim = ", dim_,
                    " does not match the model width D = ", shape.d_model);
  }

  /// Caps the cached seed rows at n scalars (each row is 2 D scalars and serves 16 positions;
  /// 0 disables caching: every row is then computed directly).
  void set_cache_limit(Index n) {
    cache_.set_max_elements(n);
    rotation_.set_max_elements(n);
  }

 private:
  /// Positions per cached seed row, and the column tile of add_to_input (512 bytes).
  static constexpr Index block = 16;
  static constexpr Index tile = Index(512 / sizeof(T));

  void row(double p, double scale, T* out) const {
    detail::sinusoid_row(p, inv_freq_, options_.layout == SinusoidalLayout::split, scale, out);
  }

  /// Column of sin(p w_i) and of cos(p w_i) in a row of PE.
  Index sin_col(Index i) const {
    return options_.layout == SinusoidalLayout::split ? i : 2 * i;
  }
  Index cos_col(Index i) const {
    return options_.layout == SinusoidalLayout::split ? dim_ / 2 + i : 2 * i + 1;
  }

  /// [P | Q] for position sK: P = scale PE(sK); Q holds scale cos at the sin columns and
  /// -scale sin at the cos columns.
  void seed_row(Index s, T* out) const {
    const double p = static_cast<double>(s) * static_cast<double>(block), k = options_.scale;
    for (Index i = 0; i < dim_ / 2; ++i) {
      const double a = p * inv_freq_[static_cast<std::size_t>(i)];
      const double sn = k * std::sin(a), cs = k * std::cos(a);
      out[sin_col(i)] = static_cast<T>(sn);
      out[cos_col(i)] = static_cast<T>(cs);
      out[dim_ + sin_col(i)] = static_cast<T>(cs);
      out[dim_ + cos_col(i)] = static_cast<T>(-sn);
    }
  }

  /// Rows 2j and 2j+1: cos(j w_i) and sin(j w_i), each at both columns of frequency i.
  void rotation_rows(MatrixRef<T> rotation) const {
    for (Index j = 0; j < block; ++j) {
      for (Index i = 0; i < dim_ / 2; ++i) {
        const double a = static_cast<double>(j) * inv_freq_[static_cast<std::size_t>(i)];
        const T c = static_cast<T>(std::cos(a)), sn = static_cast<T>(std::sin(a));
        rotation(2 * j, sin_col(i)) = rotation(2 * j, cos_col(i)) = c;
        rotation(2 * j + 1, sin_col(i)) = rotation(2 * j + 1, cos_col(i)) = sn;
      }
    }
  }

  static void add_rotated(T* x, const T* p, const T* q, const T* u, const T* v, Index w) {
    using Row = Eigen::Array<T, 1, Eigen::Dynamic>;
    Eigen::Map<Row> xs(x, w);
    xs += Eigen::Map<const Row>(p, w) * Eigen::Map<const Row>(u, w) +
          Eigen::Map<const Row>(q, w) * Eigen::Map<const Row>(v, w);
  }

  Index dim_;
  SinusoidalOptions options_;
  std::vector<double> inv_freq_;
  detail::RowCache<T> cache_, rotation_;
};

POSENC_NAMESPACE_END
