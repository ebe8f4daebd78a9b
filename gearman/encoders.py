"""Data encoders: how job payloads become bytes and back.

A client, worker or admin client takes its encoder from the class attribute
``data_encoder``, so a subclass swaps it (see README: pickle and JSON).
"""
from __future__ import annotations

from typing import Any


class DataEncoder:
    """Base class for payload encoders.  Subclass it and override both methods.

    The default passes ``bytes``/``bytearray``/``memoryview`` through, encodes
    ``str`` as UTF-8 and decodes to ``bytes``; anything else is a ``TypeError``.
    """

    @classmethod
    def encode(cls, encodable_object: Any) -> bytes:
        if isinstance(encodable_object, bytes):
            return encodable_object
        if isinstance(encodable_object, str):
            return encodable_object.encode("utf-8")
        if isinstance(encodable_object, (bytearray, memoryview)):
            return bytes(encodable_object)
        raise TypeError(
            f"{cls.__name__} cannot send a {type(encodable_object).__name__}: pass bytes or "
            "str, or set data_encoder to a gearman.DataEncoder subclass that encodes it")

    @classmethod
    def decode(cls, decodable_string: bytes) -> Any:
        return decodable_string


class NoopEncoder(DataEncoder):
    """python-gearman 2.x's name for the default encoder."""


def to_wire_bytes(value: Any, encoder_name: str = "data_encoder") -> bytes:
    """What an encoder returned, as bytes: ``str`` goes as UTF-8 (README's JSON example)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{encoder_name}.encode returned {type(value).__name__}; it must return "
                    "bytes or str")
