"""Every task the grader serves a training run follows one contract (graders/served.py): refused before it is opened,
opened once, malformed requests refused, counted against its budget and refused past it with the budget named, and
ended by the student's time running out (the request that finds it up answered as the last, the next refused).
One conformance test for each served task; what is particular to each (CartPole's dynamics and autoreset, the
search's decoding) is tested beside its grader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from graders.nas import table as nas_table
from graders.nas.search import SearchServer, draw_permutations
from graders.rl.server import CartPoleServer
from graders.sandbox import CallbackRefused
from graders.served import ServedTask
from graders_worker.rl.wire import SAME_STEP, unpack_step


@dataclass
class Served:
    """How a conformance test drives one served task."""

    make: Callable[[int | None, Callable[[], bool] | None], ServedTask]  # (budget, time_up) -> a task, not opened
    open: Callable[[ServedTask], object]
    requests_before_open: list[Callable[[ServedTask], object]]
    malformed: list[Callable[[ServedTask], object]]
    one_unit: Callable[[ServedTask], object]  # a request that uses one unit of the budget (or a step of it)
    finished: Callable[[object], bool]  # the reply says the task ended (retired, nothing remains)


def _cartpole_unit(task: CartPoleServer):
    """Play until an episode ends (one more episode started); the last reply."""
    for _ in range(1000):
        reply = unpack_step(task.step(np.zeros(1, dtype=np.int64)))
        if reply["terminated"].any() or reply["retired"].all():
            return reply
    raise AssertionError("an episode of pushes to the left did not end")


CARTPOLE = Served(
    make=lambda budget, time_up: CartPoleServer(seed=0, episode_budget=budget, time_up=time_up),
    open=lambda t: (t.make(1, SAME_STEP), t.reset()),
    requests_before_open=[lambda t: t.reset(), lambda t: t.step(np.zeros(1, dtype=np.int64))],
    malformed=[lambda t: t.step(np.array([0, 2])), lambda t: t.step(np.zeros(3, dtype=np.int64)),
               lambda t: t.step(np.array([0.5])), lambda t: t.step([0])],  # make_envs' own: test_reinforce.py
    one_unit=_cartpole_unit,
    finished=lambda reply: bool(reply["retired"].all()),
)
SEARCH = Served(
    make=lambda budget, time_up: SearchServer(nas_table.load(), draw_permutations(np.random.default_rng(0)),
                                              budget or 800, 100_000, 0.07, -0.07, time_up=time_up),
    open=lambda t: t.open(),
    requests_before_open=[lambda t: t.evaluate(np.zeros((1, 9), dtype=np.int64))],
    malformed=[lambda t: t.evaluate(np.zeros((1, 8), dtype=np.int64)), lambda t: t.evaluate(np.zeros((1, 9))),
               lambda t: t.evaluate(np.full((1, 9), 2)), lambda t: t.evaluate([[0] * 9]),
               lambda t: t.evaluate(np.zeros((0, 9), dtype=np.int64)),
               lambda t: t.evaluate(np.full((1, 9), -1, dtype=np.int64))],
    one_unit=lambda t: t.evaluate(np.zeros((1, 9), dtype=np.int64)),
    finished=lambda reply: reply["remaining"] == 0,
)
TASKS = [pytest.param(CARTPOLE, id="cartpole"), pytest.param(SEARCH, id="nas-search")]


@pytest.mark.parametrize("served", TASKS)
def test_a_served_task_refuses_requests_before_it_is_opened_and_a_second_opening(served):
    task = served.make(None, None)
    for request in served.requests_before_open:
        with pytest.raises(CallbackRefused):
            request(task)
    served.open(task)
    with pytest.raises(CallbackRefused, match="once per training run"):
        served.open(task)


@pytest.mark.parametrize("served", TASKS)
def test_a_served_task_refuses_malformed_requests_and_counts_nothing_for_them(served):
    task = served.make(None, None)
    served.open(task)
    used = task.used
    for request in served.malformed:
        with pytest.raises(CallbackRefused):
            request(task)
    assert task.used == used


@pytest.mark.parametrize("served", TASKS)
def test_a_served_task_counts_against_its_budget_and_refuses_past_it(served):
    task = served.make(3, None)
    served.open(task)
    for _ in range(10):  # bounded: a broken budget fails here, it does not hang
        if served.finished(served.one_unit(task)):  # the reply to the budget's last unit says it is spent
            break
    assert task.used == 3
    with pytest.raises(CallbackRefused, match=f"budget is 3 {task.unit} and 3 have been {task.counted}"):
        served.one_unit(task)
    assert task.used == 3


@pytest.mark.parametrize("served", TASKS)
def test_a_served_task_ends_itself_when_the_students_time_is_up(served):
    asked = []
    task = served.make(None, lambda: len(asked) >= 2)
    served.open(task)
    for _ in range(5):  # bounded: a broken time guard fails here, it does not hang
        asked.append(1)
        task._next_time_check = 0.0  # ask the clock at every request (it is asked every TIME_CHECK_S)
        reply = served.one_unit(task)
        if task.out_of_time:
            break
    assert task.out_of_time and len(asked) == 2 and served.finished(reply)
    with pytest.raises(CallbackRefused, match="used its time"):
        served.one_unit(task)
    assert "time ran out" in task.summary()
