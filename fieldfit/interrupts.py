"""Stopping a fit on Ctrl-C (SIGINT) or SIGTERM at a step boundary, so that the checkpoint
written on the way out holds a consistent state: model, optimiser and RNG after the same step.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("fieldfit")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run stopped on a signal; ``signum`` is the signal (exit status 128 + signum)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class StopSignals:
    """While entered, SIGINT and SIGTERM ask the loop to stop instead of raising.

    The first signal sets :attr:`signum`; the loop checks it between steps. A second one
    raises :class:`Interrupted` at once (the step in progress is abandoned, not saved), except
    while :attr:`saving` is set: then it waits for the save to finish. Outside the main thread
    (where Python delivers no signals) this does nothing.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.saving = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            log.warning("%s: stopping after this step and saving a checkpoint (again to stop "
                        "at once without saving)", name)
        elif self.saving:
            log.warning("%s: the checkpoint is being written; stopping when it is done", name)
        else:
            raise Interrupted(signum, f"{name} again: stopped without saving this step")
