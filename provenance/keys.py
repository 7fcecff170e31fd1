"""The checkpoint signing key: where it lives, how it is made and loaded, and public keys given as text.

``provenance.keys.load_or_create_key`` is what a server signs with; ``load_public_key`` and
``parse_public_key`` read the ``ed25519:…`` text (or a PEM file) that ``verify --public-key`` takes.
"""

from mcp_ledger.provenance._keys import (
    CheckpointKeyError,
    default_key_path,
    load_or_create_key,
    load_public_key,
    parse_public_key,
)

__all__ = ["CheckpointKeyError", "default_key_path", "load_or_create_key", "load_public_key", "parse_public_key"]
