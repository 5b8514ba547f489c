"""Pick the trade-off live: a Gradio page with a weight slider per preference, λ and the method.

    python run_DB.py --ui                      # the toy world (CPU, images in seconds) on http://127.0.0.1:7860
    python -m blend.ui --base_model ... --lora a=PATH --lora b=PATH --rewards r_a,r_b   # any model, as run_DB.py
    python -m blend.ui --front outputs/table1  # draw the front of a finished run_DB.py run
    python app.py                              # the same, for a Hugging Face Space (flags from $DB_UI_ARGS)

The page takes run_DB.py's model, adapter, reward and sampler flags (checked by ``blend.run_plan.plan_from_args``,
as a run would be) and refuses the batch-only ones by name. Gradio is an optional extra (``pip install -e .[ui]``).
The engine is :mod:`blend.live` (the project's sampler and rewards; a cache per setting; requests that arrive
together share one UNet batch). Only light imports at module level: ``run_DB.py --ui --help`` must not load torch.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import textwrap
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from blend.run_plan import PlanError, parse_lambdas, parse_weights, plan_from_args
from dbcore.logging import get_logger, setup_logging

if TYPE_CHECKING:
    from blend.live import Generation, LiveSession

log = get_logger("ui")

INSTALL_HINT = ("error: the web page needs Gradio, an optional extra. Install it with\n"
                "    pip install -e '.[ui]'        (or: .venv/bin/pip install -e '.[ui]')\n"
                "from the repository root, then run `python run_DB.py --ui` again.")
DISPLAY_PX = 256  # small images (the toy's 32 px) are enlarged, pixel for pixel, to about this size
MAX_BATCH = 8  # page requests served by one sampler call (Gradio's batched events)
MAX_CLIENTS = 1024  # browser sessions whose current setting and visited points are kept

# run_DB.py's flags (blend.cli.build_parser) that the page honours; every other flag of the parser is refused by
# name when given (refused_flags derives that list from the parser, so a new run_DB.py flag is refused until the
# page learns it)
PAGE_FLAGS = frozenset({
    "help", "ui", "host", "port", "front", "share",  # the page's own
    "base_model", "lora", "model", "allow_other_base", "oracle", "t2i_path", "vila_path", "cache_dir",  # the model
    "methods", "weights", "ir_weight", "weights_end", "schedule", "lambdas",  # the dropdown, sliders and w(t)
    "prompt_file", "prompts", "n_seeds", "seed_offset",  # the prompt examples and the seeds box
    "steps", "guidance", "eta", "scheduler", "batched", "noise", "ls_draw",  # the sampler
    "rewards", "reward_option", "reward_scale", "out_dir", "device", "dtype",
})

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
.db-scroll {overflow-x: auto; max-width: 100%}
.db-cost {margin-top: 6px; color: var(--body-text-color-subdued); font-size: 0.9em}
.db-cached {color: #2ca02c; font-weight: 600}
.db-error {color: #b42318; font-weight: 600; padding: 6px 0}
#front-status, #plot-caption {color: var(--body-text-color-subdued); font-size: 0.85em}
#progress .db-bar {height: 6px; background: var(--border-color-primary); border-radius: 3px; overflow: hidden}
#progress .db-bar div {height: 100%; background: var(--color-accent)}
#progress {font-size: 0.85em; color: var(--body-text-color-subdued); min-height: 1.6em}
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
            f'data-seeds="{",".join(map(str, gen.seeds))}"><div class="db-scroll"><table><thead><tr>'
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>" + "".join(rows)
            + '<tr class="db-mean">' + "".join(mean) + f'</tr></tbody></table></div><div class="db-cost">{cost}</div>'
            + "</div>")


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


def error_html(exc: Exception) -> str:
    """The scores box after a failed request: the error, and nothing of the previous setting."""
    text = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
    return f'<div class="db-error" data-error="{html.escape(text)}">error: {html.escape(text)}</div>'


def caption_html(session: LiveSession, gen: Generation | None) -> str:
    """Under the plot: what the star is (exact coordinates in data-star-x / data-star-y, as in the table)."""
    if gen is None or len(gen.reward_names) < 2:
        return "<div data-star='none'>No current setting (★ appears after Generate).</div>"
    r1, r2 = gen.reward_names[:2]
    x, y = gen.mean(r1), gen.mean(r2)
    front = (f" The front's points are means over {session.front_prompts} images each (its prompts and seeds), so "
             f"the star need not lie on it." if session.front and session.front_prompts else "")
    return (f'<div data-star="{html.escape(gen.spec.label)}" data-star-x="{x!r}" data-star-y="{y!r}">★ '
            f"{html.escape(gen.spec.display_name)}: mean over this prompt and seed(s) "
            f"{','.join(map(str, gen.seeds))} = ({_fmt(x)}, {_fmt(y)}).{front}</div>")


def progress_html(session: LiveSession) -> str:
    p = session.progress
    if not p.busy:
        return "<div data-busy='0'></div>"
    pct = 100 * p.step / max(p.steps, 1)
    return (f"<div data-busy='1'>sampling step {p.step} of {p.steps}: {p.images} image(s) for {p.requests} request(s) "
            f"in one batch<div class='db-bar'><div style='width:{pct:.0f}%'></div></div></div>")


@dataclass
class ClientView:
    """One browser session's current setting (the star) and visited points."""

    current: Generation | None = None
    visited: list[tuple[float, float]] = field(default_factory=list)
    front_drawn: bool = False


def build_demo(session: LiveSession):
    """The page: controls on the left, images and scores in the middle, the Pareto plot on the right, and the
    side-by-side comparison below. Generate is a batched event: requests that arrive together (up to MAX_BATCH) are
    served by one sampler call."""
    import gradio as gr

    from blend.live import BASE, Request, pareto_image, parse_seeds, takes_lam
    from blend.methods import get_method, lam_method, reference_method

    m = len(session.adapters)
    choices = session.method_choices()
    values = [v for _, v in choices]
    default_method = next((v for v in (reference_method(), lam_method(), BASE) if v in values), values[0])
    lam_name = get_method(lam_method()).display_name
    names = session.reward_names
    views: OrderedDict[str, ClientView] = OrderedDict()
    views_lock = threading.Lock()

    def view_of(client: str | None) -> ClientView:
        with views_lock:
            key = client or "anonymous"
            if key not in views:
                views[key] = ClientView()
                while len(views) > MAX_CLIENTS:
                    views.popitem(last=False)
            views.move_to_end(key)
            return views[key]

    def _settings(steps, guidance, eta) -> dict:
        return {"steps": int(steps), "guidance": float(guidance), "eta": float(eta)}

    def used_text(gen: Generation) -> str:
        text = "weights w = (" + ", ".join(f"{a} {w:g}" for a, w in zip(session.adapters, gen.weights)) + ")"
        if gen.spec.schedule is not None:
            text += " → (" + ", ".join(f"{w:g}" for w in gen.spec.schedule.end) + f") over the steps " \
                    f"({gen.spec.schedule.kind}, --weights_end)"
        if takes_lam(gen.spec.method):
            text += f" · λ = {gen.spec.lam:g}"
        return text

    def generate(clients, methods, lams, prompts, seeds_texts, steps, guidances, etas, *weight_lists):
        """Batched: every argument is a list with one entry per request; returns one list per output."""
        n = len(methods)
        reqs: list = []
        for i in range(n):
            try:
                weights = session.weights_from_sliders([wl[i] for wl in weight_lists])
                reqs.append(Request(methods[i], weights, float(lams[i] if lams[i] is not None else session.lam),
                                    prompts[i], parse_seeds(seeds_texts[i]), **_settings(steps[i], guidances[i],
                                                                                        etas[i])))
            except (ValueError, TypeError) as exc:
                reqs.append(exc if isinstance(exc, ValueError) else ValueError(str(exc)))
        done = iter(session.generate_many([r for r in reqs if not isinstance(r, Exception)]))
        outs: list[list] = [[] for _ in range(5)]
        for i, r in enumerate(reqs):
            res = r if isinstance(r, Exception) else next(done)
            view = view_of(clients[i])
            if isinstance(res, Exception):  # clear the previous setting's images, scores and star
                view.current = None
                row = [[], error_html(res), pareto_image(session, None, visited=view.visited),
                       caption_html(session, None), ""]
            else:
                view.current = res
                if len(names) >= 2:
                    point = (res.mean(names[0]), res.mean(names[1]))
                    if point not in view.visited:
                        view.visited.append(point)
                gallery = [(_enlarge(it.image), f"seed {s}") for s, it in zip(res.seeds, res.items)]
                row = [gallery, scores_html(res), pareto_image(session, res, visited=view.visited),
                       caption_html(session, res), used_text(res)]
            view.front_drawn = session.front is not None
            for out, value in zip(outs, row):
                out.append(value)
        return outs

    def side_by_side(prompt, seeds_text, steps, guidance, eta, *weight_values):
        try:
            weights = session.weights_from_sliders(weight_values)
            seed = parse_seeds(seeds_text)[0]
            gens = session.side_by_side(weights, prompt, seed, **_settings(steps, guidance, eta))
        except ValueError as exc:
            return [], error_html(exc)
        gallery = [(_enlarge(g.items[0].image), g.spec.display_name) for g in gens]
        return gallery, side_html(gens)

    def tick(client):
        """Every half second: the progress bar, the front's status, and the plot once when the front arrives."""
        view = view_of(client)
        plot_out, caption_out = gr.skip(), gr.skip()
        if session.front is not None and not view.front_drawn:
            view.front_drawn = True
            plot_out = pareto_image(session, view.current, visited=view.visited)
            caption_out = caption_html(session, view.current)
        return progress_html(session), _front_status(), plot_out, caption_out

    def _front_status() -> str:
        ready = "ready" if session.front is not None else "pending"
        return f"<span data-front='{ready}'>{html.escape(session.front_note)}</span>"

    def lam_state(method_value):
        return gr.Slider(interactive=takes_lam(method_value))

    theme = gr.themes.Default(primary_hue="indigo", secondary_hue="slate", radius_size="md",
                              font=["ui-sans-serif", "system-ui", "Helvetica", "Arial", "sans-serif"],
                              font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])
    with gr.Blocks(title="Diffusion Blend — pick the trade-off live", analytics_enabled=False,
                   fill_width=True) as demo:
        demo.db_launch_kwargs = {"theme": theme, "css": CSS}
        client = gr.State(lambda: uuid.uuid4().hex)
        adapters_txt = ", ".join(f"<code>{html.escape(a)}</code>" for a in session.adapters) or "none"
        gr.HTML(f"<div class='db-header'><h1>Diffusion Blend · pick the trade-off live</h1>"
                f"<div class='db-sub'>Model <code>{html.escape(session.model_name)}</code> · adapters {adapters_txt}"
                f" · rewards {', '.join(f'<code>{html.escape(n)}</code>' for n in names)}. "
                f"Move the weights and λ, press <b>Generate</b>: the noise predictions of the fine-tuned models are "
                f"blended at every step, no retraining. Same seed = same noise for every method.</div></div>")
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=300):
                method = gr.Dropdown(choices=choices, value=default_method, label="method", elem_id="method",
                                     allow_custom_value=True,
                                     info="API: the value (" + ", ".join(values[:4]) + ", …) or the name shown")
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
                lam = gr.Slider(0, 2, value=session.lam, step=0.05, label=f"λ ({lam_name} only)", elem_id="lam",
                                interactive=takes_lam(default_method),
                                info=f"ε = (1 − λ) ε_pre + λ Σ w_i ε_i; KL strength α → α/λ; pick {lam_name} to move it")
                prompt = gr.Textbox(value=session.prompts[0], label="prompt", elem_id="prompt", lines=1)
                seeds = gr.Textbox(value=",".join(map(str, session.seeds)), label="seeds", elem_id="seeds",
                                   info="e.g. 0 or 0,1,2 or 0-3")
                with gr.Accordion("sampler", open=True):
                    steps = gr.Slider(1, 100, value=session.sampler.steps, step=1, elem_id="steps",
                                      label=f"steps ({session.scheduler_name})")
                    guidance = gr.Slider(1, 15, value=session.sampler.guidance, step=0.5, elem_id="guidance",
                                         label="guidance (classifier-free, per model before blending)")
                    eta = gr.Slider(0, 1, value=session.sampler.eta, step=0.1, label="η (DDIM; 1 = the paper's)",
                                    elem_id="eta")
                with gr.Row():
                    go = gr.Button("Generate", variant="primary", elem_id="generate")
                    side_btn = gr.Button("Side by side", variant="secondary", elem_id="side-by-side")
                gr.Examples([[p] for p in session.prompts], inputs=[prompt], label="prompt set", examples_per_page=6)
            with gr.Column(scale=5, min_width=320):
                progress = gr.HTML(progress_html(session), elem_id="progress")
                gallery = gr.Gallery(label="images (one per seed)", columns=2, height=290, format="png",
                                     object_fit="contain", elem_id="images", preview=False)
                scores = gr.HTML(elem_id="db-scores")
            with gr.Column(scale=5, min_width=320):
                plot = gr.Image(value=pareto_image(session, visited=[]), label="Pareto plot: mean rewards",
                                show_label=False, type="pil", format="png", elem_id="pareto", interactive=False)
                caption = gr.HTML(caption_html(session, None), elem_id="plot-caption")
                front_status = gr.HTML(_front_status(), elem_id="front-status")
        side_gallery = gr.Gallery(label="side by side: the same prompt and first seed under each method",
                                  columns=max(2, m + 3), height=300, format="png", object_fit="contain",
                                  elem_id="side-images", preview=False)
        side_scores = gr.HTML(elem_id="db-side-scores")

        inputs = [client, method, lam, prompt, seeds, steps, guidance, eta, *weight_sliders]
        outputs = [gallery, scores, plot, caption, weights_used]
        go.click(generate, inputs, outputs, api_name="generate", concurrency_id="unet", batch=True,
                 max_batch_size=MAX_BATCH)
        side_btn.click(side_by_side, [prompt, seeds, steps, guidance, eta, *weight_sliders],
                       [side_gallery, side_scores], api_name="side_by_side", concurrency_id="unet")
        method.change(lam_state, method, lam, queue=False, api_name=False)
        demo.load(generate, inputs, outputs, concurrency_id="unet", batch=True, max_batch_size=MAX_BATCH,
                  api_name=False)
        timer = gr.Timer(0.5)
        timer.tick(tick, client, [progress, front_status, plot, caption], queue=False, api_name=False,
                   show_progress="hidden")
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def add_page_flags(p: argparse.ArgumentParser) -> None:
    """The page's own flags (shown first in ``run_DB.py --ui --help``)."""
    g = p.add_argument_group("web page")
    g.add_argument("--ui", action="store_true", help="serve the web page (this mode)")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)")
    g.add_argument("--port", type=int, default=7860, help="port")
    g.add_argument("--share", action="store_true",
                   help="also serve a temporary public Gradio share link (needs the internet; refused with an error "
                        "line when no link can be made)")
    g.add_argument("--front", default="auto",
                   help="the Pareto front: the --out_dir of a finished run_DB.py run (results.jsonl or "
                        "summary.json), 'auto' (for the built-in models, a small sweep computed in the background "
                        "between page requests and cached under --out_dir, outputs/ui unless given) or 'none'")


def build_parser() -> argparse.ArgumentParser:
    """The page's flags, then run_DB.py's (model, adapters, rewards, sampler)."""
    from blend.cli import build_parser as cli_parser

    p = cli_parser(first=add_page_flags)
    p.prog = "run_DB.py --ui"
    p.description = textwrap.fill(
        "Serve a web page to pick the trade-off live: weights, λ and method at sampling time. The page's flags come "
        "first; the model, adapter, reward and sampler flags after them are run_DB.py's (with no model flag: the toy "
        "world, as the [toy default: X] values say), and run_DB.py's batch-only flags (--batch_size, --yes, "
        "--no_grids, --report_rewards, --guide_rewards, the baselines' flags …) are refused by name.", 100)
    p.set_defaults(out_dir="outputs/ui")
    p.epilog = ("examples:\n  python run_DB.py --ui                        # the toy world on http://127.0.0.1:7860\n"
                "  python run_DB.py --ui --front outputs/table1 --base_model ... --lora a=PATH --lora b=PATH\n"
                "  python run_DB.py --ui --host 0.0.0.0 --share  # a public link (needs the internet)\n"
                "  DB_UI_ARGS='--steps 20' python app.py         # the same page, as a Hugging Face Space runs it")
    return p


def refused_flags(parser: argparse.ArgumentParser, explicit: set[str], argv: list[str] | None) -> list[str]:
    """The flags given that the page does not honour, as typed (every parser flag not in PAGE_FLAGS)."""
    from blend.cli import typed_flag

    dests = [a.dest for a in parser._actions if a.option_strings and a.dest in explicit and a.dest not in PAGE_FLAGS]
    return [typed_flag(parser, argv, d) for d in dict.fromkeys(dests)]


def session_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace, explicit: set[str],
                      argv: list[str] | None) -> LiveSession:
    """Check the flags as run_DB.py does (``plan_from_args``; the toy world when no model is named), refuse what the
    page cannot honour, and load the session. Raises :class:`PlanError` naming the flag."""
    from blend.cli import typed_flag
    from blend.live import session_from_plan

    refused = refused_flags(parser, explicit, argv)
    if refused:
        raise PlanError(f"{', '.join(refused)}: not used by the web page (run_DB.py's batch flags); drop "
                        f"{'it' if len(refused) == 1 else 'them'} (the page's flags: python run_DB.py --ui --help)")
    methods = None
    if "methods" in explicit:
        from blend.live import PAGE_METHODS

        methods = [x.strip() for x in (args.methods or "").split(",") if x.strip()]
        bad = [x for x in methods if x not in PAGE_METHODS]
        if bad:
            raise PlanError(f"--methods {','.join(bad)}: the page offers {', '.join(PAGE_METHODS)}; run the others "
                            f"with run_DB.py")
    plan_args = argparse.Namespace(**vars(args))
    plan_args.yes = True  # the page samples on request: the size of a whole run does not apply
    plan = plan_from_args(plan_args, explicit, argv,
                          flag_names={d: typed_flag(parser, argv, d) for d in explicit | {"steps"}})
    if len(plan.weights) > 1:
        raise PlanError(f"--weights: the page starts from one weight vector (the sliders move it); give one, not "
                        f"{len(plan.weights)}")
    lambdas = parse_lambdas(args.lambdas)
    if "lambdas" in explicit and len(lambdas) > 1:
        raise PlanError(f"--lambdas {args.lambdas}: the page has one λ slider; give one starting value")
    ends = parse_weights(args.weights_end, "--weights_end")
    if len(ends) > 1:
        raise PlanError(f"--weights_end: the page blends towards one end vector; give one, not {len(ends)}")
    return session_from_plan(plan, lam=lambdas[0], weights_end=ends[0] if ends else None,
                             schedule_kind=args.schedule, methods=methods,
                             n_seeds=None if "n_seeds" in explicit else 2)


def _compute_front(session: LiveSession, out_root: Path) -> None:
    try:
        session.compute_front(out_root)
    except Exception as exc:  # noqa: BLE001 - the page keeps working without a front; say why on the plot
        log.exception("could not compute the Pareto front")
        session.front_note = f"no front: {type(exc).__name__}: {exc}"


def prepare(argv: list[str]):
    """Parse and check the flags, load the session, start the front, build the page; → (demo, args).
    Raises PlanError (or a user error: a missing file, a bad value) with a message naming the flag."""
    from blend.cli import _explicit_flags, check_flag_values

    argv = [a for a in argv if a != "--ui"]
    parser = build_parser()
    args = parser.parse_args(argv)
    explicit = _explicit_flags(parser, argv)
    out_root = Path(args.out_dir)  # outputs/ui unless given: the front's cache, ui.log, builtin:tiny's demo adapters
    setup_logging(log_file=out_root / "ui.log")
    check_flag_values(parser, args, explicit, argv)
    session = session_from_args(parser, args, explicit, argv)
    if args.front not in ("auto", "none"):
        session.load_front(args.front)
    elif args.front == "auto" and session.bundle.source.startswith("builtin") and len(session.adapters) == 2 \
            and len(session.reward_names) >= 2:
        threading.Thread(target=_compute_front, args=(session, out_root / "front"), daemon=True,
                         name="front").start()
    else:
        session.front_note = "no front (pass --front DIR of a finished run_DB.py run)"
    return build_demo(session), args


def launch(demo, args: argparse.Namespace) -> None:
    """Serve until Ctrl-C; with --share, a public link or one error line (SystemExit) when none can be made."""
    log.info("serving on http://%s:%d (Ctrl-C stops)", args.host, args.port)
    demo.launch(server_name=args.host, server_port=args.port, ssr_mode=False, show_error=True, quiet=False,
                footer_links=["api"], share=args.share, prevent_thread_lock=True, **demo.db_launch_kwargs)
    if args.share and not demo.share_url:
        demo.close()
        raise SystemExit("error: --share: no Gradio share link could be made (no connection to the share server, "
                         "or its client is missing); run without --share, or serve on your network with --host "
                         "0.0.0.0")
    demo.block_thread()


USER_ERRORS = (PlanError, FileNotFoundError, NotADirectoryError, ValueError, OSError)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" not in argv and "--help" not in argv:
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        try:
            import gradio  # noqa: F401
        except ImportError:
            print(INSTALL_HINT, file=sys.stderr)
            return 2
    try:
        demo, args = prepare(argv)
    except USER_ERRORS as exc:
        raise SystemExit(f"error: {exc}") from None
    launch(demo, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
