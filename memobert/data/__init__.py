"""Corpus schema, dataset readers, folds and the demo data generator."""
