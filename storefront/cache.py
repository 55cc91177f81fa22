"""The storefront's read cache: product pages and product details, checked against versions.

Nothing is ever deleted to invalidate. Each product has a version key and all list pages share one
generation key; an entry is stored with the versions it was built for and served only while they
are still the current ones, so replacing a version (on commit of a change, by this app's
receivers) makes every older entry unservable at once. The versions and the entry are read in one
round trip (MGET), which is all a cached list page costs. A reader reads the versions *before* it
reads the database, so an entry built from data older than a concurrent commit is stored with the
version that commit has already replaced: it can never be served.

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
# reclaimed, without an eviction policy, from entries nobody rebuilds (pages of rare queries,
# deleted products).
ENTRY_TIMEOUT_SECONDS = 60 * 60
# Versions must outlive the entries built for them.
VERSION_TIMEOUT_SECONDS = 2 * ENTRY_TIMEOUT_SECONDS

LIST_GENERATION_KEY = "sf:products:generation"
# One of every entry's versions. Invalidations attempted while Redis was unreachable are lost,
# so a process that saw the outage replaces the epoch with its first cache call that succeeds
# again: every entry stored before is dropped.
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
    costs each operation the cache's socket timeout (settings: 0.5 s), never an error. The
    first operation that succeeds after an outage also answers `default`: what it read was
    checked against the epoch from before the outage, which the recovery is only now replacing.
    """
    try:
        result = operation(*args, **kwargs)
    except Exception as error:  # any backend failure means "no cache", never a failed request
        _cache_down(error)
        return default
    if _outage:
        _cache_recovered()
        return default
    return result


def _new_version() -> str:
    return uuid.uuid4().hex[:16]


def _product_version_key(product_id: int) -> str:
    return f"sf:product:version:{product_id}"


def _detail_key(product_id: int) -> str:
    return f"sf:detail:{product_id}"


def _version_created(key: str) -> str | None:
    """Create a version at `key` unless a concurrent reader just did; return the one stored."""
    cache_call(cache.add, key, _new_version(), VERSION_TIMEOUT_SECONDS)
    return cache_call(cache.get, key)


def _read(entry_key: str, version_keys: tuple[str, ...]) -> tuple[tuple | None, Any]:
    """Read the current versions at `version_keys` and the entry at `entry_key` in one round
    trip; return the versions (None when there is no cache) and the entry's value if it was
    built for exactly those versions (MISSING otherwise). A missing version is created."""
    found = cache_call(cache.get_many, [*version_keys, entry_key], default=MISSING)
    if found is MISSING:
        return None, MISSING
    versions = tuple(found[key] if key in found else _version_created(key) for key in version_keys)
    if None in versions:
        return None, MISSING
    entry = found.get(entry_key)
    if entry is not None and entry[0] == versions:
        return versions, entry[1]
    return versions, MISSING


def _store(entry_key: str, versions: tuple, value: Any) -> None:
    """Store `value` with the versions read before it was built.

    The entry replaces whatever the key held. A slow builder may therefore replace a fresher
    entry with one built for versions already replaced; that entry is never served, and the
    next read rebuilds: a miss, never a stale answer. (Making the write conditional would
    need a script on the Redis side for a race that costs one rebuild.)
    """
    cache_call(cache.set, entry_key, (versions, value), ENTRY_TIMEOUT_SECONDS)


def _get_or_build(entry_key: str, version_keys: tuple[str, ...], build: Callable[[], Any]) -> Any:
    versions, cached = _read(entry_key, version_keys)
    if cached is not MISSING:
        return cached
    value = build()
    if versions is not None and value is not None:
        _store(entry_key, versions, value)
    return value


LIST_VERSION_KEYS = (EPOCH_KEY, LIST_GENERATION_KEY)


def product_page(*, params: dict[str, Any], build: Callable[[], dict]) -> dict:
    """Return one catalog page for `params`, built by `build()` when not cached."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]
    return _get_or_build(f"sf:page:{digest}", LIST_VERSION_KEYS, build)


def category_list(*, build: Callable[[], list]) -> list:
    """Return the category list, rebuilt whenever the list generation changes."""
    return _get_or_build("sf:categories", LIST_VERSION_KEYS, build)


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
    versions = None
    if product_id is not None:
        versions, cached = _read(
            _detail_key(product_id), (EPOCH_KEY, _product_version_key(product_id))
        )
        if cached is not MISSING and cached["slug"] == slug:
            return cached
    value = build()
    if value is None:
        return None
    if versions is not None and value["id"] == product_id:
        _store(_detail_key(product_id), versions, value)
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
