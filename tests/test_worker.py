"""Real worker processes: a stopping worker finishes its task, a killed one loses nothing."""

import json
import os
import signal

import pytest
import redis
from django.conf import settings

from config.tasks import slow_mark
from outbox.models import OutboxMessage, TaskFailure
from outbox.services import outbox_enqueue
from tests.faults import celery_broker, wait_until, workers

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def broker():
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


@pytest.fixture
def queue(child_process_env):
    """Publish from the test to the workers' private queue."""
    name = child_process_env["CELERY_TASK_DEFAULT_QUEUE"]
    with celery_broker(settings.CELERY_BROKER_URL, queue=name):
        yield name


@pytest.fixture
def marks(child_process_env):
    return os.path.join(child_process_env["MEDIA_ROOT"], "diagnostics")


def _unacked_ids(broker: redis.Redis) -> set[str]:
    """Task ids a worker took and has not acknowledged (kombu keeps them in one hash)."""
    return {json.loads(raw)[0]["headers"]["id"] for raw in broker.hgetall("unacked").values()}


def _lines(path: str) -> list[str]:
    return open(path).read().split() if os.path.exists(path) else []


def test_a_worker_asked_to_stop_finishes_its_task_first(
    transactional_db, child_process_env, queue, marks, broker
):
    # given: a worker in the middle of a task
    with workers(env=child_process_env, queue=queue) as (worker,):
        result = slow_mark.apply_async(kwargs={"key": "graceful", "seconds": 1.5})
        assert wait_until(lambda: os.path.exists(f"{marks}/graceful.runs"), timeout=15)

        # when
        worker.signal(signal.SIGTERM)
        exit_code = worker.process.wait(timeout=20)

    # then: the task ran to its end once, was acknowledged, and the worker exited cleanly
    assert exit_code == 0, worker.output
    assert os.path.exists(f"{marks}/graceful.done")
    assert len(_lines(f"{marks}/graceful.runs")) == 2  # one start: host and pid
    assert result.id not in _unacked_ids(broker)
    assert broker.llen(queue) == 0


def test_a_task_whose_worker_is_killed_runs_again_elsewhere_with_one_effect(
    transactional_db, child_process_env, queue, marks
):
    # given: two workers that take back an unacknowledged message after 2 s
    child_process_env["CELERY_VISIBILITY_TIMEOUT"] = "2"
    with workers(env=child_process_env, queue=queue, count=2) as pair:
        slow_mark.apply_async(kwargs={"key": "killed", "seconds": 1.0})
        assert wait_until(lambda: os.path.exists(f"{marks}/killed.runs"), timeout=15)
        first_pid = int(_lines(f"{marks}/killed.runs")[1])
        victim = next(worker for worker in pair if worker.process.pid == first_pid)

        # when: killed mid-task, with no chance to acknowledge or requeue
        victim.signal(signal.SIGKILL)
        victim.process.wait(timeout=5)

        # then: the other worker runs it again, and the mark is made once, by the survivor
        done = wait_until(lambda: os.path.exists(f"{marks}/killed.done"), timeout=20)
        survivor = next(worker for worker in pair if worker is not victim)
        assert done, survivor.output
    starts = _lines(f"{marks}/killed.runs")
    assert [int(pid) for pid in starts[1::2]] == [first_pid, survivor.process.pid]
    assert _lines(f"{marks}/killed.done") == [str(survivor.process.pid)]


def test_a_task_that_fails_for_good_on_a_worker_is_kept_for_staff_and_closes_its_request(
    transactional_db, child_process_env, queue
):
    # when: a request whose task cannot succeed is run by a worker
    with workers(env=child_process_env, queue=queue) as (worker,):
        outbox_enqueue(task_name="stockwire.slow_mark", kwargs={"key": "Not A Key", "seconds": 0})
        request = OutboxMessage.objects.get()
        recorded = wait_until(
            lambda: TaskFailure.objects.filter(task_id=str(request.pk)).exists(), timeout=15
        )

    # then: staff see the failure, and the relay will not send the request again
    assert recorded, worker.output
    failure = TaskFailure.objects.get(task_id=str(request.pk))
    assert failure.task_name == "stockwire.slow_mark"
    assert failure.kwargs == {"key": "Not A Key", "seconds": 0}
    assert failure.exception.startswith("ValueError(")
    assert failure.hostname.startswith("w")
    request.refresh_from_db()
    assert (request.failed_at, request.done_at) == (failure.failed_at, None)
