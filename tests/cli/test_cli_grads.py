#!/usr/bin/python3
"""Tests of `posenc attend ... --grad-y gy.npy --grads DIR` (docs/cli.md, "Gradients").

For every encoder and the layer options (grouped heads, Dh != D/H, biases, causal, window, chunk,
segments with padding, sinks, soft-capping, explicit positions), posenc's forward Y and every
gradient file it writes are compared with two float64 references of the same layer
(conventions.md sections 1-7), both computed from one transcription of its forward written
against a small array interface:

  - NumPy: the complex-step derivative of the forward, dL/dθ_k = Im L(θ + i h e_k) / h with
    h = 1e-30 and L = sum(Y o G), one forward per parameter entry: a finite difference without
    the cancellation of a real one, so exact to rounding (each case also checks a few entries
    against real central differences, to 1e-6, which would catch a non-analytic step in the
    transcription);
  - PyTorch (python3-torch): autograd of the same forward on torch tensors. Without torch that
    part prints "skipped: python3-torch not installed" and the NumPy part still runs.

Gradients must match to 1e-10 (f64) and 1e-4 (f32), relative to max(1, |reference|max); Y to
1e-12 and 2e-5. The bad-input cases check one line on stderr, exit status 2 (1 for a write
that fails for the machine's reasons) and that no file of the set is left, in DIR or at -o.

  /usr/bin/python3 test_cli_grads.py --posenc BUILD/tools/posenc [GROUP ...]

GROUP is any of: encoders options errors (default: all). Prints the worst differences of each
reference and "N passed, M failed" last; exits non-zero when anything failed.
"""
import argparse
import math
import os
import resource
import shutil
import signal
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "cli_common"))
sys.path.insert(0, os.path.join(HERE, os.pardir, "reference"))
from cli_runner import Runner  # noqa: E402  (tests/cli_common)
import make_golden as mg  # noqa: E402  (the float64 formulas of conventions.md: angles, buckets, slopes)

try:
    import torch
    torch.set_default_dtype(torch.float64)
except ImportError:  # the NumPy reference runs alone
    torch = None

GRAD_TOL = {"f64": 1e-10, "f32": 1e-4}
Y_TOL = {"f64": 1e-12, "f32": 2e-5}
FD_TOL = 1e-6  # real central differences against the complex step (h = 1e-5)


# --- the forward, on NumPy (complex) arrays or torch tensors -------------------------------------
class NumpyOps:
    name = "numpy"

    @staticmethod
    def const(a):
        return np.asarray(a, dtype=np.float64)

    @staticmethod
    def idx(a):
        return np.asarray(a, dtype=np.int64)

    @staticmethod
    def mask(m):
        return np.asarray(m, dtype=bool)

    exp, tanh, sqrt, einsum = np.exp, np.tanh, np.sqrt, np.einsum

    @staticmethod
    def cat(xs, axis):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def stack(xs, axis):
        return np.stack(xs, axis=axis)

    @staticmethod
    def where(m, a, b):
        return np.where(m, a, b)

    @staticmethod
    def rowsum(a):
        return a.sum(axis=-1, keepdims=True)

    @staticmethod
    def frozen(a):
        """a's value as a constant: the real part (a shift of the softmax, which cancels)."""
        return np.real(a)

    @staticmethod
    def rowmax(a):
        return a.max(axis=-1, keepdims=True)


class TorchOps:
    name = "torch"

    @staticmethod
    def const(a):
        return torch.as_tensor(np.asarray(a, dtype=np.float64))

    @staticmethod
    def idx(a):
        return torch.as_tensor(np.asarray(a, dtype=np.int64))

    @staticmethod
    def mask(m):
        return torch.as_tensor(np.asarray(m, dtype=bool))

    @staticmethod
    def exp(a):
        return torch.exp(a)

    @staticmethod
    def tanh(a):
        return torch.tanh(a)

    @staticmethod
    def sqrt(a):
        return torch.sqrt(a)

    @staticmethod
    def einsum(spec, *xs):
        return torch.einsum(spec, *xs)

    @staticmethod
    def cat(xs, axis):
        return torch.cat(xs, dim=axis)

    @staticmethod
    def stack(xs, axis):
        return torch.stack(xs, dim=axis)

    @staticmethod
    def where(m, a, b):
        a = a if torch.is_tensor(a) else torch.full(m.shape, float(a))
        b = b if torch.is_tensor(b) else torch.full(a.shape, float(b))
        return torch.where(m, a, b)

    @staticmethod
    def rowsum(a):
        return a.sum(dim=-1, keepdim=True)

    @staticmethod
    def frozen(a):
        return a.detach()

    @staticmethod
    def rowmax(a):
        return a.max(dim=-1, keepdim=True).values


def prepare(c):
    """The constants of case c that depend only on positions (angles, buckets, masks), once."""
    pos, N, D, H = c["pos"], c["N"], c["D"], c["H"]
    enc = c["encoder"]
    k = {}
    dq = pos[:, None] - pos[None, :]                           # p_i - p_j
    k["vis"] = mg.layer_visibility(pos, c["causal"], c["window"], c["chunk"], c["seg"])
    if enc == "sinusoidal":
        k["pe"] = c["pe_scale"] * mg.layer_sinusoid(pos, D, c["layout"], c["base"])
    elif enc == "learned":
        k["rows"] = pos + c["table_offset"]
    elif enc == "rope":
        inv, af = mg.layer_rope_params(c["rope"], pos)
        th = mg.exact_angles(pos, inv)[:, None, :]             # [N, 1, R/2]
        k["rope"] = (np.cos(th), np.sin(th), af, 2 * len(inv))
    elif enc == "temperature":
        k["qscale"] = mg.temperature_scale(pos, c["attn_scale"], c["floor_scale"])[:, None]
    elif enc == "alibi":
        m = mg.alibi_slopes(H, c["max_bias"])
        k["bias"] = -m[:, None, None] * np.abs(dq).astype(np.float64)[None]
    elif enc == "t5":
        k["bucket"] = mg.t5_bucket(-dq, c["num_buckets"], c["max_distance"], not c["causal"])
    elif enc == "shaw":
        K = c["max_relative"]
        k["r"] = np.clip(-dq, -K, K) + K                         # clip(p_j - p_i, -K, K) + K
    elif enc == "xl":
        d = dq if c["clamp_len"] < 0 else np.clip(dq, -c["clamp_len"], c["clamp_len"])
        ud, inv_d = np.unique(d, return_inverse=True)
        k["xl"] = (mg.layer_sinusoid(ud, D, "split", c["base"]), inv_d.reshape(N, N))
    elif enc == "bert-relative":
        L = (c["table_rows"] + 1) // 2
        k["idx"] = dq + L - 1
    elif enc == "deberta":
        k["c"] = mg.deberta_index(dq, c["buckets"], c["max_rel"])
    c["k"] = k


def rope_rotate(B, t, heads, c):
    """RoPE of §3 on t [N, heads*Dh]: the first R dims of each head, layout half or interleaved."""
    cos, sin, af, R = c["k"]["rope"]
    N, Dh = c["N"], c["Dh"]
    x = t.reshape(N, heads, Dh)
    cos, sin = B.const(cos), B.const(sin)
    if c["layout"] == "half":
        a, b = x[:, :, : R // 2], x[:, :, R // 2: R]
        rot = B.cat([a * cos - b * sin, b * cos + a * sin], 2)
    else:
        a, b = x[:, :, 0:R:2], x[:, :, 1:R:2]
        rot = B.stack([a * cos - b * sin, b * cos + a * sin], 3).reshape(N, heads, R)
    return B.cat([af * rot, x[:, :, R:]], 2).reshape(N, heads * Dh)


def layer_norm(B, x, w, b, eps):
    d = x.shape[-1]
    mu = B.rowsum(x) / d
    var = B.rowsum((x - mu) * (x - mu)) / d
    return (x - mu) / B.sqrt(var + eps) * w + b


def forward(B, P, c):
    """Y [N, D] of the layer of case c (conventions.md 6, 6b) from the parameters P (name ->
    array of backend B), the encoder as in sections 1-5e."""
    H, Hkv, Dh = c["H"], c["Hkv"], c["Dh"]
    enc, k = c["encoder"], c["k"]
    x = P["x"]
    if enc == "sinusoidal":
        x = x + B.const(k["pe"])
    elif enc == "learned":
        x = x + P["table"][B.idx(k["rows"])]

    def proj(w, b):
        out = x @ P[w]
        return out + P[b] if b in P else out
    q, kk, v = proj("wq", "bq"), proj("wk", "bk"), proj("wv", "bv")
    if enc == "rope":
        q, kk = rope_rotate(B, q, H, c), rope_rotate(B, kk, Hkv, c)
    elif enc == "temperature":
        q = q * B.const(k["qscale"])
    if enc == "deberta":
        if "rel-embeddings" in P:                               # K_r, Q_r = LN(rel) Wk + bk, Wq + bq
            r = P["rel-embeddings"]
            if "rel-ln-weight" in P:
                r = layer_norm(B, r, P["rel-ln-weight"], P["rel-ln-bias"], c["ln_eps"])
            qr = r @ P["wq"] + (P["bq"] if "bq" in P else 0.0)
            kp = r @ P["wk"] + (P["bk"] if "bk" in P else 0.0)
            kr = B.cat([kp[:, ((h * Hkv) // H) * Dh:((h * Hkv) // H + 1) * Dh] for h in range(H)], 1)
        else:
            kr, qr = P.get("rel-key-table"), P.get("rel-query-table")
        cidx = B.idx(k["c"])
    vis = B.mask(k["vis"])
    scale = c["scale_value"]
    outs = []
    for h in range(H):
        g = (h * Hkv) // H
        hs, gs = slice(h * Dh, (h + 1) * Dh), slice(g * Dh, (g + 1) * Dh)
        qh, kg, vg = q[:, hs], kk[:, gs], v[:, gs]
        if enc == "xl":                                         # §5c
            sinus, inv_d = k["xl"]
            rd = (B.const(sinus) @ P["wr"])[B.idx(inv_d)][:, :, hs]         # [N, N, Dh]
            S = scale * ((qh + P["u"][h]) @ kg.T + B.einsum("id,ijd->ij", qh + P["v"][h], rd))
        else:
            S = qh @ kg.T
            if enc == "shaw":                                   # §5b
                S = S + B.einsum("id,ijd->ij", qh, P["rel-k"][B.idx(k["r"])])
            elif enc == "bert-relative":                        # §5d
                pe = P["distance-table"][B.idx(k["idx"])]
                S = S + B.einsum("id,ijd->ij", qh, pe)
                if c["bert_type"] == "relative_key_query":
                    S = S + B.einsum("jd,ijd->ij", kg, pe)
            elif enc == "deberta":                              # §5e
                if c["terms"] in ("both", "c2p"):
                    S = S + B.einsum("id,ijd->ij", qh, kr[:, hs][cidx])
                if c["terms"] in ("both", "p2c"):
                    S = S + B.einsum("jd,ijd->ij", kg, qr[:, hs][cidx])
            S = scale * S
            if enc == "alibi":
                S = S + B.const(k["bias"][h])
            elif enc == "t5":
                S = S + P["table"][B.idx(k["bucket"]), h]
        if c["softcap"]:
            S = c["softcap"] * B.tanh(S / c["softcap"])
        # masked softmax with the sink in the denominator; a row that sees nothing is 0
        S0 = B.where(vis, S, 0.0)
        top = B.where(vis, B.frozen(S0), -np.inf)
        if "sinks" in P:
            top = B.cat([top, B.frozen(P["sinks"][h:h + 1]).reshape(1, 1) + 0 * B.frozen(S0[:, :1])], 1)
        m = B.rowmax(top)
        m = B.where(m == -np.inf, 0.0, m)
        E = B.where(vis, B.exp(S0 - m), 0.0)
        den = B.rowsum(E)
        if "sinks" in P:
            den = den + B.exp(P["sinks"][h] - m)
        den = B.where(den == 0, 1.0, den)
        Pm = E / den
        o = Pm @ vg
        if enc == "shaw":
            o = o + B.einsum("ij,ijd->id", Pm, P["rel-v"][B.idx(k["r"])])
        outs.append(o)
    y = B.cat(outs, 1) @ P["wo"]
    return y + P["bo"] if "bo" in P else y


def numpy_grads(c, params, gy, rng):
    """Complex-step gradients of L = sum(Y o G); a few entries checked by central differences."""
    P = {n: a.astype(np.complex128) for n, a in params.items()}
    h = 1e-30
    grads, fd_err = {}, 0.0

    def loss(PP):
        return (forward(NumpyOps, PP, c) * gy).sum()
    for name, a in params.items():
        g = np.zeros(a.shape)
        flat, gf = P[name].reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            v = flat[i]
            flat[i] = v + 1j * h
            gf[i] = loss(P).imag / h
            flat[i] = v
        grads[name] = g
        for i in rng.choice(flat.size, size=min(3, flat.size), replace=False) if flat.size else []:
            v, e = flat[i], 1e-5
            flat[i] = v + e
            up = loss(P).real
            flat[i] = v - e
            down = loss(P).real
            flat[i] = v
            fd_err = max(fd_err, abs((up - down) / (2 * e) - gf[i]) / max(1.0, abs(gf[i])))
    return grads, fd_err


def torch_grads(c, params, gy):
    P = {n: torch.tensor(a, requires_grad=True) for n, a in params.items()}
    y = forward(TorchOps, P, c)
    (y * torch.as_tensor(gy)).sum().backward()
    return y.detach().numpy(), {n: t.grad.numpy() if t.grad is not None else np.zeros(t.shape) for n, t in P.items()}


# --- the cases ------------------------------------------------------------------------------------
def make_case(name, encoder, seed, N=6, D=8, H=2, Hkv=None, Dh=None, biases="", causal=False,
              window=0, chunk=0, seg=None, sinks=False, softcap=0.0, scale=None, positions=None,
              offset=0, **e):
    """A case: its configuration c (with the flags it runs with) and its parameters (float32
    values, so that an f32 run reads the same numbers)."""
    rng = np.random.default_rng(seed)

    def r(shape, s=1.0):
        return (rng.standard_normal(shape) * s).astype(np.float32).astype(np.float64)
    Hkv = Hkv or H
    Dh = Dh or D // H
    pos = np.asarray(positions if positions is not None else np.arange(N) + offset, dtype=np.int64)
    c = dict(name=name, encoder=encoder, N=N, D=D, H=H, Hkv=Hkv, Dh=Dh, pos=pos, causal=causal,
             window=window, chunk=chunk, softcap=softcap,
             seg=None if seg is None else np.asarray(seg, dtype=np.int64))
    p = dict(x=r((N, D)), wq=r((D, H * Dh), D ** -0.5), wk=r((D, Hkv * Dh), D ** -0.5),
             wv=r((D, Hkv * Dh), D ** -0.5), wo=r((H * Dh, D), (H * Dh) ** -0.5))
    for b, width in (("bq", H * Dh), ("bk", Hkv * Dh), ("bv", Hkv * Dh), ("bo", D)):
        if b[1] in biases:
            p[b] = r((width,), 0.5)
    if sinks:
        p["sinks"] = r((H,))
    flags = ["--heads", H, "--kv-heads", Hkv, "--head-dim", Dh, "--encoder", encoder]
    if causal:
        flags.append("--causal")
    if positions is not None:
        flags += ["--positions", ("positions", pos)]
    elif offset:
        flags += ["--offset", offset]
    if window:
        flags += ["--window", window]
    if chunk:
        flags += ["--chunk", chunk]
    if seg is not None:
        flags += ["--segments", ("segments", c["seg"])]
    if softcap:
        flags += ["--softcap", softcap]
    if scale is not None:
        flags += ["--scale", scale]
    c["scale_value"] = 1.0 / math.sqrt(Dh) if scale is None else float(scale)
    if encoder == "sinusoidal":
        c.update(pe_scale=e.get("pe_scale", 1.0), layout=e.get("layout", "interleaved"), base=e.get("base", 10000.0))
        flags += ["--pe-scale", c["pe_scale"], "--layout", c["layout"], "--base", c["base"]]
    elif encoder == "learned":
        c["table_offset"] = e.get("table_offset", 0)
        p["table"] = r((int(pos.max()) + c["table_offset"] + 3, D))
        flags += ["--table-offset", c["table_offset"]]
    elif encoder == "rope":
        spec = dict(rotary_dim=e.get("rotary_dim", Dh), base=e.get("base", 10000.0), scaling=e.get("scaling", "none"),
                    factor=e.get("factor"), original_max_positions=e.get("omp"), beta_fast=32.0, beta_slow=1.0,
                    truncate=True, attention_factor="default", low_freq_factor=1.0, high_freq_factor=4.0)
        c.update(rope=spec, layout=e.get("layout", "half"))
        flags += ["--rotary-dim", spec["rotary_dim"], "--base", spec["base"], "--layout", c["layout"],
                  "--scaling", spec["scaling"]]
        if spec["factor"] is not None:
            flags += ["--factor", spec["factor"]]
        if spec["original_max_positions"] is not None:
            flags += ["--original-max-positions", spec["original_max_positions"]]
    elif encoder == "temperature":
        c.update(attn_scale=e["attn_scale"], floor_scale=e["floor_scale"])
        flags += ["--attn-scale", c["attn_scale"], "--floor-scale", c["floor_scale"]]
    elif encoder == "alibi":
        c["max_bias"] = e.get("max_bias", 8.0)
        flags += ["--max-bias", c["max_bias"]]
    elif encoder == "t5":
        c.update(num_buckets=e.get("num_buckets", 8), max_distance=e.get("max_distance", 12))
        p["table"] = r((c["num_buckets"], H))
        flags += ["--max-distance", c["max_distance"]]
    elif encoder == "shaw":
        c["max_relative"] = e.get("max_relative", 2)
        p["rel-k"], p["rel-v"] = r((2 * c["max_relative"] + 1, Dh)), r((2 * c["max_relative"] + 1, Dh))
    elif encoder == "xl":
        c.update(clamp_len=e.get("clamp_len", -1), base=e.get("base", 10000.0))
        p["u"], p["v"], p["wr"] = r((H, Dh)), r((H, Dh)), r((D, H * Dh), D ** -0.5)
        if c["clamp_len"] >= 0:
            flags += ["--clamp-len", c["clamp_len"]]
    elif encoder == "bert-relative":
        L = e.get("L", int(pos.max() - pos.min()) + 2)
        c.update(table_rows=2 * L - 1, bert_type=e.get("bert_type", "relative_key"))
        p["distance-table"] = r((2 * L - 1, Dh))
        flags += ["--position-embedding-type", c["bert_type"]]
    elif encoder == "deberta":
        c.update(buckets=e.get("buckets", 8), max_rel=e.get("max_rel", 16), terms=e.get("terms", "both"),
                 ln_eps=1e-7)
        span = c["buckets"] if c["buckets"] > 0 else c["max_rel"]
        flags += ["--position-buckets", c["buckets"], "--max-relative-positions", c["max_rel"],
                  "--pos-att-type", c["terms"]]
        if scale is None:
            c["scale_value"] = 1.0 / math.sqrt((3 if c["terms"] == "both" else 2) * Dh)
        if e.get("embeddings"):
            p["rel-embeddings"] = r((2 * span, D))
            if e.get("ln"):
                p["rel-ln-weight"], p["rel-ln-bias"] = 1.0 + r((D,), 0.2), r((D,), 0.2)
        else:
            if c["terms"] in ("both", "c2p"):
                p["rel-key-table"] = r((2 * span, H * Dh), 0.5)
            if c["terms"] in ("both", "p2c"):
                p["rel-query-table"] = r((2 * span, H * Dh), 0.5)
    c["flags"] = flags
    prepare(c)
    gy = r((N, D))
    return c, p, gy


ENCODER_CASES = [
    ("none", "none", {}),
    ("sinusoidal", "sinusoidal", dict(pe_scale=0.7, layout="split", offset=3)),
    ("learned", "learned", dict(table_offset=2, offset=1)),
    ("rope_yarn_partial", "rope", dict(D=12, Dh=6, rotary_dim=4, scaling="yarn", factor=4.0, omp=8,
                                       layout="interleaved", offset=5, causal=True)),
    ("rope_llama3_half", "rope", dict(scaling="llama3", factor=8.0, omp=16, base=500000.0)),
    ("alibi", "alibi", dict(H=3, Dh=4, causal=True)),
    ("t5", "t5", dict(scale=1.0)),
    ("t5_causal", "t5", dict(causal=True, N=9)),
    ("shaw", "shaw", dict(N=8, max_relative=2)),
    ("xl", "xl", dict(causal=True, clamp_len=3)),
    ("xl_bidirectional", "xl", {}),
    ("bert_relative_key", "bert-relative", dict(bert_type="relative_key")),
    ("bert_relative_key_query", "bert-relative", dict(bert_type="relative_key_query", offset=4)),
    ("deberta_tables", "deberta", dict(N=10, buckets=8, max_rel=16)),
    ("deberta_c2p_causal", "deberta", dict(terms="c2p", causal=True, offset=2)),
    ("deberta_p2c", "deberta", dict(terms="p2c", positions=[4, 0, 9, 2, 2, 7])),
    ("deberta_embeddings_ln", "deberta", dict(embeddings=True, ln=True, biases="qk", N=9)),
    ("deberta_embeddings", "deberta", dict(embeddings=True, terms="c2p", biases="k")),
    ("temperature", "temperature", dict(attn_scale=0.5, floor_scale=2.0, offset=1)),
]

OPTION_CASES = [
    ("gqa_biases_causal", "none", dict(H=4, Hkv=2, Dh=3, biases="qkvo", causal=True)),
    ("mqa_head_dim", "rope", dict(H=4, Hkv=1, Dh=6, N=7)),
    ("window_causal", "rope", dict(causal=True, window=3, N=8)),
    ("window_bidirectional", "alibi", dict(window=2, N=7)),
    ("chunk", "none", dict(chunk=3, N=8, causal=True)),
    ("segments_padding", "rope", dict(seg=[0, 0, 1, 1, -1, 1, 0], N=7)),
    ("sinks", "none", dict(sinks=True, causal=True)),
    ("softcap", "t5", dict(softcap=0.8)),
    ("positions_unsorted", "rope", dict(positions=[5, 1, 9, 3, 3, 0])),
    ("scale", "none", dict(scale=0.9)),
    ("all_options_rope", "rope", dict(H=4, Hkv=2, Dh=3, D=10, biases="qkvo", causal=True, window=4, sinks=True,
                                      softcap=1.5, seg=[0, 0, 0, 1, 1, 1, 1, 0], N=8, positions=[0, 1, 2, 0, 1, 2, 3, 5],
                                      rotary_dim=2)),
    ("shaw_gqa_sinks_segments", "shaw", dict(H=4, Hkv=2, Dh=2, sinks=True, seg=[1, 1, 2, 2, 2, -1], biases="v")),
    ("xl_head_dim_softcap", "xl", dict(H=2, Dh=5, softcap=2.0, causal=True, window=3, N=7)),
    ("learned_gqa_sinks", "learned", dict(H=4, Hkv=2, sinks=True, biases="qo")),
    ("bert_gqa_biases", "bert-relative", dict(H=4, Hkv=2, Dh=3, biases="qkvo", bert_type="relative_key_query",
                                               causal=True, sinks=True)),
    ("deberta_gqa_embeddings_ln", "deberta", dict(H=4, Hkv=2, Dh=3, embeddings=True, ln=True, biases="qkvo",
                                                  softcap=2.0, N=8)),
    ("deberta_gqa_tables_window", "deberta", dict(H=4, Hkv=2, Dh=2, window=3, buckets=0, max_rel=4, N=7)),
    ("temperature_gqa_chunk", "temperature", dict(H=4, Hkv=2, attn_scale=0.3, floor_scale=3.0, chunk=4, N=8,
                                                  causal=True)),
]


class Suite(Runner):
    def __init__(self, posenc, work):
        super().__init__(posenc, work, timeout=60)
        self.worst = {}  # (reference, dtype) -> worst relative difference
        self.torch_skipped = False

    def save(self, name, arr):
        path = self.w(name)
        np.save(path, arr)
        return path

    def files(self, d):
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def leftovers(self):
        return [os.path.join(d, f) for d, _, fs in os.walk(self.work) for f in fs if ".tmp." in f]

    def note(self, ref, dt, err):
        self.worst[(ref, dt)] = max(self.worst.get((ref, dt), 0.0), err)

    def compare(self, tag, got, ref, dt, tol, which):
        want = np.float32 if dt == "f32" else np.float64
        if not self.ok(tag, got.dtype == want, f"dtype {got.dtype}, expected {np.dtype(want)}"):
            return
        if not self.ok(tag, got.shape == ref.shape, f"shape {got.shape}, expected {ref.shape}"):
            return
        mag = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
        err = float(np.max(np.abs(got.astype(np.float64) - ref))) / mag if ref.size else 0.0
        self.note(which, dt, err)
        self.ok(tag, err <= tol, f"max |error| / max(1, |ref|) = {err:.3g} > {tol:.3g}")

    # --- bad input ------------------------------------------------------------------------------
    def error_run(self, name, args, frags, code=2, preexec=None):
        rc, so, se = self.run(args, preexec=preexec)
        lines = se.splitlines()
        self.ok(name, rc == code, f"exit status {rc}, expected {code}: {se.strip()}")
        self.ok(name, so == "", f"stdout not empty: {so!r}")
        if not self.ok(name, len(lines) == 1 and se.endswith("\n") and lines[0].startswith("posenc: error: "),
                       f"stderr is not one 'posenc: error:' line: {se!r}"):
            return ""
        missing = [f for f in frags if f not in lines[0]]
        self.ok(name, not missing, f"message {lines[0]!r} lacks {missing}")
        return lines[0]


def case_args(s, c, p, gy, tag):
    """The command line of case c, its arrays written as files named after the flags."""
    def path(n):
        return s.save(f"{tag}_{n}.npy", p[n])
    args = ["attend"] + [a for flag in (("--x", "x"), ("--wq", "wq"), ("--wk", "wk"), ("--wv", "wv"), ("--wo", "wo"))
                         for a in (flag[0], path(flag[1]))]
    for n in p:
        if n not in ("x", "wq", "wk", "wv", "wo"):
            args += ["--" + n, path(n)]
    for f in c["flags"]:
        args.append(s.save(f"{tag}_{f[0]}.npy", f[1]) if isinstance(f, tuple) else f)
    return args + ["--grad-y", s.save(f"{tag}_gy.npy", gy)]


def run_case(s, name, encoder, kw, seed):
    c, p, gy = make_case(name, encoder, seed, **kw)
    rng = np.random.default_rng(seed + 1000)
    y_ref = forward(NumpyOps, {n: a for n, a in p.items()}, c)
    ng, fd_err = numpy_grads(c, p, gy, rng)
    s.ok(f"{name} [numpy: complex step vs central differences]", fd_err <= FD_TOL,
         f"complex step and central differences differ by {fd_err:.3g}")
    refs = [("numpy", y_ref, ng)]
    if torch is not None:
        ty, tg = torch_grads(c, p, gy)
        refs.append(("torch", ty, tg))
        for n in p:  # the two references agree with each other
            err = float(np.max(np.abs(tg[n] - ng[n]))) / max(1.0, float(np.max(np.abs(ng[n])))) if p[n].size else 0.0
            s.ok(f"{name} [torch vs numpy]", err <= 1e-11, f"{n}: the references differ by {err:.3g}")
    else:
        s.torch_skipped = True
    args = case_args(s, c, p, gy, name)
    for dt in ("f64", "f32"):
        tag = f"{name} [{dt}]"
        gdir = s.w(f"{name}_grads_{dt}")
        os.makedirs(gdir)
        out = s.w(f"{name}_y_{dt}.npy")
        rc, _, err = s.run(args + ["--dtype", dt, "--grads", gdir, "-o", out])
        if not s.ok(tag, rc == 0 and err == "", f"exit {rc}: {err.strip()}"):
            continue
        want = sorted(f"{n}.npy" for n in p)
        s.ok(tag, s.files(gdir) == want, f"files {s.files(gdir)}, expected {want}")
        umask = os.umask(0)
        os.umask(umask)
        for f in s.files(gdir):
            mode = os.stat(os.path.join(gdir, f)).st_mode & 0o777
            s.ok(tag, mode == 0o666 & ~umask, f"{f}: mode {oct(mode)}")
        y = np.load(out)
        for ref, ry, rg in refs:
            s.compare(f"{tag} Y vs {ref}", y, ry, dt, Y_TOL[dt], f"{ref} Y")
            for n in p:
                f = os.path.join(gdir, f"{n}.npy")
                if os.path.exists(f):
                    s.compare(f"{tag} d{n} vs {ref}", np.load(f), rg[n], dt, GRAD_TOL[dt], ref)


def group_encoders(s):
    for i, (name, enc, kw) in enumerate(ENCODER_CASES):
        run_case(s, name, enc, dict(kw), 100 + 10 * i)


def group_options(s):
    for i, (name, enc, kw) in enumerate(OPTION_CASES):
        run_case(s, name, enc, dict(kw), 500 + 10 * i)
    # N = 0: empty dX, zero weight gradients
    c, p, gy = make_case("empty", "rope", 7, N=6)
    args = case_args(s, c, p, gy, "empty")
    x0, gy0 = s.save("empty_x0.npy", np.zeros((0, 8))), s.save("empty_gy0.npy", np.zeros((0, 8)))
    args[args.index("--x") + 1], args[args.index("--grad-y") + 1] = x0, gy0
    gdir = s.w("empty_grads")
    os.makedirs(gdir)
    rc, _, err = s.run(args + ["--grads", gdir, "-o", s.w("empty_y.npy")])
    if s.ok("empty", rc == 0, f"exit {rc}: {err.strip()}"):
        s.ok("empty", np.load(os.path.join(gdir, "x.npy")).shape == (0, 8), "dX is not [0, 8]")
        for n in ("wq", "wk", "wv", "wo"):
            g = np.load(os.path.join(gdir, f"{n}.npy"))
            s.ok("empty", g.shape == p[n].shape and not g.any(), f"d{n}: {g.shape}, nonzero {g.any()}")
    # --config: the layer's encoder and options from a config.json, the same gradients as the flags
    c, p, gy = make_case("config", "rope", 9, H=2, Hkv=1, causal=True, base=500000.0)
    args = case_args(s, c, p, gy, "config")
    cfg = s.w("config.json")
    with open(cfg, "w") as f:
        f.write('{"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2, "num_key_value_heads": 1, '
                '"num_hidden_layers": 1, "max_position_embeddings": 64, "rope_theta": 500000.0}')
    layer = args[:args.index("--heads")] + ["--config", cfg, "--grad-y", args[args.index("--grad-y") + 1]]
    dirs = {}
    for tag, a in (("flags", args), ("config", layer)):
        dirs[tag] = s.w(f"config_grads_{tag}")
        os.makedirs(dirs[tag])
        rc, _, err = s.run(a + ["--grads", dirs[tag], "-o", s.w(f"config_y_{tag}.npy")])
        s.ok(f"config [{tag}]", rc == 0 or "--config is not available" in err, f"exit {rc}: {err.strip()}")
    if s.files(dirs["config"]):
        s.ok("config", s.files(dirs["config"]) == s.files(dirs["flags"]), f"files {s.files(dirs['config'])}")
        for f in s.files(dirs["flags"]):
            a, b = (np.load(os.path.join(dirs[t], f)) for t in ("flags", "config"))
            s.ok("config", np.allclose(a, b, rtol=0, atol=1e-13), f"{f}: --config and the flags differ")
    else:
        print("SKIP config: posenc was built without nlohmann/json (--config is not available)")
    # an existing gradient file is replaced, keeping its mode
    c, p, gy = make_case("replace", "none", 8)
    args = case_args(s, c, p, gy, "replace")
    gdir = s.w("replace_grads")
    os.makedirs(gdir)
    with open(os.path.join(gdir, "wq.npy"), "wb") as f:
        f.write(b"old")
    os.chmod(os.path.join(gdir, "wq.npy"), 0o640)
    rc, _, err = s.run(args + ["--grads", gdir + "/", "-o", s.w("replace_y.npy")])
    if s.ok("replace existing", rc == 0, f"exit {rc}: {err.strip()}"):
        st = os.stat(os.path.join(gdir, "wq.npy"))
        s.ok("replace existing", st.st_mode & 0o777 == 0o640, f"mode {oct(st.st_mode & 0o777)}")
        s.ok("replace existing", np.load(os.path.join(gdir, "wq.npy")).shape == (8, 8), "wq.npy not replaced")


def group_errors(s):
    c, p, gy = make_case("err", "rope", 9, causal=True)
    base = case_args(s, c, p, gy, "err")
    gy_i = base.index("--grad-y")
    no_gy = base[:gy_i] + base[gy_i + 2:]
    gdir = s.w("err_grads")
    os.makedirs(gdir)
    out = s.w("err_y.npy")

    def fails(name, args, frags, code=2, preexec=None, d=gdir):
        before = s.files(d)
        if os.path.lexists(out):
            os.remove(out)
        s.error_run(name, args + ["-o", out], frags, code, preexec)
        s.ok(name, s.files(d) == before, f"files in the directory: {s.files(d)}, before {before}")
        s.ok(name, not os.path.lexists(out), "-o was written")
        s.ok(name, not s.leftovers(), f"temporary files left: {s.leftovers()}")

    fails("grad-y without grads", base, ["--grad-y requires --grads"])
    fails("grads without grad-y", no_gy + ["--grads", gdir], ["--grads requires --grad-y"])
    fails("grad-y shape", no_gy + ["--grad-y", s.save("gy_wide.npy", np.zeros((6, 9))), "--grads", gdir],
          ["--grad-y", "gy_wide.npy", "expected shape [6, 8]", "[6, 9]"])
    fails("grad-y rows", no_gy + ["--grad-y", s.save("gy_rows.npy", np.zeros((5, 8))), "--grads", gdir],
          ["--grad-y", "expected shape [6, 8]", "N = 6 from --x"])
    fails("grad-y nan", no_gy + ["--grad-y", s.save("gy_nan.npy", np.where(np.eye(6, 8) > 0, np.nan, 0.0)),
                                 "--grads", gdir], ["--grad-y", "element [0, 0] is nan"])
    fails("grads missing", base + ["--grads", s.w("no_such_dir")], ["--grads", "no_such_dir", "No such file or directory"])
    fails("grads is a file", base + ["--grads", base[base.index("--wq") + 1]], ["--grads", "is not a directory"])
    fails("grads empty path", base + ["--grads", ""], ["--grads"])
    fails("grads with prefill", base + ["--grads", gdir, "--prefill", 2], ["--grads: not with --prefill"])
    fails("grads with weights", ["attend", "--x", base[base.index("--x") + 1], "--config", s.save("c.npy", np.zeros(1)),
                                 "--weights", s.w("m.safetensors"), "--grad-y", base[gy_i + 1], "--grads", gdir],
          ["--grads: not supported with --weights"])
    ro = s.w("read_only_grads")
    os.makedirs(ro)
    os.chmod(ro, 0o555)
    if os.geteuid() == 0:  # root writes anywhere: run this one as nobody
        os.chmod(s.work, 0o755)

        def nobody():
            os.setgid(65534)
            os.setuid(65534)
        fails("grads not writable", base + ["--grads", ro], ["--grads", "read_only_grads", "Permission denied"],
              preexec=nobody, d=ro)
    else:
        fails("grads not writable", base + ["--grads", ro], ["--grads", "read_only_grads", "Permission denied"], d=ro)
    # a gradient's file that is a directory: refused before anything is computed or written
    os.makedirs(os.path.join(gdir, "wk.npy"))
    fails("gradient file is a directory", base + ["--grads", gdir], ["--grads", "wk.npy", "is a directory"])
    os.rmdir(os.path.join(gdir, "wk.npy"))
    # -o inside DIR under a gradient's name; an input that a gradient would replace
    d2 = s.w("clash_grads")
    os.makedirs(d2)
    rc = s.error_run("-o is a gradient file", base + ["--grads", d2, "-o", os.path.join(d2, "x.npy")],
                     ["x.npy", "is the same file as"])
    s.ok("-o is a gradient file", s.files(d2) == [], f"files {s.files(d2)}")
    shutil.copy(base[base.index("--wv") + 1], os.path.join(d2, "wv.npy"))
    moved = list(base)
    moved[moved.index("--wv") + 1] = os.path.join(d2, "wv.npy")
    fails("input in DIR", moved + ["--grads", d2], ["--grads", "wv.npy", "is the input --wv"], d=d2)
    # a gradient that overflows f32: nothing written, Y included
    big = list(base)
    big[gy_i + 1] = s.save("gy_big.npy", np.full((6, 8), 3e38))
    fails("gradient overflows f32", big + ["--grads", gdir, "--dtype", "f32"],
          ["--grads", "the gradient", "f32", "nothing was written"])

    # a write that fails midway (a file size limit below dWq's 128 KiB): exit 1, no file of the
    # set left (Y, dX were complete but not yet renamed), no temporary file
    c, p, gy = make_case("wide", "none", 11, N=4, D=128, H=2)
    wide = case_args(s, c, p, gy, "wide")

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
    fails("write fails midway", wide + ["--grads", gdir, "--dtype", "f64"],
          ["--grads", "wq.npy", "write failed", "File too large"], code=1, preexec=small_files)
    rc, _, err = s.run(wide + ["--grads", gdir, "--dtype", "f64", "-o", out])
    s.ok("write fails midway (then without the limit)", rc == 0 and len(s.files(gdir)) == 5,
         f"exit {rc}: {err.strip()}; files {s.files(gdir)}")


GROUPS = {"encoders": group_encoders, "options": group_options, "errors": group_errors}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posenc", required=True, help="the posenc program")
    ap.add_argument("groups", nargs="*", help="any of " + " ".join(GROUPS))
    a = ap.parse_args()
    unknown = [g for g in a.groups if g not in GROUPS]
    if unknown:
        ap.error(f"unknown group(s) {unknown}; expected any of {list(GROUPS)}")
    work = tempfile.mkdtemp(prefix="posenc_cli_grads_")
    s = Suite(os.path.abspath(a.posenc), work)
    try:
        for g in a.groups or list(GROUPS):
            GROUPS[g](s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if s.torch_skipped:
        print("torch reference: skipped: python3-torch not installed (the NumPy reference ran)")
    for (ref, dt), err in sorted(s.worst.items()):
        print(f"worst |posenc - {ref}| / max(1, |{ref}|) [{dt}]: {err:.3g}")
    print(f"{s.passed} passed, {s.failed} failed")
    return 1 if s.failed or s.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
