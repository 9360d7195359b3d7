"""Who may do what: roles, the acting account (`Actor`), the limits on sessions and uploads,
and how a city sign-in's claims map to a role. Pure: no database, no streamlit.

Roles, each allowing what the one before it does:
  viewer    the Overview, Risk map, Evaluation and Method pages; prediction downloads
  analyst   + loading files, retraining, cancelling jobs, evaluating, the fine-tuning study
  admin     + promote / roll back, removing uploads or the demo data, district outlines,
            accounts, the audit trail, restoring a backup

The service layer (service/actions.py) checks a permission with `require(actor, ...)` before
it changes anything, so hiding a button is a courtesy, never the protection. The command
line acts as an administrator under the OS user's name (`cli_actor`): whoever has a shell on
the server already administers it.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from safety_models.errors import PermissionDenied, UserError

ROLES: tuple[str, ...] = ("viewer", "analyst", "admin")     # least to most allowed
VIAS: tuple[str, ...] = ("dashboard", "cli")

# permission -> the least role that has it
PERMISSIONS: dict[str, str] = {
    "view": "viewer",
    "download": "viewer",
    "upload": "analyst",
    "train": "analyst",
    "cancel": "analyst",
    "evaluate": "analyst",
    "study": "analyst",
    "promote": "admin",
    "rollback": "admin",
    "remove_upload": "admin",
    "remove_demo": "admin",
    "boundary": "admin",
    "accounts": "admin",
    "audit": "admin",
    "restore": "admin",
}

ROLE_DESCRIPTIONS: dict[str, str] = {
    "viewer": "sees the maps, scores and method; downloads predictions",
    "analyst": "also loads files, retrains, cancels jobs, evaluates and runs the study",
    "admin": "also promotes and rolls back models, removes data, sets district outlines, "
             "manages accounts and reads the audit trail",
}

IDLE_MINUTES_ENV = "SAFETY_MODELS_SESSION_IDLE_MINUTES"
LOGIN_ATTEMPTS_ENV = "SAFETY_MODELS_LOGIN_ATTEMPTS"
LOCKOUT_MINUTES_ENV = "SAFETY_MODELS_LOCKOUT_MINUTES"
MAX_UPLOAD_MB_ENV = "SAFETY_MODELS_MAX_UPLOAD_MB"


def check_role(role: str) -> str:
    """The role itself, or a UserError naming the roles there are."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


@dataclass(frozen=True)
class Actor:
    """Who acts: an account name (the OS user for the command line), its role, and where
    the action comes from ("dashboard" or "cli"). `method` says how a dashboard user signed
    in ("password" or "sso"); it goes into the audit trail, nothing checks it."""

    name: str
    role: str
    via: str = "dashboard"
    method: str = field(default="password", compare=False)

    def __post_init__(self) -> None:
        check_role(self.role)
        if self.via not in VIAS:
            raise ValueError(f"via must be one of {VIAS}, not {self.via!r}")

    def can(self, permission: str) -> bool:
        return can(self.role, permission)


# The server's own actions (first start's bootstrap job): never a person.
SYSTEM = Actor("system", "admin", "dashboard", method="server")


def role_rank(role: str) -> int:
    return ROLES.index(check_role(role))


def can(role: str, permission: str) -> bool:
    """Whether `role` has `permission` (a key of PERMISSIONS; KeyError for a typo)."""
    return role_rank(role) >= role_rank(PERMISSIONS[permission])


def require(actor: Actor, permission: str, doing: str) -> None:
    """Raise PermissionDenied (a message for people) unless the actor has the permission."""
    if not can(actor.role, permission):
        needed = PERMISSIONS[permission]
        raise PermissionDenied(
            f"{doing[:1].upper() + doing[1:]} needs the {needed} role; account "
            f"{actor.name!r} is {_article(actor.role)} {actor.role}. Ask an administrator.")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def os_user() -> str:
    """The OS user running this process (its uid when the system has no name for it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def cli_actor() -> Actor:
    """The command line acts as an administrator, named after the OS user."""
    return Actor(os_user(), "admin", "cli", method="shell")


# ---------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class AccessSettings:
    """Limits on sessions, sign-ins and uploads; `from_env` reads them from the environment."""

    idle_minutes: float = 30.0          # a dashboard session ends after this long without use
    login_attempts: int = 5             # failed sign-ins in a row that lock an account ...
    lockout_minutes: float = 15.0       # ... for this long
    max_upload_mb: float = 100.0        # larger files are refused (mebibytes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AccessSettings:
        env = os.environ if environ is None else environ
        defaults = cls()

        def number(name: str, default: float, kind=float):
            text = env.get(name)
            if text is None or not str(text).strip():
                return default
            try:
                value = kind(str(text).strip())
            except ValueError:
                raise UserError(f"{name}={text!r} is not a number") from None
            if value <= 0:
                raise UserError(f"{name} must be above 0, not {text!r}")
            return value

        return cls(idle_minutes=number(IDLE_MINUTES_ENV, defaults.idle_minutes),
                   login_attempts=number(LOGIN_ATTEMPTS_ENV, defaults.login_attempts, int),
                   lockout_minutes=number(LOCKOUT_MINUTES_ENV, defaults.lockout_minutes),
                   max_upload_mb=number(MAX_UPLOAD_MB_ENV, defaults.max_upload_mb))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def session_expired(last_seen_s: float | None, now_s: float, idle_minutes: float) -> bool:
    """Whether a session last used at `last_seen_s` (epoch seconds) has been idle too long.
    A session never seen has not expired (it has just begun)."""
    return last_seen_s is not None and now_s - last_seen_s > idle_minutes * 60.0


# ---------------------------------------------------------------------------- city sign-in


@dataclass(frozen=True)
class SsoSettings:
    """How a city sign-in (OpenID Connect, Streamlit's st.login) becomes an account and a role.

    role_claim: the claim holding the user's role or groups (a string or a list of strings).
    role_map: claim value -> role; "*" matches any signed-in user. Empty: the claim's values
        are role names themselves ("viewer", "analyst", "admin").
    name_claim: the claim naming the account in the audit trail (falls back to "email",
        then "sub").
    provider: the [auth.<provider>] section of secrets.toml to use (None: the [auth] section).
    """

    role_claim: str = "roles"
    role_map: Mapping[str, str] = field(default_factory=dict)
    name_claim: str = "email"
    provider: str | None = None
    label: str = "Sign in with the city account"

    def __post_init__(self) -> None:
        for value, role in self.role_map.items():
            check_role(role)


def role_from_claims(claims: Mapping[str, Any], settings: SsoSettings) -> str | None:
    """The role the claims give: the highest role any value of the role claim maps to, or
    None when none does (no access). A claim may be a string, a list of strings, or absent;
    comparisons ignore case and surrounding spaces."""
    raw = claims.get(settings.role_claim)
    if raw is None:
        values: list[str] = []
    elif isinstance(raw, str):
        # Some providers send groups as one space- or comma-separated string.
        values = [v for v in raw.replace(",", " ").split() if v]
    elif isinstance(raw, (list, tuple, set)):
        values = [str(v) for v in raw]
    else:
        values = [str(raw)]
    values = [v.strip().lower() for v in values if str(v).strip()]
    mapping = {str(k).strip().lower(): v for k, v in settings.role_map.items()}
    if mapping:
        found = [mapping[v] for v in values if v in mapping]
        if "*" in mapping:
            found.append(mapping["*"])
    else:
        found = [v for v in values if v in ROLES]
    return max(found, key=role_rank) if found else None


def name_from_claims(claims: Mapping[str, Any], settings: SsoSettings) -> str | None:
    """The account name the claims give (name_claim, else email, else sub), lower case."""
    for key in (settings.name_claim, "email", "preferred_username", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return None


def sso_settings_from_secrets(secrets: Mapping[str, Any]) -> SsoSettings | None:
    """SsoSettings when secrets.toml configures a city sign-in, else None (no SSO offered).

    Needs an [auth] section with redirect_uri and cookie_secret (Streamlit's own settings) and
    either client_id there or one [auth.<provider>] section; the role mapping is read from
    [safety_models.sso] (role_claim, name_claim, provider, label, and a [roles] table of
    claim value -> role)."""
    auth = secrets.get("auth") if secrets else None
    if not isinstance(auth, Mapping) or not auth.get("redirect_uri") \
            or not auth.get("cookie_secret"):
        return None
    own = (secrets.get("safety_models") or {}).get("sso") or {}
    providers = [k for k, v in auth.items() if isinstance(v, Mapping)]
    provider = own.get("provider")
    if provider is None and not auth.get("client_id"):
        if len(providers) != 1:
            return None
        provider = providers[0]
    if provider is not None and provider not in providers:
        return None
    return SsoSettings(
        role_claim=str(own.get("role_claim", SsoSettings.role_claim)),
        role_map={str(k): str(v) for k, v in dict(own.get("roles") or {}).items()},
        name_claim=str(own.get("name_claim", SsoSettings.name_claim)),
        provider=provider,
        label=str(own.get("label", SsoSettings.label)))
