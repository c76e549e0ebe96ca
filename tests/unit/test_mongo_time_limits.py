"""How the MongoDB adapter reports running out of time: a 503 to retry, never a 500, and never "unreachable"
for a database that answered."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.errors import (
    BulkWriteError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
    WriteConcernError,
)

from telemetry_server.errors import AppError, QueryTimedOut, StorageUnavailable
from telemetry_server.storage.mongo import unavailable_when_unreachable


def raised(error: PyMongoError, time_limit: float | None) -> Exception:
    """What leaves the adapter when pymongo raises `error` inside it."""

    async def run() -> None:
        async with unavailable_when_unreachable("find", time_limit):
            raise error

    try:
        asyncio.run(run())
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


@pytest.mark.parametrize("time_limit", [None, 1.0])
def test_the_engine_stopping_at_max_time_ms_is_a_timed_out_query(time_limit: float | None) -> None:
    error = raised(ExecutionTimeout("operation exceeded time limit", 50), time_limit)
    assert isinstance(error, QueryTimedOut)
    assert error.detail == "MongoDB stopped the find at its time limit"


@pytest.mark.parametrize("error", [NetworkTimeout("timed out"), WaitQueueTimeoutError("pool")])
def test_the_driver_giving_up_at_the_limit_is_a_timed_out_query(error: PyMongoError) -> None:
    refused = raised(error, 1.0)
    assert isinstance(refused, QueryTimedOut)
    assert refused.detail == "MongoDB did not answer the find within its time limit"


@pytest.mark.parametrize("error", [NetworkTimeout("timed out"), WaitQueueTimeoutError("pool")])
def test_without_a_limit_a_transport_timeout_is_unreachable(error: PyMongoError) -> None:
    refused = raised(error, None)
    assert type(refused) is StorageUnavailable


@pytest.mark.parametrize("time_limit", [None, 1.0])
def test_no_server_to_talk_to_is_unreachable_whatever_the_limit(time_limit: float | None) -> None:
    refused = raised(ServerSelectionTimeoutError("no servers"), time_limit)
    assert type(refused) is StorageUnavailable
    assert refused.detail == "MongoDB is unreachable (find)"


def test_a_reply_that_is_a_real_fault_stays_a_500() -> None:
    error = raised(OperationFailure("bad", 2), 1.0)
    assert isinstance(error, OperationFailure)
    assert not isinstance(error, AppError)


@pytest.mark.parametrize(
    "error",
    [
        WriteConcernError("waiting for replication timed out", 64, {"errInfo": {"wtimeout": True}}),
        BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "wtimeout"}]}),
    ],
)
def test_a_write_not_confirmed_at_its_write_concern_is_unavailable(error: PyMongoError) -> None:
    refused = raised(error, None)
    assert type(refused) is StorageUnavailable
    assert refused.detail == "MongoDB did not confirm the find at its write concern"


def test_a_write_the_server_refused_stays_a_fault() -> None:
    error = BulkWriteError({"writeErrors": [{"index": 0, "code": 121, "errmsg": "invalid"}], "writeConcernErrors": []})
    assert raised(error, None) is error
