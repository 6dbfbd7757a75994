"""The readings of a text that a language model can recover: homoglyphs folded to Latin, base64 runs decoded,
ROT13 undone. Taint tracking works on all of them, so that an encoded payload is still untrusted data."""

from __future__ import annotations

import base64
import binascii
import codecs
import re

HOMOGLYPHS = {"а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ѕ": "s", "ԁ": "d",
              "ɡ": "g", "һ": "h", "ј": "j", "ӏ": "l", "ո": "n", "ԛ": "q", "ѵ": "v", "ԝ": "w", "Α": "A", "Β": "B",
              "Ε": "E", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Χ": "X", "ο": "o", "ν": "v"}
_HOMO = str.maketrans(HOMOGLYPHS)
B64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def fold_homoglyphs(text: str) -> str:
    return text.translate(_HOMO)


def base64_parts(text: str) -> list[str]:
    out = []
    for m in B64.finditer(text):
        try:
            dec = base64.b64decode(m.group(0), validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
        if dec.isprintable() or "\n" in dec:
            out.append(dec)
    return out


def decoded_views(text: str, rot13: bool = True) -> list[str]:
    plain = fold_homoglyphs(text)
    out = [plain, *base64_parts(text)]
    if rot13:
        out.append(codecs.decode(plain, "rot13"))
    return out
