"""Creating a new week's partitions never deadlocks with a reader of several series."""

from __future__ import annotations

import threading
import time

from gateway import BandTelemetry, DeviceType, Fleet, SmokeTelemetry, encode_message
from ingest.batch import Inbound, Kind, build_batch
from ingest.db import BatchWriter, connect
from ingest.migrate import StorageMode
from ingest.registry import load_registry
from ingest.settings import WriteMethod
from tests.ingest.streams import now_ms


def _batch_items(fleet: Fleet) -> list[Inbound]:
    smoke = next(d for d in fleet.devices if d.type is DeviceType.SMOKE)
    band = next(d for d in fleet.devices if d.type is DeviceType.BAND)
    now = now_ms()
    messages = [
        SmokeTelemetry(
            device_id=smoke.id, type=DeviceType.SMOKE, seq=1, ts=now, smoke_db_m=0.01, temp_c=21.0
        ),
        BandTelemetry(
            device_id=band.id, type=DeviceType.BAND, seq=1, ts=now, lat=39.93, lon=116.37, hacc_m=5
        ),
    ]
    return [Inbound(*encode_message(m), received_ms=now) for m in messages]


def test_new_partitions_of_two_series_do_not_deadlock_a_reader_of_both(
    registered: str, fleet: Fleet
) -> None:
    """The writer needs this week's smoke and band partitions (the fresh schema has none) while a
    reader holds the band table and then reads the smoke table: the order of a UNION over the
    series. Both used to be taken in one writer transaction, and PostgreSQL killed one side."""
    with connect(registered) as setup:
        registry = load_registry(setup)
    batch = build_batch(_batch_items(fleet), registry)
    assert len(batch.rows[Kind.SMOKE]) == len(batch.rows[Kind.BAND]) == 1
    errors: list[BaseException] = []
    with connect(registered) as reader, connect(registered) as writer_conn:
        writer_pid = writer_conn.info.backend_pid
        reader.execute("SELECT count(*) FROM band_telemetry").fetchone()

        def write() -> None:
            try:
                BatchWriter(WriteMethod.COPY, StorageMode.POSTGRESQL).write(writer_conn, batch)
            except BaseException as exc:  # reported to the test thread
                errors.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        with connect(registered) as watch:
            watch.autocommit = True
            deadline = time.monotonic() + 20
            while not watch.execute(
                "SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted", (writer_pid,)
            ).fetchone():
                assert time.monotonic() < deadline, "the writer never waited for the reader"
                assert thread.is_alive(), errors
                time.sleep(0.05)
        # The reader goes on to the second series while the writer waits for the first.
        smoke_rows = reader.execute("SELECT count(*) FROM smoke_telemetry").fetchone()
        reader.commit()
        thread.join(30)
        assert not thread.is_alive()
    assert errors == []
    assert smoke_rows is not None
    with connect(registered) as check:
        stored = [
            check.execute(f"SELECT count(*) FROM {kind.value}").fetchone()
            for kind in (Kind.SMOKE, Kind.BAND)
        ]
    assert stored == [(1,), (1,)]
