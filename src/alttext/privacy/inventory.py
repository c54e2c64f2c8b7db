"""What the service stores, table by table and column by column, the result cache outside the
database, and the cookies it sets.

The /privacy page is rendered from this, and tests/privacy/test_policy.py checks it against
the real models in both directions: a new column without a description here fails the build,
and so does a description of a column that no longer exists. So the published list of stored
fields cannot drift from the database. The result cache's fields (``CACHE_FIELDS_DOC``) are
checked the same way against ``alttext.result_cache.CACHED_FIELDS`` (tests/test_result_cache.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alttext.accounts.logins import ACCOUNT_LIMIT, CLIENT_LIMIT, WINDOW
from alttext.accounts.sessions import IDLE_TIMEOUT, LIFETIME
from alttext.idempotency import KEEP_FOR as IDEMPOTENCY_KEEP
from alttext.privacy.retention import (
    DEFAULT_JOB_RETENTION_DAYS,
    EMAIL_TOKEN_KEEP,
    RESERVATION_KEEP,
    STRIPE_INBOX_KEEP,
    UNVERIFIED_SIGNUP_TTL,
)
from alttext.privacy.trial import TRIAL_MARK_KEEP

_WHILE_ACCOUNT = "While the account exists; deleted when it is erased."
_LAW = "for as long as commercial and tax law requires (up to 10 years)"


@dataclass(frozen=True)
class TableDoc:
    title: str
    purpose: str
    retention: str
    columns: Mapping[str, str]


@dataclass(frozen=True)
class StoreDoc:
    """Something kept outside the database (the result cache): what, where, how long."""

    name: str
    title: str
    purpose: str
    where: str
    retention: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class Cookie:
    name: str
    purpose: str
    lifetime: str


# Essential only: no analytics, advertising or third-party cookies. The API itself sets none;
# the dashboard sets these two (web/session.py), the second as soon as a page with a form opens.
COOKIES = (
    Cookie(
        "alttext_session",
        "Keeps you signed in to the dashboard: a random session identifier (we store only its "
        "hash), nothing else.",
        f"Until you log out, or {IDLE_TIMEOUT.days} days without use, or "
        f"{LIFETIME.days} days after you logged in.",
    ),
    Cookie(
        "alttext_csrf",
        "Protects the dashboard's forms (sign-up and log-in included) against cross-site "
        "request forgery: a random value that the forms' hidden field must match.",
        f"{LIFETIME.days} days; replaced when you log in.",
    ),
)


def _hours(seconds: float) -> int:
    return int(seconds // 3600)


def data_inventory(
    retention_days: int, job_retention_days: int = DEFAULT_JOB_RETENTION_DAYS
) -> dict[str, TableDoc]:
    """Every table and column the service stores, in the order the policy page shows them.

    ``retention_days`` and ``job_retention_days`` are the settings ``ALTTEXT_RETENTION_DAYS``
    and ``ALTTEXT_JOB_RETENTION_DAYS``.
    """
    job_kept = (
        f"{job_retention_days} days after the job finished (completed, failed or cancelled), "
        "then deleted with all its items; a job still queued, running or paused is kept while "
        "it is open. Deleted at once when the account is erased."
    )
    delivery_kept = (
        f"{job_retention_days} days after the message was delivered or given up on (a message "
        "still being retried is kept until then); deleted at once when the account is erased."
    )
    return {
        "accounts": TableDoc(
            "Accounts",
            "Who you are to us: to sign you in, bill you and honour your choices.",
            "While the account exists; an unconfirmed sign-up is deleted after "
            f"{_hours(UNVERIFIED_SIGNUP_TTL.total_seconds())} hours. On erasure the row is "
            "replaced by an anonymous identity (no address, no name) that holds only the "
            f"accounting records below, {_LAW}.",
            {
                "id": "Random account identifier.",
                "email": "Your e-mail address: sign-in, receipts, and notices about the account.",
                "name": "Your name, if you gave one (optional).",
                "status": "active, unverified (sign-up not confirmed), suspended or erased.",
                "restricted_at": "When you restricted processing (GDPR Art. 18), if you did.",
                "email_verified_at": "When you confirmed your address.",
                "product_email_opt_in": "Whether you want product e-mail (off unless you opt in).",
                "erased_at": "When the account was erased (anonymised accounting identity only).",
                "credits_balance": "Credits left (the sum of the credit ledger).",
                "rate_limit_per_minute": "A custom request limit, if one was agreed.",
                "history_opt_in": "Whether you opted into keeping alt text history (off by "
                "default).",
                "created_at": "When the account was created.",
                "stripe_customer_id": "Your customer id at Stripe, after your first purchase.",
                "password_hash": "A one-way Argon2id hash of your dashboard password, if you "
                "set one (the password itself is never stored).",
            },
        ),
        "api_keys": TableDoc(
            "API keys",
            "To authenticate your requests. The secret itself is never stored, only its hash.",
            "While the account exists; a revoked key's metadata stays until erasure.",
            {
                "id": "Random key identifier.",
                "account_id": "The account the key belongs to.",
                "name": "The label you gave the key.",
                "prefix": "The first characters of the key, so you can recognise it.",
                "key_hash": "A one-way hash of the secret, to check a presented key.",
                "created_at": "When the key was created.",
                "last_used_at": "When the key was last used.",
                "revoked_at": "When the key was revoked, if it was.",
            },
        ),
        "web_sessions": TableDoc(
            "Dashboard sessions",
            "To keep you signed in to the dashboard, and to sign you out everywhere at once.",
            f"Until you log out; at most {IDLE_TIMEOUT.days} days without use and "
            f"{LIFETIME.days} days in all; ended at once by a password change or reset and "
            "deleted with the account.",
            {
                "id": "Random session identifier (not the cookie's secret).",
                "account_id": "The account signed in.",
                "token_hash": "A one-way hash of the cookie's secret (the secret is not stored).",
                "created_at": "When you logged in.",
                "last_seen_at": "When the session was last used (to the hour).",
                "expires_at": "When it ends at the latest.",
            },
        ),
        "login_failures": TableDoc(
            "Failed logins",
            f"To stop password guessing: at most {ACCOUNT_LIMIT} failed logins per address and "
            f"{CLIENT_LIMIT} per client in {WINDOW.seconds // 60} minutes. Keyed hashes only: "
            "neither the address tried nor the IP address is stored.",
            f"{WINDOW.seconds // 60} minutes (removed by the next login attempt or the daily "
            "purge); a successful login removes its address's at once.",
            {
                "id": "Row number.",
                "subject": "A keyed hash (HMAC-SHA256) of the e-mail address tried or of the "
                "client's IP address.",
                "created_at": "When the attempt was made.",
            },
        ),
        "trial_marks": TableDoc(
            "Trial credits given",
            "So that the free trial credits go once to each e-mail address, even after an "
            "account is erased and the address signs up again. Only a keyed hash of the "
            "address (lower case, without +tags): it cannot be turned back into the address.",
            f"{TRIAL_MARK_KEEP.days // 365} years; it is not linked to any account, so it stays "
            "after an erasure.",
            {
                "email_hash": "A keyed hash (HMAC-SHA256) of the address's canonical form.",
                "created_at": "When the trial credits were given.",
            },
        ),
        "consents": TableDoc(
            "Consents",
            "Proof of what you agreed to and when: terms, privacy policy, 18+ confirmation, "
            "and your opt-ins.",
            _WHILE_ACCOUNT,
            {
                "id": "Random identifier.",
                "account_id": "The account that decided.",
                "kind": "terms, privacy, age_18, product_email or history.",
                "version": "The version of the terms or policy accepted.",
                "granted": "Whether it was given or withdrawn.",
                "source": "Where it was given: sign-up, API, dashboard or by us on request.",
                "created_at": "When.",
            },
        ),
        "email_tokens": TableDoc(
            "E-mail confirmation links",
            "One-time links that confirm a sign-up or a new address, or set a new password.",
            f"{EMAIL_TOKEN_KEEP.days} days after the link is used or expires.",
            {
                "id": "Random identifier.",
                "account_id": "The account the link is for.",
                "purpose": "verify_signup, change_email or reset_password.",
                "email": "The address the link was sent to.",
                "token_hash": "A one-way hash of the link's secret (the secret is not stored).",
                "created_at": "When it was sent.",
                "expires_at": "When it stops working.",
                "used_at": "When it was used.",
            },
        ),
        "usage_events": TableDoc(
            "Usage events",
            "One row per alt text request, for billing and your usage page. Never the image.",
            f"{retention_days} days, then added to anonymous monthly totals and deleted.",
            {
                "id": "The request id.",
                "account_id": "The account charged.",
                "key_id": "The API key used (dashboard for the dashboard's Try it page).",
                "created_at": "When.",
                "status": "succeeded or failed.",
                "error_code": "Why it failed, as a code.",
                "model": "The model that answered.",
                "input_tokens": "Tokens sent to the model.",
                "output_tokens": "Tokens the model returned.",
                "upstream_cost_usd": "What the model provider charged us.",
                "credits": "Credits charged (failures are free).",
                "latency_ms": "How long it took.",
                "image_format": "The image's format (jpeg, png, …).",
                "image_width": "The image's width in pixels.",
                "image_height": "The image's height in pixels.",
                "alt_text": "The alt text written, only if you opted into history.",
                "image_url": "The image's URL, only if you opted into history.",
            },
        ),
        "usage_rollups": TableDoc(
            "Anonymous monthly totals",
            "Usage statistics per month and model, for our own accounting and capacity "
            "planning. They name no account, key or person.",
            "Kept.",
            {
                "id": "Row number.",
                "month": "The month (UTC), YYYY-MM.",
                "model": "The model (empty when none answered).",
                "requests": "Number of requests.",
                "succeeded": "Number that succeeded.",
                "failed": "Number that failed.",
                "credits": "Credits charged in total.",
                "input_tokens": "Tokens sent to models in total.",
                "output_tokens": "Tokens returned in total.",
                "upstream_cost_usd": "What model providers charged in total.",
            },
        ),
        "credit_entries": TableDoc(
            "Credit ledger",
            "Every credit added or spent: purchases, grants, usage, refunds.",
            "While the account exists. On erasure, only purchases, refunds and adjustments "
            f"are kept, under the anonymous identity and without the receipt link, {_LAW}; "
            "the rest is deleted.",
            {
                "id": "Entry number.",
                "account_id": "The account.",
                "kind": "grant, purchase, usage, release, refund or adjustment.",
                "credits": "Credits added (+) or spent (−).",
                "reference": "What was booked (request id or Stripe payment id), once only.",
                "amount_usd": "The amount paid or refunded.",
                "note": "A note written by the service or an administrator.",
                "created_at": "When.",
                "receipt_url": "Stripe's receipt page for a purchase or refund.",
            },
        ),
        "credit_reservations": TableDoc(
            "Credit reservations",
            "A credit held while a request runs, so a crash can never lose or double-charge it.",
            f"{RESERVATION_KEEP.days} days after it is settled or released.",
            {
                "id": "The request id.",
                "account_id": "The account.",
                "credits": "Credits held.",
                "state": "held, settled or released.",
                "created_at": "When.",
                "expires_at": "When an unfinished hold is given back.",
            },
        ),
        "stripe_events": TableDoc(
            "Payment notifications",
            "Stripe's notifications about payments, so each is booked exactly once. Only the "
            "fields needed to book it: no card details, no billing address.",
            f"{STRIPE_INBOX_KEEP.days} days after processing; those that need a person's "
            "attention until resolved.",
            {
                "id": "Stripe's event id.",
                "type": "The kind of event (for example checkout.session.completed).",
                "state": "pending, processed, ignored or unmatched.",
                "account_id": "The account it concerns.",
                "payment_key": "Stripe's payment id.",
                "payload": "The fields needed to book it (ids, amounts, currency).",
                "detail": "What processing concluded.",
                "attempts": "How often processing was tried.",
                "livemode": "Real payment or test.",
                "stripe_created_at": "When Stripe created it.",
                "received_at": "When we received it.",
                "processed_at": "When we booked it.",
            },
        ),
        "idempotency_records": TableDoc(
            "Idempotency records",
            "When a request carries an Idempotency-Key, its response (including the alt "
            "text) so a retry gets the same answer and is never charged twice.",
            f"{_hours(IDEMPOTENCY_KEEP.total_seconds())} hours.",
            {
                "account_id": "The account.",
                "key": "The Idempotency-Key you sent.",
                "request_hash": "A one-way hash of the request's options and image, to recognise "
                "a retry (the image cannot be recovered from it).",
                "state": "in_progress or done.",
                "status_code": "The HTTP status of the response.",
                "response_body": "The response, to replay it.",
                "created_at": "When.",
                "locked_until": "How long the first request may still be running.",
                "expires_at": "When it is deleted.",
            },
        ),
        "jobs": TableDoc(
            "Bulk jobs",
            "A bulk job you started (POST /v1/jobs): the options shared by its images, or the "
            "page or sitemap to crawl for images, its progress and what it cost. Never the "
            "images: each is fetched when its item runs and dropped after it.",
            job_kept,
            {
                "id": "Random job identifier.",
                "account_id": "The account that started the job.",
                "key_id": "The API key that started it (for metering).",
                "status": "queued, running, paused (out of credits), completed, failed or "
                "cancelled.",
                "defaults": "The options you gave for every image of the job (context text, "
                "role, language, maximum length, keywords, …).",
                "overwrite": "Whether images that already have alt text get new alt text too.",
                "source_url": "The page or sitemap you asked us to crawl for images, if any.",
                "max_pages": "The most pages you allowed the crawl to visit.",
                "crawl_state": "pending, running, done or failed (crawling jobs only).",
                "crawl_lease_until": "Until when a worker holds the crawl (so another can take "
                "over if it stops).",
                "pages_crawled": "How many pages the crawl has visited.",
                "webhook_url": "The address you asked us to notify when the job changes state, "
                "if any.",
                "error": "Why the job failed, in words, if it did.",
                "total_items": "How many images the job has.",
                "credits_spent": "Credits the job has cost so far.",
                "created_at": "When the job was created.",
                "started_at": "When work on it began.",
                "finished_at": "When it completed, failed or was cancelled.",
            },
        ),
        "job_items": TableDoc(
            "Bulk job items and results",
            "One row per image of a bulk job: where the image is, the options and existing alt "
            "text that go with it, and the result, so that you can fetch the results "
            "(GET /v1/jobs/{id}/results) and a job survives a worker's restart.",
            job_kept,
            {
                "id": "Random item identifier.",
                "job_id": "The job the item belongs to.",
                "account_id": "The account that started the job.",
                "seq": "The item's position in the job (results come in this order).",
                "client_id": "Your own id for the image, if you gave one.",
                "image_url": "The image's URL (the image itself is not stored).",
                "page_url": "The page where the crawl found the image, for crawled jobs.",
                "options": "Options for this image over the job's (context text, role, "
                "language, …).",
                "existing_alt": "The alt text the image already had on the page, if any.",
                "status": "pending, running, succeeded, failed, skipped (existing alt text "
                "kept) or cancelled.",
                "attempts": "How often writing its alt text was tried.",
                "lease_until": "Until when a worker holds the item (so another can take over "
                "if it stops).",
                "request_id": "The id of the current or last attempt (as in usage events).",
                "alt_text": "The alt text written.",
                "decorative": "Whether the image was judged decorative.",
                "role": "The image's role (informative, decorative, functional, …).",
                "needs_review": "Whether a person should check the alt text.",
                "review_reasons": "Why it should be checked.",
                "problem": "Why the item failed, as an error document (code and message).",
                "model": "The model that answered.",
                "credits": "Credits the item cost (failures and skipped images are free).",
                "finished_at": "When the item finished.",
            },
        ),
        "webhook_signing": TableDoc(
            "Webhook signing",
            "Which version of your webhook signing secret is in use. The secret itself is not "
            "stored: it is derived from our own key, your account id and this version whenever "
            "a webhook is signed or you ask to see it. There is a row only once you have "
            "rotated the secret.",
            _WHILE_ACCOUNT,
            {
                "account_id": "The account.",
                "version": "The secret's version (rotating it moves to the next).",
                "rotated_at": "When you last rotated the secret (the previous one also signs "
                "for a short grace period).",
            },
        ),
        "webhook_messages": TableDoc(
            "Webhook messages",
            "Each notification to send to your webhook address about a job (completed, "
            "failed, cancelled, paused), kept so it can be retried until it is delivered.",
            delivery_kept,
            {
                "id": "Random message identifier (sent as the webhook-id header).",
                "account_id": "The account notified.",
                "job_id": "The job it is about (empty once the job is deleted).",
                "event": "job.completed, job.failed, job.cancelled or job.paused.",
                "url": "The webhook address it is sent to.",
                "payload": "The message body: the event and the job's summary as GET "
                "/v1/jobs/{id} shows it (status, counts, credits, times, the crawled page's "
                "address and the webhook address); never images, results or alt text.",
                "state": "pending (being retried), delivered or failed (retries given up).",
                "attempts": "How many delivery attempts were made.",
                "next_attempt_at": "When the next attempt is due.",
                "lease_until": "Until when a worker holds the message (so another can take "
                "over if it stops).",
                "created_at": "When the message was created.",
                "finished_at": "When it was delivered or given up on.",
            },
        ),
        "webhook_attempts": TableDoc(
            "Webhook delivery attempts",
            "Each attempt to deliver a webhook message and how it went, so that you (GET "
            "/v1/webhooks/deliveries) and we can see why a notification did or did not arrive. "
            "Never the body sent or received.",
            delivery_kept,
            {
                "id": "Random attempt identifier.",
                "message_id": "The message delivered.",
                "account_id": "The account notified.",
                "event": "The message's event.",
                "url": "The webhook address tried.",
                "attempt": "Which attempt this was (1, 2, …).",
                "outcome": "delivered, http_error, timeout, network_error, or refused (the "
                "address is not a public one).",
                "status_code": "The HTTP status your server answered, if it answered.",
                "latency_ms": "How long the attempt took.",
                "attempted_at": "When.",
            },
        ),
        "audit_events": TableDoc(
            "Audit trail",
            "Which privacy right was exercised or which account change happened, when and by "
            "whom (you, an administrator, or the system, e.g. an expired sign-up after "
            f"{_hours(UNVERIFIED_SIGNUP_TTL.total_seconds())} hours). Ids and field names only, "
            "never content.",
            "3 years: the proof that each request was honoured (kept under an anonymous id "
            "after erasure).",
            {
                "id": "Random identifier.",
                "account_id": "The account (an anonymous id after erasure).",
                "actor": "account, admin or system.",
                "action": "What happened (for example export, erase, restrict).",
                "detail": "Ids, counts and field names; never content.",
                "created_at": "When.",
            },
        ),
    }


# What one cached result holds: exactly result_cache.CACHED_FIELDS, plus the key it is kept under
# (tests/test_result_cache.py checks both ways).
CACHE_FIELDS_DOC = {
    "key": "A one-way hash (SHA-256) of the prepared image's hash, the options that shape the "
    "answer (role, context, link target, languages, maximum length, keywords, long "
    "description), the model asked for and the prompt version, stored under your account "
    "id. The image cannot be recovered from it.",
    "alt_text": "The alt text written, in the first language.",
    "alt_texts": "The alt text in every language asked for.",
    "decorative": "Whether the image was judged decorative.",
    "role": "The image's role (informative, decorative, functional, …).",
    "language": "The first language.",
    "long_description": "The long description, if one was written.",
    "text_in_image": "The text read in the image, if any.",
    "needs_review": "Whether a person should check the alt text.",
    "review_reasons": "Why it should be checked.",
    "model": "The model that answered.",
    "image": "The image's format and size in pixels, as received and as sent to the model.",
    "cache_key": "The same one-way hash of the prepared image's hash and the options, as the "
    "engine reports it.",
}


def result_cache_inventory(cache_ttl_s: float, *, redis: bool) -> StoreDoc:
    """The result cache (alttext.result_cache), for ``ALTTEXT_CACHE_TTL_S`` and the backend."""
    if cache_ttl_s <= 0:
        kept = "Nothing: the result cache is turned off on this deployment."
    else:
        hours = cache_ttl_s / 3600
        span = f"{hours:g} hours" if hours >= 1 else f"{cache_ttl_s:g} seconds"
        kept = (
            f"{span} after the alt text was written, then it expires; an answer given from "
            "the cache does not extend it. Deleted at once when the account is erased."
        )
    where = (
        "In Redis, shared by this service's processes, under keys that start with your "
        "account id; never in the database."
        if redis
        else "In the memory of the server process that wrote it (gone when it restarts); "
        "never in the database or on disk."
    )
    return StoreDoc(
        "result_cache",
        "Result cache",
        "So that the same image sent again with the same options, by the same account, is "
        "answered at once and free, without asking a model again. Kept per account: one "
        "account's results are never given to another. It holds the alt text we wrote, never "
        "the image.",
        where,
        kept,
        CACHE_FIELDS_DOC,
    )


__all__ = [
    "COOKIES",
    "Cookie",
    "StoreDoc",
    "TableDoc",
    "data_inventory",
    "result_cache_inventory",
]
