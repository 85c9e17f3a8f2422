"""Storage: Parquet datasets with explicit schemas and one per-call protocol (:class:`base.Store`),
on a local disk (:mod:`pipeline.store.local`) or under an ``s3://`` prefix (:mod:`pipeline.store.s3`)."""
