from hypothesis import given, settings
from hypothesis import strategies as st

from sealflow.fewshot.grids import extract_grid, grid_shape, grid_to_text, grids_equal, parse_grid


def grids(max_side: int = 30):
    return st.integers(1, max_side).flatmap(
        lambda h: st.integers(1, max_side).flatmap(
            lambda w: st.lists(st.lists(st.integers(0, 9), min_size=w, max_size=w), min_size=h, max_size=h)
        )
    )


def test_render_is_one_row_per_line_without_separators():
    assert grid_to_text([[0, 1, 2, 0], [3, 3, 0, 1]]) == "0120\n3301"


@settings(max_examples=60, deadline=None)
@given(grids())
def test_parse_inverts_render(grid):
    assert parse_grid(grid_to_text(grid)) == grid
    assert extract_grid(grid_to_text(grid) + "\n\ninput:\n12\n") == grid


def test_parse_rejects_bad_text():
    for text in ["", "   \n", "01\n2", "0a\n12", "1 2\n3 4", "²1\n11", "1" * 31, "\n".join(["1"] * 31)]:
        assert parse_grid(text) is None, text
    assert parse_grid(None) is None  # type: ignore[arg-type]
    assert parse_grid("\n12\n34\n") == [[1, 2], [3, 4]]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parse_never_raises(text):
    parse_grid(text)
    extract_grid(text)


def test_shape_and_equality():
    assert grid_shape([[1, 2, 3], [4, 5, 6]]) == (2, 3)
    assert grids_equal([[1]], [[1]]) and not grids_equal([[1]], [[2]])
    assert not grids_equal(None, [[1]]) and not grids_equal(None, None)
