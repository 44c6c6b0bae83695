"""Run the detection rules over the labelled corpus and print how well they do.

    python -m eval.run            # the table, per rule, and the totals
    python -m eval.run --verbose  # also every pair whose severity differs from its label

Alerts are `relevant` and `critical` (the severities notified by default). Recall counts the
alerting pairs that alerted; a false alert is a quiet pair (`noise`/`minor`) that alerted.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eval.page import render
from monitor.compare import Assessment, assess, failure
from monitor.extract import SelectorMissing, extract

CORPUS = Path(__file__).with_name("corpus.yaml")
ALERTS = ("relevant", "critical")
BASE_URL = "https://help.example.org/en/articles/1-page"


@dataclass(frozen=True)
class Pair:
    id: str
    rule: str
    label: str
    old_html: str
    new_html: str
    case: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    pair: Pair
    assessment: Assessment

    @property
    def alerting(self) -> bool:
        return self.pair.label in ALERTS

    @property
    def alerted(self) -> bool:
        return self.assessment.severity in ALERTS


def load(path: Path = CORPUS) -> list[Pair]:
    """Every labelled pair: each case forwards, and backwards where it has a `reverse` label."""
    pairs = []
    for case in yaml.safe_load(path.read_text()):
        old_body = case["old"]
        new_body = case.get("new", old_body)
        for before, after in case.get("replace", ()):
            if before not in new_body:
                raise ValueError(f"{path.name}: case {case['id']}: {before!r} not in old")
            new_body = new_body.replace(before, after)
        old = render(case["provider"], case["title"], old_body, case.get("chrome_old", {}))
        chrome_new = case.get("chrome_new", {"updated": "Updated today"})
        new = render(case["provider"], case["title"], new_body, chrome_new)
        pairs.append(Pair(case["id"], case["rule"], case["label"], old, new, case))
        if "reverse" in case:
            pairs.append(
                Pair(f"{case['id']} (reversed)", case["rule"], case["reverse"], new, old, case)
            )
    return pairs


def judge(pair: Pair) -> Assessment:
    """What the monitor decides for the pair, as check.py would (extract, then assess)."""
    case = pair.case

    def text(html: str) -> str | None:
        try:
            return extract(
                html,
                base_url=BASE_URL,
                select=case.get("select"),
                ignore=tuple(case.get("ignore", ())),
            ).text
        except SelectorMissing:
            return None

    old, new = text(pair.old_html), text(pair.new_html)
    if new is None:
        return failure(f'select "{case["select"]}" matches nothing')
    assert old is not None, f"{pair.id}: the old page must match its select"
    return assess(
        old, new, watch=tuple(case.get("watch", ())), expect=tuple(case.get("expect", ()))
    )


@dataclass(frozen=True)
class Score:
    pairs: int
    alerting: int
    caught: int
    quiet: int
    false_alerts: int
    exact: int
    exact_alerting: int

    @property
    def recall(self) -> float:
        return self.caught / self.alerting if self.alerting else 1.0

    @property
    def severity_accuracy(self) -> float:
        return self.exact_alerting / self.alerting if self.alerting else 1.0


def score(outcomes: list[Outcome]) -> Score:
    return Score(
        pairs=len(outcomes),
        alerting=sum(o.alerting for o in outcomes),
        caught=sum(o.alerting and o.alerted for o in outcomes),
        quiet=sum(not o.alerting for o in outcomes),
        false_alerts=sum(o.alerted and not o.alerting for o in outcomes),
        exact=sum(o.assessment.severity == o.pair.label for o in outcomes),
        exact_alerting=sum(o.alerting and o.assessment.severity == o.pair.label for o in outcomes),
    )


def evaluate(path: Path = CORPUS) -> list[Outcome]:
    return [Outcome(pair, judge(pair)) for pair in load(path)]


def report(outcomes: list[Outcome], verbose: bool = False) -> str:
    by_rule: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_rule[outcome.pair.rule].append(outcome)
    lines = [f"{'rule':34} pairs  recall  false-alerts  severity-exact"]
    for rule in sorted(by_rule):
        s = score(by_rule[rule])
        recall = f"{s.caught}/{s.alerting}" if s.alerting else "-"
        quiet = f"{s.false_alerts}/{s.quiet}"
        lines.append(f"{rule:34} {s.pairs:5}  {recall:>6}  {quiet:>12}  {s.exact}/{s.pairs}")
    total = score(outcomes)
    lines += [
        "",
        f"pairs: {total.pairs} ({total.alerting} alerting, {total.quiet} quiet)",
        f"alert recall: {total.recall:.1%} ({total.caught}/{total.alerting})",
        f"false alerts on quiet pairs: {total.false_alerts}/{total.quiet}",
        f"contract severity on alerting pairs: {total.severity_accuracy:.1%} "
        f"({total.exact_alerting}/{total.alerting})",
        f"severity exact on all pairs: {total.exact}/{total.pairs}",
    ]
    if verbose:
        for o in outcomes:
            if o.assessment.severity != o.pair.label:
                got = f"{o.assessment.severity}: {'; '.join(o.assessment.reasons)}"
                lines.append(f"  {o.pair.id}: label {o.pair.label}, got {got}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args(argv)
    outcomes = evaluate(args.corpus)
    print(report(outcomes, args.verbose))
    total = score(outcomes)
    return 0 if total.recall == 1.0 and total.false_alerts == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
