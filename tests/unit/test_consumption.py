"""The stalled-consumer detector: waiting messages, room, and nothing received."""

from __future__ import annotations

from worker.consumption import ConsumptionWatch


def test_waiting_messages_room_and_nothing_received_for_stall_s_is_a_stall() -> None:
    watch = ConsumptionWatch(stall_s=30)
    assert not watch.stalled(100, waiting=5, reserved=0, capacity=2, received_at=0)
    assert not watch.stalled(129, waiting=5, reserved=1, capacity=2, received_at=0)
    assert watch.stalled(130, waiting=5, reserved=1, capacity=2, received_at=0)


def test_a_received_task_restarts_the_clock() -> None:
    watch = ConsumptionWatch(stall_s=30)
    watch.stalled(100, waiting=5, reserved=0, capacity=2, received_at=0)
    assert not watch.stalled(135, waiting=5, reserved=0, capacity=2, received_at=120)
    assert watch.stalled(150, waiting=5, reserved=0, capacity=2, received_at=120)


def test_a_full_worker_or_empty_queues_or_redis_away_is_no_stall() -> None:
    for waiting, reserved in ((5, 2), (0, 0), (None, 0)):
        watch = ConsumptionWatch(stall_s=30)
        watch.stalled(100, waiting=5, reserved=0, capacity=2, received_at=0)
        assert not watch.stalled(200, waiting=waiting, reserved=reserved, capacity=2, received_at=0)
        # and the clock starts again from there
        assert not watch.stalled(201, waiting=5, reserved=0, capacity=2, received_at=0)
        assert watch.stalled(231, waiting=5, reserved=0, capacity=2, received_at=0)


def test_zero_disables_it() -> None:
    watch = ConsumptionWatch(stall_s=0)
    watch.stalled(0, waiting=5, reserved=0, capacity=2, received_at=0)
    assert not watch.stalled(10_000, waiting=5, reserved=0, capacity=2, received_at=0)
