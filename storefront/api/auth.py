"""Registration, log-in and log-out: tokens for the storefront and for staff integrations."""

from django.http import HttpRequest, HttpResponse
from ninja import Router, Status

from core import throttle
from orders import selectors as order_selectors
from orders.services import customer_for_user, user_email_normalise
from storefront import services
from storefront.api.errors import ApiError, Problem, ValidationProblem
from storefront.api.schemas import CredentialsIn, CustomerOut, RegisteredOut, TokenOut
from storefront.api.security import token_auth
from storefront.selectors import user_for_credentials

router = Router(tags=["auth"])

# A token is a credential: no cache, shared or the browser's own, may keep a copy (RFC 6749, 5.1).
TOKEN_CACHE_CONTROL = "no-store"


@router.post(
    "/register",
    response={201: RegisteredOut, 409: Problem, 422: ValidationProblem, 429: Problem},
    summary="Register a customer",
)
def register(request: HttpRequest, credentials: CredentialsIn, response: HttpResponse):
    """Create a customer account and answer its first token."""
    throttle.throttle_attempt(
        request=request, account=user_email_normalise(credentials.email), limits=throttle.REGISTER
    )
    user, token = services.customer_register(email=credentials.email, password=credentials.password)
    customer = customer_for_user(user=user)
    response["Cache-Control"] = TOKEN_CACHE_CONTROL
    return Status(201, {"token": token, "customer": CustomerOut(id=customer.pk, email=user.email)})


@router.post(
    "/token",
    response={200: TokenOut, 401: Problem, 422: ValidationProblem, 429: Problem},
    summary="Log in",
)
def login(request: HttpRequest, credentials: CredentialsIn, response: HttpResponse):
    """Answer a new token for a customer's or a staff member's e-mail and password."""
    throttle.throttle_attempt(
        request=request,
        account=user_email_normalise(credentials.email),
        limits=throttle.LOGIN,
        account_ids=order_selectors.account_ids(identifier=credentials.email),
    )
    user = user_for_credentials(email=credentials.email, password=credentials.password)
    if user is None:
        raise ApiError(401, "invalid_credentials", "Unknown e-mail or wrong password.")
    response["Cache-Control"] = TOKEN_CACHE_CONTROL
    return Status(200, {"token": services.token_issue(user=user)})


@router.delete(
    "/token",
    auth=token_auth,
    response={204: None, 401: Problem},
    summary="Log out (revoke the token sent)",
)
def logout(request: HttpRequest):
    """Revoke the caller's token; later requests with it answer 401."""
    services.token_revoke(raw=request.auth_token)
    return HttpResponse(status=204)
