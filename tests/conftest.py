"""Shared test settings: offline, no progress bars, few threads (2-core CI machine)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DFAKE_NO_PROGRESS", "1")

import torch  # noqa: E402  (torch before decord, always)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
