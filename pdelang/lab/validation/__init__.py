"""Validation of compiled PDE models against reference Transformers: corpora and metrics."""
