"""Worker-side glue for the bandits grader: builds agents and plays them.

Runs inside the untrusted worker, next to the submission; the grader trusts none
of it and checks every number that comes back.
"""

from __future__ import annotations

import numpy as np

from graders_worker.main import callback

AGENT_CLASSES = ("EpsilonGreedy", "UCB", "GradientBandit")
STATE = ("Q", "N", "H", "baseline", "t")
_agents: dict[int, object] = {}


def make_agent(submission, class_name: str, kwargs: dict) -> int:
    if class_name not in AGENT_CLASSES:
        raise ValueError(f"unknown agent class {class_name}")
    _agents[len(_agents)] = getattr(submission, class_name)(**kwargs)
    return len(_agents) - 1


def agent_state(submission, agent: int) -> dict:
    return {name: getattr(_agents[agent], name) for name in STATE if hasattr(_agents[agent], name)}


def set_agent_state(submission, agent: int, state: dict) -> None:
    for name, value in state.items():
        setattr(_agents[agent], name, value)


def agent_act(submission, agent: int):
    return _agents[agent].act()


def agent_policy(submission, agent: int):
    return _agents[agent].policy()


def agent_update(submission, agent: int, actions, rewards) -> None:
    _agents[agent].update(np.asarray(actions), np.asarray(rewards))


def scripted_run(submission, agent: int, actions, rewards) -> list[dict]:
    """Feed a scripted sequence of steps, each as a real run plays it: act() (its actions are
    replaced by the script's), then update(script's actions, rewards); the state after each."""
    states = []
    for a, r in zip(actions, rewards):
        _agents[agent].act()
        agent_update(submission, agent, a, r)
        states.append({k: np.array(v, copy=True) for k, v in agent_state(submission, agent).items()})
    return states


def play_testbed(submission, agent: int, steps: int) -> None:
    """Play `steps` steps on the grader's testbed; rewards come from the grader."""
    for _ in range(steps):
        actions = _agents[agent].act()
        rewards = callback("pull", np.asarray(actions))
        _agents[agent].update(np.asarray(actions), np.asarray(rewards))


def argmax_random_ties(submission, values, seed: int):
    return submission.argmax_random_ties(np.asarray(values), np.random.default_rng(seed))
