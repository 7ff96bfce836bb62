"""The chaos benchmark's figures and its table (benchmarks/chaos.py)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass
class Figures:
    mode: str
    rollouts: int
    cycles: int = 0
    kills_random: int = 0
    kills_targeted: int = 0
    faults: int = 0
    """HTTP 500s the API server answered to the controller's writes (the write not stored)."""
    stuck: int = 0
    wrong_verdict: int = 0
    wrong_image: int = 0
    canary_not_scaled_down: int = 0
    route_not_stable: int = 0
    weights_backwards: int = 0
    steps_skipped_or_repeated: int = 0
    commands_lost: int = 0
    aborts_sent: int = 0
    approvals_sent: int = 0
    traffic_without_pods: int = 0
    """Intervals longer than one tick with traffic routed to a canary without ready pods."""
    longest_without_pods: float = 0.0
    """Seconds: the longest such interval, however short."""
    canaries_routed: int = 0
    """Times a route started sending a canary traffic, and a canary lost its pods: what the
    audit of traffic without pods saw (not in the table)."""
    canaries_emptied: int = 0
    events_lost: int = 0
    events_duplicated: int = 0
    restarts: int = 0
    seconds: float = 0.0


COLUMNS = (
    ("cycles", "cycles"),
    ("kills (random/targeted)", None),
    ("500s on writes", "faults"),
    ("stuck", "stuck"),
    ("wrong verdict", "wrong_verdict"),
    ("wrong primary image", "wrong_image"),
    ("canary left up", "canary_not_scaled_down"),
    ("route not on the primary", "route_not_stable"),
    ("weights backwards", "weights_backwards"),
    ("steps skipped/repeated", "steps_skipped_or_repeated"),
    ("commands sent (aborts/approvals)", None),
    ("commands lost", "commands_lost"),
    ("traffic to a canary without ready pods > 1 tick", "traffic_without_pods"),
    ("longest traffic to a canary without pods (s)", "longest_without_pods"),
    ("terminal Events lost", "events_lost"),
    ("terminal Events duplicated", "events_duplicated"),
)


def report(args: argparse.Namespace, results: list[Figures]) -> str:
    command = (
        "make bench-chaos" if not args.quick else ".venv/bin/python benchmarks/chaos.py --quick"
    )
    lines = [
        "## Chaos: the controller killed mid-rollout",
        "",
        f"`{command}` (benchmarks/chaos.py; {args.rollouts} Rollouts cycling through healthy "
        f"(60%), bad (30%) and aborted (10%) revisions for {args.duration:g} s, two in five "
        "waiting for an approval (before the rollout, or before the promotion), interval "
        f"{args.interval:g} s, weights 20/50, seed {args.seed}; SIGKILL at random moments and "
        "at a chosen write -- a route apply, a status write, a scale, a primary update, an "
        "Event, a command's delete -- as the API server receives it; the killed replica "
        "started again at once; in the faults run, an HTTP 500 on such a write instead (not "
        f"stored), about {args.faults} in the run; "
        "then a quiet period and a check of every Rollout; traffic to a canary without ready "
        "pods followed change by change as the API server commits them, intervals longer "
        f"than one tick ({args.interval:g} s) counted).",
        "",
        "| run | " + " | ".join(name for name, _ in COLUMNS) + " | seconds |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for f in results:
        cells = []
        for name, attr in COLUMNS:
            if attr is not None:
                cells.append(str(getattr(f, attr)))
            elif name.startswith("kills"):
                cells.append(f"{f.kills_random}/{f.kills_targeted}")
            else:
                cells.append(f"{f.aborts_sent}/{f.approvals_sent}")
        lines.append(f"| {f.mode} | " + " | ".join(cells) + f" | {f.seconds:g} |")
    lines.append("")
    lines.append(
        "What the audit of traffic without pods followed: "
        + "; ".join(
            f"{f.mode}: {f.canaries_routed} times a canary began taking traffic, "
            f"{f.canaries_emptied} times one lost its pods"
            for f in results
        )
        + "."
    )
    return "\n".join(lines)
