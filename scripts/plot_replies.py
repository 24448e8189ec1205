#!/usr/bin/env python3
"""Plots `lull-bench turns --reply-csv FILE`: per end-of-turn policy and `on_newer`, the stale
answers (left) and the median / p90 time from a turn's last message to the reply that answers it
(right), users whose gateway sends presence. Writes a PNG.

    python3 -m venv target/plotenv && target/plotenv/bin/pip install matplotlib
    target/plotenv/bin/python scripts/plot_replies.py target/replies.csv docs/replies.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src: str, dst: str) -> None:
    with open(src, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["signals"] == "yes"]
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    bots = list(dict.fromkeys(r["on_newer"] for r in rows))
    colors = {"append": "#888888", "supersede": "#d62728"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.8 / len(bots)
    for i, bot in enumerate(bots):
        xs = [p + (i - (len(bots) - 1) / 2) * width for p in range(len(policies))]
        pick = {r["policy"]: r for r in rows if r["on_newer"] == bot}
        stale = [float(pick[p]["stale_answers_pct"]) for p in policies]
        median = [float(pick[p]["median_answer_s"]) for p in policies]
        p90 = [float(pick[p]["p90_answer_s"]) for p in policies]
        left.bar(xs, stale, width, label=f"on_newer = {bot}", color=colors.get(bot))
        right.bar(xs, median, width, label=f"{bot}: median", color=colors.get(bot))
        right.scatter(xs, p90, marker="_", s=300, color="black", label=f"{bot}: p90" if i == 0 else None)
    left.axhline(1.0, linestyle="--", color="#2ca02c", label="budget: 1% with guard + supersede")
    for ax in (left, right):
        ax.set_xticks(range(len(policies)), policies)
        ax.legend(fontsize=8)
    left.set_ylabel("stale answers, % of turns")
    right.set_ylabel("turn's last message to its answer, s (AI step 2-12 s)")
    fig.suptitle("lull-bench turns: the AI step after the hand-off (gateway sends presence)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot_replies.py REPLIES.csv OUT.png")
    main(sys.argv[1], sys.argv[2])
