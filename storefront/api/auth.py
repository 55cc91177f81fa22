"""Registration, log-in and log-out: tokens for the storefront and for staff integrations."""

from django.http import HttpRequest, HttpResponse
from ninja import Router, Status

from orders.services import customer_for_user, user_email_normalise
from storefront import services, throttle
from storefront.api.errors import ApiError, Problem, ValidationProblem
from storefront.api.schemas import CredentialsIn, CustomerOut, RegisteredOut, TokenOut
from storefront.api.security import token_auth
from storefront.selectors import user_for_credentials

router = Router(tags=["auth"])


def _throttle(
    request: HttpRequest, email: str, *, per_ip: throttle.Limit, per_email: throttle.Limit
) -> None:
    """Count the attempt against its client IP and its e-mail; raise Throttled beyond either.

    REMOTE_ADDR only: X-Forwarded-For is the client's to forge unless a trusted proxy rewrites
    it, and a forged one would let a script pick a fresh identity per attempt.
    """
    throttle.throttle_hit(limit=per_ip, identity=request.META.get("REMOTE_ADDR", ""))
    throttle.throttle_hit(limit=per_email, identity=user_email_normalise(email))


@router.post(
    "/register",
    response={201: RegisteredOut, 409: Problem, 422: ValidationProblem, 429: Problem},
    summary="Register a customer",
)
def register(request: HttpRequest, credentials: CredentialsIn):
    """Create a customer account and answer its first token."""
    _throttle(
        request,
        credentials.email,
        per_ip=throttle.REGISTER_PER_IP,
        per_email=throttle.REGISTER_PER_EMAIL,
    )
    user, token = services.customer_register(email=credentials.email, password=credentials.password)
    customer = customer_for_user(user=user)
    return Status(201, {"token": token, "customer": CustomerOut(id=customer.pk, email=user.email)})


@router.post(
    "/token",
    response={200: TokenOut, 401: Problem, 422: ValidationProblem, 429: Problem},
    summary="Log in",
)
def login(request: HttpRequest, credentials: CredentialsIn):
    """Answer a new token for a customer's or a staff member's e-mail and password."""
    _throttle(
        request, credentials.email, per_ip=throttle.LOGIN_PER_IP, per_email=throttle.LOGIN_PER_EMAIL
    )
    user = user_for_credentials(email=credentials.email, password=credentials.password)
    if user is None:
        raise ApiError(401, "invalid_credentials", "Unknown e-mail or wrong password.")
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
