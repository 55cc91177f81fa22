"""`manage.py demo_staff`: the demo superuser `make run` prints (development only)."""

from django.contrib.auth import get_user_model

from backoffice.demo.guard import DevelopmentOnlyCommand


class Command(DevelopmentOnlyCommand):
    help = (
        "Create (or reset) the demo superuser for the admin and print its credentials. "
        "Refused with DEBUG off unless --force."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", required=True)

    def handle(self, *args, email: str, password: str, **options) -> None:
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=email.strip().lower(), defaults={"email": email}
        )
        user.email = email
        user.is_staff = True
        user.is_superuser = True
        user.set_password(password)
        user.save()
        verb = "Created" if created else "Reset"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} demo staff user: {email} / {password} "
                "(admin at http://127.0.0.1:8000/admin/)"
            )
        )
