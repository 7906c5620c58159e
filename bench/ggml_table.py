#!/usr/bin/env python3
"""Tables of posenc against ggml from one compare_ggml run (Google Benchmark JSON).

    python3 bench/ggml_table.py ggml.json      # prints the Markdown tables

make_results.py calls table() when bench/compare_ggml was built. Each benchmark's best
repetition (real time) is used; ratio = ggml time / posenc time (> 1: posenc is faster).
Targets (bench/RESULTS.md): decode posenc f32 >= 1.5 x ggml F32 and posenc bf16 >= 1.15 x ggml
F16 (each against ggml's better layout); prefill posenc f32 >= 1.5 x ggml on every row.
"""
import json
import re
import sys


def best_rows(data):
    rows = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        name = b["run_name"].replace("/real_time", "")
        if name not in rows or b["real_time"] < rows[name]["real_time"]:
            rows[name] = b
    return rows


def ms(b):
    unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
    return b["real_time"] * unit


def table(data):
    rows = best_rows(data)
    ctx = data.get("context", {})
    out = []
    out.append("ggml commit %s (built with GGML_NATIVE and GGML_OPENMP); %d CPUs at %s MHz as "
               "Google Benchmark reports them.\n" % (ctx.get("ggml_commit", "?"),
                                                     ctx.get("num_cpus", 0),
                                                     ctx.get("mhz_per_cpu", "?")))

    # RoPE
    out.append("| RoPE in place, [4096, 32 x 128] float | threads | ggml ms | posenc ms | ggml ÷ posenc |")
    out.append("|---|---:|---:|---:|---:|")
    for name, b in sorted(rows.items()):
        m = re.match(r"rope/ggml/(\w+)/(.*threads:(\d+))$", name)
        if not m:
            continue
        p = rows.get("rope/posenc/%s/%s" % (m.group(1), m.group(2)))
        if p:
            out.append("| %s | %s | %.2f | %.2f | %.2f |" % (
                m.group(1), m.group(3), ms(b), ms(p), ms(b) / ms(p)))
    out.append("")

    def best_of(prefix_fmt, sides, rest):
        found = [(ms(rows[n]), s) for s in sides
                 for n in [prefix_fmt % s + rest] if n in rows]
        return min(found) if found else None

    def side_cells(kind, rest, name, f):
        # ggml F32 best (layout) | posenc f32 | ratio | ggml F16 best (layout) | bf16 | f16 | ratio
        f32 = best_of(kind + "/%s", ["ggml_f32_heads", "ggml_f32_tokens"], rest)
        f16 = best_of(kind + "/%s", ["ggml_f16_heads", "ggml_f16_tokens"], rest)
        pb, ph = rows.get(kind + "/posenc_bf16" + rest), rows.get(kind + "/posenc_f16" + rest)
        if not (f32 and f16 and pb and ph):
            return None
        p32 = ms(rows[name])
        return (" | ".join([f + " (%s)", f, "%.2f", f + " (%s)", f, f, "%.2f"])) % (
            f32[0], f32[1].split("_")[-1], p32, f32[0] / p32, f16[0], f16[1].split("_")[-1],
            ms(pb), ms(ph), f16[0] / ms(pb))

    # prefill
    out.append("| prefill N 2048, H 8 | Dh | causal | threads | ggml F32 best (layout) | posenc f32 | ggml ÷ posenc f32 | ggml F16 best (layout) | posenc bf16 | posenc f16 | ggml F16 ÷ posenc bf16 |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in sorted(rows):
        m = re.match(r"prefill/posenc_f32/(\w+)/(N:2048/H:8/Dh:(\d+)/causal:(\d)/alibi:\d/threads:(\d+))$", name)
        if not m:
            continue
        enc, rest = m.group(1), "/" + m.group(1) + "/" + m.group(2)
        cells = side_cells("prefill", rest, name, "%.1f")
        if cells:
            out.append("| %s | %s | %s | %s | %s |" % (enc, m.group(3), m.group(4), m.group(5), cells))
    out.append("")

    # decode
    out.append("| decode, 1 query, H 32, Dh 128 | N | H_kv | threads | ggml F32 best (layout) | posenc f32 | ggml ÷ posenc f32 | ggml F16 best (layout) | posenc bf16 | posenc f16 | ggml F16 ÷ posenc bf16 |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in sorted(rows, key=lambda n: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", n)]):
        m = re.match(r"decode/posenc_f32/(N:(\d+)/Hkv:(\d+)/threads:(\d+))$", name)
        if not m:
            continue
        cells = side_cells("decode", "/" + m.group(1), name, "%.2f")
        if cells:
            out.append("| | %s | %s | %s | %s |" % (m.group(2), m.group(3), m.group(4), cells))
    out.append("")
    diffs = [b["max_diff"] for n, b in rows.items() if "max_diff" in b and "f32" in n]
    if diffs:
        out.append("Largest |ggml F32 - posenc f32| over the outputs of the runs without ALiBi: %.2g "
                   "(F16 K/V: %.2g)." % (max(diffs), max(b["max_diff"] for n, b in rows.items()
                                                         if "max_diff" in b and "f16" in n)))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(table(json.load(f)))
