import json

import pytest

from realsr.errors import UsageError
from realsr.manifest import (Manifest, manifest_settings, merge, merge_shards, previous_entries, settings_differences,
                             shard_manifest_name)


def test_roundtrip_sorted_and_counts(tmp_path):
    m = Manifest("align", 2, {"a": 1})
    m.set("b", "ok", None, psnr_y=30.0)
    m.set("a", "failed", "file not found (x.png)")
    m.set("c", "rejected", "PSNR-Y 12.00 dB < 20")
    m.save(tmp_path / "manifest.json")
    obj = json.loads((tmp_path / "manifest.json").read_text())
    assert obj["format"] == "realsr-pairs" and obj["version"] == 1 and obj["stage"] == "align"
    assert [e["name"] for e in obj["pairs"]] == ["a", "b", "c"]
    back = Manifest.load(tmp_path / "manifest.json")
    assert back.pairs == m.pairs and back.counts() == {"ok": 1, "rejected": 1, "failed": 1}
    with pytest.raises(ValueError):
        m.set("d", "done")


def test_unreadable_or_foreign_manifest_is_a_usage_error(tmp_path):
    p = tmp_path / "manifest.json"
    p.write_text("{ not json")
    with pytest.raises(UsageError):
        Manifest.load(p)
    p.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UsageError):
        Manifest.load(p)


def test_merge_and_shards(tmp_path):
    a, b = Manifest("align", 2, {"x": 1}), Manifest("align", 2, {"x": 1})
    a.set("p1", "ok")
    b.set("p2", "failed", "bad")
    assert set(merge([a, b]).pairs) == {"p1", "p2"}
    with pytest.raises(UsageError, match=r"scale: 2 -> 4"):
        merge([a, Manifest("align", 4, {"x": 1})])
    a.save(tmp_path / shard_manifest_name(1, 2))
    assert merge_shards(tmp_path, require_names=["p1", "p2"]) is None  # shard 2 not done yet
    assert not (tmp_path / "manifest.json").exists()
    b.save(tmp_path / shard_manifest_name(2, 2))
    merged = merge_shards(tmp_path, require_names=["p1", "p2"])
    assert merged is not None and set(Manifest.load(tmp_path / "manifest.json").pairs) == {"p1", "p2"}


def _previous(folder, mine: Manifest, own: str = "manifest.json", overwrite: bool = False):
    return previous_entries(folder / own, folder / "manifest.json", Manifest.load, manifest_settings,
                            manifest_settings(mine), lambda m: m.pairs, overwrite, "dataset")


def test_a_run_checks_every_record_in_the_folder_before_it_starts(tmp_path):
    """Shard 2 of a job started with other settings than shard 1's is refused at once, naming the
    setting; with overwrite the old records are deleted and their entries handed back as stale."""
    old = Manifest("degrade", 2, {"seed": 0, "mode": "classic"})
    old.set("a", "ok")
    old.save(tmp_path / shard_manifest_name(1, 2))
    new = Manifest("degrade", 2, {"seed": 1, "mode": "classic"})
    with pytest.raises(UsageError, match=r"params.seed: 0 -> 1.*--overwrite") as err:
        _previous(tmp_path, new, own=shard_manifest_name(2, 2))
    assert shard_manifest_name(1, 2) in str(err.value)
    same = Manifest("degrade", 2, {"seed": 0, "mode": "classic"})
    assert _previous(tmp_path, same, own=shard_manifest_name(2, 2)) == ({}, [])  # another shard's entries: not kept
    assert _previous(tmp_path, same, own=shard_manifest_name(1, 2))[0].keys() == {"a"}  # its own: kept
    with pytest.raises(UsageError, match="made by 'degrade', not by 'align'"):
        _previous(tmp_path, Manifest("align", 2, {}), own=shard_manifest_name(2, 2))
    kept, stale = _previous(tmp_path, new, own=shard_manifest_name(2, 2), overwrite=True)
    assert kept == {} and [e["name"] for e in stale] == ["a"]
    assert not (tmp_path / shard_manifest_name(1, 2)).exists()


def test_settings_differences_lists_dotted_paths():
    assert settings_differences({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == "a.c: 2 -> 3"
    assert settings_differences({"a": 1}, {"b": 1}) == "a: 1 -> (absent); b: (absent) -> 1"
    many = settings_differences({str(i): i for i in range(5)}, {str(i): -i for i in range(1, 6)}, limit=2)
    assert many == "0: 0 -> (absent); 1: 1 -> -1 and 4 more"  # 0 and 5 absent on one side, 1-4 differ
