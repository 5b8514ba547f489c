"""Pick the trade-off live: a Gradio page with a weight slider per preference, λ and the method.

    python run_DB.py --ui                      # the toy world (CPU, images in seconds) on http://127.0.0.1:7860
    python -m blend.ui --base_model ... --lora a=PATH --lora b=PATH --rewards r_a,r_b   # any model, as run_DB.py
    python -m blend.ui --front outputs/table1  # draw the front of a finished run_DB.py run

Gradio is an optional extra (``pip install -e .[ui]``). The engine is :mod:`blend.live` (the project's
sampler, rewards and runner; a cache per setting; one request at a time on the shared UNet).
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import threading
from pathlib import Path

from blend.live import Generation, LiveSession, pareto_image, parse_seeds, session_from_args
from diffusion_blend.logging import get_logger, setup_logging

log = get_logger("ui")

INSTALL_HINT = ("error: the web page needs Gradio, an optional extra. Install it with\n"
                "    pip install -e '.[ui]'        (or: .venv/bin/pip install -e '.[ui]')\n"
                "from the repository root, then run `python run_DB.py --ui` again.")
DISPLAY_PX = 256  # small images (the toy's 32 px) are enlarged, pixel for pixel, to about this size

CSS = """
.db-header h1 {margin-bottom: 0.2em}
.db-sub {color: var(--body-text-color-subdued); font-size: 0.95em}
#db-scores table, #db-side-scores table {width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums;
  font-size: 0.92em}
#db-scores th, #db-scores td, #db-side-scores th, #db-side-scores td {padding: 4px 8px;
  border-bottom: 1px solid var(--border-color-primary); text-align: right}
#db-scores th:first-child, #db-scores td:first-child, #db-side-scores th:first-child, #db-side-scores td:first-child
  {text-align: left}
#db-scores tr.db-mean td {font-weight: 600}
.db-cost {margin-top: 6px; color: var(--body-text-color-subdued); font-size: 0.9em}
.db-cached {color: #2ca02c; font-weight: 600}
#front-status {color: var(--body-text-color-subdued); font-size: 0.85em}
"""


def _enlarge(img):
    from PIL import Image

    factor = max(1, DISPLAY_PX // max(img.size))
    return img if factor == 1 else img.resize((img.width * factor, img.height * factor), Image.NEAREST)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def scores_html(gen: Generation) -> str:
    """Per-seed rewards, the weighted reward and the cost as an HTML table; exact values in data-value."""
    names = gen.reward_names
    wr = gen.weighted[0] is not None
    w_label = "WR w=(" + ", ".join(f"{w:g}" for w in gen.weights) + ")"
    head = ["seed", *names] + ([w_label] if wr else []) + ["UNet evals"]
    rows = []
    for seed, it, wv in zip(gen.seeds, gen.items, gen.weighted):
        cells = [f"<td>{seed}</td>"]
        cells += [f'<td data-reward="{html.escape(n)}" data-seed="{seed}" data-value="{it.rewards[n]!r}">'
                  f"{_fmt(it.rewards[n])}</td>" for n in names]
        if wr:
            cells.append(f'<td data-reward="weighted" data-seed="{seed}" data-value="{wv!r}">{_fmt(wv)}</td>')
        cells.append(f"<td>{it.unet_evals}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    mean = ["<td>mean</td>"] + [f'<td data-reward="{html.escape(n)}" data-seed="mean">{_fmt(gen.mean(n))}</td>'
                                for n in names]
    if wr:
        mean.append(f'<td data-reward="weighted" data-seed="mean">{_fmt(gen.mean_weighted)}</td>')
    mean.append(f"<td>{gen.unet_evals_per_image:g}</td>")
    cached = (f'<span class="db-cached">from the cache ({gen.n_cached} of {len(gen.seeds)})</span>'
              if gen.n_cached else f"computed in {gen.wall_seconds:.2f} s")
    cost = (f"<b>{html.escape(gen.spec.display_name)}</b> · {gen.unet_evals_per_image:g} UNet evaluations and "
            f"{gen.seconds_per_image:.2f} s per image ({gen.settings['steps']} steps, guidance "
            f"{gen.settings['guidance']:g}, η {gen.settings['eta']:g}) · {cached}")
    return (f'<div data-config="{html.escape(gen.spec.label)}" data-prompt="{html.escape(gen.prompt)}" '
            f'data-seeds="{",".join(map(str, gen.seeds))}"><table><thead><tr>'
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>" + "".join(rows)
            + '<tr class="db-mean">' + "".join(mean) + f'</tr></tbody></table><div class="db-cost">{cost}</div></div>')


def side_html(gens: list[Generation]) -> str:
    names = gens[0].reward_names if gens else []
    wr = bool(gens) and gens[0].weighted[0] is not None
    w_label = "WR w=(" + ", ".join(f"{w:g}" for w in gens[0].weights) + ")" if gens else ""
    head = ["method", *names] + ([w_label] if wr else []) + ["UNet evals"]
    rows = []
    for g in gens:
        cells = [f"<td>{html.escape(g.spec.display_name)}</td>"]
        cells += [f'<td data-config="{html.escape(g.spec.label)}" data-reward="{html.escape(n)}" '
                  f'data-value="{g.items[0].rewards[n]!r}">{_fmt(g.items[0].rewards[n])}</td>' for n in names]
        if wr:
            cells.append(f"<td>{_fmt(g.weighted[0])}</td>")
        cells.append(f"<td>{g.items[0].unet_evals}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def build_demo(session: LiveSession):
    """The page: controls on the left, images and scores in the middle, the Pareto plot on the right,
    and the side-by-side comparison below."""
    import gradio as gr

    m = len(session.adapters)
    choices = session.method_choices()
    default_method = "mpa" if m > 1 else ("kla" if m == 1 else "base")
    names = session.reward_names

    def _weights(values) -> tuple[float, ...]:
        try:
            return session.weights_from_sliders(values)
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc

    def _settings(steps, guidance, eta) -> dict:
        return {"steps": int(steps), "guidance": float(guidance), "eta": float(eta)}

    def generate(method, lam, prompt, seeds_text, steps, guidance, eta, *weight_values):
        weights = _weights(weight_values)
        try:
            gen = session.generate(method, weights, float(lam), prompt, parse_seeds(seeds_text),
                                   **_settings(steps, guidance, eta))
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        gallery = [(_enlarge(it.image), f"seed {s}") for s, it in zip(gen.seeds, gen.items)]
        used = "weights w = (" + ", ".join(f"{a} {w:g}" for a, w in zip(session.adapters, weights)) + ")"
        return gallery, scores_html(gen), pareto_image(session, gen), used

    def side_by_side(prompt, seeds_text, steps, guidance, eta, *weight_values):
        weights = _weights(weight_values)
        try:
            seed = parse_seeds(seeds_text)[0]
            gens = session.side_by_side(weights, prompt, seed, **_settings(steps, guidance, eta))
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        gallery = [(_enlarge(g.items[0].image), g.spec.display_name) for g in gens]
        return gallery, side_html(gens)

    def refresh_plot():
        done = session.front is not None
        return pareto_image(session, session.current), _front_status(), gr.Timer(active=not done)

    def _front_status() -> str:
        ready = "ready" if session.front is not None else "pending"
        return f"<span data-front='{ready}'>{html.escape(session.front_note)}</span>"

    theme = gr.themes.Default(primary_hue="indigo", secondary_hue="slate", radius_size="md",
                              font=["ui-sans-serif", "system-ui", "Helvetica", "Arial", "sans-serif"],
                              font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])
    with gr.Blocks(title="Diffusion Blend — pick the trade-off live", analytics_enabled=False,
                   fill_width=True) as demo:
        demo.db_launch_kwargs = {"theme": theme, "css": CSS}
        adapters_txt = ", ".join(f"<code>{html.escape(a)}</code>" for a in session.adapters) or "none"
        gr.HTML(f"<div class='db-header'><h1>Diffusion Blend · pick the trade-off live</h1>"
                f"<div class='db-sub'>Model <code>{html.escape(session.model_name)}</code> · adapters {adapters_txt}"
                f" · rewards {', '.join(f'<code>{html.escape(n)}</code>' for n in names)}. "
                f"Move the weights and λ, press <b>Generate</b>: the noise predictions of the fine-tuned models are "
                f"blended at every step, no retraining. Same seed = same noise for every method.</div></div>")
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=300):
                method = gr.Dropdown(choices=choices, value=default_method, label="method", elem_id="method")
                weight_sliders = []
                if m == 2:
                    w0 = session.weights[0] if session.weights else 0.5
                    weight_sliders.append(gr.Slider(0, 1, value=w0, step=0.05, elem_id="w0",
                                                    label=f"w: weight on {session.adapters[0]}",
                                                    info=f"1 − w on {session.adapters[1]}"))
                else:
                    for i, a in enumerate(session.adapters):
                        weight_sliders.append(gr.Slider(0, 1, value=session.weights[i], step=0.05, elem_id=f"w{i}",
                                                        label=f"weight on {a}", info="normalised to sum to 1"))
                weights_used = gr.Markdown(elem_id="weights-used")
                lam = gr.Slider(0, 2, value=session.lam, step=0.05, label="λ (DB-KLA only)", elem_id="lam",
                                info="ε = (1 − λ) ε_pre + λ Σ w_i ε_i; KL strength α → α/λ")
                prompt = gr.Textbox(value=session.prompts[0], label="prompt", elem_id="prompt", lines=1)
                seeds = gr.Textbox(value=",".join(map(str, session.seeds)), label="seeds", elem_id="seeds",
                                   info="e.g. 0 or 0,1,2 or 0-3")
                with gr.Accordion("sampler", open=True):
                    steps = gr.Slider(1, 100, value=session.sampler.steps, step=1, label="DDIM steps", elem_id="steps")
                    guidance = gr.Slider(1, 15, value=session.sampler.guidance, step=0.5, elem_id="guidance",
                                         label="guidance (classifier-free, per model before blending)")
                    eta = gr.Slider(0, 1, value=session.sampler.eta, step=0.1, label="η (DDIM; 1 = the paper's)",
                                    elem_id="eta")
                with gr.Row():
                    go = gr.Button("Generate", variant="primary", elem_id="generate")
                    side_btn = gr.Button("Side by side", variant="secondary", elem_id="side-by-side")
                gr.Examples([[p] for p in session.prompts], inputs=[prompt], label="prompt set", examples_per_page=6)
            with gr.Column(scale=5, min_width=320):
                gallery = gr.Gallery(label="images (one per seed)", columns=4, height=300, format="png",
                                     object_fit="contain", elem_id="images", preview=False)
                scores = gr.HTML(elem_id="db-scores")
            with gr.Column(scale=5, min_width=320):
                plot = gr.Image(value=pareto_image(session), label="Pareto plot: mean rewards", type="pil",
                                format="png", elem_id="pareto", interactive=False)
                front_status = gr.HTML(_front_status(), elem_id="front-status")
        side_gallery = gr.Gallery(label="side by side: the same prompt and first seed under each method",
                                  columns=max(2, m + 3), height=300, format="png", object_fit="contain",
                                  elem_id="side-images", preview=False)
        side_scores = gr.HTML(elem_id="db-side-scores")

        inputs = [method, lam, prompt, seeds, steps, guidance, eta, *weight_sliders]
        outputs = [gallery, scores, plot, weights_used]
        go.click(generate, inputs, outputs, api_name="generate", concurrency_id="unet")
        side_btn.click(side_by_side, [prompt, seeds, steps, guidance, eta, *weight_sliders],
                       [side_gallery, side_scores], api_name="side_by_side", concurrency_id="unet")
        demo.load(generate, inputs, outputs, concurrency_id="unet")
        if session.front is None:
            timer = gr.Timer(3.0)
            timer.tick(refresh_plot, None, [plot, front_status, timer], queue=False)
    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo


def build_parser() -> argparse.ArgumentParser:
    """run_DB.py's flags (model, adapters, rewards, sampler) plus the server's."""
    from blend.cli import build_parser as cli_parser

    p = cli_parser()
    p.prog = "run_DB.py --ui"
    p.description = ("Serve a web page to pick the trade-off live: weights, λ and method at sampling time. The "
                     "model, adapter, reward and sampler flags are run_DB.py's; with none it serves the toy world.")
    g = p.add_argument_group("web page")
    if "--ui" not in p._option_string_actions:
        g.add_argument("--ui", action="store_true", help="serve the web page (this mode)")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)")
    g.add_argument("--port", type=int, default=7860, help="port")
    g.add_argument("--front", default="auto",
                   help="the Pareto front: the --out_dir of a finished run_DB.py run (results.jsonl or "
                        "summary.json), 'auto' (a small sweep computed at start-up for the built-in models and "
                        "cached under --out_dir, outputs/ui unless given) or 'none'")
    return p


def _compute_front(session: LiveSession, out_root: Path) -> None:
    try:
        session.compute_front(out_root)
    except Exception as exc:  # noqa: BLE001 - the page keeps working without a front; say why on the plot
        log.exception("could not compute the Pareto front")
        session.front_note = f"no front: {type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [a for a in argv if a != "--ui"]
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    from blend.cli import _explicit_flags

    explicit = _explicit_flags(parser, argv)
    out_root = Path(args.out_dir if "out_dir" in explicit else "outputs/ui")
    setup_logging(log_file=out_root / "ui.log")
    ignored = sorted(explicit & {"methods", "batch_size", "no_grids", "list_rewards"})
    if ignored:
        log.warning("--%s: table and grid flags do not apply to the web page; ignored", ", --".join(ignored))
    session = session_from_args(args, explicit)
    if args.front not in ("auto", "none"):
        try:
            session.load_front(args.front)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"error: {exc}") from exc
    elif args.front == "auto" and session.bundle.source.startswith("builtin") and len(session.adapters) == 2 \
            and len(session.reward_names) >= 2:
        threading.Thread(target=_compute_front, args=(session, out_root / "front"), daemon=True,
                         name="front").start()
    else:
        session.front_note = "no front (pass --front DIR of a finished run_DB.py run)"
    demo = build_demo(session)
    log.info("serving on http://%s:%d (Ctrl-C stops)", args.host, args.port)
    demo.launch(server_name=args.host, server_port=args.port, ssr_mode=False, show_error=True, quiet=False,
                footer_links=["api"], **demo.db_launch_kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
