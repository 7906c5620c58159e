// Central finite differences for the gradient tests (test_gradients.cpp,
// test_gradients_relative.cpp): L = sum(Y o G) and the checks of an analytic gradient.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace posenc_test {

/// The largest |fd - analytic| / max(scale, |fd|) seen by check_fd (reported at the end).
inline double worst_relative_error = 0.0;
inline std::string worst_what;
/// The same over the encoders' tables only.
inline double worst_table_error = 0.0;

/// L = sum(Y o G) for a fixed random G, so dL/dY = G.
inline double loss(const posenc::Matrix<double>& y, const posenc::Matrix<double>& g) {
  return y.cwiseProduct(g).sum();
}

/// Checks analytic gradient `grad` of f at the entries of `param` (all, or `samples` of them
/// chosen by a seeded generator) against (f(p + h) - f(p - h)) / 2h. With samples, also the
/// derivative along two random unit directions u (every entry at once: grad . u against
/// (f(p + h u) - f(p - h u)) / 2h, to 1e-6 of |grad|), which no wrong entry of size above
/// about 1e-6 |grad| sqrt(n) passes unnoticed.
inline void check_fd(posenc::Matrix<double>& param, const posenc::Matrix<double>& grad,
                     const std::function<double()>& f, const std::string& what, int samples = -1,
                     double h = 1e-5) {
  INFO(what);
  REQUIRE(grad.rows() == param.rows());
  REQUIRE(grad.cols() == param.cols());
  REQUIRE(grad.allFinite());
  std::mt19937_64 rng(12345);
  const posenc::Index n = param.size();
  const posenc::Index count = samples < 0 ? n : std::min<posenc::Index>(n, samples);
  double scale = 1e-3;
  for (posenc::Index e = 0; e < n; ++e)
    scale = std::max(scale, std::fabs(grad.data()[e]));
  for (posenc::Index c = 0; c < count; ++c) {
    const posenc::Index e =
        samples < 0 ? c : static_cast<posenc::Index>(rng() % static_cast<std::uint64_t>(n));
    double& p = param.data()[e];
    const double keep = p;
    p = keep + h;
    const double up = f();
    p = keep - h;
    const double down = f();
    p = keep;
    const double fd = (up - down) / (2 * h);
    const double err = std::fabs(fd - grad.data()[e]);
    const double rel = err / std::max(scale, std::fabs(fd));
    if (rel > worst_relative_error) {
      worst_relative_error = rel;
      worst_what = what;
    }
    if (what.rfind("d ", 0) == 0) worst_table_error = std::max(worst_table_error, rel);
    INFO(what << "[" << e / param.cols() << ", " << e % param.cols() << "] analytic "
              << grad.data()[e] << " finite difference " << fd);
    REQUIRE(err <= 1e-6 * scale + 1e-7 * std::fabs(fd));
  }
  if (samples < 0) return;
  const double norm = std::max(1e-3, grad.norm());
  std::normal_distribution<double> normal;
  for (int d = 0; d < 2; ++d) {
    posenc::Matrix<double> u(param.rows(), param.cols());
    for (posenc::Index e = 0; e < n; ++e)
      u.data()[e] = normal(rng);
    u /= u.norm();
    const posenc::Matrix<double> keep = param;
    param = keep + h * u;
    const double up = f();
    param = keep - h * u;
    const double down = f();
    param = keep;
    const double fd = (up - down) / (2 * h), analytic = grad.cwiseProduct(u).sum();
    const double err = std::fabs(fd - analytic);
    const double rel = err / std::max(norm, std::fabs(fd));
    if (rel > worst_relative_error) {
      worst_relative_error = rel;
      worst_what = what + " (direction)";
    }
    if (what.rfind("d ", 0) == 0) worst_table_error = std::max(worst_table_error, rel);
    INFO(what << " along random direction " << d << ": analytic " << analytic
              << " finite difference " << fd);
    REQUIRE(err <= 1e-6 * norm + 1e-7 * std::fabs(fd));
  }
}

inline void check_fd(posenc::Vector<double>& param, const posenc::Vector<double>& grad,
                     const std::function<double()>& f, const std::string& what) {
  posenc::Matrix<double> p = param.transpose(), g = grad.transpose();
  check_fd(
      p, g,
      [&] {
        param = p.transpose();
        return f();
      },
      what);
  param = p.transpose();
}

inline void check_fd(std::vector<double>& param, const std::vector<double>& grad,
                     const std::function<double()>& f, const std::string& what) {
  posenc::Matrix<double> p(1, static_cast<posenc::Index>(param.size())), g(1, p.cols());
  for (posenc::Index i = 0; i < p.cols(); ++i) {
    p(0, i) = param[static_cast<std::size_t>(i)];
    g(0, i) = grad[static_cast<std::size_t>(i)];
  }
  check_fd(
      p, g,
      [&] {
        for (posenc::Index i = 0; i < p.cols(); ++i)
          param[static_cast<std::size_t>(i)] = p(0, i);
        return f();
      },
      what);
  for (posenc::Index i = 0; i < p.cols(); ++i)
    param[static_cast<std::size_t>(i)] = p(0, i);
}

/// The layer's gradients (posenc::attention_backward's r) of X, the weights, the biases the
/// options have and the sinks, each against finite differences of forward().
template <class R>
void check_layer_fd(posenc::Matrix<double>& x, posenc::Matrix<double>& wq,
                    posenc::Matrix<double>& wk, posenc::Matrix<double>& wv,
                    posenc::Matrix<double>& wo, posenc::AttentionOptions<double>& opt, const R& r,
                    const std::function<double()>& forward) {
  check_fd(x, r.dx, forward, "dX");
  check_fd(wq, r.dwq, forward, "dWq");
  check_fd(wk, r.dwk, forward, "dWk");
  check_fd(wv, r.dwv, forward, "dWv");
  check_fd(wo, r.dwo, forward, "dWo");
  if (opt.bq.size()) check_fd(opt.bq, r.dbq, forward, "dbq");
  if (opt.bk.size()) check_fd(opt.bk, r.dbk, forward, "dbk");
  if (opt.bv.size()) check_fd(opt.bv, r.dbv, forward, "dbv");
  if (opt.bo.size()) check_fd(opt.bo, r.dbo, forward, "dbo");
  if (!opt.sinks.empty()) check_fd(opt.sinks, r.dsinks, forward, "dsinks");
}

}  // namespace posenc_test
