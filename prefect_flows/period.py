"""The time range a batch run covers: parsing, the default previous hour, and its name in files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


def parse_utc(text: str) -> datetime:
    """Parse an ISO-8601 time; a time without offset is taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_utc(value: datetime) -> datetime:
    """Return `value` as an aware UTC datetime (naive values are taken as UTC, as pymongo returns them)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """A half-open UTC time range [start, end)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"period end {self.end.isoformat()} must be after its start {self.start.isoformat()}")

    @classmethod
    def previous_hour(cls, now: datetime | None = None) -> Period:
        """Return the last full clock hour before `now` (default: the current time)."""
        end = as_utc(now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
        return cls(end - timedelta(hours=1), end)

    @classmethod
    def resolve(cls, start: datetime | str | None, end: datetime | str | None, now: datetime | None = None) -> Period:
        """Return the period from optional bounds: both missing -> previous hour; one missing -> one hour span."""
        start = parse_utc(start) if isinstance(start, str) else start
        end = parse_utc(end) if isinstance(end, str) else end
        if start is None and end is None:
            return cls.previous_hour(now)
        if start is None:
            return cls(as_utc(end) - timedelta(hours=1), end)
        if end is None:
            return cls(start, as_utc(start) + timedelta(hours=1))
        return cls(start, end)

    @classmethod
    def last_minutes(cls, minutes: float, now: datetime | None = None) -> Period:
        """Return the `minutes` before `now` (to the second): "run the flow now" over what just happened."""
        if minutes <= 0:
            raise ValueError(f"--last-minutes must be > 0, got {minutes:g}")
        end = as_utc(now or datetime.now(UTC)).replace(microsecond=0)
        return cls(end - timedelta(minutes=minutes), end)

    @property
    def slug(self) -> str:
        """Return the period as it appears in file names, e.g. 20260126T100000Z-20260126T110000Z."""
        return f"{self.start:%Y%m%dT%H%M%SZ}-{self.end:%Y%m%dT%H%M%SZ}"
