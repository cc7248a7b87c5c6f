import random

from sealflow.fewshot.augment import GEOMETRIC, upscale
from sealflow.fewshot.grids import extract_grid, parse_grid
from sealflow.fewshot.prompts import self_edit_prompt, ttt_completion, ttt_prompt
from sealflow.fewshot.toolconfig import ToolConfig, parse_self_edit
from sealflow.fewshot.tasks import ArcTask, Example
from sealflow.fewshot.ttt_data import TTTExample, build_ttt_examples
from sealflow.fewshot.voting import augmented_views, vote

ALL_ON = ToolConfig(True, True, True, True, "all_tokens", 1e-3, 2)
ALL_OFF = ToolConfig(False, False, False, False, "output_tokens", 1e-3, 2)


def make_task(test_input, n_train: int = 3) -> ArcTask:
    rng = random.Random(3)
    demos = []
    for _ in range(n_train):
        grid = [[rng.randrange(4) for _ in range(3)] for _ in range(3)]
        demos.append(Example(grid, GEOMETRIC["flip_h"](grid)))
    return ArcTask("t", demos, [Example(test_input, GEOMETRIC["flip_h"](test_input))])


def test_ttt_prompt_layout():
    demo = Example([[1, 2]], [[2, 1]])
    prompt = ttt_prompt([demo], [[3, 4]])
    assert prompt == "input:\n12\noutput:\n21\n\ninput:\n34\noutput:\n"
    completion = ttt_completion([[4, 3]])
    assert completion == "43\n" and parse_grid(completion) == [[4, 3]]
    assert extract_grid(completion + "\ninput:\n11") == [[4, 3]]


def test_self_edit_prompt_shows_demonstrations_and_tools():
    task = make_task([[1, 1], [2, 2]])
    prompt = self_edit_prompt(task)
    for name in ("use_basic_augmentations", "use_size_augmentations", "use_chain_augmentations",
                 "use_repeat_augmentations", "train_using_all_tokens", "train_using_output_tokens",
                 "learning_rate", "num_train_epochs"):
        assert name in prompt
    assert prompt.index("input:") < prompt.index("use_basic")
    assert "11\n22" not in prompt  # the test input is not shown
    assert len(prompt) < 1200
    assert parse_self_edit(prompt).reason == "invalid_json"  # the template itself is not a config


def test_counts_without_augmentation():
    task = make_task([[1]], n_train=3)
    examples = build_ttt_examples(task, ALL_OFF, rng=0, n_max=1000)
    # 3 leave-one-out + 6 leave-two-out tasks, plus reshuffled copies that differ
    assert 9 <= len(examples) <= 18
    assert all(isinstance(e, TTTExample) and e.prompt.endswith("output:\n") for e in examples)


def test_n_max_and_max_chars():
    task = make_task([[1]], n_train=4)
    assert len(build_ttt_examples(task, ALL_ON, rng=1, n_max=25)) == 25
    short = build_ttt_examples(task, ALL_ON, rng=1, n_max=200, max_chars=150)
    assert short and all(len(e.prompt) + len(e.completion) <= 150 for e in short)


def test_test_input_never_used_for_training():
    a = build_ttt_examples(make_task([[5] * 29] * 29), ALL_ON, rng=4, n_max=60)
    b = build_ttt_examples(make_task([[6, 7]]), ALL_ON, rng=4, n_max=60)
    assert a == b
    assert not any("5" * 29 in e.prompt + e.completion for e in a)


def test_vote_inverts_views_and_breaks_ties_early():
    answer = [[1, 2, 3], [4, 5, 6]]
    views = [GEOMETRIC[k] for k in ("identity", "rot90", "transpose", "flip_v")]
    predictions = [(t(answer), t.inverse) for t in views[:3]] + [(None, views[3].inverse)]
    assert vote(predictions) == (answer, 3)
    assert vote([(None, GEOMETRIC["identity"].inverse)]) == (None, 0)
    tie = [([[1]], GEOMETRIC["identity"].inverse), ([[2]], GEOMETRIC["identity"].inverse)]
    assert vote(tie) == ([[1]], 1)
    # an answer whose inverse does not apply is not counted
    assert vote([([[1, 2, 3]], upscale(2).inverse), ([[7]], GEOMETRIC["identity"].inverse)]) == ([[7]], 1)


def test_augmented_views_round_trip_the_answer():
    task = make_task([[1, 2], [3, 0]])
    views = augmented_views(task)
    assert len(views) == 8
    for view, inverse in views:
        assert inverse(view.test[0].output) == task.test[0].output
        assert inverse(view.test[0].input) == task.test[0].input
