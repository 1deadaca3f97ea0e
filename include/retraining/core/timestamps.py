"""Timestamps in the forms a collection stores them: BSON dates, ISO-8601 strings, epoch seconds or
milliseconds (``source.timestamp_type``).

Windows are queried in the stored form, so an index on the timestamp field keeps serving them: a
bound is converted into the stored form, a stored value back into a tz-aware UTC datetime.

ISO strings compare as strings, which is chronological only when every value has one layout and one
offset. The requirement is therefore: UTC (``Z``, ``+00:00`` or no offset, read as UTC) and the same
layout throughout (e.g. always ``2024-06-01T12:00:00.000Z``). ``IsoLayout`` is learned from one stored
value; ``IsoLayout.pattern`` finds the values that break it, so they are reported, not mis-windowed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

TimestampType = Literal["date", "iso_string", "epoch_seconds", "epoch_millis"]
TIMESTAMP_TYPES: tuple[str, ...] = ("date", "iso_string", "epoch_seconds", "epoch_millis")
# the BSON type a query's ``$type`` names for each form
BSON_TYPES = {"date": "date", "iso_string": "string", "epoch_seconds": "number", "epoch_millis": "number"}
# epoch numbers above this are milliseconds: 1e11 seconds is the year 5138, 1e11 ms is 1973
MILLIS_ABOVE = 1e11
ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?:(?P<sep>[T ])(?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<offset>Z|[+-]\d{2}:?\d{2})?$"
)
UTC_OFFSETS = ("", "Z", "+00:00", "+0000", "-00:00")


class TimestampError(ValueError):
    """A stored timestamp is not in the form ``source.timestamp_type`` declares."""


@dataclass(frozen=True)
class IsoLayout:
    """How a collection writes its ISO strings: date/time separator, fraction digits and UTC suffix."""

    separator: str = "T"  # "" for dates without a time
    fraction_digits: int = 0
    suffix: str = "Z"

    @classmethod
    def of(cls, value: str) -> IsoLayout:
        match = ISO.match(value)
        if not match:
            raise TimestampError(f"{value!r} is not an ISO-8601 timestamp like 2024-06-01T12:00:00Z")
        suffix = match["offset"] or ""
        if suffix not in UTC_OFFSETS:
            raise TimestampError(
                f"{value!r} has the offset {suffix}: ISO-string timestamps must be UTC (Z or +00:00) "
                "to window correctly"
            )
        return cls(match["sep"] or "", len(match["fraction"] or ""), suffix)

    def render(self, moment: datetime) -> str:
        """``moment`` in this layout, truncated to its precision: for a stored value s at that precision,
        s <= moment and s > moment compare as s <= render(moment) and s > render(moment)."""
        utc = moment.astimezone(UTC)
        if not self.separator:
            return utc.strftime("%Y-%m-%d") + self.suffix
        text = utc.strftime(f"%Y-%m-%d{self.separator}%H:%M:%S")
        if self.fraction_digits:
            text += "." + f"{utc.microsecond:06d}{'0' * 3}"[: self.fraction_digits]
        return text + self.suffix

    @property
    def pattern(self) -> str:
        """A regular expression matching exactly the values written in this layout."""
        time = "" if not self.separator else re.escape(self.separator) + r"\d{2}:\d{2}:\d{2}"
        fraction = rf"\.\d{{{self.fraction_digits}}}" if self.fraction_digits else ""
        return rf"^\d{{4}}-\d{{2}}-\d{{2}}{time}{fraction}{re.escape(self.suffix)}$"

    def describe(self) -> str:
        return self.render(datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC))


def to_stored(moment: datetime, timestamp_type: str, layout: IsoLayout | None = None) -> Any:
    """A window bound in the stored form (``layout`` for ISO strings)."""
    if moment.tzinfo is None:
        raise TimestampError(f"window bound {moment!r} has no time zone")
    if timestamp_type == "date":
        return moment
    if timestamp_type == "epoch_seconds":
        return moment.timestamp()
    if timestamp_type == "epoch_millis":
        return math.floor(moment.timestamp() * 1000)
    if timestamp_type == "iso_string":
        return (layout or IsoLayout()).render(moment)
    raise TimestampError(f"source.timestamp_type {timestamp_type!r} is not one of {list(TIMESTAMP_TYPES)}")


def from_stored(value: Any, timestamp_type: str) -> datetime:
    """A stored value as a tz-aware UTC datetime; a value of another form names the type it has."""
    if timestamp_type == "date" and isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if timestamp_type in ("epoch_seconds", "epoch_millis") and is_number(value):
        seconds = value / 1000 if timestamp_type == "epoch_millis" else value
        return datetime.fromtimestamp(seconds, UTC)
    if timestamp_type == "iso_string" and isinstance(value, str):
        IsoLayout.of(value)  # refuses non-UTC offsets and non-ISO text
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    found = stored_type(value)
    fix = f"set source.timestamp_type to {found!r}" if found else "point source.timestamp_field at a timestamp"
    raise TimestampError(f"{value!r} is not stored as the declared {timestamp_type}: {fix}")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def stored_type(value: Any) -> str | None:
    """The ``timestamp_type`` a stored value has, or None when it is no timestamp at all."""
    if isinstance(value, datetime):
        return "date"
    if is_number(value):
        return "epoch_millis" if abs(value) > MILLIS_ABOVE else "epoch_seconds"
    if isinstance(value, str) and ISO.match(value):
        return "iso_string"
    return None
