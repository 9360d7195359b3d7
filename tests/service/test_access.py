"""Roles, permissions, session limits and the city sign-in's claims -> role (pure; no
identity provider is reachable in tests, so the mapping is a function tested on its own)."""

from __future__ import annotations

import pytest

from safety_models.errors import PermissionDenied, UserError
from safety_models.service import access
from safety_models.service.access import (AccessSettings, Actor, SsoSettings, can,
                                          role_from_claims, session_expired,
                                          sso_settings_from_secrets)


def test_each_role_has_what_the_issue_lists():
    viewer = {p for p in access.PERMISSIONS if can("viewer", p)}
    analyst = {p for p in access.PERMISSIONS if can("analyst", p)}
    admin = {p for p in access.PERMISSIONS if can("admin", p)}
    assert viewer == {"view", "download"}
    assert analyst - viewer == {"upload", "train", "cancel", "evaluate", "study"}
    assert admin - analyst == {"promote", "rollback", "remove_upload", "remove_demo",
                               "boundary", "accounts", "audit", "restore"}


def test_require_refuses_with_a_message_for_people():
    with pytest.raises(PermissionDenied) as err:
        access.require(Actor("vera", "viewer"), "upload", "loading files")
    assert str(err.value) == ("Loading files needs the analyst role; account 'vera' is a "
                              "viewer. Ask an administrator.")
    assert isinstance(err.value, UserError)
    access.require(Actor("root", "admin", "cli"), "accounts", "managing accounts")


def test_actor_is_frozen_and_checked():
    actor = Actor("ana", "analyst")
    with pytest.raises(AttributeError):
        actor.role = "admin"
    with pytest.raises(UserError):
        Actor("x", "superuser")
    with pytest.raises(ValueError):
        Actor("x", "viewer", via="web")
    cli = access.cli_actor()
    assert (cli.role, cli.via) == ("admin", "cli") and cli.name


def test_settings_from_the_environment():
    assert AccessSettings.from_env({}) == AccessSettings()
    s = AccessSettings.from_env({"SAFETY_MODELS_SESSION_IDLE_MINUTES": "5",
                                 "SAFETY_MODELS_LOGIN_ATTEMPTS": "3",
                                 "SAFETY_MODELS_MAX_UPLOAD_MB": "0.5"})
    assert (s.idle_minutes, s.login_attempts, s.max_upload_bytes) == (5.0, 3, 524288)
    with pytest.raises(UserError, match="SAFETY_MODELS_LOGIN_ATTEMPTS"):
        AccessSettings.from_env({"SAFETY_MODELS_LOGIN_ATTEMPTS": "many"})
    with pytest.raises(UserError, match="above 0"):
        AccessSettings.from_env({"SAFETY_MODELS_SESSION_IDLE_MINUTES": "0"})


def test_session_expiry():
    assert not session_expired(None, 10_000.0, 30)
    assert not session_expired(10_000.0 - 30 * 60, 10_000.0, 30)
    assert session_expired(10_000.0 - 30 * 60 - 1, 10_000.0, 30)


GROUPS = SsoSettings(role_claim="groups", role_map={"GIS-Analysts": "analyst",
                                                    "safety-admins": "admin",
                                                    "staff": "viewer"})


@pytest.mark.parametrize("claims, role", [
    ({"groups": ["staff"]}, "viewer"),
    ({"groups": ["staff", "gis-analysts"]}, "analyst"),          # the highest wins; no case
    ({"groups": ["gis-analysts", "safety-admins", "staff"]}, "admin"),
    ({"groups": "staff safety-admins"}, "admin"),                  # one string of groups
    ({"groups": ["interns"]}, None),                               # nothing maps: no access
    ({"groups": []}, None),
    ({}, None),                                                    # no claim at all
    ({"roles": ["safety-admins"]}, None),                          # another claim is ignored
])
def test_role_from_group_claims(claims, role):
    assert role_from_claims(claims, GROUPS) == role


def test_role_from_claims_without_a_map_reads_role_names_and_a_default():
    plain = SsoSettings(role_claim="roles")
    assert role_from_claims({"roles": ["Analyst"]}, plain) == "analyst"
    assert role_from_claims({"roles": "admin"}, plain) == "admin"
    assert role_from_claims({"roles": ["owner"]}, plain) is None
    everyone = SsoSettings(role_claim="groups", role_map={"*": "viewer", "gis": "analyst"})
    assert role_from_claims({"email": "x@city.example"}, everyone) == "viewer"
    assert role_from_claims({"groups": ["gis"]}, everyone) == "analyst"
    with pytest.raises(UserError):
        SsoSettings(role_map={"x": "owner"})


def test_account_name_from_claims():
    s = SsoSettings()
    assert access.name_from_claims({"email": " Ana@City.Example ", "sub": "1"}, s) == \
        "ana@city.example"
    assert access.name_from_claims({"sub": "abc"}, s) == "abc"
    assert access.name_from_claims({}, s) is None


def test_sso_is_offered_only_when_secrets_configure_it():
    auth = {"redirect_uri": "https://maps.city.example/oauth2callback", "cookie_secret": "x",
            "client_id": "id", "client_secret": "s",
            "server_metadata_url": "https://id.city.example/.well-known/openid-configuration"}
    assert sso_settings_from_secrets({}) is None
    assert sso_settings_from_secrets({"auth": {"cookie_secret": "x"}}) is None
    plain = sso_settings_from_secrets({"auth": auth})
    assert plain == SsoSettings()
    named = sso_settings_from_secrets({
        "auth": {"redirect_uri": auth["redirect_uri"], "cookie_secret": "x",
                 "city": {"client_id": "id"}},
        "safety_models": {"sso": {"role_claim": "groups", "roles": {"gis": "analyst"}}}})
    assert named.provider == "city" and named.role_claim == "groups"
    assert named.role_map == {"gis": "analyst"}
    assert sso_settings_from_secrets({"auth": auth, "safety_models": {
        "sso": {"provider": "missing"}}}) is None
