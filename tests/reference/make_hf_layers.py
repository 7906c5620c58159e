#!/usr/bin/python3
"""One attention layer of real Hugging Face model families, run from a tiny checkpoint, in float64.

Run:  /usr/bin/python3 tests/reference/make_hf_layers.py      (NumPy; no torch, no safetensors package)
Writes tests/hf/layers/<case>/ (each case directory is deleted and rewritten) and
tests/hf/layers/README.md. Deterministic: two runs give byte-identical files.

Each case directory holds
  config.json                 a tiny config of the family, Hugging Face's field names
  model.safetensors           every layer's attention tensors (and the position tensors) under Hugging
                              Face's names and layouts (one case: a 2-shard checkpoint with
                              model.safetensors.index.json); written with write_safetensors.py's writer
  x.npy        <f8 [N, D]     the attention module's input hidden states (float32-exact values)
  positions.npy <i8 [N]       the token positions
  y_L<l>.npy   <f8 [N, D]     the attention module's output for layer l (T5: y_enc<l>, y_dec<l>)
  pe.npy       <f8 [N, D]     learned absolute families only: the table rows the embedding adds for
                              `positions` (not an input of the layer)

The reference is a NumPy transcription of each family's Hugging Face modeling code (transformers
main, 2025-2026; named per case in CASES below): q/k/v projections with their biases, the family's
position mechanism, scale, masks, softcap, sinks, softmax and the output projection with its bias.
Not included: the layer norm before it, the residual and anything after it. Every stored tensor is
drawn from a seeded numpy Generator in float64, rounded to float32 and then to the stored dtype
(F32, BF16 round-to-nearest-even, F16), and the reference uses the values after that rounding.
Rotary frequencies come from make_hf_golden.py (its transcription of modeling_rope_utils.py), and
each case's scale / window / slopes are checked against make_hf_golden.build() of the same config.
"""

import json
import math
import os
import shutil
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_hf_golden as G  # noqa: E402
import write_safetensors as W  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "hf", "layers")


# ---------------------------------------------------------------------------------------------------
# Storage: tensors rounded to their stored dtype, safetensors files, npy files
# ---------------------------------------------------------------------------------------------------
def to_f32(a):
    return np.asarray(a, dtype=np.float64).astype(np.float32)


def bf16_bits(a32):
    """float32 -> bfloat16 bits, round to nearest even (torch's .to(torch.bfloat16))."""
    u = a32.view(np.uint32).astype(np.uint64)
    r = ((u >> 16) & 1) + 0x7FFF
    return ((u + r) >> 16).astype(np.uint16)


def quantize(a, dtype):
    """(float64 values after rounding to dtype, little-endian bytes)."""
    a32 = to_f32(a)
    if dtype == "F32":
        return a32.astype(np.float64), a32.astype("<f4").tobytes()
    if dtype == "F16":
        h = a32.astype(np.float16)
        return h.astype(np.float64), h.astype("<f2").tobytes()
    if dtype == "BF16":
        b = bf16_bits(a32)
        vals = (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        return vals, b.astype("<u2").tobytes()
    raise ValueError(dtype)


class Ckpt:
    """Tensors of one checkpoint, in insertion order, and the generator that draws them."""

    def __init__(self, case, dtype="F32"):
        self.rng = np.random.default_rng(zlib.crc32(case.encode()))
        self.dtype = dtype
        self.tensors = []  # (name, dtype, shape, bytes)
        self.values = {}

    def put(self, name, a, dtype=None):
        dtype = dtype or self.dtype
        vals, raw = quantize(a, dtype)
        self.tensors.append((name, dtype, list(np.shape(a)), raw))
        self.values[name] = vals
        return vals

    def normal(self, name, shape, std):
        return self.put(name, self.rng.standard_normal(shape) * std)

    def linear(self, prefix, n_out, n_in, bias=False, gain=1.0, bias_std=0.1):
        """nn.Linear: weight [out, in] (N(0, gain^2/in)), bias [out]; returns (W, b or None)."""
        w = self.normal(prefix + ".weight", (n_out, n_in), gain / math.sqrt(n_in))
        b = self.normal(prefix + ".bias", (n_out,), bias_std) if bias else None
        return w, b

    def conv1d(self, prefix, n_in, n_out, gain=1.0, bias_std=0.1):
        """GPT-2 Conv1D: weight [in, out], bias [out]; y = x @ W + b."""
        w = self.normal(prefix + ".weight", (n_in, n_out), gain / math.sqrt(n_in))
        b = self.normal(prefix + ".bias", (n_out,), bias_std)
        return w, b

    def write(self, d, shards=None):
        """shards: None (one model.safetensors) or a list of name lists, one per shard."""
        if shards is None:
            W.tensors_file(_p(d, "model.safetensors"), self.tensors, {"format": "pt"})
            return ["model.safetensors"]
        by_name = {t[0]: t for t in self.tensors}
        assert sorted(sum(shards, [])) == sorted(by_name)
        files, weight_map = [], {}
        for k, names in enumerate(shards):
            fname = "model-%05d-of-%05d.safetensors" % (k + 1, len(shards))
            W.tensors_file(_p(d, fname), [by_name[n] for n in names], {"format": "pt"})
            files.append(fname)
            for n in names:
                weight_map[n] = fname
        total = sum(len(t[3]) for t in self.tensors)
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total},
                       "weight_map": {n: weight_map[n] for n in sorted(weight_map)}}, f, indent=2)
            f.write("\n")
        return files + ["model.safetensors.index.json"]


def _p(d, name):
    import pathlib
    return pathlib.Path(d) / name


def lin(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def heads(y, h, dh):
    """[N, h*dh] -> [h, N, dh] (view(N, h, dh).transpose(0, 1))."""
    n = y.shape[0]
    return y.reshape(n, h, dh).transpose(1, 0, 2)


def merge(o):
    """[h, N, dh] -> [N, h*dh]."""
    h, n, dh = o.shape
    return o.transpose(1, 0, 2).reshape(n, h * dh)


def repeat_kv(k, n_rep):
    """modeling_llama.repeat_kv: kv head g serves query heads g*n_rep .. g*n_rep + n_rep - 1."""
    return np.repeat(k, n_rep, axis=0)


def softmax_rows(s, sinks=None):
    """softmax over the last axis; -inf entries masked. sinks [H]: an extra logit per head whose
    probability is dropped (gpt-oss eager_attention_forward)."""
    if sinks is not None:
        sk = np.broadcast_to(sinks[:, None, None], s.shape[:-1] + (1,))
        s = np.concatenate([s, sk], axis=-1)
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - m)
    p = e / np.sum(e, axis=-1, keepdims=True)
    rows = np.sum(np.isfinite(s), axis=-1) >= 4
    PMAX.extend(np.max(p, axis=-1)[rows].ravel().tolist())
    return p[..., :-1] if sinks is not None else p


def causal_mask(pos):
    return pos[None, :] <= pos[:, None]


def window_mask(pos, w):
    """masking_utils sliding_window_overlay + causal: kv_idx > q_idx - w."""
    return causal_mask(pos) & (pos[:, None] - pos[None, :] < w)


def chunk_mask(pos, c):
    """masking_utils chunked_overlay + causal: kv_idx // c == q_idx // c."""
    return causal_mask(pos) & (pos[:, None] // c == pos[None, :] // c)


def masked(s, mask):
    return np.where(mask[None, :, :], s, -np.inf)


# ---------------------------------------------------------------------------------------------------
# RoPE (modeling_llama.rotate_half / apply_rotary_pos_emb; GPT-J rotate_every_two; Llama 4 complex)
# ---------------------------------------------------------------------------------------------------
def rope_half(x, pos, inv_freq, factor=1.0):
    """x [h, N, Dh]; the first R = 2*len(inv_freq) dims rotate as rotate_half, the rest pass.
    cos/sin = cat(freqs, freqs) * attention_scaling (LlamaRotaryEmbedding)."""
    r = 2 * len(inv_freq)
    freqs = np.outer(pos.astype(np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb) * factor, np.sin(emb) * factor
    xr, xp = x[..., :r], x[..., r:]
    rot = np.concatenate([-xr[..., r // 2:], xr[..., : r // 2]], axis=-1)
    return np.concatenate([xr * cos + rot * sin, xp], axis=-1)


def rope_interleaved(x, pos, inv_freq, factor=1.0):
    """Pairs (2i, 2i+1) of the first R dims: GPT-J rotate_every_two with repeat_interleave'd sin/cos,
    Llama 4 view_as_complex(x.reshape(..., -1, 2)) * polar(1, freqs) * attention_scaling."""
    r = 2 * len(inv_freq)
    freqs = np.outer(pos.astype(np.float64), inv_freq)
    cos, sin = np.cos(freqs) * factor, np.sin(freqs) * factor
    xr, xp = x[..., :r], x[..., r:]
    a, b = xr[..., 0::2], xr[..., 1::2]
    out = np.empty_like(xr)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = b * cos + a * sin
    return np.concatenate([out, xp], axis=-1)


def golden_layers(cfg):
    """make_hf_golden's per-layer facts for a config (inv_freq, attention_factor, scale, ...)."""
    return G.build("layer-case", json.loads(json.dumps(cfg)))


def rope_of(g, pos, long_threshold=None):
    """(inv_freq, attention_factor) for a golden layer at these positions (longrope: long set when
    max(position_ids) + 1 > original_max_position_embeddings, Phi3's longrope_frequency_update)."""
    if long_threshold is not None and int(pos.max()) + 1 > long_threshold:
        return np.asarray(g["inv_freq_long"]), g["attention_factor_long"]
    return np.asarray(g["inv_freq"]), g["attention_factor"]


# ---------------------------------------------------------------------------------------------------
# Case bookkeeping
# ---------------------------------------------------------------------------------------------------
CASES = []   # README rows
RESULTS = {}


def start(case):
    d = os.path.join(OUT, case)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


def draw_x(ck, n, dmodel):
    return ck.rng.standard_normal((n, dmodel)).astype(np.float32).astype(np.float64)


def finish(case, d, cfg, ck, x, pos, ys, family, exercises, module, names, shards=None, pe=None):
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    files = ck.write(d, shards)
    np.save(os.path.join(d, "x.npy"), np.ascontiguousarray(x, dtype="<f8"))
    np.save(os.path.join(d, "positions.npy"), np.ascontiguousarray(pos, dtype="<i8"))
    for k, y in ys.items():
        assert y.shape == x.shape and np.all(np.isfinite(y)), (case, k)
        np.save(os.path.join(d, k + ".npy"), np.ascontiguousarray(y, dtype="<f8"))
    if pe is not None:
        np.save(os.path.join(d, "pe.npy"), np.ascontiguousarray(pe, dtype="<f8"))
    dtypes = sorted(set(t[1] for t in ck.tensors))
    pm = np.asarray(PMAX)
    print("%-26s softmax max-prob median %.2f, max %.3f" % (case, np.median(pm), pm.max()))
    assert pm.max() < 0.995, case
    del PMAX[:]
    CASES.append(dict(case=case, family=family, exercises=exercises, module=module, names=names,
                      n=len(pos), d=x.shape[1], ys=sorted(ys), files=files, dtypes=dtypes,
                      positions="%d..%d" % (pos[0], pos[-1])))


PMAX = []  # the largest probability of each softmax row with >= 4 visible keys (a saturation check)


# ---------------------------------------------------------------------------------------------------
# Llama-style decoders: Llama 3, Qwen2, Mistral, Gemma 2, gpt-oss, Llama 4
# ---------------------------------------------------------------------------------------------------
def llama_like(case, cfg, *, prefix, n, pos, dtype="F32", bias_qkv=False, bias_o=False, family, exercises,
               module, shards_fn=None, sinks=False, query_scale=None, softcap=None, layout="half",
               rope_layers=None, window_layers=None, chunk=None, temperature=None, gain=1.0,
               long_threshold=None):
    """LlamaAttention.forward + eager_attention_forward, with the family's switches:
    q/k/v/o_proj (bias as the family), rope (rotate_half or interleaved), repeat_kv, scaling,
    softcap (Gemma 2: tanh after scaling, before the mask), sinks (gpt-oss), sliding / chunked mask."""
    d = start(case)
    ck = Ckpt(case, dtype)
    tc = cfg.get("text_config", cfg)
    dm, h = tc["hidden_size"], tc["num_attention_heads"]
    hkv = tc.get("num_key_value_heads") or h
    dh = tc.get("head_dim") or dm // h
    nl = tc["num_hidden_layers"]
    gl = golden_layers(cfg)
    x = draw_x(ck, n, dm)
    ys = {}
    for li in range(nl):
        p = prefix % li
        wq, bq = ck.linear(p + ".q_proj", h * dh, dm, bias_qkv, gain)
        wk, bk = ck.linear(p + ".k_proj", hkv * dh, dm, bias_qkv, gain)
        wv, bv = ck.linear(p + ".v_proj", hkv * dh, dm, bias_qkv)
        wo, bo = ck.linear(p + ".o_proj", dm, h * dh, bias_o)
        sk = ck.normal(p + ".sinks", (h,), 1.0) if sinks else None
        g = gl[li]
        scale = dh ** -0.5 if query_scale is None else query_scale ** -0.5
        assert abs(g["scale"] - scale) < 1e-15, (case, g["scale"], scale)
        q = heads(lin(x, wq, bq), h, dh)
        k = heads(lin(x, wk, bk), hkv, dh)
        v = heads(lin(x, wv, bv), hkv, dh)
        use_rope = rope_layers is None or rope_layers[li]
        if use_rope:
            inv, af = rope_of(g, pos, long_threshold)
            f = rope_half if layout == "half" else rope_interleaved
            q, k = f(q, pos, inv, af), f(k, pos, inv, af)
        else:
            assert g["encoder"] == "none"
        if temperature is not None and not use_rope:
            # Llama4TextAttention: attn_scales = log(floor((cache_position + 1) / floor_scale) + 1)
            # * attn_scale + 1, multiplied into the queries of NoPE layers (cache_position = positions here)
            fs, asc = temperature
            q = q * (np.log(np.floor((pos.astype(np.float64) + 1.0) / fs) + 1.0) * asc + 1.0)[None, :, None]
        k, v = repeat_kv(k, h // hkv), repeat_kv(v, h // hkv)
        s = (q @ k.transpose(0, 2, 1)) * scale
        if softcap is not None:
            s = np.tanh(s / softcap) * softcap
        if window_layers is not None and window_layers[li] is not None:
            assert g["window"] == window_layers[li]
            mask = window_mask(pos, window_layers[li])
        elif chunk is not None and use_rope:
            assert g["chunk"] == chunk
            mask = chunk_mask(pos, chunk)
        else:
            assert g["window"] is None and g["chunk"] is None
            mask = causal_mask(pos)
        assert (g["softcap"] or None) == softcap
        pr = softmax_rows(masked(s, mask), sk)
        ys["y_L%d" % li] = lin(merge(pr @ v), wo, bo)
    shards = shards_fn([t[0] for t in ck.tensors]) if shards_fn else None
    pre = prefix.replace("%d", "{l}")
    finish(case, d, cfg, ck, x, pos, ys, family, exercises, module,
           pre + ".{q,k,v}_proj.%s, " % ("{weight,bias}" if bias_qkv else "weight") + pre
           + ".o_proj.%s" % ("{weight,bias}" if bias_o else "weight") + (", %s.sinks [H]" % pre if sinks else ""),
           shards)


def case_llama3():
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 2,
        "max_position_embeddings": 4096, "rope_theta": 500000.0, "attention_bias": False,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 512, "rope_type": "llama3"},
    }
    llama_like("llama3-gqa", cfg, prefix="model.layers.%d.self_attn", n=9, pos=np.arange(3, 12),
               family="llama", module="LlamaAttention, apply_rotary_pos_emb (rotate_half), repeat_kv",
               exercises="GQA 4/2, head_dim 16 != D/H, llama3 rope scaling (kept, smoothed and divided bands), offset positions")


def case_qwen2():
    cfg = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "use_sliding_window": False,
        "sliding_window": 4, "max_window_layers": 1, "rms_norm_eps": 1e-06,
    }
    llama_like("qwen2-bias", cfg, prefix="model.layers.%d.self_attn", n=10, pos=np.arange(10), dtype="BF16",
               bias_qkv=True, family="qwen2", module="Qwen2Attention (q/k/v bias, o_proj without)",
               exercises="q/k/v biases, no o bias, GQA, BF16 storage; use_sliding_window false so sliding_window is ignored")


def case_mistral():
    cfg = {
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 32,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
        "max_position_embeddings": 32768, "rope_theta": 10000.0, "sliding_window": 4, "rms_norm_eps": 1e-05,
    }

    def shards(names):
        # layer 0 and layer 1's q_proj in shard 1, the rest in shard 2
        first = [n for n in names if ".layers.0." in n or n.endswith("layers.1.self_attn.q_proj.weight")]
        return [first, [n for n in names if n not in first]]

    llama_like("mistral-window", cfg, prefix="model.layers.%d.self_attn", n=11, pos=np.arange(2, 13),
               window_layers=[4, 4], shards_fn=shards, family="mistral", module="MistralAttention, sliding_window mask",
               exercises="sliding window 4 on every layer (p_i - p_j < 4), 2-shard checkpoint with index, offset positions")


def case_gemma2():
    cfg = {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 32,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 2,
        "max_position_embeddings": 8192, "rope_theta": 10000.0, "query_pre_attn_scalar": 24,
        "attn_logit_softcapping": 5.0, "final_logit_softcapping": 30.0, "sliding_window": 4,
        "attention_bias": False, "rms_norm_eps": 1e-06,
    }
    llama_like("gemma2-softcap", cfg, prefix="model.layers.%d.self_attn", n=10, pos=np.arange(1, 11), dtype="F32",
               query_scale=24, softcap=5.0, window_layers=[4, None], gain=1.7, family="gemma2",
               module="Gemma2Attention (scaling = query_pre_attn_scalar**-0.5, softcap before the mask)",
               exercises="query_pre_attn_scalar 24 != head_dim 16, attn_logit_softcapping 5 (the cap changes y by ~0.2 of max |y| 2), layer 0 sliding (W 4), layer 1 full")


def case_gpt_oss():
    cfg = {
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "hidden_size": 32,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 2,
        "max_position_embeddings": 131072, "rope_theta": 150000.0, "sliding_window": 4,
        "layer_types": ["sliding_attention", "full_attention"], "attention_bias": True,
        "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                         "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": False},
        "rms_norm_eps": 1e-05,
    }
    llama_like("gpt-oss-sinks", cfg, prefix="model.layers.%d.self_attn", n=10, pos=np.arange(10), bias_qkv=True,
               bias_o=True, sinks=True, window_layers=[4, None], family="gpt_oss",
               module="GptOssAttention, eager_attention_forward with sinks, _apply_rotary_emb (halves)",
               exercises="sinks (extra per-head logit), W 4 on layer 0, yarn x32 truncate false (attention factor 1 + 0.1 ln 32), q/k/v/o biases")


def case_llama4():
    cfg = {
        "architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
        "text_config": {
            "model_type": "llama4_text", "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 8, "num_hidden_layers": 2, "max_position_embeddings": 8192, "rope_theta": 10000.0,
            "attention_chunk_size": 4, "no_rope_layers": [1, 0], "no_rope_layer_interval": 2,
            "attn_temperature_tuning": True, "floor_scale": 4, "attn_scale": 0.1, "use_qk_norm": False,
            "attention_bias": False, "rms_norm_eps": 1e-05,
        },
    }
    llama_like("llama4-chunk-nope", cfg, prefix="language_model.model.layers.%d.self_attn", n=12, pos=np.arange(12),
               layout="interleaved", rope_layers=[1, 0], chunk=4, temperature=(4.0, 0.1), family="llama4 (text_config llama4_text)",
               module="Llama4TextAttention, apply_rotary_emb (complex), chunked_overlay",
               exercises="layer 0: interleaved RoPE + chunk 4; layer 1: NoPE, full causal, query x (1 + 0.1 ln(floor((p+1)/4) + 1)); use_qk_norm false")


def case_phi3():
    cfg = {
        "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 32,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
        "max_position_embeddings": 64, "original_max_position_embeddings": 16, "rope_theta": 10000.0,
        "sliding_window": None, "rms_norm_eps": 1e-05,
        "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.25, 1.5, 2.0],
                         "long_factor": [1.0, 2.5, 5.0, 9.5]},
    }
    case = "phi3-fused-longrope"
    d = start(case)
    ck = Ckpt(case)
    dm, h, hkv, dh = 32, 4, 2, 8
    pos = np.arange(14, 24)
    gl = golden_layers(cfg)
    x = draw_x(ck, len(pos), dm)
    ys = {}
    for li in range(2):
        p = "model.layers.%d.self_attn" % li
        wqkv, _ = ck.linear(p + ".qkv_proj", (h + 2 * hkv) * dh, dm)
        wo, _ = ck.linear(p + ".o_proj", dm, h * dh)
        # Phi3Attention: query_pos = H*Dh; q = qkv[..., :query_pos]; k = [query_pos : query_pos + Hkv*Dh]; v = rest
        qkv = lin(x, wqkv)
        qp = h * dh
        q = heads(qkv[:, :qp], h, dh)
        k = heads(qkv[:, qp:qp + hkv * dh], hkv, dh)
        v = heads(qkv[:, qp + hkv * dh:], hkv, dh)
        inv, af = rope_of(gl[li], pos, long_threshold=16)
        assert abs(af - math.sqrt(1 + math.log(4) / math.log(16))) < 1e-15
        q, k = rope_half(q, pos, inv, af), rope_half(k, pos, inv, af)
        k, v = repeat_kv(k, 2), repeat_kv(v, 2)
        s = (q @ k.transpose(0, 2, 1)) * dh ** -0.5
        ys["y_L%d" % li] = lin(merge(softmax_rows(masked(s, causal_mask(pos))) @ v), wo)
    finish(case, d, cfg, ck, x, pos, ys, "phi3", "fused qkv_proj [(H + 2 Hkv) Dh, D], GQA, longrope: max position + 1 = 24 > 16 selects long_factor, attention factor sqrt(1 + ln 4 / ln 16)",
           "Phi3Attention, Phi3RotaryEmbedding (longrope_frequency_update)", "model.layers.{l}.self_attn.qkv_proj.weight, .o_proj.weight")


# ---------------------------------------------------------------------------------------------------
# GPT-J, GPT-NeoX
# ---------------------------------------------------------------------------------------------------
def case_gptj():
    cfg = {"architectures": ["GPTJForCausalLM"], "model_type": "gptj", "n_embd": 32, "n_head": 4, "n_layer": 2,
           "n_positions": 64, "rotary_dim": 4, "layer_norm_epsilon": 1e-05}
    case = "gptj-interleaved-partial"
    d = start(case)
    ck = Ckpt(case)
    dm, h, dh = 32, 4, 8
    pos = np.arange(5, 15)
    gl = golden_layers(cfg)
    x = draw_x(ck, len(pos), dm)
    ys = {}
    # create_sinusoidal_positions(n_positions, rotary_dim): inv_freq = 1 / 10000^(arange(0, R, 2) / R)
    inv = 1.0 / (10000.0 ** (np.arange(0, 4, 2, dtype=np.float64) / 4))
    for li in range(2):
        p = "transformer.h.%d.attn" % li
        wq, _ = ck.linear(p + ".q_proj", dm, dm)
        wk, _ = ck.linear(p + ".k_proj", dm, dm)
        wv, _ = ck.linear(p + ".v_proj", dm, dm)
        wo, _ = ck.linear(p + ".out_proj", dm, dm)
        assert np.allclose(gl[li]["inv_freq"], inv, rtol=1e-15)
        q, k, v = heads(lin(x, wq), h, dh), heads(lin(x, wk), h, dh), heads(lin(x, wv), h, dh)
        # apply_rotary_pos_emb(k_rot, sin, cos) on [..., :rotary_dim]: x*cos + rotate_every_two(x)*sin
        q, k = rope_interleaved(q, pos, inv), rope_interleaved(k, pos, inv)
        s = (q @ k.transpose(0, 2, 1)) / math.sqrt(dh)  # attn_weights / scale_attn
        ys["y_L%d" % li] = lin(merge(softmax_rows(masked(s, causal_mask(pos))) @ v), wo)
    finish(case, d, cfg, ck, x, pos, ys, "gptj", "interleaved (rotate_every_two) RoPE on rotary_dim 4 of head_dim 8, no biases, offset positions",
           "GPTJAttention, create_sinusoidal_positions, rotate_every_two",
           "transformer.h.{l}.attn.{q,k,v,out}_proj.weight")


def case_neox():
    cfg = {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "hidden_size": 64,
           "num_attention_heads": 4, "num_hidden_layers": 2, "max_position_embeddings": 2048,
           "rotary_pct": 0.25, "rotary_emb_base": 10000, "use_parallel_residual": True,
           "attention_bias": True, "layer_norm_eps": 1e-05}
    case = "neox-fused-partial"
    d = start(case)
    ck = Ckpt(case, "F16")
    dm, h, dh = 64, 4, 16
    pos = np.arange(12)
    gl = golden_layers(cfg)
    x = draw_x(ck, len(pos), dm)
    ys = {}
    for li in range(2):
        p = "gpt_neox.layers.%d.attention" % li
        wqkv, bqkv = ck.linear(p + ".query_key_value", 3 * dm, dm, True)
        wo, bo = ck.linear(p + ".dense", dm, dm, True)
        # GPTNeoXAttention: qkv.view(N, H, 3*Dh).transpose(0, 1).chunk(3, dim=-1)
        qkv = lin(x, wqkv, bqkv).reshape(len(pos), h, 3 * dh).transpose(1, 0, 2)
        q, k, v = qkv[..., :dh], qkv[..., dh:2 * dh], qkv[..., 2 * dh:]
        inv, af = rope_of(gl[li], pos)
        assert len(inv) == 2 and af == 1.0  # R = int(16 * 0.25) = 4
        q, k = rope_half(q, pos, inv), rope_half(k, pos, inv)
        s = (q @ k.transpose(0, 2, 1)) * dh ** -0.5
        ys["y_L%d" % li] = lin(merge(softmax_rows(masked(s, causal_mask(pos))) @ v), wo, bo)
    finish(case, d, cfg, ck, x, pos, ys, "gpt_neox", "fused query_key_value per head [q|k|v] (view(N, H, 3 Dh)), rotary_pct 0.25 (R 4 of 16, rotate_half), biases, F16 storage",
           "GPTNeoXAttention", "gpt_neox.layers.{l}.attention.query_key_value.{weight,bias}, .dense.{weight,bias}")


# ---------------------------------------------------------------------------------------------------
# ALiBi: BLOOM, Falcon-rw, MPT; Falcon MQA rope
# ---------------------------------------------------------------------------------------------------
def bloom_alibi(n, slopes):
    """build_alibi_tensor: arange = (cumsum(mask) - 1) * mask = key index j; alibi[h, j] = m_h * j."""
    return np.asarray(slopes)[:, None, None] * np.arange(n, dtype=np.float64)[None, None, :]


def case_bloom():
    cfg = {"architectures": ["BloomForCausalLM"], "model_type": "bloom", "hidden_size": 48, "n_head": 6,
           "n_layer": 2, "layer_norm_epsilon": 1e-05}
    case = "bloom-alibi"
    d = start(case)
    ck = Ckpt(case)
    dm, h, dh = 48, 6, 8
    n = 9
    pos = np.arange(n)
    gl = golden_layers(cfg)
    x = draw_x(ck, n, dm)
    ys = {}
    slopes = G.bloom_slopes(h)
    for li in range(2):
        p = "transformer.h.%d.self_attention" % li
        wqkv, bqkv = ck.linear(p + ".query_key_value", 3 * dm, dm, True)
        wo, bo = ck.linear(p + ".dense", dm, dm, True)
        assert np.allclose(gl[li]["alibi_slopes"], slopes, rtol=0, atol=0)
        # BloomAttention._reshape: fused_qkv.view(N, H, 3, Dh) -> q = [..., 0, :], k = [..., 1, :], v = [..., 2, :]
        f = lin(x, wqkv, bqkv).reshape(n, h, 3, dh)
        q, k, v = (f[:, :, i, :].transpose(1, 0, 2) for i in range(3))
        # baddbmm(alibi, q, k^T, beta=1, alpha=inv_norm_factor)
        s = bloom_alibi(n, slopes) + (q @ k.transpose(0, 2, 1)) * (1.0 / math.sqrt(dh))
        ys["y_L%d" % li] = lin(merge(softmax_rows(masked(s, causal_mask(pos))) @ v), wo, bo)
    finish(case, d, cfg, ck, x, pos, ys, "bloom", "fused qkv view(N, H, 3, Dh), ALiBi with 6 heads (non-power-of-two slopes), bias m_h*j + q.k/sqrt(Dh), biases; positions are the token index (BLOOM takes no position ids)",
           "BloomAttention, build_alibi_tensor", "transformer.h.{l}.self_attention.query_key_value.{weight,bias}, .dense.{weight,bias}")


def case_falcon_mqa():
    cfg = {"architectures": ["FalconForCausalLM"], "model_type": "falcon", "hidden_size": 32,
           "num_attention_heads": 4, "num_hidden_layers": 2, "multi_query": True, "new_decoder_architecture": False,
           "alibi": False, "bias": False, "parallel_attn": True, "rope_theta": 10000.0,
           "max_position_embeddings": 2048, "layer_norm_epsilon": 1e-05}
    case = "falcon-mqa-rope"
    d = start(case)
    ck = Ckpt(case)
    dm, h, dh = 32, 4, 8
    pos = np.arange(4, 14)
    n = len(pos)
    gl = golden_layers(cfg)
    x = draw_x(ck, n, dm)
    ys = {}
    for li in range(2):
        p = "transformer.h.%d.self_attention" % li
        wqkv, _ = ck.linear(p + ".query_key_value", (h + 2) * dh, dm)
        wo, _ = ck.linear(p + ".dense", dm, dm)
        assert gl[li]["kv_heads"] == 1
        # FalconAttention._split_heads (multi_query): view(N, H + 2, Dh); q = [:-2], k = [-2], v = [-1]
        f = lin(x, wqkv).reshape(n, h + 2, dh).transpose(1, 0, 2)
        q, k, v = f[:h], f[h:h + 1], f[h + 1:]
        inv, af = rope_of(gl[li], pos)
        q, k = rope_half(q, pos, inv, af), rope_half(k, pos, inv, af)
        k, v = repeat_kv(k, h), repeat_kv(v, h)
        s = (q @ k.transpose(0, 2, 1)) * (1.0 / math.sqrt(dh))
        ys["y_L%d" % li] = lin(merge(softmax_rows(masked(s, causal_mask(pos))) @ v), wo)
    finish(case, d, cfg, ck, x, pos, ys, "falcon", "multi_query fused layout [H Dh | Dh | Dh] (kv heads 1), rotate_half RoPE, no biases, offset positions",
           "FalconAttention (_split_heads multi_query), FalconRotaryEmbedding",
           "transformer.h.{l}.self_attention.query_key_value.weight, .dense.weight")


def case_falcon_rw():
    cfg = {"architectures": ["FalconForCausalLM"], "model_type": "falcon", "hidden_size": 32,
           "num_attention_heads": 4, "num_hidden_layers": 2, "multi_query": False, "new_decoder_architecture": False,
           "alibi": True, "bias": True, "parallel_attn": False, "max_position_embeddings": 2048,
           "layer_norm_epsilon": 1e-05}
    case = "falcon-rw-alibi"
    d = start(case)
    ck = Ckpt(case)
    dm, h, dh = 32, 4, 8
    n = 10
    pos = np.arange(n)
    gl = golden_layers(cfg)
    x = draw_x(ck, n, dm)
    ys = {}
    slopes = G.bloom_slopes(h)
    for li in range(2):
        p = "transformer.h.%d.self_attention" % li
        wqkv, bqkv = ck.linear(p + ".query_key_value", 3 * dm, dm, True)
        wo, bo = ck.linear(p + ".dense", dm, dm, True)
        assert np.allclose(gl[li]["alibi_slopes"], [m / math.sqrt(dh) for m in slopes], rtol=1e-15)
        # _split_heads (not multi_query, old architecture): view(N, H, 3, Dh)
        f = lin(x, wqkv, bqkv).reshape(n, h, 3, dh)
        q, k, v = (f[:, :, i, :].transpose(1, 0, 2) for i in range(3))
        # attention_logits = (q.k + alibi) * inv_norm_factor; softmax(logits + causal mask)
        s = ((q @ k.transpose(0, 2, 1)) + bloom_alibi(n, slopes)) * (1.0 / math.sqrt(dh))
        ys["y_L%d" % li] = lin(merge(softmax_rows(masked(s, causal_mask(pos))) @ v), wo, bo)
    finish(case, d, cfg, ck, x, pos, ys, "falcon (alibi)", "ALiBi added BEFORE the 1/sqrt(Dh) multiply (effective slopes m_h/sqrt(8)), fused view(N, H, 3, Dh), biases",
           "FalconAttention (alibi branch), build_alibi_tensor",
           "transformer.h.{l}.self_attention.query_key_value.{weight,bias}, .dense.{weight,bias}")


def case_mpt():
    cfg = {"architectures": ["MPTForCausalLM"], "model_type": "mpt", "d_model": 48, "n_heads": 6, "n_layers": 2,
           "max_seq_len": 16, "no_bias": True, "learned_pos_emb": True,
           "attn_config": {"alibi": True, "alibi_bias_max": 8, "attn_type": "multihead_attention",
                           "clip_qkv": None, "qk_ln": False, "softmax_scale": None}}
    case = "mpt-alibi"
    d = start(case)
    ck = Ckpt(case)
    dm, h, dh = 48, 6, 8
    n = 9
    pos = np.arange(n)
    gl = golden_layers(cfg)
    x = draw_x(ck, n, dm)
    ys = {}
    slopes = np.asarray(G.mpt_slopes(h, 8))
    ms = cfg["max_seq_len"]
    # build_mpt_alibi_tensor(H, max_seq_len): arange(1 - max_seq_len, 1) * slopes -> [H, 1, max_seq_len];
    # MptAttention keeps position_bias[:, max(0, 1 - N):, max(0, max_seq_len - N):] (the last N keys)
    full = np.arange(1 - ms, 1, dtype=np.float64)[None, None, :] * slopes[:, None, None]
    bias = full[:, :, ms - n:]
    for li in range(2):
        p = "transformer.blocks.%d.attn" % li
        wqkv, _ = ck.linear(p + ".Wqkv", 3 * dm, dm)
        wo, _ = ck.linear(p + ".out_proj", dm, dm)
        assert np.allclose(gl[li]["alibi_slopes"], slopes, rtol=0, atol=0)
        # mixed_qkv.chunk(3, dim=2): [q (D) | k (D) | v (D)], each reshaped to heads
        qkv = lin(x, wqkv)
        q, k, v = heads(qkv[:, :dm], h, dh), heads(qkv[:, dm:2 * dm], h, dh), heads(qkv[:, 2 * dm:], h, dh)
        s = (q @ k.transpose(0, 2, 1)) * (1.0 / math.sqrt(dm / h)) + bias
        ys["y_L%d" % li] = lin(merge(softmax_rows(masked(s, causal_mask(pos))) @ v), wo)
    finish(case, d, cfg, ck, x, pos, ys, "mpt", "Wqkv chunk(3) [q | k | v] over D, gen_slopes ALiBi with 6 heads (pad to 8, odd then even), bias from the max_seq_len table's last N columns, no biases, learned_pos_emb ignored by HF",
           "MptAttention, build_mpt_alibi_tensor", "transformer.blocks.{l}.attn.Wqkv.weight, .out_proj.weight")


# ---------------------------------------------------------------------------------------------------
# Learned absolute: GPT-2, OPT, BERT (absolute); BERT relative_key(_query)
# ---------------------------------------------------------------------------------------------------
def case_gpt2():
    cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_layer": 2,
           "n_positions": 32, "n_ctx": 32, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
           "reorder_and_upcast_attn": False, "layer_norm_epsilon": 1e-05}
    case = "gpt2-conv1d"
    d = start(case)
    ck = Ckpt(case)
    dm, h, dh = 32, 4, 8
    pos = np.arange(3, 13)
    n = len(pos)
    x = draw_x(ck, n, dm)
    wpe = ck.normal("transformer.wpe.weight", (32, dm), 0.1)
    gl = golden_layers(cfg)
    ys = {}
    for li in range(2):
        p = "transformer.h.%d.attn" % li
        wa, ba = ck.conv1d(p + ".c_attn", dm, 3 * dm)
        wp, bp = ck.conv1d(p + ".c_proj", dm, dm)
        assert gl[li]["scale"] == 1.0 / math.sqrt(dh)
        # c_attn(x).split(split_size = D, dim=2) -> q, k, v; _split_heads view(N, H, Dh)
        qkv = x @ wa + ba
        q, k, v = heads(qkv[:, :dm], h, dh), heads(qkv[:, dm:2 * dm], h, dh), heads(qkv[:, 2 * dm:], h, dh)
        s = (q @ k.transpose(0, 2, 1)) / math.sqrt(dh)
        ys["y_L%d" % li] = merge(softmax_rows(masked(s, causal_mask(pos))) @ v) @ wp + bp
    finish(case, d, cfg, ck, x, pos, ys, "gpt2", "Conv1D weights [in, out] (c_attn [D, 3D] split q|k|v, c_proj), biases; wpe table (pe.npy = wpe[positions]) is outside the layer",
           "GPT2Attention (eager), Conv1D", "transformer.h.{l}.attn.c_attn.{weight,bias}, .c_proj.{weight,bias}; transformer.wpe.weight [32, D]",
           pe=wpe[pos])


def case_opt():
    cfg = {"architectures": ["OPTForCausalLM"], "model_type": "opt", "hidden_size": 32, "num_attention_heads": 4,
           "num_hidden_layers": 2, "max_position_embeddings": 16, "word_embed_proj_dim": 32, "ffn_dim": 64,
           "do_layer_norm_before": True, "enable_bias": True}
    case = "opt"
    d = start(case)
    ck = Ckpt(case)
    dm, h, dh = 32, 4, 8
    pos = np.arange(10)
    n = len(pos)
    x = draw_x(ck, n, dm)
    table = ck.normal("model.decoder.embed_positions.weight", (16 + 2, dm), 0.1)
    gl = golden_layers(cfg)
    ys = {}
    for li in range(2):
        p = "model.decoder.layers.%d.self_attn" % li
        wq, bq = ck.linear(p + ".q_proj", dm, dm, True)
        wk, bk = ck.linear(p + ".k_proj", dm, dm, True)
        wv, bv = ck.linear(p + ".v_proj", dm, dm, True)
        wo, bo = ck.linear(p + ".out_proj", dm, dm, True)
        assert gl[li]["learned_offset"] == 2
        # OPTAttention: query_states = q_proj(x) * scaling (bias included), scaling = head_dim**-0.5
        q = heads(lin(x, wq, bq) * dh ** -0.5, h, dh)
        k, v = heads(lin(x, wk, bk), h, dh), heads(lin(x, wv, bv), h, dh)
        s = q @ k.transpose(0, 2, 1)
        ys["y_L%d" % li] = lin(merge(softmax_rows(masked(s, causal_mask(pos))) @ v), wo, bo)
    # OPTLearnedPositionalEmbedding: positions = cumsum(mask) - 1 (+ past), row = position + 2
    finish(case, d, cfg, ck, x, pos, ys, "opt", "q_proj output (with bias) times head_dim**-0.5, biases on q/k/v/out; embed_positions [M + 2, D], pe.npy = table[positions + 2]",
           "OPTAttention, OPTLearnedPositionalEmbedding", "model.decoder.layers.{l}.self_attn.{q,k,v,out}_proj.{weight,bias}; model.decoder.embed_positions.weight [18, D]",
           pe=table[pos + 2])


def bert_case(case, pet, seedless_exercises):
    cfg = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 32, "num_attention_heads": 4,
           "num_hidden_layers": 2, "max_position_embeddings": 16, "position_embedding_type": pet,
           "type_vocab_size": 2, "layer_norm_eps": 1e-12, "is_decoder": False}
    d = start(case)
    ck = Ckpt(case)
    dm, h, dh, L = 32, 4, 8, 16
    pos = np.arange(11)
    n = len(pos)
    x = draw_x(ck, n, dm)
    table = ck.normal("bert.embeddings.position_embeddings.weight", (L, dm), 0.1)
    gl = golden_layers(cfg)
    ys = {}
    names = "bert.encoder.layer.{l}.attention.self.{query,key,value}.{weight,bias}, bert.encoder.layer.{l}.attention.output.dense.{weight,bias}; bert.embeddings.position_embeddings.weight [16, D]"
    for li in range(2):
        p = "bert.encoder.layer.%d.attention" % li
        wq, bq = ck.linear(p + ".self.query", dm, dm, True)
        wk, bk = ck.linear(p + ".self.key", dm, dm, True)
        wv, bv = ck.linear(p + ".self.value", dm, dm, True)
        de = ck.normal(p + ".self.distance_embedding.weight", (2 * L - 1, dh), 0.5) if pet != "absolute" else None
        wo, bo = ck.linear(p + ".output.dense", dm, dm, True)
        assert gl[li]["scale"] == 1.0 / math.sqrt(dh)
        q, k, v = heads(lin(x, wq, bq), h, dh), heads(lin(x, wk, bk), h, dh), heads(lin(x, wv, bv), h, dh)
        s = q @ k.transpose(0, 2, 1)
        if pet != "absolute":
            # distance = arange(q)[:, None] - arange(k)[None, :]; distance_embedding(distance + L - 1)
            dist = np.arange(n)[:, None] - np.arange(n)[None, :]
            pe = de[dist + L - 1]  # [N, N, Dh]
            s = s + np.einsum("hld,lrd->hlr", q, pe)
            if pet == "relative_key_query":
                s = s + np.einsum("hrd,lrd->hlr", k, pe)
        s = s / math.sqrt(dh)
        ys["y_L%d" % li] = lin(merge(softmax_rows(s) @ v), wo, bo)
    if pet != "absolute":
        names += "; bert.encoder.layer.{l}.attention.self.distance_embedding.weight [2*16 - 1, Dh]"
    finish(case, d, cfg, ck, x, pos, ys, "bert", seedless_exercises,
           "BertSelfAttention (eager, %s) + BertSelfOutput.dense (before dropout, residual, LayerNorm)" % pet, names,
           pe=table[pos] if pet == "absolute" else None)


def case_bert_abs():
    bert_case("bert-absolute", "absolute", "bidirectional, q/k/v/output.dense biases, no position in the layer (pe.npy = position_embeddings[positions])")


def case_bert_rkq():
    bert_case("bert-relative-key-query", "relative_key_query",
              "relative_key_query: (q.k + q.E[i-j+L-1] + k.E[i-j+L-1]) / sqrt(Dh), per-layer distance_embedding; the absolute table is present but not added")


def case_bert_rk():
    bert_case("bert-relative-key", "relative_key", "relative_key: (q.k + q.E[i-j+L-1]) / sqrt(Dh)")


# ---------------------------------------------------------------------------------------------------
# T5
# ---------------------------------------------------------------------------------------------------
def t5_bucket(rel, bidirectional, num_buckets, max_distance):
    """T5Attention._relative_position_bucket, with torch's float32 logarithm."""
    rel = np.asarray(rel, dtype=np.int64)
    buckets = np.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets += (rel > 0).astype(np.int64) * num_buckets
        rel = np.abs(rel)
    else:
        rel = -np.minimum(rel, 0)
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    with np.errstate(divide="ignore"):
        lg = np.log(rel.astype(np.float32) / np.float32(max_exact))
    large = lg / np.float32(math.log(max_distance / max_exact)) * np.float32(num_buckets - max_exact)
    large = max_exact + np.where(is_small, 0, large).astype(np.int64)  # .to(torch.long) truncates
    large = np.minimum(large, num_buckets - 1)
    return buckets + np.where(is_small, rel, large)


def case_t5():
    cfg = {"architectures": ["T5ForConditionalGeneration"], "model_type": "t5", "d_model": 32, "d_kv": 6,
           "num_heads": 4, "num_layers": 2, "num_decoder_layers": 2, "d_ff": 64, "is_encoder_decoder": True,
           "relative_attention_num_buckets": 16, "relative_attention_max_distance": 20,
           "feed_forward_proj": "relu", "layer_norm_epsilon": 1e-06}
    case = "t5-encoder-decoder"
    d = start(case)
    ck = Ckpt(case)
    dm, h, dkv = 32, 4, 6
    inner = h * dkv
    n = 12
    pos = np.arange(n)
    x = draw_x(ck, n, dm)
    gl = golden_layers(cfg)
    ys = {}
    for stack, causal in (("encoder", False), ("decoder", True)):
        table = None
        for li in range(2):
            p = "%s.block.%d.layer.0.SelfAttention" % (stack, li)
            # no 1/sqrt(d_kv) in T5: the weights are scaled down instead (T5's init does the same)
            wq, _ = ck.linear(p + ".q", inner, dm, gain=dkv ** -0.25)
            wk, _ = ck.linear(p + ".k", inner, dm, gain=dkv ** -0.25)
            wv, _ = ck.linear(p + ".v", inner, dm)
            wo, _ = ck.linear(p + ".o", dm, inner)
            if li == 0:  # has_relative_attention_bias only in block 0; later blocks reuse its position_bias
                table = ck.normal(p + ".relative_attention_bias.weight", (16, h), 0.7)
            g = gl[li + (2 if causal else 0)]
            assert g["scale"] == 1.0 and g["t5_bidirectional"] == (not causal) and g["t5_has_bias"] == (li == 0)
            # compute_bias: relative_position = memory_position - context_position (key - query)
            rel = np.arange(n)[None, :] - np.arange(n)[:, None]
            b = t5_bucket(rel, not causal, 16, 20)
            bias = table[b].transpose(2, 0, 1)  # [H, q, k]
            q, k, v = heads(lin(x, wq), h, dkv), heads(lin(x, wk), h, dkv), heads(lin(x, wv), h, dkv)
            s = q @ k.transpose(0, 2, 1) + bias
            if causal:
                s = masked(s, causal_mask(pos))
            ys["y_%s%d" % ("dec" if causal else "enc", li)] = lin(merge(softmax_rows(s) @ v), wo)
    finish(case, d, cfg, ck, x, pos, ys, "t5", "relative_attention_bias buckets (16 buckets, max_distance 20: log buckets in both stacks), bidirectional encoder / causal decoder, no 1/sqrt scale, block 1 reuses block 0's bias, inner dim H*d_kv 24 != d_model 32",
           "T5Attention (compute_bias, _relative_position_bucket), self-attention only",
           "{encoder,decoder}.block.{l}.layer.0.SelfAttention.{q,k,v,o}.weight; {encoder,decoder}.block.0.layer.0.SelfAttention.relative_attention_bias.weight [16, H]")


# ---------------------------------------------------------------------------------------------------
# DeBERTa-v2/v3
# ---------------------------------------------------------------------------------------------------
def deberta_log_bucket(rel, bucket_size, max_position):
    """modeling_deberta_v2.make_log_bucket_position (float32 like torch's default dtype)."""
    rel = np.asarray(rel, dtype=np.int64)
    sign = np.sign(rel)
    mid = bucket_size // 2
    abs_pos = np.where((rel < mid) & (rel > -mid), mid - 1, np.abs(rel))
    log_pos = np.ceil(np.log(abs_pos.astype(np.float32) / np.float32(mid))
                      / np.log(np.float32((max_position - 1) / mid)) * np.float32(mid - 1)) + np.float32(mid)
    return np.where(abs_pos <= mid, rel.astype(np.float32), log_pos * sign).astype(np.int64)


def case_deberta():
    cfg = {"architectures": ["DebertaV2ForMaskedLM"], "model_type": "deberta-v2", "hidden_size": 32,
           "num_attention_heads": 4, "num_hidden_layers": 2, "intermediate_size": 64, "max_position_embeddings": 32,
           "max_relative_positions": -1, "position_buckets": 8, "relative_attention": True, "share_att_key": True,
           "pos_att_type": "p2c|c2p", "norm_rel_ebd": "layer_norm", "position_biased_input": False,
           "layer_norm_eps": 1e-07, "type_vocab_size": 0}
    case = "deberta-v3"
    d = start(case)
    ck = Ckpt(case)
    dm, h, dh = 32, 4, 8
    span = 8  # pos_ebd_size = position_buckets
    n = 12
    pos = np.arange(n)
    x = draw_x(ck, n, dm)
    rel_emb = ck.normal("deberta.encoder.rel_embeddings.weight", (2 * span, dm), 1.0)
    ln_w = ck.put("deberta.encoder.LayerNorm.weight", 1.0 + 0.1 * ck.rng.standard_normal(dm))
    ln_b = ck.normal("deberta.encoder.LayerNorm.bias", (dm,), 0.1)
    # DebertaV2Encoder.get_rel_embedding: LayerNorm(rel_embeddings) when "layer_norm" in norm_rel_ebd
    mu = rel_emb.mean(-1, keepdims=True)
    var = ((rel_emb - mu) ** 2).mean(-1, keepdims=True)
    rel_n = (rel_emb - mu) / np.sqrt(var + 1e-07) * ln_w + ln_b
    # build_relative_position: q_ids[:, None] - k_ids[None, :], then make_log_bucket_position(., 8, 32)
    rel = deberta_log_bucket(np.arange(n)[:, None] - np.arange(n)[None, :], 8, 32)
    gl = golden_layers(cfg)
    ys = {}
    for li in range(2):
        p = "deberta.encoder.layer.%d.attention" % li
        wq, bq = ck.linear(p + ".self.query_proj", dm, dm, True)
        wk, bk = ck.linear(p + ".self.key_proj", dm, dm, True)
        wv, bv = ck.linear(p + ".self.value_proj", dm, dm, True)
        wo, bo = ck.linear(p + ".output.dense", dm, dm, True)
        scale = math.sqrt(dh * 3)  # scale_factor 1 + c2p + p2c
        assert abs(gl[li]["scale"] - 1.0 / scale) < 1e-16
        q, k, v = heads(lin(x, wq, bq), h, dh), heads(lin(x, wk, bk), h, dh), heads(lin(x, wv, bv), h, dh)
        s = q @ (k.transpose(0, 2, 1) / scale)
        # disentangled_attention_bias, share_att_key: pos_query = query_proj(rel), pos_key = key_proj(rel)
        pk = heads(lin(rel_n[:2 * span], wk, bk), h, dh)  # [H, 2 span, Dh]
        pq = heads(lin(rel_n[:2 * span], wq, bq), h, dh)
        c2p_pos = np.clip(rel + span, 0, 2 * span - 1)
        c2p = np.take_along_axis(q @ pk.transpose(0, 2, 1), np.broadcast_to(c2p_pos, (h, n, n)), axis=-1)
        p2c_pos = np.clip(-rel + span, 0, 2 * span - 1)   # r_pos = relative_pos (same q/k length)
        p2c = np.take_along_axis(k @ pq.transpose(0, 2, 1), np.broadcast_to(p2c_pos, (h, n, n)), axis=-1)
        p2c = p2c.transpose(0, 2, 1)
        s = s + c2p / scale + p2c / scale
        ys["y_L%d" % li] = lin(merge(softmax_rows(s) @ v), wo, bo)
    finish(case, d, cfg, ck, x, pos, ys, "deberta-v2", "disentangled c2p + p2c, log buckets (position_buckets 8, max_relative_positions -1 -> 32; |i-j| up to 11), share_att_key (query_proj/key_proj with biases on LayerNorm(rel_embeddings)), scale 1/sqrt(3 Dh)",
           "DisentangledSelfAttention, make_log_bucket_position, DebertaV2Encoder.get_rel_embedding; + DebertaV2SelfOutput.dense",
           "deberta.encoder.layer.{l}.attention.self.{query,key,value}_proj.{weight,bias}, deberta.encoder.layer.{l}.attention.output.dense.{weight,bias}; deberta.encoder.rel_embeddings.weight [16, D], deberta.encoder.LayerNorm.{weight,bias}")


# ---------------------------------------------------------------------------------------------------
# Transformer-XL (deprecated in transformers: models/deprecated/transfo_xl)
# ---------------------------------------------------------------------------------------------------
def rel_shift(x):
    """RelPartialLearnableMultiHeadAttn._rel_shift on [qlen, klen, ...]."""
    zero = np.zeros((x.shape[0], 1) + x.shape[2:])
    xp = np.concatenate([zero, x], axis=1).reshape((x.shape[1] + 1, x.shape[0]) + x.shape[2:])
    return xp[1:].reshape(x.shape)


def case_transfo_xl():
    cfg = {"architectures": ["TransfoXLLMHeadModel"], "model_type": "transfo-xl", "d_model": 32, "d_embed": 32,
           "n_head": 4, "d_head": 8, "d_inner": 64, "n_layer": 2, "untie_r": True, "pre_lnorm": False,
           "clamp_len": 1000, "mem_len": 16, "same_length": False, "attn_type": 0, "div_val": 1,
           "adaptive": False, "cutoffs": [], "layer_norm_epsilon": 1e-05}
    case = "transfo-xl"
    d = start(case)
    ck = Ckpt(case)
    dm, h, dh = 32, 4, 8
    n = 10
    pos = np.arange(n)
    x = draw_x(ck, n, dm)
    # TransfoXLModel._forward (no mems): klen = qlen = N; pos_seq = arange(klen - 1, -1, -1) clamped to
    # clamp_len; PositionalEmbedding(d_model): cat([sin(pos_seq x inv_freq), cos(...)]), inv_freq 10000^(-2i/D)
    pos_seq = np.minimum(np.arange(n - 1, -1, -1, dtype=np.float64), 1000)
    inv = 1.0 / (10000.0 ** (np.arange(0.0, dm, 2.0) / dm))
    si = np.outer(pos_seq, inv)
    r = np.concatenate([np.sin(si), np.cos(si)], axis=-1)  # [klen, D]
    ys = {}
    for li in range(2):
        p = "transformer.layers.%d.dec_attn" % li
        wqkv, _ = ck.linear(p + ".qkv_net", 3 * h * dh, dm)
        wr, _ = ck.linear(p + ".r_net", h * dh, dm)
        wo, _ = ck.linear(p + ".o_net", dm, h * dh)
        ck.put(p + ".layer_norm.weight", np.ones(dm))
        ck.put(p + ".layer_norm.bias", np.zeros(dm))
        rwb = ck.normal(p + ".r_w_bias", (h, dh), 0.5)
        rrb = ck.normal(p + ".r_r_bias", (h, dh), 0.5)
        w_heads = lin(x, wqkv)
        q, k, v = (w_heads[:, i * h * dh:(i + 1) * h * dh].reshape(n, h, dh) for i in range(3))  # chunk(3, -1)
        rk = lin(r, wr).reshape(n, h, dh)
        ac = np.einsum("ind,jnd->ijn", q + rwb, k)        # [qlen, klen, H]
        bd = rel_shift(np.einsum("ind,jnd->ijn", q + rrb, rk))
        score = (ac + bd) * (1.0 / dh ** 0.5)
        # dec_attn_mask = triu(ones(qlen, klen), diagonal=1 + mlen): key j > query i is masked
        mask = np.triu(np.ones((n, n), dtype=bool), 1)
        score = np.where(mask[:, :, None], -np.inf, score)
        prob = softmax_rows(score.transpose(2, 0, 1))     # softmax over the key axis
        vec = np.einsum("nij,jnd->ind", prob, v).reshape(n, h * dh)
        ys["y_L%d" % li] = lin(vec, wo)
    finish(case, d, cfg, ck, x, pos, ys, "transfo-xl (deprecated)",
           "relative positional attention: (q + r_w_bias).k + _rel_shift((q + r_r_bias).r_net(R)), R the split sinusoid of pos_seq = klen-1 .. 0 (distance i - j), untie_r (per-layer biases), causal, no memory; y = o_net(attn_vec) before residual + layer_norm",
           "RelPartialLearnableMultiHeadAttn (pre_lnorm false), TransfoXLModel._forward, PositionalEmbedding",
           "transformer.layers.{l}.dec_attn.qkv_net.weight [3 H Dh, D], .r_net.weight [H Dh, D], .o_net.weight, .r_w_bias [H, Dh], .r_r_bias [H, Dh], .layer_norm.{weight,bias}")


# ---------------------------------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------------------------------
README_HEAD = """# Hugging Face attention layers from checkpoints

Written by `tests/reference/make_hf_layers.py` (`/usr/bin/python3 tests/reference/make_hf_layers.py`;
NumPy only; deterministic). Do not edit by hand. Each `<case>/` directory is a tiny checkpoint of a
real Hugging Face model family and the float64 output of one attention module per layer, computed
by a NumPy transcription of that family's Hugging Face modeling code (transformers main, 2025-2026),
independent of the C++ code.

Files of a case:

| file | dtype, shape | contents |
|---|---|---|
| `config.json` | | tiny config of the family, Hugging Face's field names |
| `model.safetensors` | | every layer's attention tensors and the position tensors, Hugging Face's names and layouts (`mistral-window`: `model.safetensors.index.json` + 2 shards) |
| `x.npy` | `<f8` [N, D] | input hidden states of the attention module (float32-exact values) |
| `positions.npy` | `<i8` [N] | token positions (`position_ids`); families without position ids (BLOOM, MPT, Falcon-alibi, BERT, T5, DeBERTa) use 0..N-1, their token index |
| `y_L<l>.npy` | `<f8` [N, D] | output of layer l's attention module |
| `y_enc<l>.npy`, `y_dec<l>.npy` | `<f8` [N, D] | T5: encoder block l self-attention, decoder block l self-attention (same `x`) |
| `pe.npy` | `<f8` [N, D] | learned absolute families: the rows the embedding layer adds for `positions` (GPT-2 `wpe[p]`, OPT `embed_positions[p + 2]`, BERT `position_embeddings[p]`); not an input of the layer |

"Attention module output" = q/k/v projections (with biases), the family's position mechanism,
scale, masks, softcap, sinks, softmax, value sum and the output projection with its bias. Not
included: the layer norm before it, the residual, a layer norm after it (BERT/DeBERTa
`SelfOutput.LayerNorm`, Transformer-XL `layer_norm`), the MLP. A batch of one, no padding, no
KV cache, no dropout.

Values: every stored tensor is a seeded normal draw rounded to float32 and then to its stored dtype
(F32 unless stated; BF16 by round-to-nearest-even, F16 by NumPy's float16); the reference uses the
rounded values, in float64. HF's masks follow `cache_position` (0..N-1 without a cache) while RoPE
follows `position_ids`; with contiguous positions the causal, sliding-window masks only see
differences, so offset positions give the same masks. The chunked mask (Llama 4) and the Llama 4
query temperature use absolute positions: that case uses 0..N-1 (= cache_position).

"""


def write_readme():
    rows = ["| case | family (model_type) | N, D | storage | positions | outputs | what it exercises | Hugging Face module transcribed | tensor names |",
            "|---|---|---|---|---|---|---|---|---|"]
    def esc(t):
        return t.replace("|", "\\|")

    for c in CASES:
        rows.append("| `%s` | %s | %d, %d | %s | %s | %s | %s | %s | %s |" % (
            c["case"], c["family"], c["n"], c["d"], "+".join(c["dtypes"]), c["positions"],
            ", ".join("`%s`" % y for y in c["ys"]), esc(c["exercises"]), esc(c["module"]),
            "; ".join("`%s`" % esc(g) for g in c["names"].split("; "))))
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README_HEAD)
        f.write("\n".join(rows) + "\n")
        f.write(README_TAIL)


README_TAIL = """
Notes on the formulas used:
- RoPE frequencies and attention factors come from `make_hf_golden.py` (modeling_rope_utils.py in
  float64), evaluated on each case's `config.json`; cos and sin are multiplied by the attention
  factor (so only rotated dimensions are scaled). `half` = `rotate_half` on the first R dims;
  `interleaved` = pairs (2i, 2i+1) (GPT-J `rotate_every_two`, Llama 4's complex product).
- Llama 4 NoPE layer: `q *= 1 + attn_scale * ln(floor((cache_position + 1) / floor_scale) + 1)`
  (Llama4TextAttention, when `attn_temperature_tuning` and the layer has no rope), keys unchanged;
  the RoPE layer's chunked mask: causal and `floor(i / C) == floor(j / C)`. `use_qk_norm` is false
  here (Scout: true, an L2 norm of q and k after RoPE on RoPE layers; not covered).
- BLOOM / Falcon-alibi: the bias is `m_h * j` (key index, from the attention mask's cumsum), which
  differs from `-m_h (i - j)` by a per-row constant; MPT: `m_h * (j - (N - 1))`. Softmax ignores both.
- T5: `bucket(j - i)` (key minus query) from `_relative_position_bucket` with float32 logs; block 0
  owns `relative_attention_bias`, block 1 reuses it.
- DeBERTa: `delta(i, j) = make_log_bucket_position(i - j)`; `c2p[i, j] = q_i . Kr[clamp(delta + span)]`,
  `p2c[i, j] = k_j . Qr[clamp(-delta(j, i) + span)]` (= `clamp(delta(i, j) + span)`: the bucket is odd),
  `Kr = key_proj(LN(rel))`, `Qr = query_proj(LN(rel))` with their biases; all three terms / sqrt(3 Dh).
- gpt-oss sinks: `P_ij = exp(S_ij) / (exp(s_h) + sum_j exp(S_ij))` (the sink logit joins the row's
  softmax and its probability is dropped); the sliding window is applied before.
- Gemma 2: `S = c * tanh((q.k * query_pre_attn_scalar**-0.5) / c)`, then the (sliding) mask.
- OPT scales `q_proj(x)` (bias included) by head_dim**-0.5: the same scores as scaling q.k.
- BERT relative types: BertSelfAttention of transformers 4.x (`distance_embedding`, indices from
  `arange(N)`, so `positions` must be 0..N-1); later versions may have dropped them.
- Transformer-XL (models/deprecated/transfo_xl, RelPartialLearnableMultiHeadAttn with pre_lnorm
  false): no memory, so klen = qlen = N; `pos_seq = [N-1, ..., 0]` (clamped to clamp_len),
  `R = [sin(pos_seq x inv_freq), cos(...)]` over d_model (inv_freq 10000^(-2i/d_model));
  `S = ((q + r_w_bias).k_j + rel_shift((q + r_r_bias).r_net(R))) / sqrt(d_head)`, which after
  `_rel_shift` is `(q_i + r_r_bias).r_net(R)[distance i - j]` for j <= i; causal (`triu(1)`);
  `y = o_net(attn_vec)`, before `layer_norm(x + y)` (its weight 1 and bias 0 are stored but unused).
  `positions.npy` is 0..N-1 (distances i - j; the model takes no position ids).
- T5 naming: `y_enc0`, `y_enc1` = `encoder.block.{0,1}.layer.0.SelfAttention` (bidirectional),
  `y_dec0`, `y_dec1` = `decoder.block.{0,1}.layer.0.SelfAttention` (causal), all on the same `x`;
  the decoder's cross-attention (`layer.1.EncDecAttention`) is not stored.
"""


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in (case_llama3, case_qwen2, case_mistral, case_phi3, case_gptj, case_neox, case_gemma2, case_gpt_oss,
              case_llama4, case_bloom, case_falcon_mqa, case_falcon_rw, case_mpt, case_gpt2, case_opt,
              case_bert_abs, case_bert_rkq, case_bert_rk, case_t5, case_deberta, case_transfo_xl):
        f()
    write_readme()
    total = 0
    for dp, _, fs in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(dp, x)) for x in fs)
    print(len(CASES), "cases,", total, "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
