// posenc: a Hugging Face checkpoint's attention layer. Reads a layer's projections, biases,
// sinks and position tables from .safetensors files by Hugging Face's tensor names (PyTorch
// nn.Linear weights [out, in] transposed to posenc's [in, out]; GPT-2's Conv1D already [in,
// out]; fused q/k/v split as each model fuses them) and runs the layer's attention. The names
// and layouts follow each model's modeling_*.py, cited beside them. Needs nlohmann/json
// (target posenc::hf).
#pragma once

#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "attention.hpp"
#include "hf.hpp"
#include "safetensors.hpp"

POSENC_NAMESPACE_BEGIN

namespace hf {

/// The trained parameters of one attention layer, in posenc's layout (conventions.md 6b):
/// wq [D, H Dh], wk and wv [D, H_kv Dh], wo [H Dh, D]; biases empty when the model has none.
template <class T>
struct LayerWeights {
  Matrix<T> wq, wk, wv, wo;
  Vector<T> bq, bk, bv, bo;
  /// gpt-oss: one logit per query head.
  std::vector<T> sinks;
};

namespace detail {

using posenc::detail::require;
using safetensors::Checkpoint;

/// The first prefix under which the checkpoint holds `probe` (models are saved with or without
/// their base model's prefix: "model.", "transformer.", "bert.", ...).
inline std::string find_prefix(const Checkpoint& ck, const std::vector<std::string>& prefixes,
                               const std::string& probe) {
  for (const auto& p : prefixes)
    if (ck.contains(p + probe)) return p;
  std::string tried;
  for (const auto& p : prefixes)
    tried += (tried.empty() ? "" : ", ") + ("'" + p + probe + "'");
  // info() on a missing name throws the reader's error, which lists the close names.
  (void)ck.info(prefixes.front() + probe);
  posenc::detail::fail(ck.path(), ": none of ", tried, " is in the checkpoint");
}

/// nn.Linear weight [out, in] as [in, out].
template <class T>
Matrix<T> linear(const Checkpoint& ck, const std::string& name, Index out, Index in) {
  return ck.template transposed<T>(name, out, in);
}

template <class T>
Vector<T> bias_if_any(const Checkpoint& ck, const std::string& name, Index n) {
  if (!ck.contains(name)) return Vector<T>();
  return ck.template vector<T>(name, n);
}

/// Rows [r0, r0 + n) of a fused [out, in] weight, as [in, n].
template <class T>
Matrix<T> rows_of(const Matrix<T>& fused, Index r0, Index n) {
  return fused.middleRows(r0, n).transpose();
}

/// The q, k or v rows (which = 0, 1, 2) of a per-head fused weight [H (3 Dh), in] (GPT-NeoX's
/// view(N, H, 3 Dh), BLOOM's and Falcon-rw's view(N, H, 3, Dh)) as [in, H Dh].
template <class T>
Matrix<T> per_head_part(const Matrix<T>& fused, Index heads, Index dh, Index which) {
  Matrix<T> out(fused.cols(), heads * dh);
  for (Index h = 0; h < heads; ++h)
    out.middleCols(h * dh, dh) = fused.middleRows(h * 3 * dh + which * dh, dh).transpose();
  return out;
}
template <class T>
Vector<T> per_head_part(const Vector<T>& fused, Index heads, Index dh, Index which) {
  if (fused.size() == 0) return Vector<T>();
  Vector<T> out(heads * dh);
  for (Index h = 0; h < heads; ++h)
    out.segment(h * dh, dh) = fused.segment(h * 3 * dh + which * dh, dh);
  return out;
}

inline std::string layer_str(Index l) {
  return std::to_string(l);
}

}  // namespace detail

/// Loads layer `index` (ModelConfig::layers order) of a checkpoint: its projections, biases
/// and sinks. DeepSeek's MLA layers (value head size != head size) are not plain projections
/// and are refused.
template <class T>
LayerWeights<T> load_layer_weights(const ModelConfig& m, Index index,
                                   const safetensors::Checkpoint& ck) {
  using namespace detail;
  const LayerConfig& l = m.layer(index);
  const std::string& mt = m.model_type;
  require(l.value_head_dim == l.head_dim, ck.path(), ": layer ", index, " of ", mt,
          " is multi-head latent attention (DeepSeek MLA: value head size ", l.value_head_dim,
          ", query/key head size ", l.head_dim, "); posenc reads plain q/k/v projections only");
  const Index d = m.hidden_size, h = l.heads, hkv = l.kv_heads, dh = l.head_dim;
  const Index qw = h * dh, kw = hkv * dh;
  const std::string i = layer_str(l.layer);
  LayerWeights<T> w;
  const auto separate = [&](const std::string& base, const char* q, const char* k, const char* v,
                            const char* o) {
    w.wq = linear<T>(ck, base + q + ".weight", qw, d);
    w.wk = linear<T>(ck, base + k + ".weight", kw, d);
    w.wv = linear<T>(ck, base + v + ".weight", kw, d);
    w.wo = linear<T>(ck, base + o + ".weight", d, qw);
    w.bq = bias_if_any<T>(ck, base + q + ".bias", qw);
    w.bk = bias_if_any<T>(ck, base + k + ".bias", kw);
    w.bv = bias_if_any<T>(ck, base + v + ".bias", kw);
    w.bo = bias_if_any<T>(ck, base + o + ".bias", d);
  };
  const std::vector<std::string> decoder_prefixes{"model.", "", "model.language_model.",
                                                  "language_model.model.", "model.text_model."};

  if (mt == "llama" || mt == "mistral" || mt == "mixtral" || mt == "qwen2" || mt == "qwen2_moe" ||
      mt == "qwen3" || mt == "qwen3_moe" || mt == "gemma" || mt == "gemma2" || mt == "gemma3" ||
      mt == "gemma3_text" || mt == "gpt_oss" || mt == "llama4" || mt == "llama4_text" ||
      mt == "qwen2_vl" || mt == "qwen2_5_vl") {
    // LlamaAttention and its copies: layers.{i}.self_attn.{q,k,v,o}_proj, biases where the
    // model has them (Qwen2's q/k/v, gpt-oss's all four); gpt-oss: self_attn.sinks [H].
    const std::string p =
        find_prefix(ck, decoder_prefixes, "layers." + i + ".self_attn.q_proj.weight");
    const std::string base = p + "layers." + i + ".self_attn.";
    separate(base, "q_proj", "k_proj", "v_proj", "o_proj");
    if (l.sinks) {
      const Vector<T> s = ck.template vector<T>(base + "sinks", h);
      w.sinks.assign(s.data(), s.data() + s.size());
    }
  } else if (mt == "phi3") {
    // Phi3Attention: qkv_proj [(H + 2 H_kv) Dh, D] = [q; k; v], o_proj.
    const std::string p =
        find_prefix(ck, decoder_prefixes, "layers." + i + ".self_attn.qkv_proj.weight");
    const std::string base = p + "layers." + i + ".self_attn.";
    const Matrix<T> f = ck.template matrix<T>(base + "qkv_proj.weight", qw + 2 * kw, d);
    w.wq = rows_of(f, 0, qw);
    w.wk = rows_of(f, qw, kw);
    w.wv = rows_of(f, qw + kw, kw);
    w.wo = linear<T>(ck, base + "o_proj.weight", d, qw);
  } else if (mt == "phi") {
    // PhiAttention: q_proj, k_proj, v_proj, dense, all with biases.
    const std::string p =
        find_prefix(ck, decoder_prefixes, "layers." + i + ".self_attn.q_proj.weight");
    separate(p + "layers." + i + ".self_attn.", "q_proj", "k_proj", "v_proj", "dense");
  } else if (mt == "gptj") {
    // GPTJAttention: transformer.h.{i}.attn.{q,k,v,out}_proj, no biases.
    const std::string p = find_prefix(ck, {"transformer.", ""}, "h." + i + ".attn.q_proj.weight");
    separate(p + "h." + i + ".attn.", "q_proj", "k_proj", "v_proj", "out_proj");
  } else if (mt == "gpt_neox" || mt == "bloom") {
    // GPTNeoXAttention: attention.query_key_value [H 3 Dh, D] viewed (H, 3 Dh); BLOOM's
    // self_attention.query_key_value viewed (H, 3, Dh): the same rows per head.
    const bool neox = mt == "gpt_neox";
    const std::string p = neox ? find_prefix(ck, {"gpt_neox.", ""},
                                             "layers." + i + ".attention.query_key_value.weight")
                               : find_prefix(ck, {"transformer.", ""},
                                             "h." + i + ".self_attention.query_key_value.weight");
    const std::string base =
        neox ? p + "layers." + i + ".attention." : p + "h." + i + ".self_attention.";
    const Matrix<T> f = ck.template matrix<T>(base + "query_key_value.weight", 3 * qw, d);
    const Vector<T> fb = bias_if_any<T>(ck, base + "query_key_value.bias", 3 * qw);
    w.wq = per_head_part(f, h, dh, 0);
    w.wk = per_head_part(f, h, dh, 1);
    w.wv = per_head_part(f, h, dh, 2);
    w.bq = per_head_part(fb, h, dh, 0);
    w.bk = per_head_part(fb, h, dh, 1);
    w.bv = per_head_part(fb, h, dh, 2);
    w.wo = linear<T>(ck, base + "dense.weight", d, qw);
    w.bo = bias_if_any<T>(ck, base + "dense.bias", d);
  } else if (mt == "falcon") {
    // FalconAttention._split_heads: new_decoder_architecture groups [H_kv, (H/H_kv + 2), Dh]
    // (the queries of a group, then its key and value); multi_query [H Dh + 2 Dh] = [q; k; v]
    // (one group); neither (Falcon-rw) [H, 3, Dh] (a group per head).
    const std::string p =
        find_prefix(ck, {"transformer.", ""}, "h." + i + ".self_attention.query_key_value.weight");
    const std::string base = p + "h." + i + ".self_attention.";
    const Matrix<T> f = ck.template matrix<T>(base + "query_key_value.weight", qw + 2 * kw, d);
    const Vector<T> fb = bias_if_any<T>(ck, base + "query_key_value.bias", qw + 2 * kw);
    w.wq.resize(d, qw);
    w.wk.resize(d, kw);
    w.wv.resize(d, kw);
    if (fb.size() > 0) {
      w.bq.resize(qw);
      w.bk.resize(kw);
      w.bv.resize(kw);
    }
    const Index g = h / hkv;  // query heads per group
    for (Index kv = 0; kv < hkv; ++kv) {
      const Index r0 = kv * (g + 2) * dh;  // multi_query: hkv = 1, g = H
      w.wq.middleCols(kv * g * dh, g * dh) = f.middleRows(r0, g * dh).transpose();
      w.wk.middleCols(kv * dh, dh) = f.middleRows(r0 + g * dh, dh).transpose();
      w.wv.middleCols(kv * dh, dh) = f.middleRows(r0 + (g + 1) * dh, dh).transpose();
      if (fb.size() > 0) {
        w.bq.segment(kv * g * dh, g * dh) = fb.segment(r0, g * dh);
        w.bk.segment(kv * dh, dh) = fb.segment(r0 + g * dh, dh);
        w.bv.segment(kv * dh, dh) = fb.segment(r0 + (g + 1) * dh, dh);
      }
    }
    w.wo = linear<T>(ck, base + "dense.weight", d, qw);
    w.bo = bias_if_any<T>(ck, base + "dense.bias", d);
  } else if (mt == "mpt") {
    // MptAttention: transformer.blocks.{i}.attn.Wqkv [3 D, D] = [q; k; v], out_proj.
    const std::string p =
        find_prefix(ck, {"transformer.", ""}, "blocks." + i + ".attn.Wqkv.weight");
    const std::string base = p + "blocks." + i + ".attn.";
    const Matrix<T> f = ck.template matrix<T>(base + "Wqkv.weight", qw + 2 * kw, d);
    w.wq = rows_of(f, 0, qw);
    w.wk = rows_of(f, qw, kw);
    w.wv = rows_of(f, qw + kw, kw);
    const Vector<T> fb = bias_if_any<T>(ck, base + "Wqkv.bias", qw + 2 * kw);
    if (fb.size() > 0) {
      w.bq = fb.segment(0, qw);
      w.bk = fb.segment(qw, kw);
      w.bv = fb.segment(qw + kw, kw);
    }
    w.wo = linear<T>(ck, base + "out_proj.weight", d, qw);
    w.bo = bias_if_any<T>(ck, base + "out_proj.bias", d);
  } else if (mt == "gpt2") {
    // GPT2Attention: Conv1D c_attn weight [D, 3 D] (in, out: not transposed) = [q | k | v],
    // c_proj [D, D].
    const std::string p = find_prefix(ck, {"transformer.", ""}, "h." + i + ".attn.c_attn.weight");
    const std::string base = p + "h." + i + ".attn.";
    const Matrix<T> f = ck.template matrix<T>(base + "c_attn.weight", d, 3 * qw);
    w.wq = f.middleCols(0, qw);
    w.wk = f.middleCols(qw, qw);
    w.wv = f.middleCols(2 * qw, qw);
    const Vector<T> fb = bias_if_any<T>(ck, base + "c_attn.bias", 3 * qw);
    if (fb.size() > 0) {
      w.bq = fb.segment(0, qw);
      w.bk = fb.segment(qw, qw);
      w.bv = fb.segment(2 * qw, qw);
    }
    w.wo = ck.template matrix<T>(base + "c_proj.weight", qw, d);
    w.bo = bias_if_any<T>(ck, base + "c_proj.bias", d);
  } else if (mt == "opt") {
    // OPTAttention: model.decoder.layers.{i}.self_attn.{q,k,v,out}_proj with biases.
    const std::string p =
        find_prefix(ck, {"model.", ""}, "decoder.layers." + i + ".self_attn.q_proj.weight");
    separate(p + "decoder.layers." + i + ".self_attn.", "q_proj", "k_proj", "v_proj", "out_proj");
  } else if (mt == "bert") {
    // BertSelfAttention: encoder.layer.{i}.attention.self.{query,key,value},
    // attention.output.dense.
    const std::string p =
        find_prefix(ck, {"bert.", ""}, "encoder.layer." + i + ".attention.self.query.weight");
    const std::string base = p + "encoder.layer." + i + ".attention.";
    separate(base, "self.query", "self.key", "self.value", "output.dense");
  } else if (mt == "deberta-v2") {
    // DisentangledSelfAttention: attention.self.{query,key,value}_proj, attention.output.dense.
    const std::string p = find_prefix(ck, {"deberta.", ""},
                                      "encoder.layer." + i + ".attention.self.query_proj.weight");
    const std::string base = p + "encoder.layer." + i + ".attention.";
    separate(base, "self.query_proj", "self.key_proj", "self.value_proj", "output.dense");
  } else if (mt == "t5") {
    // T5Attention: {encoder,decoder}.block.{i}.layer.0.SelfAttention.{q,k,v,o}, no biases.
    const std::string stack = l.decoder_stack ? "decoder." : "encoder.";
    separate(stack + "block." + i + ".layer.0.SelfAttention.", "q", "k", "v", "o");
  } else if (mt == "transfo-xl") {
    // RelPartialLearnableMultiHeadAttn: dec_attn.qkv_net [3 H Dh, D] = [q; k; v], o_net.
    const std::string p =
        find_prefix(ck, {"transformer.", ""}, "layers." + i + ".dec_attn.qkv_net.weight");
    const std::string base = p + "layers." + i + ".dec_attn.";
    const Matrix<T> f = ck.template matrix<T>(base + "qkv_net.weight", 3 * qw, d);
    w.wq = rows_of(f, 0, qw);
    w.wk = rows_of(f, qw, qw);
    w.wv = rows_of(f, 2 * qw, qw);
    w.wo = linear<T>(ck, base + "o_net.weight", d, qw);
  } else {
    posenc::detail::fail(ck.path(), ": posenc does not know the tensor names of ", mt,
                         " layers (deepseek_v3: multi-head latent attention)");
  }
  return w;
}

/// The learned absolute table of a model whose layers are `learned` (GPT-2 wpe, OPT's
/// embed_positions with its offset 2, BERT's and DeBERTa's embeddings.position_embeddings),
/// added to the token embeddings before the first layer.
template <class T>
LearnedEncoding<T> load_position_table(const ModelConfig& m, const safetensors::Checkpoint& ck) {
  using namespace detail;
  require(!m.layers.empty() && m.layers.front().encoder == EncoderKind::learned, ck.path(), ": ",
          m.model_type, " has no learned absolute position table");
  const LayerConfig& l = m.layers.front();
  std::string name;
  if (m.model_type == "gpt2")
    name = find_prefix(ck, {"transformer.", ""}, "wpe.weight") + "wpe.weight";
  else if (m.model_type == "opt")
    name = find_prefix(ck, {"model.", ""}, "decoder.embed_positions.weight") +
           "decoder.embed_positions.weight";
  else
    name = find_prefix(ck, {"bert.", "deberta.", ""}, "embeddings.position_embeddings.weight") +
           "embeddings.position_embeddings.weight";
  const Matrix<T> table = ck.template matrix<T>(name, l.learned_positions, m.hidden_size);
  return LearnedEncoding<T>(table, l.learned_offset);
}

/// The encoder of layer `index` with its trained tables from the checkpoint: T5's
/// relative_attention_bias (the first layer's of its stack, which every layer reuses), BERT's
/// distance_embedding, DeBERTa's tables from rel_embeddings through the layer's own q/k
/// projections, Transformer-XL's u, v and W_R. Layers without tables as make_encoder.
template <class T>
LayerEncoder<T> load_encoder(const ModelConfig& m, Index index, const safetensors::Checkpoint& ck,
                             const LayerWeights<T>* weights = nullptr) {
  using namespace detail;
  const LayerConfig& l = m.layer(index);
  const std::string i = layer_str(l.layer);
  switch (l.encoder) {
    case EncoderKind::t5: {
      const std::string stack = l.decoder_stack ? "decoder." : "encoder.";
      const Matrix<T> table = ck.template matrix<T>(
          stack + "block.0.layer.0.SelfAttention.relative_attention_bias.weight", l.t5_num_buckets,
          l.heads);
      return T5Encoding<T>(table, T5Options{l.t5_max_distance, l.t5_bidirectional});
    }
    case EncoderKind::bert_relative: {
      const std::string name =
          find_prefix(ck, {"bert.", ""},
                      "encoder.layer." + i + ".attention.self.distance_embedding.weight") +
          "encoder.layer." + i + ".attention.self.distance_embedding.weight";
      const Matrix<T> table = ck.template matrix<T>(name, 2 * l.bert_max_positions - 1, l.head_dim);
      return BertRelativeEncoding<T>(table, l.bert_relative_type);
    }
    case EncoderKind::deberta: {
      // DebertaV2Encoder.get_rel_embedding: rel_embeddings.weight through encoder.LayerNorm
      // (norm_rel_ebd "layer_norm", eps layer_norm_eps); DisentangledSelfAttention with
      // share_att_key projects it with the layer's query_proj and key_proj.
      const std::string p = find_prefix(ck, {"deberta.", ""}, "encoder.rel_embeddings.weight");
      const Matrix<T> rel = ck.template matrix<T>(p + "encoder.rel_embeddings.weight");
      Vector<T> lnw, lnb;
      if (ck.contains(p + "encoder.LayerNorm.weight")) {
        lnw = ck.template vector<T>(p + "encoder.LayerNorm.weight", m.hidden_size);
        lnb = ck.template vector<T>(p + "encoder.LayerNorm.bias", m.hidden_size);
      }
      LayerWeights<T> own;
      if (!weights) own = load_layer_weights<T>(m, index, ck);
      const LayerWeights<T>& w = weights ? *weights : own;
      const auto tables = deberta_relative_tables<T>(rel, lnw, lnb, m.layer_norm_eps, w.wq, w.bq,
                                                     w.wk, w.bk, l.heads);
      return DebertaEncoding<T>(tables.k_r, tables.q_r, l.heads, l.deberta);
    }
    case EncoderKind::transformer_xl: {
      // TransfoXL: r_w_bias (u), r_r_bias (v) [H, Dh] per layer with untie_r, else the
      // model's; r_net [H Dh, D] transposed to W_R [D, H Dh].
      const std::string p =
          find_prefix(ck, {"transformer.", ""}, "layers." + i + ".dec_attn.r_net.weight");
      const std::string own = p + "layers." + i + ".dec_attn.";
      const std::string uv = l.xl_untie_r ? own : p;
      const Matrix<T> u = ck.template matrix<T>(uv + "r_w_bias", l.heads, l.head_dim);
      const Matrix<T> v = ck.template matrix<T>(uv + "r_r_bias", l.heads, l.head_dim);
      const Matrix<T> w_r =
          linear<T>(ck, own + "r_net.weight", l.heads * l.head_dim, m.hidden_size);
      return TransformerXLEncoding<T>(u, v, w_r, l.transformer_xl);
    }
    default:
      return make_encoder<T>(l);
  }
}

/// One attention layer of a checkpoint, ready to run: its description, encoder, weights and
/// options (biases and sinks included).
template <class T>
struct Layer {
  LayerConfig config;
  LayerEncoder<T> encoder;
  LayerWeights<T> weights;
  AttentionOptions<T> options;

  /// Y [N, D] for the layer's input x [N, D] at positions p (every axis of an M-RoPE layer at
  /// that position, as for text tokens).
  Matrix<T> operator()(const ConstMatrixRef<T>& x, const Positions& p) const {
    AttentionOptions<T> o = options;
    o.positions = p;
    return run(x, o);
  }
  Matrix<T> operator()(const ConstMatrixRef<T>& x) const {
    return (*this)(x, Positions(0, x.rows()));
  }

  /// Y with options o in place of `options` (e.g. with segments, or positions of its own).
  Matrix<T> run(const ConstMatrixRef<T>& x, const AttentionOptions<T>& o) const {
    return std::visit([&](const auto& e) -> Matrix<T> { return with_encoder(e, x, o); }, encoder);
  }

 private:
  template <class E>
  Matrix<T> with_encoder(const E& e, const ConstMatrixRef<T>& x,
                         const AttentionOptions<T>& o) const {
    if constexpr (std::is_same_v<E, MultiAxisRotaryEncoding<T>>) {
      // Text tokens: every axis at the token's position. The bound table's column c is
      // position lo + c.
      const Positions p = o.positions ? *o.positions : Positions(o.offset, x.rows());
      std::int64_t lo = 0, hi = -1;
      for (Index j = 0; j < p.size(); ++j) {
        lo = j == 0 ? p[j] : std::min(lo, p[j]);
        hi = j == 0 ? p[j] : std::max(hi, p[j]);
      }
      const std::int64_t span = p.size() == 0 ? 0 : hi - lo + 1;
      posenc::detail::require(span <= posenc::max_extent, "hf::Layer: positions span ", lo, " .. ",
                              hi, ", more than 2^24 for an M-RoPE table");
      AxisPositions table(e.axes(), static_cast<Index>(span));
      for (Index a = 0; a < table.rows(); ++a)
        for (Index c = 0; c < table.cols(); ++c)
          table(a, c) = lo + c;
      return attention(x, weights.wq, weights.wk, weights.wv, weights.wo, e.bind(table, lo), o);
    } else {
      return attention(x, weights.wq, weights.wk, weights.wv, weights.wo, e, o);
    }
  }
};

/// Loads layer `index` of a model from its checkpoint.
template <class T>
Layer<T> load_layer(const ModelConfig& m, Index index, const safetensors::Checkpoint& ck) {
  Layer<T> layer{m.layer(index), NoEncoding<T>{}, load_layer_weights<T>(m, index, ck), {}};
  layer.encoder = load_encoder<T>(m, index, ck, &layer.weights);
  layer.options = attention_options<T>(layer.config);
  layer.options.bq = layer.weights.bq;
  layer.options.bk = layer.weights.bk;
  layer.options.bv = layer.weights.bv;
  layer.options.bo = layer.weights.bo;
  layer.options.sinks = layer.weights.sinks;
  return layer;
}

}  // namespace hf

POSENC_NAMESPACE_END
