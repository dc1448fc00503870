"""The demo's steps and their exact command lines.

Every ``realsr`` step is a list of arguments that the runner hands to the ``realsr`` command group
as they are printed, so the printed line re-runs that step (from the same working directory). The
two Python steps (built-in data, report) print the ``python -m`` line that does the same.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from .plan import DemoPlan

#: what the demo writes directly under OUT (``--overwrite`` removes exactly these)
DEMO_ENTRIES = ("data", "train_config.yaml", "captures", "aligned", "phone", "pool", "train_pairs", "val_pairs",
                "test_pairs", "run", "eval", "report", "report.html", "report.png", "commands.sh", "demo.json")


@dataclass(frozen=True)
class Step:
    """One step: ``key`` (unique id), ``stage`` (summary-table label), ``what`` (one sentence),
    ``kind`` (``realsr``: ``args`` follow the ``realsr`` program name; ``python``: a function of
    the demo run in-process, ``args`` being its ``python -m`` equivalent)."""

    key: str
    stage: str
    what: str
    kind: str
    args: tuple[str, ...]

    @property
    def command(self) -> str:
        """The shell command line of the step."""
        prog = ["realsr"] if self.kind == "realsr" else ["python", "-m"]
        return shlex.join(prog + list(self.args))


def _s(p: Path | str) -> str:
    return str(p)


def _num(v: float) -> str:
    """A number as a short command-line literal (``3.0`` -> ``3``, ``0.003`` -> ``0.003``)."""
    return f"{v:g}"


def train_overrides(plan: DemoPlan) -> list[str]:
    """``key=value`` overrides of the training config for this plan."""
    return [
        f"optim.iterations={plan.iterations}",
        f"optim.generator.lr={_num(plan.learning_rate)}",
        f"optim.grad_clip={_num(plan.grad_clip)}",
        f"data.patch_size={plan.patch_size}",
        f"data.batch_size={plan.batch_size}",
        f"log.val_every={plan.val_every}",
        f"log.save_every={plan.val_every}",
    ]


def build_steps(out: Path, plan: DemoPlan) -> list[Step]:
    """The demo's steps in order, with paths under ``out`` (as the user wrote it)."""
    o = Path(out)
    s = plan.scale
    quick = ["--quick"] if plan.preset == "quick" else []
    seed = ["--seed", str(plan.seed)] if plan.seed else []
    w, h = plan.capture_lr_size
    pool_degrade = ["--scale", str(s), "--mode", "pool", "--pool", _s(o / "pool")]
    return [
        Step("data", "built-in data", "procedural photos (phone scenes, clean HR sets) and the training config",
             "python", ("realsr.demo.data", "-o", _s(o), *quick, *seed)),
        Step("simulate", "simulate", f"{plan.captures} postcard capture pairs at zoom {s} with known geometry",
             "realsr", ("simulate", "-o", _s(o / "captures"), "--zoom", str(s), "--count", str(plan.captures),
                        "--lr-size", f"{w}x{h}", "--seed", str(plan.seed))),
        Step("align", "align", "SIFT + iterative refinement + dense field: pixel-aligned x4 pairs",
             "realsr", ("align", _s(o / "captures" / "LR"), _s(o / "captures" / "HR"), "-o", _s(o / "aligned"),
                        "--scale", str(s))),
        Step("phone", "phone photos",
             f"simulated phone photos: Gaussian x2 blur sigma {_num(plan.phone_blur_sigma)} px, "
             f"Gaussian noise sigma {_num(plan.phone_noise_sigma)} (0-255)",
             "realsr", ("degrade", _s(o / "data" / "phone_scenes"), "-o", _s(o / "phone"), "--scale", "2",
                        "--mode", "classic", "--blur-sigma", _num(plan.phone_blur_sigma), _num(plan.phone_blur_sigma),
                        "--kernel-size", str(plan.phone_kernel_size), "--resize-methods", "nearest",
                        "--noise", "gaussian", "--noise-sigma", _num(plan.phone_noise_sigma),
                        _num(plan.phone_noise_sigma), "--jpeg-prob", "0", "--seed", str(plan.seed))),
        Step("build-pool", "build-pool",
             f"KernelGAN kernels ({plan.kernelgan_iterations} iterations, official 3000) + noise patches "
             "from the phone photos",
             "realsr", ("build-pool", _s(o / "phone" / "LR"), "-o", _s(o / "pool"), "--scale", str(s),
                        "--iterations", str(plan.kernelgan_iterations), "--noise-patch", str(plan.noise_patch),
                        "--noise-stride", str(plan.noise_patch), "--seed", str(plan.seed))),
        Step("degrade-train", "degrade (train)", "pool kernels + real noise on clean HR; realism vs the phone photos",
             "realsr", ("degrade", _s(o / "data" / "clean_train"), "-o", _s(o / "train_pairs"), *pool_degrade,
                        "--seed", str(plan.seed), "--reference", _s(o / "phone" / "LR"))),
        Step("degrade-val", "degrade (val)", "validation pairs, same degradation",
             "realsr", ("degrade", _s(o / "data" / "clean_val"), "-o", _s(o / "val_pairs"), *pool_degrade,
                        "--seed", str(plan.seed + 1))),
        Step("degrade-test", "degrade (test)", "held-out test pairs, same degradation",
             "realsr", ("degrade", _s(o / "data" / "clean_test"), "-o", _s(o / "test_pairs"), *pool_degrade,
                        "--seed", str(plan.seed + 2))),
        Step("train", "train", f"small RRDBNet (tiny_cpu), {plan.iterations} iterations, L1",
             "realsr", ("train", _s(o / "train_config.yaml"), "-o", _s(o / "run"), "--train-data",
                        _s(o / "train_pairs"), "--val-data", _s(o / "val_pairs"), *train_overrides(plan))),
        Step("eval", "eval", "PSNR/SSIM (Y, border = scale) of the model and of bicubic on the held-out pairs",
             "realsr", ("eval", _s(o / "run" / "model.safetensors"), _s(o / "test_pairs"), "-o", _s(o / "eval"))),
        Step("report", "report", "report.html and report.png", "python", ("realsr.demo.report", _s(o), *quick, *seed)),
    ]


def resume_args(step: Step, out: Path) -> tuple[str, ...]:
    """Arguments that re-run ``step`` after an interruption inside it.

    ``train`` continues from its newest checkpoint (``--resume``) or starts again (``--overwrite``)
    when none was written; ``eval`` redoes its folder (the model may have changed). The other
    commands resume by themselves.
    """
    o = Path(out)
    if step.key == "train" and (o / "run").exists():
        if any((o / "run" / "checkpoints").glob("iter_*.pt")):
            return ("train", "-o", _s(o / "run"), "--resume")
        return (*step.args, "--overwrite")
    if step.key == "eval" and (o / "eval").exists():
        return (*step.args, "--overwrite")
    return step.args
