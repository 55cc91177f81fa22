"""Bearer-token authentication for customers and staff."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from ninja.errors import AuthorizationError
from ninja.security import HttpBearer

from storefront.selectors import token_user


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`: a live, unrevoked token of an active user."""

    openapi_description = "A token from POST /auth/token or POST /auth/register."

    def authenticate(self, request: HttpRequest, token: str) -> AbstractBaseUser | None:
        if not token or len(token) > 200:
            return None
        user = token_user(raw=token)
        if user is not None:
            request.auth_token = token
        return user


class StaffTokenAuth(TokenAuth):
    """A token of a staff user; a customer's valid token answers 403, not 401."""

    openapi_description = "A staff user's token from POST /auth/token; a customer's answers 403."

    def authenticate(self, request: HttpRequest, token: str) -> AbstractBaseUser | None:
        user = super().authenticate(request, token)
        if user is not None and not user.is_staff:
            raise AuthorizationError()
        return user


token_auth = TokenAuth()
staff_token_auth = StaffTokenAuth()
