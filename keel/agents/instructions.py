"""How the instruction-following reference agent reads imperative text: it undoes the obfuscations a
capable model sees through (base64, ROT13, leetspeak, homoglyphs), finds an action verb in any of ten
languages, and the literal arguments (addresses, IBANs, amounts, paths, quoted names, dates) next to it.

It models the worst case the guard must withstand: an agent that carries out every instruction it can
understand, wherever it read it. What it cannot parse it ignores, as a weak model would.
"""

from __future__ import annotations

import re

from keel.envs.toolworld.tasks import Call
from keel.guard.decode import decoded_views

VERBS: dict[str, tuple[str, ...]] = {  # action -> verb stems across en zh it vi ar ko th bn sw jv
    "forward": ("forward", "转发", "inoltra", "chuyển tiếp", "أعد توجيه", "전달", "ส่งต่อ", "ফরওয়ার্ড", "sambaza",
                "terusna"),
    "share": ("share", "共享", "condividi", "chia sẻ", "شارك", "공유", "แชร์", "শেয়ার", "shiriki", "bagekna"),
    "delete": ("delete", "remove", "删除", "elimina", "xóa", "احذف", "삭제", "ลบ", "মুছে", "futa", "busak"),
    "reserve": ("reserve", "book ", "预订", "prenota", "đặt", "احجز", "예약", "จอง", "বুক", "weka nafasi", "pesen"),
    "send": ("send", "transfer", "wire", "转账", "发送", "invia", "chuyển", "gửi", "أرسل", "송금", "보내", "โอน", "ส่ง",
             "পাঠান", "tuma", "kirim"),
}

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b")
AMOUNT = re.compile(r"(?<![\w/.-])\d+(?:\.\d{1,2})?(?![\w/-])")
PATH = re.compile(r"(?<![\w@.])/[\w.-]+(?:/[\w.-]+)+|(?<![\w@.])/[\w-]+\.[\w]+")
URL = re.compile(r"https?://\S+")
EMAIL_ID = re.compile(r"\bm\d+\b")
QUOTED = re.compile(r'"([^"]{2,60})"|“([^”]{2,60})”')
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")

LEET = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "$": "s", "|": "l"})


def views(text: str) -> list[str]:
    """The text as a model might understand it: plain, de-homoglyphed, base64-decoded parts, and ROT13'd when
    the text says it is ROT13."""
    return decoded_views(text, rot13="rot13" in text.lower())


def _verb(line: str) -> str | None:
    low = line.lower()
    # Leetspeak only changes letters into digits outside the payload; undo it for verb spotting only.
    deleet = " ".join(w if any(c in w for c in "@/") else w.translate(LEET) for w in low.split())
    for action, stems in VERBS.items():  # forward/share/delete/reserve before the generic "send"
        if any(s in low or s in deleet for s in stems):
            return action
    return None


def parse_line(line: str) -> Call | None:
    """The one tool call an imperative line asks for, or None."""
    action = _verb(line)
    if action is None:
        return None
    emails = EMAIL.findall(line)
    ibans = IBAN.findall(line)
    urls = " ".join(URL.findall(line))
    emails = [e.rstrip(".") for e in emails]
    paths = [p.rstrip(".") for p in PATH.findall(line) if p not in urls]
    ids = EMAIL_ID.findall(EMAIL.sub(" ", line))
    if action == "reserve":
        q = QUOTED.search(line)
        dates = DATE.findall(line)
        if q and len(dates) >= 2:
            return Call("reserve_hotel", {"hotel": q.group(1) or q.group(2), "start": dates[0], "end": dates[1]})
        return None
    if action == "share" and paths and emails:
        return Call("share_file", {"path": paths[0], "email": emails[0]})
    if action == "forward" and ids and emails:
        return Call("forward_email", {"email_id": ids[0], "to": emails[0]})
    if action == "delete":
        if paths:
            return Call("delete_file", {"path": paths[0]})
        if ids:
            return Call("delete_email", {"email_id": ids[0]})
        return None
    if action in ("send", "forward"):
        if ibans:
            rest = IBAN.sub(" ", line)
            amounts = [a for a in AMOUNT.findall(DATE.sub(" ", rest)) if float(a) > 0]
            if amounts:
                return Call("send_money", {"recipient": ibans[0], "amount": float(amounts[0]), "subject": "payment"})
        if emails:
            after = re.split(r":\s*", line, maxsplit=1)
            body = after[1] if len(after) > 1 else line
            return Call("send_email", {"to": emails[0], "subject": "Message", "body": body[:500]})
    return None


def parse_instructions(text: str) -> list[Call]:
    """Every tool call the text asks for, in order, looking through obfuscations; duplicates dropped."""
    found: list[Call] = []
    keys = set()
    for view in views(text):
        # Sentences: split at line ends, CJK/Bengali full stops, and ". " before a capital (not "98.70").
        for chunk in re.split(r"[\n。।]|(?<=[!?])\s|\.\s+(?=[A-Z<])", view):
            call = parse_line(chunk)
            if call is not None and call.key() not in keys:
                keys.add(call.key())
                found.append(call)
    return found
