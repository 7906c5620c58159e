#!/usr/bin/python3
"""Tests of `posenc inspect` and of `--config config.json [--layer L]` in `posenc rope`, `attend`
and `table` (docs/cli.md, "Hugging Face models").

inspect runs on the fixtures of tests/hf/configs (text lines pinned, --json checked against
NumPy transcriptions of Hugging Face's frequency formulas); rope --config and attend --config run
on small configs written here and must equal the same commands with the equivalent explicit
flags (bit for bit: the same computation), and one rope --config result a NumPy rotation; every
error is one line naming the problem, with no output file.

  /usr/bin/python3 test_cli_hf.py --posenc BUILD/tools/posenc --data tests/reference/data \\
      --hf tests/hf [GROUP ...]

GROUP is any of: inspect rope attend errors weights (default: all), or unavailable (a program built
without nlohmann/json: every --config path answers with one line). Prints "N passed, M failed".
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_cli import Suite  # noqa: E402  (tests/cli/test_cli.py: running, checks, bad input)

NO_HF = "posenc was built without nlohmann/json: --config is not available"

# Small models of one shape: D = 32, H = 2, Dh = 16 (H_kv 1 for llama).
TINY = {
    "llama3": {"model_type": "llama", "hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
               "num_hidden_layers": 2, "max_position_embeddings": 64, "rope_theta": 500000.0,
               "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}},
    "yarn": {"model_type": "qwen2", "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
             "max_position_embeddings": 64, "rope_theta": 10000.0,
             "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}},
    "longrope": {"model_type": "phi3", "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
                 "max_position_embeddings": 64, "original_max_position_embeddings": 16,
                 "rope_scaling": {"type": "longrope",
                                  "short_factor": [1.0, 1.1, 1.2, 1.3, 1.5, 1.8, 2.0, 2.5],
                                  "long_factor": [1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 9.0]}},
    "partial": {"model_type": "gpt_neox", "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
                "max_position_embeddings": 64, "rotary_pct": 0.5, "rotary_emb_base": 10000},
    "interleaved": {"model_type": "gptj", "n_embd": 32, "n_head": 2, "n_layer": 1, "n_positions": 64,
                    "rotary_dim": 8},
    "mrope": {"model_type": "qwen2_vl", "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
              "max_position_embeddings": 64, "rope_theta": 1000000.0,
              "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}},
    "gemma2": {"model_type": "gemma2", "hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
               "head_dim": 16, "num_hidden_layers": 2, "max_position_embeddings": 64, "sliding_window": 3,
               "query_pre_attn_scalar": 24, "attn_logit_softcapping": 5.0},
    "bloom": {"model_type": "bloom", "hidden_size": 32, "n_head": 2, "n_layer": 1},
    "t5": {"model_type": "t5", "d_model": 32, "num_heads": 2, "d_kv": 16, "num_layers": 1,
           "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16},
    "gpt2": {"model_type": "gpt2", "n_embd": 32, "n_head": 2, "n_layer": 1, "n_positions": 8},
    "bert": {"model_type": "bert", "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
             "max_position_embeddings": 8, "position_embedding_type": "relative_key_query"},
    "deberta": {"model_type": "deberta-v2", "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
                "max_position_embeddings": 16, "relative_attention": True, "position_buckets": 4,
                "max_relative_positions": 16, "pos_att_type": ["p2c", "c2p"]},
}

# The explicit flags of `posenc rope` equal to each config's RoPE (Dh = 16).
ROPE_FLAGS = {
    "llama3": ["--base", 500000, "--scaling", "llama3", "--factor", 8, "--low-freq-factor", 1,
               "--high-freq-factor", 4, "--original-max-positions", 16],
    # hf: rope_scaling.original_max_position_embeddings given: M = 16, factor = 64 / 16
    "yarn": ["--scaling", "yarn", "--factor", 4, "--original-max-positions", 16],
    # Phi-3: the top-level original_max_position_embeddings, factor = 64 / 16
    "longrope": ["--scaling", "longrope", "--factor", 4, "--original-max-positions", 16],
    "partial": ["--rotary-dim", 8],
    "interleaved": ["--rotary-dim", 8, "--layout", "interleaved"],
    "mrope": ["--base", 1000000],
}


def llama3_inv_freq(base, dim, factor, low, high, m):
    """modeling_rope_utils._compute_llama3_parameters."""
    inv = 1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    wl = 2 * math.pi / inv
    low_wl, high_wl = m / low, m / high
    out = np.where(wl > low_wl, inv / factor, inv)
    smooth = (m / wl - low) / (high - low)
    mid = (1 - smooth) * inv / factor + smooth * inv
    return np.where((wl >= high_wl) & (wl <= low_wl), mid, out)


def rotate_half(x, pos, inv, scale=1.0):
    """RoPE with rotate_half (pairs i, i + R/2 of the first R = 2 len(inv) dims), [N, H, Dh]."""
    r = 2 * len(inv)
    th = np.outer(pos.astype(np.float64), inv)[:, None, :]
    c, s = np.cos(th) * scale, np.sin(th) * scale
    out = x.copy()
    x1, x2 = x[..., : r // 2], x[..., r // 2 : r]
    out[..., : r // 2] = x1 * c - x2 * s
    out[..., r // 2 : r] = x2 * c + x1 * s
    return out


class HfSuite(Suite):
    def __init__(self, posenc, data, hf, work):
        super().__init__(posenc, data, work)
        self.hf = hf
        self.configs = {}
        for name, cfg in TINY.items():
            path = self.w(f"cfg_{name}.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            self.configs[name] = path

    def fixture(self, name):
        return os.path.join(self.hf, "configs", name + ".json")

    def text(self, name, args):
        """stdout of a successful `posenc args` (None, and a failure, otherwise)."""
        rc, so, se = self.run(args)
        if not self.ok(name, rc == 0 and se == "", f"exit {rc}: {se.strip()}"):
            return None
        return so

    def out(self, name, args):
        """The array `posenc args -o OUT` writes (None, and a failure, when it fails)."""
        path = self.w(name.replace(" ", "_").replace("/", "_") + ".npy")
        if os.path.exists(path):
            os.remove(path)
        rc, _, se = self.run(args + ["-o", path])
        if not self.ok(name, rc == 0, f"exit {rc}: {se.strip()}"):
            return None
        return np.load(path)

    def same_output(self, name, a, b):
        """`posenc a` and `posenc b` write the same array, bit for bit."""
        ya, yb = self.out(name + " (config)", a), self.out(name + " (flags)", b)
        if ya is None or yb is None:
            self.ok(name, False, "a run failed")
            return
        self.ok(name, ya.dtype == yb.dtype and ya.shape == yb.shape and np.array_equal(ya, yb),
                f"differ: max |diff| {np.max(np.abs(ya.astype(float) - yb.astype(float))) if ya.shape == yb.shape else 'shape'}")


# --- inspect ------------------------------------------------------------------------------------
def group_inspect(s):
    cases = [
        ("llama-3.1-8b", [], [
            "llama-3.1-8b.json: model_type llama, hidden_size 4096, max_position_embeddings 131072, 32 layers",
            "layers 0-31: full_attention, encoder rope, causal",
            "  attention: H 32, H_kv 8, Dh 128, value Dh 128, scale 0.08838834765, window none, chunk none, "
            "softcap none, sinks no",
            "  rope: base 500000, R 128, layout half, block leading, scaling llama3 (factor 8, M 8192, "
            "low_freq_factor 1, high_freq_factor 4)",
            "  inv_freq [64] 1 .. 3.068925989e-07 (wavelength 2 pi / inv_freq 6.283185307 .. 20473564.14), "
            "attention factor 1"]),
        ("gemma-2-9b", [], ["layer 0: sliding_attention, encoder rope, causal", "window 4096",
                            "layer 1: full_attention, encoder rope, causal", "softcap 50", "scale 0.0625"]),
        ("gemma-2-9b", ["--layer", 1], ["layer 1: full_attention", "42 layers"]),
        ("phi-3.5-mini-instruct", [], ["scaling longrope (factor 32, M 4096)",
                                       "inv_freq (short, within the original context) [48] 1 ..",
                                       "inv_freq (long, past M) [48]", "longrope factors [48]"]),
        ("bloom-560m", [], ["encoder alibi", "alibi: slopes [16] 0.7071067812 .. 0.00390625"]),
        ("t5-small", [], ["encoder t5, bidirectional", "owns relative_attention_bias [32, 8]",
                          "uses layer 0's relative_attention_bias"]),
        ("gpt2", [], ["encoder learned", "learned: table [1024, 768] added to the embeddings, position 0 at row 0"]),
        ("opt-125m", [], ["position 0 at row 2"]),
        ("deberta-v3-base", [], ["deberta: position_buckets 256, max_relative_positions 512, pos_att_type both"]),
        ("qwen2-vl-7b-instruct", [], ["encoder mrope", "mrope: chunked, mrope_section [16, 24, 24]"]),
        ("llama-4-scout-17b-16e", [], ["layers 0-2: chunked_attention, encoder rope", "chunk 8192",
                                       "layer 3: full_attention, encoder temperature",
                                       "temperature: attn_scale 0.1, floor_scale 8192 (no RoPE)"]),
        ("deepseek-v3", [], ["block trailing", "layout interleaved", "scaling yarn"]),
    ]
    for name, extra, frags in cases:
        so = s.text(f"inspect {name} {extra}", ["inspect", "--config", s.fixture(name)] + extra)
        if so is None:
            continue
        missing = [f for f in frags if f not in so]
        s.ok(f"inspect {name} {extra}", not missing, f"lacks {missing} in:\n{so}")
        if extra:
            s.ok(f"inspect {name} {extra} one layer", so.count("\nlayer") == 1, so)

    # --json: one object; llama-3.1's inv_freq against modeling_rope_utils' llama3 formula.
    so = s.text("inspect --json llama-3.1-8b", ["inspect", "--config", s.fixture("llama-3.1-8b"), "--json"])
    if so is not None:
        j = json.loads(so)
        s.ok("inspect --json keys", set(j) >= {"model_type", "hidden_size", "max_position_embeddings", "layers"}
             and j["max_position_embeddings"] == 131072 and len(j["layers"]) == 32, str(j.keys()))
        ref = llama3_inv_freq(500000.0, 128, 8.0, 1.0, 4.0, 8192)
        got = np.array(j["layers"][31]["inv_freq"])
        s.ok("inspect --json llama3 inv_freq", got.shape == ref.shape and np.max(np.abs(got - ref) / ref) < 1e-12,
             f"{got[:3]} vs {ref[:3]}")
        l0 = j["layers"][0]
        s.ok("inspect --json nulls", l0["window"] is None and l0["alibi_slopes"] is None and l0["t5_num_buckets"] is None
             and l0["inv_freq_long"] is None and l0["rope_parameters"]["factor"] == 8.0, json.dumps(l0)[:300])
    # bloom's slopes: 2^(-8 (h + 1) / H) for H a power of two (build_alibi_tensor)
    so = s.text("inspect --json bloom", ["inspect", "--config", s.fixture("bloom-560m"), "--json", "--layer", 0])
    if so is not None:
        sl = np.array(json.loads(so)["layers"][0]["alibi_slopes"])
        s.ok("inspect --json alibi slopes", np.allclose(sl, 2.0 ** (-8.0 * np.arange(1, 17) / 16), rtol=1e-15, atol=0),
             str(sl))
    # The small yarn config: attention factor 0.1 ln(4) + 1 (_compute_yarn_parameters' get_mscale).
    so = s.text("inspect --json yarn", ["inspect", "--config", s.configs["yarn"], "--json"])
    if so is not None:
        l0 = json.loads(so)["layers"][0]
        s.ok("inspect --json yarn attention factor", abs(l0["attention_factor"] - (0.1 * math.log(4) + 1)) < 1e-15,
             str(l0["attention_factor"]))
        s.ok("inspect --json yarn parameters", l0["rope_parameters"] == {
            "factor": 4.0, "original_max_position_embeddings": 16, "beta_fast": 32.0, "beta_slow": 1.0,
            "truncate": True}, str(l0["rope_parameters"]))


# --- rope --config ------------------------------------------------------------------------------
def group_rope(s):
    rng = np.random.default_rng(7)
    x = s.save("hf_rope_x.npy", rng.standard_normal((6, 2, 16)))
    lf = TINY["longrope"]["rope_scaling"]
    short = s.save("hf_short.npy", np.array(lf["short_factor"]))
    long_ = s.save("hf_long.npy", np.array(lf["long_factor"]))
    for name, flags in ROPE_FLAGS.items():
        flags = flags + (["--short-factors", short, "--long-factors", long_] if name == "longrope" else [])
        for pos in (["--offset", 3], ["--offset", 40]):  # within / past the original context 16
            for extra in ([], ["--inverse"], ["--dtype", "f32"]):
                s.same_output(f"rope --config {name} {pos} {extra}",
                              ["rope", "--in", x, "--config", s.configs[name]] + pos + extra,
                              ["rope", "--in", x] + flags + pos + extra)
    # --layer picks the layer (llama3 has two alike)
    s.same_output("rope --config --layer 1", ["rope", "--in", x, "--config", s.configs["llama3"], "--layer", 1,
                                              "--offset", 5], ["rope", "--in", x] + ROPE_FLAGS["llama3"] + ["--offset", 5])
    # The fixtures: llama-3.1-8b's RoPE on Dh = 128 against a NumPy rotation with its llama3 inv_freq.
    xl = rng.standard_normal((5, 2, 128))
    y = s.out("rope --config llama-3.1-8b", ["rope", "--in", s.save("hf_rope_x128.npy", xl), "--config",
                                             s.fixture("llama-3.1-8b"), "--offset", 1000])
    if y is not None:
        ref = rotate_half(xl, np.arange(1000, 1005), llama3_inv_freq(500000.0, 128, 8.0, 1.0, 4.0, 8192))
        s.compare("rope --config llama-3.1-8b numpy", y, ref, "f64", 1e-12)
    # mrope: [A, N] positions with the layer's mrope_section; 1D positions are every axis alike.
    p3 = s.save("hf_mrope_pos.npy", rng.integers(0, 50, size=(3, 6)).astype(np.int64))
    p1 = s.save("hf_pos1.npy", np.array([4, 0, 9, 2, 2, 30], dtype=np.int64))
    s.same_output("rope --config mrope [A, N]", ["rope", "--in", x, "--config", s.configs["mrope"], "--positions", p3],
                  ["rope", "--in", x, "--base", 1000000, "--positions", p3, "--mrope-layout", "chunked",
                   "--mrope-section", "2,3,3"])
    s.same_output("rope --config mrope 1D", ["rope", "--in", x, "--config", s.configs["mrope"], "--positions", p1],
                  ["rope", "--in", x, "--base", 1000000, "--positions", p1])
    p1as3 = s.save("hf_pos1as3.npy", np.tile(np.load(p1), (3, 1)))
    s.same_output("rope --config mrope 1D = [A, N] alike", ["rope", "--in", x, "--config", s.configs["mrope"],
                                                            "--positions", p1],
                  ["rope", "--in", x, "--config", s.configs["mrope"], "--positions", p1as3])


# --- attend --config ----------------------------------------------------------------------------
def group_attend(s):
    rng = np.random.default_rng(11)
    n, d, h, dh = 7, 32, 2, 16
    x = s.save("hf_x.npy", rng.standard_normal((n, d)))
    wq = s.save("hf_wq.npy", 0.3 * rng.standard_normal((d, h * dh)))
    wo = s.save("hf_wo.npy", 0.3 * rng.standard_normal((h * dh, d)))
    w2 = [s.save(f"hf_w{k}2.npy", 0.3 * rng.standard_normal((d, h * dh))) for k in "kv"]
    w1 = [s.save(f"hf_w{k}1.npy", 0.3 * rng.standard_normal((d, dh))) for k in "kv"]  # H_kv = 1

    def layer(kv):
        wk, wv = (w1 if kv == 1 else w2)
        return ["attend", "--x", x, "--wq", wq, "--wk", wk, "--wv", wv, "--wo", wo]

    gemma_scale = 1.0 / math.sqrt(24)
    cases = [
        ("llama3", 1, [], ["--heads", 2, "--kv-heads", 1, "--head-dim", 16, "--causal", "--encoder", "rope"]
         + ROPE_FLAGS["llama3"]),
        ("llama3 offset 40", 1, ["--offset", 40],
         ["--heads", 2, "--kv-heads", 1, "--causal", "--encoder", "rope"] + ROPE_FLAGS["llama3"] + ["--offset", 40]),
        ("llama3 prefill", 1, ["--prefill", 3],
         ["--heads", 2, "--kv-heads", 1, "--causal", "--encoder", "rope", "--prefill", 3] + ROPE_FLAGS["llama3"]),
        ("yarn", 2, [], ["--heads", 2, "--causal", "--encoder", "rope"] + ROPE_FLAGS["yarn"]),
        ("gemma2 layer 0 (sliding)", 1, ["--layer", 0],
         ["--heads", 2, "--kv-heads", 1, "--head-dim", 16, "--causal", "--window", 3, "--softcap", 5,
          "--scale", gemma_scale, "--encoder", "rope"]),
        ("gemma2 layer 1 (full)", 1, ["--layer", 1],
         ["--heads", 2, "--kv-heads", 1, "--causal", "--softcap", 5, "--scale", gemma_scale, "--encoder", "rope"]),
        ("bloom", 2, [], ["--heads", 2, "--causal", "--encoder", "alibi", "--max-bias", 8]),
        ("gpt2 (no table)", 2, [], ["--heads", 2, "--causal", "--encoder", "none"]),
    ]
    for name, kv, extra, flags in cases:
        cfg = s.configs[name.split()[0]]
        s.same_output(f"attend --config {name}", layer(kv) + ["--config", cfg] + extra, layer(kv) + flags)
    # Tables from the table flags.
    pe = s.save("hf_pe.npy", rng.standard_normal((8, d)))
    s.same_output("attend --config gpt2 --table", layer(2) + ["--config", s.configs["gpt2"], "--table", pe],
                  layer(2) + ["--heads", 2, "--causal", "--encoder", "learned", "--table", pe])
    t5 = s.save("hf_t5.npy", rng.standard_normal((8, 2)))
    s.same_output("attend --config t5 --table", layer(2) + ["--config", s.configs["t5"], "--table", t5],
                  layer(2) + ["--heads", 2, "--scale", 1, "--encoder", "t5", "--table", t5, "--max-distance", 16])
    e = s.save("hf_bert_e.npy", rng.standard_normal((15, dh)))
    s.same_output("attend --config bert --distance-table",
                  layer(2) + ["--config", s.configs["bert"], "--distance-table", e],
                  layer(2) + ["--heads", 2, "--encoder", "bert-relative", "--distance-table", e,
                              "--position-embedding-type", "relative_key_query"])
    kr, qr = (s.save(f"hf_deb_{k}.npy", rng.standard_normal((8, h * dh))) for k in ("kr", "qr"))
    s.same_output("attend --config deberta tables",
                  layer(2) + ["--config", s.configs["deberta"], "--rel-key-table", kr, "--rel-query-table", qr],
                  layer(2) + ["--heads", 2, "--encoder", "deberta", "--rel-key-table", kr, "--rel-query-table", qr,
                              "--position-buckets", 4, "--max-relative-positions", 16])
    # The model's own: llama3 against a NumPy layer (GQA, causal, its RoPE).
    y = s.out("attend --config llama3 numpy", layer(1) + ["--config", s.configs["llama3"]])
    if y is not None:
        X, Wq, Wk, Wv, Wo = (np.load(p) for p in (x, wq, w1[0], w1[1], wo))
        c = TINY["llama3"]["rope_scaling"]
        inv = llama3_inv_freq(500000.0, 16, c["factor"], c["low_freq_factor"], c["high_freq_factor"], 16)
        pos = np.arange(n)
        q = rotate_half((X @ Wq).reshape(n, h, dh), pos, inv)
        k = rotate_half((X @ Wk).reshape(n, 1, dh), pos, inv)
        v = (X @ Wv).reshape(n, 1, dh)
        o = np.zeros((n, h, dh))
        for hh in range(h):
            sc = q[:, hh] @ k[:, 0].T / math.sqrt(dh)
            sc[np.triu_indices(n, 1)] = -np.inf
            p = np.exp(sc - sc.max(axis=1, keepdims=True))
            o[:, hh] = (p / p.sum(axis=1, keepdims=True)) @ v[:, 0]
        s.compare("attend --config llama3 numpy", y, o.reshape(n, h * dh) @ Wo, "f64", 1e-12)


# --- errors -------------------------------------------------------------------------------------
def group_errors(s):
    rng = np.random.default_rng(3)
    x = s.save("hf_err_x.npy", rng.standard_normal((4, 2, 16)))
    bad_json = s.w("bad.json")
    with open(bad_json, "w") as f:
        f.write('{"model_type": "llama", "hidden_size": ')

    def write(name, cfg):
        path = s.w(name)
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    unknown_type = write("unknown_type.json", dict(TINY["llama3"], model_type="bart"))
    unknown_key = write("unknown_key.json", dict(TINY["llama3"], rope_scaling=dict(
        TINY["llama3"]["rope_scaling"], foo=1)))
    unknown_rope = write("unknown_rope.json", dict(TINY["llama3"], rope_scaling={"rope_type": "magic", "factor": 2}))
    os.makedirs(s.w("cfgdir"), exist_ok=True)
    fifo = s.w("cfg.fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    llama = s.configs["llama3"]
    d = s.data
    att = ["attend", "--x", os.path.join(d, "attn_x.npy"), "--wq", os.path.join(d, "attn_wq.npy"),
           "--wk", os.path.join(d, "attn_wk.npy"), "--wv", os.path.join(d, "attn_wv.npy"),
           "--wo", os.path.join(d, "attn_wo.npy")]
    rope = ["rope", "--in", x]
    cases = [
        ("missing file", rope + ["--config", s.w("nope.json")], ["--config", "nope.json", "cannot open",
                                                                 "No such file or directory"]),
        ("directory", rope + ["--config", s.w("cfgdir")], ["--config", "cfgdir: is a directory"]),
        ("fifo", rope + ["--config", fifo], ["--config", "cfg.fifo: is not a regular file"]),
        ("bad JSON", rope + ["--config", bad_json], ["--config", "bad.json: not valid JSON"]),
        ("unknown model_type", rope + ["--config", unknown_type], ["--config", "model_type = bart",
                                                                   "not a model type posenc knows"]),
        ("unknown rope_scaling key", rope + ["--config", unknown_key], ["rope_scaling.foo", "not a field of rope_type llama3"]),
        ("unknown rope_type", rope + ["--config", unknown_rope], ["rope_type = magic", "not a rope_type posenc knows"]),
        ("--layer out of range", rope + ["--config", llama, "--layer", 2], ["--layer: 2 is outside 0 .. 1",
                                                                            "llama has 2 layers"]),
        ("--layer without --config", rope + ["--layer", 0], ["--layer requires --config"]),
        ("--config with --base", rope + ["--config", llama, "--base", 100], ["excludes", "--config", "--base"]),
        ("--config with --scaling", rope + ["--config", llama, "--scaling", "linear"], ["excludes", "--config", "--scaling"]),
        ("--config with --mrope-section", rope + ["--config", llama, "--mrope-section", "2,3,3"], ["excludes", "--config"]),
        ("rope Dh", ["rope", "--in", os.path.join(d, "rope_x.npy"), "--config", s.fixture("llama-3.1-8b")],
         ["--in", "has Dh = 16", "layer 0 of", "has head_dim 128"]),
        ("rope on alibi", rope + ["--config", s.configs["bloom"]], ["--config", "(bloom) uses encoder alibi, not rope"]),
        ("attend --config with --encoder", att + ["--config", llama, "--encoder", "rope"], ["excludes", "--config", "--encoder"]),
        ("attend --config with --heads", att + ["--config", llama, "--heads", 2], ["excludes", "--config", "--heads"]),
        ("attend --config with --causal", att + ["--config", llama, "--causal"], ["excludes", "--config", "--causal"]),
        ("attend --config with --max-bias", att + ["--config", llama, "--max-bias", 3], ["excludes", "--config", "--max-bias"]),
        ("attend --config with --window", att + ["--config", llama, "--window", 3], ["excludes", "--config", "--window"]),
        ("attend no --encoder", att + ["--heads", 2], ["--encoder is required (or --config config.json)"]),
        ("attend no --heads", att + ["--encoder", "none"], ["--heads is required"]),
        ("attend D", att + ["--config", s.fixture("llama-3.1-8b")], ["--x", "expected shape [N, 4096]",
                                                                    "hidden_size from layer 0 of"]),
        ("attend t5 without --table", att + ["--config", s.configs["t5"]], ["(t5) uses encoder t5, which needs its relative_attention_bias",
                                                                            "--table t.npy ([num_buckets, H] = [8, 2])"]),
        ("attend deberta without tables", att + ["--config", s.configs["deberta"]],
         ["uses encoder deberta, which needs its relative tables", "[8, 32]"]),
        ("attend bert without --distance-table", att + ["--config", s.configs["bert"]],
         ["uses encoder bert-relative", "--distance-table e.npy ([2L - 1, Dh] = [15, 16])"]),
        ("attend sinks", att + ["--config", s.fixture("gpt-oss-20b")], ["has attention sinks", "--sinks"]),
        ("table --config learned", ["table", "--config", s.configs["gpt2"]], ["learned table [8, 32]", "--weights"]),
        ("table --config rope", ["table", "--config", llama, "--len", 3], ["uses encoder rope",
                                                                            "no absolute table"]),
        ("table --config with --dim", ["table", "--config", llama, "--dim", 8, "--len", 3], ["excludes", "--dim"]),
        ("table no --encoder", ["table", "--dim", 8, "--len", 3], ["--encoder is required"]),
    ]
    for name, args, frags in cases:
        s.fails(name, args, frags)
    # inspect writes no file: its errors are the same one line, with nothing on stdout.
    for name, args, frags in [
        ("inspect missing", ["inspect", "--config", s.w("nope.json")], ["--config", "cannot open"]),
        ("inspect bad JSON", ["inspect", "--config", bad_json, "--json"], ["not valid JSON"]),
        ("inspect unknown model_type", ["inspect", "--config", unknown_type], ["not a model type posenc knows"]),
        ("inspect unknown key", ["inspect", "--config", unknown_key, "--json"], ["not a field of rope_type llama3"]),
        ("inspect --layer", ["inspect", "--config", llama, "--layer", 5], ["--layer: 5 is outside 0 .. 1"]),
        ("inspect no --config", ["inspect"], ["--config is required"]),
    ]:
        s.error_run(name, args, frags)


# --- checkpoints: attend --config --weights ------------------------------------------------------
def group_weights(s):
    """Every checkpoint of tests/hf/layers (written in the exact format by
    tests/reference/make_hf_layers.py) through `attend --config --weights --layer L` against the
    reference's float64 outputs, in f64 and f32; a decode loop; every error one line."""
    layers = os.path.join(s.hf, "layers")
    for case in sorted(os.listdir(layers)):
        d = os.path.join(layers, case)
        if not os.path.isdir(d):
            continue
        cfg = os.path.join(d, "config.json")
        with open(cfg) as f:
            c = json.load(f)
        encoder_layers = c.get("num_layers", c.get("num_hidden_layers", c.get("n_layer", 0)))
        for y in sorted(f for f in os.listdir(d) if f.startswith("y_") and f.endswith(".npy")):
            stem = y[2:-4]
            if stem.startswith("L"):
                layer = int(stem[1:])
            elif stem.startswith("enc"):
                layer = int(stem[3:])
            else:  # T5's decoder layers follow the encoder's
                layer = encoder_layers + int(stem[3:])
            ref = np.load(os.path.join(d, y))
            args = ["attend", "--config", cfg, "--weights", d, "--layer", layer,
                    "--x", os.path.join(d, "x.npy"), "--positions", os.path.join(d, "positions.npy")]
            for dt, tol in (("f64", 1e-12), ("f32", 2e-5)):
                out = s.out(f"weights {case} {y} {dt}", args + ["--dtype", dt])
                if out is not None:
                    s.compare(f"weights {case} {y} {dt}", out, ref, dt, tol)
    # A decode loop over the checkpoint's layer equals the reference's one call.
    d = os.path.join(layers, "llama3-gqa")
    out = s.out("weights llama3-gqa prefill 3",
                ["attend", "--config", os.path.join(d, "config.json"), "--weights", d, "--layer", 1,
                 "--x", os.path.join(d, "x.npy"), "--positions", os.path.join(d, "positions.npy"),
                 "--prefill", 3])
    if out is not None:
        s.compare("weights llama3-gqa prefill 3", out, np.load(os.path.join(d, "y_L1.npy")), "f64", 1e-12)
    # table --config --weights: the checkpoint's learned rows at the positions (OPT: offset 2).
    for case in ("gpt2-conv1d", "opt", "bert-absolute"):
        cd = os.path.join(layers, case)
        for dt, tol in (("f64", 0.0), ("f32", 1e-7)):
            out = s.out(f"table weights {case} {dt}",
                        ["table", "--config", os.path.join(cd, "config.json"), "--weights", cd,
                         "--positions", os.path.join(cd, "positions.npy"), "--dtype", dt])
            if out is not None:
                s.compare(f"table weights {case} {dt}", out, np.load(os.path.join(cd, "pe.npy")), dt, tol)
    # Errors.
    llama_cfg, llama = os.path.join(d, "config.json"), d
    gpt2_cfg = os.path.join(layers, "gpt2-conv1d", "config.json")
    x = os.path.join(d, "x.npy")
    bad_x = s.save("hf_w_bad_x.npy", np.zeros((3, 5)))
    att = ["attend", "--x", x]
    for name, args, frags in [
        ("weights missing file", att + ["--config", llama_cfg, "--weights", s.w("none.safetensors")],
         ["--weights: ", "none.safetensors", "cannot open"]),
        ("weights wrong model", att + ["--config", gpt2_cfg, "--weights", llama],
         ["--weights: ", "no tensor 'transformer.h.0.attn.c_attn.weight'"]),
        ("weights without --config", att + ["--weights", llama], ["--weights requires --config"]),
        ("weights with --wq", att + ["--config", llama_cfg, "--weights", llama, "--wq", x],
         ["--wq excludes --weights"]),
        ("weights with --sinks", att + ["--config", llama_cfg, "--weights", llama, "--sinks", x],
         ["excludes"]),
        ("weights x shape", ["attend", "--x", bad_x, "--config", llama_cfg, "--weights", llama],
         ["--x: ", "expected shape [N, 32]", "hidden_size"]),
        ("weights layer", att + ["--config", llama_cfg, "--weights", llama, "--layer", 7],
         ["--layer: 7 is outside 0 .. 1"]),
        ("no --wq", att + ["--config", llama_cfg], ["--wq is required (or --weights"]),
        ("table weights rope", ["table", "--config", llama_cfg, "--weights", llama, "--len", 3],
         ["--weights: ", "uses encoder rope, which has no learned table"]),
        ("table weights past the table", ["table", "--config", gpt2_cfg, "--weights",
                                          os.path.join(layers, "gpt2-conv1d"), "--len", 40],
         ["--positions: ", "LearnedEncoding"]),
        ("table weights without --config", ["table", "--weights", llama, "--len", 3],
         ["--weights requires --config"]),
    ]:
        s.fails(name, args, frags)


# --- built without nlohmann/json ----------------------------------------------------------------
def group_unavailable(s):
    llama = s.configs["llama3"]
    x = s.save("hf_na_x.npy", np.zeros((2, 1, 16)))
    s.error_run("unavailable inspect", ["inspect", "--config", llama], [NO_HF])
    s.fails("unavailable rope", ["rope", "--in", x, "--config", llama], [NO_HF])
    s.fails("unavailable table", ["table", "--config", llama, "--len", 2], [NO_HF])


GROUPS = {"inspect": group_inspect, "rope": group_rope, "attend": group_attend, "errors": group_errors,
          "weights": group_weights}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posenc", required=True, help="the posenc program")
    ap.add_argument("--data", required=True, help="tests/reference/data")
    ap.add_argument("--hf", required=True, help="tests/hf")
    ap.add_argument("groups", nargs="*", help="any of " + " ".join(GROUPS) + ", or unavailable")
    a = ap.parse_args()
    all_groups = dict(GROUPS, unavailable=group_unavailable)
    unknown = [g for g in a.groups if g not in all_groups]
    if unknown:
        ap.error(f"unknown group(s) {unknown}; expected any of {list(all_groups)}")
    work = tempfile.mkdtemp(prefix="posenc_cli_hf_test_")
    s = HfSuite(os.path.abspath(a.posenc), os.path.abspath(a.data), os.path.abspath(a.hf), work)
    try:
        for g in a.groups or list(GROUPS):
            all_groups[g](s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(s.bad_cases)} bad-input cases run")
    print(f"{s.passed} passed, {s.failed} failed")
    return 1 if s.failed or s.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
