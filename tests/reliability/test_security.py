"""Token on /feedback and /iterate over real HTTP, and no secret in any log at DEBUG level.

Constant-time comparison: service_common.auth.require_token (hmac.compare_digest), tested in
tests/local_stack and the services' API tests; non-root containers: tests/containers.
"""

from __future__ import annotations

import pytest
import requests
from reliability_support import TOKEN, assert_contract_error

pytestmark = pytest.mark.integration

LABELS = [{"request_id": "sec-1", "duration": 10.0}]
WRONG = "wrong-" + TOKEN[::-1]
GUARDED = [("prediction", "/feedback"), ("metrics", "/iterate/ride_duration"), ("metrics", "/feedback/ride_duration")]


def _url(stack, service: str, path: str) -> str:
    return (stack.prediction_url if service == "prediction" else stack.metrics_url) + path


@pytest.mark.parametrize(("service", "path"), GUARDED)
@pytest.mark.parametrize(
    "authorization", [None, "", f"Bearer {WRONG}", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"bearer{TOKEN}", TOKEN]
)
def test_guarded_endpoints_answer_401_without_the_exact_bearer_token(stack, service, path, authorization) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = requests.post(_url(stack, service, path), json=LABELS, headers=headers, timeout=10)
    assert response.status_code == 401, response.text
    assert_contract_error(response, 401)
    assert TOKEN not in response.text and WRONG not in response.text


@pytest.mark.parametrize(("service", "path"), GUARDED)
def test_guarded_endpoints_accept_the_token(stack, service, path) -> None:
    response = requests.post(
        _url(stack, service, path), json=LABELS, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    # Past the guard: the body is then judged on its own (labels are no rows for /iterate: a 400 naming fields).
    assert response.status_code not in (401, 403) and response.status_code < 500, response.text


def test_no_token_appears_in_any_log_at_debug_level(stack) -> None:
    # Authenticated, unauthenticated and wrong-token calls to every guarded endpoint, plus a prediction.
    ride = {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2, "lpep_pickup_datetime": "2021-01-05T08:30:00"}
    assert requests.post(f"{stack.prediction_url}/predict", json=ride, timeout=10).status_code == 200
    for service, path in GUARDED:
        for headers in ({"Authorization": f"Bearer {TOKEN}"}, {"Authorization": f"Bearer {WRONG}"}, {}):
            requests.post(_url(stack, service, path), json=LABELS, headers=headers, timeout=10)
    logs = sorted((stack.workdir / "logs").glob("*.log")) + sorted((stack.workdir / "mongo").glob("*"))
    assert len(logs) >= 3
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert '"level": "debug"' in text  # the services did log at DEBUG level
    assert TOKEN not in text
    assert WRONG not in text
