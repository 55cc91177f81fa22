"""Demo customers: a dozen accounts with one published password (README, quick start)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from orders.models import Customer
from orders.services import customer_for_user

DEMO_CUSTOMER_PASSWORD = "demo-customer-pass"
DEMO_CUSTOMER_DOMAIN = "customers.stockwire.example"
# (name, city, postal code, country)
CUSTOMERS = (
    ("Ada Lindqvist", "Malmö", "211 19", "SE"),
    ("Bruno Ferreira", "Porto", "4000-322", "PT"),
    ("Chloé Martin", "Lyon", "69002", "FR"),
    ("Dmitri Orlov", "Leipzig", "04109", "DE"),
    ("Emma Janssen", "Utrecht", "3511 LX", "NL"),
    ("Farid Haddad", "Berlin", "10997", "DE"),
    ("Greta Novak", "Ljubljana", "1000", "SI"),
    ("Hugo Lefèvre", "Brussels", "1000", "BE"),
    ("Ines Romero", "Valencia", "46001", "ES"),
    ("Jonas Berg", "Aarhus", "8000", "DK"),
    ("Kasia Wójcik", "Kraków", "31-042", "PL"),
    ("Luca Bianchi", "Bologna", "40121", "IT"),
)


def customer_email(name: str) -> str:
    return f"{name.split()[0].lower()}@{DEMO_CUSTOMER_DOMAIN}"


def customer_address(name: str) -> dict[str, str]:
    """The shipping address a demo customer orders to."""
    _, city, postal_code, country = next(row for row in CUSTOMERS if row[0] == name)
    number = len(name) + 3
    return {
        "name": name,
        "line1": f"{number} {name.split()[-1]} Street",
        "city": city,
        "postal_code": postal_code,
        "country": country,
    }


def demo_customers() -> list[Customer]:
    """The demo customers in CUSTOMERS' order (the ones that exist)."""
    by_email = {
        customer.user.email: customer
        for customer in Customer.objects.filter(
            user__email__endswith=f"@{DEMO_CUSTOMER_DOMAIN}"
        ).select_related("user")
    }
    return [
        by_email[email] for name, *_ in CUSTOMERS if (email := customer_email(name)) in by_email
    ]


def seed_customers() -> str | None:
    """Create the demo customers that are missing; None when all exist."""
    User = get_user_model()
    # One hash for all: they share the published password, and hashing each costs a second.
    password = make_password(DEMO_CUSTOMER_PASSWORD)
    created = 0
    for name, *_ in CUSTOMERS:
        email = customer_email(name)
        first, last = name.split(" ", 1)
        user, was_created = User.objects.get_or_create(
            username=email,
            defaults={"email": email, "first_name": first, "last_name": last, "password": password},
        )
        customer_for_user(user=user)
        created += was_created
    return f"customers: {created} created (password {DEMO_CUSTOMER_PASSWORD})" if created else None
