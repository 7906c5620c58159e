#!/usr/bin/python3
"""Tests of the command line's half-precision arrays: <f2 (IEEE binary16) in and out, and
bfloat16 as <u2 bit patterns (NumPy has no bfloat16) with --dtype bf16 and the global --bf16.

The references are independent of posenc: the NumPy float64 golden of RoPE
(tests/reference/data/rope_half.npy, from tests/reference/make_golden.py) rounded once to
float16 by NumPy (its float64 -> float16 conversion rounds to nearest, ties to even), and to
bfloat16 by the transcription below (the significand rounded to 8 bits, ties to even).

  /usr/bin/python3 test_cli_half.py --posenc BUILD/tools/posenc --data tests/reference/data [GROUP ...]

GROUP is any of: outputs inputs errors (default: all). Prints "N passed, M failed" last.
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

HEADS, HEAD_DIM = 2, 16  # the shape of rope_x [6, H * Dh]


def bf16_bits(values):
    """bfloat16 bit patterns of float64 values: round to nearest, ties to even, on 8 bits."""
    out = []
    for v in np.asarray(values, dtype=np.float64).ravel():
        m, e = math.frexp(float(v))
        r = math.ldexp(round(m * 256) / 256, e)  # Python's round: ties to even, exactly
        out.append(int(np.float32(r).view(np.uint32)) >> 16)
    return np.array(out, dtype=np.uint16).reshape(np.shape(values))


def bf16_values(bits):
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32).astype(np.float64)


class Runner:
    def __init__(self, posenc, data):
        self.posenc, self.data, self.passed, self.failed = posenc, data, 0, 0
        self.tmp = tempfile.mkdtemp(prefix="posenc_half_")

    def path(self, name):
        return os.path.join(self.tmp, name)

    def run(self, *args):
        r = subprocess.run([self.posenc, *args], capture_output=True, text=True, timeout=120)
        return r.returncode, r.stderr

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAILED:", what)


def outputs(t):
    x = np.load(os.path.join(t.data, "rope_x.npy")).reshape(6, HEADS, HEAD_DIM)
    golden = np.load(os.path.join(t.data, "rope_half.npy")).reshape(6, HEADS, HEAD_DIM)
    np.save(t.path("x.npy"), x)
    # f16 out: exactly NumPy's rounding of the float64 golden
    code, err = t.run("rope", "--in", t.path("x.npy"), "--dtype", "f16", "-o", t.path("y16.npy"))
    t.check(code == 0 and err == "", "rope --dtype f16 ran: " + err)
    y = np.load(t.path("y16.npy"))
    t.check(y.dtype == np.float16 and y.shape == golden.shape, "f16 output dtype and shape")
    t.check(np.array_equal(y.view(np.uint16), golden.astype(np.float16).view(np.uint16)),
            "f16 output is the golden rounded once")
    # bf16 out: <u2 bit patterns, the golden rounded once
    code, err = t.run("rope", "--in", t.path("x.npy"), "--dtype", "bf16", "-o", t.path("yb.npy"))
    t.check(code == 0 and err == "", "rope --dtype bf16 ran: " + err)
    yb = np.load(t.path("yb.npy"))
    t.check(yb.dtype == np.uint16 and yb.shape == golden.shape, "bf16 output dtype and shape")
    t.check(np.array_equal(yb, bf16_bits(golden)), "bf16 output is the golden rounded once")


def inputs(t):
    x = np.load(os.path.join(t.data, "rope_x.npy")).reshape(6, HEADS, HEAD_DIM)
    # an f16 input: read exactly, output in f16 by default
    x16 = x.astype(np.float16)
    np.save(t.path("x16.npy"), x16)
    code, err = t.run("rope", "--in", t.path("x16.npy"), "--dtype", "f64", "-o", t.path("w.npy"))
    t.check(code == 0, "rope on an f16 input ran: " + err)
    wide = np.load(t.path("w.npy"))
    code, err = t.run("rope", "--in", t.path("x16.npy"), "-o", t.path("d.npy"))
    d = np.load(t.path("d.npy"))
    t.check(code == 0 and d.dtype == np.float16, "an f16 input gives an f16 output by default")
    t.check(np.array_equal(d.view(np.uint16), wide.astype(np.float16).view(np.uint16)),
            "the f16 output is the f64 result on the same input rounded once")
    # the f64 result on the f16 input is the rotation of the widened values: RoPE is linear,
    # so it differs from the golden by the rotation of the input's rounding only
    golden = np.load(os.path.join(t.data, "rope_half.npy")).reshape(6, HEADS, HEAD_DIM)
    bound = 2 * np.abs(x16.astype(np.float64) - x).max() + 1e-12
    t.check(np.abs(wide - golden).max() <= bound, "f16 input read exactly")
    # bf16 bit patterns in with --bf16, and back out
    xb = bf16_bits(x)
    np.save(t.path("xb.npy"), xb)
    code, err = t.run("--bf16", "rope", "--in", t.path("xb.npy"), "-o", t.path("yb.npy"))
    t.check(code == 0 and err == "", "--bf16 rope ran: " + err)
    yb = np.load(t.path("yb.npy"))
    t.check(yb.dtype == np.uint16, "a bf16 input gives a bf16 output by default")
    code, err = t.run("--bf16", "rope", "--in", t.path("xb.npy"), "--dtype", "f64", "-o",
                      t.path("ybw.npy"))
    ybw = np.load(t.path("ybw.npy"))
    t.check(np.array_equal(yb, bf16_bits(ybw)), "the bf16 output is the f64 result rounded once")
    bound = 2 * np.abs(bf16_values(xb) - x).max() + 1e-12
    t.check(np.abs(ybw - golden).max() <= bound, "bf16 input read exactly")


def errors(t):
    x = np.load(os.path.join(t.data, "rope_x.npy")).reshape(6, HEADS, HEAD_DIM)
    np.save(t.path("xb.npy"), bf16_bits(x))
    out = t.path("never.npy")
    code, err = t.run("rope", "--in", t.path("xb.npy"), "-o", out)
    t.check(code == 2 and "--bf16" in err and err.count("\n") == 1 and not os.path.exists(out),
            "<u2 without --bf16: one line naming the flag, status 2, no file: " + err)
    bad = x.astype(np.float16)
    bad[1, 0, 3] = np.inf
    np.save(t.path("inf16.npy"), bad)
    code, err = t.run("rope", "--in", t.path("inf16.npy"), "-o", out)
    t.check(code == 2 and "inf" in err and "(1, 0, 3)" in err.replace("[", "(").replace("]", ")")
            and not os.path.exists(out), "an f16 inf input is refused: " + err)
    # 70000 overflows f16: the output is refused, not written as inf
    np.save(t.path("big.npy"), np.full((2, HEADS, HEAD_DIM), 7e4))
    code, err = t.run("rope", "--in", t.path("big.npy"), "--dtype", "f16", "-o", out)
    t.check(code == 2 and "overflows f16" in err and not os.path.exists(out),
            "a result past f16's range is an error: " + err)
    np.save(t.path("u1.npy"), np.zeros((2, HEADS, HEAD_DIM), dtype=np.uint8))
    code, err = t.run("--bf16", "rope", "--in", t.path("u1.npy"), "-o", out)
    t.check(code == 2 and "unsupported dtype" in err and not os.path.exists(out),
            "another dtype is refused: " + err)


GROUPS = {"outputs": outputs, "inputs": inputs, "errors": errors}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--posenc", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("groups", nargs="*")
    a = p.parse_args()
    t = Runner(a.posenc, a.data)
    for g in a.groups or GROUPS:
        GROUPS[g](t)
    print(f"{t.passed} passed, {t.failed} failed")
    sys.exit(1 if t.failed else 0)


if __name__ == "__main__":
    main()
