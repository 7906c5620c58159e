// posenc and ggml (the CPU kernels under llama.cpp) side by side, in one Google Benchmark run:
// the same workloads, registered next to each other so that
// `--benchmark_enable_random_interleaving` samples both sides in the same stretch of time. Built
// only when CMake is given a ggml tree
// (-DPOSENC_GGML_DIR=<source> and its build directory -DPOSENC_GGML_BUILD_DIR, by default
// <source>/build); nothing of ggml is downloaded or kept in this repository.
//
//   rope/<ggml|posenc>/<normal|neox>/N/H/Dh/threads
//        RoPE in place on [N, H Dh] float (ggml_rope_ext_inplace: mode 0 = adjacent pairs, posenc's
//        interleaved layout; mode 2 = NeoX halves, posenc's half layout). posenc keeps its cos/sin
//        cache between calls (built on the first), ggml computes its angles in every call.
//        bytes = 2 |X|.
//   prefill/<side>/<none|alibi>/N/H/Dh/causal/threads      one sequence of N tokens, H heads
//   decode/<side>/N/Hkv/threads                            1 query, H = 32, Dh = 128, N keys
//        sides: ggml_<f32|f16>_<heads|tokens> = ggml_flash_attn_ext with K and V in F32 or F16,
//        head-major ([Dh, N, H_kv] contiguous) or token-major (llama.cpp's cache: [Dh, H_kv, N]
//        viewed through a permutation); posenc_<f32|bf16|f16> = posenc::attend on K and V of that
//        storage (token-major, in a KVCache for decoding). ALiBi: ggml reads -|i - j| from its
//        F16 mask (max_bias 8, llama.cpp's way), posenc computes the bias in its tiles.
//        The counter max_diff is the largest |ggml - posenc f32| over the output (none only:
//        the two ALiBi conventions differ in sign off the causal half), a check that both sides
//        compute the same attention.
#include <ggml-cpu.h>
#include <ggml.h>

#include "common.hpp"
#include "make_encoder.hpp"

#include <posenc/posenc.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace posenc_bench {
namespace {

constexpr Index kDecodeHeads = 32, kDecodeDh = 128;

/// A ggml context with its own memory, freed with the object.
struct GgmlContext {
  ggml_context* ctx = nullptr;
  explicit GgmlContext(std::size_t bytes) {
    ggml_init_params p{};
    p.mem_size = bytes + 64 * ggml_tensor_overhead() + ggml_graph_overhead() + (1u << 20);
    p.mem_buffer = nullptr;
    p.no_alloc = false;
    ctx = ggml_init(p);
    if (!ctx) throw std::runtime_error("compare_ggml: ggml_init failed");
  }
  ~GgmlContext() { ggml_free(ctx); }
  GgmlContext(const GgmlContext&) = delete;
  GgmlContext& operator=(const GgmlContext&) = delete;
};

/// A graph computing `out`, planned for `threads`, with its work buffer.
struct GgmlGraph {
  ggml_cgraph* graph;
  ggml_cplan plan;
  std::vector<std::uint8_t> work;
  GgmlGraph(ggml_context* ctx, ggml_tensor* out, int threads) {
    graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, out);
    plan = ggml_graph_plan(graph, threads, nullptr);
    work.resize(plan.work_size);
    plan.work_data = work.empty() ? nullptr : work.data();
  }
  void compute() {
    if (ggml_graph_compute(graph, &plan) != GGML_STATUS_SUCCESS)
      throw std::runtime_error("compare_ggml: ggml_graph_compute failed");
  }
};

/// Token-major [n, heads dh] (posenc's layout) into a ggml tensor of `type`, token-major
/// ([dh, heads, n] contiguous) or head-major ([dh, n, heads] contiguous).
void fill(ggml_tensor* t, const Matrix<float>& x, Index heads, bool head_major) {
  const Index n = x.rows(), dh = x.cols() / heads;
  std::vector<float> buf(static_cast<std::size_t>(x.size()));
  for (Index i = 0; i < n; ++i)
    for (Index h = 0; h < heads; ++h)
      for (Index d = 0; d < dh; ++d) {
        const Index at = head_major ? (h * n + i) * dh + d : (i * heads + h) * dh + d;
        buf[static_cast<std::size_t>(at)] = x(i, h * dh + d);
      }
  if (t->type == GGML_TYPE_F32)
    std::memcpy(t->data, buf.data(), buf.size() * sizeof(float));
  else
    ggml_fp32_to_fp16_row(buf.data(), static_cast<ggml_fp16_t*>(t->data),
                          static_cast<std::int64_t>(buf.size()));
}

/// K or V for flash_attn_ext: [dh, n, heads], contiguous (head-major) or a permuted view of a
/// token-major [dh, heads, n] tensor.
ggml_tensor* kv_tensor(ggml_context* ctx, ggml_type type, const Matrix<float>& x, Index heads,
                       bool head_major) {
  const Index n = x.rows(), dh = x.cols() / heads;
  ggml_tensor* t = head_major ? ggml_new_tensor_3d(ctx, type, dh, n, heads)
                              : ggml_new_tensor_3d(ctx, type, dh, heads, n);
  fill(t, x, heads, head_major);
  return head_major ? t : ggml_permute(ctx, t, 0, 2, 1, 3);
}

std::size_t bytes_of(ggml_type type, Index elements) {
  return static_cast<std::size_t>(elements) * (type == GGML_TYPE_F32 ? 4u : 2u);
}

enum Side : int {
  ggml_f32_heads,
  ggml_f32_tokens,
  ggml_f16_heads,
  ggml_f16_tokens,
  posenc_f32,
  posenc_bf16,
  posenc_f16
};
const char* side_name(int s) {
  static const char* names[] = {"ggml_f32_heads",  "ggml_f32_tokens", "ggml_f16_heads",
                                "ggml_f16_tokens", "posenc_f32",      "posenc_bf16",
                                "posenc_f16"};
  return names[s];
}
bool is_ggml(int s) {
  return s <= ggml_f16_tokens;
}

/// posenc::attend on K, V kept as S (float, bfloat16, half), into o.
template <class S, class E>
void posenc_attend(const E& enc, const Matrix<float>& q, const Matrix<float>& k,
                   const Matrix<float>& v, const posenc::Positions& qpos,
                   const posenc::Positions& kpos, const posenc::AttendOptions<float>& opt,
                   Matrix<float>& o, benchmark::State& st) {
  if constexpr (std::is_same<S, float>::value) {
    posenc::attend(enc, q, k, v, qpos, kpos, opt, o);
    for (auto _ : st) {
      posenc::attend(enc, q, k, v, qpos, kpos, opt, o);
      benchmark::DoNotOptimize(o.data());
      benchmark::ClobberMemory();
    }
  } else {
    const Matrix<S> ks = k.cast<S>(), vs = v.cast<S>();
    posenc::attend(enc, q, ks, vs, qpos, kpos, opt, o);
    for (auto _ : st) {
      posenc::attend(enc, q, ks, vs, qpos, kpos, opt, o);
      benchmark::DoNotOptimize(o.data());
      benchmark::ClobberMemory();
    }
  }
}

/// ggml_flash_attn_ext on the same q, k, v (token-major posenc matrices), its output compared
/// with posenc's f32 result `ref` (empty: not compared).
void ggml_attend(int side, const Matrix<float>& q, const Matrix<float>& k, const Matrix<float>& v,
                 Index heads, Index kv_heads, bool causal, bool alibi, int threads,
                 const Matrix<float>& ref, benchmark::State& st) {
  const Index nq = q.rows(), nk = k.rows(), dh = q.cols() / heads;
  const ggml_type type =
      side == ggml_f32_heads || side == ggml_f32_tokens ? GGML_TYPE_F32 : GGML_TYPE_F16;
  const bool head_major = side == ggml_f32_heads || side == ggml_f16_heads;
  const bool masked = causal || alibi;
  GgmlContext c(bytes_of(GGML_TYPE_F32, q.size()) + 2 * bytes_of(type, k.size()) +
                (masked ? bytes_of(GGML_TYPE_F16, nq * nk) : 0) +
                bytes_of(GGML_TYPE_F32, q.size()));
  // q: token-major [dh, heads, nq] viewed as [dh, nq, heads], as llama.cpp passes it
  ggml_tensor* qt = ggml_new_tensor_3d(c.ctx, GGML_TYPE_F32, dh, heads, nq);
  fill(qt, q, heads, false);
  ggml_tensor* qv = ggml_permute(c.ctx, qt, 0, 2, 1, 3);
  ggml_tensor* kt = kv_tensor(c.ctx, type, k, kv_heads, head_major);
  ggml_tensor* vt = kv_tensor(c.ctx, type, v, kv_heads, head_major);
  ggml_tensor* mask = nullptr;
  if (masked) {
    // [nk, nq]: 0 (or ALiBi's -|i - j|) where visible, -inf where not; queries are the last nq
    // positions of nk
    mask = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F16, nk, nq);
    std::vector<float> row(static_cast<std::size_t>(nk));
    for (Index i = 0; i < nq; ++i) {
      const Index pi = nk - nq + i;
      for (Index j = 0; j < nk; ++j) {
        const bool visible = !causal || j <= pi;
        row[static_cast<std::size_t>(j)] = !visible ? -INFINITY
                                           : alibi  ? -static_cast<float>(std::abs(pi - j))
                                                    : 0.0f;
      }
      ggml_fp32_to_fp16_row(row.data(), static_cast<ggml_fp16_t*>(mask->data) + i * nk, nk);
    }
  }
  ggml_tensor* out = ggml_flash_attn_ext(
      c.ctx, qv, kt, vt, mask, 1.0f / std::sqrt(static_cast<float>(dh)), alibi ? 8.0f : 0.0f, 0.0f);
  GgmlGraph g(c.ctx, out, threads);
  g.compute();
  if (ref.size() > 0) {
    // out: [dh, heads, nq] = token-major [nq, heads dh]
    const float* o = static_cast<const float*>(out->data);
    double diff = 0;
    for (Index i = 0; i < ref.size(); ++i)
      diff = std::max(diff, std::abs(double(o[i]) - double(ref.data()[i])));
    st.counters["max_diff"] = diff;
  }
  for (auto _ : st) {
    g.compute();
    benchmark::DoNotOptimize(out->data);
    benchmark::ClobberMemory();
  }
}

// prefill: args N, H, Dh, causal, alibi, threads
void BM_prefill(benchmark::State& st, int side) {
  const Index n = st.range(0), heads = st.range(1), dh = st.range(2);
  const bool causal = st.range(3) != 0, alibi = st.range(4) != 0;
  const int threads = static_cast<int>(st.range(5));
  set_threads(threads);
  const Matrix<float> q = random<float>(n, heads * dh), k = random<float>(n, heads * dh),
                      v = random<float>(n, heads * dh);
  Matrix<float> o(n, heads * dh);
  posenc::AttendOptions<float> opt;
  opt.heads = heads;
  opt.visibility.causal = causal;
  const posenc::Positions pos(0, n);
  const posenc::NoEncoding<float> none;
  const posenc::AlibiEncoding<float> al(heads);
  if (is_ggml(side)) {
    Matrix<float> ref;
    if (!alibi) {
      ref.resize(n, heads * dh);
      posenc::attend(none, q, k, v, pos, pos, opt, ref);
    }
    ggml_attend(side, q, k, v, heads, heads, causal, alibi, threads, ref, st);
  } else {
    auto run = [&](const auto& enc) {
      if (side == posenc_f32)
        posenc_attend<float>(enc, q, k, v, pos, pos, opt, o, st);
      else if (side == posenc_bf16)
        posenc_attend<Eigen::bfloat16>(enc, q, k, v, pos, pos, opt, o, st);
      else
        posenc_attend<Eigen::half>(enc, q, k, v, pos, pos, opt, o, st);
    };
    if (alibi)
      run(al);
    else
      run(none);
  }
  const double flop = 4.0 * double(n) * double(n) * double(dh) * double(heads);
  st.counters["FLOP/s"] = benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate);
}

// decode: args N, Hkv, threads; 1 query at position N against N cached keys
void BM_decode(benchmark::State& st, int side) {
  const Index n = st.range(0), kv_heads = st.range(1), heads = kDecodeHeads, dh = kDecodeDh;
  const int threads = static_cast<int>(st.range(2));
  set_threads(threads);
  const Matrix<float> q = random<float>(1, heads * dh), k = random<float>(n, kv_heads * dh),
                      v = random<float>(n, kv_heads * dh);
  Matrix<float> o(1, heads * dh);
  posenc::AttendOptions<float> opt;
  opt.heads = heads;
  opt.kv_heads = kv_heads;
  const posenc::Positions qpos(n, 1), kpos(0, n);
  const posenc::NoEncoding<float> none;
  std::size_t elem = 4;
  if (is_ggml(side)) {
    Matrix<float> ref(1, heads * dh);
    posenc::attend(none, q, k, v, qpos, kpos, opt, ref);
    ggml_attend(side, q, k, v, heads, kv_heads, false, false, threads, ref, st);
    if (side == ggml_f16_heads || side == ggml_f16_tokens) elem = 2;
  } else {
    // from a KVCache, as an inference engine keeps it (huge pages advised)
    auto run = [&](auto tag) {
      using S = decltype(tag);
      posenc::KVCache<float, S> cache;
      cache.reserve(kv_heads * dh, n);
      cache.append(k, v, kpos);
      posenc::attend(none, q, cache.keys(), cache.values(), qpos, kpos, opt, o);
      for (auto _ : st) {
        posenc::attend(none, q, cache.keys(), cache.values(), qpos, kpos, opt, o);
        benchmark::DoNotOptimize(o.data());
        benchmark::ClobberMemory();
      }
    };
    if (side == posenc_f32)
      run(float{});
    else if (side == posenc_bf16)
      run(Eigen::bfloat16{}), elem = 2;
    else
      run(Eigen::half{}), elem = 2;
  }
  const double bytes = 2.0 * double(n) * double(kv_heads * dh) * double(elem);
  st.counters["bytes_per_second"] = benchmark::Counter(
      bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
}

// rope: args N, H, Dh, threads; mode 0 (normal) or 2 (neox)
void BM_rope(benchmark::State& st, bool ggml_side, int mode) {
  const Index n = st.range(0), heads = st.range(1), dh = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  set_threads(threads);
  Matrix<float> x = random<float>(n, heads * dh);
  if (ggml_side) {
    GgmlContext c(bytes_of(GGML_TYPE_F32, x.size()) + static_cast<std::size_t>(n) * 4);
    ggml_tensor* t = ggml_new_tensor_3d(c.ctx, GGML_TYPE_F32, dh, heads, n);
    std::memcpy(t->data, x.data(), static_cast<std::size_t>(x.size()) * sizeof(float));
    ggml_tensor* pos = ggml_new_tensor_1d(c.ctx, GGML_TYPE_I32, n);
    for (Index i = 0; i < n; ++i)
      static_cast<std::int32_t*>(pos->data)[i] = static_cast<std::int32_t>(i);
    ggml_tensor* r = ggml_rope_ext_inplace(c.ctx, t, pos, nullptr, static_cast<int>(dh), mode, 0,
                                           10000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f);
    GgmlGraph g(c.ctx, r, threads);
    g.compute();
    for (auto _ : st) {
      g.compute();
      benchmark::DoNotOptimize(t->data);
      benchmark::ClobberMemory();
    }
  } else {
    posenc::RotaryOptions o;
    o.layout = mode == GGML_ROPE_TYPE_NEOX ? posenc::RotaryLayout::half
                                           : posenc::RotaryLayout::interleaved;
    const posenc::RotaryEncoding<float> enc(dh, o);
    const posenc::Positions pos(0, n);
    enc.rotate(x, pos, heads);
    for (auto _ : st) {
      enc.rotate(x, pos, heads);
      benchmark::DoNotOptimize(x.data());
      benchmark::ClobberMemory();
    }
  }
  report_bytes(st, 2.0 * double(x.size()) * sizeof(float), threads);
}

void register_all(bool /*full*/) {
  benchmark::AddCustomContext("ggml_commit", POSENC_GGML_COMMIT);
  for (int t = 1; t <= max_threads(); ++t)
    for (const int mode : {0, GGML_ROPE_TYPE_NEOX})
      for (const bool g : {true, false})
        benchmark::RegisterBenchmark(
            (std::string("rope/") + (g ? "ggml/" : "posenc/") + (mode ? "neox" : "normal")).c_str(),
            [g, mode](benchmark::State& st) { BM_rope(st, g, mode); })
            ->Args({4096, 32, 128, t})
            ->ArgNames({"N", "H", "Dh", "threads"})
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
  for (int t = 1; t <= max_threads(); ++t)
    for (const Index dh : {64, 128})
      for (const int causal : {0, 1})
        for (const int alibi : {0, 1})
          for (int side = 0; side <= posenc_f16; ++side)
            benchmark::RegisterBenchmark(
                (std::string("prefill/") + side_name(side) + (alibi ? "/alibi" : "/none")).c_str(),
                [side](benchmark::State& st) { BM_prefill(st, side); })
                ->Args({2048, 8, dh, causal, alibi, t})
                ->ArgNames({"N", "H", "Dh", "causal", "alibi", "threads"})
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
  for (int t = 1; t <= max_threads(); ++t)
    for (const Index n : {4096, 32768})
      for (const Index kv : {32, 8})
        for (int side = 0; side <= posenc_f16; ++side)
          benchmark::RegisterBenchmark((std::string("decode/") + side_name(side)).c_str(),
                                       [side](benchmark::State& st) { BM_decode(st, side); })
              ->Args({n, kv, t})
              ->ArgNames({"N", "Hkv", "threads"})
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
}

}  // namespace
}  // namespace posenc_bench

POSENC_BENCH_MAIN(posenc_bench::register_all)
