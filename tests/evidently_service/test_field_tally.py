"""The top-K of field names outside the schema: bounded, exact while the names fit, re-sent rows counted once."""

from __future__ import annotations

from evidently_service.field_tally import FieldTally


def test_counts_rows_per_name_and_rows_with_any() -> None:
    tally = FieldTally()
    tally.add([("a", ["VendorID", "fare_amount"]), ("b", ["VendorID"]), ("c", None), ("d", [])])
    assert tally.top() == [("VendorID", 2), ("fare_amount", 1)]
    assert tally.rows == 2


def test_a_re_sent_row_is_counted_once() -> None:
    tally = FieldTally(recent=10)
    tally.add([("a", ["x"]), ("b", ["x"])])
    tally.add([("a", ["x"]), ("b", ["x"])])  # the prediction service retried the batch
    assert tally.top() == [("x", 2)] and tally.rows == 2


def test_the_tracked_and_exported_names_are_bounded_and_a_frequent_new_name_gets_in() -> None:
    tally = FieldTally(capacity=10, top=3)
    tally.add((f"noise-{i}", [f"junk{i}"]) for i in range(1000))  # a client sending random names
    assert len(tally.top()) == 3
    tally.add((f"real-{i}", ["new_column"]) for i in range(50))  # then an upstream change adds a column
    assert tally.top()[0][0] == "new_column"
    assert len(tally._counts) == 10  # noqa: SLF001 - the bound itself is the claim
