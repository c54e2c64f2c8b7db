"""The texts of the mails the account flows send. Plain text; the token appears once."""

from __future__ import annotations

from alttext.config import Settings
from alttext.mail import Mail

PRODUCT = "AltText API"


def _base(settings: Settings) -> str:
    return settings.public_url.rstrip("/")


def verify_signup(settings: Settings, to: str, token: str) -> Mail:
    return Mail(
        to=to,
        subject=f"Confirm your {PRODUCT} account",
        body=(
            f"Someone (we hope you) signed up for {PRODUCT} with this address.\n\n"
            f"Confirm it within 48 hours: {_base(settings)}/signup/verify?token={token}\n"
            f'(or send {{"token": "{token}"}} to POST {_base(settings)}/v1/signup/verify).\n'
            "Your first API key is shown once, when you confirm.\n\n"
            "If it was not you, ignore this mail: the unconfirmed sign-up expires by itself.\n"
        ),
    )


def signup_attempt_on_existing(settings: Settings, to: str) -> Mail:
    return Mail(
        to=to,
        subject=f"Sign-up attempt with your {PRODUCT} address",
        body=(
            f"Someone tried to sign up for {PRODUCT} with this address, which already has an "
            "account. Nothing was changed.\n\n"
            f"If it was you, use your existing account ({_base(settings)}). If it was not, "
            "you can ignore this mail.\n"
        ),
    )


def confirm_new_email(settings: Settings, to: str, token: str) -> Mail:
    return Mail(
        to=to,
        subject=f"Confirm your new {PRODUCT} address",
        body=(
            f"A {PRODUCT} account asked to use this address from now on.\n\n"
            f"Confirm within 24 hours: {_base(settings)}/account/email/confirm?token={token}\n"
            f'(or send {{"token": "{token}"}} with your API key to POST '
            f"{_base(settings)}/v1/account/email/confirm).\n\n"
            "If it was not you, ignore this mail: nothing changes without confirmation.\n"
        ),
    )


def new_email_in_use(settings: Settings, to: str) -> Mail:
    return Mail(
        to=to,
        subject=f"Address change request on {PRODUCT}",
        body=(
            f"Another {PRODUCT} account asked to move to this address, but this address already "
            "has an account, so nothing was changed.\n"
        ),
    )


def email_change_notice(settings: Settings, to: str) -> Mail:
    return Mail(
        to=to,
        subject=f"Your {PRODUCT} address is about to change",
        body=(
            f"A change of your {PRODUCT} account's e-mail address to another address was "
            "requested. It takes effect only once the new address is confirmed.\n\n"
            "If this was not you, revoke your API keys and contact us.\n"
        ),
    )
