#!/usr/bin/python3
"""One training step of posenc::training::Model against PyTorch doing the same step, on CPU.

The model (posenc/training.hpp), transcribed to torch with the same shapes and operations:
token embedding [V, D]; per block (2): RMSNorm (eps 1e-6, gain), Q K V projections [D, D]
(no biases), RoPE on Q and K per head (Hugging Face's q*cos + rotate_half(q)*sin, base 10000,
cos/sin cached) or no encoding, causal softmax(Q K^T / sqrt(Dh)) V over [B, H, N, Dh], the
output projection, residual; RMSNorm, MLP D -> 4D -> D with biases and GELU (tanh), residual;
final RMSNorm, read-out [D, V] with bias, mean cross-entropy over the next-token targets (the
last position ignored), backward, global gradient-norm clipping at 1
(torch.nn.utils.clip_grad_norm_), AdamW (lr 3e-3, betas (0.9, 0.999), eps 1e-8, weight decay
0.01 on the projection matrices and the read-out only, as posenc's Adam). V = 64, H = 4,
D in {64, 128}, N in {128, 512}, a batch of B = 4 sequences (torch: one [4, N] batch;
posenc: Model::train_step over the 4 sequences), float32, 1 and 2 threads.

posenc's times come from bench_training (--benchmark_format=json); torch runs in a child
process per thread count (torch.set_num_threads(t), OMP_NUM_THREADS=t, OpenBLAS with
OPENBLAS_CORETYPE=SkylakeX, OMP_WAIT_POLICY=PASSIVE) and per ATen capability (avx2, avx512;
the faster is kept). The two sides alternate over --rounds rounds; each keeps its best
repetition. ratio = torch / posenc (> 1: posenc is faster).

Usage: /usr/bin/python3 bench/compare_training.py --bench-dir BUILD/bench [--reps 3] [--rounds 3] [--threads 1,2] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys

V, LAYERS, HEADS, BATCH = 64, 2, 4, 4
CONFIGS = [(enc, d, n) for d in (64, 128) for n in (128, 512) for enc in ("rope", "none")]


def posenc_name(enc, d, n, t):
    # Google Benchmark appends the Args to a registered benchmark's name
    return "train/%s/float/D:%d/N:%d/B:%d/threads:%d/%d/%d/%d/%d/real_time" % (enc, d, n, BATCH, t, d, n, BATCH, t)


def torch_child(threads, reps, capability):
    import time

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    def rms(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * g

    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    class Model(torch.nn.Module):
        def __init__(self, d, n, rope):
            super().__init__()
            P = torch.nn.Parameter
            f = 4 * d

            def xavier(i, o, extra=1.0):
                return P(torch.randn(i, o) * (extra * (2.0 / (i + o)) ** 0.5))

            res = 1.0 / (2.0 * LAYERS) ** 0.5
            self.embedding = P(torch.randn(V, d))
            self.blocks = torch.nn.ModuleList()
            for _ in range(LAYERS):
                b = torch.nn.Module()
                b.norm1, b.norm2 = P(torch.ones(d)), P(torch.ones(d))
                b.wq, b.wk, b.wv = xavier(d, d), xavier(d, d), xavier(d, d)
                b.wo = xavier(d, d, res)
                b.w1, b.b1 = xavier(d, f), P(torch.zeros(f))
                b.w2, b.b2 = xavier(f, d, res), P(torch.zeros(d))
                self.blocks.append(b)
            self.norm_f = P(torch.ones(d))
            self.readout, self.readout_bias = xavier(d, V), P(torch.zeros(V))
            self.d, self.dh, self.rope = d, d // HEADS, rope
            dh = self.dh
            inv = 1.0 / (10000.0 ** (torch.arange(0, dh, 2, dtype=torch.float64) / dh))
            ang = torch.outer(torch.arange(n, dtype=torch.float64), inv)
            emb = torch.cat((ang, ang), dim=-1)
            self.register_buffer("cos", emb.cos().float())  # cached, as HF's rotary_emb
            self.register_buffer("sin", emb.sin().float())
            self.register_buffer("mask", torch.triu(torch.ones(n, n, dtype=torch.bool), 1))

        def forward(self, tokens):
            B, N = tokens.shape
            H, dh = HEADS, self.dh
            x = self.embedding[tokens]
            for b in self.blocks:
                h = rms(x, b.norm1)
                q = (h @ b.wq).view(B, N, H, dh).transpose(1, 2)
                k = (h @ b.wk).view(B, N, H, dh).transpose(1, 2)
                v = (h @ b.wv).view(B, N, H, dh).transpose(1, 2)
                if self.rope:
                    q = q * self.cos + rotate_half(q) * self.sin
                    k = k * self.cos + rotate_half(k) * self.sin
                s = (q @ k.transpose(-1, -2)) * (dh ** -0.5)
                s = s.masked_fill(self.mask, float("-inf"))
                o = torch.softmax(s, dim=-1) @ v
                x = x + o.transpose(1, 2).reshape(B, N, self.d) @ b.wo
                h2 = rms(x, b.norm2)
                x = x + F.gelu(h2 @ b.w1 + b.b1, approximate="tanh") @ b.w2 + b.b2
            logits = rms(x, self.norm_f) @ self.readout + self.readout_bias
            return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))

    def timeit(fn):
        fn()
        fn()
        t0 = time.perf_counter()
        fn()
        one = max(time.perf_counter() - t0, 1e-6)
        inner = max(1, int(0.2 / one))
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - t0) / inner)
        return min(samples)

    results = {}
    for enc, d, n in CONFIGS:
        model = Model(d, n, enc == "rope")
        decay = [p for name, p in model.named_parameters() if name.split(".")[-1] in ("wq", "wk", "wv", "wo", "w1", "w2", "readout")]
        rest = [p for name, p in model.named_parameters() if name.split(".")[-1] not in ("wq", "wk", "wv", "wo", "w1", "w2", "readout")]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                                lr=3e-3, betas=(0.9, 0.999), eps=1e-8)
        params = list(model.parameters())
        g = torch.Generator().manual_seed(7)
        tokens = torch.randint(0, V, (BATCH, n), generator=g)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = model(tokens)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            return loss

        results["%s/%d/%d" % (enc, d, n)] = timeit(step)
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "aten_capability": capability}
    json.dump({"info": info, "seconds": results}, sys.stdout)


def run_torch(threads, reps, caps):
    best = {}
    for cap in caps:
        env = dict(os.environ)
        env.update({"OPENBLAS_CORETYPE": "SkylakeX", "OMP_WAIT_POLICY": "PASSIVE",
                    "OMP_NUM_THREADS": str(threads), "ATEN_CPU_CAPABILITY": cap})
        out = subprocess.run([sys.executable, __file__, "--torch-child", str(threads), str(reps), cap],
                             env=env, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        for k, v in r["seconds"].items():
            if k not in best or v < best[k][0]:
                best[k] = (v, cap)
    return best, r["info"]["torch"]


def run_posenc(bench_dir, threads_list, reps):
    cmd = [os.path.join(bench_dir, "bench_training"), "--no-limits", "--benchmark_format=json",
           "--benchmark_filter=^train/.*/threads:(%s)/" % "|".join(str(t) for t in threads_list),
           "--benchmark_repetitions=%d" % reps, "--benchmark_min_time=0.2",
           "--benchmark_enable_random_interleaving=true"]
    data = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    times = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        times[b["run_name"]] = min(times.get(b["run_name"], 1e300), b["real_time"] * unit)
    return times


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-child":
        torch_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-dir", default=os.path.join("build", "bench"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--caps", default="avx2,avx512", help="ATen capabilities tried for torch")
    ap.add_argument("--json")
    args = ap.parse_args()
    threads_list = [int(t) for t in args.threads.split(",")]
    posenc, torch_t, version = {}, {}, "?"
    for _ in range(args.rounds):
        for k, v in run_posenc(args.bench_dir, threads_list, args.reps).items():
            posenc[k] = min(posenc.get(k, 1e300), v)
        for t in threads_list:
            best, version = run_torch(t, args.reps, args.caps.split(","))
            cur = torch_t.setdefault(t, {})
            for k, v in best.items():
                if k not in cur or v[0] < cur[k][0]:
                    cur[k] = v
    rows = []
    for t in threads_list:
        for enc, d, n in CONFIGS:
            p = posenc.get(posenc_name(enc, d, n, t))
            tt, cap = torch_t[t]["%s/%d/%d" % (enc, d, n)]
            rows.append({"encoder": enc, "D": d, "N": n, "threads": t, "posenc_ms": p * 1e3,
                         "torch_ms": tt * 1e3, "torch_aten": cap, "ratio": tt / p})
    print("torch %s; V = %d, %d blocks, %d heads, batch %d, float32\n" % (version, V, LAYERS, HEADS, BATCH))
    print("| encoder | D | N | threads | posenc ms | torch ms (ATen) | torch / posenc |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %d | %d | %d | %.3f | %.3f (%s) | %.2f |" % (r["encoder"], r["D"], r["N"], r["threads"],
                                                             r["posenc_ms"], r["torch_ms"], r["torch_aten"], r["ratio"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
