"""Training: the resolved config (TOML + flags), cache-backed data loading, the resumable (DDP) trainer."""
