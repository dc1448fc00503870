"""``realsr demo``: the whole pipeline on built-in data (simulate, align, build-pool, degrade, train,
eval) with a report. The steps live in :mod:`realsr.demo`; this module parses the options and hands
the runner a function that executes ``realsr`` command lines through this same click group."""

from __future__ import annotations

from pathlib import Path

import click

from .main import cli


def _global_flags(ctx: click.Context) -> list[str]:
    """The group options the user gave (``--debug``, ``-v``, ``-q``), passed on to every step."""
    root = ctx.find_root().params
    flags = ["--debug"] if root.get("debug") else []
    flags += ["-v"] * int(root.get("verbose") or 0)
    return flags + (["-q"] if root.get("quiet") else [])


@cli.command("demo")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Demo folder (must be absent or empty): every step's output, report.html, report.png.")
@click.option("--quick", is_flag=True, help="Reduced sizes: under 2 minutes on 2 CPU cores (the full demo: under 10).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of every random step.")
@click.option("--overwrite", is_flag=True, help="Run again in a folder that holds a demo (its demo files are replaced; "
              "other files are left alone).")
@click.pass_context
def demo_cmd(ctx: click.Context, out: Path, quick: bool, seed: int, overwrite: bool) -> int:
    """Run the whole pipeline on built-in data and write OUT/report.html and OUT/report.png.

    Procedural photos (nothing is downloaded) -> `realsr simulate` postcard captures at x4 ->
    `realsr align` -> `realsr build-pool` on simulated phone photos with a known blur kernel and
    noise (KernelGAN with fewer iterations than the official 3000) -> `realsr degrade --mode pool`
    -> `realsr train` (a small RRDBNet) -> `realsr eval` against bicubic on held-out pairs. Each
    step prints its command line (all of them are in OUT/commands.sh); a summary table ends the run.
    An interrupted demo resumes when the same command is run again.
    """
    from realsr.demo.plan import plan_for
    from realsr.demo.runner import DemoRunner

    flags = _global_flags(ctx)

    def run_cli(args: list[str]) -> int:
        try:
            rv = cli.main(args=flags + args, prog_name="realsr", standalone_mode=False)
        except click.exceptions.Abort:  # click turns Ctrl-C inside a command into Abort
            raise KeyboardInterrupt from None
        return rv if isinstance(rv, int) else 0

    runner = DemoRunner(out, plan_for(quick, seed), run_cli, echo=click.echo, overwrite=overwrite)
    runner.prepare()
    return runner.run()
