"""The ``fieldfit`` command line (tyro): one subcommand per job.

Errors in input files or options are printed as one line (``fieldfit: error: ...``) with exit
code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
from importlib.metadata import version
from pathlib import Path

from .commands.collection import CollectionCommand
from .commands.demo import DemoCommand
from .commands.eval import EvalCommand
from .commands.image import ImageCommand
from .commands.mesh import MeshCommand
from .commands.nerf import NerfCommand
from .commands.process import ProcessCommand
from .commands.render import RenderCommand
from .commands.sdf import SdfCommand
from .commands.video import VideoCommand
from .commands.view import ViewCommand
from .errors import UserError
from .io import read_json
from .progress import BarSafeHandler

COMMANDS = {
    "image": ImageCommand,
    "video": VideoCommand,
    "sdf": SdfCommand,
    "mesh": MeshCommand,
    "nerf": NerfCommand,
    "process": ProcessCommand,
    "render": RenderCommand,
    "eval": EvalCommand,
    "demo": DemoCommand,
    "view": ViewCommand,
    "collection": CollectionCommand,
}

FIT_COMMANDS = ("image", "sdf", "nerf")

_BOX = re.compile(r"^[\s│╭╮╰╯─-]*|[\s│╭╮╰╯─-]*$")


def _condense_parse_error(text: str) -> str:
    """The message of tyro's boxed error: the block after the box title, on one line."""
    blocks: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = _BOX.sub("", raw)
        if line:
            blocks[-1].append(line)
        elif blocks[-1] and set(raw.strip()) <= set("│╭╮╰╯─-"):
            blocks.append([])
    blocks = [b for b in blocks if b and not b[0].startswith("usage:")]
    if not blocks:
        return "invalid command line (see --help)"
    message = " ".join(blocks[1] if len(blocks) > 1 else blocks[0])
    choice = _INVALID_CHOICE.match(message)
    if choice:  # "--field nope: ...", the form of every other bad-option error
        value, option, choices = choice.groups()
        return f"{option} {value}: not a choice; choose from {choices}"
    return message


_INVALID_CHOICE = re.compile(r"invalid choice '([^']*)' for argument '([^']*)'\. "
                             r"Expected one of \((.*)\)\.?$")


def _unwrap_docstrings() -> None:
    """Join the wrapped lines of option docstrings in the help: tyro keeps a line break before
    every indented continuation line because it removes single breaks before dedenting."""
    import inspect

    from tyro import _strings

    join = _strings.remove_single_line_breaks
    if getattr(join, "dedents", False):
        return

    def dedent_then_join(text: str) -> str:
        return join(inspect.cleandoc(text))

    dedent_then_join.dedents = True  # type: ignore[attr-defined]
    _strings.remove_single_line_breaks = dedent_then_join


def loaded_defaults(argv: list[str]) -> tuple[list[str], object | None]:
    """``argv`` without ``--load-config FILE``, and the command that FILE (a run's
    config.json) describes, whose values the other options then override (None: no file)."""
    if "--load-config" not in argv[1:]:
        return argv, None
    at = argv.index("--load-config")
    if at + 1 >= len(argv):
        raise UserError("--load-config: needs a run's config.json")
    path, rest = Path(argv[at + 1]), argv[:at] + argv[at + 2:]
    command = COMMANDS.get(rest[0]) if rest else None
    if not hasattr(command, "from_config"):
        raise UserError(f"--load-config: takes the fit commands {FIT_COMMANDS}")
    config = read_json(path / "config.json" if path.is_dir() else path)
    if not config:
        raise UserError(f"--load-config {path}: no such run config")
    try:
        return rest, command.from_config(config)
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"--load-config {path}: not a `fieldfit {rest[0]}` run config "
                        f"({err})") from None


def _parse(argv: list[str]):
    import tyro

    _unwrap_docstrings()
    debug = "--debug" in argv
    out, err = io.StringIO(), io.StringIO()
    try:
        argv, defaults = loaded_defaults(argv)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if defaults is not None:
                return tyro.cli(type(defaults), default=defaults, args=argv[1:],
                                prog=f"fieldfit {argv[0]}")
            return tyro.extras.subcommand_cli_from_dict(
                COMMANDS, prog="fieldfit", args=argv,
                description="fieldfit: fit neural fields to images, video, SDFs and posed "
                "photos; `fieldfit image|sdf|nerf --load-config RUN/config.json [options]` "
                "repeats a run's options with overrides.")
    except ValueError as error:  # a config's own validation (e.g. --steps -3)
        if debug:
            raise
        sys.stderr.write(f"fieldfit: error: {error}\n")
        raise SystemExit(2) from None
    except SystemExit as exit_:
        sys.stdout.write(out.getvalue())
        if exit_.code in (0, None) or debug:
            sys.stderr.write(err.getvalue())
        else:
            sys.stderr.write(f"fieldfit: error: {_condense_parse_error(err.getvalue())}\n")
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["--version"], ["-V"]):
        print(f"fieldfit {version('fieldfit')}")
        return 0
    handler = BarSafeHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("fieldfit: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    if os.environ.get("RANK", "0") != "0":  # torchrun's other ranks: warnings and errors only
        logging.getLogger("fieldfit").setLevel(logging.WARNING)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)
    try:
        command = _parse(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        command.run()
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: 128 + the signal's number
        return 128 + getattr(stop, "signum", 2)
    except (ValueError, OSError) as err:  # UserError, SceneError, ConfigError, I/O failures
        if getattr(command, "debug", False):
            raise
        message = " ".join(str(err).split())
        sys.stderr.write(f"fieldfit: error: {message}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
