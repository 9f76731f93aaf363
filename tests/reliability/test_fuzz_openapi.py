"""Schemathesis against the real prediction service's own /openapi.json: no 5xx, every 4xx in the contract's shape.

Each operation of the published document is fuzzed with schemathesis's positive (schema-valid) and
negative (schema-violating) cases, sent over HTTP to `python -m prediction_service` under gunicorn,
and checked with schemathesis's own checks plus the contract's error shape.
(`schemathesis.pytest.from_fixture` does not run under pytest 9, hence the explicit strategies.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from reliability_support import TOKEN, assert_contract_error, assert_healthy, examples
from schemathesis import GenerationMode

pytestmark = pytest.mark.integration


def contract_error_shape(ctx, response, case) -> None:
    """Every 4xx carries the contract's JSON error body (405 included)."""
    if 400 <= response.status_code < 500:
        assert_contract_error(response, response.status_code)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_no_5xx_and_contract_errors(stack, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.prediction_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/feedback"}
    sent = 0
    for operation in operations:
        if operation.method.upper() != "POST":
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=examples(100), deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case) -> None:
            nonlocal sent
            sent += 1
            case.call_and_validate(
                base_url=stack.prediction_url,
                headers={"Authorization": f"Bearer {TOKEN}"},
                additional_checks=[contract_error_shape],
            )

        run()
    assert sent >= 2 * examples(100) * 0.5
    assert_healthy(stack)
