"""The ``vigil`` command line (typer + rich).

Commands only translate arguments into calls of :class:`vigil.app.Vigil` and results into
tables or JSON. Any vigil error becomes one line on stderr and a non-zero exit status,
never a traceback.

One way to do each thing:

* Command groups are singular nouns: ``vigil model``, ``alias``, ``key``, ``alert``,
  ``endpoint``, ``experiment``, ``monitor``, ``capture``, ``db`` (``models``, ``keys`` and ``alerts`` still work,
  hidden, as they were first named).
* ``--json`` prints for scripts, in every command that shows or changes something.
* Durations and points in time are written one way (:mod:`vigil.durations`).
* Long jobs draw their progress on stderr through :func:`vigil.console.progress`.
* A command imports the subsystems it calls inside its function, when it runs: ``vigil
  --help`` and a command that needs no model never pay for SQLAlchemy, pandas or
  scikit-learn (``tests/test_cli_startup.py`` checks it). That is the reason for every
  function-level import in this package.
* A short flag means the same in every command that has it:

  ====  ===================  =========================================================
  flag  long form            commands
  ====  ===================  =========================================================
  -a    --alias              register, rollback, experiment conclude
  -d    --description        register, model edit
  -f    --file               endpoint create/update, policy set
  -m    --metric             register
  -n    --limit / --last     audit, alert list, monitor show, policy status (how many rows)
  -o    --output             predict, capture export
  -p    --policy             endpoint create/update
  -r    --reference          register
  -s    --since              report, monitor run/backfill, experiment status, capture export
  -t    --tag                register
  -v    --variant            endpoint create/update
  -w    --window             monitor run/show
  ====  ===================  =========================================================

  Every other option has only its long form. ``tests/test_cli.py`` checks this table
  against the commands.
"""

from __future__ import annotations

# isort: split
import vigil.cli._collector  # noqa: F401  first: `vigil serve` pauses the collector here

# isort: split
import typer

from vigil.cli import alerts as _alerts
from vigil.cli import audit as _audit
from vigil.cli import backfill as _backfill
from vigil.cli import capture as _capture
from vigil.cli import card as _card
from vigil.cli import db as _db
from vigil.cli import drift as _drift
from vigil.cli import endpoints as _endpoints
from vigil.cli import experiment as _experiment
from vigil.cli import explain as _explain
from vigil.cli import feedback as _feedback
from vigil.cli import keys as _keys
from vigil.cli import models as _models
from vigil.cli import monitor as _monitor
from vigil.cli import policy as _policy
from vigil.cli import predict as _predict
from vigil.cli import replay as _replay
from vigil.cli import report as _report
from vigil.cli import serve as _serve
from vigil.cli import validate as _validate

app = typer.Typer(
    name="vigil",
    help="Take a trained model to production and keep watch over it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        from vigil.version import VERSION

        typer.echo(VERSION)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print vigil's version and exit.",
    ),
) -> None:
    """Take a trained model to production and keep watch over it."""


_models.install(app)
_audit.install(app)
_drift.install(app)
_predict.install(app)
_feedback.install(app)
_capture.install(app)
_report.install(app)
_card.install(app)
_monitor.install(app)
_backfill.install(app)
_alerts.install(app)
_serve.install(app)
_keys.install(app)
_endpoints.install(app)
_experiment.install(app)
_policy.install(app)
_validate.install(app)
_replay.install(app)
_explain.install(app)
_db.install(app)


@app.command()
def version() -> None:
    """Print vigil's version (as ``vigil --version`` does)."""
    from vigil.version import VERSION

    typer.echo(VERSION)


@app.command()
def demo(
    home: str = typer.Option(
        "vigil-demo",
        help="The demo's own home, emptied on every run (never VIGIL_HOME): a new or empty "
        "directory, or the demo's from an earlier run.",
    ),
    database_url: str = typer.Option(
        None,
        envvar="VIGIL_DEMO_DATABASE_URL",
        help="Keep the metadata in this (new, empty) database instead of the home.",
    ),
) -> None:
    """Train, register, serve, monitor, retrain through an update policy and run an
    experiment, end to end, in a home of the demo's own; then print the commands to look
    around."""
    from vigil.demo import run_demo

    run_demo(home=home, database_url=database_url)


def main() -> None:
    """Console-script entry point: run the app, turning known errors into one line."""
    from vigil.console import fail
    from vigil.errors import VigilError

    try:
        app(standalone_mode=True)
    except VigilError as exc:
        fail(exc.message)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError

        if not isinstance(exc, DBAPIError):
            raise
        fail(_database_problem(exc))


def _database_problem(exc: Exception) -> str:
    """One line for a database that cannot be reached or refuses us: which one (its URL
    without the password) and the driver's first line."""
    from vigil._redact import redact_url
    from vigil.app import default

    url = default().settings.resolved_database_url
    orig = getattr(exc, "orig", None) or exc
    reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    from sqlalchemy.engine import make_url

    password = make_url(url).password
    if password:
        reason = reason.replace(str(password), "***")
    return (
        f"cannot use the database {redact_url(url)}: {reason}; check VIGIL_DATABASE_URL and "
        "that the server is running"
    )
