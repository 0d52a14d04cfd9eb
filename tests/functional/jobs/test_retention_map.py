"""A retention execution is one Task per repository, run `REGISTRY_RETENTION_WORKERS` at a time by
the state machine's Map (moto executes `infra/statemachines/retention.asl.json`): per-task counts,
a failing repository, retries and re-runs that must not delete or count twice, and a stop midway.

Executions start and are read through Harbor's /retentions API; a lost Lambda answer is injected
where Step Functions sees it (a `Lambda.ServiceException` after the handler did its work), so the
state machine's own Retry runs the Task again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.functional.jobs import test_retention as retention_suite
from tests.functional.jobs.conftest import FINAL, wait_for_executions
from tests.functional.jobs.test_retention import PROJECT, Retention, rule

ret = retention_suite.ret
KEEP_NEWEST = rule("latestPushedK", 1)


def _lost() -> ClientError:
    """What Step Functions gets when a Lambda's answer is lost: its Retry runs the Task again."""
    return ClientError({"Error": {"Code": "ServiceException", "Message": "the answer was lost"},
                        "ResponseMetadata": {"HTTPStatusCode": 500, "RequestId": "test"}}, "Invoke")  # fmt: skip


def _push(ret: Retention, repo: str, count: int) -> dict[str, str]:
    """`count` tagged artifacts, the newest last; returns tag -> digest."""
    return {f"v{n}": ret.push(repo, f"v{n}", age_days=count - n) for n in range(count)}


def _start(ret: Retention, policy_id: int, dry_run: bool = False) -> int:
    response = ret.call("POST", f"/retentions/{policy_id}/executions", {"dry_run": dry_run})
    assert response.status_code == 201, response.get_data()[:300]
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _ended(ret: Retention, policy_id: int, execution_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while True:
        listed = ret.call("GET", f"/retentions/{policy_id}/executions").get_json()
        found = next(e for e in listed if e["id"] == execution_id)
        if found["status"] in FINAL:
            wait_for_executions(deadline - time.monotonic())
            return dict(found)
        assert time.monotonic() < deadline, found
        time.sleep(0.02)


def _tasks(ret: Retention, policy_id: int, execution_id: int) -> dict[str, dict[str, Any]]:
    """Repository (without the project) -> its task; every repository has exactly one."""
    response = ret.call("GET", f"/retentions/{policy_id}/executions/{execution_id}/tasks",
                        query_string={"page_size": "100"})  # fmt: skip
    assert response.status_code == 200
    tasks = response.get_json()
    assert response.headers["X-Total-Count"] == str(len(tasks))
    by_repo = {t["repository"].partition("/")[2]: t for t in tasks}
    assert len(by_repo) == len(tasks), tasks  # no repository got two tasks
    return by_repo


def _log(ret: Retention, policy_id: int, execution_id: int, task_id: int) -> str:
    response = ret.call("GET", f"/retentions/{policy_id}/executions/{execution_id}/tasks/{task_id}")
    assert response.status_code == 200
    return str(response.get_data(as_text=True))


def _announced(ret: Retention) -> list[Any]:
    from chalicelib.events import EventType
    from chalicelib.wiring import services

    seen: list[Any] = []
    services().events.subscribe(lambda e: seen.append(e) if e.type is EventType.TAG_RETENTION else None)
    return seen


def _counts(execution_id: int) -> dict[str, int]:
    from chalicelib.wiring import services

    return dict(services().jobs.get(execution_id, "RETENTION").counts)


def _wrap_items(monkeypatch: pytest.MonkeyPatch, before: Callable[[str], None]) -> None:
    from chalicelib.services.retention_run import RetentionRun

    original = RetentionRun._items

    def wrapped(self: RetentionRun, repository: str) -> Any:
        before(repository)
        return original(self, repository)

    monkeypatch.setattr(RetentionRun, "_items", wrapped)


def test_repositories_run_in_parallel_each_task_with_its_own_counts(
    ret: Retention, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.wiring import services

    ret.configure(retention_workers=3)
    sizes = {"r1": 3, "r2": 2, "r3": 1, "r4": 4}
    pushed = {repo: _push(ret, repo, n) for repo, n in sizes.items()}
    seen = _announced(ret)
    started, running, peak = threading.Condition(), [0], [0]

    def slow(repository: str) -> None:
        with started:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            started.notify_all()
            # Held until three run at once, however slowly a loaded machine starts them: a fixed
            # sleep let two finish before the third began. A Map running fewer waits out the bound.
            started.wait_for(lambda: peak[0] >= 3, timeout=30)
            running[0] -= 1

    _wrap_items(monkeypatch, slow)
    policy_id = ret.create(KEEP_NEWEST)
    execution_id = _start(ret, policy_id)
    assert _ended(ret, policy_id, execution_id)["status"] == "Success"
    assert peak[0] == 3  # three repositories at a time, never more (the Map's MaxConcurrency)
    tasks = _tasks(ret, policy_id, execution_id)
    assert {repo: (t["status"], t["total"], t["retained"]) for repo, t in tasks.items()} == {
        repo: ("Success", n, 1) for repo, n in sizes.items()
    }
    assert all(t["status_code"] == 3 and t["end_time"] for t in tasks.values())
    for repo, n in sizes.items():
        assert ret.present(repo, pushed[repo]) == {f"v{n - 1}"}  # only the newest is left
        log = _log(ret, policy_id, execution_id, tasks[repo]["id"])
        assert log.count("deleted    ") == n - 1 and f"{PROJECT}/{repo}@" in log
    assert _counts(execution_id) == {"total": 10, "retained": 4, "deleted": 6}
    services().events.drain()
    # One TAG_RETENTION per task that deleted something (r3 deleted nothing).
    payloads = [e.detail["retention"] for e in seen]
    announced = {p["deleted_artifact"][0]["name_tag"].partition(":")[0]: (p["total"], len(p["deleted_artifact"]))
                 for p in payloads}  # fmt: skip
    assert announced == {"r1": (3, 2), "r2": (2, 1), "r4": (4, 3)}
    assert len(seen) == 3


@pytest.mark.parametrize(("where", "logged"), [
    ("service", "error: RuntimeError: disk on fire"),  # the service catches it
    ("lambda", "error: the Task died: RuntimeError"),  # a Lambda timeout: the lane's Catch
])  # fmt: skip
def test_a_failing_repository_fails_its_task_and_the_execution_but_not_the_others(
    ret: Retention, monkeypatch: pytest.MonkeyPatch, where: str, logged: str
) -> None:
    """One lane, so the repositories after the failing one show that the lane went on."""
    from chalicelib.services.retention_run import RetentionRun
    from chalicelib.wiring import services

    ret.configure(retention_workers=1)
    pushed = {repo: _push(ret, repo, 2) for repo in ("alpha", "broken", "gamma")}
    if where == "service":

        def explode(repository: str) -> None:
            if repository == f"{PROJECT}/broken":
                raise RuntimeError("disk on fire")

        _wrap_items(monkeypatch, explode)
    else:
        original = RetentionRun.run_task

        def dies(self: RetentionRun, job_id: int, task_id: int) -> bool:
            task = services().jobs.task(job_id, task_id)
            if task is not None and task.subject == f"{PROJECT}/broken":
                raise RuntimeError("Task timed out after 900.00 seconds")
            return original(self, job_id, task_id)

        monkeypatch.setattr(RetentionRun, "run_task", dies)
    policy_id = ret.create(KEEP_NEWEST)
    execution_id = _start(ret, policy_id)
    assert _ended(ret, policy_id, execution_id)["status"] == "Error"
    tasks = _tasks(ret, policy_id, execution_id)
    assert {repo: t["status"] for repo, t in tasks.items()} == {"alpha": "Success", "broken": "Error",
                                                                "gamma": "Success"}  # fmt: skip
    assert logged in _log(ret, policy_id, execution_id, tasks["broken"]["id"])
    assert ret.present("broken", pushed["broken"]) == {"v0", "v1"}
    assert ret.present("alpha", pushed["alpha"]) == ret.present("gamma", pushed["gamma"]) == {"v1"}
    assert _counts(execution_id) == {"total": 4, "retained": 2, "deleted": 2}


def test_retried_tasks_and_a_rerun_delete_and_count_nothing_twice(
    ret: Retention, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from chalicelib import jobs
    from chalicelib.local import stepfunctions
    from chalicelib.wiring import services

    sizes = {"r1": 3, "r2": 2, "r3": 1}
    pushed = {repo: _push(ret, repo, n) for repo, n in sizes.items()}
    seen = _announced(ret)
    calls: dict[str, list[str]] = {}
    losing = [True]

    def invoke(self: Any, function_name: str, *args: Any) -> bytes:
        """The Lambda service: the handler does its work, then the first answer for each input
        is lost (a `Lambda.ServiceException`, which the state machine retries)."""
        answer = stepfunctions._invoke(self, function_name, *args)
        name, body = function_name.rsplit(":function:", 1)[-1], str(args[1] or "")
        first = body not in calls.setdefault(name, [])
        calls[name].append(body)
        if first and losing[0]:
            raise _lost()
        return answer

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    policy_id = ret.create(KEEP_NEWEST)
    execution_id = _start(ret, policy_id)
    assert _ended(ret, policy_id, execution_id)["status"] == "Success"
    # Every Task ran twice: Step Functions retried each lost answer.
    assert len(calls["retention_begin"]) == len(calls["retention_finish"]) == 2
    assert len(calls["retention_task"]) == 2 * len(sizes)
    tasks = _tasks(ret, policy_id, execution_id)  # the retried begin left one task per repository
    assert {repo: (t["status"], t["total"], t["retained"]) for repo, t in tasks.items()} == {
        repo: ("Success", n, 1) for repo, n in sizes.items()
    }
    assert _counts(execution_id) == {"total": 6, "retained": 3, "deleted": 3}
    services().events.drain()
    assert len(seen) == 2  # r1 and r2, once each, although finish ran twice

    # A re-run of every Task of the ended execution (as a re-drive would) changes nothing, not
    # even for an artifact the policy would delete now.
    late = ret.push("r3", "old", age_days=30)
    losing[0] = False
    before = {repo: (t["status"], t["total"], t["retained"], t["end_time"]) for repo, t in tasks.items()}
    lanes = jobs.HANDLERS["retention_begin"]({"job_id": execution_id})["lanes"]
    assert lanes == []  # the execution has ended: nothing is planned again
    for task in tasks.values():
        again = jobs.HANDLERS["retention_task"]({"job_id": execution_id, "task_id": task["id"], "step": 1,
                                                 "last": task["id"]})  # fmt: skip
        assert again["more"] is False
    jobs.HANDLERS["retention_finish"]({"job_id": execution_id})
    after = _tasks(ret, policy_id, execution_id)
    assert {repo: (t["status"], t["total"], t["retained"], t["end_time"]) for repo, t in after.items()} == before
    assert ret.present("r3", {"old": late, **pushed["r3"]}) == {"old", "v0"}
    assert _counts(execution_id) == {"total": 6, "retained": 3, "deleted": 3}
    services().events.drain()
    assert len(seen) == 2


def test_stop_between_repositories(ret: Retention, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.wiring import services

    ret.configure(retention_workers=1)
    pushed = {repo: _push(ret, repo, 2) for repo in ("a1", "a2", "a3")}
    seen = _announced(ret)
    order: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def second_waits(repository: str) -> None:
        order.append(repository.partition("/")[2])
        if len(order) == 2:
            entered.set()
            assert release.wait(60)

    _wrap_items(monkeypatch, second_waits)
    policy_id = ret.create(KEEP_NEWEST)
    execution_id = _start(ret, policy_id)
    try:
        assert entered.wait(60)
        running = _tasks(ret, policy_id, execution_id)
        assert [running[r]["status"] for r in order] == ["Success", "Running"]
        stop = ret.call("PATCH", f"/retentions/{policy_id}/executions/{execution_id}", {"action": "stop"})
        assert stop.status_code == 200
    finally:
        release.set()
    assert _ended(ret, policy_id, execution_id)["status"] == "Stopped"
    wait_for_executions(60)
    tasks = _tasks(ret, policy_id, execution_id)
    (third,) = set(pushed) - set(order)
    assert order[:2] == sorted(order[:2]) and len(order) == 2  # one lane, in order; the third never ran
    assert {r: tasks[r]["status"] for r in pushed} == {order[0]: "Success", order[1]: "Stopped", third: "Stopped"}
    assert tasks[third]["status_code"] == 3 and tasks[third]["end_time"]
    # The stopped task records what it saw (it noticed the stop before its first delete).
    assert (tasks[order[1]]["total"], tasks[order[1]]["retained"]) == (2, 2)
    assert _log(ret, policy_id, execution_id, tasks[order[1]]["id"]).endswith("stopped\n")
    # The execution's counts and TAG_RETENTION cover the task that ended before the stop.
    assert _counts(execution_id) == {"total": 2, "retained": 1, "deleted": 1}
    services().events.drain()
    assert [e.detail["retention"]["deleted_artifact"][0]["name_tag"] for e in seen] == [f"{order[0]}:v0"]
    assert ret.present(order[0], pushed[order[0]]) == {"v1"}
    assert ret.present(order[1], pushed[order[1]]) == ret.present(third, pushed[third]) == {"v0", "v1"}


def test_a_project_without_repositories_succeeds_with_no_tasks(ret: Retention) -> None:
    policy_id = ret.create(KEEP_NEWEST)
    execution_id = _start(ret, policy_id)
    assert _ended(ret, policy_id, execution_id)["status"] == "Success"
    assert _tasks(ret, policy_id, execution_id) == {}
    assert _counts(execution_id) == {"total": 0, "retained": 0, "deleted": 0}


def test_a_dry_run_of_many_repositories_deletes_nothing_and_counts_everything(ret: Retention) -> None:
    from chalicelib.wiring import services

    ret.configure(retention_workers=2)
    pushed = {f"d{n}": _push(ret, f"d{n}", 2) for n in range(5)}
    seen = _announced(ret)
    policy_id = ret.create(KEEP_NEWEST)
    execution_id = _start(ret, policy_id, dry_run=True)
    assert _ended(ret, policy_id, execution_id)["status"] == "Success"
    tasks = _tasks(ret, policy_id, execution_id)
    assert {r: (t["status"], t["total"], t["retained"]) for r, t in tasks.items()} == dict.fromkeys(
        pushed, ("Success", 2, 1)
    )
    assert all(ret.present(r, d) == {"v0", "v1"} for r, d in pushed.items())
    services().events.drain()
    assert seen == []


def test_a_huge_project_gives_each_task_several_repositories(ret: Retention, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past `_MAX_TASK_CALLS` repositories (Step Functions' history limit), a Task takes a few of
    its lane's repositories instead of one; every repository still gets its own task."""
    from chalicelib import jobs
    from chalicelib.services import retention_run as retention

    ret.configure(retention_workers=2)
    monkeypatch.setattr(retention, "_MAX_TASK_CALLS", 2)
    pushed = {f"h{n}": _push(ret, f"h{n}", 2) for n in range(5)}
    calls: list[dict[str, Any]] = []
    original = jobs.HANDLERS["retention_task"]

    def counted(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event)
        return original(event)

    monkeypatch.setitem(jobs.HANDLERS, "retention_task", counted)
    policy_id = ret.create(KEEP_NEWEST)
    execution_id = _start(ret, policy_id)
    assert _ended(ret, policy_id, execution_id)["status"] == "Success"
    assert len(calls) == 2 and {c["batch"] for c in calls} == {3}  # ceil(5 / 2): one Task per lane
    tasks = _tasks(ret, policy_id, execution_id)
    assert {r: (t["status"], t["total"], t["retained"]) for r, t in tasks.items()} == dict.fromkeys(
        pushed, ("Success", 2, 1)
    )
    assert all(ret.present(r, d) == {"v1"} for r, d in pushed.items())
