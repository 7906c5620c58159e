// posenc: rotary position embedding, RoPE (Su et al. 2021), with partial rotary width, both
// pair layouts and the context-extension scalings of Hugging Face's `rope_type`.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "detail/restrict.hpp"
#include "detail/row_cache.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

/// Which dimensions form a rotated pair: `half` (i, i + R/2), GPT-NeoX and Hugging Face
/// LLaMA's rotate_half; `interleaved` (2i, 2i+1), RoFormer, GPT-J and Meta's LLaMA.
enum class RotaryLayout { half, interleaved };

/// Context-extension scalings (conventions.md section 3), each changing inv_freq and an
/// output factor only.
enum class RopeScaling { none, linear, ntk, dynamic, yarn, llama3, longrope };

template <>
struct enum_names<RotaryLayout> {
  static constexpr std::array<std::pair<std::string_view, RotaryLayout>, 2> table{
      {{"half", RotaryLayout::half}, {"interleaved", RotaryLayout::interleaved}}};
};
/// Hugging Face's rope_type names (its "default" is none); ntk is not a Hugging Face rope_type
/// (conventions.md section 3).
template <>
struct enum_names<RopeScaling> {
  static constexpr std::array<std::pair<std::string_view, RopeScaling>, 7> table{
      {{"none", RopeScaling::none},
       {"linear", RopeScaling::linear},
       {"ntk", RopeScaling::ntk},
       {"dynamic", RopeScaling::dynamic},
       {"yarn", RopeScaling::yarn},
       {"llama3", RopeScaling::llama3},
       {"longrope", RopeScaling::longrope}}};
};

struct RotaryOptions {
  double base = 10000.0;
  /// R: rotated dimensions per head (even, <= head_dim); 0 means all of them.
  Index rotary_dim = 0;
  RotaryLayout layout = RotaryLayout::half;
  RopeScaling scaling = RopeScaling::none;
  /// Scaling factor; required by linear, ntk, dynamic, yarn and longrope; llama3 defaults to 8.
  std::optional<double> factor;
  /// M, the original context: required by dynamic, yarn and longrope; llama3 defaults to 8192.
  std::optional<std::int64_t> original_max_positions;
  // yarn (Peng et al. 2023)
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  bool truncate = true;
  /// yarn and longrope: multiplies the rotated dimensions; derived from factor when absent.
  std::optional<double> attention_factor;
  /// yarn: mscale and mscale_all_dim (DeepSeek); 0 counts as absent, as in Hugging Face.
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // longrope (Phi-3): R/2 per-frequency factors each
  std::vector<double> short_factors;
  std::vector<double> long_factors;
};

/// Rotates pairs of query/key dimensions by p * inv_freq_i:
///   x'_a = x_a cos(theta) - x_b sin(theta),  x'_b = x_b cos(theta) + x_a sin(theta),
///   theta = p * inv_freq_i,  inv_freq_i = base^(-2i/R)  (Su et al. 2021, eq. 34).
/// Angles are computed in double; the cos/sin rows are cached per frequency set and reused.
template <class T>
class RotaryEncoding {
 public:
  using Scalar = T;

  explicit RotaryEncoding(Index head_dim, RotaryOptions options = {})
      : head_dim_(head_dim), options_(std::move(options)) {
    validate();
    rotary_dim_ = options_.rotary_dim == 0 ? head_dim_ : options_.rotary_dim;
    const Index half = rotary_dim_ / 2;
    const double r = static_cast<double>(rotary_dim_);
    base_inv_freq_.resize(static_cast<std::size_t>(half));
    for (Index i = 0; i < half; ++i)
      base_inv_freq_[static_cast<std::size_t>(i)] =
          std::pow(options_.base, -2.0 * static_cast<double>(i) / r);
    static_inv_freq_ = compute_inv_freq(0.0, false);
    check_derived(static_inv_freq_, options_.scaling == RopeScaling::longrope ? "short" : "");
    if (options_.scaling == RopeScaling::longrope) {
      long_inv_freq_ = compute_inv_freq(0.0, true);
      check_derived(long_inv_freq_, "long");
    }
    const double af = attention_factor();
    detail::require(
        std::isfinite(af) && af > 0.0 && af <= static_cast<double>(std::numeric_limits<T>::max()),
        "RotaryEncoding: the attention factor ", af,
        " must be finite, > 0 and representable in the scalar type (at most ",
        static_cast<double>(std::numeric_limits<T>::max()), ")");
  }

  Index head_dim() const { return head_dim_; }
  Index rotary_dim() const { return rotary_dim_; }
  const RotaryOptions& options() const { return options_; }

  /// The effective inv_freq for a call whose largest position is max_position
  /// (only dynamic and longrope depend on it).
  std::vector<double> inv_freq(std::int64_t max_position = 0) const {
    if (options_.scaling == RopeScaling::dynamic)
      return compute_inv_freq(static_cast<double>(max_position) + 1.0, false);
    if (options_.scaling == RopeScaling::longrope && uses_long(max_position)) return long_inv_freq_;
    return static_inv_freq_;
  }

  /// The factor applied to the rotated dimensions (yarn, longrope; 1 otherwise).
  double attention_factor() const {
    if (options_.attention_factor) return *options_.attention_factor;
    const double f = options_.factor.value_or(1.0);
    if (options_.scaling == RopeScaling::yarn) {
      const double m = options_.mscale.value_or(0.0), mall = options_.mscale_all_dim.value_or(0.0);
      if (m != 0.0 && mall != 0.0) return yarn_g(f, m) / yarn_g(f, mall);
      return yarn_g(f, 1.0);
    }
    if (options_.scaling == RopeScaling::longrope) {
      // sqrt(1 + ln(factor) / ln(M))  (Phi-3 longrope)
      if (f <= 1.0) return 1.0;
      return std::sqrt(1.0 + std::log(f) /
                                 std::log(static_cast<double>(*options_.original_max_positions)));
    }
    return 1.0;
  }

  /// Rotates x [N, heads * head_dim] in place, row i at position pos[i]; every head's first
  /// R dimensions rotate, the rest pass through.
  void rotate(MatrixRef<T> x, const Positions& pos, Index heads) const {
    detail::require(heads > 0, "RotaryEncoding: heads = ", heads, " must be > 0");
    const Index width = detail::checked_mul(heads, head_dim_, "RotaryEncoding: heads * head_dim");
    detail::require(x.rows() == pos.size() && x.cols() == width, "RotaryEncoding: input is [",
                    x.rows(), ", ", x.cols(), "], expected [", pos.size(), ", ", width,
                    "] (positions x heads*head_dim, heads = ", heads, ", head_dim = ", head_dim_,
                    ")");
    if (pos.empty()) return;
    const std::int64_t pmax = pos.max();
    const bool dyn_long = options_.scaling == RopeScaling::dynamic && uses_long(pmax);
    const bool long_set = options_.scaling == RopeScaling::longrope && uses_long(pmax);
    const std::vector<double>& freq = long_set ? long_inv_freq_ : static_inv_freq_;
    const double af = attention_factor();
    // Rows 0 .. pmax are cached when they fit under the cap (pmax < max_extent keeps pmax + 1
    // and the row offsets far from overflow; the cap itself is smaller).
    if (!dyn_long && pmax < max_extent) {
      auto& cache = long_set ? long_cache_ : cache_;
      auto table =
          cache.get(freq, static_cast<Index>(pmax) + 1, rotary_dim_,
                    [&](Index p0, Index p1, MatrixRef<T> out) {
                      for (Index p = p0; p < p1; ++p)
                        cos_sin_row(static_cast<double>(p), freq, af, out.row(p - p0).data());
                    });
      if (table) {
        const Index n = pos.size();
        const T* rows = table->rows.data();
        const Index ldt = table->rows.outerStride();
        // Rows are independent: split them over threads when there is enough work.
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n > 1 && n * x.cols() >= (Index(1) << 17))
#endif
        for (Index i = 0; i < n; ++i)
          rotate_row(x.row(i).data(), rows + pos[i] * ldt, heads);
        return;
      }
    }
    // Uncached: a dynamic-NTK base for this call, or positions beyond the cache cap.
    const std::vector<double> f =
        dyn_long ? compute_inv_freq(static_cast<double>(pmax) + 1.0, false) : freq;
    Vector<T> cs(rotary_dim_);
    for (Index i = 0; i < pos.size(); ++i) {
      cos_sin_row(static_cast<double>(pos[i]), f, af, cs.data());
      rotate_row(x.row(i).data(), cs.data(), heads);
    }
  }
  /// Single-head form: x is [N, head_dim].
  void rotate(MatrixRef<T> x, const Positions& pos) const {
    rotate(x, pos, 1);
  }

  void check(const AttentionShape& shape) const {
    detail::require(shape.head_dim == head_dim_, "RotaryEncoding: head_dim = ", head_dim_,
                    " does not match the attention's head size Dh = ", shape.head_dim,
                    " (D = ", shape.d_model, ", H = ", shape.heads, ")");
  }

  /// Caps each cos/sin cache at n scalars (0 disables caching).
  void set_cache_limit(Index n) {
    cache_.set_max_elements(n);
    long_cache_.set_max_elements(n);
  }

 private:
  static double yarn_g(double s, double m) {
    return s <= 1.0 ? 1.0 : 0.1 * m * std::log(s) + 1.0;
  }

  // L = max_position + 1 > M, written so that max_position = INT64_MAX does not wrap.
  bool uses_long(std::int64_t max_position) const {
    return max_position >= *options_.original_max_positions;
  }

  // Derived frequencies must be finite and > 0 (a factor of 1e-320 passes the check of the
  // factor itself and turns inv_freq / factor into inf).
  void check_derived(const std::vector<double>& f, const char* set) const {
    for (std::size_t i = 0; i < f.size(); ++i)
      detail::require(std::isfinite(f[i]) && f[i] > 0.0, "RotaryEncoding: the derived ", set,
                      *set ? " " : "", "inv_freq[", i, "] = ", f[i],
                      " is not finite and > 0 (check base and factor)");
  }

  void validate() const {
    const RotaryOptions& o = options_;
    detail::require(head_dim_ > 0, "RotaryEncoding: head_dim = ", head_dim_, " must be > 0");
    detail::require_extent(head_dim_, "RotaryEncoding: head_dim");
    const Index r = o.rotary_dim == 0 ? head_dim_ : o.rotary_dim;
    detail::require(r > 0 && r % 2 == 0 && r <= head_dim_, "RotaryEncoding: rotary_dim = ", r,
                    " must be even and in [2, head_dim = ", head_dim_, "]");
    detail::require(std::isfinite(o.base) && o.base > 0.0, "RotaryEncoding: base = ", o.base,
                    " must be finite and > 0");
    const RopeScaling s = o.scaling;
    const std::string_view name = name_of(s);
    if (o.factor)
      detail::require(std::isfinite(*o.factor) && *o.factor > 0.0,
                      "RotaryEncoding: factor = ", *o.factor, " must be finite and > 0");
    if (s == RopeScaling::linear || s == RopeScaling::ntk || s == RopeScaling::dynamic ||
        s == RopeScaling::yarn || (s == RopeScaling::longrope && !o.attention_factor))
      detail::require(o.factor.has_value(), "RotaryEncoding: scaling ", name, " needs factor");
    if (s == RopeScaling::dynamic || s == RopeScaling::yarn || s == RopeScaling::longrope)
      detail::require(o.original_max_positions.has_value(), "RotaryEncoding: scaling ", name,
                      " needs original_max_positions");
    if (o.original_max_positions)
      detail::require(*o.original_max_positions > 0,
                      "RotaryEncoding: original_max_positions = ", *o.original_max_positions,
                      " must be > 0");
    if (s == RopeScaling::ntk || s == RopeScaling::dynamic)
      detail::require(r > 2, "RotaryEncoding: scaling ", name,
                      " needs rotary_dim > 2 (R/(R-2)), got ", r);
    if (s == RopeScaling::yarn) {
      detail::require(o.base != 1.0, "RotaryEncoding: yarn needs base != 1, got ", o.base);
      detail::require(std::isfinite(o.beta_fast) && o.beta_fast > 0.0,
                      "RotaryEncoding: beta_fast = ", o.beta_fast, " must be finite and > 0");
      detail::require(std::isfinite(o.beta_slow) && o.beta_slow > 0.0,
                      "RotaryEncoding: beta_slow = ", o.beta_slow, " must be finite and > 0");
      if (o.mscale)
        detail::require(std::isfinite(*o.mscale), "RotaryEncoding: mscale = ", *o.mscale,
                        " must be finite");
      if (o.mscale_all_dim)
        detail::require(std::isfinite(*o.mscale_all_dim),
                        "RotaryEncoding: mscale_all_dim = ", *o.mscale_all_dim, " must be finite");
    }
    if (o.attention_factor) {
      detail::require(
          s == RopeScaling::yarn || s == RopeScaling::longrope,
          "RotaryEncoding: attention_factor applies to yarn and longrope, not to scaling ", name);
      detail::require(std::isfinite(*o.attention_factor) && *o.attention_factor > 0.0,
                      "RotaryEncoding: attention_factor = ", *o.attention_factor,
                      " must be finite and > 0");
    }
    if (s == RopeScaling::longrope && !o.attention_factor && o.factor && *o.factor > 1.0)
      detail::require(
          o.original_max_positions.value_or(0) > 1,
          "RotaryEncoding: longrope's attention factor sqrt(1 + ln(factor)/ln(M)) needs "
          "original_max_positions M > 1, got ",
          o.original_max_positions.value_or(0));
    if (s == RopeScaling::llama3) {
      detail::require(std::isfinite(o.low_freq_factor) && o.low_freq_factor > 0.0,
                      "RotaryEncoding: low_freq_factor = ", o.low_freq_factor,
                      " must be finite and > 0");
      detail::require(std::isfinite(o.high_freq_factor) && o.high_freq_factor > o.low_freq_factor,
                      "RotaryEncoding: high_freq_factor = ", o.high_freq_factor,
                      " must be finite and > low_freq_factor = ", o.low_freq_factor);
    }
    if (s == RopeScaling::longrope) {
      const std::size_t half = static_cast<std::size_t>(r / 2);
      detail::require(o.short_factors.size() == half && o.long_factors.size() == half,
                      "RotaryEncoding: longrope short_factors and long_factors have ",
                      o.short_factors.size(), " and ", o.long_factors.size(),
                      " entries, expected rotary_dim / 2 = ", half);
      for (std::size_t i = 0; i < half; ++i)
        detail::require(std::isfinite(o.short_factors[i]) && o.short_factors[i] > 0.0 &&
                            std::isfinite(o.long_factors[i]) && o.long_factors[i] > 0.0,
                        "RotaryEncoding: longrope factors[", i, "] = ", o.short_factors[i], ", ",
                        o.long_factors[i], " must be finite and > 0");
    }
  }

  // inv_freq after scaling, for a call of length L (dynamic) or the long set (longrope).
  std::vector<double> compute_inv_freq(double L, bool long_set) const {
    const RotaryOptions& o = options_;
    const double r = static_cast<double>(rotary_dim_);
    const std::size_t half = base_inv_freq_.size();
    std::vector<double> f = base_inv_freq_;
    const auto with_base = [&](double b) {
      for (std::size_t i = 0; i < half; ++i)
        f[i] = std::pow(b, -2.0 * static_cast<double>(i) / r);
    };
    switch (o.scaling) {
      case RopeScaling::none:
        break;
      case RopeScaling::linear:  // position interpolation (Chen et al. 2023): inv_freq / factor
        for (double& v : f)
          v /= *o.factor;
        break;
      case RopeScaling::ntk:  // base' = base * factor^(R/(R-2))
        with_base(o.base * std::pow(*o.factor, r / (r - 2.0)));
        break;
      case RopeScaling::dynamic: {  // base' = base * (factor*L/M - (factor-1))^(R/(R-2)) if L > M
        const double m = static_cast<double>(*o.original_max_positions);
        const double len = L;
        if (len > m)
          with_base(o.base * std::pow(*o.factor * len / m - (*o.factor - 1.0), r / (r - 2.0)));
        break;
      }
      case RopeScaling::yarn: {  // Peng et al. 2023; Hugging Face _compute_yarn_parameters
        const double m = static_cast<double>(*o.original_max_positions);
        const double two_pi = 6.283185307179586;
        const auto corr = [&](double rot) {
          return r * std::log(m / (two_pi * rot)) / (2.0 * std::log(o.base));
        };
        double lo = corr(o.beta_fast), hi = corr(o.beta_slow);
        if (o.truncate) {
          lo = std::floor(lo);
          hi = std::ceil(hi);
        }
        lo = std::max(lo, 0.0);
        hi = std::min(hi, r - 1.0);
        if (lo == hi) hi += 0.001;
        for (std::size_t i = 0; i < half; ++i) {
          const double ramp = std::clamp((static_cast<double>(i) - lo) / (hi - lo), 0.0, 1.0);
          const double e = 1.0 - ramp;
          f[i] = (f[i] / *o.factor) * (1.0 - e) + f[i] * e;
        }
        break;
      }
      case RopeScaling::llama3: {  // Meta Llama 3.1 apply_scaling
        const double factor = o.factor.value_or(8.0);
        const double m = static_cast<double>(o.original_max_positions.value_or(8192));
        const double two_pi = 6.283185307179586;
        for (double& v : f) {
          const double lambda = two_pi / v;
          if (lambda < m / o.high_freq_factor) continue;
          if (lambda > m / o.low_freq_factor) {
            v /= factor;
          } else {
            const double s =
                (m / lambda - o.low_freq_factor) / (o.high_freq_factor - o.low_freq_factor);
            v = (1.0 - s) * v / factor + s * v;
          }
        }
        break;
      }
      case RopeScaling::longrope: {  // inv_freq_i = 1 / (f_i * base^(2i/R))
        const std::vector<double>& ext = long_set ? o.long_factors : o.short_factors;
        for (std::size_t i = 0; i < half; ++i)
          f[i] = 1.0 / (ext[i] * std::pow(o.base, 2.0 * static_cast<double>(i) / r));
        break;
      }
    }
    return f;
  }

  // One row [cos_0 .. cos_{R/2-1}, sin_0 .. sin_{R/2-1}] times the attention factor.
  void cos_sin_row(double p, const std::vector<double>& freq, double af, T* out) const {
    const std::size_t half = freq.size();
    for (std::size_t i = 0; i < half; ++i) {
      const double angle = p * freq[i];
      out[i] = static_cast<T>(af * std::cos(angle));
      out[half + i] = static_cast<T>(af * std::sin(angle));
    }
  }

  // One token: every head's pairs rotated by the row's cos/sin. Straight-line loops over
  // restrict-qualified pointers, which the compiler vectorises.
  void rotate_row(T* x, const T* cs, Index heads) const {
    const Index half = rotary_dim_ / 2;
    const T* POSENC_RESTRICT c = cs;
    const T* POSENC_RESTRICT s = cs + half;
    if (options_.layout == RotaryLayout::half) {
      for (Index h = 0; h < heads; ++h) {
        T* POSENC_RESTRICT a = x + h * head_dim_;
        T* POSENC_RESTRICT b = a + half;
        for (Index i = 0; i < half; ++i) {
          const T xa = a[i], xb = b[i];
          a[i] = xa * c[i] - xb * s[i];
          b[i] = xb * c[i] + xa * s[i];
        }
      }
    } else {
      for (Index h = 0; h < heads; ++h) {
        T* POSENC_RESTRICT xh = x + h * head_dim_;
        for (Index i = 0; i < half; ++i) {
          const T xa = xh[2 * i], xb = xh[2 * i + 1];
          xh[2 * i] = xa * c[i] - xb * s[i];
          xh[2 * i + 1] = xb * c[i] + xa * s[i];
        }
      }
    }
  }

  Index head_dim_;
  Index rotary_dim_ = 0;
  RotaryOptions options_;
  std::vector<double> base_inv_freq_, static_inv_freq_, long_inv_freq_;
  detail::RowCache<T> cache_, long_cache_;
};

POSENC_NAMESPACE_END
