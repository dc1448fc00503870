"""`--help` texts: what they list matches the code, and no placeholder text leaks into them."""

from __future__ import annotations

import numpy as np
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


def test_build_pool_summary_wording(tmp_path):
    """The summary line counts its kernels and patches in words ("1 kernel", "0 noise patches")."""
    from realsr.images import write_png
    from realsr.manifest import counted

    assert [counted(1, "kernel"), counted(2, "kernel"), counted(0, "noise patch", "noise patches")] == [
        "1 kernel", "2 kernels", "0 noise patches"]
    write_png(tmp_path / "flat.png", np.full((80, 80, 3), 128, np.uint8))
    r = CliRunner().invoke(cli, ["-q", "build-pool", str(tmp_path / "flat.png"), "-o", str(tmp_path / "pool"),
                                 "--no-kernels", "--noise-patch", "64", "--noise-stride", "16", "--noise-min-mean", "0"])
    assert r.exit_code == 0, r.output
    assert r.output.strip().endswith("(0 kernels, 1 noise patch)"), r.output
