"""Fields outside the schema: what is kept of them and what is reported, within the documented bounds."""

from __future__ import annotations

import bson
import pytest

from monitoring_core.unknown_fields import (
    MAX_FIELDS,
    MAX_NAME_CHARS,
    MAX_VALUE_CHARS,
    bound_unknown,
    field_name,
    field_value,
)


def test_scalars_are_kept_as_sent_in_body_order() -> None:
    extras = {"VendorID": 2, "store_and_fwd_flag": "N", "fare_amount": 7.5, "ehail_fee": None, "flag": True}
    unknown = bound_unknown(extras, keep=True)
    assert unknown.kept == extras and unknown.names == tuple(extras) and unknown.dropped == 0


def test_ignore_reports_the_names_and_keeps_no_value() -> None:
    unknown = bound_unknown({"VendorID": 2, "tip": 1.0}, keep=False)
    assert unknown.kept == {} and unknown.names == ("VendorID", "tip") and unknown.seen == 2


def test_names_and_fields_are_bounded() -> None:
    extras = {f"f{i}": i for i in range(MAX_FIELDS + 30)}
    unknown = bound_unknown(extras, keep=True)
    assert len(unknown.kept) == len(unknown.names) == MAX_FIELDS
    assert unknown.dropped == 30 and unknown.seen == MAX_FIELDS + 30
    assert len(field_name("n" * 500)) == MAX_NAME_CHARS


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("x" * 1000, "x" * MAX_VALUE_CHARS),
        (10**400, ("1" + "0" * 400)[:MAX_VALUE_CHARS]),
        ({"a": [1, 2]}, '{"a": [1, 2]}'),
        ([1, "b"], '[1, "b"]'),
        ("\ud800x", "?x"),
    ],
)
def test_values_are_cut_and_made_storable(value, kept) -> None:
    assert field_value(value) == kept


@pytest.mark.parametrize("name", ["a.b", "$where", "nul\x00", "\udfff", ""])
def test_every_kept_field_can_be_written_as_bson(name) -> None:
    unknown = bound_unknown({name: {"deep": [10**30, "\ud800"]}, "big": 2**70}, keep=True)
    bson.encode({"extra_fields": unknown.kept})  # raises on a key or value MongoDB cannot store
    assert all("." not in n and not n.startswith("$") and "\x00" not in n and n for n in unknown.names)
