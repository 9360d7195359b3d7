"""Local accounts: names, roles, argon2 password hashes, disabling, and the lock after
repeated failed sign-ins. The functions here check their input but not the caller's role:
pages and the command line use the guarded, audited versions in service/actions.py.

Names are lower case letters, digits and . _ @ - (up to 64); passwords at least
PASSWORD_MIN_LENGTH characters. A password is stored only as its argon2id hash (argon2-cffi's
defaults, rehashed on sign-in when those defaults grow). The last enabled administrator can
be neither disabled nor demoted, so the dashboard can always be administered; the command
line can anyway (it acts as an administrator).

First start: `ensure_admin` makes the account ADMIN_NAME when there is no account at all,
with SAFETY_MODELS_ADMIN_PASSWORD or else a random password that the caller shows once.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from safety_models.data.store import Store, metadata
from safety_models.errors import UserError
from safety_models.service.access import AccessSettings, check_role

ADMIN_NAME = "admin"
ADMIN_PASSWORD_ENV = "SAFETY_MODELS_ADMIN_PASSWORD"
PASSWORD_MIN_LENGTH = 10
NAME_PATTERN = re.compile(r"^[a-z0-9._@-]{1,64}$")
FIRST_START_RANDOM = "first start (random password)"
FIRST_START_ENV = f"first start ({ADMIN_PASSWORD_ENV})"
LISTED_COLUMNS = ("name", "role", "disabled", "created_at", "created_by", "password_set_at",
                  "last_login_at", "failed_logins", "locked_until")

accounts_table = sa.Table(
    "accounts", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),            # access.ROLES
    sa.Column("password_hash", sa.Text, nullable=False),         # argon2id, never the password
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False, default=""),
    sa.Column("password_set_at", sa.DateTime, nullable=False),
    sa.Column("last_login_at", sa.DateTime),
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),   # since the last success
    sa.Column("locked_until", sa.DateTime),
    keep_existing=True,
)

_hasher = PasswordHasher()
_dummy_hash: str | None = None


def _ensure_tables(store: Store) -> None:
    store.ensure_table(accounts_table)


def _now() -> datetime:
    return datetime.now()


# ---------------------------------------------------------------------------- checks, hashing


def check_name(name: str) -> str:
    """The account name in its stored form (lower case, trimmed), or a UserError."""
    clean = str(name or "").strip().lower()
    if not NAME_PATTERN.match(clean):
        raise UserError(f"{name!r} is not a usable account name: use 1 to 64 letters, digits "
                        "or . _ @ -")
    return clean


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < PASSWORD_MIN_LENGTH:
        raise UserError(f"a password needs at least {PASSWORD_MIN_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _spend_a_verify(password: str) -> None:
    """Verify against a throwaway hash: an unknown name takes as long as a wrong password,
    so timing does not tell which names exist."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    _verify(_dummy_hash, password)


def random_password() -> str:
    """16 URL-safe characters (96 bits) that read well on a console."""
    return secrets.token_urlsafe(12)


# ---------------------------------------------------------------------------- reading


def _public(row: Any) -> dict:
    account = {k: row[k] for k in LISTED_COLUMNS}
    account["disabled"] = bool(account["disabled"])
    account["failed_logins"] = int(account["failed_logins"] or 0)
    return account


def get_account(store: Store, name: str) -> dict | None:
    """The account (LISTED_COLUMNS, never the hash), None when there is none by that name."""
    _ensure_tables(store)
    try:
        name = check_name(name)
    except UserError:
        return None
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(accounts_table).where(accounts_table.c.name == name)
                           ).mappings().first()
    return None if row is None else _public(row)


def list_accounts(store: Store) -> pd.DataFrame:
    """Every account, by name, with LISTED_COLUMNS."""
    _ensure_tables(store)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(accounts_table).order_by(accounts_table.c.name)
                            ).mappings().all()
    df = pd.DataFrame([_public(r) for r in rows], columns=list(LISTED_COLUMNS))
    for column in ("created_at", "password_set_at", "last_login_at", "locked_until"):
        df[column] = pd.to_datetime(df[column])
    return df.astype({"disabled": bool, "failed_logins": "int64"})


def has_accounts(store: Store) -> bool:
    _ensure_tables(store)
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(accounts_table)).scalar() > 0


def _require(conn: sa.Connection, name: str) -> Any:
    row = conn.execute(sa.select(accounts_table).where(accounts_table.c.name == name)
                       ).mappings().first()
    if row is None:
        raise UserError(f"there is no account {name!r} (python -m safety_models users list)")
    return row


def _other_enabled_admins(conn: sa.Connection, name: str) -> int:
    a = accounts_table.c
    return conn.execute(sa.select(sa.func.count()).select_from(accounts_table).where(
        a.role == "admin", sa.not_(a.disabled), a.name != name)).scalar()


# ---------------------------------------------------------------------------- changing


def add_account(store: Store, name: str, role: str, password: str,
                created_by: str = "") -> dict:
    """Create an account; UserError when the name is taken or name/role/password unusable."""
    name, role = check_name(name), check_role(role)
    password_hash = hash_password(password)
    _ensure_tables(store)
    now = _now()
    try:
        with store.begin() as conn:
            conn.execute(accounts_table.insert().values(
                name=name, role=role, password_hash=password_hash, disabled=False,
                created_at=now, created_by=created_by, password_set_at=now, failed_logins=0))
    except sa.exc.IntegrityError:
        raise UserError(f"there is already an account {name!r}") from None
    return get_account(store, name)


def set_role(store: Store, name: str, role: str) -> dict:
    """Change an account's role (not the last enabled administrator's to a lower one)."""
    name, role = check_name(name), check_role(role)
    _ensure_tables(store)
    with store.begin() as conn:
        row = _require(conn, name)
        if row["role"] == "admin" and role != "admin" and not row["disabled"] \
                and _other_enabled_admins(conn, name) == 0:
            raise UserError(f"{name!r} is the last administrator; make another account "
                            "administrator first")
        conn.execute(accounts_table.update().where(accounts_table.c.name == name)
                     .values(role=role))
    return get_account(store, name)


def set_disabled(store: Store, name: str, disabled: bool = True) -> dict:
    """Disable an account (it can no longer sign in) or enable it again; an enabled account
    also loses any sign-in lock. The last enabled administrator cannot be disabled."""
    name = check_name(name)
    _ensure_tables(store)
    with store.begin() as conn:
        row = _require(conn, name)
        if disabled and row["role"] == "admin" and not row["disabled"] \
                and _other_enabled_admins(conn, name) == 0:
            raise UserError(f"{name!r} is the last administrator and cannot be disabled")
        values: dict[str, Any] = {"disabled": bool(disabled)}
        if not disabled:
            values.update(failed_logins=0, locked_until=None)
        conn.execute(accounts_table.update().where(accounts_table.c.name == name)
                     .values(**values))
    return get_account(store, name)


def set_password(store: Store, name: str, password: str) -> dict:
    """Give an account a new password; this also lifts a sign-in lock."""
    name = check_name(name)
    password_hash = hash_password(password)
    _ensure_tables(store)
    with store.begin() as conn:
        _require(conn, name)
        conn.execute(accounts_table.update().where(accounts_table.c.name == name).values(
            password_hash=password_hash, password_set_at=_now(), failed_logins=0,
            locked_until=None))
    return get_account(store, name)


# ---------------------------------------------------------------------------- signing in


@dataclass(frozen=True)
class SignInResult:
    """What one sign-in attempt came to. outcome: "ok", "failed" (unknown name, wrong
    password, disabled account) or "locked"; locked_now: this failure locked the account.
    message: what to tell the person (the same for an unknown name and a wrong password)."""

    outcome: str
    name: str
    role: str | None = None
    message: str = ""
    locked_now: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


WRONG = "Wrong account name or password."


def authenticate(store: Store, name: str, password: str,
                 settings: AccessSettings | None = None,
                 now: datetime | None = None) -> SignInResult:
    """Check a name and password. A locked account is refused without looking at the
    password; `settings.login_attempts` failures in a row lock it for
    `settings.lockout_minutes`. Never raises for a bad name or password: the result says."""
    settings = settings or AccessSettings.from_env()
    now = now or _now()
    typed = str(name or "").strip()
    try:
        clean = check_name(typed)
    except UserError:
        _spend_a_verify(password or "")
        return SignInResult("failed", typed, message=WRONG)
    _ensure_tables(store)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(accounts_table).where(accounts_table.c.name == clean)
                           ).mappings().first()
    if row is None:
        _spend_a_verify(password or "")
        return SignInResult("failed", clean, message=WRONG)
    if row["locked_until"] is not None and row["locked_until"] > now:
        return SignInResult(
            "locked", clean, message=f"This account is locked after repeated failed sign-ins "
            f"until {row['locked_until']:%H:%M}. Try again then, or ask an administrator.")
    if not _verify(row["password_hash"], password or ""):
        return _count_failure(store, clean, settings, now)
    if row["disabled"]:
        return SignInResult("failed", clean, message="This account is disabled. Ask an "
                                                     "administrator.")
    values: dict[str, Any] = {"last_login_at": now, "failed_logins": 0, "locked_until": None}
    if _hasher.check_needs_rehash(row["password_hash"]):
        values["password_hash"] = _hasher.hash(password)
    with store.begin() as conn:
        conn.execute(accounts_table.update().where(accounts_table.c.name == clean)
                     .values(**values))
    return SignInResult("ok", clean, role=row["role"])


def _count_failure(store: Store, name: str, settings: AccessSettings,
                   now: datetime) -> SignInResult:
    a = accounts_table.c
    with store.begin() as conn:
        conn.execute(accounts_table.update().where(a.name == name)
                     .values(failed_logins=a.failed_logins + 1))
        failures = conn.execute(sa.select(a.failed_logins).where(a.name == name)).scalar()
        if failures < settings.login_attempts:
            return SignInResult("failed", name, message=WRONG)
        until = now + timedelta(minutes=settings.lockout_minutes)
        conn.execute(accounts_table.update().where(a.name == name)
                     .values(failed_logins=0, locked_until=until))
    return SignInResult(
        "failed", name, locked_now=True,
        message=f"{WRONG} After {settings.login_attempts} failed sign-ins in a row the "
                f"account is locked until {until:%H:%M}.")


# ---------------------------------------------------------------------------- first start


def ensure_admin(store: Store, password: str | None = None) -> str | None:
    """When there is no account at all, create ADMIN_NAME (role admin).

    password: the one to set (default: SAFETY_MODELS_ADMIN_PASSWORD, else a random one).
    Returns the random password when one was made (the caller shows it once, and nobody can
    read it back later), else None: an account existed, or the password was given. Two
    processes starting at once make one account; the slower returns None."""
    if has_accounts(store):
        return None
    given = password if password is not None else os.environ.get(ADMIN_PASSWORD_ENV) or None
    made = None if given else random_password()
    try:
        add_account(store, ADMIN_NAME, "admin", given or made,
                    created_by=FIRST_START_ENV if given else FIRST_START_RANDOM)
    except UserError:
        if has_accounts(store):
            return None    # another session made it a moment ago
        raise UserError(f"{ADMIN_PASSWORD_ENV} is not a usable password: it needs at least "
                        f"{PASSWORD_MIN_LENGTH} characters") from None
    return made


def first_admin_pending(store: Store) -> bool:
    """Whether the first start's random admin password has never been used: the sign-in
    page then says where it was printed."""
    account = get_account(store, ADMIN_NAME)
    return (account is not None and account["created_by"] == FIRST_START_RANDOM
            and account["last_login_at"] is None)

