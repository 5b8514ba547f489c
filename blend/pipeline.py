"""``DiffusionBlendPipeline``: Diffusion Blend as a diffusers pipeline.

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
"""

import contextlib
from collections.abc import Callable, Mapping, Sequence

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import StableDiffusionLoraLoaderMixin, StableDiffusionXLLoraLoaderMixin
from diffusers.pipelines.stable_diffusion import StableDiffusionPipelineOutput
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from blend.sampler import SamplerConfig, _RowPlan, denoise, encode_for_models, sample
from blend.schedule import FunctionSchedule
from blend.spec import BlendSpec
from diffusion.adapters import clear_cache
from diffusion.bundle import ModelBundle
from diffusion.lora import adapter_names, extract_lora
from diffusion_blend.logging import get_logger

log = get_logger("pipeline")

PIPELINE_METHODS = ("mpa", "mpa_ls", "kla", "soup", "soup_factors", "hybrid_late")

Weights = Mapping[str, float] | Sequence[Mapping[str, float]] | Callable[[float], Mapping[str, float]] | None


@contextlib.contextmanager
def _kept_adapter_flags(*modules: torch.nn.Module | None):
    """Restore PEFT's active-adapter flags of ``modules`` afterwards (a pipeline shared with ``from_pipe``)."""
    from peft.tuners.lora import LoraLayer

    layers = [m for mod in modules if mod is not None for m in mod.modules() if isinstance(m, LoraLayer)]
    saved = [(layer._disable_adapters, list(layer._active_adapter)) for layer in layers]
    try:
        yield
    finally:
        for layer, (disabled, active) in zip(layers, saved):
            layer._disable_adapters, layer._active_adapter = disabled, active


class DiffusionBlendPipeline(DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    """Text-to-image with blended noise predictions of a base model and its adapters (see the module docstring).

    Blend members are the UNet's LoRA adapters (added with :meth:`add_adapter` from any supported
    file, directory or hub id, or with diffusers' ``load_lora_weights(..., adapter_name=NAME)``) and
    full fine-tuned UNets (:meth:`add_model`; memory is one UNet per member). ``"__base__"`` is the
    pretrained model (what DB-KLA blends with).
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _optional_components = ["vae"]

    def __init__(self, vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                 unet: UNet2DConditionModel, scheduler: KarrasDiffusionSchedulers) -> None:
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.blend_models: dict[str, UNet2DConditionModel] = {}  # full fine-tuned UNets, by member name

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(cls, source: str = "stable-diffusion-v1-5/stable-diffusion-v1-5", *,
                        torch_dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                        cache_dir: str | None = None) -> "DiffusionBlendPipeline":
        """Load a base model by hub id, local Stable-Diffusion directory or ``builtin:tiny`` / ``builtin:toy``.

        The deleted ``runwayml/stable-diffusion-v1-5`` is read as its maintained copy (see ``diffusion.loading``).
        The scheduler is DDIM (the paper's); assign any other to ``pipe.scheduler``.
        """
        from diffusion.loading import load_bundle

        bundle = load_bundle(source, device=device, dtype=torch_dtype, cache_dir=cache_dir)
        return cls.from_bundle(bundle)

    @classmethod
    def from_pipe(cls, pipeline, **kwargs) -> "DiffusionBlendPipeline":
        """Share the modules of an existing pipeline: a ``StableDiffusionPipeline`` gives a
        ``DiffusionBlendPipeline``, a ``StableDiffusionXLPipeline`` a :class:`DiffusionBlendXLPipeline`."""
        if cls is DiffusionBlendPipeline and getattr(pipeline, "text_encoder_2", None) is not None:
            return DiffusionBlendXLPipeline.from_pipe(pipeline, **kwargs)
        return super().from_pipe(pipeline, **kwargs)

    @classmethod
    def from_bundle(cls, bundle: ModelBundle) -> "DiffusionBlendPipeline":
        if bundle.family == "sdxl" and cls is DiffusionBlendPipeline:
            return DiffusionBlendXLPipeline.from_bundle(bundle)
        if bundle.family not in ("sd", "sdxl"):
            raise ValueError(f"DiffusionBlendPipeline supports the SD 1.x/2.x and SDXL families, not {bundle.family}; "
                             f"blend {bundle.family} models with run_DB.py or blend.sampler.sample")
        if bundle.family == "sdxl":
            pipe = cls(vae=bundle.vae, text_encoder=bundle.text_encoder, text_encoder_2=bundle.text_encoder_2,
                       tokenizer=bundle.tokenizer, tokenizer_2=bundle.tokenizer_2, unet=bundle.unet,
                       scheduler=bundle.scheduler)
            pipe.blend_models.update(bundle.extra.get("unets", {}))
            return pipe
        pipe = cls(vae=bundle.vae, text_encoder=bundle.text_encoder, tokenizer=bundle.tokenizer, unet=bundle.unet,
                   scheduler=bundle.scheduler)
        pipe.blend_models.update(bundle.extra.get("unets", {}))
        return pipe

    def bundle(self) -> ModelBundle:
        """The pipeline's parts as the :class:`ModelBundle` the sampler takes (shared modules, no copy)."""
        return ModelBundle(self.unet, self.text_encoder, self.tokenizer, self.scheduler, self.vae,
                           source=str(getattr(self.config, "_name_or_path", "") or ""),
                           extra={"unets": self.blend_models})

    # ------------------------------------------------------------------ members

    def add_adapter(self, name: str, source) -> None:
        """Add a LoRA as blend member ``name`` from any supported source (see ``diffusion.lora_formats``).

        ``source``: a PEFT directory, a diffusers/kohya/A1111 ``.safetensors``, a legacy DPOK ``.bin``, a hub
        id ``owner/repo`` or ``owner/repo:file.safetensors``, or a :class:`~diffusion.lora.LoraWeights`.
        Text-encoder LoRA parts go into the text encoder under the same name and are used only when
        this member's noise prediction is computed.
        """
        from diffusion.lora_formats import add_adapter_parts, read_adapter_parts

        parts = read_adapter_parts(source, unet=self.unet, text_encoder=self.text_encoder)
        add_adapter_parts(self.unet, self.text_encoder, name, parts)

    def add_model(self, name: str, unet) -> None:
        """Add a full fine-tuned UNet (a module, or a diffusers ``unet/`` or pipeline directory) as member ``name``."""
        from diffusion.lora_formats import load_unet_member

        if not isinstance(unet, torch.nn.Module):
            unet = load_unet_member(unet, like=self.unet)
        if name in self.blend_models or name in adapter_names(self.unet):
            raise ValueError(f"a blend member named {name!r} already exists; choose another name")
        self.blend_models[name] = unet.eval().requires_grad_(False)

    @property
    def members(self) -> list[str]:
        """Names that ``weights`` may use: the UNet's adapters and the full-UNet members."""
        return [n for n in adapter_names(self.unet) if not n.startswith("soup_")] + list(self.blend_models)

    # ------------------------------------------------------------------ call

    def _spec(self, weights: Mapping[str, float] | None, method: str, lam: float, schedule=None) -> BlendSpec:
        if weights is None:
            return BlendSpec("base")
        if not isinstance(weights, Mapping) or not weights:
            raise TypeError(f"weights must map member names to numbers, e.g. {{'a': 0.5, 'b': 0.5}}; got {weights!r}")
        unknown = [n for n in weights if n not in self.members]
        if unknown:
            raise ValueError(f"no blend member named {unknown}; the pipeline has {self.members} (add one with "
                             f"pipe.add_adapter(name, source), pipe.add_model(name, dir) or "
                             f"pipe.load_lora_weights(..., adapter_name=name))")
        if method not in PIPELINE_METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(PIPELINE_METHODS)}")
        extra = {"schedule": schedule} if schedule is not None else {}
        return BlendSpec(method, tuple(weights), tuple(float(w) for w in weights.values()),
                         lam=lam if method == "kla" else 1.0, extra=extra)

    def _specs(self, weights: Weights, method: str, lam: float, n_prompts: int, per_prompt: int) -> list[BlendSpec]:
        n = n_prompts * per_prompt
        if callable(weights) and not isinstance(weights, Mapping):
            first = weights(0.0)
            names = list(first)
            schedule = FunctionSchedule(lambda p: [weights(p)[k] for k in names],
                                        getattr(weights, "__name__", "custom").replace("<lambda>", "lambda"))
            return [self._spec(first, method, lam, schedule)] * n
        if weights is None or isinstance(weights, Mapping):
            return [self._spec(weights, method, lam)] * n
        vectors = list(weights)
        if len(vectors) == n_prompts:
            specs = [self._spec(w, method, lam) for w in vectors]
            return [s for s in specs for _ in range(per_prompt)]
        if len(vectors) == n:
            return [self._spec(w, method, lam) for w in vectors]
        raise ValueError(f"{len(vectors)} weight mappings for {n_prompts} prompts × {per_prompt} images: give one "
                         f"mapping, one per prompt or one per image")

    def _ensure_soups(self, specs: Sequence[BlendSpec]) -> None:
        from blend.soup import ensure_soup_adapter

        for spec in {s.soup_spec.label: s.soup_spec for s in specs if s.soup_spec is not None}.values():
            if any(a in self.blend_models for a in spec.adapters):
                raise ValueError("a soup merges LoRA weights; full-UNet members cannot be souped (use method 'mpa')")
            if set(spec.adapters) & set(adapter_names(self.text_encoder)):
                raise ValueError("a soup merges UNet LoRA weights only; adapters with text-encoder parts cannot be "
                                 "souped (use method 'mpa', where each member encodes the prompt itself)")
            ensure_soup_adapter(self.unet, spec, {a: extract_lora(self.unet, a) for a in spec.adapters})

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], weights: Weights = None, lam: float = 1.0, method: str = "mpa",
                 negative_prompt: str | list[str] | None = None, num_images_per_prompt: int = 1,
                 height: int | None = None, width: int | None = None, num_inference_steps: int = 50,
                 guidance_scale: float = 7.5, eta: float = 1.0,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 latents: torch.Tensor | None = None, output_type: str = "pil", return_dict: bool = True,
                 seeds: Sequence[int] | None = None, batched: bool = False):
        """Generate images with the blend given by ``weights`` / ``lam`` / ``method``.

        Args:
            prompt: one prompt or a list.
            weights: ``{member: w}`` (Σ w = 1); a list of them, one per prompt or per image; or a callable
                ``p -> {member: w}`` evaluated at every step (p ∈ [0, 1]). ``None`` samples the base model.
            lam: DB-KLA's λ (method ``"kla"``): ε = (1−λ) ε̂_base + λ Σ w_i ε̂_i.
            method: ``"mpa"`` (DB-MPA), ``"mpa_ls"`` (one member per step, drawn with probability w),
                ``"kla"``, ``"soup"`` (one merged LoRA, ΔW = Σ w_i ΔW_i), ``"soup_factors"`` or ``"hybrid_late"``
                (DB-MPA on the last half of the steps, the ΔW soup on the first; 1.5× the base cost for 2 members).
            eta: DDIM's η (1 = the paper's stochastic sampler); ignored by schedulers without η.
            generator, latents: as in diffusers (the same generator gives the stock pipeline's noise).
            seeds: instead of ``generator``, one seed per image: the project's paired noise streams
                (every method sees the same noise for the same seed; what ``run_DB.py`` uses).
            batched: run all members in one routed UNet call (GPU).
        Returns:
            ``StableDiffusionPipelineOutput`` (``images``; ``nsfw_content_detected`` is None: no safety checker).
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        n = len(prompts) * num_images_per_prompt
        negs = None
        if negative_prompt is not None:
            negs = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt)
            if len(negs) != len(prompts):
                raise ValueError(f"{len(negs)} negative prompts for {len(prompts)} prompts")
            negs = [p for p in negs for _ in range(num_images_per_prompt)]
        prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        specs = self._specs(weights, method, lam, n // num_images_per_prompt, num_images_per_prompt)
        config = SamplerConfig(steps=num_inference_steps, guidance=guidance_scale, eta=eta, batched=batched)
        native = self.unet.config.sample_size
        native = native if isinstance(native, int) else native[0]
        height = height or native * self.vae_scale_factor
        width = width or native * self.vae_scale_factor
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}×{width}")
        shape = (self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        bundle = self.bundle()
        bundle.extra["image_size"] = (height, width)
        clear_cache(self.unet)
        clear_cache(self.text_encoder)
        with _kept_adapter_flags(self.unet, self.text_encoder):
            self._ensure_soups(specs)
            if seeds is not None:
                if generator is not None or latents is not None:
                    raise ValueError("pass seeds, or generator/latents, not both")
                if len(seeds) != n:
                    raise ValueError(f"{len(seeds)} seeds for {n} images")
                result = sample(bundle, specs, prompts, list(seeds), config, scheduler=self.scheduler,
                                negative_prompts=negs, sample_shape=shape, decode=output_type != "latent")
                x = result.images
            else:
                x = self._denoise_with_generator(bundle, specs, prompts, negs, shape, config, generator, latents)
                if output_type != "latent":
                    x = bundle.decode(x)
        if output_type == "latent":
            images = x
        else:
            images = self.image_processor.postprocess(x, output_type=output_type, do_denormalize=[False] * n)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, None)
        return StableDiffusionPipelineOutput(images=images, nsfw_content_detected=None)

    def _denoise_with_generator(self, bundle, specs, prompts, negs, shape, config, generator, latents):
        """diffusers' noise convention: latents from ``generator`` (or given), step noise from ``generator``."""
        device, dtype = self._execution_device, self.unet.dtype
        self.scheduler.set_timesteps(config.steps, device=device)
        n = len(prompts)
        if latents is None:
            latents = randn_tensor((n, *shape), generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != (n, *shape):
            raise ValueError(f"latents have shape {tuple(latents.shape)}, expected {(n, *shape)}")
        x = latents.to(device, dtype) * self.scheduler.init_noise_sigma
        seeds = None
        if any(s.is_stochastic_choice for s in specs):  # DB-MPA-LS draws its choices from one seed per image
            gens = generator if isinstance(generator, list) else [generator] * n
            seeds = [int(torch.randint(0, 2**31 - 1, (1,), generator=g).item()) for g in gens]
        models = _RowPlan(specs, seeds, len(self.scheduler.timesteps)).models()
        cond = encode_for_models(bundle, prompts, models)
        uncond = encode_for_models(bundle, negs if negs is not None else [""] * n, models)
        x, _, _ = denoise(bundle, specs, x, cond, uncond, self.scheduler, config, seeds=seeds, generator=generator)
        return x


class DiffusionBlendXLPipeline(StableDiffusionXLLoraLoaderMixin, DiffusionBlendPipeline):
    """:class:`DiffusionBlendPipeline` for SDXL: both CLIP encoders, pooled embeddings and the size/crop time ids,
    encoded as the stock ``StableDiffusionXLPipeline`` encodes them (``diffusion.family_encoders``); an empty
    negative prompt is zeros when ``force_zeros_for_empty_prompt`` (SDXL base's default)."""

    model_cpu_offload_seq = "text_encoder->text_encoder_2->unet->vae"

    def __init__(self, vae: AutoencoderKL, text_encoder: CLIPTextModel, text_encoder_2, tokenizer: CLIPTokenizer,
                 tokenizer_2: CLIPTokenizer, unet: UNet2DConditionModel, scheduler: KarrasDiffusionSchedulers,
                 force_zeros_for_empty_prompt: bool = True) -> None:
        super().__init__(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.register_modules(text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2)
        self.register_to_config(force_zeros_for_empty_prompt=force_zeros_for_empty_prompt)

    def bundle(self) -> ModelBundle:
        return ModelBundle(self.unet, self.text_encoder, self.tokenizer, self.scheduler, self.vae,
                           source=str(getattr(self.config, "_name_or_path", "") or ""), family="sdxl",
                           text_encoder_2=self.text_encoder_2, tokenizer_2=self.tokenizer_2,
                           extra={"unets": self.blend_models,
                                  "force_zeros_for_empty_prompt": self.config.force_zeros_for_empty_prompt})
