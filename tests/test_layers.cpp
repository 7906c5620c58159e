// Attention layers of real models (conventions.md section 6b) against the float64 NumPy
// reference (tests/reference/make_golden.py, cases listed in data/layer_cases.txt): grouped
// and multi-query heads, Dh != D / H, projection biases, causal / window / chunk / segment
// visibility in every combination, sinks, soft-capping, every encoder, huge and unsorted
// positions. Each case runs through the layer (attention), the public core (attend on the
// reference's own Q, K, V), MultiHeadAttention, and, for causal cases, a prefill plus one
// cached step per further token, which must equal the one-call output.
#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "attention_support.hpp"

using namespace attention_test;

namespace {

struct LayerCase {
  std::string name;
  std::map<std::string, std::string> kv;

  const std::string& get(const std::string& key) const {
    const auto it = kv.find(key);
    if (it == kv.end()) FAIL("layer_cases.txt: case " << name << " has no key " << key);
    return it->second;
  }
  Index integer(const std::string& key) const { return std::stoll(get(key)); }
  double real(const std::string& key) const { return std::stod(get(key)); }
  bool flag(const std::string& key) const { return integer(key) != 0; }
  bool has(const std::string& key) const { return kv.count(key) > 0; }
  std::string file(const std::string& array) const { return "layer_" + name + "_" + array; }
};

std::vector<LayerCase> layer_cases() {
  std::ifstream in(std::string(POSENC_TEST_DATA_DIR) + "/layer_cases.txt");
  REQUIRE(in.good());
  std::vector<LayerCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream words(line);
    LayerCase c;
    words >> c.name;
    std::string w;
    while (words >> w) {
      const auto eq = w.find('=');
      REQUIRE(eq != std::string::npos);
      c.kv[w.substr(0, eq)] = w.substr(eq + 1);
    }
    cases.push_back(std::move(c));
  }
  REQUIRE(cases.size() >= 30);
  return cases;
}

template <class T>
Vector<T> load_vec(const std::string& name) {
  const auto v = load_vector(name);
  Vector<T> out(static_cast<Index>(v.size()));
  for (std::size_t i = 0; i < v.size(); ++i)
    out(static_cast<Index>(i)) = static_cast<T>(v[i]);
  return out;
}

template <class T>
AttentionOptions<T> layer_options(const LayerCase& c) {
  AttentionOptions<T> o;
  o.heads = c.integer("H");
  o.kv_heads = c.integer("Hkv");
  o.head_dim = c.integer("Dh");
  o.causal = c.flag("causal");
  o.window = c.integer("window");
  o.chunk = c.integer("chunk");
  if (c.get("scale") != "default") o.scale = static_cast<T>(c.real("scale"));
  if (c.real("softcap") != 0.0) o.softcap = static_cast<T>(c.real("softcap"));
  o.positions = Positions(load_ints(c.file("positions")));
  if (c.flag("has_segments")) o.segments = load_ints(c.file("segments"));
  if (c.flag("has_sinks")) {
    const auto s = load_vector(c.file("sinks"));
    o.sinks.assign(s.begin(), s.end());
  }
  if (c.flag("has_bq")) o.bq = load_vec<T>(c.file("bq"));
  if (c.flag("has_bk")) o.bk = load_vec<T>(c.file("bk"));
  if (c.flag("has_bv")) o.bv = load_vec<T>(c.file("bv"));
  if (c.flag("has_bo")) o.bo = load_vec<T>(c.file("bo"));
  return o;
}

template <class T>
RotaryOptions rope_options_of(const LayerCase& c) {
  RotaryOptions o;
  o.base = c.real("base");
  o.rotary_dim = c.integer("rotary_dim");
  o.layout = c.get("layout") == "half" ? RotaryLayout::half : RotaryLayout::interleaved;
  const std::string s = c.get("scaling");
  const std::map<std::string, RopeScaling> names = {
      {"none", RopeScaling::none},       {"linear", RopeScaling::linear},
      {"dynamic", RopeScaling::dynamic}, {"yarn", RopeScaling::yarn},
      {"llama3", RopeScaling::llama3},   {"longrope", RopeScaling::longrope}};
  REQUIRE(names.count(s));
  o.scaling = names.at(s);
  if (c.has("factor")) o.factor = c.real("factor");
  if (c.has("original_max_positions"))
    o.original_max_positions = c.integer("original_max_positions");
  if (c.has("beta_fast")) o.beta_fast = c.real("beta_fast");
  if (c.has("beta_slow")) o.beta_slow = c.real("beta_slow");
  if (c.has("truncate")) o.truncate = c.flag("truncate");
  if (c.has("attention_factor") && c.get("attention_factor") != "default")
    o.attention_factor = c.real("attention_factor");
  if (c.has("low_freq_factor")) o.low_freq_factor = c.real("low_freq_factor");
  if (c.has("high_freq_factor")) o.high_freq_factor = c.real("high_freq_factor");
  if (o.scaling == RopeScaling::longrope) {
    o.short_factors = load_vector(c.file("rope_short_factors"));
    o.long_factors = load_vector(c.file("rope_long_factors"));
  }
  return o;
}

/// Calls f(encoder) with the case's encoder, built from the manifest and its tables.
template <class T, class F>
void with_encoder(const LayerCase& c, F&& f) {
  const std::string e = c.get("encoder");
  const Index h = c.integer("H"), dh = c.integer("Dh"), d = c.integer("D");
  if (e == "none") {
    f(NoEncoding<T>{});
  } else if (e == "sinusoidal") {
    SinusoidalOptions o;
    o.layout = c.get("layout") == "split" ? SinusoidalLayout::split : SinusoidalLayout::interleaved;
    o.base = c.real("base");
    f(SinusoidalEncoding<T>(d, o));
  } else if (e == "learned") {
    f(LearnedEncoding<T>(load<T>(c.file("learned_table")), c.integer("table_offset")));
  } else if (e == "rope") {
    f(RotaryEncoding<T>(dh, rope_options_of<T>(c)));
  } else if (e == "alibi") {
    f(AlibiEncoding<T>(h, c.real("max_bias")));
  } else if (e == "t5") {
    T5Options o;
    o.max_distance = c.integer("max_distance");
    o.bidirectional = c.flag("bidirectional");
    f(T5Encoding<T>(load<T>(c.file("t5_table")), o));
  } else if (e == "shaw") {
    f(ShawEncoding<T>(load<T>(c.file("shaw_ak")), load<T>(c.file("shaw_av"))));
  } else if (e == "xl") {
    TransformerXLOptions o;
    const std::int64_t clamp = c.integer("clamp_len");
    o.clamp_len = clamp == 0 ? -1 : clamp;  // the manifest's 0 means no clamp
    o.base = c.real("base");
    f(TransformerXLEncoding<T>(load<T>(c.file("xl_u")), load<T>(c.file("xl_v")),
                               load<T>(c.file("xl_wr")), o));
  } else {
    FAIL("unknown encoder " << e);
  }
}

template <class T>
double layer_tol(const LayerCase& c) {
  // The reference reduces RoPE angles at 2^40 exactly; float64 products p * inv_freq there are
  // off by up to 2^-13 rad (see tests/reference/README.md).
  if (c.get("encoder") == "rope" && c.name.find("hugepos") != std::string::npos) return 2e-3;
  // double: angles p * inv_freq in float64 at positions near 2^20 are within ~1e-10 rad
  return std::is_same<T, float>::value ? 5e-5 : 1e-9;
}

}  // namespace

TEMPLATE_TEST_CASE("layers: every 6b case matches the float64 reference", "[layers]", float,
                   double) {
  using T = TestType;
  for (const LayerCase& c : layer_cases()) {
    INFO("case " << c.name);
    const Matrix<T> x = load<T>(c.file("x")), wq = load<T>(c.file("wq")),
                    wk = load<T>(c.file("wk")), wv = load<T>(c.file("wv")),
                    wo = load<T>(c.file("wo"));
    const Matrix<double> y_ref = load<double>(c.file("y")), o_ref = load<double>(c.file("o"));
    const AttentionOptions<T> opt = layer_options<T>(c);
    const double tol = layer_tol<T>(c);
    with_encoder<T>(c, [&](const auto& enc) {
      // the layer
      const Matrix<T> y = attention(x, wq, wk, wv, wo, enc, opt);
      CHECK(max_abs_diff(y, y_ref) <= tol);
      // the core on the reference's projected (and rotated) Q, K, V
      AttendOptions<T> a;
      a.heads = opt.heads;
      a.kv_heads = opt.kv_heads;
      a.visibility = Visibility{opt.causal, opt.window, opt.chunk};
      a.query_segments = a.key_segments = opt.segments;
      a.scale = opt.scale;
      a.softcap = opt.softcap;
      a.sinks = opt.sinks;
      const Matrix<T> q = load<T>(c.file("q")), k = load<T>(c.file("k")), v = load<T>(c.file("v"));
      const Positions& pos = *opt.positions;
      Matrix<T> o(q.rows(), q.cols());
      attend(enc, q, k, v, pos, pos, a, o);
      CHECK(max_abs_diff(o, o_ref) <= tol);
      // the layer object
      const MultiHeadAttention<std::decay_t<decltype(enc)>> layer(wq, wk, wv, wo, enc, opt);
      CHECK(max_abs_diff(layer(x), y_ref) <= tol);
      // decoding: a prefill of half the tokens, then one cached step per token. Dynamic NTK
      // and LongRoPE choose their frequencies per call (cached decoding across M is a
      // separate property), so they are left out here.
      // Positions out of order are left out too: a key appended later at an earlier position
      // is visible to an earlier query in one call, but was not there when it was decoded.
      const bool per_call =
          c.has("scaling") && (c.get("scaling") == "dynamic" || c.get("scaling") == "longrope");
      const std::vector<std::int64_t> ps = listed(*opt.positions);
      const bool sorted = std::is_sorted(ps.begin(), ps.end());
      if (opt.causal && !per_call && sorted) {
        KVCache<T> cache;
        const Index n = x.rows(), p = n / 2;
        AttentionOptions<T> step = opt;
        step.positions = opt.positions->slice(0, p);
        if (!opt.segments.empty())
          step.segments.assign(opt.segments.begin(), opt.segments.begin() + p);
        Matrix<T> yd(n, x.cols());
        attention_step(x.topRows(p), wq, wk, wv, wo, enc, step, cache, yd.topRows(p));
        CHECK(cache.size() == p);
        for (Index i = p; i < n; ++i) {
          AttentionOptions<T> one = opt;
          one.positions = opt.positions->slice(i, 1);
          if (!opt.segments.empty()) one.segments = {opt.segments[static_cast<std::size_t>(i)]};
          Matrix<T> yi(1, x.cols());
          attention_step(x.middleRows(i, 1), wq, wk, wv, wo, enc, one, cache, yi);
          yd.row(i) = yi.row(0);
        }
        CHECK(max_abs_diff(yd, y_ref) <= tol);
      }
    });
  }
}

namespace {
// Llama 4's attention temperature tuning (conventions.md 3b): queries only,
// q_i *= 1 + attn_scale ln(floor((p_i + 1) / floor_scale) + 1); keys unchanged.
struct QueryTemperature {
  using Scalar = double;
  double attn_scale = 0.1, floor_scale = 4;
  void rotate_queries(MatrixRef<double> q, const Positions& pos, Index /*heads*/) const {
    for (Index i = 0; i < q.rows(); ++i)
      q.row(i) *=
          1.0 + attn_scale *
                    std::log(std::floor((static_cast<double>(pos[i]) + 1.0) / floor_scale) + 1.0);
  }
};
}  // namespace

TEST_CASE("layers: an encoder may act on queries only (rotate_queries)", "[layers][hooks]") {
  const Index n = 20, d = 16, heads = 4, kv_heads = 2, dh = 6;
  const Matrix<double> x = random_matrix<double>(n, d, 91),
                       wq = random_matrix<double>(d, heads * dh, 92, 0.3),
                       wk = random_matrix<double>(d, kv_heads * dh, 93, 0.3),
                       wv = random_matrix<double>(d, kv_heads * dh, 94, 0.3),
                       wo = random_matrix<double>(heads * dh, d, 95, 0.3);
  AttentionOptions<double> opt;
  opt.heads = heads;
  opt.kv_heads = kv_heads;
  opt.head_dim = dh;
  opt.causal = true;
  opt.offset = 3;
  const QueryTemperature enc;
  STATIC_REQUIRE(encoder_traits<QueryTemperature>::rotates_queries);
  STATIC_REQUIRE_FALSE(encoder_traits<QueryTemperature>::rotates_keys);
  const Matrix<double> y = attention(x, wq, wk, wv, wo, enc, opt);
  // by hand: scale the rows of Q, leave K, attend without an encoder
  Matrix<double> q = x * wq;
  for (Index i = 0; i < n; ++i)
    q.row(i) *= 1.0 + 0.1 * std::log(std::floor((static_cast<double>(3 + i) + 1.0) / 4.0) + 1.0);
  const Matrix<double> k = x * wk, v = x * wv;
  AttendOptions<double> a;
  a.heads = heads;
  a.kv_heads = kv_heads;
  a.visibility.causal = true;
  Matrix<double> o(n, heads * dh);
  attend(NoEncoding<double>{}, q, k, v, Positions(3, n), Positions(3, n), a, o);
  CHECK(max_abs_diff(y, o * wo) < 1e-12);
  // and the temperature changes the result (the hook is not skipped)
  CHECK(max_abs_diff(y, attention(x, wq, wk, wv, wo, NoEncoding<double>{}, opt)) > 1e-3);
}

TEST_CASE("layers: bad shapes and options name the parameter", "[layers][errors]") {
  const Index n = 6, d = 16;
  const Matrix<float> x = random_matrix<float>(n, d, 96), w16 = random_matrix<float>(d, d, 97),
                      w8 = random_matrix<float>(d, 8, 98), wo12 = random_matrix<float>(12, d, 99);
  AttentionOptions<float> o;
  o.heads = 4;
  o.kv_heads = 3;
  require_error([&] { attention(x, w16, w16, w16, w16, NoEncoding<float>{}, o); },
                {"kv_heads H_kv = 3", "divide heads H = 4"});
  o.kv_heads = 2;
  require_error([&] { attention(x, w16, w16, w16, w16, NoEncoding<float>{}, o); },
                {"Wk", "[16, 16]", "[D, H_kv * Dh] = [16, 8]"});
  o.head_dim = 3;
  require_error([&] { attention(x, w16, w8, w8, w16, NoEncoding<float>{}, o); },
                {"Wq", "[D, H * Dh] = [16, 12]"});
  require_error(
      [&] {
        attention(x, random_matrix<float>(d, 12, 1), random_matrix<float>(d, 6, 2),
                  random_matrix<float>(d, 6, 3), w16, NoEncoding<float>{}, o);
      },
      {"Wo", "[H * Dh, D] = [12, 16]"});
  o.head_dim = 0;
  o.bq = Vector<float>::Zero(5);
  require_error([&] { attention(x, w16, w8, w8, w16, NoEncoding<float>{}, o); },
                {"bq has 5 entries", "H * Dh = 16"});
  o.bq.resize(0);
  o.window = -2;
  require_error([&] { attention(x, w16, w8, w8, w16, NoEncoding<float>{}, o); }, {"window W = -2"});
  o.window = 0;
  o.softcap = 0.0f;
  require_error([&] { attention(x, w16, w8, w8, w16, NoEncoding<float>{}, o); }, {"softcap c = 0"});
  o.softcap.reset();
  o.sinks = {1.0f, 2.0f};
  require_error([&] { attention(x, w16, w8, w8, w16, NoEncoding<float>{}, o); },
                {"sinks has 2 entries", "H = 4"});
  o.sinks.clear();
  o.segments = {0, 0, 1};
  require_error([&] { attention(x, w16, w8, w8, w16, NoEncoding<float>{}, o); },
                {"segments has 3 entries", "N = 6"});
  o.segments.clear();
  // the encoders check what they need: RoPE its head size, ALiBi and T5 H, XL its shapes
  require_error([&] { attention(x, w16, w8, w8, w16, RotaryEncoding<float>(8), o); },
                {"head_dim = 8", "Dh = 4"});
  require_error([&] { attention(x, w16, w8, w8, w16, AlibiEncoding<float>(2), o); }, {"H = 4"});
  // the core
  AttendOptions<float> a;
  a.heads = 4;
  a.kv_heads = 2;
  Matrix<float> out(n, 16);
  const Matrix<float> k6 = x.leftCols(6);
  require_error(
      [&] { attend(NoEncoding<float>{}, x, k6, k6, Positions(0, n), Positions(0, n), a, out); },
      {"attend", "K is [6, 6]", "[Nk, 8]"});
  require_error(
      [&] { attend(NoEncoding<float>{}, x, x, x, Positions(0, n), Positions(0, n), a, out); },
      {"attend", "H_kv * Dh"});
  Matrix<float> k8 = x.leftCols(8), v8 = x.rightCols(8);
  require_error(
      [&] { attend(NoEncoding<float>{}, x, k8, v8, Positions(0, n - 1), Positions(0, n), a, out); },
      {"5 query positions for 6 rows"});
  Matrix<float> qq = x;
  require_error(
      [&] { attend(NoEncoding<float>{}, qq, k8, v8, Positions(0, n), Positions(0, n), a, qq); },
      {"out overlaps"});
}

TEMPLATE_TEST_CASE(
    "layers: a KV cache over caller memory, and one that drops keys outside the window",
    "[layers][cache]", float, double) {
  using T = TestType;
  const Index n = 40, d = 16, heads = 4, kv_heads = 2, dh = 4, w = 6;
  const Matrix<T> x = random_matrix<T>(n, d, 101), wq = random_matrix<T>(d, heads * dh, 102, 0.4),
                  wk = random_matrix<T>(d, kv_heads * dh, 103, 0.4),
                  wv = random_matrix<T>(d, kv_heads * dh, 104, 0.4),
                  wo = random_matrix<T>(heads * dh, d, 105, 0.4);
  AttentionOptions<T> opt;
  opt.heads = heads;
  opt.kv_heads = kv_heads;
  opt.causal = true;
  opt.window = w;
  opt.offset = 7;
  const RotaryEncoding<T> enc(dh);
  const Matrix<T> full = attention(x, wq, wk, wv, wo, enc, opt);
  const auto decode = [&](KVCache<T>& cache, Index* largest) {
    Matrix<T> y(n, d);
    *largest = 0;
    for (Index i = 0; i < n; i += 3) {
      const Index m = std::min<Index>(3, n - i);
      attention_step(x.middleRows(i, m), wq, wk, wv, wo, enc, opt, cache, y.middleRows(i, m));
      *largest = std::max(*largest, cache.size());
    }
    return y;
  };
  Index largest = 0;
  // the cache's own storage, dropping keys no later query can see: about 2 W tokens at most
  KVCache<T> windowed;
  windowed.set_window(w);
  CHECK(max_abs_diff(decode(windowed, &largest), full) <= attn_tol<T>());
  CHECK(largest <= 2 * w + 3);
  CHECK(windowed.size() < n);
  CHECK(windowed.key_positions().contiguous());
  // the caller's buffers: blocks of a larger matrix, with an outer stride
  Matrix<T> storage = Matrix<T>::Constant(n, 3 * kv_heads * dh, T(7));
  KVCache<T> external(storage.middleCols(0, kv_heads * dh),
                      storage.middleCols(kv_heads * dh + 1, kv_heads * dh));
  CHECK(max_abs_diff(decode(external, &largest), full) <= attn_tol<T>());
  CHECK(external.size() == n);
  CHECK(max_abs_diff(external.keys(), storage.middleCols(0, kv_heads * dh)) == 0.0);
  CHECK(storage.col(kv_heads * dh).isConstant(T(7)));  // the gap between the blocks is untouched
  // full: the caller's capacity is a hard limit
  Matrix<T> y1(1, d);
  require_error([&] { attention_step(x.topRows(1), wq, wk, wv, wo, enc, opt, external, y1); },
                {"do not fit the caller's buffers", "[40, 8]"});
  // a cache window wider than the layer's, or a layer without one, is refused
  KVCache<T> narrow;
  narrow.set_window(w - 1);
  require_error([&] { attention_step(x.topRows(1), wq, wk, wv, wo, enc, opt, narrow, y1); },
                {"window of 5", "window 6"});
  // copies and moves keep their contents
  KVCache<T> copy = external;
  CHECK(max_abs_diff(copy.keys(), external.keys()) == 0.0);
  KVCache<T> moved = std::move(copy);
  CHECK(moved.size() == n);
  CHECK(max_abs_diff(moved.values(), external.values()) == 0.0);
}

TEST_CASE(
    "layers: a LLaMA-3-shaped layer (H 32, H_kv 8, Dh 128, llama3 RoPE) and a Mistral-shaped one",
    "[layers][models]") {
  // Grouped heads against the same layer with every key/value head repeated for its query
  // heads (Hugging Face's repeat_kv): the columns of Wk and Wv copied, H_kv = H.
  const auto repeat_kv = [](const Matrix<double>& w, Index kv_heads, Index heads, Index dh) {
    Matrix<double> r(w.rows(), heads * dh);
    for (Index h = 0; h < heads; ++h)
      r.middleCols(h * dh, dh) = w.middleCols((h * kv_heads / heads) * dh, dh);
    return r;
  };
  struct Shape {
    const char* name;
    Index d, heads, kv_heads, dh, n, window;
  };
  for (const Shape& s :
       {Shape{"llama3", 256, 32, 8, 128, 24, 0}, Shape{"mistral", 64, 8, 2, 8, 40, 7}}) {
    INFO(s.name);
    const double ws = 1.0 / std::sqrt(static_cast<double>(s.d));
    const Matrix<double> x = random_matrix<double>(s.n, s.d, 111),
                         wq = random_matrix<double>(s.d, s.heads * s.dh, 112, ws),
                         wk = random_matrix<double>(s.d, s.kv_heads * s.dh, 113, ws),
                         wv = random_matrix<double>(s.d, s.kv_heads * s.dh, 114, ws),
                         wo = random_matrix<double>(s.heads * s.dh, s.d, 115, ws);
    RotaryOptions ro;
    ro.base = 500000.0;
    if (std::string(s.name) == "llama3") ro.scaling = RopeScaling::llama3;
    const RotaryEncoding<double> enc(s.dh, ro);
    AttentionOptions<double> opt;
    opt.heads = s.heads;
    opt.kv_heads = s.kv_heads;
    opt.head_dim = s.dh;
    opt.causal = true;
    opt.window = s.window;
    opt.offset = 9000;  // past llama3's 8192: every frequency band is scaled
    const Matrix<double> y = attention(x, wq, wk, wv, wo, enc, opt);
    AttentionOptions<double> mha = opt;
    mha.kv_heads = s.heads;
    const Matrix<double> y_mha = attention(x, wq, repeat_kv(wk, s.kv_heads, s.heads, s.dh),
                                           repeat_kv(wv, s.kv_heads, s.heads, s.dh), wo, enc, mha);
    CHECK(max_abs_diff(y, y_mha) < 1e-12);
    // float32 within rounding of float64
    const RotaryEncoding<float> encf(s.dh, ro);
    AttentionOptions<float> optf;
    optf.heads = s.heads;
    optf.kv_heads = s.kv_heads;
    optf.head_dim = s.dh;
    optf.causal = true;
    optf.window = s.window;
    optf.offset = 9000;
    const Matrix<float> yf =
        attention(Matrix<float>(x.cast<float>()), Matrix<float>(wq.cast<float>()),
                  Matrix<float>(wk.cast<float>()), Matrix<float>(wv.cast<float>()),
                  Matrix<float>(wo.cast<float>()), encf, optf);
    CHECK(max_abs_diff(yf, y) < 2e-5);
    // decoding: a prefill of 5, then one token at a time through the cache
    KVCache<double> cache;
    if (s.window) cache.set_window(s.window);
    Matrix<double> yd(s.n, s.d);
    attention_step(x.topRows(5), wq, wk, wv, wo, enc, opt, cache, yd.topRows(5));
    for (Index i = 5; i < s.n; ++i)
      attention_step(x.middleRows(i, 1), wq, wk, wv, wo, enc, opt, cache, yd.middleRows(i, 1));
    CHECK(max_abs_diff(yd, y) < 1e-12);
  }
}
