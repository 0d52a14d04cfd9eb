"""Local Step Functions: moto executes the same `infra/statemachines/*.asl.json` that AWS runs.

moto's interpreter (ported from LocalStack) runs an execution on its own thread and invokes each
Lambda Task through moto's Lambda API. Without Docker that lands in `LambdaSimpleBackend.invoke`,
which normally echoes its input; `install` makes it call the registry's own handler of that
function name instead (`chalicelib.jobs.HANDLERS`), in this process, so a local GC runs the real
job code. A handler's exception fails the Task with the error
Lambda would report (its class name), which the state machine's Catch turns into a recorded job
error, as on AWS.

`create_state_machines` also replaces moto's `ExecutionWorker.stop` (moto 5.2.5, checked with the others in
`moto_patches.CHECKED_MOTO_VERSION`): moto's raises AttributeError when StopExecution arrives
before the execution's thread has built its environment, and silently ignores a stop that arrives
before the program's first state is set. On AWS a StopExecution of a running execution always
aborts it; `_stop` waits for the program to start (it does within milliseconds) and then stops it.
It also remembers which definitions moto's `StepFunctionsParserBackend._validate_definition` has
accepted: moto parses a definition with its ANTLR grammar in pure Python (tens of milliseconds per
machine) on every CreateStateMachine and UpdateStateMachine, and the registry creates the same
eight machines whenever it starts (the in-process tests: for every fresh mock). Validation is a
pure function of the text; a definition that fails is checked again each time. And the package
`moto.batch` is imported without its `__init__` (`_defer_batch_models`), which the interpreter
would otherwise run to reach one enum, importing all of `moto.ec2` for it (~1 s of every start).

The local runner serves while the machines are being created: `hold_starts_until_created` makes
a StartExecution that arrives before they exist wait for them.

On AWS, CloudFormation fills the `${<Function>Arn}` placeholders (DefinitionSubstitutions in
`infra/resources.json`); here they become moto Lambda ARNs named after the handlers.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.config import default_user_config

from chalicelib.jobs import HANDLERS
from chalicelib.observability import logger

STATE_MACHINES = Path(__file__).resolve().parents[2] / "infra" / "statemachines"
# Job kind -> state machine file stem (and the machine's name).
MACHINES = {"GARBAGE_COLLECTION": "gc", "RETENTION": "retention", "WEBHOOK": "webhook", "IMAGE_SCAN": "scan",
            "SBOM": "scan", "SCAN_ALL": "scan_all", "REPLICATION": "replication",
            "SCAN_DATA_EXPORT": "scan_export"}  # fmt: skip
ACCOUNT = "123456789012"  # moto's default account
EXECUTE = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


def placeholder(function_name: str) -> str:
    """`gc_begin` -> `GcBeginArn`: Chalice's logical id for the function, plus `Arn`."""
    return "".join(part.capitalize() for part in function_name.split("_")) + "Arn"


def definition(stem: str, region: str) -> str:
    text = (STATE_MACHINES / f"{stem}.asl.json").read_text()
    for name in HANDLERS:
        text = text.replace("${" + placeholder(name) + "}", f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}")
    return text


def _invoke(self: Any, function_name: str, *args: Any) -> bytes:
    """moto's signature: (function_name, qualifier, body, headers, response_headers).

    A handler's exception is answered as Lambda answers an unhandled one: the
    `X-Amz-Function-Error: Unhandled` header and `{"errorType", "errorMessage"}`, so the state
    machine sees the error name AWS would give it (`RuntimeError`, catchable by `States.ALL`)."""
    body, response_headers = args[1], args[3]
    name = function_name.rsplit(":function:", 1)[-1].partition(":")[0]
    handler = HANDLERS.get(name)
    if handler is None:
        raise RuntimeError(f"no local handler for Lambda function {name}")
    try:
        return json.dumps(handler(json.loads(body or "{}"))).encode()
    except Exception as exc:
        logger.exception("local Lambda Task failed", function=name)
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()


def _defer_batch_models() -> None:
    """Import the package `moto.batch` without running its `__init__`, which imports its models and
    with them all of `moto.ec2` (~1 s): the interpreter needs only `moto.batch.utils`. The package's
    `__init__` re-exports `batch_backends` alone; the module built here loads the models the first
    time an attribute of the package is asked for, so anything that does use them gets them."""
    import moto  # noqa: PLC0415

    if "moto.batch" in sys.modules:
        return
    spec = importlib.util.find_spec("moto.batch")
    if spec is None or spec.submodule_search_locations is None:
        return

    def load(name: str) -> Any:
        return getattr(importlib.import_module("moto.batch.models"), name)

    package = importlib.util.module_from_spec(spec)
    package.__getattr__ = load  # type: ignore[method-assign]  # PEP 562: asked only for what is not set
    sys.modules["moto.batch"] = package
    moto.batch = package  # as the import system binds a loaded submodule


_VALIDATED: set[str] = set()


def _validate_definitions_once() -> None:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend  # noqa: PLC0415 (see above)

    validate = StepFunctionsParserBackend._validate_definition
    if getattr(validate, "remembers", False):
        return

    def validate_once(definition: str) -> None:
        if definition not in _VALIDATED:
            validate(definition=definition)  # raises InvalidDefinition, which is not remembered
            _VALIDATED.add(definition)

    validate_once.remembers = True  # type: ignore[attr-defined]
    StepFunctionsParserBackend._validate_definition = staticmethod(validate_once)  # type: ignore[method-assign]


# How long StopExecution waits for a just-started execution's program to begin; it takes
# milliseconds, so reaching this means the interpreter thread died before its first state.
STOP_WAIT_SECONDS = 10.0


def _stop(self: Any, stop_date: Any, error: str | None, cause: str | None) -> None:
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while (env := self.env) is None or env._program_state is None:  # moto has no accessor
        if time.monotonic() > deadline:
            raise RuntimeError("the execution's program never started, so it cannot be stopped")
        time.sleep(0.005)
    env.set_stop(stop_date=stop_date, cause=cause, error=error)  # a no-op once the program has ended


def install() -> None:
    """Make moto execute state machines and dispatch Lambda Tasks to the registry's handlers."""
    default_user_config.update(EXECUTE)  # type: ignore[typeddict-item]
    LambdaSimpleBackend.invoke = _invoke  # type: ignore[method-assign,assignment]


# Set once `create_state_machines` has created every machine (see `hold_starts_until_created`).
CREATED = threading.Event()
# How long a StartExecution waits for the machines; they take a few seconds when the runner starts.
CREATE_WAIT_SECONDS = 120.0


def hold_starts_until_created() -> None:
    """Make StartExecution wait until the machines exist, so that the local runner can serve while
    they are being created (a job started meanwhile starts once they are, instead of failing with
    StateMachineDoesNotExist). Every other Step Functions call answers at once."""
    from moto.stepfunctions.responses import StepFunctionResponse  # noqa: PLC0415

    start = StepFunctionResponse.start_execution
    if getattr(start, "holds", False):
        return

    def start_execution(self: StepFunctionResponse) -> Any:
        CREATED.wait(CREATE_WAIT_SECONDS)  # past it, moto answers as it would (the machine is missing)
        return start(self)

    start_execution.holds = True  # type: ignore[attr-defined]
    StepFunctionResponse.start_execution = start_execution  # type: ignore[method-assign]


def machine_arns(region: str) -> dict[str, str]:
    """Job kind -> the ARN its local state machine has (known before it is created)."""
    return {v: f"arn:aws:states:{region}:{ACCOUNT}:stateMachine:registry-{stem}" for v, stem in MACHINES.items()}


def create_state_machines(client: Any, region: str) -> dict[str, str]:
    """Create (or update) every job kind's state machine; returns job kind -> ARN.

    The first call loads moto's ASL interpreter (~2 s), so the local runner does this on a thread
    while it restores its state."""
    # Here rather than in `install`: importing the interpreter takes ~1 s, and this runs on a thread.
    _defer_batch_models()
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker  # noqa: PLC0415

    ExecutionWorker.stop = _stop  # type: ignore[method-assign]
    _validate_definitions_once()
    role = f"arn:aws:iam::{ACCOUNT}:role/registry-jobs"
    existing = {m["name"]: m["stateMachineArn"] for m in client.list_state_machines().get("stateMachines", [])}
    for stem in dict.fromkeys(MACHINES.values()):
        text = definition(stem, region)
        name = f"registry-{stem}"
        if name in existing:
            client.update_state_machine(stateMachineArn=existing[name], definition=text)
        else:
            client.create_state_machine(name=name, definition=text, roleArn=role)
    CREATED.set()
    return machine_arns(region)
