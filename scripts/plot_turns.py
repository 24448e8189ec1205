#!/usr/bin/env python3
"""Plots `lull-bench turns --csv FILE`: median silence against split turns, one point per policy,
one panel per population (gateway sends presence / does not), and a third panel with the split
turns of the presence-aware policies broken down by cause. Writes a PNG.

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
    fig = plt.figure(figsize=(17, 6.4))
    gs = fig.add_gridspec(1, 3, width_ratios=[1, 1, 0.9])
    axes = [fig.add_subplot(gs[0, 0])]
    axes.append(fig.add_subplot(gs[0, 1], sharey=axes[0]))
    for ax, signals, title in (
        (axes[0], "yes", "gateway sends presence (Evolution, WAHA)"),
        (axes[1], "no", "no presence (Meta, Twilio)"),
    ):
        stagger = 0
        for r in rows:
            if r["signals"] != signals:
                continue
            # Without presence the typing rule changes nothing: skip the old stop-grace rows.
            if signals == "no" and r["policy"].endswith("-stop1.5s"):
                continue
            x = float(r["split_turns_pct"])
            y = float(r["median_silence_s"])
            fixed = r["policy"].startswith("fixed-")
            old = r["policy"].endswith("-stop1.5s")
            color = "#888888" if fixed else ("#ff9896" if old else "#d62728")
            ax.scatter(x, y, s=28 if fixed else 60, c=color,
                       marker="o" if fixed else "D", zorder=3)
            dy = 3
            if not fixed:
                dy = 6 + 11 * (stagger % 4)
                stagger += 1
            ax.annotate(r["policy"], (x, y), textcoords="offset points", xytext=(5, dy), fontsize=8,
                        arrowprops=None if fixed else dict(arrowstyle="-", lw=0.4, color="#999"))
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
    causes(fig.add_subplot(gs[0, 2]), rows)
    fig.suptitle("lull-bench turns: end-of-turn policies (lower left is better)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


CAUSES = (
    ("max_wait", "max wait cut a long turn", "#1f77b4"),
    ("afterthought", "afterthought (whole-thought writer)", "#ff7f0e"),
    ("paused_released", "paused mid-message, released", "#d62728"),
    ("presence_lost_or_late", "composing lost or late", "#9467bd"),
    ("hold_expired", "typing hold expired", "#8c564b"),
    ("long_pause", "long pause (5-20 s)", "#7f7f7f"),
    ("think_pause", "think pause before typing", "#2ca02c"),
    ("gap_no_presence", "gap > quiet (no presence)", "#bcbd22"),
)


def causes(ax, rows) -> None:
    """Stacked bars: split turns (% of turns) by cause, per policy."""
    pick = [("typing-stop1.5s", "yes"), ("typing", "yes"), ("both-stop1.5s", "yes"),
            ("both", "yes"), ("adaptive", "no"), ("fixed-8s", "no")]
    by = {(r["policy"], r["signals"]): r for r in rows}
    bars = [(f"{p}\n({'presence' if s == 'yes' else 'none'})", by[(p, s)]) for p, s in pick
            if (p, s) in by]
    xs = range(len(bars))
    bottom = [0.0] * len(bars)
    for key, label, color in CAUSES:
        col = f"split_{key}_pct"
        vals = [float(r.get(col) or 0.0) for _, r in bars]
        ax.bar(xs, vals, bottom=bottom, color=color, label=label, width=0.7)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.axhline(2.0, color="#1f77b4", lw=0.8, ls="--")
    ax.set_xticks(list(xs), [n for n, _ in bars], fontsize=7)
    ax.set_ylabel("split turns, % of turns, by cause of the first cut")
    ax.set_title("why turns are split", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax.grid(alpha=0.3, axis="y")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot_turns.py TURNS.csv OUT.png")
    main(sys.argv[1], sys.argv[2])
