"""Progress bars for every long phase (a rate and an ETA), and log lines that do not run
into them."""

from __future__ import annotations

import logging
import sys


def progress_bar(total: int | None, desc: str, unit: str, initial: int = 0,
                 disable: bool = False):
    """A tqdm bar on stderr, redrawn at most twice a second, whatever the step time."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable,
                dynamic_ncols=True, mininterval=0.5, miniters=1, smoothing=0.1, file=sys.stderr)


class Tracker:
    """A progress callback ``advance(n, total)`` (``n`` more of ``total`` items done; the
    total may grow as work is found, e.g. a mesh extraction's narrow band) drawing one bar:
    ``with Tracker(desc, unit) as advance: library_call(..., progress=advance)``."""

    def __init__(self, desc: str, unit: str):
        self.desc, self.unit, self.bar = desc, unit, None

    def __enter__(self) -> Tracker:
        return self

    def __call__(self, n: int, total: int) -> None:
        if self.bar is None:
            self.bar = progress_bar(total, self.desc, self.unit)
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


class BarSafeHandler(logging.StreamHandler):
    """Writes log records through ``tqdm.write``, which lifts any open bar off the line."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001  (logging must not raise)
            self.handleError(record)
