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
    for cmd in cli.commands:
        assert "None" not in _help(cmd), cmd
    # bounded ones keep theirs (--lambda-bicubic is a bounded Finite)
    text = " ".join(_help("build-pool").split())
    assert text[text.index("--lambda-bicubic"):].split("--g-structure")[0].endswith("[default: 5.0; x>=0] ")


def test_count_wording():
    from realsr.cli.build_pool import _count

    assert [_count(1, "kernel"), _count(2, "kernel"), _count(1, "noise patch"), _count(0, "noise patch")] == [
        "1 kernel", "2 kernels", "1 noise patch", "0 noise patches"]
