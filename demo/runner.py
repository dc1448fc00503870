"""Runs the demo's steps in order, times them, measures what they produced and keeps a record.

The record, ``OUT/demo.json``, is rewritten after every step: the plan, each finished step's
command line, exit code, seconds, items and key figure (:mod:`.figures`), and the run's status
(``running``, ``interrupted``, ``failed``, ``done``). An interrupted demo resumes when the same
command is run again: finished steps are skipped, the interrupted one is run again (the ``realsr``
commands resume by themselves; training continues from its newest checkpoint).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from realsr.atomic import write_bytes_atomic, write_json_atomic
from realsr.errors import RealsrError, UsageError

from .figures import FIGURES
from .plan import DemoPlan
from .report import STATE_NAME, summary_rows, write_report
from .steps import DEMO_ENTRIES, Step, build_steps, resume_args

FORMAT, VERSION = "realsr-demo", 1

#: runs one ``realsr`` command line (the arguments after the program name); returns its exit code
RunCli = Callable[[list[str]], int]


@dataclass(frozen=True)
class StepResult:
    """What one step did: exit code, wall seconds, the summary cells and the report's numbers."""

    key: str
    rc: int
    seconds: float
    items: str
    figure: str
    details: dict[str, Any]


def machine_description() -> str:
    """Cores, Python/torch threads and the training device, in words."""
    cores = os.cpu_count() or 1
    try:
        import torch

        dev = "CUDA GPU " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
        threads = f", {torch.get_num_threads()} torch threads"
    except ImportError:  # pragma: no cover - the demo trains, so torch is there in practice
        dev, threads = "CPU", ""
    return f"{platform.machine() or 'unknown'} {cores} cores{threads}, training on {dev}"


class DemoRunner:
    """The demo in folder ``out`` with ``plan``; ``run_cli`` executes ``realsr`` command lines,
    ``echo`` prints a line for the user."""

    def __init__(self, out: str | os.PathLike, plan: DemoPlan, run_cli: RunCli,
                 echo: Callable[[str], None] = print, overwrite: bool = False):
        self.out = Path(out)
        self.plan = plan
        self.run_cli = run_cli
        self.echo = echo
        self.overwrite = overwrite
        self.steps: list[Step] = build_steps(self.out, plan)
        self.state: dict[str, Any] = {}
        self.resuming = False

    # ------------------------------------------------------------------ folder checks
    @property
    def state_path(self) -> Path:
        return self.out / STATE_NAME

    def _read_state(self) -> dict[str, Any] | None:
        try:
            obj = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return obj if isinstance(obj, dict) and obj.get("format") == FORMAT else None

    def prepare(self) -> str:
        """Check OUT and set up the record: ``"fresh"`` or ``"resume"``.

        OUT must be absent or empty, unless ``overwrite`` (the demo's own files and folders in OUT
        are removed; nothing else is touched) or OUT holds an interrupted demo of the same plan
        (resumed). Anything else is refused with :class:`UsageError`.
        """
        if self.out.exists() and not self.out.is_dir():
            raise UsageError("output path exists and is not a folder", self.out)
        present = sorted(p.name for p in self.out.iterdir()) if self.out.is_dir() else []
        old = self._read_state() if present else None
        if present and self.overwrite:
            removed = [n for n in present if n in DEMO_ENTRIES]
            for name in removed:
                p = self.out / name
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            if removed:
                self.echo(f"realsr demo: --overwrite: removed the previous demo files in {self.out}")
        elif present:
            if old and old.get("status") != "done" and old.get("plan") == self.plan.to_json():
                self.resuming = True
            elif old and old.get("status") == "done":
                raise UsageError("the folder already holds a finished demo (see its report.html); choose another "
                                 "-o or add --overwrite to run it again", self.out)
            elif old:
                raise UsageError("the folder holds an unfinished demo with other settings (--quick/--seed); "
                                 "re-run it with those, choose another -o, or add --overwrite", self.out)
            else:
                raise UsageError("output folder is not empty; choose another -o, or add --overwrite (it replaces "
                                 "only the demo's own files there)", self.out)
        if self.resuming:
            self.state = old
            done = sum(1 for s in self.steps if (old.get("steps", {}).get(s.key) or {}).get("done"))
            self.echo(f"realsr demo: resuming the interrupted demo in {self.out} ({done} of {len(self.steps)} "
                      "steps already done)")
        else:
            self.state = {"format": FORMAT, "version": VERSION, "plan": self.plan.to_json(), "status": "running",
                          "machine": {"description": machine_description(), "cores": os.cpu_count()},
                          "total_seconds": 0.0, "steps": {}}
        self.state["status"] = "running"
        self.out.mkdir(parents=True, exist_ok=True)
        self._save()
        self._write_commands()
        return "resume" if self.resuming else "fresh"

    def _save(self) -> None:
        write_json_atomic(self.state_path, self.state)

    def _write_commands(self) -> None:
        lines = ["#!/bin/sh", f"# realsr demo ({self.plan.preset}): every step's command line. Run from the directory",
                 "# the demo ran in; each step reads the files the steps before it wrote.", "set -e"]
        for s in self.steps:
            lines += [f"# {s.stage}: {s.what}", s.command]
        write_bytes_atomic(self.out / "commands.sh", ("\n".join(lines) + "\n").encode("utf-8"))

    # ------------------------------------------------------------------ running
    def _execute(self, step: Step, args: tuple[str, ...]) -> int:
        if step.kind == "python":
            if step.key == "data":
                from .data import write_builtin_data

                write_builtin_data(self.out, self.plan)
            elif step.key == "report":
                write_report(self.out, self.state)
            else:  # pragma: no cover - every python step is listed above
                raise ValueError(f"unknown python step {step.key}")
            return 0
        rv = self.run_cli(list(args))
        return int(rv or 0)

    def _measure(self, step: Step) -> tuple[str, str, dict[str, Any]]:
        try:
            f = FIGURES[step.key](self.out, self.plan)
            return f["items"], f["figure"], f["details"]
        except (OSError, ValueError, KeyError, IndexError, TypeError, RealsrError) as e:
            return "", f"(not measured: {type(e).__name__}: {e})", {}

    def run_step(self, index: int, step: Step) -> StepResult:
        """Run one step (printing its header and command line), measure it and record it."""
        args = resume_args(step, self.out) if self.resuming else step.args
        shown = Step(step.key, step.stage, step.what, step.kind, args)
        self.echo(f"\n[{index}/{len(self.steps)}] {step.stage}: {step.what}")
        self.echo(f"  $ {shown.command}")
        rec = {"stage": step.stage + (" (resumed)" if args != step.args else ""), "command": shown.command,
               "done": False}
        self.state["steps"][step.key] = rec
        self._save()
        t0 = time.perf_counter()
        try:
            rc = self._execute(step, args)
        except KeyboardInterrupt:
            self.state["status"] = "interrupted"
            self.state["interrupted_step"] = step.key
            self._save()
            self.echo(f"realsr demo: stopped during step {index} of {len(self.steps)} ({step.stage}); the finished "
                      f"steps are kept in {self.out}")
            raise
        except RealsrError as e:
            self.state["status"] = "failed"
            self._save()
            e.message = f"demo step '{step.stage}' ({shown.command}): {e.message}"
            raise
        seconds = time.perf_counter() - t0
        items, figure, details = self._measure(step)
        rec.update(rc=rc, seconds=round(seconds, 2), items=items, figure=figure, details=details, done=True)
        self.state["total_seconds"] = round(sum(s.get("seconds", 0.0) for s in self.state["steps"].values()), 2)
        self._save()
        note = "" if rc == 0 else f" (exit code {rc}: some items failed; see the step's manifest)"
        self.echo(f"  -> {items}; {figure} [{seconds:.1f} s]{note}")
        return StepResult(step.key, rc, seconds, items, figure, details)

    def run(self) -> int:
        """Run every step not yet done; print the summary. Returns the exit code (0, or 1 when a
        step finished with some items failed)."""
        if not self.state:
            self.prepare()
        worst = 0
        for i, step in enumerate(self.steps, 1):
            if (self.state["steps"].get(step.key) or {}).get("done"):
                self.echo(f"[{i}/{len(self.steps)}] {step.stage}: done before, skipped")
                continue
            if step.key == "report":  # the report shows the run as finished
                self.state["status"] = "done"
            res = self.run_step(i, step)
            worst = max(worst, res.rc)
        self.state["status"] = "done"
        self._save()
        self.print_summary()
        return 1 if worst else 0

    def print_summary(self) -> None:
        """The summary table (stage, items, seconds, key figure) and where everything is."""
        rows = [["stage", "items", "seconds", "key figure"]] + summary_rows(self.state)
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        self.echo("")
        for j, r in enumerate(rows):
            self.echo(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
            if j == 0:
                self.echo("  " + "-" * (sum(widths) + 6 + max(len(x[3]) for x in rows)))
        self.echo(f"  total {self.state['total_seconds']:.0f} s ({self.plan.preset} demo; "
                  f"{self.state['machine']['description']})")
        ev = (self.state["steps"].get("eval") or {}).get("details") or {}
        if ev:
            verdict = "beats" if ev.get("beats_bicubic") else "does NOT beat"
            self.echo(f"\nThe trained model {verdict} bicubic on the {len(ev.get('images', []))} held-out pairs: "
                      f"PSNR {ev['mean']['psnr']:.2f} vs {ev['bicubic']['psnr']:.2f} dB ({ev['gain_db']:+.2f} dB).")
        o = self.out
        self.echo("\nWhere everything is:")
        for path, what in ((o / "report.html", "the report (open it in a browser)"),
                           (o / "report.png", "the report as one picture"),
                           (o / "commands.sh", "every step's command line"),
                           (o / "run" / "model.safetensors", "the trained model (realsr eval / realsr upscale)"),
                           (o / "eval" / "eval.json", "the evaluation"),
                           (o / "pool" / "pool.json", "the kernel + noise pool"),
                           (o / "aligned" / "manifest.json", "the aligned pairs")):
            self.echo(f"  {str(path):<{len(str(o)) + 24}} {what}")
