"""Shared model code: feature schema, data, training and the reference dataset."""
