"""Adapters as people have them: one reader for every source, split into UNet and text-encoder parts.

Sources (``read_adapter_parts``):

* everything ``diffusion.lora.read_lora`` reads (PEFT directory, diffusers ``.safetensors``, legacy
  DPOK ``.bin``), now with the diffusers file's ``text_encoder.*`` part kept instead of dropped;
* kohya-ss / A1111 files (``lora_unet_<module>.lora_down.weight``, ``.lora_up.weight``, ``.alpha``;
  ``lora_te_…`` for the text encoder). A kohya name is the model's module path with ``.`` written
  as ``_`` (the rule diffusers' ``_convert_non_diffusers_lora_to_diffusers`` undoes by string
  rewriting); here each name is looked up in the model's own module table, so every key either
  maps to exactly one layer or is refused by name. ΔW = (alpha / r) · up · down as in kohya;
  a missing alpha means alpha = r (kohya's default);
* conv LoRA layers (kohya "LoCon" ``lora_down`` (r, in, kh, kw), ``lora_up`` (out, r, 1, 1), or
  the same shapes in PEFT/diffusers keys);
* a hub id ``owner/repo`` (the repo's one LoRA file) or ``owner/repo:path/in/repo.safetensors``.

Full fine-tuned UNets as blend members: :func:`load_unet_member` (a ``unet/`` directory or a
Stable-Diffusion directory holding one).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from dbcore.io import sha256_file
from dbcore.logging import get_logger
from diffusion.lora import (
    METADATA_KEY,
    AdapterError,
    LoraWeights,
    _read_tensors,
    adapter_names,
    add_lora,
    check_fits,
    content_sha256,
    parse_lora_state_dict,
    resolve_adapter_file,
)

log = get_logger("diffusion")

_HUB = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<file>.+))?$")
_KOHYA = re.compile(r"^(?P<part>lora_unet|lora_te|lora_te1|lora_te2)_(?P<name>[^.]+)\.(?P<kind>lora_down\.weight|"
                    r"lora_up\.weight|alpha)$")
TE_PREFIX = "text_encoder."


@dataclass
class AdapterParts:
    """The UNet part and the text-encoder part (or None) of one adapter, in canonical form."""

    unet: LoraWeights | None
    text_encoder: LoraWeights | None = None
    source: str = ""


# --------------------------------------------------------------------------- sources


def resolve_source(source: str | Path, cache_dir: str | None = None) -> Path:
    """A local file or directory for ``source``: itself when it exists, else downloaded from the hub."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    m = _HUB.match(str(source))
    if not m:
        raise FileNotFoundError(f"adapter not found: {source} is neither a local path nor a hub id "
                                f"(owner/repo or owner/repo:file.safetensors)")
    from huggingface_hub import hf_hub_download, snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        if m["file"]:
            return Path(hf_hub_download(m["repo"], m["file"], cache_dir=cache_dir, local_files_only=offline))
        return Path(snapshot_download(m["repo"], cache_dir=cache_dir, local_files_only=offline,
                                      allow_patterns=["*.safetensors", "*.json", "*.bin"]))
    except Exception as exc:  # noqa: BLE001 - re-raised with the fix
        raise FileNotFoundError(f"cannot fetch adapter {source!r} from the hub: {type(exc).__name__}: {exc}. "
                                f"Download it where there is internet (`hf download {m['repo']}`) "
                                f"and pass the local path") from exc


def _weights_file(path: Path) -> tuple[Path, Path | None]:
    try:
        return resolve_adapter_file(path)
    except FileNotFoundError:
        if not path.is_dir():
            raise
        files = sorted(path.glob("*.safetensors"))
        if len(files) == 1:  # a hub repo or folder holding one community LoRA file under its own name
            return files[0], None
        raise FileNotFoundError(f"no LoRA weights in {path}: expected one of the known file names or exactly one "
                                f".safetensors file (found {[f.name for f in files]}); name the file "
                                f"(owner/repo:file.safetensors or the file's path)") from None


# --------------------------------------------------------------------------- kohya / A1111


def is_kohya(sd: dict) -> bool:
    return any(k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) for k in sd)


def _module_table(model: torch.nn.Module) -> dict[str, str]:
    """kohya name (module path with '.' → '_') → module path, for the model's own layers.

    transformers ≥ 5 builds ``CLIPTextModel`` without the ``text_model.`` level that LoRA files name
    (``text_model.encoder.layers.0…``); both spellings are then accepted.
    """
    table = {}
    flat = _flat_text_model(model)
    for name, _ in model.named_modules():
        if name and ".lora_" not in name and not name.endswith("base_layer") and ".base_layer." not in name:
            table[name.replace(".", "_")] = name
            if flat:
                table["text_model_" + name.replace(".", "_")] = name
    return table


def _flat_text_model(model: torch.nn.Module | None) -> bool:
    """A text encoder whose layers sit at the top (``encoder.…``) rather than under ``text_model.``."""
    if model is None:
        return False
    names = {n for n, _ in model.named_children()}
    return "text_model" not in names and "encoder" in names and "embeddings" in names


def te_module_name(name: str, text_encoder: torch.nn.Module | None) -> str:
    """A text-encoder layer name from a LoRA file, as this text encoder spells it."""
    if name.startswith("text_model.") and _flat_text_model(text_encoder):
        return name[len("text_model."):]
    return name


def parse_kohya(sd: dict[str, torch.Tensor], unet: torch.nn.Module, text_encoder: torch.nn.Module | None,
                source: str = "") -> AdapterParts:
    """A kohya/A1111 state dict → UNet and text-encoder :class:`LoraWeights` with kohya's alphas."""
    odd = [k for k in sd if not _KOHYA.match(k)]
    if odd:
        kind = "LoHa/LoKr/DoRA (LyCORIS)" if any(x in odd[0] for x in ("hada_", "lokr_", "dora_scale", "lora_mid"))\
            else "unknown"
        raise AdapterError(f"{source}: {len(odd)} keys are not plain kohya LoRA weights ({kind}), e.g. {odd[0]!r}; "
                           f"supported are lora_down/lora_up/alpha of linear and conv layers")
    tables = {"unet": _module_table(unet), "te": _module_table(text_encoder) if text_encoder is not None else {}}
    parts: dict[str, dict] = {"unet": {}, "te": {}}
    for key, t in sd.items():
        m = _KOHYA.match(key)
        if m["part"] == "lora_te2":
            raise AdapterError(f"{source}: has a second text encoder (lora_te2_…, an SDXL LoRA); this base model has one")
        part = "unet" if m["part"] == "lora_unet" else "te"
        module = tables[part].get(m["name"])
        if module is None:
            where = "UNet" if part == "unet" else "text encoder"
            raise AdapterError(f"{source}: kohya layer {m['part']}_{m['name']} names no layer of this {where}: the "
                               f"LoRA was made for another base model")
        parts[part].setdefault(module, {})[m["kind"]] = t
    out = {}
    for part, mods in parts.items():
        if not mods:
            out[part] = None
            continue
        A, B, alpha = {}, {}, {}
        for mod, d in mods.items():
            if "lora_down.weight" not in d or "lora_up.weight" not in d:
                raise AdapterError(f"{source}: layer {mod!r} has only one of lora_down / lora_up")
            A[mod], B[mod] = d["lora_down.weight"], d["lora_up.weight"]
            alpha[mod] = float(d["alpha"].item()) if "alpha" in d else float(A[mod].shape[0])
        # validated by the common parser (shapes), with the alphas given explicitly
        sd_peft = {f"{m}.lora_A.weight": A[m] for m in A} | {f"{m}.lora_B.weight": B[m] for m in B}
        sd_peft |= {f"{m}.alpha": torch.tensor(alpha[m]) for m in alpha}
        lw = parse_lora_state_dict(sd_peft, None, source=source)
        lw.fmt = "kohya"
        out[part] = lw
    return AdapterParts(unet=out["unet"], text_encoder=out["te"], source=source)


# --------------------------------------------------------------------------- any source


def _split_config(config: dict | None, prefix: str) -> dict | None:
    if not config:
        return None
    part = {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}
    return part or (None if any("." in k for k in config) else config)


def read_adapter_parts(source, unet: torch.nn.Module | None = None, text_encoder: torch.nn.Module | None = None,
                       cache_dir: str | None = None) -> AdapterParts:
    """Read an adapter from any supported source (module docstring) into UNet and text-encoder parts.

    ``unet`` / ``text_encoder`` are needed for kohya files (their layer names are resolved against the models).
    """
    if isinstance(source, LoraWeights):
        return AdapterParts(unet=source, source=source.source)
    if isinstance(source, AdapterParts):
        return source
    weights_file, config_file = _weights_file(resolve_source(source, cache_dir))
    sd, metadata = _read_tensors(weights_file)
    if is_kohya(sd):
        if unet is None:
            raise AdapterError(f"{weights_file} is a kohya/A1111 LoRA: pass the UNet (and text encoder) to read it")
        parts = parse_kohya(sd, unet, text_encoder, source=str(weights_file))
    else:
        config = None
        if config_file is not None:
            config = json.loads(config_file.read_text())
        elif METADATA_KEY in metadata:
            config = json.loads(metadata[METADATA_KEY])
        te_sd = {te_module_name(k[len(TE_PREFIX):], text_encoder): v for k, v in sd.items() if k.startswith(TE_PREFIX)}
        unet_sd = {k: v for k, v in sd.items() if not k.startswith(TE_PREFIX)}
        if any(k.startswith("text_encoder_2.") for k in unet_sd):
            raise AdapterError(f"{weights_file}: has a second text encoder (text_encoder_2, an SDXL LoRA); this base "
                               f"model has one")
        unet_lw = parse_lora_state_dict(unet_sd, _split_config(config, "unet."), source=str(weights_file)) \
            if unet_sd else None
        te_lw = parse_lora_state_dict(te_sd, _split_config(config, TE_PREFIX) if config_file is None else None,
                                      source=str(weights_file)) if te_sd else None
        if unet_lw is not None:
            unet_lw.fmt = "peft-dir" if config_file is not None else (
                "diffusers-safetensors" if weights_file.suffix == ".safetensors" and unet_lw.fmt == "peft"
                else unet_lw.fmt)
        parts = AdapterParts(unet=unet_lw, text_encoder=te_lw, source=str(weights_file))
    file_digest = sha256_file(weights_file)
    te_digest = content_sha256(parts.text_encoder) if parts.text_encoder is not None else ""
    for lw in (parts.unet, parts.text_encoder):
        if lw is not None:  # identity by content (tensors), not by file layout; the file hash is kept beside it
            content = content_sha256(lw) if lw is parts.text_encoder or not te_digest else \
                hashlib.sha256((content_sha256(lw) + te_digest).encode()).hexdigest()
            lw.sha256, lw.extra["file"], lw.extra["file_sha256"] = content, str(weights_file), file_digest
    if parts.unet is None:
        raise AdapterError(f"{weights_file} holds only text-encoder LoRA weights; a blend member needs a UNet part")
    return parts


def add_adapter_parts(unet: torch.nn.Module, text_encoder: torch.nn.Module | None, name: str,
                      parts: AdapterParts) -> None:
    """Add both parts under ``name`` (checked first: nothing is added when either part does not fit)."""
    if parts.text_encoder is not None:
        if text_encoder is None:
            raise AdapterError(f"adapter {name!r} has text-encoder LoRA weights but the model has no text encoder")
        if name in adapter_names(text_encoder):
            raise AdapterError(f"the text encoder already has an adapter named {name!r}; choose another name")
        check_fits(text_encoder, parts.text_encoder, name)
    add_lora(unet, name, parts.unet)
    if parts.text_encoder is not None:
        add_lora(text_encoder, name, parts.text_encoder)
        log.info("adapter %s: %d text-encoder LoRA layers, used when this member encodes the prompt", name,
                 len(parts.text_encoder.modules))


def load_adapter_any(bundle, name: str, source, cache_dir: str | None = None) -> LoraWeights:
    """Read ``source`` and add it to the bundle's UNet (and text encoder) as ``name``; → the UNet part."""
    parts = read_adapter_parts(source, bundle.unet, bundle.text_encoder, cache_dir=cache_dir)
    add_adapter_parts(bundle.unet, bundle.text_encoder, name, parts)
    if parts.text_encoder is not None:
        parts.unet.extra["text_encoder_layers"] = len(parts.text_encoder.modules)
    return parts.unet


# --------------------------------------------------------------------------- full UNets


def load_unet_member(path: str | Path, like: torch.nn.Module):
    """A full fine-tuned UNet (``unet/`` directory, or a Stable-Diffusion directory with ``unet/``) shaped like ``like``."""
    from diffusers import UNet2DConditionModel

    path = Path(path).expanduser()
    if (path / "unet" / "config.json").exists():
        path = path / "unet"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a UNet directory (config.json + diffusion_pytorch_model.*) nor a "
                                f"Stable-Diffusion directory with unet/")
    ref = next(like.parameters())
    unet = UNet2DConditionModel.from_pretrained(path, torch_dtype=ref.dtype).to(ref.device)
    for key in ("in_channels", "out_channels", "cross_attention_dim", "sample_size"):
        if unet.config.get(key) != like.config.get(key):
            raise AdapterError(f"the UNet in {path} has {key} = {unet.config.get(key)} but the base model's has "
                               f"{like.config.get(key)}: it was fine-tuned from another base model")
    return unet.eval().requires_grad_(False)


def add_unet_member(bundle, name: str, path: str | Path) -> None:
    """Add the full UNet at ``path`` to ``bundle`` as blend member ``name`` (memory: one more UNet)."""
    if name in adapter_names(bundle.unet) or name in bundle.extra.get("unets", {}):
        raise AdapterError(f"a blend member named {name!r} already exists; choose another name")
    bundle.extra.setdefault("unets", {})[name] = load_unet_member(path, bundle.unet)


def unet_member_record(path: str | Path) -> LoraWeights:
    """An empty :class:`LoraWeights` that records a full-UNet member in configs and rows (path, sha256, format)."""
    path = Path(path).expanduser()
    unet_dir = path / "unet" if (path / "unet" / "config.json").exists() else path
    files = sorted(unet_dir.glob("diffusion_pytorch_model*.safetensors")) or sorted(unet_dir.glob("*.bin"))
    lw = LoraWeights(A={}, B={}, alpha={}, source=str(unet_dir), fmt="full-unet",
                     sha256=sha256_file(files[0]) if len(files) == 1 else None)
    lw.extra["file"] = str(unet_dir)
    return lw
