"""The answers at the top of the report: a headline per family decided by the stated rule, and
sentences whose figures come from the table they were given."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import answers
from analysis.report import analyse
from target_app import catalogue
from tests.analysis.tables import row, table, together
from tests.conftest import FIXTURE_RUN


def family(table_: pd.DataFrame, name: str) -> answers.Answer:
    return next(a for a in answers.answers(table_) if a.family == name)


def about(answer: answers.Answer, style: str) -> answers.Sentence:
    """The comparison sentence of ``style`` (it names the style's id in backticks)."""
    return next(s for s in answer.sentences if f"(`{style}`) reached" in s.text)


def headline_parts(answer: answers.Answer) -> dict[str, str]:
    """The headline's clauses by their first word: {"use": ..., "behind:": ..., "never": ...}."""
    body = answer.headline.split(": ", 1)[1]
    return {part.split(" ", 1)[0]: part for part in body.split("; ")}


def test_a_slower_style_reads_with_its_ratios_users_and_evidence() -> None:
    t = table(row("sleep/async-await", 100, rps=1600, p99=50), row("sleep/sync-def", 100, rps=1200, p99=90))
    s = about(family(t, "sleep"), "sleep/sync-def")
    assert f"reached {1200 / 1600:.2f}x" in s.text and "0.75x" in s.text
    assert f"with {90 / 50:.1f}x its p99" in s.text and "1.8x" in s.text
    assert "at 100 users" in s.text and "plain `def`" in s.text.lower() and "`async def` + `await`" in s.text
    # Every number says what it is: the absolute values, that p99 is exact, n requests, and W.
    for words in (
        "1,200 vs 1,600 req/s",
        "exact p99 90.0 ms vs 50.0 ms",
        "HDR histograms",
        "12,000 and 16,000 requests",
        "W=2",
    ):
        assert words in s.detail
    assert answers.Link("#row-sleep-sync-def", "table row") in s.links
    assert any(link.href.startswith("#chart-") for link in s.links)


def test_each_sentence_says_what_the_rest_of_the_app_met_beside_the_style() -> None:
    t = table(
        row("sleep/async-await", 100, rps=1600, p99=50, canary_p99_ms=3.0, canary_requests=200),
        row("sleep/blocking-in-async", 100, rps=40, p99=2500, canary_p99_ms=1250.0, canary_p99_ms_at_least=True),
        row("sleep/sync-def", 100, rps=1200, p99=90),  # measured without the canary
    )
    answer = family(t, "sleep")
    blocking = about(answer, "sleep/blocking-in-async").text
    assert "another route of the same workers met a p99 of at least 1.25 s (3.0 ms beside" in blocking
    assert "met a p99 of 3.0 ms" in answer.sentences[0].text  # the baseline's own
    assert "over every one of its 200 starts a cell" in answer.sentences[0].detail  # how it was obtained
    assert "another route" not in about(answer, "sleep/sync-def").text


def test_a_capped_blocking_style_reads_as_held_and_is_never_to_be_used() -> None:
    t = table(
        row("sleep/async-await", 10, rps=190, p99=55),
        row("sleep/async-await", 100, rps=1800, p99=60),
        row("sleep/blocking-in-async", 10, rps=39, p99=300),
        row("sleep/blocking-in-async", 100, rps=39.5, p99=2600),
    )
    answer = family(t, "sleep")
    blocking = about(answer, "sleep/blocking-in-async")
    assert "held throughput at about 39" in blocking.text and "(10 → 100 users)" in blocking.text
    base = next(s for s in answer.sentences if "baseline" in s.text)
    assert f"scaled {1800 / 190:.1f}x for 10x the users" in base.text
    never = headline_parts(answer)["never"]
    assert (
        never == "never use a blocking call inside `async def` "
        f"({39.5 / 1800:.2f}x the best req/s, {2600 / 60:.0f}x the lowest p99)"
    )
    assert headline_parts(answer)["use"] == "use `async def` + `await`"
    assert answer.headline.startswith("sleep at 100 users: ")


def test_throughput_that_grows_far_less_than_the_users_reads_as_capped() -> None:
    t = table(
        row("sleep/async-await", 10, rps=200, p99=55),
        row("sleep/async-await", 100, rps=2000, p99=55),
        row("sleep/sync-def", 10, rps=200, p99=55),
        row("sleep/sync-def", 100, rps=800, p99=130),
    )
    s = about(family(t, "sleep"), "sleep/sync-def")
    assert "throughput was capped: 10x the users gave 4.0x the requests/s" in s.text


def test_a_family_with_only_its_baseline_says_so() -> None:
    t = table(
        row("sleep/async-await", 10, rps=190, p99=55),
        row("sleep/sync-def", 10, rps=190, p99=55),
        row("cpu/async", 4, rps=287, p99=24),
    )
    cpu = family(t, "cpu")
    assert cpu.headline == "cpu: only `async def` (`cpu/async`) was measured; nothing to compare"
    assert "nothing to compare" not in family(t, "sleep").headline


def test_a_family_without_its_baseline_compares_nothing() -> None:
    answer = family(table(row("db/sync-def", 10, rps=190, p99=55)), "db")
    assert "baseline" in answer.headline and "not measured alone" in answer.headline
    assert "`db/sync-def`" in answer.headline


@pytest.mark.parametrize(
    "rps_ratio, p99_ratio, good",
    [
        (0.95, 1.20, True),  # within 10% and p99 under 1.25x: as good as the best
        (0.89, 1.00, False),  # 11% behind
        (1.00, 1.30, False),  # p99 over 1.25x the lowest
        (1.05, 1.00, True),  # ahead of the baseline, which is then within 5% of it
    ],
)
def test_the_rule_decides_the_headline(rps_ratio: float, p99_ratio: float, good: bool) -> None:
    t = table(
        row("sleep/async-await", 100, rps=1000, p99=100),
        row("sleep/offloaded", 100, rps=1000 * rps_ratio, p99=100 * p99_ratio),
    )
    parts = headline_parts(family(t, "sleep"))
    assert ("`run_in_threadpool`" in parts["use"]) is good
    assert ("`run_in_threadpool`" in parts.get("behind:", "")) is not good
    assert "`async def` + `await`" in parts["use"]
    assert "10%" in answers.RULE and "1.25x" in answers.RULE


@pytest.mark.parametrize(
    ("spread", "either"),
    [
        (None, False),  # one repeat each: the rule's own 10% decides, and 15% behind is behind
        ((1100, 900), True),  # repeats of one cell 20% apart: 15% is within what repeating shows
        ((1040, 960), False),  # 8% apart: the rule's 10% stands, and 15% is a difference
    ],
)
def test_styles_within_what_their_repeats_show_are_either(spread: tuple[float, float] | None, either: bool) -> None:
    rows = [row("sleep/sync-def", 100, rps=850, p99=100)]
    if spread is None:
        rows.append(row("sleep/async-await", 100, rps=1000, p99=100))
    else:
        rows += [row("sleep/async-await", 100, rps=rps, p99=100, repeat=i + 1) for i, rps in enumerate(spread)]
    parts = headline_parts(family(table(*rows), "sleep"))
    if either:
        assert parts["use"] == (
            "use either `async def` + `await` or plain `def` (they differ by less than their repeats do: "
            "20% in req/s, 1.25x in p99)"
        )
    else:
        assert parts["use"] == "use `async def` + `await`" and "plain `def`" in parts["behind:"]
    assert "'either'" in answers.RULE


def test_a_third_styles_noise_does_not_make_two_others_either() -> None:
    """Only the compared styles' own repeats widen the rule: a noisy blocking style beside them does not."""
    rows = [row("sleep/async-await", 100, rps=r, p99=60, repeat=i + 1) for i, r in enumerate((1000, 1010, 990))]
    rows += [row("sleep/sync-def", 100, rps=r, p99=200, repeat=i + 1) for i, r in enumerate((350, 355, 345))]
    rows += [
        row("sleep/blocking-in-async", 100, rps=r, p99=p, repeat=i + 1)
        for i, (r, p) in enumerate(((10, 100), (10, 100), (100, 3000)))
    ]
    parts = headline_parts(family(table(*rows), "sleep"))
    assert parts["use"] == "use `async def` + `await`"
    assert "plain `def`" in parts["behind:"]


def test_the_headline_judges_the_highest_user_count() -> None:
    t = table(
        row("sleep/async-await", 10, rps=200, p99=55),
        row("sleep/async-await", 1000, rps=15000, p99=70),
        row("sleep/sync-def", 10, rps=196, p99=56),
        row("sleep/sync-def", 1000, rps=1500, p99=650),
    )
    parts = headline_parts(family(t, "sleep"))
    assert parts["use"] == "use `async def` + `await`"
    assert (
        parts["behind:"] == f"behind: plain `def` ({1500 / 15000:.2f}x the best req/s, {650 / 70:.2f}x the lowest p99)"
    )


def test_no_leader_names_the_best_on_each_count() -> None:
    t = table(row("cpu/async", 20, rps=252, p99=221), row("cpu/process-pool", 20, rps=204, p99=125))
    parts = headline_parts(family(t, "cpu"))
    assert parts["none"] == (
        "none led on both: `async def` served the most req/s (252), a process pool had the lowest p99 (125.0 ms)"
    )


def test_a_style_behind_only_at_lower_users_says_where() -> None:
    t = table(
        row("fanout/gather", 10, rps=190, p99=60),
        row("fanout/gather", 1000, rps=1360, p99=1500),
        row("fanout/sequential", 10, rps=38, p99=280),
        row("fanout/sequential", 1000, rps=1330, p99=1550),
    )
    answer = family(t, "fanout")
    s = about(answer, "fanout/sequential")
    assert f"but at 10 users only {38 / 190:.1f}x the throughput" in s.text
    assert "38.0 vs 190 req/s" in s.detail
    assert "sequential `await`s" in headline_parts(answer)["use"]  # at 1000 users it keeps up


def test_repeats_are_averaged_and_said_so() -> None:
    t = table(
        row("sleep/async-await", 10, rps=100, p99=50, repeat=1), row("sleep/async-await", 10, rps=200, p99=70, repeat=2)
    )
    base = family(t, "sleep").sentences[0]
    assert "150 req/s" in base.text and "exact p99 of 60.0 ms" in base.text
    assert "mean of 2 repeats" in base.detail and "3,000 requests" in base.detail


def test_neighbour_damage_sentence() -> None:
    t = table(
        row("sleep/async-await", 10, rps=190, p99=60, p50=50),
        row("sleep/blocking-in-async", 10, rps=39, p99=300, p50=250),
        *together("nb-u20", 20, ("sleep/async-await", 10, 45, 420), ("sleep/blocking-in-async", 10, 39, 300)),
    )
    nb = [s for s in family(t, "sleep").sentences if s.text.startswith("Beside")]
    assert len(nb) == 1  # the blocking style is the cause, not a victim
    text, detail = nb[0].text, nb[0].detail
    assert "Beside a blocking call inside `async def` (`sleep/blocking-in-async`)" in text
    assert f"p50 went from 50.0 ms alone to 210.0 ms ({210 / 50:.1f}x)" in text
    assert "10 of 20 users" in detail and "`nb-u20`" in detail
    assert nb[0].links[0].href == "#" + answers.neighbour_row_id("nb-u20", "sleep/async-await")


def test_families_and_sentences_follow_the_catalogue() -> None:
    t = table(
        row("db/asyncpg", 10, rps=190, p99=60),
        row("sleep/sync-def", 10, rps=190, p99=60),
        row("sleep/async-await", 10, rps=190, p99=60),
        row("sleep/blocking-in-async", 10, rps=40, p99=300),
    )
    found = answers.answers(t)
    assert [a.family for a in found] == [f for f in catalogue.FAMILIES if f in ("db", "sleep")]
    named = [next(s.id for s in catalogue.STYLES if f"(`{s.id}`)" in sentence.text) for sentence in found[0].sentences]
    assert named == [s.id for s in catalogue.family("sleep") if s.id in set(t["style"])]


def test_words_and_row_ids_come_from_one_place() -> None:
    assert answers.words("sleep/sync-def") == "plain `def`"
    assert answers.words("sleep/offloaded") == "`run_in_threadpool`"
    assert answers.words("cpu/process-pool") == "a process pool"
    assert answers.row_id("sleep/sync-def") == "row-sleep-sync-def"
    # A style with no entry falls back to its catalogue description.
    for style in catalogue.STYLES:
        assert answers.words(style.id)


def test_answers_on_the_committed_run() -> None:
    t = analyse(FIXTURE_RUN).table
    solo = t[~t["together"]]
    top = solo["users"][solo["style"] == "sleep/blocking-in-async"].max()
    at_top = solo[solo["users"] == top].groupby("style")["rps"].mean()
    ratio = at_top["sleep/blocking-in-async"] / at_top["sleep/async-await"]
    sleep = family(t, "sleep")
    assert f"reached {ratio:.2f}x" in about(sleep, "sleep/blocking-in-async").text
    assert "never use a blocking call inside `async def`" in sleep.headline
    assert any(s.text.startswith("Beside") for s in sleep.sentences)
    assert "nothing to compare" in family(t, "cpu").headline


def test_a_style_whose_requests_failed_is_not_recommended() -> None:
    t = table(
        row("http/async-client", 20, rps=378, p99=61), row("http/sync-def", 20, rps=378, p99=60, failure_rate=0.5)
    )
    parts = headline_parts(family(t, "http"))
    assert parts["use"] == "use a shared `httpx.AsyncClient`"
    assert parts["not"] == "not judged: plain `def` (50% of its requests failed)"


def test_a_saturated_generator_on_the_fastest_style_leaves_the_family_unjudged() -> None:
    """The generator capped the fastest style: the others cannot be ranked against it, so no "use
    plain `def`" (the set-aside style was at least as fast)."""
    t = table(
        row("sleep/async-await", 100, rps=1900, p99=55, saturated=True), row("sleep/sync-def", 100, rps=1500, p99=100)
    )
    headline = family(t, "sleep").headline
    assert headline.startswith("sleep at 100 users: not judged: `async def` + `await` served the most req/s")
    assert "the load generator was saturated" in headline and "use" not in headline.split("not judged", 1)[1]
    # On a slower style, the generator's cap sets only that style aside.
    t = table(
        row("sleep/async-await", 100, rps=1900, p99=55), row("sleep/sync-def", 100, rps=1500, p99=100, saturated=True)
    )
    parts = headline_parts(family(t, "sleep"))
    assert parts["use"] == "use `async def` + `await`"
    assert parts["not"] == "not judged: plain `def` (the load generator was saturated)"


def test_a_fanout_whose_upstream_was_the_limit_is_the_labs_not_the_styles() -> None:
    """The lab's upstream service is one process: when it used a whole core, the calls' pace was the
    lab's. The fastest style limited so leaves the family unjudged; a slower one is set aside alone."""
    t = table(
        row("fanout/gather", 20, rps=94, p99=568, upstream_cpu_cores=0.97),
        row("fanout/sequential", 20, rps=76, p99=294, upstream_cpu_cores=0.3),
    )
    headline = family(t, "fanout").headline
    assert headline.startswith("fanout at 20 users: not judged: `asyncio.gather` served the most req/s")
    assert "limited by the lab, not the style: the lab's upstream service, one process, used 0.97 of a core" in (
        headline
    )
    t = table(
        row("fanout/gather", 20, rps=361, p99=79, upstream_cpu_cores=0.6),
        row("fanout/sequential", 20, rps=76, p99=267, upstream_cpu_cores=0.95),
    )
    parts = headline_parts(family(t, "fanout"))
    assert parts["use"] == "use `asyncio.gather`"
    assert parts["not"].startswith("not judged: sequential `await`s (limited by the lab, not the style")


def test_a_lower_bound_never_wins_nor_divides() -> None:
    """A p99 that unfinished requests reach is not decided: it is never the lowest a ratio is taken
    to, and a style with one that served the most leaves the family unjudged."""
    t = table(
        row("sleep/async-await", 100, rps=1900, p99=55),
        row("sleep/sync-def", 100, rps=1500, p99=40, p99_ms_at_least=True),
        row("sleep/offloaded", 100, rps=1800, p99=110),
    )
    parts = headline_parts(family(t, "sleep"))
    assert parts["use"] == "use `async def` + `await`"
    assert f"{110 / 55:.2f}x the lowest p99" in parts["behind:"]  # over 55 ms, not the bound's 40
    assert parts["not"].startswith("not judged: plain `def` (its p99 is only a lower bound")
    t = table(
        row("sleep/async-await", 100, rps=1500, p99=55),
        row("sleep/sync-def", 100, rps=1900, p99=40, p99_ms_at_least=True),
    )
    assert family(t, "sleep").headline.startswith("sleep at 100 users: not judged: plain `def` served the most req/s")


def test_a_style_that_blocks_the_loop_is_never_to_be_used_even_when_its_cell_cannot_be_ranked() -> None:
    """Blocking starved some users past the window (Little's law does not close): its numbers are
    not ranked, and its verdict stands."""
    t = table(
        row("sleep/async-await", 100, rps=1900, p99=55),
        row(
            "sleep/blocking-in-async", 100, rps=39, p99=2500, valid=False, invalid_because="Little's law does not close"
        ),
    )
    parts = headline_parts(family(t, "sleep"))
    assert parts["use"] == "use `async def` + `await`" and "not" not in parts
    assert parts["never"].startswith("never use a blocking call inside `async def` (it blocks the event loop")
    assert "Little's law does not close" in parts["never"]


def test_an_invalid_cell_is_never_judged() -> None:
    t = table(
        row("sleep/async-await", 100, rps=1900, p99=55),
        row("sleep/sync-def", 100, rps=1500, p99=60, valid=False, invalid_because="counts disagree"),
    )
    parts = headline_parts(family(t, "sleep"))
    assert parts["not"] == "not judged: plain `def` (its cell is not valid (counts disagree))"
    # Invalid and the fastest that counts, behind a faster style whose requests failed (its own
    # doing: it does not compete): the family is not judged.
    t = table(
        row("sleep/async-await", 100, rps=500, p99=55),
        row("sleep/sync-def", 100, rps=900, p99=60, valid=False, invalid_because="counts disagree"),
        row("sleep/offloaded", 100, rps=1000, p99=60, failure_rate=0.5),
    )
    assert family(t, "sleep").headline.startswith("sleep at 100 users: not judged: plain `def` served the most")


def test_the_headline_is_judged_where_styles_meet_not_where_the_baseline_is_alone() -> None:
    t = table(
        row("sleep/async-await", 10, rps=197, p99=53),
        row("sleep/async-await", 100, rps=1945, p99=54),
        row("sleep/sync-def", 10, rps=194, p99=54),
    )
    answer = family(t, "sleep")
    assert answer.headline.startswith("sleep at 10 users: use either `async def` + `await` or plain `def`")


def test_a_style_far_below_its_model_is_pointed_out() -> None:
    t = table(
        row("fanout/gather", 20, rps=91, p99=730, predicted_rps=400),
        row("fanout/sequential", 20, rps=78, p99=275, predicted_rps=80),
    )
    mind = headline_parts(family(t, "fanout"))["mind:"]
    assert f"`asyncio.gather` reached {91 / 400:.0%} of the model's req/s" in mind
    assert "sequential" not in mind


def test_an_invalid_repeat_is_left_out_of_the_answers_means_and_said() -> None:
    """async-await's second repeat broke a validity rule: the answer's 1,005 req/s is of the valid
    two, not 803 with the invalid 400, and the sentence says one repeat was left out."""
    rows = [
        row("sleep/async-await", 100, rps=r, p99=60, repeat=i + 1, valid=ok, invalid_because="" if ok else "counts")
        for i, (r, ok) in enumerate(((1000, True), (400, False), (1010, True)))
    ]
    rows += [row("sleep/sync-def", 100, rps=r, p99=60, repeat=i + 1) for i, r in enumerate((800, 810, 790))]
    answer = family(table(*rows), "sleep")
    assert headline_parts(answer)["use"] == "use `async def` + `await`"
    sentence = about(answer, "sleep/sync-def")
    assert "reached 0.8x" in sentence.text  # 800 / 1,005; over 803 with the invalid repeat it read 1.0x
    assert "800 vs 1,005 req/s" in sentence.detail
    assert "1 invalid repeat(s) left out" in sentence.detail


def test_a_neighbour_ratio_is_never_over_a_lower_bound() -> None:
    t = table(
        row("sleep/async-await", 5, rps=95, p99=400, p99_ms_at_least=True),
        row("sleep/blocking-in-async", 5, rps=20, p99=900),
        *together("sleep-pair", 10, ("sleep/async-await", 5, 20, 800), ("sleep/blocking-in-async", 5, 20, 900)),
    )
    text = " ".join(s.text for s in family(t, "sleep").sentences if s.text.startswith("Beside"))
    assert "its p99 from at least 400.0 ms alone to 800.0 ms (not a ratio: alone is only a lower bound)" in text
    assert text.count("2.0x") == 1  # the p50's (200 to 400 ms, both decided), not the p99's


def test_a_sentence_about_an_invalid_cell_says_so() -> None:
    t = table(
        row("sleep/async-await", 100, rps=1900, p99=55),
        row("sleep/sync-def", 100, rps=1500, p99=60, valid=False, invalid_because="counts disagree"),
    )
    sentence = about(family(t, "sleep"), "sleep/sync-def")
    assert "its cell is not valid (counts disagree): not ranked" in sentence.text
    valid = about(
        family(
            table(row("sleep/async-await", 100, rps=1900, p99=55), row("sleep/sync-def", 100, rps=1500, p99=60)),
            "sleep",
        ),
        "sleep/sync-def",
    )
    assert "not valid" not in valid.text


def test_measured_once_a_side_p99s_that_their_intervals_cannot_tell_apart_are_either() -> None:
    """One cell each: a p99 1.3x the lowest whose 95% interval overlaps the lowest's is no measured
    difference; one whose interval stays clear of it, by more than the rule's 1.25x, is."""
    fast = dict(p99_low_ms=55.0, p99_high_ms=66.0)
    t = table(
        row("http/async-client", 20, rps=380, p99=60, **fast),
        row("http/sync-def", 20, rps=375, p99=78, p99_low_ms=64.0, p99_high_ms=90.0),
    )
    headline = family(t, "http").headline
    assert headline.startswith("http at 20 users: use either a shared `httpx.AsyncClient` or plain `def`")
    assert "plain `def`: a p99 1.30x the lowest, but the two p99s' 95% intervals overlap" in headline
    # Its interval clear of the lowest's, the p99s over 1.25x apart: behind, as without intervals.
    t = table(
        row("http/async-client", 20, rps=380, p99=60, **fast),
        row("http/sync-def", 20, rps=375, p99=100, p99_low_ms=95.0, p99_high_ms=105.0),
    )
    assert headline_parts(family(t, "http"))["use"] == "use a shared `httpx.AsyncClient`"
    # Without intervals (not computed, or repeats instead), the p99s' own ratio decides.
    t = table(row("http/async-client", 20, rps=380, p99=60), row("http/sync-def", 20, rps=375, p99=78))
    assert headline_parts(family(t, "http"))["use"] == "use a shared `httpx.AsyncClient`"


def test_a_style_that_holds_up_the_rest_of_the_app_is_behind_whatever_its_own_numbers() -> None:
    """CPU work on the loop served the most and had the lowest p99, while another route's median under
    its load was 46x the lowest one's: it is behind, and the others are ranked among themselves."""
    t = table(
        row("cpu/async", 20, rps=263, p99=154, canary_p50_ms=92.0, canary_p99_ms=199.0),
        row("cpu/sync-def", 20, rps=219, p99=175, canary_p50_ms=18.0, canary_p99_ms=69.0),
        row("cpu/process-pool", 20, rps=251, p99=133, canary_p50_ms=2.0, canary_p99_ms=6.4),
    )
    parts = headline_parts(family(t, "cpu"))
    assert parts["use"] == "use a process pool (other routes' p99 6.4 ms)"
    behind = parts["behind:"]
    loop = "`async def` (1.05x the others' best req/s, 1.16x their lowest p99, other routes' median 92.0 ms: 46x"
    assert loop in behind
    assert "plain `def` (0.87x the others' best req/s" in behind and "other routes' median 18.0 ms: 9.00x" in behind
    # Medians within OTHERS_AT_MOST of each other (or within OTHERS_ABOVE_MS): no one holds up the rest.
    t = table(
        row("sleep/async-await", 100, rps=1900, p99=59, canary_p50_ms=1.4),
        row("sleep/sync-def", 100, rps=1500, p99=120, canary_p50_ms=1.9),
        row("sleep/offloaded", 100, rps=1850, p99=64, canary_p50_ms=5.5),  # 3.9x, but 4.1 ms above
    )
    use = headline_parts(family(t, "sleep"))["use"]
    assert use.startswith("use either `async def` + `await` or `run_in_threadpool`")


def test_p99_intervals_that_do_not_overlap_are_a_difference_and_none_led_names_the_ranked_only() -> None:
    """Measured once a side: a p99 2x the lowest whose interval stays clear of the lowest's is behind
    (the rule's tolerance is not widened by the intervals' width). When no ranked style leads on both,
    the two it names are ranked ones, never a style that holds up the rest."""
    t = table(
        row("sleep/async-await", 20, rps=400, p99=60, p99_low_ms=40.0, p99_high_ms=90.0),
        row("sleep/sync-def", 20, rps=395, p99=30, p99_low_ms=20.0, p99_high_ms=35.0),
    )
    parts = headline_parts(family(t, "sleep"))
    assert parts["use"] == "use plain `def`" and parts["behind:"].startswith("behind: `async def` + `await` (")
    t = table(
        row("cpu/async", 20, rps=300, p99=100, canary_p50_ms=100.0),
        row("cpu/sync-def", 20, rps=250, p99=80, canary_p50_ms=5.0),
        row("cpu/process-pool", 20, rps=150, p99=40, canary_p50_ms=2.0),
    )
    parts = headline_parts(family(t, "cpu"))
    assert parts["none"] == (
        "none led on both: plain `def` served the most req/s (250), a process pool had the lowest p99 (40.0 ms)"
    )


def test_a_gap_the_users_spread_over_the_workers_explains_is_no_difference() -> None:
    """Two pool-bound styles, each at 97% of its model; the plain `def` one's users landed 14 and 6 on
    two workers of 10 connections each, where the model gives it 317 req/s against 380 at 10 and 10.
    Ranked as at an even spread, the two are 'either', and the sentence says what moved it. A gap the
    even spread does not explain (the threadpool's tokens) stays a gap."""
    t = table(
        row("db/asyncpg", 20, rps=348, p99=81, predicted_rps=357.0, predicted_even_rps=380.0),
        row("db/sync-def", 20, rps=307, p99=94, predicted_rps=317.0, predicted_even_rps=380.0),
    )
    answer = family(t, "db")
    assert headline_parts(answer)["use"] == "use either an `asyncpg` pool or plain `def`"
    detail = about(answer, "db/sync-def").detail
    assert "the model gives 317 req/s at the spread they had and 380 at an even one" in detail
    assert "ranks it at 368 req/s" in detail
    # The same measurements without the model's even spread: as measured, 0.88x, behind.
    t = table(
        row("db/asyncpg", 20, rps=348, p99=81, predicted_rps=357.0),
        row("db/sync-def", 20, rps=307, p99=94, predicted_rps=317.0),
    )
    assert headline_parts(family(t, "db"))["behind:"].startswith("behind: plain `def` (0.88x the best req/s,")
    # The threadpool's 40 tokens a worker cap plain `def` at 1,600 req/s even at an even spread.
    t = table(
        row("sleep/async-await", 100, rps=1928, p99=59, predicted_rps=1977.0, predicted_even_rps=1977.0),
        row("sleep/sync-def", 100, rps=1383, p99=104, predicted_rps=1441.0, predicted_even_rps=1597.0),
    )
    behind = headline_parts(family(t, "sleep"))["behind:"]
    assert behind.startswith("behind: plain `def` (0.79x the best req/s as at an even spread,")


def test_the_spread_is_trusted_only_where_the_model_fits_and_is_always_said() -> None:
    """A style at 60% of its model at the spread it had is ranked as measured (the model missed its
    own throughput: it is not trusted to move it). Any adjustment, however small, is said beside the
    ratio it changed."""
    t = table(
        row("db/asyncpg", 20, rps=380, p99=60, predicted_rps=390.0, predicted_even_rps=390.0),
        row("db/sync-def", 20, rps=300, p99=62, predicted_rps=500.0, predicted_even_rps=750.0),
    )
    parts = headline_parts(family(t, "db"))
    assert parts["use"] == "use an `asyncpg` pool"
    assert parts["behind:"].startswith("behind: plain `def` (0.79x the best req/s, ")  # 300 / 380, as measured
    t = table(
        row("sleep/async-await", 100, rps=1929, p99=59, predicted_rps=1978.0, predicted_even_rps=1979.0),
        row("sleep/offloaded", 100, rps=1511, p99=94, predicted_rps=1591.0, predicted_even_rps=1599.0),
    )
    behind = headline_parts(family(t, "sleep"))["behind:"]
    assert behind.startswith("behind: `run_in_threadpool` (0.79x the best req/s as at an even spread,")


def test_repeats_are_each_ranked_at_their_own_spread_before_they_are_averaged() -> None:
    """Two repeats of plain `def`: one at 14 and 6 users a worker (307 req/s, the model 317 there and
    391 evenly), one at 10 and 10 (380). Ranked each at its own spread they agree within 1%: the
    spread of what is ranked, not of what was measured, widens the rule."""
    t = table(
        row("db/asyncpg", 20, rps=460, p99=60, repeat=1, predicted_rps=470.0, predicted_even_rps=470.0),
        row("db/asyncpg", 20, rps=460, p99=60, repeat=2, predicted_rps=470.0, predicted_even_rps=470.0),
        row("db/sync-def", 20, rps=307, p99=62, repeat=1, predicted_rps=317.0, predicted_even_rps=391.0),
        row("db/sync-def", 20, rps=380, p99=62, repeat=2, predicted_rps=391.0, predicted_even_rps=391.0),
    )
    parts = headline_parts(family(t, "db"))
    assert parts["use"] == "use an `asyncpg` pool"  # 379 / 460 ranked: 0.82x, behind
    assert parts["behind:"].startswith("behind: plain `def` (0.82x the best req/s as at an even spread,")
