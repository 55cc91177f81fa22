"""The storefront's read cache: product pages and product details under versioned keys.

Nothing is ever deleted to invalidate. Each product has a version key and all list pages share one
generation key; an entry's key contains the version it was built for, so replacing the version
(on commit of a change, by this app's receivers) makes every old entry unreachable at once.
A reader reads the version *before* it reads the database, so an entry built from data older
than a concurrent commit is stored under the version that commit has already replaced: it can
never be served.

The cache is an optimisation, never a dependency: when Redis is down every read goes to the
database, and the outage is logged once (and its end once), not once per request. Invalidations
lost in an outage are made good by a new epoch (see EPOCH_KEY) when Redis answers again.
"""

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache import cache

from catalog.models import Product

logger = logging.getLogger("stockwire.cache")

# Long enough that a quiet catalog is served from memory, short enough that Redis' memory is
# reclaimed from entries orphaned by a version change without an eviction policy.
ENTRY_TIMEOUT_SECONDS = 60 * 60
# Versions must outlive the entries built for them.
VERSION_TIMEOUT_SECONDS = 2 * ENTRY_TIMEOUT_SECONDS

LIST_GENERATION_KEY = "sf:products:generation"
# Part of every entry's key. Invalidations attempted while Redis was unreachable are lost, so the
# first process to reach Redis again replaces the epoch: every entry stored before is dropped.
EPOCH_KEY = "sf:epoch"

_state_lock = threading.Lock()
_outage = False

MISSING = object()


def _cache_down(error: Exception) -> None:
    global _outage
    with _state_lock:
        first = not _outage
        _outage = True
    if first:
        logger.warning("read cache unavailable, serving from the database: %s", error)


def _cache_recovered() -> None:
    global _outage
    with _state_lock:
        if not _outage:
            return
        _outage = False
    try:
        cache.set(EPOCH_KEY, _new_version(), VERSION_TIMEOUT_SECONDS)
    except Exception as error:  # down again at once: the next recovery replaces the epoch
        _cache_down(error)
        return
    logger.info("read cache available again; entries stored before the outage are dropped")


def cache_call(
    operation: Callable[..., Any], *args: Any, default: Any = None, **kwargs: Any
) -> Any:
    """Run one cache operation; when the cache fails, note the outage and return `default`.

    Every operation tries the cache, so it is used again as soon as it answers; a hung Redis
    costs each operation the cache's socket timeout (settings: 0.5 s), never an error.
    """
    try:
        result = operation(*args, **kwargs)
    except Exception as error:  # any backend failure means "no cache", never a failed request
        _cache_down(error)
        return default
    if _outage:
        _cache_recovered()
    return result


def _new_version() -> str:
    return uuid.uuid4().hex[:16]


def _product_version_key(product_id: int) -> str:
    return f"sf:product:version:{product_id}"


def _versions(*keys: str) -> tuple[str | None, ...]:
    """Return the versions stored at `keys`, read in one round trip (every cache hit needs two
    or three of them), creating any that is missing; all None when there is no cache."""
    found = cache_call(cache.get_many, list(keys), default=MISSING)
    if found is MISSING:
        return (None,) * len(keys)
    return tuple(found[key] if key in found else _version_created(key) for key in keys)


def _version_created(key: str) -> str | None:
    """Create a version at `key` unless a concurrent reader just did; return the one stored."""
    cache_call(cache.add, key, _new_version(), VERSION_TIMEOUT_SECONDS)
    return cache_call(cache.get, key)


def _get_or_build(key: str | None, build: Callable[[], Any]) -> Any:
    if key is None:
        return build()
    cached = cache_call(cache.get, key, default=MISSING)
    if cached is not MISSING and cached is not None:
        return cached
    value = build()
    if cached is not MISSING and value is not None:
        cache_call(cache.set, key, value, ENTRY_TIMEOUT_SECONDS)
    return value


def product_page(*, params: dict[str, Any], build: Callable[[], dict]) -> dict:
    """Return one catalog page for `params`, built by `build()` when not cached."""
    epoch, generation = _versions(EPOCH_KEY, LIST_GENERATION_KEY)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]
    key = None if None in (epoch, generation) else f"sf:page:{epoch}:{generation}:{digest}"
    return _get_or_build(key, build)


def category_list(*, build: Callable[[], list]) -> list:
    """Return the category list, rebuilt whenever the list generation changes."""
    epoch, generation = _versions(EPOCH_KEY, LIST_GENERATION_KEY)
    key = None if None in (epoch, generation) else f"sf:categories:{epoch}:{generation}"
    return _get_or_build(key, build)


def product_detail(*, slug: str, build: Callable[[], dict | None]) -> dict | None:
    """Return the detail of the active product `slug` (None when there is none).

    `sf:product:slug:<slug>` remembers which product a slug named, so the product's version can
    be read before the database. On the first visit of a slug it is unknown: that visit only
    records it and stores nothing, because an entry built before its version was read could
    outlive a concurrent change. The entry carries its slug, so a product renamed since is
    rebuilt from the database instead of served.
    """
    product_id = cache_call(cache.get, f"sf:product:slug:{slug}", default=MISSING)
    if product_id is MISSING:
        return build()
    if product_id is None:
        epoch, version = _versions(EPOCH_KEY)[0], None
    else:
        epoch, version = _versions(EPOCH_KEY, _product_version_key(product_id))
    key = None if None in (epoch, version) else f"sf:detail:{epoch}:{product_id}:{version}"
    if key is not None:
        cached = cache_call(cache.get, key)
        if cached is not None and cached["slug"] == slug:
            return cached
    value = build()
    if value is None:
        return None
    if key is not None and value["id"] == product_id:
        cache_call(cache.set, key, value, ENTRY_TIMEOUT_SECONDS)
    else:
        cache_call(cache.set, f"sf:product:slug:{slug}", value["id"], VERSION_TIMEOUT_SECONDS)
    return value


def products_invalidate(*, product_ids: Iterable[int]) -> None:
    """Make the cached detail of these products and every cached list page unreachable."""
    # One fresh value serves every key: a version only has to differ from the one it replaces
    # (an import invalidates thousands of products at once).
    version = _new_version()
    versions = dict.fromkeys(map(_product_version_key, product_ids), version)
    versions[LIST_GENERATION_KEY] = version
    cache_call(cache.set_many, versions, VERSION_TIMEOUT_SECONDS)  # one round trip


def category_invalidate(*, category_id: int) -> None:
    """Invalidate the products of a category (they show its slug) and every list."""
    product_ids = set(Product.objects.filter(category_id=category_id).values_list("pk", flat=True))
    products_invalidate(product_ids=product_ids)
