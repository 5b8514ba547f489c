"""``DiffusionBlendPipeline``: Diffusion Blend as a diffusers pipeline (SD 1.x/2.x; SDXL and SD3 variants).

    from diffusion_blend import DiffusionBlendPipeline
    pipe = DiffusionBlendPipeline.from_pipe(sd_pipe)          # or .from_pretrained("stable-diffusion-v1-5/…")
    pipe.add_adapter("aesthetic", "path/or/hub-id")           # or pipe.load_lora_weights(..., adapter_name=...)
    image = pipe("a cat", weights={"aesthetic": 0.7, "t2i": 0.3}, method="mpa").images[0]

Every step blends the guided noise predictions of the models named in ``weights`` (docs/method.md §2–§3:
DB-MPA ε = Σ w_i ε̂_i, DB-KLA ε = (1−λ) ε̂_pre + λ Σ w_i ε̂_i, DB-MPA-LS one adapter per step drawn
with probability w_i, rewarded soup in weight space) and hands it to the pipeline's own scheduler.
``weights`` may be one mapping, one mapping per prompt (or per image: per-image weights in one
batch), or a callable ``p -> mapping`` for a per-step schedule (p = 0 at the first step, 1 at the
last). The sampling code is ``blend.sampler`` — the same that ``run_DB.py`` runs.

Parity with the stock pipeline (``docs/pipeline.md``): the defaults are diffusers' (η = 0, the model's own
scheduler); ``weights=None`` samples the UNet in its current diffusers adapter state (``set_adapters``,
``disable_lora``, ``fuse_lora``) and equals the stock pipeline; the stock call arguments
(``prompt_embeds``, ``cross_attention_kwargs``, ``guidance_rescale``, ``clip_skip``, ``timesteps``/``sigmas``,
``callback_on_step_end`` …) act on every member as they act in the stock pipeline. ``run_DB.py``'s images
need DDIM, ``eta=1.0`` and ``seeds=`` (docs/pipeline.md).
"""

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import (
    SD3LoraLoaderMixin,
    StableDiffusionLoraLoaderMixin,
    StableDiffusionXLLoraLoaderMixin,
    TextualInversionLoaderMixin,
)
from diffusers.pipelines.stable_diffusion import StableDiffusionPipelineOutput
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import retrieve_timesteps
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from blend.methods import REGISTRY, lam_method, method_names, reference_method
from blend.methods.base import Base
from blend.methods.mpa import Mpa
from blend.predictor import CallOptions
from blend.sampler import SamplerConfig, _RowPlan, denoise, encode_per_model
from blend.schedule import FunctionSchedule
from blend.spec import BlendSpec
from dbcore.logging import get_logger
from dbcore.seeding import initial_noise, step_generators
from diffusion.adapters import clear_cache
from diffusion.bundle import ModelBundle
from diffusion.conditioning import Conditioning
from diffusion.lora import adapter_names, extract_lora

log = get_logger("pipeline")

# the methods it takes (blend.methods: Method.pipeline); those that do not merge weights only switch adapters
# (any PEFT tuner: DoRA, LoHa, LoKr)
MEMBERS_DIR = "blend_members"  # save_pretrained: the members, beside the diffusers layout

Weights = Mapping[str, float] | Sequence[Mapping[str, float]] | Callable[[float], Mapping[str, float]] | None


def _or(names) -> str:
    """"'a', 'b' or 'c'"."""
    quoted = [repr(n) for n in names]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else "".join(quoted)


def _tuner_layers(*modules: torch.nn.Module | None) -> list:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for mod in modules if mod is not None for m in mod.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def _kept_adapter_flags(*modules: torch.nn.Module | None):
    """Restore PEFT's active-adapter flags of ``modules`` afterwards (a pipeline shared with ``from_pipe``)."""
    layers = _tuner_layers(*modules)
    saved = [(layer._disable_adapters, list(layer._active_adapter)) for layer in layers]
    try:
        yield
    finally:
        for layer, (disabled, active) in zip(layers, saved):
            layer._disable_adapters, layer._active_adapter = disabled, active


@contextlib.contextmanager
def _without_adapter_layers(*modules: torch.nn.Module | None):
    """Each PEFT layer of ``modules`` replaced by its base layer (what ``save_pretrained`` must write), then put back."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    swaps = []
    for root in (m for m in modules if m is not None):
        for name, layer in list(root.named_modules()):
            if isinstance(layer, BaseTunerLayer) and name:
                parent_name, _, attr = name.rpartition(".")
                swaps.append((root.get_submodule(parent_name) if parent_name else root, attr, layer))
    try:
        for parent, attr, layer in swaps:
            setattr(parent, attr, layer.get_base_layer())
        yield
    finally:
        for parent, attr, layer in swaps:
            setattr(parent, attr, layer)


def _peft_save(model: torch.nn.Module, name: str, directory: Path) -> None:
    """Write adapter ``name`` of ``model`` as a PEFT directory (config + weights; any tuner type)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    model.peft_config[name].save_pretrained(str(directory))
    sd = get_peft_model_state_dict(model, adapter_name=name)
    save_file({k: v.detach().contiguous().cpu() for k, v in sd.items()}, str(directory / "adapter_model.safetensors"))


def _peft_load(model: torch.nn.Module, name: str, directory: Path) -> None:
    """Add the PEFT directory ``directory`` (any tuner: LoRA, DoRA, LoHa, LoKr) to ``model`` as adapter ``name``."""
    from peft import inject_adapter_in_model, set_peft_model_state_dict
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
    from safetensors.torch import load_file

    raw = json.loads((directory / "adapter_config.json").read_text())
    config = PEFT_TYPE_TO_CONFIG_MAPPING[raw["peft_type"]].from_pretrained(str(directory))
    inject_adapter_in_model(config, model, adapter_name=name)
    ref = next(model.parameters())
    sd = {k: v.to(ref.device, ref.dtype) for k, v in load_file(str(directory / "adapter_model.safetensors")).items()}
    result = set_peft_model_state_dict(model, sd, adapter_name=name)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"error: {directory}: {len(result.unexpected_keys)} weights fit no layer of this model, e.g. "
                         f"{result.unexpected_keys[0]}; the adapter was made for another base model")
    model.requires_grad_(False)
    clear_cache(model)


def _pipeline_class_of(source: str, kwargs: dict) -> str:
    """``_class_name`` of a pipeline directory or hub repository (``model_index.json``)."""
    local = Path(source).expanduser()
    if (local / "model_index.json").is_file():
        return json.loads((local / "model_index.json").read_text()).get("_class_name", "")
    keys = ("cache_dir", "revision", "token", "local_files_only", "proxies")
    config = DiffusionPipeline.load_config(source, **{k: kwargs[k] for k in keys if k in kwargs})
    return config.get("_class_name", "")


class _BlendCore:
    """What the SD, SDXL and SD3 blend pipelines share: members, weights, the blended loop, save/load."""

    family = "sd"
    _stock: type = StableDiffusionPipeline

    @property
    def denoiser(self) -> torch.nn.Module:
        """The network the members adapt: the UNet (SD, SDXL) or the transformer (SD3)."""
        return self.unet

    def _text_encoders(self) -> list[torch.nn.Module]:
        return [m for m in (getattr(self, n, None) for n in ("text_encoder", "text_encoder_2", "text_encoder_3"))
                if m is not None]

    # ------------------------------------------------------------------ construction

    @classmethod
    def _load(cls, source: str, kwargs: dict):
        """diffusers' own ``from_pretrained`` for ``cls`` (components, ``variant``, ``torch_dtype``, ...), then the
        members a :meth:`save_pretrained` wrote beside them."""
        device = kwargs.pop("device", None)
        pipe = DiffusionPipeline.from_pretrained.__func__(cls, source, **kwargs)
        if device is not None:
            pipe.to(device)
        members = Path(source).expanduser() / MEMBERS_DIR
        if members.is_dir():
            pipe._load_members(members)
        return pipe

    def _load_members(self, directory: Path) -> None:
        index = json.loads((directory / "members.json").read_text())
        for name, kind in index.items():
            if kind == "unet":
                self.add_model(name, directory / name)
                continue
            _peft_load(self.denoiser, name, directory / name / "denoiser")
            for i, te in enumerate(self._text_encoders()):
                part = directory / name / f"text_encoder_{i}"
                if part.is_dir():
                    _peft_load(te, name, part)

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """diffusers' layout of the base pipeline (adapter layers left out) plus every blend member in
        ``blend_members/`` (PEFT directories; full-UNet members as ``unet/`` directories); ``from_pretrained`` of the
        directory gives the same pipeline and members. Fused LoRA weights are refused (they would be saved as base)."""
        modules = [self.denoiser, *self._text_encoders()]
        if any(getattr(layer, "merged", False) for layer in _tuner_layers(*modules)):
            raise ValueError("error: the pipeline has fused LoRA weights (fuse_lora); save_pretrained writes the base "
                             "model and its members apart: call pipe.unfuse_lora() first")
        with _without_adapter_layers(*modules):
            DiffusionPipeline.save_pretrained(self, save_directory, **kwargs)
        root = Path(save_directory) / MEMBERS_DIR
        index = {}
        for name in adapter_names(self.denoiser):
            if name.startswith("soup_"):
                continue
            _peft_save(self.denoiser, name, root / name / "denoiser")
            for i, te in enumerate(self._text_encoders()):
                if name in adapter_names(te):
                    _peft_save(te, name, root / name / f"text_encoder_{i}")
            index[name] = "adapter"
        for name, unet in self.blend_models.items():
            unet.save_pretrained(root / name)
            index[name] = "unet"
        if index:
            (root / "members.json").write_text(json.dumps(index, indent=2))

    @classmethod
    def from_bundle(cls, bundle: ModelBundle):
        """A blend pipeline over a :class:`ModelBundle`'s modules (its family's class)."""
        target = {"sd": DiffusionBlendPipeline, "sdxl": DiffusionBlendXLPipeline, "sd3": DiffusionBlendSD3Pipeline}
        if bundle.family not in target:
            raise ValueError(f"no blend pipeline for the {bundle.family} family")
        klass = target[bundle.family]
        if cls not in (klass, DiffusionBlendPipeline):
            raise ValueError(f"{cls.__name__} cannot hold a {bundle.family} model; use {klass.__name__}")
        pipe = klass(**{k: v for k, v in bundle.components().items() if k in klass._component_names()})
        pipe.blend_models.update(bundle.extra.get("unets", {}))
        return pipe

    @classmethod
    def _component_names(cls) -> set[str]:
        import inspect

        return set(inspect.signature(cls.__init__).parameters) - {"self"}

    def bundle(self) -> ModelBundle:
        """The pipeline's parts as the :class:`ModelBundle` the sampler takes (shared modules, no copy)."""
        return ModelBundle(self.denoiser, self.text_encoder, self.tokenizer, self.scheduler, self.vae,
                           source=str(getattr(self.config, "_name_or_path", "") or ""), family=self.family,
                           text_encoder_2=getattr(self, "text_encoder_2", None),
                           tokenizer_2=getattr(self, "tokenizer_2", None),
                           text_encoder_3=getattr(self, "text_encoder_3", None),
                           tokenizer_3=getattr(self, "tokenizer_3", None),
                           extra={"unets": self.blend_models,
                                  "force_zeros_for_empty_prompt": getattr(self.config, "force_zeros_for_empty_prompt",
                                                                          True)})

    # ------------------------------------------------------------------ members

    def add_adapter(self, name: str, source) -> None:
        """Add an adapter as blend member ``name`` from any supported source (see ``diffusion.lora_formats``).

        ``source``: a PEFT directory (LoRA, DoRA, LoHa or LoKr: any PEFT tuner), a diffusers/kohya/A1111
        ``.safetensors``, a legacy DPOK ``.bin``, a hub id ``owner/repo`` or ``owner/repo:file.safetensors``, or a
        :class:`~diffusion.lora.LoraWeights`. Text-encoder LoRA parts go into the text encoder under the same
        name and are used only when this member's noise prediction is computed. DoRA/LoHa/LoKr members blend by
        noise (mpa, mpa_ls, kla); the soups fold ΔW = s·B·A and refuse them.
        """
        from diffusion.lora_formats import add_adapter_parts, read_adapter_parts

        if name in self.members:
            raise ValueError(f"error: a blend member named {name!r} already exists; choose another name")
        peft_dir = Path(str(source)) if isinstance(source, (str, Path)) else None
        if peft_dir is not None and (peft_dir / "adapter_config.json").is_file():
            peft_type = json.loads((peft_dir / "adapter_config.json").read_text()).get("peft_type", "LORA")
            use_dora = json.loads((peft_dir / "adapter_config.json").read_text()).get("use_dora", False)
            if peft_type != "LORA" or use_dora:
                _peft_load(self.denoiser, name, peft_dir)
                return
        parts = read_adapter_parts(source, unet=self.denoiser, text_encoder=self.text_encoder)
        add_adapter_parts(self.denoiser, self.text_encoder, name, parts)

    def add_model(self, name: str, unet) -> None:
        """Add a full fine-tuned UNet (a module, or a diffusers ``unet/`` or pipeline directory) as member ``name``."""
        from diffusion.lora_formats import load_unet_member

        if not isinstance(unet, torch.nn.Module):
            unet = load_unet_member(unet, like=self.denoiser)
        if name in self.blend_models or name in adapter_names(self.denoiser):
            raise ValueError(f"a blend member named {name!r} already exists; choose another name")
        self.blend_models[name] = unet.eval().requires_grad_(False)

    @property
    def members(self) -> list[str]:
        """Names that ``weights`` may use: the denoiser's adapters and the full-UNet members."""
        return [n for n in adapter_names(self.denoiser) if not n.startswith("soup_")] + list(self.blend_models)

    # ------------------------------------------------------------------ weights

    def _spec(self, weights: Mapping[str, float] | None, method: str, lam: float, schedule=None,
              allow_negative_weights: bool = False) -> BlendSpec:
        if weights is None:
            return BlendSpec(Base.name)
        if not isinstance(weights, Mapping) or not weights:
            raise TypeError(f"error: weights must name the blend members, e.g. {{'a': 0.5, 'b': 0.5}} (this pipeline's "
                            f"members: {self.members}); got {weights!r}")
        unknown = [n for n in weights if n not in self.members]
        if unknown:
            raise ValueError(f"no blend member named {unknown}; the pipeline has {self.members} (add one with "
                             f"pipe.add_adapter(name, source), pipe.add_model(name, dir) or "
                             f"pipe.load_lora_weights(..., adapter_name=name))")
        if method not in REGISTRY or not REGISTRY[method].pipeline:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(method_names(lambda m: m.pipeline))}")
        info = REGISTRY[method]
        values = [float(w) for w in weights.values()]
        negative = {n: w for n, w in zip(weights, values) if w < 0}
        if negative and not allow_negative_weights:
            raise ValueError(f"error: negative weights {negative}: DB-MPA's weights lie on the simplex (w ≥ 0, Σ w = 1); "
                             f"to move past a member use method={lam_method()!r} with lam > 1, or pass "
                             f"allow_negative_weights=True to extrapolate on purpose")
        if info.merges_weights:
            self._check_soupable(list(weights))
        extra = {"schedule": schedule} if schedule is not None else {}
        return BlendSpec(method, tuple(weights), tuple(values), lam=lam if info.takes_lam else 1.0, extra=extra)

    def _check_soupable(self, names: Sequence[str]) -> None:
        """The soups fold ΔW = s·B·A: plain LoRA adapters only (DoRA, LoHa, LoKr are named and refused)."""
        from peft.tuners.lora import LoraLayer

        for name in names:
            if name in self.blend_models:
                continue
            kinds = set()
            for layer in _tuner_layers(self.denoiser):
                if not isinstance(layer, LoraLayer):
                    held = getattr(layer, layer.adapter_layer_names[0], {})
                    if name in held:
                        kinds.add(type(layer).__module__.split(".")[2].upper().replace("LOHA", "LoHa")
                                  .replace("LOKR", "LoKr"))
                elif name in layer.lora_A and layer.use_dora.get(name, False):
                    kinds.add("DoRA")
            if kinds:
                raise ValueError(f"error: member {name!r} is a {'/'.join(sorted(kinds))} adapter; the soups fold "
                                 f"ΔW = s·B·A of plain LoRAs only. Blend it by noise: method "
                                 f"{_or(method_names(lambda m: m.pipeline and not m.merges_weights))}")

    def _specs(self, weights: Weights, method: str, lam: float, n_prompts: int, per_prompt: int,
               allow_negative_weights: bool = False) -> list[BlendSpec]:
        n = n_prompts * per_prompt

        def one(w, schedule=None):
            return self._spec(w, method, lam, schedule, allow_negative_weights)

        if callable(weights) and not isinstance(weights, Mapping):
            first, last = weights(0.0), weights(1.0)
            one(last)  # the end of the schedule is checked as the start is
            names = list(first)
            schedule = FunctionSchedule(lambda p: [weights(p)[k] for k in names],
                                        getattr(weights, "__name__", "custom").replace("<lambda>", "lambda"))
            return [one(first, schedule)] * n
        if weights is None or isinstance(weights, Mapping):
            return [one(weights)] * n
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
            raise TypeError(f"error: weights must name the blend members, e.g. {{'a': 0.5, 'b': 0.5}}; got {weights!r}")
        vectors = list(weights)
        if vectors and not any(isinstance(v, Mapping) for v in vectors):
            example = ", ".join(f"{m!r}: {v}" for m, v in zip(self.members, vectors)) or "'a': 0.5, 'b': 0.5"
            raise TypeError(f"error: weights={vectors!r} gives numbers without member names; name them: "
                            f"weights={{{example}}} (this pipeline's members: {self.members})")
        if any(v is None for v in vectors):
            raise ValueError("error: weights=None (the pipeline's current adapter state) cannot share a call with "
                             "blends; sample it in a call of its own")
        if len(vectors) == n_prompts:
            specs = [one(w) for w in vectors]
            return [s for s in specs for _ in range(per_prompt)]
        if len(vectors) == n:
            return [one(w) for w in vectors]
        raise ValueError(f"{len(vectors)} weight mappings for {n_prompts} prompts × {per_prompt} images: give one "
                         f"mapping, one per prompt or one per image")

    def _ensure_soups(self, specs: Sequence[BlendSpec]) -> None:
        from blend.soup import ensure_soup_adapter

        for spec in {s.soup_spec.label: s.soup_spec for s in specs if s.soup_spec is not None}.values():
            if any(a in self.blend_models for a in spec.adapters):
                raise ValueError(f"a soup merges LoRA weights; full-UNet members cannot be souped (use method "
                                 f"{reference_method()!r})")
            if set(spec.adapters) & {n for te in self._text_encoders() for n in adapter_names(te)}:
                raise ValueError("a soup merges UNet LoRA weights only; adapters with text-encoder parts cannot be "
                                 f"souped (use method {reference_method()!r}, where each member encodes the prompt "
                                 "itself)")
            ensure_soup_adapter(self.denoiser, spec, {a: extract_lora(self.denoiser, a) for a in spec.adapters})

    def _check_not_fused(self) -> None:
        if any(getattr(layer, "merged", False) for layer in _tuner_layers(self.denoiser)):
            raise ValueError("error: the denoiser has fused LoRA weights (fuse_lora), so its adapters can no longer be "
                             "switched per member; pipe.unfuse_lora() before blending, or unload_lora_weights() to "
                             "keep the fused model as the base (weights=None samples the fused model)")

    # ------------------------------------------------------------------ the blended loop

    def _blend_run(self, *, specs: list[BlendSpec], row_prompts: list[str] | None, encode: Callable,
                   shape: tuple, num_inference_steps: int, timesteps, sigmas, scheduler_kwargs: dict,
                   guidance_scale: float, cfg: bool, eta: float, generator, latents, seeds, batched: bool,
                   options: CallOptions, callback_on_step_end, callback_on_step_end_tensor_inputs,
                   output_type: str, return_dict: bool, stop_after: Callable[[list], int] | None = None):
        """Sample ``len(specs)`` images: ``encode()`` → (cond, uncond) under the current text-encoder state."""
        n = len(specs)
        device = self._execution_device
        bad = [k for k in callback_on_step_end_tensor_inputs or [] if k != "latents"]
        if bad:
            raise ValueError(f"error: callback_on_step_end_tensor_inputs {bad}: the blend pipeline passes 'latents' "
                             f"only (each member has its own prompt embeddings)")
        if any(s.method != Base.name for s in specs):
            self._check_not_fused()
        config = SamplerConfig(steps=num_inference_steps, guidance=guidance_scale, eta=eta, batched=batched)
        clear_cache(self.denoiser)
        for te in self._text_encoders():
            clear_cache(te)
        with _kept_adapter_flags(self.denoiser, *self._text_encoders()):
            self._ensure_soups(specs)
            ts, _ = retrieve_timesteps(self.scheduler, num_inference_steps, device, timesteps, sigmas,
                                       **scheduler_kwargs)
            n_steps = len(self.scheduler.timesteps)
            self._num_timesteps = n_steps
            self._interrupt = False
            sigma0 = getattr(self.scheduler, "init_noise_sigma", 1.0) if self.family != "sd3" else 1.0
            dtype = self.denoiser.dtype
            noise = step_gens = ls_seeds = None
            if seeds is not None:
                if generator is not None or latents is not None:
                    raise ValueError("pass seeds, or generator/latents, not both")
                if len(seeds) != n:
                    raise ValueError(f"{len(seeds)} seeds for {n} images")
                keys = row_prompts if row_prompts is not None else [None] * n
                draws = [initial_noise(s, shape, n_steps, prompt=p) for p, s in zip(keys, seeds)]
                x = torch.stack([xt for xt, _ in draws]).to(device, dtype) * sigma0
                noise = torch.stack([z for _, z in draws], dim=1).to(device, dtype)
                step_gens = step_generators(seeds, device, row_prompts)
                ls_seeds = list(seeds)
            else:
                x = self._initial_latents(n, shape, dtype, device, generator, latents)
                step_gens = generator
                if any(s.is_stochastic_choice for s in specs):  # DB-MPA-LS: one choice seed per image
                    gens = generator if isinstance(generator, list) else [generator] * n
                    ls_seeds = [int(torch.randint(0, 2**31 - 1, (1,), generator=g).item()) for g in gens]
            models = _RowPlan(specs, ls_seeds, n_steps, row_prompts if seeds is not None else None).models()
            pairs = encode_per_model(self.bundle(), models, encode, base_as_is=options.base_as_is)
            if isinstance(pairs, Mapping):
                cond = {m: p[0] for m, p in pairs.items()}
                uncond = {m: (p[1] if p[1] is not None else p[0]) for m, p in pairs.items()}
            else:
                cond, uncond = pairs[0], pairs[1] if pairs[1] is not None else pairs[0]
            last = stop_after(self.scheduler.timesteps) if stop_after is not None else n_steps

            def on_step(i, t, x):
                if callback_on_step_end is not None:
                    out = callback_on_step_end(self, i, self.scheduler.timesteps[i], {"latents": x}) or {}
                    extra = set(out) - {"latents"}
                    if extra:
                        raise ValueError(f"error: callback_on_step_end returned {sorted(extra)}; the blend pipeline "
                                         f"takes back 'latents' only")
                    x = out.get("latents", x)
                return x, self._interrupt or i + 1 >= last

            x, _, _ = denoise(self.bundle(), specs, x, cond, uncond, self.scheduler, config, seeds=ls_seeds,
                              noise=noise, generator=step_gens, prompts=row_prompts if seeds is not None else None,
                              options=options, on_step=on_step)
        if output_type == "latent":
            images = x
        else:
            images = self.image_processor.postprocess(self.bundle().decode(x), output_type=output_type,
                                                      do_denormalize=[False] * n)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, None)
        return StableDiffusionPipelineOutput(images=images, nsfw_content_detected=None)

    def _initial_latents(self, n, shape, dtype, device, generator, latents):
        """diffusers' x_T: drawn from ``generator`` (or given), times the scheduler's initial σ."""
        from diffusers.utils.torch_utils import randn_tensor

        if isinstance(generator, list) and len(generator) != n:
            raise ValueError(f"{len(generator)} generators for {n} images")
        if latents is None:
            latents = randn_tensor((n, *shape), generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != (n, *shape):
            raise ValueError(f"latents have shape {tuple(latents.shape)}, expected {(n, *shape)}")
        latents = latents.to(device, dtype)
        return latents if self.family == "sd3" else latents * self.scheduler.init_noise_sigma

    def _sizes(self, height, width) -> tuple[int, int, tuple]:
        native = self.denoiser.config.sample_size
        nh, nw = (native, native) if isinstance(native, int) else tuple(native)
        height = height or nh * self.vae_scale_factor
        width = width or nw * self.vae_scale_factor
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}×{width}")
        channels = self.denoiser.config.in_channels
        return height, width, (channels, height // self.vae_scale_factor, width // self.vae_scale_factor)

    @staticmethod
    def _prompt_rows(prompt, prompt_embeds, per_prompt: int) -> tuple[list[str] | None, int]:
        if prompt is not None:
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            return [p for p in prompts for _ in range(per_prompt)], len(prompts)
        if prompt_embeds is None:
            raise ValueError("error: give prompt or prompt_embeds")
        return None, prompt_embeds.shape[0]

    @staticmethod
    def _refuse(**unsupported) -> None:
        given = [k for k, v in unsupported.items() if v is not None]
        if given:
            raise ValueError(f"error: {', '.join(given)} is not supported by the blend pipeline (each member would need "
                             f"it); use the stock pipeline for it")


class DiffusionBlendPipeline(_BlendCore, DiffusionPipeline, StableDiffusionLoraLoaderMixin,
                             TextualInversionLoaderMixin):
    """Text-to-image with blended noise predictions of a base model and its adapters (see the module docstring).

    Blend members are the UNet's adapters (added with :meth:`add_adapter` from any supported file, directory
    or hub id, or with diffusers' ``load_lora_weights(..., adapter_name=NAME)``) and full fine-tuned UNets
    (:meth:`add_model`; memory is one UNet per member). DB-KLA's base is the pretrained model (every adapter
    disabled).
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _optional_components = ["vae"]
    _callback_tensor_inputs = ["latents"]

    def __init__(self, vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                 unet: UNet2DConditionModel, scheduler: KarrasDiffusionSchedulers) -> None:
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.blend_models: dict[str, UNet2DConditionModel] = {}  # full fine-tuned UNets, by member name
        self._interrupt = False

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @property
    def num_timesteps(self) -> int:
        return getattr(self, "_num_timesteps", 0)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str = "stable-diffusion-v1-5/stable-diffusion-v1-5",
                        **kwargs):
        """Load a pipeline as diffusers does (hub id or directory; ``torch_dtype``, ``variant``, ``cache_dir`` …;
        the model's own scheduler), or ``builtin:tiny`` / ``builtin:toy`` / ``builtin:tiny-xl``.

        The class follows ``model_index.json``: an SDXL model gives a :class:`DiffusionBlendXLPipeline`, an SD3
        model a :class:`DiffusionBlendSD3Pipeline`. A directory written by :meth:`save_pretrained` comes back with
        its members. The deleted ``runwayml/stable-diffusion-v1-5`` is read as its maintained copy. ``device``
        moves the pipeline after loading.
        """
        from diffusion.builtin import BUILTIN_PREFIX
        from diffusion.loading import load_bundle, resolve_hub_alias

        source = str(pretrained_model_name_or_path)
        if source.startswith(BUILTIN_PREFIX):
            bundle = load_bundle(source, device=kwargs.pop("device", "cpu"),
                                 dtype=kwargs.pop("torch_dtype", torch.float32))
            return cls.from_bundle(bundle)
        source = resolve_hub_alias(source)
        class_name = _pipeline_class_of(source, kwargs)
        target = PIPELINE_OF_CLASS.get(class_name)
        if target is None:
            raise ValueError(f"error: {source} holds a {class_name or 'pipeline of unknown class'}; the blend pipelines "
                             f"load {', '.join(sorted(PIPELINE_OF_CLASS))}")
        if cls is not DiffusionBlendPipeline and target is not cls:
            raise ValueError(f"error: {source} holds a {class_name}; load it with {target.__name__}.from_pretrained")
        return target._load(source, kwargs)

    @classmethod
    def from_pipe(cls, pipeline, **kwargs):
        """Share the modules of an existing pipeline: a ``StableDiffusionPipeline`` gives a
        ``DiffusionBlendPipeline``, a ``StableDiffusionXLPipeline`` a :class:`DiffusionBlendXLPipeline`, a
        ``StableDiffusion3Pipeline`` a :class:`DiffusionBlendSD3Pipeline`."""
        if cls is DiffusionBlendPipeline:
            if getattr(pipeline, "transformer", None) is not None:
                return DiffusionBlendSD3Pipeline.from_pipe(pipeline, **kwargs)
            if getattr(pipeline, "text_encoder_2", None) is not None:
                return DiffusionBlendXLPipeline.from_pipe(pipeline, **kwargs)
        return DiffusionPipeline.from_pipe.__func__(cls, pipeline, **kwargs)

    # ------------------------------------------------------------------ call

    def _encoder(self, prompt, negative_prompt, per_prompt, cfg, prompt_embeds, negative_prompt_embeds,
                 lora_scale, clip_skip, **_):
        def encode():
            return StableDiffusionPipeline.encode_prompt(
                self, prompt, self._execution_device, per_prompt, cfg, negative_prompt, prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds, lora_scale=lora_scale, clip_skip=clip_skip)
        return encode

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, weights: Weights = None, lam: float = 1.0,
                 method: str = Mpa.name, height: int | None = None, width: int | None = None,
                 num_inference_steps: int = 50, timesteps: list[int] | None = None, sigmas: list[float] | None = None,
                 guidance_scale: float = 7.5, negative_prompt: str | list[str] | None = None,
                 num_images_per_prompt: int = 1, eta: float = 0.0,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 latents: torch.Tensor | None = None, prompt_embeds: torch.Tensor | None = None,
                 negative_prompt_embeds: torch.Tensor | None = None, ip_adapter_image=None,
                 ip_adapter_image_embeds=None, output_type: str = "pil", return_dict: bool = True,
                 cross_attention_kwargs: dict | None = None, guidance_rescale: float = 0.0,
                 clip_skip: int | None = None, callback_on_step_end: Callable | None = None,
                 callback_on_step_end_tensor_inputs: list[str] = ("latents",), seeds: Sequence[int] | None = None,
                 batched: bool = False, allow_negative_weights: bool = False):
        """Generate images with the blend given by ``weights`` / ``lam`` / ``method``.

        Every argument of ``StableDiffusionPipeline.__call__`` means what it means there (defaults included:
        η = 0) and acts on each member as it acts in the stock pipeline with that adapter active; IP-Adapter
        images are refused. The blend's own arguments:

        Args:
            weights: ``{member: w}`` (w ≥ 0, Σ w = 1; members by name — a plain list of numbers is refused, as its
                order would be a guess); a list of mappings, one per prompt or per image; or a callable
                ``p -> {member: w}`` evaluated at every step (p ∈ [0, 1]). ``None`` samples the UNet in its
                current diffusers adapter state (``set_adapters`` / ``disable_lora`` / ``fuse_lora``), i.e. the stock
                pipeline.
            lam: DB-KLA's λ (method ``"kla"``): ε = (1−λ) ε̂_base + λ Σ w_i ε̂_i; λ > 1 extrapolates.
            method: ``"mpa"`` (DB-MPA), ``"mpa_ls"`` (one member per step, drawn with probability w),
                ``"kla"``, ``"soup"`` (one merged LoRA, ΔW = Σ w_i ΔW_i), ``"soup_factors"`` or ``"hybrid_late"``
                (DB-MPA on the last half of the steps, the ΔW soup on the first; 1.5× the base cost for 2 members).
            eta: DDIM's η (diffusers' default 0; the paper's sampler is 1); ignored by schedulers without η.
            generator, latents: as in diffusers (the same generator gives the stock pipeline's noise).
            seeds: instead of ``generator``, one seed per image: the project's paired noise streams
                (every method sees the same noise for the same (prompt, seed); what ``run_DB.py`` uses).
            batched: run all members in one routed UNet call (GPU).
            allow_negative_weights: accept w < 0 (extrapolation; off the simplex of DB-MPA).
        Returns:
            ``StableDiffusionPipelineOutput`` (``images``; ``nsfw_content_detected`` is None: no safety checker).
        """
        self._refuse(ip_adapter_image=ip_adapter_image, ip_adapter_image_embeds=ip_adapter_image_embeds)
        return self._call(locals())

    def _call(self, a: dict):
        """The shared body of the SD and SDXL calls (``a``: the call's arguments)."""
        if hasattr(a["callback_on_step_end"], "tensor_inputs"):
            a["callback_on_step_end_tensor_inputs"] = a["callback_on_step_end"].tensor_inputs
        height, width, shape = self._sizes(a["height"], a["width"])
        k = a["num_images_per_prompt"]
        rows, n_prompts = self._prompt_rows(a["prompt"], a["prompt_embeds"], k)
        specs = self._specs(a["weights"], a["method"], a["lam"], n_prompts, k, a["allow_negative_weights"])
        time_cond = self.unet.config.time_cond_proj_dim
        cfg = a["guidance_scale"] > 1 and time_cond is None
        cak = a["cross_attention_kwargs"]
        unet_kwargs = {"cross_attention_kwargs": cak} if cak is not None else {}
        if time_cond is not None:
            g = torch.tensor(a["guidance_scale"] - 1).repeat(1)
            unet_kwargs["timestep_cond"] = StableDiffusionPipeline.get_guidance_scale_embedding(
                self, g, embedding_dim=time_cond).to(self._execution_device, self.unet.dtype)
        options = CallOptions(unet_kwargs=unet_kwargs, guidance_rescale=a["guidance_rescale"] if cfg else 0.0,
                              cfg=cfg, base_as_is=a["weights"] is None)
        lora_scale = cak.get("scale") if cak is not None else None
        encode = self._encoder(per_prompt=k, cfg=cfg, lora_scale=lora_scale, height=height, width=width, **{
            key: a.get(key) for key in self._encoder_args})
        return self._blend_run(
            specs=specs, row_prompts=rows, encode=encode, shape=shape, num_inference_steps=a["num_inference_steps"],
            timesteps=a["timesteps"], sigmas=a["sigmas"], scheduler_kwargs={}, guidance_scale=a["guidance_scale"],
            cfg=cfg, eta=a["eta"], generator=a["generator"], latents=a["latents"], seeds=a["seeds"],
            batched=a["batched"], options=options, callback_on_step_end=a["callback_on_step_end"],
            callback_on_step_end_tensor_inputs=a["callback_on_step_end_tensor_inputs"],
            output_type=a["output_type"], return_dict=a["return_dict"], stop_after=self._stop_after(a))

    _encoder_args = ("prompt", "negative_prompt", "prompt_embeds", "negative_prompt_embeds", "clip_skip")

    def _stop_after(self, a: dict):
        return None


class DiffusionBlendXLPipeline(StableDiffusionXLLoraLoaderMixin, DiffusionBlendPipeline):
    """:class:`DiffusionBlendPipeline` for SDXL: both CLIP encoders, pooled embeddings and the size/crop time ids,
    encoded by the stock ``StableDiffusionXLPipeline``'s own ``encode_prompt`` and ``_get_add_time_ids`` (so
    ``prompt_2``, ``original_size``, ``crops_coords_top_left``, ``target_size``, ``pooled_prompt_embeds``,
    ``denoising_end`` … are the stock pipeline's); an absent negative prompt is zeros when
    ``force_zeros_for_empty_prompt`` (SDXL base's default)."""

    family = "sdxl"
    _stock = StableDiffusionXLPipeline
    model_cpu_offload_seq = "text_encoder->text_encoder_2->unet->vae"

    def __init__(self, vae: AutoencoderKL, text_encoder: CLIPTextModel, text_encoder_2, tokenizer: CLIPTokenizer,
                 tokenizer_2: CLIPTokenizer, unet: UNet2DConditionModel, scheduler: KarrasDiffusionSchedulers,
                 force_zeros_for_empty_prompt: bool = True) -> None:
        super().__init__(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.register_modules(text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2)
        self.register_to_config(force_zeros_for_empty_prompt=force_zeros_for_empty_prompt)

    _encoder_args = DiffusionBlendPipeline._encoder_args + (
        "prompt_2", "negative_prompt_2", "pooled_prompt_embeds", "negative_pooled_prompt_embeds", "original_size",
        "crops_coords_top_left", "target_size", "negative_original_size", "negative_crops_coords_top_left",
        "negative_target_size")

    def _encoder(self, prompt, negative_prompt, per_prompt, cfg, prompt_embeds, negative_prompt_embeds,
                 lora_scale, clip_skip, height=None, width=None, prompt_2=None, negative_prompt_2=None,
                 pooled_prompt_embeds=None, negative_pooled_prompt_embeds=None, original_size=None,
                 crops_coords_top_left=(0, 0), target_size=None, negative_original_size=None,
                 negative_crops_coords_top_left=(0, 0), negative_target_size=None):
        device = self._execution_device

        def encode():
            pe, npe, pooled, npooled = StableDiffusionXLPipeline.encode_prompt(
                self, prompt, prompt_2, device, per_prompt, cfg, negative_prompt, negative_prompt_2,
                prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds,
                pooled_prompt_embeds=pooled_prompt_embeds,
                negative_pooled_prompt_embeds=negative_pooled_prompt_embeds, lora_scale=lora_scale,
                clip_skip=clip_skip)
            proj = int(pooled.shape[-1]) if self.text_encoder_2 is None else self.text_encoder_2.config.projection_dim
            size = (height, width)
            ids = StableDiffusionXLPipeline._get_add_time_ids(self, original_size or size, crops_coords_top_left or (0, 0), target_size or size,
                                         dtype=pe.dtype, text_encoder_projection_dim=proj)
            if negative_original_size is not None and negative_target_size is not None:
                nids = StableDiffusionXLPipeline._get_add_time_ids(self, negative_original_size, negative_crops_coords_top_left,
                                              negative_target_size, dtype=pe.dtype, text_encoder_projection_dim=proj)
            else:
                nids = ids
            rows = pe.shape[0]
            cond = Conditioning(pe, pooled, ids.to(device).repeat(rows, 1))
            uncond = Conditioning(npe, npooled, nids.to(device).repeat(rows, 1)) if cfg else None
            return cond, uncond
        return encode

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, prompt_2: str | list[str] | None = None,
                 weights: Weights = None, lam: float = 1.0, method: str = Mpa.name, height: int | None = None,
                 width: int | None = None, num_inference_steps: int = 50, timesteps: list[int] | None = None,
                 sigmas: list[float] | None = None, denoising_end: float | None = None, guidance_scale: float = 5.0,
                 negative_prompt: str | list[str] | None = None, negative_prompt_2: str | list[str] | None = None,
                 num_images_per_prompt: int = 1, eta: float = 0.0,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 latents: torch.Tensor | None = None, prompt_embeds: torch.Tensor | None = None,
                 negative_prompt_embeds: torch.Tensor | None = None,
                 pooled_prompt_embeds: torch.Tensor | None = None,
                 negative_pooled_prompt_embeds: torch.Tensor | None = None, ip_adapter_image=None,
                 ip_adapter_image_embeds=None, output_type: str = "pil", return_dict: bool = True,
                 cross_attention_kwargs: dict | None = None, guidance_rescale: float = 0.0,
                 original_size: tuple[int, int] | None = None, crops_coords_top_left: tuple[int, int] = (0, 0),
                 target_size: tuple[int, int] | None = None, negative_original_size: tuple[int, int] | None = None,
                 negative_crops_coords_top_left: tuple[int, int] = (0, 0),
                 negative_target_size: tuple[int, int] | None = None, clip_skip: int | None = None,
                 callback_on_step_end: Callable | None = None,
                 callback_on_step_end_tensor_inputs: list[str] = ("latents",), seeds: Sequence[int] | None = None,
                 batched: bool = False, allow_negative_weights: bool = False):
        """As :meth:`DiffusionBlendPipeline.__call__`, with ``StableDiffusionXLPipeline.__call__``'s arguments and
        defaults (guidance 5.0, η = 0)."""
        self._refuse(ip_adapter_image=ip_adapter_image, ip_adapter_image_embeds=ip_adapter_image_embeds)
        return self._call(locals())

    def _stop_after(self, a: dict):
        end = a.get("denoising_end")
        if end is None or not 0 < end < 1:
            return None
        n_train = self.scheduler.config.num_train_timesteps
        cutoff = int(round(n_train - end * n_train))
        return lambda ts: len([t for t in ts if t >= cutoff])


class DiffusionBlendSD3Pipeline(_BlendCore, DiffusionPipeline, SD3LoraLoaderMixin):
    """Blended velocity predictions of an SD3 model and its adapters (flow matching; ``blend.sampler`` blends
    the guided velocities as it blends ε: both are affine in the score with shared coefficients).

    Built with ``DiffusionBlendPipeline.from_pipe(sd3_pipe)`` or ``from_pretrained(sd3 dir or hub id)``; the call
    takes ``StableDiffusion3Pipeline``'s arguments (defaults included) plus ``weights``/``lam``/``method``/
    ``seeds``/``batched``. Skip-layer guidance and IP-Adapter images are refused.
    """

    family = "sd3"
    _stock = StableDiffusion3Pipeline
    model_cpu_offload_seq = "text_encoder->text_encoder_2->text_encoder_3->transformer->vae"
    _optional_components = ["text_encoder_3", "tokenizer_3", "vae"]
    _callback_tensor_inputs = ["latents"]

    def __init__(self, transformer: SD3Transformer2DModel, scheduler: FlowMatchEulerDiscreteScheduler,
                 vae: AutoencoderKL, text_encoder: CLIPTextModelWithProjection, tokenizer: CLIPTokenizer,
                 text_encoder_2: CLIPTextModelWithProjection, tokenizer_2: CLIPTokenizer,
                 text_encoder_3: T5EncoderModel | None = None, tokenizer_3: T5TokenizerFast | None = None) -> None:
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                              text_encoder_3=text_encoder_3, tokenizer=tokenizer, tokenizer_2=tokenizer_2,
                              tokenizer_3=tokenizer_3, transformer=transformer, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.tokenizer_max_length = tokenizer.model_max_length if tokenizer is not None else 77
        self.default_sample_size = transformer.config.sample_size if transformer is not None else 128
        self.patch_size = transformer.config.patch_size if transformer is not None else 2
        self.blend_models: dict = {}
        self._interrupt = False

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.transformer

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # the stock SD3 pipeline's prompt encoding, used as it is (its encode_prompt calls these helpers)
    encode_prompt = StableDiffusion3Pipeline.encode_prompt
    _get_clip_prompt_embeds = StableDiffusion3Pipeline._get_clip_prompt_embeds
    _get_t5_prompt_embeds = StableDiffusion3Pipeline._get_t5_prompt_embeds
    from_pretrained = classmethod(DiffusionBlendPipeline.from_pretrained.__func__)
    from_pipe = classmethod(DiffusionBlendPipeline.from_pipe.__func__)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, prompt_2: str | list[str] | None = None,
                 prompt_3: str | list[str] | None = None, weights: Weights = None, lam: float = 1.0,
                 method: str = Mpa.name, height: int | None = None, width: int | None = None,
                 num_inference_steps: int = 28, sigmas: list[float] | None = None, guidance_scale: float = 7.0,
                 negative_prompt: str | list[str] | None = None, negative_prompt_2: str | list[str] | None = None,
                 negative_prompt_3: str | list[str] | None = None, num_images_per_prompt: int = 1,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 latents: torch.Tensor | None = None, prompt_embeds: torch.Tensor | None = None,
                 negative_prompt_embeds: torch.Tensor | None = None,
                 pooled_prompt_embeds: torch.Tensor | None = None,
                 negative_pooled_prompt_embeds: torch.Tensor | None = None, ip_adapter_image=None,
                 ip_adapter_image_embeds=None, output_type: str = "pil", return_dict: bool = True,
                 joint_attention_kwargs: dict | None = None, clip_skip: int | None = None,
                 callback_on_step_end: Callable | None = None,
                 callback_on_step_end_tensor_inputs: list[str] = ("latents",), max_sequence_length: int = 256,
                 skip_guidance_layers: list[int] | None = None, mu: float | None = None,
                 seeds: Sequence[int] | None = None, batched: bool = False, allow_negative_weights: bool = False):
        """As :meth:`DiffusionBlendPipeline.__call__`, with ``StableDiffusion3Pipeline.__call__``'s arguments and
        defaults (28 steps, guidance 7.0; flow matching has no η)."""
        self._refuse(ip_adapter_image=ip_adapter_image, ip_adapter_image_embeds=ip_adapter_image_embeds,
                     skip_guidance_layers=skip_guidance_layers)
        if hasattr(callback_on_step_end, "tensor_inputs"):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        height = height or self.default_sample_size * self.vae_scale_factor
        width = width or self.default_sample_size * self.vae_scale_factor
        height, width, shape = self._sizes(height, width)
        rows, n_prompts = self._prompt_rows(prompt, prompt_embeds, num_images_per_prompt)
        specs = self._specs(weights, method, lam, n_prompts, num_images_per_prompt, allow_negative_weights)
        cfg = guidance_scale > 1
        options = CallOptions(unet_kwargs={"joint_attention_kwargs": joint_attention_kwargs}
                              if joint_attention_kwargs is not None else {}, cfg=cfg, base_as_is=weights is None)
        lora_scale = joint_attention_kwargs.get("scale") if joint_attention_kwargs is not None else None
        device = self._execution_device

        def encode():
            pe, npe, pooled, npooled = StableDiffusion3Pipeline.encode_prompt(
                self, prompt, prompt_2, prompt_3, negative_prompt=negative_prompt,
                negative_prompt_2=negative_prompt_2, negative_prompt_3=negative_prompt_3,
                do_classifier_free_guidance=cfg, prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds, pooled_prompt_embeds=pooled_prompt_embeds,
                negative_pooled_prompt_embeds=negative_pooled_prompt_embeds, device=device, clip_skip=clip_skip,
                num_images_per_prompt=num_images_per_prompt, max_sequence_length=max_sequence_length,
                lora_scale=lora_scale)
            return Conditioning(pe, pooled), (Conditioning(npe, npooled) if cfg else None)

        scheduler_kwargs = {}
        if self.scheduler.config.get("use_dynamic_shifting", None) and mu is None:
            from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import calculate_shift

            seq = (shape[1] // self.patch_size) * (shape[2] // self.patch_size)
            cfg_s = self.scheduler.config
            mu = calculate_shift(seq, cfg_s.get("base_image_seq_len", 256), cfg_s.get("max_image_seq_len", 4096),
                                 cfg_s.get("base_shift", 0.5), cfg_s.get("max_shift", 1.16))
        if mu is not None:
            scheduler_kwargs["mu"] = mu
        return self._blend_run(
            specs=specs, row_prompts=rows, encode=encode, shape=shape, num_inference_steps=num_inference_steps,
            timesteps=None, sigmas=sigmas, scheduler_kwargs=scheduler_kwargs, guidance_scale=guidance_scale, cfg=cfg,
            eta=0.0, generator=generator, latents=latents, seeds=seeds, batched=batched, options=options,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, output_type=output_type,
            return_dict=return_dict)


PIPELINE_OF_CLASS = {
    "StableDiffusionPipeline": DiffusionBlendPipeline, "DiffusionBlendPipeline": DiffusionBlendPipeline,
    "StableDiffusionXLPipeline": DiffusionBlendXLPipeline, "DiffusionBlendXLPipeline": DiffusionBlendXLPipeline,
    "StableDiffusion3Pipeline": DiffusionBlendSD3Pipeline, "DiffusionBlendSD3Pipeline": DiffusionBlendSD3Pipeline,
}
"""The blend pipeline that loads each ``model_index.json`` class."""
