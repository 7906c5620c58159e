#!/usr/bin/python3
"""Tests of `posenc plot` and `posenc compare` (docs/plots.md, docs/compare.md).

Runs the program and checks its pictures, its comparison table, and every bad-input case.
Pictures (drawn by tools/posenc/posenc_plot.py with matplotlib): SVG parsed as XML with its
Unicode labels as <text>, each heatmap's embedded image (its size is the panel's cells, its
pixels the colours of the cells) and each panel's colour bar; PNG signature, IHDR size and, read
back with matplotlib, the pixels of each panel; byte-identical reruns; the file mode; and the
private temporary directory removed after every run. Bad input: non-zero exit, one line on
stderr naming the flag, and no output file (an existing output is left untouched, no temporary
file is left behind). Missing Python or matplotlib (simulated): exit status 1, one line saying
what to install, no output.

  /usr/bin/python3 test_plot_cli.py --posenc BUILD/tools/posenc [GROUP ...]

GROUP is any of: pictures compare errors missing (default: all). posenc runs this interpreter
(POSENC_PYTHON). `pictures` needs matplotlib: without it that group is skipped with a message
and the exit status is 77 (ctest SKIP_RETURN_CODE) unless something failed. Prints
"N passed, M failed" last and exits 1 when anything failed.
"""
import argparse
import base64
import contextlib
import io
import os
import shutil
import struct
import sys
import tempfile
import xml.etree.ElementTree as ET

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cli_common"))
from cli_runner import Runner  # noqa: E402  (tests/cli_common, shared with tests/cli)

try:
    import matplotlib.image as mpl_image
    import matplotlib

    VIRIDIS = matplotlib.colormaps["viridis"]
except ImportError:
    mpl_image = None

SVG_NS = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MASKED = (0xDD / 255, 0xDD / 255, 0xDD / 255)
NEEDS_MATPLOTLIB = "needs Python 3 with matplotlib"
INSTALL = "apt-get install python3-matplotlib"


def png_chunks(data):
    """The (type, payload) chunks of a PNG file's bytes."""
    chunks, i = [], 8
    while i + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        chunks.append((kind, data[i + 8:i + 8 + n]))
        i += 12 + n
    return chunks


def near(rgb, want, tol=0.03):
    return all(abs(float(a) - float(b)) <= tol for a, b in zip(rgb, want))


class Suite(Runner):
    def __init__(self, posenc, work):
        super().__init__(posenc, work, timeout=120)
        self.bad_cases = set()  # the names of the bad-input cases run
        self.skipped = []
        # Every run's temporary directory goes here, so that a test can see it removed.
        self.tmp = self.w("tmp")
        os.makedirs(self.tmp)
        os.environ["TMPDIR"] = self.tmp
        os.environ["POSENC_PYTHON"] = sys.executable
        for var in ("POSENC_PLOT_SCRIPT", "POSENC_PLOT_DRY_RUN"):
            os.environ.pop(var, None)

    def leftovers(self):
        return [f for f in os.listdir(self.work) if ".tmp." in f] + os.listdir(self.tmp)

    @contextlib.contextmanager
    def env(self, **changes):
        """The environment of the runs inside: each NAME=value set, NAME=None removed."""
        saved = {k: os.environ.get(k) for k in changes}
        try:
            for k, v in changes.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    # --- pictures ------------------------------------------------------------------------------
    def svg(self, name, path, texts=(), cells=None):
        """Checks an SVG file: well-formed XML, an <svg> root, the given texts, and `cells`: the
        [cols, rows] of each heatmap's embedded image, in panel order. Returns the root."""
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError) as e:
            self.ok(name, False, f"{path}: not well-formed XML: {e}")
            return None
        self.ok(name, root.tag == SVG_NS + "svg", f"root is {root.tag}")
        all_text = [t.text or "" for t in root.iter(SVG_NS + "text")]
        for t in texts:
            self.ok(name, t in all_text, f"no <text>{t}</text> in {path}; have {all_text[:40]}")
        if cells is not None:
            sizes = [(int(i.get("width")), int(i.get("height"))) for i in self.heatmaps(root)]
            self.ok(name, sizes == cells, f"heatmap images {sizes}, expected {cells}")
        self.mode(name, path)
        return root

    @staticmethod
    def heatmaps(root):
        """The embedded image of each heatmap panel, in panel order."""
        found = [i for i in root.iter(SVG_NS + "image") if (i.get("id") or "").startswith("heatmap-")]
        return sorted(found, key=lambda i: int(i.get("id").split("-")[1]))

    @staticmethod
    def pixels(image):
        """An <image> element's embedded PNG as RGBA floats [rows, cols, 4]."""
        data = image.get(XLINK_HREF).split(",", 1)[1]
        return mpl_image.imread(io.BytesIO(base64.b64decode(data)), format="png")

    @staticmethod
    def colorbars(root):
        """The tick labels of each colour bar, by its id (colorbar-<panel> or colorbar-shared)."""
        return {g.get("id"): [t.text for t in g.iter(SVG_NS + "text")]
                for g in root.iter(SVG_NS + "g") if (g.get("id") or "").startswith("colorbar-")}

    def png(self, name, path, min_w=100, min_h=100):
        """Checks a PNG file: signature, IHDR size and depth, decodable by matplotlib, not one
        flat colour. Returns its pixels."""
        try:
            with open(path, "rb") as f:
                head = f.read(33)
        except OSError as e:
            return self.ok(name, False, f"{path}: {e}")
        if not self.ok(name, head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR", f"{path}: not a PNG"):
            return None
        w, h = struct.unpack(">II", head[16:24])
        self.ok(name, min_w <= w <= 8000 and min_h <= h <= 8000, f"{path}: {w} x {h}")
        self.ok(name, head[24] == 8 and head[25] in (2, 6), f"{path}: expected 8-bit RGB or RGBA")
        self.mode(name, path)
        px = mpl_image.imread(path)
        self.ok(name, px.shape[:2] == (h, w), f"{path}: decoded {px.shape}, IHDR {w} x {h}")
        self.ok(name, len(np.unique(px.reshape(-1, px.shape[2]), axis=0)) > 8, f"{path}: (almost) one colour")
        return px

    def mode(self, name, path):
        umask = os.umask(0)
        os.umask(umask)
        m = os.stat(path).st_mode & 0o777
        self.ok(name, m == 0o666 & ~umask, f"{path}: mode {oct(m)}, expected {oct(0o666 & ~umask)}")

    def draw(self, name, args, fmt, texts=(), cells=None):
        """Draws `posenc plot args -o NAME.fmt` and checks it; returns the SVG root or the PNG's
        pixels (None when it failed)."""
        out = self.w(f"{name}.{fmt}")
        if os.path.exists(out):
            os.remove(out)
        rc, so, se = self.run(["plot"] + args + ["-o", out])
        if not self.ok(name, rc == 0 and os.path.exists(out), f"exit {rc}: {se.strip()}"):
            return None
        self.ok(name, se == "", f"stderr not empty: {se!r}")
        self.ok(name, not self.leftovers(), f"temporary files left: {self.leftovers()}")
        return self.svg(name, out, texts, cells) if fmt == "svg" else self.png(name, out)

    def same_bytes(self, name, args, fmt):
        """Draws the picture again and compares the bytes with the first drawing's."""
        first = self.w(f"{name}.{fmt}")
        again = self.w(f"{name}_again.{fmt}")
        rc, _, se = self.run(["plot"] + args + ["-o", again])
        try:
            with open(first, "rb") as a, open(again, "rb") as b:
                x, y = a.read(), b.read()
        except OSError as e:
            return self.ok(f"{name}_deterministic", False, f"exit {rc}: {se!r}: {e}")
        self.ok(f"{name}_deterministic", rc == 0 and x == y, f"{first} and {again} differ")
        return x

    def test_pictures(self):
        if mpl_image is None:
            self.skipped.append("pictures")
            print(f"SKIP pictures: {sys.executable} cannot import matplotlib (Debian: {INSTALL})")
            return
        table = ["table", "--dim", 8, "--len", 5]
        root = self.draw("table_svg", table, "svg",
                         ["Sinusoidal encoding PE[p, i]", "dimension i", "position p", "PE value", "1.00", "\u22121.00"],
                         cells=[(8, 5)])
        if root is not None:
            bars = self.colorbars(root)
            self.ok("table_svg", list(bars) == ["colorbar-shared"], f"colour bars {list(bars)}")
        self.draw("table_png", table, "png")
        svg = self.same_bytes("table_svg", table, "svg")
        self.ok("table_svg_no_date", svg is not None and b"<dc:date>" not in svg and b"Matplotlib v" not in svg,
                "the SVG names a date or matplotlib's version")
        png = self.same_bytes("table_png", table, "png")
        texts = [c[1] for c in png_chunks(png or b"") if c[0] in (b"tEXt", b"iTXt", b"zTXt", b"tIME")]
        self.ok("table_png_no_metadata", png is not None and not texts, f"text chunks {texts}")

        self.draw("rope_line_svg", ["rope", "--head-dim", 16, "--max-distance", 64, "--base", "10000,500000"], "svg",
                  ["RoPE: q\u00b7k as a function of distance", "distance d = p_q \u2212 p_k",
                   "q\u00b7k / (|q| |k|)", "base 10000", "base 500000"])
        self.draw("rope_scalings_png", ["rope", "--max-distance", 300, "--scaling", "none,linear,ntk,yarn,llama3,dynamic",
                                        "--factor", 4, "--original-max-positions", 128], "png")
        root = self.draw("rope_heatmap_svg", ["rope", "--head-dim", 16, "--max-distance", 20, "--style", "heatmap",
                                              "--query", "random"], "svg",
                         ["frequency pair i", "distance d", "pair's q\u00b7k / |q\u1d62|\u00b2"], cells=[(21, 8)])
        if root is not None:
            sub = [t.text for t in root.iter(SVG_NS + "text") if "\u03b8\u1d62" in (t.text or "")]
            self.ok("rope_heatmap_svg", sub, "no text with \u03b8\u1d62")

        # ALiBi's heads: slopes 1/4 ... 1/256, each panel on its own colour scale: in every panel
        # the diagonal (0) is the top of viridis and the far corner (-5 m_h) its bottom.
        alibi = ["bias", "--encoder", "alibi", "--heads", 4, "--len", 6, "--causal"]
        root = self.draw("alibi_svg", alibi, "svg",
                         ["ALiBi bias per head", "head 0, m = 0.25", "head 3, m = 0.003906", "masked (\u2212\u221e)",
                          "ALiBi bias \u2212m\u2095\u00b7|i \u2212 j|, H = 4, max_bias 8, N = 6, causal"],
                         cells=[(6, 6)] * 4)
        if root is not None:
            bars = self.colorbars(root)
            self.ok("alibi_own_colorbars", sorted(bars) == [f"colorbar-{k}" for k in range(4)], f"colour bars {sorted(bars)}")
            labels = [tuple(bars.get(f"colorbar-{k}", ())) for k in range(4)]
            self.ok("alibi_own_colorbars", len(set(labels)) == 4, f"colour bar ticks {labels}")
            for k, image in enumerate(self.heatmaps(root)):
                px = self.pixels(image)
                self.ok("alibi_panels_not_flat", near(px[0, 0, :3], VIRIDIS(1.0)[:3]) and near(px[5, 0, :3], VIRIDIS(0.0)[:3]),
                        f"panel {k}: diagonal {px[0, 0, :3]}, corner {px[5, 0, :3]}")
                self.ok("alibi_masked", near(px[0, 5, :3], MASKED) and near(px[1, 0, :3], VIRIDIS(0.8)[:3], 0.2),
                        f"panel {k}: above the diagonal {px[0, 5, :3]}")
        px = self.draw("alibi_png", alibi + ["--columns", 2], "png")
        if px is not None:
            # Each quadrant holds one head: per-panel scales put both ends of viridis in each, in
            # far more pixels than its colour bar has (a 40-pixel cell at the default size).
            h, w = px.shape[0] // 2, px.shape[1] // 2
            for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
                q = px[r * h:(r + 1) * h, c * w:(c + 1) * w, :3]
                low = int(np.all(np.abs(q - VIRIDIS(0.0)[:3]) < 0.02, axis=2).sum())
                high = int(np.all(np.abs(q - VIRIDIS(1.0)[:3]) < 0.02, axis=2).sum())
                self.ok("alibi_png_panels", low > 400 and high > 400, f"head {k}: {low} darkest, {high} brightest pixels")
        self.draw("alibi_line_svg", ["bias", "--encoder", "alibi", "--heads", 4, "--len", 10, "--style", "line"], "svg",
                  ["head 1, m = 0.0625", "head 3, m = 0.003906", "distance j \u2212 i (key minus query)", "bias"])
        self.draw("t5_svg", ["bias", "--encoder", "t5", "--heads", 2, "--len", 9, "--head", 1], "svg",
                  ["T5 relative bias, head 1", "head 1"], cells=[(9, 9)])
        root = self.draw("attention_svg", ["attention", "--len", 6, "--dim", 16, "--heads", 2], "svg",
                         ["Attention maps under each encoder", "none", "RoPE", "ALiBi", "T5 bias", "Shaw",
                          "Transformer-XL", "BERT relative", "DeBERTa", "attention weight"], cells=[(6, 6)] * 10)
        if root is not None:
            bars = self.colorbars(root)
            self.ok("attention_svg", len(bars) == 10 and all(float(b[0]) == 0 for b in bars.values()),
                    f"colour bars from 0: {bars}")
        # T5 from a table file, attention from input files, labels, mean over heads
        np.save(self.w("t5.npy"), np.arange(64, dtype=np.float32).reshape(32, 2) / 10)
        self.draw("t5_table", ["bias", "--encoder", "t5", "--table", self.w("t5.npy"), "--len", 5], "svg",
                  ["head 0", "head 1"], cells=[(5, 5)] * 2)
        rng = np.random.default_rng(0)
        np.save(self.w("x.npy"), rng.standard_normal((5, 8)))
        np.save(self.w("wq.npy"), rng.standard_normal((8, 8)) * 0.3)
        np.save(self.w("wk.npy"), rng.standard_normal((8, 8)).astype(np.float32) * 0.3)
        self.draw("attention_files", ["attention", "--x", self.w("x.npy"), "--wq", self.w("wq.npy"),
                                      "--wk", self.w("wk.npy"), "--heads", 2, "--encoders", "rope,alibi",
                                      "--labels", "a,b,c,d,\u03b5", "--head", "mean", "--causal"], "svg",
                  ["RoPE", "ALiBi", "a", "\u03b5", "masked (\u2212\u221e)"], cells=[(5, 5)] * 2)
        # any .npy: 1-d line, 2-d heatmap, 3-d panels with -inf on one shared scale; a title with
        # a dollar sign (plain text, not mathtext) and bytes that are not UTF-8
        np.save(self.w("v.npy"), np.sin(np.arange(30) / 3.0))
        self.draw("npy_1d", ["npy", "--in", self.w("v.npy"), "--title", "Cost \u2264 $5 and $x$"], "svg",
                  ["index", "value", "Cost \u2264 $5 and $x$"])
        np.save(self.w("m.npy"), np.arange(12, dtype=np.float64).reshape(3, 4))
        self.draw("npy_2d", ["npy", "--in", self.w("m.npy"), "--title", "\udcff\x01ok"], "svg",
                  ["row", "column", "\ufffd\ufffdok"], cells=[(4, 3)])
        b = np.zeros((3, 4, 4), dtype=np.float32)
        b[:, 0, 3] = -np.inf
        np.save(self.w("b.npy"), b)
        root = self.draw("npy_3d", ["npy", "--in", self.w("b.npy"), "--x-label", "key"], "svg",
                         ["[0]", "[2]", "key", "masked (\u2212\u221e)"], cells=[(4, 4)] * 3)
        if root is not None:
            bars = self.colorbars(root)
            self.ok("npy_3d_shared_colorbar", list(bars) == ["colorbar-shared"], f"colour bars {list(bars)}")
        self.draw("npy_index", ["npy", "--in", self.w("b.npy"), "--index", 1], "png")
        # an existing picture is replaced
        out = self.w("replace.svg")
        with open(out, "w") as f:
            f.write("old")
        rc, _, se = self.run(["plot", "table", "--dim", 4, "--len", 3, "-o", out, "--title", "New title"])
        self.ok("replace", rc == 0, se)
        self.svg("replace", out, ["New title"], cells=[(4, 3)])
        # A picture name that links to /dev/null: the device is written, the link kept.
        os.symlink("/dev/null", self.w("null.svg"))
        rc, _, se = self.run(["plot", "table", "--len", 4, "-o", self.w("null.svg")])
        self.ok("output_link_to_dev_null", rc == 0 and os.path.islink(self.w("null.svg"))
                and os.path.exists("/dev/null") and not os.path.isfile("/dev/null"), f"exit {rc}: {se!r}")
        # --help of every kind
        for kind in ("table", "rope", "bias", "attention", "npy"):
            rc, so, _ = self.run(["plot", kind, "--help"])
            self.ok(f"help_{kind}", rc == 0 and "-o,--output" in so and "--colormap" in so, so[:200])
        self.ok("no_temporaries", not self.leftovers(), str(self.leftovers()))

    # --- missing Python, matplotlib or script: simulated, so that matplotlib is not needed -------
    def cannot_draw(self, name, fragments, **env):
        """`posenc plot table` under the environment `env` must exit 1 with one line holding
        every fragment, leave an existing output untouched and no temporary files."""
        out = self.w("kept.svg")
        with open(out, "w") as f:
            f.write("precious")
        with self.env(**env):
            rc, _, se = self.run(["plot", "table", "--dim", 4, "--len", 3, "-o", out])
        lines = se.strip().splitlines()
        self.ok(name, rc == 1, f"exit status {rc}, expected 1: {se!r}")
        self.ok(name, len(lines) == 1 and se.startswith("posenc: error: "), f"stderr: {se!r}")
        for frag in fragments:
            self.ok(name, frag in se, f"stderr lacks {frag!r}: {se.strip()!r}")
        with open(out) as f:
            self.ok(name, f.read() == "precious", f"{out} was changed")
        os.remove(out)
        self.ok(name, not self.leftovers(), f"temporary files left: {self.leftovers()}")

    def test_missing(self):
        empty = self.w("empty_path")
        os.makedirs(empty, exist_ok=True)
        self.cannot_draw("no_python3", [NEEDS_MATPLOTLIB, "there is no python3", INSTALL, "POSENC_PYTHON"],
                         PATH=empty, POSENC_PYTHON=None)
        self.cannot_draw("no_such_python", [NEEDS_MATPLOTLIB, "/no/such/python3", INSTALL],
                         POSENC_PYTHON="/no/such/python3")
        # A matplotlib that cannot be imported, ahead of the real one on the module path.
        fake = self.w("fake_modules")
        os.makedirs(os.path.join(fake, "matplotlib"), exist_ok=True)
        with open(os.path.join(fake, "matplotlib", "__init__.py"), "w") as f:
            f.write("raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n")
        self.cannot_draw("no_matplotlib", [NEEDS_MATPLOTLIB, "cannot import matplotlib", INSTALL], PYTHONPATH=fake)
        self.cannot_draw("no_script", ["POSENC_PLOT_SCRIPT=/no/such/posenc_plot.py"],
                         POSENC_PLOT_SCRIPT="/no/such/posenc_plot.py")
        failing = self.w("failing.py")
        with open(failing, "w") as f:
            f.write("import sys\nprint('some detail', file=sys.stderr)\nprint('boom: the last line', file=sys.stderr)\n"
                    "sys.exit(1)\n")
        self.cannot_draw("script_fails", ["failing.py failed (exit status 1)", "boom: the last line"],
                         POSENC_PLOT_SCRIPT=failing)
        silent = self.w("silent.py")
        with open(silent, "w") as f:
            f.write("pass\n")
        self.cannot_draw("script_writes_nothing", ["wrote no picture"], POSENC_PLOT_SCRIPT=silent)
        # A dry run computes and describes the figure but runs no script and writes nothing.
        out = self.w("dry.svg")
        with self.env(POSENC_PLOT_DRY_RUN="1", PATH=empty):
            rc, _, se = self.run(["plot", "attention", "--len", 4, "--dim", 8, "--heads", 2, "-o", out])
        self.ok("dry_run", rc == 0 and se == "" and not os.path.exists(out) and not self.leftovers(),
                f"exit {rc}: {se!r}, output {os.path.exists(out)}, left {self.leftovers()}")
        # Bad input is reported as such (exit 2) before Python is looked for.
        with self.env(PATH=empty, POSENC_PYTHON=None):
            rc, _, se = self.run(["plot", "table", "--len", 0, "-o", self.w("bad.svg")])
        self.ok("bad_input_first", rc == 2 and "--len" in se, f"exit {rc}: {se!r}")

    # --- compare -------------------------------------------------------------------------------
    def test_compare(self):
        small = ["compare", "--dim", 16, "--heads", 2, "--max-len", 64, "--tokens", 8, "--time-len", 16,
                 "--time-budget", 0, "--shifts", "1,5,40,1000"]
        out = self.w("table.md")
        rc, so, se = self.run(small + ["-o", out])
        if not self.ok("compare_runs", rc == 0, f"exit {rc}: {se.strip()}"):
            return
        rows = [l for l in so.splitlines() if l.startswith("| ") and not l.startswith("| encoder")]
        self.ok("compare_rows", len(rows) == 10, "\n".join(rows))
        cells = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in rows}
        for name in ("RoPE", "ALiBi", "T5 bias", "Shaw", "Transformer-XL", "BERT relative", "DeBERTa"):
            self.ok("compare_relative", cells.get(name, ["", "", ""])[2] == "yes", f"{name}: {cells.get(name)}")
        for name in ("sinusoidal", "learned"):
            self.ok("compare_absolute", cells.get(name, ["", "", ""])[2] == "no", f"{name}: {cells.get(name)}")
        learned = cells.get("learned", [""] * 8)
        self.ok("compare_learned_error",
                learned[4].startswith("error: LearnedEncoding: position p = ") and "L_max = 64" in learned[4],
                str(learned))
        self.ok("compare_learned_params", learned[1] == "1024 (L·D)", str(learned))
        self.ok("compare_shaw_distance", cells.get("Shaw", [""] * 8)[5] == "up to 16", str(cells.get("Shaw")))
        bert = cells.get("BERT relative", [""] * 8)
        self.ok("compare_bert_distance", bert[5] == "all (<= 63), inside the table", str(bert))
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
        # Every case is found before Python would run: an interpreter that does not exist would
        # turn a late one into exit status 1.
        with self.env(POSENC_PYTHON="/no/such/python3"):
            self.errors()

    def errors(self):
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
        f("vmin_above_data", ["plot", "table", "--vmin", 5], ["--vmin 5", "above every value", "--vmax"])
        f("vmax_below_data", ["plot", "bias", "--encoder", "alibi", "--heads", 2, "--vmax", -100],
          ["--vmax -100", "below every value", "head 0"])
        f("figure_too_large", ["plot", "bias", "--encoder", "alibi", "--heads", 16, "--len", 128, "--columns", 16,
                               "--panel-size", 4000], ["--panel-size 4000", "pixels"])
        f("bias_cells", ["plot", "bias", "--encoder", "alibi", "--heads", 32, "--len", 1024], ["--heads", "2^24", "--head"])
        f("panel_size", ["plot", "table", "--panel-size", 5], ["--panel-size", "[40, 4000]"])
        f("columns", ["plot", "table", "--columns", -1], ["--columns"])
        f("unknown_flag", ["plot", "table", "--bogus", 1], ["--bogus"])
        f("existing_kept", ["plot", "table", "--len", -3], ["--len"], keep="precious")
        f("rope_base", ["plot", "rope", "--base", -1], ["--base", "-1"])
        f("rope_scaling", ["plot", "rope", "--scaling", "bogus"], ["--scaling", "bogus", "longrope"])
        f("rope_longrope", ["plot", "rope", "--scaling", "longrope", "--factor", 4], ["--scaling longrope"])
        f("rope_layout", ["plot", "rope", "--layout", "split"], ["--layout", "split", "half or interleaved"])
        f("rope_heatmap_cells", ["plot", "rope", "--style", "heatmap", "--head-dim", 4096, "--max-distance", 8192],
          ["--style heatmap", "2^24"])
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
    ap.add_argument("groups", nargs="*", default=["pictures", "compare", "errors", "missing"])
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
    if s.failed:
        return 1
    return 77 if s.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
