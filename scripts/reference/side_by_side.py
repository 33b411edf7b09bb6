"""Side-by-side training check: sorlab's SORL against the released code's, success per M_inf.

Both codes train on the same regenerated dataset with the same settings (cube-single-play,
200 episodes, generator seed 0, task 1, 3 x 128 networks, lr 3e-4, batch 256, M = M_BTT = 8,
30k updates) and are evaluated with 50 episodes per seed at M_inf 1, 2, 4, 8. The released
code's per-seed successes below were measured on the project's 2-core machine (seeds 1-4, its
unseeded evaluation loop); sorlab's are read from run directories trained with
docs/equivalence.md's commands. Prints a Markdown table: means, standard errors and the gap in
standard errors of the difference (Welch).

    python scripts/reference/side_by_side.py RUNS_DIR   # RUNS_DIR/seed1, seed2, ... with eval/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

# Released SORL code, success in % per seed (1-4), 50 episodes each, by M_inf.
RELEASED = {1: [0, 0, 0, 0], 2: [18, 4, 0, 0], 4: [58, 52, 6, 4], 8: [28, 40, 52, 32]}


def sorlab_successes(runs: Path) -> dict[int, list[float]]:
    """Success in % per seed directory (seed*/eval/<m_inf>_1.json), by M_inf."""
    out: dict[int, list[float]] = {m: [] for m in RELEASED}
    for run in sorted(runs.glob("seed*")):
        for m in RELEASED:
            path = run / "eval" / f"{m}_1.json"
            if path.is_file():
                out[m].append(100 * json.loads(path.read_text())["success"])
    return out


def table(ours: dict[int, list[float]]) -> str:
    lines = [
        "| M_inf | released, per seed | mean ± SE | sorlab, per seed | mean ± SE | difference "
        "| SE of difference | \\|difference\\| / SE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, released in RELEASED.items():
        r, o = np.asarray(released, float), np.asarray(ours[m], float)
        if len(o) < 2:
            continue
        se_r, se_o = r.std(ddof=1) / np.sqrt(len(r)), o.std(ddof=1) / np.sqrt(len(o))
        se, diff = float(np.hypot(se_r, se_o)), float(o.mean() - r.mean())
        ratio = f"{abs(diff) / se:.2f}" if se > 0 else "-"
        seeds = lambda x: " / ".join(f"{v:.0f}" for v in x)  # noqa: E731
        lines.append(
            f"| {m} | {seeds(r)} | {r.mean():.1f} ± {se_r:.1f} | {seeds(o)} | "
            f"{o.mean():.1f} ± {se_o:.1f} | {diff:+.1f} | {se:.1f} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python scripts/reference/side_by_side.py RUNS_DIR")
    print(table(sorlab_successes(Path(sys.argv[1]))))
