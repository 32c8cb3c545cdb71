import pytest

from vigil.errors import InvalidURIError
from vigil.uri import ModelRef, parse_model_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/churn/3", ModelRef("churn", version=3)),
        ("models:/churn/v3", ModelRef("churn", version=3)),
        ("models:/churn@production", ModelRef("churn", alias="production")),
        ("models:/churn/latest", ModelRef("churn")),
        ("churn", ModelRef("churn")),
        ("churn@staging", ModelRef("churn", alias="staging")),
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
