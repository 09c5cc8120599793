"""A task broker that cannot be reached answers 503 broker_unavailable; an unreachable database stays 503
service_unavailable. Real routes are driven against a broker address where nothing listens.
"""

import json

import kombu.exceptions
import pytest
import redis.exceptions
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from imalink.api import api as ninja_api
from imalink.celery import app as celery_app
from jobs.models import Job
from tests.conftest import assert_error

DEAD_BROKER = "redis://127.0.0.1:1/0"  # port 1: connection refused at once


class OperationalErrorLookalike(Exception):
    """Named like a database error, and nothing to do with one."""


OperationalErrorLookalike.__name__ = "OperationalError"


def answer(exc):
    """What the API's handlers answer when a route raises exc (as a test client's response, to read its JSON)."""
    response = ninja_api.on_exception(RequestFactory().post("/api/v1/health/check"), exc)
    response.json = lambda: json.loads(response.content)
    return response


@pytest.mark.parametrize(
    "exc",
    [
        kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        kombu.exceptions.ConnectionError("connection to the broker lost"),
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    ],
    ids=lambda exc: f"{type(exc).__module__}.{type(exc).__name__}",
)
def test_a_broker_error_answers_503_broker_unavailable(exc):
    error = assert_error(answer(exc), 503, "broker_unavailable")
    assert "broker" in error["message"] and "database" not in error["message"]
    assert "127.0.0.1" not in error["message"]


@pytest.mark.parametrize(
    "exc",
    [OperationalError("connection refused"), InterfaceError("connection already closed")],
    ids=["OperationalError", "InterfaceError"],
)
def test_a_database_error_still_answers_503_service_unavailable(exc):
    error = assert_error(answer(exc), 503, "service_unavailable")
    assert "database" in error["message"]


def test_a_name_alone_no_longer_decides():
    assert_error(answer(OperationalErrorLookalike("not a database")), 500, "internal_error")


@pytest.fixture
def dead_broker():
    """The web process's Celery app pointed at a broker that refuses connections: no retries, short timeouts."""
    changes = {
        "broker_url": DEAD_BROKER,
        "broker_connection_timeout": 1,
        "broker_connection_retry": False,
        "broker_connection_max_retries": 0,
        "task_publish_retry": False,
    }
    saved = {key: celery_app.conf[key] for key in changes}
    forget_connections()
    celery_app.conf.update(changes)
    yield DEAD_BROKER
    forget_connections()
    celery_app.conf.update(saved)


def forget_connections():
    """Drop the app's pooled broker connections and producers, as Celery does after a fork, so none is reused."""
    celery_app._pool = None  # not closed: kombu's shared producer pools may still hold its connections
    celery_app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)  # so the job's on_commit send runs inside the request, as in production
def test_starting_a_job_with_the_broker_down_answers_503_broker_unavailable(api, dead_broker, make_storage):
    error = assert_error(api.post("/api/v1/health/check?wait=0"), 503, "broker_unavailable")
    assert "/api/v1/jobs/" in error["message"]
    # The job was recorded before the send failed: it stays queued, for the sweep to send again.
    job = Job.objects.get(kind="health_check")
    assert job.status == Job.Status.QUEUED and job.enqueued_at is None

    storage = make_storage("Broker down")
    assert_error(api.post(f"/api/v1/storage-index/scan/{storage['storage_uuid']}?wait=0"), 503, "broker_unavailable")
    assert Job.objects.get(kind="scan").status == Job.Status.QUEUED
