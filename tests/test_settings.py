from pathlib import Path

import pytest

from vigil.errors import ConfigurationError
from vigil.settings import load_settings


def test_embedded_default_lives_in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path))
    s = load_settings()
    assert s.home == tmp_path
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'vigil.db'}"
    assert s.resolved_artifact_url == str(tmp_path / "artifacts")


def test_postgres_scheme_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_DATABASE_URL", "postgresql://u:p@127.0.0.1:5432/v")
    assert load_settings().resolved_database_url == "postgresql+psycopg://u:p@127.0.0.1:5432/v"


@pytest.mark.parametrize(
    ("var", "value", "setting"),
    [
        ("VIGIL_DATABASE_URL", "mysql://x", "VIGIL_DATABASE_URL"),
        ("VIGIL_ARTIFACT_URL", "ftp://host/x", "VIGIL_ARTIFACT_URL"),
    ],
)
def test_invalid_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, setting: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match=setting):
        load_settings()


def test_yaml_file_is_read_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(f"home: {tmp_path / 'from-yaml'}\nactor: alice\n")
    monkeypatch.setenv("VIGIL_CONFIG", str(cfg))
    monkeypatch.delenv("VIGIL_HOME", raising=False)
    s = load_settings()
    assert s.home == tmp_path / "from-yaml"
    assert s.resolved_actor == "alice"
    monkeypatch.setenv("VIGIL_ACTOR", "bob")
    assert load_settings().resolved_actor == "bob"


def test_unknown_yaml_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text("databse_url: sqlite:///x.db\n")
    monkeypatch.setenv("VIGIL_CONFIG", str(cfg))
    with pytest.raises(ConfigurationError, match="DATABSE_URL"):
        load_settings()


def test_missing_config_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_CONFIG", "/nonexistent/vigil.yaml")
    with pytest.raises(ConfigurationError, match="not a file"):
        load_settings()


def test_subsystem_sections_of_the_yaml_are_left_to_their_owners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        f"home: {tmp_path / 'h'}\nserve:\n  max_batch_size: 8\nmonitor:\n  window: 1h\n"
        "capture:\n  fsync: always\n"
    )
    monkeypatch.setenv("VIGIL_CONFIG", str(cfg))
    monkeypatch.delenv("VIGIL_HOME", raising=False)
    assert load_settings().home == tmp_path / "h"
    from vigil.capture.settings import CaptureSettings
    from vigil.monitor.settings import load_monitor_settings

    assert CaptureSettings().fsync == "always"
    assert load_monitor_settings().window == "1h"
    monkeypatch.setenv("VIGIL_CAPTURE_FSYNC", "interval")  # the environment still wins
    assert CaptureSettings().fsync == "interval"


# -- every subsystem's settings: one way to read them, one line when one is wrong ------------

_BAD_SETTINGS = [
    # (subsystem, command, environment, the variable the error names)
    ("core", ["models", "list"], {"VIGIL_DATABASE_URL": "mysql://x"}, "VIGIL_DATABASE_URL"),
    ("serve", ["serve"], {"VIGIL_SERVE_MAX_BATCH_SIZE": "0"}, "VIGIL_SERVE_MAX_BATCH_SIZE"),
    ("capture", ["feedback", "{labels}"], {"VIGIL_CAPTURE_FSYNC": "often"}, "VIGIL_CAPTURE_FSYNC"),
    ("capture", ["monitor", "run"], {"VIGIL_CAPTURE_SEGMENT_BYTES": "1"}, "SEGMENT_BYTES"),
    ("monitor", ["monitor", "run"], {"VIGIL_MONITOR_WINDOW": "fortnight"}, "VIGIL_MONITOR_WINDOW"),
    (
        "policy state",
        ["experiment", "status", "checkout"],
        {"VIGIL_REDIS_URL": "http://cache:6379"},
        "VIGIL_REDIS_URL",
    ),
]


@pytest.mark.parametrize(
    ("subsystem", "command", "environment", "setting"),
    _BAD_SETTINGS,
    ids=[f"{case[0]}-{case[1][0]}" for case in _BAD_SETTINGS],
)
def test_a_bad_setting_of_any_subsystem_is_one_line_naming_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    subsystem: str,
    command: list[str],
    environment: dict[str, str],
    setting: str,
) -> None:
    from tests.test_cli import assert_one_line_error, run

    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\nr1,1\n")
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    result = run(*[arg.format(labels=labels) for arg in command], home=tmp_path / "home")
    assert_one_line_error(result, "invalid setting", setting)


@pytest.mark.parametrize(
    ("section", "command", "setting"),
    [
        ("serve:\n  max_batch_size: 0\n", ["serve"], "VIGIL_SERVE_MAX_BATCH_SIZE"),
        ("capture:\n  fsync: often\n", ["feedback", "{labels}"], "VIGIL_CAPTURE_FSYNC"),
        ("monitor:\n  window: fortnight\n", ["monitor", "run"], "VIGIL_MONITOR_WINDOW"),
    ],
)
def test_a_bad_setting_in_a_section_of_the_yaml_names_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: str, command: list[str], setting: str
) -> None:
    from tests.test_cli import assert_one_line_error, run

    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\nr1,1\n")
    config = tmp_path / "vigil.yaml"
    config.write_text(section)
    monkeypatch.setenv("VIGIL_CONFIG", str(config))
    result = run(*[arg.format(labels=labels) for arg in command], home=tmp_path / "home")
    assert_one_line_error(result, "invalid setting", setting)


def test_the_serve_section_keeps_what_vigil_serve_reads_for_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vigil.app import Vigil

    config = tmp_path / "vigil.yaml"
    config.write_text(
        f"home: {tmp_path / 'h'}\n"
        "serve:\n  max_batch_size: 8\n  poll_interval: 5\n  aliases: {churn: staging}\n"
    )
    monkeypatch.setenv("VIGIL_CONFIG", str(config))
    monkeypatch.delenv("VIGIL_HOME", raising=False)
    vigil = Vigil()
    assert vigil.serving_settings.max_batch_size == 8
    monkeypatch.setenv("VIGIL_SERVE_MAX_BATCH_SIZE", "16")  # read once, by the root
    assert vigil.serving_settings.max_batch_size == 8
    assert Vigil().serving_settings.max_batch_size == 16
