"""The names of the `dfake bench` parts, in the order `all` runs them (no torch import: the CLI lists them)."""

PARTS: tuple[str, ...] = ("train-step", "train", "loader", "prepare", "eval")
