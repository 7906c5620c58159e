// posenc: rotary position embedding, RoPE (Su et al. 2021), with partial rotary width, both
// pair layouts and the context-extension scalings of Hugging Face's `rope_type`.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "detail/half_storage.hpp"
#include "detail/parallel.hpp"
#include "detail/restrict.hpp"
#include "detail/row_cache.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

/// Which dimensions form a rotated pair: `half` (i, i + R/2), GPT-NeoX and Hugging Face
/// LLaMA's rotate_half; `interleaved` (2i, 2i+1), RoFormer, GPT-J and Meta's LLaMA.
enum class RotaryLayout { half, interleaved };

/// Context-extension scalings (conventions.md section 3), each changing inv_freq and an
/// output factor only.
enum class RopeScaling { none, linear, ntk, dynamic, yarn, llama3, longrope, proportional };

/// Where a head's R rotated dimensions sit: its first R (`leading`, the usual partial rotary) or
/// its last R (`trailing`: DeepSeek's MLA, whose q_pe / k_pe part follows the nope part).
enum class RotaryBlock { leading, trailing };

template <>
struct enum_names<RotaryLayout> {
  static constexpr std::array<std::pair<std::string_view, RotaryLayout>, 2> table{
      {{"half", RotaryLayout::half}, {"interleaved", RotaryLayout::interleaved}}};
};
/// Hugging Face's rope_type names (its "default" is none); ntk is not a Hugging Face rope_type
/// (conventions.md section 3).
template <>
struct enum_names<RopeScaling> {
  static constexpr std::array<std::pair<std::string_view, RopeScaling>, 8> table{
      {{"none", RopeScaling::none},
       {"linear", RopeScaling::linear},
       {"ntk", RopeScaling::ntk},
       {"dynamic", RopeScaling::dynamic},
       {"yarn", RopeScaling::yarn},
       {"llama3", RopeScaling::llama3},
       {"longrope", RopeScaling::longrope},
       {"proportional", RopeScaling::proportional}}};
};
template <>
struct enum_names<RotaryBlock> {
  static constexpr std::array<std::pair<std::string_view, RotaryBlock>, 2> table{
      {{"leading", RotaryBlock::leading}, {"trailing", RotaryBlock::trailing}}};
};

struct RotaryOptions {
  double base = 10000.0;
  /// R: rotated dimensions per head (even, <= head_dim); 0 means all of them.
  Index rotary_dim = 0;
  RotaryLayout layout = RotaryLayout::half;
  /// Which R dimensions of each head rotate (conventions.md 3b).
  RotaryBlock block = RotaryBlock::leading;
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
  /// longrope: the attention factors of the short and the long set (Phi-3-small's
  /// short_mscale / long_mscale), used instead of the single attention factor when given.
  std::optional<double> short_mscale;
  std::optional<double> long_mscale;
  /// proportional (Gemma 4's full-attention layers, Hugging Face
  /// _compute_proportional_rope_parameters): the share p of each head's frequencies that rotate.
  double partial_rotary_factor = 1.0;
  /// Frequency factors ff [R/2] (ggml's freq_factors, GGUF's rope_freqs tensor; conventions.md
  /// 3b): inv_freq_i /= ff_i after the scaling. Empty: none.
  std::vector<double> freq_factors;
};

/// Multi-axis positions [A, N] (conventions.md 3c): row a holds axis a of every token.
using AxisPositions = Eigen::Matrix<std::int64_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A frequency set and its attention factor: what a rotation by p * inv_freq_i uses
/// (RotaryEncoding::frequencies gives the set of a call).
struct RotaryFrequencies {
  std::vector<double> inv_freq;
  double attention_factor = 1.0;

  friend bool operator==(const RotaryFrequencies& a, const RotaryFrequencies& b) {
    return a.inv_freq == b.inv_freq && a.attention_factor == b.attention_factor;
  }
  friend bool operator!=(const RotaryFrequencies& a, const RotaryFrequencies& b) {
    return !(a == b);
  }
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
      : RotaryEncoding(head_dim, std::move(options), {}) {}

  /// With its own frequency ladder `ladder` [R/2] in place of base^(-2i/R) (e.g. axial
  /// multi-axis RoPE's per-axis ladders, conventions.md 3c); the scalings that only transform
  /// the ladder (none, linear, yarn, llama3) and freq_factors apply to it. Empty: the usual one.
  RotaryEncoding(Index head_dim, RotaryOptions options, std::vector<double> ladder)
      : head_dim_(head_dim), options_(std::move(options)) {
    validate();
    rotary_dim_ = options_.rotary_dim == 0 ? head_dim_ : options_.rotary_dim;
    const Index half = rotary_dim_ / 2;
    const double r = static_cast<double>(rotary_dim_);
    base_inv_freq_.resize(static_cast<std::size_t>(half));
    for (Index i = 0; i < half; ++i)
      base_inv_freq_[static_cast<std::size_t>(i)] =
          std::pow(options_.base, -2.0 * static_cast<double>(i) / r);
    if (!ladder.empty()) {
      const RopeScaling s = options_.scaling;
      detail::require(s == RopeScaling::none || s == RopeScaling::linear ||
                          s == RopeScaling::yarn || s == RopeScaling::llama3,
                      "RotaryEncoding: a frequency ladder of its own works with scalings none, "
                      "linear, yarn and llama3, not ",
                      name_of(s), " (which derives its frequencies from the base)");
      detail::require(static_cast<Index>(ladder.size()) == half, "RotaryEncoding: the ladder has ",
                      ladder.size(), " entries, expected rotary_dim / 2 = ", half);
      for (std::size_t i = 0; i < ladder.size(); ++i)
        detail::require(std::isfinite(ladder[i]) && ladder[i] > 0.0, "RotaryEncoding: ladder[", i,
                        "] = ", ladder[i], " must be finite and > 0");
      base_inv_freq_ = std::move(ladder);
    }
    static_inv_freq_ = compute_inv_freq(0.0, false);
    check_derived(static_inv_freq_, options_.scaling == RopeScaling::longrope ? "short" : "");
    if (options_.scaling == RopeScaling::longrope) {
      long_inv_freq_ = compute_inv_freq(0.0, true);
      check_derived(long_inv_freq_, "long");
    }
    for (const bool long_set : {false, true}) {
      const double af = set_factor(long_set);
      detail::require(
          std::isfinite(af) && af > 0.0 && af <= static_cast<double>(std::numeric_limits<T>::max()),
          "RotaryEncoding: the attention factor ", af,
          " must be finite, > 0 and representable in the scalar type (at most ",
          static_cast<double>(std::numeric_limits<T>::max()), ")");
    }
    block_offset_ = options_.block == RotaryBlock::trailing ? head_dim_ - rotary_dim_ : 0;
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

  /// The frequency set and attention factor of a call whose largest position is max_position
  /// (conventions.md section 3: only dynamic and longrope depend on it).
  RotaryFrequencies frequencies(std::int64_t max_position = 0) const {
    return {inv_freq(max_position),
            set_factor(options_.scaling == RopeScaling::longrope && uses_long(max_position))};
  }

  /// The factor applied to the rotated dimensions (yarn, longrope; 1 otherwise) by a call below
  /// the original context; longrope with short_mscale and long_mscale uses long_mscale past it
  /// (frequencies(max_position) has the factor of each call).
  double attention_factor() const { return set_factor(false); }

 private:
  double set_factor(bool long_set) const {
    if (options_.scaling == RopeScaling::longrope && options_.short_mscale)
      return long_set ? *options_.long_mscale : *options_.short_mscale;
    return default_factor();
  }

  double default_factor() const {
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

 public:
  /// Rotates x [N, heads * head_dim] in place, row i at position pos[i]; every head's first
  /// R dimensions rotate, the rest pass through.
  void rotate(MatrixRef<T> x, const Positions& pos, Index heads) const {
    check_rows("", x, pos, heads);
    if (pos.empty()) return;
    const std::int64_t pmax = pos.max();
    const bool dyn_long = options_.scaling == RopeScaling::dynamic && uses_long(pmax);
    const bool long_set = options_.scaling == RopeScaling::longrope && uses_long(pmax);
    const std::vector<double>& freq = long_set ? long_inv_freq_ : static_inv_freq_;
    const double af = set_factor(long_set);
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
  /// Rotates x [N, heads * head_dim] kept as bfloat16 in place: each pair widened exactly,
  /// rotated in double with angles in double (the call's frequency set and attention factor,
  /// as rotate), and each output rounded once to bfloat16 (to nearest, ties to even).
  void rotate(MatrixRef<Eigen::bfloat16> x, const Positions& pos, Index heads) const {
    rotate_stored(x, pos, heads);
  }
  /// As above, for x kept as IEEE half (binary16).
  void rotate(MatrixRef<Eigen::half> x, const Positions& pos, Index heads) const {
    rotate_stored(x, pos, heads);
  }
  /// Single-head form: x is [N, head_dim].
  void rotate(MatrixRef<T> x, const Positions& pos) const {
    rotate(x, pos, 1);
  }

  /// Rotates with a given frequency set instead of the call's own: R(p * f.inv_freq) times
  /// f.attention_factor.
  void rotate(MatrixRef<T> x, const Positions& pos, Index heads, const RotaryFrequencies& f) const {
    check_rows("::rotate", x, pos, heads);
    check_frequencies("rotate", f);
    rotate_by(x, heads, f.attention_factor,
              [&](Index i, std::size_t j) { return static_cast<double>(pos[i]) * f.inv_freq[j]; });
  }

  /// The inverse rotation R(-theta) divided by the attention factor (conventions.md 3b): undoes
  /// rotate(x, pos, heads) to rounding, with the frequency set of a call whose largest position
  /// is pos.max() (or of f when given).
  void unrotate(MatrixRef<T> x, const Positions& pos, Index heads) const {
    check_rows("::unrotate", x, pos, heads);
    if (pos.empty()) return;
    unrotate(x, pos, heads, frequencies(pos.max()));
  }
  void unrotate(MatrixRef<T> x, const Positions& pos, Index heads,
                const RotaryFrequencies& f) const {
    check_rows("::unrotate", x, pos, heads);
    check_frequencies("unrotate", f);
    rotate_by(x, heads, 1.0 / f.attention_factor,
              [&](Index i, std::size_t j) { return -static_cast<double>(pos[i]) * f.inv_freq[j]; });
  }

  /// The transpose of rotate(x, pos, heads), for gradients (conventions.md section 7): R(-theta)
  /// times the attention factor, with the call's frequency set (that of pos.max()).
  void rotate_backward(MatrixRef<T> g, const Positions& pos, Index heads) const {
    check_rows("::rotate_backward", g, pos, heads);
    if (pos.empty()) return;
    const RotaryFrequencies f = frequencies(pos.max());
    rotate_by(g, heads, f.attention_factor,
              [&](Index i, std::size_t j) { return -static_cast<double>(pos[i]) * f.inv_freq[j]; });
  }

  /// The transpose of rotate_axes (its gradient): R(-theta) times the attention factor.
  void rotate_axes_backward(MatrixRef<T> g, const Eigen::Ref<const AxisPositions>& axes,
                            Index heads, const std::vector<Index>& axis_of) const {
    // R(-theta) = J R(theta) J, J negating the second element of every pair.
    flip_second(g, heads);
    rotate_axes(g, axes, heads, axis_of);
    flip_second(g, heads);
  }

  /// Moves rows rotated at positions pos (with the set f) to positions pos + delta
  /// (conventions.md 3d): R(theta(p + delta)) = R(delta * inv_freq) R(theta(p)), one rotation by
  /// delta * f.inv_freq; the attention factor is unchanged. Every p + delta must be >= 0.
  void shift(MatrixRef<T> x, const Positions& pos, Index heads, std::int64_t delta,
             const RotaryFrequencies& f) const {
    check_rows("::shift", x, pos, heads);
    check_frequencies("shift", f);
    if (pos.empty()) return;
    const std::int64_t lo = pos.min(), hi = pos.max();
    detail::require(detail::add_fits(lo, delta) && lo + delta >= 0 && detail::add_fits(hi, delta),
                    "RotaryEncoding::shift: positions ", lo, " .. ", hi,
                    " shifted by delta = ", delta, " leave [0, INT64_MAX]");
    const double d = static_cast<double>(delta);
    rotate_by(x, heads, 1.0, [&](Index, std::size_t j) { return d * f.inv_freq[j]; });
  }

  /// Changes rows rotated at positions pos with the set `from` into rows rotated with `to`
  /// (conventions.md 3d): a rotation by p * (to.inv_freq - from.inv_freq), angles in double,
  /// then the factor to.attention_factor / from.attention_factor.
  void rerotate(MatrixRef<T> x, const Positions& pos, Index heads, const RotaryFrequencies& from,
                const RotaryFrequencies& to) const {
    check_rows("::rerotate", x, pos, heads);
    check_frequencies("rerotate", from);
    check_frequencies("rerotate", to);
    if (from == to) return;
    rotate_by(x, heads, to.attention_factor / from.attention_factor, [&](Index i, std::size_t j) {
      return static_cast<double>(pos[i]) * (to.inv_freq[j] - from.inv_freq[j]);
    });
  }

  /// The key-cache hook (conventions.md 3d's rule): rows x (queries or keys) rotated by a call
  /// whose largest position was from_max_position become rows rotated by a call whose largest
  /// position is to_max_position. Nothing changes unless the scaling picks its set by length
  /// (dynamic, longrope) and the two lengths pick different sets.
  /// Multi-axis rotation (conventions.md 3c): frequency index i of row r turns by
  /// axes(axis_of[i], r) * inv_freq_i, pairs and layout as in rotate; axes is [A, N] (row a holds
  /// axis a of every token), axis_of has R/2 entries in [0, A). The call's set is that of its
  /// largest position over all axes (so scalings that depend on the length are refused).
  void rotate_axes(MatrixRef<T> x, const Eigen::Ref<const AxisPositions>& axes, Index heads,
                   const std::vector<Index>& axis_of) const {
    detail::require(
        options_.scaling != RopeScaling::dynamic && options_.scaling != RopeScaling::longrope,
        "RotaryEncoding::rotate_axes: multi-axis positions with scaling ",
        name_of(options_.scaling), ", whose frequencies depend on the length, are not defined");
    const Index n = x.rows(), half = rotary_dim_ / 2;
    detail::require(heads > 0 && x.cols() == detail::checked_mul(heads, head_dim_, "heads * Dh"),
                    "RotaryEncoding::rotate_axes: input is [", x.rows(), ", ", x.cols(),
                    "], expected [N, heads * head_dim] with heads = ", heads,
                    ", head_dim = ", head_dim_);
    detail::require(axes.cols() == n && axes.rows() > 0,
                    "RotaryEncoding::rotate_axes: positions are [", axes.rows(), ", ", axes.cols(),
                    "], expected [A, N] with N = ", n);
    detail::require(static_cast<Index>(axis_of.size()) == half,
                    "RotaryEncoding::rotate_axes: axis_of has ", axis_of.size(),
                    " entries, expected rotary_dim / 2 = ", half);
    for (std::size_t i = 0; i < axis_of.size(); ++i)
      detail::require(axis_of[i] >= 0 && axis_of[i] < axes.rows(),
                      "RotaryEncoding::rotate_axes: axis_of[", i, "] = ", axis_of[i],
                      " is not an axis of [0, ", axes.rows(), ")");
    if (n == 0) return;
    const std::int64_t pmin = axes.minCoeff(), pmax = axes.maxCoeff();
    detail::require(pmin >= 0, "RotaryEncoding::rotate_axes: position ", pmin, " is negative");
    const std::vector<double>& freq = static_inv_freq_;
    const double af = set_factor(false);
    // Each token gathers its cos/sin entries from the cached rows of its axes' positions.
    if (pmax < max_extent) {
      auto table =
          cache_.get(freq, static_cast<Index>(pmax) + 1, rotary_dim_,
                     [&](Index p0, Index p1, MatrixRef<T> out) {
                       for (Index p = p0; p < p1; ++p)
                         cos_sin_row(static_cast<double>(p), freq, af, out.row(p - p0).data());
                     });
      if (table) {
        const T* rows = table->rows.data();
        const Index ldt = table->rows.outerStride();
#if defined(_OPENMP)
#pragma omp parallel if (n > 1 && n * x.cols() >= (Index(1) << 17))
#endif
        {
          Vector<T> cs(rotary_dim_);
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
          for (Index r = 0; r < n; ++r) {
            for (Index i = 0; i < half; ++i) {
              const T* row = rows + axes(axis_of[static_cast<std::size_t>(i)], r) * ldt;
              cs[i] = row[i];
              cs[half + i] = row[half + i];
            }
            rotate_row(x.row(r).data(), cs.data(), heads);
          }
        }
        return;
      }
    }
    rotate_by(x, heads, af, [&](Index r, std::size_t i) {
      return static_cast<double>(axes(axis_of[i], r)) * freq[i];
    });
  }

  void rerotate_for(MatrixRef<T> x, const Positions& pos, Index heads,
                    std::int64_t from_max_position, std::int64_t to_max_position) const {
    if (options_.scaling != RopeScaling::dynamic && options_.scaling != RopeScaling::longrope)
      return;
    rerotate(x, pos, heads, frequencies(from_max_position), frequencies(to_max_position));
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
    stored_cache_.set_max_elements(n);
  }

 private:
  // The rows x [N, heads * head_dim] of positions pos; `who` follows "RotaryEncoding" in
  // messages ("" for rotate, "::shift", ...).
  template <class X>
  void check_rows(const char* who, const X& x, const Positions& pos, Index heads) const {
    detail::require(heads > 0, "RotaryEncoding", who, ": heads = ", heads, " must be > 0");
    const Index width = detail::checked_mul(heads, head_dim_, "RotaryEncoding: heads * head_dim");
    detail::require(x.rows() == pos.size() && x.cols() == width, "RotaryEncoding", who,
                    ": input is [", x.rows(), ", ", x.cols(), "], expected [", pos.size(), ", ",
                    width, "] (positions x heads*head_dim, heads = ", heads,
                    ", head_dim = ", head_dim_, ")");
  }

  void check_frequencies(const char* who, const RotaryFrequencies& f) const {
    detail::require(static_cast<Index>(f.inv_freq.size()) == rotary_dim_ / 2,
                    "RotaryEncoding::", who, ": the frequency set has ", f.inv_freq.size(),
                    " entries, expected rotary_dim / 2 = ", rotary_dim_ / 2);
    for (std::size_t i = 0; i < f.inv_freq.size(); ++i)
      detail::require(std::isfinite(f.inv_freq[i]), "RotaryEncoding::", who, ": inv_freq[", i,
                      "] = ", f.inv_freq[i], " is not finite");
    detail::require(std::isfinite(f.attention_factor) && f.attention_factor > 0.0,
                    "RotaryEncoding::", who, ": attention factor ", f.attention_factor,
                    " must be finite and > 0");
  }

  // Rotates every row i by the angles angle(i, j), j < R/2 (computed in double), times factor:
  // one cos/sin row per token, applied to every head.
  template <class Angle>
  void rotate_by(MatrixRef<T> x, Index heads, double factor, Angle&& angle) const {
    const Index n = x.rows();
    const std::size_t half = static_cast<std::size_t>(rotary_dim_ / 2);
#if defined(_OPENMP)
#pragma omp parallel if (n > 1 && n * x.cols() >= (Index(1) << 15))
#endif
    {
      Vector<T> cs(rotary_dim_);
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (Index i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < half; ++j) {
          const double a = angle(i, j);
          cs[static_cast<Index>(j)] = static_cast<T>(factor * std::cos(a));
          cs[static_cast<Index>(half + j)] = static_cast<T>(factor * std::sin(a));
        }
        rotate_row(x.row(i).data(), cs.data(), heads);
      }
    }
  }

  static double yarn_g(double s, double m) {
    return s <= 1.0 ? 1.0 : 0.1 * m * std::log(s) + 1.0;
  }

  // L = max_position + 1 > M, written so that max_position = INT64_MAX does not wrap.
  bool uses_long(std::int64_t max_position) const {
    return max_position >= *options_.original_max_positions;
  }

  // Gemma 4's rope_angles = int(p * head_dim // 2) (Hugging Face).
  std::size_t proportional_angles() const {
    return static_cast<std::size_t>(
        std::floor(options_.partial_rotary_factor * static_cast<double>(head_dim_) / 2.0));
  }

  // Derived frequencies must be finite and > 0 (a factor of 1e-320 passes the check of the
  // factor itself and turns inv_freq / factor into inf).
  void check_derived(const std::vector<double>& f, const char* set) const {
    const std::size_t positive =
        options_.scaling == RopeScaling::proportional ? proportional_angles() : f.size();
    for (std::size_t i = 0; i < positive; ++i)
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
        s == RopeScaling::yarn ||
        (s == RopeScaling::longrope && !o.attention_factor && !o.short_mscale))
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
    if (o.short_mscale || o.long_mscale) {
      detail::require(s == RopeScaling::longrope,
                      "RotaryEncoding: short_mscale and long_mscale apply to longrope, not to "
                      "scaling ",
                      name);
      detail::require(o.short_mscale.has_value() && o.long_mscale.has_value(),
                      "RotaryEncoding: short_mscale and long_mscale must be given together");
      detail::require(!o.attention_factor,
                      "RotaryEncoding: attention_factor and short_mscale / long_mscale both set "
                      "the attention factor: give one");
      for (const double m : {*o.short_mscale, *o.long_mscale})
        detail::require(std::isfinite(m) && m > 0.0,
                        "RotaryEncoding: short_mscale / long_mscale = ", m,
                        " must be finite and > 0");
    }
    detail::require(std::isfinite(o.partial_rotary_factor) && o.partial_rotary_factor >= 0.0 &&
                        o.partial_rotary_factor <= 1.0,
                    "RotaryEncoding: partial_rotary_factor = ", o.partial_rotary_factor,
                    " must be in [0, 1]");
    if (s == RopeScaling::proportional)
      detail::require(r == head_dim_,
                      "RotaryEncoding: proportional pairs dimensions (i, i + head_dim/2) over the "
                      "whole head: rotary_dim = ",
                      r, " must be head_dim = ", head_dim_,
                      " (partial_rotary_factor chooses the rotated share)");
    else
      detail::require(o.partial_rotary_factor == 1.0,
                      "RotaryEncoding: partial_rotary_factor = ", o.partial_rotary_factor,
                      " applies to scaling proportional (use rotary_dim with scaling ", name, ")");
    if (!o.freq_factors.empty()) {
      detail::require(static_cast<Index>(o.freq_factors.size()) == r / 2,
                      "RotaryEncoding: freq_factors has ", o.freq_factors.size(),
                      " entries, expected rotary_dim / 2 = ", r / 2);
      for (std::size_t i = 0; i < o.freq_factors.size(); ++i)
        detail::require(std::isfinite(o.freq_factors[i]) && o.freq_factors[i] > 0.0,
                        "RotaryEncoding: freq_factors[", i, "] = ", o.freq_factors[i],
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
      // Equal factors leave no band between the kept and the divided frequencies (Llama 4).
      detail::require(std::isfinite(o.high_freq_factor) && o.high_freq_factor >= o.low_freq_factor,
                      "RotaryEncoding: high_freq_factor = ", o.high_freq_factor,
                      " must be finite and >= low_freq_factor = ", o.low_freq_factor);
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
          } else if (o.high_freq_factor > o.low_freq_factor) {
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
      case RopeScaling::proportional: {
        // Hugging Face _compute_proportional_rope_parameters (Gemma 4): R = Dh; the first
        // floor(p Dh / 2) frequencies base^(-2i/Dh), the others 0 (those pairs stay in place),
        // all divided by factor (default 1).
        const std::size_t angles = proportional_angles();
        for (std::size_t i = 0; i < half; ++i)
          f[i] = i < angles ? f[i] / o.factor.value_or(1.0) : 0.0;
        break;
      }
    }
    // Frequency factors (ggml freq_factors, GGUF rope_freqs; conventions.md 3b), after the
    // scaling.
    for (std::size_t i = 0; i < o.freq_factors.size(); ++i)
      f[i] /= o.freq_factors[i];
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

  // Negates the second element of every rotated pair of every row and head (J of
  // rotate_axes_backward).
  void flip_second(MatrixRef<T> x, Index heads) const {
    const Index half = rotary_dim_ / 2;
    for (Index r = 0; r < x.rows(); ++r)
      for (Index h = 0; h < heads; ++h) {
        T* xh = x.row(r).data() + h * head_dim_ + block_offset_;
        for (Index i = 0; i < half; ++i) {
          T& b = options_.layout == RotaryLayout::half ? xh[half + i] : xh[2 * i + 1];
          b = -b;
        }
      }
  }

  // rotate on half-precision storage: cos/sin of the row in double, one rounding per output
  // of the exact rotation of the stored pair. A head at a time: the pairs rotated in float
  // (the inputs are exact in float; cos and sin rounded to float) with an error bound E per
  // output, and the float result o rounded to S. Rounding is monotone, so where o - E and
  // o + E round to the same S value the exact rotation does too; elsewhere (within E of a
  // midpoint of S, about one output in 2^14, and NaN or infinity) the output is the double
  // rotation rounded once (detail::round_to).
  template <class S>
  void rotate_stored(MatrixRef<S> x, const Positions& pos, Index heads) const {
    check_rows("", x, pos, heads);
    if (pos.empty()) return;
    const std::int64_t pmax = pos.max();
    const RotaryFrequencies f = frequencies(pmax);
    const Index half = rotary_dim_ / 2, n = pos.size();
    // row of position p: attention_factor (cos, sin)(p inv_freq_i), in double
    const auto fill_row = [&](double p, double* cs) {
      for (Index i = 0; i < half; ++i) {
        const double a = p * f.inv_freq[static_cast<std::size_t>(i)];
        cs[i] = f.attention_factor * std::cos(a);
        cs[half + i] = f.attention_factor * std::sin(a);
      }
    };
    // Rows 0 .. pmax cached in double for the frequency set and factor of this call, as the
    // float path caches its own (a dynamic-NTK base past the original context changes with
    // every length: computed per call instead).
    std::shared_ptr<const detail::RowCache<double>::Table> table;
    const bool dyn_long = options_.scaling == RopeScaling::dynamic && uses_long(pmax);
    if (!dyn_long && pmax < max_extent) {
      std::vector<double> key = f.inv_freq;
      key.push_back(f.attention_factor);
      table = stored_cache_.get(key, static_cast<Index>(pmax) + 1, rotary_dim_,
                                [&](Index p0, Index p1, MatrixRef<double> out) {
                                  for (Index p = p0; p < p1; ++p)
                                    fill_row(static_cast<double>(p), out.row(p - p0).data());
                                });
    }
    const bool split = options_.layout == RotaryLayout::half;
    using FloatMap = Eigen::Map<Eigen::Array<float, Eigen::Dynamic, 1>>;
    detail::parallel_region(n > 1 && n * x.cols() >= (Index(1) << 17), 0, [&] {
      const auto rd = static_cast<std::size_t>(rotary_dim_);
      std::vector<double> own(table ? 0 : rd);
      std::vector<float> w(rd), csf(rd), o(rd), mag(rd), bound(rd);
      std::vector<std::uint16_t> out(rd), lo(rd), hi(rd);
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
      for (Index r = 0; r < n; ++r) {
        const double* cs;
        if (table) {
          cs = table->rows.data() + pos[r] * table->rows.outerStride();
        } else {
          fill_row(static_cast<double>(pos[r]), own.data());
          cs = own.data();
        }
        for (Index i = 0; i < rotary_dim_; ++i)
          csf[static_cast<std::size_t>(i)] = static_cast<float>(cs[i]);
        S* row = x.row(r).data();
        for (Index h = 0; h < heads; ++h) {
          S* xh = row + h * head_dim_ + block_offset_;
          detail::widen_rows(xh, rotary_dim_, 1, rotary_dim_, w.data(), rotary_dim_);
          // o = the rotation in float; mag = (|x_a| + |x_b|)(|c| + |s|) bounds both products'
          // magnitudes. With the roundings of c, s, the two products and the sum (each at most
          // 2^-24 relative), |o - exact| <= 2^-24 (3 mag + |o|) < E = 2^-21 (mag + |o|), a
          // margin that also covers the rounding of o -+ E below.
          const float* POSENC_RESTRICT in = w.data();
          const float* POSENC_RESTRICT pc = csf.data();
          const float* POSENC_RESTRICT ps = csf.data() + half;
          float* POSENC_RESTRICT po = o.data();
          float* POSENC_RESTRICT pm = mag.data();
          if (split) {  // pairs (i, half + i): array expressions, which Eigen vectorises
            using ConstMap = Eigen::Map<const Eigen::Array<float, Eigen::Dynamic, 1>>;
            const ConstMap a(in, half), bv(in + half, half), c(pc, half), sn(ps, half);
            FloatMap(mag.data(), half) = (a.abs() + bv.abs()) * (c.abs() + sn.abs());
            FloatMap(mag.data() + half, half) = FloatMap(mag.data(), half);
            FloatMap(po, half) = a * c - bv * sn;
            FloatMap(po + half, half) = bv * c + a * sn;
          } else {  // pairs (2i, 2i + 1)
            for (Index i = 0; i < half; ++i) {
              const float xa = in[2 * i], xb = in[2 * i + 1];
              const float m =
                  (std::fabs(xa) + std::fabs(xb)) * (std::fabs(pc[i]) + std::fabs(ps[i]));
              po[2 * i] = xa * pc[i] - xb * ps[i];
              po[2 * i + 1] = xb * pc[i] + xa * ps[i];
              pm[2 * i] = m;
              pm[2 * i + 1] = m;
            }
          }
          const FloatMap of(o.data(), rotary_dim_), mf(mag.data(), rotary_dim_);
          FloatMap b(bound.data(), rotary_dim_);
          const float unit = std::ldexp(1.0f, -21);
          detail::narrow_bits<S>(o.data(), out.data(), rotary_dim_);
          b = of - unit * (mf + of.abs());
          detail::narrow_bits<S>(b.data(), lo.data(), rotary_dim_);
          b = of + unit * (mf + of.abs());
          detail::narrow_bits<S>(b.data(), hi.data(), rotary_dim_);
          // the outputs whose bounds round apart, or NaN
          int apart = 0;
          for (Index k = 0; k < rotary_dim_; ++k)
            apart |=
                static_cast<int>(lo[static_cast<std::size_t>(k)] !=
                                 hi[static_cast<std::size_t>(k)]) |
                static_cast<int>(o[static_cast<std::size_t>(k)] != o[static_cast<std::size_t>(k)]);
          std::memcpy(static_cast<void*>(xh), out.data(), rd * sizeof(S));
          if (apart)
            for (Index k = 0; k < rotary_dim_; ++k) {
              const auto kk = static_cast<std::size_t>(k);
              if (lo[kk] == hi[kk] && o[kk] == o[kk]) continue;
              const Index i = split ? k % half : k / 2;
              const bool second = split ? k >= half : (k & 1) != 0;
              const double xa = in[split ? i : 2 * i], xb = in[split ? half + i : 2 * i + 1];
              xh[k] = detail::round_to<S>(second ? xb * cs[i] + xa * cs[half + i]
                                                 : xa * cs[i] - xb * cs[half + i]);
            }
        }
      }
    });
  }

  // One token: every head's pairs rotated by the row's cos/sin. Straight-line loops over
  // restrict-qualified pointers, which the compiler vectorises.
  void rotate_row(T* x, const T* cs, Index heads) const {
    const Index half = rotary_dim_ / 2;
    const T* POSENC_RESTRICT c = cs;
    const T* POSENC_RESTRICT s = cs + half;
    if (options_.layout == RotaryLayout::half) {
      for (Index h = 0; h < heads; ++h) {
        T* POSENC_RESTRICT a = x + h * head_dim_ + block_offset_;
        T* POSENC_RESTRICT b = a + half;
        for (Index i = 0; i < half; ++i) {
          const T xa = a[i], xb = b[i];
          a[i] = xa * c[i] - xb * s[i];
          b[i] = xb * c[i] + xa * s[i];
        }
      }
    } else {
      for (Index h = 0; h < heads; ++h) {
        T* POSENC_RESTRICT xh = x + h * head_dim_ + block_offset_;
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
  Index block_offset_ = 0;  // the first rotated dimension of a head
  RotaryOptions options_;
  std::vector<double> base_inv_freq_, static_inv_freq_, long_inv_freq_;
  detail::RowCache<T> cache_, long_cache_;
  // cos/sin in double for rotations of bfloat16 / half storage
  detail::RowCache<double> stored_cache_;
};

POSENC_NAMESPACE_END
