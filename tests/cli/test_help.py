"""`--help` texts: what they list matches the code, and no placeholder text leaks into them."""

from __future__ import annotations

from click.testing import CliRunner

from realsr.cli.common import ARCHITECTURES
from realsr.cli.main import cli
from realsr.train.models import names


def _help(*cmd: str) -> str:
    r = CliRunner().invoke(cli, [*cmd, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    return r.output


def test_arch_help_lists_every_registered_architecture():
    assert list(ARCHITECTURES) == names()
    for cmd in ("eval", "upscale"):
        assert ", ".join(names()) in " ".join(_help(cmd).split())


def test_unbounded_number_options_print_no_range():
    for cmd in ("align", "build-pool", "degrade", "simulate", "fuse"):
        assert "None" not in _help(cmd), cmd
    assert "x>=0" in _help("build-pool")  # bounded ones keep theirs (--lambda-bicubic)
