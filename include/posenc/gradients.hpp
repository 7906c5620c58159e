// posenc: gradients of the attention core and layer, and of the encoders' trained parameters
// (conventions.md section 7). The backward pass is tiled like the forward one and recomputes
// the scores from the saved row log-sum-exp (FlashAttention-2, Dao 2023), so its memory beyond
// the inputs stays O(N): dS = P o (dP - rowsum(dO o O)) tile by tile.
//
// Encoder hooks of the backward pass (const members, like the forward hooks of encoder.hpp):
//
//   void rotate_backward(MatrixRef<Scalar> g, const Positions& pos, Index heads) const;
//   void rotate_queries_backward(...) const;  void rotate_keys_backward(...) const;
//       the transpose of rotate / rotate_queries / rotate_keys applied to a gradient in place
//       (RoPE: R(-theta) times the attention factor; a query temperature: the same scaling).
//       An encoder with a forward rotation hook must have its backward one.
//   using Gradients = ...;   Gradients zero_gradients() const;
//       the encoder's trained parameters' gradients (a struct with operator+= and
//       `template <class F> void for_each(F&& f) const` calling f(name, const Matrix&) for
//       each tensor), zero; with
//   template <class F> void for_each_parameter(F&& f);
//       calling f(name, Matrix<Scalar>&) for the same tensors in the same order, the view
//       an optimiser updates (names as the command line's flags: "table", "rel-k", "u", ...);
//       an encoder whose forward reads copies derived from those tensors also has
//   void parameters_changed();
//       which an optimiser calls after writing them (posenc/training.hpp's train_step does).
//   void add_to_input_backward(const ConstMatrixRef<Scalar>& dx, const Positions& pos,
//                              Gradients& g) const;
//       for add_to_input encoders with trained tables (the learned table).
//   The score-bias object b of score_bias() gets
//     void add_grad(Index h, Index i0, Index j0, const ConstMatrixRef<Scalar>& q,
//                   const ConstMatrixRef<Scalar>& k, const ConstMatrixRef<Scalar>& ds,
//                   MatrixRef<Scalar> dq, MatrixRef<Scalar> dk, G& g) const;
//       given dL/dS of a tile ds [bi, bj] (the same tile as add's), adds the bias's gradients
//       with respect to q [bi, Dh] into dq, to k [bj, Dh] into dk, and to the trained
//       parameters into g (G: the encoder's Gradients, or NoGradients); and, with add_values,
//     void add_values_grad(Index h, Index i0, Index j0, const ConstMatrixRef<Scalar>& p,
//                          const ConstMatrixRef<Scalar>& dout, MatrixRef<Scalar> dp,
//                          G& g) const;
//       given the normalised probabilities p [bi, bj] and dL/dO of the tile's rows dout
//       [bi, Dh], adds dout_i . a(i, j) into dp [bi, bj] and the gradient of a into g.
//   and, where the tiles leave a product over the whole call to do once (Transformer-XL's
//   dW_R = sum_d R_d^T dr_d), optionally
//     void finish_grad(G& g) const;
//       called once on the gradients summed over the threads, after the last tile.
//   A score-bias object without add_grad (or add_values without add_values_grad) makes the
//   backward pass a compile error, never a silent zero gradient; so does a finish_grad that
//   cannot be called with G&.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "attention.hpp"
#include "encoder.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

POSENC_NAMESPACE_BEGIN

/// The gradients of an encoder without trained parameters.
struct NoGradients {
  NoGradients& operator+=(const NoGradients&) { return *this; }
  template <class F>
  void for_each(F&&) const {}
};

namespace detail {

template <class E, class = void>
struct gradients_of {
  using type = NoGradients;
};
template <class E>
struct gradients_of<E, void_t<typename E::Gradients>> {
  using type = typename E::Gradients;
};

template <class E, class = void>
struct has_rotate_backward : std::false_type {};
template <class E>
struct has_rotate_backward<E, void_t<decltype(std::declval<const E&>().rotate_backward(
                                  std::declval<MatrixRef<typename E::Scalar>>(),
                                  std::declval<const Positions&>(), Index{}))>> : std::true_type {};
template <class E, class = void>
struct has_rotate_queries_backward : std::false_type {};
template <class E>
struct has_rotate_queries_backward<
    E,
    void_t<decltype(std::declval<const E&>().rotate_queries_backward(
        std::declval<MatrixRef<typename E::Scalar>>(), std::declval<const Positions&>(), Index{}))>>
    : std::true_type {};
template <class E, class = void>
struct has_rotate_keys_backward : std::false_type {};
template <class E>
struct has_rotate_keys_backward<E, void_t<decltype(std::declval<const E&>().rotate_keys_backward(
                                       std::declval<MatrixRef<typename E::Scalar>>(),
                                       std::declval<const Positions&>(), Index{}))>>
    : std::true_type {};

template <class E, class = void>
struct has_add_to_input_backward : std::false_type {};
template <class E>
struct has_add_to_input_backward<
    E, void_t<decltype(std::declval<const E&>().add_to_input_backward(
           std::declval<const ConstMatrixRef<typename E::Scalar>&>(),
           std::declval<const Positions&>(), std::declval<typename gradients_of<E>::type&>()))>>
    : std::true_type {};

template <class B, class T, class G, class = void>
struct has_add_grad : std::false_type {};
template <class B, class T, class G>
struct has_add_grad<
    B, T, G,
    void_t<decltype(std::declval<const B&>().add_grad(
        Index{}, Index{}, Index{}, std::declval<const ConstMatrixRef<T>&>(),
        std::declval<const ConstMatrixRef<T>&>(), std::declval<const ConstMatrixRef<T>&>(),
        std::declval<MatrixRef<T>>(), std::declval<MatrixRef<T>>(), std::declval<G&>()))>>
    : std::true_type {};
template <class B, class T, class G, class = void>
struct has_add_values_grad : std::false_type {};
template <class B, class T, class G>
struct has_add_values_grad<B, T, G,
                           void_t<decltype(std::declval<const B&>().add_values_grad(
                               Index{}, Index{}, Index{}, std::declval<const ConstMatrixRef<T>&>(),
                               std::declval<const ConstMatrixRef<T>&>(),
                               std::declval<MatrixRef<T>>(), std::declval<G&>()))>>
    : std::true_type {};

template <class B, class G, class = void>
struct has_finish_grad : std::false_type {};
template <class B, class G>
struct has_finish_grad<B, G,
                       void_t<decltype(std::declval<const B&>().finish_grad(std::declval<G&>()))>>
    : std::true_type {};
// any member of that name, callable or not (a malformed hook must not be skipped silently)
template <class B, class = void>
struct names_finish_grad : std::false_type {};
template <class B>
struct names_finish_grad<B, void_t<decltype(&B::finish_grad)>> : std::true_type {};

template <class E, class = void>
struct has_zero_gradients : std::false_type {};
template <class E>
struct has_zero_gradients<E, void_t<decltype(std::declval<const E&>().zero_gradients())>>
    : std::true_type {};

/// Compile-time checks that E can be differentiated through: a backward hook for every forward
/// rotation, gradient hooks on its score-bias object, zero_gradients with Gradients.
template <class E>
struct check_backward_hooks {
  using T = typename E::Scalar;
  using G = typename gradients_of<E>::type;
  static_assert(!has_rotate<E>::value || has_rotate_backward<E>::value,
                "posenc: the encoder rotates Q and K but has no `rotate_backward` hook "
                "(`void rotate_backward(posenc::MatrixRef<Scalar> g, const posenc::Positions&, "
                "posenc::Index heads) const`, the transpose of rotate)");
  static_assert(!has_rotate_queries<E>::value || has_rotate_queries_backward<E>::value,
                "posenc: the encoder has `rotate_queries` but no `rotate_queries_backward`");
  static_assert(!has_rotate_keys<E>::value || has_rotate_keys_backward<E>::value,
                "posenc: the encoder has `rotate_keys` but no `rotate_keys_backward`");
  static_assert(std::is_same<G, NoGradients>::value || has_zero_gradients<E>::value,
                "posenc: an encoder with `Gradients` needs `Gradients zero_gradients() const`");
  static constexpr bool value = true;
};

template <class E>
typename gradients_of<E>::type zero_gradients_of([[maybe_unused]] const E& enc) {
  if constexpr (has_zero_gradients<E>::value)
    return enc.zero_gradients();
  else
    return typename gradients_of<E>::type{};
}

template <class E>
void rotate_queries_backward([[maybe_unused]] const E& enc,
                             [[maybe_unused]] MatrixRef<typename E::Scalar> g,
                             [[maybe_unused]] const Positions& pos, [[maybe_unused]] Index heads) {
  if constexpr (has_rotate_queries<E>::value)
    enc.rotate_queries_backward(g, pos, heads);
  else if constexpr (has_rotate<E>::value)
    enc.rotate_backward(g, pos, heads);
}
template <class E>
void rotate_keys_backward([[maybe_unused]] const E& enc,
                          [[maybe_unused]] MatrixRef<typename E::Scalar> g,
                          [[maybe_unused]] const Positions& pos, [[maybe_unused]] Index kv_heads) {
  if constexpr (has_rotate_keys<E>::value)
    enc.rotate_keys_backward(g, pos, kv_heads);
  else if constexpr (has_rotate<E>::value)
    enc.rotate_backward(g, pos, kv_heads);
}

}  // namespace detail

/// The trained-parameter gradients type of encoder E (NoGradients when it has none).
template <class E>
using gradients_t = typename detail::gradients_of<E>::type;

/// The attention core's forward pass that also keeps what its backward needs: out as
/// posenc::attend, and lse [H, Nq], each query row's log-sum-exp of its visible scores (sink
/// included), +inf for a row that sees no key.
template <class E>
void attend(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
            const ConstMatrixRef<typename E::Scalar>& k,
            const ConstMatrixRef<typename E::Scalar>& v, const Positions& q_positions,
            const Positions& k_positions, const AttendOptions<typename E::Scalar>& options,
            MatrixRef<typename E::Scalar> out, MatrixRef<typename E::Scalar> lse) {
  using T = typename E::Scalar;
  detail::check_attend<T>("attend", q.rows(), q.cols(), k.rows(), k.cols(), v.rows(), v.cols(),
                          out.rows(), out.cols(), q_positions, k_positions, options);
  detail::require(lse.rows() == options.heads && lse.cols() == q.rows(), "attend: lse is [",
                  lse.rows(), ", ", lse.cols(), "], expected [H, Nq] = [", options.heads, ", ",
                  q.rows(), "]");
  detail::require(lse.outerStride() == lse.cols() || lse.rows() <= 1,
                  "attend: lse must be contiguous");
  detail::attend_core(enc, q, k, v, q_positions, k_positions, options, out, lse.data());
}

/// Gradients of the attention core: dq, dk, dv of Q, K, V (K and V per key/value head, summed
/// over the query heads that share them), dsinks (one per query head, with sinks) and the
/// encoder's trained parameters.
template <class E>
struct AttendGradients {
  using T = typename E::Scalar;
  Matrix<T> dq, dk, dv;
  std::vector<T> dsinks;
  gradients_t<E> encoder;
};

/// The backward pass of attend: given the forward's inputs, its out and lse, and dout = dL/dO,
/// every gradient (conventions.md section 7). Per tile: P = e^(S - lse), dV += P^T dO,
/// dP = dO V^T (+ the encoder's value term), dS = P o (dP - D) with D_i = dO_i . O_i, soft-cap
/// dS o (1 - tanh^2), dQ += scale dS K, dK += scale dS^T Q, and the encoder's bias terms. Work
/// is split over key/value heads x key tiles (each owns its dK, dV rows; dQ and the encoder's
/// gradients are per thread, summed at the end); tiles no query sees are skipped.
template <class E>
AttendGradients<E> attend_backward(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
                                   const ConstMatrixRef<typename E::Scalar>& k,
                                   const ConstMatrixRef<typename E::Scalar>& v,
                                   const Positions& qpos, const Positions& kpos,
                                   const AttendOptions<typename E::Scalar>& opt,
                                   const ConstMatrixRef<typename E::Scalar>& out,
                                   const ConstMatrixRef<typename E::Scalar>& lse,
                                   const ConstMatrixRef<typename E::Scalar>& dout) {
  using T = typename E::Scalar;
  using G = gradients_t<E>;
  static_assert(detail::check_backward_hooks<E>::value);
  constexpr bool has_bias = encoder_traits<E>::biases_scores;
  constexpr bool has_values = adds_values<E>();
  if constexpr (has_bias) {
    using B = score_bias_t<E>;
    static_assert(detail::has_add_grad<B, T, G>::value,
                  "posenc: the encoder's score-bias object has no `add_grad` hook (see "
                  "posenc/gradients.hpp): it cannot be differentiated");
    static_assert(!has_values || detail::has_add_values_grad<B, T, G>::value,
                  "posenc: the encoder's score-bias object has `add_values` but no "
                  "`add_values_grad` hook (see posenc/gradients.hpp)");
    static_assert(!detail::names_finish_grad<B>::value || detail::has_finish_grad<B, G>::value,
                  "posenc: the encoder's score-bias object has a `finish_grad` that cannot be "
                  "called as `void finish_grad(Gradients&) const` (see posenc/gradients.hpp)");
  }
  const char* who = "attend_backward";
  const Index dh = detail::check_attend<T>(who, q.rows(), q.cols(), k.rows(), k.cols(), v.rows(),
                                           v.cols(), out.rows(), out.cols(), qpos, kpos, opt);
  const Index heads = opt.heads, kv_heads = opt.kv_heads == 0 ? opt.heads : opt.kv_heads;
  const Index nq = q.rows(), nk = k.rows(), group = heads / kv_heads;
  detail::require(lse.rows() == heads && lse.cols() == nq, who, ": lse is [", lse.rows(), ", ",
                  lse.cols(), "], expected [H, Nq] = [", heads, ", ", nq, "]");
  detail::require(dout.rows() == nq && dout.cols() == q.cols(), who, ": dout is [", dout.rows(),
                  ", ", dout.cols(), "], expected the shape of out [", nq, ", ", q.cols(), "]");
  const T scale = opt.scale ? *opt.scale : static_cast<T>(1.0 / std::sqrt(static_cast<double>(dh)));

  AttendGradients<E> r;
  r.dq = detail::new_matrix<T>(nq, q.cols(), who, ": dQ");
  r.dk = detail::new_matrix<T>(nk, k.cols(), who, ": dK");
  r.dv = detail::new_matrix<T>(nk, v.cols(), who, ": dV");
  r.dq.setZero();
  r.dk.setZero();
  r.dv.setZero();
  r.encoder = detail::zero_gradients_of(enc);
  const bool sink = !opt.sinks.empty();
  if (sink) r.dsinks.assign(static_cast<std::size_t>(heads), T(0));
  if (nq == 0 || nk == 0) return r;

  // D[h, i] = dO_i . O_i over head h's columns.
  Matrix<T> dsum = detail::new_matrix<T>(heads, nq, who, ": rowsum(dO o O) [H, Nq]");
  for (Index i = 0; i < nq; ++i)
    for (Index h = 0; h < heads; ++h)
      dsum(h, i) = dout.row(i).segment(h * dh, dh).dot(out.row(i).segment(h * dh, dh));
  // The sinks' gradient: dL/ds_h = -sum_i e^(s_h - lse_i) D_i.
  if (sink) {
    for (Index h = 0; h < heads; ++h) {
      const T sh = opt.sinks[static_cast<std::size_t>(h)];
      if (sh == -std::numeric_limits<T>::infinity()) continue;
      T acc = T(0);
      for (Index i = 0; i < nq; ++i)
        if (std::isfinite(lse(h, i))) acc -= std::exp(sh - lse(h, i)) * dsum(h, i);
      r.dsinks[static_cast<std::size_t>(h)] = acc;
    }
  }

  constexpr Index bq = detail::attention_tiles<T>::query, bk = detail::attention_tiles<T>::key;
  const Index q_tiles = (nq + bq - 1) / bq, k_tiles = (nk + bk - 1) / bk;
  detail::VisibilityRule rule{opt.visibility, !opt.query_segments.empty(),
                              opt.query_segments.data(), opt.key_segments.data()};
  std::vector<detail::BlockRange> qtile(static_cast<std::size_t>(q_tiles)),
      ktile(static_cast<std::size_t>(k_tiles));
  for (Index t = 0; t < q_tiles; ++t)
    qtile[static_cast<std::size_t>(t)] =
        detail::block_range(qpos, opt.query_segments, t * bq, std::min(bq, nq - t * bq));
  for (Index t = 0; t < k_tiles; ++t)
    ktile[static_cast<std::size_t>(t)] =
        detail::block_range(kpos, opt.key_segments, t * bk, std::min(bk, nk - t * bk));
  const auto bias = detail::make_score_bias(enc, qpos, kpos, heads, dh, scale);
  const bool capped = opt.softcap.has_value();
  const T cap = capped ? *opt.softcap : T(1);
  const Index work = kv_heads * k_tiles;
  const bool contiguous = qpos.contiguous() && kpos.contiguous();

  // Threads: work items are dealt out round-robin (a fixed assignment for a given thread
  // count) and each thread's dQ and encoder gradients are added in thread order afterwards, so
  // that one input gives one result bit for bit.
  [[maybe_unused]] const bool parallel = work > 1 && nq * nk * q.cols() > 32768;
#if defined(_OPENMP)
  const int max_threads = parallel ? omp_get_max_threads() : 1;
#else
  const int max_threads = 1;
#endif
  std::vector<Matrix<T>> dq_part(static_cast<std::size_t>(max_threads));
  std::vector<G> g_part(static_cast<std::size_t>(max_threads));
  int used_threads = 1;
  detail::parallel_region(parallel, max_threads, [&] {
#if defined(_OPENMP)
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const int tid = 0, nt = 1;
#endif
#if defined(_OPENMP)
#pragma omp single
#endif
    used_threads = nt;
    Matrix<T>& dq = nt == 1 ? r.dq : dq_part[static_cast<std::size_t>(tid)];
    if (nt > 1) dq = Matrix<T>::Zero(nq, q.cols());
    G& grads = g_part[static_cast<std::size_t>(tid)];
    grads = detail::zero_gradients_of(enc);
    Matrix<T> s(bq, bk), th(bq, bk), dp(bq, bk);
    // The forward's micro-kernels (detail/tile_kernels.hpp) for S = scale Q K^T, dP = dO V^T
    // and dQ += dS (scale K), on the work item's K^T, V^T [Dh, bk] (zero padded) and scale K
    // [bj, Dh], packed once per key tile; dV += P^T dO and dK += dS^T (scale Q) in ptv_tile.
    constexpr int P = detail::tile_packet<T>::size;
    static_assert(bk % P == 0, "the key tile must be a multiple of the SIMD width");
    const bool fast = dh % P == 0 && nq >= 8;
    std::vector<T> kt, vt, ks;
    if (fast) {
      kt.resize(static_cast<std::size_t>(dh * bk));
      vt.resize(static_cast<std::size_t>(dh * bk));
      ks.resize(static_cast<std::size_t>(bk * dh));
    }
    std::vector<Index> col_count(static_cast<std::size_t>(bq));
#if defined(_OPENMP)
#pragma omp for schedule(static, 1)
#endif
    for (Index w = 0; w < work; ++w) {
      const Index g = w / k_tiles, t = w % k_tiles, j0 = t * bk, bj = std::min(bk, nk - j0);
      const auto kh = k.block(j0, g * dh, bj, dh);
      const auto vh = v.block(j0, g * dh, bj, dh);
      if (fast) {
        std::fill(kt.begin(), kt.end(), T(0));
        std::fill(vt.begin(), vt.end(), T(0));
        for (Index j = 0; j < bj; ++j)
          for (Index c = 0; c < dh; ++c) {
            kt[static_cast<std::size_t>(c * bk + j)] = kh(j, c);
            vt[static_cast<std::size_t>(c * bk + j)] = vh(j, c);
            ks[static_cast<std::size_t>(j * dh + c)] = scale * kh(j, c);
          }
      }
      auto dk_t = r.dk.block(j0, g * dh, bj, dh);
      auto dv_t = r.dv.block(j0, g * dh, bj, dh);
      for (Index h = g * group; h < (g + 1) * group; ++h) {
        for (Index qt = 0; qt < q_tiles; ++qt) {
          bool only_causal = false;
          const int seen = rule.classify(qtile[static_cast<std::size_t>(qt)],
                                         ktile[static_cast<std::size_t>(t)], only_causal);
          if (seen == 0) continue;
          const Index i0 = qt * bq, bi = std::min(bq, nq - i0);
          const auto qh = q.block(i0, h * dh, bi, dh);
          auto st = s.topLeftCorner(bi, bj);
          // A causal tile across the diagonal, otherwise fully visible, with contiguous
          // positions: row i keeps its first cols[i] keys, as in the forward pass; the masked
          // parts of S and dP are not computed, P and dS are 0 there.
          const Index* cols = nullptr;
          if (seen == 1 && only_causal && contiguous) {
            for (Index i = 0; i < bi; ++i)
              col_count[static_cast<std::size_t>(i)] = static_cast<Index>(std::clamp<std::int64_t>(
                  detail::saturating_add((qpos.offset() + i0 + i) - (kpos.offset() + j0), 1), 0,
                  bj));
            cols = col_count.data();
          }
          if (fast)
            detail::qk_tile(qh.data(), qh.outerStride(), bi, kt.data(), bk, bj, dh, scale, s.data(),
                            bk, cols);
          else
            st.noalias() = scale * (qh * kh.transpose());
          if (cols)
            for (Index i = 0; i < bi; ++i)
              std::fill(s.data() + i * bk + cols[i], s.data() + i * bk + bj, T(0));
          if constexpr (has_bias) bias.add(h, i0, j0, qh, kh, st);
          auto tht = th.topLeftCorner(bi, bj);
          if (capped) {
            tht.array() = (st.array() / cap).tanh();
            st.array() = cap * tht.array();
          }
          // P = e^(S - lse) (0 in rows that see nothing: lse = +inf), then 0 where not visible.
          // The exponent is clamped from below at -64 (a NaN, max's first operand, is kept) so
          // that P and the tile's products stay normal numbers: subnormals are slow (ALiBi's
          // distant keys gave e^-88 and a backward pass 30% slower); e^-64 = 1.6e-28 is far
          // below the resolution of a row of P, which sums to 1.
          detail::exp_rows_from_lse(s.data(), bk, bi, bj, cols,
                                    lse.data() + h * lse.outerStride() + i0);
          if (seen == 1 && !cols)
            for (Index i = 0; i < bi; ++i) {
              const std::int64_t pi = qpos[i0 + i];
              for (Index j = 0; j < bj; ++j)
                if (!rule.visible(pi, kpos[j0 + j], i0 + i, j0 + j)) st(i, j) = T(0);
            }
          const auto doh = dout.block(i0, h * dh, bi, dh);
          if (fast)
            detail::ptv_tile(s.data(), bk, bi, bj, doh.data(), doh.outerStride(), dh, T(1),
                             dv_t.data(), dv_t.outerStride());
          else
            dv_t.noalias() += st.transpose() * doh;
          auto dpt = dp.topLeftCorner(bi, bj);
          if (fast)
            detail::qk_tile(doh.data(), doh.outerStride(), bi, vt.data(), bk, bj, dh, T(1),
                            dp.data(), bk, cols);
          else
            dpt.noalias() = doh * vh.transpose();
          if constexpr (has_values) bias.add_values_grad(h, i0, j0, st, doh, dpt, grads);
          // dS = P o (dP - D), then through the soft-cap: dS_raw = dS o (1 - tanh^2)
          detail::ds_rows(s.data(), dp.data(), bk, bi, bj, cols, &dsum(h, i0));
          if (capped) dpt.array() *= (T(1) - tht.array().square());
          auto dq_t = dq.block(i0, h * dh, bi, dh);
          if (fast)
            detail::pv_tile(dp.data(), bk, bi, bj, ks.data(), dh, dh,
                            static_cast<const T*>(nullptr), dq_t.data(), dq_t.outerStride(), cols);
          else
            dq_t.noalias() += scale * (dpt * kh);
          if (fast)
            detail::ptv_tile(dp.data(), bk, bi, bj, qh.data(), qh.outerStride(), dh, scale,
                             dk_t.data(), dk_t.outerStride());
          else
            dk_t.noalias() += scale * (dpt.transpose() * qh);
          if constexpr (has_bias) bias.add_grad(h, i0, j0, qh, kh, dpt, dq_t, dk_t, grads);
        }
      }
    }
  });
  if (used_threads > 1)
    for (int t = 0; t < used_threads; ++t)
      r.dq += dq_part[static_cast<std::size_t>(t)];
  for (int t = 0; t < used_threads; ++t)
    r.encoder += g_part[static_cast<std::size_t>(t)];
  if constexpr (has_bias) {
    if constexpr (detail::has_finish_grad<score_bias_t<E>, G>::value) bias.finish_grad(r.encoder);
  }
  return r;
}

/// Gradients of an attention layer: of X, the weights, the biases the layer has (empty where
/// it has none), the sinks, and the encoder's trained parameters (learned table, T5 table,
/// ...).
template <class E>
struct AttentionGradients {
  using T = typename E::Scalar;
  Matrix<T> dx, dwq, dwk, dwv, dwo;
  Vector<T> dbq, dbk, dbv, dbo;
  std::vector<T> dsinks;
  gradients_t<E> encoder;
};

/// The backward pass of attention(x, wq, wk, wv, wo, enc, opt) given dy = dL/dY [N, D]
/// (conventions.md section 7): the forward is recomputed keeping X', Q, K, V (rotated), O and
/// the row log-sum-exp (O(N D) memory), then dO = dY Wo^T, the core's backward, the rotations'
/// transposes, dW = X'^T dQ (etc.), dX = dQ Wq^T + dK Wk^T + dV Wv^T, and an additive
/// encoder's table gradient from dX' (= dX).
template <class E>
AttentionGradients<E> attention_backward(const ConstMatrixRef<typename E::Scalar>& x,
                                         const ConstMatrixRef<typename E::Scalar>& wq,
                                         const ConstMatrixRef<typename E::Scalar>& wk,
                                         const ConstMatrixRef<typename E::Scalar>& wv,
                                         const ConstMatrixRef<typename E::Scalar>& wo, const E& enc,
                                         const AttentionOptions<typename E::Scalar>& opt,
                                         const ConstMatrixRef<typename E::Scalar>& dy) {
  using T = typename E::Scalar;
  static_assert(detail::check_backward_hooks<E>::value);
  if constexpr (encoder_traits<E>::adds_to_input &&
                !std::is_same<gradients_t<E>, NoGradients>::value)
    static_assert(detail::has_add_to_input_backward<E>::value,
                  "posenc: the encoder adds trained values to the input but has no "
                  "`add_to_input_backward` hook (see posenc/gradients.hpp)");
  const char* who = "attention_backward";
  const Index n = x.rows(), d = x.cols();
  detail::check_layer(enc, d, opt, wq, wk, wv, wo, [&] {
    detail::require(dy.rows() == n && dy.cols() == d, who, ": dY is [", dy.rows(), ", ", dy.cols(),
                    "], expected the shape of X [", n, ", ", d, "]");
    detail::require(opt.segments.empty() || static_cast<Index>(opt.segments.size()) == n, who,
                    ": segments has ", opt.segments.size(), " entries, X has N = ", n, " rows");
  });
  const Positions pos = detail::positions_of(opt, n);
  const Index qw = wq.cols(), kw = wk.cols(), hkv = opt.resolved_kv_heads();

  // Forward, keeping what the backward reads.
  Matrix<T> xe;
  if constexpr (encoder_traits<E>::adds_to_input) {
    xe = detail::new_matrix<T>(n, d, who, ": X + PE [N, D]");
    xe = x;
    enc.add_to_input(xe, pos);
  }
  const auto src = [&]() -> ConstMatrixRef<T> {
    if constexpr (encoder_traits<E>::adds_to_input)
      return xe;
    else
      return x;
  }();
  Matrix<T> q = detail::new_matrix<T>(n, qw, who, ": Q"),
            k = detail::new_matrix<T>(n, kw, who, ": K"),
            v = detail::new_matrix<T>(n, kw, who, ": V"),
            o = detail::new_matrix<T>(n, qw, who, ": O"),
            lse = detail::new_matrix<T>(opt.heads, n, who, ": lse [H, N]");
  detail::project_qkv<T>(src, wq, wk, wv, opt, q, k, v);
  detail::rotate_queries(enc, MatrixRef<T>(q), pos, opt.heads);
  detail::rotate_keys(enc, MatrixRef<T>(k), pos, hkv);
  const AttendOptions<T> ao = detail::attend_options(opt, opt.segments);
  detail::attend_core(enc, q, k, v, pos, pos, ao, o, lse.data());

  AttentionGradients<E> r;
  // Y = O Wo + bo
  r.dwo.noalias() = o.transpose() * dy;
  if (opt.bo.size()) r.dbo = dy.colwise().sum().transpose();
  const Matrix<T> dout = dy * wo.transpose();
  auto core = attend_backward(enc, q, k, v, pos, pos, ao, o, lse, dout);
  r.dsinks = std::move(core.dsinks);
  r.encoder = std::move(core.encoder);
  detail::rotate_queries_backward(enc, MatrixRef<T>(core.dq), pos, opt.heads);
  detail::rotate_keys_backward(enc, MatrixRef<T>(core.dk), pos, hkv);
  // Q = X' Wq + bq, ...
  r.dwq.noalias() = src.transpose() * core.dq;
  r.dwk.noalias() = src.transpose() * core.dk;
  r.dwv.noalias() = src.transpose() * core.dv;
  if (opt.bq.size()) r.dbq = core.dq.colwise().sum().transpose();
  if (opt.bk.size()) r.dbk = core.dk.colwise().sum().transpose();
  if (opt.bv.size()) r.dbv = core.dv.colwise().sum().transpose();
  r.dx = detail::new_matrix<T>(n, d, who, ": dX");
  r.dx.noalias() = core.dq * wq.transpose();
  r.dx.noalias() += core.dk * wk.transpose();
  r.dx.noalias() += core.dv * wv.transpose();
  // X' = X + PE(p): dX = dX', and the table's gradient.
  if constexpr (detail::has_add_to_input_backward<E>::value)
    enc.add_to_input_backward(r.dx, pos, r.encoder);
  return r;
}

POSENC_NAMESPACE_END
