"""A browser viewer for fieldfit runs (viser, the optional extra ``fieldfit[viewer]``).

viser is imported only when a viewer is started; without it, starting one raises a one-line
:class:`~fieldfit.errors.UserError` that says how to install it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .. import distributed
from ..errors import UserError

log = logging.getLogger("fieldfit")

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def require_viser() -> ModuleType:
    """The viser module, or a UserError saying how to install it."""
    try:
        import viser
    except ImportError:
        raise UserError("the viewer needs viser: pip install 'fieldfit[viewer]' (or pip "
                        "install viser)") from None
    return viser


@dataclass
class ServerOptions:
    """Where the viewer is served."""

    port: int = 7007
    """viewer port"""
    host: str = "127.0.0.1"
    """viewer address; 0.0.0.0 serves every network interface (anyone who can reach this
    machine can watch and pause the fit)"""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise UserError(f"--port {self.port}: must be in 1..65535")

    def warn_if_public(self) -> None:
        if self.host not in LOOPBACK:
            log.warning("viewer: --host %s serves every client that can reach this machine; "
                        "there is no authentication", self.host)


@dataclass
class ViewerOptions(ServerOptions):
    """The live viewer of `fieldfit nerf --viewer`."""

    viewer: bool = False
    """serve a live viewer at http://HOST:PORT while training (needs pip install
    'fieldfit[viewer]')"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.viewer:
            require_viser()  # fail before the scene is loaded

    @contextlib.contextmanager
    def live(self, task, out: Path) -> Iterator[tuple]:
        """The trainer hooks of a live viewer of ``task`` (a NerfTask) writing into ``out``,
        served while the block runs (no hooks when ``--viewer`` is off, nor on torchrun's
        ranks other than 0)."""
        if not self.viewer or not distributed.is_main():
            yield ()
            return
        from .server import SceneViewer

        viewer = SceneViewer(task, Path(out), self, live=True)
        try:
            yield (viewer.on_step,)
        finally:
            viewer.stop()
            log.info("viewer stopped; `fieldfit view %s` shows the finished run", out)
