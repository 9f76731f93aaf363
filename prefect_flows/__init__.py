"""Batch monitoring: a Prefect flow that turns the logged predictions into Evidently reports.

Prefect reads its settings once, when it is first imported: an environment variable set later in the
process (say in `main`) is not seen by Prefect, and the temporary API server then has its 20 s start-up
default and the in-process analytics stay on. Every entry point (`python -m prefect_flows.batch_monitoring`,
`python -m prefect_flows.serve`, an import of the flow) imports this package before any of its modules
imports Prefect, so the defaults below are set here; a value the user set wins.
"""

import os

ANALYTICS = "PREFECT_SERVER_ANALYTICS_ENABLED"
DO_NOT_TRACK = "DO_NOT_TRACK"
STARTUP_TIMEOUT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"

# No telemetry from a monitoring job (Prefect's server and SDK, and Evidently); time for the temporary
# server to start on a busy machine (about 7 s idle, more than 20 s under a CPU load of 4 on 2 cores).
# An empty value counts as unset, as for every setting of the stack.
PREFECT_DEFAULTS = {ANALYTICS: "false", DO_NOT_TRACK: "1", STARTUP_TIMEOUT: "300"}
# One statement per variable, so the contract test sees each read (tests/test_contract.py).
os.environ[ANALYTICS] = os.environ.get(ANALYTICS) or PREFECT_DEFAULTS[ANALYTICS]
os.environ[DO_NOT_TRACK] = os.environ.get(DO_NOT_TRACK) or PREFECT_DEFAULTS[DO_NOT_TRACK]
os.environ[STARTUP_TIMEOUT] = os.environ.get(STARTUP_TIMEOUT) or PREFECT_DEFAULTS[STARTUP_TIMEOUT]
