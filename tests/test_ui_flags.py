"""The live page's start-up flags, its batching and its front (issues #22, #23): every run_DB.py flag is honoured or
refused by name (derived from the parser); the sampler flags reach the sampler; the checkpoint checks run; requests
with different weights in one batch equal separate requests; a click while the front is computed waits for one
chunk of it at most; `--help` (fast, no torch) lists the built-ins, the toy defaults, examples and the page's flags
first; app.py builds the page from the environment; --share without a link is one error line."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from blend.live import LiveSession, Request
from blend.run_plan import PlanError
from blend.sampler import SamplerConfig, sample
from rewards import get_reward

ROOT = Path(__file__).resolve().parents[1]
REWARDS = ("jpeg_compressibility", "colorfulness")


def parse(argv: list[str]):
    from blend.cli import _explicit_flags
    from blend.ui import build_parser

    parser = build_parser()
    return parser, parser.parse_args(argv), _explicit_flags(parser, argv)


def test_every_flag_is_honoured_or_refused_by_name():
    from blend.ui import PAGE_FLAGS, refused_flags, session_from_args

    parser, _, _ = parse([])
    dests = {a.dest for a in parser._actions if a.option_strings}
    assert {"scheduler", "noise", "ls_draw", "model", "weights_end", "share"} <= PAGE_FLAGS & dests
    for action in parser._actions:
        if action.option_strings and action.dest not in PAGE_FLAGS:  # derived from the parser, not a list
            assert refused_flags(parser, {action.dest}, []) == [action.option_strings[0]], action.dest
    argv = ["--base_model", "builtin:tiny", "--batch_size", "4", "--bon_n", "2"]
    parser, args, explicit = parse(argv)
    with pytest.raises(PlanError, match=r"--batch_size, --bon_n: not used by the web page"):
        session_from_args(parser, args, explicit, argv)
    for argv, msg in ((["--methods", "mpa,smc"], "--methods smc"), (["--weights", "0.3,0.7;0.5,0.5"], "one weight"),
                      (["--lambdas", "0.5,1.5"], "one λ slider"), (["--eta", "2"], "--eta must be in"),
                      (["--scheduler", "euler", "--weights", "0.5,0.6"], "sums to 1.1")):
        parser, args, explicit = parse(argv)
        with pytest.raises(PlanError, match=msg):
            session_from_args(parser, args, explicit, argv)


def test_checkpoint_checks_run(tmp_path):
    from blend.ui import session_from_args

    half = tmp_path / "checkpoint-5"  # a trainer checkpoint without its COMPLETE marker
    half.mkdir()
    (half / "training_state.pt").write_bytes(b"")
    argv = ["--base_model", "builtin:tiny", "--lora", f"a={half}", "--lora", f"b={half}", "--out_dir", str(tmp_path)]
    parser, args, explicit = parse(argv)
    with pytest.raises(PlanError, match="COMPLETE"):
        session_from_args(parser, args, explicit, argv)


def test_sampler_flags_reach_the_sampler(tmp_path):
    """--scheduler, --noise, --ls_draw, --weights_end, --steps, --guidance, --n_seeds: the page's images are the
    sampler's for exactly those settings."""
    from blend.ui import main, session_from_args

    argv = ["--base_model", "builtin:tiny", "--scheduler", "euler", "--noise", "per_seed", "--ls_draw",
            "per_batch_step", "--weights", "0.5,0.5", "--weights_end", "0.9,0.1", "--schedule", "cosine", "--steps",
            "3", "--guidance", "4", "--n_seeds", "3", "--lambdas", "0.7", "--rewards", ",".join(REWARDS),
            "--methods", "mpa,kla,base", "--out_dir", str(tmp_path)]
    parser, args, explicit = parse(argv)
    session = session_from_args(parser, args, explicit, argv)
    assert type(session.bundle.scheduler).__name__ == "EulerDiscreteScheduler" and session.scheduler_name == "euler"
    assert (session.sampler.noise, session.sampler.ls_draw, session.sampler.steps, session.sampler.guidance) == (
        "per_seed", "per_batch_step", 3, 4.0)
    assert session.seeds == [0, 1, 2] and session.lam == 0.7
    assert [v for _, v in session.method_choices()] == ["base", "mpa", "kla"]
    spec = session.spec_for("mpa", (0.5, 0.5), 1.0)
    assert spec.schedule is not None and spec.schedule.end == (0.9, 0.1) and spec.schedule.kind == "cosine"
    gen = session.generate("mpa", (0.5, 0.5), 1.0, "a red circle", [0, 1])
    direct = sample(session.bundle, spec, ["a red circle"] * 2, [0, 1], session.sampler)
    scores = get_reward(REWARDS[0])(direct.images, ["a red circle"] * 2).tolist()
    assert [it.rewards[REWARDS[0]] for it in gen.items] == pytest.approx(scores, abs=1e-6)
    with pytest.raises(SystemExit, match=r"^error: --n_seeds must be ≥ 1"):  # one line, PlanError → SystemExit
        main(["--ui", "--base_model", "builtin:tiny", "--n_seeds", "0", "--out_dir", str(tmp_path)])


@pytest.fixture
def session(tiny_with_adapters):
    bundle, loras = tiny_with_adapters
    prompts = [f"a shape number {i}" for i in range(8)]
    return LiveSession(bundle, loras, ["a", "b"], {r: get_reward(r) for r in REWARDS}, prompts=prompts, seeds=[0, 1],
                       sampler=SamplerConfig(steps=3, guidance=5.0, eta=1.0), weights=(0.5, 0.5))


def test_different_weights_in_one_batch_equal_separate_requests(session):
    reqs = [Request("mpa", (0.2, 0.8), 1.0, "a red circle", [0, 1]), Request("mpa", (0.9, 0.1), 1.0, "a red circle",
                                                                            [0, 1]),
            Request("kla", (0.5, 0.5), 0.5, "a blue square", [1]), Request("mpa", (0.5, 0.6), 1.0, "x", [0])]
    together = session.generate_many(reqs)
    assert session.n_sample_calls == 1 and isinstance(together[3], ValueError)  # the bad one alone fails
    session.cache.clear()
    for req, gen in zip(reqs[:3], together):
        alone = session.generate(req.method, req.weights, req.lam, req.prompt, req.seeds)
        assert alone.n_cached == 0
        for a, b in zip(gen.items, alone.items):
            assert a.rewards == pytest.approx(b.rewards, abs=1e-4)
            pa, pb = list(a.image.getdata()), list(b.image.getdata())
            assert max(abs(x - y) for p, q in zip(pa, pb) for x, y in zip(p, q)) <= 1  # batch-size rounding only
    assert session.n_sample_calls == 4


def test_a_click_waits_for_one_chunk_of_the_front_at_most(session, tmp_path):
    """The front sweep (13 configs × 8 prompts here) runs in chunks that give way to page requests: a fresh request
    made while it runs waits for the chunk in progress, not for the sweep (issue #23: the first click waited ~42 s)."""
    done = threading.Event()
    started = time.perf_counter()
    worker = threading.Thread(target=lambda: (session.compute_front(tmp_path / "front"), done.set()), daemon=True)
    worker.start()
    while session.front_progress[0] < 2:
        time.sleep(0.01)
    before = session.front_progress[0]
    t0 = time.perf_counter()
    gen = session.generate("mpa", (0.3, 0.7), 1.0, "a fresh prompt", [0, 1])
    latency = time.perf_counter() - t0
    after = session.front_progress[0]
    assert gen.n_cached == 0 and not done.is_set()
    assert after - before <= 1, (before, after)  # at most the chunk that was running when the request came
    worker.join(timeout=300)
    total = time.perf_counter() - started
    t0 = time.perf_counter()
    session.generate("mpa", (0.4, 0.6), 1.0, "a fresh prompt", [0, 1])
    alone = time.perf_counter() - t0
    assert latency < max(0.25 * total, 3 * alone + 1.0), (latency, alone, total)
    assert session.front is not None and "computed in the background" in session.front_note


def test_help_is_fast_and_complete():
    from diffusion.sources import BUILTIN_MODELS

    code = ("import sys; from blend.cli import build_parser; from blend.ui import build_parser as ui; "
            "a = build_parser().format_help(); b = ui().format_help(); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(a); print('=====UI====='); print(b)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cli, ui = out.stdout.split("=====UI=====")
    for name in BUILTIN_MODELS:
        assert f"builtin:{name}" in cli
    assert "[toy default: 2.0]" in cli and "[toy default: 24]" in cli and "[toy default: 2]" in cli
    assert "examples:" in cli and "python run_DB.py --ui" in cli
    assert ui.index("--host") < ui.index("--share") < ui.index("--base_model") < ui.index("--batch_size")
    assert "refused by name" in ui


def test_app_builds_the_page_from_the_environment(tmp_path):
    pytest.importorskip("gradio")
    import app

    demo, args = app.build({"DB_UI_ARGS": f"--base_model builtin:tiny --steps 2 --front none --out_dir {tmp_path}"})
    assert type(demo).__name__ == "Blocks" and (args.host, args.port, args.steps) == ("0.0.0.0", 7860, 2)
    assert app.argv_from_env({})[:4] == ["--host", "0.0.0.0", "--port", "7860"]


def test_share_without_a_link_is_one_error_line(tmp_path, monkeypatch):
    pytest.importorskip("gradio")
    import socket

    from gradio import networking

    from blend.ui import launch, prepare

    def offline(*a, **k):
        raise OSError("no connection")

    monkeypatch.setattr(networking, "setup_tunnel", offline)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo, args = prepare(["--base_model", "builtin:tiny", "--steps", "2", "--front", "none", "--out_dir",
                          str(tmp_path), "--port", str(port), "--share"])
    assert isinstance(args, argparse.Namespace)
    with pytest.raises(SystemExit, match=r"^error: --share: no Gradio share link"):
        launch(demo, args)
