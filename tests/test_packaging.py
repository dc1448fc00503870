"""The folders map to one `realsr` namespace in editable and regular installs."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_installed_package_exposes_every_stage():
    import realsr
    import realsr.capture_align
    import realsr.cli
    import realsr.degrade
    import realsr.train

    assert realsr.__version__ != "0.0.0+unknown"
    assert Path(realsr.capture_align.__file__).parent.name == "capture_align"


def test_regular_wheel_contains_the_mapped_folders(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"  # build from a copy: setuptools writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__",
                                                             "example", "tests", "benchmarks"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("realsr-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for mod in ("realsr/images.py", "realsr/capture_align/align.py", "realsr/cli/main.py",
                "realsr/degrade/__init__.py", "realsr/train/__init__.py"):
        assert mod in names, mod
    assert not any(n.startswith(("tests/", "capture_align/", "cli/")) for n in names)
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "realsr = realsr.cli.main:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()
