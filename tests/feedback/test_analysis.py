"""Pattern finding on plain items: no database."""

from datetime import UTC, datetime, timedelta

from agents.tools.copywriting import check_text
from feedback import analysis
from feedback.analysis import FeedbackItem

from .conftest import DISCOUNT_PAIRS


def corrections(n=15):
    return [FeedbackItem(verdict="corrected", original=f"{DISCOUNT_PAIRS[i % 3][0]} (#{i})",
                         corrected=f"{DISCOUNT_PAIRS[i % 3][1]} (#{i})", reason="No discounts",
                         created_at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=i)) for i in range(n)]


def test_phrase_diff_finds_what_a_correction_removed():
    removed, added = analysis.phrase_diff("Get 20% off today! Glow gently.", "Glow gently.")
    assert removed == ["get 20% off today"] and added == []


def test_corrections_that_remove_discount_language_suggest_one_never_rule_with_examples():
    result = analysis.deterministic_analysis(corrections())
    assert result["status"] == "ok"
    [rule] = [s for s in result["suggestions"] if s["signature"] == "never:theme:discount_urgency"]
    assert rule["kind"] == "never" and rule["evidence_count"] == 15 and rule["confidence"] == 1.0
    assert "discount or urgency language" in rule["text"]
    assert len(rule["examples"]) == 3 and rule["examples"][0]["before"].startswith("Get 20% off today")
    assert rule["examples"][0]["after"].startswith("Glow gently")
    # the rule is written so that check_brand_rules can enforce it
    flagged = check_text("Hurry! Get 40% off today only.", [{"kind": "never", "text": rule["text"]}])
    assert not flagged["passed"]
    assert check_text("Glow gently this Ramadan.", [{"kind": "never", "text": rule["text"]}])["passed"]


def test_below_the_thresholds_nothing_is_suggested():
    items = corrections(2) + [FeedbackItem(verdict="approved", original=f"Calm copy number {i}") for i in range(8)]
    assert not [s for s in analysis.deterministic_analysis(items)["suggestions"] if s["kind"] == "never"]


def test_fewer_than_ten_items_is_insufficient_data_said_plainly():
    result = analysis.deterministic_analysis(corrections(9))
    assert result["status"] == "insufficient_data" and result["suggestions"] == []
    assert "at least 10" in result["message"]


def test_metrics_count_rate_categories_and_trend_by_week():
    items = corrections(4) + [FeedbackItem(verdict="approved", original="Fine", category="",
                                           created_at=datetime(2026, 11, 20, tzinfo=UTC)) for _ in range(4)]
    m = analysis.metrics(items)
    assert m["total"] == 8 and m["counts"]["approved"] == 4 and m["approval_rate"] == 0.5
    assert m["top_reasons"][0] == {"reason": "no discounts", "count": 4}
    assert m["trend"][-1] == {"week": "2026-W47", "total": 4, "approval_rate": 1.0}


def test_approvals_that_share_a_shape_suggest_prefer_rules():
    items = [FeedbackItem(verdict="approved", original=f"Radiance that lasts, gently made {i}") for i in range(6)]
    items += corrections(4)
    kinds = {s["signature"]: s for s in analysis.deterministic_analysis(items)["suggestions"]}
    assert kinds["prefer:word:radiance"]["evidence_count"] == 6 and kinds["prefer:word:radiance"]["kind"] == "prefer"


def test_recurring_rejection_reasons_suggest_a_never_rule():
    items = [FeedbackItem(verdict="rejected", original=f"Text {i}", reason="Mentions a competitor") for i in range(4)]
    items += [FeedbackItem(verdict="approved", original=f"Good {i}") for i in range(6)]
    rules = [s for s in analysis.deterministic_analysis(items)["suggestions"] if s["signature"].startswith("never:reason")]
    assert rules and rules[0]["evidence_count"] == 4 and "Mentions a competitor" in rules[0]["text"]


def test_model_patterns_are_validated_and_held_to_the_thresholds():
    content = [{"type": "tool_use", "name": "report_patterns", "input": {"patterns": [
        {"kind": "never", "text": "Never promise overnight results", "evidence_count": 4, "confidence": 0.9,
         "examples": [{"before": "Overnight glow", "after": "Glow"}]},
        {"kind": "prefer", "text": "Prefer short lines", "evidence_count": 2, "confidence": 0.9}]}}]
    rules, _ = analysis.parse_model_patterns(content)
    assert [r.text for r in rules] == ["Never promise overnight results"] and rules[0].origin == "model"
    bad = [{"type": "tool_use", "name": "report_patterns", "input": {"patterns": [{"kind": "maybe", "text": "x"}]}}]
    rules, note = analysis.parse_model_patterns(bad)
    assert rules == [] and "did not match the schema" in note


def test_partial_approvals_count_half_teach_through_their_corrections_and_prefer_nothing():
    partial = [FeedbackItem(verdict="partially_approved", original=f"{DISCOUNT_PAIRS[i % 3][0]} (#{i})",
                            corrected=f"{DISCOUNT_PAIRS[i % 3][1]} (#{i})" if i % 2 == 0 else "",
                            reason="Too salesy", category="tone", comment="Keep the product line")
               for i in range(8)]
    approved = [FeedbackItem(verdict="approved", original=f"Crafted rose serum, gentle glow #{i}") for i in range(4)]
    items = partial + approved
    m = analysis.metrics(items)
    assert m["counts"]["partially_approved"] == 8 and m["approval_rate"] == round((4 + 0.5 * 8) / 12, 3)
    assert m["top_reasons"][0] == {"reason": "too salesy", "count": 8}
    assert m["top_categories"][0] == {"category": "tone", "count": 8}
    result = analysis.deterministic_analysis(items)
    [rule] = [s for s in result["suggestions"] if s["signature"] == "never:theme:discount_urgency"]
    assert rule["evidence_count"] == 4  # the four partial approvals that carried a corrected text
    # 4 approved outputs are under the 5 a prefer rule needs: the partial approvals do not make up the count
    assert not [s for s in result["suggestions"] if s["kind"] == "prefer"]
    assert '"comment": "Keep the product line"' in analysis.model_prompt(items, "Dune Rose")


def test_phrase_changes_show_what_changed_with_a_few_words_of_context():
    before = "Get 20% off today! Glow gently with our rose serum, made in the hills of Taif for you and your family."
    after = "Glow gently with our rose serum, made in the hills of Taif for your whole family."
    assert analysis.phrase_changes(before, after) == [
        [("removed", "Get 20% off today!"), ("same", "Glow gently with our"), ("skipped", "")],
        [("skipped", ""), ("same", "hills of Taif for"), ("removed", "you and"), ("same", "your"),
         ("added", "whole"), ("same", "family.")]]
    assert analysis.phrase_changes("Same words.", "same words") == []
