"""Side-by-side training check: sorlab's SORL against the released code's, success per M_inf.

Both codes train on the same regenerated dataset with the same settings (cube-single-play,
200 episodes, generator seed 0, task 1, 3 x 128 networks, lr 3e-4, batch 256, M = M_BTT = 8,
30k updates) and are evaluated with 50 episodes per seed at M_inf 1, 2, 4, 8. The released
code's per-seed successes below were measured on the project's 2-core machine (seeds 1-8, its
unseeded evaluation loop). sorlab's come from run directories trained and evaluated with
docs/equivalence.md's commands; seeds missing from RUNS_DIR fall back to SORLAB below, sorlab's
own measurements with the same commands (seeds 1-4 on 2026-12-01, 5-8 on 2026-12-02).
Prints a Markdown table: means, standard errors and the gap in standard errors of the
difference (Welch).

    python scripts/reference/side_by_side.py [RUNS_DIR]   # RUNS_DIR/seed1, seed2, ... with eval/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

# Released SORL code, success in % per seed (1-8), 50 episodes each, by M_inf.
RELEASED = {
    1: [0, 0, 0, 0, 2, 0, 4, 0],
    2: [18, 4, 0, 0, 10, 10, 6, 0],
    4: [58, 52, 6, 4, 42, 48, 14, 2],
    8: [28, 40, 52, 32, 46, 36, 10, 4],
}
# sorlab, success in % per seed (1-8), same settings, `sorlab evaluate --episodes 50`.
SORLAB = {
    1: [0, 0, 14, 0, 0, 0, 0, 0],
    2: [18, 4, 38, 12, 2, 0, 0, 0],
    4: [34, 6, 38, 42, 0, 12, 2, 0],
    8: [12, 0, 18, 22, 58, 6, 26, 14],
}


def sorlab_successes(runs: Path | None) -> dict[int, list[float]]:
    """Success in % per seed: RUNS_DIR/seed<i>/eval/<m_inf>_1.json where present, else SORLAB."""
    out: dict[int, list[float]] = {}
    for m, measured in SORLAB.items():
        out[m] = []
        for seed, value in enumerate(measured, start=1):
            path = runs / f"seed{seed}" / "eval" / f"{m}_1.json" if runs else None
            if path is not None and path.is_file():
                value = 100 * json.loads(path.read_text())["success"]
            out[m].append(value)
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
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and not Path(sys.argv[1]).is_dir()):
        sys.exit("usage: python scripts/reference/side_by_side.py [RUNS_DIR]")
    print(table(sorlab_successes(Path(sys.argv[1]) if len(sys.argv) == 2 else None)))
