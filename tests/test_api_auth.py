"""POST /auth/register, POST /auth/token, DELETE /auth/token: tokens, throttling, problems."""

import json
import logging
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from core import throttle
from orders.models import Customer
from orders.selectors import users_with_email
from storefront.models import ApiToken
from tests.storefront_helpers import CACHE_DOWN, FAST_HASHERS, client_for, user_with_token

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def empty_cache(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS
    cache.clear()


def post(client: Client, path: str, body: dict, **extra):
    return client.post(path, data=json.dumps(body), content_type="application/json", **extra)


def test_register_creates_a_customer_and_answers_a_working_token(client):
    # when
    response = post(
        client, "/api/v1/auth/register", {"email": " Ada@Example.com ", "password": GOOD_PASSWORD}
    )

    # then
    assert response.status_code == 201
    body = response.json()
    user = get_user_model().objects.get()
    customer = Customer.objects.get(user=user)
    assert body["customer"] == {"id": customer.pk, "email": "ada@example.com"}
    assert user.username == "ada@example.com"
    assert user.check_password(GOOD_PASSWORD)
    assert client_for(body["token"]).get("/api/v1/orders").status_code == 200


def test_tokens_are_stored_only_as_their_sha256(client):
    # when
    response = post(
        client, "/api/v1/auth/register", {"email": "ada@example.com", "password": GOOD_PASSWORD}
    )

    # then
    token = response.json()["token"]
    stored = ApiToken.objects.get()
    assert stored.key_hash == ApiToken.hash_of(token)
    assert token not in stored.key_hash
    assert stored.expires_at > timezone.now() + timedelta(days=29)


def test_register_with_a_taken_email_answers_409_email_taken(client):
    # given
    user_with_token(email="ada@example.com")

    # when
    response = post(
        client, "/api/v1/auth/register", {"email": "ADA@example.com", "password": GOOD_PASSWORD}
    )

    # then
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "email_taken"
    assert get_user_model().objects.count() == 1


def test_register_with_a_staff_members_email_answers_409_and_staff_still_log_in(client):
    # given
    get_user_model().objects.create_user(
        username="alice", email="alice@shop.example", password=GOOD_PASSWORD, is_staff=True
    )

    # when
    registered = post(
        client,
        "/api/v1/auth/register",
        {"email": "Alice@Shop.example", "password": "someone else 456!"},
    )
    login = post(
        client, "/api/v1/auth/token", {"email": "alice@shop.example", "password": GOOD_PASSWORD}
    )

    # then
    assert registered.status_code == 409
    assert registered.json()["code"] == "email_taken"
    assert get_user_model().objects.count() == 1
    assert login.status_code == 200


def test_login_finds_the_account_whose_password_matches_when_two_share_an_email(client):
    # given: a customer and a staff member with one e-mail, as left by an older release
    user_model = get_user_model()
    user_model.objects.create_user(
        username="ada@example.com", email="ada@example.com", password="customer pass 123!"
    )
    staff = user_model.objects.create_user(
        username="ada", email="ada@example.com", password=GOOD_PASSWORD, is_staff=True
    )

    # when
    response = post(
        client, "/api/v1/auth/token", {"email": "ada@example.com", "password": GOOD_PASSWORD}
    )

    # then
    assert response.status_code == 200
    token = ApiToken.objects.get(key_hash=ApiToken.hash_of(response.json()["token"]))
    assert token.user_id == staff.pk


def test_register_lists_every_password_and_email_problem(client):
    # when
    response = post(client, "/api/v1/auth/register", {"email": "not-an-email", "password": "123"})

    # then
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    fields = [error["field"] for error in body["errors"]]
    assert fields.count("email") == 1
    assert fields.count("password") == 3  # too short, too common, entirely numeric
    assert get_user_model().objects.count() == 0


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("quiet-otter-77@shop.example", "quiet-otter-77"),
        ("zebra-1234@example.com", "Zebra-1234"),
    ],
)
def test_register_refuses_a_password_like_the_emails_local_part(client, email, password):
    # when
    response = post(client, "/api/v1/auth/register", {"email": email, "password": password})

    # then
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "password", "message": "The password is too similar to the e-mail address."}
    ]
    assert get_user_model().objects.count() == 0


def test_register_takes_a_password_unlike_the_email(client):
    # when
    response = post(
        client,
        "/api/v1/auth/register",
        {"email": "quiet-otter-77@shop.example", "password": GOOD_PASSWORD},
    )

    # then
    assert response.status_code == 201


def test_register_with_an_email_too_long_once_lower_cased_answers_422_naming_it(client):
    # given: 'İ' (U+0130) lower-cases to two characters, so 129 characters become 249
    email = "a@" + ".".join(["\u0130" * 30] * 4) + ".com"
    assert len(email) <= 150 < len(email.lower())

    # when
    response = post(client, "/api/v1/auth/register", {"email": email, "password": GOOD_PASSWORD})

    # then
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert [error["field"] for error in body["errors"]] == ["email"]
    assert get_user_model().objects.count() == 0


def test_register_without_password_lists_the_missing_field(client):
    # when
    response = post(client, "/api/v1/auth/register", {"email": "ada@example.com"})

    # then
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "password", "message": "Field required"}]


def test_login_answers_a_new_token(client):
    # given
    user_with_token(email="ada@example.com")

    # when
    response = post(
        client, "/api/v1/auth/token", {"email": "Ada@Example.com", "password": GOOD_PASSWORD}
    )

    # then
    assert response.status_code == 200
    assert set(response.json()) == {"token"}
    assert ApiToken.objects.count() == 2


def test_token_answers_forbid_every_cache_to_store_them(client):
    # when
    registered = post(
        client, "/api/v1/auth/register", {"email": "ada@example.com", "password": GOOD_PASSWORD}
    )
    logged_in = post(
        client, "/api/v1/auth/token", {"email": "ada@example.com", "password": GOOD_PASSWORD}
    )

    # then
    assert (registered.status_code, logged_in.status_code) == (201, 200)
    assert registered["Cache-Control"] == logged_in["Cache-Control"] == "no-store"


def test_login_with_a_wrong_password_answers_401_and_issues_nothing(client):
    # given
    user_with_token(email="ada@example.com")

    # when
    response = post(client, "/api/v1/auth/token", {"email": "ada@example.com", "password": "x"})

    # then
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert ApiToken.objects.count() == 1


def test_staff_log_in_by_email_even_when_their_username_differs(client):
    # given
    get_user_model().objects.create_user(
        username="warehouse", email="ops@example.com", password=GOOD_PASSWORD, is_staff=True
    )

    # when
    response = post(
        client, "/api/v1/auth/token", {"email": "ops@example.com", "password": GOOD_PASSWORD}
    )

    # then
    assert response.status_code == 200


def test_revoked_token_answers_401(client):
    # given
    _, token = user_with_token()
    authed = client_for(token)

    # when
    revoked = authed.delete("/api/v1/auth/token")

    # then
    assert revoked.status_code == 204
    after = authed.get("/api/v1/orders")
    assert after.status_code == 401
    assert after["WWW-Authenticate"] == "Bearer"
    assert after.json()["code"] == "not_authenticated"


def test_expired_token_answers_401():
    # given
    _, token = user_with_token()
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    # when
    response = client_for(token).get("/api/v1/orders")

    # then
    assert response.status_code == 401


def test_token_of_a_deactivated_user_answers_401():
    # given
    user, token = user_with_token()
    user.is_active = False
    user.save(update_fields=["is_active"])

    # when
    response = client_for(token).get("/api/v1/orders")

    # then
    assert response.status_code == 401


def test_delete_token_without_a_token_answers_401(client):
    assert client.delete("/api/v1/auth/token").status_code == 401


def test_login_attempts_beyond_the_per_email_limit_answer_429_with_retry_after(client):
    # given
    user_with_token(email="ada@example.com")
    credentials = {"email": "ada@example.com", "password": "wrong"}
    for _ in range(throttle.LOGIN_PER_EMAIL.requests):
        assert post(client, "/api/v1/auth/token", credentials).status_code == 401

    # when
    response = post(client, "/api/v1/auth/token", {**credentials, "password": GOOD_PASSWORD})

    # then
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= throttle.LOGIN_PER_EMAIL.window_seconds
    assert ApiToken.objects.count() == 1


@pytest.mark.postgres
def test_an_account_typed_in_letters_the_database_folds_alike_shares_its_budget(client):
    # given: the per-e-mail budget of iris@example.com spent on wrong passwords, each from an
    # address of its own
    user_with_token(email="iris@example.com")
    for index in range(throttle.LOGIN_PER_EMAIL.requests):
        wrong = {"email": "iris@example.com", "password": "wrong"}
        assert (
            post(client, "/api/v1/auth/token", wrong, REMOTE_ADDR=f"10.1.0.{index}").status_code
            == 401
        )

    # when: the account is reached through a dotless i and a long s, which PostgreSQL's
    # case-insensitive match folds into i and s, while Python's lower() keeps them
    answers = [
        post(
            client,
            "/api/v1/auth/token",
            {"email": email, "password": GOOD_PASSWORD},
            REMOTE_ADDR="10.2.0.1",
        )
        for email in ("\u0131ris@example.com", "iri\u017f@example.com")
    ]

    # then: the account's budget is spent, however it is spelt
    assert [answer.status_code for answer in answers] == [429, 429]
    assert ApiToken.objects.count() == 1


def test_a_staff_members_username_and_e_mail_share_one_budget(client):
    # given: a staff member whose username is not their e-mail, whose budget was spent by e-mail
    get_user_model().objects.create_user(
        username="warehouse", email="ops@example.com", password=GOOD_PASSWORD, is_staff=True
    )
    for index in range(throttle.LOGIN_PER_EMAIL.requests):
        wrong = {"email": "ops@example.com", "password": "wrong"}
        assert (
            post(client, "/api/v1/auth/token", wrong, REMOTE_ADDR=f"10.3.0.{index}").status_code
            == 401
        )

    # when: the username is tried with the right password, through the API and the admin
    api = post(
        client,
        "/api/v1/auth/token",
        {"email": "warehouse", "password": GOOD_PASSWORD},
        REMOTE_ADDR="10.4.0.1",
    )
    admin = client.post(
        "/admin/login/?next=/admin/",
        {"username": "warehouse", "password": GOOD_PASSWORD},
        REMOTE_ADDR="10.4.0.2",
    )

    # then: both are refused until the window ends
    assert api.status_code == 429
    assert "Too many log-in attempts" in admin.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_attempts_astride_a_round_clock_time_count_in_one_window(client, monkeypatch):
    # given: a guesser who spends the budget just before a multiple of the window's length
    user_with_token(email="ada@example.com")
    window = throttle.LOGIN_PER_EMAIL.window_seconds
    clock = [1_800_000_000 // window * window + window - 2]
    monkeypatch.setattr(throttle.time, "time", lambda: clock[0])
    credentials = {"email": "ada@example.com", "password": "wrong"}
    for _ in range(throttle.LOGIN_PER_EMAIL.requests):
        assert post(client, "/api/v1/auth/token", credentials).status_code == 401

    # when: the right password comes a few seconds later, past that round time
    clock[0] += 5
    response = post(client, "/api/v1/auth/token", {**credentials, "password": GOOD_PASSWORD})

    # then: still the first window, which ends a window's length after the first attempt
    assert response.status_code == 429
    assert int(response["Retry-After"]) == window - 5
    assert ApiToken.objects.count() == 1


def test_login_attempts_beyond_the_per_ip_limit_answer_429_whatever_the_email(client):
    # given
    for index in range(throttle.LOGIN_PER_IP.requests):
        post(client, "/api/v1/auth/token", {"email": f"u{index}@example.com", "password": "x"})

    # when
    response = post(client, "/api/v1/auth/token", {"email": "new@example.com", "password": "x"})

    # then
    assert response.status_code == 429
    assert "Retry-After" in response


def test_registrations_beyond_the_per_ip_limit_answer_429(client):
    # given
    for index in range(throttle.REGISTER_PER_IP.requests):
        post(client, "/api/v1/auth/register", {"email": f"u{index}@example.com", "password": "1"})

    # when
    response = post(
        client, "/api/v1/auth/register", {"email": "late@example.com", "password": GOOD_PASSWORD}
    )

    # then
    assert response.status_code == 429
    assert not get_user_model().objects.filter(username="late@example.com").exists()


def test_another_ip_is_not_throttled_by_the_first_ones_attempts(client):
    # given
    for index in range(throttle.LOGIN_PER_IP.requests + 1):
        post(client, "/api/v1/auth/token", {"email": f"u{index}@example.com", "password": "x"})

    # when
    response = post(
        client,
        "/api/v1/auth/token",
        {"email": "other@example.com", "password": "x"},
        REMOTE_ADDR="10.0.0.9",
    )

    # then
    assert response.status_code == 401


def test_login_still_works_with_the_cache_down(client, monkeypatch, caplog):
    # given
    user_with_token(email="ada@example.com")
    monkeypatch.setattr(throttle, "_outage", False)

    # when
    with override_settings(CACHES=CACHE_DOWN), caplog.at_level(logging.WARNING):
        statuses = [
            post(
                client,
                "/api/v1/auth/token",
                {"email": "ada@example.com", "password": GOOD_PASSWORD},
            ).status_code
            for _ in range(throttle.LOGIN_PER_EMAIL.requests + 1)
        ]

    # then: every attempt let through, the outage logged once, not once per attempt
    assert statuses == [200] * (throttle.LOGIN_PER_EMAIL.requests + 1)
    outage = [r.getMessage() for r in caplog.records if r.name == "stockwire.throttle"]
    assert len(outage) == 1
    assert outage[0].startswith("throttle cache unavailable, attempts are not limited")


def test_login_attempts_count_per_account_however_the_email_is_typed(client):
    # given: the limit's worth of guesses at one account, its e-mail typed another way each time
    user_with_token(email="ada@example.com")
    typings = ["ADA@example.com", " ada@Example.com", "Ada@EXAMPLE.COM "]
    for index in range(throttle.LOGIN_PER_EMAIL.requests):
        email = typings[index % len(typings)]
        post(client, "/api/v1/auth/token", {"email": email, "password": "x"})

    # when: the right password, from another address
    response = post(
        client,
        "/api/v1/auth/token",
        {"email": "ada@example.com", "password": GOOD_PASSWORD},
        REMOTE_ADDR="10.0.0.10",
    )

    # then
    assert response.status_code == 429
    assert ApiToken.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_finds_a_user_by_email_in_either_case_through_indexes():
    # given a planner that would rather not scan (the test table is tiny)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")

    # when
    plan = users_with_email(email="ada@example.com").explain()

    # then: log-in and registration read two index entries, not every user
    assert "storefront_auth_user_upper_username" in plan
    assert "storefront_auth_user_upper_email" in plan
