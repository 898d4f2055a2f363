"""The last active admin key cannot be revoked: without one no admin could act (a 409 says what to do).

Rotation is allowed even for the last admin key, because it issues an admin key in its place; a key
in a rotation's grace period does not count as an admin that remains, since it is about to stop.
"""

from __future__ import annotations

from tests.support.stack import ADMIN_KEY, Stack


def _admin_key_id(stack: Stack) -> str:
    prefix = ADMIN_KEY.split("_")[1]
    for team in stack.client.get("/v1/teams", headers=stack.headers()).json():
        for key in stack.client.get(f"/v1/teams/{team['id']}/keys", headers=stack.headers()).json():
            if key["prefix"] == prefix:
                return key["id"]
    raise AssertionError("the bootstrap admin key is not listed")


def test_revoking_the_last_admin_key_is_refused_with_what_to_do_first(api_stack: Stack) -> None:
    bootstrap_id = _admin_key_id(api_stack)
    refused = api_stack.client.post(f"/v1/keys/{bootstrap_id}/revoke", headers=api_stack.headers())
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "conflict" and error["details"]["reason"] == "last_admin_key"
    assert "issue another admin key first" in error["message"]
    # Nothing changed: the key still works, and the refusal left no audit row.
    assert api_stack.client.get("/v1/teams", headers=api_stack.headers()).status_code == 200
    revokes = api_stack.client.get(
        "/v1/audit", params={"action": "admin.key.revoke"}, headers=api_stack.headers()
    )
    assert revokes.json()["items"] == []

    # With a second admin key (of another team) the first one may go.
    team_id, _ = api_stack.new_team("ops")
    second_id, second = api_stack.new_key(team_id, ["admin"], name="ops admin")
    other_id, _ = api_stack.new_key(team_id, ["write"], name="ci")
    revoked = api_stack.client.post(f"/v1/keys/{bootstrap_id}/revoke", headers=api_stack.headers(second))
    assert revoked.status_code == 200, revoked.text
    assert api_stack.client.get("/v1/teams", headers=api_stack.headers()).status_code == 401
    # ... and now that one is the last.
    again = api_stack.client.post(f"/v1/keys/{second_id}/revoke", headers=api_stack.headers(second))
    assert again.status_code == 409
    # A non-admin key is never held by this rule.
    assert (
        api_stack.client.post(f"/v1/keys/{other_id}/revoke", headers=api_stack.headers(second)).status_code
        == 200
    )


def test_rotating_the_last_admin_key_is_allowed_and_its_grace_period_does_not_count(api_stack: Stack) -> None:
    bootstrap_id = _admin_key_id(api_stack)
    rotated = api_stack.client.post(
        f"/v1/keys/{bootstrap_id}/rotate", json={"grace_seconds": 3600}, headers=api_stack.headers()
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["is_admin"] is True and new["revoked_at"] is None
    for key in (ADMIN_KEY, new["key"]):  # both work during the grace period
        assert api_stack.client.get("/v1/teams", headers=api_stack.headers(key)).status_code == 200

    # The old key is about to stop, so it is no admin that remains: the new one cannot be revoked.
    refused = api_stack.client.post(f"/v1/keys/{new['id']}/revoke", headers=api_stack.headers(new["key"]))
    assert refused.status_code == 409 and refused.json()["error"]["details"]["reason"] == "last_admin_key"
    # Ending the old key's grace period early is fine: the new key remains.
    ended = api_stack.client.post(f"/v1/keys/{bootstrap_id}/revoke", headers=api_stack.headers(new["key"]))
    assert ended.status_code == 200
    assert api_stack.client.get("/v1/teams", headers=api_stack.headers()).status_code == 401

    # Rotating with no grace period swaps one admin key for another at once.
    swapped = api_stack.client.post(
        f"/v1/keys/{new['id']}/rotate", json={}, headers=api_stack.headers(new["key"])
    )
    assert swapped.status_code == 201
    assert api_stack.client.get("/v1/teams", headers=api_stack.headers(new["key"])).status_code == 401
    assert (
        api_stack.client.get("/v1/teams", headers=api_stack.headers(swapped.json()["key"])).status_code == 200
    )
