import pytest

from airflow_bpm_provider.hooks.paging import PageGuard


def test_new_pages_pass():
    guard = PageGuard()
    assert guard.problem(["1", "2"]) is None
    assert guard.problem(["3", "4"]) is None
    assert guard.pages == 2


def test_a_repeated_page_is_named():
    guard = PageGuard()
    assert guard.problem([1, 2]) is None
    assert guard.problem(["1", "2"]) == "page 2 repeats the items of page 1: the server ignores paging"


def test_an_empty_page_is_not_a_repeat():
    guard = PageGuard()
    assert guard.problem([]) is None
    assert guard.problem([]) is None


def test_max_pages_is_a_bound():
    guard = PageGuard(max_pages=2)
    assert guard.problem(["a"]) is None
    assert guard.problem(["b"]) is None
    assert guard.problem(["c"]) == "more than 2 pages: the server does not stop paging"


def test_max_pages_must_be_positive():
    with pytest.raises(ValueError, match="max_pages"):
        PageGuard(max_pages=0)
