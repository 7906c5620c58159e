// posenc: the common, static interface of every encoder.
//
// An encoder is any class with a `Scalar` type that provides some of these hooks (const
// member functions); the attention kernel detects which exist at compile time and calls only
// those, so an absent hook costs nothing (conventions.md section 6 says where each one acts):
//
//   void check(const AttentionShape& shape) const;
//       throws posenc::error if the encoder does not fit an attention layer of that shape
//       (D, H, H_kv, Dh); the older check(Index d_model, Index heads) is accepted too.
//   void add_to_input(MatrixRef<Scalar> x, const Positions& pos) const;
//       X' = X + PE(p), x is [N, D] (sinusoidal, learned).
//   void rotate(MatrixRef<Scalar> qk, const Positions& pos, Index heads) const;
//       rotates every head of Q or K in place, qk is [N, heads * Dh] (RoPE); called with H
//       for Q and H_kv for K.
//   void rotate_queries(MatrixRef<Scalar> q, const Positions& pos, Index heads) const;
//   void rotate_keys(MatrixRef<Scalar> k, const Positions& pos, Index kv_heads) const;
//       for encoders that act on Q and K differently (e.g. a query-only temperature): each,
//       when present, replaces rotate for its side; an encoder with only rotate_queries
//       leaves K as it is.
//   void rerotate_for(MatrixRef<Scalar> x, const Positions& pos, Index heads,
//                     std::int64_t from_max_position, std::int64_t to_max_position) const;
//       for rotations whose frequencies depend on the call's length (RoPE's dynamic and
//       longrope scalings): turns rows rotated by a call whose largest position was `from` into
//       rows rotated by one whose largest position is `to` (conventions.md 3d). attention_step
//       calls it on the cached keys when the sequence grows, so that cached decoding equals one
//       causal call over the whole sequence.
//   ScoreBias score_bias(const Positions& query_pos, const Positions& key_pos,
//                        Index heads, Index head_dim, Scalar scale) const;
//       returns a per-call object b (ALiBi, T5, Shaw, Transformer-XL) with
//         void add(Index h, Index i0, Index j0, const ConstMatrixRef<Scalar>& q,
//                  const ConstMatrixRef<Scalar>& k, MatrixRef<Scalar> s) const;
//       which adds the bias of head h to a tile of scores s [bi, bj] whose rows are queries
//       i0 .. i0+bi-1 and whose columns are keys j0 .. j0+bj-1; q [bi, Dh] and k [bj, Dh] are
//       that tile's queries and keys (after any rotation), for content-dependent terms. s
//       already holds scale * q k^T. Optionally b also has
//         void add_values(Index h, Index i0, Index j0, const ConstMatrixRef<Scalar>& p,
//                         MatrixRef<Scalar> out) const;
//       which adds sum_j p_ij * a(i, j) to out [bi, Dh] (Shaw's A_V term); p may be
//       unnormalised (the kernel normalises afterwards), so the hook must be linear in p.
//
// A user-defined encoder is one small class with the hooks it needs; see
// examples/custom_encoder.cpp.
//
// Sharing between threads: every const member function of the built-in encoders may run on
// any number of threads at once, on one object (the position caches inside are synchronised
// and never freed under a reader); non-const members (set_cache_limit, the writable table(),
// sgd_step, assignment) need the object to themselves. Hooks of a user-defined encoder are
// called concurrently from the kernel's OpenMP threads and must allow the same.
//
// Non-finite values: parameters (bases, factors, scales, tables) and the values derived from
// them (inv_freq, attention factors) are checked when an encoder is built and must be finite;
// tensor data passed to a call (inputs, weights, caches) is not scanned: NaN and Inf
// propagate through the arithmetic per IEEE 754 and are never reported as masking.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "types.hpp"

POSENC_NAMESPACE_BEGIN

namespace detail {
template <class...>
using void_t = void;

template <class E, class = void>
struct has_shape_check : std::false_type {};
template <class E>
struct has_shape_check<
    E, void_t<decltype(std::declval<const E&>().check(std::declval<const AttentionShape&>()))>>
    : std::true_type {};

template <class E, class = void>
struct has_rotate_queries : std::false_type {};
template <class E>
struct has_rotate_queries<E, void_t<decltype(std::declval<const E&>().rotate_queries(
                                 std::declval<MatrixRef<typename E::Scalar>>(),
                                 std::declval<const Positions&>(), Index{}))>> : std::true_type {};

template <class E, class = void>
struct has_rotate_keys : std::false_type {};
template <class E>
struct has_rotate_keys<E, void_t<decltype(std::declval<const E&>().rotate_keys(
                              std::declval<MatrixRef<typename E::Scalar>>(),
                              std::declval<const Positions&>(), Index{}))>> : std::true_type {};

template <class E, class = void>
struct has_check : std::false_type {};
template <class E>
struct has_check<E, void_t<decltype(std::declval<const E&>().check(Index{}, Index{}))>>
    : std::true_type {};

template <class E, class = void>
struct has_add_to_input : std::false_type {};
template <class E>
struct has_add_to_input<
    E, void_t<decltype(std::declval<const E&>().add_to_input(
           std::declval<MatrixRef<typename E::Scalar>>(), std::declval<const Positions&>()))>>
    : std::true_type {};

/// Moving rotated rows to other positions (conventions.md 3d): `void shift(MatrixRef<Scalar>,
/// const Positions&, Index heads, std::int64_t delta, const F& frequencies) const` with
/// `F frequencies(std::int64_t max_position) const` (RotaryEncoding).
template <class E, class = void>
struct has_shift : std::false_type {};
template <class E>
struct has_shift<
    E, void_t<decltype(std::declval<const E&>().shift(
           std::declval<MatrixRef<typename E::Scalar>>(), std::declval<const Positions&>(), Index{},
           std::int64_t{}, std::declval<const E&>().frequencies(std::int64_t{})))>>
    : std::true_type {};

/// The key-cache hook (conventions.md 3d): `void rerotate_for(MatrixRef<Scalar> x, const
/// Positions&, Index heads, std::int64_t from_max_position, std::int64_t to_max_position) const`.
template <class E, class = void>
struct has_rerotate_for : std::false_type {};
template <class E>
struct has_rerotate_for<
    E, void_t<decltype(std::declval<const E&>().rerotate_for(
           std::declval<MatrixRef<typename E::Scalar>>(), std::declval<const Positions&>(), Index{},
           std::int64_t{}, std::int64_t{}))>> : std::true_type {};

template <class E, class = void>
struct has_rotate : std::false_type {};
template <class E>
struct has_rotate<E, void_t<decltype(std::declval<const E&>().rotate(
                         std::declval<MatrixRef<typename E::Scalar>>(),
                         std::declval<const Positions&>(), Index{}))>> : std::true_type {};

template <class E, class = void>
struct has_score_bias : std::false_type {};
template <class E>
struct has_score_bias<E, void_t<decltype(std::declval<const E&>().score_bias(
                             std::declval<const Positions&>(), std::declval<const Positions&>(),
                             Index{}, Index{}, typename E::Scalar{}))>> : std::true_type {};

template <class B, class T, class = void>
struct has_add_values : std::false_type {};
template <class B, class T>
struct has_add_values<B, T,
                      void_t<decltype(std::declval<const B&>().add_values(
                          Index{}, Index{}, Index{}, std::declval<const ConstMatrixRef<T>&>(),
                          std::declval<MatrixRef<T>>()))>> : std::true_type {};

template <class E, class = void>
struct has_scalar : std::false_type {};
template <class E>
struct has_scalar<E, void_t<typename E::Scalar>> : std::true_type {};

// A hook that is declared but malformed (not const, a parameter of the wrong type, a wrong
// count) must be a compile error, not a hook the kernel silently skips. "Declared" is probed
// with arguments that convert to anything, on a non-const object, for 0 to 6 arguments.
struct any_argument {
  template <class U>
  operator U&() const;
};
template <class...>
struct type_list {};
template <std::size_t N, class... A>
struct any_arguments : any_arguments<N - 1, any_argument, A...> {};
template <class... A>
struct any_arguments<0, A...> {
  using type = type_list<A...>;
};

template <class Hook, class E, class Args, class = void>
struct callable_with : std::false_type {};
template <class Hook, class E, class... A>
struct callable_with<Hook, E, type_list<A...>,
                     void_t<decltype(Hook::call(std::declval<E&>(), std::declval<A>()...))>>
    : std::true_type {};
template <class Hook, class E, std::size_t... N>
constexpr bool declares_any(std::index_sequence<N...>) {
  return (callable_with<Hook, E, typename any_arguments<N>::type>::value || ...);
}
/// True when E has a member function named by Hook, whatever its signature.
template <class Hook, class E>
constexpr bool declares() {
  return declares_any<Hook, E>(std::make_index_sequence<7>{});
}

#define POSENC_HOOK_PROBE(hook)                                                   \
  struct hook##_hook {                                                            \
    template <class E, class... A>                                                \
    static auto call(E& e, A&&... a) -> decltype(e.hook(static_cast<A&&>(a)...)); \
  };
POSENC_HOOK_PROBE(check)
POSENC_HOOK_PROBE(add_to_input)
POSENC_HOOK_PROBE(rotate)
POSENC_HOOK_PROBE(rotate_queries)
POSENC_HOOK_PROBE(rotate_keys)
POSENC_HOOK_PROBE(rerotate_for)
POSENC_HOOK_PROBE(score_bias)
POSENC_HOOK_PROBE(add)
POSENC_HOOK_PROBE(add_values)
#undef POSENC_HOOK_PROBE

template <class B, class T, class = void>
struct has_add : std::false_type {};
template <class B, class T>
struct has_add<B, T,
               void_t<decltype(std::declval<const B&>().add(
                   Index{}, Index{}, Index{}, std::declval<const ConstMatrixRef<T>&>(),
                   std::declval<const ConstMatrixRef<T>&>(), std::declval<MatrixRef<T>>()))>>
    : std::true_type {};

/// Compile-time checks of an encoder type: a Scalar of float or double, and every hook it
/// declares well-formed.
template <class E>
struct check_hooks {
  static_assert(has_scalar<E>::value,
                "a posenc encoder must declare `using Scalar = float` (or double)");
  using T = typename E::Scalar;
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "a posenc encoder's Scalar must be float or double");
  static_assert(!declares<check_hook, E>() || has_shape_check<E>::value || has_check<E>::value,
                "posenc: the encoder's `check` hook is malformed; expected "
                "`void check(const posenc::AttentionShape&) const`");
  static_assert(!declares<add_to_input_hook, E>() || has_add_to_input<E>::value,
                "posenc: the encoder's `add_to_input` hook is malformed; expected "
                "`void add_to_input(posenc::MatrixRef<Scalar> x, const posenc::Positions&) const`");
  static_assert(!declares<rotate_hook, E>() || has_rotate<E>::value,
                "posenc: the encoder's `rotate` hook is malformed; expected "
                "`void rotate(posenc::MatrixRef<Scalar> qk, const posenc::Positions&, "
                "posenc::Index heads) const`");
  static_assert(!declares<rerotate_for_hook, E>() || has_rerotate_for<E>::value,
                "posenc: the encoder's `rerotate_for` hook is malformed; expected "
                "`void rerotate_for(posenc::MatrixRef<Scalar> x, const posenc::Positions&, "
                "posenc::Index heads, std::int64_t from_max_position, std::int64_t "
                "to_max_position) const`");
  static_assert(!declares<rotate_queries_hook, E>() || has_rotate_queries<E>::value,
                "posenc: the encoder's `rotate_queries` hook is malformed; expected "
                "`void rotate_queries(posenc::MatrixRef<Scalar> q, const posenc::Positions&, "
                "posenc::Index heads) const`");
  static_assert(!declares<rotate_keys_hook, E>() || has_rotate_keys<E>::value,
                "posenc: the encoder's `rotate_keys` hook is malformed; expected "
                "`void rotate_keys(posenc::MatrixRef<Scalar> k, const posenc::Positions&, "
                "posenc::Index kv_heads) const`");
  static_assert(!declares<score_bias_hook, E>() || has_score_bias<E>::value,
                "posenc: the encoder's `score_bias` hook is malformed; expected "
                "`Bias score_bias(const posenc::Positions& query_pos, const posenc::Positions& "
                "key_pos, posenc::Index heads, posenc::Index head_dim, Scalar scale) const`");
  static constexpr bool value = true;
};

/// The same for the score-bias object B of an encoder with scalar T.
template <class B, class T>
struct check_bias_hooks {
  static_assert(has_add<B, T>::value,
                "posenc: the score-bias object's `add` is missing or malformed; expected "
                "`void add(posenc::Index h, posenc::Index i0, posenc::Index j0, const "
                "posenc::ConstMatrixRef<Scalar>& q, const posenc::ConstMatrixRef<Scalar>& k, "
                "posenc::MatrixRef<Scalar> s) const`");
  static_assert(!declares<add_values_hook, B>() || has_add_values<B, T>::value,
                "posenc: the score-bias object's `add_values` is malformed; expected "
                "`void add_values(posenc::Index h, posenc::Index i0, posenc::Index j0, const "
                "posenc::ConstMatrixRef<Scalar>& p, posenc::MatrixRef<Scalar> out) const`");
  static constexpr bool value = true;
};
}  // namespace detail

/// Which hooks encoder type E provides; read with `if constexpr`.
template <class E>
struct encoder_traits {
  static_assert(detail::check_hooks<E>::value);
  using Scalar = typename E::Scalar;
  static constexpr bool checks_shape =
      detail::has_shape_check<E>::value || detail::has_check<E>::value;
  static constexpr bool adds_to_input = detail::has_add_to_input<E>::value;
  static constexpr bool rotates_qk = detail::has_rotate<E>::value;
  static constexpr bool rotates_queries = detail::has_rotate_queries<E>::value;
  static constexpr bool rotates_keys = detail::has_rotate_keys<E>::value;
  static constexpr bool biases_scores = detail::has_score_bias<E>::value;
};

/// The score-bias object returned by E::score_bias.
template <class E>
using score_bias_t = decltype(std::declval<const E&>().score_bias(
    std::declval<const Positions&>(), std::declval<const Positions&>(), Index{}, Index{},
    typename E::Scalar{}));

/// True when E's score-bias object also adds a value term (Shaw's A_V).
template <class E>
constexpr bool adds_values() {
  if constexpr (encoder_traits<E>::biases_scores) {
    static_assert(detail::check_bias_hooks<score_bias_t<E>, typename E::Scalar>::value);
    return detail::has_add_values<score_bias_t<E>, typename E::Scalar>::value;
  } else {
    return false;
  }
}

namespace detail {

/// The encoder's shape check: check(const AttentionShape&), or the two-argument
/// check(d_model, heads) of encoders written for layers with Dh = D / H.
template <class E>
void check_encoder([[maybe_unused]] const E& enc, [[maybe_unused]] const AttentionShape& shape) {
  if constexpr (has_shape_check<E>::value)
    enc.check(shape);
  else if constexpr (has_check<E>::value)
    enc.check(shape.d_model, shape.heads);
}

/// The queries' hook: rotate_queries if the encoder has it, else rotate (Q and K alike).
template <class E>
void rotate_queries([[maybe_unused]] const E& enc, [[maybe_unused]] MatrixRef<typename E::Scalar> q,
                    [[maybe_unused]] const Positions& pos, [[maybe_unused]] Index heads) {
  if constexpr (has_rotate_queries<E>::value)
    enc.rotate_queries(q, pos, heads);
  else if constexpr (has_rotate<E>::value)
    enc.rotate(q, pos, heads);
}

/// The keys' hook: rotate_keys if the encoder has it, else rotate (unless the encoder acts on
/// queries only, through rotate_queries alone).
template <class E>
void rotate_keys([[maybe_unused]] const E& enc, [[maybe_unused]] MatrixRef<typename E::Scalar> k,
                 [[maybe_unused]] const Positions& pos, [[maybe_unused]] Index kv_heads) {
  if constexpr (has_rotate_keys<E>::value)
    enc.rotate_keys(k, pos, kv_heads);
  else if constexpr (has_rotate<E>::value)
    enc.rotate(k, pos, kv_heads);
}

}  // namespace detail

/// No position information at all: attention is then permutation-equivariant.
template <class T>
class NoEncoding {
 public:
  using Scalar = T;
};

POSENC_NAMESPACE_END
