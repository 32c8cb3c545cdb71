"""The policy engine: starts runs and moves each through its states.

:meth:`PolicyEngine.advance` looks at one run and does the next thing its state calls for
(see :mod:`vigil.policy.runs` for the states); :meth:`PolicyEngine.tick` advances every
run in flight. Any process may call them, as often as it likes: every transition is a
compare-and-set, and the long steps (the export and the job's start; the gate) are leased,
so each happens once however many replicas tick. The server's loop
(:mod:`vigil.policy.scheduler`) ticks every few seconds; ``vigil policy run --wait`` ticks
from the shell.

=============  ====================================================================
state          what advancing it does
=============  ====================================================================
triggered      lease it, resolve the served version, export the training data,
               start the retrain action (command or webhook) → ``training``
training       wait for ``vigil register --candidate-for`` (→ ``gating``); fail when
               the command exited without one or the action's timeout passed
gating         lease it, score candidate and served version on the held-out labelled
               traffic and/or the holdout file (:mod:`vigil.batch.gate`) → ``shadow``
               (or ``canary`` without a shadow stage) or ``rejected``
shadow         judge the shadow (:func:`~vigil.policy.rollout.judge_shadow`) →
               ``canary`` or ``rolled_back``
canary         read the canary's ramp → ``promoted`` or ``rolled_back``
=============  ====================================================================

Every transition is audited (``policy.<state>``, with the numbers behind it); a run that
fails, is rejected or is rolled back raises an alert (``policy_failed``,
``policy_rejected``, ``policy_rolled_back``) and a promotion an ``info`` one
(``policy_promoted``), through monitoring's webhooks.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from vigil.durations import parse_duration
from vigil.errors import ConflictError, NotFoundError, VigilError
from vigil.policy import rollout
from vigil.policy.actions import job_facts, launch_command, post_webhook_action
from vigil.policy.config import CommandAction, PolicyConfig
from vigil.policy.runs import FINAL, Run, RunStore
from vigil.policy.store import PolicyStore
from vigil.storage.sql import utcnow

if TYPE_CHECKING:
    from pathlib import Path

    from vigil.policy.services import PolicyServices

__all__ = ["PolicyEngine"]

log = logging.getLogger("vigil.policy")

_ALERTS = {
    "failed": ("policy_failed", "critical"),
    "rejected": ("policy_rejected", "warning"),
    "rolled_back": ("policy_rolled_back", "critical"),
    "promoted": ("policy_promoted", "info"),
}


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


class PolicyEngine:
    """Starts and advances policy runs for one installation (see the module docs)."""

    def __init__(self, app: PolicyServices, *, actor: str = "policy-engine") -> None:
        self.vigil = app
        self.actor = actor
        self.runs = RunStore(app.database)
        self.policies = PolicyStore(app)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=app.policy_settings.lease_s)

    def __repr__(self) -> str:
        return f"PolicyEngine(holder={self.holder!r})"

    # -- starting -----------------------------------------------------------------------

    def start(
        self, model: str, trigger: dict[str, Any], *, actor: str, automatic: bool = False
    ) -> Run | None:
        """Start a run of ``model``'s policy. ``automatic`` runs (alerts, schedule,
        threshold) respect the policy's ``enabled`` and ``cooldown`` and return ``None``
        instead of raising when they may not start; a manual one raises (409 while a run
        is in flight)."""
        policy = self.policies.get(model).config
        if automatic:
            if not policy.enabled:
                return None
            last = self.runs.list(model, limit=1)
            cooldown = parse_duration(policy.cooldown)
            if last and utcnow() - last[0].created_at < cooldown:
                return None
            try:
                return self.runs.start(model, trigger, actor=actor)
            except ConflictError:
                return None
        return self.runs.start(model, trigger, actor=actor)

    # -- advancing ----------------------------------------------------------------------

    def tick(self) -> list[Run]:
        """Advance every run in flight once; the runs that changed."""
        changed = []
        for run in self.runs.all_active():
            try:
                after = self.advance(run)
            except Exception:  # one broken run must not stop the others
                log.exception("could not advance policy run %s", run.run_id)
                continue
            if after is not None and after.revision != run.revision:
                changed.append(after)
        return changed

    def drive(self, run_id: str, *, timeout: float, interval: float = 0.5) -> Run:
        """Advance ``run_id`` until it ends or ``timeout`` seconds pass; the run then."""
        deadline = time.monotonic() + timeout
        run = self.runs.get(run_id)
        while run.state not in FINAL and time.monotonic() < deadline:
            self.advance(run)
            time.sleep(interval)
            run = self.runs.get(run_id)
        return run

    def advance(self, run: Run) -> Run | None:
        """Do what ``run``'s state calls for now; the run after (``None`` if another
        process changed it first)."""
        policy = self.policies.find(run.model)
        if policy is None:
            return self._end(run, "failed", "the model's policy was deleted during the run")
        config = policy.config
        step = {
            "triggered": self._export_and_launch,
            "exporting": self._export_and_launch,
            "training": self._wait_for_candidate,
            "gating": self._gate,
            "shadow": self._shadow,
            "canary": self._canary,
        }.get(run.state)
        if step is None:
            return run
        return step(run, config)

    # -- helpers --------------------------------------------------------------------------

    def _run_dir(self, run: Run) -> Path:
        return self.vigil.policy_dir / run.model / run.run_id

    def _claim(self, run: Run, state: str) -> Run | None:
        """Lease ``run`` for this process's work in ``state`` (``None`` while another
        process holds a live lease, or won the race)."""
        if run.state == state and run.leased(utcnow(), self.holder):
            return None
        return self.runs.transition(run, state, actor=self.actor, lease=(self.holder, self.lease))

    def _end(
        self,
        run: Run,
        state: str,
        reason: str,
        data: dict[str, Any] | None = None,
        config: PolicyConfig | None = None,
    ) -> Run | None:
        """Move ``run`` to the final ``state``, put the endpoint back and raise the alert."""
        error = None if state == "promoted" else reason
        ended = self.runs.transition(
            run,
            state,
            actor=self.actor,
            data={**(data or {}), "note": reason},
            error=error,
            audit={**(data or {}), "reason": reason},
        )
        if ended is None:
            return None
        if config is not None and run.state in ("shadow", "canary"):
            self._restore_endpoint(config)
        name, severity = _ALERTS[state]
        try:
            from vigil.monitor.notify import fire_event  # pandas: only when an alert is raised

            fire_event(
                self.vigil,
                name=name,
                severity=severity,
                summary=f"policy run {run.run_id} of {run.model}: {state.replace('_', ' ')}: "
                f"{reason}",
                labels={"model": run.model, "run": run.run_id, "state": state},
                occurrence=run.run_id,
            )
        except Exception:  # the run's end stands; a lost alert must not undo it
            log.exception("could not raise the alert of policy run %s", run.run_id)
        log.info("policy run %s of %s: %s (%s)", run.run_id, run.model, state, reason)
        self._prune(run.model)
        return ended

    def _prune(self, model: str) -> None:
        """Delete the directories of ``model``'s runs older than the newest
        ``keep_runs`` (by their start; a run id holds it to the second only, so two runs
        of one second are told apart by their rows), unless a run is still in flight."""
        directory = self.vigil.policy_dir / model
        try:
            names = [p.name for p in directory.iterdir() if p.is_dir()]
        except FileNotFoundError:
            return
        runs: dict[str, Run | None] = {}
        for name in names:
            try:
                runs[name] = self.runs.get(name)
            except NotFoundError:
                runs[name] = None  # a directory without a run (its row deleted)

        def started(name: str) -> tuple[float, str]:
            run = runs[name]
            return (run.created_at.timestamp() if run is not None else -math.inf, name)

        for name in sorted(names, key=started, reverse=True)[
            self.vigil.policy_settings.keep_runs :
        ]:
            run = runs[name]
            if run is not None and run.state not in FINAL:
                continue
            shutil.rmtree(directory / name, ignore_errors=True)
            log.info("deleted the directory of %s's policy run %s (keep_runs)", model, name)

    def _restore_endpoint(self, config: PolicyConfig) -> None:
        from vigil.experiments.store import EndpointStore

        try:
            EndpointStore(self.vigil).put(rollout.idle_config(config), actor=self.actor)
        except Exception:
            log.exception("could not put endpoint %s back after a rollout", config.endpoint)

    # -- triggered / exporting → training --------------------------------------------------

    def _export_and_launch(self, run: Run, config: PolicyConfig) -> Run | None:
        from vigil.policy.export import export_training_data

        claimed = self._claim(run, "exporting")
        if claimed is None:
            return None
        try:
            served = self.vigil.registry.resolve(f"models:/{run.model}@{config.served_alias}")
        except VigilError as exc:
            return self._end(claimed, "failed", f"no served version: {exc.message}")
        run_dir = self._run_dir(run)
        until = utcnow()
        since = until - parse_duration(config.export.window)
        reference_info = served.manifest.get("reference") or {}
        bundle_dir = self.vigil.registry.fetch_bundle(served, self.vigil.cache_dir)
        sample = bundle_dir / "reference_sample.parquet"
        reference = {
            "uri": f"models:/{run.model}/{served.version}",
            "source": served.lineage.get("reference"),
            "sample": str(sample) if sample.is_file() else None,
            "target": reference_info.get("target"),
        }
        try:
            result = export_training_data(
                self.vigil,
                run.model,
                since=since,
                until=until,
                directory=run_dir / "export",
                holdout_dir=(run_dir / "holdout") if config.gate.replay else None,
                holdout_share=config.export.holdout_share if config.gate.replay else 0.0,
                target=reference_info.get("target"),
                reference=reference,
            )
        except VigilError as exc:
            return self._end(claimed, "failed", f"the export failed: {exc.message}")
        manifest = result.manifest
        if manifest["rows"] < config.export.min_rows:
            return self._end(
                claimed,
                "failed",
                f"only {manifest['rows']} labelled rows to train on in the last "
                f"{config.export.window} (export.min_rows {config.export.min_rows})",
                {"export": manifest},
            )
        timeout = config.action.timeout_s
        deadline = utcnow() + timedelta(seconds=timeout)
        facts = job_facts(
            run_id=run.run_id,
            model=run.model,
            served_version=served.version,
            export=result.directory,
            manifest=manifest,
        )
        training = self.runs.transition(
            claimed,
            "training",
            actor=self.actor,
            data={
                "export": {**manifest, "directory": str(result.directory)},
                "holdout": str(result.holdout) if result.holdout else None,
                "deadline": _iso(deadline),
                "action": config.action.kind,
            },
            audit={"export": manifest, "action": config.action.kind, "timeout_s": timeout},
            served_version=served.version,
        )
        if training is None:
            return None
        try:
            if isinstance(config.action, CommandAction):
                pid = launch_command(
                    config.action,
                    facts,
                    run_dir,
                    lambda code, timed_out: self._job_ended(run.run_id, code, timed_out),
                )
                job: dict[str, Any] = {"pid": pid, "log": str(run_dir / "job.log")}
            else:
                allow = self.vigil.monitor_settings.allow_private_webhooks
                job = {"webhook": post_webhook_action(config.action, facts, allow_private=allow)}
        except VigilError as exc:
            latest = self.runs.get(run.run_id)
            return self._end(latest, "failed", exc.message)
        return self._merge(run.run_id, {"job": job})

    def _merge(self, run_id: str, data: dict[str, Any]) -> Run | None:
        """Merge ``data`` into the run's data whatever its state (a few tries)."""
        for _ in range(10):
            run = self.runs.get(run_id)
            done = self.runs.transition(
                run,
                run.state,
                actor=self.actor,
                data={k: {**run.data.get(k, {}), **v} for k, v in data.items()},
                lease=(run.lease_holder, run.lease_until - utcnow())
                if run.lease_holder and run.lease_until and run.lease_until > utcnow()
                else None,
            )
            if done is not None:
                return done
        return None

    def _job_ended(self, run_id: str, code: int | None, timed_out: bool) -> None:
        self._merge(run_id, {"job": {"exit_code": code, "timed_out": timed_out}})

    def _wait_for_candidate(self, run: Run, config: PolicyConfig) -> Run | None:
        job = run.data.get("job") or {}
        if "exit_code" in job:
            # The job may have registered just before it exited: look again first.
            latest = self.runs.get(run.run_id)
            if latest.state != "training":
                return latest
            if job.get("timed_out"):
                why = f"the retrain command ran past its timeout ({config.action.timeout_s:g} s)"
            else:
                why = (
                    f"the retrain command exited with status {job['exit_code']} without "
                    f"registering a candidate (see {job.get('log', 'its log')})"
                )
            return self._end(latest, "failed", why)
        deadline = run.data.get("deadline")
        if deadline and utcnow() > _parse(deadline):
            return self._end(
                run,
                "failed",
                f"no candidate was registered within {config.action.timeout_s:g} s",
            )
        return run

    # -- gating → shadow | canary | rejected --------------------------------------------

    def _gate(self, run: Run, config: PolicyConfig) -> Run | None:
        from vigil.batch.gate import validate_candidate

        claimed = self._claim(run, "gating")
        if claimed is None:
            return None
        if claimed.candidate_version is None or claimed.served_version is None:
            return self._end(claimed, "failed", "the run has no candidate or served version")
        model = run.model
        current = self.vigil.load(f"models:/{model}/{claimed.served_version}")
        candidate = self.vigil.load(f"models:/{model}/{claimed.candidate_version}")
        gate = config.gate
        data: list[tuple[str, str, str]] = []
        holdout = claimed.data.get("holdout")
        if gate.replay and holdout:
            label = (claimed.data.get("export") or {}).get("label") or "label"
            data.append(("replay", holdout, label))
        if gate.holdout:
            target = gate.target or (current.manifest.get("reference") or {}).get("target")
            if target is None:
                return self._end(
                    claimed,
                    "failed",
                    "the served version was registered without a label column; name the "
                    "holdout's with gate.target",
                )
            data.append(("holdout", gate.holdout, str(target)))
        if not data:
            return self._end(
                claimed,
                "rejected",
                "no labelled rows to judge the candidate on: nothing was held out of the "
                "export and no gate.holdout file is set",
            )
        verdicts: dict[str, Any] = {}
        reasons: list[str] = []
        for name, path, target in data:
            try:
                verdict = validate_candidate(
                    current,
                    candidate,
                    path,
                    target=target,
                    metric=gate.metric,
                    min_improvement=gate.min_improvement,
                    alpha=gate.alpha,
                    max_latency_ratio=gate.max_latency_ratio,
                    fairness=self.vigil.monitor_settings.fairness.get(model),
                    max_group_drop=gate.max_group_drop,
                )
            except Exception as exc:  # a model that cannot score the rows: the run ends
                why = exc.message if isinstance(exc, VigilError) else f"{type(exc).__name__}: {exc}"
                return self._end(claimed, "failed", f"the gate could not run on {name}: {why}")
            verdicts[name] = verdict.to_dict()
            reasons += [f"{name}: {r}" for r in verdict.reasons]
        if reasons:
            return self._end(claimed, "rejected", "; ".join(reasons), {"gate": verdicts})
        if config.rollout.shadow is not None:
            return self._start_stage(claimed, config, "shadow", {"gate": verdicts})
        return self._start_stage(claimed, config, "canary", {"gate": verdicts})

    # -- rollout ------------------------------------------------------------------------

    def _counters(self, endpoint: str) -> dict[str, Any]:
        state = self.vigil.policy_state()
        try:
            return state.stats(endpoint)
        finally:
            close = getattr(state, "close", None)
            if close is not None:
                close()

    def _start_stage(
        self, run: Run, config: PolicyConfig, stage: str, data: dict[str, Any]
    ) -> Run | None:
        from vigil.experiments.store import EndpointStore

        assert run.served_version is not None and run.candidate_version is not None
        make = rollout.shadow_config if stage == "shadow" else rollout.canary_config
        endpoint = make(config, run.served_version, run.candidate_version)
        moved = self.runs.transition(
            run,
            stage,
            actor=self.actor,
            data={
                **data,
                stage: {
                    "started_at": _iso(utcnow()),
                    "endpoint": config.endpoint,
                    "base": {k: v.counters() for k, v in self._counters(config.endpoint).items()},
                },
            },
            audit={**data, "endpoint": config.endpoint},
        )
        if moved is None:
            return None
        try:
            EndpointStore(self.vigil).put(endpoint, actor=self.actor)
        except VigilError as exc:
            return self._end(moved, "failed", f"could not configure {config.endpoint}: {exc}")
        return moved

    def _stage_timed_out(self, run: Run, config: PolicyConfig, stage: str) -> bool:
        started = (run.data.get(stage) or {}).get("started_at")
        return bool(
            started and (utcnow() - _parse(started)).total_seconds() > config.rollout.timeout_s
        )

    def _shadow(self, run: Run, config: PolicyConfig) -> Run | None:
        stage = config.rollout.shadow
        info = run.data.get("shadow") or {}
        if stage is None:
            return self._start_stage(run, config, "canary", {})
        started = _parse(info["started_at"])
        elapsed = (utcnow() - started).total_seconds()
        rate = None
        if stage.max_disagreement is not None:
            rate, _ = rollout.disagreement(self.vigil, run.model, config.endpoint, started)
        judged = rollout.judge_shadow(
            stage, self._counters(config.endpoint), info.get("base") or {}, elapsed, rate
        )
        if not judged.done:
            if self._stage_timed_out(run, config, "shadow"):
                return self._end(
                    run,
                    "rolled_back",
                    f"the shadow stage did not complete within {config.rollout.timeout_s:g} s "
                    f"({judged.reason})",
                    {"shadow": {**info, "evidence": judged.evidence}},
                    config,
                )
            return run
        result = {"shadow": {**info, "evidence": judged.evidence, "reason": judged.reason}}
        if not judged.passed:
            return self._end(run, "rolled_back", judged.reason, result, config)
        return self._start_stage(run, config, "canary", result)

    def _canary(self, run: Run, config: PolicyConfig) -> Run | None:
        assert run.served_version is not None and run.candidate_version is not None
        endpoint = rollout.canary_config(config, run.served_version, run.candidate_version)
        state = self.vigil.policy_state()
        try:
            control = state.control(config.endpoint).data
        finally:
            close = getattr(state, "close", None)
            if close is not None:
                close()
        outcome = rollout.canary_outcome(endpoint, control)
        info = {**(run.data.get("canary") or {}), "control": control}
        if outcome == "promoted":
            return self._end(
                run,
                "promoted",
                f"canary ramp completed: {config.served_alias} is now version "
                f"{run.candidate_version}",
                {"canary": info},
                config,
            )
        if outcome == "rolled_back":
            return self._end(
                run,
                "rolled_back",
                f"canary rolled back: {control.get('reason', 'a guard was breached')}",
                {"canary": info},
                config,
            )
        if self._stage_timed_out(run, config, "canary"):
            return self._end(
                run,
                "rolled_back",
                f"the canary did not complete within {config.rollout.timeout_s:g} s",
                {"canary": info},
                config,
            )
        return run
