"""EM/F1 grading and the LLM judge against a local imitation of a chat-completions server."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_chat import serve_chat
from sealflow.knowledge import grading, judge
from sealflow.knowledge.judge import JudgeConfig, JudgeError

# ----------------------------------------------------------------- EM / F1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Ashen Range", "ashen range"),
        ("  an   apple,  a pear!  ", "apple pear"),
        ("Theatre of the Moon", "theatre of moon"),
        ("U.S.A.", "usa"),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert grading.normalize_answer(text) == expected


def test_exact_match() -> None:
    assert grading.exact_match("the Glass Heron.", "glass heron") == 1.0
    assert grading.exact_match("heron", ["glass heron", "a heron"]) == 1.0
    assert grading.exact_match("glass", ["glass heron"]) == 0.0
    assert grading.exact_match("", ["glass heron"]) == 0.0
    assert grading.exact_match("anything", []) == 0.0


def test_token_f1() -> None:
    assert grading.token_f1("glass heron", "the glass heron") == 1.0
    assert grading.token_f1("glass", "glass heron") == pytest.approx(2 / 3)
    assert grading.token_f1("blue glass heron", ["red bird", "glass heron"]) == pytest.approx(0.8)
    assert grading.token_f1("", "glass heron") == 0.0
    assert grading.token_f1("the", "a") == 1.0  # both normalise to nothing
    assert grading.token_f1("x", []) == 0.0


def test_grade_dispatch() -> None:
    assert grading.grade("Blue kelp oil", ["blue kelp oil"], "em") == 1.0
    assert grading.grade("kelp oil", ["blue kelp oil"], "f1") == pytest.approx(0.8)
    with pytest.raises(ValueError, match="knowledge.scoring.grader"):
        grading.grade("a", ["a"], "judge")


@given(st.text(max_size=30), st.lists(st.text(max_size=30), min_size=1, max_size=3))
def test_scores_bounded_and_em_implies_f1(pred: str, golds: list[str]) -> None:
    em, f1 = grading.exact_match(pred, golds), grading.token_f1(pred, golds)
    assert 0.0 <= f1 <= 1.0 and em in (0.0, 1.0)
    if em:
        assert f1 == 1.0


@pytest.mark.parametrize(
    "raw, expected",
    [
        (" the Ashen Range\nQuestion: next one", "the Ashen Range"),
        ("\n\n 1642", "1642"),
        ("blue kelp oil Question: What else?", "blue kelp oil"),
        ("Answer: Prask\n", "Prask"),
        ("", ""),
    ],
)
def test_clean_prediction(raw: str, expected: str) -> None:
    assert grading.clean_prediction(raw) == expected


# ----------------------------------------------------------------- judge


def _judge_reply(state, body, scripted):
    if scripted == "slow":
        time.sleep(0.5)
        scripted = None
    if scripted is not None:
        status, text = scripted
        if text is not None:
            return status, text
    else:
        status = 200
    # default: say yes when the student answer contains "right"
    return status, "Yes." if "Student answer: right" in body["messages"][-1]["content"] else "no"


@pytest.fixture()
def server():
    with serve_chat(_judge_reply) as served:
        yield served


def _cfg(base_url: str, **kw) -> JudgeConfig:
    return JudgeConfig(**{"base_url": base_url, "model": "judge-x", "api_key_env": "SEALFLOW_TEST_JUDGE_KEY",
                          "timeout_s": 5, "backoff_s": 0.01, **kw})


def test_judge_scores_in_order(server, monkeypatch) -> None:
    state, url = server
    monkeypatch.delenv("SEALFLOW_TEST_JUDGE_KEY", raising=False)  # optional on localhost
    items = [
        ("Who dug it?", "the lantern guild", "right: the lantern guild"),
        ("What burns?", ["blue kelp oil", "kelp oil"], "wrong: whale fat"),
        ("Where?", "Prask", ""),  # empty predictions are never sent
        ("When?", "1642", "right, 1642"),
    ]
    assert judge.judge_answers(items, _cfg(url)) == [1.0, 0.0, 0.0, 1.0]
    assert len(state.requests) == 3
    body = state.requests[0]
    assert body["model"] == "judge-x"
    assert body["messages"][0]["role"] == "system" and "yes or no" in body["messages"][0]["content"]
    second = next(r for r in state.requests if "What burns?" in r["messages"][-1]["content"])
    assert "blue kelp oil (also accepted: kelp oil)" in second["messages"][-1]["content"]
    assert all("Authorization" not in h for h in state.headers)


def test_judge_retries_on_429_and_5xx_and_sends_key(server, monkeypatch) -> None:
    state, url = server
    monkeypatch.setenv("SEALFLOW_TEST_JUDGE_KEY", "sk-test")
    state.script = [(429, "slow down"), (503, "busy"), (200, "**Yes**, correct")]
    assert judge.judge_answers([("q?", "a", "a")], _cfg(url, max_workers=1)) == [1.0]
    assert len(state.requests) == 3
    assert state.headers[-1]["Authorization"] == "Bearer sk-test"


def test_judge_gives_up_and_fails_fast_on_4xx(server) -> None:
    state, url = server
    state.script = [(500, "down")] * 3
    with pytest.raises(JudgeError, match="after 3 tries"):
        judge.judge_answers([("q?", "a", "a")], _cfg(url, max_retries=2, max_workers=1))
    state.script = [(400, "bad model")]
    with pytest.raises(JudgeError, match="HTTP 400"):
        judge.judge_answers([("q?", "a", "a")], _cfg(url, max_workers=1))


def test_judge_timeout_names_the_setting(server) -> None:
    state, url = server
    state.script = ["slow", "slow"]
    with pytest.raises(JudgeError, match=r"after 2 tries \(no reply within timeout_s=0.1 s\)"):
        judge.judge_answers([("q?", "a", "a")], _cfg(url, timeout_s=0.1, max_retries=1, max_workers=1))


def test_judge_verdicts_keep_the_reason(server) -> None:
    state, url = server
    state.script = [(200, "I'm sorry, I can't grade that.")]
    items = [("q?", "a", "wrong"), ("q?", "a", " "), ("q?", "a", "right")]
    verdicts = judge.judge_verdicts(items, _cfg(url, max_workers=1))
    assert verdicts == [judge.Verdict(0.0, "unclear: \"I'm sorry, I can't grade that.\""),
                        judge.Verdict(0.0, "empty prediction"), judge.Verdict(1.0, "yes")]


def test_judge_needs_key_for_remote(monkeypatch) -> None:
    monkeypatch.delenv("SEALFLOW_TEST_JUDGE_KEY", raising=False)
    with pytest.raises(JudgeError, match="SEALFLOW_TEST_JUDGE_KEY"):
        judge.judge_answers([("q", "a", "a")], _cfg("https://judge.example.com/v1"))
    cfg = JudgeConfig.from_config({"base_url": None, "model": "gpt-4.1", "api_key_env": "X", "timeout_s": 60})
    assert cfg.url == "https://api.openai.com/v1/chat/completions"


@pytest.mark.parametrize(
    "reply, score",
    [("yes", 1.0), ("Yes.", 1.0), ("NO", 0.0), ("no, yes is wrong", 0.0), ("The answer is yes", 1.0),
     ("maybe", 0.0), ("", 0.0), (None, 0.0), ("It is correct: yes, but no", 0.0)],
)
def test_parse_verdict(reply, score) -> None:
    assert judge.parse_verdict(reply) == score


@pytest.mark.parametrize(
    "reply, reason",
    [("Yes.", "yes"), ("The answer is no", "no"), ("it is yes and no", "unclear: 'it is yes and no'"), (None, "unclear: ''"),
     ("The student's\nanswer " + "is long " * 20, "unclear: " + repr(("The student's answer " + "is long " * 20)[:80]))],
)
def test_read_verdict_reasons(reply, reason) -> None:
    assert judge.read_verdict(reply).reason == reason
