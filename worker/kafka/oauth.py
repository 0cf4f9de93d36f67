"""OAUTHBEARER token providers: what kafka-python's OAUTHBEARER mechanism asks for a token, made
from the settings (``TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_FILE`` or ``..._TOKEN_PROVIDER``, checked
in `tagstream.worker.settings.rules`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kafka.net.sasl.oauth import AbstractTokenProvider

from ..settings.rules import import_object


class TokenFileProvider(AbstractTokenProvider):
    """The token in a file, read again for every new connection (whatever renews the file
    needs no restart of the worker)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)

    def token(self) -> str:
        token = self.path.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"the OAUTHBEARER token file {self.path} is empty")
        return token


class CallableTokenProvider(AbstractTokenProvider):
    """A function's result for every new connection; `extensions` are SASL extensions (KIP-342)
    of an object that has them."""

    def __init__(self, source: Any, name: str):
        super().__init__()
        self._token = source.token if callable(getattr(source, "token", None)) else source
        self._extensions = getattr(source, "extensions", None)
        self._name = name

    def token(self) -> str:
        token = self._token()
        if not isinstance(token, str) or not token:
            raise TypeError(
                f"the OAUTHBEARER token provider {self._name} returned "
                f"{type(token).__name__}, not a non-empty token string"
            )
        return token

    def extensions(self) -> dict[str, str]:
        return dict(self._extensions()) if callable(self._extensions) else {}


def token_provider(token_file: Path | None, spec: str | None) -> AbstractTokenProvider:
    """What kafka-python's OAUTHBEARER asks for a token (settings checked in
    tagstream.worker.settings)."""
    if token_file is not None:
        return TokenFileProvider(token_file)
    assert spec is not None
    source = import_object(spec)
    if isinstance(source, AbstractTokenProvider):
        return source
    return CallableTokenProvider(source, spec)
