"""The pair-dataset manifest (``DATASET/manifest.json``, ARCHITECTURE.md "Data contracts").

One JSON file records the stage, the scale, the resolved parameters and one entry per pair with its
status: ``ok`` (files written), ``rejected`` (processed, failed a quality gate, with the figure) or
``failed`` (could not be processed, with the reason). A run split with ``--shard K/N`` writes
``manifest.shard-K-of-N.json``; :func:`merge_shards` joins them into ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from .atomic import write_json_atomic
from .errors import UsageError


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (model and weights files recorded in manifests and reports)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

FORMAT = "realsr-pairs"
VERSION = 1
STATUSES = ("ok", "rejected", "failed")
MANIFEST_NAME = "manifest.json"
T = TypeVar("T")


def status_counts(entries: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Number of entries per status (every status of :data:`STATUSES` present, possibly 0)."""
    out = {s: 0 for s in STATUSES}
    for e in entries:
        out[e["status"]] = out.get(e["status"], 0) + 1
    return out


def shard_manifest_name(index: int, count: int, stem: str = "manifest") -> str:
    """File name of the manifest (``<stem>.json``) written by shard ``index`` (1-based) of ``count``."""
    return f"{stem}.shard-{index}-of-{count}.json"


@dataclass
class Manifest:
    """In-memory manifest. ``pairs`` maps a pair name (file stem) to its entry dict."""

    stage: str
    scale: int
    params: dict[str, Any]
    pairs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def set(self, name: str, status: str, reason: str | None = None, **fields: Any) -> dict[str, Any]:
        """Record (replace) the entry of pair ``name``."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        entry = {"name": name, "status": status, "reason": reason, **fields}
        self.pairs[name] = entry
        return entry

    def counts(self) -> dict[str, int]:
        """Number of entries per status."""
        return status_counts(self.pairs.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "scale": self.scale,
            "stage": self.stage,
            "params": self.params,
            "pairs": [self.pairs[k] for k in sorted(self.pairs)],
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (entries sorted by name)."""
        write_json_atomic(path, self.to_json())

    @classmethod
    def from_json(cls, obj: Any, path: str | os.PathLike = "<memory>") -> "Manifest":
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise UsageError("not a realsr pair manifest", path)
        if obj.get("version") != VERSION:
            raise UsageError(f"unsupported manifest version {obj.get('version')!r}", path)
        try:
            pairs = {e["name"]: dict(e) for e in obj["pairs"]}
            return cls(stage=obj["stage"], scale=int(obj["scale"]), params=dict(obj["params"]), pairs=pairs)
        except (KeyError, TypeError, ValueError) as e:
            raise UsageError(f"malformed manifest ({e})", path) from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Manifest":
        """Read a manifest; raises :class:`UsageError` (never overwrites) when it is unreadable."""
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(f"cannot read manifest: {e}", path) from None
        return cls.from_json(obj, path)


def read_json_mapping(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in the file at ``path``, or None when it is absent, unreadable or not an
    object (for records a run may resume from: anything else is not one of ours)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def noisy_pairs(folder: str | os.PathLike, follow: bool = True) -> tuple[int, int, Path | None]:
    """``(noisy, ok, manifest)``: how many of the ``ok`` pairs of a pair dataset already carry noise,
    of how many, by its ``manifest.json``: pairs of ``realsr degrade`` with noise steps (pool,
    Gaussian, Poisson) or a learned degradation (dsgan, network), and every pair of ``realsr align``
    (real captures hold their camera's noise). ``realsr subimages`` output is judged by the dataset
    it was cut from (``follow``; its path as that run was given it, so a relative path is taken from
    the current folder). ``(0, 0, None)`` without a readable manifest."""
    path = Path(folder) / MANIFEST_NAME
    rec = read_json_mapping(path) or {}
    source = (rec.get("params") or {}).get("source") if isinstance(rec.get("params"), dict) else None
    if follow and rec.get("stage") == "subimages" and isinstance(source, str):
        return noisy_pairs(source, follow=False)
    pairs = rec.get("pairs")
    entries = [e for e in (pairs if isinstance(pairs, list) else []) if isinstance(e, dict) and e.get("status") == "ok"]
    if not entries:
        return 0, 0, None
    if rec.get("stage") == "align":
        return len(entries), len(entries), path
    return sum(bool(e.get("noise") or e.get("learned")) for e in entries), len(entries), path


def dataset_scale(folder: str | os.PathLike) -> int | None:
    """The scale a pair dataset's ``manifest.json`` records, or None (no readable manifest)."""
    scale = (read_json_mapping(Path(folder) / MANIFEST_NAME) or {}).get("scale")
    return scale if isinstance(scale, int) and not isinstance(scale, bool) and scale >= 1 else None


def check_dataset_scale(folder: str | os.PathLike, scale: int, what: str = "--scale") -> None:
    """:class:`UsageError` when the dataset in ``folder`` records another scale than ``scale``
    (every pair would fail on its own, one warning each)."""
    recorded = dataset_scale(folder)
    if recorded is not None and recorded != scale:
        raise UsageError(f"the dataset is x{recorded} ({MANIFEST_NAME}) but {what} is x{scale}", folder)


def counted(count: int, word: str, plural: str | None = None) -> str:
    """``"1 pair"``, ``"3 pairs"`` for run summaries (``plural`` where adding an s is wrong)."""
    return f"{count} {word if count == 1 else plural or word + 's'}"


def settings_differences(old: Any, new: Any, limit: int = 3) -> str:
    """The settings that differ between two nested dicts, for messages: ``"params.seed: 0 -> 1"``
    (at most ``limit`` of them, dotted paths, then how many more)."""
    diffs: list[str] = []
    absent = object()
    show = lambda v: "(absent)" if v is absent else json.dumps(v)  # noqa: E731

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key, absent), b.get(key, absent), f"{where}.{key}" if where else str(key))
        elif a is absent or b is absent or a != b:
            diffs.append(f"{where or 'value'}: {show(a)} -> {show(b)}")

    walk(old, new, "")
    more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more if diffs else "no difference"


def manifest_settings(m: Manifest) -> dict[str, Any]:
    """What must agree between manifests of one dataset: stage, scale and parameters."""
    return {"stage": m.stage, "scale": m.scale, "params": m.params}


def merge(manifests: Iterable[Manifest]) -> Manifest:
    """Join manifests of the same stage, scale and parameters; later entries replace earlier ones."""
    manifests = list(manifests)
    if not manifests:
        raise UsageError("nothing to merge")
    first = manifests[0]
    out = Manifest(first.stage, first.scale, dict(first.params))
    for m in manifests:
        if manifest_settings(m) != manifest_settings(first):
            raise UsageError("manifests to merge were made with different settings "
                             f"({settings_differences(manifest_settings(first), manifest_settings(m))})")
        out.pairs.update(m.pairs)
    return out


def shard_manifests(folder: str | os.PathLike, stem: str = "manifest") -> dict[tuple[int, int], Path]:
    """The shard manifests (``<stem>.shard-K-of-N.json``) present in ``folder``, keyed by ``(K, N)``."""
    out = {}
    folder = Path(folder)
    pattern = re.compile(rf"^{re.escape(stem)}\.shard-(\d+)-of-(\d+)\.json$")
    if folder.is_dir():
        for p in folder.iterdir():
            m = pattern.match(p.name)
            if m:
                out[(int(m.group(1)), int(m.group(2)))] = p
    return out


def merge_shard_files(folder: str | os.PathLike, stem: str, load: Callable[[Path], T],
                      merge_all: Callable[[list[T]], T], names: Callable[[T], Iterable[str]],
                      require_names: Iterable[str] | None = None) -> T | None:
    """Merge ``<stem>.shard-K-of-N.json`` files (and an existing ``<stem>.json``) of ``folder`` into
    ``<stem>.json`` with ``load``/``merge_all`` (the merged object must have ``save(path)``).

    With ``require_names`` the merge only happens when every listed item has an entry
    (``names(merged)``), so a shard finishing first does not publish a partial result; returns the
    merged object, or None when nothing was merged.
    """
    folder = Path(folder)
    shards = shard_manifests(folder, stem)
    if not shards:
        return None
    main = folder / f"{stem}.json"
    parts = [load(main)] if main.exists() else []
    parts += [load(shards[k]) for k in sorted(shards)]
    merged = merge_all(parts)
    if require_names is not None and not set(require_names) <= set(names(merged)):
        return None
    merged.save(main)  # type: ignore[attr-defined]
    return merged


def merge_shards(folder: str | os.PathLike, require_names: Iterable[str] | None = None) -> Manifest | None:
    """Merge the shard manifests of ``folder`` (and an existing ``manifest.json``) into ``manifest.json``
    (see :func:`merge_shard_files`)."""
    return merge_shard_files(folder, "manifest", Manifest.load, merge, lambda m: m.pairs, require_names)


def previous_entries(own: Path, main: Path, load: Callable[[Path], T], settings: Callable[[T], dict[str, Any]],
                     new_settings: dict[str, Any], entries: Callable[[T], dict[str, dict[str, Any]]], overwrite: bool,
                     what: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """What a run starting in ``main.parent`` finds there: ``(kept, stale)``.

    ``kept``: the entries of its own record ``own`` (``main`` or a shard's), when that was made with
    the same settings (``settings(record) == new_settings``): a resumed run skips them. Every
    record in the folder (``main`` and every shard's, ``<stem>.shard-K-of-N.json``) is checked
    before any work: one made with other settings
    is refused with :class:`UsageError` naming the file and what differs (``what`` names the output:
    "dataset", "pool"), unless ``overwrite``; then that record is deleted (it could never be merged
    with the new run's) and its entries are returned as ``stale``, so that the caller removes their
    files: a pair or source of the old run that the new one does not redo must not stay behind.
    """
    kept: dict[str, dict[str, Any]] = {}
    stale: list[dict[str, Any]] = []
    stem = main.name[:-len(".json")]
    for path in sorted({own, main, *shard_manifests(main.parent, stem).values()}):
        if not path.exists():
            continue
        try:
            old = load(path)
        except UsageError as e:  # unreadable or malformed: nothing in it can be resumed
            if path.is_dir():
                raise UsageError(f"{path.name} is a folder, not a record; move it away or use another -o", path) from None
            if not overwrite:
                raise UsageError(f"{e.message}; delete it, or use --overwrite or another -o", path) from None
            path.unlink()  # --overwrite replaces it (the files it listed cannot be told apart: same names are redone)
            continue
        found = settings(old)
        if found == new_settings:
            if path == own:
                kept.update(entries(old))
            continue
        if not overwrite:
            if isinstance(found, dict) and found.get("stage") != new_settings.get("stage"):
                raise UsageError(f"output folder holds a {what} made by '{found.get('stage')}', not by "
                                 f"'{new_settings.get('stage')}'; use another -o (or --overwrite)", path)
            raise UsageError(f"output folder holds a {what} made with other settings "
                             f"({settings_differences(found, new_settings)}); use --overwrite or another -o", path)
        stale += list(entries(old).values())
        path.unlink()
    return kept, stale


def resume_manifest(manifest: Manifest, own: Path, overwrite: bool, remove_pair: Callable[[str], None]) -> None:
    """Fill ``manifest`` with what a pair-dataset run resumes from its record ``own`` (in the
    dataset folder, beside ``manifest.json``), after :func:`previous_entries` checked every record
    there; with ``overwrite``, ``remove_pair(name)`` deletes the files of each pair of a record
    made with other settings (names that are not plain file stems are not the stage's: skipped)."""
    kept, stale = previous_entries(own, own.parent / MANIFEST_NAME, Manifest.load, manifest_settings,
                                   manifest_settings(manifest), lambda old: old.pairs, overwrite, "dataset")
    manifest.pairs.update(kept)
    for e in stale:
        name = str(e.get("name", ""))
        if name and Path(name).name == name:
            remove_pair(name)


def check_inputs_outside(out: Path, inputs: Iterable[str | os.PathLike | None], subfolders: Iterable[str]) -> None:
    """Refuse (:class:`UsageError`) an input file lying directly in one of ``out``'s ``subfolders``
    (``"."``: ``out`` itself), where the run writes its results: it would overwrite its own input,
    or take it for a finished result, or read its results back as inputs next time."""
    dirs = {(out / d).resolve(): d for d in subfolders}
    for f in inputs:
        if f is None:
            continue
        d = dirs.get(Path(f).resolve().parent)
        if d is not None:
            where = "the output folder" if d in ("", ".") else f"the output's {d}/ folder"
            raise UsageError(f"input {f} lies in {where}, where this run writes its results; use another -o", out)


def check_dataset_folder(out: Path, inputs: Iterable[str | os.PathLike | None], overwrite: bool,
                         subfolders: tuple[str, ...] = ("HR", "LR")) -> None:
    """Refuse (:class:`UsageError`) to start a pair-dataset run in ``out`` when it would destroy
    files it did not make: an input file lying in one of ``out``'s ``subfolders``
    (:func:`check_inputs_outside`), or, unless ``overwrite``, image files in those subfolders while
    ``out`` holds no realsr record (``manifest.json`` or a shard's): they are someone else's, and
    same-named pairs would replace them."""
    check_inputs_outside(out, inputs, subfolders)
    recorded = (out / MANIFEST_NAME).exists() or bool(shard_manifests(out))
    check_unrecorded(out, overwrite, recorded, subfolders)


def check_unrecorded(out: Path, overwrite: bool, recorded: bool, folders: Iterable[str] = (),
                     files: Iterable[str] = (), what: str = "realsr manifest", kind: str = "images") -> None:
    """Refuse (:class:`UsageError`) to write into ``out`` when, with no record of this command there
    (``recorded`` False) and no ``overwrite``, it already holds files the run could replace: ``kind``
    (``"images"``, or ``"files"``: any file but an interrupted write's temporary) in one of the
    subfolders ``folders``, or one of the named ``files``. They are someone else's,
    and same-named outputs would replace them."""
    from .atomic import TMP_PREFIX
    from .images import folder_images

    if overwrite or recorded:
        return
    for d in folders:
        where = out / d
        if not where.is_dir():
            continue
        held = folder_images(where) if kind == "images" else \
            [f for f in where.iterdir() if f.is_file() and not f.name.startswith(TMP_PREFIX)]
        if held:
            raise UsageError(f"{d}/ already holds {kind} that no {what} lists; use another -o "
                             "(or --overwrite to replace same-named files)", out)
    for f in files:
        if (out / f).exists():
            raise UsageError(f"{f} is already in the output folder but no {what} made it; use another -o "
                             "(or --overwrite to replace it)", out)
