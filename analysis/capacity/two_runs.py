"""Two capacity runs set side by side (``routebench compare`` on two capacity runs): each style and
server shape's MST in both, the ratio and a verdict."""

from __future__ import annotations

from typing import Any

from analysis.capacity.doc import style_key
from analysis.capacity.limits import parse_slo
from analysis.capacity.mst_stats import differ


def _slo_set(doc: dict[str, Any]) -> set[tuple[str, str, float]]:
    """A run's SLOs as what they mean (``0.25s`` is ``250ms``), in any order."""
    return {(s["metric"], s["op"], s["limit"]) for s in (parse_slo(t) for t in doc.get("slo", []))}


def compare_docs(a: dict[str, Any], b: dict[str, Any], noise: float | None = None) -> list[dict[str, Any]]:
    """Two capacity runs' MSTs per style and server shape: the ratio b / a and a verdict (better:
    a higher MST): Welch's t-test when both have 2+ repeats; else beyond ``noise`` (a relative
    change) or inconclusive."""
    out = []
    same_slo = _slo_set(a) == _slo_set(b)
    index = {style_key(r): r for r in a.get("styles", [])}
    for rb in b.get("styles", []):
        ra = index.get(style_key(rb))
        if ra is None:
            continue
        ma, mb = ra.get("mst_rps"), rb.get("mst_rps")
        row = {
            "style": rb["style"],
            "shape": rb["shape"],
            "mst_a": ma,
            "mst_b": mb,
            # An MST that reached its search's highest rate is at least this: shown "≥".
            "mst_a_at_least": bool(ra.get("at_search_bound")),
            "mst_b_at_least": bool(rb.get("at_search_bound")),
            "ratio_at_least": False,
            "ratio_note": None,
            "n_a": len(ra.get("values", [])),
            "n_b": len(rb.get("values", [])),
        }
        if ma is None or mb is None:
            out.append({**row, "ratio": None, "verdict": "inconclusive", "why": "an MST was not confirmed"})
            continue
        ratio = mb / ma
        # A bound is never a denominator (no ratio over A's); over A's exact MST, B's bound makes
        # the ratio a bound too.
        if row["mst_a_at_least"]:
            row["ratio_note"] = "A's MST is only a lower bound: no ratio over it"
        else:
            row["ratio_at_least"] = row["mst_b_at_least"]
        shown = None if row["mst_a_at_least"] else ratio
        if not same_slo:
            out.append({**row, "ratio": shown, "verdict": "inconclusive", "why": "the runs' SLOs differ"})
            continue
        # An MST that reached the search's highest rate is only a lower bound: as the lower of the
        # two (or level with the other) it may be the higher in truth; as the higher it can only
        # say "better", never "same". Both bounds: nothing to say.
        bound = [side for side, r in (("A", ra), ("B", rb)) if r.get("at_search_bound")]
        higher = "B" if ratio > 1 else "A" if ratio < 1 else ""
        if bound and (len(bound) == 2 or bound[0] != higher):
            why = (
                "both MSTs reached their search's highest rate: lower bounds"
                if len(bound) == 2
                else f"{bound[0]}'s MST reached its search's highest rate: a lower bound, which may be the higher"
            )
            out.append({**row, "ratio": shown, "verdict": "inconclusive", "why": why})
            continue
        test = differ(ra.get("values", []), rb.get("values", []))
        if test["p"] is not None:
            verdict = ("better" if ratio > 1 else "worse") if test["verdict"] == "differ" else "same"
            why = test["why"]
        elif noise is not None:
            verdict = ("better" if ratio > 1 else "worse") if abs(ratio - 1) > noise else "same"
            why = f"one repeat: against the floor you gave, ±{noise:.0%}"
        else:
            verdict, why = "inconclusive", "one repeat a side: run-to-run noise unknown (give --noise, or repeat)"
        if bound and verdict == "same":
            verdict = "inconclusive"
            why += f"; and {bound[0]}'s MST is only a lower bound (it reached its search's highest rate)"
        out.append({**row, "ratio": shown, "verdict": verdict, "why": why})
    return out
