"""Data layer: raw download and ingest, synthetic phantoms, the prepared format, splits, loading."""
