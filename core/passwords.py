"""A password validator for what Django's own misses: the e-mail's local part as the password."""

from difflib import SequenceMatcher

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError

# UserAttributeSimilarityValidator's default: the same password is "similar" to both.
MAX_SIMILARITY = 0.7


class EmailLocalPartSimilarityValidator:
    """Refuse a password too similar to the local part of the user's e-mail (or of a username
    that is an e-mail, as every customer's is).

    UserAttributeSimilarityValidator compares the whole address and each piece between
    punctuation, never the local part whole: `quiet-otter-77@shop.example` passes it with the
    password `quiet-otter-77`, the first guess of anyone who knows the address. Similar means
    what it means there (the same ratio).
    """

    def __init__(self, max_similarity: float = MAX_SIMILARITY) -> None:
        self.max_similarity = max_similarity

    def validate(self, password: str, user: AbstractBaseUser | None = None) -> None:
        for local_part in _local_parts(user):
            ratio = SequenceMatcher(a=password.lower(), b=local_part).quick_ratio()
            if ratio >= self.max_similarity:
                raise ValidationError(
                    "The password is too similar to the e-mail address.",
                    code="password_too_similar",
                )

    def get_help_text(self) -> str:
        return "Your password can't be too similar to your e-mail address."


def _local_parts(user: AbstractBaseUser | None) -> set[str]:
    addresses = (getattr(user, name, None) for name in ("email", "username"))
    return {
        address.rpartition("@")[0].lower()
        for address in addresses
        if isinstance(address, str) and "@" in address
    }
