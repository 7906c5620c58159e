#!/usr/bin/env python3
"""Golden files for the Hugging Face fixtures: what Hugging Face transformers derives from each
`tests/hf/configs/<name>.json`, evaluated in float64 with NumPy (no torch, nothing from the C++ side).

Run:  /usr/bin/python3 tests/reference/make_hf_golden.py      (writes tests/hf/golden/<name>.json)

Sources transcribed (the formulas and facts, not the code):
- src/transformers/modeling_rope_utils.py (transformers main, 2026; the version with
  `rope_parameters`, `standardize_rope_params`, `proportional`): `_compute_default_rope_parameters`
  (in v5 each model's `RotaryEmbedding.compute_default_rope_parameters`), `_compute_linear_scaling_rope_parameters`,
  `_compute_dynamic_ntk_parameters`, `_compute_yarn_parameters`, `_compute_longrope_parameters`,
  `_compute_llama3_parameters`, `_compute_proportional_rope_parameters`, and
  `RotaryEmbeddingConfigMixin.standardize_rope_params`.
- the models' configuration_*.py (defaults, derived fields) and modeling_*.py (attention modules).
The schema is tests/hf/README.md. Torch computes inv_freq in float32; this file uses float64 throughout
(the point of the golden set), so values differ from a torch run by float32 rounding only.
"""

import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CONFIGS = os.path.join(ROOT, "tests", "hf", "configs")
GOLDEN = os.path.join(ROOT, "tests", "hf", "golden")

# Hugging Face repository ids the fixtures were published under.
REPO_IDS = {
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B",
    "mistral-7b-v0.1": "mistralai/Mistral-7B-v0.1",
    "qwen2.5-7b-instruct": "Qwen/Qwen2.5-7B-Instruct",
    "qwen2-vl-7b-instruct": "Qwen/Qwen2-VL-7B-Instruct",
    "phi-3.5-mini-instruct": "microsoft/Phi-3.5-mini-instruct",
    "phi-2": "microsoft/phi-2",
    "gpt-j-6b": "EleutherAI/gpt-j-6b",
    "gpt-neox-20b": "EleutherAI/gpt-neox-20b",
    "gemma-2-9b": "google/gemma-2-9b",
    "gemma-3-4b-it": "google/gemma-3-4b-it",
    "deepseek-v3": "deepseek-ai/DeepSeek-V3",
    "gpt-oss-20b": "openai/gpt-oss-20b",
    "bloom-560m": "bigscience/bloom-560m",
    "mpt-7b": "mosaicml/mpt-7b",
    "falcon-7b": "tiiuae/falcon-7b",
    "falcon-rw-1b": "tiiuae/falcon-rw-1b",
    "t5-small": "google-t5/t5-small",
    "gpt2": "openai-community/gpt2",
    "bert-base-uncased": "google-bert/bert-base-uncased",
    "opt-125m": "facebook/opt-125m",
    "deberta-v3-base": "microsoft/deberta-v3-base",
    "llama-4-scout-17b-16e": "meta-llama/Llama-4-Scout-17B-16E",
}

KEYS = [
    "layer", "attention_type", "encoder", "heads", "kv_heads", "head_dim", "value_head_dim", "causal",
    "scale", "window", "chunk", "softcap", "sinks", "rope_theta", "rotary_dim", "layout", "block",
    "scaling", "inv_freq", "attention_factor", "inv_freq_long", "attention_factor_long", "mrope_section",
    "alibi_slopes", "t5_num_buckets", "t5_max_distance", "t5_bidirectional", "t5_has_bias",
    "learned_positions", "learned_offset", "bert_relative_type", "deberta_position_buckets",
    "deberta_max_relative_positions", "deberta_pos_att_type",
]


def layer_obj(**kw):
    unknown = set(kw) - set(KEYS)
    if unknown:
        raise KeyError(unknown)
    out = {k: None for k in KEYS}
    out["sinks"] = False
    out.update(kw)
    return out


def flist(a):
    return [float(x) for x in np.asarray(a, dtype=np.float64)]


# ---------------------------------------------------------------------------------------------------
# Config defaults (each model's configuration_*.py __init__ defaults) for fields a published
# config.json may omit. Only the fields used below.
# ---------------------------------------------------------------------------------------------------
DEFAULTS = {
    # configuration_gemma3.py Gemma3TextConfig
    "gemma3_text": dict(num_attention_heads=8, num_key_value_heads=4, head_dim=256, hidden_size=2304,
                        num_hidden_layers=26, max_position_embeddings=131072, rope_theta=1_000_000.0,
                        rope_local_base_freq=10_000.0, query_pre_attn_scalar=256, sliding_window=4096,
                        sliding_window_pattern=6, attn_logit_softcapping=None, final_logit_softcapping=None),
    # configuration_gemma2.py Gemma2Config
    "gemma2": dict(rope_theta=10000.0, query_pre_attn_scalar=256, attn_logit_softcapping=50.0, sliding_window=4096),
    # configuration_llama.py, configuration_mistral.py, configuration_qwen2.py, ... (rope_theta 10000)
    "llama": dict(rope_theta=10000.0),
    "mistral": dict(rope_theta=10000.0, sliding_window=4096),
    "qwen2": dict(rope_theta=10000.0, use_sliding_window=False, sliding_window=4096, max_window_layers=28),
    "qwen2_vl": dict(rope_theta=1000000.0, use_sliding_window=False, sliding_window=4096, max_window_layers=80),
    "phi3": dict(rope_theta=10000.0, sliding_window=None),
    "phi": dict(rope_theta=10000.0, partial_rotary_factor=0.5),
    "gpt_neox": dict(rotary_pct=0.25, rotary_emb_base=10000),
    "gptj": dict(rotary_dim=64),
    "gpt_oss": dict(rope_theta=150000.0, sliding_window=128),
    "deepseek_v3": dict(rope_theta=10000.0, rope_interleave=True),
    # configuration_llama4.py Llama4TextConfig
    "llama4_text": dict(rope_theta=500000.0, attention_chunk_size=8192, no_rope_layer_interval=4),
    # configuration_falcon.py FalconConfig
    "falcon": dict(rope_theta=10000.0, max_position_embeddings=2048, num_kv_heads=None),
    # configuration_mpt.py MptAttentionConfig
    "mpt": dict(),
    # configuration_t5.py T5Config
    "t5": dict(relative_attention_num_buckets=32, relative_attention_max_distance=128, num_decoder_layers=None),
    "gpt2": dict(scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False),
    "bert": dict(position_embedding_type="absolute"),
    "opt": dict(),
    # configuration_deberta_v2.py DebertaV2Config
    "deberta-v2": dict(relative_attention=False, max_relative_positions=-1, position_buckets=-1,
                       pos_att_type=None, position_biased_input=True),
}


class Cfg(dict):
    """A config dict with the model class's defaults behind it."""

    def __init__(self, d, model_type):
        super().__init__(DEFAULTS.get(model_type, {}))
        self.update(d)
        self.model_type = model_type

    def g(self, key, default=None):
        v = self.get(key, default)
        return default if v is None and default is not None else v


def text_config(raw):
    """The decoder's config: nested `text_config` (Gemma 3, Llama 4) or the flat file (Qwen2-VL's
    published config is flat; Qwen2VLConfig moves those keys into its text_config)."""
    if "text_config" in raw:
        tc = dict(raw["text_config"])
        mt = tc.get("model_type") or {"gemma3": "gemma3_text", "llama4": "llama4_text"}[raw["model_type"]]
        return Cfg(tc, mt)
    return Cfg(raw, raw["model_type"])


# ---------------------------------------------------------------------------------------------------
# RoPE parameter standardization: RotaryEmbeddingConfigMixin.convert_rope_params_to_dict /
# standardize_rope_params (modeling_rope_utils.py), plus the model configs that rewrite it.
# ---------------------------------------------------------------------------------------------------
def standardized_rope(cfg, layer_types):
    """Returns {layer_type: rope_parameters dict} for every layer type present."""
    rp = cfg.get("rope_parameters")
    if rp is None:
        rp = cfg.get("rope_scaling")  # convert_rope_params_to_dict: rope_scaling takes the place of rope_parameters
    rp = json.loads(json.dumps(rp)) if rp else {}
    theta = cfg.get("rope_theta")
    prf = cfg.get("partial_rotary_factor")
    types = sorted(set(layer_types))
    per_layer = bool(rp) and set(rp.keys()).issubset(set(layer_types))

    if cfg.model_type == "gemma3_text" and not per_layer:
        # configuration_gemma3.py: sliding layers use the default rope at rope_local_base_freq; the
        # rope_scaling of the file applies to the full-attention layers only.
        full = dict(rp) if rp else {}
        full.setdefault("rope_type", full.get("type", "default"))
        full.setdefault("rope_theta", theta)
        rp = {"full_attention": full,
              "sliding_attention": {"rope_type": "default", "rope_theta": cfg.g("rope_local_base_freq")}}
        per_layer = True

    def fix(d):
        d.setdefault("rope_type", d.get("type", "default"))
        d.setdefault("rope_theta", theta)
        if prf is not None:
            d["partial_rotary_factor"] = prf
        if d["rope_type"] in ("llama3", "yarn", "longrope"):
            if not per_layer and "original_max_position_embeddings" in cfg:
                # Phi-3: the top-level original_max_position_embeddings wins (standardize_rope_params)
                d["original_max_position_embeddings"] = cfg["original_max_position_embeddings"]
            else:
                d.setdefault("original_max_position_embeddings", cfg["max_position_embeddings"])
        # Qwen2-VL (configuration_qwen2_vl.py): rope type "mrope" is the default rope with mrope_section
        if d["rope_type"] == "mrope":
            d["rope_type"] = "default"
        return d

    if per_layer:
        return {t: fix(dict(rp[t])) for t in types}
    d = fix(rp)
    return {t: d for t in types}


# ---------------------------------------------------------------------------------------------------
# modeling_rope_utils.py, float64
# ---------------------------------------------------------------------------------------------------
def head_dim_of(cfg):
    # `getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads`
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def rope_dim(cfg, p):
    return int(head_dim_of(cfg) * p.get("partial_rotary_factor", 1.0))


def default_inv_freq(base, dim):
    # compute_default_rope_parameters: 1 / base ** (arange(0, dim, 2) / dim)
    return 1.0 / (float(base) ** (np.arange(0, dim, 2, dtype=np.float64) / dim))


def rope_linear(cfg, p):
    # _compute_linear_scaling_rope_parameters: inv_freq /= factor
    return default_inv_freq(p["rope_theta"], rope_dim(cfg, p)) / p["factor"], 1.0


def rope_dynamic(cfg, p, seq_len=None):
    # _compute_dynamic_ntk_parameters: M is config.max_position_embeddings (not an
    # original_max_position_embeddings); seq_len defaults to M and is max(seq_len, M).
    dim = rope_dim(cfg, p)
    m = cfg["max_position_embeddings"]
    factor = p["factor"]
    seq_len = m if seq_len is None else max(seq_len, m)
    base = p["rope_theta"] * ((factor * seq_len / m) - (factor - 1)) ** (dim / (dim - 2))
    return default_inv_freq(base, dim), 1.0


def rope_yarn(cfg, p):
    # _compute_yarn_parameters
    base = p["rope_theta"]
    dim = int((cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])) * p.get("partial_rotary_factor", 1.0))
    factor = p.get("factor")
    attention_factor = p.get("attention_factor")
    mscale = p.get("mscale")
    mscale_all_dim = p.get("mscale_all_dim")
    orig = p["original_max_position_embeddings"]
    if factor is None:  # only when the file has no factor: max_position_embeddings / original
        factor = cfg["max_position_embeddings"] / orig

    def get_mscale(scale, m=1):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if attention_factor is None:
        if mscale and mscale_all_dim:  # 0 / None count as absent
            attention_factor = float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim))
        else:
            attention_factor = get_mscale(factor)
    beta_fast = p.get("beta_fast") or 32
    beta_slow = p.get("beta_slow") or 1

    def corr_dim(rot):
        return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

    # NB: Hugging Face reads `truncate` from config.rope_parameters (the top-level dict), not from the
    # layer's dict: with a per-layer-type rope_parameters it is always the default True.
    top = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    truncate = top.get("truncate", True)
    low, high = corr_dim(beta_fast), corr_dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    pos_freqs = float(base) ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    extra = 1.0 / pos_freqs
    inter = 1.0 / (factor * pos_freqs)
    ext_factor = 1.0 - ramp
    inv = inter * (1.0 - ext_factor) + extra * ext_factor
    return inv, float(attention_factor)


def rope_longrope(cfg, p, long):
    # _compute_longrope_parameters: factor None -> max_position_embeddings / original; the attention
    # factor is the same for the short and the long set.
    dim = int((cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])) * p.get("partial_rotary_factor", 1.0))
    factor = p.get("factor")
    attention_factor = p.get("attention_factor")
    orig = p["original_max_position_embeddings"]
    if factor is None:
        factor = cfg["max_position_embeddings"] / orig
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))
    ext = np.asarray(p["long_factor"] if long else p["short_factor"], dtype=np.float64)
    shape = np.arange(0, dim, 2, dtype=np.float64) / dim
    return 1.0 / (ext * float(p["rope_theta"]) ** shape), float(attention_factor)


def rope_llama3(cfg, p):
    # _compute_llama3_parameters
    inv = default_inv_freq(p["rope_theta"], rope_dim(cfg, p))
    factor, lo, hi = p["factor"], p["low_freq_factor"], p["high_freq_factor"]
    old = p["original_max_position_embeddings"]
    low_wl, high_wl = old / lo, old / hi
    wl = 2 * math.pi / inv
    out = np.where(wl > low_wl, inv / factor, inv)
    with np.errstate(divide="ignore", invalid="ignore"):  # lo == hi (Llama 4): no medium band is selected
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wl < high_wl) & ~(wl > low_wl)
    return np.where(medium, smoothed, out), 1.0


def rope_proportional(cfg, p):
    # _compute_proportional_rope_parameters (Gemma 4): head_dim/2 frequencies, the rotated ones
    # base^(-2i/head_dim), the rest 0, all divided by factor.
    hd = head_dim_of(cfg)
    angles = int(p.get("partial_rotary_factor", 1.0) * hd // 2)
    rot = 1.0 / (float(p["rope_theta"]) ** (np.arange(0, 2 * angles, 2, dtype=np.float64) / hd))
    inv = np.concatenate([rot, np.zeros(hd // 2 - angles)])
    return inv / p.get("factor", 1.0), 1.0


def rope_sets(cfg, p):
    """(rotary_dim, inv_freq, attention_factor, inv_freq_long, attention_factor_long)."""
    t = p["rope_type"]
    dim = rope_dim(cfg, p)
    if t == "default":
        return dim, default_inv_freq(p["rope_theta"], dim), 1.0, None, None
    if t == "linear":
        f, a = rope_linear(cfg, p)
        return dim, f, a, None, None
    if t == "dynamic":
        f, a = rope_dynamic(cfg, p)
        fl, al = rope_dynamic(cfg, p, seq_len=2 * cfg["max_position_embeddings"])
        return dim, f, a, fl, al
    if t == "yarn":
        f, a = rope_yarn(cfg, p)
        return len(f) * 2, f, a, None, None
    if t == "longrope":
        f, a = rope_longrope(cfg, p, long=False)
        fl, al = rope_longrope(cfg, p, long=True)
        return dim, f, a, fl, al
    if t == "llama3":
        f, a = rope_llama3(cfg, p)
        return dim, f, a, None, None
    if t == "proportional":
        f, a = rope_proportional(cfg, p)
        return head_dim_of(cfg), f, a, None, None
    raise ValueError("rope_type " + t)


def rope_fields(cfg, p, layout="half", block="leading", dim_override=None):
    dim, f, a, fl, al = rope_sets(cfg, p)
    if dim_override is not None:
        dim = dim_override
    assert len(f) == dim // 2, (len(f), dim)
    return dict(
        encoder="rope", rope_theta=float(p["rope_theta"]), rotary_dim=dim, layout=layout, block=block,
        scaling="none" if p["rope_type"] == "default" else p["rope_type"], inv_freq=flist(f),
        attention_factor=float(a), inv_freq_long=None if fl is None else flist(fl),
        attention_factor_long=None if al is None else float(al))


# ---------------------------------------------------------------------------------------------------
# ALiBi
# ---------------------------------------------------------------------------------------------------
def bloom_slopes(h):
    # modeling_bloom.py build_alibi_tensor (also modeling_falcon.py build_alibi_tensor)
    closest = 2 ** math.floor(math.log2(h))
    base = 2 ** (-(2 ** -(math.log2(closest) - 3)))
    slopes = [base ** p for p in range(1, 1 + closest)]
    if closest != h:
        extra_base = 2 ** (-(2 ** -(math.log2(2 * closest) - 3)))
        rem = min(closest, h - closest)
        slopes += [extra_base ** p for p in range(1, 1 + 2 * rem, 2)]
    return slopes


def mpt_slopes(h, alibi_bias_max=8):
    # modeling_mpt.py build_mpt_alibi_tensor: ceil to a power of two, odd entries then even ones
    n = 2 ** math.ceil(math.log2(h))
    base = np.arange(1, n + 1, dtype=np.float64) * (alibi_bias_max / n)
    slopes = 1.0 / np.power(2.0, base)
    if n != h:
        slopes = np.concatenate([slopes[1::2], slopes[::2]])[:h]
    return flist(slopes)


# ---------------------------------------------------------------------------------------------------
# Per-model attention facts (modeling_<model>.py)
# ---------------------------------------------------------------------------------------------------
def decoder_rope_model(cfg, layer_types, windows, *, layout="half", scale=None, softcap=None, sinks=False,
                       chunk=None, rope_layers=None, mrope_section=None):
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    hd = head_dim_of(cfg)
    if scale is None:
        scale = hd ** -0.5
    ropes = standardized_rope(cfg, layer_types)
    out = []
    for i, t in enumerate(layer_types):
        base = dict(layer=i, attention_type=t, heads=heads, kv_heads=kv, head_dim=hd, value_head_dim=hd,
                    causal=True, scale=float(scale), window=windows[i], chunk=chunk if t == "chunked_attention" else None,
                    softcap=softcap, sinks=sinks)
        if rope_layers is None or rope_layers[i]:
            base.update(rope_fields(cfg, ropes[t], layout=layout))
            if mrope_section is not None:
                base["encoder"] = "mrope"
                base["mrope_section"] = list(mrope_section)
        else:
            base["encoder"] = "none"
        out.append(layer_obj(**base))
    return out


def build(name, raw):
    mt = raw["model_type"]
    cfg = text_config(raw)
    tmt = cfg.model_type

    if tmt in ("llama",):
        # modeling_llama.py: head_dim = config.head_dim or D/H; scaling head_dim**-0.5; rotate_half
        n = cfg["num_hidden_layers"]
        return decoder_rope_model(cfg, ["full_attention"] * n, [None] * n)

    if tmt == "mistral":
        # modeling_mistral.py: every layer sliding_window = config.sliding_window (mask sliding_window_causal)
        n = cfg["num_hidden_layers"]
        w = cfg.get("sliding_window")
        t = "sliding_attention" if w is not None else "full_attention"
        return decoder_rope_model(cfg, [t] * n, [w] * n)

    if tmt in ("qwen2", "qwen2_vl"):
        # configuration_qwen2.py: sliding_window = sliding_window if use_sliding_window else None;
        # layer_types[i] = sliding if sliding_window is not None and i >= max_window_layers else full
        n = cfg["num_hidden_layers"]
        w = cfg.get("sliding_window") if cfg.get("use_sliding_window") else None
        types = ["sliding_attention" if w is not None and i >= cfg["max_window_layers"] else "full_attention"
                 for i in range(n)]
        wins = [w if t == "sliding_attention" else None for t in types]
        ms = None
        if tmt == "qwen2_vl":
            ms = (cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}).get("mrope_section")
        return decoder_rope_model(cfg, types, wins, mrope_section=ms)

    if tmt == "phi3":
        # modeling_phi3.py: sliding_window mask whenever config.sliding_window is not None
        n = cfg["num_hidden_layers"]
        w = cfg.get("sliding_window")
        t = "sliding_attention" if w is not None else "full_attention"
        return decoder_rope_model(cfg, [t] * n, [w] * n)

    if tmt == "phi":
        # modeling_phi.py: partial_rotary_factor, rotate_half on the first R dims, scaling head_dim**-0.5
        n = cfg["num_hidden_layers"]
        return decoder_rope_model(cfg, ["full_attention"] * n, [None] * n)

    if tmt == "gpt_neox":
        # configuration_gpt_neox.py: partial_rotary_factor = rotary_pct, rope_theta = rotary_emb_base
        c = Cfg(dict(cfg), tmt)
        c["partial_rotary_factor"] = cfg.g("rotary_pct")
        c["rope_theta"] = cfg.g("rotary_emb_base")
        n = c["num_hidden_layers"]
        return decoder_rope_model(c, ["full_attention"] * n, [None] * n)

    if tmt == "gptj":
        # modeling_gptj.py: create_sinusoidal_positions(n_positions, rotary_dim), base 10000,
        # rotate_every_two (interleaved), attn / sqrt(head_dim)
        c = Cfg({"hidden_size": cfg["n_embd"], "num_attention_heads": cfg["n_head"],
                 "num_hidden_layers": cfg["n_layer"], "max_position_embeddings": cfg["n_positions"],
                 "rope_theta": 10000.0}, "gptj")
        hd = c["hidden_size"] // c["num_attention_heads"]
        rd = cfg.g("rotary_dim") or hd
        c["partial_rotary_factor"] = rd / hd
        n = c["num_hidden_layers"]
        return decoder_rope_model(c, ["full_attention"] * n, [None] * n, layout="interleaved",
                                  scale=1.0 / math.sqrt(hd))

    if tmt == "gemma2":
        # configuration_gemma2.py: layer_types[i] = sliding if (i + 1) % 2 else full;
        # modeling_gemma2.py: scaling = query_pre_attn_scalar**-0.5, softcap = attn_logit_softcapping
        n = cfg["num_hidden_layers"]
        types = cfg.get("layer_types") or ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
        wins = [cfg.g("sliding_window") if t == "sliding_attention" else None for t in types]
        return decoder_rope_model(cfg, types, wins, scale=cfg.g("query_pre_attn_scalar") ** -0.5,
                                  softcap=cfg.get("attn_logit_softcapping"))

    if tmt == "gemma3_text":
        # configuration_gemma3.py: layer_types[i] = sliding if (i + 1) % sliding_window_pattern else full;
        # sliding layers: default rope at rope_local_base_freq; full layers: rope_theta with rope_scaling
        n = cfg["num_hidden_layers"]
        pat = cfg.g("sliding_window_pattern")
        types = cfg.get("layer_types") or ["sliding_attention" if (i + 1) % pat else "full_attention" for i in range(n)]
        wins = [cfg.g("sliding_window") if t == "sliding_attention" else None for t in types]
        sc = cfg.get("attn_logit_softcapping")
        return decoder_rope_model(cfg, types, wins, scale=cfg.g("query_pre_attn_scalar") ** -0.5,
                                  softcap=sc)

    if tmt == "gpt_oss":
        # modeling_gpt_oss.py: layer_types from the config, window on sliding layers, per-head sinks,
        # _apply_rotary_emb splits the head in halves (rotate_half layout), scaling head_dim**-0.5
        types = cfg["layer_types"]
        wins = [cfg.g("sliding_window") if t == "sliding_attention" else None for t in types]
        return decoder_rope_model(cfg, types, wins, sinks=True)

    if tmt == "llama4_text":
        # configuration_llama4.py: no_rope_layers default [int((i + 1) % no_rope_layer_interval != 0)];
        # layer_types = chunked_attention where the layer uses rope, full_attention on NoPE layers.
        # modeling_llama4.py: rope as complex multiplication of (2i, 2i+1) pairs (interleaved);
        # scaling head_dim**-0.5. (Its NoPE layers' query temperature is not part of this schema.)
        n = cfg["num_hidden_layers"]
        nrl = cfg.get("no_rope_layers") or [int((i + 1) % cfg.g("no_rope_layer_interval") != 0) for i in range(n)]
        types = cfg.get("layer_types") or ["chunked_attention" if r else "full_attention" for r in nrl]
        return decoder_rope_model(cfg, types, [None] * n, layout="interleaved",
                                  chunk=cfg.g("attention_chunk_size"), rope_layers=nrl)

    if tmt == "deepseek_v3":
        # configuration_deepseek_v3.py: head_dim = qk_rope_head_dim (the rope's dim);
        # modeling_deepseek_v3.py: qk_head_dim = nope + rope; k_pe expanded to every head, so the attention
        # is plain MHA over num_attention_heads with num_key_value_heads groups; scaling = qk_head_dim**-0.5,
        # times yarn_get_mscale(factor, mscale_all_dim)**2 when mscale_all_dim; rope_interleave -> interleaved.
        heads = cfg["num_attention_heads"]
        kv = cfg.get("num_key_value_heads") or heads
        nope, rope, vdim = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
        c = Cfg(dict(cfg), tmt)
        c["head_dim"] = rope
        qk = nope + rope
        scale = qk ** -0.5
        n = c["num_hidden_layers"]
        ropes = standardized_rope(c, ["full_attention"])
        p = ropes["full_attention"]
        if p["rope_type"] != "default":
            msad = p.get("mscale_all_dim", 0)
            if msad:
                f = p["factor"]
                m = 1.0 if f <= 1 else 0.1 * msad * math.log(f) + 1.0
                scale = scale * m * m
        layout = "interleaved" if cfg.g("rope_interleave") else "half"
        out = []
        for i in range(n):
            d = dict(layer=i, attention_type="full_attention", heads=heads, kv_heads=kv, head_dim=qk,
                     value_head_dim=vdim, causal=True, scale=float(scale))
            d.update(rope_fields(c, p, layout=layout, block="trailing"))
            out.append(layer_obj(**d))
        return out

    if tmt == "falcon":
        # configuration_falcon.py / modeling_falcon.py: num_kv_heads = num_kv_heads (default H) when
        # new_decoder_architecture or not multi_query, else 1; rotary = not alibi (rotate_half);
        # inv_norm_factor = 1/sqrt(head_dim). With alibi the bias is added to q.k before the scaling
        # (attention_logits = (q.k + alibi) * inv_norm_factor; the SDPA path divides alibi by
        # sqrt(head_dim) too), so the slopes added to the scaled score are the BLOOM slopes / sqrt(head_dim).
        heads = cfg["num_attention_heads"]
        hd = cfg["hidden_size"] // heads
        if cfg.get("new_decoder_architecture") or not cfg.get("multi_query", True):
            kv = cfg.get("num_kv_heads") or heads
        else:
            kv = 1
        n = cfg["num_hidden_layers"]
        if cfg.get("alibi"):
            sl = [s / math.sqrt(hd) for s in bloom_slopes(heads)]
            return [layer_obj(layer=i, attention_type="full_attention", encoder="alibi", heads=heads, kv_heads=kv,
                              head_dim=hd, value_head_dim=hd, causal=True, scale=1.0 / math.sqrt(hd),
                              alibi_slopes=sl) for i in range(n)]
        c = Cfg(dict(cfg), tmt)
        c["num_key_value_heads"] = kv
        return decoder_rope_model(c, ["full_attention"] * n, [None] * n, scale=1.0 / math.sqrt(hd))

    if tmt == "bloom":
        # modeling_bloom.py: build_alibi_tensor slopes; baddbmm(alibi, q, k, beta=1, alpha=1/sqrt(head_dim))
        heads = cfg.get("n_head") or cfg["num_attention_heads"]
        d = cfg.get("hidden_size") or cfg.get("n_embed")
        hd = d // heads
        n = cfg.get("n_layer") or cfg["num_hidden_layers"]
        return [layer_obj(layer=i, attention_type="full_attention", encoder="alibi", heads=heads, kv_heads=heads,
                          head_dim=hd, value_head_dim=hd, causal=True, scale=1.0 / math.sqrt(hd),
                          alibi_slopes=flist(bloom_slopes(heads))) for i in range(n)]

    if tmt == "mpt":
        # modeling_mpt.py: ALiBi only (HF's MptModel has no position table, whatever learned_pos_emb says);
        # softmax_scale = attn_config.softmax_scale or 1/sqrt(d_model / n_heads); bias added after scaling.
        ac = cfg.get("attn_config") or {}
        heads = cfg["n_heads"]
        hd = cfg["d_model"] // heads
        scale = ac.get("softmax_scale") or 1.0 / math.sqrt(cfg["d_model"] / heads)
        sl = mpt_slopes(heads, ac.get("alibi_bias_max", 8))
        return [layer_obj(layer=i, attention_type="full_attention", encoder="alibi", heads=heads, kv_heads=heads,
                          head_dim=hd, value_head_dim=hd, causal=True, scale=float(scale), alibi_slopes=sl)
                for i in range(cfg["n_layers"])]

    if tmt == "t5":
        # modeling_t5.py: no 1/sqrt(d) scaling; only block 0 of each stack has relative_attention_bias;
        # encoder bidirectional buckets, decoder self-attention causal buckets. The encoder's layers
        # come first, then the decoder's self-attention layers (their `layer` restarts at 0).
        heads, hd = cfg["num_heads"], cfg["d_kv"]
        nb, md = cfg.g("relative_attention_num_buckets"), cfg.g("relative_attention_max_distance")
        out = []
        for causal, n in ((False, cfg["num_layers"]), (True, cfg.get("num_decoder_layers") or cfg["num_layers"])):
            for i in range(n):
                out.append(layer_obj(layer=i, attention_type="full_attention", encoder="t5", heads=heads,
                                     kv_heads=heads, head_dim=hd, value_head_dim=hd, causal=causal, scale=1.0,
                                     t5_num_buckets=nb, t5_max_distance=md, t5_bidirectional=not causal,
                                     t5_has_bias=(i == 0)))
        return out

    if tmt == "gpt2":
        # modeling_gpt2.py: wpe [n_positions, n_embd]; scale 1/sqrt(head_dim) when scale_attn_weights
        # (and / (layer_idx + 1) when scale_attn_by_inverse_layer_idx)
        heads = cfg["n_head"]
        hd = cfg["n_embd"] // heads
        out = []
        for i in range(cfg["n_layer"]):
            s = 1.0 / math.sqrt(hd) if cfg.g("scale_attn_weights") else 1.0
            if cfg.get("scale_attn_by_inverse_layer_idx"):
                s /= float(i + 1)
            out.append(layer_obj(layer=i, attention_type="full_attention", encoder="learned", heads=heads,
                                 kv_heads=heads, head_dim=hd, value_head_dim=hd, causal=True, scale=s,
                                 learned_positions=cfg["n_positions"], learned_offset=0))
        return out

    if tmt == "opt":
        # modeling_opt.py: OPTLearnedPositionalEmbedding(max_position_embeddings + 2), offset 2;
        # scaling head_dim**-0.5
        heads = cfg["num_attention_heads"]
        hd = cfg["hidden_size"] // heads
        return [layer_obj(layer=i, attention_type="full_attention", encoder="learned", heads=heads, kv_heads=heads,
                          head_dim=hd, value_head_dim=hd, causal=True, scale=hd ** -0.5,
                          learned_positions=cfg["max_position_embeddings"] + 2, learned_offset=2)
                for i in range(cfg["num_hidden_layers"])]

    if tmt == "bert":
        # modeling_bert.py: position_embeddings [max_position_embeddings, D] (absolute), plus for
        # relative_key / relative_key_query a distance_embedding [2L - 1, head_dim] in every layer
        heads = cfg["num_attention_heads"]
        hd = cfg["hidden_size"] // heads
        pet = cfg.g("position_embedding_type")
        out = []
        for i in range(cfg["num_hidden_layers"]):
            d = dict(layer=i, attention_type="full_attention", heads=heads, kv_heads=heads, head_dim=hd,
                     value_head_dim=hd, causal=bool(cfg.get("is_decoder", False)), scale=1.0 / math.sqrt(hd))
            if pet == "absolute":
                d.update(encoder="learned", learned_positions=cfg["max_position_embeddings"], learned_offset=0)
            else:
                d.update(encoder="bert-relative", bert_relative_type=pet)
            out.append(layer_obj(**d))
        return out

    if tmt == "deberta-v2":
        # configuration_deberta_v2.py: pos_att_type "a|b" -> ["a", "b"]; modeling_deberta_v2.py:
        # max_relative_positions < 1 -> max_position_embeddings; scale 1/sqrt(head_dim * (1 + #terms));
        # absolute table only when position_biased_input.
        heads = cfg["num_attention_heads"]
        hd = cfg["hidden_size"] // heads
        pat = cfg.get("pos_att_type")
        if isinstance(pat, str):
            pat = [x.strip() for x in pat.lower().split("|")]
        pat = pat or []
        mrp = cfg.g("max_relative_positions")
        if mrp < 1:
            mrp = cfg["max_position_embeddings"]
        factor = 1 + ("c2p" in pat) + ("p2c" in pat)
        rel = bool(cfg.get("relative_attention"))
        out = []
        for i in range(cfg["num_hidden_layers"]):
            d = dict(layer=i, attention_type="full_attention", heads=heads, kv_heads=heads, head_dim=hd,
                     value_head_dim=hd, causal=False, scale=1.0 / math.sqrt(hd * factor))
            if rel:
                d.update(encoder="deberta", deberta_position_buckets=cfg.g("position_buckets"),
                         deberta_max_relative_positions=mrp, deberta_pos_att_type=list(pat))
            else:
                d.update(encoder="none")
            if cfg.g("position_biased_input"):
                d.update(learned_positions=cfg["max_position_embeddings"], learned_offset=0)
                if not rel:
                    d["encoder"] = "learned"
            out.append(layer_obj(**d))
        return out

    raise ValueError("no rules for model_type " + tmt)


def main():
    os.makedirs(GOLDEN, exist_ok=True)
    names = sorted(f[:-5] for f in os.listdir(CONFIGS) if f.endswith(".json"))
    for name in names:
        with open(os.path.join(CONFIGS, name + ".json")) as f:
            raw = json.load(f)
        cfg = text_config(raw)
        d = cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model")
        out = {
            "model": REPO_IDS.get(name, "synthetic/" + name),
            "model_type": raw["model_type"],
            "hidden_size": d,
            "layers": build(name, raw),
        }
        with open(os.path.join(GOLDEN, name + ".json"), "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(name, len(out["layers"]), "layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
