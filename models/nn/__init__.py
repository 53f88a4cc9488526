"""Torch modules and the architecture configs they are rebuilt from (no training, no I/O)."""
