"""Personal data found at registration: seeded columns of known kinds are flagged with a
masking suggestion, look-alikes are not; the suggestion is stored with the version, shown
by ``vigil model show``, and ``VIGIL_CAPTURE_REQUIRE_MASKING`` refuses to serve (and so
to capture) a flagged version until its columns are masked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

from vigil.app import Vigil, reset_default
from vigil.bundle.personal_data import (
    MIN_SHARE,
    SAMPLE_ROWS,
    iban_valid,
    luhn_valid,
    scan_personal_data,
)
from vigil.cli import app as cli
from vigil.errors import ConfigurationError

N = 300


def _luhn_complete(body: str) -> str:
    """``body`` with the check digit that makes it pass Luhn."""
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def _iban(country: str, bban: str) -> str:
    """A valid IBAN: the check digits computed as ISO 13616 says."""
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    return f"{country}{check:02d}{bban}"


def people(n: int = N, seed: int = 7) -> pd.DataFrame:
    """Seeded rows with known personal-data columns under plain and misleading names, and
    look-alikes (counts, codes, dates, versions of a product, 16-digit order numbers that
    fail Luhn) that must not be flagged."""
    rng = np.random.default_rng(seed)
    first = rng.choice(["ann", "bob", "chen", "dara", "eli", "femi"], n)
    orders = []
    while len(orders) < n:  # 16 digits that are not card numbers
        candidate = "".join(map(str, rng.integers(0, 10, 16)))
        if candidate[0] != "0" and not luhn_valid(candidate):
            orders.append(candidate)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(50_000, 9_000, n),
            "contact": [f"{f}.{i}@example.com" for i, f in enumerate(first)],  # by values
            "customerPhone": [f"+44 20 7946 {i:04d}" for i in range(n)],
            "last_name": rng.choice(["Lee", "Okafor", "Smith", "Ng", "Diaz"], n),
            "payer": [_iban("DE", f"{rng.integers(10**17, 10**18)}") for _ in range(n)],
            "card": [
                _luhn_complete("4111" + "".join(map(str, rng.integers(0, 10, 11))))
                for _ in range(n)
            ],
            "ssn": [
                f"{rng.integers(100, 600)}-{rng.integers(10, 99)}-{rng.integers(1000, 9999)}"
                for _ in range(n)
            ],
            "client_ip": [f"10.{i % 256}.{(i * 7) % 256}.{(i * 13) % 250 + 1}" for i in range(n)],
            # look-alikes
            "email_count": rng.integers(0, 20, n),
            "product_name": rng.choice(["Basic", "Plus", "Premium"], n),
            "email_domain": rng.choice(["example.com", "example.org"], n),
            "order_number": orders,
            "signup_date": [
                f"2024-{m:02d}-{d:02d}"
                for m, d in zip(rng.integers(1, 13, n), rng.integers(1, 29, n), strict=True)
            ],
            "sku": [f"AB{i:04d}-X" for i in range(n)],
            "zip": rng.integers(10_000, 99_999, n),
        }
    )


FLAGGED = {
    "contact": ("email", "values"),
    "customerPhone": ("phone", "name+values"),
    "last_name": ("person_name", "name"),
    "payer": ("iban", "values"),
    "card": ("credit_card", "values"),
    "ssn": ("national_id", "name+values"),
    "client_ip": ("ip_address", "name+values"),
}


def test_known_columns_are_flagged_and_look_alikes_are_not() -> None:
    frame = people()
    found = scan_personal_data(frame.columns, {c: frame[c].tolist() for c in frame})
    got = {c: (f["kind"], f["found_by"]) for c, f in found["columns"].items()}
    assert got == FLAGGED
    assert found["suggested_mask"] == {
        c: "drop" if kind == "credit_card" else "hash" for c, (kind, _) in FLAGGED.items()
    }
    assert found["columns"]["contact"]["share"] == 1.0
    assert found["columns"]["last_name"]["share"] is None
    assert found["rows"] == N
    # The checks the values go through, on textbook examples.
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765431")
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111121")


def test_a_minority_of_look_alike_values_flags_nothing_and_the_work_is_bounded() -> None:
    n_pii = int(SAMPLE_ROWS * (MIN_SHARE - 0.1))
    values = [f"user{i}@example.com" for i in range(n_pii)] + ["n/a"] * (SAMPLE_ROWS - n_pii)
    assert scan_personal_data(["note"], {"note": values})["columns"] == {}
    # Past the cap, values are not read: a column whose e-mails all come late is not flagged.
    late = ["n/a"] * SAMPLE_ROWS + [f"u{i}@example.com" for i in range(10 * SAMPLE_ROWS)]
    found = scan_personal_data(["note"], {"note": late})
    assert found["columns"] == {} and found["rows"] == SAMPLE_ROWS
    # Too long to be an identifier: free text that quotes an address is not an e-mail.
    long = [f"please write to me at user{i}@example.com " * 4 for i in range(20)]
    assert scan_personal_data(["comment"], {"comment": long})["columns"] == {}


def _model(frame: pd.DataFrame) -> Pipeline:
    y = (frame["income"] > 50_000).astype(int)
    numeric = ColumnTransformer([("n", "passthrough", ["age", "income"])], remainder="drop")
    return Pipeline([("cols", numeric), ("lr", LogisticRegression())]).fit(frame, y)


def test_registration_stores_the_findings_show_prints_them_and_capture_can_require_masking(
    vigil_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = people(120)[["age", "income", "contact", "customerPhone", "email_count", "sku"]]
    vigil = Vigil()
    mv = vigil.register(_model(frame), name="churn", reference=frame, alias="production")
    found = mv.manifest["personal_data"]
    assert found["suggested_mask"] == {"contact": "hash", "customerPhone": "hash"}

    reset_default()
    shown = CliRunner().invoke(cli, ["model", "show", "models:/churn/1"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "Personal data (suggested capture masking)" in shown.stdout
    assert "    contact: hash\n    customerPhone: hash\n  hash_key:" in shown.stdout
    assert "email_count" not in shown.stdout.split("Personal data")[1]

    async def serve(env: dict[str, str]) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        provider = Vigil().serving_provider(uris=["models:/churn@production"], poll_interval=0)
        try:
            await provider.start()
            assert provider.get("churn").version == 1
        finally:
            await provider.stop()

    asyncio.run(serve({}))  # off by default
    with pytest.raises(ConfigurationError) as refused:
        asyncio.run(serve({"VIGIL_CAPTURE_REQUIRE_MASKING": "true"}))
    assert str(refused.value) == (
        "capture of model 'churn' refused (VIGIL_CAPTURE_REQUIRE_MASKING): its columns "
        "contact (email), customerPhone (phone) look like personal data and are not masked; "
        'add {"contact": "hash", "customerPhone": "hash"} to VIGIL_CAPTURE_MASK (capture: '
        "mask: in vigil.yaml) and VIGIL_CAPTURE_HASH_KEY"
    )
    # Capture off: nothing is written, so nothing is refused.
    asyncio.run(serve({"VIGIL_CAPTURE_ENABLED": "false"}))
    masked = {"VIGIL_CAPTURE_ENABLED": "true", "VIGIL_CAPTURE_HASH_KEY": "k" * 32}
    asyncio.run(
        serve({**masked, "VIGIL_CAPTURE_MASK": '{"contact": "hash", "customerPhone": "drop"}'})
    )


def test_vigil_register_prints_the_findings(vigil_home: Path, tmp_path: Path) -> None:
    import skops.io as sio

    frame = people(60)[["age", "income", "contact", "order_number"]]
    model = LogisticRegression().fit(frame[["age", "income"]], frame["age"] > 50)
    sio.dump(model, tmp_path / "model.skops")
    frame.to_csv(tmp_path / "ref.csv", index=False)
    reset_default()
    args = ["register", "churn", str(tmp_path / "model.skops"), "-r", str(tmp_path / "ref.csv")]
    out = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    shown = out.stdout.split("Personal data (suggested capture masking)")[1]
    assert "contact" in shown and "email" in shown and "order_number" not in shown
    assert "    contact: hash\n  hash_key:" in shown
