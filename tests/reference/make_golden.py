#!/usr/bin/python3
"""Independent float64 reference for posenc (spec: docs/conventions.md).

Run:  /usr/bin/python3 tests/reference/make_golden.py   (from anywhere)
Writes .npy files into tests/reference/data/ (stale *.npy deleted first) and
regenerates tests/reference/README.md, which lists every file and how it was made.

Random inputs: float64 standard normal (projection weights scaled by 1/sqrt(D_in)),
rounded to float32 and stored as float64. Outputs: float64, computed in float64.
Integer arrays: int64. Multi-head tensors: [N, H, Dh] row-major.
"""
import decimal
import math
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"
MANIFEST = []  # (name, shape, dtype, description)


def save(name, arr, desc):
    arr = np.ascontiguousarray(arr)
    assert arr.dtype in (np.float64, np.int64), (name, arr.dtype)
    arr = arr.astype(arr.dtype.newbyteorder("<"))
    np.save(DATA / (name + ".npy"), arr)
    MANIFEST.append((name + ".npy", arr.shape, str(arr.dtype), desc))
    return arr


def rnd(seed, shape, scale=1.0):
    """Standard normal * scale, rounded to float32, stored as float64."""
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    return x.astype(np.float32).astype(np.float64)


def positions(n, offset=0):
    return np.arange(n, dtype=np.int64) + offset


# ---------------------------------------------------------------- §1 sinusoidal
def sin_inv_freq(D, base=10000.0, freq="vaswani"):
    i = np.arange(D // 2, dtype=np.float64)
    if freq == "vaswani":                       # §1: base^(-2i/D)
        return base ** (-2.0 * i / D)
    assert D >= 4                               # §1 log_timescale: base^(-i/(D/2-1))
    return base ** (-i / (D / 2 - 1))


def sinusoid(pos, D, layout="interleaved", base=10000.0, freq="vaswani"):
    """PE for any array of (possibly negative) positions -> pos.shape + (D,)."""
    ang = np.asarray(pos, dtype=np.float64)[..., None] * sin_inv_freq(D, base, freq)
    out = np.empty(ang.shape[:-1] + (D,))
    if layout == "interleaved":                 # PE[2i]=sin, PE[2i+1]=cos
        out[..., 0::2], out[..., 1::2] = np.sin(ang), np.cos(ang)
    else:                                       # split: PE[i]=sin, PE[D/2+i]=cos
        out[..., : D // 2], out[..., D // 2:] = np.sin(ang), np.cos(ang)
    return out


# ---------------------------------------------------------------- §3 RoPE
def rope_inv_freq(R, base=10000.0):
    return base ** (-2.0 * np.arange(R // 2, dtype=np.float64) / R)


def inv_freq_linear(R, base, factor):                    # §3 linear
    return rope_inv_freq(R, base) / factor


def inv_freq_ntk(R, base, factor):                       # §3 ntk
    return rope_inv_freq(R, base * factor ** (R / (R - 2)))


def inv_freq_dynamic(R, base, factor, M, L):             # §3 dynamic (stateless)
    if L > M:
        base = base * ((factor * L / M) - (factor - 1)) ** (R / (R - 2))
    return rope_inv_freq(R, base)


def inv_freq_yarn(R, base, factor, M, beta_fast=32.0, beta_slow=1.0, truncate=True):
    inv = rope_inv_freq(R, base)                          # §3 yarn

    def corr(r):
        return R * math.log(M / (2 * math.pi * r)) / (2 * math.log(base))

    lo, hi = corr(beta_fast), corr(beta_slow)
    if truncate:
        lo, hi = math.floor(lo), math.ceil(hi)
    lo, hi = max(lo, 0), min(hi, R - 1)
    if lo == hi:
        hi += 0.001
    i = np.arange(R // 2, dtype=np.float64)
    ramp = np.clip((i - lo) / (hi - lo), 0.0, 1.0)
    e = 1.0 - ramp
    return (inv / factor) * (1.0 - e) + inv * e


def yarn_g(s, m):                                         # §3 yarn g(s, m)
    return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0


def yarn_attention_factor(factor, attention_factor=None, mscale=None, mscale_all_dim=None):
    if attention_factor is not None:
        return attention_factor
    if mscale and mscale_all_dim:                         # 0 / None treated as absent
        return yarn_g(factor, mscale) / yarn_g(factor, mscale_all_dim)
    return yarn_g(factor, 1.0)


def inv_freq_longrope(R, base, ext_factors):              # §3 longrope
    i = np.arange(R // 2, dtype=np.float64)
    return 1.0 / (np.asarray(ext_factors) * base ** (2.0 * i / R))


def longrope_attention_factor(factor, M):
    return 1.0 if factor <= 1 else math.sqrt(1.0 + math.log(factor) / math.log(M))


def inv_freq_llama3(R, base, factor=8.0, low=1.0, high=4.0, M=8192):   # §3 llama3
    inv = rope_inv_freq(R, base)
    lam = 2 * math.pi / inv
    s = (M / lam - low) / (high - low)
    mid = (1 - s) * inv / factor + s * inv
    return np.where(lam < M / high, inv, np.where(lam > M / low, inv / factor, mid))


def rope_apply(x, pos, inv_freq, layout="half", attn_factor=1.0):
    """x [N, H, Dh]; rotate the first R = 2*len(inv_freq) dims of every head (§3)."""
    R = 2 * len(inv_freq)
    out = x.copy()
    th = np.asarray(pos, dtype=np.float64)[:, None] * inv_freq[None, :]   # [N, R/2]
    c, s = np.cos(th)[:, None, :], np.sin(th)[:, None, :]
    if layout == "half":                        # pair i = (i, i + R/2)
        ia, ib = np.arange(R // 2), np.arange(R // 2) + R // 2
    else:                                       # interleaved: pair i = (2i, 2i+1)
        ia, ib = np.arange(0, R, 2), np.arange(1, R, 2)
    a, b = x[..., ia], x[..., ib]
    out[..., ia] = (a * c - b * s) * attn_factor
    out[..., ib] = (b * c + a * s) * attn_factor
    return out


# ---------------------------------------------------------------- §4 ALiBi
def alibi_slopes(H, b=8.0):
    def pow2(n):
        return [2.0 ** (-b * (h + 1) / n) for h in range(n)]
    n = 1 << (H.bit_length() - 1)               # 2^floor(log2 H)
    s = pow2(n)
    if n < H:
        s += pow2(2 * n)[0::2][: H - n]         # entries 0, 2, 4, ... of 2n heads
    return np.array(s, dtype=np.float64)


def alibi_bias(H, pos, b=8.0):                  # B[h,i,j] = -m_h |p_i - p_j|
    d = np.abs(pos[:, None] - pos[None, :]).astype(np.float64)
    return -alibi_slopes(H, b)[:, None, None] * d[None]


def causal_mask(pos):                           # True where p_j > p_i (masked)
    return pos[None, :] > pos[:, None]


# ---------------------------------------------------------------- §5a T5
def t5_bucket(rel, num_buckets, max_distance, bidirectional, f32=False):
    """float64 formula of §5a; f32=True reproduces Hugging Face's float32 logarithm."""
    rel = np.asarray(rel, dtype=np.int64)
    if bidirectional:
        nb = num_buckets // 2
        bucket, n = (rel > 0).astype(np.int64) * nb, np.abs(rel)
    else:
        nb = num_buckets
        bucket, n = np.zeros_like(rel), np.maximum(-rel, 0)
    e = nb // 2
    large = n >= e                              # log only where n >= e > 0 (never log 0)
    nl = n[large]
    if f32:
        t = np.log(nl.astype(np.float32) / np.float32(e))
        t = t / np.float32(math.log(max_distance / e)) * np.float32(nb - e)
        assert t.dtype == np.float32
    else:
        t = np.log(nl / e) / math.log(max_distance / e) * (nb - e)
    val = n.copy()
    val[large] = np.minimum(nb - 1, e + np.trunc(t).astype(np.int64))
    return bucket + val


def t5_bias(table, pos, num_buckets=32, max_distance=128, bidirectional=True):
    rel = pos[None, :] - pos[:, None]            # key minus query
    bk = t5_bucket(rel, num_buckets, max_distance, bidirectional)
    return np.transpose(table[bk], (2, 0, 1))    # [H, N, N]


# ---------------------------------------------------------------- §6 attention
def attention(X, Wq, Wk, Wv, Wo, H, pos, causal, scale=None, pe=None,
              rope=None, bias=None, shaw=None, xl=None):
    """§6 reference. pe: [N, D] added to X. rope: dict(inv_freq, layout).
    bias: [H, N, N]. shaw: (A_K, A_V, K) §5b. xl: (u, v, W_R, clamp_len) §5c."""
    N, D = X.shape
    Dh = D // H
    scale = 1.0 / math.sqrt(Dh) if scale is None else scale
    Xp = X + pe if pe is not None else X
    Q, K, V = [(Xp @ W).reshape(N, H, Dh) for W in (Wq, Wk, Wv)]
    if rope is not None:
        Q = rope_apply(Q, pos, rope["inv_freq"], rope["layout"])
        K = rope_apply(K, pos, rope["inv_freq"], rope["layout"])
    if shaw is not None:
        AK, AV, Kc = shaw
        r = np.clip(pos[None, :] - pos[:, None], -Kc, Kc) + Kc     # [N, N]
    if xl is not None:
        u, v, WR, clamp = xl
        d = pos[:, None] - pos[None, :]                              # signed p_i - p_j
        if clamp is not None:
            d = np.clip(d, -clamp, clamp)
        rd = (sinusoid(d, D, "split") @ WR).reshape(N, N, H, Dh)     # r_{d,h}
    O = np.zeros((N, H, Dh))
    for h in range(H):
        q, k, vv = Q[:, h], K[:, h], V[:, h]
        S = scale * q @ k.T
        if bias is not None:
            S = S + bias[h]
        if shaw is not None:
            S = S + scale * np.einsum("id,ijd->ij", q, AK[r])
        if xl is not None:
            S = S + scale * (u[h] @ k.T)[None, :] \
                + scale * np.einsum("id,ijd->ij", q + v[h], rd[:, :, h])
        if causal:
            S = np.where(causal_mask(pos), -np.inf, S)
        P = np.exp(S - S.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        O[:, h] = P @ vv
        if shaw is not None:
            O[:, h] += np.einsum("ij,ijd->id", P, AV[r])
    return O.reshape(N, D) @ Wo


# ================================================================ data
def gen_sinusoidal():
    p16 = positions(16)
    for name, layout, freq, D, base in [
            ("sin_interleaved_vaswani_D16", "interleaved", "vaswani", 16, 10000.0),
            ("sin_split_vaswani_D16", "split", "vaswani", 16, 10000.0),
            ("sin_split_logts_D16", "split", "log_timescale", 16, 10000.0),
            ("sin_interleaved_logts_D16", "interleaved", "log_timescale", 16, 10000.0),
            ("sin_interleaved_base500_D8", "interleaved", "vaswani", 8, 500.0)]:
        save(name, sinusoid(p16, D, layout, base, freq),
             f"PE, positions 0..15, D={D}, layout {layout}, freq {freq}, base {base:g}")
    hp = save("sin_highpos_positions", np.array(
        [0, 1, 2, 1000, 65535, 65536, 999999, 1000000, 1048575, 1048576, 1048577, 123457],
        dtype=np.int64), "positions for sin_highpos_*")
    for layout in ("interleaved", "split"):
        save(f"sin_highpos_{layout}_D64", sinusoid(hp, 64, layout),
             f"PE at sin_highpos_positions, D=64, layout {layout}, vaswani, base 10000")
    # A contiguous run across 2^20 whose width is not a multiple of add_to_input's column tile.
    xr = save("sin_run_x", rnd(102, (40, 200)), "random input [40, 200]")
    for layout in ("interleaved", "split"):
        save(f"sin_run_{layout}_D200", xr + 1.5 * sinusoid(positions(40, 1048570), 200, layout),
             f"sin_run_x + 1.5*PE, positions 1048570..1048609, D=200, layout {layout}, vaswani")
    x = save("sin_add_x", rnd(101, (8, 16)), "random input")
    save("sin_add_out", x + 0.5 * sinusoid(positions(8, 3), 16),
         "sin_add_x + 0.5*PE, positions 3..10 (offset 3), interleaved vaswani base 10000, scale 0.5")


def gen_learned():
    W = save("learned_table", rnd(201, (20, 8)), "random table W, L_max=20, D=8")
    x = save("learned_x", rnd(202, (6, 8)), "random input")
    p = positions(6, 5)
    save("learned_out", x + W[p + 2], "learned_x + W[p+2], p = 5..10 (offset 5, table_offset 2)")
    gp = save("learned_grad_positions", np.array([0, 3, 3, 7, 17], dtype=np.int64),
              "positions for the gradient test")
    dy = save("learned_grad_dy", rnd(203, (5, 8)), "random upstream gradient dY")
    dW = np.zeros((20, 8))
    np.add.at(dW, gp + 2, dy)
    save("learned_grad_table", dW, "dW of sum(dY*(X+W[p+2])): dW[p+2] += dY[i] "
         "(table_offset 2, positions learned_grad_positions; row 5 gets two rows)")


def gen_rope():
    x = save("rope_x", rnd(301, (6, 2, 16)), "random input [N=6, H=2, Dh=16]")
    R, base = 16, 10000.0
    lr_s = save("rope_longrope_short_factors", np.random.default_rng(302).uniform(1, 5, 8)
                .astype(np.float32).astype(np.float64), "short factors f_i of rope_longrope_short: uniform [1,5], float32-rounded, [R/2]")
    lr_l = save("rope_longrope_long_factors", np.random.default_rng(303).uniform(1, 5, 8)
                .astype(np.float32).astype(np.float64), "long factors f_i of rope_longrope_long: uniform [1,5], float32-rounded, [R/2]")
    g41 = yarn_attention_factor(4.0)
    lr_af = longrope_attention_factor(4.0, 8)
    yarn_if = inv_freq_yarn(R, base, 4.0, 4096)
    # name: (inv_freq, offset, layout, attention factor, description)
    cases = {
        "half": (rope_inv_freq(R), 0, "half", 1.0, "no scaling, offset 0"),
        "interleaved": (rope_inv_freq(R), 0, "interleaved", 1.0, "no scaling, offset 0"),
        "half_offset7": (rope_inv_freq(R), 7, "half", 1.0, "no scaling, offset 7"),
        "half_R8": (rope_inv_freq(8), 7, "half", 1.0, "R=8, offset 7, dims >= 8 pass through"),
        "interleaved_R8": (rope_inv_freq(8), 7, "interleaved", 1.0,
                           "R=8, offset 7, dims >= 8 pass through"),
        "linear_f4": (inv_freq_linear(R, base, 4.0), 3, "half", 1.0, "linear, factor 4, offset 3"),
        "ntk_f4": (inv_freq_ntk(R, base, 4.0), 3, "half", 1.0, "ntk, factor 4, offset 3"),
        "dynamic_f4_M8_long": (inv_freq_dynamic(R, base, 4.0, 8, 16), 10, "half", 1.0,
                               "dynamic, factor 4, M=8, offset 10 (L=16 > M)"),
        "dynamic_f4_M8_short": (inv_freq_dynamic(R, base, 4.0, 8, 6), 0, "half", 1.0,
                                "dynamic, factor 4, M=8, offset 0 (L=6 <= M: = unscaled)"),
        "yarn": (yarn_if, 100, "half", g41,
                 "yarn factor 4, M=4096, beta_fast 32, beta_slow 1, truncate, offset 100, "
                 f"attention factor g(4,1)={g41!r}"),
        "yarn_notrunc": (inv_freq_yarn(R, base, 4.0, 4096, truncate=False), 100, "half", g41,
                         "as yarn but truncate=false"),
        "yarn_mscale": (yarn_if, 100, "half", yarn_attention_factor(4.0, None, 1.0, 0.5),
                        "as yarn with mscale 1.0, mscale_all_dim 0.5: attention factor "
                        f"g(4,1)/g(4,0.5)={yarn_attention_factor(4.0, None, 1.0, 0.5)!r}"),
        "yarn_attnfac": (yarn_if, 100, "half", 1.3, "as yarn with attention_factor 1.3"),
        "yarn_R8": (inv_freq_yarn(8, base, 4.0, 4096), 100, "half", g41,
                    "as yarn with R=8 (corr uses R=8); attention factor g(4,1) scales only dims < 8"),
        "llama3": (inv_freq_llama3(R, 500000.0, 8.0, 1.0, 4.0, 8192), 100, "half", 1.0,
                   "llama3, base 500000, factor 8, low 1, high 4, M=8192, offset 100"),
        "longrope_short": (inv_freq_longrope(R, base, lr_s), 0, "half", lr_af,
                           "longrope M=8 factor 4, offset 0 (L=6 <= 8: short factors), "
                           f"attention factor sqrt(1+ln4/ln8)={lr_af!r}"),
        "longrope_long": (inv_freq_longrope(R, base, lr_l), 5, "half", lr_af,
                          "longrope M=8 factor 4, offset 5 (L=11 > 8: long factors), "
                          f"attention factor {lr_af!r}"),
    }
    for name, (inv, off, layout, af, desc) in cases.items():
        out = rope_apply(x, positions(6, off), inv, layout, af)
        save(f"rope_{name}", out, f"RoPE of rope_x, layout {layout}, base "
             f"{500000 if name == 'llama3' else 10000}, R={2 * len(inv)}: {desc}")
    for name in ("yarn", "yarn_notrunc", "llama3", "ntk_f4", "dynamic_f4_M8_long",
                 "longrope_long"):
        save(f"rope_inv_freq_{name}", cases[name][0],
             f"effective inv_freq [R/2] of rope_{name}")
    ep = save("rope_explicit_positions", np.array([5, 0, 17, 3, 3, 100], dtype=np.int64),
              "explicit positions")
    save("rope_interleaved_explicit", rope_apply(x, ep, rope_inv_freq(R), "interleaved"),
         "RoPE of rope_x at rope_explicit_positions, interleaved, R=16, base 10000")
    xh = save("rope_highpos_x", rnd(304, (6, 1, 128)), "random input [N=6, H=1, Dh=128]")
    hp = save("rope_highpos_positions",
              np.array([0, 1, 1048575, 1048576, 999999, 123456], dtype=np.int64),
              "explicit positions for rope_highpos_*")
    for layout in ("half", "interleaved"):
        save(f"rope_highpos_{layout}", rope_apply(xh, hp, rope_inv_freq(128), layout),
             f"RoPE of rope_highpos_x at rope_highpos_positions, {layout}, R=128, base 10000")


def gen_alibi():
    for H, b in [(h, 8.0) for h in (1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 40)] + \
                [(8, 16.0), (6, 4.0), (12, 4.5)]:
        save(f"alibi_slopes_H{H}_b{b:g}", alibi_slopes(H, b), f"slopes m_h, H={H}, max_bias {b:g}")
    p = positions(5, 2)
    B = save("alibi_bias_H3_N5_offset2", alibi_bias(3, p),
             "B[h,i,j] = -m_h*|p_i-p_j|, H=3, b=8, positions 2..6 (bidirectional)")
    save("alibi_bias_causal_H3_N5_offset2", np.where(causal_mask(p)[None], -np.inf, B),
         "same, with -inf where p_j > p_i")


def gen_t5():
    rel = save("t5_rel", np.arange(-3000, 3001, dtype=np.int64), "every rel in -3000..3000")
    g = np.unique(np.round(np.geomspace(1, 1_999_999, 230)).astype(np.int64))
    big = np.unique(np.concatenate([[0, 1, 2, 1_999_999], g, -g, [-1, -2, -1_999_999]]))
    big = save("t5_bigrel", big, f"{big.size} sorted unique rel in [-1999999, 1999999]: "
               "0, +-1, +-2, +-1999999 and round(geomspace(1, 1999999, 230)) with negatives")
    compared = 0
    configs = [(32, 128), (16, 64), (64, 256), (8, 20), (256, 4096), (128, 128)]
    jobs = [("t5_rel", rel, "buckets", c) for c in configs] + \
           [("t5_bigrel", big, "bigrel_buckets", c) for c in [(256, 4096), (32, 128)]]
    for src, r, tag, (nb, md) in jobs:
        for bidir in (True, False):
            b64 = t5_bucket(r, nb, md, bidir)
            b32 = t5_bucket(r, nb, md, bidir, f32=True)
            assert np.array_equal(b64, b32), (src, nb, md, bidir)
            compared += b64.size
            mode = "bidir" if bidir else "causal"
            save(f"t5_{tag}_nb{nb}_md{md}_{mode}", b64,
                 f"bucket(rel) for rel in {src}, num_buckets {nb}, max_distance {md}, {mode}")
    print(f"T5: float32 (Hugging Face) buckets == float64 buckets for {compared} saved values")
    # Extra (not saved): every |rel| < 2e6 for every configuration, both directions.
    allr = np.arange(-1_999_999, 2_000_000, dtype=np.int64)
    mism = 0
    for nb, md in configs:
        for bidir in (True, False):
            mism += int(np.count_nonzero(t5_bucket(allr, nb, md, bidir)
                                         != t5_bucket(allr, nb, md, bidir, f32=True)))
    print(f"T5: exhaustive |rel| < 2e6 sweep over {len(configs) * 2 * allr.size} values: "
          f"{mism} mismatches")
    assert mism == 0
    T = save("t5_table", rnd(501, (32, 3)), "random table T [num_buckets=32, H=3]")
    p = positions(6)
    save("t5_bias_H3_N6_bidir", t5_bias(T, p, 32, 128, True),
         "B[h,i,j] = T[bucket(p_j-p_i), h], positions 0..5, nb 32, md 128, bidirectional")
    save("t5_bias_H3_N6_causal", np.where(causal_mask(p)[None], -np.inf,
                                          t5_bias(T, p, 32, 128, False)),
         "same with causal buckets, -inf where p_j > p_i")


def gen_attention():
    D, H, N = 16, 2, 7
    X = save("attn_x", rnd(601, (N, D)), "random input [7,16]")
    Wq, Wk, Wv, Wo = [save(f"attn_w{c}", rnd(602 + k, (D, D), 1 / math.sqrt(D)),
                           "random/sqrt(16), [D_in, D_out], y = x.W")
                      for k, c in enumerate("qkvo")]
    Wl = save("attn_learned_table", rnd(610, (20, D)), "random learned table [20,16]")
    Tt = save("attn_t5_table", rnd(611, (32, H)), "random T5 table [32, H=2]")
    AK = save("attn_shaw_ak", rnd(612, (7, 8)), "random Shaw A_K [2K+1=7, Dh=8]")
    AV = save("attn_shaw_av", rnd(613, (7, 8)), "random Shaw A_V [7, 8]")
    u = save("attn_xl_u", rnd(614, (H, 8)), "random Transformer-XL u [H, Dh]")
    v = save("attn_xl_v", rnd(615, (H, 8)), "random Transformer-XL v [H, Dh]")
    WR = save("attn_xl_wr", rnd(616, (D, D), 1 / math.sqrt(D)), "random/sqrt(16) W_R [D, D]")
    W = (X, Wq, Wk, Wv, Wo, H)
    p0 = positions(N)
    cases = {
        "none_bidir": (dict(pos=p0, causal=False), "no encoding, bidirectional"),
        "none_causal": (dict(pos=p0, causal=True), "no encoding, causal"),
        "none_scale0.5": (dict(pos=p0, causal=False, scale=0.5), "no encoding, bidirectional"),
        "sinusoidal_causal": (dict(pos=positions(N, 3), causal=True,
                                   pe=sinusoid(positions(N, 3), D)),
                              "X + PE, interleaved vaswani base 10000 scale 1, offset 3, causal"),
        "learned_bidir": (dict(pos=positions(N, 1), causal=False, pe=Wl[positions(N, 1) + 2]),
                          "X + attn_learned_table[p+2], offset 1, table_offset 2, bidir"),
        "rope_half_causal": (dict(pos=positions(N, 5), causal=True,
                                  rope=dict(inv_freq=rope_inv_freq(8), layout="half")),
                             "RoPE half, R=8, base 10000, offset 5, causal"),
        "rope_interleaved_R4_bidir": (dict(pos=p0, causal=False,
                                           rope=dict(inv_freq=rope_inv_freq(4),
                                                     layout="interleaved")),
                                      "RoPE interleaved, R=4 (dims 4..7 pass), offset 0, bidir"),
        "alibi_causal": (dict(pos=p0, causal=True, bias=alibi_bias(H, p0)),
                         "ALiBi max_bias 8, offset 0, causal"),
        "alibi_bidir": (dict(pos=p0, causal=False, bias=alibi_bias(H, p0)),
                        "ALiBi max_bias 8, offset 0, bidirectional (-m|p_i-p_j|)"),
        "t5_bidir": (dict(pos=p0, causal=False, scale=1.0, bias=t5_bias(Tt, p0, 32, 128, True)),
                     "T5 bias from attn_t5_table, nb 32, md 128, bidirectional buckets, offset 0"),
        "t5_causal": (dict(pos=p0, causal=True, scale=1.0, bias=t5_bias(Tt, p0, 32, 128, False)),
                      "T5 bias from attn_t5_table, nb 32, md 128, causal buckets, offset 0"),
        "shaw_bidir": (dict(pos=p0, causal=False, shaw=(AK, AV, 3)), "Shaw K=3 (attn_shaw_ak/av), offset 0, bidir"),
        "shaw_causal": (dict(pos=p0, causal=True, shaw=(AK, AV, 3)), "Shaw K=3 (attn_shaw_ak/av), offset 0, causal"),
        "xl_causal": (dict(pos=p0, causal=True, xl=(u, v, WR, None)),
                      "Transformer-XL (attn_xl_u/v/wr; R_d = split vaswani sinusoid, D=16, base 10000, of d = p_i-p_j), offset 0, no clamp, causal"),
        "xl_bidir_clamp3": (dict(pos=p0, causal=False, xl=(u, v, WR, 3)),
                            "Transformer-XL as xl_causal but clamp_len 3 (signed d clipped to [-3,3]), bidirectional"),
    }
    for name, (kw, desc) in cases.items():
        save(f"attn_{name}", attention(*W, **kw),
             f"Y, H=2, Dh=8, scale {kw.get('scale', '1/sqrt(8)')}: {desc}")
    D3, H3, N3 = 24, 3, 5
    X3 = save("attn3_x", rnd(701, (N3, D3)), "random input [5,24]")
    W3 = [save(f"attn3_w{c}", rnd(702 + k, (D3, D3), 1 / math.sqrt(D3)), "random/sqrt(24)")
          for k, c in enumerate("qkvo")]
    p3 = positions(N3)
    save("attn3_alibi_causal", attention(X3, *W3, H3, p3, True, bias=alibi_bias(H3, p3)),
         "Y, H=3, Dh=8, scale 1/sqrt(8): ALiBi max_bias 8 (slopes 2^-4, 2^-8, 2^-2 = "
         "alibi_slopes_H3_b8), offset 0, causal")
    p3o = positions(N3, 2)
    save("attn3_rope_half_bidir", attention(X3, *W3, H3, p3o, False,
                                            rope=dict(inv_freq=rope_inv_freq(8), layout="half")),
         "Y, H=3, Dh=8, scale 1/sqrt(8): RoPE half, R=8, base 10000, offset 2, bidir")


# ================================================================ §6b layers of real models
# An attention layer as §6 + §6b state it: H query heads, Hkv key/value heads, head width Dh,
# optional biases, visibility by positions and segments, sinks and logit soft-capping.
# Written from conventions.md alone; the encoders' own parameters (inv_freq, slopes, buckets)
# come from the §1-§5 functions above, which the other golden files test.

_DEC = decimal.Context(prec=140)


def _decimal_pi():
    """pi to 140 digits (the recipe of Python's decimal documentation)."""
    c = _DEC.copy()
    c.prec += 4
    three = decimal.Decimal(3)
    lasts, t, s, n, na, d, da = 0, three, three, 1, 0, 0, 24
    while s != lasts:
        lasts = s
        n, na = n + na, na + 8
        d, da = d + da, da + 32
        t = c.divide(c.multiply(t, n), d)
        s = c.add(s, t)
    return _DEC.plus(s)


_TWO_PI = _DEC.multiply(2, _decimal_pi())
assert abs(float(_TWO_PI) - 2 * math.pi) == 0.0


def exact_angles(pos, inv_freq):
    """theta[..., f] = pos * inv_freq[f] reduced to [0, 2*pi), then rounded once to float64.

    The product of the integer position and the float64 frequency is formed exactly and reduced
    with a 140-digit 2*pi ("reduce exactly", §1): for positions < 2^20 this equals the float64
    product to ~1e-10 rad, and at 2^40 it is the value a float64 product misses by up to 2^-13
    rad. (The angle's condition number with respect to inv_freq is still p*inv_freq: a frequency
    one ulp away moves the angle by ~1e-4 rad at p = 2^40, see README.)"""
    pos = np.asarray(pos, dtype=np.int64)
    fd = [decimal.Decimal(float(f)) for f in np.asarray(inv_freq, dtype=np.float64)]
    uniq, inverse = np.unique(pos.ravel(), return_inverse=True)
    table = np.empty((uniq.size, len(fd)))
    for a, p in enumerate(uniq):
        pd = decimal.Decimal(int(p))
        for b, f in enumerate(fd):
            x = _DEC.multiply(pd, f)
            r = _DEC.subtract(x, _DEC.multiply(_DEC.divide_int(x, _TWO_PI), _TWO_PI))
            if r < 0:
                r = _DEC.add(r, _TWO_PI)
            table[a, b] = float(r)
    return table[inverse].reshape(pos.shape + (len(fd),))


def layer_sinusoid(pos, D, layout, base):
    """§1 PE (vaswani frequencies) at exactly reduced angles -> pos.shape + (D,)."""
    th = exact_angles(pos, sin_inv_freq(D, base))
    out = np.empty(th.shape[:-1] + (D,))
    if layout == "interleaved":
        out[..., 0::2], out[..., 1::2] = np.sin(th), np.cos(th)
    else:
        assert layout == "split"
        out[..., : D // 2], out[..., D // 2:] = np.sin(th), np.cos(th)
    return out


def layer_rope_params(enc, pos):
    """(inv_freq [R/2], attention factor) of a rope encoder spec at these positions (§3)."""
    R, base, sc = enc["rotary_dim"], float(enc["base"]), enc["scaling"]
    L = int(np.max(pos)) + 1                     # the largest position in the call + 1
    if sc == "none":
        return rope_inv_freq(R, base), 1.0
    if sc == "linear":
        return inv_freq_linear(R, base, enc["factor"]), 1.0
    if sc == "ntk":
        return inv_freq_ntk(R, base, enc["factor"]), 1.0
    if sc == "dynamic":
        return inv_freq_dynamic(R, base, enc["factor"], enc["original_max_positions"], L), 1.0
    if sc == "yarn":
        inv = inv_freq_yarn(R, base, enc["factor"], enc["original_max_positions"],
                            enc["beta_fast"], enc["beta_slow"], bool(enc["truncate"]))
        af = enc["attention_factor"]
        return inv, yarn_attention_factor(enc["factor"], None if af == "default" else af)
    if sc == "llama3":
        return inv_freq_llama3(R, base, enc["factor"], enc["low_freq_factor"],
                               enc["high_freq_factor"], enc["original_max_positions"]), 1.0
    if sc == "longrope":
        M = enc["original_max_positions"]
        f = enc["rope_long_factors"] if L > M else enc["rope_short_factors"]
        return inv_freq_longrope(R, base, f), longrope_attention_factor(enc["factor"], M)
    raise ValueError(sc)


def layer_rope_rotate(x, pos, inv_freq, layout, attn_factor):
    """x [N, heads, Dh]: rotate dims [0, R) of every head by p_i * inv_freq (§3); rest pass."""
    R = 2 * len(inv_freq)
    assert R <= x.shape[2]
    th = exact_angles(pos, inv_freq)[:, None, :]              # [N, 1, R/2]
    c, s = np.cos(th), np.sin(th)
    if layout == "half":
        a_idx, b_idx = np.arange(R // 2), R // 2 + np.arange(R // 2)
    else:
        assert layout == "interleaved"
        a_idx, b_idx = 2 * np.arange(R // 2), 2 * np.arange(R // 2) + 1
    a, b = x[:, :, a_idx], x[:, :, b_idx]
    out = x.copy()
    out[:, :, a_idx] = attn_factor * (a * c - b * s)
    out[:, :, b_idx] = attn_factor * (b * c + a * s)
    return out


def layer_visibility(pos, causal=False, window=0, chunk=0, seg=None):
    """vis[i, j]: key j visible to query i (§6b); every rule that applies must hold."""
    pi, pj = pos[:, None], pos[None, :]
    vis = np.ones((pos.size, pos.size), dtype=bool)
    if causal:
        vis &= pj <= pi
    if window:
        vis &= (pi - pj < window) if causal else (np.abs(pi - pj) < window)
    if chunk:
        vis &= (pi // chunk) == (pj // chunk)                  # positions are >= 0
    if seg is not None:
        vis &= (seg[:, None] == seg[None, :]) & (seg[:, None] >= 0) & (seg[None, :] >= 0)
    return vis


def layer_check_angles():
    """exact_angles: its 2*pi against Machin's formula in integer arithmetic; the shift rule
    theta(p0 + i) = theta(p0) + theta(i) (mod 2*pi) to 1e-13 at p0 = 2^40 (a float64 product
    p*inv_freq misses it by up to 2^-13 rad there); and the float64 product at p < 2^20."""
    def arctan_inv(x, one):                    # one * atan(1/x), integer fixed point
        total = term = one // x
        n, sign = 1, 1
        while term:
            term //= x * x
            n, sign = n + 2, -sign
            total += sign * (term // n)
        return total
    one = 10 ** 135
    pi_machin = 4 * (4 * arctan_inv(5, one) - arctan_inv(239, one))
    pi_dec = int(_DEC.to_integral_value(_DEC.scaleb(_decimal_pi(), 135)))
    assert abs(pi_machin - pi_dec) < 1000, (pi_machin, pi_dec)
    freqs = np.concatenate([rope_inv_freq(8), rope_inv_freq(10, 500000.0),
                            sin_inv_freq(24), inv_freq_llama3(8, 500000.0)])
    i = np.arange(41, dtype=np.int64)
    for p0 in (HUGE, HUGE + 12345, 2 ** 52 + 7):
        a = exact_angles(p0 + i, freqs) - exact_angles(np.full_like(i, p0), freqs) \
            - exact_angles(i, freqs)
        wrapped = np.mod(a + math.pi, 2 * math.pi) - math.pi
        assert np.abs(wrapped).max() < 1e-13, (p0, np.abs(wrapped).max())
    small = np.array([0, 1, 2, 17, 1000, 65537, 1048575, 1048576], dtype=np.int64)
    th = exact_angles(small, freqs)
    naive = small[:, None].astype(np.float64) * freqs[None, :]
    np.testing.assert_allclose(np.cos(th), np.cos(naive), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.sin(th), np.sin(naive), rtol=0, atol=1e-9)
    assert (th >= 0).all() and (th < 2 * math.pi).all()


def layer_attention(x, wq, wk, wv, wo, H, Hkv, Dh, pos, enc, bq=None, bk=None, bv=None,
                    bo=None, scale=None, causal=False, window=0, chunk=0, seg=None, sinks=None,
                    softcap=0.0):
    """One attention layer (§6, §6b). enc: dict with "encoder" in none, sinusoidal, learned,
    rope, alibi, t5, shaw, xl, its parameters and arrays (learned_table, t5_table, shaw_ak,
    shaw_av, xl_u, xl_v, xl_wr, rope_short_factors, rope_long_factors).
    Returns q [N, H, Dh], k, v [N, Hkv, Dh], o [N, H*Dh] (before Wo), y [N, D]."""
    N, D = x.shape
    pos = np.asarray(pos, dtype=np.int64)
    assert pos.shape == (N,) and (pos >= 0).all()
    assert Hkv >= 1 and H % Hkv == 0
    assert wq.shape == (D, H * Dh) and wk.shape == wv.shape == (D, Hkv * Dh)
    assert wo.shape == (H * Dh, D)
    kind = enc["encoder"]
    scale = 1.0 / math.sqrt(Dh) if scale is None else float(scale)
    if seg is not None:
        seg = np.asarray(seg, dtype=np.int64)
        assert seg.shape == (N,)

    xin = x                                                    # additive encoders: X' = X + PE
    if kind == "sinusoidal":
        xin = x + layer_sinusoid(pos, D, enc["layout"], enc["base"])
    elif kind == "learned":
        rows = pos + enc["table_offset"]
        assert rows.max() < enc["learned_table"].shape[0], "learned: p + table_offset >= L_max"
        xin = x + enc["learned_table"][rows]

    def project(W, b, heads):
        out = xin @ W
        if b is not None:
            out = out + b
        return out.reshape(N, heads, Dh)

    q, k, v = project(wq, bq, H), project(wk, bk, Hkv), project(wv, bv, Hkv)
    if kind == "rope":
        inv, af = layer_rope_params(enc, pos)
        q = layer_rope_rotate(q, pos, inv, enc["layout"], af)
        k = layer_rope_rotate(k, pos, inv, enc["layout"], af)

    dq = pos[:, None] - pos[None, :]                           # p_i - p_j (query minus key)
    bias = None
    if kind == "alibi":
        m = alibi_slopes(H, enc["max_bias"])
        bias = -m[:, None, None] * np.abs(dq).astype(np.float64)[None]
    elif kind == "t5":
        bk_ = t5_bucket(-dq, enc["num_buckets"], enc["max_distance"], bool(enc["bidirectional"]))
        bias = np.moveaxis(enc["t5_table"][bk_], 2, 0)          # [H, N, N]
    elif kind == "shaw":
        K = enc["max_relative"]
        r = np.clip(-dq, -K, K) + K                            # clip(p_j - p_i, -K, K) + K
        AKr, AVr = enc["shaw_ak"][r], enc["shaw_av"][r]         # [N, N, Dh]
    elif kind == "xl":
        d = dq if not enc["clamp_len"] else np.clip(dq, -enc["clamp_len"], enc["clamp_len"])
        ud, inv_d = np.unique(d, return_inverse=True)
        Rd = layer_sinusoid(ud, D, "split", enc["base"]) @ enc["xl_wr"]    # [n_d, H*Dh]
        rd = Rd[inv_d.reshape(N, N)].reshape(N, N, H, Dh)      # r_{d,h}
    else:
        assert kind in ("none", "sinusoidal", "learned", "rope"), kind

    vis = layer_visibility(pos, causal, window, chunk, seg)
    live = vis.any(axis=1)                                     # rows with a visible key
    o = np.zeros((N, H, Dh))
    for h in range(H):
        g = (h * Hkv) // H                                     # kv head of query head h
        qh, kg, vg = q[:, h], k[:, g], v[:, g]
        if kind == "xl":
            S = scale * ((qh + enc["xl_u"][h]) @ kg.T
                         + np.einsum("id,ijd->ij", qh + enc["xl_v"][h], rd[:, :, h]))
        else:
            S = scale * (qh @ kg.T)
        if kind == "shaw":
            S = S + scale * np.einsum("id,ijd->ij", qh, AKr)
        if bias is not None:
            S = S + bias[h]
        if softcap:
            S = softcap * np.tanh(S / softcap)                 # whole score, before masking
        S = np.where(vis, S, -np.inf)
        P = np.zeros((N, N))
        Sl = S[live]
        mx = Sl.max(axis=1)
        if sinks is not None:
            mx = np.maximum(mx, sinks[h])
        E = np.where(vis[live], np.exp(Sl - mx[:, None]), 0.0)
        den = E.sum(axis=1)
        if sinks is not None:
            den = den + np.exp(sinks[h] - mx)                  # the sink joins the denominator
        P[live] = E / den[:, None]
        o[:, h] = P @ vg
        if kind == "shaw":
            o[:, h] += np.einsum("ij,ijd->id", P, AVr)
    o = o.reshape(N, H * Dh)
    y = o @ wo
    if bo is not None:
        y = y + bo
    return dict(q=q, k=k, v=v, o=o, y=y)


def layer_brute(q, k, v, pos, H, Hkv, scale, causal, window, chunk, seg, sinks, softcap,
                extra):
    """A second, scalar transcription of §6b's masked softmax (Python floats, loops), for the
    checks: o [N, H, Dh] from q, k, v and an additive score term extra(h, i, j)."""
    N, Dh = len(pos), q.shape[2]
    o = np.zeros((N, H, Dh))
    for h in range(H):
        g = (h * Hkv) // H
        for i in range(N):
            pi = int(pos[i])
            keys, logits = [], []
            for j in range(N):
                pj = int(pos[j])
                if causal and pj > pi:
                    continue
                if window and causal and pi - pj >= window:
                    continue
                if window and not causal and abs(pi - pj) >= window:
                    continue
                if chunk and pi // chunk != pj // chunk:
                    continue
                if seg is not None and (seg[i] < 0 or seg[j] < 0 or seg[i] != seg[j]):
                    continue
                s = scale * math.fsum(float(q[i, h, c]) * float(k[j, g, c]) for c in range(Dh))
                s += extra(h, i, j)
                if softcap:
                    s = softcap * math.tanh(s / softcap)
                keys.append(j)
                logits.append(s)
            if not keys:
                continue                                       # no visible key: O row 0
            top = max(logits + ([float(sinks[h])] if sinks is not None else []))
            w = [math.exp(s - top) for s in logits]
            den = math.fsum(w) + (math.exp(float(sinks[h]) - top) if sinks is not None else 0.0)
            for j, wj in zip(keys, w):
                o[i, h] += (wj / den) * v[j, g]
    return o


def _close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=what)


LAYER_CASES = []   # (case, manifest line, description)
HUGE = 2 ** 40


def _gap_positions(seed, n, lo, hi, start=0):
    """Strictly increasing positions start, start + g_1, ... with gaps g in [lo, hi]."""
    g = np.random.default_rng(seed).integers(lo, hi + 1, n - 1)
    return np.concatenate([[0], np.cumsum(g)]).astype(np.int64) + start


def _mval(v):
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, float):
        return repr(v)
    s = str(v)
    assert s and not any(ch.isspace() or ch == "=" for ch in s), s
    return s


ENC_KEYS = {
    "none": [], "sinusoidal": ["layout", "base"], "learned": ["table_offset"],
    "alibi": ["max_bias"], "t5": ["num_buckets", "max_distance", "bidirectional"],
    "shaw": ["max_relative"], "xl": ["clamp_len", "base"],
}
ROPE_KEYS = {
    "none": [], "linear": ["factor"], "dynamic": ["factor", "original_max_positions"],
    "yarn": ["factor", "original_max_positions", "beta_fast", "beta_slow", "truncate",
             "attention_factor"],
    "llama3": ["factor", "original_max_positions", "low_freq_factor", "high_freq_factor"],
    "longrope": ["factor", "original_max_positions"],
}


def layer_enc_inputs(enc, seed, D, H, Dh):
    """Random parameter arrays of an encoder spec (keys named as their files)."""
    kind, arrays = enc["encoder"], {}
    if kind == "learned":
        arrays["learned_table"] = rnd(seed, (enc["table_rows"], D))
    elif kind == "t5":
        arrays["t5_table"] = rnd(seed, (enc["num_buckets"], H))
    elif kind == "shaw":
        K = enc["max_relative"]
        arrays["shaw_ak"] = rnd(seed, (2 * K + 1, Dh))
        arrays["shaw_av"] = rnd(seed + 1, (2 * K + 1, Dh))
    elif kind == "xl":
        arrays["xl_u"] = rnd(seed, (H, Dh))
        arrays["xl_v"] = rnd(seed + 1, (H, Dh))
        arrays["xl_wr"] = rnd(seed + 2, (D, H * Dh), 1 / math.sqrt(D))
    elif kind == "rope" and enc["scaling"] == "longrope":
        R = enc["rotary_dim"]
        for k, nm in enumerate(("rope_short_factors", "rope_long_factors")):
            arrays[nm] = np.random.default_rng(seed + k).uniform(1, 5, R // 2) \
                .astype(np.float32).astype(np.float64)
    return arrays


ARRAY_DESC = {
    "x": "input X [N, D]", "wq": "Wq [D, H*Dh] (random/sqrt(D))",
    "wk": "Wk [D, Hkv*Dh] (random/sqrt(D))", "wv": "Wv [D, Hkv*Dh] (random/sqrt(D))",
    "wo": "Wo [H*Dh, D] (random/sqrt(H*Dh))", "bq": "bias bq [H*Dh]", "bk": "bias bk [Hkv*Dh]",
    "bv": "bias bv [Hkv*Dh]", "bo": "bias bo [D]", "positions": "positions p [N]",
    "segments": "segment ids [N] (negative = padding)", "sinks": "sink logits s_h [H]",
    "learned_table": "learned table W [L_max, D]", "t5_table": "T5 table [num_buckets, H]",
    "shaw_ak": "Shaw A_K [2K+1, Dh]", "shaw_av": "Shaw A_V [2K+1, Dh]",
    "xl_u": "Transformer-XL u [H, Dh]", "xl_v": "Transformer-XL v [H, Dh]",
    "xl_wr": "Transformer-XL W_R [D, H*Dh] (random/sqrt(D))",
    "rope_short_factors": "longrope short factors [R/2] (uniform [1,5], float32-rounded)",
    "rope_long_factors": "longrope long factors [R/2] (uniform [1,5], float32-rounded)",
    "q": "output Q [N, H, Dh] after projection, bias and encoder",
    "k": "output K [N, Hkv, Dh] after projection, bias and encoder",
    "v": "output V [N, Hkv, Dh] after projection and bias",
    "o": "output O [N, H*Dh], heads concatenated, before Wo",
    "y": "output Y = O.Wo + bo [N, D]",
    "rope_inv_freq": "effective RoPE inv_freq [R/2] at these positions (output)",
}


def layer_case(name, seed, D, H, Hkv, Dh, pos, enc, desc, causal=False, window=0, chunk=0,
               seg=None, sinks=False, softcap=0.0, scale=None, biases=""):
    """Make one layer case: random inputs, the reference, files, manifest line, per-case checks."""
    pos = np.asarray(pos, dtype=np.int64)
    N = pos.size
    assert 5 <= N <= 40 and 8 <= D <= 48, name
    inp = dict(x=rnd(seed, (N, D)),
               wq=rnd(seed + 1, (D, H * Dh), 1 / math.sqrt(D)),
               wk=rnd(seed + 2, (D, Hkv * Dh), 1 / math.sqrt(D)),
               wv=rnd(seed + 3, (D, Hkv * Dh), 1 / math.sqrt(D)),
               wo=rnd(seed + 4, (H * Dh, D), 1 / math.sqrt(H * Dh)))
    width = dict(bq=H * Dh, bk=Hkv * Dh, bv=Hkv * Dh, bo=D)
    for k, b in enumerate(("bq", "bk", "bv", "bo")):
        if b[1] in biases:
            inp[b] = rnd(seed + 5 + k, (width[b],))
    inp["positions"] = pos
    if seg is not None:
        inp["segments"] = np.asarray(seg, dtype=np.int64)
    if sinks:
        inp["sinks"] = rnd(seed + 9, (H,))
    encp = layer_enc_inputs(enc, seed + 10, D, H, Dh)
    inp.update(encp)
    encd = dict(enc, **encp)
    kw = dict(bq=inp.get("bq"), bk=inp.get("bk"), bv=inp.get("bv"), bo=inp.get("bo"),
              scale=scale, causal=causal, window=window, chunk=chunk, seg=inp.get("segments"),
              sinks=inp.get("sinks"), softcap=softcap)
    W = (inp["x"], inp["wq"], inp["wk"], inp["wv"], inp["wo"], H, Hkv, Dh, pos, encd)
    out = layer_attention(*W, **kw)
    if enc["encoder"] == "rope":
        out["rope_inv_freq"] = layer_rope_params(encd, pos)[0]
    layer_checks(name, W, kw, out)
    for a, arr in list(inp.items()) + list(out.items()):
        save(f"layer_{name}_{a}", arr, f"layer_{name}: {ARRAY_DESC[a]}")
    head = dict(encoder=enc["encoder"], D=D, H=H, Hkv=Hkv, Dh=Dh, N=N, causal=causal,
                window=window, chunk=chunk, softcap=float(softcap) if softcap else 0,
                scale="default" if scale is None else float(scale),
                has_bq="q" in biases, has_bk="k" in biases, has_bv="v" in biases,
                has_bo="o" in biases, has_segments=seg is not None, has_sinks=sinks)
    keys = ENC_KEYS.get(enc["encoder"]) or []
    if enc["encoder"] == "rope":
        keys = ["base", "rotary_dim", "layout", "scaling"] + ROPE_KEYS[enc["scaling"]]
    head.update({key: enc[key] for key in keys})
    line = name + " " + " ".join(f"{key}={_mval(val)}" for key, val in head.items())
    LAYER_CASES.append((name, line, desc))
    return inp, out


def _kv_repeat(W, H, Hkv, Dh):
    """Columns of the kv head floor(h*Hkv/H) for every query head h (Hugging Face repeat_kv)."""
    cols = np.concatenate([np.arange(Dh) + ((h * Hkv) // H) * Dh for h in range(H)])
    return W[..., cols]


def layer_checks(name, W, kw, out):
    """Per-case asserts (2)-(5) and (7) of the brief; run before any file is written."""
    x, wq, wk, wv, wo, H, Hkv, Dh, pos, enc = W
    N = pos.size
    kind = enc["encoder"]
    # (2) GQA / MQA = multi-head attention with K, V (and bk, bv) repeated per query head.
    if Hkv < H:
        kw2 = dict(kw)
        for b in ("bk", "bv"):
            if kw[b] is not None:
                kw2[b] = _kv_repeat(kw[b], H, Hkv, Dh)
        ref = layer_attention(x, wq, _kv_repeat(wk, H, Hkv, Dh), _kv_repeat(wv, H, Hkv, Dh), wo,
                              H, H, Dh, pos, enc, **kw2)
        for a in ("q", "o", "y"):
            _close(out[a], ref[a], f"{name}: GQA {a} vs repeat_kv")
        g = (np.arange(H) * Hkv) // H
        _close(out["k"][:, g], ref["k"], f"{name}: GQA k vs repeat_kv")
    # (3) sinks s_h = -inf equal no sinks.
    if kw["sinks"] is not None:
        a = layer_attention(*W, **dict(kw, sinks=np.full(H, -np.inf)))
        b = layer_attention(*W, **dict(kw, sinks=None))
        _close(a["o"], b["o"], f"{name}: sinks -inf vs none")
        _close(a["y"], b["y"], f"{name}: sinks -inf vs none")
    # (4) a window wider than every distance, a chunk > every position, all-equal segments
    #     change nothing; (5) neither does a soft-cap of 1e9.
    span = int(pos.max() - pos.min()) + 1
    for key, big in (("window", span), ("chunk", int(pos.max()) + 1),
                     ("seg", np.zeros(N, dtype=np.int64)), ("softcap", 1e9)):
        a = layer_attention(*W, **dict(kw, **{key: big}))
        b = layer_attention(*W, **dict(kw, **{key: 0 if key != "seg" else None}))
        _close(a["o"], b["o"], f"{name}: {key}={big} vs none")
        _close(a["y"], b["y"], f"{name}: {key}={big} vs none")
    # Rows with no visible key (padding tokens) output exactly 0, and Y = bo there.
    vis = layer_visibility(pos, kw["causal"], kw["window"], kw["chunk"], kw["seg"])
    empty = ~vis.any(axis=1)
    if kw["seg"] is not None:
        assert np.array_equal(empty, kw["seg"] < 0), name
    assert not np.any(out["o"][empty]), name
    bo = kw["bo"] if kw["bo"] is not None else np.zeros(x.shape[1])
    assert np.array_equal(out["y"][empty], np.broadcast_to(bo, out["y"][empty].shape)), name
    # (7) a scalar transcription of the masked softmax, sinks and soft-cap gives the same O.
    if kind in ("none", "sinusoidal", "learned", "rope", "alibi", "t5"):
        if kind == "alibi":
            m = alibi_slopes(H, enc["max_bias"])

            def extra(h, i, j):
                return -float(m[h]) * abs(int(pos[i]) - int(pos[j]))
        elif kind == "t5":
            def extra(h, i, j):
                b = t5_bucket(np.array([int(pos[j]) - int(pos[i])]), enc["num_buckets"],
                              enc["max_distance"], bool(enc["bidirectional"]))[0]
                return float(enc["t5_table"][b, h])
        else:
            def extra(h, i, j):
                return 0.0
        scale = 1 / math.sqrt(Dh) if kw["scale"] is None else kw["scale"]
        ob = layer_brute(out["q"], out["k"], out["v"], pos, H, Hkv, scale, kw["causal"],
                         kw["window"], kw["chunk"], kw["seg"], kw["sinks"], kw["softcap"], extra)
        _close(out["o"], ob.reshape(N, H * Dh), f"{name}: O vs scalar transcription")


def layer_check_mha_reference():
    """(1) Hkv = H, Dh = D/H, no biases, masks, sinks or soft-cap: the layer equals §6's
    attention() above on the same inputs, for every encoder, causal and not, at contiguous
    and at non-contiguous positions."""
    n = 0
    for D, H, N, seed in ((16, 2, 7, 601), (24, 3, 9, 8101)):
        X = rnd(seed, (N, D))
        Wq, Wk, Wv, Wo = [rnd(seed + 1 + k, (D, D), 1 / math.sqrt(D)) for k in range(4)]
        Dh = D // H
        Wl = rnd(seed + 9, (60, D))
        Tt = rnd(seed + 10, (32, H))
        AK, AV = rnd(seed + 11, (7, Dh)), rnd(seed + 12, (7, Dh))
        u, v = rnd(seed + 13, (H, Dh)), rnd(seed + 14, (H, Dh))
        WR = rnd(seed + 15, (D, D), 1 / math.sqrt(D))
        for pos in (positions(N, 2), _gap_positions(seed, N, 1, 5)):
            for causal in (False, True):
                old = dict(pos=pos, causal=causal)
                cases = [
                    (dict(encoder="none"), dict()),
                    (dict(encoder="none"), dict(scale=0.5)),
                    (dict(encoder="sinusoidal", layout="interleaved", base=10000.0),
                     dict(pe=sinusoid(pos, D))),
                    (dict(encoder="sinusoidal", layout="split", base=500.0),
                     dict(pe=sinusoid(pos, D, "split", 500.0))),
                    (dict(encoder="learned", table_offset=2, learned_table=Wl),
                     dict(pe=Wl[pos + 2])),
                    (dict(encoder="rope", base=10000.0, rotary_dim=Dh, layout="half",
                          scaling="none"),
                     dict(rope=dict(inv_freq=rope_inv_freq(Dh), layout="half"))),
                    (dict(encoder="rope", base=10000.0, rotary_dim=4, layout="interleaved",
                          scaling="none"),
                     dict(rope=dict(inv_freq=rope_inv_freq(4), layout="interleaved"))),
                    (dict(encoder="alibi", max_bias=8.0), dict(bias=alibi_bias(H, pos))),
                    (dict(encoder="t5", num_buckets=32, max_distance=128,
                          bidirectional=int(not causal), t5_table=Tt),
                     dict(scale=1.0, bias=t5_bias(Tt, pos, 32, 128, not causal))),
                    (dict(encoder="shaw", max_relative=3, shaw_ak=AK, shaw_av=AV),
                     dict(shaw=(AK, AV, 3))),
                    (dict(encoder="xl", clamp_len=0, base=10000.0, xl_u=u, xl_v=v, xl_wr=WR),
                     dict(xl=(u, v, WR, None))),
                    (dict(encoder="xl", clamp_len=3, base=10000.0, xl_u=u, xl_v=v, xl_wr=WR),
                     dict(xl=(u, v, WR, 3))),
                ]
                for enc, extra in cases:
                    y_old = attention(X, Wq, Wk, Wv, Wo, H, **old, **extra)
                    got = layer_attention(X, Wq, Wk, Wv, Wo, H, H, Dh, pos, enc,
                                          scale=extra.get("scale"), causal=causal)
                    _close(got["y"], y_old, f"layer vs attention(): {enc['encoder']} D={D} "
                                            f"causal={causal} pos={pos}")
                    n += 1
    return n


def layer_check_packed():
    """(6) A packed batch of two sequences (own positions, segments 0 and 1, two padding
    tokens) equals the two sequences run separately, for every encoder, causal or not, with
    and without sinks and a window; padding rows give O = 0, Y = bo."""
    D, H, Hkv, Dh, n1, n2 = 16, 4, 2, 6, 7, 6
    seed = 8201
    x1, x2, xp = rnd(seed, (n1, D)), rnd(seed + 1, (n2, D)), rnd(seed + 2, (2, D))
    wq = rnd(seed + 3, (D, H * Dh), 1 / math.sqrt(D))
    wk, wv = [rnd(seed + 4 + k, (D, Hkv * Dh), 1 / math.sqrt(D)) for k in range(2)]
    wo = rnd(seed + 6, (H * Dh, D), 1 / math.sqrt(H * Dh))
    bq, bk, bv, bo = (rnd(seed + 7, (H * Dh,)), rnd(seed + 8, (Hkv * Dh,)),
                      rnd(seed + 9, (Hkv * Dh,)), rnd(seed + 10, (D,)))
    sinks = rnd(seed + 11, (H,))
    p1, p2 = positions(n1, 3), _gap_positions(seed, n2, 1, 3)
    pos = np.concatenate([p1, p2, [0, 5]])
    seg = np.array([0] * n1 + [1] * n2 + [-1, -3], dtype=np.int64)
    x = np.concatenate([x1, x2, xp])
    encs = [dict(encoder="none"),
            dict(encoder="sinusoidal", layout="interleaved", base=10000.0),
            dict(encoder="learned", table_offset=1, table_rows=40),
            dict(encoder="rope", base=10000.0, rotary_dim=4, layout="half", scaling="none"),
            dict(encoder="rope", base=10000.0, rotary_dim=6, layout="interleaved",
                 scaling="linear", factor=2.0),
            dict(encoder="alibi", max_bias=8.0),
            dict(encoder="t5", num_buckets=16, max_distance=32, bidirectional=1),
            dict(encoder="shaw", max_relative=2),
            dict(encoder="xl", clamp_len=0, base=10000.0)]
    n = 0
    for e, enc in enumerate(encs):
        enc = dict(enc, **layer_enc_inputs(enc, seed + 20 + 5 * e, D, H, Dh))
        for causal in (False, True):
            for extra in (dict(), dict(sinks=sinks), dict(window=3, softcap=1.5)):
                kw = dict(bq=bq, bk=bk, bv=bv, bo=bo, causal=causal, **extra)
                packed = layer_attention(x, wq, wk, wv, wo, H, Hkv, Dh, pos, enc, seg=seg, **kw)
                for sl, xs, ps in ((slice(0, n1), x1, p1), (slice(n1, n1 + n2), x2, p2)):
                    alone = layer_attention(xs, wq, wk, wv, wo, H, Hkv, Dh, ps, enc, **kw)
                    for a in ("q", "k", "v", "o", "y"):
                        _close(packed[a][sl], alone[a], f"packed vs separate: {enc['encoder']} "
                                                        f"causal={causal} {list(extra)} {a}")
                assert not np.any(packed["o"][n1 + n2:])
                assert np.array_equal(packed["y"][n1 + n2:], np.stack([bo, bo]))
                n += 1
    return n


def gen_layers():
    layer_check_angles()
    n1 = layer_check_mha_reference()
    n6 = layer_check_packed()
    R = "rope"
    # ---- every encoder with GQA (H=4, Hkv=2), MQA (Hkv=1) and MHA (Hkv=H); visibility spread.
    layer_case("none_gqa_bias", 10100, 24, 4, 2, 10, positions(12), dict(encoder="none"),
               "GQA, Dh != D/H, biases bq bk bv bo, bidirectional, no mask", biases="qkvo")
    layer_case("none_mqa_causal_sinks", 10200, 16, 4, 1, 6, positions(10, 3),
               dict(encoder="none"), "MQA, causal, sinks, offset 3", causal=True, sinks=True)
    layer_case("none_mha_hugepos_chunk_causal", 10300, 16, 2, 2, 8,
               _gap_positions(10301, 14, 1, 2, HUGE), dict(encoder="none"),
               "MHA Dh = D/H, positions 2^40 + gaps of 1-2, causal, chunk 6 (2^40 mod 6 = 4)",
               causal=True, chunk=6)
    layer_case("none_gqa_window_chunk_segments_sinks_bidir", 10400, 16, 4, 2, 6,
               np.concatenate([_gap_positions(10401, 9, 1, 3, 2), [0], positions(6, 1)]),
               dict(encoder="none"),
               "window 4 + chunk 8 + segments (0 x9, padding, 1 x6) + sinks, bidirectional; "
               "the padding row sees nothing (O = 0)",
               window=4, chunk=8, seg=[0] * 9 + [-1] + [1] * 6, sinks=True)
    layer_case("sinusoidal_gqa_window_causal", 10500, 24, 4, 2, 10, positions(14, 5),
               dict(encoder="sinusoidal", layout="interleaved", base=10000.0),
               "X + PE (interleaved, vaswani, base 10000), offset 5, causal window 4",
               causal=True, window=4)
    layer_case("sinusoidal_mqa_segments_bidir", 10600, 20, 2, 1, 12,
               np.concatenate([_gap_positions(10601, 5, 1, 4, 1048570), positions(5, 999995),
                               [7, 7]]),
               dict(encoder="sinusoidal", layout="split", base=500.0),
               "X + PE (split, base 500), positions near 2^20 and 10^6, segments 0 x5, 1 x5 "
               "and 2 padding tokens (O = 0), bidirectional",
               seg=[0] * 5 + [1] * 5 + [-1, -1])
    layer_case("sinusoidal_mha_scale", 10700, 16, 4, 4, 6, _gap_positions(10701, 9, 1, 9),
               dict(encoder="sinusoidal", layout="interleaved", base=10000.0),
               "MHA Dh != D/H, non-contiguous positions, no mask, scale 0.3", scale=0.3)
    layer_case("learned_gqa_chunk_bidir", 10800, 16, 4, 2, 6, _gap_positions(10801, 12, 1, 3),
               dict(encoder="learned", table_offset=2, table_rows=40),
               "X + W[p + 2], non-contiguous positions, chunk 5, bidirectional", chunk=5)
    layer_case("learned_mqa_causal_kvbias", 10900, 12, 3, 1, 8, positions(9, 4),
               dict(encoder="learned", table_offset=0, table_rows=16),
               "MQA, X + W[p], offset 4, causal, biases bk bv only", causal=True, biases="kv")
    layer_case("learned_mha_segments_causal_sinks", 11000, 16, 2, 2, 8,
               np.concatenate([positions(6), positions(5), [0, 0]]),
               dict(encoder="learned", table_offset=2, table_rows=24),
               "packed batch (positions restart), segments 0 x6, 1 x5, 2 padding, causal, "
               "sinks: padding rows O = 0", causal=True, seg=[0] * 6 + [1] * 5 + [-1, -2],
               sinks=True)
    layer_case("rope_gqa_partial_qkvbias_causal", 11100, 24, 4, 2, 10, positions(12, 2),
               dict(encoder=R, base=10000.0, rotary_dim=6, layout="interleaved",
                    scaling="none"),
               "RoPE interleaved, partial R=6 of Dh=10, Qwen2-style biases bq bk bv, causal",
               causal=True, biases="qkv")
    layer_case("rope_mqa_hugepos_window_causal", 11200, 16, 4, 1, 8,
               _gap_positions(11201, 14, 1, 3, HUGE),
               dict(encoder=R, base=10000.0, rotary_dim=8, layout="half", scaling="none"),
               "RoPE half R=8, positions 2^40 + gaps of 1-3 (exactly reduced angles, see "
               "notes), causal window 7", causal=True, window=7)
    layer_case("rope_mha_linear_chunk_causal", 11300, 16, 2, 2, 8, positions(12, 1048570),
               dict(encoder=R, base=10000.0, rotary_dim=8, layout="half", scaling="linear",
                    factor=4.0),
               "RoPE linear factor 4, positions 1048570..1048581 (across 2^20), causal, "
               "chunk 5", causal=True, chunk=5)
    layer_case("rope_gqa_dynamic_window_bidir", 11400, 16, 4, 2, 8,
               _gap_positions(11401, 10, 1, 4),
               dict(encoder=R, base=10000.0, rotary_dim=8, layout="half", scaling="dynamic",
                    factor=2.0, original_max_positions=16),
               "RoPE dynamic NTK factor 2, M=16, L = max position + 1 > M, bidirectional "
               "window 6", window=6)
    layer_case("rope_gqa_longrope_causal", 11500, 16, 4, 2, 8, positions(10, 10),
               dict(encoder=R, base=10000.0, rotary_dim=8, layout="half", scaling="longrope",
                    factor=4.0, original_max_positions=16),
               "RoPE longrope factor 4, M=16, positions 10..19 (L=20 > M: long factors), "
               "attention factor sqrt(1+ln4/ln16), causal", causal=True)
    layer_case("rope_mha_unsorted_causal", 11600, 16, 2, 2, 8,
               np.array([5, 0, 17, 3, 3, 100, 9, 2], dtype=np.int64),
               dict(encoder=R, base=10000.0, rotary_dim=8, layout="half", scaling="none"),
               "RoPE half, unsorted positions with a repeat (5 0 17 3 3 100 9 2): causal is "
               "p_j <= p_i by position, not by row", causal=True)
    layer_case("alibi_gqa_softcap_causal", 11700, 24, 4, 2, 10, _gap_positions(11701, 12, 1, 6),
               dict(encoder="alibi", max_bias=8.0),
               "ALiBi, gaps of 1-6, causal, softcap 1 (caps scaled q.k + bias together)",
               causal=True, softcap=1.0)
    layer_case("alibi_mqa_window_bidir", 11800, 24, 6, 1, 4, positions(11),
               dict(encoder="alibi", max_bias=8.0),
               "ALiBi H=6 (not a power of two), MQA, bidirectional window 4", window=4)
    layer_case("alibi_mha_hugepos_segments_bidir", 11900, 12, 3, 3, 4,
               np.concatenate([_gap_positions(11901, 4, 1, 3, HUGE), HUGE + positions(3, 50),
                               [HUGE], HUGE + positions(4, 7)]),
               dict(encoder="alibi", max_bias=4.0),
               "ALiBi max_bias 4, H=3, positions near 2^40, segments 0 x4, 1 x3, padding in "
               "the middle, 2 x4, bidirectional", seg=[0] * 4 + [1] * 3 + [-1] + [2] * 4)
    layer_case("t5_gqa_softcap_bidir", 12000, 24, 4, 2, 10, _gap_positions(12001, 12, 1, 8),
               dict(encoder="t5", num_buckets=16, max_distance=32, bidirectional=1),
               "T5 nb 16 md 32 bidirectional buckets, scale 1, gaps of 1-8 (abs(rel) past "
               "max_distance), softcap 2 on q.k + bias", scale=1.0, softcap=2.0)
    layer_case("t5_mqa_hugepos_causal", 12100, 16, 4, 1, 6,
               _gap_positions(12101, 12, 1, 30, HUGE),
               dict(encoder="t5", num_buckets=32, max_distance=128, bidirectional=0),
               "T5 nb 32 md 128 causal buckets, scale 1, positions 2^40 + gaps of 1-30, causal",
               scale=1.0, causal=True)
    layer_case("t5_mha_window_chunk_segments_causal", 12200, 16, 2, 2, 8,
               np.concatenate([_gap_positions(12201, 9, 1, 2, 4), positions(6, 3), [1]]),
               dict(encoder="t5", num_buckets=32, max_distance=128, bidirectional=0),
               "T5 causal buckets, default scale, causal + window 5 + chunk 6 + segments "
               "(0 x9, 1 x6, padding)", causal=True, window=5, chunk=6,
               seg=[0] * 9 + [1] * 6 + [-1])
    layer_case("shaw_gqa_segments_sinks_bidir", 12300, 24, 4, 2, 10,
               np.concatenate([positions(5), positions(5), [0, 0]]),
               dict(encoder="shaw", max_relative=3),
               "Shaw K=3, segments 0 x5, 1 x5 (positions restart), 2 padding, sinks, "
               "bidirectional", seg=[0] * 5 + [1] * 5 + [-1, -1], sinks=True)
    layer_case("shaw_mqa_hugepos_window_causal", 12400, 16, 4, 1, 6,
               _gap_positions(12401, 10, 1, 2, HUGE), dict(encoder="shaw", max_relative=2),
               "Shaw K=2, positions 2^40 + gaps of 1-2, causal window 5", causal=True, window=5)
    layer_case("shaw_mha_chunk_window_bidir", 12500, 16, 2, 2, 8,
               np.array([0, 1, 2, 10, 11, 20, 30, 31, 32, 45], dtype=np.int64),
               dict(encoder="shaw", max_relative=4),
               "Shaw K=4, bidirectional chunk 16 + window 3 with gaps wider than the window: "
               "positions 20, 32 and 45 see only themselves", chunk=16, window=3)
    layer_case("xl_gqa_causal", 12600, 24, 4, 2, 10, positions(12),
               dict(encoder="xl", clamp_len=0, base=10000.0),
               "Transformer-XL, W_R [D, H*Dh] = [24, 40], no clamp, causal", causal=True)
    layer_case("xl_mqa_clamp_sinks_bidir", 12700, 16, 4, 1, 6, positions(10, 4),
               dict(encoder="xl", clamp_len=3, base=10000.0),
               "Transformer-XL clamp_len 3 (d clipped to [-3, 3]), MQA, sinks, bidirectional",
               sinks=True)
    layer_case("xl_mha_hugepos_chunk_causal", 12800, 16, 2, 2, 8,
               _gap_positions(12801, 12, 1, 3, HUGE),
               dict(encoder="xl", clamp_len=0, base=10000.0),
               "Transformer-XL, MHA Dh = D/H, positions 2^40 + gaps of 1-3, causal chunk 7",
               causal=True, chunk=7)
    # ---- shapes of real models (small).
    layer_case("llama3", 13000, 48, 6, 2, 8, positions(16, 8185),
               dict(encoder=R, base=500000.0, rotary_dim=8, layout="half", scaling="llama3",
                    factor=8.0, original_max_positions=8192, low_freq_factor=1.0,
                    high_freq_factor=4.0),
               "LLaMA-3 shape: GQA 6/2, Dh = D/H, RoPE half base 500000 with llama3 scaling "
               "(frequencies kept, blended and divided), positions 8185..8200, causal",
               causal=True)
    layer_case("mistral", 13100, 32, 4, 1, 8, positions(16),
               dict(encoder=R, base=10000.0, rotary_dim=8, layout="half", scaling="none"),
               "Mistral shape: GQA 4/1, RoPE half, causal sliding window 6, N = 16 > W + 10",
               causal=True, window=6)
    gptoss = dict(encoder=R, base=150000.0, rotary_dim=8, layout="half", scaling="yarn",
                  factor=32.0, original_max_positions=4096, beta_fast=32.0, beta_slow=1.0,
                  truncate=0, attention_factor="default")
    for nm, w in (("gptoss_sliding", 4), ("gptoss_full", 0)):
        layer_case(nm, 13200, 24, 8, 1, 8, positions(12),
                   gptoss, "gpt-oss shape: GQA 8/1, Dh != D/H, biases bq bk bv bo, RoPE yarn "
                   "(factor 32, M 4096, base 150000, no truncation, attention factor g(32,1)), "
                   f"sinks, causal, {'sliding window 4' if w else 'full'} (the layers "
                   "alternate; same inputs in both)", causal=True, window=w, sinks=True,
                   biases="qkvo")
    layer_case("gemma2", 13300, 24, 4, 2, 10, positions(14),
               dict(encoder=R, base=10000.0, rotary_dim=10, layout="half", scaling="none"),
               "Gemma-2 shape: GQA 4/2, Dh=10 != D/H, scale 6^-0.5 (query_pre_attn_scalar = "
               "D/H), softcap 2, causal sliding window 5", causal=True, window=5,
               softcap=2.0, scale=6 ** -0.5)
    inp, out = layer_case("packed_rope_gqa_causal", 13400, 16, 4, 2, 6,
               np.concatenate([positions(7), positions(6), [0, 0]]),
               dict(encoder=R, base=10000.0, rotary_dim=6, layout="half", scaling="none"),
               "a packed batch: sequences of 7 and 6 tokens (positions restart), 2 padding "
               "tokens, causal; equals the sequences run alone", causal=True,
               seg=[0] * 7 + [1] * 6 + [-1, -1])
    enc = dict(encoder=R, base=10000.0, rotary_dim=6, layout="half", scaling="none")
    for sl in (slice(0, 7), slice(7, 13)):                     # (6) on the saved case itself
        alone = layer_attention(inp["x"][sl], inp["wq"], inp["wk"], inp["wv"], inp["wo"], 4, 2, 6,
                                inp["positions"][sl], enc, causal=True)
        for a in ("q", "k", "v", "o", "y"):
            _close(out[a][sl], alone[a], f"packed_rope_gqa_causal: {a} vs separate")
    print(f"layers: {len(LAYER_CASES)} cases; layer == attention() on {n1} runs, "
          f"packed == separate on {n6} runs")


# ================================================================ §5d BERT relative, §5e DeBERTa
# Transcriptions of Hugging Face's code (modeling_bert.py BertSelfAttention with
# position_embedding_type relative_key / relative_key_query; modeling_deberta_v2.py
# make_log_bucket_position, DebertaV2Encoder.get_rel_embedding and DisentangledSelfAttention),
# and conventions §5d/§5e as formulas; each case asserts that the two agree where both apply.

def bert_rel_terms(q, k, pos_q, pos_k, E, kind):
    """BertSelfAttention's relative scores, before the division by sqrt(Dh): distance =
    position_ids_l - position_ids_r, positional_embedding = distance_embedding(distance +
    max_position_embeddings - 1), einsum("bhld,lrd->bhlr", query, pe) and, for
    relative_key_query, + einsum("bhrd,lrd->bhlr", key, pe). q [Nq, Dh], k [Nk, Dh] of one head."""
    L = (E.shape[0] + 1) // 2
    distance = np.asarray(pos_q)[:, None] - np.asarray(pos_k)[None, :]
    idx = distance + L - 1
    assert idx.min() >= 0 and idx.max() <= 2 * L - 2, "BERT relative: |p_i - p_j| > L - 1"
    pe = E[idx]                                                 # [Nq, Nk, Dh]
    out = np.einsum("ld,lrd->lr", q, pe)
    if kind == "relative_key_query":
        out = out + np.einsum("rd,lrd->lr", k, pe)
    else:
        assert kind == "relative_key", kind
    return out


def bert_rel_terms_loops(q, k, pos_q, pos_k, E, kind):
    """§5d as written, one pair at a time: q_i.E[p_i - p_j + L - 1] (+ k_j.E[...])."""
    L = (E.shape[0] + 1) // 2
    out = np.zeros((len(pos_q), len(pos_k)))
    for i, pi in enumerate(pos_q):
        for j, pj in enumerate(pos_k):
            r = int(pi) - int(pj) + L - 1
            out[i, j] = math.fsum(q[i] * E[r]) + (math.fsum(k[j] * E[r]) if kind != "relative_key" else 0.0)
    return out


def deberta_bucket(rel, b, m, f32=True):
    """make_log_bucket_position: sign = sign(rel); mid = b // 2; abs_pos = mid - 1 where
    -mid < rel < mid, else |rel|; log_pos = ceil(log(abs_pos / mid) / log((m - 1) / mid) *
    (mid - 1)) + mid; rel where abs_pos <= mid, else log_pos * sign; then .to(long). f32: as
    torch computes it (abs_pos / mid is a float32 true division, the logarithms, the quotient and
    the product float32); f32=False: the same in float64. b <= 0: no buckets (rel itself)."""
    rel = np.asarray(rel, dtype=np.int64)
    if b <= 0:
        return rel.copy(), None
    sign = np.sign(rel)
    mid = b // 2
    abs_pos = np.where((rel < mid) & (rel > -mid), mid - 1, np.abs(rel))
    with np.errstate(divide="ignore"):
        if f32:
            t = np.log(abs_pos.astype(np.float32) / np.float32(mid)) / np.log(np.float32((m - 1) / mid)) \
                * np.float32(mid - 1)
            assert t.dtype == np.float32
            log_pos = np.ceil(t) + np.float32(mid)
            bucket = np.where(abs_pos <= mid, rel.astype(np.float32), log_pos * sign.astype(np.float32))
        else:
            t = np.log(abs_pos / mid) / math.log((m - 1) / mid) * (mid - 1)
            log_pos = np.ceil(t) + mid
            bucket = np.where(abs_pos <= mid, rel.astype(np.float64), log_pos * sign)
    return bucket.astype(np.int64), t


def deberta_span(b, m):
    return b if b > 0 else m                                    # pos_ebd_size


def deberta_index(rel, b, m):
    """§5e: c(bucket(rel)) = clamp(bucket + span, 0, 2 span - 1) (float32 buckets)."""
    span = deberta_span(b, m)
    return np.clip(deberta_bucket(rel, b, m)[0] + span, 0, 2 * span - 1)


def layer_norm(x, w, b, eps):
    """torch.nn.LayerNorm over the last axis (biased variance)."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def deberta_hf_tables(rel_emb, ln_w, ln_b, eps, wq, bq, wk, bk, b, m):
    """get_rel_embedding (LayerNorm when norm_rel_ebd has layer_norm: ln_w is not None), then
    rel_embeddings[0 : 2 att_span], and with share_att_key pos_query_layer = query_proj(rel),
    pos_key_layer = key_proj(rel). Returns Q_r, K_r [2 span, H*Dh] (heads as column blocks, the
    layout before transpose_for_scores)."""
    span = deberta_span(b, m)
    r = rel_emb if ln_w is None else layer_norm(rel_emb, ln_w, ln_b, eps)
    r = r[0:2 * span]
    qr = r @ wq + (bq if bq is not None else 0.0)
    kr = r @ wk + (bk if bk is not None else 0.0)
    return qr, kr


def deberta_hf_attention(x, wq, bq, wk, bk, wv, bv, H, pos, qr, kr, b, m, terms, vis):
    """DisentangledSelfAttention.forward and disentangled_attention_bias for one sequence, with
    relative_pos = bucket(p_i - p_j) passed in (build_relative_position for positions 0..N-1)
    and the visibility mask as XSoftmax applies it. Q_r, K_r [2 span, H*Dh]. Returns the context
    layer [N, H*Dh] (before the output projection)."""
    N, D = x.shape
    Dh = wq.shape[1] // H

    def heads(t):                                               # transpose_for_scores: [H, N, Dh]
        return t.reshape(t.shape[0], H, Dh).transpose(1, 0, 2)

    query_layer = heads(x @ wq + (bq if bq is not None else 0.0))
    key_layer = heads(x @ wk + (bk if bk is not None else 0.0))
    value_layer = heads(x @ wv + (bv if bv is not None else 0.0))
    scale_factor = 1 + ("c2p" in terms) + ("p2c" in terms)
    scale = math.sqrt(Dh * scale_factor)
    attention_scores = query_layer @ key_layer.transpose(0, 2, 1) / scale
    relative_pos = deberta_bucket(pos[:, None] - pos[None, :], b, m)[0]     # [N, N]
    att_span = deberta_span(b, m)
    pos_query_layer, pos_key_layer = heads(qr), heads(kr)        # [H, 2 span, Dh]
    score = 0.0
    if "c2p" in terms:
        c2p_att = query_layer @ pos_key_layer.transpose(0, 2, 1)              # [H, N, 2 span]
        c2p_pos = np.clip(relative_pos + att_span, 0, att_span * 2 - 1)
        c2p_att = np.take_along_axis(c2p_att, np.broadcast_to(c2p_pos, (H, N, N)), axis=-1)
        score = score + c2p_att / scale
    if "p2c" in terms:
        r_pos = relative_pos                                    # key and query lengths agree
        p2c_pos = np.clip(-r_pos + att_span, 0, att_span * 2 - 1)
        p2c_att = key_layer @ pos_query_layer.transpose(0, 2, 1)              # [H, N, 2 span]
        p2c_att = np.take_along_axis(p2c_att, np.broadcast_to(p2c_pos, (H, N, N)), axis=-1)
        score = score + p2c_att.transpose(0, 2, 1) / scale
    attention_scores = attention_scores + score
    masked = np.where(vis[None], attention_scores, np.finfo(np.float64).min)  # XSoftmax
    p = np.exp(masked - masked.max(axis=-1, keepdims=True))
    p = np.where(vis[None], p / p.sum(axis=-1, keepdims=True), 0.0)
    context = p @ value_layer                                   # [H, N, Dh]
    return context.transpose(1, 0, 2).reshape(N, H * Dh)


def deberta_terms(q, k, pos_q, pos_k, kr_h, qr_h, b, m, terms):
    """§5e as written, one pair at a time: q_i.K_r[c(d_ij)] + k_j.Q_r[c(d_ij)], d_ij =
    bucket(p_i - p_j); q [Nq, Dh], k [Nk, Dh], K_r, Q_r [2 span, Dh] of one head; unscaled."""
    out = np.zeros((len(pos_q), len(pos_k)))
    for i, pi in enumerate(pos_q):
        for j, pj in enumerate(pos_k):
            c = int(deberta_index(np.array([int(pi) - int(pj)]), b, m)[0])
            s = 0.0
            if "c2p" in terms:
                s += math.fsum(q[i] * kr_h[c])
            if "p2c" in terms:
                s += math.fsum(k[j] * qr_h[c])
            out[i, j] = s
    return out


def rel_layer(x, wq, wk, wv, wo, H, Hkv, Dh, pos, terms, scale, bq=None, bk=None, bv=None,
              bo=None, causal=False, window=0, chunk=0, seg=None, sinks=None, softcap=0.0):
    """A §6/§6b layer whose encoder adds content terms: S_h = scale (q k^T + terms(h, q_h, k_g)),
    g = floor(h Hkv / H), soft-capped, masked (layer_visibility), softmax with sinks; y = O Wo
    + bo. terms(h, q_h [N, Dh], k_g [N, Dh]) -> [N, N]."""
    N, D = x.shape

    def project(W, bias, heads):
        out = x @ W
        if bias is not None:
            out = out + bias
        return out.reshape(N, heads, Dh)

    q, k, v = project(wq, bq, H), project(wk, bk, Hkv), project(wv, bv, Hkv)
    vis = layer_visibility(pos, causal, window, chunk, seg)
    live = vis.any(axis=1)
    o = np.zeros((N, H, Dh))
    for h in range(H):
        g = (h * Hkv) // H
        S = scale * (q[:, h] @ k[:, g].T + terms(h, q[:, h], k[:, g]))
        if softcap:
            S = softcap * np.tanh(S / softcap)
        S = np.where(vis, S, -np.inf)
        P = np.zeros((N, N))
        mx = S[live].max(axis=1)
        if sinks is not None:
            mx = np.maximum(mx, sinks[h])
        E = np.where(vis[live], np.exp(S[live] - mx[:, None]), 0.0)
        den = E.sum(axis=1) + (np.exp(sinks[h] - mx) if sinks is not None else 0.0)
        P[live] = E / den[:, None]
        o[:, h] = P @ v[:, g]
    o = o.reshape(N, H * Dh)
    y = o @ wo + (bo if bo is not None else 0.0)
    return o, y


def rel_case_inputs(prefix, seed, N, D, H, Hkv, Dh, biases=""):
    """Random layer inputs, saved as <prefix>_x, _wq, _wk, _wv, _wo (and _bq, _bk, _bv, _bo)."""
    a = dict(x=rnd(seed, (N, D)), wq=rnd(seed + 1, (D, H * Dh), 1 / math.sqrt(D)),
             wk=rnd(seed + 2, (D, Hkv * Dh), 1 / math.sqrt(D)),
             wv=rnd(seed + 3, (D, Hkv * Dh), 1 / math.sqrt(D)),
             wo=rnd(seed + 4, (H * Dh, D), 1 / math.sqrt(H * Dh)))
    width = dict(bq=H * Dh, bk=Hkv * Dh, bv=Hkv * Dh, bo=D)
    for n, bname in enumerate(("bq", "bk", "bv", "bo")):
        a[bname] = rnd(seed + 5 + n, (width[bname],)) if bname[1] in biases else None
    shapes = dict(x="[N, D]", wq="[D, H*Dh] (random/sqrt(D))", wk="[D, Hkv*Dh] (random/sqrt(D))",
                  wv="[D, Hkv*Dh] (random/sqrt(D))", wo="[H*Dh, D] (random/sqrt(H*Dh))",
                  bq="[H*Dh]", bk="[Hkv*Dh]", bv="[Hkv*Dh]", bo="[D]")
    for key, arr in a.items():
        if arr is not None:
            save(f"{prefix}_{key}", arr, f"{prefix}: random {key} {shapes[key]}, N={N} D={D} H={H} "
                                         f"Hkv={Hkv} Dh={Dh}")
    return a


def gen_bert_relative():
    """§5d: the encoder's terms alone, attention on the attn_* inputs, and layers of real
    models (grouped heads, biases, masks, sinks, soft-capping) with explicit positions."""
    Dh = 8
    # -- the terms alone: q_i.E[idx] (+ k_j.E[idx]) on a table of L = 12, unscaled
    E12 = save("bert_rel_table_L12", rnd(20001, (23, Dh)), "random BERT distance table E [2L-1=23, Dh=8], L=12")
    q = save("bert_rel_q", rnd(20002, (6, Dh)), "random queries [Nq=6, Dh=8] of one head")
    k = save("bert_rel_k", rnd(20003, (9, Dh)), "random keys [Nk=9, Dh=8] of one head")
    qp = save("bert_rel_qpos", np.array([4, 11, 7, 0, 9, 5], dtype=np.int64),
              "explicit query positions for bert_rel_*_listed")
    kp = save("bert_rel_kpos", np.array([3, 0, 8, 10, 1, 6, 2, 11, 5], dtype=np.int64),
              "explicit key positions for bert_rel_*_listed")
    for kind in ("relative_key", "relative_key_query"):
        for tag, pq, pk, what in (("contiguous", positions(6, 5), positions(9, 2), "queries 5..10, keys 2..10"),
                                  ("listed", qp, kp, "positions bert_rel_qpos, bert_rel_kpos")):
            ref = bert_rel_terms(q, k, pq, pk, E12, kind)
            _close(ref, bert_rel_terms_loops(q, k, pq, pk, E12, kind), f"bert {kind} {tag}: einsum vs loops")
            save(f"bert_rel_{kind}_{tag}", ref,
                 f"{kind} terms q_i.E[p_i-p_j+L-1]{' + k_j.E[...]' if kind != 'relative_key' else ''} "
                 f"(unscaled) of bert_rel_q, bert_rel_k with bert_rel_table_L12, {what}")
    # -- attention on attn_x / attn_w* (D=16, H=2, Dh=8, N=7): E of L = 8, scale 1/sqrt(Dh)
    X = np.load(DATA / "attn_x.npy")
    Wq, Wk, Wv, Wo = [np.load(DATA / f"attn_w{c}.npy") for c in "qkvo"]
    E8 = save("attn_bert_table", rnd(20010, (15, Dh)), "random BERT distance table E [2L-1=15, Dh=8], L=8")
    for kind, causal, off in (("relative_key", False, 0), ("relative_key", True, 0),
                              ("relative_key_query", False, 3), ("relative_key_query", True, 0)):
        pos = positions(7, off)

        def terms(h, qh, kg, kind=kind, pos=pos):
            return bert_rel_terms(qh, kg, pos, pos, E8, kind)
        _, y = rel_layer(X, Wq, Wk, Wv, Wo, 2, 2, Dh, pos, terms, 1 / math.sqrt(Dh), causal=causal)
        # the §6 reference with the terms' scale folded in agrees (as Hugging Face: (q.k + rel) / sqrt(Dh))
        mode = "causal" if causal else "bidir"
        save(f"attn_bert_{kind}_{mode}{'_offset3' if off else ''}", y,
             f"Y, H=2, Dh=8, scale 1/sqrt(8): BERT {kind} with attn_bert_table (L=8), positions "
             f"{off}..{off + 6}, {'causal' if causal else 'bidirectional'}")
    # -- layers: grouped heads, Dh != D/H, biases, explicit gapped positions, masks, sinks, cap
    cases = [
        ("bert_gqa_key_query_window_causal", 20100, "relative_key_query", 24, 4, 2, 8, 36,
         _gap_positions(20101, 12, 1, 3, 4), "qkvo", dict(causal=True, window=9),
         "GQA 4/2, Dh=8, biases, explicit gapped positions, causal window 9"),
        ("bert_mqa_key_segments_sinks_cap", 20200, "relative_key", 16, 4, 1, 6, 16,
         np.concatenate([positions(7, 2), positions(6), [0]]), "qv",
         dict(seg=np.array([0] * 7 + [1] * 6 + [-1]), sinks=True, softcap=3.0, chunk=5),
         "MQA 4/1, Dh=6, bq bv, packed segments (7, 6, padding), chunk 5, sinks, softcap 3, bidir"),
    ]
    for name, seed, kind, D, H, Hkv, Dhh, L, pos, biases, vis, desc in cases:
        a = rel_case_inputs(name, seed, len(pos), D, H, Hkv, Dhh, biases)
        E = save(f"{name}_table", rnd(seed + 20, (2 * L - 1, Dhh)), f"{name}: random E [2L-1, Dh], L={L}")
        save(f"{name}_positions", np.asarray(pos, dtype=np.int64), f"{name}: positions [N]")
        sinks = None
        if vis.pop("sinks", False):
            sinks = save(f"{name}_sinks", rnd(seed + 21, (H,)), f"{name}: sink logits [H]")
        if "seg" in vis:
            save(f"{name}_segments", vis["seg"], f"{name}: segment ids [N] (-1: padding)")

        def terms(h, qh, kg, kind=kind, pos=pos, E=E):
            return bert_rel_terms(qh, kg, pos, pos, E, kind)
        o, y = rel_layer(a["x"], a["wq"], a["wk"], a["wv"], a["wo"], H, Hkv, Dhh, pos, terms,
                         1 / math.sqrt(Dhh), bq=a["bq"], bk=a["bk"], bv=a["bv"], bo=a["bo"],
                         sinks=sinks, **vis)
        save(f"{name}_y", y, f"{name}: Y [N, D], BERT {kind}, scale 1/sqrt(Dh): {desc}")


def gen_deberta():
    """§5e: buckets (float32 as Hugging Face, against float64), the tables from a layer's
    weights, the terms alone, attention against a transcription of DisentangledSelfAttention,
    and layers of real models."""
    # -- buckets: every rel in -3000..3000 and a geometric set to 1e12, per configuration; the
    # entries whose float32 and float64 buckets differ (ties of the ceiling) are listed apart
    g = np.unique(np.round(np.geomspace(1, 1e12, 300)).astype(np.int64))
    rel = np.unique(np.concatenate([np.arange(-3000, 3001), g, -g])).astype(np.int64)
    save("deberta_bucket_rel", rel, f"{rel.size} sorted rel: -3000..3000 and +-round(geomspace(1, 1e12, 300))")
    configs = [(256, 512), (256, 1024), (128, 512), (64, 256), (32, 128), (8, 16), (256, 256), (4, 8), (5, 9)]
    ties_total = 0
    sweep = np.arange(-2_000_000, 2_000_001, dtype=np.int64)
    for b, m in configs:
        b32, t = deberta_bucket(rel, b, m)
        b64, _ = deberta_bucket(rel, b, m, f32=False)
        tie = np.nonzero(b32 != b64)[0].astype(np.int64)
        save(f"deberta_bucket_b{b}_m{m}", b32,
             f"make_log_bucket_position(deberta_bucket_rel, {b}, {m}) in float32 (Hugging Face)")
        save(f"deberta_bucket_b{b}_m{m}_ties", tie,
             f"the {tie.size} indices into deberta_bucket_rel where the float32 and float64 buckets "
             "differ (ties of the ceiling, far past the clamp of c)")
        s32, s64 = deberta_bucket(sweep, b, m)[0], deberta_bucket(sweep, b, m, f32=False)[0]
        diff = s32 != s64
        ties_total += int(diff.sum())
        span = deberta_span(b, m)
        c32, c64 = np.clip(s32 + span, 0, 2 * span - 1), np.clip(s64 + span, 0, 2 * span - 1)
        assert np.array_equal(c32, c64), (b, m)             # the index never depends on a tie
    print(f"DeBERTa: |rel| <= 2e6 over {len(configs)} configurations: {ties_total} float32/float64 "
          "bucket ties, none where the index c is not clamped")
    save("deberta_index_b0_m6", deberta_index(np.arange(-10, 11), 0, 6),
         "c(rel) = clamp(rel + 6, 0, 11) for rel in -10..10: no buckets, m = 6 (span 6)")
    # -- the tables from a layer's weights, against Hugging Face's get_rel_embedding and projections
    D, H, Dh, b, m, eps = 16, 2, 8, 8, 16, 1e-7
    rel_emb = save("deberta_rel_embeddings", rnd(21001, (16, D)), "random relative embeddings [2 span=16, D=16]")
    ln_w = save("deberta_ln_weight", 1.0 + 0.1 * rnd(21002, (D,)), "layer norm weight [D] (1 + 0.1 random)")
    ln_b = save("deberta_ln_bias", 0.1 * rnd(21003, (D,)), "layer norm bias [D] (0.1 random)")
    a = rel_case_inputs("deb", 21010, 12, D, H, H, Dh, "qkvo")
    qr, kr = deberta_hf_tables(rel_emb, ln_w, ln_b, eps, a["wq"], a["bq"], a["wk"], a["bk"], b, m)
    save("deb_q_r", qr, "Q_r = LayerNorm(deberta_rel_embeddings; deberta_ln_weight, deberta_ln_bias, eps 1e-7) "
         "deb_wq + deb_bq [2 span=16, H*Dh=16]")
    save("deb_k_r", kr, "K_r = LayerNorm(...) deb_wk + deb_bk [16, 16]")
    # -- the terms alone, one head, Nq != Nk and listed positions (§5e's c(d_ij) for both terms)
    qt = save("deb_terms_q", rnd(21020, (5, Dh)), "random queries [Nq=5, Dh=8]")
    kt = save("deb_terms_k", rnd(21021, (13, Dh)), "random keys [Nk=13, Dh=8]")
    tq = save("deb_terms_qpos", np.array([30, 2, 17, 9, 100], dtype=np.int64), "explicit query positions")
    tk = save("deb_terms_kpos", np.array([0, 5, 9, 13, 14, 15, 16, 22, 29, 31, 40, 64, 99], dtype=np.int64),
              "explicit key positions")
    for terms in ("c2p|p2c", "c2p", "p2c"):
        tag = terms.replace("|", "_")
        for h in range(H):
            for ptag, pq, pk in (("contiguous", positions(5, 20), positions(13, 3)), ("listed", tq, tk)):
                ref = deberta_terms(qt, kt, pq, pk, kr[:, h * Dh:(h + 1) * Dh], qr[:, h * Dh:(h + 1) * Dh],
                                    b, m, terms)
                save(f"deb_terms_{tag}_h{h}_{ptag}", ref,
                     f"{terms} terms (unscaled) of head {h} of deb_k_r / deb_q_r, b=8 m=16, "
                     f"deb_terms_q, deb_terms_k at {'queries 20..24, keys 3..15' if ptag == 'contiguous' else 'deb_terms_qpos, deb_terms_kpos'}")
    # -- attention against the transcription: Y = context Wo + bo
    cases = [
        ("both_bidir", "c2p|p2c", positions(12), False, 0),
        ("c2p_causal", "c2p", positions(12, 5), True, 0),
        ("p2c_listed", "p2c", np.array([0, 1, 3, 4, 9, 10, 11, 30, 31, 60, 61, 90], dtype=np.int64), False, 0),
        ("both_window_causal", "c2p|p2c", _gap_positions(21030, 12, 1, 4, 7), True, 10),
    ]
    for name, terms, pos, causal, window in cases:
        save(f"deb_{name}_positions", pos, f"deb_{name}: positions [N]")
        vis = layer_visibility(pos, causal, window)
        ctx = deberta_hf_attention(a["x"], a["wq"], a["bq"], a["wk"], a["bk"], a["wv"], a["bv"], H, pos,
                                   qr, kr, b, m, terms, vis)
        f = 1 + ("c2p" in terms) + ("p2c" in terms)

        def tf(h, qh, kg, terms=terms, pos=pos):
            return deberta_terms(qh, kg, pos, pos, kr[:, h * Dh:(h + 1) * Dh], qr[:, h * Dh:(h + 1) * Dh],
                                 b, m, terms)
        o, y = rel_layer(a["x"], a["wq"], a["wk"], a["wv"], a["wo"], H, H, Dh, pos, tf, 1 / math.sqrt(f * Dh),
                         bq=a["bq"], bk=a["bk"], bv=a["bv"], bo=a["bo"], causal=causal, window=window)
        _close(ctx, o, f"deb_{name}: Hugging Face transcription vs §5e")
        save(f"deb_{name}_y", y, f"Y [12, 16] of the deb_* layer (H=2, Dh=8, biases), tables deb_k_r, deb_q_r, "
             f"b=8 m=16, pos_att_type {terms}, scale 1/sqrt({f}*8), "
             f"{'causal' if causal else 'bidirectional'}{f', window {window}' if window else ''}; "
             f"= Hugging Face's DisentangledSelfAttention (transcribed) + Wo, bo")
    # -- DeBERTa-v3's configuration (b = 256, m = 512, LayerNorm eps 1e-7) over 300 tokens
    D3, H3, Dh3, N3 = 16, 2, 8, 300
    v3 = rel_case_inputs("deb_v3", 21100, N3, D3, H3, H3, Dh3, "qk")
    re3 = save("deb_v3_rel_embeddings", rnd(21110, (512, D3)), "random relative embeddings [2 span=512, D=16]")
    w3 = save("deb_v3_ln_weight", 1.0 + 0.1 * rnd(21111, (D3,)), "layer norm weight [D]")
    b3 = save("deb_v3_ln_bias", 0.1 * rnd(21112, (D3,)), "layer norm bias [D]")
    qr3, kr3 = deberta_hf_tables(re3, w3, b3, 1e-7, v3["wq"], v3["bq"], v3["wk"], v3["bk"], 256, 512)
    save("deb_v3_q_r", qr3, "Q_r of deb_v3 [512, 16]")
    save("deb_v3_k_r", kr3, "K_r of deb_v3 [512, 16]")
    pos3 = positions(N3)
    ctx = deberta_hf_attention(v3["x"], v3["wq"], v3["bq"], v3["wk"], v3["bk"], v3["wv"], None, H3, pos3,
                               qr3, kr3, 256, 512, "p2c|c2p", np.ones((N3, N3), dtype=bool))
    c3 = deberta_index(pos3[:, None] - pos3[None, :], 256, 512)               # §5e, vectorised
    q3, k3 = (v3["x"] @ v3["wq"] + v3["bq"]).reshape(N3, H3, Dh3), (v3["x"] @ v3["wk"] + v3["bk"]).reshape(N3, H3, Dh3)
    for h in range(H3):
        sl = slice(h * Dh3, (h + 1) * Dh3)
        t3 = np.einsum("id,ijd->ij", q3[:, h], kr3[c3][:, :, sl]) + np.einsum("jd,ijd->ij", k3[:, h], qr3[c3][:, :, sl])
        S3 = (q3[:, h] @ k3[:, h].T + t3) / math.sqrt(3 * Dh3)
        P3 = np.exp(S3 - S3.max(axis=1, keepdims=True))
        P3 /= P3.sum(axis=1, keepdims=True)
        _close(ctx[:, sl], P3 @ (v3["x"] @ v3["wv"]).reshape(N3, H3, Dh3)[:, h], f"deb_v3 head {h}: transcription vs §5e")
    save("deb_v3_y", ctx @ v3["wo"], "Y [300, 16]: DeBERTa-v3 layout, b=256 m=512, both terms, positions "
         "0..299 (log buckets past 128), bq bk, bidirectional; Hugging Face transcription + Wo")
    # -- grouped heads and masks (the generalisation: query head h takes K_r, Q_r of head h, k of its kv head)
    D4, H4, Hkv4, Dh4, b4, m4 = 24, 4, 2, 6, 8, 20
    name = "deb_gqa_chunk_segments_sinks_cap"
    pos4 = np.concatenate([_gap_positions(21201, 9, 1, 6), positions(5), [0]])
    a4 = rel_case_inputs(name, 21200, pos4.size, D4, H4, Hkv4, Dh4, "qkvo")
    re4 = save(f"{name}_rel_embeddings", rnd(21210, (2 * b4, D4)), f"{name}: relative embeddings [16, 24]")
    r4 = re4                                                    # norm_rel_ebd none
    qr4 = r4 @ a4["wq"] + a4["bq"]
    kp4 = r4 @ a4["wk"] + a4["bk"]
    kr4 = _kv_repeat(kp4, H4, Hkv4, Dh4)                        # query head h: kv head floor(h Hkv / H)
    save(f"{name}_q_r", qr4, f"{name}: Q_r = rel Wq + bq [16, H*Dh=24] (no layer norm)")
    save(f"{name}_k_r", kr4, f"{name}: K_r, head h = (rel Wk + bk) of kv head floor(h*2/4) [16, 24]")
    seg4 = np.array([0] * 9 + [1] * 5 + [-1], dtype=np.int64)
    save(f"{name}_positions", pos4, f"{name}: positions [N]")
    save(f"{name}_segments", seg4, f"{name}: segment ids (9, 5, padding)")
    sk4 = save(f"{name}_sinks", rnd(21220, (H4,)), f"{name}: sink logits [H]")

    def tf4(h, qh, kg):
        return deberta_terms(qh, kg, pos4, pos4, kr4[:, h * Dh4:(h + 1) * Dh4], qr4[:, h * Dh4:(h + 1) * Dh4],
                             b4, m4, "c2p|p2c")
    _, y4 = rel_layer(a4["x"], a4["wq"], a4["wk"], a4["wv"], a4["wo"], H4, Hkv4, Dh4, pos4, tf4,
                      1 / math.sqrt(3 * Dh4), bq=a4["bq"], bk=a4["bk"], bv=a4["bv"], bo=a4["bo"],
                      seg=seg4, sinks=sk4, softcap=2.5, causal=True, chunk=7)
    save(f"{name}_y", y4, f"{name}: Y [15, 24], GQA 4/2, Dh=6, b=8 m=20, both terms, scale 1/sqrt(18), "
         "biases, causal, chunk 7, packed segments, sinks, softcap 2.5")


README_HEAD = """# posenc float64 reference data

Generated by `make_golden.py` (`/usr/bin/python3 tests/reference/make_golden.py`; needs NumPy),
an independent NumPy float64 implementation of `docs/conventions.md`. Do not edit by hand:
this file is rewritten by the script together with `data/*.npy`.

Common rules:
- `.npy`, C order, little-endian; float64 (`<f8`) or int64 (`<i8`).
- Random inputs are float64 normal draws (projection weights `W*`, `attn_xl_wr` scaled by
  1/sqrt(D_in)), rounded to float32 and stored as float64: casting them to float gives the exact
  values the reference used. Other inputs (tables, u, v, A_K, A_V) are unscaled standard normal.
- Outputs are computed in float64 from those (float32-exact) inputs.
- Multi-head tensors are `[N, H, Dh]` row-major (= `[N, H*Dh]`).
- Positions are `offset + i` unless an explicit positions file is named.
- RoPE files: layout `half` unless stated; the attention factor multiplies only rotated dims.
- `-inf` entries in bias files mark causally masked pairs (`p_j > p_i`).
- Attention (`attn_*`): `D=16, H=2, Dh=8`, inputs `attn_x`, `attn_wq/wk/wv/wo`;
  `attn3_*`: `D=24, H=3, Dh=8`, inputs `attn3_x`, `attn3_wq/wk/wv/wo`. Scale `1/sqrt(Dh)` unless
  stated. Shaw uses `attn_shaw_ak/av`, Transformer-XL `attn_xl_u/v/wr`, T5 `attn_t5_table`,
  learned `attn_learned_table`.
- Attention layers of real models (`layer_*`, §6 + §6b): see "Layer cases" after the table.

| file | shape | dtype | contents |
| --- | --- | --- | --- |
"""

README_LAYERS = """
## Layer cases (§6 + §6b)

One self-attention layer of a real model per case, from `layer_attention` in `make_golden.py`
(written from conventions §6 and §6b; the encoders' frequencies, slopes and buckets are the §1-§5
functions that the files above test). `data/layer_cases.txt` has one line per case,
`<case> key=value key=value ...` (single spaces, no spaces inside values); case `c` has the files
`layer_<c>_<array>.npy`.

The layer: `X' = X + PE(p)` (sinusoidal, learned) or `X`; `Q = X'·Wq + bq`, `K = X'·Wk + bk`,
`V = X'·Wv + bv`; RoPE rotates every head of `Q` and `K`; query head `h` uses key/value head
`floor(h·Hkv/H)`; `S_h = scale·(q·k + Shaw/XL content terms) + ALiBi/T5 bias`, soft-capped,
masked, softmax (with the sink in the denominator); `O = [O_0 … O_{H-1}]`, `Y = O·Wo + bo`.

Keys of every line: `encoder` (none, sinusoidal, learned, rope, alibi, t5, shaw, xl), `D H Hkv
Dh N`; `causal` (0/1); `window` (0 = none; `p_i - p_j < W` with causal, `|p_i - p_j| < W`
without); `chunk` (0 = none; `floor(p_i/C) = floor(p_j/C)`); `softcap` (0 = none;
`S <- c·tanh(S/c)`); `scale` (`default` = 1/sqrt(Dh), else the float); `has_bq has_bk has_bv
has_bo has_segments has_sinks` (0/1: the file exists and is used). Then the encoder's keys:
- sinusoidal: `layout base` (vaswani frequencies, PE scale 1); learned: `table_offset`
  (`learned_table [L_max, D]`);
- rope: `base rotary_dim layout scaling`, and per scaling: linear `factor`; dynamic `factor
  original_max_positions`; yarn `factor original_max_positions beta_fast beta_slow truncate
  attention_factor` (`default` = derived: g(factor, 1) here); llama3 `factor
  original_max_positions low_freq_factor high_freq_factor`; longrope `factor
  original_max_positions` (`rope_short_factors`, `rope_long_factors [R/2]`; attention factor
  derived). Rotated dims are the first `rotary_dim` of each head.
- alibi: `max_bias`; t5: `num_buckets max_distance bidirectional` (`t5_table [num_buckets, H]`);
  shaw: `max_relative` (`shaw_ak`, `shaw_av [2K+1, Dh]`, shared by all heads); xl: `clamp_len
  base` (0 = no clamp; `R_d` is the split sinusoid of `d = p_i - p_j` with this base over `D`
  dims; `xl_u`, `xl_v [H, Dh]`, `xl_wr [D, H·Dh]`).

Arrays: inputs `x [N, D]`, `wq [D, H·Dh]`, `wk`, `wv [D, Hkv·Dh]`, `wo [H·Dh, D]`, `bq [H·Dh]`,
`bk`, `bv [Hkv·Dh]`, `bo [D]` (when `has_*`), `positions [N]` and `segments [N]` (int64; a
negative segment id is padding), `sinks [H]`, the encoder arrays above; outputs `q [N, H, Dh]`,
`k`, `v [N, Hkv, Dh]` (after projection, bias and encoder, for every row, padding included),
`o [N, H·Dh]` (before Wo), `y [N, D]`, and for RoPE `rope_inv_freq [R/2]` (the effective
frequencies at these positions). Random inputs as above (biases, sinks and tables unscaled).

Choices where conventions.md leaves room:
- A query row with no visible key has `O = 0`, also with sinks (there the sink formula gives 0
  as well: its numerators are empty). In self-attention every token sees itself under every
  position rule (causal, window >= 1, chunk), so the only such rows are padding tokens; their
  `Y` row is exactly `bo`. A non-causal chunk with a window narrower than the gaps leaves rows
  that see only themselves (`shaw_mha_chunk_window_bidir`).
- Soft-capping acts on the whole score, `scale·(q·k + content terms) + bias`, ALiBi and T5 bias
  included, before masking. Sink logits are not capped (no case combines sinks and a cap).
- Transformer-XL: `W_R [D, H·Dh]` (`r_d = R_d·W_R` split into H heads of Dh like Q; §5c's
  `[D, D]` when `H·Dh = D`); `u_h`, `v_h`, `r_{d,h}` belong to the query head, `k` to its kv
  head. Shaw: `q` of the query head, `k`, `v` of its kv head, `A_K`, `A_V` shared.
- Dynamic NTK's `L` and LongRoPE's short/long choice use the largest position of the whole call
  (padding tokens included), so for them a packed batch is not the same as separate calls.
- Angles (RoPE, the sinusoidal PE, XL's `R_d`) are the exact product of the integer position and
  the float64 `inv_freq`, reduced modulo 2π with 140 digits and rounded once (§1's "reduce
  exactly"). Below 2^20 that is the float64 product to ~1e-10 rad. At 2^40
  (`rope_mqa_hugepos_window_causal`) a float64 product `p·inv_freq` is off by up to 2^-13 rad,
  and an `inv_freq` one ulp away moves the angle by up to ~1e-4 rad: the absolute rotation there
  is ill-conditioned, so compare that case's `q`, `k`, `o`, `y` at a tolerance near 1e-3 unless
  the angles are reduced exactly from the same frequencies. The other cases at 2^40 (none,
  ALiBi, T5, Shaw, XL, masks) use only integer differences of positions, which are exact.
- Positions need not be sorted: `rope_mha_unsorted_causal` has 5 0 17 3 3 100 9 2; causal is
  `p_j <= p_i` by position (the two tokens at 3 see each other).

Asserted on every run, before any file is written (`assert_allclose` rtol = atol = 1e-12):
(1) with `Hkv = H`, `Dh = D/H`, no biases, masks beyond causal, sinks or cap, the layer equals
§6's `attention()` above for every encoder, causal and not, contiguous and gapped positions;
(2) every GQA/MQA case equals the MHA layer with `Wk`, `Wv`, `bk`, `bv` repeated per query head
(`repeat_kv`); (3) sinks of `-inf` equal no sinks; (4) a window wider than every distance, a
chunk above every position and all-equal segments equal none of them, (5) and so does a cap of
1e9 — for every case; (6) a packed batch of two sequences (own positions, two padding tokens)
equals the sequences run alone, for every encoder, causal and not, with sinks, window and cap;
(7) every case's `O` from `q`, `k`, `v` equals a scalar loop transcription of the masked
softmax (for the encoders without content terms); padding rows are exactly 0; `exact_angles`
obeys `θ(p0 + i) = θ(p0) + θ(i)` at `p0 = 2^40` to 1e-13 and its 2π agrees with Machin's formula.

| case | contents |
| --- | --- |
"""


# ================================================================ §3b RoPE variants of real models
# Transcribed from conventions.md 3b and Hugging Face's modeling_rope_utils
# (_compute_proportional_rope_parameters) and Llama4TextAttention (attention temperature).

def rope_apply_block(x, pos, inv_freq, layout, first, attn_factor=1.0):
    """x [N, H, Dh]: rotate dims [first, first + R) of every head (§3b rotated block)."""
    R = 2 * len(inv_freq)
    out = x.copy()
    out[..., first:first + R] = rope_apply(x[..., first:first + R], pos, inv_freq, layout, attn_factor)
    return out


def inv_freq_proportional(Dh, base, p, factor=1.0):
    """Gemma 4 (Hugging Face "proportional"): rope_angles = int(p * Dh // 2) frequencies
    base^(-2i/Dh) (the exponent over the whole head), the other Dh/2 - rope_angles zero, all / factor."""
    angles = int(p * Dh // 2)
    inv = np.zeros(Dh // 2)
    inv[:angles] = base ** (-2.0 * np.arange(angles, dtype=np.float64) / Dh)
    return inv / factor


def temperature_scale(pos, attn_scale, floor_scale):
    """Llama 4 attention temperature tuning: 1 + attn_scale * ln(floor((p + 1) / floor_scale) + 1)."""
    return 1.0 + attn_scale * np.log(np.floor((np.asarray(pos, dtype=np.float64) + 1.0) / floor_scale) + 1.0)


def mha_query_scaled(X, Wq, Wk, Wv, Wo, H, pos, qscale, causal):
    """§6 multi-head attention whose query rows are multiplied by qscale (keys untouched)."""
    N, D = X.shape
    Dh = D // H
    Q = (X @ Wq * qscale[:, None]).reshape(N, H, Dh)
    K, V = [(X @ W).reshape(N, H, Dh) for W in (Wk, Wv)]
    O = np.zeros((N, H, Dh))
    for h in range(H):
        S = Q[:, h] @ K[:, h].T / math.sqrt(Dh)
        if causal:
            S = np.where(pos[None, :] > pos[:, None], -np.inf, S)
        P = np.exp(S - S.max(axis=1, keepdims=True))
        O[:, h] = (P / P.sum(axis=1, keepdims=True)) @ V[:, h]
    return O.reshape(N, D) @ Wo


def gen_rope_variants():
    x = save("ropev_x", rnd(341, (6, 2, 16)), "random input [N=6, H=2, Dh=16] of the ropev_* cases")
    base = 10000.0
    p3 = positions(6, 3)
    save("ropev_trailing_R8_half", rope_apply_block(x, p3, rope_inv_freq(8, base), "half", 8),
         "RoPE R=8 on the last 8 dims of each head (trailing block), half, offset 3")
    save("ropev_trailing_R6_interleaved", rope_apply_block(x, p3, rope_inv_freq(6, base), "interleaved", 10),
         "RoPE R=6 on dims 10..15 of each head (trailing block), interleaved, offset 3")
    ff = save("ropev_freq_factors", np.random.default_rng(342).uniform(1, 4, 8).astype(np.float32).astype(np.float64),
              "frequency factors ff [R/2 = 8]: uniform [1, 4], float32-rounded")
    p2 = positions(6, 2)
    save("ropev_freqfactors_half", rope_apply(x, p2, rope_inv_freq(16, base) / ff, "half"),
         "RoPE R=16, inv_freq_i / ff_i (ropev_freq_factors), half, offset 2")
    l3 = inv_freq_llama3(16, 500000.0, 8.0, 1.0, 4.0, 8192)
    save("ropev_llama3_freqfactors", rope_apply(x, positions(6, 100), l3 / ff, "half"),
         "RoPE R=16, llama3 (base 5e5, factor 8, low 1, high 4, M 8192) then / ff_i, half, offset 100")
    save("ropev_proportional_p0.25", rope_apply(x, p3, inv_freq_proportional(16, base, 0.25), "half"),
         "proportional p=0.25 (2 of 8 frequencies base^(-2i/16), 6 zero), Dh=16, half, offset 3")
    save("ropev_proportional_p0.5_f2", rope_apply(x, positions(6, 1000),
                                                  inv_freq_proportional(16, 1e6, 0.5, 2.0), "half"),
         "proportional p=0.5, base 1e6, factor 2 (4 frequencies / 2, 4 zero), Dh=16, half, offset 1000")
    lr_s = np.random.default_rng(302).uniform(1, 5, 8).astype(np.float32).astype(np.float64)
    lr_l = np.random.default_rng(303).uniform(1, 5, 8).astype(np.float32).astype(np.float64)
    save("ropev_longrope_mscale_short", rope_apply(x, positions(6), inv_freq_longrope(16, base, lr_s), "half", 1.1),
         "longrope M=8 (rope_longrope_short/long_factors), short_mscale 1.1, long_mscale 1.3, offset 0 (L=6: short set, factor 1.1)")
    save("ropev_longrope_mscale_long", rope_apply(x, positions(6, 5), inv_freq_longrope(16, base, lr_l), "half", 1.3),
         "as ropev_longrope_mscale_short, offset 5 (L=11 > 8: long set, factor 1.3)")
    tp = np.array([0, 3, 4, 8190, 8191, 100000, 1 << 20, 1 << 40], dtype=np.int64)
    save("ropev_temperature_positions", tp, "positions of ropev_temperature_scale")
    save("ropev_temperature_scale", temperature_scale(tp, 0.1, 8192.0),
         "Llama 4 temperature 1 + 0.1 ln(floor((p+1)/8192) + 1) at ropev_temperature_positions")
    X, Wq, Wk, Wv, Wo = [np.load(DATA / f"attn_{n}.npy") for n in ("x", "wq", "wk", "wv", "wo")]
    pt = positions(X.shape[0], 2)
    save("attn_temperature_causal", mha_query_scaled(X, Wq, Wk, Wv, Wo, 2, pt, temperature_scale(pt, 0.5, 2.0), True),
         "Y, H=2, Dh=8, scale 1/sqrt(8): attn_* inputs, queries times the temperature 1 + 0.5 ln(floor((p+1)/2) + 1), offset 2, causal")


# ================================================================ §3c multi-axis RoPE

def mrope_axis_of(half, layout, sections=None, axes=2):
    """The axis of each frequency index i < R/2 (§3c)."""
    if layout == "chunked":
        assert sum(sections) == half
        return np.concatenate([np.full(s, k) for k, s in enumerate(sections)]).astype(int)
    if layout == "interleaved":
        a = np.zeros(half, dtype=int)
        for i in range(half):
            if i % 3 == 1 and i < 3 * sections[1]:
                a[i] = 1
            elif i % 3 == 2 and i < 3 * sections[2]:
                a[i] = 2
        return a
    assert layout == "axial"
    return np.repeat(np.arange(axes), half // axes)


def mrope_inv_freq(R, base, layout, axes=2):
    if layout != "axial":
        return rope_inv_freq(R, base)
    per = R // (2 * axes)                                 # each axis: base^(-2j/(R/A)), j < R/(2A)
    return np.tile(base ** (-2.0 * np.arange(per, dtype=np.float64) / (R // axes)), axes)


def mrope_apply(x, axes_pos, inv_freq, axis_of, layout="half"):
    """x [N, H, Dh]; theta_i = p[axis_of[i]] * inv_freq_i; pairs as §3 (first R dims rotate)."""
    R = 2 * len(inv_freq)
    th = np.stack([np.asarray(axes_pos[axis_of[i]], dtype=np.float64) * inv_freq[i]
                   for i in range(R // 2)], axis=1)       # [N, R/2]
    c, s = np.cos(th)[:, None, :], np.sin(th)[:, None, :]
    ia, ib = (np.arange(R // 2), np.arange(R // 2) + R // 2) if layout == "half" else \
        (np.arange(0, R, 2), np.arange(1, R, 2))
    out = x.copy()
    a, b = x[..., ia], x[..., ib]
    out[..., ia] = a * c - b * s
    out[..., ib] = b * c + a * s
    return out


def mrope_qwen2vl(x, axes_pos, inv_freq, sections):
    """Hugging Face's Qwen2-VL apply_multimodal_rotary_pos_emb, transcribed: per axis a full
    cos/sin [N, R] (rotate_half), split into chunks mrope_section * 2 and chunk k taken from axis
    k mod 3. Used only to check mrope_apply's chunked layout."""
    R = 2 * len(inv_freq)
    emb = [np.concatenate([np.outer(p, inv_freq)] * 2, axis=1) for p in np.asarray(axes_pos, dtype=np.float64)]
    bounds = np.cumsum([0] + list(sections) * 2)
    cos = np.concatenate([np.cos(emb[k % 3][:, bounds[k]:bounds[k + 1]]) for k in range(len(bounds) - 1)], axis=1)
    sin = np.concatenate([np.sin(emb[k % 3][:, bounds[k]:bounds[k + 1]]) for k in range(len(bounds) - 1)], axis=1)
    xr = x[..., :R]
    rot = np.concatenate([-xr[..., R // 2:], xr[..., :R // 2]], axis=-1)
    out = x.copy()
    out[..., :R] = xr * cos[:, None, :] + rot * sin[:, None, :]
    return out


def gen_mrope():
    x = save("mrope_x", rnd(351, (5, 2, 16)), "random input [N=5, H=2, Dh=16] of the mrope_* cases")
    # A text token, an image of 2 x 2 patches at one time step, and a text token after it
    # (Qwen2-VL's position ids: temporal, height, width).
    p3 = save("mrope_positions", np.array([[0, 1, 1, 1, 5], [0, 1, 1, 2, 5], [0, 1, 2, 1, 5]], dtype=np.int64),
              "multi-axis positions [A=3, N=5] (temporal, height, width)")
    hp = save("mrope_positions_high", p3 + (1 << 20), "mrope_positions + 2^20")
    inv = rope_inv_freq(16, 10000.0)
    sec = [2, 3, 3]
    chunked = mrope_apply(x, p3, inv, mrope_axis_of(8, "chunked", sec))
    _close(chunked, mrope_qwen2vl(x, p3, inv, sec), "M-RoPE chunked vs Qwen2-VL's split-and-select")
    save("mrope_chunked_233", chunked, "chunked mrope_section [2,3,3], R=16, half, base 1e4, mrope_positions")
    save("mrope_chunked_233_high", mrope_apply(x, hp, inv, mrope_axis_of(8, "chunked", sec)),
         "as mrope_chunked_233 at mrope_positions_high")
    save("mrope_interleaved_233", mrope_apply(x, p3, inv, mrope_axis_of(8, "interleaved", sec), "interleaved"),
         "interleaved (Qwen3-VL) sections [2,3,3], R=16, interleaved pairs, base 1e4, mrope_positions")
    p2 = save("mrope_positions_2d", p3[1:], "axial positions [A=2, N=5] (height, width)")
    save("mrope_axial_2", mrope_apply(x, p2, mrope_inv_freq(16, 100.0, "axial", 2), mrope_axis_of(8, "axial", axes=2)),
         "axial A=2 (ladders base 100^(-2j/8), j < 4), R=16, half, mrope_positions_2d")
    # Equal axes: 1D RoPE (§3c's last sentence), asserted here and tested in C++.
    p1 = np.array([3, 4, 5, 6, 7])
    for lay in ("chunked", "interleaved"):
        _close(mrope_apply(x, np.stack([p1] * 3), inv, mrope_axis_of(8, lay, sec)), rope_apply(x, p1, inv),
               f"M-RoPE {lay} with equal axes vs 1D RoPE")


def main():
    DATA.mkdir(parents=True, exist_ok=True)
    for f in DATA.glob("*.npy"):
        f.unlink()
    gen_sinusoidal()
    gen_learned()
    gen_rope()
    gen_alibi()
    gen_t5()
    gen_attention()
    gen_layers()
    gen_rope_variants()
    gen_mrope()
    gen_bert_relative()
    gen_deberta()
    cases = DATA / "layer_cases.txt"
    cases.write_text("".join(line + "\n" for _, line, _ in LAYER_CASES))
    rows = [f"| `{n}` | {list(s)} | {d} | {desc} |" for n, s, d, desc in MANIFEST]
    rows.append(f"| `{cases.name}` | - | text | one line per layer case: "
                "`<case> key=value ...` (see Layer cases) |")
    case_rows = [f"| `{c}` | {desc} |" for c, _, desc in LAYER_CASES]
    (HERE / "README.md").write_text(README_HEAD + "\n".join(rows) + "\n" + README_LAYERS
                                    + "\n".join(case_rows) + "\n")
    size = sum(f.stat().st_size for f in DATA.glob("*.npy"))
    lsize = sum(f.stat().st_size for f in DATA.glob("layer_*"))
    print(f"wrote {len(MANIFEST)} files, {size} bytes, into {DATA} "
          f"(layer_*: {len(list(DATA.glob('layer_*')))} files, {lsize} bytes)")


if __name__ == "__main__":
    main()
