"""ARC at inference: version names, transforms, the official vote, pass@k, submissions, end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.arc import ArcRunner, Prediction, plan_jobs, score, submission, tally
from trm_edge.runtime.solver import Solver
from trm_edge.tasks.arc import ArcCodec
from trm_edge.tasks.arc_tasks import read_arc_tasks
from trm_edge.tasks.arc_versions import ArcVersion, ArcVersionError, versions_by_task
from trm_edge.tasks.arc_vote import Ballot, crop
from trm_edge.train.arc_eval import arc_pass_at_k
from trm_edge.train.build_arc import build_arc
from trm_edge.train.dataset import load_info, load_split

from conftest import CPU_BACKENDS, reference_files, run_cli, run_cli_in_process

ARC = Path(__file__).parent / "fixtures" / "arc"
CHALLENGES = ARC / "arc-agi_evaluation_challenges.json"
SOLUTIONS = ARC / "arc-agi_evaluation_solutions.json"

# The official builder's symmetries, restated from its rules (numpy calls as it makes them).
OFFICIAL_SYMMETRY = (
    lambda a: a,
    lambda a: np.rot90(a, k=1),
    lambda a: np.rot90(a, k=2),
    lambda a: np.rot90(a, k=3),
    np.fliplr,
    np.flipud,
    lambda a: a.T,
    lambda a: np.fliplr(np.rot90(a, k=1)),
)
OFFICIAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def _official_name(task: str, tid: int, mapping: np.ndarray) -> str:
    return f"{task}|||t{tid}|||{''.join(str(x) for x in mapping)}"


# --- names and transforms ---------------------------------------------------------------------


def test_version_names_follow_the_official_grammar() -> None:
    version = ArcVersion.parse("00576224|||t5|||0123456798")
    assert (version.task, version.symmetry, version.colours) == ("00576224", 5, (0, 1, 2, 3, 4, 5, 6, 7, 9, 8))
    assert version.name == "00576224|||t5|||0123456798" and not version.is_identity
    assert ArcVersion.parse("00576224") == ArcVersion("00576224") and ArcVersion("00576224").is_identity
    # The identity written out in full is the same version, named as the builder names it: bare.
    assert ArcVersion.parse("abc|||t0|||0123456789").name == "abc"
    for bad, message in [
        ("abc|||t8|||0123456789", "symmetry ids are 0-7"),
        ("abc|||t1|||1023456789", "permute 0-9 and keep 0"),
        ("abc|||t1|||012345678", "permute 0-9 and keep 0"),
        ("abc|||x1|||0123456789", "not an official ARC version name"),
        ("abc|||t1", "not an official ARC version name"),
        ("<blank>", "names no ARC task version"),
    ]:
        with pytest.raises(ArcVersionError, match=message):
            ArcVersion.parse(bad)


def test_versions_by_task_puts_the_identity_first() -> None:
    names = ["<blank>", "b|||t1|||0213456789", "a", "b", "a|||t6|||0123456789", "b|||t2|||0123456789"]
    by_task = versions_by_task(names)
    assert [v.identifier for v in by_task["a"]] == [2, 4]
    assert [v.identifier for v in by_task["b"]] == [3, 1, 5]
    with pytest.raises(ArcVersionError, match="not an official ARC version name"):
        versions_by_task(["<blank>", "a|||t1"])


def test_transforms_match_the_official_builder_on_real_tasks() -> None:
    tasks = read_arc_tasks(CHALLENGES, SOLUTIONS) + read_arc_tasks(ARC / "arc-agi_training_challenges.json")
    rng = np.random.default_rng(0)
    grids = [np.array(g) for t in tasks for pair in t.train + t.test for g in pair if g is not None]
    assert len(grids) > 40
    for tid in range(8):
        for _ in range(3):
            mapping = np.concatenate([[0], rng.permutation(9) + 1])
            version = ArcVersion.parse(_official_name("task", tid, mapping))
            assert version.name == _official_name("task", tid, mapping)
            for grid in grids:
                official = OFFICIAL_SYMMETRY[tid](mapping[grid])
                np.testing.assert_array_equal(version.forward(grid), official)
                back = np.argsort(mapping)[OFFICIAL_SYMMETRY[OFFICIAL_INVERSE[tid]](official)]
                np.testing.assert_array_equal(version.inverse(official), back)
                np.testing.assert_array_equal(back, grid)


def test_builder_names_every_identifier(tmp_path: Path) -> None:
    path = build_arc(tmp_path / "arc", ARC, ["training", "evaluation"], "evaluation", augment=3, seed=0, max_tasks=2)
    names = load_info(path).extra["puzzle_names"]
    assert names[0] == "<blank>" and len(names) == load_info(path).num_puzzle_identifiers
    train, test = load_split(path, "train"), load_split(path, "test")
    codec = ArcCodec(30)
    tasks = {t.name: t for t in read_arc_tasks(CHALLENGES, SOLUTIONS)}
    for i in range(len(test)):  # each test example is its task's input in the frame its name says
        version = ArcVersion.parse(names[test.puzzle_identifiers[i]])
        source = tasks[version.task].test[test.arrays["pair_index"][i]][0]
        np.testing.assert_array_equal(test.inputs[i], codec.encode_grid(version.forward(source).tolist()))
    assert set(test.puzzle_identifiers) <= set(train.puzzle_identifiers)


# --- the vote ---------------------------------------------------------------------------------


def test_crop_takes_the_largest_colour_rectangle_from_the_top_left() -> None:
    codec = ArcCodec(10)
    grid = np.arange(12).reshape(3, 4) % 10
    np.testing.assert_array_equal(crop(codec.encode_grid(grid.tolist()), 10), grid)
    canvas = np.zeros((10, 10), np.int64)  # a ragged prediction: rows of 5, 3 (then PAD), 4 colours
    canvas[0, :5] = 2
    canvas[1, :3] = 3
    canvas[2, :4] = 4
    assert crop(canvas.reshape(-1), 10).shape == (3, 3)  # 1x5 = 5 < 2x3 = 6 < 3x3 = 9
    canvas[0, 0] = 1  # an end marker first: nothing
    assert crop(canvas.reshape(-1), 10).shape == (0, 0)


def test_vote_ranks_by_votes_then_mean_halting_probability_then_version_order() -> None:
    a, b, c, d = (np.full((2, 2), v) for v in range(4))
    ballot = Ballot()
    for order, (grid, logit) in enumerate([(a, 3.0), (b, 0.0), (a, 3.0), (c, -1.0), (b, 0.0), (c, -1.0), (c, -1.0),
                                           (d, 0.0)]):
        ballot.add(grid, logit, order)
    ranked = ballot.ranked()
    # c has the most votes despite its low confidence; a and b tie at 2 votes, a is more confident.
    assert [int(x.grid[0, 0]) for x in ranked] == [2, 0, 1, 3]
    assert [x.votes for x in ranked] == [3, 2, 2, 1]
    assert ranked[1].mean_q == pytest.approx(1 / (1 + np.exp(-3.0)))
    # A full tie (votes and mean q) goes to the grid a version earlier in order gave.
    tie = Ballot()
    tie.add(b, 0.0, 1)
    tie.add(a, 0.0, 0)
    assert [int(x.grid[0, 0]) for x in tie.ranked()] == [0, 1]
    assert [int(g[0, 0]) for g in tie.attempts()] == [0, 1]
    single = Ballot()
    single.add(a, 0.0, 0)
    assert len(single.attempts()) == 2  # padded with the first, as the official submission is


def test_runtime_pass_at_k_equals_the_trainers(tmp_path: Path) -> None:
    path = build_arc(tmp_path / "arc", ARC, ["training", "evaluation"], "evaluation", augment=5, seed=1, max_tasks=3)
    info, split = load_info(path), load_split(path, "test")
    names = info.extra["puzzle_names"]
    rng = np.random.default_rng(0)
    codec = ArcCodec(30)
    answers = split.labels.copy()
    for i in range(len(split)):  # wrong answers: some consistent across versions (they pool), some noise
        version = ArcVersion.parse(names[split.puzzle_identifiers[i]])
        roll = rng.random()
        if roll < 0.6:
            continue
        truth = version.inverse(crop(split.labels[i], 30))
        wrong = truth.copy()
        wrong[0, 0] = (wrong[0, 0] + (1 if roll < 0.85 else rng.integers(2, 9))) % 10
        answers[i] = codec.encode_grid(version.forward(wrong).tolist())
    q = rng.normal(size=len(split))
    trainer = arc_pass_at_k(split, answers, q)

    chosen = {n.split("/", 1)[1] for n in info.extra["tasks"] if n.startswith("evaluation/")}
    tasks = [t for t in read_arc_tasks(CHALLENGES, SOLUTIONS) if t.name in chosen]
    plan = {t.name: versions_by_task(names)[t.name] for t in tasks}
    jobs = plan_jobs(tasks, plan)
    row = {(int(split.puzzle_identifiers[i]), int(split.arrays["pair_index"][i])): i for i in range(len(split))}
    predictions = [Prediction(crop(answers[r], 30), float(q[r]))
                   for r in (row[(j.version.identifier, j.test)] for j in jobs)]
    runtime = score(tally(tasks, plan, jobs, predictions, known=set(plan)), tasks)
    assert runtime == trainer
    assert 0 < runtime["pass@1"] <= runtime["pass@2"] and runtime["tasks"] == 3


# --- end to end: an official-format checkpoint with its identifiers.json -----------------------

NAMED = ["<blank>", "00576224", "31d5ba1a|||t6|||0918273645", "00576224|||t1|||0213456789", "31d5ba1a",
         "00576224|||t7|||0987654321", "31d5ba1a|||t3|||0123456789"]


@pytest.fixture(scope="module")
def arc_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference ARC case (10x10 canvas, 7 puzzle ids) in the official layout, converted with
    --dataset (which finds identifiers.json) and exported, as a user does it."""
    root = tmp_path_factory.mktemp("arc_official")
    pt, config, dataset = reference_files("trm_att_arc")
    (root / "data" / "test").mkdir(parents=True)
    shutil.copy(dataset, root / "data" / "test" / "dataset.json")
    (root / "data" / "identifiers.json").write_text(json.dumps(NAMED))
    ckpt = root / "arc.safetensors"
    dataset_json = root / "data" / "test" / "dataset.json"
    proc = run_cli_in_process("convert", str(pt), "--config", str(config), "--dataset", str(dataset_json), "--set",
                              "task=arc", "-o", str(ckpt), check=True)
    assert "7 puzzle names" in proc.stdout
    run_cli_in_process("export", str(ckpt), "-o", str(root / "export"), "--precision", "fp32", check=True)
    return root / "export"


def _two_tasks(folder: Path) -> tuple[Path, Path]:
    challenges = json.loads(CHALLENGES.read_text())
    solutions = json.loads(SOLUTIONS.read_text())
    keep = ("00576224", "31d5ba1a")
    (folder / "c.json").write_text(json.dumps({k: challenges[k] for k in keep}))
    (folder / "s.json").write_text(json.dumps({k: solutions[k] for k in keep}))
    return folder / "c.json", folder / "s.json"


def test_solve_arc_tasks_writes_a_kaggle_submission(arc_export: Path, tmp_path: Path) -> None:
    challenges, solutions = _two_tasks(tmp_path)
    out = tmp_path / "submission.json"
    proc = run_cli("solve-arc", str(arc_export), str(challenges), "--solutions", str(solutions),
                   "-o", str(out), "--halt", "fixed:4")
    assert "pass@1" in proc.stdout and "pass@2" in proc.stdout and "versions/s" in proc.stdout
    doc = json.loads(out.read_text())
    tasks = {t.name: t for t in read_arc_tasks(challenges)}
    assert set(doc) == set(tasks)
    for name, entries in doc.items():
        assert len(entries) == len(tasks[name].test)  # one entry per test input, in order
        for entry in entries:
            assert set(entry) == {"attempt_1", "attempt_2"}
            for grid in entry.values():
                assert all(isinstance(v, int) and 0 <= v <= 9 for row in grid for v in row)
    proc = run_cli("solve-arc", str(arc_export), str(challenges), "--votes", "2", "--json",
                   "--halt", "fixed:4")
    report = json.loads(proc.stdout)
    assert [t["versions"] for task in report["tasks"] for t in task["tests"]] == [2, 2, 2]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_each_version_is_asked_in_its_frame_with_its_identifier(backend: str, arc_export: Path) -> None:
    solver = Solver.load(arc_export, backend=backend, precision="fp32", halt="fixed:3")
    task = next(t for t in read_arc_tasks(CHALLENGES, SOLUTIONS) if t.name == "00576224")
    answers = ArcRunner(solver).solve([task], votes=None)
    ballot = answers[0].tests[0].ballot
    assert ballot.voters == 3  # ids 1, 3, 5 name this task's versions
    codec = ArcCodec(10)
    expected = Ballot()
    for order, identifier in enumerate([1, 3, 5]):  # identity first, then identifier order
        version = ArcVersion.parse(NAMED[identifier])
        tokens = codec.encode_grid(version.forward(task.test[0][0]).tolist())
        result = solver.solve([(tokens, identifier)])[0]
        expected.add(version.inverse(crop(result.answer, 10)), result.halt_logit, order)
    assert [(c.votes, c.grid.tolist()) for c in ballot.ranked()] == [(c.votes, c.grid.tolist())
                                                                     for c in expected.ranked()]


def test_unknown_tasks_are_an_error_or_answered_as_given(arc_export: Path, tmp_path: Path) -> None:
    proc = run_cli("solve-arc", str(arc_export), str(CHALLENGES), check=False)
    assert proc.returncode != 0 and "have no version in this export" in proc.stderr and "03560426" in proc.stderr
    solver = Solver.load(arc_export, halt="fixed:2")
    tasks = read_arc_tasks(CHALLENGES, SOLUTIONS)
    answers = ArcRunner(solver).solve(tasks, votes=1, unknown="identity")
    assert [a.unknown for a in answers] == [t.name not in ("00576224", "31d5ba1a") for t in tasks]
    assert all(t.versions == 1 for a in answers for t in a.tests)
    assert set(submission(answers)) == {t.name for t in tasks}
    with pytest.raises(TrmEdgeError, match="votes must be at least 1"):
        ArcRunner(solver).solve(tasks, votes=0)


def test_slicing_keeps_the_versions_of_the_tasks_served(tmp_path: Path) -> None:
    pt, config, dataset = reference_files("trm_att_arc")
    ckpt = tmp_path / "arc.safetensors"
    (tmp_path / "names.json").write_text(json.dumps(NAMED))
    run_cli_in_process("convert", str(pt), "--config", str(config), "--dataset", str(dataset), "--identifiers",
                       str(tmp_path / "names.json"), "-o", str(ckpt), check=True)
    challenges, _ = _two_tasks(tmp_path)
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"31d5ba1a": json.loads(challenges.read_text())["31d5ba1a"]}))
    run_cli_in_process("slice-puzzles", str(ckpt), "--tasks", str(one), "-o", str(tmp_path / "sliced.safetensors"),
                       check=True)
    info = json.loads(run_cli_in_process("info", str(tmp_path / "sliced.safetensors"), "--json").stdout)["info"]
    assert info["puzzle_id_map"] == [0, 2, 4, 6]
    assert info["puzzle_names"] == ["<blank>", NAMED[2], NAMED[4], NAMED[6]]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(NAMED[:3]))
    proc = run_cli_in_process("convert", str(pt), "--config", str(config), "--dataset", str(dataset), "--identifiers",
                              str(wrong), "-o", str(tmp_path / "x.safetensors"))
    assert proc.returncode != 0 and "names 3 puzzle identifiers but the checkpoint's embedding has 7" in proc.stderr


def test_trained_arc_model_answers_its_tasks_by_vote(tmp_path: Path) -> None:
    """data arc -> train -> export -> solve-arc: the version names travel the whole way."""
    data, run = tmp_path / "data", tmp_path / "run"
    run_cli_in_process("data", "arc", "-o", str(data), "--source", str(ARC), "--subsets", "training,evaluation",
                       "--test-set", "evaluation", "--augment", "2", "--max-tasks", "2", check=True)
    assert "puzzle_names" in run_cli_in_process("data", "info", str(data)).stdout
    run_cli("train", "arc-tiny-cpu", "--data", str(data), "-o", str(run), "--device", "cpu",
            "--set", "train.steps=2", "--set", "train.global_batch_size=4", "--set", "train.eval_interval=2")
    shown = run_cli_in_process("info", str(run / "final.safetensors"), "--json").stdout
    names = json.loads(shown)["info"]["puzzle_names"]
    assert names == load_info(data).extra["puzzle_names"]
    assert len(versions_by_task(names)["00576224"]) == 3  # the identity and two augmentations
    assert run_cli_in_process("export", str(run / "final.safetensors"), "-o", str(tmp_path / "export"),
                              "--validate-steps", "1").returncode == 0
    challenges, solutions = _two_tasks(tmp_path)
    # ort-cpu: what is checked is where the versions go, not the backend; auto timing every candidate
    # on this 30x30 model cost 13 of the test's 35 s (Zen 4), and solve-arc's auto is run by the
    # Kaggle submission test below.
    proc = run_cli("solve-arc", str(tmp_path / "export"), str(challenges), "--unknown-tasks", "identity",
                   "--solutions", str(solutions), "--json", "--backend", "ort-cpu:fp32")
    report = json.loads(proc.stdout)
    by_task = {t["task"]: t for t in report["tasks"]}
    assert not by_task["00576224"]["unknown"] and by_task["31d5ba1a"]["unknown"]  # only 2 eval tasks were built
    assert [t["versions"] for t in by_task["00576224"]["tests"]] == [3]
    assert set(report["scores"]) == {"pass@1", "pass@2", "tasks"}


# --- trajectories and the choosing rules (docs/arc.md) -----------------------------------------


def test_each_rule_ranks_the_same_ballot_its_own_way() -> None:
    a, b, c = (np.full((2, 2), v) for v in range(3))
    votes = [(a, -2.0), (a, -2.0), (a, -2.0), (b, 3.0), (c, 0.0), (c, 0.0)]  # a: 3 unsure; b: 1 sure; c: 2 at 0.5
    ranked = {}
    for rule in ("vote", "confidence", "both"):
        ballot = Ballot(rule=rule)
        for order, (grid, logit) in enumerate(votes):
            ballot.add(grid, logit, order)
        ranked[rule] = [int(x.grid[0, 0]) for x in ballot.ranked()]
    assert ranked["vote"] == [0, 2, 1]  # most votes
    assert ranked["confidence"] == [1, 2, 0]  # the surest single voter (p 0.95, 0.5, 0.12)
    assert ranked["both"] == [2, 1, 0]  # votes weighted by halting probability (1.0, 0.95, 0.36)
    # Equal confidence everywhere: weighted votes are votes.
    even = Ballot(rule="both")
    for order, grid in enumerate([b, a, a]):
        even.add(grid, 0.0, order)
    assert [int(x.grid[0, 0]) for x in even.ranked()] == [0, 1]
    # A full tie goes to the answer given without noise, whatever the version order.
    tie = Ballot(rule="confidence")
    tie.add(a, 1.0, order=0, trajectory=1)
    tie.add(b, 1.0, order=3, trajectory=0)
    assert [int(x.grid[0, 0]) for x in tie.ranked()] == [1, 0]
    assert [x.nudged_votes for x in tie.ranked()] == [0, 1] and tie.voters == 2
    with pytest.raises(TrmEdgeError, match="one of vote, confidence, both"):
        Ballot(rule="mean")


def test_trajectories_vote_on_the_same_ballot_and_repeat_with_their_seed(arc_export: Path) -> None:
    from trm_edge.runtime.arc import ArcTrajectories

    solver = Solver.load(arc_export, backend="ort-cpu", precision="fp32", halt="fixed:3")
    task = next(t for t in read_arc_tasks(CHALLENGES, SOLUTIONS) if t.name == "00576224")
    runner = ArcRunner(solver)
    plan = runner.plan([task], None, "error")
    two = ArcTrajectories(2)
    jobs, predictions = runner.predict([task], plan, two)
    assert len(jobs) == runner.count_runs([task], plan, two) == 9  # 3 versions, each as given + 2 nudged
    ballot = tally([task], plan, jobs, predictions, known=set(plan))[0].tests[0].ballot
    assert ballot.voters == 9 and sum(c.nudged_votes for c in ballot.candidates.values()) == 6
    # The versions as given answer as they do with no trajectories; the nudged ones are nudged.
    plain = runner.solve([task], plan=plan)[0].tests[0].ballot
    given = [k for k, job in enumerate(jobs) if job.trajectory == 0]
    again = tally([task], plan, [jobs[k] for k in given], [predictions[k] for k in given], known=set(plan))
    assert [(c.votes, c.grid.tolist()) for c in again[0].tests[0].ballot.ranked()] == [
        (c.votes, c.grid.tolist()) for c in plain.ranked()]
    logits = [p.q_halt_logit for p in predictions]
    assert len({round(q, 6) for q in logits}) > 3
    # The same seed gives the same answers; another seed other ones.
    _, same = runner.predict([task], plan, two)
    assert [(p.grid.tolist(), p.q_halt_logit) for p in same] == [(p.grid.tolist(), p.q_halt_logit) for p in predictions]
    _, other = runner.predict([task], plan, ArcTrajectories(2, seed=1))
    assert [p.q_halt_logit for j, p in zip(jobs, other, strict=True) if j.trajectory] != [
        p.q_halt_logit for j, p in zip(jobs, predictions, strict=True) if j.trajectory]


def test_solve_arc_takes_trajectories_and_a_rule_in_votes(arc_export: Path, tmp_path: Path) -> None:
    from trm_edge.app.commands.solve_arc import parse_votes

    votes, trajectories, rule = parse_votes("all:4:confidence:0.5")
    assert (votes, trajectories.count, trajectories.noise.scale, rule) == (None, 4, 0.5, "confidence")
    votes, trajectories, rule = parse_votes("8")
    assert (votes, trajectories.count, rule) == (8, 0, "vote")  # today's behaviour
    challenges, _ = _two_tasks(tmp_path)
    report = json.loads(run_cli_in_process("solve-arc", str(arc_export), str(challenges), "--votes", "2:1:both",
                                           "--json", "--halt", "fixed:2", "--backend", "ort-cpu:fp32",
                                           check=True).stdout)
    assert (report["rule"], report["trajectories_per_version"], report["noise_scale"]) == ("both", 1, 0.3)
    assert [(t["versions"], t["trajectories"]) for task in report["tasks"] for t in task["tests"]] == [(2, 1)] * 3
    for bad, says in (("0", "--votes takes V[:T[:RULE[:SCALE]]]"), ("all:x", "trajectories per version (0 or more)"),
                      ("8:2:mean", "one of vote, confidence, both"), ("8:2:both:-1", "a positive noise scale"),
                      ("8:0:vote:0.5", "with no trajectories nothing is nudged"), ("1:2:vote:0.3:9", "not '1:2"),
                      ("\u00b2", "--votes takes V[:T[:RULE[:SCALE]]]"), ("8:\u00b2", "--votes takes")):
        failed = run_cli_in_process("solve-arc", str(arc_export), str(challenges), "--votes", bad)
        assert failed.returncode != 0 and says in " ".join(failed.stderr.split()), (bad, failed.stderr)
