"""The report's answers, written from the numbers: per family a one-line headline, then one sentence
per style comparing it with the family's own baseline (catalogue.baseline), then what neighbours did
to each other.

Comparisons use solo cells of one shape (summary.SHAPE: model, rate, W, T, P, worker class, wait,
work, k), repeats averaged, at the highest user count both styles were measured at; the other shapes
are named, never mixed in. Each sentence links to its evidence (a table row, a chart).
Text marks code with backticks; the report turns them into <code>.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import bottleneck, theory
from analysis.summary import (
    SHAPE,
    blocks_the_loop,
    catalogue_order,
    is_bound,
    neighbour_points,
    shape_labels,
    solo_points,
)
from analysis.validity import FAILURE_SHARE
from target_app import catalogue

THROUGHPUT_WITHIN = 0.10
# Another route's median under a style's load this many times the family's lowest, and this far above
# it (two of CPython's 5 ms GIL switch intervals: what a request to any busy Python worker may wait),
# and the style holds up the rest of the app.
OTHERS_AT_MOST = 4.0
OTHERS_ABOVE_MS = 10.0
BELOW_MODEL = 0.5  # under half the model's throughput: another limit is at work
P99_AT_MOST = 1.25
PLACED = 1e-9  # a ranked throughput further than this from the measured one is said to be ranked so
# The model is trusted to move a style's throughput only where it fits the style's measurement: the
# band every valid predicted cell of the default run is held to (docs/model.md).
FIT_BAND = (0.85, 1.15)


RULE = (
    "How each headline is decided: at the highest user count where the family's baseline style was "
    "measured (solo cells of one shape: the same model, arrival rate, W, T, P, worker class, wait, work and "
    f"fan-out; repeats averaged), a style counts as good as the "
    "best when its throughput (as at an even spread of its users' connections over the workers: the measured "
    "req/s times the model's at an even spread over the model's at the spread they had, since which worker "
    "accepted a connection is the kernel's doing, not the style's; as measured where the measurement is "
    f"outside {FIT_BAND[0]:g}-{FIT_BAND[1]:g} of that model) is within "
    f"{THROUGHPUT_WITHIN:.0%} of the highest there and its exact p99 at "
    f"most {P99_AT_MOST:g}x the lowest there; where repeats were run, a difference within what the repeats "
    "showed (the spread, highest minus lowest over the mean, of the style's own req/s and p99, or of the best "
    "one's it is measured against) counts as none when that is wider, and where each was measured once, two "
    "p99s whose 95% intervals overlap count as no difference: such styles are 'either', not a choice. "
    "The headline says to use those; every other style is listed "
    "as behind with its throughput and p99 as multiples of the best, and a style that blocks the event "
    f"loop is marked never to use. The best and the lowest are those of decided numbers only: a style with "
    f"over {FAILURE_SHARE:.0%} failed requests is not judged, nor one measured with a saturated load "
    "generator or where the lab's own upstream service was the limit (its one process at "
    f"{bottleneck.LAB_PROCESS_BUSY:.0%} of a core or more), in an invalid cell, or with a p99 that is only a "
    "lower bound; when the style that served "
    "the most req/s is set aside for how it was measured, the whole family is not judged (the others "
    "cannot be ranked against it). A style that blocks the event loop is never to be used even when its own "
    "numbers cannot be ranked. Beside each style is the p99 that a request to another route of the same "
    "workers met meanwhile (the canary, requested at a low fixed rate from its intended starts). A style under "
    f"whose load that other route's median was more than {OTHERS_AT_MOST:g}x the family's lowest there and "
    f"{OTHERS_ABOVE_MS:g} ms above it holds up the rest of the app: it is behind whatever its own numbers, and "
    "the best and the lowest are those of the other styles. A style under half the model's throughput is "
    "pointed out. Lower user "
    "counts are in the sentences, not the headline: there the styles differ less than the noise of one "
    "measurement."
)
HELD = 0.2  # throughput within 20% across the user counts: it did not move
CAPPED = 0.5  # throughput grew less than half as much as the users did

# A style in a developer's words, keyed on the part of the id after the family.
WORDS: dict[str, str] = {
    "async-await": "`async def` + `await`",
    "blocking-in-async": "a blocking call inside `async def`",
    "sync-def": "plain `def`",
    "offloaded": "`run_in_threadpool`",
    "async": "`async def`",
    "process-pool": "a process pool",
    "sequential": "sequential `await`s",
    "gather": "`asyncio.gather`",
    "async-client": "a shared `httpx.AsyncClient`",
    "blocking-client-in-async": "a blocking HTTP client inside `async def`",
    "asyncpg": "an `asyncpg` pool",
}


@dataclass(frozen=True)
class Link:
    href: str
    label: str


@dataclass(frozen=True)
class Sentence:
    text: str  # the finding: ratios and users, in words
    detail: str  # what its numbers are: absolute values, their source, n requests, W
    links: tuple[Link, ...]  # the evidence


@dataclass(frozen=True)
class Answer:
    family: str
    headline: str
    sentences: tuple[Sentence, ...]


def words(style: str) -> str:
    part = style.split("/", 1)[-1]
    if part in WORDS:
        return WORDS[part]
    known = catalogue.BY_ID.get(style)
    return known.description if known else f"`{style}`"


def named(style: str) -> str:
    """The developer's words and the id, so a reader can find the row: plain `def` (`sleep/sync-def`)."""
    return f"{words(style)} (`{style}`)"


def row_id(style: str, shape: str = "") -> str:
    """The decision-table row of ``style``: row-sleep-sync-def in the section of the shape the answers
    compare at; row-sleep-sync-def--W-4 in the section of another ``shape`` (its label)."""
    return "row-" + _slug(style) + (f"--{_slug(shape)}" if shape else "")


def neighbour_row_id(cell: str, style: str) -> str:
    return f"neighbour-{_slug(cell)}-{_slug(style)}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


LATENCY_CHART = Link("#chart-latency_users", "p99 against users chart")
PERCENTILES_CHART = Link("#chart-percentiles", "percentiles chart")
NEIGHBOUR_CHART = Link("#chart-neighbour", "neighbour chart")


def answers(table: pd.DataFrame) -> list[Answer]:
    """One answer per family measured, in catalogue order."""
    # Each repeat ranked as at its own spread, then averaged (and its spread taken) with the rest.
    points = solo_points(table.assign(rps_ranked=ranked_rps(table)))
    victims = neighbour_points(table)
    victims = victims[~victims["style"].map(blocks_the_loop).astype(bool)]  # bool even when empty
    out = []
    for family in catalogue.FAMILIES:
        mine, hurt = points[points["family"] == family], victims[victims["family"] == family]
        if not mine.empty or not hurt.empty:
            out.append(family_answer(family, mine, hurt))
    return out


def family_answer(family: str, points: pd.DataFrame, victims: pd.DataFrame) -> Answer:
    neighbours = tuple(neighbour_sentence(r) for _, r in victims.iterrows())
    base = catalogue.baseline(family).id
    if points.empty:
        return Answer(family, f"{family}: measured only beside other styles; see the neighbour table", neighbours)
    shape = main_shape(points, base)
    if shape is None:
        measured = ", ".join(f"`{s}`" for s in catalogue_order(points["style"]))
        return Answer(
            family,
            f"{family}: the baseline {named(base)} was not measured alone; nothing to compare {measured} with",
            neighbours,
        )
    styles = catalogue_order(shape["style"])
    own = (baseline_sentence(shape[shape["style"] == base]),)
    if styles == [base]:
        return Answer(
            family,
            f"{family}: only {named(base)} was measured; nothing to compare",
            own + elsewhere(points, shape) + neighbours,
        )
    others = tuple(style_sentence(shape, s, base) for s in styles if s != base)
    return Answer(family, headline(family, shape, base), own + others + elsewhere(points, shape) + neighbours)


def main_shape(points: pd.DataFrame, base: str) -> pd.DataFrame | None:
    """The points of the server shape where most styles meet the baseline at some user count."""
    best, best_count = None, 0
    for _, rows in points.groupby(SHAPE, sort=False, dropna=False):
        base_users = set(rows.loc[rows["style"] == base, "users"])
        met = rows[rows["users"].isin(base_users)]["style"].nunique()
        if met > best_count:
            best, best_count = rows, met
    return best


def elsewhere(points: pd.DataFrame, shape: pd.DataFrame) -> tuple[Sentence, ...]:
    """A note naming the shapes the sentences leave out (what sets each apart), so none is silently
    dropped or mixed in: the decision table has a section for each."""
    rest = points.drop(shape.index)
    if rest.empty:
        return ()
    labels = shape_labels(points)
    shapes = "; ".join(dict.fromkeys(labels[rest.index]))
    return (
        Sentence(
            f"These comparisons are at {labels[shape.index[0]]}, where most styles met the baseline; "
            f"also measured, each in its own section of the decision table: {shapes}.",
            "",
            (Link("#decision", "decision table"), Link("#cells", "every cell")),
        ),
    )


# -- the rule and the headline ------------------------------------------------------------------------


def standing(shape: pd.DataFrame, base: str) -> pd.DataFrame:
    """Per style and user count where the baseline was measured: the gap to the best throughput there,
    the p99 over the lowest p99 there, and whether that is as good as the best (the rule)."""
    base_users = set(shape.loc[shape["style"] == base, "users"])
    rows = shape[shape["users"].isin(base_users)].copy()
    if "rps_ranked" not in rows.columns or rows["rps_ranked"].isna().all():
        rows["rps_ranked"] = ranked_rps(rows)
    by_users = rows.groupby("users")
    rows["rps_gap"] = 1 - rows["rps_ranked"] / by_users["rps_ranked"].transform("max")
    rows["p99_over_best"] = rows["p99_ms"] / by_users["p99_ms"].transform("min")
    rows["good"] = (rows["rps_gap"] <= THROUGHPUT_WITHIN) & (rows["p99_over_best"] <= P99_AT_MOST)
    return rows.sort_values("users")


def ranked_rps(rows: pd.DataFrame) -> pd.Series:
    """The throughput the rule ranks: as measured, times the model's throughput at an even spread of
    the users over the workers over its throughput at the spread they had. Which worker accepted each
    user's connection is the kernel's doing, not the style's: a pool- or token-bound style whose
    connections landed 14 and 6 on two workers of 10 connections each serves less than at 10 and 10,
    and the model says by how much. As measured where either prediction is missing, or where the
    measurement is outside FIT_BAND of the model at its spread (a model that missed the style's own
    throughput is not trusted to move it)."""
    rps = rows["rps"].astype(float)
    if "predicted_even_rps" not in rows.columns:
        return rps
    placed_model = pd.to_numeric(rows["predicted_rps"], errors="coerce")
    factor = pd.to_numeric(rows["predicted_even_rps"], errors="coerce") / placed_model
    fit = rps / placed_model
    usable = np.isfinite(factor) & (factor > 0) & fit.between(*FIT_BAND)
    return rps.where(~usable, rps * factor)


def placed(point: pd.Series) -> bool:
    """Whether the point's ranked throughput differs from its measured one by the users' spread."""
    return bool(point["rps"] > 0 and abs(point["rps_ranked"] / point["rps"] - 1) > PLACED)


def _as_ranked(at: pd.DataFrame, styles: list[str]) -> str:
    """ " as at an even spread" where any of ``styles``' ranked throughputs is not its measured one."""
    return " as at an even spread" if any(placed(at.loc[s]) for s in styles) else ""


def _placement(point: pd.Series) -> str:
    """The users' spread over the workers in words, where it moved the ranked throughput ('' if not)."""
    if "rps_ranked" not in point or pd.isna(point["rps_ranked"]) or not placed(point):
        return ""
    ranked = float(point["rps_ranked"])
    return (
        f"; its users' connections did not spread evenly over the workers: the model gives "
        f"{_rps(point['predicted_rps'])} req/s at the spread they had and {_rps(point['predicted_even_rps'])} at an "
        f"even one, so the headline ranks it at {_rps(ranked)} req/s"
    )


def headline(family: str, shape: pd.DataFrame, base: str) -> str:
    stand = standing(shape, base)
    # Judged where the differences are largest: the highest user count with at least two styles.
    counts = stand.groupby("users")["style"].nunique()
    users = counts[counts >= 2].index.max() if (counts >= 2).any() else stand["users"].max()
    at = stand[stand["users"] == users].set_index("style")
    styles = sorted(catalogue_order(at.index), key=lambda s: s != base)
    unsure = {s: why for s in styles if (why := _unreliable(at.loc[s]))}
    judged = [s for s in styles if s not in unsure]
    # A family is judged only on decided numbers: when the style that served the most was set aside
    # for how it was measured (a saturated generator, an invalid cell, a p99 only a lower bound), the
    # rest cannot be ranked against it, and no ranking of them is the answer.
    # (A style set aside for its own failures does not compete: its throughput is of errors.)
    competing = [s for s in styles if not _its_own(at.loc[s])]
    fastest = at.loc[competing, "rps_ranked"].idxmax() if competing else None
    if fastest in unsure:
        return (
            f"{family} at {users:g} users: not judged: {words(fastest)} served the most req/s"
            f"{_as_ranked(at, competing)} ({_rps(at.loc[fastest, 'rps_ranked'])}), but {unsure[fastest]}, so the "
            "others cannot be ranked against it"
            + (
                f"; also not judged: {', '.join(f'{words(s)} ({why})' for s, why in unsure.items() if s != fastest)}"
                if len(unsure) > 1
                else ""
            )
        )
    # What the rest of the app met: a style under whose load another route's median was far above the
    # family's lowest holds up every other route of its workers; it is behind whatever its own numbers,
    # and the others are ranked among themselves.
    holds_up = held_up_others(at, judged)
    ranked = [s for s in judged if s not in holds_up] or judged
    # The best throughput and the lowest p99 are the ranked styles' own: decided numbers only.
    at = at.assign(
        rps_gap=1 - at["rps_ranked"] / at.loc[ranked, "rps_ranked"].max() if judged else at["rps_gap"],
        p99_over_best=at["p99_ms"] / at.loc[ranked, "p99_ms"].min() if judged else at["p99_over_best"],
    )
    # Within the noise: what repeating a cell showed widens the rule's tolerances, never narrows
    # them; for each style, the spread of its own repeats or of the best's it is measured against.
    at["good"] = False
    most = at.loc[ranked, "rps_ranked"].idxmax() if judged else None
    if judged:
        lowest = at.loc[ranked, "p99_ms"].idxmin()
        rps_within = {
            s: max(THROUGHPUT_WITHIN, _spread(at.loc[s], "rps_ranked"), _spread(at.loc[most], "rps_ranked"))
            for s in judged
        }
        p99_within = {
            s: max(P99_AT_MOST, 1 + _spread(at.loc[s], "p99_ms"), 1 + _spread(at.loc[lowest], "p99_ms")) for s in judged
        }
        # One measurement a side: p99s whose 95% intervals overlap differ by nothing measured.
        p99_apart = {s: _p99_apart(at.loc[s], at.loc[lowest]) for s in judged}
        for s in ranked:
            at.loc[s, "good"] = at.loc[s, "rps_gap"] <= rps_within[s] and p99_apart[s] <= p99_within[s]
    use = [s for s in judged if at.loc[s, "good"]]
    never = [s for s in judged if not at.loc[s, "good"] and blocks_the_loop(s)]
    behind = [s for s in judged if s not in use and s not in never]
    # A style that blocks the event loop is never to be used, whether or not its own numbers can be
    # ranked: what set them aside (requests failed, users starved past the window) is what blocking
    # the loop does.
    unranked = {s: unsure.pop(s) for s in list(unsure) if blocks_the_loop(s) and s != fastest}

    def gap(style: str) -> str:
        # A style that holds up the rest is measured against the others' best, and says so.
        best, lowest = ("the others' best", "their lowest") if style in holds_up else ("the best", "the lowest")
        evenly = " as at an even spread" if placed(at.loc[style]) or placed(at.loc[most]) else ""
        return (
            f"{1 - at.loc[style, 'rps_gap']:.2f}x {best} req/s{evenly}, {_times(at.loc[style, 'p99_over_best'])} "
            f"{lowest} p99{holds_up.get(style, '')}{_others(at.loc[style], ', ')}"
        )

    # Styles let in because their p99's interval overlaps the lowest's, though the p99s differ more
    # than the rule's tolerance: said beside the headline's "use".
    by_interval = [s for s in use if at.loc[s, "p99_over_best"] > p99_within[s]]
    overlap = (
        f" ({_and([words(s) for s in by_interval])}: a p99 "
        f"{_and([_times(at.loc[s, 'p99_over_best']) for s in by_interval])} the lowest, but the two p99s' 95% "
        "intervals overlap)"
        if by_interval
        else ""
    )
    if len(use) > 1:
        widest = (max(rps_within[s] for s in use), max(p99_within[s] for s in use))
        widened = widest[0] > THROUGHPUT_WITHIN or widest[1] > P99_AT_MOST
        parts = [
            f"use either {_or([words(s) for s in use])}"
            + (
                f" (they differ by less than their repeats do: {widest[0]:.0%} in req/s, {widest[1]:.2f}x in p99)"
                if widened
                else ""
            )
            + overlap
        ]
    elif use:
        parts = [
            f"use {words(use[0])}" + (f" ({_others(at.loc[use[0]])})" if _others(at.loc[use[0]]) else "") + overlap
        ]
    elif judged:
        assert most is not None
        lowest = at.loc[ranked, "p99_ms"].idxmin()
        parts = [
            f"none led on both: {words(most)} served the most req/s{_as_ranked(at, ranked)} "
            f"({_rps(at.loc[most, 'rps_ranked'])}), "
            f"{words(lowest)} had the lowest p99 ({_ms(at.loc[lowest, 'p99_ms'])})"
        ]
    else:
        parts = ["no verdict"]
    if behind:
        parts.append("behind: " + ", ".join(f"{words(s)} ({gap(s)})" for s in behind))
    if never or unranked:
        parts.append(
            "never use "
            + ", ".join(
                [f"{words(s)} ({gap(s)})" for s in never]
                + [
                    f"{words(s)} (it blocks the event loop, and its numbers are not ranked: {why})"
                    for s, why in unranked.items()
                ]
            )
        )
    if unsure:
        parts.append("not judged: " + ", ".join(f"{words(s)} ({why})" for s, why in unsure.items()))
    low = [
        s
        for s in judged
        if at.loc[s, "predicted_rps"] > 0 and at.loc[s, "rps"] < BELOW_MODEL * at.loc[s, "predicted_rps"]
    ]
    if low:
        parts.append(
            "mind: "
            + ", ".join(
                f"{words(s)} reached {at.loc[s, 'rps'] / at.loc[s, 'predicted_rps']:.0%} of the model's req/s"
                for s in low
            )
            + " (another limit, such as the CPU, was at work)"
        )
    return f"{family} at {users:g} users: " + "; ".join(parts)


def held_up_others(at: pd.DataFrame, judged: list[str]) -> dict[str, str]:
    """The judged styles under whose load another route's median (the canary's p50) was more than
    OTHERS_AT_MOST times the family's lowest there and OTHERS_ABOVE_MS above it, each with that said
    for its headline entry. The median, not the p99: over a cell's ~200 canary starts the median
    moved a few ms between runs where the p99 moved 2-3x."""
    medians = {
        s: float(at.loc[s, "canary_p50_ms"])
        for s in judged
        if "canary_p50_ms" in at.columns and pd.notna(at.loc[s, "canary_p50_ms"])
    }
    if len(medians) < 2:
        return {}
    floor = min(medians.values())
    return {
        s: f", other routes' median {_ms(m)}: {_times(m / floor)} the lowest's, {_ms(floor)}"
        for s, m in medians.items()
        if floor > 0 and m > OTHERS_AT_MOST * floor and m - floor > OTHERS_ABOVE_MS
    }


def _unreliable(point: pd.Series) -> str:
    """Why a measurement cannot be ranked (its numbers are not decided, or describe something
    else), or ''."""
    if _its_own(point):  # its latency is not the route's
        return f"{point['failure_rate']:.0%} of its requests failed"
    if point.get("saturated", False):
        return "the load generator was saturated"
    if lab := bottleneck.lab_limit(point):
        return f"limited by the lab, not the style: {lab}"
    valid = point.get("valid", True)
    if valid is not None and not pd.isna(valid) and not bool(valid):
        return f"its cell is not valid ({point.get('invalid_because') or 'see the validity table'})"
    if is_bound(point, "p99_ms"):
        return "its p99 is only a lower bound: requests of its window were unfinished when the test stopped"
    return ""


def _p99_apart(point: pd.Series, lowest: pd.Series) -> float:
    """How far ``point``'s p99 is above the lowest one's, as the rule reads it: the ratio of the two
    p99s, or 1 (no difference measured) where each was measured once (no repeats) and their 95%
    intervals overlap (the low end of its interval at or under the high end of the lowest's)."""
    ratio = float(point["p99_ms"] / lowest["p99_ms"])
    once = point.get("repeats", 1) == 1 and lowest.get("repeats", 1) == 1
    low, high = point.get("p99_low_ms", math.nan), lowest.get("p99_high_ms", math.nan)
    if once and pd.notna(low) and pd.notna(high) and low <= high:
        return min(ratio, 1.0)
    return ratio


def _spread(point: pd.Series, metric: str) -> float:
    """How far ``point``'s repeats of ``metric`` differ (summary.spread), 0 from one repeat."""
    value = point.get(f"{metric}_spread", math.nan)
    return float(value) if pd.notna(value) else 0.0


def _its_own(point: pd.Series) -> bool:
    """Set aside for what the style did (its requests failed), not for how it was measured."""
    return bool(point["failure_rate"] > FAILURE_SHARE)


def _p99_ratio(a: pd.Series, b: pd.Series, its: str = "its") -> str:
    """``a``'s p99 over ``b``'s in words: never over a lower bound, and "at least" over a decided one."""
    if is_bound(b, "p99_ms"):
        return f"{its} p99 not compared (the baseline's is only a lower bound)"
    return f"{'at least ' if is_bound(a, 'p99_ms') else ''}{_ratio(a['p99_ms'], b['p99_ms'])} {its} p99"


def _left_out(point: pd.Series) -> int:
    """The point's invalid repeats left out of its means (summary.points)."""
    value = point.get("left_out", 0)
    return int(value) if pd.notna(value) else 0


def _p99(point: pd.Series) -> str:
    """The p99 in words, "at least" when unfinished requests reach it (a lower bound)."""
    return ("at least " if is_bound(point, "p99_ms") else "") + _ms(point["p99_ms"])


def _times(ratio: float) -> str:
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2f}x"


def _or(items: list[str]) -> str:
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + ", or " + items[-1]


# -- sentences ----------------------------------------------------------------------------------------


def baseline_sentence(rows: pd.DataFrame) -> Sentence:
    top = rows.sort_values("users").iloc[-1]
    claim = (
        f"{named(top['style'])} is the family's baseline: {_rps(top['rps'])} req/s at {top['users']:g} users "
        f"with {'a p99 of ' if is_bound(top, 'p99_ms') else 'an exact p99 of '}{_p99(top)}"
    )
    claim += _canary(top)
    detail = (
        f"W={top['server_workers']:g} workers; p99 from HDR histograms over {int(top['requests']):,} "
        f"requests{_repeats(top['repeats'], left_out=_left_out(top))}{_canary_detail(top)}{_placement(top)}"
    )
    return Sentence(_end(claim, scaling(rows)), detail, (Link(f"#{row_id(top['style'])}", "table row"), LATENCY_CHART))


def _canary(a: pd.Series, b: pd.Series | None = None) -> str:
    """What the rest of the app met while the style was under load (the canary's p99, catalogue.CANARY),
    beside what it met beside the baseline (``b``); '' for cells measured without the canary."""
    mine = a.get("canary_p99_ms", math.nan)
    if pd.isna(mine):
        return ""
    text = f"; meanwhile a request to another route of the same workers met a p99 of {_canary_p99(a)}"
    failed = a.get("canary_failures", 0)
    if pd.notna(failed) and failed > 0:
        text += f" ({failed:,.0f} of those requests failed)"
    theirs = b.get("canary_p99_ms", math.nan) if b is not None else math.nan
    if b is not None and pd.notna(theirs):
        text += f" ({_canary_p99(b)} beside {words(b['style'])})"
    return text


def _canary_detail(point: pd.Series) -> str:
    """How the canary's p99 was obtained, for a sentence's detail ('' without it)."""
    n = point.get("canary_requests", math.nan)
    if pd.isna(point.get("canary_p99_ms", math.nan)) or pd.isna(n):
        return ""
    return (
        f"; other routes' p99: the canary's, exact (HDR) over every one of its {n:,.0f} starts a cell "
        "(mean over repeats), each timed from its intended start"
    )


def _others(point: pd.Series, lead: str = "") -> str:
    """The canary's p99 beside ``point`` for a headline ('' without it), after ``lead``."""
    if pd.isna(point.get("canary_p99_ms", math.nan)):
        return ""
    return f"{lead}other routes' p99 {_canary_p99(point)}"


def _canary_p99(point: pd.Series) -> str:
    return ("at least " if is_bound(point, "canary_p99_ms") else "") + _ms(point["canary_p99_ms"])


def style_sentence(shape: pd.DataFrame, style: str, base: str) -> Sentence:
    mine, theirs = shape[shape["style"] == style], shape[shape["style"] == base]
    common = sorted(set(mine["users"]) & set(theirs["users"]))
    links = (Link(f"#{row_id(style)}", "table row"), LATENCY_CHART, PERCENTILES_CHART)
    if not common:
        return Sentence(
            f"{_capital(named(style))} was not measured at the same users as {words(base)} on the "
            "same workers; nothing to compare.",
            "",
            links,
        )
    u = common[-1]
    a, b = mine[mine["users"] == u].iloc[0], theirs[theirs["users"] == u].iloc[0]
    claim = f"{named(style)} reached {_ratio(a['rps'], b['rps'])} {words(base)}'s throughput at {u:g} users"
    if b["p99_ms"] > 0:
        claim += f" with {_p99_ratio(a, b)}"
    exact = "" if is_bound(a, "p99_ms") or is_bound(b, "p99_ms") else "exact "
    detail = (
        f"{_rps(a['rps'])} vs {_rps(b['rps'])} req/s; {exact}p99 {_p99(a)} vs {_p99(b)} "
        f"from HDR histograms over {int(a['requests']):,} and {int(b['requests']):,} requests"
        f"{_repeats(a['repeats'], b['repeats'], left_out=_left_out(a) + _left_out(b))}; "
        f"W={a['server_workers']:g} workers{_canary_detail(a)}{_placement(a)}"
    )
    claim += _canary(a, b)
    if a["failure_rate"] > 0:
        claim += f"; {a['failure_rate']:.1%} of its requests failed"
    valid = a.get("valid", True)
    if valid is not None and not pd.isna(valid) and not bool(valid):
        claim += f"; its cell is not valid ({a.get('invalid_because') or 'see the validity table'}): not ranked"
    if b["rps"] and a["rps"] / b["rps"] >= 1 - THROUGHPUT_WITHIN:
        worse = worst_elsewhere(mine, theirs, common[:-1])  # the top count looks fine: was a lower one not?
        if worse:
            claim, detail = claim + worse[0], detail + worse[1]
    return Sentence(_end(claim, scaling(mine)), detail, links)


def worst_elsewhere(mine: pd.DataFrame, theirs: pd.DataFrame, users: list[float]) -> tuple[str, str] | None:
    """The lower user count where the style fell furthest behind the baseline, if it reached less than
    90% of the baseline's throughput there: the comparison at the top count alone would hide it."""
    worst, worst_ratio = None, 1 - THROUGHPUT_WITHIN
    for u in users:
        a, b = mine[mine["users"] == u].iloc[0], theirs[theirs["users"] == u].iloc[0]
        ratio = a["rps"] / b["rps"] if b["rps"] else math.nan
        if ratio < worst_ratio:
            worst, worst_ratio = (u, a, b), ratio
    if worst is None:
        return None
    u, a, b = worst
    return (
        f", but at {u:g} users only {_ratio(a['rps'], b['rps'])} the throughput with {_p99_ratio(a, b, 'the')}",
        f"; at {u:g} users {_rps(a['rps'])} vs {_rps(b['rps'])} req/s, p99 {_p99(a)} vs {_p99(b)}",
    )


def scaling(rows: pd.DataFrame) -> str:
    """How throughput followed the users across a style's user counts ('' with a single count)."""
    rows = rows.sort_values("users")
    if len(rows) < 2:
        return ""
    lo, hi = rows.iloc[0], rows.iloc[-1]
    users = f"({lo['users']:g} → {hi['users']:g} users)"
    grew_users = hi["users"] / lo["users"]
    if not lo["rps"]:
        return ""  # nothing at the lower count: no ratio to speak of
    grew = hi["rps"] / lo["rps"]
    if abs(grew - 1) <= HELD:
        return f"it held throughput at about {_rps(rows['rps'].mean())} req/s whatever the users {users}"
    if grew < 1:
        return f"its throughput fell from {_rps(lo['rps'])} to {_rps(hi['rps'])} req/s as users grew {users}"
    if grew < CAPPED * grew_users:
        return (
            f"its throughput was capped: {grew_users:g}x the users gave {grew:.1f}x the requests/s, "
            f"{_rps(lo['rps'])} → {_rps(hi['rps'])} req/s {users}"
        )
    return f"its throughput scaled {grew:.1f}x for {grew_users:g}x the users {users}"


def neighbour_sentence(r: pd.Series) -> Sentence:
    """What the neighbours of a together point (repeats averaged: ``cells``, n ``repeats``) did to it."""
    beside = _and([named(s) for s in r["neighbours"]])
    links = (Link(f"#{neighbour_row_id(r['cells'][0], r['style'])}", "neighbour table row"), NEIGHBOUR_CHART)
    head = (
        f"Beside {beside} on the same {r['server_workers']:g} workers, with {r['users_label']} users on it, "
        f"{words(r['style'])}"
    )
    cells = r["cells"]
    listed = _and([f"`{c}`" for c in cells])
    where = f"cell {listed}" if len(cells) == 1 else f"mean of {len(cells)} cells ({listed})"
    detail = (
        f"{where} with {r['users_label']} users on `{r['style']}`; exact from HDR histograms "
        f"over {int(r['requests']):,} requests beside"
    )
    if not r["alone_repeats"]:
        return Sentence(
            f"{head}'s p50 was {_ms(r['p50_ms_beside'])} and its p99 {_ms(r['p99_ms_beside'])}; it "
            "was not measured alone on these workers, so nothing to compare.",
            detail,
            links,
        )
    detail += (
        f" and {int(r['alone_requests']):,} alone at {r['alone_users']:g} users"
        + ("" if r["alone_users_match"] else f", the nearest measured to its {r['style_users']:g}")
        + _repeats(r["alone_repeats"])
    )
    return Sentence(
        f"{head}'s p50 went from {_moved(r, 'p50_ms')}, and its p99 from {_moved(r, 'p99_ms')}.",
        detail,
        links,
    )


def _moved(r: pd.Series, metric: str) -> str:
    """A neighbour row's ``metric`` alone to beside, and the ratio unless alone is only a bound."""
    alone, beside = (("at least " if is_bound(r, f"{metric}_{k}") else "") for k in ("alone", "beside"))
    if alone:
        ratio = "not a ratio: alone is only a lower bound"
    else:
        ratio = f"{'at least ' if beside else ''}{_ratio(r[f'{metric}_beside'], r[f'{metric}_alone'])}"
    return f"{alone}{_ms(r[f'{metric}_alone'])} alone to {beside}{_ms(r[f'{metric}_beside'])} ({ratio})"


def verdict(rows: pd.DataFrame, baseline: str) -> str:
    """The decision table's line for a style from its points of one shape (one per user count,
    repeats averaged): theory's reading of the numbers, then the style against its own family's
    ``baseline`` at the top user count (same users and shape), named."""
    text = theory.verdict(rows)
    top = rows.sort_values("style_users").iloc[-1]
    if top["style"] == baseline:
        return f"{text}; the family's baseline"
    rps, p99 = float(top.get("rps_vs_baseline", math.nan)), float(top.get("p99_vs_baseline", math.nan))
    if math.isnan(rps) and math.isnan(p99):
        return f"{text}; {baseline} (the baseline) not measured at these users and shape"
    at_least = "at least " if is_bound(top, "p99_vs_baseline") else ""
    return f"{text}; against {baseline}: {_ratio(rps, 1.0)} its req/s, {at_least}{_ratio(p99, 1.0)} its p99"


# -- number words --------------------------------------------------------------------------------------


def _ratio(value: float, reference: float) -> str:
    """0.75x, 1.8x, 12x: two decimals below 10 (a trailing zero dropped, one decimal kept), whole above."""
    if not reference or math.isnan(value) or math.isnan(reference):
        return "n/a"
    r = value / reference
    if r >= 10:
        return f"{r:.0f}x"
    text = f"{r:.2f}".rstrip("0")
    return (text + "0" if text.endswith(".") else text) + "x"


def _rps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _ms(value: float) -> str:
    return f"{value / 1000:,.2f} s" if value >= 1000 else f"{value:.1f} ms"


def _repeats(*counts: int, left_out: int = 0) -> str:
    if left_out:
        return f"{_repeats(*counts)}; {left_out} invalid repeat(s) left out (the decision table names them)"
    if max(counts) <= 1:
        return ""
    if len(set(counts)) == 1:
        return f", mean of {counts[0]} repeats" + (" each" if len(counts) > 1 else "")
    return ", means of " + " and ".join(map(str, counts)) + " repeats"


def _end(text: str, clause: str) -> str:
    return _capital(f"{text}; {clause}." if clause else f"{text}.")


def _capital(text: str) -> str:
    return text[0].upper() + text[1:]


def _and(items: list[str]) -> str:
    if not items:
        return "the other styles"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
