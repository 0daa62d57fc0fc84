"""The `taskflow` command line end to end: an API process, a worker process, and the CLI as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskflow.localservers import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "examples"


def taskflow(url: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskflow", "--log-level", "WARNING", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_submit_diamond_manifest_waits_until_completed(api_url: str) -> None:
    submitted = taskflow(api_url, "submit", str(EXAMPLES / "diamond.yaml"), "--wait")
    assert submitted.returncode == 0, submitted.stderr
    run_id, _, shown = submitted.stdout.partition("\n")
    run = json.loads(shown)
    assert run["id"] == run_id and run["status"] == "completed"
    assert sorted(step["step_id"] for step in run["steps"]) == ["a", "b", "c", "d"]

    fetched = taskflow(api_url, "get", "dag", run_id)
    assert fetched.returncode == 0 and json.loads(fetched.stdout)["status"] == "completed"


def test_failing_step_run_fails_and_its_task_is_listed_in_the_dlq(api_url: str) -> None:
    submitted = taskflow(api_url, "submit", str(EXAMPLES / "failing-step.yaml"), "--wait")
    assert submitted.returncode == 1, "a failed run exits 1"
    run = json.loads(submitted.stdout.partition("\n")[2])
    by_step = {step["step_id"]: step for step in run["steps"]}
    assert run["status"] == "failed"
    assert (by_step["a"]["status"], by_step["b"]["status"], by_step["c"]["status"]) == ("completed", "dlq", "cancelled")

    dlq = taskflow(api_url, "dlq", "list")
    assert dlq.returncode == 0
    assert by_step["b"]["task_id"] in {task["id"] for task in json.loads(dlq.stdout)["tasks"]}

    refused = taskflow(api_url, "dlq", "retry", by_step["b"]["task_id"])
    assert refused.returncode == 2 and "taskflow:" in refused.stderr and "DAG" in refused.stderr


def test_single_task_file_dead_letters_then_retry_from_the_dlq_completes(api_url: str, tmp_path: Path) -> None:
    task_file = tmp_path / "flaky.json"
    payload = {"message": "not yet", "until_attempt": 2}
    task_file.write_text(json.dumps({"type": "fail", "payload": payload, "max_retries": 0}))
    submitted = taskflow(api_url, "submit", str(task_file), "--wait")
    assert submitted.returncode == 1
    task_id, _, shown = submitted.stdout.partition("\n")
    task = json.loads(shown)
    assert task["status"] == "dlq" and task["error_message"].endswith("not yet")

    retried = taskflow(api_url, "dlq", "retry", task_id)
    assert retried.returncode == 0, retried.stderr
    deadline = time.monotonic() + 30
    while (task := json.loads(taskflow(api_url, "get", "task", task_id).stdout))["status"] != "completed":
        assert time.monotonic() < deadline, task
        time.sleep(0.1)
    assert task["result"] == {"succeeded_on_attempt": 2}
    assert [attempt["outcome"] for attempt in task["attempts"]] == ["dead_lettered", "completed"]


def test_cancel_a_delayed_task(api_url: str, tmp_path: Path) -> None:
    task_file = tmp_path / "later.yaml"
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    task_file.write_text(f"type: noop\nscheduled_at: '{in_an_hour.isoformat()}'\n")
    submitted = taskflow(api_url, "submit", str(task_file))
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.strip()

    cancelled = taskflow(api_url, "cancel", "task", task_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("steps: [{id: a, type: noop}, {id: b, type: noop}]\nedges: [{from: a, to: b}, {from: b, to: a}]\n", "cycle"),
        ("just: nothing\n", "neither a DAG"),
        ("steps: [{id: a, type: noop}]\nedges: [{from: a, to: zzz}]\n", "zzz"),
    ],
)
def test_bad_files_get_a_message_and_exit_code(api_url: str, tmp_path: Path, content: str, expected: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    result = taskflow(api_url, "submit", str(bad))
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_task_id_is_a_clear_error(api_url: str) -> None:
    result = taskflow(api_url, "get", "task", "0190b0a4-0000-7000-8000-000000000000")
    assert result.returncode == 2
    assert "task not found" in result.stderr


def test_dev_runs_everything_and_exits_when_the_example_is_done(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    result = subprocess.run(
        [sys.executable, "-m", "taskflow", "dev", "--workers", "1", "--port", str(free_port()),
         "--data-dir", str(tmp_path / "dev"), "--submit", str(EXAMPLES / "diamond.yaml"), "--exit-when-done"],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed" in result.stdout
    assert (tmp_path / "dev" / "dev.env").is_file()
