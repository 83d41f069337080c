"""Helpers the tests import (tests/ is on sys.path through the rootdir conftest)."""
