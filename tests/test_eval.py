"""The labelled corpus: every alert caught, no quiet pair alerting, severities as labelled."""

from __future__ import annotations

from eval.run import ALERTS, evaluate, load, main, score

# Every rule of docs/detection.md and every kind of churn has pairs in the corpus.
RULES = {
    "expect-gone",
    "flip-negation",
    "flip-default",
    "vanished",
    "select-missing",
    "opt-out-terms-added",
    "opt-out-terms-removed",
    "opt-out-terms-changed",
    "link-target",
    "number-retention",
    "number-age",
    "number-effective-date",
    "plans",
    "modal-timing",
    "minor-wording",
    "minor-added",
    "churn-relative-date",
    "churn-absolute-date",
    "churn-last-updated",
    "churn-counter",
    "churn-copyright",
    "churn-rotating-token",
    "churn-consent-banner",
    "churn-whitespace-markup",
    "churn-typographic-quotes",
    "churn-spelling",
    "churn-list-numbering",
    "churn-locale-path",
    "churn-case",
    "churn-date-in-opt-out-sentence",
}


def test_corpus_is_large_covers_every_rule_and_both_directions() -> None:
    pairs = load()
    assert len(pairs) >= 60
    assert {pair.rule for pair in pairs} == RULES
    assert sum(pair.id.endswith("(reversed)") for pair in pairs) >= 30
    assert {pair.label for pair in pairs} == {"noise", "minor", "relevant", "critical"}
    assert len({pair.id for pair in pairs}) == len(pairs)


def test_full_recall_no_false_alerts_and_contract_severity() -> None:
    outcomes = evaluate()
    missed = [o.pair.id for o in outcomes if o.alerting and not o.alerted]
    false_alerts = [o.pair.id for o in outcomes if o.alerted and not o.alerting]
    assert missed == []
    assert false_alerts == []
    total = score(outcomes)
    assert total.severity_accuracy >= 0.95
    assert all(o.assessment.reasons for o in outcomes if o.assessment.severity in ALERTS)


def test_script_prints_figures_and_exit_status(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "alert recall: 100.0%" in out
    assert "false alerts on quiet pairs: 0/" in out
    assert "select-missing" in out


def test_script_fails_on_a_missed_alert(tmp_path) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "corpus.yaml"
    corpus.write_text(
        """
- id: missed
  provider: Example
  title: Help
  rule: minor-wording
  label: critical
  old: "<h1>Help</h1><p>Welcome to the help centre.</p>"
  replace: [["Welcome to", "Hello from"]]
"""
    )
    assert main(["--corpus", str(corpus)]) == 1
