"""Singer messages out, each one whole: a stop signal never cuts a line in two.

The SDK ends a run on SIGTERM or SIGINT from inside its signal handler, wherever the main thread
is. When a loader is behind, that is in the middle of writing a message to a full pipe: the line
is cut, and the final STATE glued to it is lost. Here a signal that arrives while a message is
being written waits for the end of that message; one that arrives elsewhere stops the run at
once. Either way `Stopped` unwinds the run (it is no `Exception`, so nothing on the way takes it
for a failure to report), and the tap writes its final STATE and exits 128 + the signal's number.

Each message goes out with `os.write` until every byte is written: Python's buffered stdout
drops the rest of a write that a signal cut short, even when the handler only takes note.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from singer_sdk.contrib.msgspec import MsgSpecWriter

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if TYPE_CHECKING:
    from types import FrameType

    from singer_sdk.singerlib import Message


class Stopped(BaseException):
    """The run was asked to stop by a signal (SIGTERM, SIGINT)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by this signal: 143, 130."""
        return 128 + self.signum


class _StopSignals:
    """The process's stop signals, held back while a message is being written."""

    def __init__(self) -> None:
        self._writing = False
        self._pending: int | None = None
        self._stopping = False

    @contextlib.contextmanager
    def handled(self) -> Iterator[None]:
        """SIGTERM and SIGINT stop the run, between messages (in the main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, self._handle) for signum in _SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def started_writing(self) -> None:
        """A message is being written: a stop waits until `done_writing`."""
        self._writing = True

    def done_writing(self) -> None:
        """The message is out: a stop that came meanwhile stops the run now."""
        self._writing = False
        if self._pending is not None:
            signum, self._pending = self._pending, None
            raise Stopped(signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            # Asked again while stopping (the final STATE may be blocked behind a stalled
            # loader): end now, as a second Ctrl-C ends most programs.
            os._exit(128 + signum)
        self._stopping = True
        if self._writing:
            self._pending = signum
            return
        raise Stopped(signum)


_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: One per process: signals are.
STOP_SIGNALS = _StopSignals()


class WholeMessageWriter(MsgSpecWriter):
    """The SDK's fastest writer, whose messages a stop signal never cuts."""

    _stdout: object = None
    _descriptor: int | None = None

    @override
    def write_message(self, message: Message) -> None:
        """Write a message whole, even when a stop signal arrives meanwhile."""
        line = self.format_message(message)
        STOP_SIGNALS.started_writing()
        try:
            descriptor = self._stdout_descriptor()
            if descriptor is None:  # stdout in memory (a test's): nothing to cut
                sys.stdout.buffer.write(line)
            else:
                sys.stdout.flush()  # whatever went through sys.stdout before goes first
                # The line lives in the SDK's reused buffer: let go of it before the next one.
                with memoryview(line) as view:
                    written = 0
                    while written < len(view):
                        written += os.write(descriptor, view[written:])
        finally:
            STOP_SIGNALS.done_writing()

    def _stdout_descriptor(self) -> int | None:
        """The file descriptor of `sys.stdout`, looked up again only when stdout is replaced."""
        if sys.stdout is not self._stdout:
            self._stdout = sys.stdout
            try:
                self._descriptor = sys.stdout.fileno()
            except (AttributeError, OSError, io.UnsupportedOperation):
                self._descriptor = None
        return self._descriptor
