"""Hub sources through huggingface_hub's cache, honouring offline mode and failing fast."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from vggt_mv.weights.errors import WeightsSourceError, first_line

HUB_SCHEME = "hf://"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CANDIDATE_FILES = ("model.safetensors", "model.safetensors.index.json", "model.pt", "pytorch_model.bin")
DEFAULT_TIMEOUT_SECONDS = "10"
REACHABILITY_TIMEOUT_SECONDS = 3.0


def hub_reachable(endpoint: str) -> bool:
    """One quick TCP connect, so an unreachable Hub costs seconds, not huggingface_hub's minutes of retries."""
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=REACHABILITY_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def looks_like_repo_id(text: str) -> bool:
    """`owner/name`, as on the Hub."""
    return bool(REPO_ID.match(text)) and not text.startswith((".", "/"))


def download_from_hub(repo_id: str) -> Path:
    """The first weights file the repo has, from the cache or downloaded into it; one clear error otherwise."""
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", DEFAULT_TIMEOUT_SECONDS)
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", DEFAULT_TIMEOUT_SECONDS)
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError)

    cache_only = constants.HF_HUB_OFFLINE or not hub_reachable(constants.ENDPOINT)
    failures = []
    for filename in CANDIDATE_FILES:
        try:
            path = Path(hf_hub_download(repo_id, filename, local_files_only=cache_only))
        except LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: test it first
            failures.append(f"{filename}: not in the local cache and the Hub cannot be reached")
            continue
        except EntryNotFoundError:
            failures.append(f"{filename}: not in the repo")
            continue
        except GatedRepoError:  # a subclass of RepositoryNotFoundError: test it first
            raise WeightsSourceError(f"Hub repo {repo_id!r} is gated: accept its terms on the Hub and log in "
                                     "(`hf auth login` or HF_TOKEN)") from None
        except RepositoryNotFoundError:
            raise WeightsSourceError(f"Hub repo {repo_id!r} does not exist or is private") from None
        except Exception as error:  # noqa: BLE001 - network stacks raise many types; all mean "cannot get it"
            failures.append(f"{filename}: {type(error).__name__}: {first_line(error)}")
            continue
        if filename.endswith(".index.json"):
            download_shards(repo_id, cache_only)
        return path
    mode = ("offline mode (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE
            else f"{constants.ENDPOINT} unreachable, cache only" if cache_only else "online")
    raise WeightsSourceError(f"could not get weights for Hub repo {repo_id!r} ({mode}, "
                             f"cache {constants.HF_HUB_CACHE}); tried {'; '.join(failures)}")


def download_shards(repo_id: str, cache_only: bool) -> None:
    """The shards a sharded checkpoint's index names, into the same snapshot folder."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, allow_patterns=["*.safetensors", "*.json"], local_files_only=cache_only)
    except Exception as error:  # noqa: BLE001 - same reasoning as above; the index reader names missing shards
        raise WeightsSourceError(f"Hub repo {repo_id!r}: could not get the shards of model.safetensors.index.json "
                                 f"({type(error).__name__}: {first_line(error)})") from None
