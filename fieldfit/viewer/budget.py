"""Progressive rendering under a CPU budget: which resolution to render next, and how long to
rest afterwards so that a fit running beside the viewer keeps most of its speed.

Pure logic (no viser, no torch): the render loop asks :meth:`FrameBudget.next_height` for the
image height of the next frame and reports each frame's cost with :meth:`FrameBudget.record`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FrameBudget:
    """Chooses frame heights from the measured cost per pixel.

    While the camera moves, frames are as large as fit in ``moving_seconds``; once it has been
    still for ``settle_seconds``, each frame doubles the height until ``full_height``. After a
    frame that took ``t`` seconds the render loop rests ``t * (1 - share) / share``, so it uses
    at most ``share`` of the wall time; ``share = 1`` never rests (nothing else is running).
    """

    full_height: int
    """height of the sharpest frame (pixels)"""
    share: float = 0.15
    """largest fraction of wall time spent rendering while a fit runs"""
    moving_seconds: float = 0.08
    """target cost of a frame while the camera moves"""
    settle_seconds: float = 0.25
    """the camera counts as still after this long without a change"""
    min_height: int = 16
    seconds_per_pixel: float = 2e-5
    """running estimate of the cost of one pixel (updated by :meth:`record`)"""
    smoothing: float = 0.5
    """weight of the newest frame in the running estimate"""
    rendered_seconds: float = 0.0
    """total time of the frames recorded so far"""

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"share {self.share}: must be in (0, 1]")
        if self.full_height < 1 or self.min_height < 1:
            raise ValueError("full_height and min_height must be >= 1")

    @staticmethod
    def pixels(height: int, aspect: float) -> int:
        """Pixels of a frame ``height`` high with ``aspect`` = width / height."""
        return height * max(round(height * aspect), 1)

    def moving_height(self, aspect: float) -> int:
        """The largest height whose predicted cost is within ``moving_seconds``."""
        pixels = self.moving_seconds / self.seconds_per_pixel
        height = int((pixels / aspect) ** 0.5)
        return max(min(height, self.full_height), min(self.min_height, self.full_height))

    def next_height(self, still_for: float, last_height: int | None, aspect: float) -> int:
        """Height of the next frame, given how long the camera has been still (seconds) and
        the height of the last frame of this view (None: the view changed)."""
        moving = self.moving_height(aspect)
        if last_height is None or still_for < self.settle_seconds:
            return moving
        return min(max(2 * last_height, moving), self.full_height)

    def is_sharp(self, height: int | None) -> bool:
        """Whether a frame of ``height`` is the sharpest this budget renders."""
        return height is not None and height >= self.full_height

    def record(self, height: int, aspect: float, seconds: float) -> None:
        """Update the cost estimate with a frame of ``height`` that took ``seconds``."""
        self.rendered_seconds += seconds
        per_pixel = max(seconds, 1e-6) / self.pixels(height, aspect)
        a = self.smoothing
        self.seconds_per_pixel = a * per_pixel + (1 - a) * self.seconds_per_pixel

    def rest_after(self, seconds: float, share: float | None = None) -> float:
        """Seconds to rest after a frame that took ``seconds`` (``share`` overrides the
        budget's, e.g. 1 while the fit is paused)."""
        share = self.share if share is None else share
        return seconds * (1.0 - share) / share
