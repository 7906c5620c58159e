#!/usr/bin/python3
"""Independent float64 reference for posenc (spec: shared/conventions.md).

Run:  /usr/bin/python3 tests/reference/make_golden.py   (from anywhere)
Writes .npy files into tests/reference/data/ (stale *.npy deleted first) and
regenerates tests/reference/README.md, which lists every file and how it was made.

Random inputs: float64 standard normal (projection weights scaled by 1/sqrt(D_in)),
rounded to float32 and stored as float64. Outputs: float64, computed in float64.
Integer arrays: int64. Multi-head tensors: [N, H, Dh] row-major.
"""
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


README_HEAD = """# posenc float64 reference data

Generated by `make_golden.py` (`/usr/bin/python3 tests/reference/make_golden.py`; needs NumPy),
an independent NumPy float64 implementation of `shared/conventions.md`. Do not edit by hand:
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

| file | shape | dtype | contents |
| --- | --- | --- | --- |
"""


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
    rows = [f"| `{n}` | {list(s)} | {d} | {desc} |" for n, s, d, desc in MANIFEST]
    (HERE / "README.md").write_text(README_HEAD + "\n".join(rows) + "\n")
    size = sum(f.stat().st_size for f in DATA.glob("*.npy"))
    print(f"wrote {len(MANIFEST)} files, {size} bytes, into {DATA}")


if __name__ == "__main__":
    main()
