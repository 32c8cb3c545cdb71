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
