"""Finding LR/HR capture pairs: two folders paired by file stem, a CSV of pairs, or two files."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from realsr.errors import UsageError
from realsr.images import folder_images


@dataclass(frozen=True)
class PairSource:
    """One pair to align. A side is None when no file was found for it; ``problem`` explains a
    pair that cannot be processed before reading anything (missing or ambiguous files)."""

    name: str
    lr: str | None
    hr: str | None
    problem: str | None = None


def _stem(path: Path, suffix: str) -> str | None:
    s = path.stem
    if suffix:
        if not s.endswith(suffix) or len(s) == len(suffix):
            return None
        s = s[: -len(suffix)]
    return s


def _index(folder: Path, suffix: str) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for p in folder_images(folder):
        s = _stem(p, suffix)
        if s is not None:
            out.setdefault(s, []).append(p)
    return out


def _check_name(name: str, where: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"invalid pair name {name!r}", where)
    return name


def discover_pairs(
    lr_source: str | os.PathLike, hr_source: str | os.PathLike | None = None, lr_suffix: str = "", hr_suffix: str = ""
) -> list[PairSource]:
    """List the pairs to align, sorted by name.

    * ``lr_source`` a ``.csv`` file (``hr_source`` None): columns ``lr``, ``hr`` and optionally
      ``name`` (default: the LR file stem); relative paths are resolved against the CSV's folder.
    * two folders: image files paired by stem, after removing ``lr_suffix``/``hr_suffix`` from the
      stems (e.g. ``001L.png`` + ``001H.png`` with suffixes ``L``/``H``; both folders may be the same).
      A stem found on one side only, or several files with one stem, gives a pair with a ``problem``.
    * two files: one pair named after the LR stem.
    """
    lr_p = Path(lr_source)
    if hr_source is None:
        if lr_p.suffix.lower() != ".csv":
            raise UsageError("give LR and HR sources, or one CSV file of pairs", lr_p)
        return _from_csv(lr_p)
    hr_p = Path(hr_source)
    for p in (lr_p, hr_p):
        if not p.exists():
            raise UsageError("source not found", p)
    if lr_p.is_file() and hr_p.is_file():
        if lr_p.resolve() == hr_p.resolve():
            raise UsageError("LR and HR are the same file: give the wide-angle capture and the zoomed one", lr_p)
        name = _stem(lr_p, lr_suffix) or lr_p.stem
        return [PairSource(_check_name(name, str(lr_p)), str(lr_p), str(hr_p))]
    if not (lr_p.is_dir() and hr_p.is_dir()):
        raise UsageError("LR and HR sources must both be folders or both be files", f"{lr_p}, {hr_p}")
    lr_idx, hr_idx = _index(lr_p, lr_suffix), _index(hr_p, hr_suffix)
    if lr_p.resolve() == hr_p.resolve() and lr_suffix == hr_suffix:
        raise UsageError("LR and HR are the same folder: give --lr-suffix/--hr-suffix to tell them apart", lr_p)
    pairs = []
    for name in sorted(set(lr_idx) | set(hr_idx)):
        lrs, hrs = lr_idx.get(name, []), hr_idx.get(name, [])
        problem = None
        if not lrs:
            problem = "missing LR file"
        elif not hrs:
            problem = "missing HR file"
        elif len(lrs) > 1 or len(hrs) > 1:
            many = lrs if len(lrs) > 1 else hrs
            problem = "ambiguous: several files with this name: " + ", ".join(p.name for p in many)
        pairs.append(PairSource(name, str(lrs[0]) if lrs else None, str(hrs[0]) if hrs else None, problem))
    if not pairs:
        raise UsageError("no image files found", f"{lr_p}, {hr_p}")
    return pairs


def _from_csv(path: Path) -> list[PairSource]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read pair list: {e}", path) from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"lr", "hr"} <= set(rows[0].keys() or ()):
        raise UsageError("pair list needs a header with columns 'lr' and 'hr' (and optionally 'name')", path)
    base = path.parent
    pairs: dict[str, PairSource] = {}
    for i, row in enumerate(rows, start=2):
        lr = (row.get("lr") or "").strip()
        hr = (row.get("hr") or "").strip()
        if not lr or not hr:
            raise UsageError(f"line {i}: empty lr or hr column", path)
        lr_f, hr_f = (base / lr), (base / hr)
        name = _check_name((row.get("name") or "").strip() or Path(lr).stem, f"{path}:{i}")
        if name in pairs:
            raise UsageError(f"line {i}: duplicate pair name {name!r}", path)
        pairs[name] = PairSource(name, str(lr_f), str(hr_f))
    return [pairs[k] for k in sorted(pairs)]
