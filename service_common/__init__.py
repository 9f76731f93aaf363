"""Plumbing both Flask services share: token auth, JSON errors, logging, the gunicorn launcher."""
