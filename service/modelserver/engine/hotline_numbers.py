"""Taking an order number and a ZIP code from a caller on a noisy line (the hotline brain's
number dialogue; :mod:`.hotline_brain` routes the turn here).

What a caller who mumbles needs, and why each rule is here:

* **Read back before acting on what was heard.** Whisper tiny.en still gets about one digit
  string in three wrong for robotic or accented voices, and every ZIP that does not match
  counts toward ``verify_caller``'s 3-strike lockout. So digits *heard* (audio) are read back
  and ``verify_caller`` is only called with numbers the caller confirmed ("I heard 1 5 2 1 3
  — is that right?"): a mismatch is then a genuinely wrong ZIP, and still counts. An order
  number heard with confidence is read back together with the ZIP (one confirmation turn);
  one heard with low confidence is read back at once, before the ZIP is asked for.
  Digits that arrive as text (typed, or keypad) are exact and are not read back.
* **"No" or a correction re-asks.** "No" drops the numbers read back and asks again; digits
  in the answer ("no, it's 1 5 2 1 3") are taken as the new hearing (and read back).
* **After a miss, offer the keypad**; DTMF digits ("The caller pressed 1 5 2 1 3 on the
  keypad.", the service's relay of keypad presses) fill the slot at once.

Memory per call: two numbers, what is waiting for a yes, miss counters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import orjson

from service.modelserver.engine.base import Decision
from service.modelserver.turns import FunctionCall

__all__ = ["Numbers", "keypad_digits", "read_out"]

LENGTHS = {"order": (4, 5, 6), "zip": (5, 9)}
NAMES = {"order": "order number", "zip": "ZIP code"}
KEYPAD_HINT = "you can also type it on your phone's keypad"
_KEYPAD = re.compile(r"\bpressed\s+([0-9#*\s,]+?)\s+on the keypad", re.IGNORECASE)


def keypad_digits(text: str) -> str | None:
    """The digits of a keypad relay message, or None if ``text`` is not one."""
    match = _KEYPAD.search(text)
    return re.sub(r"\D", "", match.group(1)) if match else None


def read_out(digits: str) -> str:
    """Digits as the agent says them back: one at a time ("1 5 2 1 3")."""
    return " ".join(digits)


@dataclass
class Numbers:
    """The numbers of one call and the dialogue state around them."""

    order: str | None = None
    zip: str | None = None
    order_confirmed: bool = False  # typed, keyed, or read back and confirmed
    pending: dict[str, str] = field(default_factory=dict)  # slot → digits awaiting a yes
    misses: dict[str, int] = field(default_factory=dict)

    # -- what the agent says --------------------------------------------------------------
    def ask(self, slot: str, prefix: str = "") -> str:
        """The question for ``slot``; after a miss it offers the keypad first, so the
        question stays the last sentence (what :func:`.slots.slot_asked` reads)."""
        if slot == "zip":
            question = "To verify it's you, what's the ZIP code on the order?"
        else:
            question = "What's the order number?"
        if self.misses.get(slot):
            question = f"Say it one digit at a time, or {KEYPAD_HINT}. {question}"
        return f"{prefix} {question}".strip()

    def missed(self, slot: str, why: str) -> str:
        self.misses[slot] = self.misses.get(slot, 0) + 1
        return f"{why} Please say the {NAMES[slot]} again, one digit at a time — {KEYPAD_HINT}."

    def readback(self) -> str:
        if set(self.pending) == {"order", "zip"}:
            heard = (
                f"order {read_out(self.pending['order'])}, ZIP code {read_out(self.pending['zip'])}"
            )
        else:
            heard = read_out(next(iter(self.pending.values())))
        return f"I heard {heard} — is that right?"

    # -- what the caller gave -------------------------------------------------------------
    def take(self, slot: str, digits: str, *, exact: bool, unsure: bool) -> None:
        """Digits for ``slot``: kept, or held for a read-back (heard, not typed)."""
        if slot == "zip":
            digits = digits[:5]  # ZIP+4 → ZIP
            if exact:
                self.zip = digits
            else:
                self.pending["zip"] = digits
            return
        if digits != self.order:
            self.zip = None  # a ZIP given for another order does not carry over
            self.pending.pop("zip", None)
        self.order = digits
        self.order_confirmed = exact
        if not exact and unsure:
            self.pending["order"] = digits

    def confirmed(self) -> None:
        if "order" in self.pending:
            self.order, self.order_confirmed = self.pending.pop("order"), True
        if "zip" in self.pending:
            self.zip = self.pending.pop("zip")
            self.order_confirmed = True  # read back with it

    def rejected(self) -> str:
        """The caller said no: ask again from the first number read back."""
        slots = [s for s in ("order", "zip") if s in self.pending]
        self.pending.clear()
        for slot in slots:
            setattr(self, slot, None)
        if "order" in slots or (not self.order_confirmed and "zip" in slots and self.order):
            # The order number was read back too: either could be wrong, so both again.
            self.order, self.zip, self.order_confirmed = None, None, False
            return self.missed("order", "Sorry about that.")
        return self.missed("zip", "Sorry about that.")

    def next_step(self, tools: set[str]) -> tuple[str | None, Decision]:
        """What to ask or do next: (the slot now expected or "confirm"/None, decision)."""
        if self.order is None:
            return "order", Decision(self.ask("order", "Thanks."))
        if self.zip is None and "zip" not in self.pending:
            if "order" in self.pending:
                return "confirm", Decision(self.readback())
            return "zip", Decision(self.ask("zip", "Thanks." if self.misses else ""))
        if "zip" in self.pending:
            if not self.order_confirmed:
                self.pending["order"] = self.order
            return "confirm", Decision(self.readback())
        if "order" in self.pending:
            return "confirm", Decision(self.readback())
        if not {"verify_caller", "lookup_order"} <= tools:
            return None, Decision("I'm sorry, I can't look up orders on this line.")
        arguments = orjson.dumps({"order_number": self.order, "zip_code": self.zip}).decode()
        return None, Decision("Thanks, one moment.", (FunctionCall("verify_caller", arguments),))
