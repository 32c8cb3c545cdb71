"""A call in a child process (:mod:`vigil._child`): its value and pid come back; what it
raised comes back as its traceback; a closed runner starts no child and kills the running
one. The servers' use of it is tested in ``tests/monitor/test_isolation.py`` and
``tests/capture/test_isolation.py``."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from tests._waiting import wait_for

from vigil._child import NICE, ChildDied, ChildFailed, ChildProcess


def _niceness_and_pid() -> tuple[int, int]:
    return os.getpriority(os.PRIO_PROCESS, 0), os.getpid()


def _raise() -> None:
    raise LookupError("nothing here")


def _hang(flag: Path) -> None:
    flag.write_text(str(os.getpid()))
    threading.Event().wait()  # never set


def test_a_call_runs_in_a_child_at_a_lower_priority_and_reports_what_it_raised(
    tmp_path: Path,
) -> None:
    children: ChildProcess[object] = ChildProcess("vigil-test", label="test", preload=[])
    (niceness, pid), reported = children.run(_niceness_and_pid, timeout=120)
    assert pid == reported and pid != os.getpid()
    assert niceness == min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE)

    with pytest.raises(ChildFailed) as failed:
        children.run(_raise, timeout=120)
    assert failed.value.pid not in (None, os.getpid())
    assert "LookupError: nothing here" in failed.value.reason

    # Closed while a call runs: the child is killed, not waited for.
    flag = tmp_path / "hanging.pid"
    errors: list[BaseException] = []

    def call() -> None:
        try:
            children.run(_hang, flag)
        except ChildDied as e:
            errors.append(e)

    caller = threading.Thread(target=call)
    caller.start()
    hung = wait_for(lambda: flag.exists() and flag.read_text(), 60, what="the hanging child")
    children.close()
    caller.join(60)
    assert not caller.is_alive()
    assert [(e.pid, e.reason) for e in errors if isinstance(e, ChildDied)] == [
        (int(hung), "killed by SIGKILL, perhaps by the out-of-memory killer")
    ]
    with pytest.raises(ChildDied, match="closed"):
        children.run(_niceness_and_pid)
    children.open()
    assert children.run(_niceness_and_pid, timeout=120)[1] != int(hung)
