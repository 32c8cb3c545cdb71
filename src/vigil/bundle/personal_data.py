"""Columns that look like personal data, found at registration from names and values.

A column is flagged when its *name* says what it holds (``email``, ``phone_number``,
``last_name``, ``iban``, ...) and its values are text, or when most of its sampled
*values* look like one kind of personal data: e-mail addresses, phone numbers, IP
addresses, IBANs (with their mod-97 check), payment card numbers (with their Luhn check)
or US social security numbers. Each finding comes with the capture ``mask`` action that
hides it (``hash``, so that equal values still join and ``vigil capture erase`` can find
a person's records, or ``drop`` for card numbers, which nobody should keep).

Person names are found by column name only: no pattern tells "Ann Lee" from "New York".
A count such as ``email_count`` is numeric and is not flagged by its name.

The work is bounded: at most :data:`SAMPLE_ROWS` values per column, each cut to
:data:`MAX_CHARS` characters, whatever the size of the reference data.

>>> found = scan_personal_data(
...     ["contact", "age", "last_name"],
...     {"contact": ["ann@example.com", "bob@example.org", None, "cy@example.net",
...                  "dee@example.com", "eve@example.com"],
...      "age": [31, 45, 27, 60, 38, 52],
...      "last_name": ["Lee", "Smith", "Okafor", "Ng", "Diaz", "Berg"]},
... )
>>> {c: (f["kind"], f["found_by"]) for c, f in found["columns"].items()}
{'contact': ('email', 'values'), 'last_name': ('person_name', 'name')}
>>> found["suggested_mask"]
{'contact': 'hash', 'last_name': 'hash'}
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SAMPLE_ROWS = 1000
"""Values read per column (the first ones of the profile's seeded sample)."""
MAX_CHARS = 64
"""A longer value is not an identifier: it is not tested."""
MIN_VALUES = 5
"""Fewer non-empty values than this never flag a column by its values alone."""
MIN_SHARE = 0.8
"""Share of the non-empty sampled values that must look like one kind."""

SUGGESTED_ACTION: dict[str, str] = {
    "email": "hash",
    "phone": "hash",
    "person_name": "hash",
    "national_id": "hash",
    "iban": "hash",
    "credit_card": "drop",
    "ip_address": "hash",
    "birth_date": "hash",
    "address": "hash",
}
"""The capture ``mask`` action suggested for each kind."""

# Column-name tokens (after splitting snake, kebab and camel case): a whole-name match
# (the tokens joined) or a run of tokens.
_NAME_KINDS: dict[str, tuple[str, ...]] = {
    "email": ("email", "e_mail", "mail", "email_address", "mail_address"),
    "phone": (
        "phone",
        "phone_number",
        "telephone",
        "tel",
        "mobile",
        "mobile_number",
        "cell_phone",
        "msisdn",
    ),
    "person_name": (
        "name",
        "first_name",
        "firstname",
        "last_name",
        "lastname",
        "surname",
        "full_name",
        "fullname",
        "given_name",
        "family_name",
        "middle_name",
        "maiden_name",
        "customer_name",
        "client_name",
        "patient_name",
        "person_name",
        "user_name",
        "username",
        "contact_name",
        "holder_name",
        "account_holder",
    ),
    "national_id": (
        "ssn",
        "social_security_number",
        "national_id",
        "national_insurance_number",
        "nino",
        "passport",
        "passport_number",
        "tax_id",
        "tin",
        "nhs_number",
        "driver_license",
        "drivers_license",
        "id_card",
        "id_number",
    ),
    "iban": ("iban", "bank_account", "account_number"),
    "credit_card": (
        "credit_card",
        "card_number",
        "cc_number",
        "creditcard",
        "pan",
        "card_no",
    ),
    "ip_address": ("ip", "ip_address", "ipaddress", "ip_addr", "client_ip", "remote_addr"),
    "birth_date": ("dob", "date_of_birth", "birth_date", "birthdate", "birthday"),
    "address": (
        "address",
        "street",
        "street_address",
        "home_address",
        "postal_address",
        "postcode",
        "post_code",
        "zip",
        "zip_code",
        "zipcode",
    ),
}
_NAME_INDEX = {alias: kind for kind, aliases in _NAME_KINDS.items() for alias in aliases}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# An international number (+ and 7 to 15 digits), or a national one written in groups
# ((0xx) xxx-xxxx, 0xx xxx xxxx, xxx-xxx-xxxx): a bare run of digits is an id, not a
# phone, and dots are left out as they also group thousands.
_PHONE = re.compile(
    r"\+[1-9][0-9 ().-]{6,20}"
    r"|\(?0?[0-9]{2,4}\)?[ -][0-9]{3,4}[ -][0-9]{3,4}"
)
_SSN = re.compile(r"(?!000|666|9)[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_CARD = re.compile(r"[0-9]{13,19}")


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check of payment card numbers.

    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """Whether ``text`` (spaces removed) is an IBAN with a valid ISO 13616 check (mod 97).

    >>> iban_valid("GB82WEST12345698765432"), iban_valid("GB82WEST12345698765433")
    (True, False)
    """
    if _IBAN.fullmatch(text) is None:
        return False
    moved = text[4:] + text[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _value_kind(text: str) -> str | None:
    """The kind of personal data one value looks like, if any."""
    if "@" in text:
        return "email" if _EMAIL.fullmatch(text) else None
    compact = text.replace(" ", "").replace("-", "")
    if compact.isdigit() and _CARD.fullmatch(compact) and luhn_valid(compact):
        return "credit_card"
    if _SSN.fullmatch(text):
        return "national_id"
    if compact[:2].isalpha() and iban_valid(compact.upper()):
        return "iban"
    if ("." in text or ":" in text) and _is_ip(text):
        return "ip_address"
    if _PHONE.fullmatch(text) and 7 <= sum(ch.isdigit() for ch in text) <= 15:
        return "phone"
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def name_kind(column: str) -> str | None:
    """The kind of personal data a column's name announces, if any.

    >>> name_kind("customerEmail"), name_kind("Phone-Number"), name_kind("product_name")
    ('email', 'phone', None)
    """
    tokens = [t for t in re.split(r"[^a-z0-9]+", _CAMEL.sub("_", column).lower()) if t]
    if not tokens:
        return None
    whole = "_".join(tokens)
    if whole in _NAME_INDEX:
        return _NAME_INDEX[whole]
    # The longest run of tokens that names a kind, anywhere but as a qualifier of another
    # noun: "email_domain", "name_length", "product_name" and "ip_country" are not data of
    # a person; "customer_email" and "billing_phone_number" are.
    for size in range(min(len(tokens), 4), 0, -1):
        for start in range(len(tokens) - size + 1):
            run = "_".join(tokens[start : start + size])
            kind = _NAME_INDEX.get(run)
            if kind is None or start + size != len(tokens):
                continue
            if kind == "person_name" and run == "name":
                # "name" at the end names a person only after a word for one
                owner = tokens[start - 1] if start else ""
                if owner not in {
                    "customer",
                    "client",
                    "patient",
                    "person",
                    "user",
                    "contact",
                    "holder",
                    "owner",
                    "applicant",
                    "employee",
                    "member",
                    "full",
                    "first",
                    "last",
                    "given",
                    "family",
                    "middle",
                    "maiden",
                }:
                    continue
            return kind
    return None


def _is_text(values: Sequence[Any]) -> bool:
    return any(isinstance(v, str) for v in values)


def _values_kind(values: Sequence[Any]) -> tuple[str | None, float, int]:
    """The kind most of ``values`` look like, the share that do and how many were read."""
    counts: dict[str, int] = {}
    seen = 0
    for value in values:
        if value is None or isinstance(value, bool | float):
            continue  # floats are measurements; bools flags; neither identifies a person
        text = str(value).strip()
        if not text:
            continue
        seen += 1
        if len(text) > MAX_CHARS:
            continue
        kind = _value_kind(text)
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    if not counts or seen < MIN_VALUES:
        return None, 0.0, seen
    kind, hits = max(counts.items(), key=lambda kv: kv[1])
    return kind, hits / seen, seen


def scan_personal_data(
    columns: Iterable[str], sample: Mapping[str, Sequence[Any]] | None = None
) -> dict[str, Any]:
    """Findings on ``columns`` (names) and their ``sample`` values (column → values, e.g.
    a baseline profile's seeded sample): ``{"columns": {name: {"kind", "found_by",
    "share", "suggested"}}, "suggested_mask": {name: action}, "rows": n}``, where
    ``found_by`` is ``"name"``, ``"values"`` or ``"name+values"`` and ``share`` the share
    of sampled values that look like ``kind`` (``None`` when no values were read)."""
    found: dict[str, dict[str, Any]] = {}
    rows = 0
    for column in columns:
        values = list((sample or {}).get(column, ())[:SAMPLE_ROWS])
        rows = max(rows, len(values))
        by_name = name_kind(column)
        by_values, share, seen = _values_kind(values)
        if by_values is not None and share < MIN_SHARE:
            by_values = None
        # A name with numbers under it is a count or a code (email_count, zip as an
        # integer feature): flagged by its name only when its values are text, or unknown.
        if by_name is not None and values and not _is_text(values) and by_values is None:
            by_name = None
        if by_name is None and by_values is None:
            continue
        kind = by_values or by_name
        assert kind is not None
        found[column] = {
            "kind": kind,
            "found_by": "+".join(
                w for w, hit in (("name", by_name), ("values", by_values)) if hit is not None
            ),
            "share": round(share, 4) if seen and by_values is not None else None,
            "suggested": SUGGESTED_ACTION[kind],
        }
    return {
        "columns": found,
        "suggested_mask": {c: f["suggested"] for c, f in found.items()},
        "rows": rows,
    }


def unmasked(personal_data: Mapping[str, Any] | None, mask: Mapping[str, str]) -> list[str]:
    """The flagged columns of a version's ``personal_data`` that ``mask`` leaves as they are.

    >>> unmasked({"columns": {"email": {}, "phone": {}}}, {"email": "hash"})
    ['phone']
    """
    flagged = (personal_data or {}).get("columns") or {}
    return sorted(c for c in flagged if c not in mask)
