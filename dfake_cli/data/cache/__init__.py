"""The HDF5 face cache, split by concern (schema: docs/cache.md).

- `shards`: one atomic `.npz` per finished video while preparing (what makes prepare resumable);
- `pairing`: at assembly, FF++ source/target pairing of the shard rows and the weight scores;
- `assembly`: shards -> one HDF5 file, renamed into place only when complete;
- `reader`: `FaceCache` and `cache_attrs`, what training and evaluation use.

Everything a caller needs is importable from `dfake_cli.data.cache` itself.
"""

from dfake_cli.data.cache.assembly import assemble
from dfake_cli.data.cache.pairing import AssembleStats, plan_rows, write_scores
from dfake_cli.data.cache.reader import FaceCache, _read_rows, cache_attrs
from dfake_cli.data.cache.schema import (
    INDEX_STR, ROLE_INPUT, ROLE_REFERENCE, ROLE_SOURCE, ROLE_TARGET, SCHEMA_VERSION, now_iso,
)
from dfake_cli.data.cache.shards import ShardRows, read_shard, read_shard_meta, shard_is_usable, write_shard

__all__ = [
    "AssembleStats", "FaceCache", "INDEX_STR", "ROLE_INPUT", "ROLE_REFERENCE", "ROLE_SOURCE", "ROLE_TARGET",
    "SCHEMA_VERSION", "ShardRows", "_read_rows", "assemble", "cache_attrs", "now_iso", "plan_rows",
    "read_shard", "read_shard_meta", "shard_is_usable", "write_scores", "write_shard",
]
