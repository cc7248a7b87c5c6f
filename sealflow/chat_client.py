"""A minimal client for OpenAI-compatible ``/chat/completions`` endpoints.

Used by the LLM judge and by the external-model baseline. Plain ``urllib`` keeps it free
of client libraries, so OpenAI and a local vLLM server work the same. Transient failures
(rate limits, server errors, dropped connections) are retried with exponential backoff.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
_RETRY_STATUS = {408, 409, 429}


class ChatError(RuntimeError):
    """The endpoint could not be used (configuration, HTTP or reply format)."""


@dataclass(frozen=True)
class ChatEndpoint:
    """Where and how to call an endpoint; unknown config keys are ignored."""

    base_url: str | None = None
    model: str = "gpt-4.1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 2.0
    max_workers: int = 4

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]):
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


def is_local(url: str) -> bool:
    host = urllib.parse.urlparse(url).hostname or ""
    return host in _LOCAL_HOSTS or host.startswith("127.")


def api_key_from_env(env_var: str | None, url: str, config_key: str, error: type[ChatError] = ChatError) -> str | None:
    """The key in ``env_var``; it may be missing only for a server on this machine."""
    key = os.environ.get(env_var, "").strip() if env_var else ""
    if key or is_local(url):
        return key or None
    raise error(f"an API key is needed in the environment variable {env_var!r} ({config_key}) for {url}")


def _retry_after(err: urllib.error.HTTPError) -> float | None:
    value = err.headers.get("Retry-After") if err.headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _failure(err: Exception, timeout_s: float) -> str:
    """What went wrong with a connection; a timeout names the setting to raise."""
    reason = getattr(err, "reason", err)
    if isinstance(err, TimeoutError) or isinstance(reason, TimeoutError):
        return f"no reply within timeout_s={timeout_s:g} s"
    return f"{type(err).__name__}: {reason}"


def chat_completion(url: str, body: Mapping[str, Any], key: str | None, *, timeout_s: float, max_retries: int,
                    backoff_s: float, error: type[ChatError] = ChatError, what: str = "request") -> str:
    """POST ``body`` to ``url`` and return ``choices[0].message.content``."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data, last = json.dumps(dict(body)).encode("utf-8"), ""
    for attempt in range(max_retries + 1):
        wait = backoff_s * (2**attempt)
        try:
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                reply = json.loads(response.read().decode("utf-8"))
            try:
                return str(reply["choices"][0]["message"]["content"] or "")
            except (KeyError, IndexError, TypeError) as err:
                raise error(f"{what} reply from {url} has no choices[0].message.content: {str(reply)[:200]}") from err
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}: {err.read().decode('utf-8', 'replace')[:300]}"
            if err.code not in _RETRY_STATUS and err.code < 500:
                raise error(f"{what} to {url} failed with {last}") from err
            wait = min(_retry_after(err) or wait, 60.0)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            last = _failure(err, timeout_s)
        except json.JSONDecodeError as err:
            raise error(f"{what} reply from {url} is not JSON ({err.msg})") from err
        if attempt < max_retries:
            time.sleep(wait)
    raise error(f"{what} to {url} failed after {max_retries + 1} tries ({last})")


def messages_body(model: str, messages: Sequence[Mapping[str, str]], **params: Any) -> dict[str, Any]:
    return {"model": model, "messages": list(messages), **{k: v for k, v in params.items() if v is not None}}
