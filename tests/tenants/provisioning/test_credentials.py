"""A force's credentials as its Secret holds them."""

from __future__ import annotations

from peaceland.tenants.provisioning.identities import ForceCredentials


def test_a_secret_made_before_a_role_existed_keeps_the_others_and_gains_the_new_one():
    made = ForceCredentials.generate("lyon", 3)
    older = {k: v for k, v in made.secret_data().items() if not k.startswith("dashboard.")}
    read = ForceCredentials.from_secret_data("lyon", older)
    assert read is not None
    assert read.generation == 3
    assert read.kafka["gateway"] == made.kafka["gateway"]
    assert read.cassandra == made.cassandra
    assert read.kafka["dashboard"].username == "lyon.dashboard.g3"
    assert len(read.kafka["dashboard"].password) >= 32
    # Half a role (a hand-edited Secret) is not trusted.
    half = {k: v for k, v in made.secret_data().items() if k != "dashboard.kafka-password"}
    assert ForceCredentials.from_secret_data("lyon", half) is None
