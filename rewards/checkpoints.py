"""Where reward checkpoints come from, and the errors that say what is missing or wrong.

Resolution order for every file or model directory:

1. the explicit path given to the factory (``checkpoint=``, ``model_dir=``, ...);
2. the cache directory (``cache_dir=`` / ``--cache_dir``; default ``$DB_CACHE_DIR`` or
   ``~/.cache/diffusion_blend``) in the layout of ``rewards/README.md``, e.g.
   ``<cache_dir>/ImageReward/ImageReward.pt``;
3. the Hugging Face hub (or the official URL), downloaded *into* that cache layout, only when not
   offline (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` unset and ``allow_download=True``).

When all fail, :class:`MissingCheckpointError` (a ``FileNotFoundError``) names the file, every place
looked and the command that installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch

_TRUE = {"1", "true", "yes", "on"}


class MissingCheckpointError(FileNotFoundError):
    """A reward's weights (or config, vocabulary) are not found anywhere they are looked for."""

    def __init__(self, what: str, looked: Sequence[str], install: str, extra: str = "") -> None:
        self.what, self.looked, self.install = what, list(looked), install
        places = "\n".join(f"  - {p}" for p in self.looked) or "  (nowhere)"
        msg = f"{what} not found. Looked in:\n{places}\nInstall it with: {install}"
        if extra:
            msg += f"\n{extra}"
        super().__init__(msg)


class CheckpointMismatchError(ValueError):
    """A file was found but holds another model: names the keys or shapes that do not fit."""


def default_cache_dir() -> Path:
    """``$DB_CACHE_DIR`` or ``~/.cache/diffusion_blend``."""
    env = os.environ.get("DB_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "diffusion_blend"


def cache_root(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def is_offline() -> bool:
    """True when the hub must not be contacted (read at call time, not at import)."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_file(what: str, *, explicit: str | os.PathLike | None, candidates: Iterable[Path], install: str,
                 hub: tuple[str, str] | None = None, url: str | None = None, download_to: Path | None = None,
                 allow_download: bool = True) -> Path:
    """Return the first existing file among ``explicit`` and ``candidates``, else download it.

    ``hub`` is ``(repo_id, filename)`` for ``hf_hub_download``; ``url`` a plain HTTPS fallback. Both
    write into ``download_to`` (a directory of the cache layout). Raises :class:`MissingCheckpointError`.
    """
    looked: list[str] = []
    if explicit is not None:
        p = Path(explicit).expanduser()
        if p.is_file():
            return p
        # An explicit path that does not exist is an error even if the cache has the file.
        raise MissingCheckpointError(what, [f"{p} (given explicitly)"], install)
    for p in candidates:
        if p.is_file():
            return p
        looked.append(str(p))
    extra = ""
    if (hub or url) and download_to is not None:
        source = f"hub {hub[0]}/{hub[1]}" if hub else url
        if not allow_download or is_offline():
            looked.append(f"{source} (skipped: offline, HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE set or allow_download=False)")
        else:
            try:
                return _download(hub, url, download_to)
            except Exception as e:  # noqa: BLE001  (network errors come in many types)
                looked.append(f"{source} (download failed)")
                extra = f"Download error: {type(e).__name__}: {e}"
    raise MissingCheckpointError(what, looked, install, extra)


def _download(hub: tuple[str, str] | None, url: str | None, download_to: Path) -> Path:
    download_to.mkdir(parents=True, exist_ok=True)
    if hub is not None:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(hub[0], hub[1], local_dir=str(download_to)))
    import urllib.request

    dest = download_to / Path(url.split("?")[0]).name.replace("%2B", "+")
    tmp = dest.with_suffix(dest.suffix + ".part")
    urllib.request.urlretrieve(url, tmp)  # noqa: S310  (official https URL)
    tmp.replace(dest)
    return dest


def resolve_dir(what: str, *, explicit: str | os.PathLike | None, candidates: Iterable[Path], install: str,
                hub_repo: str | None = None, download_to: Path | None = None, allow_patterns: Sequence[str] = (),
                marker: str | tuple[str, ...] = "config.json", allow_download: bool = True) -> Path:
    """Like :func:`resolve_file` for a model directory (recognised by ``marker``, or any of several).

    ``explicit`` may be a local directory or a hub repo id (``owner/name``) that is then downloaded.
    """
    markers = (marker,) if isinstance(marker, str) else tuple(marker)
    marker = " or ".join(markers)

    def ok(d: Path) -> bool:
        return any((d / m).is_file() for m in markers)

    looked: list[str] = []
    if explicit is not None:
        p = Path(explicit).expanduser()
        if ok(p):
            return p
        if p.exists() or download_to is None or str(explicit).count("/") != 1:
            raise MissingCheckpointError(f"{what} ({marker})", [f"{p} (given explicitly)"], install)
        hub_repo, looked = str(explicit), [f"{p} (given explicitly, not a local directory: tried as hub id)"]
        candidates = []
    for p in candidates:
        if ok(p):
            return p
        looked.append(f"{p}/{marker}")
    extra = ""
    if hub_repo and download_to is not None:
        if not allow_download or is_offline():
            looked.append(f"hub {hub_repo} (skipped: offline, HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE set or "
                          "allow_download=False)")
        else:
            try:
                from huggingface_hub import snapshot_download

                download_to.mkdir(parents=True, exist_ok=True)
                return Path(snapshot_download(hub_repo, local_dir=str(download_to),
                                              allow_patterns=list(allow_patterns) or None))
            except Exception as e:  # noqa: BLE001
                looked.append(f"hub {hub_repo} (download failed)")
                extra = f"Download error: {type(e).__name__}: {e}"
    raise MissingCheckpointError(f"{what} ({marker})", looked, install, extra)


def load_torch_file(path: Path, what: str) -> dict:
    """``torch.load(weights_only=True)`` on CPU, with an error that names the file when it is not a checkpoint."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointMismatchError(f"{path} is not a loadable {what} checkpoint "
                                      f"(torch.load(weights_only=True) failed: {type(e).__name__}: {e})") from e
    if not isinstance(obj, Mapping):
        raise CheckpointMismatchError(f"{path}: expected a state dict for {what}, got {type(obj).__name__}")
    return dict(obj)


def require_keys(sd: Mapping[str, object], keys: Iterable[str], path: Path | str, what: str) -> None:
    """Raise :class:`CheckpointMismatchError` when a checkpoint lacks the keys that identify ``what``."""
    missing = [k for k in keys if k not in sd]
    if missing:
        sample = ", ".join(list(sd)[:6]) + (", ..." if len(sd) > 6 else "")
        raise CheckpointMismatchError(
            f"{path} does not look like a {what} checkpoint: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}; its keys start with: {sample or '(empty)'}")


def load_strict(module: torch.nn.Module, sd: Mapping[str, torch.Tensor], path: Path | str, what: str) -> None:
    """``load_state_dict(strict=True)`` that reports missing/unexpected keys and shape mismatches by name."""
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {unexpected[:5]}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {shapes[:5]}")
        raise CheckpointMismatchError(f"{path} does not fit the {what} model: " + "; ".join(parts))
    module.load_state_dict(dict(sd), strict=True)
