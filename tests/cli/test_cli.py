#!/usr/bin/python3
"""Tests of the `posenc` command-line program (docs/cli.md).

Runs the program on the float64 golden files of tests/reference/data and compares its .npy
outputs, read back with NumPy, to the golden outputs (float64: 1e-12, float32: 2e-5, relative to
max(1, |reference|max)); checks every bad-input case: non-zero exit, one line on stderr naming the
problem, and no output file (an existing output is left untouched).

  /usr/bin/python3 test_cli.py --posenc BUILD/tools/posenc --data tests/reference/data [GROUP ...]

GROUP is any of: table rope bias attend empty errors help (default: all). Prints
"N passed, M failed" last and exits non-zero when anything failed.
"""
import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cli_common"))
from cli_runner import Runner  # noqa: E402  (tests/cli_common, shared with tests/cli_plot)

TOL = {"f64": 1e-12, "f32": 2e-5}
# Positions past 2^20: two correct float64 results differ by ~p 2^-52 (the libm's pow and the
# angle's rounding), as in the C++ tests (test_sinusoidal.cpp, test_rope.cpp).
TOL_HIGHPOS = {"f64": 1e-9, "f32": 2e-5}


class Suite(Runner):
    def __init__(self, posenc, data, work):
        super().__init__(posenc, work, timeout=60)
        self.data = data
        self.verbose = False

    def d(self, name):
        return os.path.join(self.data, name)

    # --- golden comparisons ---------------------------------------------------------------------
    def golden(self, name, args, ref, dtypes=("f64", "f32"), default_dtype=None, tol=None):
        """Runs `posenc args --dtype dt -o out` for each dtype and compares out with ref
        (tolerances TOL, or `tol` {dtype: relative tolerance})."""
        ref = np.load(self.d(ref)) if isinstance(ref, str) else ref
        runs = [(dt, ["--dtype", dt]) for dt in dtypes]
        if default_dtype:
            runs.append((default_dtype, []))
        for dt, extra in runs:
            tag = f"{name} [{dt}{'' if extra else ', default dtype'}]"
            out = self.w(f"{name}_{dt}_{len(extra)}.npy")
            rc, _, err = self.run(args + extra + ["-o", out])
            if not self.ok(tag, rc == 0, f"exit {rc}: {err.strip()}"):
                continue
            y = np.load(out)
            self.compare(tag, y, ref, dt, (tol or TOL)[dt])
            umask = os.umask(0)
            os.umask(umask)
            mode = os.stat(out).st_mode & 0o777
            self.ok(tag, mode == 0o666 & ~umask, f"output mode {oct(mode)}, expected {oct(0o666 & ~umask)}")

    def compare(self, tag, y, ref, dt, tol):
        want = np.float32 if dt == "f32" else np.float64
        if not self.ok(tag, y.dtype == want, f"dtype {y.dtype}, expected {np.dtype(want)}"):
            return
        if not self.ok(tag, y.shape == ref.shape, f"shape {y.shape}, expected {ref.shape}"):
            return
        yd = y.astype(np.float64)
        inf_ref, inf_y = np.isinf(ref), np.isinf(yd)
        if not self.ok(tag, np.array_equal(inf_ref, inf_y) and np.array_equal(ref[inf_ref], yd[inf_y]),
                       "the -inf entries differ"):
            return
        fin = ~inf_ref
        mag = max(1.0, float(np.max(np.abs(ref[fin])))) if fin.any() else 1.0
        err = float(np.max(np.abs(yd[fin] - ref[fin]))) if fin.any() else 0.0
        self.ok(tag, err <= tol * mag, f"max |error| {err:.3g} > {tol * mag:.3g}")

    def save(self, name, arr, version=None):
        path = self.w(name)
        with open(path, "wb") as f:
            np.lib.format.write_array(f, np.asarray(arr), version=version)
        return path


# --- table --------------------------------------------------------------------------------------
def group_table(s):
    t = ["table", "--encoder", "sinusoidal"]
    s.golden("table_interleaved_vaswani", t + ["--dim", 16, "--len", 16], "sin_interleaved_vaswani_D16.npy",
             default_dtype="f32")
    s.golden("table_split_vaswani", t + ["--dim", 16, "--len", 16, "--layout", "split"], "sin_split_vaswani_D16.npy")
    s.golden("table_split_logts", t + ["--dim", 16, "--len", 16, "--layout", "split", "--frequencies",
                                       "log-timescale"], "sin_split_logts_D16.npy")
    s.golden("table_interleaved_logts", t + ["--dim", 16, "--len", 16, "--layout", "interleaved",
                                             "--frequencies", "log-timescale"], "sin_interleaved_logts_D16.npy")
    s.golden("table_base500", t + ["--dim", 8, "--len", 16, "--base", 500], "sin_interleaved_base500_D8.npy")
    full = np.load(s.d("sin_interleaved_vaswani_D16.npy"))
    s.golden("table_offset3", t + ["--dim", 16, "--len", 8, "--offset", 3], full[3:11])
    pe_half = np.load(s.d("sin_add_out.npy")) - np.load(s.d("sin_add_x.npy"))
    s.golden("table_scale0.5", t + ["--dim", 16, "--len", 8, "--offset", 3, "--scale", 0.5], pe_half)
    pos = s.d("sin_highpos_positions.npy")
    s.golden("table_highpos_interleaved", t + ["--dim", 64, "--positions", pos], "sin_highpos_interleaved_D64.npy", tol=TOL_HIGHPOS)
    s.golden("table_highpos_split", t + ["--dim", 64, "--positions", pos, "--layout", "split"],
             "sin_highpos_split_D64.npy", tol=TOL_HIGHPOS)
    # --positions read from format versions 2.0 and 3.0
    p = np.load(pos)
    for v in [(2, 0), (3, 0)]:
        pv = s.save(f"highpos_v{v[0]}.npy", p, version=v)
        s.golden(f"table_highpos_positions_v{v[0]}", t + ["--dim", 64, "--positions", pv],
                 "sin_highpos_interleaved_D64.npy", dtypes=("f64",), tol=TOL_HIGHPOS)


# --- rope ---------------------------------------------------------------------------------------
def group_rope(s):
    x = s.d("rope_x.npy")
    r = ["rope", "--in", x]
    yarn = ["--scaling", "yarn", "--factor", 4, "--original-max-positions", 4096, "--offset", 100]
    longrope = ["--scaling", "longrope", "--factor", 4, "--original-max-positions", 8,
                "--short-factors", s.d("rope_longrope_short_factors.npy"),
                "--long-factors", s.d("rope_longrope_long_factors.npy")]
    cases = [
        ("rope_half", [], "rope_half.npy"),
        ("rope_interleaved", ["--layout", "interleaved"], "rope_interleaved.npy"),
        ("rope_half_offset7", ["--offset", 7], "rope_half_offset7.npy"),
        ("rope_half_R8", ["--rotary-dim", 8, "--offset", 7], "rope_half_R8.npy"),
        ("rope_interleaved_R8", ["--rotary-dim", 8, "--offset", 7, "--layout", "interleaved"],
         "rope_interleaved_R8.npy"),
        ("rope_linear", ["--scaling", "linear", "--factor", 4, "--offset", 3], "rope_linear_f4.npy"),
        ("rope_ntk", ["--scaling", "ntk", "--factor", 4, "--offset", 3], "rope_ntk_f4.npy"),
        ("rope_dynamic_long", ["--scaling", "dynamic", "--factor", 4, "--original-max-positions", 8,
                               "--offset", 10], "rope_dynamic_f4_M8_long.npy"),
        ("rope_dynamic_short", ["--scaling", "dynamic", "--factor", 4, "--original-max-positions", 8],
         "rope_dynamic_f4_M8_short.npy"),
        ("rope_yarn", yarn + ["--beta-fast", 32, "--beta-slow", 1], "rope_yarn.npy"),
        ("rope_yarn_notrunc", yarn + ["--truncate", "false"], "rope_yarn_notrunc.npy"),
        ("rope_yarn_mscale", yarn + ["--mscale", 1.0, "--mscale-all-dim", 0.5], "rope_yarn_mscale.npy"),
        ("rope_yarn_attnfac", yarn + ["--attention-factor", 1.3], "rope_yarn_attnfac.npy"),
        ("rope_yarn_R8", yarn + ["--rotary-dim", 8], "rope_yarn_R8.npy"),
        ("rope_llama3", ["--scaling", "llama3", "--base", 500000, "--factor", 8, "--low-freq-factor", 1,
                         "--high-freq-factor", 4, "--original-max-positions", 8192, "--offset", 100],
         "rope_llama3.npy"),
        ("rope_longrope_short", longrope, "rope_longrope_short.npy"),
        ("rope_longrope_long", longrope + ["--offset", 5], "rope_longrope_long.npy"),
        ("rope_explicit", ["--layout", "interleaved", "--positions", s.d("rope_explicit_positions.npy")],
         "rope_interleaved_explicit.npy"),
    ]
    for name, args, ref in cases:
        s.golden(name, r + args, ref, default_dtype="f64")
    hp = ["rope", "--in", s.d("rope_highpos_x.npy"), "--positions", s.d("rope_highpos_positions.npy")]
    s.golden("rope_highpos_half", hp, "rope_highpos_half.npy", tol=TOL_HIGHPOS)
    s.golden("rope_highpos_interleaved", hp + ["--layout", "interleaved"], "rope_highpos_interleaved.npy", tol=TOL_HIGHPOS)

    # [N, Dh] inputs: one head of rope_x; [N, 1, Dh] squeezed for the high positions.
    xa = np.load(x)
    for h in range(2):
        x2 = s.save(f"rope_x_head{h}.npy", np.ascontiguousarray(xa[:, h, :]))
        s.golden(f"rope_2d_head{h}_yarn", ["rope", "--in", x2] + yarn, np.load(s.d("rope_yarn.npy"))[:, h, :])
        s.golden(f"rope_2d_head{h}_longrope_long", ["rope", "--in", x2] + longrope + ["--offset", 5],
                 np.load(s.d("rope_longrope_long.npy"))[:, h, :])
    x2 = s.save("rope_highpos_x_2d.npy", np.load(s.d("rope_highpos_x.npy"))[:, 0, :])
    s.golden("rope_2d_highpos", ["rope", "--in", x2, "--positions", s.d("rope_highpos_positions.npy")],
             np.load(s.d("rope_highpos_half.npy"))[:, 0, :], tol=TOL_HIGHPOS)

    # float32 input: the default output dtype is f32; versions 2.0 and 3.0 read alike.
    s.golden("rope_f32_input", ["rope", "--in", s.save("rope_x_f32.npy", xa.astype(np.float32))],
             "rope_half.npy", dtypes=(), default_dtype="f32")
    for v in [(2, 0), (3, 0)]:
        s.golden(f"rope_input_v{v[0]}", ["rope", "--in", s.save(f"rope_x_v{v[0]}.npy", xa, version=v)],
                 "rope_half.npy", dtypes=(), default_dtype="f64")


# --- bias ---------------------------------------------------------------------------------------
def group_bias(s):
    a = ["bias", "--encoder", "alibi", "--heads", 3, "--len", 5]
    s.golden("bias_alibi", a, "alibi_bias_H3_N5_offset2.npy", default_dtype="f32")
    s.golden("bias_alibi_causal", a + ["--causal"], "alibi_bias_causal_H3_N5_offset2.npy", default_dtype="f32")
    # --max-bias: B[h, 1, 0] = -m_h
    for h, b in [(8, 16), (6, 4), (12, 4.5), (5, 8)]:
        m = np.load(s.d(f"alibi_slopes_H{h}_b{b}.npy"))
        ref = -np.abs(np.arange(2)[None, :, None] - np.arange(2)[None, None, :]) * m[:, None, None]
        s.golden(f"bias_alibi_H{h}_b{b}", ["bias", "--encoder", "alibi", "--heads", h, "--len", 2,
                                           "--max-bias", b], ref, dtypes=("f64",))
    t = ["bias", "--encoder", "t5", "--heads", 3, "--len", 6, "--table", s.d("t5_table.npy")]
    s.golden("bias_t5", t, "t5_bias_H3_N6_bidir.npy", default_dtype="f32")
    s.golden("bias_t5_causal", t + ["--causal"], "t5_bias_H3_N6_causal.npy", default_dtype="f32")
    s.golden("bias_t5_explicit_params", t + ["--num-buckets", 32, "--max-distance", 128],
             "t5_bias_H3_N6_bidir.npy", dtypes=("f64",))


# --- attend -------------------------------------------------------------------------------------
def attend_args(s, prefix="attn", heads=2):
    return ["attend", "--x", s.d(f"{prefix}_x.npy"), "--wq", s.d(f"{prefix}_wq.npy"),
            "--wk", s.d(f"{prefix}_wk.npy"), "--wv", s.d(f"{prefix}_wv.npy"), "--wo", s.d(f"{prefix}_wo.npy"),
            "--heads", heads]


def group_attend(s):
    b = attend_args(s)
    xl = ["--encoder", "xl", "--u", s.d("attn_xl_u.npy"), "--v", s.d("attn_xl_v.npy"), "--wr", s.d("attn_xl_wr.npy")]
    shaw = ["--encoder", "shaw", "--rel-k", s.d("attn_shaw_ak.npy"), "--rel-v", s.d("attn_shaw_av.npy")]
    t5 = ["--encoder", "t5", "--table", s.d("attn_t5_table.npy"), "--scale", 1]
    cases = [
        ("attend_none_bidir", ["--encoder", "none"], "attn_none_bidir.npy"),
        ("attend_none_causal", ["--encoder", "none", "--causal"], "attn_none_causal.npy"),
        ("attend_none_scale0.5", ["--encoder", "none", "--scale", 0.5], "attn_none_scale0.5.npy"),
        ("attend_sinusoidal_causal", ["--encoder", "sinusoidal", "--offset", 3, "--causal"],
         "attn_sinusoidal_causal.npy"),
        ("attend_sinusoidal_flags", ["--encoder", "sinusoidal", "--offset", 3, "--causal", "--layout", "interleaved",
                                     "--frequencies", "vaswani", "--base", 10000, "--pe-scale", 1],
         "attn_sinusoidal_causal.npy"),
        ("attend_learned_bidir", ["--encoder", "learned", "--table", s.d("attn_learned_table.npy"),
                                  "--table-offset", 2, "--offset", 1], "attn_learned_bidir.npy"),
        ("attend_rope_half_causal", ["--encoder", "rope", "--offset", 5, "--causal"], "attn_rope_half_causal.npy"),
        ("attend_rope_interleaved_R4", ["--encoder", "rope", "--layout", "interleaved", "--rotary-dim", 4],
         "attn_rope_interleaved_R4_bidir.npy"),
        ("attend_alibi_causal", ["--encoder", "alibi", "--causal"], "attn_alibi_causal.npy"),
        ("attend_alibi_bidir", ["--encoder", "alibi", "--max-bias", 8], "attn_alibi_bidir.npy"),
        ("attend_t5_bidir", t5, "attn_t5_bidir.npy"),
        ("attend_t5_causal", t5 + ["--causal", "--num-buckets", 32, "--max-distance", 128], "attn_t5_causal.npy"),
        ("attend_shaw_bidir", shaw, "attn_shaw_bidir.npy"),
        ("attend_shaw_causal", shaw + ["--max-relative", 3, "--causal"], "attn_shaw_causal.npy"),
        ("attend_xl_causal", xl + ["--causal"], "attn_xl_causal.npy"),
        ("attend_xl_bidir_clamp3", xl + ["--clamp-len", 3], "attn_xl_bidir_clamp3.npy"),
    ]
    for name, args, ref in cases:
        s.golden(name, b + args, ref, default_dtype="f64")
    b3 = attend_args(s, "attn3", 3)
    s.golden("attend3_alibi_causal", b3 + ["--encoder", "alibi", "--causal"], "attn3_alibi_causal.npy")
    s.golden("attend3_rope_half_bidir", b3 + ["--encoder", "rope", "--offset", 2], "attn3_rope_half_bidir.npy")
    # float32 inputs (the golden inputs are float32-exact): the default output dtype is f32.
    f32 = {k: s.save(f"attn_{k}_f32.npy", np.load(s.d(f"attn_{k}.npy")).astype(np.float32))
           for k in ["x", "wq", "wk", "wv", "wo"]}
    bf = ["attend", "--x", f32["x"], "--wq", f32["wq"], "--wk", f32["wk"], "--wv", f32["wv"], "--wo", f32["wo"],
          "--heads", 2]
    s.golden("attend_f32_input_rope", bf + ["--encoder", "rope", "--offset", 5, "--causal"],
             "attn_rope_half_causal.npy", dtypes=(), default_dtype="f32")
    s.golden("attend_f32_input_xl", bf + xl + ["--causal"], "attn_xl_causal.npy", dtypes=("f64",), default_dtype="f32")


# --- N = 0: an empty output of the right shape --------------------------------------------------
def group_empty(s):
    def empty(name, args, shape, dt):
        out = s.w(f"{name}.npy")
        rc, _, err = s.run(args + ["-o", out])
        if s.ok(name, rc == 0, f"exit {rc}: {err.strip()}"):
            y = np.load(out)
            s.ok(name, y.shape == shape and y.dtype == np.dtype(dt), f"got {y.shape} {y.dtype}, expected {shape} {dt}")

    empty("empty_table", ["table", "--encoder", "sinusoidal", "--dim", 16, "--len", 0], (0, 16), "float32")
    empty("empty_table_positions", ["table", "--encoder", "sinusoidal", "--dim", 8, "--positions",
                                    s.save("pos0.npy", np.zeros(0, np.int64))], (0, 8), "float32")
    empty("empty_rope_3d", ["rope", "--in", s.save("x0.npy", np.zeros((0, 2, 16)))], (0, 2, 16), "float64")
    empty("empty_rope_2d_f32", ["rope", "--in", s.save("x0_2d.npy", np.zeros((0, 16), np.float32)),
                                "--scaling", "dynamic", "--factor", 2, "--original-max-positions", 4], (0, 16), "float32")
    empty("empty_bias_alibi", ["bias", "--encoder", "alibi", "--heads", 3, "--len", 0], (3, 0, 0), "float32")
    empty("empty_bias_t5", ["bias", "--encoder", "t5", "--heads", 3, "--len", 0, "--table", s.d("t5_table.npy"),
                            "--causal"], (3, 0, 0), "float32")
    x0 = s.save("attn_x0.npy", np.zeros((0, 16)))
    b = ["attend", "--x", x0, "--wq", s.d("attn_wq.npy"), "--wk", s.d("attn_wk.npy"), "--wv", s.d("attn_wv.npy"),
         "--wo", s.d("attn_wo.npy"), "--heads", 2]
    encs = {
        "none": [], "sinusoidal": [], "rope": [], "alibi": ["--causal"],
        "learned": ["--table", s.d("attn_learned_table.npy")],
        "t5": ["--table", s.d("attn_t5_table.npy")],
        "shaw": ["--rel-k", s.d("attn_shaw_ak.npy"), "--rel-v", s.d("attn_shaw_av.npy")],
        "xl": ["--u", s.d("attn_xl_u.npy"), "--v", s.d("attn_xl_v.npy"), "--wr", s.d("attn_xl_wr.npy")],
    }
    for e, extra in encs.items():
        empty(f"empty_attend_{e}", b + ["--encoder", e] + extra, (0, 16), "float64")


# --- bad input ----------------------------------------------------------------------------------
def write_raw(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def npy_bytes(arr, descr=None, fortran=False, shape=None, version=1, data=None, header=None):
    arr = np.asarray(arr)
    if header is None:
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
            descr or arr.dtype.str, "True" if fortran else "False", repr(tuple(arr.shape if shape is None else shape)))
    prefix = 10 if version == 1 else 12
    pad = (64 - (prefix + len(header) + 1) % 64) % 64
    h = (header + " " * pad + "\n").encode("latin1")
    lenb = len(h).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + lenb + h + (arr.tobytes() if data is None else data)


def group_errors(s):
    x = np.load(s.d("rope_x.npy"))
    bad = {
        "text": write_raw(s.w("text.npy"), b"this is not numpy\n"),
        "empty": write_raw(s.w("empty.npy"), b""),
        "trunc_header": write_raw(s.w("trunc_header.npy"), npy_bytes(x)[:30]),
        "trunc_len": write_raw(s.w("trunc_len.npy"), b"\x93NUMPY\x02\x00\x10"),
        "no_descr": write_raw(s.w("no_descr.npy"), npy_bytes(x, header="{'fortran_order': False, 'shape': (6, 2, 16), }")),
        "bad_shape": write_raw(s.w("bad_shape.npy"), npy_bytes(x, header="{'descr': '<f8', 'fortran_order': False, 'shape': (6, -2, 16), }")),
        "trunc_data": write_raw(s.w("trunc_data.npy"), npy_bytes(x)[:-8]),
        "huge_shape": write_raw(s.w("huge_shape.npy"), npy_bytes(x, shape=(10**12, 10**12))),
        "version4": write_raw(s.w("version4.npy"), npy_bytes(x).replace(b"NUMPY\x01", b"NUMPY\x04", 1)),
        "i2": s.save("i2.npy", x.astype("<i2")),
        "be": s.save("be.npy", x.astype(">f4")),
        "fortran": s.save("fortran.npy", np.asfortranarray(x[:, 0, :])),
        "i8": s.save("i8.npy", np.zeros((6, 16), np.int64)),
        "4d": s.save("x4d.npy", x.reshape(3, 2, 2, 16)),
        "scalar": s.save("scalar.npy", np.float64(1.0)),
        "pos_f8": s.save("pos_f8.npy", np.arange(6, dtype=np.float64)),
        "pos_2d": s.save("pos_2d.npy", np.zeros((6, 1), np.int64)),
        "pos_neg": s.save("pos_neg.npy", np.array([0, 1, -2, 3, 4, 5], np.int64)),
        "factors4": s.save("factors4.npy", np.ones(4)),
        "x1d": s.save("x1d.npy", np.zeros(16)),
        "shaw6": s.save("shaw6.npy", np.zeros((6, 8))),
        "shaw_dh4": s.save("shaw_dh4.npy", np.zeros((7, 4))),
        "xl_u3": s.save("xl_u3.npy", np.zeros((3, 8))),
        "learned8": s.save("learned8.npy", np.zeros((20, 8))),
    }
    d = s.d
    x_in = d("rope_x.npy")
    table = ["table", "--encoder", "sinusoidal"]
    rope = ["rope", "--in", x_in]
    att = attend_args(s)
    lr = ["--short-factors", d("rope_longrope_short_factors.npy"), "--long-factors", d("rope_longrope_long_factors.npy")]
    shaw_ok = ["--rel-k", d("attn_shaw_ak.npy"), "--rel-v", d("attn_shaw_av.npy")]
    xl_ok = ["--u", d("attn_xl_u.npy"), "--v", d("attn_xl_v.npy"), "--wr", d("attn_xl_wr.npy")]
    t5_3 = d("t5_table.npy")
    # (name, args, fragments the one-line message must contain)
    cases = [
        # command line
        ("no_subcommand", [], ["subcommand"]),
        ("unknown_subcommand", ["frobnicate"], ["frobnicate"]),
        ("unknown_flag", table + ["--dim", 16, "--len", 4, "--bogus", 3], ["--bogus"]),
        ("missing_required", table + ["--len", 4], ["--dim"]),
        ("missing_output_flag", None, ["--output"]),
        ("bad_integer", table + ["--dim", "abc", "--len", 4], ["--dim", "abc"]),
        ("bad_float", rope + ["--base", "ten"], ["--base", "ten"]),
        ("bad_layout", rope + ["--layout", "diagonal"], ["--layout", "diagonal"]),
        ("bad_scaling", rope + ["--scaling", "magic"], ["--scaling", "magic"]),
        ("bad_truncate", rope + ["--truncate", "maybe"], ["--truncate", "maybe"]),
        ("bad_dtype", rope + ["--dtype", "f16"], ["--dtype", "f16"]),
        ("bad_encoder_table", ["table", "--encoder", "rope", "--dim", 16, "--len", 4], ["--encoder", "rope"]),
        ("bad_encoder_bias", ["bias", "--encoder", "shaw", "--heads", 2, "--len", 4], ["--encoder", "shaw"]),
        ("bad_encoder_attend", att + ["--encoder", "nope"], ["--encoder", "nope"]),
        ("output_dir_missing", None, ["-o", "no/such/dir"]),
        # files: missing, malformed, unsupported
        ("missing_file", ["rope", "--in", s.w("missing.npy")], ["--in", "missing.npy", "No such file"]),
        ("not_npy", ["rope", "--in", bad["text"]], ["--in", "text.npy", "magic"]),
        ("empty_file", ["rope", "--in", bad["empty"]], ["--in", "empty.npy", "magic"]),
        ("truncated_header", ["rope", "--in", bad["trunc_header"]], ["--in", "trunc_header.npy", "truncated .npy header"]),
        ("truncated_header_len", ["rope", "--in", bad["trunc_len"]], ["--in", "trunc_len.npy", "truncated .npy header"]),
        ("malformed_header", ["rope", "--in", bad["no_descr"]], ["--in", "no_descr.npy", "descr"]),
        ("malformed_shape", ["rope", "--in", bad["bad_shape"]], ["--in", "bad_shape.npy", "shape", "-2"]),
        ("truncated_data", ["rope", "--in", bad["trunc_data"]], ["--in", "trunc_data.npy", "truncated .npy data", "1536"]),
        ("huge_shape", ["rope", "--in", bad["huge_shape"]], ["--in", "huge_shape.npy", "truncated .npy data"]),
        ("version4", ["rope", "--in", bad["version4"]], ["--in", "version4.npy", "version 4"]),
        ("dtype_i2", ["rope", "--in", bad["i2"]], ["--in", "i2.npy", "<i2"]),
        ("dtype_big_endian", ["rope", "--in", bad["be"]], ["--in", "be.npy", ">f4", "big-endian"]),
        ("fortran_order", ["rope", "--in", bad["fortran"]], ["--in", "fortran.npy", "Fortran"]),
        ("dtype_i8_for_floats", ["rope", "--in", bad["i8"]], ["--in", "i8.npy", "<f4 or <f8", "<i8"]),
        ("scalar_input", ["rope", "--in", bad["scalar"]], ["--in", "scalar.npy", "0-d"]),
        ("positions_dtype", rope + ["--positions", bad["pos_f8"]], ["--positions", "pos_f8.npy", "<i8", "<f8"]),
        ("positions_2d", rope + ["--positions", bad["pos_2d"]], ["--positions", "pos_2d.npy", "[N]", "[6, 1]"]),
        ("positions_negative", rope + ["--positions", bad["pos_neg"]], ["--positions", "pos_neg.npy", "-2", ">= 0"]),
        ("positions_big_endian", table + ["--dim", 8, "--positions", bad["be"]], ["--positions", "be.npy", ">f4"]),
        # table
        ("table_len_and_positions", table + ["--dim", 16, "--len", 4, "--positions", d("sin_highpos_positions.npy")],
         ["--len", "--positions"]),
        ("table_offset_and_positions", table + ["--dim", 16, "--offset", 4, "--positions", d("sin_highpos_positions.npy")],
         ["--offset", "--positions"]),
        ("table_no_len", table + ["--dim", 16], ["--len", "--positions"]),
        ("table_odd_dim", table + ["--dim", 15, "--len", 4], ["dim = 15", "even"]),
        ("table_zero_dim", table + ["--dim", 0, "--len", 4], ["dim = 0"]),
        ("table_logts_dim2", table + ["--dim", 2, "--len", 4, "--frequencies", "log-timescale"], ["dim = 2", "log_timescale"]),
        ("table_negative_len", table + ["--dim", 16, "--len", -3], ["--len = -3"]),
        ("table_negative_offset", table + ["--dim", 16, "--len", 3, "--offset", -1], ["--offset = -1"]),
        ("table_base0", table + ["--dim", 16, "--len", 3, "--base", 0], ["base = 0"]),
        ("table_scale_nan", table + ["--dim", 16, "--len", 3, "--scale", "nan"], ["scale", "finite"]),
        ("table_too_large", table + ["--dim", 16, "--len", 10**12], ["limit", "1000000000000"]),
        # rope
        ("rope_4d", ["rope", "--in", bad["4d"]], ["--in", "x4d.npy", "[N, Dh] or [N, H, Dh]", "[3, 2, 2, 16]"]),
        ("rope_1d", ["rope", "--in", bad["x1d"]], ["--in", "x1d.npy", "[16]"]),
        ("rope_positions_length", rope + ["--positions", d("sin_highpos_positions.npy")],
         ["--positions", "sin_highpos_positions.npy", "[6]", "[12]"]),
        ("rope_offset_and_positions", rope + ["--offset", 2, "--positions", d("rope_explicit_positions.npy")],
         ["--offset", "--positions"]),
        ("rope_negative_offset", rope + ["--offset", -1], ["--offset = -1"]),
        ("rope_odd_rotary_dim", rope + ["--rotary-dim", 7], ["rotary_dim = 7", "even"]),
        ("rope_rotary_dim_too_big", rope + ["--rotary-dim", 32], ["rotary_dim = 32", "head_dim = 16"]),
        ("rope_rotary_dim_zero", rope + ["--rotary-dim", 0], ["--rotary-dim = 0"]),
        ("rope_base_negative", rope + ["--base", -1], ["base = -1"]),
        ("rope_yarn_no_factor", rope + ["--scaling", "yarn", "--original-max-positions", 16], ["yarn", "factor"]),
        ("rope_dynamic_no_M", rope + ["--scaling", "dynamic", "--factor", 2], ["dynamic", "original_max_positions"]),
        ("rope_factor_zero", rope + ["--scaling", "linear", "--factor", 0], ["factor = 0"]),
        ("rope_attention_factor_linear", rope + ["--scaling", "linear", "--factor", 2, "--attention-factor", 2],
         ["attention_factor", "linear"]),
        ("rope_llama3_freq_factors", rope + ["--scaling", "llama3", "--low-freq-factor", 4, "--high-freq-factor", 2],
         ["high_freq_factor = 2", "low_freq_factor = 4"]),
        ("rope_yarn_beta_fast", rope + ["--scaling", "yarn", "--factor", 4, "--original-max-positions", 64,
                                        "--beta-fast", -1], ["beta_fast = -1"]),
        ("rope_longrope_no_factors", rope + ["--scaling", "longrope", "--factor", 4, "--original-max-positions", 8],
         ["--short-factors", "--long-factors"]),
        ("rope_longrope_factor_shape", rope + ["--scaling", "longrope", "--factor", 4, "--original-max-positions", 8,
                                               "--short-factors", bad["factors4"], "--long-factors",
                                               d("rope_longrope_long_factors.npy")],
         ["--short-factors", "factors4.npy", "[8]", "[4]"]),
        ("rope_factors_without_longrope", rope + lr, ["--short-factors", "longrope"]),
        ("rope_factors_missing_file", rope + ["--scaling", "longrope", "--factor", 4, "--original-max-positions", 8,
                                              "--short-factors", s.w("nofactors.npy"), "--long-factors",
                                              d("rope_longrope_long_factors.npy")], ["--short-factors", "nofactors.npy"]),
        ("rope_longrope_M1", rope + ["--scaling", "longrope", "--factor", 4, "--original-max-positions", 1] + lr,
         ["original_max_positions", "1"]),
        # bias
        ("bias_heads0", ["bias", "--encoder", "alibi", "--heads", 0, "--len", 4], ["--heads = 0"]),
        ("bias_negative_len", ["bias", "--encoder", "alibi", "--heads", 2, "--len", -1], ["--len = -1"]),
        ("bias_max_bias_negative", ["bias", "--encoder", "alibi", "--heads", 2, "--len", 4, "--max-bias", -1],
         ["max_bias = -1"]),
        ("bias_alibi_table", ["bias", "--encoder", "alibi", "--heads", 3, "--len", 4, "--table", t5_3], ["--table", "t5"]),
        ("bias_t5_max_bias", ["bias", "--encoder", "t5", "--heads", 3, "--len", 4, "--table", t5_3, "--max-bias", 4],
         ["--max-bias", "alibi"]),
        ("bias_t5_no_table", ["bias", "--encoder", "t5", "--heads", 3, "--len", 4], ["--table"]),
        ("bias_t5_heads_mismatch", ["bias", "--encoder", "t5", "--heads", 2, "--len", 4, "--table", t5_3],
         ["--table", "t5_table.npy", "[*, 2]", "[32, 3]"]),
        ("bias_t5_buckets_mismatch", ["bias", "--encoder", "t5", "--heads", 3, "--len", 4, "--table", t5_3,
                                      "--num-buckets", 16], ["--table", "[16, 3]", "[32, 3]", "--num-buckets"]),
        ("bias_t5_max_distance", ["bias", "--encoder", "t5", "--heads", 3, "--len", 4, "--table", t5_3,
                                  "--max-distance", 4], ["max_distance = 4"]),
        ("bias_t5_table_dtype", ["bias", "--encoder", "t5", "--heads", 3, "--len", 4, "--table", bad["i2"]],
         ["--table", "i2.npy", "<i2"]),
        ("bias_too_large", ["bias", "--encoder", "alibi", "--heads", 8, "--len", 10**6], ["limit"]),
        # attend
        ("attend_wq_shape", ["attend", "--x", d("attn_x.npy"), "--wq", d("attn3_wq.npy"), "--wk", d("attn_wk.npy"),
                             "--wv", d("attn_wv.npy"), "--wo", d("attn_wo.npy"), "--heads", 2, "--encoder", "none"],
         ["--wq", "attn3_wq.npy", "[16, 16]", "[24, 24]"]),
        ("attend_wo_missing", ["attend", "--x", d("attn_x.npy"), "--wq", d("attn_wq.npy"), "--wk", d("attn_wk.npy"),
                               "--wv", d("attn_wv.npy"), "--wo", s.w("nowo.npy"), "--heads", 2, "--encoder", "none"],
         ["--wo", "nowo.npy"]),
        ("attend_x_1d", ["attend", "--x", bad["x1d"], "--wq", d("attn_wq.npy"), "--wk", d("attn_wk.npy"),
                         "--wv", d("attn_wv.npy"), "--wo", d("attn_wo.npy"), "--heads", 2, "--encoder", "none"],
         ["--x", "x1d.npy", "[N, D]", "[16]"]),
        ("attend_heads_divide", attend_args(s, heads=3) + ["--encoder", "none"], ["--heads = 3", "D = 16"]),
        ("attend_heads0", attend_args(s, heads=0) + ["--encoder", "none"], ["--heads = 0"]),
        ("attend_scale_inf", att + ["--encoder", "none", "--scale", "inf"], ["scale", "finite"]),
        ("attend_negative_offset", att + ["--encoder", "none", "--offset", -2], ["--offset = -2"]),
        ("attend_flag_wrong_encoder", att + ["--encoder", "none", "--table", d("attn_learned_table.npy")],
         ["--table", "learned or t5", "none"]),
        ("attend_rope_flag_on_alibi", att + ["--encoder", "alibi", "--scaling", "yarn"], ["--scaling", "rope", "alibi"]),
        ("attend_max_bias_on_rope", att + ["--encoder", "rope", "--max-bias", 4], ["--max-bias", "alibi", "rope"]),
        ("attend_sin_layout_half", att + ["--encoder", "sinusoidal", "--layout", "half"], ["--layout", "half"]),
        ("attend_rope_layout_split", att + ["--encoder", "rope", "--layout", "split"], ["--layout", "split"]),
        ("attend_sin_base0", att + ["--encoder", "sinusoidal", "--base", 0], ["base = 0"]),
        ("attend_learned_no_table", att + ["--encoder", "learned"], ["--table"]),
        ("attend_learned_table_shape", att + ["--encoder", "learned", "--table", bad["learned8"]],
         ["--table", "learned8.npy", "[*, 16]", "[20, 8]"]),
        ("attend_learned_past_table", att + ["--encoder", "learned", "--table", d("attn_learned_table.npy"),
                                             "--offset", 12, "--table-offset", 2], ["20"]),
        ("attend_learned_negative_table_offset", att + ["--encoder", "learned", "--table", d("attn_learned_table.npy"),
                                                        "--table-offset", -1], ["table_offset = -1"]),
        ("attend_t5_heads", att + ["--encoder", "t5", "--table", t5_3], ["--table", "t5_table.npy", "[*, 2]", "[32, 3]"]),
        ("attend_t5_buckets_small", att + ["--encoder", "t5", "--table", s.save("t5_small.npy", np.zeros((2, 2)))],
         ["num_buckets = 2"]),
        ("attend_rope_rotary_dim", att + ["--encoder", "rope", "--rotary-dim", 16], ["rotary_dim = 16", "head_dim = 8"]),
        ("attend_rope_ntk_no_factor", att + ["--encoder", "rope", "--scaling", "ntk"], ["ntk", "factor"]),
        ("attend_alibi_max_bias", att + ["--encoder", "alibi", "--max-bias", 0], ["max_bias = 0"]),
        ("attend_shaw_missing", att + ["--encoder", "shaw", "--rel-k", d("attn_shaw_ak.npy")], ["--rel-v"]),
        ("attend_shaw_even_rows", att + ["--encoder", "shaw", "--rel-k", bad["shaw6"], "--rel-v", bad["shaw6"]],
         ["--rel-k", "shaw6.npy", "odd", "[6, 8]"]),
        ("attend_shaw_head_dim", att + ["--encoder", "shaw", "--rel-k", bad["shaw_dh4"], "--rel-v", d("attn_shaw_av.npy")],
         ["--rel-k", "shaw_dh4.npy", "[*, 8]", "[7, 4]"]),
        ("attend_shaw_rel_v_shape", att + ["--encoder", "shaw", "--rel-k", d("attn_shaw_ak.npy"), "--rel-v", bad["shaw6"]],
         ["--rel-v", "shaw6.npy", "[7, 8]", "[6, 8]"]),
        ("attend_shaw_max_relative", att + ["--encoder", "shaw", "--max-relative", 2] + shaw_ok,
         ["--rel-k", "[5, 8]", "[7, 8]", "--max-relative"]),
        ("attend_xl_missing_wr", att + ["--encoder", "xl", "--u", d("attn_xl_u.npy"), "--v", d("attn_xl_v.npy")], ["--wr"]),
        ("attend_xl_u_shape", att + ["--encoder", "xl", "--u", bad["xl_u3"], "--v", d("attn_xl_v.npy"),
                                     "--wr", d("attn_xl_wr.npy")], ["--u", "xl_u3.npy", "[2, 8]", "[3, 8]"]),
        ("attend_xl_wr_shape", att + ["--encoder", "xl", "--u", d("attn_xl_u.npy"), "--v", d("attn_xl_v.npy"),
                                      "--wr", d("attn3_wq.npy")], ["--wr", "attn3_wq.npy", "[16, 16]", "[24, 24]"]),
        ("attend_xl_flag_on_shaw", att + ["--encoder", "shaw", "--clamp-len", 3] + shaw_ok, ["--clamp-len", "xl"]),
        ("attend_xl_bad_dtype", att + ["--encoder", "xl"] + xl_ok[:-1] + [bad["be"]], ["--wr", "be.npy", ">f4"]),
    ]
    out = s.w("err_out.npy")
    sentinel = b"existing output, must stay untouched\n"
    for name, args, frags in cases:
        if name == "missing_output_flag":
            args, outs = table + ["--dim", 16, "--len", 4], [None]
        elif name == "output_dir_missing":
            args, outs = table + ["--dim", 16, "--len", 4], [s.w("no/such/dir/out.npy")]
        else:
            outs = [out]
        for existing in (False, True):
            for o in outs:
                if o is not None and os.path.exists(o):
                    os.remove(o)
                if existing and o is not None and os.path.isdir(os.path.dirname(o)):
                    write_raw(o, sentinel)
                tag = f"{name}{' (output exists)' if existing else ''}"
                rc, so, se = s.run(args + ([] if o is None else ["-o", o]))
                lines = se.splitlines()
                if s.verbose and not existing:
                    print(f"{name}: {se.strip()}")
                s.ok(tag, rc != 0, f"exit status {rc}, expected non-zero")
                if s.ok(tag, len(lines) == 1 and se.endswith("\n") and lines[0].startswith("posenc: error: "),
                        f"stderr is not one 'posenc: error:' line: {se!r}"):
                    missing = [f for f in frags if f not in lines[0]]
                    s.ok(tag, not missing, f"message {lines[0]!r} lacks {missing}")
                s.ok(tag, so == "", f"stdout not empty: {so!r}")
                if o is not None:
                    if existing and os.path.isdir(os.path.dirname(o)):
                        with open(o, "rb") as f:
                            s.ok(tag, f.read() == sentinel, "the existing output was modified")
                    else:
                        s.ok(tag, not os.path.exists(o), "an output file was left")
    # A write that fails midway (file size limit 64 KiB, SIGXFSZ ignored so that write() fails
    # with EFBIG): the temporary file is removed and the output is absent or untouched.
    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
    for existing in (False, True):
        tag = f"write_fails_midway{' (output exists)' if existing else ''}"
        if os.path.exists(out):
            os.remove(out)
        if existing:
            write_raw(out, sentinel)
        p = subprocess.run([s.posenc, "table", "--encoder", "sinusoidal", "--dim", "256", "--len", "256",
                            "--dtype", "f64", "-o", out], capture_output=True, text=True, timeout=60,
                           preexec_fn=small_files)
        s.ok(tag, p.returncode != 0 and p.stderr.count("\n") == 1 and "write failed" in p.stderr
             and out in p.stderr, f"exit {p.returncode}, stderr {p.stderr!r}")
        if existing:
            with open(out, "rb") as f:
                s.ok(tag, f.read() == sentinel, "the existing output was modified")
        else:
            s.ok(tag, not os.path.exists(out), "an output file was left")
    leftovers = [f for f in os.listdir(s.work) if ".tmp." in f]
    s.ok("no temporary files left", not leftovers, f"left: {leftovers}")
    if os.path.exists(out):
        os.remove(out)


# --- --help -------------------------------------------------------------------------------------
HELP_FLAGS = {
    "table": ["--encoder", "--dim", "--len", "--offset", "--positions", "--layout", "--frequencies", "--base",
              "--scale", "--dtype", "-o"],
    "rope": ["--in", "--offset", "--positions", "--base", "--rotary-dim", "--layout", "--scaling", "--factor",
             "--original-max-positions", "--beta-fast", "--beta-slow", "--truncate", "--attention-factor",
             "--mscale", "--mscale-all-dim", "--low-freq-factor", "--high-freq-factor", "--short-factors",
             "--long-factors", "--dtype", "-o"],
    "bias": ["--encoder", "--heads", "--len", "--max-bias", "--table", "--num-buckets", "--max-distance",
             "--causal", "--dtype", "-o"],
    "attend": ["--x", "--wq", "--wk", "--wv", "--wo", "--heads", "--causal", "--offset", "--scale", "--encoder",
               "--layout", "--frequencies", "--base", "--pe-scale", "--table", "--table-offset", "--max-bias",
               "--rotary-dim", "--scaling", "--factor", "--original-max-positions", "--beta-fast", "--beta-slow",
               "--truncate", "--attention-factor", "--mscale", "--mscale-all-dim", "--low-freq-factor",
               "--high-freq-factor", "--short-factors", "--long-factors", "--num-buckets", "--max-distance",
               "--rel-k", "--rel-v", "--max-relative", "--u", "--v", "--wr", "--clamp-len", "--dtype", "-o"],
    "plot": [], "compare": [],
}


def group_help(s):
    rc, so, _ = s.run(["--help"])
    s.ok("help", rc == 0 and all(c in so for c in HELP_FLAGS), f"exit {rc}, output {so[:200]!r}")
    for sub, flags in HELP_FLAGS.items():
        rc, so, _ = s.run([sub, "--help"])
        missing = [f for f in flags if f + " " not in so and f + "," not in so]
        s.ok(f"help {sub}", rc == 0 and "Usage" in so and not missing, f"exit {rc}, missing {missing}")
    rc, so, _ = s.run(["--version"])
    s.ok("version", rc == 0 and so.startswith("posenc "), f"exit {rc}, output {so!r}")


GROUPS = {"table": group_table, "rope": group_rope, "bias": group_bias, "attend": group_attend,
          "empty": group_empty, "errors": group_errors, "help": group_help}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posenc", required=True, help="the posenc program")
    ap.add_argument("--data", required=True, help="tests/reference/data")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each error message")
    ap.add_argument("groups", nargs="*", help="any of " + " ".join(GROUPS))
    a = ap.parse_args()
    unknown = [g for g in a.groups if g not in GROUPS]
    if unknown:
        ap.error(f"unknown group(s) {unknown}; expected any of {list(GROUPS)}")
    work = tempfile.mkdtemp(prefix="posenc_cli_test_")
    s = Suite(os.path.abspath(a.posenc), os.path.abspath(a.data), work)
    s.verbose = a.verbose
    try:
        for g in a.groups or list(GROUPS):
            GROUPS[g](s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{s.passed} passed, {s.failed} failed")
    return 1 if s.failed or s.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
