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
