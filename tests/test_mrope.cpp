// Multi-axis RoPE (conventions.md 3c) against the float64 reference: Qwen2-VL's chunked
// sections, Qwen3-VL's interleaved ones, axial 2D RoPE, precision at 2^20, equal axes = 1D RoPE,
// through the attention kernel and the KV cache, and bad input.
#include "attention_support.hpp"

#include <posenc/mrope.hpp>

using namespace attention_test;
using posenc::AxisPositions;
using posenc::MropeLayout;
using posenc::MultiAxisRotaryEncoding;
using posenc::MultiAxisRotaryOptions;

namespace {

AxisPositions load_axes(const std::string& name) {
  const auto a = posenc_npy::read_npy(data_path(name));
  REQUIRE(a.shape.size() == 2);
  AxisPositions p(a.shape[0], a.shape[1]);
  for (Index i = 0; i < p.size(); ++i)
    p.data()[i] = a.as_int(i);
  return p;
}

MultiAxisRotaryOptions mrope(MropeLayout layout, std::vector<Index> sections,
                             RotaryLayout pairs = RotaryLayout::half, double base = 10000.0) {
  MultiAxisRotaryOptions o;
  o.layout = layout;
  o.sections = std::move(sections);
  o.rope.layout = pairs;
  o.rope.base = base;
  return o;
}

}  // namespace

TEMPLATE_TEST_CASE("mrope: every layout matches the float64 reference, up to 2^20", "[mrope]",
                   float, double) {
  using T = TestType;
  const Matrix<T> x = load<T>("mrope_x");
  MultiAxisRotaryOptions axial = mrope(MropeLayout::axial, {}, RotaryLayout::half, 100.0);
  axial.axes = 2;
  struct Case {
    const char* file;
    const char* positions;
    MultiAxisRotaryOptions options;
  };
  const std::vector<Case> cases = {
      {"mrope_chunked_233", "mrope_positions", mrope(MropeLayout::chunked, {2, 3, 3})},
      {"mrope_chunked_233_high", "mrope_positions_high", mrope(MropeLayout::chunked, {2, 3, 3})},
      {"mrope_interleaved_233", "mrope_positions",
       mrope(MropeLayout::interleaved, {2, 3, 3}, RotaryLayout::interleaved)},
      {"mrope_axial_2", "mrope_positions_2d", axial},
  };
  for (const auto& c : cases) {
    INFO(c.file);
    const Matrix<double> ref = load<double>(c.file);
    const AxisPositions pos = load_axes(c.positions);
    for (Index limit : {Index(-1), Index(0)}) {  // the cached rows and the direct angles
      INFO("cache limit " << limit);
      MultiAxisRotaryEncoding<T> enc(16, c.options);
      if (limit == 0) const_cast<posenc::RotaryEncoding<T>&>(enc.rope()).set_cache_limit(0);
      Matrix<T> y = x;
      enc.rotate(y, pos, 2);
      // float: conventions.md's 1e-6 at 2^20 (tolerance<float> is 2e-6 relative); double: as
      // rope's precision test, plus the conditioning of the angle, p 2^-52 (2.3e-10 at 2^20).
      const double high = std::string(c.positions) == "mrope_positions_high" ? 1 << 20 : 0;
      const double tol = tolerance<T>(ref.cwiseAbs().maxCoeff()) +
                         (std::is_same<T, double>::value ? std::ldexp(high, -52) : 0.0) *
                             ref.cwiseAbs().maxCoeff();
      CHECK(max_abs_diff(y, ref) <= tol);
    }
  }
}

TEMPLATE_TEST_CASE("mrope: equal axes give 1D RoPE", "[mrope][property]", float, double) {
  using T = TestType;
  const Matrix<T> x = random_matrix<T>(9, 2 * 32, 61);
  const Positions p(1000, 9);
  AxisPositions same(3, 9);
  for (Index i = 0; i < 9; ++i)
    same.col(i).setConstant(p[i]);
  Matrix<T> ref = x;
  posenc::RotaryEncoding<T>(32).rotate(ref, p, 2);
  for (auto layout : {MropeLayout::chunked, MropeLayout::interleaved}) {
    INFO(posenc::name_of(layout));
    Matrix<T> y = x;
    MultiAxisRotaryEncoding<T>(32, mrope(layout, {4, 6, 6})).rotate(y, same, 2);
    CHECK(max_abs_diff(y, ref) == 0.0);  // the same cached rows, gathered
  }
  // Different axes do change the result (the test above would pass on an encoder ignoring them).
  AxisPositions diff = same;
  diff.row(2).array() += 5;
  Matrix<T> y = x;
  MultiAxisRotaryEncoding<T>(32, mrope(MropeLayout::chunked, {4, 6, 6})).rotate(y, diff, 2);
  CHECK(max_abs_diff(y, ref) > 1e-3);
}

TEMPLATE_TEST_CASE("mrope: through the attention kernel and the KV cache", "[mrope][attention]",
                   float, double) {
  using T = TestType;
  // Rows at sequence positions 0 .. N-1 take their axis positions from a bound table, as a
  // Qwen2-VL prompt (text, an image's patches, text) does.
  const Index n = 14, d = 32, heads = 4, kv_heads = 2, dh = 8;
  const Matrix<T> x = random_matrix<T>(n, d, 71);
  const Matrix<T> wq = random_matrix<T>(d, heads * dh, 72, 0.3),
                  wk = random_matrix<T>(d, kv_heads * dh, 73, 0.3),
                  wv = random_matrix<T>(d, kv_heads * dh, 74, 0.3),
                  wo = random_matrix<T>(heads * dh, d, 75, 0.3);
  AxisPositions table(3, n);
  for (Index i = 0; i < n; ++i) {
    const bool image = i >= 2 && i < 11;  // a 3 x 3 image at time step 2
    table(0, i) = image ? 2 : (i < 2 ? i : i - 6);
    table(1, i) = image ? 2 + (i - 2) / 3 : table(0, i);
    table(2, i) = image ? 2 + (i - 2) % 3 : table(0, i);
  }
  const MultiAxisRotaryEncoding<T> enc(dh, mrope(MropeLayout::chunked, {1, 1, 2}));
  const auto bound = enc.bind(table);
  AttentionOptions<T> opt = options<T>(heads, true);
  opt.kv_heads = kv_heads;
  const Matrix<T> y = attention(x, wq, wk, wv, wo, bound, opt);
  // The same by hand: project, rotate with the table, the core, Wo.
  Matrix<T> q = x * wq, k = x * wk, v = x * wv, o(n, heads * dh);
  enc.rotate(q, table, heads);
  enc.rotate(k, table, kv_heads);
  posenc::AttendOptions<T> ao;
  ao.heads = heads;
  ao.kv_heads = kv_heads;
  ao.visibility.causal = true;
  posenc::attend(NoEncoding<T>(), q, k, v, Positions(0, n), Positions(0, n), ao, o);
  CHECK(max_abs_diff(y, Matrix<T>(o * wo)) <= attn_tol<T>());
  // Decoding token by token through the cache equals the full call.
  KVCache<T> cache;
  Matrix<T> ys(n, d);
  for (Index i = 0; i < n; ++i)
    attention_step(x.middleRows(i, 1), wq, wk, wv, wo, bound, opt, cache, ys.middleRows(i, 1));
  CHECK(max_abs_diff(ys, y) <= 10 * attn_tol<T>());
}

TEST_CASE("mrope: bad input names the parameter", "[mrope][errors]") {
  using E = MultiAxisRotaryEncoding<float>;
  require_error(
      [] {
        E(16, mrope(MropeLayout::chunked, {2, 3, 2}));
      },
      {"mrope_section sums to 7", "rotary_dim / 2 = 8"});
  require_error([] { E(16, mrope(MropeLayout::chunked, {})); }, {"chunked needs mrope_section"});
  require_error(
      [] {
        E(16, mrope(MropeLayout::interleaved, {4, 4}));
      },
      {"interleaved needs three sections, got 2"});
  require_error([] { E(16, mrope(MropeLayout::chunked, {9, -1, 0})); }, {"mrope_section[1] = -1"});
  MultiAxisRotaryOptions axial = mrope(MropeLayout::axial, {});
  axial.axes = 3;
  require_error([&] { E(16, axial); }, {"axial needs R = 16 divisible by 2A = 6"});
  MultiAxisRotaryOptions dyn = mrope(MropeLayout::chunked, {2, 3, 3});
  dyn.rope.scaling = RopeScaling::dynamic;
  dyn.rope.factor = 2.0;
  dyn.rope.original_max_positions = 8;
  Matrix<float> x = Matrix<float>::Ones(2, 16);
  AxisPositions p = AxisPositions::Zero(3, 2);
  require_error([&] { E(16, dyn).rotate(x, p, 1); }, {"scaling dynamic", "not defined"});
  const E enc(16, mrope(MropeLayout::chunked, {2, 3, 3}));
  require_error([&] { enc.rotate(x, AxisPositions::Zero(2, 2), 1); },
                {"positions have 2 axes", "3"});
  require_error([&] { enc.rotate(x, AxisPositions::Zero(3, 3), 1); }, {"[3, 3]", "N = 2"});
  p(1, 1) = -4;
  require_error([&] { enc.rotate(x, p, 1); }, {"position -4 is negative"});
  const auto bound = enc.bind(AxisPositions::Zero(3, 4), 10);
  require_error([&] { bound.rotate(x, Positions(13, 2), 1); }, {"position 14", "10 .. 13"});
}
