"""A retention lane's cursor arithmetic (services/retention.py `run_lane`, `abandon`): which tasks a
Task runs or gives up, for any batch, with the stores replaced by small fakes."""

from __future__ import annotations

from typing import Any, cast

import pytest

from chalicelib.core.jobs import JobStatus, Task
from chalicelib.services.jobs import JobEnded
from chalicelib.services.retention_run import RetentionRun

FIRST, LAST, STEP = 10, 19, 3  # one lane of three: 10, 13, 16, 19


class _Store:
    def __init__(self, ended: set[int]) -> None:
        self.status = {n: "Success" if n in ended else "Pending" for n in range(FIRST, LAST + 1)}

    def start_task(self, execution_id: int, task_id: int) -> Task | None:
        if self.status[task_id] in ("Success", "Error", "Stopped"):
            return None
        self.status[task_id] = "Running"
        return Task(task_id, execution_id, JobStatus.RUNNING, f"p/r{task_id}", {}, 0, 0)

    def end_task(self, task: Task, status: str, *args: Any, **kwargs: Any) -> bool:
        self.status[task.task_id] = status
        return True


class _Jobs:
    """The executions service: its tasks are the `_Store`'s."""

    def __init__(self, stopped: bool = False) -> None:
        self.stopped = stopped
        self.store = _Store(set())

    def start_task(self, execution_id: int, task_id: int) -> Task | None:
        return self.store.start_task(execution_id, task_id)

    def end_task(self, task: Task, status: str, *args: Any, **kwargs: Any) -> bool:
        return self.store.end_task(task, status)

    def check(self, job_id: int) -> None:
        if self.stopped:
            raise JobEnded("stopped")


def _service(store: _Store, jobs: _Jobs) -> RetentionRun:
    jobs.store = store
    return RetentionRun(cast(Any, store), cast(Any, jobs), cast(Any, None), repositories=cast(Any, None),
                            artifacts=cast(Any, None), labels=cast(Any, None), immutability=cast(Any, None),
                            manifests=cast(Any, None), events=cast(Any, None))  # fmt: skip


@pytest.mark.parametrize(
    ("start", "batch", "ended", "failed", "following"),
    [
        (10, 1, set(), 10, 13),  # the Task died on its one repository
        (16, 1, set(), 16, 19),
        (19, 1, set(), 19, None),  # the lane's last: it is done
        (10, 3, {10}, 13, 16),  # 10 had ended before the Task died on 13
        (10, 2, {10, 13}, None, 16),  # both of its tasks had ended: the lane goes on at 16
        (16, 3, {16, 19}, None, None),  # nothing left in the lane
    ],
)
def test_abandon_fails_the_first_task_not_ended_and_goes_on_after_it(
    start: int, batch: int, ended: set[int], failed: int | None, following: int | None
) -> None:
    store = _Store(ended)
    before = dict(store.status)
    assert _service(store, _Jobs()).abandon(1, start, STEP, LAST, batch, error="Sandbox.Timedout") == following
    changed = {n for n in store.status if store.status[n] != before[n]}
    assert changed == ({failed} if failed is not None else set())
    if failed is not None:
        assert store.status[failed] == "Error"


def test_abandon_stops_the_lane_of_a_stopped_job() -> None:
    store = _Store(set())
    assert _service(store, _Jobs(stopped=True)).abandon(1, 10, STEP, LAST, 1, error="x") is None
    assert store.status[10] == "Error"


@pytest.mark.parametrize(("start", "batch", "ran", "following"), [
    (10, 1, [10], 13), (10, 2, [10, 13], 16), (13, 5, [13, 16, 19], None), (19, 1, [19], None),
])  # fmt: skip
def test_run_lane_runs_its_batch_in_step(monkeypatch: pytest.MonkeyPatch, start: int, batch: int, ran: list[int],
                                         following: int | None) -> None:  # fmt: skip
    seen: list[int] = []
    monkeypatch.setattr(RetentionRun, "run_task", lambda self, job_id, task_id: seen.append(task_id) or True)
    assert _service(_Store(set()), _Jobs()).run_lane(1, start, STEP, LAST, batch) == following
    assert seen == ran


def test_run_lane_stops_when_a_task_reports_the_job_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(RetentionRun, "run_task", lambda self, job_id, task_id: bool(seen.append(task_id)))
    assert _service(_Store(set()), _Jobs()).run_lane(1, 10, STEP, LAST, 4) is None
    assert seen == [10]
