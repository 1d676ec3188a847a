"""A time limit on every request to the Hugging Face hub (models and datasets), and the one line that says so.

huggingface_hub sends some requests with no time limit at all (`model_info`, which transformers calls to resolve
a revision, passes `timeout=None`), so a proxy or endpoint that accepts the connection and never answers hangs
`qid measure` forever. The environment settings HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT cover only the
metadata and download calls. Here the shared HTTP client of huggingface_hub (also used by `datasets` for the hub)
gets a transport that gives every request a limit of at most `HUB_TIMEOUT_S` seconds for connecting and between
two received chunks (a large download that keeps flowing is never cut); QID_HUB_TIMEOUT_S overrides it. After one
time-out, the operation's further requests (huggingface_hub retries each file five times) fail at once.
"""

from __future__ import annotations

import os
import time

HUB_TIMEOUT_S = 60.0  # seconds a hub request may wait for the connection or for the next bytes
_installed = False
_STALLED = {"since": None}  # when a hub request last timed out in this operation; later ones fail at once


class HubTimeoutError(TimeoutError):
    """The hub did not answer in time; the message names the endpoint and the time waited."""


def hub_timeout_seconds() -> float:
    text = os.environ.get("QID_HUB_TIMEOUT_S")
    if text is None:
        return HUB_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ValueError(f"QID_HUB_TIMEOUT_S must be a number of seconds > 0, got {text!r}")
    return value


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def limit_hub_requests() -> None:
    """Install the time-limited transport in huggingface_hub's client factory (once per process), and forget an
    earlier stall: each hub operation (a checkpoint, a text source) gets its own chance."""
    global _installed
    _STALLED["since"] = None
    if _installed:
        return
    import httpx2
    from huggingface_hub.utils import _http as hub_http

    seconds = hub_timeout_seconds()

    class StalledHubTimeout(httpx2.TransportError):
        """Not one of the errors huggingface_hub retries (with back-off sleeps): the stall is already known."""

    class TimeLimitedTransport(httpx2.HTTPTransport):
        def handle_request(self, request):
            if _STALLED["since"] is not None:  # huggingface_hub retries a time-out up to 5 times per file: once is enough
                raise StalledHubTimeout(f"the hub did not answer within {seconds:g} s", request=request)
            limits = dict(request.extensions.get("timeout") or {})
            for phase in ("connect", "read", "write", "pool"):
                limits[phase] = seconds if limits.get(phase) is None else min(limits[phase], seconds)
            request.extensions["timeout"] = limits
            try:
                return super().handle_request(request)
            except httpx2.TimeoutException:
                _STALLED["since"] = time.monotonic()
                raise

    def time_limited_client():
        return httpx2.Client(event_hooks={"request": [hub_http.hf_request_event_hook]}, follow_redirects=True,
                             timeout=seconds, transport=TimeLimitedTransport())

    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(seconds)))
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(seconds)))
    hub_http.set_client_factory(time_limited_client)
    _installed = True


def is_timeout(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, is a time-out of a network request."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, TimeoutError) or "timeout" in type(error).__name__.lower():
            return True
        error = error.__cause__ or error.__context__
    return False


def timeout_message(what: str) -> str:
    return (f"{what}: the Hugging Face hub at {hub_endpoint()} did not answer within {hub_timeout_seconds():g} s "
            "(a stalled proxy or endpoint?); retry later, or set QID_HUB_TIMEOUT_S to wait longer")
