#!/usr/bin/python3
"""Tests of `posenc plot` and `posenc compare` (docs/plots.md, docs/compare.md).

Runs the program and checks its pictures (SVG parsed as XML, the number of heatmap cells, PNG
signature and size read from the IHDR chunk, file mode), its comparison table, and every
bad-input case: non-zero exit, one line on stderr naming the flag, and no output file (an
existing output is left untouched, no temporary file is left behind).

  /usr/bin/python3 test_plot_cli.py --posenc BUILD/tools/posenc [GROUP ...]

GROUP is any of: pictures compare errors (default: all). Prints "N passed, M failed" last and
exits non-zero when anything failed.
"""
import argparse
import os
import shutil
import struct
import sys
import tempfile
import xml.etree.ElementTree as ET

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cli_common"))
from cli_runner import Runner  # noqa: E402  (tests/cli_common, shared with tests/cli)

SVG_NS = "{http://www.w3.org/2000/svg}"


class Suite(Runner):
    def __init__(self, posenc, work):
        super().__init__(posenc, work, timeout=120)
        self.bad_cases = set()  # the names of the bad-input cases run

    def leftovers(self):
        return [f for f in os.listdir(self.work) if ".tmp." in f]

    # --- pictures ------------------------------------------------------------------------------
    def svg(self, name, path, texts=(), cells=None):
        """Checks an SVG file: well-formed XML, an <svg> root, the given texts, the cell count."""
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError) as e:
            return self.ok(name, False, f"{path}: not well-formed XML: {e}")
        self.ok(name, root.tag == SVG_NS + "svg", f"root is {root.tag}")
        all_text = [t.text or "" for t in root.iter(SVG_NS + "text")]
        for t in texts:
            self.ok(name, t in all_text, f"no <text>{t}</text> in {path}; have {all_text[:30]}")
        if cells is not None:
            n = sum(len(g.findall(SVG_NS + "rect")) for g in root.iter(SVG_NS + "g")
                    if g.get("class") == "cells")
            self.ok(name, n == cells, f"{n} heatmap cells, expected {cells}")
        self.mode(name, path)
        return root

    def png(self, name, path, min_w=100, min_h=100):
        try:
            with open(path, "rb") as f:
                head = f.read(33)
        except OSError as e:
            return self.ok(name, False, f"{path}: {e}")
        if not self.ok(name, head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR",
                       f"{path}: not a PNG"):
            return None
        w, h = struct.unpack(">II", head[16:24])
        self.ok(name, w >= min_w and h >= min_h, f"{path}: {w} x {h}")
        self.ok(name, head[24] == 8 and head[25] == 2, f"{path}: expected 8-bit RGB")
        self.mode(name, path)
        return w, h

    def mode(self, name, path):
        umask = os.umask(0)
        os.umask(umask)
        m = os.stat(path).st_mode & 0o777
        self.ok(name, m == 0o666 & ~umask, f"{path}: mode {oct(m)}, expected {oct(0o666 & ~umask)}")

    def draw(self, name, args, fmt, texts=(), cells=None):
        out = self.w(f"{name}.{fmt}")
        if os.path.exists(out):
            os.remove(out)
        rc, so, se = self.run(["plot"] + args + ["-o", out])
        if not self.ok(name, rc == 0 and os.path.exists(out), f"exit {rc}: {se.strip()}"):
            return
        self.ok(name, se == "", f"stderr not empty: {se!r}")
        if fmt == "svg":
            self.svg(name, out, texts, cells)
        else:
            self.png(name, out)

    def test_pictures(self):
        for fmt in ("svg", "png"):
            self.draw(f"table_{fmt}", ["table", "--dim", 8, "--len", 5], fmt,
                      ["Sinusoidal encoding PE[p, i]", "dimension i", "position p", "PE value", "1.0", "-1.0"],
                      cells=40)
            self.draw(f"rope_line_{fmt}", ["rope", "--head-dim", 16, "--max-distance", 64, "--base", "10000,500000"],
                      fmt, ["RoPE: q.k as a function of distance", "base 10000", "base 500000"])
            self.draw(f"rope_scalings_{fmt}", ["rope", "--max-distance", 300, "--scaling", "none,linear,ntk,yarn,llama3,dynamic",
                                               "--factor", 4, "--original-max-positions", 128], fmt,
                      ["base 10000, linear", "base 10000, yarn"])
            self.draw(f"rope_heatmap_{fmt}", ["rope", "--head-dim", 16, "--max-distance", 20, "--style", "heatmap",
                                              "--query", "random"], fmt, ["frequency pair i"], cells=8 * 21)
            self.draw(f"alibi_{fmt}", ["bias", "--encoder", "alibi", "--heads", 4, "--len", 6, "--causal"], fmt,
                      ["ALiBi bias per head", "head 0, m = 0.25", "masked (-inf)"], cells=4 * 36)
            self.draw(f"alibi_line_{fmt}", ["bias", "--encoder", "alibi", "--heads", 4, "--len", 10, "--style", "line"],
                      fmt, ["head 1, m = 0.0625", "head 3, m = 0.003906"])
            self.draw(f"t5_{fmt}", ["bias", "--encoder", "t5", "--heads", 2, "--len", 9, "--head", 1], fmt,
                      ["T5 relative bias, head 1", "head 1"], cells=81)
            self.draw(f"attention_{fmt}", ["attention", "--len", 6, "--dim", 16, "--heads", 2], fmt,
                      ["Attention maps under each encoder", "none", "RoPE", "ALiBi", "T5 bias", "Shaw",
                       "Transformer-XL", "attention weight"], cells=8 * 36)
        # T5 from a table file, attention from input files, labels, mean over heads
        np.save(self.w("t5.npy"), np.arange(64, dtype=np.float32).reshape(32, 2) / 10)
        self.draw("t5_table", ["bias", "--encoder", "t5", "--table", self.w("t5.npy"), "--len", 5], "svg",
                  ["head 0", "head 1"], cells=50)
        rng = np.random.default_rng(0)
        np.save(self.w("x.npy"), rng.standard_normal((5, 8)))
        np.save(self.w("wq.npy"), rng.standard_normal((8, 8)) * 0.3)
        np.save(self.w("wk.npy"), rng.standard_normal((8, 8)).astype(np.float32) * 0.3)
        self.draw("attention_files", ["attention", "--x", self.w("x.npy"), "--wq", self.w("wq.npy"),
                                      "--wk", self.w("wk.npy"), "--heads", 2, "--encoders", "rope,alibi",
                                      "--labels", "a,b,c,d,e", "--head", "mean", "--causal"], "svg",
                  ["RoPE", "ALiBi", "a", "e", "masked (-inf)"], cells=2 * 25)
        self.draw("attention_repeated", ["attention", "--len", 8, "--input", "repeated", "--encoders", "none,alibi"],
                  "svg", ["none", "ALiBi"], cells=2 * 64)
        # any .npy: 1-d line, 2-d heatmap, 3-d panels with -inf
        np.save(self.w("v.npy"), np.sin(np.arange(30) / 3.0))
        self.draw("npy_1d", ["npy", "--in", self.w("v.npy")], "svg", ["index", "value"])
        np.save(self.w("m.npy"), np.arange(12, dtype=np.float64).reshape(3, 4))
        self.draw("npy_2d", ["npy", "--in", self.w("m.npy")], "svg", ["row", "column"], cells=12)
        b = np.zeros((3, 4, 4), dtype=np.float32)
        b[:, 0, 3] = -np.inf
        np.save(self.w("b.npy"), b)
        self.draw("npy_3d", ["npy", "--in", self.w("b.npy"), "--x-label", "key"], "svg",
                  ["[0]", "[2]", "key", "masked (-inf)"], cells=48)
        self.draw("npy_index", ["npy", "--in", self.w("b.npy"), "--index", 1], "png")
        # an existing picture is replaced
        out = self.w("replace.svg")
        with open(out, "w") as f:
            f.write("old")
        rc, _, se = self.run(["plot", "table", "--dim", 4, "--len", 3, "-o", out, "--title", "New title"])
        self.ok("replace", rc == 0, se)
        self.svg("replace", out, ["New title"], cells=12)
        # --help of every kind
        for kind in ("table", "rope", "bias", "attention", "npy"):
            rc, so, _ = self.run(["plot", kind, "--help"])
            self.ok(f"help_{kind}", rc == 0 and "-o,--output" in so and "--colormap" in so, so[:200])
        self.ok("no_temporaries", not self.leftovers(), str(self.leftovers()))

    # --- compare -------------------------------------------------------------------------------
    def test_compare(self):
        small = ["compare", "--dim", 16, "--heads", 2, "--max-len", 64, "--tokens", 8, "--time-len", 16,
                 "--time-budget", 0, "--shifts", "1,5,40,1000"]
        out = self.w("table.md")
        rc, so, se = self.run(small + ["-o", out])
        if not self.ok("compare_runs", rc == 0, f"exit {rc}: {se.strip()}"):
            return
        rows = [l for l in so.splitlines() if l.startswith("| ") and not l.startswith("| encoder")]
        self.ok("compare_rows", len(rows) == 8, "\n".join(rows))
        cells = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in rows}
        for name in ("RoPE", "ALiBi", "T5 bias", "Shaw", "Transformer-XL"):
            self.ok("compare_relative", cells.get(name, ["", "", ""])[2] == "yes", f"{name}: {cells.get(name)}")
        for name in ("sinusoidal", "learned"):
            self.ok("compare_absolute", cells.get(name, ["", "", ""])[2] == "no", f"{name}: {cells.get(name)}")
        learned = cells.get("learned", [""] * 8)
        self.ok("compare_learned_error",
                learned[4].startswith("error: LearnedEncoding: position p = ") and "L_max = 64" in learned[4],
                str(learned))
        self.ok("compare_learned_params", learned[1] == "1024 (L·D)", str(learned))
        self.ok("compare_shaw_distance", cells.get("Shaw", [""] * 8)[5] == "up to 16", str(cells.get("Shaw")))
        try:
            with open(out, encoding="utf-8") as f:
                self.ok("compare_output_file", f.read() == so, "the -o file differs from stdout")
        except OSError as e:
            self.ok("compare_output_file", False, str(e))
        rc, so, se = self.run(small + ["--encoders", "rope,alibi", "--dtype", "f32"])
        rows = [l for l in so.splitlines() if l.startswith("| ") and not l.startswith("| encoder")]
        self.ok("compare_subset_f32", rc == 0 and len(rows) == 2 and "float32" in so, so + se)
        rc, so, _ = self.run(["compare", "--help"])
        self.ok("compare_help", rc == 0 and "--max-len" in so and "--shifts" in so, so[:200])

    # --- errors --------------------------------------------------------------------------------
    def fails(self, name, args, fragments, out_name="out.svg", keep=None, code=2):
        """The command must fail with exit status `code` and one stderr line holding every
        fragment, and leave no output (or, with keep, leave the existing output untouched)."""
        self.bad_cases.add(name)
        out = self.w(out_name)
        if os.path.isfile(out):
            os.remove(out)
        if keep is not None:
            with open(out, "w") as f:
                f.write(keep)
        full = [a if a != "OUT" else out for a in args]
        if "OUT" not in args and "-o" not in args:
            full = full + ["-o", out]
        rc, so, se = self.run(full)
        lines = se.strip().splitlines()
        self.ok(name, rc == code, f"exit status {rc}, expected {code}")
        self.ok(name, len(lines) == 1, f"stderr is {len(lines)} lines: {se!r}")
        for frag in fragments:
            self.ok(name, frag in se, f"stderr lacks {frag!r}: {se.strip()!r}")
        if os.path.isdir(out):
            pass  # a directory given as the output: the caller checks it is untouched
        elif keep is None:
            self.ok(name, not os.path.exists(out), f"{out} exists after the error")
        else:
            with open(out) as f:
                self.ok(name, f.read() == keep, f"{out} was changed")
        self.ok(name, not self.leftovers(), f"temporary files left: {self.leftovers()}")

    def test_errors(self):
        np.save(self.w("x.npy"), np.zeros((5, 8)))
        np.save(self.w("w8.npy"), np.zeros((8, 8)))
        np.save(self.w("w7.npy"), np.zeros((7, 7)))
        np.save(self.w("v1.npy"), np.zeros(5))
        np.save(self.w("four.npy"), np.zeros((2, 2, 2, 2)))
        np.save(self.w("ints.npy"), np.arange(4, dtype=np.int64))
        with open(self.w("trunc.npy"), "wb") as f:
            f.write(b"\x93NUMPY\x01\x00")
        f = self.fails
        f("ext", ["plot", "table", "-o", self.w("out.jpg")], ["-o", "out.jpg", ".svg or .png"], out_name="out.jpg")
        f("no_ext", ["plot", "table", "-o", self.w("out")], ["-o", "unknown picture format"], out_name="out")
        f("bad_dir", ["plot", "table", "-o", self.w("no/such/dir.svg")], ["-o"], out_name="no_dir_here.svg")
        f("len0", ["plot", "table", "--len", 0], ["--len", "0", "[1, 4096]"])
        f("dim_odd", ["plot", "table", "--dim", 7], ["--dim", "dim = 7", "even"])
        f("dim_text", ["plot", "table", "--dim", "abc"], ["--dim"])
        f("layout", ["plot", "table", "--layout", "diagonal"], ["--layout", "diagonal"])
        f("table_encoder", ["plot", "table", "--encoder", "learned"], ["--encoder", "learned"])
        f("colormap", ["plot", "table", "--colormap", "jet"], ["--colormap", "jet"])
        f("vrange", ["plot", "table", "--vmin", 1, "--vmax", 0], ["--vmin", "--vmax"])
        f("panel_size", ["plot", "table", "--panel-size", 5], ["--panel-size", "[40, 4000]"])
        f("columns", ["plot", "table", "--columns", -1], ["--columns"])
        f("unknown_flag", ["plot", "table", "--bogus", 1], ["--bogus"])
        f("existing_kept", ["plot", "table", "--len", -3], ["--len"], keep="precious")
        f("rope_base", ["plot", "rope", "--base", -1], ["--base", "-1"])
        f("rope_scaling", ["plot", "rope", "--scaling", "bogus"], ["--scaling", "bogus"])
        f("rope_needs_factor", ["plot", "rope", "--scaling", "yarn"], ["--scaling yarn", "factor"])
        f("rope_rotary_dim", ["plot", "rope", "--head-dim", 8, "--rotary-dim", 9], ["rotary_dim = 9"])
        f("rope_heatmap_curves", ["plot", "rope", "--style", "heatmap", "--base", "100,1000"], ["--style heatmap"])
        f("rope_style", ["plot", "rope", "--style", "bars"], ["--style", "bars"])
        f("rope_query", ["plot", "rope", "--query", "zeros"], ["--query", "zeros"])
        f("bias_encoder", ["plot", "bias", "--encoder", "rope"], ["--encoder", "rope"])
        f("bias_missing_encoder", ["plot", "bias"], ["--encoder"])
        f("bias_head", ["plot", "bias", "--encoder", "alibi", "--heads", 8, "--head", 9], ["--head", "9", "[0, 8)"])
        f("bias_heads0", ["plot", "bias", "--encoder", "alibi", "--heads", 0], ["--heads"])
        f("bias_len", ["plot", "bias", "--encoder", "alibi", "--len", 5000], ["--len", "5000"])
        f("bias_alibi_table", ["plot", "bias", "--encoder", "alibi", "--table", self.w("w8.npy")], ["--table", "alibi"])
        f("bias_t5_missing", ["plot", "bias", "--encoder", "t5", "--table", self.w("missing.npy")], ["--table", "missing.npy"])
        f("bias_t5_shape", ["plot", "bias", "--encoder", "t5", "--table", self.w("v1.npy")],
          ["--table", "v1.npy", "[num_buckets, H]", "[5]"])
        f("bias_t5_trunc", ["plot", "bias", "--encoder", "t5", "--table", self.w("trunc.npy")], ["--table", "trunc.npy"])
        f("bias_t5_heads", ["plot", "bias", "--encoder", "t5", "--table", self.w("w8.npy"), "--heads", 3],
          ["--table", "8 heads", "--heads"])
        f("bias_t5_buckets", ["plot", "bias", "--encoder", "t5", "--num-buckets", 3], ["num_buckets = 3"])
        f("bias_style", ["plot", "bias", "--encoder", "alibi", "--style", "pie"], ["--style", "pie"])
        f("att_encoders", ["plot", "attention", "--encoders", "rope,bogus"], ["--encoders", "bogus"])
        f("att_heads", ["plot", "attention", "--heads", 3], ["--heads", "H = 3"])
        f("att_head", ["plot", "attention", "--head", "max"], ["--head", "max"])
        f("att_x_alone", ["plot", "attention", "--x", self.w("x.npy")], ["--x", "--wq", "--wk"])
        f("att_wq_shape", ["plot", "attention", "--x", self.w("x.npy"), "--wq", self.w("w7.npy"), "--wk", self.w("w8.npy"),
                           "--heads", 2], ["--wq", "w7.npy", "[8, 8]", "[7, 7]"])
        f("att_x_dtype", ["plot", "attention", "--x", self.w("ints.npy"), "--wq", self.w("w8.npy"), "--wk", self.w("w8.npy")],
          ["--x", "ints.npy", "<i8"])
        f("att_labels", ["plot", "attention", "--len", 4, "--labels", "a,b"], ["--labels", "N = 4"])
        f("att_input", ["plot", "attention", "--input", "noise"], ["--input", "noise"])
        f("npy_4d", ["plot", "npy", "--in", self.w("four.npy")], ["--in", "four.npy", "[2, 2, 2, 2]"])
        f("npy_ints", ["plot", "npy", "--in", self.w("ints.npy")], ["--in", "ints.npy", "<i8"])
        f("npy_missing", ["plot", "npy", "--in", self.w("nothing.npy")], ["--in", "nothing.npy"])
        f("npy_index", ["plot", "npy", "--in", self.w("x.npy"), "--index", 0], ["--index"])
        # NaN and Inf: -inf is an array's masked entry, anything else non-finite is refused.
        bad = np.zeros((3, 4))
        bad[1, 2] = np.nan
        np.save(self.w("nan.npy"), bad)
        bad[1, 2] = np.inf
        np.save(self.w("inf.npy"), bad)
        f("npy_nan", ["plot", "npy", "--in", self.w("nan.npy")],
          ["--in", "nan.npy", "element [1, 2] is nan", "finite or -inf (masked)"])
        f("npy_inf", ["plot", "npy", "--in", self.w("inf.npy")], ["--in", "inf.npy", "element [1, 2] is inf"])
        xn = np.zeros((5, 8))
        xn[4, 7] = np.nan
        np.save(self.w("xnan.npy"), xn)
        f("att_x_nan", ["plot", "attention", "--x", self.w("xnan.npy"), "--wq", self.w("w8.npy"), "--wk",
                        self.w("w8.npy"), "--heads", 2], ["--x", "xnan.npy", "element [4, 7] is nan"])
        t5 = np.zeros((32, 2))
        t5[0, 0] = -np.inf
        np.save(self.w("t5inf.npy"), t5)
        f("bias_t5_table_inf", ["plot", "bias", "--encoder", "t5", "--table", self.w("t5inf.npy")],
          ["--table", "t5inf.npy", "element [0, 0] is -inf"])
        with open(self.w("wide.npy"), "wb") as fh:
            header = "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 1099511627776), }"
            header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
            fh.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
        f("npy_empty_wide", ["plot", "npy", "--in", self.w("wide.npy")], ["--in", "wide.npy", "dimension 1", "2^24"])
        f("vmin_nan", ["plot", "table", "--vmin", "nan"], ["--vmin: nan is not a finite number"])
        f("vmax_inf", ["plot", "table", "--vmax", "inf"], ["--vmax: inf is not a finite number"])
        f("panel_size_nan", ["plot", "table", "--panel-size", "nan"], ["--panel-size: nan is not a finite number"])
        f("table_base_inf", ["plot", "table", "--base", "inf"], ["--base: inf is not a finite number"])
        f("rope_base_list_nan", ["plot", "rope", "--base", "100,nan"], ["--base: nan is not a finite number"])
        f("rope_factor_1e400", ["plot", "rope", "--scaling", "linear", "--factor", "1e400"],
          ["--factor: 1e400 is not a finite number"])
        f("bias_max_bias_nan", ["plot", "bias", "--encoder", "alibi", "--max-bias", "nan"],
          ["--max-bias: nan is not a finite number"])
        f("att_weight_scale_inf", ["plot", "attention", "--weight-scale", "inf"],
          ["--weight-scale: inf is not a finite number"])
        # Output paths: a directory is refused and left as it was; /dev/null is written in place.
        d = self.w("picdir.svg")
        os.makedirs(d, exist_ok=True)
        f("output_directory", ["plot", "table", "-o", d], ["-o", "picdir.svg", "is a directory"])
        self.ok("output_directory", os.path.isdir(d) and not os.listdir(d), "the directory changed")
        # A picture name that links to /dev/null: the device is written, the link kept.
        os.symlink("/dev/null", self.w("null.svg"))
        rc, _, se = self.run(["plot", "table", "--len", 4, "-o", self.w("null.svg")])
        self.ok("output_link_to_dev_null", rc == 0 and os.path.islink(self.w("null.svg"))
                and os.path.exists("/dev/null") and not os.path.isfile("/dev/null"), f"exit {rc}: {se!r}")
        rc, _, se = self.run(["plot"])
        self.ok("plot_no_kind", rc != 0 and len(se.strip().splitlines()) == 1, se)
        rc, _, se = self.run(["plot", "table"])
        self.ok("plot_no_output", rc != 0 and "-o" in se and len(se.strip().splitlines()) == 1, se)
        # compare
        quick = ["compare", "--dim", 16, "--heads", 2, "--max-len", 32, "--tokens", 4, "--time-len", 4,
                 "--time-budget", 0]
        f("cmp_heads", quick[:3] + ["--heads", 3], ["--heads", "H = 3"], out_name="t.md")
        f("cmp_shifts", quick + ["--shifts", "0"], ["--shifts", "0"], out_name="t.md")
        f("cmp_tokens", quick[:7] + ["--tokens", 64], ["--tokens", "64"], out_name="t.md")
        f("cmp_encoders", quick + ["--encoders", "rope,foo"], ["--encoders", "foo"], out_name="t.md")
        f("cmp_dtype", quick + ["--dtype", "f16"], ["--dtype", "f16"], out_name="t.md")
        f("cmp_budget", quick + ["--time-budget", -1], ["--time-budget"], out_name="t.md")
        f("cmp_bad_dir", quick + ["-o", self.w("no/such/t.md")], ["-o"], out_name="t.md")
        f("cmp_budget_nan", quick + ["--time-budget", "nan"], ["--time-budget: nan is not a finite number"],
          out_name="t.md")
        os.makedirs(self.w("tdir.md"), exist_ok=True)
        f("cmp_output_directory", quick + ["-o", self.w("tdir.md")], ["-o", "tdir.md", "is a directory"],
          out_name="t.md")
        rc, so, se = self.run(quick + ["--encoders", "none", "-o", "/dev/null"])
        self.ok("cmp_dev_null", rc == 0 and "| none" in so and os.path.exists("/dev/null")
                and not os.path.isfile("/dev/null"), f"exit {rc}: {se!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posenc", required=True)
    ap.add_argument("groups", nargs="*", default=["pictures", "compare", "errors"])
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="posenc_plot_cli_")
    s = Suite(os.path.abspath(args.posenc), work)
    try:
        for g in args.groups:
            getattr(s, "test_" + g)()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if s.bad_cases:
        print(f"{len(s.bad_cases)} bad-input cases run")
    print(f"{s.passed} passed, {s.failed} failed")
    return 1 if s.failed else 0


if __name__ == "__main__":
    sys.exit(main())
