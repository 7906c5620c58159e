// Learned absolute encoding (conventions.md section 2) against the float64 reference.
#include "test_support.hpp"

using namespace posenc_test;
using posenc::LearnedEncoding;
using posenc::Positions;

TEMPLATE_TEST_CASE("learned: adds W[p + table_offset]", "[learned]", float, double) {
  using T = TestType;
  const LearnedEncoding<T> enc(load<T>("learned_table"), 2);
  CHECK(enc.max_len() == 20);
  CHECK(enc.dim() == 8);
  Matrix<T> x = load<T>("learned_x");
  enc.add_to_input(x, Positions(5, 6));
  CHECK(max_abs_diff(x, load<double>("learned_out")) <= tolerance<T>(4.0));

  // From the caller's own memory through a Map: the same result.
  std::vector<T> memory(20 * 8);
  Eigen::Map<Matrix<T>>(memory.data(), 20, 8) = load<T>("learned_table");
  const LearnedEncoding<T> from_map(Eigen::Map<const Matrix<T>>(memory.data(), 20, 8), 2);
  Matrix<T> x2 = load<T>("learned_x");
  from_map.add_to_input(x2, Positions(5, 6));
  CHECK(max_abs_diff(x2, x) == 0.0);
}

TEMPLATE_TEST_CASE("learned: gradient with respect to the table", "[learned]", float, double) {
  using T = TestType;
  LearnedEncoding<T> enc(load<T>("learned_table"), 2);
  const Positions pos(load_ints("learned_grad_positions"));
  const Matrix<T> dy = load<T>("learned_grad_dy");
  const Matrix<T> g = enc.gradient(dy, pos);
  CHECK(max_abs_diff(g, load<double>("learned_grad_table")) <= tolerance<T>(4.0));

  // Accumulating twice doubles it.
  Matrix<T> acc = Matrix<T>::Zero(20, 8);
  enc.accumulate_gradient(dy, pos, acc);
  enc.accumulate_gradient(dy, pos, acc);
  CHECK(max_abs_diff(acc, 2.0 * load<double>("learned_grad_table")) <= tolerance<T>(8.0));

  // An SGD step moves exactly the used rows.
  const Matrix<T> before = enc.table();
  enc.sgd_step(g, T(0.5));
  CHECK(max_abs_diff(enc.table(), before - T(0.5) * g) <= tolerance<T>(4.0));
  CHECK(enc.table().row(0) == before.row(0));
  CHECK(enc.table().row(2) != before.row(2));
}

TEST_CASE("learned: the gradient matches finite differences of a loss", "[learned][property]") {
  // L = sum(c * (X + PE)^2): dL/dX' = 2 c X'; check one table entry by central differences.
  LearnedEncoding<double> enc = LearnedEncoding<double>::normal(12, 4, 7, 1.0, 1);
  const Matrix<double> x = random_matrix<double>(5, 4, 11), c = random_matrix<double>(5, 4, 12);
  const Positions pos(std::vector<std::int64_t>{0, 4, 4, 9, 2});
  const auto loss = [&](const LearnedEncoding<double>& e) {
    Matrix<double> xe = x;
    e.add_to_input(xe, pos);
    return (c.array() * xe.array().square()).sum();
  };
  Matrix<double> xe = x;
  enc.add_to_input(xe, pos);
  const Matrix<double> grad = enc.gradient(2.0 * c.cwiseProduct(xe), pos);
  for (auto [r, col] : {std::pair<Index, Index>{5, 1}, {1, 0}, {10, 3}, {3, 2}, {0, 0}}) {
    LearnedEncoding<double> plus = enc, minus = enc;
    plus.table()(r, col) += 1e-6;
    minus.table()(r, col) -= 1e-6;
    const double numeric = (loss(plus) - loss(minus)) / 2e-6;
    INFO("row " << r << " col " << col);
    CHECK(std::abs(numeric - grad(r, col)) < 1e-6);
  }
  CHECK(grad.row(0).isZero());  // row 0 is below table_offset: never used
}

TEST_CASE("learned: seeded normal initialisation", "[learned]") {
  const auto a = LearnedEncoding<double>::normal(512, 64, 42, 0.02);
  const auto b = LearnedEncoding<double>::normal(512, 64, 42, 0.02);
  const auto c = LearnedEncoding<double>::normal(512, 64, 43, 0.02);
  CHECK(a.table() == b.table());
  CHECK(a.table() != c.table());
  const double mean = a.table().mean();
  const double sd = std::sqrt((a.table().array() - mean).square().mean());
  CHECK(std::abs(mean) < 0.02 * 5.0 / std::sqrt(512.0 * 64.0));
  CHECK(std::abs(sd - 0.02) < 0.02 * 0.03);
  const LearnedEncoding<float> z(4, 3);
  CHECK(z.table().isZero());
}

TEST_CASE("learned: bad input throws posenc::error naming the parameter", "[learned][errors]") {
  require_error([] { LearnedEncoding<float>(0, 8); }, {"max_len", "0"});
  require_error([] { LearnedEncoding<float>(4, -2); }, {"dim", "-2"});
  require_error([] { LearnedEncoding<float>(4, 2, -1); }, {"table_offset", "-1"});
  const LearnedEncoding<float> enc(10, 4, 2);
  Matrix<float> x = Matrix<float>::Zero(3, 4);
  // Positions 6, 7, 8 need rows 8, 9, 10: row 10 is past L_max = 10.
  require_error([&] { enc.add_to_input(x, Positions(6, 3)); }, {"p = 8", "L_max = 10"});
  require_error(
      [&] {
        enc.add_to_input(x, Positions(std::vector<std::int64_t>{0, 1, 12}));
      },
      {"p = 12", "L_max = 10"});
  Matrix<float> wrong(3, 5);
  require_error([&] { enc.add_to_input(wrong, Positions(0, 3)); }, {"input", "[3, 5]", "[3, 4]"});
  Matrix<float> g(9, 4);
  require_error([&] { enc.accumulate_gradient(x, Positions(0, 3), g); },
                {"grad_table", "[9, 4]", "[10, 4]"});
  require_error([&] { enc.gradient(x, Positions(0, 2)); }, {"grad_out", "[3, 4]", "[2, 4]"});
  require_error([&] { enc.gradient(x, Positions(7, 3)); }, {"p = 9", "L_max = 10"});
  require_error([&] { enc.check(posenc::AttentionShape{8, 2, 2, 4}); }, {"D = 4", "D = 8"});
  require_error([] { LearnedEncoding<double>::normal(4, 4, 1, -1.0); }, {"stddev", "-1"});
  Matrix<float> bad = Matrix<float>::Zero(2, 2);
  bad(1, 1) = NAN;
  require_error([&] { LearnedEncoding<float> e(bad); }, {"table", "non-finite"});
}
