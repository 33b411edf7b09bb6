"""The baselines' per-environment defaults equal the published values (one shipped CSV), and the
published numbers are well-formed package data."""

from __future__ import annotations

import importlib
import math

import pandas as pd
import pytest

from sorlab.report.published import (
    FAMILIES,
    parse_value,
    published_coefficients,
    published_results,
)

COEFFICIENTS = published_coefficients()
BASELINES = ["iql", "rebrac", "idql", "srpo", "cac", "fawac", "fbrac", "ifql", "fql"]


@pytest.mark.parametrize(
    "row", list(COEFFICIENTS.itertuples(index=False)), ids=lambda r: f"{r.agent}-{r.env}-{r.key}"
)
def test_agent_default_equals_published_value(row):
    config = importlib.import_module(f"sorlab.agents.{row.agent}").default_config(f"{row.env}-v0")
    want = parse_value(row.value)
    have = config[row.key]
    if isinstance(want, tuple):
        assert tuple(have) == want
    elif isinstance(want, bool):
        assert have is want
    else:
        assert math.isclose(float(have), want, rel_tol=1e-12), (have, want)


def test_every_table6_coefficient_is_covered_and_only_antsoccer_is_by_rule():
    """Table 6 gives every family's coefficient except antsoccer for SRPO, CAC, FAWAC, FBRAC."""
    key = {"iql": "alpha", "rebrac": "alpha_actor", "idql": "num_samples", "srpo": "beta",
           "cac": "eta", "fawac": "alpha", "fbrac": "alpha", "ifql": "num_samples", "fql": "alpha"}  # fmt: skip
    have = {(r.agent, r.env) for r in COEFFICIENTS.itertuples() if r.key == key[r.agent]}
    missing = {(a, f) for a in BASELINES for f in FAMILIES} - have
    by_rule = {(a, "antsoccer-arena-navigate") for a in ("srpo", "cac", "fawac", "fbrac")}
    assert missing == by_rule
    sources = COEFFICIENTS["source"]
    assert sources.str.contains("FQL").all()


def test_published_results_have_sources_and_sorl_is_secondary():
    frame = published_results()
    assert not frame["source"].isna().any()
    assert set(frame.loc[frame["secondary"] == 1, "agent"]) == {"sorl"}
    assert (frame.loc[frame["agent"] == "sorl", "secondary"] == 1).all()
    env_means = frame[frame["task"].isna()]
    assert len(env_means) == 10 * 10 + 8  # Table 2 (10 families x 10 baselines) + SORL on 8
    assert set(env_means["env"]) == set(FAMILIES)
    assert frame["mean"].between(0, 100).all() and (frame["std"] >= 0).all()
    # Spot checks against the papers' tables.
    row = env_means[(env_means["agent"] == "fql") & (env_means["env"] == "cube-single-play")]
    assert (row["mean"].item(), row["std"].item()) == (96, 1)
    task2 = frame[
        (frame["agent"] == "fql") & (frame["env"] == "cube-single-play") & (frame["task"] == 2)
    ]
    assert (task2["mean"].item(), task2["std"].item(), task2["steps"].item()) == (97, 2, 1_000_000)
    assert set(frame.loc[frame["agent"].isin(["idql", "srpo"]), "steps"]) == {3_000_000}


def test_parse_value():
    assert parse_value("0.3") == 0.3 and parse_value("false") is False
    assert parse_value("256 1024 256") == (256, 1024, 256)
    assert isinstance(published_results(), pd.DataFrame)
