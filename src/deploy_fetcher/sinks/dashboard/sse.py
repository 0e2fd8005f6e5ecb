"""A Server-Sent Events parser: bytes in, events out, following the WHATWG "event stream" rules.

Pure and incremental, so it is tested alone and fed whatever chunks the network delivers:

* lines end in CRLF, LF or CR — a CRLF split across two chunks is still one line end;
* a line starting with ``:`` is a comment (the dashboard's ``: ping``), counted but never dispatched;
* ``field: value`` drops one space after the colon; a line without a colon is a field with an empty
  value; unknown fields are ignored;
* ``data`` lines accumulate, joined by LF; a blank line dispatches the event, unless no ``data``
  came, in which case only the type is reset;
* ``id`` sets the last event id (kept across events, ignored when it contains NUL); ``retry`` with
  only ASCII digits sets the reconnection delay;
* a leading UTF-8 byte order mark is dropped, and an event cut off by the end of the stream is lost.

Lines are bounded (:data:`MAX_LINE_BYTES`): a peer that never sends a line end cannot make the
parser hold an unbounded buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_LINE_BYTES", "SseError", "SseEvent", "SseParser"]

#: Longer lines are refused; the dashboard's events are a few hundred bytes.
MAX_LINE_BYTES: Final = 64 * 1024
_BOM: Final = "\ufeff"
_LF: Final = 0x0A
_CR: Final = 0x0D


class SseError(ValueError):
    """The stream broke the framing rules in a way that cannot be recovered (an over-long line)."""


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its type (``message`` by default), data, and the last event id."""

    type: str
    data: str
    id: str | None = None


class SseParser:
    """Feed it chunks of bytes with :meth:`feed`; it returns the events they complete."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        """The id of the most recent ``id`` field (what a reconnect sends as ``Last-Event-ID``)."""
        self.retry_ms: int | None = None
        """The last reconnection delay the server asked for, in milliseconds."""
        self.comments = 0
        """Comment lines seen (keep-alive pings)."""
        self._pending = b""
        self._after_cr = False
        self._started = False
        self._type = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Consume ``chunk``; return the events completed by it, in order."""
        events: list[SseEvent] = []
        buffer = self._pending + chunk
        start = 0
        index = 0
        while index < len(buffer):
            byte = buffer[index]
            if byte == _LF and self._after_cr and index == start:  # the LF of a CRLF
                self._after_cr = False
                start = index = index + 1
                continue
            self._after_cr = False
            if byte in (_LF, _CR):
                self._after_cr = byte == _CR
                event = self._line(buffer[start:index])
                if event is not None:
                    events.append(event)
                start = index + 1
            index += 1
        self._pending = buffer[start:]
        if len(self._pending) > MAX_LINE_BYTES:
            msg = f"an event stream line is longer than {MAX_LINE_BYTES} bytes"
            raise SseError(msg)
        return events

    def _line(self, raw: bytes) -> SseEvent | None:
        line = raw.decode("utf-8", errors="replace")
        if not self._started:
            self._started = True
            line = line.removeprefix(_BOM)
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event_type = self._data, self._type
        self._data, self._type = [], ""
        if not data:
            return None
        return SseEvent(type=event_type or "message", data="\n".join(data), id=self.last_event_id)
