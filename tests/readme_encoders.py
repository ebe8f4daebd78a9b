"""The README's two data encoders, shared by the tests that use them.

``JSONDataEncoder.encode`` returns ``str`` on purpose, as in the README: the
library sends it as UTF-8.  (examples/ keep their own copies: each example is a
standalone program.)
"""
from __future__ import annotations

import json
import pickle
from typing import Any

import gearman


class PickleDataEncoder(gearman.DataEncoder):
    @classmethod
    def encode(cls, encodable_object: Any) -> bytes:
        return pickle.dumps(encodable_object)

    @classmethod
    def decode(cls, decodable_string: bytes) -> Any:
        return pickle.loads(decodable_string)


class JSONDataEncoder(gearman.DataEncoder):
    @classmethod
    def encode(cls, encodable_object: Any) -> Any:
        return json.dumps(encodable_object)  # a str, as in the README

    @classmethod
    def decode(cls, decodable_string: bytes) -> Any:
        return json.loads(decodable_string)
