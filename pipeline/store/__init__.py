"""Storage: Parquet datasets with explicit schemas and one per-file protocol (done / write / fail)."""
