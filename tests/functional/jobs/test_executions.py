"""The executions/tasks service every job kind runs on (`services/jobs.py`), on moto's DynamoDB:
status transitions (illegal ones refused), task metrics under concurrent moves, stop, reconcile
after a restart or a lost engine execution, schedules with a clock the test moves."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.core.jobs import IllegalTransition, JobStatus, Trigger, check_move, sources
from chalicelib.errors import Conflict
from chalicelib.services.jobs import JobEnded, JobService
from chalicelib.stores.jobs import JobStore
from tests.functional.conftest import LiveRegistry

KIND = "TEST_KIND"


class FakeRunner:
    """An engine whose executions the test kills or finishes."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.started: list[tuple[str, int, dict[str, Any]]] = []
        self.stopped: list[str] = []

    def start(self, vendor_type: str, job_id: int, payload: dict[str, Any]) -> str:
        arn = f"arn:test:{job_id}:{len(self.started)}"
        self.started.append((vendor_type, job_id, payload))
        self.states[arn] = "RUNNING"
        return arn

    def stop(self, execution_arn: str) -> None:
        self.stopped.append(execution_arn)
        self.states[execution_arn] = "ABORTED"

    def status(self, execution_arn: str) -> str:
        return self.states.get(execution_arn, "MISSING")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


World = tuple[JobService, FakeRunner, Clock]


@pytest.fixture
def world(registry: LiveRegistry) -> tuple[JobService, FakeRunner, Clock]:
    clock, runner = Clock(), FakeRunner()
    return JobService(JobStore(clock), runner, clock), runner, clock


def test_the_status_graph_moves_forward_only() -> None:
    check_move(JobStatus.PENDING, JobStatus.RUNNING)
    check_move(JobStatus.RUNNING, JobStatus.SUCCESS)
    for final in (JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.STOPPED):
        for target in JobStatus:
            with pytest.raises(IllegalTransition):
                check_move(final, target)
    with pytest.raises(IllegalTransition):
        check_move(JobStatus.RUNNING, JobStatus.PENDING)
    assert set(sources(JobStatus.RUNNING)) == {JobStatus.PENDING}
    assert set(sources(JobStatus.ERROR)) == {JobStatus.PENDING, JobStatus.RUNNING}


def test_a_job_runs_once_and_an_ended_job_never_moves_back(world: World) -> None:
    jobs, runner, _ = world
    job = jobs.submit(KIND, Trigger.MANUAL, {"x": 1})
    assert runner.started == [(KIND, job.job_id, {"job_id": job.job_id})]
    assert jobs.begin(job.job_id).status == JobStatus.RUNNING
    assert jobs.finish(job.job_id, JobStatus.SUCCESS, None, {"done": 3})
    # A retried handler: neither a second end nor a begin changes the record.
    assert not jobs.finish(job.job_id, JobStatus.ERROR, "late")
    with pytest.raises(JobEnded):
        jobs.begin(job.job_id)
    ended = jobs.get(job.job_id, KIND)
    assert (ended.status, ended.counts, ended.error) == (JobStatus.SUCCESS, {"done": 3}, None)
    assert "job ended: Success" in jobs.log_text(job.job_id, KIND)


def test_the_kind_lock_refuses_a_second_run_until_the_first_ends(world: World) -> None:
    jobs, _, _ = world
    first = jobs.submit(KIND, Trigger.MANUAL, {})
    with pytest.raises(Conflict):
        jobs.submit(KIND, Trigger.MANUAL, {})
    # A narrower lock (one run per policy) admits runs of other policies beside it.
    jobs.submit(KIND, Trigger.MANUAL, {}, lock=f"{KIND}#7")
    jobs.finish(first.job_id, JobStatus.SUCCESS, None)
    assert jobs.submit(KIND, Trigger.MANUAL, {}).status == JobStatus.PENDING


def test_tasks_move_along_the_graph_and_illegal_moves_are_refused(world: World) -> None:
    jobs, _, _ = world
    job = jobs.record(KIND, Trigger.EVENT, {})
    tasks = jobs.create_tasks(job.job_id, [("a", {"n": 1}), ("b", {"n": 2})])
    assert [t.task_id for t in tasks] == [tasks[0].task_id, tasks[0].task_id + 1]
    assert jobs.get(job.job_id, KIND).metrics == {"Pending": 2}
    running = jobs.start_task(job.job_id, tasks[0].task_id)
    assert running is not None and running.status == JobStatus.RUNNING
    assert jobs.end_task(running, JobStatus.SUCCESS, counts={"total": 4}, log=["did it"], result={"k": [1]})
    done = jobs.task(job.job_id, tasks[0].task_id)
    assert done is not None
    assert (done.status, done.counts, done.log) == (JobStatus.SUCCESS, {"total": 4}, ("did it",))
    assert done.result == {"k": [1]}
    # Success is final: no move out of it, and a start never runs it again.
    assert not jobs.end_task(done, JobStatus.ERROR, error="late")
    assert jobs.start_task(job.job_id, tasks[0].task_id) is None
    assert jobs.task(job.job_id, tasks[0].task_id) == done
    assert jobs.get(job.job_id, KIND).metrics == {"Pending": 1, "Running": 0, "Success": 1}
    # A second create (a retried `begin`) replaces what the first made.
    again = jobs.create_tasks(job.job_id, [("c", {})])
    assert [t.subject for t in jobs.tasks(job.job_id)] == ["c"] and again[0].status == JobStatus.PENDING
    assert jobs.get(job.job_id, KIND).metrics == {"Pending": 1}


def test_metrics_stay_exact_when_many_tasks_end_at_once(world: World) -> None:
    jobs, _, _ = world
    job = jobs.record(KIND, Trigger.MANUAL, {})
    tasks = jobs.create_tasks(job.job_id, [(f"r{n}", {}) for n in range(24)])

    def run(n: int) -> bool:
        task = jobs.start_task(job.job_id, tasks[n % 24].task_id)  # each task claimed by two workers
        if task is None:
            return False
        return jobs.end_task(task, JobStatus.SUCCESS if n % 3 else JobStatus.ERROR)

    with ThreadPoolExecutor(8) as pool:
        ended = list(pool.map(run, range(48)))
    assert sum(ended) == 24  # each task ended exactly once
    statuses = [t.status for t in jobs.tasks(job.job_id)]
    metrics = jobs.get(job.job_id, KIND).metrics
    assert metrics.get("Success", 0) == statuses.count(JobStatus.SUCCESS)
    assert metrics.get("Error", 0) == statuses.count(JobStatus.ERROR)
    assert metrics.get("Success", 0) + metrics.get("Error", 0) == 24
    assert metrics.get("Pending", 0) == metrics.get("Running", 0) == 0


def test_stop_ends_the_execution_and_its_unfinished_tasks(world: World) -> None:
    jobs, runner, _ = world
    job = jobs.submit(KIND, Trigger.MANUAL, {})
    jobs.begin(job.job_id)
    first, _ = jobs.create_tasks(job.job_id, [("a", {}), ("b", {})])
    running = jobs.start_task(job.job_id, first.task_id)
    assert running is not None
    stopped = jobs.stop(job.job_id, KIND)
    assert stopped.status == JobStatus.STOPPED and runner.stopped == [job.execution_arn or stopped.execution_arn]
    assert [t.status for t in jobs.tasks(job.job_id)] == [JobStatus.STOPPED, JobStatus.STOPPED]
    # The handler that was running notices, and still records what it did before it did.
    with pytest.raises(JobEnded):
        jobs.check(job.job_id)
    assert jobs.end_task(running, JobStatus.STOPPED, counts={"total": 2}, log=["stopped"])
    task = jobs.task(job.job_id, first.task_id)
    assert task is not None and (task.status, task.counts) == (JobStatus.STOPPED, {"total": 2})
    assert not jobs.end_task(task, JobStatus.SUCCESS)
    assert jobs.get(job.job_id, KIND).metrics == {"Pending": 0, "Running": 0, "Stopped": 2}
    # Stopping an ended job changes nothing.
    assert jobs.stop(job.job_id, KIND).status == JobStatus.STOPPED


def test_reconcile_ends_a_job_whose_execution_was_lost(world: World) -> None:
    jobs, runner, _ = world
    job = jobs.submit(KIND, Trigger.MANUAL, {})
    jobs.begin(job.job_id)
    (task,) = jobs.create_tasks(job.job_id, [("a", {})])
    assert jobs.get(job.job_id, KIND).status == JobStatus.RUNNING  # its engine still runs it
    runner.states.clear()  # a restart: the local engine forgot every execution
    assert jobs.recover([KIND]) == 1
    lost = jobs.get(job.job_id, KIND)
    assert lost.status == JobStatus.ERROR and "interrupted by a restart" in (lost.error or "")
    ended = jobs.task(job.job_id, task.task_id)
    assert ended is not None and ended.status == JobStatus.ERROR
    # The lock went with it: the next run starts.
    assert jobs.submit(KIND, Trigger.MANUAL, {}).status == JobStatus.PENDING


def test_reconcile_on_read_and_an_engine_that_failed(world: World) -> None:
    jobs, runner, _ = world
    job = jobs.submit(KIND, Trigger.MANUAL, {})
    arn = jobs.get(job.job_id, KIND).execution_arn
    assert arn is not None
    runner.states[arn] = "TIMED_OUT"  # a Lambda timeout outside any Catch
    read = jobs.get(job.job_id, KIND)
    assert read.status == JobStatus.ERROR and "TIMED_OUT" in (read.error or "")


def test_an_in_process_job_is_reconciled_once_older_than_it_can_take(world: World) -> None:
    jobs, _, clock = world
    job = jobs.record(KIND, Trigger.EVENT, {}, running=True)
    assert jobs.reconcile(jobs.get(job.job_id, KIND), longest_seconds=60).status == JobStatus.RUNNING
    clock.now += 61
    ended = jobs.reconcile(jobs.get(job.job_id, KIND), longest_seconds=60)
    assert ended.status == JobStatus.ERROR and "interrupted" in (ended.error or "")


def test_resume_starts_a_lost_execution_again_with_its_input(world: World) -> None:
    jobs, runner, _ = world
    job = jobs.record(KIND, Trigger.EVENT, {})
    jobs.launch(job, {"items": [1]}, {"payload": {"items": [1]}})
    recorded = jobs.get(job.job_id, KIND)
    assert not jobs.resume(recorded)  # still running
    runner.states.clear()
    assert jobs.resume(recorded)
    assert runner.started[-1] == (KIND, job.job_id, {"items": [1]})


def test_resume_runs_before_start_only_when_it_starts_and_before_the_engine_does(world: World) -> None:
    jobs, runner, _ = world
    job = jobs.record(KIND, Trigger.EVENT, {})
    jobs.launch(job, {"items": [1]}, {"payload": {"items": [1]}})
    recorded = jobs.get(job.job_id, KIND)
    seen: list[tuple[int, int]] = []
    assert not jobs.resume(recorded, before_start=lambda j: seen.append((j.job_id, len(runner.started))))
    assert seen == []  # still running: nothing is started, nothing is written
    runner.states.clear()
    started_before = len(runner.started)
    assert jobs.resume(recorded, before_start=lambda j: seen.append((j.job_id, len(runner.started))))
    assert seen == [(job.job_id, started_before)] and len(runner.started) == started_before + 1


def test_a_schedule_fires_once_per_slot(world: World) -> None:
    jobs, runner, clock = world
    jobs.set_schedule(KIND, "Hourly", "", {"p": 1})
    assert jobs.run_due(KIND, clock()) is None  # the next slot has not come
    clock.now += 3600
    fired = jobs.run_due(KIND, clock())
    assert fired is not None and fired.trigger == Trigger.SCHEDULE and fired.parameters == {"p": 1}
    assert jobs.run_due(KIND, clock()) is None  # the same slot never fires twice
    jobs.finish(fired.job_id, JobStatus.SUCCESS, None)
    clock.now += 3600
    assert jobs.run_due(KIND, clock()) is not None
    jobs.set_schedule(KIND, "None", "", {})
    clock.now += 7200
    assert jobs.run_due(KIND, clock()) is None
    assert len(runner.started) == 2


def test_policy_schedules_are_claimed_once_per_slot_each(world: World) -> None:
    jobs, _, clock = world
    jobs.set_schedule(KIND, "Custom", "0 */5 * * * *", {}, policy_id=1)
    jobs.set_schedule(KIND, "Custom", "0 0 * * * *", {}, policy_id=2)
    assert jobs.due(KIND, clock()) == []
    clock.now += 300
    assert [s.policy_id for s in jobs.due(KIND, clock())] == [1]
    assert jobs.due(KIND, clock()) == []  # claimed: a second scheduler finds nothing
    clock.now += 3600
    assert sorted(s.policy_id for s in jobs.due(KIND, clock())) == [1, 2]
    jobs.remove_schedule(KIND, 1)
    clock.now += 3600
    assert [s.policy_id for s in jobs.due(KIND, clock())] == [2]
    assert jobs.schedule(KIND, 1) is None and jobs.schedule(KIND) is None
