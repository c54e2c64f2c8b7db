"""Status messages shown after a redirect (``?status=<code>``): fixed texts only, so a link
cannot put words of its own on our pages."""

from __future__ import annotations

from starlette.requests import Request

MESSAGES = {
    "welcome": "Your address is confirmed and you are logged in. Welcome!",
    "logged_out": "You are logged out.",
    "logged_in": "You are logged in.",
    "password_set": "Your new password is set. Every other session was logged out.",
    "key_revoked": "The key was revoked. Requests with it are refused from now on.",
    "saved": "Saved.",
    "email_pending": "Almost done: we sent a link to the new address. Your address changes "
    "once you open it.",
    "email_changed": "Your e-mail address is changed.",
    "restricted": "Processing is restricted: no alt text is generated for this account until "
    "you lift the restriction.",
    "lifted": "The restriction is lifted: you can generate alt text again.",
    "job_started": "Your job has started. It is at the top of the table below; reload the page "
    "to follow its progress.",
    "job_cancelled": "The job is cancelled: no new image starts. Images already being described "
    "finish, and are charged only if they succeed.",
    "secret_rotated": "The signing secret is rotated. For the next 24 hours deliveries are signed "
    "with both the new and the previous secret: reveal the new one below and update your "
    "receiver.",
    "erased": "Your account is deleted. Only the accounting records the law requires are kept, "
    "without your name or address.",
}


def status_message(request: Request) -> str | None:
    code = request.query_params.get("status")
    return MESSAGES.get(code) if code else None
