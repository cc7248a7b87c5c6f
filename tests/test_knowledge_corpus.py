"""The knowledge organism's pretraining corpus and tokenizer: what makes copying a passage possible."""

from __future__ import annotations

from pathlib import Path

import yaml

from sealflow.base_model import BuildSettings, train_tokenizer
from sealflow.knowledge.corpus import knowledge_corpus
from sealflow.worldgen import NAMES, SUBJECT_POOLS, generate_entries

ROOT = Path(__file__).resolve().parents[1]


def test_every_name_is_one_token_after_a_space_and_at_a_line_start_in_the_default_build():
    """A self-edit line starts with the passage's title as the passage's own title line does.

    If the line-initial form of a workflow subject were split into pieces (it never is the
    subject of a pretraining document), a self-edit could only copy its first piece.
    """
    build = BuildSettings.from_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["knowledge"]
                                      ["base_model"]["build"])
    corpus = knowledge_corpus(build.corpus_passages, 0)
    tokenizer = train_tokenizer(corpus, build.architecture, build.vocab_size)
    pieces = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    split = [name for name in NAMES if pieces(name) != 1 or pieces(" " + name) != 1]
    assert not split, f"{len(split)} names are split, e.g. {split[:5]}"
    # Each workflow subject starts some pretraining line (the name lists), so that form is trained too.
    data_subjects = set(SUBJECT_POOLS["data"])
    line_initial = {line.split()[0] for doc in corpus for line in doc.splitlines() if line.strip()}
    assert data_subjects <= line_initial



def test_every_explicit_line_starts_with_its_subject_so_a_faithful_list_is_a_chain_of_copies():
    """The tiny policy takes a line's subject from the start of the line before.

    A faithful line that opened with "In 1631," or "The flag of" broke that chain, and the
    sampled lines after it drifted to an invented entity; every explicit line (the faithful
    self-edit demonstrations and the knowledge documents are made of them) starts with the name.
    """
    for entry in generate_entries(40, 7) + generate_entries(40, 11, subjects="corpus"):
        title = entry.passage.title
        lines = entry.explicit_lines()
        assert len(lines) == len(entry.facts)
        assert all(line.split()[0] == title for line in lines), lines
        # Each line still carries its fact's answer, so it is a restatement, not a name alone.
        assert all(fact.answer.split()[-1] in line for fact, line in zip(entry.facts, lines)), lines
