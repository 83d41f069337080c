"""Names shared by the cache writer and reader: schema version, row roles, string index columns.

Shard rows have a finer role than the final file: "input" (a sample to classify), "source" (an original's
own-detection crop used only as a source face) and "target" (an original's frame warped with a fake's
transform). In the final file "source" and "target" rows become role "reference".
"""

from __future__ import annotations

import time

SCHEMA_VERSION = 1
ROLE_INPUT, ROLE_SOURCE, ROLE_TARGET, ROLE_REFERENCE = "input", "source", "target", "reference"
INDEX_STR = ("video_id", "method", "split", "role")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
