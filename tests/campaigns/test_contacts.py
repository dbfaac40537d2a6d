"""Contact uploads: good rows kept, each bad row a clear error, nothing lost."""

from __future__ import annotations

import pytest

from service.campaigns.contacts import parse_contacts, validate_e164

CSV = """contact_id,phone,timezone,customer_name,order_number
c1,+13125550100,,Ada,1001
c2,+1 212 555 0123,Europe/Paris,Bob,1002
c3,2125550123,,Cy,1003
c4,+15550100002,,Di,1004
c5,+13125550101,Mars/Base,Ed,1005
c6,+13125550102,,,1006
,+13125550103,,Fay,1007
c1,+13125550104,,Gus,1008
c9,+13125550109,,Hal,1009,extra
"""


def test_csv_rows_validated_one_error_each() -> None:
    contacts, errors = parse_contacts(
        CSV, fmt="csv", required={"customer_name"}, default_timezone="UTC"
    )
    assert [c.contact_id for c in contacts] == ["c1", "c2"]
    assert contacts[0].phone == "+13125550100" and contacts[0].zones == ("America/Chicago",)
    assert contacts[1].phone == "+12125550123" and contacts[1].zones == ("Europe/Paris",)
    assert contacts[0].variables == {"customer_name": "Ada", "order_number": "1001"}
    by_row = {e.row: e.error for e in errors}
    assert "E.164" in by_row[3]
    assert "not a valid phone number" in by_row[4]
    assert "unknown time zone" in by_row[5]
    assert "customer_name" in by_row[6]
    assert "contact_id is missing" in by_row[7]
    assert "twice" in by_row[8]
    assert "more fields" in by_row[9]
    assert len(contacts) + len(errors) == 9


def test_json_flat_or_nested_variables() -> None:
    data = b"""{"contacts": [
        {"contact_id": "a", "phone": "+442071838750", "variables": {"customer_name": "Al"}},
        {"contact_id": "b", "phone": "+14155550100", "customer_name": "Bea"},
        "not an object"
    ]}"""
    contacts, errors = parse_contacts(data, fmt="json", required={"customer_name"})
    assert [(c.contact_id, c.variables["customer_name"]) for c in contacts] == [
        ("a", "Al"), ("b", "Bea"),
    ]  # fmt: skip
    assert contacts[0].zones == ("Europe/London",)
    assert [e.row for e in errors] == [3]


def test_malformed_files_raise() -> None:
    with pytest.raises(ValueError, match="header"):
        parse_contacts("id,number\n1,+13125550100\n", fmt="csv")
    with pytest.raises(ValueError, match="JSON"):
        parse_contacts(b"{nope", fmt="json")


def test_validate_e164() -> None:
    assert validate_e164(" +1 (312) 555-0100 ") == "+13125550100"
    for bad in ("", "3125550100", "+1555", "+15550100002", "+abc"):
        with pytest.raises(ValueError):
            validate_e164(bad)
