import pytest

from vigil.errors import InvalidNameError
from vigil.names import check_alias, check_model_name, check_tag_key


@pytest.mark.parametrize("name", ["churn", "churn-v2", "a.b_c-1", "X" * 128, "7up"])
def test_valid_model_names(name: str) -> None:
    assert check_model_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../etc",
        "a/b",
        "a\\b",
        "..",
        "a..b",
        ".hidden",
        "-x",
        "a b",
        "a\x00b",
        "a\nb",
        "é",
        "X" * 129,
        "a@b",
    ],
)
def test_invalid_model_names(name: str) -> None:
    with pytest.raises(InvalidNameError) as err:
        check_model_name(name)
    assert "model name" in err.value.message
    assert err.value.status == 422


def test_non_string_name_is_refused() -> None:
    with pytest.raises(InvalidNameError, match="must be a string"):
        check_model_name(3)


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v1", "V12", "3"])
def test_reserved_aliases(alias: str) -> None:
    with pytest.raises(InvalidNameError, match="reserved"):
        check_alias(alias)


def test_alias_and_tag_rules_share_the_name_rule() -> None:
    assert check_alias("production") == "production"
    assert check_tag_key("owner.team") == "owner.team"
    with pytest.raises(InvalidNameError, match="tag key"):
        check_tag_key("a/b")
