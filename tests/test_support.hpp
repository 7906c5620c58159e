// Shared helpers for the posenc tests: golden files and tolerances.
#pragma once

#include <npy.hpp>
#include <posenc/posenc.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace posenc_test {

using posenc::Index;
using posenc::Matrix;

inline std::string data_path(const std::string& name) {
  return std::string(POSENC_TEST_DATA_DIR) + "/" + name + ".npy";
}

/// A golden array as a [rows, cols] matrix: cols is the product of the trailing dimensions
/// (a 1-D array becomes a column, [N, H, Dh] becomes [N, H*Dh]).
template <class T>
Matrix<T> load(const std::string& name) {
  const auto a = posenc_npy::read_npy(data_path(name));
  const Index rows = a.shape.empty() ? 1 : a.shape[0];
  const Index cols = rows == 0 ? 0 : static_cast<Index>(a.size()) / rows;
  Matrix<T> m(rows, a.shape.size() <= 1 ? 1 : cols);
  for (Index i = 0; i < m.size(); ++i)
    m.data()[i] = static_cast<T>(a.as_double(i));
  return m;
}

/// Head h of a golden [H, N, M] tensor loaded as [H, N*M].
inline Matrix<double> head_slice(const Matrix<double>& ref, Index h, Index n, Index m) {
  Matrix<double> out(n, m);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < m; ++j)
      out(i, j) = ref(h, i * m + j);
  return out;
}

inline std::vector<std::int64_t> load_ints(const std::string& name) {
  const auto a = posenc_npy::read_npy(data_path(name));
  std::vector<std::int64_t> v(static_cast<std::size_t>(a.size()));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = a.as_int(static_cast<std::int64_t>(i));
  return v;
}

inline std::vector<double> load_vector(const std::string& name) {
  const auto a = posenc_npy::read_npy(data_path(name));
  std::vector<double> v(static_cast<std::size_t>(a.size()));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = a.as_double(static_cast<std::int64_t>(i));
  return v;
}

/// Largest |a - b| over all entries; +inf where shapes differ or one side is NaN.
/// Entries that are -inf on both sides (masked biases) count as equal.
template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return INFINITY;
  double m = 0.0;
  for (Index i = 0; i < a.rows(); ++i)
    for (Index j = 0; j < a.cols(); ++j) {
      const double x = static_cast<double>(a(i, j)), y = static_cast<double>(b(i, j));
      if (std::isinf(x) && std::isinf(y) && (x > 0) == (y > 0)) continue;
      const double d = std::abs(x - y);
      if (!(d <= m)) m = std::isnan(d) ? INFINITY : d;
    }
  return m;
}

/// Tolerance for comparing a T result with the float64 reference: `rel` times the scale of
/// the values (at least 1).
template <class T>
double tolerance(double magnitude = 1.0) {
  const double eps = std::is_same<T, float>::value ? 2e-6 : 1e-12;
  return eps * std::max(1.0, magnitude);
}

/// Standard normal matrix from a fixed seed (portable: splitmix64 and Box-Muller).
template <class T>
Matrix<T> random_matrix(Index rows, Index cols, std::uint64_t seed, double scale = 1.0) {
  return posenc::LearnedEncoding<T>::normal(rows, cols, seed, scale).table();
}

/// Checks that f() throws posenc::error whose message contains every fragment.
template <class F>
void require_error(F&& f, const std::vector<std::string>& fragments) {
  try {
    f();
  } catch (const posenc::error& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    for (const auto& frag : fragments) {
      INFO("expected fragment: " << frag);
      CHECK(msg.find(frag) != std::string::npos);
    }
    return;
  }
  FAIL("no posenc::error thrown (expected one mentioning " << fragments.front() << ")");
}

/// m rounded to a half-precision storage type S (through float: the tests' inputs are floats).
template <class S>
Matrix<S> to_storage(const Matrix<double>& m) {
  Matrix<S> r(m.rows(), m.cols());
  for (Index i = 0; i < m.rows(); ++i)
    for (Index j = 0; j < m.cols(); ++j)
      r(i, j) = S(static_cast<float>(m(i, j)));
  return r;
}

/// The values of a half-precision matrix, widened exactly.
template <class S>
Matrix<double> from_storage(const Matrix<S>& m) {
  Matrix<double> r(m.rows(), m.cols());
  for (Index i = 0; i < m.rows(); ++i)
    for (Index j = 0; j < m.cols(); ++j)
      r(i, j) = static_cast<double>(static_cast<float>(m(i, j)));
  return r;
}

}  // namespace posenc_test
