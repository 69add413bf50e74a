"""Turn server-chosen names into safe relative paths under an export destination.

A BPM system lets any user upload a file called ``../../etc/cron.d/x`` or ``CON``; the export must
land every file inside the destination, on every store (local disks incl. Windows shares, S3, GCS,
Azure), with names that stay the same from one run to the next so a re-run recognises its files.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_bpm_provider.exceptions import BpmConfigError

# Most file systems (ext4, NTFS, APFS) and the S3/GCS key segment limits people hit first.
MAX_COMPONENT_BYTES = 255
# A longer "extension" is more likely a sentence with a dot in it than a file type.
MAX_EXTENSION_CHARS = 16
FALLBACK_NAME = "unnamed"

DEFAULT_LAYOUT = "{process_id}_{definition_name}_({title})/{file_name}"
PLACEHOLDERS = frozenset(
    {"process_id", "definition", "definition_name", "title", "business_key", "group", "file_name"}
)

# Path separators of every platform plus the characters Windows refuses in a name, and the Unicode
# look-alikes of slashes that a later NFKC normalisation (some sync tools do it) would turn into "/".
_REPLACED = frozenset('/\\:*?"<>|') | frozenset("\u2215\u2044\u29f8\uff0f\uff3c")
# Bidirectional overrides make "evil\u202etxt.exe" display as "evilexe.txt".
_DROPPED_FORMAT = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)
_STRIPPED = ". \t\u00a0\u3000"


def _clean_chars(text: str) -> str:
    """NFC-normalise, replace separators with ``_`` and drop control characters."""
    out = []
    for char in unicodedata.normalize("NFC", text):
        if char in _REPLACED:
            out.append("_")
        elif char in _DROPPED_FORMAT or unicodedata.category(char) == "Cc":
            continue
        else:
            out.append(char)
    return "".join(out)


def _is_windows_reserved(name: str) -> bool:
    # Windows ignores the extension ("con.txt") and trailing spaces before it ("CON .txt").
    stem = name.split(".", 1)[0].rstrip(" ")
    return stem.upper() in _WINDOWS_RESERVED


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not ext or len(ext) > MAX_EXTENSION_CHARS or " " in ext:
        return name, ""
    return stem, "." + ext


def _cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that fits ``max_bytes`` in UTF-8, never half a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max(max_bytes, 0)].decode("utf-8", errors="ignore")


def _fit(stem: str, suffix: str, max_bytes: int) -> str:
    """``stem + suffix`` cut to ``max_bytes`` by shortening the stem; the suffix survives if it can."""
    room = max_bytes - len(suffix.encode("utf-8"))
    if room < 1:
        return _cut_utf8(stem + suffix, max_bytes)
    cut = _cut_utf8(stem, room).rstrip(_STRIPPED)
    return (cut or FALLBACK_NAME[: max(room, 1)]) + suffix


def safe_component(name: Any, *, max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """Make ``name`` safe as one path component on every store; never empty, ``.`` or ``..``."""
    text = _clean_chars("" if name is None else str(name)).strip(_STRIPPED)
    if not text:
        return FALLBACK_NAME
    if _is_windows_reserved(text):
        text = "_" + text
    if len(text.encode("utf-8")) > max_bytes:
        stem, ext = _split_extension(text)
        text = _fit(stem, ext, max_bytes).strip(_STRIPPED) or FALLBACK_NAME
    return text


def _numbered(name: str, number: int) -> str:
    stem, ext = _split_extension(name)
    return _fit(stem, f" ({number}){ext}", MAX_COMPONENT_BYTES)


def _fold(name: str) -> str:
    # Case-insensitive stores (NTFS, APFS, SMB shares) would merge "A.txt" and "a.txt".
    return unicodedata.normalize("NFC", name).casefold()


@dataclass
class PathAllocator:
    """Hands out unique relative paths; the same input order always yields the same paths.

    Folders merge (two files of one process share their folder). A file name already taken in its
    folder, by a file or a folder, becomes ``name (2).ext``, ``name (3).ext``...; a folder whose name
    a file took is renamed the same way, consistently for every later path through it.
    """

    _files: dict[tuple[str, ...], set[str]] = field(default_factory=dict)
    _folders: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)

    def reserve(self, parts: Iterable[str]) -> None:
        """Keep a file path free for something else (the manifest)."""
        self.claim(parts)

    def claim(self, parts: Iterable[str]) -> tuple[str, ...]:
        *folders, name = list(parts)
        key: tuple[str, ...] = ()
        chosen: list[str] = []
        for folder in folders:
            folders_here = self._folders.setdefault(key, {})
            actual = folders_here.get(_fold(folder))
            if actual is None:
                actual = self._free_name(folder, key, folder=True)
                folders_here[_fold(folder)] = actual
                folders_here.setdefault(_fold(actual), actual)
            chosen.append(actual)
            key = (*key, _fold(actual))
        final = self._free_name(name, key, folder=False)
        self._files.setdefault(key, set()).add(_fold(final))
        return (*chosen, final)

    def _free_name(self, name: str, key: tuple[str, ...], *, folder: bool) -> str:
        files = self._files.get(key, set())
        folders = self._folders.get(key, {})
        candidate, number = name, 1
        while _fold(candidate) in files or (not folder and _fold(candidate) in folders):
            number += 1
            candidate = _numbered(name, number)
        return candidate


@dataclass(frozen=True)
class Layout:
    """A relative path template such as ``{process_id}_{definition_name}_({title})/{file_name}``.

    Placeholders name process and file attributes; each substituted value is made safe, then each
    ``/``-separated segment as a whole, so no value can add a folder level or climb out.
    """

    template: str
    segments: tuple[tuple[tuple[str, str | None], ...], ...]

    @classmethod
    def parse(cls, template: str) -> Layout:
        if not isinstance(template, str) or not template.strip():
            raise BpmConfigError(f"layout must be a non-empty string, got {template!r}")
        if template.startswith("/") or "\\" in template or re.match(r"^[A-Za-z]:", template):
            raise BpmConfigError(f"layout {template!r} must be a relative path with '/' separators")
        segments = []
        for raw in template.split("/"):
            parts = _parse_segment(raw, template)
            literal = "".join(text for text, _ in parts)
            if not any(name for _, name in parts) and literal.strip() in ("", ".", ".."):
                raise BpmConfigError(
                    f"layout {template!r} has an empty, '.' or '..' segment; every segment must name a folder"
                )
            segments.append(parts)
        if not any(name == "file_name" for _, name in segments[-1]):
            raise BpmConfigError(f"layout {template!r} must contain {{file_name}} in its last segment")
        return cls(template=template, segments=tuple(segments))

    def render(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        """The safe path components for one file; missing values render empty."""
        rendered = []
        for parts in self.segments:
            text = "".join(
                literal + (_clean_chars(_text(values.get(name))) if name else "") for literal, name in parts
            )
            rendered.append(safe_component(text))
        return tuple(rendered)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _parse_segment(raw: str, template: str) -> tuple[tuple[str, str | None], ...]:
    try:
        pieces = list(string.Formatter().parse(raw))
    except ValueError as exc:
        raise BpmConfigError(f"layout {template!r} is not a valid template: {exc}") from None
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in pieces:
        if name is not None and (name not in PLACEHOLDERS or spec or conversion):
            known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise BpmConfigError(f"layout {template!r} uses unknown placeholder {shown}; use one of: {known}")
        parts.append((literal, name))
    return tuple(parts)
