"""Self-edit prompt families, the closed-book question prompt, and SFT records.

Base-model families end with a cue line ("Implications:\\n") so a non-instruct LM
simply continues with the list; ``chat-implications`` instead goes through the
tokenizer's chat template for instruct models. The SFT record reuses the exact
prompt a self-edit was sampled from, so ReST-EM trains on what the policy saw.

The ``seal-*`` families are the SEAL authors' own wording (Continual-Intelligence/SEAL,
knowledge incorporation), so their published synthetic data and prompts can be met
byte for byte: "Let's read the following passage and ..." with the title line always
present, and ``seal-chat-implications`` as their instruct variant (the task in a system
message, the bare passage as the user message).
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

# The authors' base-model prompts: (task, cue), rendered by ``_SEAL_INTRO``. Their passage
# block is always "{title}\n{context}" (an untitled passage starts with an empty line).
_SEAL_INTRO = "Let's read the following passage and {task}\n\nPassage:\n{title}\n{context}\n\n{cue}"
_SEAL_FAMILIES: dict[str, tuple[str, str]] = {
    "seal-implications": ("produce a list of implications derived directly or indirectly from the content.",
                          "Implications:\n"),
    "seal-implications-long": ("produce a long list of implications derived directly or indirectly from the content.",
                               "Implications:\n"),
    "seal-implications-very-long": (
        "produce a very long list of implications derived directly or indirectly from the content.", "Implications:\n"),
    "seal-rewrite": ("rewrite it in a few different ways, each one separated by a newline.", "Rewritten passages:\n"),
    "seal-self-qa": ("rewrite it in a question-answer format.", "Question 1: "),
}
# Their instruct prompt (its trailing space included), through the tokenizer's chat template.
_SEAL_CHAT_SYSTEM = ("You are an assistant tasked with analyzing the provided passage and producing a list of "
                     "implications derived directly or indirectly from the content. ")

CHAT_FAMILIES: tuple[str, ...] = ("chat-implications", "seal-chat-implications")
PROMPT_FAMILIES: tuple[str, ...] = (*_BASE_FAMILIES, "chat-implications", *_SEAL_FAMILIES, "seal-chat-implications")


def _passage_block(passage: Passage) -> str:
    """Title line then context, as in the training sequences; no blank line when untitled."""
    title, context = passage.title.strip(), passage.context.strip()
    return f"{title}\n{context}" if title else context


def chat_instruction(passage: Passage) -> str:
    """The user message of ``chat-implications`` (before any chat template)."""
    return _CHAT_INSTRUCTION.format(passage=_passage_block(passage))


def chat_messages(family: str, passage: Passage) -> list[dict[str, str]]:
    """The chat messages of a chat family (before any chat template)."""
    if family == "chat-implications":
        return [{"role": "user", "content": chat_instruction(passage)}]
    if family == "seal-chat-implications":
        return [{"role": "system", "content": _SEAL_CHAT_SYSTEM},
                {"role": "user", "content": f"{passage.title}\n{passage.context}"}]
    raise ValueError(f"{family!r} is not a chat prompt family (expected one of {', '.join(CHAT_FAMILIES)})")


def self_edit_prompt(family: str, passage: Passage, tokenizer: Any = None) -> str:
    """The text the policy continues to write a self-edit for ``passage``."""
    if family in _BASE_FAMILIES:
        task, cue = _BASE_FAMILIES[family]
        return _INTRO.format(task=task, cue=cue, passage=_passage_block(passage))
    if family in _SEAL_FAMILIES:
        task, cue = _SEAL_FAMILIES[family]
        return _SEAL_INTRO.format(task=task, cue=cue, title=passage.title, context=passage.context)
    if family in CHAT_FAMILIES:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"knowledge.self_edits.prompt {family!r} needs a tokenizer with a chat template "
                "(an instruct model); use a base-model family such as 'implications' otherwise"
            )
        return tokenizer.apply_chat_template(chat_messages(family, passage), tokenize=False,
                                             add_generation_prompt=True)
    raise ValueError(
        f"unknown knowledge.self_edits.prompt {family!r} (expected one of {', '.join(PROMPT_FAMILIES)})"
    )


def prompt_family_of(prompt: str, passage: Passage, tokenizer: Any = None) -> str | None:
    """The family that renders exactly ``prompt`` for ``passage`` (chat families only with a
    tokenizer that has a chat template), or None: how an imported prompt is recognised."""
    for family in PROMPT_FAMILIES:
        if family in CHAT_FAMILIES and (tokenizer is None or not getattr(tokenizer, "chat_template", None)):
            continue
        if self_edit_prompt(family, passage, tokenizer) == prompt:
            return family
    return None


def question_prompt(question: str) -> str:
    """Closed-book QA prompt: the passage is deliberately absent."""
    return f"Question: {question.strip()}\nAnswer:"


QUESTION_PROMPTS: tuple[str, ...] = ("plain", "chat")
_CHAT_QUESTION = "Answer the question in a few words.\n\nQuestion: {question}"


def answer_prompt(question: str, form: str, tokenizer: Any = None) -> str:
    """The text a model continues to answer ``question`` closed-book.

    ``plain`` is :func:`question_prompt`, for base models. ``chat`` puts the question in a
    user message of the tokenizer's chat template, for instruct models: SmolLM2-Instruct
    ends its turn at once after a plain "Answer:" (82% of its answers were empty).
    """
    if form == "plain":
        return question_prompt(question)
    if form == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("knowledge.scoring.question_prompt 'chat' needs a tokenizer with a chat template "
                             "(an instruct model); use 'plain' otherwise")
        return tokenizer.apply_chat_template([{"role": "user", "content": _CHAT_QUESTION.format(
            question=question.strip())}], tokenize=False, add_generation_prompt=True)
    raise ValueError(f"unknown knowledge.scoring.question_prompt {form!r} (expected one of "
                     f"{', '.join(QUESTION_PROMPTS)})")

