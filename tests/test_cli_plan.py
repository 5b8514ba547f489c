"""run_DB's flags become a RunPlan (blend/run_plan.py) without loading a model, and blend/runner.py executes it: the
plan of the toy default and of a scheduled blend, its errors (PlanError, the messages run_DB prints), the caller's
flags left untouched, and execute(plan) writing what run_DB.py writes."""

from __future__ import annotations

import json

import pytest

import diffusion.loading
from blend.cli import _explicit_flags, build_parser, main, typed_flag
from blend.run_plan import TOY_WEIGHTS, PlanError, plan_from_args

SMALL = ["--base_model", "builtin:tiny", "--steps", "2", "--n_seeds", "1", "--batch_size", "2", "--prompts",
         "a red circle", "--no_grids"]


@pytest.fixture
def no_model_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded while building a plan")
    monkeypatch.setattr(diffusion.loading, "load_bundle", refuse)


def plan_of(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    return plan_from_args(args, _explicit_flags(parser, argv), argv,
                          flag_names={"steps": typed_flag(parser, argv, "steps")})


def test_the_toy_default_plan_leaves_the_flags_as_given(no_model_loading):
    parser = build_parser()
    argv = ["--out_dir", "x", "--n_seeds", "3"]
    args = parser.parse_args(argv)
    before = dict(vars(args))
    plan = plan_from_args(args, _explicit_flags(parser, argv), argv)
    assert vars(args) == before  # the toy default fills the plan, not the caller's namespace
    assert plan.toy_default and plan.base_model == "builtin:toy" and plan.argv == argv
    assert plan.adapter_names == ["alignment", "compressibility"] and plan.seeds == [0, 1, 2]
    assert plan.oracles == {f"oracle{s}_w0p5_0p5": str(TOY_WEIGHTS / "oracles" / "w0.5" / f"seed{s}") for s in range(3)}
    assert [s.method for s in plan.specs] == ["base", "single", "single", "soup", "soup_factors", "mpa", "mpa_ls",
                                              "single", "single", "single"]
    assert plan.specs[-1].role == "oracle" and plan.sampler.steps == 10 and plan.sampler.guidance == 2.0
    # WR on the held-out judge and the capped JPEG size; the training judge, the ground truth and raw JPEG beside
    assert plan.rewards == ["toy_align_heldout_z", "toy_jpeg_capped_z", "toy_align_z", "toy_truth", "toy_jpeg_z"]
    assert [o.label for o in plan.objectives] == ["w=(0.5,0.5)"]
    assert plan.objectives[0].rewards == ("toy_align_heldout_z", "toy_jpeg_capped_z")
    assert set(plan.spec_objective.values()) == {"w=(0.5,0.5)"} and len(plan.spec_objective) == 7  # base, singles: none


def test_a_scheduled_blend_is_settled_in_the_plan(no_model_loading):
    plan = plan_of([*SMALL, "--weights", "0.8,0.2;0.4,0.6", "--weights_end", "0.2,0.8", "--schedule", "cosine",
                    "--methods", "base,mpa,soup,kla", "--lambdas", "0.5", "--scheduler", "ddpm"])
    assert plan.demo_adapters == ("demo_a", "demo_b") and plan.adapter_names == ["demo_a", "demo_b"]
    assert plan.scheduler == "ddpm" and plan.weights == [(0.8, 0.2), (0.4, 0.6)]
    sched = {s.label: s.schedule for s in plan.specs}
    assert [s.method for s in plan.specs] == ["base", "mpa", "mpa", "soup", "soup", "kla", "kla"]
    for s in plan.specs:
        if s.method in ("mpa", "kla"):
            assert sched[s.label].to_dict() == {"kind": "cosine", "start": list(s.weights), "end": [0.2, 0.8]}
        else:
            assert sched[s.label] is None  # soups and base have fixed weights
    mpa = [s for s in plan.specs if s.method == "mpa"]
    assert [plan.spec_objective[s.label] for s in mpa] == ["w=(0.8,0.2)", "w=(0.4,0.6)"]


@pytest.mark.parametrize("argv, match", [
    (["--steps", "0"], "^--steps must be ≥ 1, got 0$"),
    (["--num_inference_steps", "0"], "^--num_inference_steps must be ≥ 1"),
    (["--weights", "a,b"], "--weights 'a,b' is not a comma-separated list of numbers"),
    (["--lora", "nopath"], "--lora 'nopath' must look like --lora NAME=PATH"),
    (["--weights", "0.5,0.5;0.2,0.8", "--weights_end", "0.1,0.9;0.3,0.7;0.4,0.6", "--methods", "mpa"],
     "3 --weights_end vectors for 2 --weights vectors"),
    (["--methods", "mpa,nope"], r"unknown method\(s\) \['nope'\]"),
    (["--methods", "bon", "--budget", "0"], "^--budget must be > 0"),  # raised by blend.baselines, as a PlanError
    (["--reward_scale", "nope=2"], "not in --rewards"),
])
def test_bad_flags_are_plan_errors(no_model_loading, argv, match):
    with pytest.raises(PlanError, match=match):
        plan_of([*SMALL, *argv])


def test_command_line_helpers_still_exit_with_one_line():
    from blend import cli

    with pytest.raises(SystemExit, match="^error: --weights 'x' is not"):
        cli._parse_weights(["x"])
    with pytest.raises(SystemExit, match="^error: --device 'nonsense' is not a device"):
        cli.resolve_device("nonsense")


def test_execute_writes_what_run_db_writes(tmp_path):
    from blend.runner import execute

    argv = [*SMALL, "--methods", "base,mpa", "--out_dir", str(tmp_path / "api")]
    result = execute(plan_of(argv))
    assert [r["method"] for r in result.rows] == ["base", "mpa"] and result.total == 2
    assert result.table == (tmp_path / "api" / "summary.md").read_text()
    argv[-1] = str(tmp_path / "cli")
    assert main(argv) == 0

    def rows(d):
        keep = ("config", "sample_key", "row_key", "rewards", "weights", "scheduler", "schedule")
        return [{k: r[k] for k in keep} for r in map(json.loads, (d / "results.jsonl").read_text().splitlines())]

    assert rows(tmp_path / "api") == rows(tmp_path / "cli")
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert config["argv"] == argv and [c["method"] for c in config["configs"]] == ["base", "mpa"]


def test_report_and_guide_rewards_keep_scoring_apart_from_what_methods_climb(no_model_loading):
    """--report_rewards are scored and shown but not in WR; --guide_rewards are what the baselines select with, one
    per scored reward; misuse is a PlanError naming the flag."""
    base = ["--base_model", "builtin:tiny", "--rewards", "brightness,colorfulness", "--weights", "0.5,0.5",
            "--prompts", "a cat", "--n_seeds", "1", "--out_dir", "x"]
    plan = plan_of([*base, "--methods", "mpa,bon", "--report_rewards", "jpeg_compressibility",
                  "--guide_rewards", "colorfulness,brightness"])
    assert plan.rewards == ["brightness", "colorfulness", "jpeg_compressibility"]
    assert plan.objectives[0].rewards == ("brightness", "colorfulness")
    bon = next(s for s in plan.specs if s.method == "bon")
    assert bon.rewards == ("colorfulness", "brightness")  # guided by the guide rewards, scored by --rewards
    for extra, message in [(["--methods", "bon", "--report_rewards", "brightness"], "already in --rewards"),
                           (["--methods", "bon", "--guide_rewards", "brightness"], "one reward per --rewards"),
                           (["--methods", "mpa", "--guide_rewards", "colorfulness,brightness"], "runs none of them"),
                           (["--methods", "bon", "--report_rewards", ""], "--report_rewards is empty")]:
        with pytest.raises(PlanError, match=message):
            plan_of([*base, *extra])


def test_a_base_rebuilt_under_the_same_name_does_not_reuse_its_old_rows(tmp_path, monkeypatch):
    """Rows are keyed by the base's UNet hash where the base records one (the toy's): the same name with other weights
    samples anew and keeps the old rows beside; the same weights resume."""
    import diffusion.sources
    from blend.runner import execute

    argv = [*SMALL, "--methods", "base", "--rewards", "brightness", "--out_dir", str(tmp_path / "run")]
    lines = lambda: (tmp_path / "run" / "results.jsonl").read_text().splitlines()  # noqa: E731
    monkeypatch.setattr(diffusion.sources, "base_unet_sha256", lambda *a, **k: "a" * 64)
    execute(plan_of(argv))
    first = lines()
    execute(plan_of(argv))  # the same weights: nothing new
    assert lines() == first and len(first) == 1
    monkeypatch.setattr(diffusion.sources, "base_unet_sha256", lambda *a, **k: "b" * 64)
    execute(plan_of(argv))  # rebuilt: sampled again, the old row kept
    rows = [json.loads(r) for r in lines()]
    assert len(rows) == 2 and json.loads(first[0]) in rows and rows[0]["sample_key"] != rows[1]["sample_key"]
