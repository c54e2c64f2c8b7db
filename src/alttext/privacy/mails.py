"""The texts of the mails the account flows send. Plain text; the token appears once.

Every link points at a page of the dashboard that exists (tests/web/test_mail_links.py opens
each one), under ``ALTTEXT_PUBLIC_URL``, which in development follows the host and port.
"""

from __future__ import annotations

from urllib.parse import quote

from alttext.config import Settings
from alttext.mail import Mail

PRODUCT = "AltText API"


def _base(settings: Settings) -> str:
    return settings.public_url.rstrip("/")


def link(settings: Settings, path: str, token: str | None = None) -> str:
    url = _base(settings) + path
    return url if token is None else f"{url}?token={quote(token, safe='')}"


def verify_signup(settings: Settings, to: str, token: str, *, with_password: bool = False) -> Mail:
    if with_password:
        how = (
            f"Confirm it within 48 hours: {link(settings, '/signup/verify', token)}\n"
            "You will be asked for the password you chose, then you are signed in.\n"
        )
    else:
        how = (
            f"Confirm it within 48 hours: {link(settings, '/signup/verify', token)}\n"
            f'(or send {{"token": "{token}"}} to POST {_base(settings)}/v1/signup/verify).\n'
            "Your first API key is shown once, when you confirm through the API; in the "
            "dashboard you create keys yourself.\n"
        )
    return Mail(
        to=to,
        subject=f"Confirm your {PRODUCT} account",
        body=(
            f"Someone (we hope you) signed up for {PRODUCT} with this address.\n\n"
            f"{how}\n"
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
            f"If it was you, log in here:\n{link(settings, '/login')}\n\n"
            f"Forgot your password? Ask for a new one here:\n{link(settings, '/password/forgot')}"
            "\n\nIf it was not you, you can ignore this mail.\n"
        ),
    )


def confirm_new_email(settings: Settings, to: str, token: str) -> Mail:
    return Mail(
        to=to,
        subject=f"Confirm your new {PRODUCT} address",
        body=(
            f"A {PRODUCT} account asked to use this address from now on.\n\n"
            f"Confirm within 24 hours: {link(settings, '/account/email/confirm', token)}\n"
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
            "If this was not you, revoke your API keys, contact us, and set a new password "
            f"here:\n{link(settings, '/password/forgot')}\n"
        ),
    )


def reset_password(settings: Settings, to: str, token: str) -> Mail:
    return Mail(
        to=to,
        subject=f"Set a new {PRODUCT} password",
        body=(
            f"Someone (we hope you) asked to set a new password for your {PRODUCT} account.\n\n"
            f"Choose it within 1 hour: {link(settings, '/password/reset', token)}\n"
            "Setting it signs out every other session of the account.\n\n"
            "If it was not you, ignore this mail: your password stays as it is.\n"
        ),
    )


def password_changed(settings: Settings, to: str) -> Mail:
    return Mail(
        to=to,
        subject=f"Your {PRODUCT} password was changed",
        body=(
            f"The password of your {PRODUCT} account was just changed, and every other "
            "session was signed out.\n\n"
            "If this was not you, contact us and set a new one here:\n"
            f"{link(settings, '/password/forgot')}\n"
        ),
    )
