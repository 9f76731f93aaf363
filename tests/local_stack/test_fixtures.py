"""The process fixtures start real servers that real clients talk to."""

from __future__ import annotations

import textwrap

import pytest
from pymongo import MongoClient

from local_stack.components import prometheus_query
from local_stack.processes import free_port, wait_until

pytestmark = pytest.mark.integration


def test_mongo_fixture_round_trips_a_document(mongo) -> None:
    proc, uri = mongo
    client = MongoClient(uri, serverSelectionTimeoutMS=3000)
    collection = client["t"]["docs"]
    collection.insert_one({"request_id": "abc", "value": 1.5})
    assert collection.find_one({"request_id": "abc"}, {"_id": 0}) == {"request_id": "abc", "value": 1.5}
    client.close()
    proc.stop()
    assert not proc.alive()


def test_prometheus_fixture_scrapes_itself(prometheus_factory) -> None:
    port = free_port()
    config = textwrap.dedent(
        f"""
        global: {{scrape_interval: 1s}}
        scrape_configs:
          - job_name: self
            static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
        """
    )
    _, url = prometheus_factory(config, port=port)
    result = wait_until(lambda: prometheus_query(url, 'up{job="self"} == 1'), timeout=30, what="self scrape")
    assert float(result[0]["value"][1]) == 1.0
    # A value Prometheus scraped from itself, read back through the query API.
    samples = wait_until(
        lambda: prometheus_query(url, 'prometheus_build_info{job="self"}'), timeout=30, what="build info"
    )
    assert samples[0]["metric"]["job"] == "self"
