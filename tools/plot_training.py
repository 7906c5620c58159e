#!/usr/bin/env python3
"""Draws docs/img/extrapolation.{png,svg} from the CSV of examples/train_positions.

    /usr/bin/python3 tools/plot_training.py train_positions.csv docs/img/extrapolation

Left: the periodic task's held-out loss against the evaluation length (log2 axis), one line
per encoder, the Bayes-optimal loss dashed. Right: the copy task's accuracy, chance dashed.
An encoder that could not run at a length (posenc::error: the learned table, BERT relative's
distance table) has its line stop at the last length it ran, marked with an x there.
Needs matplotlib (Debian python3-matplotlib). The output is reproducible (fixed SVG hash
salt, no date in the metadata).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "posenc"
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ["none", "sinusoidal", "learned", "rope", "alibi", "t5", "shaw", "transformer_xl",
         "bert_relative", "deberta", "temperature"]
LABEL = {"none": "none (NoPE)", "sinusoidal": "sinusoidal", "learned": "learned",
         "rope": "RoPE", "alibi": "ALiBi", "t5": "T5 bias", "shaw": "Shaw",
         "transformer_xl": "Transformer-XL", "bert_relative": "BERT relative",
         "deberta": "DeBERTa", "temperature": "Llama 4 temperature"}
STYLE = {"none": ("#000000", "o"), "sinusoidal": ("#1f77b4", "s"), "learned": ("#ff7f0e", "D"),
         "rope": ("#2ca02c", "^"), "alibi": ("#d62728", "v"), "t5": ("#9467bd", "<"),
         "shaw": ("#8c564b", ">"), "transformer_xl": ("#e377c2", "p"),
         "bert_relative": ("#7f7f7f", "h"), "deberta": ("#bcbd22", "*"),
         "temperature": ("#17becf", "P")}


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: plot_training.py RESULTS.csv OUTPUT_STEM (writes STEM.png, STEM.svg)")
    rows = list(csv.DictReader(open(argv[1], newline="")))
    train_len = int(rows[0]["train_len"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    panels = [("periodic", "loss", "next-token loss (nats)",
               "periodic LM (P = 12, 10% noise): loss", "optimal", "Bayes-optimal"),
              ("copy", "accuracy", "accuracy", "copy the token 6 back: accuracy", None, None)]
    for ax, (task, metric, ylabel, title, ref, ref_label) in zip(axes, panels):
        lens = sorted({int(r["eval_len"]) for r in rows if r["task"] == task})
        for enc in ORDER:
            rs = sorted((r for r in rows if r["task"] == task and r["encoder"] == enc),
                        key=lambda r: int(r["eval_len"]))
            if not rs:
                continue
            xs = [int(r["eval_len"]) for r in rs if r["status"] == "ok"]
            ys = [float(r[metric]) for r in rs if r["status"] == "ok"]
            colour, marker = STYLE[enc]
            stops = len(xs) < len(rs)
            label = LABEL[enc] + (" (stops: table)" if stops else "")
            ax.plot(xs, ys, color=colour, marker=marker, markersize=5, linewidth=1.4,
                    label=label)
            if stops and xs:
                ax.plot([xs[-1]], [ys[-1]], color=colour, marker="x", markersize=12,
                        markeredgewidth=2, linestyle="none")
        if ref:
            rr = sorted((r for r in rows if r["task"] == task and r["encoder"] == ref),
                        key=lambda r: int(r["eval_len"]))
            ax.plot([int(r["eval_len"]) for r in rr], [float(r[metric]) for r in rr],
                    color="black", linestyle="--", linewidth=1.2, label=ref_label)
        else:
            ax.axhline(1.0 / 16, color="black", linestyle=":", linewidth=1.2,
                       label="chance (1/16)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(lens)
        ax.set_xticklabels([f"{n}\n({n // train_len}L)" for n in lens])
        ax.axvline(train_len, color="#999999", linewidth=0.8, linestyle=":")
        ax.set_xlabel(f"evaluation length (trained at L = {train_len})")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    axes[1].set_ylim(0, 1.02)
    handles, labels = axes[0].get_legend_handles_labels()
    h2, l2 = axes[1].get_legend_handles_labels()
    handles.append(h2[-1])
    labels.append(l2[-1])
    fig.legend(handles, labels, loc="center right", fontsize=8.5, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    stem = argv[2]
    fig.savefig(stem + ".png", dpi=110, metadata={"Software": None})
    fig.savefig(stem + ".svg", metadata={"Date": None, "Creator": None})
    print(f"wrote {stem}.png and {stem}.svg")


if __name__ == "__main__":
    main(sys.argv)
