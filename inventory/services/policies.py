"""Stock policies: how a variant sells once its available units run out (`StockPolicy`).

One variant at a time from the admin (`stock_policy_set`), many at once from the catalog import
(`stock_policies_set`); both write through the same code and check the same rules.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import transaction

from audit.models import AuditAction
from audit.services import audit_diff, audit_record_many, audit_snapshot
from catalog.models import Variant
from core.sql import update_rows
from inventory.models import InventoryPolicy, StockPolicy
from inventory.services.errors import MAX_UNITS, InvalidStockOperation
from inventory.services.events import stock_changed_send


@dataclass(frozen=True)
class PolicyValues:
    """A stock policy as the services take it: the policy, its limit and release date."""

    policy: str
    limit: int | None = None
    release_date: datetime.date | None = None


@dataclass(frozen=True)
class PolicyProblem:
    """Why one variant's policy of `stock_policies_set` was not applied."""

    variant_id: int
    message: str


@dataclass(frozen=True)
class PoliciesResult:
    """What `stock_policies_set` did: the variants whose policy changed, and those refused."""

    changed_variant_ids: list[int]
    problems: list[PolicyProblem]


# What a variant without a policy row does.
_NO_POLICY = PolicyValues(policy=InventoryPolicy.DENY)
_FIELDS = [StockPolicy._meta.get_field(name) for name in ("policy", "limit", "release_date")]
_VARIANT_NAMED_BY = ("variant__sku", "variant__name", "variant__product_id")


def stock_policy_check(
    *, policy: str, limit: int | None, release_date: datetime.date | None
) -> None:
    """Raise InvalidStockOperation unless the values make a policy: a known policy, a limit from
    0 to MAX_UNITS when given, and a pre-order's release date and limit.

    What every way of setting a policy checks (these services, the catalog file's policy
    cells); the units waiting are checked under the policy's lock.
    """
    if policy not in InventoryPolicy.values:
        raise InvalidStockOperation(f"a policy is one of {', '.join(InventoryPolicy.values)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise InvalidStockOperation(f"a limit is a whole number, got {limit!r}")
    if limit is not None and not 0 <= limit <= MAX_UNITS:
        raise InvalidStockOperation(f"a limit is from 0 to {MAX_UNITS}")
    if policy == InventoryPolicy.PREORDER and (release_date is None or limit is None):
        raise InvalidStockOperation("a pre-order needs a release date and a limit")


@transaction.atomic
def stock_policy_set(
    *,
    variant: Variant,
    policy: str,
    limit: int | None = None,
    release_date: datetime.date | None = None,
    actor=None,
) -> StockPolicy:
    """Set how one variant sells once its available units run out; return its policy row.

    `stock_policies_set` for one variant, raising (InvalidStockOperation) what that one
    reports: a limit below the units waiting now (lower it as they are served). The returned
    row exists even for a `deny` that changed nothing (the admin shows it).
    """
    result = stock_policies_set(
        policies={variant.pk: PolicyValues(policy, limit, release_date)}, actor=actor
    )
    if result.problems:
        raise InvalidStockOperation(result.problems[0].message)
    return StockPolicy.objects.get_or_create(variant=variant)[0]


@transaction.atomic
def stock_policies_set(*, policies: Mapping[int, PolicyValues], actor=None) -> PoliciesResult:
    """Set the stock policies of many variants (by id).

    Values that make no policy raise InvalidStockOperation (`stock_policy_check`; the
    catalog file's reader refuses them first). A policy equal to the stored one (or `deny` for a
    variant without one) is left alone, so the same file twice changes nothing. A limit below
    the units waiting now is reported, not applied. The policies are locked in variant order,
    as every service locks them (`inventory.services`), so a checkout back-ordering meanwhile is
    counted. The changed ones are written in one statement and audited in one INSERT; sends
    `stock_changed` once for them (product pages show the policy; no availability moved);
    requests no tasks.
    """
    for values in policies.values():
        stock_policy_check(
            policy=values.policy, limit=values.limit, release_date=values.release_date
        )
    variant_ids = sorted(policies)
    existing = set(StockPolicy.objects.filter(pk__in=variant_ids).values_list("pk", flat=True))
    missing = [v for v in variant_ids if v not in existing and policies[v] != _NO_POLICY]
    StockPolicy.objects.bulk_create(
        [StockPolicy(variant_id=v) for v in missing], ignore_conflicts=True
    )
    stored = {
        policy.pk: policy
        # The variant's SKU and name name the policy (its audit entry, a refusal); its
        # product is the signal's. Only those: an import reads thousands of them.
        for policy in StockPolicy.objects.select_related("variant")
        .only(*(f.name for f in StockPolicy._meta.concrete_fields), *_VARIANT_NAMED_BY)
        .select_for_update(no_key=True, of=("self",))
        .filter(pk__in=variant_ids)
        .order_by("pk")
    }
    problems: list[PolicyProblem] = []
    changed: list[tuple[StockPolicy, dict]] = []
    for variant_id in variant_ids:
        wanted, current = policies[variant_id], stored.get(variant_id)
        if current is None or wanted == PolicyValues(
            current.policy, current.limit, current.release_date
        ):
            continue
        if wanted.limit is not None and wanted.limit < current.backordered:
            problems.append(
                PolicyProblem(
                    variant_id=variant_id,
                    message=f"{current.backordered} units of {current.variant.sku} wait for "
                    "stock: the limit cannot be lower",
                )
            )
            continue
        before = audit_snapshot(instance=current, fields=_FIELDS)
        current.policy, current.limit, current.release_date = (
            wanted.policy,
            wanted.limit,
            wanted.release_date,
        )
        changed.append(
            (
                current,
                audit_diff(before=before, after=audit_snapshot(instance=current, fields=_FIELDS)),
            )
        )
    if changed:
        update_rows(
            StockPolicy,
            [policy for policy, _ in changed],
            ["policy", "limit", "release_date", "updated_at"],
        )
        audit_record_many(action=AuditAction.UPDATE, changes_by_object=changed, actor=actor)
        stock_changed_send(
            sender=stock_policies_set,
            variant_ids=[policy.pk for policy, _ in changed],
            product_ids=sorted({policy.variant.product_id for policy, _ in changed}),
            availability_crossed_zero=False,
            availability_grew=False,
        )
    return PoliciesResult(
        changed_variant_ids=[policy.pk for policy, _ in changed], problems=problems
    )
