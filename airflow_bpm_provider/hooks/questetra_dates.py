"""Date and time text as the Questetra Workflow API reads and writes it.

The API answers with ``2010-08-18T14:03:16+0900`` and takes wall-clock text without a zone
(``2013-01-01`` or ``2013-01-01 09:00``) that the server reads in the API user's time zone. An
aware datetime is therefore converted to the connection's ``timezone`` extra when one is set;
otherwise its own wall-clock time is sent unchanged.
"""

from __future__ import annotations

import re
from datetime import date, datetime, tzinfo

MINUTE_FORMAT = "%Y-%m-%d %H:%M"
_MINUTE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")


def parse_api_datetime(value: object) -> datetime | None:
    """``"2010-08-18T14:03:16+0900"`` → an aware datetime; ``None`` and ``""`` → ``None``."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        # Python 3.11 reads "+0900" offsets too; strptime (ten times slower per row, which a
        # listing of 50,000 processes feels) is left for what it alone accepts.
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for pattern in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"):
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def wall_clock(value: datetime, tz: tzinfo | None) -> datetime:
    if tz is not None and value.tzinfo is not None:
        return value.astimezone(tz)
    return value


def format_minute(value: datetime, tz: tzinfo | None = None) -> str:
    """``YYYY-MM-DD HH:MM`` (seconds dropped: the API has minute precision)."""
    return wall_clock(value, tz).strftime(MINUTE_FORMAT)


def format_criteria_time(value: object, tz: tzinfo | None = None) -> str:
    """A criteria date bound: datetimes to the minute, dates as ``YYYY-MM-DD``, text unchanged."""
    if isinstance(value, datetime):
        return format_minute(value, tz)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def normalize_minute_text(text: str, tz: tzinfo | None = None) -> str | None:
    """``"2024-05-01 09:30"`` as is; ISO text (``2024-05-01T09:30:00``) converted; else ``None``."""
    text = text.strip()
    if _MINUTE_TEXT.match(text):
        return text
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if "T" not in text and " " not in text:
        return None  # a bare date has no time of day to send
    return format_minute(parsed, tz)
