#!/usr/bin/python3
"""`posenc inspect --json` against every golden file of tests/hf (docs/cli.md, "posenc inspect").

For each tests/hf/golden/<name>.json, runs `posenc inspect --config tests/hf/configs/<name>.json
--json` and compares model_type, hidden_size, the number of layers and, for every layer, every
key of the golden layer object (the schema of tests/hf/README.md): null for null, booleans,
integers and strings exactly, floats and lists of floats to 1e-12 relative. Two conventions of
the schema, as in tests/test_hf.cpp: Llama 4's layers without RoPE, which posenc runs with their
query temperature (encoder "temperature"), are "none" there, and deberta_pos_att_type is compared
as a set. Then `--layer L --json` of the last layer must give that layer alone, equal to the same
entry of the whole listing.

  /usr/bin/python3 check_inspect_golden.py --posenc BUILD/tools/posenc --hf tests/hf

Prints one line per mismatch and "N passed, M failed" last; exits non-zero when anything failed.
"""
import argparse
import json
import math
import os
import subprocess
import sys

REL = 1e-12


def same(key, got, want):
    """'' when `got` (posenc's) matches `want` (the golden value), else what differs."""
    if want is None:
        return "" if got is None else f"{got!r}, expected null"
    if got is None:
        return f"null, expected {want!r}"
    if isinstance(want, bool) or isinstance(got, bool):
        return "" if got is want else f"{got!r}, expected {want!r}"
    if isinstance(want, str):
        if key == "encoder" and got == "temperature" and want == "none":
            return ""
        return "" if got == want else f"{got!r}, expected {want!r}"
    if isinstance(want, list):
        if not isinstance(got, list):
            return f"{got!r}, expected a list"
        if key == "deberta_pos_att_type":
            return "" if sorted(got) == sorted(want) else f"{got!r}, expected {want!r} (as a set)"
        if len(got) != len(want):
            return f"{len(got)} entries, expected {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            d = same(key, g, w)
            if d:
                return f"[{i}]: {d}"
        return ""
    if isinstance(want, int) and isinstance(got, int):
        return "" if got == want else f"{got}, expected {want}"
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        g, w = float(got), float(want)
        if math.isfinite(w) and abs(g - w) <= REL * max(1e-300, abs(g), abs(w)):
            return ""
        return f"{g!r}, expected {w!r} (relative error {abs(g - w) / max(1e-300, abs(w)):.3g})"
    return f"{got!r} ({type(got).__name__}), expected {want!r} ({type(want).__name__})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posenc", required=True, help="the posenc program")
    ap.add_argument("--hf", required=True, help="tests/hf (configs/ and golden/)")
    a = ap.parse_args()
    golden_dir = os.path.join(a.hf, "golden")
    names = sorted(f[:-5] for f in os.listdir(golden_dir) if f.endswith(".json"))
    passed = failed = 0

    def check(tag, cond, msg):
        nonlocal passed, failed
        if cond:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {tag}: {msg}")
        return cond

    def inspect(tag, config, extra=()):
        r = subprocess.run([a.posenc, "inspect", "--config", config, "--json", *extra],
                           capture_output=True, text=True, timeout=60)
        if not check(tag, r.returncode == 0 and r.stderr == "", f"exit {r.returncode}: {r.stderr.strip()}"):
            return None
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            check(tag, False, f"stdout is not one JSON object: {e}")
            return None

    for name in names:
        with open(os.path.join(golden_dir, name + ".json")) as f:
            gold = json.load(f)
        config = os.path.join(a.hf, "configs", name + ".json")
        if not check(name, os.path.exists(config), f"no config {config}"):
            continue
        got = inspect(name, config)
        if got is None:
            continue
        for key in ("model_type", "hidden_size", "max_position_embeddings"):
            if key in gold:
                d = same(key, got.get(key), gold[key])
                check(f"{name}: {key}", not d, d)
        gl, ol = gold["layers"], got.get("layers", [])
        if not check(f"{name}: layers", len(ol) == len(gl), f"{len(ol)} layers, expected {len(gl)}"):
            continue
        bad = 0
        for i, (w, g) in enumerate(zip(gl, ol)):
            for key, want in w.items():
                if key not in g:
                    check(f"{name}: layer {i}", False, f"no key {key!r}")
                    bad += 1
                    continue
                d = same(key, g[key], want)
                if d:
                    bad += 1
                    if bad <= 10:  # the first few of a systematic difference
                        print(f"FAIL {name}: layer {i}: {key}: {d}")
        check(f"{name}: every key of every layer", bad == 0, f"{bad} mismatches")
        last = len(ol) - 1
        one = inspect(f"{name} --layer {last}", config, ["--layer", str(last)])
        if one is not None:
            check(f"{name} --layer {last}", one.get("layers") == [ol[last]],
                  f"layers {json.dumps(one.get('layers'))[:200]}, expected [layer {last}] of the listing")
    print(f"{len(names)} golden files")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
