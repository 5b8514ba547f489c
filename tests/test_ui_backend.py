"""The live page's engine (blend.live) on the tiny model: the same numbers as the sampler, the cache, the
side-by-side view, the Pareto front on disk; and `--ui` without Gradio says how to install it."""

from __future__ import annotations

import json
import sys
import threading

import pytest
import torch

from blend.experiment import score_images
from blend.live import LiveSession, load_front, pareto_image, parse_seeds
from blend.sampler import SamplerConfig, sample
from blend.spec import BlendSpec
from diffusion_blend.images import to_pil
from rewards import get_reward

REWARDS = ("jpeg_compressibility", "colorfulness")
CONFIG = SamplerConfig(steps=3, guidance=5.0, eta=1.0)


@pytest.fixture
def session(tiny_with_adapters):
    bundle, loras = tiny_with_adapters
    fns = {r: get_reward(r) for r in REWARDS}
    return LiveSession(bundle, loras, ["a", "b"], fns, prompts=["a red circle", "a blue square"], seeds=[0, 1],
                       sampler=CONFIG, weights=(0.5, 0.5))


def direct(session: LiveSession, spec: BlendSpec, prompt: str, seeds: list[int]) -> tuple[torch.Tensor, dict]:
    """What run_DB.py computes for one batch: the project's sampler and scorer, no cache."""
    result = sample(session.bundle, spec, [prompt] * len(seeds), seeds, CONFIG)
    return result.images, score_images(session.reward_fns, result.images, [prompt] * len(seeds))


def test_parse_seeds():
    assert parse_seeds("0, 1,5") == [0, 1, 5]
    assert parse_seeds("2-4") == [2, 3, 4]
    assert parse_seeds("1,1,0-1") == [1, 0]
    assert parse_seeds(3) == [3]
    for bad, msg in (("", "at least one seed"), ("a", "not a whole number"), ("-1", "≥ 0"), ("0-40", "at most")):
        with pytest.raises(ValueError, match=msg):
            parse_seeds(bad)


def test_weights_on_the_simplex(session):
    assert session.weights_from_sliders([0.3]) == (0.3, 0.7)
    assert session.weights_from_sliders([1.0]) == (1.0, 0.0)
    assert session.weights_from_sliders([2, 6]) == (0.25, 0.75)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        session.weights_from_sliders([1.5])
    with pytest.raises(ValueError, match="at least one > 0"):
        session.weights_from_sliders([0, 0])
    labels = [v for _, v in session.method_choices()]
    assert labels == ["base", "single:a", "single:b", "mpa", "mpa_ls", "soup", "soup_factors", "kla"]


@pytest.mark.parametrize("method,weights,lam", [("mpa", (0.3, 0.7), 1.0), ("kla", (0.3, 0.7), 0.5),
                                                 ("mpa_ls", (0.6, 0.4), 1.0), ("soup", (0.3, 0.7), 1.0),
                                                 ("single:b", (0.3, 0.7), 1.0)])
def test_generate_equals_the_sampler_and_caches(session, method, weights, lam):
    gen = session.generate(method, weights, lam, "a red circle", [0, 1])
    assert gen.n_cached == 0 and gen.seeds == [0, 1]
    spec = session.spec_for(method, weights, lam)
    assert gen.spec == spec
    images, scores = direct(session, spec, "a red circle", [0, 1])
    for j, item in enumerate(gen.items):
        assert list(item.image.getdata()) == list(to_pil(images)[j].getdata())
        assert item.rewards == {r: scores[r][j] for r in REWARDS}
        assert gen.weighted[j] == pytest.approx(weights[0] * scores[REWARDS[0]][j] + weights[1] * scores[REWARDS[1]][j])
    assert gen.unet_evals_per_image == CONFIG.steps * spec.unet_evals_per_step()
    again = session.generate(method, weights, lam, "a red circle", [1, 0])
    assert again.n_cached == 2 and again.items == gen.items[::-1]  # the same objects: nothing recomputed


def test_cache_key_covers_every_setting(session):
    first = session.generate("mpa", (0.5, 0.5), 1.0, "a red circle", [0])
    n = len(session.cache)
    for kwargs in ({"weights": (0.4, 0.6)}, {"prompt": "a blue square"}, {"seeds": [1]}, {"steps": 2},
                   {"guidance": 3.0}, {"eta": 0.0}, {"method": "soup"}):
        args = {"method": "mpa", "weights": (0.5, 0.5), "lam": 1.0, "prompt": "a red circle", "seeds": [0], **kwargs}
        gen = session.generate(**args)
        assert gen.n_cached == 0, kwargs
        n += 1
        assert len(session.cache) == n
    other = session.generate("mpa", (0.4, 0.6), 1.0, "a red circle", [0])
    assert other.n_cached == 1 and other.items[0].rewards != first.items[0].rewards
    with pytest.raises(ValueError, match="prompt is empty"):
        session.generate("mpa", (0.5, 0.5), 1.0, "  ", [0])
    with pytest.raises(ValueError, match="sum to 1"):
        session.generate("mpa", (0.5, 0.6), 1.0, "a red circle", [0])


def test_side_by_side_shares_the_noise(session):
    gens = session.side_by_side((0.3, 0.7), "a blue square", 1)
    assert [g.spec.label for g in gens] == ["base", "single_a", "single_b", "soup_a0.3_b0.7", "mpa_a0.3_b0.7"]
    base = session.generate("base", (0.3, 0.7), 1.0, "a blue square", [1])
    assert base.n_cached == 1 and base.items[0] is gens[0].items[0]
    ends = session.generate("mpa", (1.0, 0.0), 1.0, "a blue square", [1])  # w = (1, 0) is adapter a, bit for bit
    assert list(ends.items[0].image.getdata()) == list(gens[1].items[0].image.getdata())
    assert session.current is ends and len(session.visited) == 2  # side by side does not move the current point


def test_front_is_computed_once_and_loaded(session, tmp_path, monkeypatch):
    out = session.compute_front(tmp_path / "front", n_prompts=1)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {s.label for s in session.front_experiment(1).specs} and session.front == summary
    assert all(s["n"] == 1 for s in summary.values())
    img = pareto_image(session, session.generate("mpa", (0.5, 0.5), 1.0, "a red circle", [0]))
    assert img.size == (640, 520) and img.mode == "RGB"

    import blend.experiment

    def no_sampling(*a, **k):
        raise AssertionError("a cached front must not sample again")

    monkeypatch.setattr(blend.experiment, "sample", no_sampling)
    (out / "summary.json").unlink()  # as if interrupted before the end: the finished images are not redone
    assert session.compute_front(tmp_path / "front", n_prompts=1) == out
    assert json.loads((out / "summary.json").read_text()) == summary
    rows = (out / "results.jsonl").read_text().splitlines()
    (out / "summary.json").unlink()
    again = load_front(out, REWARDS)  # from results.jsonl alone: the same configs, counts and reward means
    def means(front: dict) -> dict:
        return {k: (v["n"], {r: m[0] for r, m in v["rewards"].items()}) for k, v in front.items()}

    assert means(again) == means(summary)
    assert len(rows) == len(summary)
    with pytest.raises(ValueError, match="same --rewards"):
        load_front(out, ("toy_alignment_z", "toy_jpeg_z"))
    with pytest.raises(FileNotFoundError, match="finished run_DB.py run"):
        load_front(tmp_path / "nothing", REWARDS)


def test_ui_without_gradio_says_how_to_install(monkeypatch, capsys):
    from blend.ui import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["--ui", "--base_model", "builtin:tiny"]) == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[ui]'" in err and "--ui" in err


def test_run_db_ui_without_gradio_exits_non_zero(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    blocker = tmp_path / "gradio.py"  # shadows the installed package: importing it fails like a missing one
    blocker.write_text("raise ImportError('gradio is blocked by this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    proc = subprocess.run([sys.executable, str(root / "run_DB.py"), "--ui"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "pip install -e '.[ui]'" in proc.stderr


def test_a_cached_setting_does_not_wait_for_the_unet(session):
    first = session.generate("mpa", (0.5, 0.5), 1.0, "a red circle", [0])
    out = []
    with session.lock:  # the UNet is busy (e.g. the start-up front sweep is sampling)
        worker = threading.Thread(target=lambda: out.append(session.generate("mpa", (0.5, 0.5), 1.0, "a red circle",
                                                                            [0])))
        worker.start()
        worker.join(timeout=30)
        assert out and out[0].n_cached == 1 and out[0].items[0] is first.items[0]
