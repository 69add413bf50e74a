"""Server-chosen names become safe, stable path components that never leave the destination."""

from __future__ import annotations

import posixpath

import pytest

from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.transfer.naming import (
    DEFAULT_LAYOUT,
    MAX_COMPONENT_BYTES,
    Layout,
    PathAllocator,
    safe_component,
)


@pytest.mark.parametrize(
    ("hostile", "expected"),
    [
        ("../x", "_x"),
        ("/etc/passwd", "_etc_passwd"),
        ("..\\..\\boot.ini", "_.._boot.ini"),
        ("a\x00b", "ab"),
        ("line\nbreak\r\t.txt", "linebreak.txt"),
        ("C:evil.txt", "C_evil.txt"),
        ('what?<>|*".txt', "what______.txt"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("aux", "_aux"),
        ("Lpt9.tar.gz", "_Lpt9.tar.gz"),
        ("CON .txt", "_CON .txt"),
        ("COM10", "COM10"),
        ("conout$.log", "_conout$.log"),
        ("console.txt", "console.txt"),
        ("", "unnamed"),
        (".", "unnamed"),
        ("..", "unnamed"),
        ("...", "unnamed"),
        ("  . ", "unnamed"),
        (".hidden", "hidden"),
        ("trailing. . ", "trailing"),
        (None, "unnamed"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("fullwidth\uff0fslash", "fullwidth_slash"),
        ("README.txt", "README.txt"),
        ("ques-kun-01.png", "ques-kun-01.png"),
    ],
)
def test_safe_component(hostile, expected):
    assert safe_component(hostile) == expected


def test_names_are_nfc_normalised():
    decomposed = "Cafe\u0301.txt"  # e + combining acute accent
    assert safe_component(decomposed) == "Caf\u00e9.txt"


@pytest.mark.parametrize("char", ["\u3042", "\u00e9", "\U0001f600", "a"])
def test_long_names_are_cut_to_255_bytes_keeping_the_extension(char):
    name = char * 300 + ".pdf"
    safe = safe_component(name)
    encoded = safe.encode("utf-8")
    assert len(encoded) <= MAX_COMPONENT_BYTES
    assert len(encoded) > MAX_COMPONENT_BYTES - len(char.encode("utf-8"))  # as long as it can be
    assert safe.endswith(".pdf")
    assert set(safe[: -len(".pdf")]) == {char}  # no half character, no replacement char


def test_a_long_name_without_an_extension_is_cut_too():
    safe = safe_component("\u3042" * 300)
    assert len(safe.encode("utf-8")) <= MAX_COMPONENT_BYTES
    assert safe == "\u3042" * (MAX_COMPONENT_BYTES // 3)


def test_an_overlong_extension_is_not_kept_whole():
    safe = safe_component("x." + "y" * 400)
    assert len(safe.encode("utf-8")) <= MAX_COMPONENT_BYTES
    assert safe.startswith("x.yyy")


def test_duplicates_in_one_folder_get_numbers_case_insensitively():
    allocator = PathAllocator()
    claimed = [allocator.claim(["p1", name]) for name in ["a.txt", "A.TXT", "a.txt", "b", "B", "a (2).txt"]]
    assert claimed == [
        ("p1", "a.txt"),
        ("p1", "A (2).TXT"),
        ("p1", "a (3).txt"),
        ("p1", "b"),
        ("p1", "B (2)"),
        ("p1", "a (2) (2).txt"),
    ]


def test_same_name_in_different_folders_is_fine():
    allocator = PathAllocator()
    assert allocator.claim(["p1", "a.txt"]) == ("p1", "a.txt")
    assert allocator.claim(["p2", "a.txt"]) == ("p2", "a.txt")
    # P1 is p1 on NTFS: the folder keeps its first spelling, so case-sensitive stores agree
    assert allocator.claim(["P1", "a.txt"]) == ("p1", "a (2).txt")


def test_allocation_is_deterministic_for_a_stable_input_order():
    names = [["d", n] for n in ["x.txt", "X.txt", "y", "x.txt", "Y"]]
    first = [PathAllocator().claim(n) for n in names]  # fresh allocator each: no clash at all
    a, b = PathAllocator(), PathAllocator()
    assert [a.claim(n) for n in names] == [b.claim(n) for n in names]
    assert first == [("d", n[1]) for n in names]


def test_a_numbered_name_still_fits_255_bytes():
    allocator = PathAllocator()
    long_name = "\u3042" * 84 + ".txt"  # 252 + 4 bytes → cut to fit first
    safe = safe_component(long_name)
    first = allocator.claim(["d", safe])
    second = allocator.claim(["d", safe])
    assert first != second
    assert len(second[1].encode("utf-8")) <= MAX_COMPONENT_BYTES
    assert second[1].endswith(" (2).txt")


def test_a_reserved_name_cannot_be_taken_and_files_do_not_take_folder_names():
    allocator = PathAllocator()
    allocator.reserve(["manifest.json"])
    assert allocator.claim(["manifest.json"]) == ("manifest (2).json",)
    assert allocator.claim(["x", "f.txt"]) == ("x", "f.txt")
    assert allocator.claim(["x"]) == ("x (2)",)  # a file named like the folder x


def test_a_folder_named_like_a_file_is_renamed_consistently():
    allocator = PathAllocator()
    assert allocator.claim(["report"]) == ("report",)
    first = allocator.claim(["report", "a.txt"])
    second = allocator.claim(["report", "b.txt"])
    assert first == ("report (2)", "a.txt")
    assert second == ("report (2)", "b.txt")


def test_default_layout_renders_like_the_questetra_script():
    layout = Layout.parse(DEFAULT_LAYOUT)
    values = {
        "process_id": "183",
        "definition_name": "For test: file download",
        "title": "Test",
        "file_name": "README.txt",
    }
    assert layout.render(values) == ("183_For test_ file download_(Test)", "README.txt")


@pytest.mark.parametrize(
    "title",
    ["../../..", "/etc", "..", "a/../../b", "\\..\\..", "x\x00/..", "C:\\Windows"],
)
def test_a_title_cannot_climb_out_or_add_levels(title):
    layout = Layout.parse("{title}/{file_name}")
    parts = layout.render({"title": title, "file_name": "f.txt"})
    assert len(parts) == 2
    joined = posixpath.join("/dest", *parts)
    assert posixpath.normpath(joined).startswith("/dest/")
    assert all(part not in ("", ".", "..") and "/" not in part and "\\" not in part for part in parts)


@pytest.mark.parametrize("definition_name", ["..", "../..", "/", "CON", ""])
def test_a_definition_name_cannot_escape_either(definition_name):
    layout = Layout.parse("{definition_name}/{group}/{file_name}")
    parts = layout.render({"definition_name": definition_name, "group": None, "file_name": "../../x"})
    assert len(parts) == 3
    assert parts[1] == "unnamed"
    assert parts[2] == "_.._x"
    assert posixpath.normpath(posixpath.join("/dest", *parts)).startswith("/dest/")
    assert parts[0] not in ("..", ".", "", "CON")


def test_every_placeholder_renders():
    layout = Layout.parse(
        "{definition}-{business_key}/{group}/{process_id} {definition_name} {title}/{file_name}"
    )
    parts = layout.render(
        {
            "process_id": 7,
            "definition": "exp",
            "definition_name": "Expense",
            "title": "Trip",
            "business_key": "INV-1",
            "group": "Receipts",
            "file_name": "r.pdf",
        }
    )
    assert parts == ("exp-INV-1", "Receipts", "7 Expense Trip", "r.pdf")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{process_id}/{filename}", "unknown placeholder {filename}"),
        ("{process_id}/{file_name.__class__}", "unknown placeholder"),
        ("{file_name!r}", "unknown placeholder {file_name!r}"),
        ("{file_name:>10}", "unknown placeholder"),
        ("{}/{file_name}", "unknown placeholder {}"),
        ("/abs/{file_name}", "relative path"),
        ("C:/x/{file_name}", "relative path"),
        ("a\\{file_name}", "relative path"),
        ("../{file_name}", "'..'"),
        ("a//{file_name}", "empty"),
        ("./{file_name}", "'.'"),
        ("{process_id}", "{file_name}"),
        ("{file_name}/x", "{file_name}"),
        ("{process_id/{file_name}", "not a valid template"),
        ("", "non-empty"),
    ],
)
def test_bad_layouts_fail_clearly(template, message):
    with pytest.raises(BpmConfigError) as info:
        Layout.parse(template)
    assert message in str(info.value)
    if "placeholder" in message:
        assert "{file_name}" in str(info.value)  # the error lists what is allowed
