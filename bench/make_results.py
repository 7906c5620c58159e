#!/usr/bin/python3
"""Runs posenc's benchmarks and the PyTorch comparison, and writes bench/RESULTS.md.

    /usr/bin/python3 bench/make_results.py --bench-dir BUILD/bench [--reps 10] [--out bench/RESULTS.md]

BUILD is a Release build configured with -DPOSENC_BUILD_BENCHMARKS=ON (the benchmarks are
compiled with -O3 -march=native). Every ratio is computed from numbers measured in this one
run: each benchmark program measures the machine's limits (copy bandwidth, Eigen GEMM FLOP/s)
at start-up. Times are the best of --reps repetitions (real time).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw).stdout


def load():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_quiet(limit=1.0, max_wait=300):
    """Waits (up to max_wait s) until the 1-minute load average is below limit: the machine's
    two cores are shared, and a 2-thread benchmark needs both. Returns the load then."""
    waited = 0
    while load() >= limit and waited < max_wait:
        time.sleep(15)
        waited += 15
    return load()


def run_bench(bench_dir, binary, reps, extra=()):
    # Repetitions of all benchmarks run in random order over the whole stage, so that the pairs
    # a target compares (1 and 2 threads, an encoder and no encoding) sample the same stretch
    # of time on this shared virtual machine, whose speed drifts by tens of percent.
    cmd = [os.path.join(bench_dir, binary), "--benchmark_format=json",
           "--benchmark_repetitions=%d" % reps,
           "--benchmark_enable_random_interleaving=true"] + list(extra)
    out = sh(cmd)
    data = json.loads(out)
    rows = {}
    # The fastest repetition of each benchmark, with its own counters: on a shared machine
    # other processes only ever slow a run down (the limits are best-of-N too).
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        name = b["run_name"]
        if name not in rows or b["real_time"] < rows[name]["real_time"]:
            rows[name] = b
    return data["context"], rows


MODULE_NOTE = ("The module's 2-thread rows are information, not targets: the 2-thread target is on the attention kernel, and the module adds the four projections, GEMMs that scale no better than Eigen's own GEMM on this machine at that moment (its speed-up is in the note).")


def rescale(ctx, rows):
    """Divides every result by the larger of the limit measured at start-up (in ctx) and the
    best limit/... benchmark of the stage (interleaved with the kernels); drops the limit/ rows.
    Returns the limits used: {(kind, threads): value}."""
    limits = {}
    for t in (1, 2):
        def best(name, key):
            b = rows.get("limit/%s/threads:%d/real_time" % (name, t))
            return float(b[key]) if b else 0.0

        def start(key):
            return float(ctx.get("%s_%dt" % (key, t), 0.0))
        limits[("copy", t)] = max(start("limit_copy_Bps"), best("memcpy", "bytes_per_second"),
                                  best("eigen_copy", "bytes_per_second"))
        limits[("inplace", t)] = max(start("limit_inplace_Bps"), best("inplace", "bytes_per_second"))
        for ty in ("float", "double"):
            limits[(ty, t)] = max(start("limit_gemm_flops_" + ty), best("gemm/" + ty, "FLOP/s"))
    for name in [n for n in rows if n.startswith("limit/")]:
        del rows[name]
    for name, b in rows.items():
        if "threads:" not in name:
            continue
        t = int(name.split("threads:")[1].split("/")[0])
        if "bytes_per_second" in b and limits[("copy", t)] > 0:
            b["ratio"] = b["bytes_per_second"] / limits[("copy", t)]
            b["ratio_inplace"] = b["bytes_per_second"] / limits[("inplace", t)]
        elif "FLOP/s" in b:
            ty = "double" if "/double/" in name else "float"
            if limits[(ty, t)] > 0:
                b["ratio"] = b["FLOP/s"] / limits[(ty, t)]
    return limits


def seconds(b):
    return b["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]


def lscpu_summary():
    keep = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "L1d cache",
            "L2 cache", "L3 cache", "Hypervisor vendor")
    lines = [l for l in sh(["lscpu"]).splitlines() if l.split(":")[0].strip() in keep]
    flags = sh(["lscpu"]).split("Flags:")[1].split("\n")[0].split()
    avx512 = sorted(f for f in flags if f.startswith("avx512"))
    return "\n".join("    " + " ".join(l.split()) for l in lines) + "\n    AVX-512: " + " ".join(avx512)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-dir", required=True)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = ap.parse_args()

    start = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    loads = [wait_quiet()]
    ctx_a, apply_rows = run_bench(args.bench_dir, "bench_apply", args.reps)
    limits_a = rescale(ctx_a, apply_rows)
    loads += [load(), wait_quiet()]
    ctx_t, attn_rows = run_bench(args.bench_dir, "bench_attention", args.reps)
    limits_t = rescale(ctx_t, attn_rows)
    loads += [load(), wait_quiet()]
    _, mem_rows = run_bench(args.bench_dir, "bench_memory", 1, ("--benchmark_filter=^memory/",))
    loads += [load(), wait_quiet()]
    torch_json = os.path.join("/tmp", "posenc_compare_torch.json")
    torch_text = sh([sys.executable, os.path.join(HERE, "compare_torch.py"), "--bench-dir",
                     args.bench_dir, "--reps", "3", "--rounds", "2", "--json", torch_json])
    loads.append(load())
    with open(torch_json) as f:
        torch_rows = json.load(f)["rows"]
    # bench/compare_ggml exists only when CMake was pointed at a ggml tree (POSENC_GGML_DIR)
    ggml_text = None
    if os.path.exists(os.path.join(args.bench_dir, "compare_ggml")):
        loads.append(wait_quiet())
        import ggml_table
        ggml_out = sh([os.path.join(args.bench_dir, "compare_ggml"), "--no-limits",
                       "--benchmark_format=json", "--benchmark_repetitions=3",
                       "--benchmark_enable_random_interleaving=true"])
        ggml_text = ggml_table.table(json.loads(ggml_out))
        loads.append(load())
    else:
        print("make_results: bench/compare_ggml not built (configure with -DPOSENC_GGML_DIR=<a ggml "
              "tree> to compare with ggml); its section is left out", file=sys.stderr)

    def a(name):
        return apply_rows[name + "/real_time"]

    def t(name):
        return attn_rows[name + "/real_time"]

    targets = []  # (target, measured, bound, met, note)

    def target(what, value, bound, less, fmt="%.2f", note="", info=False):
        met = value <= bound if less else value >= bound
        status = "info" if info else ("met" if met else "**not met**")
        targets.append((what, fmt % value, ("≤ " if less else "≥ ") + fmt % bound, status, note))

    for layout in ("rope", "rope_interleaved"):
        b = a("%s/float/N:4096/H:32/Dh:128/threads:1" % layout)
        target("RoPE %s in place [4096, 32, 128], cached, 1 thread: bytes/s ÷ copy bandwidth" % ("half" if layout == "rope" else "interleaved"),
               b["ratio"], 0.75, False, note="÷ in-place bandwidth: %.2f" % b["ratio_inplace"])
    for enc in ("sinusoidal", "learned"):
        b = a("%s/float/N:4096/H:32/Dh:128/threads:1" % enc)
        target("%s addition X [4096, 4096], 1 thread: bytes/s ÷ copy bandwidth" % enc, b["ratio"], 0.75, False,
               note="÷ in-place bandwidth: %.2f" % b["ratio_inplace"])
    base = "core/%s/float/N:2048/Dh:64/causal:%d/threads:%d"
    none1 = t(base % ("none", 0, 1))
    target("attention N=2048 H=8 Dh=64, no mask, 1 thread: FLOP/s (4·N²·Dh·H) ÷ Eigen GEMM FLOP/s", none1["ratio"], 0.5, False,
           note="%.1f GFLOP/s" % (none1["FLOP/s"] * 1e-9))
    target("causal ÷ non-causal time (same attention)", seconds(t(base % ("none", 1, 1))) / seconds(none1), 0.6, True)
    for enc in ("rope", "alibi", "t5"):
        for causal in (0, 1):
            r = seconds(t(base % (enc, causal, 1))) / seconds(t(base % ("none", causal, 1)))
            target("%s ÷ no encoding, attention core%s, 1 thread" % (enc, ", causal" if causal else ""), r, 1.15, True)
    for enc in ("rope", "alibi", "t5"):
        r = seconds(t("module/%s/float/N:2048/Dh:64/causal:0/threads:1" % enc)) / seconds(t("module/none/float/N:2048/Dh:64/causal:0/threads:1"))
        target("%s ÷ no encoding, whole module (projections included), 1 thread" % enc, r, 1.15, True)
    for enc in ("none", "sinusoidal", "rope", "alibi", "t5"):
        m = mem_rows["memory/core/%s/N:16384/iterations:1/real_time" % enc]
        target("memory: attention core (%s) at N=16384 H=8 Dh=64, peak beyond Q, K, V, O (MiB)" % enc, m["peak_MiB"], 64, True, fmt="%.1f")
    for enc in ("none", "sinusoidal", "rope", "alibi", "t5"):
        m = mem_rows["memory/module/%s/N:16384/iterations:1/real_time" % enc]
        target("memory: whole module (%s), peak beyond X, W, Y ÷ size of X" % enc, m["peak_over_X"], 5, True,
               note="first call, building the encoder's position cache too: %.2f" % m["first_call_peak_over_X"])
    for kind, name in (("core", base % ("none", 0, 2)), ("core", base % ("none", 1, 2)),
                       ("core", base % ("alibi", 0, 2)), ("module", "module/none/float/N:2048/Dh:64/causal:0/threads:2"),
                       ("module", "module/alibi/float/N:2048/Dh:64/causal:1/threads:2")):
        two = t(name)
        one = t(name.replace("threads:2", "threads:1"))
        # The target is on the attention kernel; the module adds the four projections, GEMMs
        # that scale no better than Eigen's own GEMM does on this machine at that moment.
        gemm_speedup = limits_t[("float", 2)] / limits_t[("float", 1)]
        target("2 threads ÷ 1 thread speed-up, %s" % name.replace("/threads:2", "").replace("/float", ""),
               seconds(one) / seconds(two), 1.7, False, info=kind == "module",
               note=("Eigen GEMM's own speed-up in this run: %.2f" % gemm_speedup) if kind == "module" else "")
    for r in torch_rows:
        target("PyTorch time ÷ posenc time: %s, %d thread%s" % (r["workload"], r["threads"], "s" if r["threads"] > 1 else ""),
               r["ratio"] or 0.0, 1.0, False, note="%.3f ms vs %.3f ms" % (r["torch_ms"], r["posenc_ms"] or 0.0))

    with open(args.out, "w") as f:
        w = f.write
        w("# posenc benchmark results\n\n")
        w("Generated by `bench/make_results.py` on %s; every number below comes from that one run.\n\n" % start)
        w("Regenerate (Debian 12 with `g++ cmake libeigen3-dev libbenchmark-dev python3-torch "
          "libopenblas0-openmp`; 15 to 25 minutes: before each stage it waits, up to 5 minutes, for the 1-minute load average to fall below 1):\n\n")
        w("```sh\ncmake -S . -B /tmp/perf-build -DCMAKE_BUILD_TYPE=Release -DPOSENC_BUILD_BENCHMARKS=ON && "
          "cmake --build /tmp/perf-build -j2 --target bench_apply bench_attention bench_memory && "
          "/usr/bin/python3 bench/make_results.py --bench-dir /tmp/perf-build/bench\n```\n\n")
        w("## Machine and conditions\n\n")
        w(lscpu_summary() + "\n\n")
        w("Compiler: %s; benchmarks built with -O3 -march=native, OpenMP.\n" % sh(["c++", "--version"]).splitlines()[0])
        w("Load average (1 min) at the start and end of each stage (apply, attention, memory, torch): %s. The machine's 2 cores are shared "
          "with other builds; the limits are the best of several runs and the results "
          "the best of %d repetitions (real time), run in random order over each stage (Google Benchmark's --benchmark_enable_random_interleaving) so that the two sides of every ratio sample the same stretch of time; compare_torch.py alternates posenc and PyTorch over 2 rounds of 3 repetitions and keeps each side's best. A busy moment can only lower a ratio against a limit; a 2-thread run during another process's build gets one core, which shows as a speed-up near 1.\n\n"
          % (", ".join("%.2f" % x for x in loads), args.reps))
        w("Limits measured in this run (1 thread / 2 threads), each the larger of the measurement "
          "at the program's start-up and the best repetition of its limit/ benchmark, which runs "
          "interleaved with the kernels (the memory limits from the apply stage, GEMM from the "
          "attention stage):\n\n")
        for key, lim, label, unit in (("copy", limits_a, "copy bandwidth (best of memcpy and Eigen copy; read + write)", "GB/s"),
                                      ("inplace", limits_a, "in-place x *= c bandwidth (read + write)", "GB/s"),
                                      ("float", limits_t, "Eigen GEMM float, 1024³", "GFLOP/s"),
                                      ("double", limits_t, "Eigen GEMM double, 1024³", "GFLOP/s")):
            w("- %s: %.1f / %.1f %s\n" % (label, lim[(key, 1)] * 1e-9, lim[(key, 2)] * 1e-9, unit))
        w("\n## Targets (float32, kernels and encoders)\n\n| target | measured | bound | |  note |\n|---|---:|---:|---|---|\n")
        for what, val, bound, met, note in targets:
            w("| %s | %s | %s | %s | %s |\n" % (what, val, bound, met, note))
        w("\nHow to read them: RoPE and the additive encodings are in place, so they move no "
          "write-allocate traffic while the copy that defines the limit does: they can exceed "
          "1, and the in-place bandwidth beside them is the tighter bound. Bytes counted: RoPE "
          "and sinusoidal 2 |X| (X read and written; cos/sin and the sinusoid seed rows stay in "
          "cache), learned 3 |X| (X and the table read, X written). FLOP/s of attention "
          "counts the dense 4·N²·Dh·H also under a causal mask. Memory is the peak of live heap "
          "bytes (a counting allocator in bench_memory.cpp), 2 threads, causal. "
          "%s\n\n" % MODULE_NOTE)
        w("## posenc against PyTorch (compare_torch.py)\n\n" + torch_text + "\n")
        if ggml_text:
            w("## posenc against ggml (compare_ggml)\n\n" + ggml_text + "\n")
        w("## Every benchmark of the default run\n\n")
        w("Time is real time (best of the repetitions). ratio: bytes/s ÷ copy bandwidth (apply) or FLOP/s ÷ Eigen "
          "GEMM FLOP/s (attention) at the same thread count.\n\n")
        w("| benchmark | time | rate | ratio |\n|---|---:|---:|---:|\n")
        for rows, key in ((apply_rows, "bytes_per_second"), (attn_rows, "FLOP/s")):
            for name, b in rows.items():
                rate = b.get(key)
                rate_s = ("%.2f GiB/s" % (rate / 2**30)) if key == "bytes_per_second" else ("%.1f GFLOP/s" % (rate * 1e-9))
                w("| %s | %.3f ms | %s | %.3f |\n" % (name.replace("/real_time", ""), seconds(b) * 1e3, rate_s, b["ratio"]))
        w("\n## Memory (bench_memory)\n\n| benchmark | peak MiB | bound MiB | ratio | first call ÷ X |\n|---|---:|---:|---:|---:|\n")
        for name, b in mem_rows.items():
            fc = ("%.2f" % b["first_call_peak_over_X"]) if "first_call_peak_over_X" in b else ""
            w("| %s | %.1f | %.1f | %.3f | %s |\n" % (name.replace("/iterations:1/real_time", ""), b["peak_MiB"], b["limit_MiB"], b["ratio"], fc))
        w("\n## The full grid\n\n")
        w("The default run registers the targets' workloads and a subset of the grid. `--full` "
          "registers the whole grid (N ∈ {128, 512, 2048, 8192}, H = 8 and 32 for "
          "RoPE, Dh ∈ {64, 128}, float and double, 1 and 2 threads, every encoder, causal or "
          "not); select parts of it with Google Benchmark's filter, e.g.\n\n")
        w("```sh\n/tmp/perf-build/bench/bench_apply --full --benchmark_filter='^rope.*/double/'\n"
          "/tmp/perf-build/bench/bench_attention --full --benchmark_filter='^core/.*/N:(128|512)/' --benchmark_repetitions=3\n"
          "/tmp/perf-build/bench/bench_memory --full\n```\n\n"
          "The whole grid takes well over an hour on this machine (attention at N = 8192 in "
          "double is ~10 s per call).\n")
    print(open(args.out).read())


if __name__ == "__main__":
    main()
