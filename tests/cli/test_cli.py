#!/usr/bin/python3
"""Tests of the `posenc` command-line program (docs/cli.md).

Runs the program on the float64 golden files of tests/reference/data and compares its .npy
outputs, read back with NumPy, to the golden outputs (float64: 1e-12, float32: 2e-5, relative to
max(1, |reference|max); the attention layers of real models, layer_*: 1e-9 and 5e-5 absolute);
checks every bad-input case: non-zero exit, one line on stderr naming the problem, and no output
file (an existing output is left untouched).

  /usr/bin/python3 test_cli.py --posenc BUILD/tools/posenc --data tests/reference/data [GROUP ...]

GROUP is any of: table rope bias attend layers models layer_errors empty errors encoder_flags names
outputs inputs finite limits help bert_relative deberta (default: all). Prints "N passed, M failed"
last and exits non-zero when anything failed.
"""
import argparse
import io
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading

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
        self.bad_cases = set()  # the names of the bad-input cases run

    def d(self, name):
        return os.path.join(self.data, name)

    # --- golden comparisons ---------------------------------------------------------------------
    def golden(self, name, args, ref, dtypes=("f64", "f32"), default_dtype=None, tol=None, absolute=False):
        """Runs `posenc args --dtype dt -o out` for each dtype and compares out with ref
        (tolerances TOL, or `tol` {dtype: tolerance}, relative unless `absolute`)."""
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
            self.compare(tag, y, ref, dt, (tol or TOL)[dt], absolute)
            umask = os.umask(0)
            os.umask(umask)
            mode = os.stat(out).st_mode & 0o777
            self.ok(tag, mode == 0o666 & ~umask, f"output mode {oct(mode)}, expected {oct(0o666 & ~umask)}")

    def compare(self, tag, y, ref, dt, tol, absolute=False):
        """y against ref within tol relative to max(1, |ref|max), or absolute."""
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
        mag = max(1.0, float(np.max(np.abs(ref[fin])))) if fin.any() and not absolute else 1.0
        err = float(np.max(np.abs(yd[fin] - ref[fin]))) if fin.any() else 0.0
        self.ok(tag, err <= tol * mag, f"max |error| {err:.3g} > {tol * mag:.3g}")

    def save(self, name, arr, version=None):
        path = self.w(name)
        with open(path, "wb") as f:
            np.lib.format.write_array(f, np.asarray(arr), version=version)
        return path

    # --- bad input ------------------------------------------------------------------------------
    def error_run(self, name, args, frags, code=2, timeout=None, preexec=None):
        """Runs `posenc args` and checks that it fails with exit status `code`, one line
        "posenc: error: ..." on stderr holding every fragment, and nothing on stdout. Each name is
        one bad-input case. Returns the message line ("" when there was none)."""
        self.bad_cases.add(name.split(" (")[0])
        try:
            rc, so, se = self.run(args, timeout=timeout, preexec=preexec)
        except subprocess.TimeoutExpired:
            self.ok(name, False, f"did not finish within {timeout or self.timeout} s")
            return ""
        lines = se.splitlines()
        if self.verbose and "(" not in name:
            print(f"{name}: {se.strip()}")
        self.ok(name, rc == code, f"exit status {rc}, expected {code}: {se.strip()}")
        self.ok(name, so == "", f"stdout not empty: {so!r}")
        if not self.ok(name, len(lines) == 1 and se.endswith("\n") and lines[0].startswith("posenc: error: "),
                       f"stderr is not one 'posenc: error:' line: {se!r}"):
            return ""
        missing = [f for f in frags if f not in lines[0]]
        self.ok(name, not missing, f"message {lines[0]!r} lacks {missing}")
        return lines[0]

    def fails(self, name, args, frags, code=2, timeout=None, preexec=None, sentinel=None):
        """error_run with `-o OUT` appended, OUT absent before (or holding `sentinel`) and after
        (or still holding it), and no temporary file left in the scratch directory."""
        out = self.w("err_out.npy")
        if os.path.lexists(out):
            os.remove(out)
        if sentinel is not None:
            write_raw(out, sentinel)
        msg = self.error_run(name, args + ["-o", out], frags, code, timeout, preexec)
        if sentinel is not None:
            with open(out, "rb") as f:
                self.ok(name, f.read() == sentinel, "the existing output was modified")
            os.remove(out)
        else:
            self.ok(name, not os.path.lexists(out), "an output file was left")
        self.ok(name, not self.leftovers(), f"temporary files left: {self.leftovers()}")
        return msg

    def leftovers(self):
        return [os.path.join(d, f) for d, _, fs in os.walk(self.work) for f in fs if ".tmp." in f]


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
        # --inverse on the reference's rotated rows gives the input back (conventions.md 3b).
        s.golden(f"{name}_inverse", ["rope", "--in", s.d(ref), "--inverse"] + args, "rope_x.npy",
                 default_dtype="f64")
    hp = ["rope", "--in", s.d("rope_highpos_x.npy"), "--positions", s.d("rope_highpos_positions.npy")]
    s.golden("rope_highpos_half", hp, "rope_highpos_half.npy", tol=TOL_HIGHPOS)
    s.golden("rope_highpos_interleaved", hp + ["--layout", "interleaved"], "rope_highpos_interleaved.npy", tol=TOL_HIGHPOS)
    # The RoPE variants of real models (conventions.md 3b; make_golden.py's gen_rope_variants).
    rv = ["rope", "--in", s.d("ropev_x.npy")]
    mscale = ["--scaling", "longrope", "--original-max-positions", 8, "--short-factors",
              s.d("rope_longrope_short_factors.npy"), "--long-factors", s.d("rope_longrope_long_factors.npy"),
              "--short-mscale", 1.1, "--long-mscale", 1.3]
    variants = [
        ("ropev_trailing_R8_half", ["--rotary-dim", 8, "--rotary-dims", "trailing", "--offset", 3]),
        ("ropev_trailing_R6_interleaved", ["--rotary-dim", 6, "--rotary-dims", "trailing", "--layout",
                                           "interleaved", "--offset", 3]),
        ("ropev_freqfactors_half", ["--freq-factors", s.d("ropev_freq_factors.npy"), "--offset", 2]),
        ("ropev_llama3_freqfactors", ["--scaling", "llama3", "--base", 500000, "--factor", 8,
                                      "--freq-factors", s.d("ropev_freq_factors.npy"), "--offset", 100]),
        ("ropev_proportional_p0.25", ["--scaling", "proportional", "--partial-rotary-factor", 0.25, "--offset", 3]),
        ("ropev_proportional_p0.5_f2", ["--scaling", "proportional", "--partial-rotary-factor", 0.5, "--base", 1e6,
                                        "--factor", 2, "--offset", 1000]),
        ("ropev_longrope_mscale_short", mscale),
        ("ropev_longrope_mscale_long", mscale + ["--offset", 5]),
    ]
    for ref, args in variants:
        s.golden(ref.replace("ropev_", "rope_variant_"), rv + args, f"{ref}.npy", default_dtype="f64")
        s.golden(ref.replace("ropev_", "rope_variant_") + "_inverse", ["rope", "--in", s.d(f"{ref}.npy"), "--inverse"]
                 + args, "ropev_x.npy", default_dtype="f64")
    # Multi-axis RoPE (conventions.md 3c; make_golden.py's gen_mrope).
    mx = ["rope", "--in", s.d("mrope_x.npy")]
    for ref, args in [
        ("mrope_chunked_233", ["--positions", s.d("mrope_positions.npy"), "--mrope-layout", "chunked",
                               "--mrope-section", "2,3,3"]),
        ("mrope_chunked_233_high", ["--positions", s.d("mrope_positions_high.npy"), "--mrope-layout", "chunked",
                                    "--mrope-section", "2,3,3"]),
        ("mrope_interleaved_233", ["--positions", s.d("mrope_positions.npy"), "--mrope-layout", "interleaved",
                                   "--mrope-section", "2,3,3", "--layout", "interleaved"]),
        ("mrope_axial_2", ["--positions", s.d("mrope_positions_2d.npy"), "--mrope-layout", "axial", "--base", 100]),
    ]:
        s.golden(ref, mx + args, f"{ref}.npy", default_dtype="f64", tol=TOL_HIGHPOS if "high" in ref else None)
    hpi = ["rope", "--positions", s.d("rope_highpos_positions.npy"), "--inverse"]
    s.golden("rope_highpos_half_inverse", hpi + ["--in", s.d("rope_highpos_half.npy")], "rope_highpos_x.npy",
             tol=TOL_HIGHPOS)
    s.golden("rope_highpos_interleaved_inverse", hpi + ["--in", s.d("rope_highpos_interleaved.npy"), "--layout",
             "interleaved"], "rope_highpos_x.npy", tol=TOL_HIGHPOS)

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
        ("attend_temperature_causal", ["--encoder", "temperature", "--attn-scale", 0.5, "--floor-scale", 2,
                                       "--causal", "--offset", 2], "attn_temperature_causal.npy"),
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


# --- attention layers of real models (conventions.md 6b) ----------------------------------------
# Tolerances of the layer cases (absolute): float64 against the float64 reference; float32.
LAYER_TOL = {"f64": 1e-9, "f32": 5e-5}
# Positions near 2^40: the rotation there is ill-conditioned in inv_freq (tests/reference/README.md,
# "Layer cases"): a frequency one ulp away moves an angle by ~1e-4 rad.
LAYER_TOL_HUGE_ROPE = {"f64": 2e-3, "f32": 2e-3}
# --prefill against the same program's one call: the same arithmetic but for the order of the sums.
PREFILL_TOL = {"f64": 1e-12, "f32": 2e-6}


def layer_cases(s):
    """(case, {key: value}) for every line of tests/reference/data/layer_cases.txt."""
    with open(s.d("layer_cases.txt")) as f:
        for line in f:
            if line.strip():
                name, *kv = line.split()
                yield name, dict(item.split("=", 1) for item in kv)


def layer_args(s, name, m):
    """The `posenc attend` arguments of manifest line m of case `name` (its files and flags),
    and the keys of m that were not used (a key the CLI would not express)."""
    f = lambda a: s.d(f"layer_{name}_{a}.npy")  # noqa: E731
    used = {"encoder", "D", "H", "Hkv", "Dh", "N"}
    args = ["attend", "--x", f("x"), "--wq", f("wq"), "--wk", f("wk"), "--wv", f("wv"), "--wo", f("wo"),
            "--heads", m["H"], "--kv-heads", m["Hkv"], "--head-dim", m["Dh"], "--positions", f("positions"),
            "--encoder", m["encoder"]]

    def flag(key, name, when=lambda v: True, value=lambda v: v):
        used.add(key)
        if key in m and when(m[key]):
            args.extend([name] + ([] if value(m[key]) is None else [value(m[key])]))
    flag("causal", "--causal", lambda v: v == "1", lambda v: None)
    flag("window", "--window", lambda v: int(v) > 0)
    flag("chunk", "--chunk", lambda v: int(v) > 0)
    flag("softcap", "--softcap", lambda v: float(v) > 0)
    flag("scale", "--scale", lambda v: v != "default")
    for key, fl, arr in [("has_bq", "--bq", "bq"), ("has_bk", "--bk", "bk"), ("has_bv", "--bv", "bv"),
                         ("has_bo", "--bo", "bo"), ("has_segments", "--segments", "segments"),
                         ("has_sinks", "--sinks", "sinks")]:
        flag(key, fl, lambda v: v == "1", lambda v, arr=arr: f(arr))
    enc = m["encoder"]
    if enc == "sinusoidal":
        flag("layout", "--layout")
        flag("base", "--base")
    elif enc == "learned":
        flag("table_offset", "--table-offset")
        args += ["--table", f("learned_table")]
    elif enc == "rope":
        for key in ("base", "rotary_dim", "layout", "scaling", "factor", "original_max_positions", "beta_fast",
                    "beta_slow", "low_freq_factor", "high_freq_factor"):
            flag(key, "--" + key.replace("_", "-"))
        flag("truncate", "--truncate", value=lambda v: "true" if v == "1" else "false")
        flag("attention_factor", "--attention-factor", lambda v: v != "default")
        if m["scaling"] == "longrope":
            args += ["--short-factors", f("rope_short_factors"), "--long-factors", f("rope_long_factors")]
    elif enc == "alibi":
        flag("max_bias", "--max-bias")
    elif enc == "t5":
        flag("num_buckets", "--num-buckets")
        flag("max_distance", "--max-distance")
        # the CLI's T5 buckets are causal exactly when the layer is
        if m["bidirectional"] == ("0" if m["causal"] == "1" else "1"):
            used.add("bidirectional")
        args += ["--table", f("t5_table")]
    elif enc == "shaw":
        flag("max_relative", "--max-relative")
        args += ["--rel-k", f("shaw_ak"), "--rel-v", f("shaw_av")]
    elif enc == "xl":
        flag("clamp_len", "--clamp-len", lambda v: int(v) > 0)  # 0: no clamp
        flag("base", "--base")
        args += ["--u", f("xl_u"), "--v", f("xl_v"), "--wr", f("xl_wr")]
    return args, sorted(set(m) - used)


def decodes_in_order(pos, seg, prefill):
    """Whether every token from `prefill` on comes after each earlier token of its segment (the
    condition for a decode loop to reproduce one call)."""
    last = {}
    for j, p in enumerate(pos):
        g = 0 if seg is None else int(seg[j])
        if g < 0:
            continue
        if j >= prefill and g in last and last[g] >= p:
            return False
        last[g] = max(last.get(g, p), p)
    return True


def group_layers(s):
    cases = list(layer_cases(s))
    s.ok("layers_manifest", len(cases) >= 30, f"{len(cases)} cases in layer_cases.txt")
    for name, m in cases:
        args, unused = layer_args(s, name, m)
        tag = f"layer_{name}"
        if not s.ok(tag, not unused, f"manifest keys the command line does not express: {unused}"):
            continue
        hugepos_rope = name == "rope_mqa_hugepos_window_causal"
        tol = LAYER_TOL_HUGE_ROPE if hugepos_rope else LAYER_TOL
        ref = np.load(s.d(f"layer_{name}_y.npy"))
        s.golden(tag, args, ref, tol=tol, absolute=True)
        # A decode loop: the first P tokens in one call, then one token per step.
        pos = np.load(s.d(f"layer_{name}_positions.npy"))
        seg = np.load(s.d(f"layer_{name}_segments.npy")) if m["has_segments"] == "1" else None
        n = int(m["N"])
        if m["causal"] != "1" or m.get("scaling") in ("dynamic", "longrope"):
            continue
        for prefill in sorted({0, n // 2, n}):
            if not decodes_in_order(pos, seg, prefill):
                s.fails(f"layer_{name}_prefill{prefill}_out_of_order", args + ["--prefill", prefill],
                        ["--prefill", "position", "increasing order"])
                continue
            for dt in ("f64", "f32"):
                one = s.w(f"{tag}_{dt}_2.npy")
                ptag = f"{tag}_prefill{prefill} [{dt}]"
                out = s.w(f"{tag}_prefill{prefill}_{dt}.npy")
                rc, _, err = s.run(args + ["--dtype", dt, "--prefill", prefill, "-o", out])
                if s.ok(ptag, rc == 0, f"exit {rc}: {err.strip()}"):
                    y = np.load(out)
                    s.compare(ptag, y, ref, dt, tol[dt], absolute=True)
                    if os.path.exists(one):
                        s.compare(ptag + " vs one call", y, np.load(one).astype(np.float64), dt,
                                  PREFILL_TOL[dt])


def reference_layer():
    """layer_attention of tests/reference/make_golden.py (the float64 reference of 6b)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "reference"))
    import make_golden  # noqa: E402
    return make_golden.layer_attention


def model_layer(s, name, layer_attention, seed, D, H, Hkv, Dh, N, offset, enc, flags, window=0, prefills=()):
    """Random weights of a layer of this shape, written as files; posenc attend (with `flags`)
    against layer_attention, in float64 and float32, and as decode loops with each prefill."""
    rng = np.random.default_rng(seed)
    r32 = lambda shape, scale=1.0: (rng.standard_normal(shape) * scale).astype(np.float32).astype(np.float64)  # noqa: E731
    arrays = dict(x=r32((N, D)), wq=r32((D, H * Dh), D ** -0.5), wk=r32((D, Hkv * Dh), D ** -0.5),
                  wv=r32((D, Hkv * Dh), D ** -0.5), wo=r32((H * Dh, D), (H * Dh) ** -0.5))
    paths = {k: s.save(f"{name}_{k}.npy", v) for k, v in arrays.items()}
    pos = np.arange(N, dtype=np.int64) + offset
    ref = layer_attention(arrays["x"], arrays["wq"], arrays["wk"], arrays["wv"], arrays["wo"], H, Hkv, Dh, pos,
                          enc, causal=True, window=window)["y"]
    args = ["attend", "--x", paths["x"], "--wq", paths["wq"], "--wk", paths["wk"], "--wv", paths["wv"],
            "--wo", paths["wo"], "--heads", H, "--kv-heads", Hkv, "--offset", offset, "--causal"] + flags
    if window:
        args += ["--window", window]
    s.golden(name, args, ref, tol=LAYER_TOL, absolute=True, default_dtype="f64")
    for prefill in prefills:
        s.golden(f"{name}_prefill{prefill}", args + ["--prefill", prefill], ref, tol=LAYER_TOL, absolute=True)


def decoded_reference(layer_attention, a, H, Hkv, Dh, pos, enc, prefill):
    """What a decode loop computes (conventions.md 3d): the prefill's rows from one causal call
    over the first P tokens, then row i from one causal call over tokens 0 .. i. For a RoPE
    scaling that depends on the length (dynamic, longrope) every row has the frequency set of the
    sequence so far; for the others this is the one call over all tokens."""
    def call(n):
        return layer_attention(a["x"][:n], a["wq"], a["wk"], a["wv"], a["wo"], H, Hkv, Dh, pos[:n], enc,
                               causal=True)["y"]
    out = np.zeros_like(a["x"])
    if prefill:
        out[:prefill] = call(prefill)
    for i in range(prefill, len(pos)):
        out[i] = call(i + 1)[i]
    return out


def length_dependent_layer(s, name, layer_attention, seed, D, H, Hkv, Dh, N, enc, flags, prefills):
    """A layer whose RoPE frequencies depend on the length, decoded across the original context
    M: each --prefill P against decoded_reference, and the one call against the reference."""
    rng = np.random.default_rng(seed)
    r32 = lambda shape, scale=1.0: (rng.standard_normal(shape) * scale).astype(np.float32).astype(np.float64)  # noqa: E731
    a = dict(x=r32((N, D)), wq=r32((D, H * Dh), D ** -0.5), wk=r32((D, Hkv * Dh), D ** -0.5),
             wv=r32((D, Hkv * Dh), D ** -0.5), wo=r32((H * Dh, D), (H * Dh) ** -0.5))
    paths = {k: s.save(f"{name}_{k}.npy", v) for k, v in a.items()}
    pos = np.arange(N, dtype=np.int64)
    args = ["attend", "--x", paths["x"], "--wq", paths["wq"], "--wk", paths["wk"], "--wv", paths["wv"],
            "--wo", paths["wo"], "--heads", H, "--kv-heads", Hkv, "--head-dim", Dh, "--causal"] + flags
    full = layer_attention(a["x"], a["wq"], a["wk"], a["wv"], a["wo"], H, Hkv, Dh, pos, enc, causal=True)["y"]
    s.golden(name, args, full, tol=LAYER_TOL, absolute=True, default_dtype="f64")
    for prefill in prefills:
        ref = decoded_reference(layer_attention, a, H, Hkv, Dh, pos, enc, prefill)
        # A prefill that ends below M leaves rows with another set than the one call's: those cases
        # test the re-rotation (longrope past a prefill beyond M keeps one set throughout).
        if enc["scaling"] in ("longrope", "dynamic") and (prefill < enc["original_max_positions"]
                                                          or enc["scaling"] == "dynamic"):
            assert np.max(np.abs(ref - full)) > 1e-3, (name, prefill)
        s.golden(f"{name}_prefill{prefill}", args + ["--prefill", prefill], ref, tol=LAYER_TOL, absolute=True)


def group_models(s):
    layer_attention = reference_layer()
    # Decoding across the original context M = 12 with the RoPE scalings whose frequencies
    # depend on the length: Phi-3's LongRoPE (short set, then the long one) and dynamic NTK (a new
    # base at every length past M). The cached keys follow the sequence's set.
    rng = np.random.default_rng(20260)
    short = s.save("model_longrope_short.npy", rng.uniform(1, 5, 4).astype(np.float32).astype(np.float64))
    long_ = s.save("model_longrope_long.npy", rng.uniform(1, 5, 4).astype(np.float32).astype(np.float64))
    longrope = dict(encoder="rope", base=10000.0, rotary_dim=8, layout="half", scaling="longrope", factor=4.0,
                    original_max_positions=12, rope_short_factors=np.load(short), rope_long_factors=np.load(long_))
    length_dependent_layer(s, "model_longrope_decode", layer_attention, 20261, 32, 4, 2, 8, 20, longrope,
                           ["--encoder", "rope", "--scaling", "longrope", "--factor", 4, "--original-max-positions",
                            12, "--short-factors", short, "--long-factors", long_], prefills=(0, 5, 12, 15))
    # The scalings whose frequencies do not depend on the length, decoded across the same M: the
    # decode loop equals the one call.
    for sc, extra, flags in [
        ("none", {}, []), ("linear", dict(factor=2.0), ["--factor", 2]), ("ntk", dict(factor=2.0), ["--factor", 2]),
        ("yarn", dict(factor=4.0, beta_fast=32.0, beta_slow=1.0, truncate=1, attention_factor="default"),
         ["--factor", 4]),
        ("llama3", dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0), ["--factor", 8])]:
        enc = dict(encoder="rope", base=10000.0, rotary_dim=8, layout="half", scaling=sc, original_max_positions=12,
                   **extra)
        length_dependent_layer(s, f"model_{sc}_decode", layer_attention, 20263, 32, 4, 2, 8, 20, enc,
                               ["--encoder", "rope", "--scaling", sc, "--original-max-positions", 12] + flags,
                               prefills=(0, 5))
    dynamic = dict(encoder="rope", base=10000.0, rotary_dim=8, layout="half", scaling="dynamic", factor=2.0,
                   original_max_positions=12)
    length_dependent_layer(s, "model_dynamic_decode", layer_attention, 20262, 32, 4, 4, 8, 20, dynamic,
                           ["--encoder", "rope", "--scaling", "dynamic", "--factor", 2, "--original-max-positions",
                            12], prefills=(0, 5, 15))
    # LLaMA 3 8B's head structure (32 query heads, 8 key/value heads of 128) over a narrow width.
    llama3 = dict(encoder="rope", base=500000.0, rotary_dim=128, layout="half", scaling="llama3", factor=8.0,
                  original_max_positions=8192, low_freq_factor=1.0, high_freq_factor=4.0)
    model_layer(s, "model_llama3", layer_attention, 20240, 256, 32, 8, 128, 24, 8180, llama3,
                ["--head-dim", 128, "--encoder", "rope", "--base", 500000, "--scaling", "llama3", "--factor", 8,
                 "--original-max-positions", 8192, "--low-freq-factor", 1, "--high-freq-factor", 4],
                prefills=(0, 7, 24))
    # Mistral 7B's grouping (4 query heads per key/value head) and a sliding window of 4, with
    # Dh = D / H: the decode loops' cache drops the keys that fall out of the window.
    mistral = dict(encoder="rope", base=1000000.0, rotary_dim=8, layout="half", scaling="none")
    model_layer(s, "model_mistral", layer_attention, 20250, 64, 8, 2, 8, 20, 0, mistral,
                ["--encoder", "rope", "--base", 1000000], window=4, prefills=(0, 3, 11))


def group_layer_errors(s):
    """Bad input for the flags of the layers of real models: every message names the flag, the
    file and both shapes, and where each number of the expected shape came from."""
    m = dict(layer_cases(s))
    c = "none_gqa_bias"  # D 24, H 4, Hkv 2, Dh 10, N 12, biases bq bk bv bo
    base, _ = layer_args(s, c, m[c])
    f = lambda case, a: s.d(f"layer_{case}_{a}.npy")  # noqa: E731
    fc = lambda a: f(c, a)  # noqa: E731
    # the arguments of case c with flag's value replaced (None: flag and value removed)

    def sub(flag, value, args=None):
        args = list(base if args is None else args)
        i = args.index(flag)
        if value is None:
            del args[i:i + 2]
        else:
            args[i + 1] = value
        return args
    bare = sub("--bo", None, sub("--bv", None, sub("--bk", None, sub("--bq", None))))
    d, h, hkv, dh = "D = 24 from --x", "H = 4 from --heads", "Hkv = 2 from --kv-heads", "Dh = 10 from --head-dim"
    bad = {
        "pos_f8": s.save("l_pos_f8.npy", np.arange(12, dtype=np.float64)),
        "pos_neg": s.save("l_pos_neg.npy", np.array([0, 1, 2, 3, -1] + list(range(5, 12)), np.int64)),
        "pos_2d": s.save("l_pos_2d.npy", np.zeros((12, 1), np.int64)),
        "pos_len": s.save("l_pos_len.npy", np.arange(13, dtype=np.int64)),
        "seg_len": s.save("l_seg_len.npy", np.zeros(11, np.int64)),
        "seg_f8": s.save("l_seg_f8.npy", np.zeros(12)),
        "seg_2d": s.save("l_seg_2d.npy", np.zeros((2, 6), np.int64)),
        "sinks_len": s.save("l_sinks5.npy", np.zeros(5)),
        "sinks_2d": s.save("l_sinks_2d.npy", np.zeros((4, 1))),
        "sinks_nan": s.save("l_sinks_nan.npy", np.array([0.5, 1.0, np.nan, 0.0])),
        "sinks_inf": s.save("l_sinks_inf.npy", np.array([0.5, np.inf, 1.0, 0.0])),
        "sinks_minf": s.save("l_sinks_minf.npy", np.array([-np.inf, 0.0, 1.0, 0.0])),
        "bq_nan": s.save("l_bq_nan.npy", np.where(np.arange(40) == 7, np.nan, np.load(fc("bq")))),
        "bo_big": s.save("l_bo_big.npy", np.where(np.arange(24) == 3, 1e300, np.load(fc("bo")))),
        "wr_dd": s.save("l_wr_dd.npy", np.zeros((24, 24))),
        "u_dh6": s.save("l_u_dh6.npy", np.zeros((4, 6))),
        "ak_dh6": s.save("l_ak_dh6.npy", np.zeros((7, 6))),
        "t5_h2": s.save("l_t5_h2.npy", np.zeros((16, 2))),
    }
    xl = "xl_gqa_causal"  # D 24, H 4, Hkv 2, Dh 10
    xl_args, _ = layer_args(s, xl, m[xl])
    shaw = "shaw_gqa_segments_sinks_bidir"  # D 24, H 4, Hkv 2, Dh 10, K 3, segments, sinks
    shaw_args, _ = layer_args(s, shaw, m[shaw])
    t5 = "t5_gqa_softcap_bidir"  # D 24, H 4, Hkv 2, Dh 10, softcap 2
    t5_args, _ = layer_args(s, t5, m[t5])
    rope = "gemma2"  # D 24, H 4, Hkv 2, Dh 10, causal window 5, softcap 2
    rope_args, _ = layer_args(s, rope, m[rope])
    unsorted = "rope_mha_unsorted_causal"
    unsorted_args, _ = layer_args(s, unsorted, m[unsorted])
    cases = [
        # weights: [D, H*Dh], [D, Hkv*Dh], [H*Dh, D]
        ("layer_wq_shape", sub("--wq", fc("wk")), ["--wq", "layer_none_gqa_bias_wk.npy", "expected shape [24, 40]",
                                                   "[D, H * Dh]", d, h, dh, "got [24, 20]"]),
        ("layer_wk_shape", sub("--wk", fc("wq")), ["--wk", "layer_none_gqa_bias_wq.npy", "expected shape [24, 20]",
                                                   "[D, Hkv * Dh]", d, hkv, dh, "got [24, 40]"]),
        ("layer_wv_shape", sub("--wv", fc("wo")), ["--wv", "layer_none_gqa_bias_wo.npy", "expected shape [24, 20]",
                                                   "[D, Hkv * Dh]", d, hkv, dh, "got [40, 24]"]),
        ("layer_wo_shape", sub("--wo", fc("wq")), ["--wo", "layer_none_gqa_bias_wq.npy", "expected shape [40, 24]",
                                                   "[H * Dh, D]", h, dh, d, "got [24, 40]"]),
        ("layer_wq_1d", sub("--wq", fc("bq")), ["--wq", "layer_none_gqa_bias_bq.npy", "[24, 40]", "got [40]"]),
        # biases: [H*Dh], [Hkv*Dh], [Hkv*Dh], [D]
        ("layer_bq_shape", sub("--bq", fc("bk")), ["--bq", "layer_none_gqa_bias_bk.npy", "expected shape [40]",
                                                   "[H * Dh]", h, dh, "got [20]"]),
        ("layer_bk_shape", sub("--bk", fc("bq")), ["--bk", "layer_none_gqa_bias_bq.npy", "expected shape [20]",
                                                   "[Hkv * Dh]", hkv, dh, "got [40]"]),
        ("layer_bv_shape", sub("--bv", fc("bo")), ["--bv", "layer_none_gqa_bias_bo.npy", "expected shape [20]",
                                                   "[Hkv * Dh]", hkv, dh, "got [24]"]),
        ("layer_bo_shape", sub("--bo", fc("bk")), ["--bo", "layer_none_gqa_bias_bk.npy", "expected shape [24]",
                                                   "[D]", d, "got [20]"]),
        ("layer_bq_2d", sub("--bq", fc("wq")), ["--bq", "layer_none_gqa_bias_wq.npy", "[40]", "got [24, 40]"]),
        ("layer_bq_nan", sub("--bq", bad["bq_nan"]), ["--bq", "l_bq_nan.npy", "element [7] is nan"]),
        ("layer_bo_overflows_f32", sub("--bo", bad["bo_big"]) + ["--dtype", "f32"],
         ["--bo", "l_bo_big.npy", "element [3] = 1e+300 overflows f32"]),
        ("layer_bq_missing_file", sub("--bq", s.w("nobq.npy")), ["--bq", "nobq.npy", "No such file"]),
        # heads
        ("layer_kv_heads_divide", sub("--kv-heads", 3), ["--kv-heads = 3", "--heads = 4"]),
        ("layer_kv_heads_more", sub("--kv-heads", 8), ["--kv-heads = 8", "--heads = 4"]),
        ("layer_kv_heads_0", sub("--kv-heads", 0), ["--kv-heads: 0 must be >= 1"]),
        ("layer_kv_heads_2^25", sub("--kv-heads", 1 << 25), ["--kv-heads: 33554432", "limit 2^24"]),
        ("layer_head_dim_mismatch", sub("--head-dim", 8), ["--wq", "expected shape [24, 32]", "Dh = 8 from --head-dim",
                                                           "got [24, 40]"]),
        ("layer_head_dim_default", sub("--head-dim", None), ["--wq", "expected shape [24, 24]",
                                                             "Dh = D / H = 24 / 4 = 6", "got [24, 40]"]),
        ("layer_heads_divide_d", sub("--kv-heads", 7, sub("--heads", 7, sub("--head-dim", None))),
         ["--heads = 7", "does not divide D = 24", "--head-dim"]),
        ("layer_head_dim_0", sub("--head-dim", 0), ["--head-dim: 0 must be >= 1"]),
        ("layer_head_dim_2^24+1", sub("--head-dim", (1 << 24) + 1), ["--head-dim", "limit 2^24"]),
        # positions
        ("layer_positions_length", sub("--positions", bad["pos_len"]),
         ["--positions", "l_pos_len.npy", "expected shape [12]", "N from --x", "got [13]"]),
        ("layer_positions_negative", sub("--positions", bad["pos_neg"]),
         ["--positions", "l_pos_neg.npy", "position[4] = -1 must be >= 0"]),
        ("layer_positions_dtype", sub("--positions", bad["pos_f8"]), ["--positions", "l_pos_f8.npy", "<i8", "<f8"]),
        ("layer_positions_2d", sub("--positions", bad["pos_2d"]), ["--positions", "l_pos_2d.npy", "[N]", "[12, 1]"]),
        ("layer_positions_and_offset", base + ["--offset", 3], ["--positions", "--offset"]),
        # segments
        ("layer_segments_length", bare + ["--segments", bad["seg_len"]],
         ["--segments", "l_seg_len.npy", "expected shape [12]", "N from --x", "got [11]"]),
        ("layer_segments_dtype", bare + ["--segments", bad["seg_f8"]], ["--segments", "l_seg_f8.npy", "<i8", "<f8"]),
        ("layer_segments_2d", bare + ["--segments", bad["seg_2d"]], ["--segments", "l_seg_2d.npy", "[N]", "[2, 6]"]),
        # sinks
        ("layer_sinks_length", bare + ["--sinks", bad["sinks_len"]],
         ["--sinks", "l_sinks5.npy", "expected shape [4]", h, "got [5]"]),
        ("layer_sinks_2d", bare + ["--sinks", bad["sinks_2d"]], ["--sinks", "l_sinks_2d.npy", "[4]", "got [4, 1]"]),
        ("layer_sinks_nan", bare + ["--sinks", bad["sinks_nan"]], ["--sinks", "l_sinks_nan.npy", "element [2] is nan"]),
        ("layer_sinks_inf", bare + ["--sinks", bad["sinks_inf"]], ["--sinks", "l_sinks_inf.npy", "element [1] is inf"]),
        ("layer_sinks_minus_inf", bare + ["--sinks", bad["sinks_minf"]],
         ["--sinks", "l_sinks_minf.npy", "element [0] is -inf", "finite"]),
        # soft-capping, window, chunk
        ("layer_softcap_0", base + ["--softcap", 0], ["--softcap: 0 must be > 0"]),
        ("layer_softcap_negative", base + ["--softcap", -1], ["--softcap: -1 must be > 0"]),
        ("layer_softcap_nan", base + ["--softcap", "nan"], ["--softcap: nan is not a finite number"]),
        ("layer_softcap_inf", base + ["--softcap", "inf"], ["--softcap: inf is not a finite number"]),
        ("layer_softcap_1e400", base + ["--softcap", "1e400"], ["--softcap: 1e400 is not a finite number"]),
        ("layer_softcap_overflows_f32", base + ["--softcap", 1e300, "--dtype", "f32"],
         ["--softcap: 1e+300 overflows f32"]),
        ("layer_window_0", base + ["--window", 0], ["--window: 0 must be >= 1"]),
        ("layer_window_negative", base + ["--window", -3], ["--window: -3 must be >= 1"]),
        ("layer_window_past_int64", base + ["--window", "99999999999999999999"], ["--window", "outside the range of int64"]),
        ("layer_chunk_0", base + ["--chunk", 0], ["--chunk: 0 must be >= 1"]),
        ("layer_chunk_negative", base + ["--chunk", -2], ["--chunk: -2 must be >= 1"]),
        # --prefill
        ("layer_prefill_negative", base + ["--causal", "--prefill", -1], ["--prefill: -1 must be >= 0"]),
        ("layer_prefill_past_n", base + ["--causal", "--prefill", 13], ["--prefill: 13 is more than N = 12", "--x"]),
        ("layer_prefill_2^33", base + ["--causal", "--prefill", 1 << 33], ["--prefill: 8589934592", "limit 2^32"]),
        ("layer_prefill_not_causal", base + ["--prefill", 4], ["--prefill 4", "--causal"]),
        ("layer_prefill_unsorted_positions", unsorted_args + ["--prefill", 2],
         ["--prefill 2", "index 3", "position 3", "position 17", "index 2", "increasing order"]),
        # encoder tables follow Hkv and Dh
        ("layer_xl_wr_shape", sub("--wr", bad["wr_dd"], xl_args),
         ["--wr", "l_wr_dd.npy", "expected shape [24, 40]", "[D, H * Dh]", d, h, dh, "got [24, 24]"]),
        ("layer_xl_u_shape", sub("--u", bad["u_dh6"], xl_args),
         ["--u", "l_u_dh6.npy", "expected shape [4, 10]", "[H, Dh]", h, dh, "got [4, 6]"]),
        ("layer_shaw_rel_k_head_dim", sub("--rel-k", bad["ak_dh6"], shaw_args),
         ["--rel-k", "l_ak_dh6.npy", "expected shape [7, 10]", "K = 3 from --max-relative", dh, "got [7, 6]"]),
        ("layer_t5_table_heads", sub("--table", bad["t5_h2"], t5_args),
         ["--table", "l_t5_h2.npy", "[16, 4]", "got [16, 2]"]),
        ("layer_rope_rotary_dim", sub("--rotary-dim", 12, rope_args), ["rotary_dim = 12", "head_dim = 10"]),
    ]
    sentinel = b"existing output, must stay untouched\n"
    for name, args, frags in cases:
        s.fails(name, args, frags)
        s.fails(f"{name} (output exists)", args, frags, sentinel=sentinel)
    print(f"{len(cases)} layer bad-input cases")


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
        ("bad_dtype", rope + ["--dtype", "f128"], ["--dtype", "f128"]),
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
        ("huge_shape", ["rope", "--in", bad["huge_shape"]], ["--in", "huge_shape.npy", "too large"]),
        ("version4", ["rope", "--in", bad["version4"]], ["--in", "version4.npy", "version 4"]),
        ("dtype_i2", ["rope", "--in", bad["i2"]], ["--in", "i2.npy", "<i2"]),
        ("dtype_big_endian", ["rope", "--in", bad["be"]], ["--in", "be.npy", ">f4", "big-endian"]),
        ("fortran_order", ["rope", "--in", bad["fortran"]], ["--in", "fortran.npy", "Fortran"]),
        ("dtype_i8_for_floats", ["rope", "--in", bad["i8"]], ["--in", "i8.npy", "<f4, <f8, <f2", "<i8"]),
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
        ("table_zero_dim", table + ["--dim", 0, "--len", 4], ["--dim: 0 must be >= 1"]),
        ("table_logts_dim2", table + ["--dim", 2, "--len", 4, "--frequencies", "log-timescale"], ["dim = 2", "log_timescale"]),
        ("table_negative_len", table + ["--dim", 16, "--len", -3], ["--len: -3 must be >= 0"]),
        ("table_negative_offset", table + ["--dim", 16, "--len", 3, "--offset", -1], ["--offset: -1 must be >= 0"]),
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
        ("rope_negative_offset", rope + ["--offset", -1], ["--offset: -1 must be >= 0"]),
        ("rope_odd_rotary_dim", rope + ["--rotary-dim", 7], ["rotary_dim = 7", "even"]),
        ("rope_rotary_dim_too_big", rope + ["--rotary-dim", 32], ["rotary_dim = 32", "head_dim = 16"]),
        ("rope_rotary_dim_zero", rope + ["--rotary-dim", 0], ["--rotary-dim: 0 must be >= 1"]),
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
        # the RoPE variants of real models
        ("rope_freq_factors_shape", rope + ["--freq-factors", bad["factors4"]],
         ["--freq-factors", "factors4.npy", "[8]", "[4]"]),
        ("rope_freq_factors_missing", rope + ["--freq-factors", s.w("noff.npy")], ["--freq-factors", "noff.npy"]),
        ("rope_proportional_rotary_dim", rope + ["--scaling", "proportional", "--rotary-dim", 8],
         ["proportional", "rotary_dim = 8", "head_dim = 16"]),
        ("rope_partial_rotary_factor_range", rope + ["--scaling", "proportional", "--partial-rotary-factor", 2],
         ["partial_rotary_factor = 2", "[0, 1]"]),
        ("rope_partial_rotary_factor_other", rope + ["--partial-rotary-factor", 0.5],
         ["partial_rotary_factor = 0.5", "proportional"]),
        ("rope_mscale_alone", rope + ["--scaling", "longrope", "--original-max-positions", 8, "--short-mscale", 1.1]
         + lr, ["short_mscale and long_mscale must be given together"]),
        ("rope_mscale_not_longrope", rope + ["--short-mscale", 1.1, "--long-mscale", 1.2], ["apply to longrope"]),
        ("rope_rotary_dims_bogus", rope + ["--rotary-dims", "middle"],
         ["--rotary-dims: 'middle' is not one of leading or trailing"]),
        # the query temperature
        ("attend_temperature_floor0", ["attend", "--x", d("attn_x.npy"), "--wq", d("attn_wq.npy"), "--wk",
                                       d("attn_wk.npy"), "--wv", d("attn_wv.npy"), "--wo", d("attn_wo.npy"),
                                       "--heads", 2, "--encoder", "temperature", "--floor-scale", 0],
         ["floor_scale = 0", "must be finite and > 0"]),
        # multi-axis RoPE
        ("mrope_no_positions", ["rope", "--in", d("mrope_x.npy"), "--mrope-layout", "chunked", "--mrope-section",
                                "2,3,3"], ["--mrope-layout", "needs --positions"]),
        ("mrope_section_without_layout", ["rope", "--in", d("mrope_x.npy"), "--positions", d("mrope_positions.npy"),
                                          "--mrope-section", "2,3,3"], ["--mrope-section", "needs --mrope-layout"]),
        ("mrope_positions_1d", ["rope", "--in", d("mrope_x.npy"), "--positions", s.save("pos5.npy", np.arange(5)),
                                "--mrope-layout", "chunked", "--mrope-section", "2,3,3"],
         ["--positions", "pos5.npy", "[A, 5]", "[5]"]),
        ("mrope_positions_n", ["rope", "--in", d("mrope_x.npy"), "--positions", s.save("pos3x4.npy",
                                np.zeros((3, 4), np.int64)), "--mrope-layout", "chunked", "--mrope-section", "2,3,3"],
         ["--positions", "pos3x4.npy", "[A, 5]", "[3, 4]"]),
        ("mrope_section_sum", ["rope", "--in", d("mrope_x.npy"), "--positions", d("mrope_positions.npy"),
                               "--mrope-layout", "chunked", "--mrope-section", "2,3,2"],
         ["mrope_section sums to 7", "rotary_dim / 2 = 8"]),
        ("mrope_section_word", ["rope", "--in", d("mrope_x.npy"), "--positions", d("mrope_positions.npy"),
                                "--mrope-layout", "chunked", "--mrope-section", "2,x,3"], ["--mrope-section", "'x'"]),
        ("mrope_axes_mismatch", ["rope", "--in", d("mrope_x.npy"), "--positions", d("mrope_positions_2d.npy"),
                                 "--mrope-layout", "chunked", "--mrope-section", "2,3,3"],
         ["positions have 2 axes", "3"]),
        ("mrope_negative", ["rope", "--in", d("mrope_x.npy"), "--positions", s.save("posneg.npy",
                            np.array([[0, 1, 2, 3, 4]] * 2 + [[0, 1, -2, 3, 4]], np.int64)), "--mrope-layout", "chunked",
                            "--mrope-section", "2,3,3"], ["--positions", "posneg.npy", "position -2"]),
        ("mrope_inverse", ["rope", "--in", d("mrope_x.npy"), "--positions", d("mrope_positions.npy"), "--mrope-layout",
                           "chunked", "--mrope-section", "2,3,3", "--inverse"], ["--inverse", "--mrope-layout"]),
        # bias
        ("bias_heads0", ["bias", "--encoder", "alibi", "--heads", 0, "--len", 4], ["--heads: 0 must be >= 1"]),
        ("bias_negative_len", ["bias", "--encoder", "alibi", "--heads", 2, "--len", -1], ["--len: -1 must be >= 0"]),
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
        ("attend_heads0", attend_args(s, heads=0) + ["--encoder", "none"], ["--heads: 0 must be >= 1"]),
        ("attend_scale_inf", att + ["--encoder", "none", "--scale", "inf"], ["scale", "finite"]),
        ("attend_negative_offset", att + ["--encoder", "none", "--offset", -2], ["--offset: -2 must be >= 0"]),
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
                                                        "--table-offset", -1], ["--table-offset: -1 must be >= 0"]),
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
    sentinel = b"existing output, must stay untouched\n"
    for name, args, frags in cases:
        if name == "missing_output_flag":
            s.error_run(name, table + ["--dim", 16, "--len", 4], frags)
        elif name == "output_dir_missing":
            o = s.w("no/such/dir/out.npy")
            s.error_run(name, table + ["--dim", 16, "--len", 4, "-o", o], frags)
            s.ok(name, not os.path.exists(s.w("no")), "a directory was created")
        else:
            s.fails(name, args, frags)
            s.fails(f"{name} (output exists)", args, frags, sentinel=sentinel)


# --- the flags of each --encoder (docs/cli.md, "posenc attend" and "posenc bias") ---------------
def or_list(names):
    """"a, b or c", as the program's messages list names."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


ATTEND_ENCODERS = ["none", "sinusoidal", "learned", "rope", "alibi", "t5", "shaw", "xl", "temperature",
                   "bert-relative", "deberta"]
ROPE_FLAGS = ["--rotary-dim", "--scaling", "--factor", "--original-max-positions", "--beta-fast", "--beta-slow",
              "--truncate", "--attention-factor", "--mscale", "--mscale-all-dim", "--low-freq-factor",
              "--high-freq-factor", "--short-factors", "--long-factors", "--short-mscale", "--long-mscale",
              "--partial-rotary-factor", "--rotary-dims", "--freq-factors"]
DEBERTA_FLAGS = ["--rel-key-table", "--rel-query-table", "--rel-embeddings", "--rel-ln-weight", "--rel-ln-bias",
                 "--rel-ln-eps", "--position-buckets", "--max-relative-positions", "--pos-att-type"]
# Every flag that some encoders take and the others refuse, and the encoders that take it (in the
# order of --encoder's names).
ATTEND_FLAGS = {
    "--layout": ["sinusoidal", "rope"], "--frequencies": ["sinusoidal"], "--base": ["sinusoidal", "rope", "xl"],
    "--pe-scale": ["sinusoidal"], "--table": ["learned", "t5"], "--table-offset": ["learned"],
    "--max-bias": ["alibi"], "--num-buckets": ["t5"], "--max-distance": ["t5"],
    "--rel-k": ["shaw"], "--rel-v": ["shaw"], "--max-relative": ["shaw"],
    "--u": ["xl"], "--v": ["xl"], "--wr": ["xl"], "--clamp-len": ["xl"],
    "--attn-scale": ["temperature"], "--floor-scale": ["temperature"],
    "--distance-table": ["bert-relative"], "--position-embedding-type": ["bert-relative"],
    **{f: ["deberta"] for f in DEBERTA_FLAGS},
    **{f: ["rope"] for f in ROPE_FLAGS},
}
BIAS_FLAGS = {"--max-bias": ["alibi"], "--table": ["t5"], "--num-buckets": ["t5"], "--max-distance": ["t5"]}


def group_encoder_flags(s):
    d = s.d
    att = attend_args(s)
    # A value each flag takes from the encoders it applies to, so that only the encoder decides.
    value = {
        "--layout": "interleaved", "--frequencies": "vaswani", "--base": 100, "--pe-scale": 1,
        "--table": d("attn_learned_table.npy"), "--table-offset": 0, "--max-bias": 4, "--num-buckets": 32,
        "--max-distance": 128, "--rel-k": d("attn_shaw_ak.npy"), "--rel-v": d("attn_shaw_av.npy"),
        "--max-relative": 3, "--u": d("attn_xl_u.npy"), "--v": d("attn_xl_v.npy"), "--wr": d("attn_xl_wr.npy"),
        "--clamp-len": 3, "--rotary-dim": 4, "--scaling": "linear", "--factor": 2, "--original-max-positions": 8,
        "--beta-fast": 32, "--beta-slow": 1, "--truncate": "true", "--attention-factor": 1, "--mscale": 1,
        "--mscale-all-dim": 1, "--low-freq-factor": 1, "--high-freq-factor": 4,
        "--short-factors": d("rope_longrope_short_factors.npy"), "--long-factors": d("rope_longrope_long_factors.npy"),
        "--short-mscale": 1.1, "--long-mscale": 1.2, "--partial-rotary-factor": 1, "--rotary-dims": "leading",
        "--freq-factors": d("ropev_freq_factors.npy"), "--attn-scale": 0.1, "--floor-scale": 8192,
        "--distance-table": d("attn_bert_table.npy"), "--position-embedding-type": "relative_key_query",
        "--rel-key-table": d("deb_k_r.npy"), "--rel-query-table": d("deb_q_r.npy"),
        "--rel-embeddings": d("deberta_rel_embeddings.npy"), "--rel-ln-weight": d("deberta_ln_weight.npy"),
        "--rel-ln-bias": d("deberta_ln_bias.npy"), "--rel-ln-eps": 1e-6, "--position-buckets": 8,
        "--max-relative-positions": 16, "--pos-att-type": "c2p",
    }
    # What each encoder needs, as its message names it.
    needs = {
        "learned": [("--table", d("attn_learned_table.npy"), "pe.npy ([L, D])")],
        "t5": [("--table", d("attn_t5_table.npy"), "t.npy ([num_buckets, H])")],
        "shaw": [("--rel-k", d("attn_shaw_ak.npy"), "ak.npy ([2K+1, Dh])"),
                 ("--rel-v", d("attn_shaw_av.npy"), "av.npy ([2K+1, Dh])")],
        "xl": [("--u", d("attn_xl_u.npy"), "u.npy ([H, Dh])"), ("--v", d("attn_xl_v.npy"), "v.npy ([H, Dh])"),
               ("--wr", d("attn_xl_wr.npy"), "wr.npy ([D, H*Dh])")],
        "bert-relative": [("--distance-table", d("attn_bert_table.npy"), "e.npy ([2L-1, Dh])")],
    }

    def needed(e, but=None):
        return [a for flag, path, _ in needs.get(e, []) if flag != but for a in (flag, path)]

    # Refused: every encoder-specific flag with every encoder that does not take it.
    for flag, takers in ATTEND_FLAGS.items():
        for e in ATTEND_ENCODERS:
            if e in takers:
                continue
            s.fails(f"attend_flag_applies {flag} --encoder {e}",
                    att + ["--encoder", e] + needed(e) + [flag, value[flag]],
                    [f"{flag}: applies to --encoder {or_list(takers)}, not {e}"])
    # Taken: no such refusal from the encoders that take the flag.
    for flag, takers in ATTEND_FLAGS.items():
        for e in takers:
            name = f"attend_flag_taken {flag} --encoder {e}"
            rc, _, err = s.run(att + ["--encoder", e] + needed(e) + [flag, value[flag], "-o", s.w("taken.npy")])
            s.ok(name, "applies to --encoder" not in err, f"exit {rc}: {err.strip()}")
    # Needed: each flag an encoder cannot do without, left out.
    for e, flags in needs.items():
        for flag, _, what in flags:
            s.fails(f"attend_needs {e} {flag}", att + ["--encoder", e] + needed(e, but=flag),
                    [f"--encoder: {e} needs {flag} {what}"])
    # Refused first, before any file is read: a foreign flag whose file does not exist.
    s.fails("attend_flag_applies_before_files", att + ["--encoder", "alibi", "--table", s.w("no_such.npy")],
            ["--table: applies to --encoder learned or t5, not alibi"])

    bias = ["bias", "--heads", 3, "--len", 4]
    bias_value = {"--max-bias": 4, "--table": d("t5_table.npy"), "--num-buckets": 32, "--max-distance": 128}
    bias_needs = {"t5": ["--table", d("t5_table.npy")]}
    for flag, takers in BIAS_FLAGS.items():
        for e in ["alibi", "t5"]:
            args = bias + ["--encoder", e] + (bias_needs.get(e, []) if flag != "--table" else []) + [flag, bias_value[flag]]
            if e in takers:
                rc, _, err = s.run(args + ["-o", s.w("taken.npy")])
                s.ok(f"bias_flag_taken {flag} --encoder {e}", rc == 0, f"exit {rc}: {err.strip()}")
            else:
                s.fails(f"bias_flag_applies {flag} --encoder {e}", args,
                        [f"{flag}: applies to --encoder {or_list(takers)}, not {e}"])
    s.fails("bias_needs t5 --table", bias + ["--encoder", "t5"], ["--encoder: t5 needs --table t.npy ([num_buckets, H])"])
    # table has one encoder: a flag of attend's or bias's encoders is no flag of table's.
    s.fails("table_flag_of_alibi", ["table", "--encoder", "sinusoidal", "--dim", 16, "--len", 4, "--max-bias", 4],
            ["--max-bias"])
    # --help says which encoders take each flag (its description may start on the next line).
    rc, so, _ = s.run(["attend", "--help"])
    lines = so.splitlines()
    for flag, takers in ATTEND_FLAGS.items():
        at = [i for i, ln in enumerate(lines) if ln.strip().startswith(flag + " ")]
        text = " ".join(lines[at[0]:at[0] + 2]) if at else ""
        s.ok(f"attend_help {flag}", rc == 0 and f"(--encoder {takers[0]}" in text, text or so[:200])


def group_convert_layout(s):
    """posenc convert-layout against a NumPy transcription of the permutation, and the layer's
    outputs unchanged: attend with the original projections in one layout equals attend with the
    converted ones in the other (grouped heads, partial rotary, a trailing block)."""
    rng = np.random.default_rng(4242)
    D, H, Hkv, Dh, N = 32, 4, 2, 8, 9
    r32 = lambda shape, scale=1.0: (rng.standard_normal(shape) * scale).astype(np.float32).astype(np.float64)  # noqa: E731
    a = dict(x=r32((N, D)), wq=r32((D, H * Dh), 0.3), wk=r32((D, Hkv * Dh), 0.3), wv=r32((D, Hkv * Dh), 0.3),
             wo=r32((H * Dh, D), 0.3), bq=r32((H * Dh,), 0.3))
    p = {k: s.save(f"cl_{k}.npy", v) for k, v in a.items()}

    def permuted(w, heads, R, first, frm, to):
        # column j of the result is column perm[j] of w: pair member m of pair i sits at i + m R/2 (half)
        # or 2i + m (interleaved), inside each head's block [first, first + R)
        place = (lambda i, m: i + m * (R // 2)) if to == "half" else (lambda i, m: 2 * i + m)
        src = (lambda i, m: i + m * (R // 2)) if frm == "half" else (lambda i, m: 2 * i + m)
        perm = np.arange(w.shape[-1])
        for h in range(heads):
            for i in range(R // 2):
                for m in range(2):
                    perm[h * Dh + first + place(i, m)] = h * Dh + first + src(i, m)
        return w[..., perm]

    for R, block in [(8, "leading"), (4, "leading"), (4, "trailing")]:
        first = Dh - R if block == "trailing" else 0
        for frm, to in [("interleaved", "half"), ("half", "interleaved")]:
            tag = f"R{R}_{block}_{frm}_to_{to}"
            conv = ["convert-layout", "--heads", H, "--head-dim", Dh, "--rotary-dim", R, "--rotary-dims", block,
                    "--from", frm, "--to", to]
            s.golden(f"convert_layout_wq_{tag}", conv + ["--in", p["wq"]], permuted(a["wq"], H, R, first, frm, to),
                     default_dtype="f64")
            s.golden(f"convert_layout_bq_{tag}", conv + ["--in", p["bq"]], permuted(a["bq"], H, R, first, frm, to),
                     default_dtype="f64")
            convk = ["convert-layout", "--heads", Hkv, "--head-dim", Dh, "--rotary-dim", R, "--rotary-dims", block,
                     "--from", frm, "--to", to]
            wq2, wk2, bq2 = s.w(f"wq2_{tag}.npy"), s.w(f"wk2_{tag}.npy"), s.w(f"bq2_{tag}.npy")
            ok = all(s.run(c)[0] == 0 for c in (conv + ["--in", p["wq"], "-o", wq2], convk + ["--in", p["wk"], "-o", wk2],
                                                 conv + ["--in", p["bq"], "-o", bq2]))
            s.ok(f"convert_layout_runs_{tag}", ok, "convert-layout failed")
            att = ["attend", "--x", p["x"], "--wv", p["wv"], "--wo", p["wo"], "--heads", H, "--kv-heads", Hkv,
                   "--causal", "--offset", 30, "--encoder", "rope", "--rotary-dim", R, "--rotary-dims", block]
            y1, y2 = s.w(f"y1_{tag}.npy"), s.w(f"y2_{tag}.npy")
            rc1 = s.run(att + ["--wq", p["wq"], "--wk", p["wk"], "--bq", p["bq"], "--layout", frm, "-o", y1])[0]
            rc2 = s.run(att + ["--wq", wq2, "--wk", wk2, "--bq", bq2, "--layout", to, "-o", y2])[0]
            same = rc1 == 0 and rc2 == 0 and np.max(np.abs(np.load(y1) - np.load(y2))) < 1e-12
            s.ok(f"convert_layout_attention_unchanged_{tag}", same, f"exit {rc1}, {rc2}")
    base = ["convert-layout", "--in", p["wq"], "--head-dim", Dh, "--from", "half", "--to", "interleaved"]
    s.fails("convert_layout_width", base + ["--heads", 3], ["--in", "cl_wq.npy", "[32, 32]", "H * Dh = 3 * 8 = 24"])
    s.fails("convert_layout_odd_rotary", base + ["--heads", H, "--rotary-dim", 5], ["--rotary-dim: 5", "even"])
    s.fails("convert_layout_rotary_wide", base + ["--heads", H, "--rotary-dim", 10], ["--rotary-dim: 10", "--head-dim 8"])
    s.fails("convert_layout_no_from", ["convert-layout", "--in", p["wq"], "--heads", H, "--head-dim", Dh, "--to",
                                       "half"], ["--from"])
    s.fails("convert_layout_3d", ["convert-layout", "--in", s.save("cl_3d.npy", np.zeros((2, 2, 32))), "--heads", H,
                                  "--head-dim", Dh, "--from", "half", "--to", "interleaved"],
            ["--in", "cl_3d.npy", "[rows, H * Dh] or [H * Dh]"])


# --- every flag naming a value: the names, and a message listing them for any other word --------
def group_names(s):
    d = s.d
    table = ["table", "--encoder", "sinusoidal", "--dim", 16, "--len", 4]
    rope = ["rope", "--in", d("rope_x.npy")]
    att = attend_args(s)
    bias = ["bias", "--heads", 3, "--len", 4]
    compare = ["compare", "--dim", 16, "--heads", 2, "--max-len", 32, "--tokens", 4, "--time-len", 4,
               "--time-budget", 0]
    dtypes = ["f32", "f64", "f16", "bf16"]
    scalings = ["none", "linear", "ntk", "dynamic", "yarn", "llama3", "longrope", "proportional"]
    encoders = ATTEND_ENCODERS
    compared = [e for e in ATTEND_ENCODERS if e != "temperature"]  # posenc compare's encoders
    # (test name, command line before the flag, flag, its names as docs/cli.md lists them, the
    # message's tail)
    cases = [
        ("table", ["table", "--dim", 16, "--len", 4], "--encoder", ["sinusoidal"], ""),
        ("table", table, "--layout", ["interleaved", "split"], ""),
        ("table", table, "--frequencies", ["vaswani", "log-timescale"], ""),
        ("table", table, "--dtype", dtypes, ""),
        ("rope", rope, "--layout", ["half", "interleaved"], ""),
        ("rope", rope, "--scaling", scalings, ""),
        ("rope", rope, "--truncate", ["true", "false"], ""),
        ("rope", rope, "--rotary-dims", ["leading", "trailing"], ""),
        ("rope", rope + ["--positions", d("mrope_positions.npy"), "--mrope-section", "2,3,3"], "--mrope-layout",
         ["chunked", "interleaved", "axial"], ""),
        ("rope", rope, "--dtype", dtypes, ""),
        ("convert-layout", ["convert-layout", "--in", d("attn_wq.npy"), "--heads", 2, "--head-dim", 8, "--to",
                            "half"], "--from", ["half", "interleaved"], ""),
        ("bias", bias, "--encoder", ["alibi", "t5"], ""),
        ("bias alibi", bias + ["--encoder", "alibi"], "--dtype", dtypes, ""),
        ("attend", att, "--encoder", encoders, ""),
        ("attend sinusoidal", att + ["--encoder", "sinusoidal"], "--layout", ["interleaved", "split"],
         " (--encoder sinusoidal)"),
        ("attend rope", att + ["--encoder", "rope"], "--layout", ["half", "interleaved"], " (--encoder rope)"),
        ("attend sinusoidal", att + ["--encoder", "sinusoidal"], "--frequencies", ["vaswani", "log-timescale"], ""),
        ("attend rope", att + ["--encoder", "rope"], "--scaling", scalings, ""),
        ("attend rope", att + ["--encoder", "rope"], "--truncate", ["true", "false"], ""),
        ("attend none", att + ["--encoder", "none"], "--dtype", dtypes, ""),
        ("attend bert-relative", att + ["--encoder", "bert-relative", "--distance-table", d("attn_bert_table.npy")],
         "--position-embedding-type", ["relative_key", "relative_key_query"], ""),
        ("attend deberta", att + ["--encoder", "deberta"], "--pos-att-type", ["both", "c2p", "p2c"], ""),
        ("compare", compare, "--dtype", dtypes, ""),
        ("compare", compare, "--encoders", compared, ""),
    ]
    for tag, before, flag, names, tail in cases:
        listing = or_list(names)
        # Any other word, a name in another case, and the number CLI11 would read an enum from.
        for bad in ["bogus", names[0].upper(), "1"]:
            s.fails(f"name_refused {tag} {flag} {bad}", before + [flag, bad],
                    [f"{flag}: '{bad}' is not {'' if len(names) == 1 else 'one of '}{listing}{tail}"])
        # Each name is taken (a command may still refuse it with the other flags, not by name).
        for name in names:
            rc, _, err = s.run(before + [flag, name] + (["-o", s.w("named.npy")] if tag != "compare" else []))
            s.ok(f"name_taken {tag} {flag} {name}", f"{flag}: '{name}' is not" not in err, f"exit {rc}: {err.strip()}")
    # A list: each item is checked.
    s.fails("name_refused compare --encoders list", compare + ["--encoders", "rope,bogus,t5"],
            [f"--encoders: 'bogus' is not one of {or_list(compared)}"])
    # --help shows each flag's names.
    for cmd, flag, names in [("table", "--layout", ["interleaved", "split"]), ("rope", "--scaling", scalings),
                             ("rope", "--truncate", ["true", "false"]), ("attend", "--encoder", encoders),
                             ("bias", "--encoder", ["alibi", "t5"]), ("compare", "--dtype", dtypes)]:
        rc, so, _ = s.run([cmd, "--help"])
        s.ok(f"names_help {cmd} {flag}", rc == 0 and f"{flag} {'|'.join(names)}" in so, so[:300])


# --- output paths (docs/cli.md, "Output files") -------------------------------------------------
TABLE16 = ["table", "--encoder", "sinusoidal", "--dim", 16, "--len", 16, "--dtype", "f64"]


def npy_ok(s, name, data, what):
    """Checks that `data` (bytes) is the .npy of TABLE16."""
    ref = np.load(s.d("sin_interleaved_vaswani_D16.npy"))
    try:
        y = np.load(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001  (any parse failure is the finding)
        return s.ok(name, False, f"{what} is not a valid .npy: {e}")
    return s.ok(name, y.dtype == np.float64 and y.shape == ref.shape and np.max(np.abs(y - ref)) <= 1e-12,
                f"{what}: {y.dtype} {y.shape}, not the table")


def read_back(path):
    with open(path, "rb") as f:
        return f.read()


def group_outputs(s):
    umask = os.umask(0)
    os.umask(umask)
    sentinel = b"existing output, must stay untouched\n"

    # A character device is written in place: /dev/null stays /dev/null, even as root.
    rc, _, se = s.run(TABLE16 + ["-o", "/dev/null"])
    st = os.stat("/dev/null")
    s.ok("output_dev_null", rc == 0 and se == "" and stat.S_ISCHR(st.st_mode),
         f"exit {rc}, stderr {se!r}, /dev/null mode {oct(st.st_mode)}")
    s.ok("output_dev_null", not [f for f in os.listdir("/dev") if f.startswith("null.tmp.")],
         "a temporary file was left in /dev")
    # /dev/stdout on a pipe: the .npy arrives on stdout.
    rc, so, se = s.run(TABLE16 + ["-o", "/dev/stdout"], text=False)
    if s.ok("output_dev_stdout", rc == 0, f"exit {rc}: {se!r}"):
        npy_ok(s, "output_dev_stdout", so, "stdout")

    # A FIFO is opened and written in place (the open waits for the reader).
    fifo = s.w("out.fifo")
    os.mkfifo(fifo)
    got = []

    def reader():
        with open(fifo, "rb") as f:
            got.append(f.read())
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    rc, _, se = s.run(TABLE16 + ["-o", fifo], timeout=20)
    t.join(10)
    if t.is_alive():  # the program never opened the FIFO: let the reader see end-of-file
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
    if s.ok("output_fifo", rc == 0 and got, f"exit {rc}: {se!r}, reader got {len(got)} reads"):
        npy_ok(s, "output_fifo", got[0], "the bytes read from the FIFO")
    s.ok("output_fifo", stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced")

    # Symlinks are followed: a chain link2 -> link -> real/target.npy; the target is replaced
    # (keeping its mode), both links stay links to the same names.
    real = s.w("real")
    os.makedirs(real)
    target = os.path.join(real, "target.npy")
    write_raw(target, sentinel)
    os.chmod(target, 0o640)
    os.symlink("real/target.npy", s.w("link.npy"))
    os.symlink("link.npy", s.w("link2.npy"))
    rc, _, se = s.run(TABLE16 + ["-o", s.w("link2.npy")])
    if s.ok("output_symlink", rc == 0, f"exit {rc}: {se!r}"):
        s.ok("output_symlink", os.path.islink(s.w("link2.npy")) and os.readlink(s.w("link2.npy")) == "link.npy"
             and os.path.islink(s.w("link.npy")) and os.readlink(s.w("link.npy")) == "real/target.npy",
             "a link was replaced or changed")
        s.ok("output_symlink", os.path.isfile(target) and not os.path.islink(target), "the target is not a file")
        npy_ok(s, "output_symlink", read_back(target), "the target")
        mode = os.stat(target).st_mode & 0o777
        s.ok("output_symlink", mode == 0o640, f"the target's mode is {oct(mode)}, was 0o640")
    s.ok("output_symlink", not s.leftovers(), f"temporary files left: {s.leftovers()}")

    # A dangling symlink whose directory exists: the file is created where it points.
    os.symlink("real/new.npy", s.w("dangling.npy"))
    rc, _, se = s.run(TABLE16 + ["-o", s.w("dangling.npy")])
    created = os.path.join(real, "new.npy")
    if s.ok("output_dangling_symlink", rc == 0 and os.path.isfile(created), f"exit {rc}: {se!r}"):
        s.ok("output_dangling_symlink", os.path.islink(s.w("dangling.npy")), "the link was replaced")
        npy_ok(s, "output_dangling_symlink", read_back(created), "the new target")
        mode = os.stat(created).st_mode & 0o777
        s.ok("output_dangling_symlink", mode == 0o666 & ~umask, f"mode {oct(mode)}")

    # An existing regular file keeps its mode (and, as root, its owner and group).
    out = s.w("kept.npy")
    write_raw(out, sentinel)
    os.chmod(out, 0o600)
    root = os.geteuid() == 0
    if root:
        os.chown(out, 65534, 65534)
    rc, _, se = s.run(TABLE16 + ["-o", out])
    if s.ok("output_existing_mode", rc == 0, f"exit {rc}: {se!r}"):
        st = os.stat(out)
        s.ok("output_existing_mode", st.st_mode & 0o777 == 0o600, f"mode {oct(st.st_mode & 0o777)}, was 0o600")
        if root:
            s.ok("output_existing_mode", (st.st_uid, st.st_gid) == (65534, 65534),
                 f"owner {st.st_uid}:{st.st_gid}, was 65534:65534")
        npy_ok(s, "output_existing_mode", read_back(out), out)

    # Targets that are refused, each left as it was.
    d = s.w("a_directory")
    os.makedirs(d)
    write_raw(os.path.join(d, "inside"), sentinel)
    before = (sorted(os.listdir(d)), os.stat(d).st_mtime_ns)
    s.error_run("output_directory", TABLE16 + ["-o", d], ["-o", "a_directory", "is a directory"])
    s.ok("output_directory", (sorted(os.listdir(d)), os.stat(d).st_mtime_ns) == before, "the directory changed")
    os.symlink("a_directory", s.w("dirlink"))
    s.error_run("output_symlink_to_directory", TABLE16 + ["-o", s.w("dirlink")], ["-o", "dirlink", "is a directory"])
    s.ok("output_symlink_to_directory", sorted(os.listdir(d)) == before[0], "the directory changed")
    sock_path = s.w("sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(sock_path)
    s.error_run("output_socket", TABLE16 + ["-o", sock_path], ["-o", "sock", "is not a regular file", "socket"])
    s.ok("output_socket", stat.S_ISSOCK(os.lstat(sock_path).st_mode), "the socket was replaced")
    sock.close()
    blk = s.w("blockdev")
    try:
        os.mknod(blk, stat.S_IFBLK | 0o600, os.makedev(7, 200))
    except OSError as e:
        print(f"SKIP output_block_device: cannot make a block device node here ({e.strerror})")
    else:
        s.error_run("output_block_device", TABLE16 + ["-o", blk], ["-o", "blockdev", "is not a regular file",
                                                                   "block device"])
        s.ok("output_block_device", stat.S_ISBLK(os.lstat(blk).st_mode), "the device node was replaced")
    os.symlink("nodir/new.npy", s.w("dangling_nodir.npy"))
    s.error_run("output_dangling_symlink_no_dir", TABLE16 + ["-o", s.w("dangling_nodir.npy")],
                ["-o", "dangling_nodir.npy", "nodir", "No such file or directory"])
    s.ok("output_dangling_symlink_no_dir", os.path.islink(s.w("dangling_nodir.npy"))
         and not os.path.exists(s.w("nodir")), "the link was replaced or a directory was created")
    os.symlink("loop_b", s.w("loop_a"))
    os.symlink("loop_a", s.w("loop_b"))
    s.error_run("output_symlink_loop", TABLE16 + ["-o", s.w("loop_a")], ["-o", "loop_a", "symbolic links"])
    s.error_run("output_under_a_file", TABLE16 + ["-o", os.path.join(out, "x.npy")],
                ["-o", "kept.npy/x.npy", "Not a directory"])
    s.error_run("output_empty_path", TABLE16 + ["-o", ""], ["-o", "empty"])
    if root:
        print("SKIP output_read_only_file: running as root, which may write any file")
    else:
        ro = s.w("read_only.npy")
        write_raw(ro, sentinel)
        os.chmod(ro, 0o444)
        s.error_run("output_read_only_file", TABLE16 + ["-o", ro], ["-o", "read_only.npy", "Permission denied"])
        s.ok("output_read_only_file", read_back(ro) == sentinel, "the read-only file was replaced")

    # Writes that fail for the machine's reasons name strerror, exit 1, and leave no file:
    # a full device, and a file size limit (64 KiB, SIGXFSZ ignored so that write() fails with
    # EFBIG) reached midway.
    if os.path.exists("/dev/full"):
        s.error_run("output_full_device", TABLE16 + ["-o", "/dev/full"],
                    ["-o /dev/full", "write failed", "No space left on device"], code=1)
        s.ok("output_full_device", stat.S_ISCHR(os.stat("/dev/full").st_mode), "/dev/full was replaced")

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
    big = ["table", "--encoder", "sinusoidal", "--dim", 256, "--len", 256, "--dtype", "f64"]
    s.fails("write_fails_midway", big, ["write failed", "File too large", "err_out.npy"], code=1, preexec=small_files)
    s.fails("write_fails_midway (output exists)", big, ["write failed", "File too large"], code=1,
            preexec=small_files, sentinel=sentinel)
    s.ok("no temporary files left", not s.leftovers(), f"left: {s.leftovers()}")


# --- input files that are not regular .npy files -------------------------------------------------
def group_inputs(s):
    att = attend_args(s) + ["--encoder", "none"]
    d = s.w("a_dir.npy")
    os.makedirs(d)
    s.fails("input_directory", ["attend", "--x", d] + att[3:], ["--x", "a_dir.npy", "is a directory"])
    fifo = s.w("in.fifo")
    os.mkfifo(fifo)
    # Never opened (it would wait for a writer): refused by its type within seconds.
    s.fails("input_fifo", ["rope", "--in", fifo], ["--in", "in.fifo", "is not a regular file"], timeout=5)
    s.fails("input_char_device", ["rope", "--in", "/dev/null"], ["--in", "/dev/null", "is not a regular file"],
            timeout=5)
    s.fails("input_fifo_positions", ["table", "--encoder", "sinusoidal", "--dim", 8, "--positions", fifo],
            ["--positions", "in.fifo", "is not a regular file"], timeout=5)
    s.fails("input_missing_weights", att[:4] + [s.w("nowq.npy")] + att[5:],
            ["--wq", "nowq.npy", "No such file or directory"])
    s.fails("input_missing_directory", ["rope", "--in", s.w("nodir/x.npy")],
            ["--in", "nodir/x.npy", "No such file or directory"])
    if os.geteuid() == 0:
        print("SKIP input_unreadable: running as root, where chmod 000 does not stop reading")
    else:
        locked = s.save("locked.npy", np.zeros((6, 16)))
        os.chmod(locked, 0)
        s.fails("input_unreadable", ["rope", "--in", locked], ["--in", "locked.npy", "Permission denied"])


# --- NaN and Inf: inputs and flags refused at entry, results checked before writing ------------
def group_finite(s):
    att = attend_args(s)
    x = np.load(s.d("attn_x.npy"))  # [6, 16]
    xn = x.copy()
    xn[3, 5] = np.nan
    x_nan = s.save("x_nan.npy", xn)
    msg = s.fails("finite_x_nan", ["attend", "--x", x_nan] + att[3:] + ["--encoder", "none"],
                  ["--x", "x_nan.npy", "element [3, 5] is nan", "input arrays must be finite"])
    s.ok("finite_x_nan", "masked" not in msg, f"reported as masked: {msg!r}")
    s.fails("finite_x_nan_f32", ["attend", "--x", s.save("x_nan32.npy", xn.astype(np.float32))] + att[3:]
            + ["--encoder", "rope", "--causal"], ["--x", "x_nan32.npy", "element [3, 5] is nan"])
    wv = np.load(s.d("attn_wv.npy"))
    wv[0, 7] = np.inf
    s.fails("finite_wv_inf", att[:8] + [s.save("wv_inf.npy", wv)] + att[9:] + ["--encoder", "none"],
            ["--wv", "wv_inf.npy", "element [0, 7] is inf"])
    wo = np.load(s.d("attn_wo.npy"))
    wo[15, 15] = -np.inf
    s.fails("finite_wo_minus_inf", att[:10] + [s.save("wo_inf.npy", wo)] + att[11:] + ["--encoder", "none"],
            ["--wo", "wo_inf.npy", "element [15, 15] is -inf"])
    r = np.load(s.d("rope_x.npy"))  # [6, 2, 16]
    r[4, 1, 9] = -np.inf
    s.fails("finite_rope_in", ["rope", "--in", s.save("rope_inf.npy", r)], ["--in", "rope_inf.npy",
                                                                           "element [4, 1, 9] is -inf"])
    t = np.load(s.d("t5_table.npy"))
    t[31, 2] = np.nan
    s.fails("finite_t5_table", ["bias", "--encoder", "t5", "--heads", 3, "--len", 4,
                                "--table", s.save("t5_nan.npy", t)], ["--table", "t5_nan.npy", "element [31, 2] is nan"])
    lt = np.load(s.d("attn_learned_table.npy"))
    lt[19, 0] = np.inf
    s.fails("finite_learned_table", att + ["--encoder", "learned", "--table", s.save("learned_inf.npy", lt)],
            ["--table", "learned_inf.npy", "element [19, 0] is inf"])
    sf = np.load(s.d("rope_longrope_short_factors.npy"))
    sf[2] = np.nan
    s.fails("finite_short_factors", ["rope", "--in", s.d("rope_x.npy"), "--scaling", "longrope", "--factor", 4,
                                     "--original-max-positions", 8, "--short-factors", s.save("sf_nan.npy", sf),
                                     "--long-factors", s.d("rope_longrope_long_factors.npy")],
            ["--short-factors", "sf_nan.npy", "element [2] is nan"])
    u = np.load(s.d("attn_xl_u.npy"))
    u[1, 3] = np.nan
    s.fails("finite_xl_u", att + ["--encoder", "xl", "--u", s.save("u_nan.npy", u), "--v", s.d("attn_xl_v.npy"),
                                  "--wr", s.d("attn_xl_wr.npy")], ["--u", "u_nan.npy", "element [1, 3] is nan"])
    ak = np.load(s.d("attn_shaw_ak.npy"))
    ak[6, 7] = np.inf
    s.fails("finite_shaw_rel_k", att + ["--encoder", "shaw", "--rel-k", s.save("ak_inf.npy", ak),
                                        "--rel-v", s.d("attn_shaw_av.npy")],
            ["--rel-k", "ak_inf.npy", "element [6, 7] is inf"])
    # An f64 value past the f32 range, computed in f32.
    xb = x.copy()
    xb[0, 1] = 1e300
    s.fails("finite_x_overflows_f32", ["attend", "--x", s.save("x_big.npy", xb)] + att[3:] + ["--encoder", "none",
                                                                                            "--dtype", "f32"],
            ["--x", "x_big.npy", "element [0, 1] = 1e+300 overflows f32"])
    s.fails("finite_in_overflows_f32", ["rope", "--in", s.save("rope_big.npy", np.full((2, 4), -1e39)),
                                        "--dtype", "f32"], ["--in", "rope_big.npy", "element [0, 0] = -1e+39 overflows f32"])

    # Every floating-point flag: nan, inf and a value past the double range are refused.
    table = ["table", "--encoder", "sinusoidal", "--dim", 16, "--len", 4]
    rope = ["rope", "--in", s.d("rope_x.npy")]
    yarn = rope + ["--scaling", "yarn", "--factor", 4, "--original-max-positions", 64]
    flags = [
        ("table", table, "--base"), ("table", table, "--scale"),
        ("rope", rope, "--base"), ("rope", rope + ["--scaling", "linear"], "--factor"),
        ("rope", yarn, "--attention-factor"), ("rope", yarn, "--mscale"), ("rope", yarn, "--mscale-all-dim"),
        ("rope", yarn, "--beta-fast"), ("rope", yarn, "--beta-slow"),
        ("rope", rope + ["--scaling", "llama3"], "--low-freq-factor"),
        ("rope", rope + ["--scaling", "llama3"], "--high-freq-factor"),
        ("bias", ["bias", "--encoder", "alibi", "--heads", 2, "--len", 3], "--max-bias"),
        ("attend", att + ["--encoder", "none"], "--scale"),
        ("attend", att + ["--encoder", "sinusoidal"], "--pe-scale"),
        ("attend", att + ["--encoder", "sinusoidal"], "--base"),
        ("attend", att + ["--encoder", "alibi"], "--max-bias"),
        ("attend", att + ["--encoder", "rope", "--scaling", "ntk"], "--factor"),
    ]
    for cmd, args, flag in flags:
        for value in ("nan", "inf", "-inf", "1e400"):
            s.fails(f"finite_flag_{cmd}{flag}_{value}", args + [f"{flag}={value}"],
                    [f"{flag}: {value} is not a finite number"])

    # Results checked before anything is written: which element overflowed, in which dtype.
    ones = np.ones((3, 16))
    eye = np.eye(16)
    zero = np.zeros((16, 16))
    big32 = ["attend", "--x", s.save("x1e18.npy", (ones * 1e18).astype(np.float32)),
             "--wq", s.save("z32.npy", zero.astype(np.float32)), "--wk", s.save("z32.npy", zero.astype(np.float32)),
             "--wv", s.save("v1e18.npy", (eye * 1e18).astype(np.float32)),
             "--wo", s.save("o1e3.npy", (eye * 1e3).astype(np.float32)), "--heads", 2, "--encoder", "none"]
    s.fails("finite_result_overflows_f32", big32, ["the result overflows f32 at [0, 0] (inf)", "nothing was written"])
    big64 = ["attend", "--x", s.save("x1e150.npy", ones * 1e150), "--wq", s.save("z64.npy", zero),
             "--wk", s.save("z64.npy", zero), "--wv", s.save("v1e150.npy", eye * 1e150),
             "--wo", s.save("o1e10.npy", eye * 1e10), "--heads", 2, "--encoder", "none"]
    s.fails("finite_result_overflows_f64", big64, ["the result overflows f64 at [0, 0] (inf)"])
    s.fails("finite_scale_overflows_f32", att + ["--encoder", "none", "--scale", 1e300, "--dtype", "f32"],
            ["--scale", "1e+300", "f32"])
    s.fails("finite_table_scale_overflows_f32", table + ["--scale", 1e300], ["--scale: 1e+300 overflows f32"])
    s.fails("finite_pe_scale_overflows_f32", att + ["--encoder", "sinusoidal", "--pe-scale", -1e39, "--dtype", "f32"],
            ["--pe-scale: -1e+39 overflows f32"])
    s.fails("finite_pe_scale_result_nan", att + ["--encoder", "sinusoidal", "--pe-scale", 1e300],
            ["the result is nan at [0, 0]", "f64", "nothing was written"])
    xr = np.ones((2, 2, 16))
    xr[1, 0, 3] = 1e10
    s.fails("finite_attention_factor_overflows", ["rope", "--in", s.save("rope_1e10.npy", xr), "--scaling", "yarn",
                                                  "--factor", 4, "--original-max-positions", 64,
                                                  "--attention-factor", 1e300],
            ["the result overflows f64 at [1, 0, ", "(inf)"])
    # The -inf of a causal bias is its mask, not an overflow.
    rc, _, se = s.run(["bias", "--encoder", "alibi", "--heads", 2, "--len", 3, "--causal", "-o", s.w("masked.npy")])
    s.ok("finite_causal_mask_written", rc == 0 and np.isneginf(np.load(s.w("masked.npy"))[:, 0, 2]).all(), se)


# --- bounded sizes ------------------------------------------------------------------------------
def group_limits(s):
    table = ["table", "--encoder", "sinusoidal"]
    att = attend_args(s)
    quick = 10  # every refusal is at parse or load time: seconds at most

    def empty(name, shape):
        """An empty <f8 array (no data) that declares `shape`."""
        return write_raw(s.w(name), npy_bytes(np.zeros(0), shape=shape))
    t5 = ["bias", "--encoder", "t5", "--heads", 3, "--len", 2]
    xl = ["--encoder", "xl", "--u", s.d("attn_xl_u.npy"), "--v", s.d("attn_xl_v.npy"), "--wr", s.d("attn_xl_wr.npy")]
    for name, args, frags in [
        ("limit_table_dim_2^26", table + ["--dim", 1 << 26, "--len", 0], ["--dim: 67108864", "limit 2^24 = 16777216"]),
        ("limit_table_dim_2^40", table + ["--dim", 1 << 40, "--len", 0], ["--dim: 1099511627776", "limit 2^24"]),
        ("limit_table_len", table + ["--dim", 16, "--len", 1 << 33], ["--len: 8589934592", "limit 2^32"]),
        ("limit_table_len_elements", table + ["--dim", 4096, "--len", 1 << 21], ["limit 2^32"]),
        ("limit_table_offset_past_int64", table + ["--dim", 16, "--len", 2, "--offset", "99999999999999999999"],
         ["--offset", "outside the range of int64"]),
        ("limit_table_last_position", table + ["--dim", 16, "--len", 2, "--offset", 2**63 - 1],
         ["--offset: 9223372036854775807", "N = 2 (from --len)", "P + N - 1", "2^63 - 1"]),
        ("limit_rope_last_position", ["rope", "--in", s.d("rope_x.npy"), "--offset", 2**63 - 5],
         ["--offset", "N = 6 (from --in)", "P + N - 1"]),
        ("limit_attend_last_position", att + ["--encoder", "rope", "--offset", 2**63 - 2],
         ["--offset", "N = 7", "--x", "P + N - 1"]),
        ("limit_bias_heads_2^40", ["bias", "--encoder", "alibi", "--heads", 1 << 40, "--len", 0],
         ["--heads: 1099511627776", "limit 2^24"]),
        ("limit_attend_heads", att[:-1] + [1 << 25, "--encoder", "none"], ["--heads: 33554432", "limit 2^24"]),
        ("limit_bias_num_buckets", t5 + ["--table", s.d("t5_table.npy"), "--num-buckets", 1 << 25],
         ["--num-buckets", "limit 2^24"]),
        ("limit_bias_max_distance", t5 + ["--table", s.d("t5_table.npy"), "--max-distance", 0],
         ["--max-distance: 0 must be >= 1"]),
        ("limit_rope_rotary_dim", ["rope", "--in", s.d("rope_x.npy"), "--rotary-dim", 1 << 25],
         ["--rotary-dim", "limit 2^24"]),
        ("limit_rope_original_max_positions", ["rope", "--in", s.d("rope_x.npy"), "--scaling", "dynamic",
                                               "--factor", 2, "--original-max-positions", 0],
         ["--original-max-positions: 0 must be >= 1"]),
        ("limit_attend_max_relative", att + ["--encoder", "shaw", "--rel-k", s.d("attn_shaw_ak.npy"),
                                             "--rel-v", s.d("attn_shaw_av.npy"), "--max-relative", 1 << 23],
         ["--max-relative: 8388608", "limit 8388607"]),
        ("limit_attend_clamp_len", att + xl + ["--clamp-len", -1], ["--clamp-len: -1 must be >= 0"]),
        # Shapes of input arrays: an empty array cannot declare a huge extent.
        ("limit_rope_in_empty_wide", ["rope", "--in", empty("e_wide.npy", (0, 1 << 40))],
         ["--in", "e_wide.npy", "dimension 1", "1099511627776", "limit 2^24"]),
        ("limit_rope_in_empty_heads", ["rope", "--in", empty("e_heads.npy", (0, 1 << 30, 16))],
         ["--in", "e_heads.npy", "dimension 1", "limit 2^24"]),
        ("limit_rope_in_empty_rows", ["rope", "--in", empty("e_rows.npy", (1 << 40, 0))],
         ["--in", "e_rows.npy", "dimension 0", "limit 2^32"]),
        ("limit_attend_x_empty_wide", ["attend", "--x", empty("x_wide.npy", (0, 1 << 40))] + att[3:]
         + ["--encoder", "none"], ["--x", "x_wide.npy", "dimension 1", "limit 2^24"]),
        ("limit_t5_table_empty_wide", t5 + ["--table", empty("t5_wide.npy", (0, 1 << 40))],
         ["--table", "t5_wide.npy", "dimension 1", "limit 2^24"]),
        ("limit_learned_table_rows", att + ["--encoder", "learned", "--table", empty("l_rows.npy", (1 << 30, 0))],
         ["--table", "l_rows.npy", "dimension 0", "limit 2^24"]),
        ("limit_positions_empty_rows", table + ["--dim", 8, "--positions",
                                                write_raw(s.w("p_rows.npy"), npy_bytes(np.zeros(0, np.int64),
                                                                                       shape=(1 << 40,)))],
         ["--positions", "p_rows.npy"]),
    ]:
        s.fails(name, args, frags, timeout=quick)
    # Positions up to 2^63 - 1 are computed (the library's arithmetic is checked, not wrapped).
    far = s.save("far.npy", np.array([0, 2**62, 2**63 - 1], np.int64))
    out = s.w("far_out.npy")
    rc, _, se = s.run(table + ["--dim", 8, "--positions", far, "--dtype", "f64", "-o", out])
    s.ok("limit_positions_int64_max", rc == 0 and np.isfinite(np.load(out)).all(), f"exit {rc}: {se!r}")
    rc, _, se = s.run(["rope", "--in", s.save("x3.npy", np.ones((3, 8))), "--positions", far, "-o", out])
    s.ok("limit_positions_int64_max", rc == 0 and np.isfinite(np.load(out)).all(), f"exit {rc}: {se!r}")


# --- BERT relative embeddings and DeBERTa (conventions.md 5d, 5e; make_golden.py's gen_bert_relative,
# gen_deberta) ------------------------------------------------------------------------------------
def relative_layer_args(s, prefix, heads, biases=""):
    """attend on the <prefix>_x, _wq, ... files of a reference layer, with its biases."""
    args = ["attend", "--x", s.d(f"{prefix}_x.npy"), "--wq", s.d(f"{prefix}_wq.npy"), "--wk", s.d(f"{prefix}_wk.npy"),
            "--wv", s.d(f"{prefix}_wv.npy"), "--wo", s.d(f"{prefix}_wo.npy"), "--heads", heads]
    for b in biases:
        args += [f"--b{b}", s.d(f"{prefix}_b{b}.npy")]
    return args


def group_bert_relative(s):
    d = s.d
    att = attend_args(s)
    bert = ["--encoder", "bert-relative", "--distance-table", d("attn_bert_table.npy")]
    for name, args in [("attn_bert_relative_key_bidir", []),
                       ("attn_bert_relative_key_causal", ["--causal", "--position-embedding-type", "relative_key"]),
                       ("attn_bert_relative_key_query_bidir_offset3",
                        ["--position-embedding-type", "relative_key_query", "--offset", 3]),
                       ("attn_bert_relative_key_query_causal", ["--position-embedding-type", "relative_key_query",
                                                                "--causal"])]:
        s.golden(name.replace("attn_", "attend_"), att + bert + args, f"{name}.npy", default_dtype="f64")
    # explicit positions (the list paths), and a decode loop against the one causal call's reference
    s.golden("attend_bert_positions", att + bert + ["--position-embedding-type", "relative_key_query", "--positions",
             s.save("bert_pos3.npy", np.arange(3, 10, dtype=np.int64))], "attn_bert_relative_key_query_bidir_offset3.npy")
    for prefill in (0, 4):
        s.golden(f"attend_bert_prefill{prefill}", att + bert + ["--position-embedding-type", "relative_key_query",
                 "--causal", "--prefill", prefill], "attn_bert_relative_key_query_causal.npy", tol=PREFILL_TOL)
    # layers: grouped heads, Dh, biases, gapped positions, a causal window; MQA, packed segments, chunks,
    # sinks and soft-capping
    g = "bert_gqa_key_query_window_causal"
    ga = relative_layer_args(s, g, 4, "qkvo") + ["--kv-heads", 2, "--head-dim", 8, "--positions", d(f"{g}_positions.npy"),
                                        "--causal", "--window", 9, "--encoder", "bert-relative", "--distance-table",
                                        d(f"{g}_table.npy"), "--position-embedding-type", "relative_key_query"]
    s.golden(g, ga, f"{g}_y.npy", tol=LAYER_TOL, absolute=True, default_dtype="f64")
    s.golden(f"{g}_prefill5", ga + ["--prefill", 5], f"{g}_y.npy", tol=LAYER_TOL, absolute=True)
    m = "bert_mqa_key_segments_sinks_cap"
    s.golden(m, relative_layer_args(s, m, 4, "qv") + ["--kv-heads", 1, "--head-dim", 6, "--positions", d(f"{m}_positions.npy"),
             "--segments", d(f"{m}_segments.npy"), "--sinks", d(f"{m}_sinks.npy"), "--softcap", 3, "--chunk", 5,
             "--encoder", "bert-relative", "--distance-table", d(f"{m}_table.npy")], f"{m}_y.npy", tol=LAYER_TOL,
             absolute=True)
    # bad input: one line naming the flag, exit status 2, no output
    t = np.load(d("attn_bert_table.npy"))
    for name, args, frags in [
        ("bert_table_even_rows", att + ["--encoder", "bert-relative", "--distance-table", s.save("e14.npy", t[:14])],
         ["--distance-table", "e14.npy", "odd number of rows 2L - 1", "[14, 8]"]),
        ("bert_table_head_dim", att + ["--encoder", "bert-relative", "--distance-table",
                                       s.save("e_dh4.npy", t[:, :4])],
         ["--distance-table", "e_dh4.npy", "[*, 8]", "Dh = D / H = 16 / 2 = 8", "[15, 4]"]),
        ("bert_table_too_short", att + ["--encoder", "bert-relative", "--distance-table", s.save("e11.npy", t[:11])],
         ["--distance-table", "e11.npy", "L - 1 = 5", "positions 0 and 6", "6 apart"]),
        ("bert_positions_too_far", att + bert + ["--positions", s.save("bert_far.npy",
                                                                         np.array([0, 1, 2, 3, 4, 5, 40]))],
         ["--distance-table", "L - 1 = 7", "positions 0 and 40", "--positions", "bert_far.npy"]),
        ("bert_table_nan", att + ["--encoder", "bert-relative", "--distance-table",
                                  s.save("e_nan.npy", np.where(np.arange(15)[:, None] == 3, np.nan, t))],
         ["--distance-table", "e_nan.npy", "element [3, 0] is nan"]),
        ("bert_type_bogus", att + bert + ["--position-embedding-type", "absolute"],
         ["--position-embedding-type: 'absolute' is not one of relative_key or relative_key_query"]),
        ("bert_needs_table", att + ["--encoder", "bert-relative"],
         ["--encoder: bert-relative needs --distance-table e.npy ([2L-1, Dh])"]),
        ("bert_flag_on_deberta", att + ["--encoder", "deberta", "--distance-table", d("attn_bert_table.npy")],
         ["--distance-table: applies to --encoder bert-relative, not deberta"]),
    ]:
        s.fails(name, args, frags)


def group_deberta(s):
    d = s.d
    deb = relative_layer_args(s, "deb", 2, "qkvo") + ["--encoder", "deberta", "--position-buckets", 8,
                                             "--max-relative-positions", 16]
    tables = ["--rel-key-table", d("deb_k_r.npy"), "--rel-query-table", d("deb_q_r.npy")]
    raw = ["--rel-embeddings", d("deberta_rel_embeddings.npy"), "--rel-ln-weight", d("deberta_ln_weight.npy"),
           "--rel-ln-bias", d("deberta_ln_bias.npy"), "--rel-ln-eps", 1e-7]
    cases = [("both_bidir", [], tables),
             ("c2p_causal", ["--pos-att-type", "c2p", "--causal", "--offset", 5], ["--rel-key-table", d("deb_k_r.npy")]),
             ("p2c_listed", ["--pos-att-type", "p2c", "--positions", d("deb_p2c_listed_positions.npy")],
              ["--rel-query-table", d("deb_q_r.npy")]),
             ("both_window_causal", ["--causal", "--window", 10, "--positions",
                                     d("deb_both_window_causal_positions.npy")], tables)]
    for name, args, tabs in cases:
        # the default --scale of --encoder deberta is DeBERTa's 1/sqrt(f Dh)
        s.golden(f"attend_deb_{name}", deb + args + tabs, f"deb_{name}_y.npy", default_dtype="f64")
        # K_r, Q_r built from the relative embeddings, their layer norm and the layer's Wk + bk, Wq + bq
        s.golden(f"attend_deb_{name}_raw", deb + args + raw, f"deb_{name}_y.npy")
    f = np.sqrt(3 * 8)
    s.golden("attend_deb_scale_given", deb + tables + ["--scale", 1 / f], "deb_both_bidir_y.npy")
    # a decode loop equals the one causal call
    for prefill in (0, 4):
        s.golden(f"attend_deb_c2p_prefill{prefill}", deb + ["--pos-att-type", "c2p", "--causal", "--offset", 5,
                 "--prefill", prefill] + raw, "deb_c2p_causal_y.npy", tol=PREFILL_TOL)
    # DeBERTa-v3's configuration: the defaults b = 256, m = 512, 300 tokens
    v3 = relative_layer_args(s, "deb_v3", 2, "qk") + ["--encoder", "deberta"]
    s.golden("attend_deb_v3_raw", v3 + ["--rel-embeddings", d("deb_v3_rel_embeddings.npy"), "--rel-ln-weight",
             d("deb_v3_ln_weight.npy"), "--rel-ln-bias", d("deb_v3_ln_bias.npy")], "deb_v3_y.npy", default_dtype="f64")
    s.golden("attend_deb_v3_tables", v3 + ["--rel-key-table", d("deb_v3_k_r.npy"), "--rel-query-table",
             d("deb_v3_q_r.npy"), "--pos-att-type", "both"], "deb_v3_y.npy")
    # grouped heads, chunks, packed segments, sinks, soft-capping
    g = "deb_gqa_chunk_segments_sinks_cap"
    s.golden(g, relative_layer_args(s, g, 4, "qkvo") + ["--kv-heads", 2, "--head-dim", 6, "--positions", d(f"{g}_positions.npy"),
             "--segments", d(f"{g}_segments.npy"), "--sinks", d(f"{g}_sinks.npy"), "--softcap", 2.5, "--chunk", 7,
             "--causal", "--encoder", "deberta", "--position-buckets", 8, "--max-relative-positions", 20,
             "--rel-key-table", d(f"{g}_k_r.npy"), "--rel-query-table", d(f"{g}_q_r.npy")], f"{g}_y.npy",
             tol=LAYER_TOL, absolute=True)
    # bad input
    kr = np.load(d("deb_k_r.npy"))
    for name, args, frags in [
        ("deb_no_tables", deb, ["--encoder deberta needs --rel-key-table kr.npy", "or --rel-embeddings"]),
        ("deb_no_query_table", deb + ["--rel-key-table", d("deb_k_r.npy")],
         ["--encoder deberta needs --rel-query-table qr.npy", "--pos-att-type both reads Q_r"]),
        ("deb_tables_and_raw", deb + tables + raw, ["--rel-key-table: not with --rel-embeddings"]),
        ("deb_unread_table", deb + tables + ["--pos-att-type", "c2p"], ["--rel-query-table", "c2p reads no Q_r"]),
        ("deb_ln_without_raw", deb + tables + ["--rel-ln-weight", d("deberta_ln_weight.npy")],
         ["--rel-ln-weight: applies only with --rel-embeddings"]),
        ("deb_ln_weight_alone", deb + ["--rel-embeddings", d("deberta_rel_embeddings.npy"), "--rel-ln-weight",
                                       d("deberta_ln_weight.npy")], ["--rel-ln-weight: needs --rel-ln-bias"]),
        ("deb_buckets_small", relative_layer_args(s, "deb", 2) + ["--encoder", "deberta", "--position-buckets", 3] + tables,
         ["--position-buckets: 3 must be >= 4"]),
        ("deb_max_relative_small", relative_layer_args(s, "deb", 2) + ["--encoder", "deberta", "--position-buckets", 8,
                                                              "--max-relative-positions", 5] + tables,
         ["--max-relative-positions: 5 must exceed --position-buckets / 2 + 1 = 5"]),
        ("deb_buckets_range", relative_layer_args(s, "deb", 2) + ["--encoder", "deberta", "--position-buckets", -2] + tables,
         ["--position-buckets", "-2"]),
        ("deb_table_rows", relative_layer_args(s, "deb", 2) + ["--encoder", "deberta"] + tables,
         ["--rel-key-table", "deb_k_r.npy", "[512, 16]", "span = 256 from --position-buckets", "[16, 16]"]),
        ("deb_table_cols", deb + ["--rel-key-table", s.save("kr12.npy", kr[:, :12]), "--rel-query-table",
                                  d("deb_q_r.npy")], ["--rel-key-table", "kr12.npy", "[16, 16]", "[16, 12]"]),
        ("deb_raw_rows", relative_layer_args(s, "deb", 2) + ["--encoder", "deberta", "--position-buckets", 0,
                                                    "--max-relative-positions", 6] + raw,
         ["--rel-embeddings", "[12, 16]", "span = 6 from --max-relative-positions", "[16, 16]"]),
        ("deb_ln_shape", deb + ["--rel-embeddings", d("deberta_rel_embeddings.npy"), "--rel-ln-weight",
                                s.save("w8.npy", np.ones(8)), "--rel-ln-bias", d("deberta_ln_bias.npy")],
         ["--rel-ln-weight", "w8.npy", "[16]", "[8]"]),
        ("deb_ln_eps_zero", deb + raw[:-2] + ["--rel-ln-eps", 0], ["--rel-ln-eps: 0 must be > 0"]),
        ("deb_ln_eps_nan", deb + raw[:-2] + ["--rel-ln-eps", "nan"], ["--rel-ln-eps: nan is not a finite number"]),
        ("deb_type_bogus", deb + tables + ["--pos-att-type", "c2p|p2c"],
         ["--pos-att-type: 'c2p|p2c' is not one of both, c2p or p2c"]),
        ("deb_table_inf", deb + ["--rel-key-table", s.save("kr_inf.npy", np.where(np.arange(16)[:, None] == 2, np.inf, kr)),
                                 "--rel-query-table", d("deb_q_r.npy")],
         ["--rel-key-table", "kr_inf.npy", "element [2, 0] is inf"]),
        ("deb_flag_on_bert", attend_args(s) + ["--encoder", "bert-relative", "--distance-table",
                                               d("attn_bert_table.npy"), "--position-buckets", 8],
         ["--position-buckets: applies to --encoder deberta, not bert-relative"]),
    ]:
        s.fails(name, args, frags)


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
    "attend": ["--x", "--wq", "--wk", "--wv", "--wo", "--heads", "--kv-heads", "--head-dim", "--bq", "--bk", "--bv",
               "--bo", "--causal", "--offset", "--positions", "--window", "--chunk", "--segments", "--sinks",
               "--softcap", "--prefill", "--scale", "--encoder",
               "--layout", "--frequencies", "--base", "--pe-scale", "--table", "--table-offset", "--max-bias",
               "--rotary-dim", "--scaling", "--factor", "--original-max-positions", "--beta-fast", "--beta-slow",
               "--truncate", "--attention-factor", "--mscale", "--mscale-all-dim", "--low-freq-factor",
               "--high-freq-factor", "--short-factors", "--long-factors", "--num-buckets", "--max-distance",
               "--rel-k", "--rel-v", "--max-relative", "--u", "--v", "--wr", "--clamp-len",
               "--distance-table", "--position-embedding-type", *DEBERTA_FLAGS, "--dtype", "-o"],
    "plot": [], "compare": [],
    "inspect": ["--config", "--layer", "--json"],
}
for _sub in ("table", "rope", "attend"):  # --config config.json [--layer L] (posenc::hf)
    HELP_FLAGS[_sub] += ["--config", "--layer"]


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
          "layers": group_layers, "models": group_models, "layer_errors": group_layer_errors,
          "empty": group_empty, "errors": group_errors, "encoder_flags": group_encoder_flags, "convert_layout": group_convert_layout, "names": group_names, "outputs": group_outputs, "inputs": group_inputs,
          "finite": group_finite, "limits": group_limits, "help": group_help,
          "bert_relative": group_bert_relative, "deberta": group_deberta}


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
    print(f"{len(s.bad_cases)} bad-input cases run")
    print(f"{s.passed} passed, {s.failed} failed")
    return 1 if s.failed or s.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
