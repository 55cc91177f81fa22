"""The client's address behind the shop's proxies: what throttles count, and what no client
can choose for itself."""

import json
import re

import pytest
import yaml
from django.core.cache import cache
from django.test import RequestFactory

from conftest import PROJECT_DIR
from core import throttle
from core.client_address import client_address
from tests.storefront_helpers import FAST_HASHERS

pytestmark = pytest.mark.django_db

NGINX = "10.231.64.5"  # an address in the compose network, as docker-compose.yml fixes it
COMPOSE_NETWORK = "10.231.64.0/24"
LOAD_BALANCER = "198.51.100.7"


@pytest.fixture(autouse=True)
def behind_the_compose_proxy(settings):
    settings.TRUSTED_PROXY_NETWORKS = [COMPOSE_NETWORK]
    settings.PASSWORD_HASHERS = FAST_HASHERS
    cache.clear()


def address_of(*, peer: str, forwarded: str | None = None) -> str:
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=peer, headers=headers))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # nginx appended the address of its peer, the client
        (NGINX, "203.0.113.9", "203.0.113.9"),
        # ...after whatever the client wrote itself, which is never read
        (NGINX, "127.0.0.1, 10.231.64.77, 203.0.113.9", "203.0.113.9"),
        # a trusted hop in front of nginx is skipped like nginx
        (NGINX, "203.0.113.9, 10.231.64.1", "203.0.113.9"),
        # some proxies write the port, IPv6 in brackets
        (NGINX, "203.0.113.9:51234", "203.0.113.9"),
        (NGINX, "[2001:db8::9]:51234", "2001:db8::9"),
        # nothing forwarded, or garbage where nginx writes: the nearest trusted address
        (NGINX, None, NGINX),
        (NGINX, "unknown", NGINX),
        (NGINX, "203.0.113.9, not-an-address, 10.231.64.1", "10.231.64.1"),
        # a peer outside the trusted networks is the client, whatever it claims to forward
        ("203.0.113.50", "198.51.100.1", "203.0.113.50"),
        # one client, one identity, over IPv4 or IPv6
        ("::ffff:203.0.113.50", None, "203.0.113.50"),
    ],
)
def test_the_client_is_the_first_untrusted_address_from_the_right(peer, forwarded, client):
    assert address_of(peer=peer, forwarded=forwarded) == client


def test_without_trusted_proxies_every_peer_is_its_own_client(settings):
    # given
    settings.TRUSTED_PROXY_NETWORKS = []

    # then
    assert address_of(peer=NGINX, forwarded="203.0.113.9") == NGINX


def test_a_load_balancer_in_front_of_nginx_is_trusted_once_named(settings):
    # given
    forwarded = "192.0.2.1, 203.0.113.9, " + LOAD_BALANCER
    assert address_of(peer=NGINX, forwarded=forwarded) == LOAD_BALANCER

    # when
    settings.TRUSTED_PROXY_NETWORKS = [COMPOSE_NETWORK, LOAD_BALANCER]

    # then
    assert address_of(peer=NGINX, forwarded=forwarded) == "203.0.113.9"


def log_in(client, *, email: str, forwarded: str, peer: str = NGINX):
    return client.post(
        "/api/v1/auth/token",
        data=json.dumps({"email": email, "password": "wrong"}),
        content_type="application/json",
        headers={"X-Forwarded-For": forwarded},
        REMOTE_ADDR=peer,
    )


def test_clients_behind_the_proxy_are_throttled_each_on_their_own(client):
    # given one client behind nginx used its whole budget
    for index in range(throttle.LOGIN_PER_IP.requests):
        log_in(client, email=f"u{index}@example.com", forwarded="203.0.113.9")
    assert log_in(client, email="late@example.com", forwarded="203.0.113.9").status_code == 429

    # when another client comes through the same nginx
    response = log_in(client, email="other@example.com", forwarded="198.51.100.20")

    # then
    assert response.status_code == 401


def test_a_forged_x_forwarded_for_from_an_untrusted_peer_buys_no_attempts(client):
    # given a script that connects directly and names a fresh address every time
    for index in range(throttle.LOGIN_PER_IP.requests):
        log_in(
            client, email=f"u{index}@example.com", forwarded=f"192.0.2.{index}", peer="203.0.113.66"
        )

    # when
    response = log_in(
        client, email="late@example.com", forwarded="192.0.2.200", peer="203.0.113.66"
    )

    # then
    assert response.status_code == 429


def test_a_forged_x_forwarded_for_through_the_proxy_buys_no_attempts(client):
    # given a script behind nginx writing a fresh address before the one nginx appends
    for index in range(throttle.LOGIN_PER_IP.requests):
        log_in(client, email=f"u{index}@example.com", forwarded=f"192.0.2.{index}, 203.0.113.66")

    # when
    response = log_in(client, email="late@example.com", forwarded="192.0.2.200, 203.0.113.66")

    # then
    assert response.status_code == 429


def test_the_compose_stack_nginx_and_the_example_agree_on_the_trusted_proxies():
    # given
    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
    nginx = (PROJECT_DIR / "deploy" / "nginx.conf").read_text()
    example = (PROJECT_DIR / ".env.example").read_text()
    operations = (PROJECT_DIR / "docs" / "operations.md").read_text()

    # then: the app trusts exactly the network the stack runs in, which nginx is part of...
    (subnet,) = [entry["subnet"] for entry in compose["networks"]["default"]["ipam"]["config"]]
    trusted = compose["x-app"]["environment"]["TRUSTED_PROXY_NETWORKS"]
    assert trusted == f"${{TRUSTED_PROXY_NETWORKS:-{subnet}}}"
    assert re.search(rf"^TRUSTED_PROXY_NETWORKS={re.escape(subnet)}$", example, re.M)
    assert subnet in operations
    # ...and nginx appends the address of its own peer for the app to read from the right
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in nginx
    assert "proxy" in compose["services"] and "ports" not in compose["services"]["web"]
