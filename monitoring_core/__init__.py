"""What the runtimes exchange, defined once.

The prediction service, the metrics service, the batch flow, the local stack and the
benchmarks all import their shared contracts from here: where the artifacts live, the
logged MongoDB document and its indexes, the forwarded row and the label, the request id,
ride validation generated from the schema, the drift adapter and its configuration, and
the segment rule. Nothing here imports a runtime package (prediction_service,
evidently_service, prefect_flows, usage_simulation), so each runtime ships only this and
its own code.
"""
