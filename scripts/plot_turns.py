#!/usr/bin/env python3
"""Plots `lull-bench turns --csv FILE`: median silence against split turns, one point per policy,
one panel per population (gateway sends presence / does not). Writes a PNG.

    python3 -m venv target/plotenv && target/plotenv/bin/pip install matplotlib
    target/plotenv/bin/python scripts/plot_turns.py target/turns.csv docs/img/turns.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src: str, dst: str) -> None:
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, signals, title in (
        (axes[0], "yes", "gateway sends presence (Evolution, WAHA)"),
        (axes[1], "no", "no presence (Meta, Twilio)"),
    ):
        for r in rows:
            if r["signals"] != signals:
                continue
            x = float(r["split_turns_pct"])
            y = float(r["median_silence_s"])
            fixed = r["policy"].startswith("fixed-")
            ax.scatter(x, y, s=28 if fixed else 60, c="#888888" if fixed else "#d62728",
                       marker="o" if fixed else "D", zorder=3)
            ax.annotate(r["policy"], (x, y), textcoords="offset points", xytext=(5, 3), fontsize=8)
        target_s = 2.0 if signals == "yes" else 4.0
        ax.axhline(target_s, color="#1f77b4", lw=0.8, ls="--")
        ax.text(0.98, target_s, f"median silence budget {target_s:g} s", color="#1f77b4",
                fontsize=8, ha="right", va="bottom", transform=ax.get_yaxis_transform())
        if signals == "yes":
            ax.axvline(2.0, color="#1f77b4", lw=0.8, ls="--")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("split turns (% of turns handed off in 2+ batches)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("median silence after a turn's last message (s)")
    fig.suptitle("lull-bench turns: end-of-turn policies (lower left is better)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot_turns.py TURNS.csv OUT.png")
    main(sys.argv[1], sys.argv[2])
