"""`realsr demo`: the quick demo end to end (outputs, report, model beats bicubic), the printed command
lines, the output-folder rules, interruption and resume, and a headless-browser screenshot of the report."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from realsr.cli.main import cli, main  # noqa: E402
from realsr.demo.plan import plan_for  # noqa: E402
from realsr.demo.runner import DemoRunner  # noqa: E402
from realsr.demo.steps import DEMO_ENTRIES, build_steps, resume_args  # noqa: E402
from realsr.errors import UsageError  # noqa: E402
from realsr.images import read_image  # noqa: E402

#: files every demo writes (relative to OUT)
EXPECTED = [
    "report.html", "report.png", "demo.json", "commands.sh", "train_config.yaml", "report/kernels.png",
    "captures/truth.json", "aligned/manifest.json", "phone/manifest.json", "pool/pool.json", "pool/preview.png",
    "train_pairs/manifest.json", "train_pairs/realism.json", "train_pairs/realism.png", "val_pairs/manifest.json",
    "test_pairs/manifest.json", "run/model.safetensors", "run/log.jsonl", "run/curves.png", "run/config.yaml",
    "eval/eval.json", "eval/eval.csv",
]


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> tuple[Path, int, str]:
    """One `realsr demo --quick` run (about 1-1.5 minutes on 2 CPU cores): (OUT, exit code, stdout)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["-q", "demo", "-o", str(out), "--quick"])
    return out, rc, buf.getvalue()


@pytest.mark.slow
def test_quick_demo_writes_everything_and_the_model_beats_bicubic(quick_demo):
    out, rc, stdout = quick_demo
    assert rc == 0, stdout[-3000:]
    missing = [f for f in EXPECTED if not (out / f).is_file()]
    assert not missing, missing
    for sub in ("aligned/previews", "eval/compare", "eval/SR", "pool/kernels", "pool/noise", "run/samples"):
        assert any((out / sub).iterdir()), sub
    # every image report.html references exists inside OUT
    page = (out / "report.html").read_text(encoding="utf-8")
    srcs = re.findall(r"<img src='([^']+)'", page)
    assert len(srcs) >= 8
    from urllib.parse import unquote

    for s in srcs:
        assert not s.startswith(("/", "http", "file:")), s
        p = (out / unquote(s)).resolve()
        assert p.is_file() and out.resolve() in p.parents, s
    # the report picture is a real, non-blank image
    png = read_image(out / "report.png")
    assert png.shape[0] > 600 and png.shape[1] >= 1200 and png.std() > 20
    # the trained model beats bicubic on the held-out pairs
    ev = json.loads((out / "eval" / "eval.json").read_text())
    assert ev["counts"]["done"] == plan_for(True).test_images
    assert ev["mean"]["psnr"] > ev["baseline"]["mean"]["psnr"] + 0.2, (ev["mean"], ev["baseline"]["mean"])
    state = json.loads((out / "demo.json").read_text())
    assert state["status"] == "done" and state["steps"]["eval"]["details"]["beats_bicubic"]
    # the pool was estimated and the noise measured against the known camera
    pool = state["steps"]["build-pool"]["details"]
    assert pool["kernels"] >= 1 and pool["closer_than_bicubic"] >= 1
    assert abs(pool["noise_std"] - pool["true_noise_std"]) < 0.5
    assert state["steps"]["align"]["details"]["mean_truth_error_px"] < 0.3
    # the summary table and the command lines were printed; commands.sh holds the same lines
    for stage in ("simulate", "align", "build-pool", "degrade (train)", "train", "eval"):
        assert re.search(rf"^  {re.escape(stage)}\s", stdout, re.M), stage
    assert "beats bicubic" in stdout and str(out / "report.html") in stdout
    printed = [line[4:] for line in stdout.splitlines() if line.startswith("  $ ")]
    script = [line for line in (out / "commands.sh").read_text().splitlines() if line and not line.startswith(("#", "set"))]
    assert printed == script and len(printed) == 11
    assert "--iterations 400" in (out / "commands.sh").read_text()  # fewer KernelGAN iterations, stated


@pytest.mark.slow
def test_a_finished_demo_folder_is_refused_without_overwrite(quick_demo):
    out, rc, _ = quick_demo
    assert main(["-q", "demo", "-o", str(out), "--quick"]) == 2
    assert main(["-q", "demo", "-o", str(out)]) == 2


@pytest.mark.slow
def test_report_rebuilds_from_the_files_alone(quick_demo, tmp_path):
    """Steps run by hand (commands.sh) leave no demo.json: the report step measures the files."""
    from realsr.demo.report import main as report_main

    out, rc, _ = quick_demo
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "demo.json").unlink()
    (copy / "report.html").unlink()
    assert report_main([str(copy), "--quick"]) == 0
    page = (copy / "report.html").read_text(encoding="utf-8")
    assert "(not timed)" in page and "beats bicubic" in page and "Preset <b>quick</b>" in page
    assert report_main([str(tmp_path / "nothing")]) == 2


@pytest.mark.parametrize("quick", [True, False])
def test_printed_command_lines_parse_with_the_real_commands(tmp_path, quick):
    """Every realsr step's line is accepted by its click command (options, choices, types), and the
    python steps' modules exist."""
    import importlib.util

    o = tmp_path / "my demo"
    for d in ("captures/LR", "captures/HR", "data/phone_scenes", "data/clean_train", "data/clean_val",
              "data/clean_test", "phone/LR", "pool", "train_pairs", "val_pairs", "test_pairs", "run"):
        (o / d).mkdir(parents=True)  # the inputs each step finds written by the steps before it
    (o / "train_config.yaml").write_text("scale: 4\n")
    for step in build_steps(o, plan_for(quick)):
        argv = shlex.split(step.command)
        if step.kind == "python":
            assert argv[:2] == ["python", "-m"] and importlib.util.find_spec(argv[2]) is not None
            continue
        assert argv[0] == "realsr"
        cmd = cli.commands[argv[1]]
        ctx = cmd.make_context(argv[1], argv[2:], resilient_parsing=False)
        assert ctx.params["out"] is not None
    # with spaces in OUT the lines are quoted
    assert "'" in build_steps(tmp_path / "my demo", plan_for(quick))[1].command


def _fake_cli(calls: list[list[str]], stop_at: str | None = None):
    def run(args: list[str]) -> int:
        calls.append(args)
        if args[0] == stop_at:
            raise KeyboardInterrupt
        return 0
    return run


def test_folder_rules(tmp_path):
    plan = plan_for(True)
    # absent or empty: fresh
    assert DemoRunner(tmp_path / "new", plan, _fake_cli([])).prepare() == "fresh"
    # a foreign non-empty folder: refused; with --overwrite only the demo's own entries go
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty"):
        DemoRunner(d, plan, _fake_cli([])).prepare()
    (d / "run").mkdir()
    (d / "run" / "old.txt").write_text("x")
    (d / "report.html").write_text("old")
    assert DemoRunner(d, plan, _fake_cli([]), overwrite=True).prepare() == "fresh"
    assert (d / "notes.txt").read_text() == "keep me" and not (d / "run").exists()
    assert {p.name for p in d.iterdir()} <= set(DEMO_ENTRIES) | {"notes.txt"}
    # a file as OUT
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        DemoRunner(tmp_path / "file", plan, _fake_cli([])).prepare()


def test_interrupted_demo_resumes_with_the_same_command(tmp_path, capsys):
    out = tmp_path / "demo"
    plan = plan_for(True)
    calls: list[list[str]] = []
    runner = DemoRunner(out, plan, _fake_cli(calls, stop_at="align"))
    runner.prepare()
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    state = json.loads((out / "demo.json").read_text())
    assert state["status"] == "interrupted" and state["interrupted_step"] == "align"
    assert state["steps"]["data"]["done"] and state["steps"]["simulate"]["done"]
    assert "stopped during step 3 of 11 (align)" in capsys.readouterr().out
    assert len(list((out / "data" / "clean_train").glob("*.png"))) == plan.train_images
    # another plan is refused; the same plan resumes from the interrupted step
    with pytest.raises(UsageError, match="other settings"):
        DemoRunner(out, plan_for(False), _fake_cli([])).prepare()
    calls.clear()
    again = DemoRunner(out, plan, _fake_cli(calls))
    assert again.prepare() == "resume"
    again.run()  # the fake commands write nothing: figures are "not measured", the report still renders
    assert [c[0] for c in calls] == ["align", "degrade", "build-pool", "degrade", "degrade", "degrade", "train", "eval"]
    assert (out / "report.html").is_file() and (out / "report.png").is_file()
    assert json.loads((out / "demo.json").read_text())["status"] == "done"


def test_resume_arguments_of_train_and_eval(tmp_path):
    steps = {s.key: s for s in build_steps(tmp_path, plan_for(True))}
    assert resume_args(steps["train"], tmp_path) == steps["train"].args  # nothing there yet
    (tmp_path / "run").mkdir()
    assert resume_args(steps["train"], tmp_path)[-1] == "--overwrite"  # started, no checkpoint
    (tmp_path / "run" / "checkpoints").mkdir()
    (tmp_path / "run" / "checkpoints" / "iter_00000200.pt").write_bytes(b"x")
    assert resume_args(steps["train"], tmp_path) == ("train", "-o", str(tmp_path / "run"), "--resume")
    (tmp_path / "eval").mkdir()
    assert resume_args(steps["eval"], tmp_path)[-1] == "--overwrite"
    assert resume_args(steps["align"], tmp_path) == steps["align"].args


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no chromium / chromium-browser to render the report")
def test_report_renders_in_a_headless_browser(quick_demo, tmp_path):
    out, rc, _ = quick_demo
    shot = tmp_path / "shot.png"
    r = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1280,2400", f"--screenshot={shot}", (out / "report.html").resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert shot.is_file(), r.stderr[-2000:]
    img = read_image(shot).astype(np.float64)
    assert img.shape[0] >= 2000 and img.shape[1] >= 1200
    assert img.std() > 20  # text, tables and pictures, not a blank page
    # the pictures were loaded: dark image pixels appear on the light page
    assert (img.mean(axis=2) < 60).mean() > 0.02
