"""The build-time copy probe: does a self-edit restate its own passage's values, or invent them?"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from sealflow.knowledge.copy_probe import PROBE_SEED, copy_statistics
from sealflow.knowledge.corpus import CORPUS_SEED_OFFSET
from sealflow.worldgen import generate_entries

ENTRIES = generate_entries(6, 31)


def test_faithful_lines_copy_every_value_and_lines_about_another_passage_copy_none():
    passages = [e.passage for e in ENTRIES]
    faithful = copy_statistics(passages, [["\n".join(e.explicit_lines())] for e in ENTRIES])
    assert faithful.passages == 6 and faithful.lines == sum(len(e.explicit_lines()) for e in ENTRIES)
    assert faithful.subject_first == 1.0
    assert faithful.value_copied >= 0.9
    assert faithful.faithfulness >= 0.6

    # The same lines written about the next passage: its subject, someone else's values.
    swapped = []
    for entry, other in zip(ENTRIES, ENTRIES[1:] + ENTRIES[:1]):
        lines = [line.replace(other.passage.title, entry.passage.title, 1) for line in other.explicit_lines()]
        swapped.append(["\n".join(lines)])
    invented = copy_statistics(passages, swapped)
    assert invented.subject_first == 1.0
    assert invented.value_copied <= 0.2 < faithful.value_copied - 0.5
    assert invented.faithfulness < faithful.faithfulness


def test_each_self_edit_is_measured_against_its_own_passage():
    passages = [e.passage for e in ENTRIES[:2]]
    edits = ["\n".join(e.explicit_lines()) for e in ENTRIES[:2]]
    right = copy_statistics(passages, [[edits[0]], [edits[1]]])
    crossed = copy_statistics(passages, [[edits[1]], [edits[0]]])
    assert right.value_copied > crossed.value_copied + 0.5
    with pytest.raises(ValueError, match="2 passages but 1"):
        copy_statistics(passages, [[edits[0]]])


def test_the_probe_passages_are_none_of_the_workflow_data_or_corpus_worlds():
    probe = {e.passage.context for e in generate_entries(20, PROBE_SEED)}
    for seed in range(12):
        assert not probe & {e.passage.context for e in generate_entries(60, seed)}
    assert PROBE_SEED < CORPUS_SEED_OFFSET


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.text(max_size=200), max_size=3), min_size=3, max_size=3))
def test_any_model_output_gives_shares_between_zero_and_one(outputs):
    stats = copy_statistics([e.passage for e in ENTRIES[:3]], outputs)
    assert stats.lines >= 0
    for share in (stats.subject_first, stats.value_copied, stats.faithfulness):
        assert 0.0 <= share <= 1.0
