"""The preparation engine: manifest -> faces (+ FF++ pairs + SD latents for training sets) -> HDF5 cache.

Split by concern:
- `units`: which videos, and the units of work (one shard each) they become;
- `worker`: one unit -> one shard (decode, detect + track, align, target warps, VAE latents);
- `pool`: several worker processes on one machine;
- `results`: `PrepareResult`, the options a finished cache is compared on, the skipped-videos CSV;
- `engine`: `prepare_manifest`, which ties them together and assembles the cache.
"""

from dfake_cli.data.prepare.engine import prepare_manifest
from dfake_cli.data.prepare.results import PrepareResult, write_skipped_csv
from dfake_cli.data.prepare.units import Unit, plan_units, select_items
from dfake_cli.data.prepare.worker import MASK_THRESHOLD, STAGES, UnitWorker

__all__ = [
    "MASK_THRESHOLD", "PrepareResult", "STAGES", "Unit", "UnitWorker", "plan_units", "prepare_manifest",
    "select_items", "write_skipped_csv",
]
