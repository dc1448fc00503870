import pytest

from realsr.errors import UsageError
from realsr.parallel import parallel_map, parse_shard, select_shard


def test_parse_and_select_shard():
    assert parse_shard(None) == (1, 1)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "a/b", "2", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)
    items = list(range(7))
    parts = [select_shard(items, k, 3) for k in (1, 2, 3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(parts, [])) == items


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_map_returns_every_result_once(workers):
    # a builtin: spawned workers must be able to import the function (test modules are not importable)
    out = dict(parallel_map(abs, [-i for i in range(9)], workers=workers, progress=False))
    assert out == {i: i for i in range(9)}


def test_script_without_main_guard_gets_a_message_not_a_broken_pool(tmp_path):
    """A script that calls realsr with workers > 1 at module level: each spawned worker re-runs it
    and dies in its bootstrap. The caller is told about the missing ``__main__`` guard."""
    import subprocess
    import sys

    script = tmp_path / "no_guard.py"
    script.write_text("from realsr.parallel import parallel_map\n"
                      "print(dict(parallel_map(abs, [-1, -2, -3], workers=2, progress=False)))\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    # (the last line may be the resource tracker's note on the dead workers' semaphores)
    ours = [ln for ln in r.stderr.splitlines() if ln.startswith("realsr.errors.RealsrError: ")]
    assert len(ours) == 1 and "worker process ended abruptly" in ours[0] and "__main__" in ours[0], r.stderr
    guarded = tmp_path / "guarded.py"
    guarded.write_text("from realsr.parallel import parallel_map\n"
                       "if __name__ == '__main__':\n"
                       "    print(sorted(dict(parallel_map(abs, [-1, -2, -3], workers=2, progress=False)).values()))\n")
    r = subprocess.run([sys.executable, str(guarded)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[1, 2, 3]", r.stderr
