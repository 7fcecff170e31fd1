"""The Ed25519 key that signs checkpoints: where it lives, how it is created, read and shown.

The private key lives outside the ledger directory (``$XDG_CONFIG_HOME/mcp-ledger/checkpoint-key.pem``,
else ``~/.config/mcp-ledger/``; ``$MCP_LEDGER_CHECKPOINT_KEY`` overrides) with mode 0600, so copying
or handing out a ledger never hands out the means to re-sign it. It is created on first use.

Keys are standard PEM (PKCS#8 private, SubjectPublicKeyInfo public, RFC 8410), written and read here
through their fixed DER prefixes: the ``cryptography`` serialization module costs a tenth of a second
to import, on every server start. The public key is shown as ``ed25519:<base64 of its 32 bytes>``,
the form ``--public-key`` takes (a path to a PEM public key or to a file holding that line works too).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "CheckpointKeyError",
    "PublicKey",
    "SigningKey",
    "default_key_path",
    "load_or_create_key",
    "load_public_key",
    "parse_public_key",
]

KEY_ENV = "MCP_LEDGER_CHECKPOINT_KEY"
KEY_FILE = "checkpoint-key.pem"
PUBLIC_PREFIX = "ed25519:"
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")  # RFC 8410 §7, a 32-byte seed follows
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # RFC 8410 §4, a 32-byte public key follows


class CheckpointKeyError(Exception):
    """The checkpoint key cannot be created, read or used; the message says which file and what to do."""


def default_key_path() -> Path:
    """``$MCP_LEDGER_CHECKPOINT_KEY``, else ``$XDG_CONFIG_HOME/mcp-ledger/checkpoint-key.pem``, else ~/.config."""
    explicit = os.environ.get(KEY_ENV)
    if explicit:
        return Path(explicit).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME")
    base = Path(config).expanduser() if config else Path.home() / ".config"
    return base / "mcp-ledger" / KEY_FILE


def _pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).decode().replace("\n", "")
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def _pem_body(text: str, label: str) -> bytes | None:
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    if begin not in text or end not in text:
        return None
    body = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error:
        return None


def _key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key and its id (the first 8 bytes of its SHA-256, hex)."""

    raw: bytes

    @property
    def key_id(self) -> str:
        return _key_id(self.raw)

    @property
    def text(self) -> str:
        return PUBLIC_PREFIX + base64.b64encode(self.raw).decode()

    def pem(self) -> bytes:
        return _pem("PUBLIC KEY", _SPKI_PREFIX + self.raw)

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class SigningKey:
    """The private half, held in memory by the writer that signs checkpoints."""

    def __init__(self, private: Ed25519PrivateKey, path: Path) -> None:
        self._private = private
        self.path = path
        self.public = PublicKey(private.public_key().public_bytes_raw())

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


def load_or_create_key(path: Path | None = None, *, ledger_dir: Path | None = None) -> SigningKey:
    """Read the signing key at ``path`` (default :func:`default_key_path`), creating it (mode 0600) if absent.

    Raises :class:`CheckpointKeyError` when the key would sit inside ``ledger_dir`` or cannot be read.
    """
    path = Path(path).expanduser() if path is not None else default_key_path()
    if ledger_dir is not None and _inside(path, Path(ledger_dir).expanduser()):
        raise CheckpointKeyError(
            f"the checkpoint key {path} is inside the ledger directory {ledger_dir}: whoever can rewrite the ledger "
            f"could then re-sign it; keep the key elsewhere (--checkpoint-key / ${KEY_ENV})"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _create(path)
    except OSError as exc:
        raise CheckpointKeyError(f"cannot read the checkpoint key {path}: {exc.strerror or exc}") from None
    der = _pem_body(data.decode("ascii", "replace"), "PRIVATE KEY")
    if der is None or len(der) != len(_PKCS8_PREFIX) + 32 or not der.startswith(_PKCS8_PREFIX):
        raise CheckpointKeyError(
            f"{path} is not an Ed25519 private key in PEM (PKCS#8); move it aside to have a new key created, "
            f"or point --checkpoint-key at the right file"
        )
    return SigningKey(Ed25519PrivateKey.from_private_bytes(der[len(_PKCS8_PREFIX) :]), path)


def _create(path: Path) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    pem = _pem("PRIVATE KEY", _PKCS8_PREFIX + private.private_bytes_raw())
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: two servers starting at once must not each write a key and sign with different ones.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return load_or_create_key(path)
    except OSError as exc:
        raise CheckpointKeyError(
            f"cannot create the checkpoint key {path}: {exc.strerror or exc}; "
            f"set --checkpoint-key / ${KEY_ENV} to a writable place outside the ledger directory"
        ) from None
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return SigningKey(private, path)


def parse_public_key(text: str, *, name: str = "public_key") -> PublicKey:
    """A public key from its ``ed25519:<base64>`` text only (never a path: safe for untrusted input)."""
    raw = b""
    if text.strip().startswith(PUBLIC_PREFIX):
        try:
            raw = base64.b64decode(text.strip()[len(PUBLIC_PREFIX) :].strip(), validate=True)
        except binascii.Error:
            raw = b""
    if len(raw) != 32:
        raise CheckpointKeyError(
            f"{name}: expected 'ed25519:' and the base64 of 32 bytes, as `mcp-ledger key show` prints it"
        )
    return PublicKey(raw)


def load_public_key(value: str) -> PublicKey:
    """A public key from ``ed25519:<base64>``, or from a file holding that line or a PEM public or private key."""
    text = value.strip()
    if not text.startswith(PUBLIC_PREFIX):
        path = Path(text).expanduser()
        try:
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError as exc:
            raise CheckpointKeyError(
                f"--public-key: {value!r} is neither 'ed25519:<base64>' nor a readable file ({exc.strerror or exc}); "
                f"`mcp-ledger key show` prints the key"
            ) from None
    if text.startswith(PUBLIC_PREFIX):
        return parse_public_key(text, name="--public-key")
    der = _pem_body(text, "PUBLIC KEY")
    if der is not None and len(der) == len(_SPKI_PREFIX) + 32 and der.startswith(_SPKI_PREFIX):
        return PublicKey(der[len(_SPKI_PREFIX) :])
    der = _pem_body(text, "PRIVATE KEY")
    if der is not None and len(der) == len(_PKCS8_PREFIX) + 32 and der.startswith(_PKCS8_PREFIX):
        seed = der[len(_PKCS8_PREFIX) :]
        return PublicKey(Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw())
    raise CheckpointKeyError(
        "--public-key: the file holds no Ed25519 public key (expected 'ed25519:<base64>' or a PEM PUBLIC KEY)"
    )
