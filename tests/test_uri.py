import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.errors import InvalidURIError
from vigil.uri import MAX_VERSION, ModelRef, parse_model_ref, version_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/churn/3", ModelRef("churn", version=3)),
        ("models:/churn/v3", ModelRef("churn", version=3)),
        ("models:/churn@production", ModelRef("churn", alias="production")),
        ("models:/churn/latest", ModelRef("churn")),
        ("churn", ModelRef("churn")),
        ("churn@staging", ModelRef("churn", alias="staging")),
        ("models:/churn/2147483647", ModelRef("churn", version=MAX_VERSION)),
        ("churn/007", ModelRef("churn", version=7)),
    ],
)
def test_parse(text: str, expected: ModelRef) -> None:
    assert parse_model_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "models:/",
        "models:/../x/1",
        "models:/churn/0",
        "models:/churn/x",
        "models:/churn@v2",
        "models:/churn@latest",
        "models:/a/b/c",
        "models:/churn@",
        # Only ASCII digits name a version: str.isdigit() also accepts these, int() not all.
        "models:/churn/²",
        "models:/churn/١٢",
        "models:/churn/v",
        "models:/churn/-1",
        "models:/churn/+1",
        "models:/churn/ 1",
        # Past the registry's INTEGER column, and past int()'s 4300-digit limit.
        "models:/churn/2147483648",
        "models:/churn/9223372036854775808",
        "models:/churn/" + "9" * 5000,
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidURIError):
        parse_model_ref(text)


def test_bare_names_can_be_refused() -> None:
    with pytest.raises(InvalidURIError, match="must start with"):
        parse_model_ref("churn", allow_bare=False)


def test_str_round_trips() -> None:
    for text in ("models:/churn/3", "models:/churn@production", "models:/churn/latest"):
        assert str(parse_model_ref(text)) == text


def test_out_of_range_versions_say_the_range() -> None:
    with pytest.raises(InvalidURIError, match="a version number from 1 to 2147483647"):
        parse_model_ref("models:/churn/" + "9" * 5000)


@pytest.mark.parametrize(
    ("text", "number"),
    [("1", 1), ("v3", 3), ("V3", 3), ("2147483647", MAX_VERSION), ("0000000012", 12)],
)
def test_version_number(text: str, number: int) -> None:
    assert version_number(text) == number


@pytest.mark.parametrize(
    "text", ["", "0", "v", "vv1", "²", "１", "1.0", "1e3", "-1", "2147483648", "9" * 5000, "1 "]
)
def test_not_a_version_number(text: str) -> None:
    assert version_number(text) is None


@settings(max_examples=500, derandomize=True, database=None)
@given(st.text(max_size=40) | st.from_regex(r"(models:/)?[a-z]{1,5}[/@][vV]?[0-9²٣]{0,25}"))
def test_any_text_parses_or_is_an_invalid_uri(text: str) -> None:
    try:
        ref = parse_model_ref(text)
    except InvalidURIError as exc:
        assert exc.status == 422 and exc.message
        return
    assert parse_model_ref(str(ref)) == ref  # what parses prints back as itself
    assert ref.version is None or 1 <= ref.version <= MAX_VERSION


@settings(max_examples=300, derandomize=True, database=None)
@given(st.text(max_size=30))
def test_any_text_is_a_version_number_or_none(text: str) -> None:
    number = version_number(text)
    if number is not None:
        assert 1 <= number <= MAX_VERSION
        assert text.lstrip("vV").isascii()
        assert int(text.lstrip("vV")) == number


@pytest.mark.parametrize("version", ["²", "9" * 5000, "9223372036854775808"])
def test_the_cli_refuses_a_bad_version_in_one_line(tmp_path: Path, version: str) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1,2\n")
    command = ["predict", f"models:/churn/{version}", str(rows), "-o", str(tmp_path / "out.csv")]
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", *command],
        env={**os.environ, "VIGIL_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert message.startswith("error: invalid model URI 'models:/churn/"), message
    assert "a version number from 1 to 2147483647" in message and len(message) < 400
