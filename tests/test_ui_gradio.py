"""The Gradio page's API through gradio_client, on the tiny model, served on a loopback port in-process:
the rewards it reports are the sampler's, a revisited setting comes from the cache, the side-by-side view."""

from __future__ import annotations

import os
import re
import socket
import time

import pytest

pytest.importorskip("gradio", reason="the web page is the optional extra: pip install -e '.[ui]'")
gradio_client = pytest.importorskip("gradio_client", reason="gradio_client comes with the [ui] extra")

from blend.live import LiveSession  # noqa: E402
from blend.sampler import SamplerConfig, sample  # noqa: E402
from rewards import get_reward  # noqa: E402

REWARDS = ("jpeg_compressibility", "colorfulness")
CONFIG = SamplerConfig(steps=3, guidance=5.0, eta=1.0)
VALUE = re.compile(r'data-reward="([^"]+)" data-seed="(\d+)" data-value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def values(html: str) -> dict[tuple[str, int], float]:
    return {(name, int(seed)): float(v) for name, seed, v in VALUE.findall(html)}


@pytest.fixture
def served(tiny_with_adapters):
    from blend.ui import build_demo

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    bundle, loras = tiny_with_adapters
    session = LiveSession(bundle, loras, ["a", "b"], {r: get_reward(r) for r in REWARDS},
                          prompts=["a red circle", "a blue square"], seeds=[0, 1], sampler=CONFIG, weights=(0.5, 0.5))
    demo = build_demo(session)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
                **demo.db_launch_kwargs)
    try:
        yield session, gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def test_generate_reports_the_samplers_rewards(served):
    session, client = served
    gallery, html, plot, caption, used = client.predict("mpa", 1.0, "a blue square", "0,1", 3, 5.0, 1.0, 0.3,
                                                        api_name="/generate")
    assert len(gallery) == 2 and os.path.exists(plot) and "alignment" not in used and "a 0.3, b 0.7" in used
    assert 'data-config="mpa_a0.3_b0.7"' in html and "computed in" in html
    shown = values(html)
    result = sample(session.bundle, session.spec_for("mpa", (0.3, 0.7), 1.0), ["a blue square"] * 2, [0, 1], CONFIG)
    for name in REWARDS:
        direct = get_reward(name)(result.images, ["a blue square"] * 2).tolist()
        assert [shown[(name, 0)], shown[(name, 1)]] == pytest.approx(direct, abs=1e-6)
    wr = [0.3 * shown[(REWARDS[0], s)] + 0.7 * shown[(REWARDS[1], s)] for s in (0, 1)]
    assert [shown[("weighted", 0)], shown[("weighted", 1)]] == pytest.approx(wr)

    _, other, _, _, _ = client.predict("DB-MPA", 1.0, "a blue square", "0,1", 3, 5.0, 1.0, 0.8,
                                       api_name="/generate")  # the name the page shows works as well as 'mpa'
    assert values(other) != shown
    _, back, _, caption, _ = client.predict("mpa", 1.0, "a blue square", "0,1", 3, 5.0, 1.0, 0.3,
                                            api_name="/generate")
    assert values(back) == shown and "from the cache (2 of 2)" in back
    star = dict(re.findall(r'data-star-(x|y)="([^"]+)"', caption))  # the star is the table's mean, same setting
    assert float(star["x"]) == pytest.approx(sum(shown[(REWARDS[0], s)] for s in (0, 1)) / 2, abs=1e-12)
    assert float(star["y"]) == pytest.approx(sum(shown[(REWARDS[1], s)] for s in (0, 1)) / 2, abs=1e-12)


def test_side_by_side_and_errors(served):
    _, client = served
    gallery, html = client.predict("a red circle", "1", 3, 5.0, 1.0, 0.5, api_name="/side_by_side")
    assert [g["caption"] for g in gallery] == ["Base model", "Single adapter a", "Single adapter b",
                                              "Rewarded soup (ΔW) w=(0.5, 0.5)", "DB-MPA w=(0.5, 0.5)"]
    assert html.count("<tr>") == 6
    gallery, html, _, caption, used = client.predict("mpa", 1.0, "a red circle", "0", 3, 5.0, 1.0, 0.5,
                                                     api_name="/generate")
    assert gallery and "data-value" in html and "data-star-x" in caption
    # an error clears what the previous setting showed: no images, no scores, no star; the error names the problem
    gallery, html, _, caption, used = client.predict("mpa", 1.0, "a red circle", "zero", 3, 5.0, 1.0, 0.5,
                                                     api_name="/generate")
    assert not gallery and "data-value" not in html and "data-star-x" not in caption and not used
    assert "not a whole number" in html and "data-error" in html
    _, html, _, _, _ = client.predict("no such method", 1.0, "a red circle", "0", 3, 5.0, 1.0, 0.5,
                                      api_name="/generate")
    assert "mpa (DB-MPA)" in html  # the choices, with their names


def test_requests_with_different_weights_share_one_batch(served):
    """Two users, two weight vectors, submitted together: one sampler call, the same images and rewards as two
    separate requests (issue #23: many users, one batch)."""
    import concurrent.futures

    session, client = served
    calls = session.n_sample_calls
    clients = [gradio_client.Client(client.src, verbose=False) for _ in range(3)]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        with session.lock:  # the UNet is busy: a first request waits inside the page's function for it ...
            first = pool.submit(clients[0].predict, "base", 1.0, "a red circle", "5", 3, 5.0, 1.0, 0.5,
                                api_name="/generate")
            time.sleep(2)
            jobs = [pool.submit(c.predict, "mpa", 1.0, "a red circle", "0,1", 3, 5.0, 1.0, w, api_name="/generate")
                    for c, w in zip(clients[1:], (0.2, 0.9))]
            time.sleep(3)  # ... and the next two wait in Gradio's queue, to be served as one batch
        first.result(timeout=120)
        together = [j.result(timeout=120) for j in jobs]
    assert session.n_sample_calls == calls + 2  # the first request, then one call for both weight vectors
    session.cache.clear()
    for w, (_, html, *_rest) in zip((0.2, 0.9), together):
        _, alone, *_ = client.predict("mpa", 1.0, "a red circle", "0,1", 3, 5.0, 1.0, w, api_name="/generate")
        assert "computed in" in alone
        a, b = values(html), values(alone)
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], abs=1e-4) for k in a)
    assert session.n_sample_calls == calls + 4
