"""Simulated traffic for the prediction service: named drift scenarios and detection scoring."""
