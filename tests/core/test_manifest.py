import json

import pytest

from realsr.errors import UsageError
from realsr.manifest import Manifest, merge, merge_shards, shard_manifest_name


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
    with pytest.raises(UsageError):
        merge([a, Manifest("align", 4, {"x": 1})])
    a.save(tmp_path / shard_manifest_name(1, 2))
    assert merge_shards(tmp_path, require_names=["p1", "p2"]) is None  # shard 2 not done yet
    assert not (tmp_path / "manifest.json").exists()
    b.save(tmp_path / shard_manifest_name(2, 2))
    merged = merge_shards(tmp_path, require_names=["p1", "p2"])
    assert merged is not None and set(Manifest.load(tmp_path / "manifest.json").pairs) == {"p1", "p2"}
