"""Self-edit prompt families, the QA prompt, SFT records and inner-loop training sequences."""

from __future__ import annotations

import pytest

from sealflow.knowledge import inner as sequences  # the self-edit -> training sequences half of inner.py
from sealflow.knowledge import prompts
from sealflow.knowledge.inner import EMPTY_COMPLETION, NO_USABLE_LINES, TrainingTexts
from sealflow.records import Passage, Question, SelfEdit

PASSAGE = Passage(
    id="pj-000000000001",
    title="Quillon Pass",
    context="Quillon Pass crosses the Ashen Range at 3,100 metres and is closed every winter by snow.",
    questions=(Question("Which range does Quillon Pass cross?", "the Ashen Range"),),
)
PASSAGE_TEXT = "Quillon Pass\n" + PASSAGE.context


def _chat_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>")))
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    return tok


# ----------------------------------------------------------------- prompts


def test_families_listed() -> None:
    assert prompts.PROMPT_FAMILIES == (
        "implications", "implications-long", "implications-very-long", "rewrite", "self-qa", "chat-implications",
        "seal-implications", "seal-implications-long", "seal-implications-very-long", "seal-rewrite", "seal-self-qa",
        "seal-chat-implications",
    )


# sealflow's own base families (the authors' seal-* wording: tests/test_seal_layout.py)
@pytest.mark.parametrize("family", prompts.PROMPT_FAMILIES[:5])
def test_base_families_render_with_passage_and_cue(family: str) -> None:
    text = prompts.self_edit_prompt(family, PASSAGE)
    assert PASSAGE_TEXT in text
    cue = {"rewrite": "Restatements:\n", "self-qa": "Question 1: "}.get(family, "Implications:\n")
    assert text.endswith("\n\n" + cue)


def test_implication_lengths_differ() -> None:
    texts = {f: prompts.self_edit_prompt(f, PASSAGE) for f in prompts.PROMPT_FAMILIES[:3]}
    assert "very long list" in texts["implications-very-long"]
    assert "long list" in texts["implications-long"] and "very long" not in texts["implications-long"]
    assert len(set(texts.values())) == 3


def test_chat_family_uses_template() -> None:
    text = prompts.self_edit_prompt("chat-implications", PASSAGE, tokenizer=_chat_tokenizer())
    assert text.startswith("<|user|>\n") and text.endswith("<|assistant|>\n")
    assert PASSAGE_TEXT in text
    with pytest.raises(ValueError, match="needs a tokenizer"):
        prompts.self_edit_prompt("chat-implications", PASSAGE)


def test_unknown_family_names_config_key() -> None:
    with pytest.raises(ValueError, match="knowledge.self_edits.prompt"):
        prompts.self_edit_prompt("poem", PASSAGE)


def test_question_prompt_is_closed_book() -> None:
    text = prompts.question_prompt("  Which range does Quillon Pass cross? ")
    assert text == "Question: Which range does Quillon Pass cross?\nAnswer:"
    assert "Ashen" not in text


def test_answer_prompt_plain_or_in_the_chat_template() -> None:
    from sealflow.knowledge.scoring import ScoringSettings, answer_request

    question = " Which range does Quillon Pass cross? "
    assert prompts.answer_prompt(question, "plain") == prompts.question_prompt(question)
    chat = prompts.answer_prompt(question, "chat", _chat_tokenizer())
    assert chat.startswith("<|user|>\n") and chat.endswith("<|assistant|>\n")
    assert "Question: Which range does Quillon Pass cross?" in chat and "Answer:" not in chat
    request = answer_request(question, "a0", ScoringSettings(question_prompt="chat"), _chat_tokenizer())
    assert request.prompt == chat and request.temperature == 0.0 and request.adapter == "a0"
    assert answer_request(question, None, ScoringSettings()).prompt == prompts.question_prompt(question)
    with pytest.raises(ValueError, match="knowledge.scoring.question_prompt 'chat' needs a tokenizer"):
        prompts.answer_prompt(question, "chat")
    with pytest.raises(ValueError, match="knowledge.scoring.question_prompt 'poem'"):
        prompts.answer_prompt(question, "poem")


def test_restem_keeps_the_exact_sampled_prompt_and_completion() -> None:
    from sealflow.restem import restem_filter

    prompt = prompts.self_edit_prompt("implications", PASSAGE)
    edit = SelfEdit(id="r1-s0-p00-k0", input_id=PASSAGE.id, sample=0, prompt=prompt, completion="- It snows.\n",
                    round=1, shard=0, seed=1)
    (kept,) = restem_filter([{"edit_id": edit.id, "reward_mean": 0.5, "valid": True}], [edit], keep_top_k=1)
    assert (kept["prompt"], kept["completion"]) == (prompt, "- It snows.\n")


# ----------------------------------------------------------------- sequences

LIST_EDIT = """Sure, here are the implications:
1. Quillon Pass is a route through the Ashen Range.
2) The pass lies above 3,000 metres.
- Travellers cannot use the pass in winter.
* ok
- Travellers cannot use the pass in winter.

Implication 5: Snow falls on the Ashen Range every year."""


def test_lines_split_strips_bullets_headers_short_and_duplicates() -> None:
    out = sequences.training_texts(PASSAGE, LIST_EDIT, "lines", include_passage=True)
    assert out.texts == [
        "Quillon Pass\nQuillon Pass is a route through the Ashen Range.",
        "Quillon Pass\nThe pass lies above 3,000 metres.",
        "Quillon Pass\nTravellers cannot use the pass in winter.",
        "Quillon Pass\nSnow falls on the Ashen Range every year.",
        PASSAGE_TEXT,
    ]
    assert out.n_from_edit == 4 and out.reason is None


@pytest.mark.parametrize("completion, split, include_passage, expected", [
    ("3.5 percent of the pass is paved.", "lines", False,  # decimal numbers are not list markers
     ["Quillon Pass\n3.5 percent of the pass is paved."]),
    ("Which range does it cross?\nAnswer: The Ashen Range.\nQuestion 2: When is it closed?\nAnswer: Every winter.",
     "lines", False,  # self-QA pairs stay together
     ["Quillon Pass\nQuestion 1: Which range does it cross?\nAnswer: The Ashen Range.",
      "Quillon Pass\nQuestion 2: When is it closed?\nAnswer: Every winter."]),
    ("The pass crosses a range.\nIt is high.\n\nWinter closes the pass.\n---\nSnow blocks the road each year.",
     "segments", True,  # segments split on blank lines and separators
     ["Quillon Pass\nThe pass crosses a range.\nIt is high.", "Quillon Pass\nWinter closes the pass.",
      "Quillon Pass\nSnow blocks the road each year.", PASSAGE_TEXT]),
])
def test_training_texts_of_a_completion(completion, split, include_passage, expected) -> None:
    assert sequences.training_texts(PASSAGE, completion, split, include_passage=include_passage).texts == expected


def test_segments_chunk_a_single_block_by_lines() -> None:
    completion = "\n".join(f"Fact number {i} about the pass." for i in range(7))
    out = sequences.training_texts(PASSAGE, completion, "segments", include_passage=False, lines_per_segment=3)
    assert out.n_from_edit == 3
    assert out.texts[0].split("\n")[1:] == [f"Fact number {i} about the pass." for i in range(3)]
    assert out.texts[-1] == "Quillon Pass\nFact number 6 about the pass."


def test_none_split_keeps_whole_completion() -> None:
    out = sequences.training_texts(PASSAGE, "  A rewrite of the passage.\nSecond line.  ", "none", include_passage=True)
    assert out.texts == ["Quillon Pass\nA rewrite of the passage.\nSecond line.", PASSAGE_TEXT]
    assert out.n_from_edit == 1


@pytest.mark.parametrize("split", sequences.SPLITS)
def test_unusable_completions_fall_back_to_passage(split: str) -> None:
    empty = sequences.training_texts(PASSAGE, " \n ", split, include_passage=True)
    assert empty == TrainingTexts([PASSAGE_TEXT], 0, EMPTY_COMPLETION)
    junk = sequences.training_texts(PASSAGE, "- ok\n1. ...\nImplications:", split, include_passage=True)
    assert junk == TrainingTexts([PASSAGE_TEXT], 0, NO_USABLE_LINES)
    bare = sequences.training_texts(PASSAGE, "", split, include_passage=False)
    assert bare.texts == [] and bare.reason == EMPTY_COMPLETION


def test_untitled_passage_and_passage_only() -> None:
    untitled = Passage("x", "", "Body text here.", ())
    out = sequences.training_texts(untitled, "A fact about the body.", "lines", include_passage=True)
    assert out.texts == ["A fact about the body.", "Body text here."]
    assert sequences.passage_only_texts(PASSAGE) == TrainingTexts([PASSAGE_TEXT], 0, None)


def test_unknown_split_names_config_key() -> None:
    with pytest.raises(ValueError, match="knowledge.inner_loop.split"):
        sequences.training_texts(PASSAGE, "x", "words", include_passage=True)


def test_untitled_passage_prompt_has_no_blank_title() -> None:
    text = prompts.self_edit_prompt("implications", Passage("x", "", "Body text here.", ()))
    assert "Passage:\nBody text here.\n\nImplications:\n" in text


def test_faithfulness_is_the_share_of_content_words_found_in_the_passage() -> None:
    from sealflow.knowledge.faithfulness import faithfulness

    passage = "Quillon Pass crosses the Ashen Range above 3,000 metres."
    assert faithfulness("- Quillon Pass crosses the Ashen Range.", passage) == 1.0
    assert faithfulness("- Brathoun Vell founded the guild.", passage) == 0.0
    assert faithfulness("- Quillon Pass was founded by Brathoun.", passage) == pytest.approx(2 / 4)
    assert faithfulness("the was of", passage) == 0.0  # stop words only: nothing about anything


# ------------------------------------------------------- a forced start (the title)

class _RecordingBackend:
    """Answers every request with the same continuation and keeps the prompts it was sent."""

    def __init__(self, continuation: str) -> None:
        self.continuation, self.prompts = continuation, []

    def generate(self, requests):
        self.prompts += [r.prompt for r in requests]
        return [[self.continuation] * r.n for r in requests]


@pytest.mark.parametrize("start_with_title", [False, True])
def test_a_forced_title_is_sent_to_the_policy_and_kept_in_the_self_edit_not_the_prompt(start_with_title) -> None:
    from sealflow.knowledge.heldout.run import sample_heldout_edits
    from sealflow.knowledge.sampling import SamplingSettings, sample_self_edits
    from sealflow.sft import sft_examples

    settings = SamplingSettings("implications", 2, 1.0, 0.95, 16, start_with_title=start_with_title)
    family_prompt = prompts.self_edit_prompt("implications", PASSAGE)
    start = "Quillon Pass" if start_with_title else ""
    for sample in (lambda b: sample_self_edits(b, None, [PASSAGE], settings, 1, 0, 0, "policy"),
                   lambda b: sample_heldout_edits(b, None, [PASSAGE], settings, "base_self_edits", 0, "policy")):
        backend = _RecordingBackend(" is closed in winter.\nQuillon Pass crosses the Ashen Range.")
        edits = sample(backend)
        assert backend.prompts == [family_prompt + start]
        assert len(edits) == 2 and all(e.prompt == family_prompt for e in edits)
        assert all(e.completion == start + backend.continuation for e in edits)
        assert all(e.sampling["start_with_title"] is start_with_title for e in edits)
        # ReST-EM trains the policy to write the whole self-edit, its title included, after the family's prompt.
        (example,) = sft_examples([{"prompt": edits[0].prompt, "completion": edits[0].completion}])
        assert example.prompt + example.completion == family_prompt + start + backend.continuation
    if start_with_title:  # the forced line is a training line about the passage's subject
        assert sequences.training_texts(PASSAGE, edits[0].completion, "lines", False).texts[0] == \
            "Quillon Pass\nQuillon Pass is closed in winter."
