"""Hypothesis profiles for the fuzz tests: a short, derandomized pass in `make test`, a long one in `make fuzz`.

Derandomized (the same examples every run) and without deadlines, so the suite never flakes on a loaded
machine; `make fuzz` (HYPOTHESIS_PROFILE=long) draws many more examples with a fresh seed each run.
"""

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
               print_blob=True)
settings.register_profile("short", max_examples=12, derandomize=True, database=None, **_COMMON)
settings.register_profile("long", max_examples=400, derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "short"))
