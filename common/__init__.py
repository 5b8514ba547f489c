"""Small utilities shared by every package: atomic file writes, logging, provenance."""
