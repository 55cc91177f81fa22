"""The storefront's read cache: product pages and product details, checked against versions.

Nothing is ever deleted to invalidate. Each product has a version key; an entry is stored with
the versions it was built for and served only while they are still the current ones, so
replacing a version (on commit of a change, by this app's receivers) makes every older entry
unservable at once. A reader reads the versions *before* it reads the database, so an entry
built from data older than a concurrent commit is stored with a version that commit has already
replaced: it can never be served.

Generations sit above the product versions. A catalog change (a product, variant, image,
category or collection saved, or `catalog_changed`) replaces the list generation: which products
a page holds, and in which order, may have changed. A stock movement replaces the stock
generation and only the versions of the products it moved: a page shows availability, but it
holds the same products afterwards, so it is checked against the versions of the products it
shows and stays cached while other products sell. A page filtered by availability holds other
products only once a product sells out or comes back, which only a movement that takes a level
to zero or from it can do: such a movement also replaces the in-stock generation, which those
pages are built for. A moved rating works the same way (approved reviews change what a product
shows), with the rating generation for the pages ordered or filtered by rating. A cached page
is one round trip (MGET) while no stock moved since it was stored.

With read replicas (core.replicas) the catalog's builders may read a replica, which may not
have replayed a commit whose invalidation has already replaced the versions a reader read: an
entry built there would be stored as current and served until the next change. So a build
about to be stored reads within `caught_up_with_primary()`: from a replica only once it has
replayed every commit the primary had answered when the build began, else from the primary.
Builds that are served without being stored may come from a replica that is a little behind.

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
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from catalog.models import Product
from core.replicas import caught_up_with_primary

logger = logging.getLogger("stockwire.cache")

# Long enough that a quiet catalog is served from memory, short enough that Redis' memory is
# reclaimed, without an eviction policy, from entries nobody rebuilds (pages of rare queries,
# deleted products).
ENTRY_TIMEOUT_SECONDS = 60 * 60
# Versions outlive the entries built for them. One that expires anyway (a page stored again for
# every stock movement lives on) is recreated with a new value: a rebuild, never a stale answer.
VERSION_TIMEOUT_SECONDS = 2 * ENTRY_TIMEOUT_SECONDS

# Replaced by catalog changes: what every list page holds may have changed.
LIST_GENERATION_KEY = "sf:products:generation"
# Replaced by every stock movement and rating change (what replaces product versions without
# the list generation): pages checked against it skip checking their products.
STOCK_GENERATION_KEY = "sf:stock:generation"
# Replaced by stock movements that may sell a product out or bring it back: which products the
# pages filtered by availability hold may have changed.
IN_STOCK_GENERATION_KEY = "sf:in-stock:generation"
# ...and short-lived, so those pages are rebuilt at least this often whatever happened: a
# sell-out whose invalidation never ran (a process killed between its commit and its on-commit
# callbacks, or, during a rolling deploy, a process of a release that did not replace this key)
# shows within this long. Each such page costs one rebuild per period.
IN_STOCK_GENERATION_TIMEOUT_SECONDS = 5 * 60
# Replaced when approved reviews move a product's rating: which products the pages ordered or
# filtered by rating hold, and in which order, may have changed.
RATING_GENERATION_KEY = "sf:rating:generation"
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
        _epoch_replace()
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


def _epoch_replace() -> None:
    """Replace the version every entry is stored with: no entry stored before is served."""
    cache.set(EPOCH_KEY, _new_version(), VERSION_TIMEOUT_SECONDS)


def _new_version() -> str:
    return uuid.uuid4().hex[:16]


def _product_version_key(product_id: int) -> str:
    return f"sf:product:version:{product_id}"


def _detail_key(product_id: int) -> str:
    return f"sf:detail:{product_id}"


def _reviews_version_key(product_id: int) -> str:
    return f"sf:reviews:version:{product_id}"


def _version_created(key: str) -> str | None:
    """Create a version at `key` unless a concurrent reader just did; return the one stored."""
    cache_call(cache.add, key, _new_version(), _version_timeout(key))
    return cache_call(cache.get, key)


def _version_timeout(key: str) -> int:
    if key == IN_STOCK_GENERATION_KEY:
        return IN_STOCK_GENERATION_TIMEOUT_SECONDS
    return VERSION_TIMEOUT_SECONDS


def _read(entry_key: str, version_keys: tuple[str, ...]) -> tuple[tuple | None, Any]:
    """Read the current versions at `version_keys` and the entry at `entry_key` in one round
    trip; return the versions (None when there is no cache) and the entry's value if it was
    built for exactly those versions (MISSING otherwise)."""
    versions, entry = _read_entry(entry_key, version_keys)
    if entry is not None and entry[0] == versions:
        return versions, entry[1]
    return versions, MISSING


def _read_entry(entry_key: str, version_keys: tuple[str, ...]) -> tuple[tuple | None, Any]:
    """Read the versions at `version_keys` and the entry stored at `entry_key`, whatever it
    was built for, in one round trip: (None, None) without a cache."""
    found = cache_call(cache.get_many, [*version_keys, entry_key], default=MISSING)
    versions = None if found is MISSING else _versions_found(found, version_keys)
    return (None, None) if versions is None else (versions, found.get(entry_key))


def _versions_found(found: dict[str, Any], keys: list[str] | tuple[str, ...]) -> tuple | None:
    """The versions at `keys` in `found` (what one MGET answered), creating those missing;
    None when one could not be read (no cache)."""
    versions = tuple(found[key] if key in found else _version_created(key) for key in keys)
    return None if None in versions else versions


def _store(entry_key: str, versions: tuple, value: Any) -> None:
    """Store `value` with the versions read before it was built.

    The entry replaces whatever the key held. A slow builder may therefore replace a fresher
    entry with one built for versions already replaced; that entry is never served, and the
    next read rebuilds: a miss, never a stale answer. (Making the write conditional would
    need a script on the Redis side for a race that costs one rebuild.)
    """
    cache_call(cache.set, entry_key, (versions, value), ENTRY_TIMEOUT_SECONDS)


def _built_to_store(build: Callable[[], Any]) -> Any:
    """Build an entry to be stored with versions just read (see the module's doc on replicas)."""
    with caught_up_with_primary():
        return build()


def _get_or_build(entry_key: str, version_keys: tuple[str, ...], build: Callable[[], Any]) -> Any:
    versions, cached = _read(entry_key, version_keys)
    if cached is not MISSING:
        return cached
    value = build() if versions is None else _built_to_store(build)
    if versions is not None and value is not None:
        _store(entry_key, versions, value)
    return value


LIST_VERSION_KEYS = (EPOCH_KEY, LIST_GENERATION_KEY)


@dataclass(frozen=True)
class Page:
    """A rendered catalog page and the products it shows, in order."""

    body: str
    product_ids: tuple[int, ...]


def _digest(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]


def product_page(
    *,
    params: dict[str, Any],
    filtered_by_stock: bool,
    by_rating: bool = False,
    build: Callable[[], Page],
) -> str:
    """Return the body of one catalog page for `params`, built by `build()` when not cached.

    A page is stale when one of its own products moved (see `_page_get_or_build`), or when
    what it holds may have changed: after a catalog change; for a page `filtered_by_stock`
    (only products with units available), after a product may have sold out or come back;
    for a page ordered or filtered `by_rating`, after a rating moved.
    """
    listed_keys = (
        *LIST_VERSION_KEYS,
        *((IN_STOCK_GENERATION_KEY,) if filtered_by_stock else ()),
        *((RATING_GENERATION_KEY,) if by_rating else ()),
    )
    return _page_get_or_build(f"sf:list:{_digest(params)}", listed_keys, build)


def _product_versions(product_ids: tuple[int, ...]) -> tuple | None:
    """The current versions of these products in one round trip; None without a cache."""
    keys = [_product_version_key(product_id) for product_id in product_ids]
    found = cache_call(cache.get_many, keys, default=MISSING) if keys else {}
    return None if found is MISSING else _versions_found(found, keys)


def _page_get_or_build(
    entry_key: str, listed_keys: tuple[str, ...], build: Callable[[], Page]
) -> str:
    """A page entry is (versions at `listed_keys`, (stock generation, product ids, their
    versions, body)); `listed_keys` are the versions of what the page holds.

    While the stock generation is the one stored, no stock moved and the page is current. After
    a movement it is current if its products' versions are still the stored ones, and is stored
    again for the new generation: the first read after each movement reads twice and writes.

    Like every version, the products' versions must be read before the database. A page's
    products are known only once it is built, so they are read for the products of the previous
    entry (whatever list generation it was built for), which a rebuild usually shows again.
    When the page shows others, or there was no entry, it is stored without them and served
    only until stock next moves; the rebuild then stores them. Reading them after the build
    would not do: a movement committed during the build may have replaced them already.
    """
    versions, entry = _read_entry(entry_key, (*listed_keys, STOCK_GENERATION_KEY))
    if versions is None:
        return build().body
    listed, stock_generation = versions[:-1], versions[-1]
    shown, shown_versions = (), None
    if entry is not None:
        built_for, (entry_generation, shown, entry_versions, body) = entry
        if built_for == listed and entry_generation == stock_generation:
            return body
        shown_versions = _product_versions(shown)
        if built_for == listed and shown_versions is not None and shown_versions == entry_versions:
            # Stock moved, but none of this page's products: valid for this generation too.
            _store(entry_key, listed, (stock_generation, shown, entry_versions, body))
            return body
    page = _built_to_store(build)
    page_versions = shown_versions if page.product_ids == shown else None
    _store(entry_key, listed, (stock_generation, page.product_ids, page_versions, page.body))
    return page.body


def category_list(*, build: Callable[[], list]) -> list:
    """Return the category list, rebuilt whenever the list generation changes."""
    return _get_or_build("sf:categories", LIST_VERSION_KEYS, build)


def product_detail(*, slug: str, build: Callable[[], dict | None]) -> dict | None:
    """Return the detail of the active product `slug` (None when there is none).

    `build()` answers a dict with the product's `id` and `slug`, or None.
    """
    return _get_or_build_by_slug(
        slug=slug,
        entry_key=_detail_key,
        version_keys=lambda product_id: (EPOCH_KEY, _product_version_key(product_id)),
        build=build,
    )


def reviews_page(
    *, slug: str, params: dict[str, Any], build: Callable[[], dict | None]
) -> dict | None:
    """Return one page of the approved reviews of the active product `slug` for `params`
    (None when there is no such product).

    Rebuilt after its product's approved reviews change (`reviews_invalidate`) and after a
    catalog change (the product may have been deactivated or renamed).
    """
    digest = _digest(params)
    return _get_or_build_by_slug(
        slug=slug,
        entry_key=lambda product_id: f"sf:reviews:{product_id}:{digest}",
        version_keys=lambda product_id: (
            *LIST_VERSION_KEYS,
            _reviews_version_key(product_id),
        ),
        build=build,
    )


def _get_or_build_by_slug(
    *,
    slug: str,
    entry_key: Callable[[int], str],
    version_keys: Callable[[int], tuple[str, ...]],
    build: Callable[[], dict | None],
) -> dict | None:
    """An entry of one product found by its slug: checked against `version_keys(product id)`.

    `sf:product:slug:<slug>` remembers which product a slug named, so the product's versions
    can be read before the database. On the first visit of a slug it is unknown: that visit
    only records it and stores nothing, because an entry built before its versions were read
    could outlive a concurrent change. The entry carries its slug, so a product renamed since
    is rebuilt from the database instead of served.
    """
    product_id = cache_call(cache.get, f"sf:product:slug:{slug}", default=MISSING)
    if product_id is MISSING:
        return build()
    versions = None
    if product_id is not None:
        versions, cached = _read(entry_key(product_id), version_keys(product_id))
        if cached is not MISSING and cached["slug"] == slug:
            return cached
    value = build() if versions is None else _built_to_store(build)
    if value is None:
        return None
    if versions is not None and value["id"] == product_id:
        _store(entry_key(product_id), versions, value)
    else:
        cache_call(cache.set, f"sf:product:slug:{slug}", value["id"], VERSION_TIMEOUT_SECONDS)
    return value


def products_invalidate(*, product_ids: Iterable[int]) -> None:
    """A catalog change: make the cached detail of these products and every list unreachable."""
    _versions_replace(product_ids=product_ids, generation_keys=(LIST_GENERATION_KEY,))


def stock_invalidate(*, product_ids: Iterable[int], in_stock_may_have_changed: bool) -> None:
    """Stock moved for these products: their details and the pages showing them become
    unreachable, and, when a product may have sold out or come back, the pages filtered by
    availability; every other page stays cached."""
    _versions_replace(product_ids=product_ids, generation_keys=(STOCK_GENERATION_KEY,))
    if in_stock_may_have_changed:
        # After the products' versions: a page kept in between is stored for the in-stock
        # generation this replaces, so it is never served afterwards.
        cache_call(
            cache.set,
            IN_STOCK_GENERATION_KEY,
            _new_version(),
            IN_STOCK_GENERATION_TIMEOUT_SECONDS,
        )


def reviews_invalidate(*, product_ids: Iterable[int], rating_changed: bool) -> None:
    """The approved reviews of these products changed: their review pages become unreachable;
    when their ratings moved, also their details, the pages showing them and the pages
    ordered or filtered by rating. Every other page stays cached."""
    product_ids = list(product_ids)
    reviews_keys = [_reviews_version_key(product_id) for product_id in product_ids]
    if rating_changed:
        _versions_replace(
            product_ids=product_ids,
            version_keys=reviews_keys,
            generation_keys=(RATING_GENERATION_KEY, STOCK_GENERATION_KEY),
        )
    else:
        _versions_replace(product_ids=(), version_keys=reviews_keys, generation_keys=())


def _versions_replace(
    *,
    product_ids: Iterable[int],
    generation_keys: tuple[str, ...],
    version_keys: Iterable[str] = (),
) -> None:
    # One fresh value serves every key: a version only has to differ from the one it replaces
    # (an import invalidates thousands of products at once). The generations come last: a
    # backend that sets the keys one by one (not Redis' MSET) must never show a new generation
    # beside an old product version, or a page could be revalidated as current.
    version = _new_version()
    versions = dict.fromkeys(map(_product_version_key, product_ids), version)
    versions.update(dict.fromkeys(version_keys, version))
    versions.update(dict.fromkeys(generation_keys, version))
    cache_call(cache.set_many, versions, VERSION_TIMEOUT_SECONDS)  # one round trip


def everything_invalidate() -> None:
    """Make every entry unreachable at once by replacing the epoch: for the rare change that
    moves what every product shows (a warehouse opened or closed changes all availability)."""
    cache_call(_epoch_replace)


def category_invalidate(*, category_id: int) -> None:
    """Invalidate the products of a category (they show its slug) and every list."""
    product_ids = set(Product.objects.filter(category_id=category_id).values_list("pk", flat=True))
    products_invalidate(product_ids=product_ids)
