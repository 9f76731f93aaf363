"""Batch monitoring: a Prefect flow that turns the logged predictions into Evidently reports."""
