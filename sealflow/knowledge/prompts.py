"""Self-edit prompt families, the closed-book question prompt, and SFT records.

Base-model families end with a cue line ("Implications:\\n") so a non-instruct LM
simply continues with the list; ``chat-implications`` instead goes through the
tokenizer's chat template for instruct models. The SFT record reuses the exact
prompt a self-edit was sampled from, so ReST-EM trains on what the policy saw.
"""

from __future__ import annotations

from typing import Any

from sealflow.records import Passage, SelfEdit

_INTRO = "Read the passage below and {task}\n\nPassage:\n{passage}\n\n{cue}"

_BASE_FAMILIES: dict[str, tuple[str, str]] = {
    # family: (task sentence, cue that the model continues)
    "implications": (
        "write a list of implications of it: facts that follow from it directly or indirectly.",
        "Implications:\n",
    ),
    "implications-long": (
        "write a long list of implications of it: facts that follow from it directly or indirectly.",
        "Implications:\n",
    ),
    "implications-very-long": (
        "write a very long list of implications of it: facts that follow from it directly or indirectly.",
        "Implications:\n",
    ),
    "rewrite": (
        "restate it several times in different words, with a blank line between versions.",
        "Restatements:\n",
    ),
    "self-qa": (
        "turn everything it says into pairs of questions and answers.",
        "Question 1: ",
    ),
}

_CHAT_INSTRUCTION = (
    "Read the passage below and list the implications of it: facts that follow from it "
    "directly or indirectly. Write one implication per line.\n\n{passage}"
)

PROMPT_FAMILIES: tuple[str, ...] = (*_BASE_FAMILIES, "chat-implications")


def _passage_block(passage: Passage) -> str:
    """Title line then context, as in the training sequences; no blank line when untitled."""
    title, context = passage.title.strip(), passage.context.strip()
    return f"{title}\n{context}" if title else context


def chat_instruction(passage: Passage) -> str:
    """The user message of ``chat-implications`` (before any chat template)."""
    return _CHAT_INSTRUCTION.format(passage=_passage_block(passage))


def self_edit_prompt(family: str, passage: Passage, tokenizer: Any = None) -> str:
    """The text the policy continues to write a self-edit for ``passage``."""
    if family in _BASE_FAMILIES:
        task, cue = _BASE_FAMILIES[family]
        return _INTRO.format(task=task, cue=cue, passage=_passage_block(passage))
    if family == "chat-implications":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "knowledge.self_edits.prompt 'chat-implications' needs a tokenizer with a chat template "
                "(an instruct model); use a base-model family such as 'implications' otherwise"
            )
        messages = [{"role": "user", "content": chat_instruction(passage)}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise ValueError(
        f"unknown knowledge.self_edits.prompt {family!r} (expected one of {', '.join(PROMPT_FAMILIES)})"
    )


def question_prompt(question: str) -> str:
    """Closed-book QA prompt: the passage is deliberately absent."""
    return f"Question: {question.strip()}\nAnswer:"

