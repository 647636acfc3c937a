"""Progress bars for every long phase (a rate and an ETA), and log lines that do not run
into them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def progress_bar(total: int | None, desc: str, unit: str, initial: int = 0,
                 disable: bool = False, unit_scale: bool = False):
    """A tqdm bar on stderr, redrawn at most twice a second, whatever the step time
    (``unit_scale``: counts as 8.39M, for points)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable,
                dynamic_ncols=True, mininterval=0.5, miniters=1, smoothing=0.1,
                unit_scale=unit_scale, file=sys.stderr)


def tracked(items: Sequence[T], desc: str, unit: str) -> Iterator[T]:
    """``items`` one by one, with a bar (closed at the end of the loop)."""
    with progress_bar(len(items), desc, unit) as bar:
        for item in items:
            yield item
            bar.update(1)


class Tracker:
    """A progress callback ``advance(n, total)`` (``n`` more of ``total`` items done; the
    total may grow as work is found, e.g. a mesh extraction's narrow band) drawing one bar:
    ``with Tracker(desc, unit) as advance: library_call(..., progress=advance)``."""

    def __init__(self, desc: str, unit: str, unit_scale: bool = False):
        self.desc, self.unit, self.unit_scale, self.bar = desc, unit, unit_scale, None

    def __enter__(self) -> Tracker:
        return self

    def __call__(self, n: int, total: int) -> None:
        if self.bar is None:
            self.bar = progress_bar(total, self.desc, self.unit, unit_scale=self.unit_scale)
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
