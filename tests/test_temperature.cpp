// Query-only attention temperature (conventions.md 3b; Llama 4's NoPE layers) against the
// float64 reference: the factor by position, attention with it, the KV cache, bad input.
#include "attention_support.hpp"

#include <posenc/temperature.hpp>

using namespace attention_test;
using posenc::AttentionTemperatureEncoding;
using posenc::AttentionTemperatureOptions;

TEST_CASE("temperature: the query factor matches the reference up to 2^40", "[temperature]") {
  const AttentionTemperatureEncoding<double> enc;  // attn_scale 0.1, floor_scale 8192
  const std::vector<std::int64_t> pos = load_ints("ropev_temperature_positions");
  const Matrix<double> ref = load<double>("ropev_temperature_scale");
  REQUIRE(static_cast<Index>(pos.size()) == ref.size());
  for (std::size_t i = 0; i < pos.size(); ++i) {
    INFO("position " << pos[i]);
    CHECK(std::abs(enc.scale_at(pos[i]) - ref(static_cast<Index>(i))) <= 1e-15);
  }
  CHECK(enc.scale_at(8190) == 1.0);  // floor(8191 / 8192) = 0
  CHECK(enc.scale_at(8191) > 1.0);
}

TEMPLATE_TEST_CASE("temperature: attention scales the queries only and matches the reference",
                   "[temperature][attention]", float, double) {
  using T = TestType;
  const Weights<T> w("attn");
  AttentionTemperatureOptions o;
  o.attn_scale = 0.5;
  o.floor_scale = 2.0;
  const AttentionTemperatureEncoding<T> enc(o);
  auto opt = options<T>(2, true, 2);
  const Matrix<double> ref = load<double>("attn_temperature_causal");
  CHECK(max_abs_diff(w.run(enc, opt), ref) <= attn_tol<T>());
  // The encoder acts on queries only: it differs from no encoding, and cached decoding equals the
  // full call.
  CHECK(max_abs_diff(w.run(NoEncoding<T>(), opt), ref) > 1e-3);
  KVCache<T> cache;
  Matrix<T> y(w.x.rows(), w.x.cols());
  for (Index i = 0; i < w.x.rows(); ++i)
    attention_step(w.x.middleRows(i, 1), w.wq, w.wk, w.wv, w.wo, enc, opt, cache,
                   y.middleRows(i, 1));
  CHECK(max_abs_diff(y, ref) <= attn_tol<T>());
  STATIC_REQUIRE(encoder_traits<AttentionTemperatureEncoding<T>>::rotates_qk == false);
}

TEST_CASE("temperature: bad options name the parameter", "[temperature][errors]") {
  AttentionTemperatureOptions o;
  o.floor_scale = 0.0;
  require_error([&] { AttentionTemperatureEncoding<float>{o}; }, {"floor_scale = 0"});
  o.floor_scale = 8192.0;
  o.attn_scale = std::nan("");
  require_error([&] { AttentionTemperatureEncoding<float>{o}; }, {"attn_scale = nan"});
  const AttentionTemperatureEncoding<float> enc;
  Matrix<float> q(3, 4);
  require_error([&] { enc.rotate_queries(q, Positions(0, 2), 1); },
                {"Q has 3 rows", "2 positions"});
}
