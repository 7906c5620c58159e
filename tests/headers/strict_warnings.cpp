// Every class and attention entry point of the library instantiated for float and double, so
// that the strict-warning tests (tests/CMakeLists.txt: -Wall -Wextra -Wconversion -Wshadow
// -Werror, with GCC and with Clang) see every template body of the headers.
#include <posenc/posenc.hpp>

#define POSENC_INSTANTIATE(T)                                                     \
  template class posenc::SinusoidalEncoding<T>;                                   \
  template class posenc::LearnedEncoding<T>;                                      \
  template class posenc::RotaryEncoding<T>;                                       \
  template class posenc::AlibiEncoding<T>;                                        \
  template class posenc::T5Encoding<T>;                                           \
  template class posenc::ShawEncoding<T>;                                         \
  template class posenc::TransformerXLEncoding<T>;                                \
  template class posenc::KVCache<T>;                                              \
  template class posenc::AttentionTemperatureEncoding<T>;                         \
  template class posenc::BertRelativeEncoding<T>;                                 \
  template class posenc::DebertaEncoding<T>;                                      \
  template posenc::DebertaTables<T> posenc::deberta_relative_tables<T>(           \
      const posenc::ConstMatrixRef<T>&, const posenc::ConstVectorRef<T>&,         \
      const posenc::ConstVectorRef<T>&, double, const posenc::ConstMatrixRef<T>&, \
      const posenc::ConstVectorRef<T>&, const posenc::ConstMatrixRef<T>&,         \
      const posenc::ConstVectorRef<T>&, posenc::Index);
POSENC_INSTANTIATE(float)
POSENC_INSTANTIATE(double)
template <class E>
void instantiate_attention() {
  using T = typename E::Scalar;
  posenc::Matrix<T> x, w, y;
  posenc::AttentionOptions<T> o;
  posenc::KVCache<T> c;
  const E* e = nullptr;
  posenc::attention(x, w, w, w, w, *e, o, y);
  posenc::attention_step(x, w, w, w, w, *e, o, c, y);
  posenc::MultiHeadAttention<E> m(w, w, w, w, *e, o);
  (void)m(x);
}
template void instantiate_attention<posenc::NoEncoding<float>>();
template void instantiate_attention<posenc::SinusoidalEncoding<float>>();
template void instantiate_attention<posenc::LearnedEncoding<float>>();
template void instantiate_attention<posenc::RotaryEncoding<float>>();
template void instantiate_attention<posenc::AlibiEncoding<float>>();
template void instantiate_attention<posenc::T5Encoding<float>>();
template void instantiate_attention<posenc::ShawEncoding<float>>();
template void instantiate_attention<posenc::TransformerXLEncoding<float>>();
template void instantiate_attention<posenc::NoEncoding<double>>();
template void instantiate_attention<posenc::SinusoidalEncoding<double>>();
template void instantiate_attention<posenc::LearnedEncoding<double>>();
template void instantiate_attention<posenc::RotaryEncoding<double>>();
template void instantiate_attention<posenc::AlibiEncoding<double>>();
template void instantiate_attention<posenc::T5Encoding<double>>();
template void instantiate_attention<posenc::ShawEncoding<double>>();
template void instantiate_attention<posenc::TransformerXLEncoding<double>>();
template void instantiate_attention<posenc::AttentionTemperatureEncoding<float>>();
template void instantiate_attention<posenc::AttentionTemperatureEncoding<double>>();
template void instantiate_attention<posenc::BertRelativeEncoding<float>>();
template void instantiate_attention<posenc::BertRelativeEncoding<double>>();
template void instantiate_attention<posenc::DebertaEncoding<float>>();
template void instantiate_attention<posenc::DebertaEncoding<double>>();

// Re-rotation, cache eviction and layout conversion (conventions.md 3b, 3d).
template <class T>
void instantiate_rerotation() {
  posenc::Matrix<T> x;
  const posenc::Positions p(0, 0);
  const posenc::RotaryEncoding<T> r(8);
  const auto f = r.frequencies(0);
  r.rotate(x, p, 1, f);
  r.unrotate(x, p, 1);
  r.shift(x, p, 1, -1, f);
  r.rerotate(x, p, 1, f, f);
  r.rerotate_for(x, p, 1, 0, 1);
  posenc::KVCache<T> c;
  posenc::evict_and_shift(r, c, 0, 0, 1);
  posenc::evict_and_shift(posenc::AlibiEncoding<T>(1), c, 0, 0, 1);
  (void)posenc::convert_rotary_layout<T>(x, 1, 8, 8, posenc::RotaryLayout::half,
                                         posenc::RotaryLayout::interleaved);
}
template void instantiate_rerotation<float>();
template void instantiate_rerotation<double>();

// The backward passes (posenc/gradients.hpp): the core's, with the forward that keeps the row
// log-sum-exp, and the layer's, for every built-in encoder.
template <class E>
void instantiate_backward() {
  using T = typename E::Scalar;
  posenc::Matrix<T> m;
  const posenc::Positions p(0, 0);
  posenc::AttendOptions<T> ao;
  posenc::AttentionOptions<T> o;
  const E* e = nullptr;
  posenc::attend(*e, m, m, m, p, p, ao, m, m);
  const auto core = posenc::attend_backward(*e, m, m, m, p, p, ao, m, m, m);
  const auto layer = posenc::attention_backward(m, m, m, m, m, *e, o, m);
  auto grads = core.encoder;
  grads += layer.encoder;
  grads.for_each([](const auto&, const posenc::Matrix<T>&) {});
}
#define POSENC_INSTANTIATE_BACKWARD(T)                                           \
  template void instantiate_backward<posenc::NoEncoding<T>>();                   \
  template void instantiate_backward<posenc::SinusoidalEncoding<T>>();           \
  template void instantiate_backward<posenc::LearnedEncoding<T>>();              \
  template void instantiate_backward<posenc::RotaryEncoding<T>>();               \
  template void instantiate_backward<posenc::AlibiEncoding<T>>();                \
  template void instantiate_backward<posenc::T5Encoding<T>>();                   \
  template void instantiate_backward<posenc::ShawEncoding<T>>();                 \
  template void instantiate_backward<posenc::TransformerXLEncoding<T>>();        \
  template void instantiate_backward<posenc::AttentionTemperatureEncoding<T>>(); \
  template void instantiate_backward<posenc::BertRelativeEncoding<T>>();         \
  template void instantiate_backward<posenc::DebertaEncoding<T>>();              \
  template void instantiate_backward<typename posenc::MultiAxisRotaryEncoding<T>::Bound>();
POSENC_INSTANTIATE_BACKWARD(float)
POSENC_INSTANTIATE_BACKWARD(double)
int main() {}

#if POSENC_TEST_HAVE_HF
// The Hugging Face front-end and checkpoint reader, every template body.
#include <posenc/hf_checkpoint.hpp>
template struct posenc::hf::Layer<float>;
template struct posenc::hf::Layer<double>;
template posenc::hf::Layer<float> posenc::hf::load_layer<float>(
    const posenc::hf::ModelConfig&, posenc::Index, const posenc::safetensors::Checkpoint&);
template posenc::hf::Layer<double> posenc::hf::load_layer<double>(
    const posenc::hf::ModelConfig&, posenc::Index, const posenc::safetensors::Checkpoint&);
template posenc::LearnedEncoding<float> posenc::hf::load_position_table<float>(
    const posenc::hf::ModelConfig&, const posenc::safetensors::Checkpoint&);
template posenc::Matrix<float> posenc::safetensors::File::matrix<float>(std::string_view) const;
template posenc::Matrix<double> posenc::safetensors::Checkpoint::transposed<double>(
    std::string_view, posenc::Index, posenc::Index) const;
#endif

// Keys and values kept as bfloat16 or half: the cache, the layer step, attend (also on Q and
// outputs in S), a layer on S inputs, RoPE in place.
template <class S>
void instantiate_half_storage() {
  posenc::Matrix<float> x, w, y;
  posenc::Matrix<S> k;
  const posenc::Positions p(0, 0);
  posenc::AttentionOptions<float> o;
  posenc::AttendOptions<float> ao;
  posenc::KVCache<float, S> c;
  const posenc::RotaryEncoding<float> r(8);
  posenc::attention_step(x, w, w, w, w, r, o, c, y);
  posenc::attention_step(x, w, w, w, w, posenc::AlibiEncoding<float>(1), o, c, y);
  posenc::attend(posenc::T5Encoding<float>(w), x, k, k, p, p, ao, y);
  posenc::attend(posenc::ShawEncoding<float>(w, w), x, k, k, p, p, ao, y);
  posenc::Matrix<S> ks;
  posenc::attend(posenc::AlibiEncoding<float>(1), k, k, k, p, p, ao, y);
  posenc::attend(posenc::NoEncoding<float>{}, k, k, k, p, p, ao, ks);
  posenc::attention(k, w, w, w, w, r, o, ks);
  posenc::attention(k, k, k, k, k, r, o, ks);
  r.rotate(k, p, 1);
}
template class posenc::KVCache<float, Eigen::bfloat16>;
template class posenc::KVCache<float, Eigen::half>;
template void instantiate_half_storage<Eigen::bfloat16>();
template void instantiate_half_storage<Eigen::half>();
