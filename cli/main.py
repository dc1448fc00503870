"""The ``realsr`` click group, logging set-up and the error -> exit-code policy.

Exit codes (ARCHITECTURE.md): 0 everything done; 1 the run finished but some items failed (see the
manifest); 2 bad usage or unusable input; 130 interrupted. Errors print one line
``realsr: error: <what> (<file>)``; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback

import click

from realsr import __version__
from realsr.errors import RealsrError

EXIT_OK, EXIT_ITEMS_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _State:
    debug = False


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("realsr: %(levelname)s: %(message)s"))
    root = logging.getLogger("realsr")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, "--version", prog_name="realsr")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-v", "--verbose", count=True, help="More messages (-v per pair, -vv debugging detail).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int, quiet: bool) -> None:
    """realsr: real-world super-resolution datasets and models.

    Align real LR/HR captures into training pairs, build degradation pools, degrade clean images,
    train and evaluate SR models. `realsr COMMAND --help` documents each command.
    """
    _State.debug = debug
    _setup_logging(verbose + (2 if debug else 0), quiet)
    ctx.ensure_object(dict)
    ctx.obj["progress"] = not quiet


def _register() -> None:
    from . import align, build_pool, degrade, demo, evaluate, fuse, merge, simulate, subimages, train, upscale  # noqa: F401  (commands attach themselves to `cli`)


_register()


def _resume_hint(argv: list[str]) -> str:
    """How to continue an interrupted command: train continues with ``--resume`` (without it, the
    run folder is refused as holding a run); every other command resumes when run again."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command == "train" and "--resume" not in argv:
        return ("continue from the last checkpoint with: realsr train -o RUN --resume; "
                "if none was saved yet, start again with --overwrite")
    return "re-run the same command to resume"


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the group, map errors to one line and an exit code."""
    try:
        rv = cli.main(args=argv, prog_name="realsr", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo(f"realsr: interrupted ({_resume_hint(sys.argv[1:] if argv is None else argv)})", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE
    except OSError as e:  # disk full, permissions ... on an output: the run cannot go on
        if _State.debug:
            traceback.print_exc()
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        click.echo(f"realsr: error: {e.strerror or e}{where}", err=True)
        return EXIT_USAGE
    except RealsrError as e:
        if _State.debug:
            traceback.print_exc()
        click.echo(f"realsr: error: {e}", err=True)
        return EXIT_USAGE
    except Exception as e:  # an unexpected failure: still one line unless --debug
        if _State.debug:
            traceback.print_exc()
        click.echo(f"realsr: error: internal error: {type(e).__name__}: {e} (re-run with --debug for details)", err=True)
        return EXIT_USAGE
    return rv if isinstance(rv, int) else EXIT_OK
