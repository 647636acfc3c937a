"""Every option of every command says what it does and which values it takes, once."""

from __future__ import annotations

import re

import pytest
from fieldfit.fields import field_names
from fieldfit.losses import loss_names

from fieldfit.cli import COMMANDS, main

SUBCOMMANDS = {"collection": ["fit", "classify"]}
COMMAND_LINES = [[name, *([sub] if sub else [])] for name in COMMANDS
                 for sub in SUBCOMMANDS.get(name, [None])]

FREE_FORM = {"--host"}
"""string options whose value is free text (an address), not one of a set"""
LISTED = {"--loss": loss_names(), "--device": ["auto", "cpu", "cuda", "cuda:N"],
          "--path": ["turntable", "test", "spiral", "orbit", "interpolate", "FILE.json"]}
"""string options and the values their help must name"""

OPTION = re.compile(r"^  (--?[a-zA-Z][-\w.]*(?:, --?[a-zA-Z][-\w.]*)*)"
                    r"(?: (\S+(?: \S+)*?))?(?:\s{2,}(.*))?$")


def options(capsys, argv: list[str]) -> dict[str, tuple[str, str]]:
    """option -> (metavar, help text) from ``fieldfit ARGV --help``."""
    assert main([*argv, "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    found: dict[str, list] = {}
    current = None
    for raw in lines:
        line = raw.rstrip().rstrip("│").rstrip()
        line = line[1:] if line.startswith("│") else line
        match = OPTION.match(line)
        if match:
            current = match.group(1).split(",")[0]
            found[current] = [match.group(2) or "", match.group(3) or ""]
        elif current and line.startswith(" " * 4) and line.strip() and \
                not line.strip().startswith("-" * 3):
            found[current][1] += " " + line.strip()
        elif not line.strip() or line.strip().startswith("-" * 3):
            current = None
    return {k: (m, " ".join(h.split())) for k, (m, h) in found.items()}


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_every_option_documents_its_values(capsys, argv):
    found = options(capsys, argv)
    assert "--out" in found or argv == ["eval"] or argv == ["view"], found
    for option, (metavar, text) in found.items():
        if option in ("-h",):
            continue
        described = re.sub(r"\(default: [^)]*\)", "", text).strip()
        assert described, f"{argv} {option}: no description"
        assert text.count("(default:") <= 1, f"{argv} {option}: {text}"
        assert "default:" not in described, f"{argv} {option}: a second default: {text}"
        assert "--help" not in described, f"{argv} {option}: points to the help: {text}"
        if metavar.endswith("STR") and option not in FREE_FORM:
            names = LISTED.get(option)
            assert names is not None, f"{argv} {option}: a string without its choices"
            missing = [n for n in names if n not in described]
            assert not missing, f"{argv} {option}: does not name {missing}: {text}"


def test_presets_and_backends_are_listed_choices(capsys):
    for argv in (["image"], ["sdf"], ["nerf"]):
        found = options(capsys, argv)
        assert found["--field"][0] == "{" + ",".join(field_names()) + "}"
        assert found["--backend"][0].startswith("{auto,torch,cpp")
        assert "--params" in found
    assert options(capsys, ["image"])["--alpha"][0] == "{white,black,keep}"


def test_version(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fieldfit {version('fieldfit')}"
