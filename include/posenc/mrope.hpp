// posenc: multi-axis RoPE (M-RoPE; conventions.md 3c): Qwen2-VL / Qwen2.5-VL (chunked sections),
// Qwen3-VL (interleaved sections) and 2D vision RoPE (axial).
#pragma once

#include <memory>
#include <numeric>
#include <vector>

#include "rope.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

/// Which axis each frequency index takes its angle from (conventions.md 3c).
///   chunked:     the first s_0 frequencies use axis 0, the next s_1 axis 1, ... (Qwen2-VL)
///   interleaved: a(i) = 1 if i mod 3 = 1 and i < 3 s_1; 2 if i mod 3 = 2 and i < 3 s_2; else 0
///                (Qwen3-VL)
///   axial:       A equal blocks of R/(2A) frequencies, each axis with its own ladder
///                base^(-2j/(R/A)) (the Qwen2-VL vision tower, ViT-style 2D RoPE)
enum class MropeLayout { chunked, interleaved, axial };

template <>
struct enum_names<MropeLayout> {
  static constexpr std::array<std::pair<std::string_view, MropeLayout>, 3> table{
      {{"chunked", MropeLayout::chunked},
       {"interleaved", MropeLayout::interleaved},
       {"axial", MropeLayout::axial}}};
};

struct MultiAxisRotaryOptions {
  /// The RoPE of every axis: base, rotary_dim, pair layout, block, a scaling that does not depend
  /// on the length.
  RotaryOptions rope;
  MropeLayout layout = MropeLayout::chunked;
  /// Hugging Face's mrope_section [s_0, ..., s_{A-1}] (chunked: sum R/2; interleaved: three
  /// sections, s_1 and s_2 at most R/6 each). axial: empty, with `axes` giving A.
  std::vector<Index> sections;
  /// axial: the number of axes A (R/(2A) frequencies each).
  Index axes = 2;
};

/// RoPE whose positions have A axes per token: theta_i = p[a(i)] * inv_freq_i. With every axis of
/// a token at the same position, chunked and interleaved equal 1D RoPE (tested).
template <class T>
class MultiAxisRotaryEncoding {
 public:
  using Scalar = T;

  MultiAxisRotaryEncoding(Index head_dim, MultiAxisRotaryOptions options)
      : options_(std::move(options)), rope_(make_rope(head_dim, options_)) {
    axis_of_ = axis_map(rope_.rotary_dim() / 2, options_);
  }

  Index head_dim() const { return rope_.head_dim(); }
  Index rotary_dim() const { return rope_.rotary_dim(); }
  /// A, the number of axes.
  Index axes() const { return axes_count(options_); }
  const MultiAxisRotaryOptions& options() const { return options_; }
  /// The axis of each frequency index.
  const std::vector<Index>& axis_of() const { return axis_of_; }
  /// The underlying rotation (its inv_freq is the concatenated ladders for axial).
  const RotaryEncoding<T>& rope() const { return rope_; }

  /// Rotates x [N, heads * head_dim] with positions [A, N] (row a: axis a of every token).
  void rotate(MatrixRef<T> x, const Eigen::Ref<const AxisPositions>& positions, Index heads) const {
    detail::require(positions.rows() == axes(), "MultiAxisRotaryEncoding: positions have ",
                    positions.rows(), " axes, the encoder ", axes());
    rope_.rotate_axes(x, positions, heads, axis_of_);
  }

  /// The transpose of rotate(x, positions, heads), for gradients.
  void rotate_backward(MatrixRef<T> g, const Eigen::Ref<const AxisPositions>& positions,
                       Index heads) const {
    detail::require(positions.rows() == axes(), "MultiAxisRotaryEncoding: positions have ",
                    positions.rows(), " axes, the encoder ", axes());
    rope_.rotate_axes_backward(g, positions, heads, axis_of_);
  }

  /// The encoder the attention kernel takes: token i of a call at (sequence) position p uses
  /// column p - first of `table` [A, L] as its axis positions, so causal masks, windows and the
  /// KV cache work on sequence positions while the rotation uses the axes. Decoding binds a
  /// table that covers every position so far.
  class Bound {
   public:
    using Scalar = T;
    void rotate(MatrixRef<T> x, const Positions& pos, Index heads) const {
      enc_->rotate(x, axes_of(pos), heads);
    }
    /// The transpose of rotate (its gradient).
    void rotate_backward(MatrixRef<T> g, const Positions& pos, Index heads) const {
      enc_->rotate_backward(g, axes_of(pos), heads);
    }
    void check(const AttentionShape& shape) const {
      detail::require(shape.head_dim == enc_->head_dim(),
                      "MultiAxisRotaryEncoding: head_dim = ", enc_->head_dim(),
                      " does not match the attention's head size Dh = ", shape.head_dim);
    }
    const AxisPositions& table() const { return *table_; }

   private:
    // The axis positions [A, N] of sequence positions pos: their columns of the table.
    AxisPositions axes_of(const Positions& pos) const {
      AxisPositions cols(table_->rows(), pos.size());
      for (Index i = 0; i < pos.size(); ++i) {
        const std::int64_t c = detail::saturating_sub(pos[i], first_);
        detail::require(c >= 0 && c < table_->cols(), "MultiAxisRotaryEncoding: position ", pos[i],
                        " is outside the bound table of columns ", first_, " .. ",
                        first_ + table_->cols() - 1);
        cols.col(i) = table_->col(static_cast<Index>(c));
      }
      return cols;
    }
    friend class MultiAxisRotaryEncoding;
    Bound(std::shared_ptr<const MultiAxisRotaryEncoding> enc,
          std::shared_ptr<const AxisPositions> table, std::int64_t first)
        : enc_(std::move(enc)), table_(std::move(table)), first_(first) {}
    std::shared_ptr<const MultiAxisRotaryEncoding> enc_;
    std::shared_ptr<const AxisPositions> table_;
    std::int64_t first_ = 0;
  };

  /// A kernel encoder over a copy of `table` [A, L] whose column 0 is sequence position `first`.
  Bound bind(const Eigen::Ref<const AxisPositions>& table, std::int64_t first = 0) const {
    detail::require(table.rows() == axes(), "MultiAxisRotaryEncoding::bind: the table has ",
                    table.rows(), " axes, the encoder ", axes());
    detail::require(first >= 0, "MultiAxisRotaryEncoding::bind: first = ", first, " must be >= 0");
    return Bound(std::make_shared<const MultiAxisRotaryEncoding>(*this),
                 std::make_shared<const AxisPositions>(table), first);
  }

 private:
  static Index axes_count(const MultiAxisRotaryOptions& o) {
    return o.layout == MropeLayout::axial ? o.axes : static_cast<Index>(o.sections.size());
  }

  static RotaryEncoding<T> make_rope(Index head_dim, const MultiAxisRotaryOptions& o) {
    if (o.layout != MropeLayout::axial) return RotaryEncoding<T>(head_dim, o.rope);
    detail::require(o.axes >= 1, "MultiAxisRotaryEncoding: axial needs axes >= 1, got ", o.axes);
    detail::require(o.sections.empty(),
                    "MultiAxisRotaryEncoding: axial takes `axes`, not sections (got ",
                    o.sections.size(), ")");
    const Index r = o.rope.rotary_dim == 0 ? head_dim : o.rope.rotary_dim;
    detail::require(r > 0 && r % (2 * o.axes) == 0, "MultiAxisRotaryEncoding: axial needs R = ", r,
                    " divisible by 2A = ", 2 * o.axes);
    // Each axis: inv_freq_j = base^(-2j/(R/A)), j < R/(2A) (conventions.md 3c).
    const Index per = r / (2 * o.axes);
    std::vector<double> ladder;
    for (Index a = 0; a < o.axes; ++a)
      for (Index j = 0; j < per; ++j)
        ladder.push_back(
            std::pow(o.rope.base, -2.0 * static_cast<double>(j) / static_cast<double>(r / o.axes)));
    return RotaryEncoding<T>(head_dim, o.rope, std::move(ladder));
  }

  static std::vector<Index> axis_map(Index half, const MultiAxisRotaryOptions& o) {
    std::vector<Index> a(static_cast<std::size_t>(half), 0);
    const auto& s = o.sections;
    for (std::size_t k = 0; k < s.size(); ++k)
      detail::require(s[k] >= 0, "MultiAxisRotaryEncoding: mrope_section[", k, "] = ", s[k],
                      " must be >= 0");
    switch (o.layout) {
      case MropeLayout::chunked: {
        detail::require(!s.empty(), "MultiAxisRotaryEncoding: chunked needs mrope_section");
        const Index sum = std::accumulate(s.begin(), s.end(), Index(0));
        detail::require(sum == half, "MultiAxisRotaryEncoding: mrope_section sums to ", sum,
                        ", expected rotary_dim / 2 = ", half);
        Index i = 0;
        for (std::size_t k = 0; k < s.size(); ++k)
          for (Index j = 0; j < s[k]; ++j)
            a[static_cast<std::size_t>(i++)] = static_cast<Index>(k);
        break;
      }
      case MropeLayout::interleaved: {
        detail::require(s.size() == 3,
                        "MultiAxisRotaryEncoding: interleaved needs three sections, got ",
                        s.size());
        for (Index i = 0; i < half; ++i) {
          if (i % 3 == 1 && i < 3 * s[1])
            a[static_cast<std::size_t>(i)] = 1;
          else if (i % 3 == 2 && i < 3 * s[2])
            a[static_cast<std::size_t>(i)] = 2;
        }
        break;
      }
      case MropeLayout::axial: {
        const Index per = half / o.axes;
        for (Index i = 0; i < half; ++i)
          a[static_cast<std::size_t>(i)] = i / per;
        break;
      }
    }
    return a;
  }

  MultiAxisRotaryOptions options_;
  RotaryEncoding<T> rope_;
  std::vector<Index> axis_of_;
};

POSENC_NAMESPACE_END
