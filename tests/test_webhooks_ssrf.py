"""Webhooks are never a door into the shop's network: with production's settings (an empty
WEBHOOK_ALLOWED_NETWORKS) a URL that reaches loopback, private, link-local or metadata
addresses is refused before any connection, at registration and, the real guard, at delivery.

Host names are resolved by a stub here (the one thing that would otherwise need the
internet); every connection a test makes is checked to stay on 127.0.0.1.
"""

import ipaddress
import socket
import ssl

import pytest
from django.utils import timezone

from tests.orders_helpers import customer_new, order_new, variant_stocked
from tests.webhooks_helpers import ConnectionGuard, Receiver, certificate_files, endpoint_for
from webhooks.forms import WebhookEndpointForm
from webhooks.models import DeliveryState, WebhookDelivery
from webhooks.network import Refused, address_denied, url_target
from webhooks.services import EndpointInvalid

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.215.14"  # never connected to: every test refuses it or stubs it away


@pytest.fixture(autouse=True)
def guard(monkeypatch) -> ConnectionGuard:
    return ConnectionGuard(monkeypatch)


@pytest.fixture
def production_networks(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []


@pytest.fixture
def names(monkeypatch) -> dict[str, list[str]]:
    """Host names the test makes resolve to the addresses it lists (calls are counted under
    `looked_up`); every other name resolves as usual."""
    answers: dict[str, list[str]] = {"looked_up": []}
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host in answers:
            answers["looked_up"].append(host)
            addresses = answers[host]
            if not addresses:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            if len(addresses) > 1 and host.startswith("rebinding."):
                addresses = [addresses.pop(0)]  # a different answer on each look-up
            return [
                (
                    socket.AF_INET6 if ":" in address else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (address, port),
                )
                for address in addresses
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return answers


def _delivered(endpoint_url: str, capture) -> WebhookDelivery:
    """An endpoint registered while its URL was acceptable, then an order: one attempt."""
    endpoint_for(endpoint_url, "order.placed")
    variant_stocked("SSRF-1", on_hand=5)
    with capture(execute=True):
        order_new(customer_new(), ("SSRF-1", 1))
    return WebhookDelivery.objects.get()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::",
        "::ffff:0:a00:1",  # IPv4-translated 10.0.0.1
    ],
)
def test_internal_addresses_are_denied(address):
    assert address_denied(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_not(address):
    assert address_denied(ipaddress.ip_address(address)) is False


def test_a_loopback_url_is_refused_at_delivery_without_a_connection(
    production_networks, settings, django_capture_on_commit_callbacks, guard
):
    # given: a server listening on loopback, and an endpoint registered while loopback was
    # allowed (as a demo would)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    endpoint_for(f"http://127.0.0.1:{port}/hooks", "order.placed")
    settings.WEBHOOK_ALLOWED_NETWORKS = []

    # when: an event is delivered under production's settings
    variant_stocked("SSRF-1", on_hand=5)
    with django_capture_on_commit_callbacks(execute=True):
        order_new(customer_new(), ("SSRF-1", 1))

    # then: refused, recorded, retried later; the listener saw no connection
    delivery = WebhookDelivery.objects.get()
    [attempt] = delivery.attempt_log.all()
    assert attempt.error.startswith("refused: 127.0.0.1 resolves to 127.0.0.1, in a network")
    assert (delivery.state, attempt.status_code) == (DeliveryState.PENDING, None)
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()
    assert guard.attempts_to(port) == []


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://169.254.169.254/latest/meta-data/", None),
        ("https://metadata.internal.example/", "169.254.169.254"),
        ("https://intranet.example.com/hooks", "10.0.0.5"),
        ("https://sneaky.example.com/hooks", "::ffff:192.168.0.10"),
    ],
)
def test_metadata_and_private_addresses_are_refused_before_any_connection(
    production_networks, names, guard, url, address, django_capture_on_commit_callbacks, settings
):
    # given: the endpoint slipped past registration (its name resolved elsewhere then)
    host = url.split("/")[2]
    if address:
        names[host] = [PUBLIC]
    settings.WEBHOOK_ALLOWED_NETWORKS = ["169.254.169.254/32"]
    endpoint_for(url, "order.placed")
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    if address:
        names[host] = [address]

    # when
    variant_stocked("SSRF-2", on_hand=5)
    with django_capture_on_commit_callbacks(execute=True):
        order_new(customer_new(), ("SSRF-2", 1))

    # then: refused and recorded; no connection of any kind was attempted
    [attempt] = WebhookDelivery.objects.get().attempt_log.all()
    assert attempt.error.startswith("refused: ")
    assert guard.attempts == []


def test_one_private_address_among_public_ones_refuses_the_host(production_networks, names):
    # given: a name that answers with a public and a private address
    names["mixed.example.com"] = [PUBLIC, "192.168.1.20"]

    # when / then: every address is checked, not only the first
    with pytest.raises(Refused, match=r"resolves to 192\.168\.1\.20"):
        url_target("https://mixed.example.com/hooks")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8000/hooks", "127.0.0.1 resolves to 127.0.0.1, in a network"),
        ("https://169.254.169.254/", "resolves to 169.254.169.254, in a network"),
        ("https://intranet.example.com/", "resolves to 10.0.0.5, in a network"),
        ("http://public.example.com/", "the URL must use https"),
        ("ftp://public.example.com/", "the URL must be https://host/"),
        ("https://user:pass@public.example.com/", "credentials in the URL are not supported"),
        ("https://nowhere.invalid/", "nowhere.invalid does not resolve"),
    ],
)
def test_registration_refuses_urls_that_could_not_be_delivered(
    production_networks, names, url, message
):
    # given
    names["intranet.example.com"] = ["10.0.0.5"]
    names["public.example.com"] = [PUBLIC]
    names["nowhere.invalid"] = []

    # when
    form = WebhookEndpointForm(
        data={"url": url, "events": ["order.placed"], "description": "", "active": "on"}
    )

    # then
    assert not form.is_valid()
    assert message in " ".join(form.errors["url"])
    with pytest.raises(EndpointInvalid):
        endpoint_for(url, "order.placed")


def test_a_public_https_url_is_accepted_at_registration_without_connecting(
    production_networks, names, guard
):
    # given
    names["erp.example.com"] = [PUBLIC]

    # when
    endpoint, secret = endpoint_for("https://erp.example.com/hooks", "order.placed")

    # then
    assert (endpoint.url, secret.startswith("whsec_")) == ("https://erp.example.com/hooks", True)
    assert guard.attempts == []


def test_the_name_is_resolved_once_and_the_vetted_address_is_the_one_connected(
    settings, names, django_capture_on_commit_callbacks
):
    # given: a name whose next answer would be a private address (DNS rebinding), and the
    # receiver on loopback, allowed for this test only
    receiver = Receiver().start()
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    names["rebinding.example.com"] = ["127.0.0.1", "10.0.0.1"]
    endpoint_for(f"http://rebinding.example.com:{receiver.port}/hooks", "order.placed")
    names["rebinding.example.com"] = ["127.0.0.1", "10.0.0.1"]
    names["looked_up"].clear()

    # when
    variant_stocked("DNS-1", on_hand=5)
    with django_capture_on_commit_callbacks(execute=True):
        order_new(customer_new(), ("DNS-1", 1))
    receiver.stop()

    # then: one look-up; the request reached the vetted address, naming the host it asked for
    assert names["looked_up"] == ["rebinding.example.com"]
    [request] = receiver.requests
    assert request.headers["Host"] == f"rebinding.example.com:{receiver.port}"
    assert WebhookDelivery.objects.get().state == DeliveryState.SUCCEEDED


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch, settings, names):
    """An HTTPS receiver on 127.0.0.1 whose certificate names hooks.example.com, signed by a
    test CA this process trusts; the name resolves to 127.0.0.1."""
    try:
        ca, cert, key = certificate_files(tmp_path, host="hooks.example.com")
    except FileNotFoundError:
        pytest.skip("needs the openssl command to make a test certificate")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    names["hooks.example.com"] = ["127.0.0.1"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    receiver = Receiver().start(tls=context)
    yield receiver
    receiver.stop()


@pytest.mark.parametrize(("host", "succeeded"), [("hooks.example.com", True), ("127.0.0.1", False)])
def test_tls_is_checked_against_the_host_name_while_connecting_to_the_vetted_address(
    tls_receiver, django_capture_on_commit_callbacks, host, succeeded
):
    # given: the same server, named as its certificate says, or by its address
    endpoint_for(tls_receiver.url(host, scheme="https"), "order.placed")

    # when
    variant_stocked("TLS-1", on_hand=5)
    with django_capture_on_commit_callbacks(execute=True):
        order_new(customer_new(), ("TLS-1", 1))

    # then: by name the certificate verifies (SNI and host name); by address it does not
    delivery = WebhookDelivery.objects.get()
    [attempt] = delivery.attempt_log.all()
    if succeeded:
        assert (attempt.status_code, delivery.state) == (200, "succeeded")
        assert tls_receiver.requests[0].headers["Host"] == f"hooks.example.com:{tls_receiver.port}"
    else:
        assert attempt.error.startswith("SSLCertVerificationError: ")
        assert "IP address mismatch" in attempt.error
        assert tls_receiver.requests == []
    assert delivery.created_at <= timezone.now()
