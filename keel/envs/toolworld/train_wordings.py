"""Training paraphrases of the toolworld generator's requests (env option `wording: varied`).

Measured in round 2 (issue 9): the SFT agent that solves 0.81 of the test tasks in the generator's own
words solves 0.28 of the same tasks asked in held-out words (`keel.envs.toolworld.wordings`). It had learnt
each template's sentence shape, not to read the request. `varied` asks each training task in one of
several wordings (the generator's sentence or one of these two), drawn per episode, so that the words of
a request vary while what it asks for does not. These sentences share no template with the held-out
wordings, which stay unseen; the held-out templates (test-templates) get none, being never trained on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from keel.envs.toolworld.generator import _money
from keel.envs.toolworld.wordings import bill_path as _bill


def _best(best: bool) -> str:
    return "best rated" if best else "lowest priced"


def _dst(file: tuple[str, str], folder: str) -> str:
    return f"{folder}/{file[0].rsplit('/', 1)[1]}"


# template -> two more ways to ask for the same task, as functions of the template's parameters
TRAIN_WORDINGS: dict[str, tuple[Callable[..., str], ...]] = {
    "workspace.email_contact": (
        lambda contact, message: f"Send an email to {contact[0]} <{contact[1]}> saying {message[0]}.",
        lambda contact, message: f"Tell {contact[1]} by email: {message[0]}.",
    ),
    "workspace.add_event": (
        lambda title, date, slot: f"New calendar event '{title}', {date}, {slot[0]}-{slot[1]}.",
        lambda title, date, slot: f"Schedule '{title}' for {date} between {slot[0]} and {slot[1]}.",
    ),
    "workspace.invite": (
        lambda title, date, slot, contact: f"Invite {contact[0]} ({contact[1]}) to a new event '{title}' on {date}, "
                                           f"{slot[0]}-{slot[1]}.",
        lambda title, date, slot, contact: f"Make a calendar event '{title}' ({date}, {slot[0]} to {slot[1]}) and "
                                           f"put {contact[1]} on it.",
    ),
    "workspace.forward": (
        lambda mail, contact: f"Send the '{mail[2]}' email on to {contact[0]} at {contact[1]}.",
        lambda mail, contact: f"{contact[0]} ({contact[1]}) needs the email about '{mail[2]}'; forward it.",
    ),
    "workspace.cancel_event": (
        lambda title, date, slot: f"Delete the event '{title}' ({date}, {slot[0]}) from the calendar.",
        lambda title, date, slot: f"'{title}' on {date} at {slot[0]} is off; cancel it.",
    ),
    "banking.send": (
        lambda payee, amount, subject: f"Pay {_money(amount)} to IBAN {payee[1]}, subject '{subject}'.",
        lambda payee, amount, subject: f"Wire {_money(amount)} to {payee[1]} for '{subject}'.",
    ),
    "banking.schedule": (
        lambda payee, amount, date: f"Plan a transfer of {_money(amount)} to {payee[0]} ({payee[1]}) for {date}.",
        lambda payee, amount, date: f"Set up a payment to {payee[1]} ({payee[0]}): {_money(amount)}, on {date}.",
    ),
    "workspace.email_participant": (
        lambda title, date, contact, message: f"Look up who takes part in '{title}' on {date} and email them: "
                                              f"{message[0]}.",
        lambda title, date, contact, message: f"Send the person on my {date} event '{title}' an email saying "
                                              f"{message[0]}.",
    ),
    "banking.pay_bill": (
        lambda service, payee, amount: f"Read {_bill(service)} and pay what it asks.",
        lambda service, payee, amount: f"There is a bill at {_bill(service)}; please pay it.",
    ),
    "banking.repeat": (
        lambda merchant, amount: f"Send {merchant[0]} the same payment I sent them last time.",
        lambda merchant, amount: f"Pay {merchant[0]} once more, same IBAN and amount as before.",
    ),
    "banking.schedule_repeat": (
        lambda merchant, amount, date: f"Plan for {date} a payment to {merchant[0]} equal to my last one to them.",
        lambda merchant, amount, date: f"On {date}, pay {merchant[0]} again (same IBAN and amount as last time); "
                                       "schedule it.",
    ),
    "drive.create": (
        lambda folder, name, text: f"Write a file {folder}/{name} with the text '{text}'.",
        lambda folder, name, text: f"Save '{text}' as a new file at {folder}/{name}.",
    ),
    "drive.share": (
        lambda file, contact: f"Let {contact[0]} ({contact[1]}) see {file[0]}.",
        lambda file, contact: f"Share the file {file[0]} with {contact[1]}.",
    ),
    "drive.delete": (
        lambda folder, name: f"Remove {folder}/{name} from my drive.",
        lambda folder, name: f"I don't need {folder}/{name} any more; delete it.",
    ),
    "drive.copy": (
        lambda file, folder: f"Make a copy of {file[0]} at {_dst(file, folder)}.",
        lambda file, folder: f"Back up {file[0]} as {_dst(file, folder)}.",
    ),
    "drive.append": (
        lambda file, line: f"Add '{line}' as a new last line of {file[0]}.",
        lambda file, line: f"Extend {file[0]} with one more line: '{line}'.",
    ),
    "drive.share_and_tell": (
        lambda file, contact: f"Share {file[0]} with {contact[1]}, then email {contact[0]} that it is shared.",
        lambda file, contact: f"Let {contact[0]} ({contact[1]}) see {file[0]} and tell them so by email.",
    ),
    "travel.reserve": (
        lambda hotel, stay: f"Book {hotel[1]} for {stay[0]} to {stay[1]}.",
        lambda hotel, stay: f"I want to stay at {hotel[1]} from {stay[0]} until {stay[1]}; reserve it.",
    ),
    "travel.pick": (
        lambda city, best, stay: f"Book the {_best(best)} hotel in {city} for {stay[0]} to {stay[1]}.",
        lambda city, best, stay: f"Look at the hotels in {city} and reserve the {_best(best)} one from {stay[0]} "
                                 f"to {stay[1]}.",
    ),
    "travel.email_price": (
        lambda city, best, contact: f"Find the {_best(best)} hotel in {city} and email its name and nightly price "
                                    f"to {contact[0]} ({contact[1]}).",
        lambda city, best, contact: f"Tell {contact[1]} by email which hotel in {city} is the {_best(best)} and its "
                                    "price.",
    ),
    "travel.email_reviews": (
        lambda hotel, contact: f"Get the reviews of {hotel[1]} and send {contact[1]} a short summary.",
        lambda hotel, contact: f"Email {contact[0]} ({contact[1]}) one line on what the reviews of {hotel[1]} say.",
    ),
    "travel.cancel": (
        lambda hotel, stay: f"Please cancel reservation r2 ({hotel[1]}, {stay[0]} to {stay[1]}).",
        lambda hotel, stay: f"Drop my booking r2 at {hotel[1]} for {stay[0]} - {stay[1]}.",
    ),
}


def varied(template: str, params: dict[str, Any], original: str, rng: random.Random) -> str:
    """One of the template's training wordings (its own sentence included), uniformly; the original for a
    template without paraphrases (the held-out templates)."""
    choices = TRAIN_WORDINGS.get(template, ())
    k = rng.randrange(len(choices) + 1)
    return original if k == 0 else choices[k - 1](**params)
