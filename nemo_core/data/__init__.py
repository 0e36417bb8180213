"""The dataset in SQLite: reading raw rows (`jsontext`, `records`), extracting decision points (`extract`,
`decision_point`), the store and its filters (`store`, `filters`), ingest, the grading views, the demo data and
the overview. Imports only `base`."""
