// The measurements of `posenc compare` and examples/compare.cpp, and the explicit attention
// maps of `posenc plot attention` (posenc/compare.hpp).
#include "test_support.hpp"

#include <posenc/compare.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

using namespace posenc_test;
namespace cmp = posenc::compare;

TEST_CASE("compare: attention maps reproduce the attention kernel for every encoder", "[compare]") {
  cmp::Config c;
  c.dim = 16;
  c.heads = 2;
  c.max_len = 64;
  c.max_relative = 3;
  const cmp::Encoders<double> enc(c);
  const Matrix<double> x = random_matrix<double>(7, 16, 5),
                       wq = random_matrix<double>(16, 16, 6, 0.3),
                       wk = random_matrix<double>(16, 16, 7, 0.3),
                       wv = random_matrix<double>(16, 16, 8, 0.3),
                       wo = random_matrix<double>(16, 16, 9, 0.3);
  for (bool causal : {false, true}) {
    cmp::for_each_encoder(enc, cmp::all_keys(), [&](const cmp::Info& info, const auto& e) {
      INFO(info.name << (causal ? " causal" : ""));
      posenc::AttentionOptions<double> opt;
      opt.heads = 2;
      opt.causal = causal;
      opt.offset = 3;
      const posenc::Positions pos(3, 7);
      const auto maps = cmp::attention_maps(e, x, pos, wq, wk, 2, std::nullopt, causal);
      REQUIRE(maps.size() == 2);
      for (const auto& m : maps) {
        CHECK(m.rows() == 7);
        CHECK((m.rowwise().sum().array() - 1.0).abs().maxCoeff() < 1e-12);
        if (causal) CHECK(m(0, 1) == 0.0);
      }
      const Matrix<double> y = posenc::attention(x, wq, wk, wv, wo, e, opt);
      const Matrix<double> y2 = cmp::attention_from_maps(e, maps, x, pos, wv, wo, 2);
      CHECK(max_abs_diff(y, y2) < 1e-12);
    });
  }
}

TEST_CASE(
    "compare: relative-only is measured true for RoPE, ALiBi, T5, Shaw, XL and false for absolute "
    "encoders",
    "[compare]") {
  cmp::Config c;
  c.dim = 16;
  c.heads = 2;
  c.max_len = 64;
  c.max_relative = 4;
  c.max_distance = 20;
  c.num_buckets = 8;
  c.tokens = 8;
  c.shifts = {1, 5, 40, 100000};
  c.time_len = 8;
  c.time_budget = 0.0;
  const auto rows = cmp::measure<double>(c);
  REQUIRE(rows.size() == 10);
  for (const auto& r : rows) {
    INFO(r.info.name << ": change " << r.shift_change << ", past L: " << r.past_length);
    const std::string& k = r.info.key;
    if (k == "sinusoidal" || k == "learned") {
      CHECK_FALSE(r.relative_only);
      CHECK(r.shift_change > 1e-3);
    } else {
      CHECK(r.relative_only);
      CHECK(r.shift_change < 1e-9);
    }
    if (k == "learned") {
      CHECK(r.past_length_error);
      CHECK(r.past_length.find("LearnedEncoding: position p = ") != std::string::npos);
      CHECK(r.past_length.find("outside the table: L_max = 64") != std::string::npos);
      CHECK(r.shifts_used == std::vector<std::int64_t>{1, 5, 40});  // s + N <= L only
      CHECK(r.parameters == 64 * 16);
    } else {
      CHECK_FALSE(r.past_length_error);
      CHECK(r.past_length == "finite at 2L and 8L");
    }
    CHECK(r.attention_ns_per_token > 0.0);
  }
  CHECK(rows[0].parameters == 0);
  CHECK(rows[5].parameters == 8 * 2);                // T5 [buckets, H]
  CHECK(rows[6].parameters == 2 * (2 * 4 + 1) * 8);  // Shaw 2 (2K+1) Dh
  CHECK(rows[7].parameters == 2 * 16 + 16 * 16);     // XL u, v, W_R
  CHECK(rows[8].parameters == (2 * 64 - 1) * 8);     // BERT relative E [2L - 1, Dh]
  CHECK(rows[9].parameters == 2 * (2 * 256) * 16);   // DeBERTa K_r, Q_r [2b, H Dh]
  // distances told apart: Shaw stops at K, T5 at its last bucket, ALiBi and RoPE never (<= 8L)
  CHECK(rows[6].distinct_up_to == 4);
  CHECK(rows[5].distinct_up_to < 20);
  CHECK(rows[5].distinct_up_to > 2);
  CHECK(rows[4].distinct_up_to == 8 * 64);
  CHECK(rows[3].distinct_up_to == 8 * 64);
  CHECK(rows[0].distinct_up_to == 0);
  // BERT's table ends at L - 1; DeBERTa's buckets saturate near m = 512
  CHECK(rows[8].distinct_up_to == 63);
  CHECK(rows[8].distinct_tested == 63);
  CHECK(rows[9].distinct_up_to > 256);
  CHECK(rows[9].distinct_up_to < 8 * 64);
  const std::string md = cmp::markdown(rows, c, "float64");
  CHECK(md.find("| RoPE | Q, K | 0 | yes |") != std::string::npos);
  CHECK(md.find("| learned | input | 1024 (L·D) | no |") != std::string::npos);
}

TEST_CASE("compare: float measurements agree on what is relative", "[compare]") {
  cmp::Config c;
  c.dim = 16;
  c.heads = 2;
  c.max_len = 32;
  c.tokens = 8;
  c.shifts = {1, 7, 1000};
  c.time_len = 8;
  c.time_budget = 0.0;
  const auto rows = cmp::measure<float>(c, {"sinusoidal", "rope", "alibi"});
  REQUIRE(rows.size() == 3);
  CHECK_FALSE(rows[0].relative_only);
  CHECK(rows[1].relative_only);
  CHECK(rows[2].relative_only);
  require_error([&] { cmp::measure<float>(c, {"bogus"}); }, {"unknown encoder 'bogus'"});
  c.heads = 3;
  require_error([&] { cmp::measure<float>(c, {"rope"}); }, {"heads H = 3", "D = 16"});
}
