"""LoRA adapters as named PEFT adapters on ONE UNet, read from every format users have.

Formats (detected from the files, not the names):

* PEFT directory: ``adapter_config.json`` + ``adapter_model.safetensors`` (or ``.bin``);
* diffusers: ``pytorch_lora_weights.safetensors`` (keys ``unet.<module>.lora_A.weight`` …, the LoRA
  config in the safetensors metadata under ``lora_adapter_metadata``; older ``lora.down/up`` keys
  and kohya-style ``.alpha`` keys are understood);
* legacy attention processors, as DPOK and the original Diffusion Blend code save them with
  ``unet.save_attn_procs``: ``pytorch_lora_weights.bin`` with keys
  ``<attention>.processor.to_{q,k,v,out}_lora.{down,up}.weight``; rank 4, no alpha (scale 1).

Every format is converted to one canonical form, :class:`LoraWeights` (PEFT key names without
prefix, ranks and alphas per module), checked against the UNet layer by layer, and injected with
PEFT under the adapter's name. The UNet's own weights are never modified: the pretrained model is
the UNet with its adapters disabled.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from safetensors.torch import save_file

from dbcore.io import atomic_path, sha256_file

DIFFUSERS_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
LEGACY_WEIGHT_NAME = "pytorch_lora_weights.bin"
PEFT_CONFIG_NAME = "adapter_config.json"
PEFT_WEIGHT_NAMES = ("adapter_model.safetensors", "adapter_model.bin")
METADATA_KEY = "lora_adapter_metadata"


class AdapterError(ValueError):
    """An adapter file that cannot be used with this UNet; the message names the fix."""


@dataclass
class LoraWeights:
    """A LoRA in canonical form: for each UNet module path, A (r, in) and B (out, r), and alpha.

    ΔW of a module = (alpha / r) · B @ A.
    """

    A: dict[str, torch.Tensor]
    B: dict[str, torch.Tensor]
    alpha: dict[str, float]
    source: str = ""
    fmt: str = ""
    sha256: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def modules(self) -> list[str]:
        return sorted(self.A)

    def rank(self, module: str) -> int:
        return self.A[module].shape[0]

    def scale(self, module: str) -> float:
        return self.alpha[module] / self.rank(module)

    def delta(self, module: str) -> torch.Tensor:
        """ΔW = (alpha / r) B A, shape (out, in), or (out, in, kh, kw) for a conv LoRA (B is (out, r, 1, 1))."""
        a, b = self.A[module].double(), self.B[module].double()
        if a.ndim == 4:
            return self.scale(module) * (b.flatten(1) @ a.flatten(1)).view(b.shape[0], *a.shape[1:])
        return self.scale(module) * (b @ a)

    def lora_config(self) -> LoraConfig:
        ranks = {m: self.rank(m) for m in self.modules}
        alphas = {m: self.alpha[m] for m in self.modules}
        r = max(set(ranks.values()), key=list(ranks.values()).count)
        a = max(set(alphas.values()), key=list(alphas.values()).count)
        return LoraConfig(
            r=r, lora_alpha=a, target_modules=self.modules, init_lora_weights=False,
            rank_pattern={f"^{re.escape(m)}$": v for m, v in ranks.items() if v != r},
            alpha_pattern={f"^{re.escape(m)}$": v for m, v in alphas.items() if v != a},
        )

    def peft_state_dict(self) -> dict[str, torch.Tensor]:
        sd = {}
        for m in self.modules:
            sd[f"{m}.lora_A.weight"] = self.A[m]
            sd[f"{m}.lora_B.weight"] = self.B[m]
        return sd


def content_sha256(lw: LoraWeights) -> str:
    """sha256 of what the adapter computes: per module (sorted by name) its name, alpha, and lora_A and lora_B
    with dtype, shape and bytes. It does not depend on the file format, key order or metadata, so
    tensor-identical adapters get the same hash in every process (rows, manifests and resume checks use it)."""
    h = hashlib.sha256()
    for mod in lw.modules:
        h.update(f"{mod}|{float(lw.alpha[mod])!r}|".encode())
        for tag, t in (("A", lw.A[mod]), ("B", lw.B[mod])):
            t = t.detach().cpu().contiguous()
            h.update(f"{tag}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- reading files


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as fh:
                return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})
        except Exception as exc:  # noqa: BLE001 - re-raised with the path
            raise AdapterError(f"cannot read adapter file {path}: it is truncated or not a safetensors file "
                               f"({type(exc).__name__}); copy or save it again") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the path (not torch's advice to unpickle code)
        raise AdapterError(f"cannot read adapter file {path}: it is truncated, corrupt, or not a plain dict of "
                           f"tensors (a pickled model or other object is not a LoRA state dict); save the LoRA "
                           f"with torch.save(state_dict) or as .safetensors") from exc
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise AdapterError(f"{path} is not a LoRA state dict (expected a dict of tensors)")
    return obj, {}


def resolve_adapter_file(path: str | Path) -> tuple[Path, Path | None]:
    """(weights file, PEFT config or None) for a file or a directory in any supported format."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"adapter not found: {path} (pass --lora NAME=PATH with a PEFT directory, "
                                f"a {DIFFUSERS_WEIGHT_NAME} or a legacy {LEGACY_WEIGHT_NAME})")
    if path.is_file():
        cfg = path.with_name(PEFT_CONFIG_NAME)
        return path, cfg if path.name in PEFT_WEIGHT_NAMES and cfg.exists() else None
    if (path / PEFT_CONFIG_NAME).exists():
        for name in PEFT_WEIGHT_NAMES:
            if (path / name).exists():
                return path / name, path / PEFT_CONFIG_NAME
        raise FileNotFoundError(f"{path} has {PEFT_CONFIG_NAME} but none of {PEFT_WEIGHT_NAMES}")
    for name in (DIFFUSERS_WEIGHT_NAME, LEGACY_WEIGHT_NAME):
        if (path / name).exists():
            return path / name, None
    raise FileNotFoundError(f"no LoRA weights in directory {path}: expected {PEFT_CONFIG_NAME}, "
                            f"{DIFFUSERS_WEIGHT_NAME} or {LEGACY_WEIGHT_NAME}")


_LEGACY = re.compile(r"^(?P<mod>.+)\.processor\.(?P<proj>to_q|to_k|to_v|to_out)_lora\.(?P<ud>down|up)\.weight$")
_PEFT = re.compile(r"^(?P<mod>.+)\.lora_(?P<ab>A|B)(?:\.[^.]+)?\.weight$")
_OLD_DIFFUSERS = re.compile(r"^(?P<mod>.+)\.lora\.(?P<ud>down|up)\.weight$")
_ALPHA = re.compile(r"^(?P<mod>.+)\.alpha$")


def _strip_prefix(key: str) -> str:
    for prefix in ("base_model.model.", "unet.", "model."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def parse_lora_state_dict(sd: dict[str, torch.Tensor], config: dict | None = None, source: str = "") -> LoraWeights:
    """Convert a LoRA state dict of any supported layout into :class:`LoraWeights`."""
    A: dict[str, torch.Tensor] = {}
    B: dict[str, torch.Tensor] = {}
    alphas: dict[str, float] = {}
    fmt = None
    unknown = []
    for raw_key, t in sd.items():
        key = _strip_prefix(raw_key)
        if key.startswith("text_encoder"):
            raise AdapterError(f"{source or 'adapter'} has text-encoder LoRA weights ({raw_key!r}); read it with "
                               f"diffusion.lora_formats.read_adapter_parts, which applies them per blended model "
                               f"(run_DB.py and DiffusionBlendPipeline do), instead of dropping them")
        if m := _LEGACY.match(key):
            fmt = fmt or "legacy-attn-procs"
            proj = "to_out.0" if m["proj"] == "to_out" else m["proj"]
            mod = f"{m['mod']}.{proj}"
            (A if m["ud"] == "down" else B)[mod] = t
        elif m := _PEFT.match(key):
            fmt = fmt or "peft"
            (A if m["ab"] == "A" else B)[m["mod"]] = t
        elif m := _OLD_DIFFUSERS.match(key):
            fmt = fmt or "diffusers-lora-down-up"
            (A if m["ud"] == "down" else B)[m["mod"]] = t
        elif m := _ALPHA.match(key):
            alphas[m["mod"]] = float(t.item())
        else:
            unknown.append(raw_key)
    if unknown:
        raise AdapterError(f"{source or 'adapter'}: {len(unknown)} keys are not LoRA weights in any supported "
                           f"format, e.g. {unknown[0]!r}")
    if not A:
        raise AdapterError(f"{source or 'adapter'} holds no UNet LoRA weights")
    if set(A) != set(B):
        odd = sorted(set(A) ^ set(B))[0]
        raise AdapterError(f"{source}: module {odd!r} has only one of the two LoRA factors")
    config = config or {}
    default_alpha = config.get("lora_alpha")
    alpha_pattern = config.get("alpha_pattern") or {}
    out_alpha = {}
    for mod, a in A.items():
        conv = a.ndim == 4 and B[mod].ndim == 4 and tuple(B[mod].shape[2:]) == (1, 1)
        if not (conv or a.ndim == 2 and B[mod].ndim == 2) or B[mod].shape[1] != a.shape[0]:
            raise AdapterError(f"{source}: module {mod!r} has factors of shapes {tuple(B[mod].shape)} and "
                               f"{tuple(a.shape)}, which do not multiply (supported: linear LoRA, and conv LoRA "
                               f"with down (r, in, kh, kw) and up (out, r, 1, 1))")
        if mod in alphas:
            out_alpha[mod] = alphas[mod]
        elif fmt == "legacy-attn-procs":
            out_alpha[mod] = float(a.shape[0])  # legacy processors apply B A with scale 1
        else:
            pat = next((v for k, v in alpha_pattern.items() if re.search(k, mod)), None)
            out_alpha[mod] = float(pat if pat is not None else default_alpha if default_alpha else a.shape[0])
    return LoraWeights(A=A, B=B, alpha=out_alpha, source=source, fmt=fmt or "")


def read_lora(path: str | Path) -> LoraWeights:
    """Read a LoRA from a PEFT dir, a diffusers file/dir or a legacy attention-processor file."""
    weights_file, config_file = resolve_adapter_file(path)
    sd, metadata = _read_tensors(weights_file)
    config = None
    if config_file is not None:
        config = json.loads(config_file.read_text())
    elif METADATA_KEY in metadata:
        raw = json.loads(metadata[METADATA_KEY])
        unet_part = {k[len("unet."):]: v for k, v in raw.items() if k.startswith("unet.")}
        config = unet_part or raw
    lw = parse_lora_state_dict(sd, config, source=str(weights_file))
    if config_file is not None:
        lw.fmt = "peft-dir"
    elif weights_file.suffix == ".safetensors" and lw.fmt == "peft":
        lw.fmt = "diffusers-safetensors"
    lw.sha256 = content_sha256(lw)
    lw.extra["file"] = str(weights_file)
    lw.extra["file_sha256"] = sha256_file(weights_file)
    return lw


# --------------------------------------------------------------------------- UNet side


def check_fits(unet: torch.nn.Module, lw: LoraWeights, name: str) -> None:
    """Raise :class:`AdapterError` naming the first layer whose shape does not match the UNet."""
    modules = dict(unet.named_modules())
    for mod in lw.modules:
        layer = modules.get(mod)
        if layer is None:
            raise AdapterError(f"adapter {name!r} ({lw.source}) targets layer {mod!r}, which this UNet does not "
                               f"have: the adapter was made for another base model")
        base = layer.base_layer if isinstance(layer, LoraLayer) else layer
        if isinstance(base, torch.nn.Conv2d):
            want_a = (lw.rank(mod), base.in_channels, *base.kernel_size)
            want_b = (base.out_channels, lw.rank(mod), 1, 1)
        elif isinstance(base, torch.nn.Linear):
            want_a, want_b = (lw.rank(mod), base.in_features), (base.out_features, lw.rank(mod))
        else:
            raise AdapterError(f"adapter {name!r}: layer {mod!r} is a {type(base).__name__}; LoRA layers on Linear "
                               f"and Conv2d are supported")
        if tuple(lw.A[mod].shape) != want_a or tuple(lw.B[mod].shape) != want_b:
            raise AdapterError(
                f"adapter {name!r} ({lw.source}) does not fit this UNet at layer {mod!r}: the UNet layer maps "
                f"{want_a[1]} → {want_b[0]} features, so it needs lora_A {want_a} and lora_B {want_b}, "
                f"but the file has lora_A {tuple(lw.A[mod].shape)} and lora_B {tuple(lw.B[mod].shape)}. "
                f"The adapter was made for another base model; load the base it was trained on.")


def adapter_names(unet: torch.nn.Module) -> list[str]:
    return list(getattr(unet, "peft_config", {}) or {})


def add_lora(unet: torch.nn.Module, name: str, lw: LoraWeights) -> None:
    """Inject ``lw`` into ``unet`` as the PEFT adapter ``name`` (checked first; nothing changes on error)."""
    if name in adapter_names(unet):
        raise AdapterError(f"the UNet already has an adapter named {name!r}; choose another name")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise AdapterError(f"adapter name {name!r} must use letters, digits, '_' or '-' only")
    check_fits(unet, lw, name)
    ref = next(unet.parameters())
    with warnings.catch_warnings():  # several adapters on one UNet is the point of blending, not a mistake
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute", category=UserWarning)
        inject_adapter_in_model(lw.lora_config(), unet, adapter_name=name)
    sd = {k: v.to(ref.device, ref.dtype) for k, v in lw.peft_state_dict().items()}
    result = set_peft_model_state_dict(unet, sd, adapter_name=name)
    unexpected = getattr(result, "unexpected_keys", None) or []
    if unexpected:
        raise AdapterError(f"adapter {name!r}: {len(unexpected)} weights were not used, e.g. {unexpected[0]}")
    for mod in lw.modules:  # every factor must now be live in the UNet
        layer = unet.get_submodule(mod)
        if not torch.equal(layer.lora_A[name].weight.detach().cpu(), lw.A[mod].to(ref.dtype).cpu()):
            raise AdapterError(f"adapter {name!r}: the weights of {mod} did not load")
    unet.requires_grad_(False)
    from diffusion.adapters import clear_cache

    clear_cache(unet)


def load_adapter(unet: torch.nn.Module, name: str, path: str | Path) -> LoraWeights:
    """Read the adapter at ``path`` (any format) and add it to ``unet`` as ``name``."""
    lw = read_lora(path)
    add_lora(unet, name, lw)
    return lw


def extract_lora(unet: torch.nn.Module, name: str) -> LoraWeights:
    """The adapter ``name`` of ``unet`` in canonical form (CPU, float32)."""
    A, B, alpha = {}, {}, {}
    for mod_name, layer in unet.named_modules():
        if isinstance(layer, LoraLayer) and name in layer.lora_A:
            A[mod_name] = layer.lora_A[name].weight.detach().float().cpu().clone()
            B[mod_name] = layer.lora_B[name].weight.detach().float().cpu().clone()
            alpha[mod_name] = float(layer.lora_alpha[name])
    if not A:
        raise AdapterError(f"the UNet has no adapter named {name!r}; it has {adapter_names(unet)}")
    return LoraWeights(A=A, B=B, alpha=alpha, source=f"<unet adapter {name}>", fmt="peft")


# --------------------------------------------------------------------------- writing files


def save_lora(lw: LoraWeights, directory: str | Path, formats: tuple[str, ...] = ("diffusers",)) -> dict[str, str]:
    """Write ``lw`` into ``directory`` in the given formats; returns {format: file}.

    ``diffusers``: ``pytorch_lora_weights.safetensors`` (keys ``unet.…lora_A.weight``, config in
    the metadata; ``StableDiffusionPipeline.load_lora_weights`` reads it). ``peft``:
    ``adapter_config.json`` + ``adapter_model.safetensors``. ``legacy``: DPOK's attention-processor
    ``pytorch_lora_weights.bin`` (only for rank-r LoRAs with alpha = r on attention projections).
    Each file is written atomically.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = lw.lora_config()
    cfg_dict = {"r": cfg.r, "lora_alpha": cfg.lora_alpha, "target_modules": lw.modules,
                "rank_pattern": dict(cfg.rank_pattern or {}), "alpha_pattern": dict(cfg.alpha_pattern or {})}
    written = {}
    for fmt in formats:
        if fmt == "diffusers":
            sd = {f"unet.{k}": v.contiguous() for k, v in lw.peft_state_dict().items()}
            path = directory / DIFFUSERS_WEIGHT_NAME
            with atomic_path(path) as tmp:
                meta = {f"unet.{k}": v for k, v in cfg_dict.items()}  # diffusers packs per-component keys
                save_file(sd, str(tmp), metadata={"format": "pt", METADATA_KEY: json.dumps(meta, sort_keys=True)})
        elif fmt == "peft":
            path = directory / PEFT_WEIGHT_NAMES[0]
            with atomic_path(path) as tmp:
                save_file({f"base_model.model.{k}": v.contiguous() for k, v in lw.peft_state_dict().items()},
                          str(tmp), metadata={"format": "pt"})
            peft_cfg = {"peft_type": "LORA", "task_type": None, "bias": "none", "lora_dropout": 0.0,
                        "init_lora_weights": True, **cfg_dict}
            with atomic_path(directory / PEFT_CONFIG_NAME) as tmp:
                tmp.write_text(json.dumps(peft_cfg, indent=2))
        elif fmt == "legacy":
            sd = {}
            for m in lw.modules:
                if lw.scale(m) != 1.0:
                    raise AdapterError(f"the legacy format has no alpha; module {m} has scale {lw.scale(m)} != 1")
                hit = re.match(r"^(.+)\.(to_q|to_k|to_v|to_out\.0)$", m)
                if not hit:
                    raise AdapterError(f"the legacy format holds attention projections only, not {m}")
                proj = "to_out" if hit[2] == "to_out.0" else hit[2]
                sd[f"{hit[1]}.processor.{proj}_lora.down.weight"] = lw.A[m].contiguous()
                sd[f"{hit[1]}.processor.{proj}_lora.up.weight"] = lw.B[m].contiguous()
            path = directory / LEGACY_WEIGHT_NAME
            with atomic_path(path) as tmp:
                torch.save(sd, tmp)
        else:
            raise ValueError(f"unknown LoRA format {fmt!r}; use 'diffusers', 'peft' or 'legacy'")
        written[fmt] = str(path)
    return written


ATTENTION_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")


def attention_modules(unet: torch.nn.Module, targets: tuple[str, ...] = ATTENTION_PROJECTIONS) -> list[str]:
    """Paths of the UNet's attention projections (DPOK's LoRA targets: attn1 and attn2 of every block)."""
    out = []
    for name, module in unet.named_modules():
        base = module.base_layer if isinstance(module, LoraLayer) else module
        if isinstance(base, torch.nn.Linear) and any(name.endswith("." + t) for t in targets) \
                and ".attn" in name and "base_layer" not in name and ".lora_" not in name:
            out.append(name)
    return out


def random_lora(unet: torch.nn.Module, seed: int, rank: int = 4, std_b: float = 0.1) -> LoraWeights:
    """A LoRA with random A ~ N(0, 1/r²) (DPOK's init) and random B ~ N(0, std_b²), for tests and demos."""
    gen = torch.Generator("cpu").manual_seed(seed)
    A, B, alpha = {}, {}, {}
    for mod in attention_modules(unet):
        layer = unet.get_submodule(mod)
        layer = layer.base_layer if isinstance(layer, LoraLayer) else layer
        A[mod] = torch.randn(rank, layer.in_features, generator=gen) / rank
        B[mod] = torch.randn(layer.out_features, rank, generator=gen) * std_b
        alpha[mod] = float(rank)
    return LoraWeights(A=A, B=B, alpha=alpha, source=f"<random lora seed={seed}>", fmt="random")
