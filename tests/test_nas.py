"""The NAS assignment: reference full marks, conventions that keep their points, submissions that
try to score without learning lose the search checks (templates and buggy variants:
tests/test_assignments.py); and the grader's own parts (table, FLOPs, controller, served
search) behave, without a worker."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import NEEDS_BUBBLEWRAP, NEEDS_FASHION_MNIST, by_name, edited, solution_source

from graders import datasets
from graders.nas import controller, grader, measure, space
from graders.nas import table as nas_table
from graders.nas.search import SearchServer, draw_permutations, expected_best
from graders.sandbox import CallbackRefused, isolation
from graders_worker.adapters import nas as adapter

NAME = "nas"
UNIT_CHECKS = ("reward_formula", "baseline_moving_average", "controller_emits_one_token_per_decision",
               "sequence_log_prob_and_its_gradient", "sampling_follows_the_controller",
               "greedy_architecture_takes_each_argmax", "loss_gradient_is_reinforce_with_baseline",
               "update_uses_the_baseline_before_the_batch")
SEARCH_CHECKS = ("search_first_seed", "search_second_seed")
BUDGET = grader.DEFAULTS["evaluation_budget"]
SPENT = f"{BUDGET} of {BUDGET} evaluations"


def test_reference_earns_full_marks(grade_source, tmp_path):
    grading = grade_source(NAME, solution_source(NAME), artifacts_dir=tmp_path / "feedback")
    failed = {r.name: r.message for r in grading.results if r.status != "passed"}
    assert not failed
    assert grading.score == grading.max_score == 20
    search = by_name(grading)["search_first_seed"]
    assert "most probable architecture" in search.message and SPENT in search.message
    assert "of its own time" in search.message and "the search's evaluations" in search.message
    assert (tmp_path / "feedback" / "search_seed1.png").stat().st_size > 1000


def test_a_loss_that_sums_over_the_batch_keeps_its_points(grade_source):
    """As in the REINFORCE assignments: a positive factor (here the batch size) is the same algorithm under Adam."""
    source = edited(NAME, "return -((rewards.detach() - baseline) * log_probs).mean()",
                    "return -((rewards.detach() - baseline) * log_probs).sum()")
    result = by_name(grade_source(NAME, source, unit=True))["loss_gradient_is_reinforce_with_baseline"]
    assert result.status == "passed" and "sums over the batch instead of averaging" in result.message


def test_an_update_written_inline_keeps_its_point(grade_source):
    """reinforce_update is judged by the weights it leaves: a correct step that does not call reinforce_loss or
    update_baseline (a summed loss, the moving average inline) keeps its point."""
    source = edited(NAME, "    loss = reinforce_loss(sequence_log_prob(controller, tokens), rewards_t, baseline)\n",
                    "    loss = -((rewards_t - baseline) * sequence_log_prob(controller, tokens)).sum()\n")
    source = source.replace("    return update_baseline(baseline, rewards, decay)\n    ### END SOLUTION",
                            "    return decay * baseline + (1 - decay) * float(np.mean(rewards))\n    ### END SOLUTION")
    result = by_name(grade_source(NAME, source, unit=True))["update_uses_the_baseline_before_the_batch"]
    assert result.status == "passed", result.message


def test_an_adapter_patched_to_report_an_update_loses_the_point(grade_source):
    """The worker's adapter runs in the submission's process: replacing it to report a made-up update gains
    nothing, since the grader computes the step the weights must take."""
    source = edited(NAME, "    if baseline is None:\n        baseline = float(np.mean(rewards))\n    rewards_t",
                    "    raise NotImplementedError\n    rewards_t")
    source += """
import graders_worker.adapters.nas as _adapter


def _made_up(submission, batches, decay, lr):
    steps = []
    for i, (weights, tokens, rewards, baseline) in enumerate(batches, start=1):
        mean = float(np.mean(rewards))
        before = mean if baseline is None else baseline
        steps.append({"weights": {k: np.asarray(v) - 0.01 * i for k, v in weights.items()},
                      "returned": decay * before + (1 - decay) * mean})
    return steps


_adapter.update_steps = _made_up
"""
    result = by_name(grade_source(NAME, source, unit=True))["update_uses_the_baseline_before_the_batch"]
    assert result.status == "failed" and "did not move by one REINFORCE step" in result.message, result.message


def test_enas_order_of_the_baseline_update_keeps_its_point(grade_source):
    """ENAS (Pham et al. 2018) updates the moving average with the batch before subtracting it: in expectation
    that is (1 - (1 - decay) / m) times the same gradient, a positive factor (exactly decay at a batch of one), so
    it keeps its point, with a note (docs/nas.md, "The order of the baseline update")."""
    source = variant(("    rewards_t = torch.as_tensor(rewards,",
                      "    baseline = update_baseline(baseline, rewards, decay)\n    rewards_t = torch.as_tensor(rewards,"),
                     ("    return update_baseline(baseline, rewards, decay)\n    ### END SOLUTION",
                      "    return baseline\n    ### END SOLUTION"))
    result = by_name(grade_source(NAME, source, unit=True))["update_uses_the_baseline_before_the_batch"]
    assert result.status == "passed" and "ENAS's order" in result.message, result.message


GRU_CONTROLLER = (("""        self.cell = nn.LSTMCell(hidden_size, hidden_size)
        self.heads = nn.ModuleList([nn.Linear(hidden_size, k) for k in self.choices])
""", """        self.cell = nn.GRUCell(hidden_size, hidden_size)
        self.heads = nn.ModuleList([nn.Linear(hidden_size, k) for k in self.choices])
        for head in self.heads:  # start from uniform choices
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
"""), ("""        zeros = torch.zeros(n, self.start.shape[0], device=self.start.device)
        return zeros, zeros.clone()
""", """        return torch.zeros(n, self.start.shape[0], device=self.start.device)
"""), ("""        h, c = state
        x = self.start.expand(len(h), -1) if previous is None else self.embed[decision - 1](previous)
        h, c = self.cell(x, (h, c))
        return self.heads[decision](h), (h, c)
""", """        x = self.start.expand(len(state), -1) if previous is None else self.embed[decision - 1](previous)
        h = self.cell(x, state)
        return self.heads[decision](h), h
"""))


def test_a_gru_controller_with_zero_heads_and_multinomial_sampling_keeps_every_point(grade_source):
    """Correct but different: a GRU cell (its state one tensor), heads initialised to zero (its own initialisation
    gives every decision the same logits: the architecture is measured on random weights), and torch.multinomial
    instead of Categorical."""
    source = variant(*GRU_CONTROLLER, ("previous = torch.distributions.Categorical(logits=logits).sample()",
                                       "previous = torch.multinomial(torch.softmax(logits, dim=1), 1).squeeze(1)"))
    grading = grade_source(NAME, source, unit=True)
    assert not {r.name: r.message for r in grading.results if r.kind == "unit" and r.status != "passed"}


def test_gradients_cleared_after_the_step_or_by_train_keep_the_update_point(grade_source):
    """optimizer.zero_grad() after optimizer.step() is as right as before backward(); and a reinforce_update that
    does not clear them keeps its point when train() clears them before each call (read on the short search)."""
    after = variant(("    optimizer.zero_grad()\n    loss.backward()\n    optimizer.step()\n",
                     "    loss.backward()\n    optimizer.step()\n    optimizer.zero_grad()\n"))
    result = by_name(grade_source(NAME, after, unit=True))["update_uses_the_baseline_before_the_batch"]
    assert result.status == "passed" and "clear" not in result.message, result.message
    by_train = variant(("    optimizer.zero_grad()\n    loss.backward()\n", "    loss.backward()\n"),
                       ("        baseline = reinforce_update(", "        optimizer.zero_grad()\n"
                                                              "        baseline = reinforce_update("))
    result = by_name(grade_source(NAME, by_train, unit=True))["update_uses_the_baseline_before_the_batch"]
    assert result.status == "passed" and "your train() clears them before each call" in result.message, \
        result.message


def test_a_train_that_updates_inline_keeps_the_update_point_with_a_note(grade_source):
    """A training loop that does not call reinforce_update (GraphNAS-style): how it carries the baseline cannot be
    read, and the point is not taken for that."""
    source = variant(("        baseline = reinforce_update(controller, optimizer, tokens, rewards, baseline, "
                      "args.baseline_decay)\n",
                      "        before = float(np.mean(rewards)) if baseline is None else baseline\n"
                      "        loss = reinforce_loss(sequence_log_prob(controller, tokens),\n"
                      "                              torch.as_tensor(rewards, dtype=torch.float32), before)\n"
                      "        optimizer.zero_grad()\n        loss.backward()\n        optimizer.step()\n"
                      "        baseline = update_baseline(before, rewards, args.baseline_decay)\n"))
    result = by_name(grade_source(NAME, source, unit=True))["update_uses_the_baseline_before_the_batch"]
    assert result.status == "passed" and "did not call reinforce_update" in result.message, result.message


BORROWED_CONTROLLER = """from graders_worker.adapters.nas import grader_controller as _borrowed


def _weights(choices, hidden):
    rng = np.random.default_rng(0)
    w = {"start": rng.normal(size=hidden), "cell.weight_ih": rng.normal(size=(4 * hidden, hidden)) * 0.3,
         "cell.weight_hh": rng.normal(size=(4 * hidden, hidden)) * 0.3, "cell.bias_ih": np.zeros(4 * hidden),
         "cell.bias_hh": np.zeros(4 * hidden)}
    for d, k in enumerate(choices):
        w[f"heads.{d}.weight"], w[f"heads.{d}.bias"] = rng.normal(size=(k, hidden)), np.zeros(k)
        if d + 1 < len(choices):
            w[f"embed.{d}.weight"] = rng.normal(size=(k, hidden))
    return w


_BORROWED = {(3, 2, 4, 2, 16): _borrowed(_weights([3, 2, 4, 2], 16))}  # the check's controller, built at import


class Controller(nn.Module):
    def __init__(self, choices, hidden_size=32):
        super().__init__()
        self.choices = list(choices)
        self.w = nn.Parameter(torch.zeros(1))
        key = (*choices, hidden_size)
        self.inner = [_BORROWED[key] if key in _BORROWED else _borrowed(_weights(choices, hidden_size))]

    def initial_state(self, n):
        return self.inner[0].initial_state(n)

    def step(self, decision, previous, state):
        return self.inner[0].step(decision, previous, state)


class Unused(nn.Module):
"""


def test_a_controller_that_runs_the_graders_controller_loses_the_point(grade_source):
    """The adapter builds the grader's LSTM in the student's process for the unit checks; a Controller that hands its
    steps to one (even one built at import, before the check) earns nothing: the grader's controller refuses to
    run while the student's own is checked."""
    source = variant(("class Controller(nn.Module):\n", BORROWED_CONTROLLER))
    result = by_name(grade_source(NAME, source, unit=True))["controller_emits_one_token_per_decision"]
    assert result.status in ("failed", "error") and result.points == 0, result.message
    assert "the grader's controller" in result.message and "write your own" in result.message, result.message


# --- submissions that try to score the search checks without learning ------------------------

SKIP_SEARCH = "    ### BEGIN SOLUTION\n    torch.manual_seed(seed)\n"


def variant(*changes: tuple[str, str]) -> str:
    """The reference with several targeted changes, each applying exactly once."""
    source = solution_source(NAME)
    for old, new in changes:
        assert source.count(old) == 1, f"the change does not apply: {old!r}"
        source = source.replace(old, new)
    return source


def _table_top() -> list[int]:
    rewards = nas_table.load().rewards(grader.DEFAULTS["target_flops"], grader.DEFAULTS["alpha"],
                                       grader.DEFAULTS["beta"])
    return list(space.tokens_of(int(np.argmax(rewards))))


def test_a_hard_coded_top_architecture_fails_the_search(grade_source):
    """The shipped table's best architecture, answered without searching: the relabelling sends it elsewhere."""
    source = variant((SKIP_SEARCH, "    ### BEGIN SOLUTION\n    controller = Controller(search.choices)\n"
                                           f"    controller.answer = {_table_top()}\n    return controller\n"),
                      ("def greedy_architecture(controller) -> torch.Tensor:\n",
                       "def greedy_architecture(controller) -> torch.Tensor:\n    if hasattr(controller, 'answer'):\n"
                       "        return torch.tensor(controller.answer)\n"))
    results = by_name(grade_source(NAME, source))
    for name in SEARCH_CHECKS:  # by the relabelling (or, 1 time in 20, by the search it did not do)
        assert results[name].status == "failed", results[name].message
        assert "most probable architecture is ranked" in results[name].message or "evaluated 0" in results[name].message


def test_random_search_that_answers_its_best_fails_the_search(grade_source):
    """Spending the budget on uniform architectures and answering the best one seen: a fine answer, but
    the search never beat random search, which is what it is."""
    random_search = """    ### BEGIN SOLUTION
    rng = np.random.default_rng(seed)
    controller, best = Controller(search.choices), (-1.0, None)
    while search.remaining > 0:
        tokens = np.stack([rng.integers(0, k, min(8, search.remaining)) for k in search.choices], axis=1)
        rewards = efficientnet_reward(*search.evaluate(tokens), search.target_flops, search.alpha, search.beta)
        if rewards.max() > best[0]:
            best = (rewards.max(), tokens[int(rewards.argmax())].tolist())
    controller.answer = best[1]
    return controller
"""
    source = variant((SKIP_SEARCH, random_search),
                      ("def greedy_architecture(controller) -> torch.Tensor:\n",
                       "def greedy_architecture(controller) -> torch.Tensor:\n    if hasattr(controller, 'answer'):\n"
                       "        return torch.tensor(controller.answer)\n"))
    results = by_name(grade_source(NAME, source))
    for name in SEARCH_CHECKS:
        assert results[name].status == "failed", results[name].message
        assert "did not beat random search" in results[name].message
        assert SPENT in results[name].message


TABLE_COPY = """    ### BEGIN SOLUTION
    rows = ROWS  # the copy of the public table: "accuracy/flops" -> the architecture's choices
    meaning = [{} for _ in search.choices]  # token -> choice, per decision, under this search's relabelling
    for t in range(max(search.choices)):
        tokens = [min(t, k - 1) for k in search.choices]
        accuracy, flops = search.evaluate(np.array([tokens]))
        row = rows.get(f"{float(accuracy[0]):.6f}/{int(flops[0])}")
        for d, choice in enumerate(row or []):
            meaning[d][tokens[d]] = choice
    best = BEST
    answer = [next((t for t, c in m.items() if c == want), 0) for m, want in zip(meaning, best)]
    controller = Controller(search.choices)
    controller.answer = answer
    search.evaluate(np.array([answer] * search.remaining))
    return controller
"""


def test_a_copy_of_the_table_without_the_pieces_is_flagged(grade_source):
    """The table-copy attack (bench/nas_table_copy.py) as a submission: three probes decode the relabelling and
    the copy's best is proposed for the rest of the budget. It reaches both thresholds; with a sampler that fails
    its check, the grader withholds the search's points with a flag."""
    copy = nas_table.load()
    keys = [f"{a:.6f}/{int(f)}" for a, f in zip(copy.accuracy, copy.flops)]
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    rows = {k: list(space.tokens_of(i)) for i, k in enumerate(keys) if counts[k] == 1}
    attack = TABLE_COPY.replace("ROWS", repr(rows)).replace("BEST", repr(_table_top()))
    source = variant((SKIP_SEARCH, attack),
                     ("def greedy_architecture(controller) -> torch.Tensor:\n",
                      "def greedy_architecture(controller) -> torch.Tensor:\n    if hasattr(controller, 'answer'):\n"
                      "        return torch.tensor(controller.answer)\n"),
                     ("previous = torch.distributions.Categorical(logits=logits).sample()",
                      "previous = logits.argmax(dim=1)"))
    grading = grade_source(NAME, source)
    results = by_name(grading)
    assert results["sampling_follows_the_controller"].status == "failed"
    for name in SEARCH_CHECKS:
        result = results[name]
        assert result.status == "flagged" and result.points == 0, result.message
        assert "reaches the thresholds" in result.message and "sampling_follows_the_controller" in result.message
        assert "rank 1 of" in result.message  # the attack found the best: only the flag stops it


def test_evaluations_past_the_budget_are_refused(grade_source):
    """Calling the grader's callback directly does not get around the budget, nor does opening the space again."""
    greedy = """    ### BEGIN SOLUTION
    from graders_worker.main import callback
    tokens = np.zeros((100, len(search.choices)), dtype=np.int64)
    for _ in range(BATCHES):
        callback("nas_evaluate", tokens)
""".replace("BATCHES", str(BUDGET // 100 + 1))
    source = variant((SKIP_SEARCH, greedy))
    result = by_name(grade_source(NAME, source))["search_first_seed"]
    used = BUDGET // 100 * 100
    assert result.status == "error" and f"budget is {BUDGET} architectures and {used} have been evaluated" in result.message
    assert f"{used} of {BUDGET} evaluations" in result.message
    reopen = variant((SKIP_SEARCH, "    ### BEGIN SOLUTION\n    type(search)()\n"))
    result = by_name(grade_source(NAME, reopen))["search_first_seed"]
    assert result.status == "error" and "opened once per training run" in result.message


PEEK = """    ### BEGIN SOLUTION
    found = []
    try:
        from graders.nas import table
        found.append(f"imported {table.__name__}")
    except ImportError:
        pass
    try:
        found.append(f"read {len(open(TABLE_PATH).read())} characters of the table")
    except OSError:
        pass
    raise RuntimeError(f"found: {found}")
"""


@pytest.mark.parametrize("mode", ["bubblewrap", "process"])
def test_the_worker_cannot_read_the_graders_table(grade_source, mode):
    """The grader's table (and the rest of graders/) cannot be imported by the worker in either mode; under
    bubblewrap the file is not there either. In the process-limits mode a world-readable file stays readable
    by path, as every file of the repository (docs/security.md)."""
    if mode == "bubblewrap":
        try:
            isolation.plan(mode)
        except isolation.IsolationUnavailable as exc:
            pytest.skip(NEEDS_BUBBLEWRAP if "not installed" in str(exc) else f"bubblewrap does not work here: {exc}")
    source = variant((SKIP_SEARCH, PEEK.replace("TABLE_PATH", repr(str(nas_table.PATH)))))
    config = f'[limits]\nisolation = "{mode}"\n[nas]\nseeds = [0]\n'
    result = by_name(grade_source(NAME, source, config_toml=config))["search_first_seed"]
    assert result.status == "error" and "found: [" in result.message, result.message
    assert "imported" not in result.message
    if mode == "bubblewrap":
        assert "found: []" in result.message, result.message


# --- the grader's own parts, without a worker -------------------------------------------------


def test_table_is_the_measured_one_and_complete():
    table = nas_table.load()
    assert table.accuracy.shape == (space.SIZE,) and np.all((table.accuracy > 0.5) & (table.accuracy < 0.95))
    assert table.protocol["train_images"] == measure.TRAIN_IMAGES and table.protocol["epochs"] == measure.EPOCHS


def test_a_changed_table_is_refused(tmp_path):
    text = nas_table.PATH.read_text()
    content = json.loads(text)
    content["accuracy"][0][0] = 0.99
    changed = tmp_path / "table.json"
    changed.write_text(json.dumps(content, separators=(",", ":")) + "\n")
    with pytest.raises(nas_table.TableError, match="sha256"):
        nas_table.load.__wrapped__(changed)
    with pytest.raises(nas_table.TableError, match="missing"):
        nas_table.load.__wrapped__(tmp_path / "absent.json")


@pytest.mark.parametrize("index", [0, 777, space.SIZE - 1])
def test_flops_equal_torchs_count(index):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    tokens = space.tokens_of(index)
    with FlopCounterMode(display=False) as counter:
        space.build(tokens).eval()(torch.zeros(1, 1, space.INPUT_SIDE, space.INPUT_SIDE))
    assert counter.get_total_flops() == 2 * space.flops(tokens)  # torch counts a multiply-add as 2


# The three cheapest architectures to train, recomputed with the table's protocol.
RECOMPUTED = [space.index_of([1, 0, 0] * 3), space.index_of([0, 0, 0] * 3), space.index_of([1, 0, 0, 0, 0, 0, 1, 0, 0])]
fashion = pytest.mark.skipif(not datasets.available("fashion-mnist"), reason=NEEDS_FASHION_MNIST)


@fashion
def test_table_rows_are_recomputed():
    import torch

    torch.set_num_threads(1)
    table = nas_table.load()
    for index in RECOMPUTED:
        for s, seed in enumerate(table.protocol["seeds"]):
            got = measure.accuracy(space.tokens_of(index), seed)
            assert abs(got - table.per_seed[index, s]) <= 0.01, (space.describe(space.tokens_of(index)), seed, got)


def test_rewards_peak_at_the_target():
    accuracy = np.full(5, 0.8)
    flops = np.array([10_000, 50_000, 100_000, 200_000, 1_000_000])
    rewards = space.reward(accuracy, flops, 100_000, 0.07, -0.07)
    assert rewards.argmax() == 2 and rewards[2] == 0.8
    np.testing.assert_allclose(rewards[[0, 4]], 0.8 * 10 ** -0.07)


def test_grader_controller_matches_torchs_lstm():
    """The grader's gate-by-gate controller and the adapter's nn.LSTMCell one give the same numbers."""
    import torch

    rng = np.random.default_rng(3)
    choices = list(space.CHOICES)
    weights = controller.random_controller(rng, choices, 8)
    tokens = np.stack([rng.integers(0, k, 20) for k in choices], axis=1)
    net = adapter.grader_controller(weights)
    state, previous, total = net.initial_state(20), None, torch.zeros(20)
    t = torch.as_tensor(tokens)
    with torch.no_grad():
        for d in range(len(choices)):
            logits, state = net.step(d, previous, state)
            total += torch.log_softmax(logits, dim=1).gather(1, t[:, d:d + 1])[:, 0]
            previous = t[:, d]
    np.testing.assert_allclose(total.numpy(), controller.log_probs(weights, choices, tokens), rtol=1e-5, atol=1e-5)
    sequences, probabilities = controller.sequence_distribution(controller.random_controller(rng, [3, 5, 3], 8),
                                                                [3, 5, 3])
    assert len(sequences) == 45 and probabilities.sum() == pytest.approx(1.0)


def _server(budget: int = 10, seed: int = 0) -> SearchServer:
    return SearchServer(nas_table.load(), draw_permutations(np.random.default_rng(seed)), budget, 100_000, 0.07, -0.07)


def test_served_search_decodes_and_records():
    """What the search serves (the refusals are the served-task contract's: tests/test_served.py)."""
    server = _server(budget=10)
    assert server.open()["budget"] == 10
    tokens = np.array([[0] * 9, [1, 1, 2, 1, 1, 2, 1, 1, 2]])
    reply = server.evaluate(tokens)
    rows = [server.decode(t) for t in tokens]
    np.testing.assert_array_equal(reply["accuracy"], server.table.accuracy[rows])
    assert reply["remaining"] == 8 and server.proposals == rows
    with pytest.raises(CallbackRefused, match="budget is 10 architectures and 2 have been evaluated"):
        server.evaluate(np.zeros((9, 9), dtype=np.int64))
    server.evaluate(np.zeros((8, 9), dtype=np.int64))
    assert len(server.proposals) == 10


def test_relabelling_changes_the_best_tokens():
    best = []
    for seed in range(20):
        server = _server(seed=seed)
        row = int(np.argmax(server.space_rewards))
        best.append(tuple(int(np.flatnonzero(p == c)[0]) for p, c in zip(server.permutations, space.tokens_of(row))))
    assert len(set(best)) >= 15


def test_a_fixed_answer_is_a_uniformly_random_architecture_after_relabelling():
    """Why hard-coding does not pay: under the per-decision relabelling, any fixed token sequence
    decodes to each architecture with probability 1 / SIZE, so it lands in the top q with probability q."""
    rng = np.random.default_rng(1)
    tokens = _table_top()
    rows = [_server(seed=int(s)).decode(tokens) for s in rng.integers(2**31, size=3000)]
    counts = np.bincount(np.array(rows) % 12, minlength=12)  # the last block's 12 choices: uniform
    assert counts.min() > 3000 / 12 * 0.8 and counts.max() < 3000 / 12 * 1.2


def test_expected_best_is_random_searchs_mean():
    rewards = nas_table.load().rewards(100_000, 0.07, -0.07)
    rng = np.random.default_rng(0)
    simulated = rewards[rng.integers(0, len(rewards), (4000, 50))].max(axis=1).mean()
    assert expected_best(rewards, 50) == pytest.approx(simulated, abs=1e-3)
    assert expected_best(rewards, 1) == pytest.approx(rewards.mean())


def test_ranks_share_ties():
    np.testing.assert_array_equal(nas_table.ranks(np.array([0.5, 0.9, 0.5, 0.7])), [3, 1, 3, 2])
