"""Claims on police force ids, on the real Cassandra."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from cassandra.cluster import Session

from peaceland.tenants.errors import NameTakenError, ProvisioningError
from peaceland.tenants.provisioning.claims import claim, ensure_claims_table, owner_of, release


@pytest.fixture(scope="module")
def claims(cassandra: Session) -> Session:
    ensure_claims_table(cassandra, replication_factor=1)
    return cassandra


def test_the_first_claimant_owns_the_id_and_may_claim_it_again(claims: Session):
    force_id = f"t-{uuid.uuid4().hex[:12]}"
    claim(claims, force_id, "police/brest")
    claim(claims, force_id, "police/brest")
    assert owner_of(claims, force_id) == "police/brest"


def test_a_second_namespace_cannot_take_a_claimed_id(claims: Session):
    force_id = f"t-{uuid.uuid4().hex[:12]}"
    claim(claims, force_id, "police/brest")
    with pytest.raises(NameTakenError, match="is taken by another police force") as e:
        claim(claims, force_id, "other/brest")
    assert e.value.reason == "NameTaken"
    # The refusal reaches the other tenant: it must not say who owns the id, or where.
    assert "police" not in str(e.value).replace("police force", "")
    assert e.value.holder == "police/brest"  # for the platform's own logs


def test_of_racing_claimants_exactly_one_wins(claims: Session):
    force_id = f"t-{uuid.uuid4().hex[:12]}"

    def attempt(owner: str) -> bool:
        try:
            claim(claims, force_id, owner)
        except ProvisioningError:
            return False
        return True

    with ThreadPoolExecutor(4) as pool:
        wins = list(pool.map(attempt, [f"ns{i}/x" for i in range(4)]))
    assert wins.count(True) == 1
    assert owner_of(claims, force_id) == f"ns{wins.index(True)}/x"


def test_a_released_id_can_be_claimed_by_another_and_only_the_owner_releases(claims: Session):
    force_id = f"t-{uuid.uuid4().hex[:12]}"
    claim(claims, force_id, "police/brest")
    release(claims, force_id, "other/brest")
    assert owner_of(claims, force_id) == "police/brest"
    release(claims, force_id, "police/brest")
    claim(claims, force_id, "other/brest")
    assert owner_of(claims, force_id) == "other/brest"


def test_a_claim_whose_owner_is_gone_is_taken_over_and_one_in_doubt_is_not(claims: Session):
    force_id = f"t-{uuid.uuid4().hex[:12]}"
    claim(claims, force_id, "deleted/brest")
    with pytest.raises(ProvisioningError):
        claim(claims, force_id, "police/brest", exists=lambda _: None)
    with pytest.raises(ProvisioningError):
        claim(claims, force_id, "police/brest", exists=lambda _: True)
    claim(claims, force_id, "police/brest", exists=lambda owner: owner != "deleted/brest")
    assert owner_of(claims, force_id) == "police/brest"
