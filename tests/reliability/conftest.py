"""Hypothesis profiles for the fuzz tests (a short, derandomized pass in `make test`, a long one in `make fuzz`)
and the small WildDeepfake tree that several modules prepare.

Derandomized (the same examples every run) and without deadlines, so the suite never flakes on a loaded
machine; `make fuzz` (HYPOTHESIS_PROFILE=long) draws many more examples with a fresh seed each run.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
               print_blob=True)
settings.register_profile("short", max_examples=12, derandomize=True, database=None, **_COMMON)
settings.register_profile("long", max_examples=400, derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "short"))


@pytest.fixture(scope="module")
def wdf_root(tmp_path_factory):
    """The smallest WildDeepfake tree: one real and one fake archive, one 8 px frame each."""
    from helpers.tartools import png_bytes, write_tar

    root = tmp_path_factory.mktemp("wdf")
    base = root / "deepfake_in_the_wild"
    write_tar(base / "real_test" / "1.tar.gz", [("./1/real/5/1.png", png_bytes(10, 8))])
    write_tar(base / "fake_test" / "1.tar.gz", [("./1/fake/7/1.png", png_bytes(100, 8))])
    return root
