"""The tuner: exported spans in, an evidence-backed policy file and a report out (`otel-claude tune`).

Importing this package is cheap on purpose: numpy, scikit-learn and chdb load only when a command runs.
Modules: `_sources`/`_ingest`/`_otlp`/`_jaeger` read files, `_clickhouse` reads `otel_traces` with SQL pushed
down, `_records`/`_dataset` hold calls and per-task statistics, `_max_tokens`/`_routing`/`_caching` decide,
`_tune` builds the policy, `_report` writes the report (`_blocks` renders it, `_charts` draws, `_techniques`
prices each technique, `_format` writes numbers), `cli` is the command, `synthetic` makes test spans.
"""
