"""Every change a person makes, checked against their role and written to the audit trail.

Pages and the command line call these instead of the raw library functions (ingest,
Store.remove_upload, jobs.start_job, registry.promote, ...). Each function takes the `Actor`
first after the store, refuses with PermissionDenied (and an audit row saying "refused")
when the role does not allow it, runs the raw function, and appends one audit row with the
outcome: "ok", or "failed" with the error's message (the error is raised again).

Sign-in and sign-out live here too, since they are audited the same way.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import pandas as pd

from safety_models.data.store import Store, UploadSummary
from safety_models.errors import FileUnusable, PermissionDenied, SignInRefused, UserError
from safety_models.service import accounts, audit
from safety_models.service.access import (AccessSettings, Actor, SsoSettings, name_from_claims,
                                          require, role_from_claims)

ProgressFn = Callable[[dict], None]


@dataclass
class _Entry:
    """What the audit row of an action will say; the action's body may fill it in."""

    target: str
    detail: str = ""


def _summary(err: BaseException) -> str:
    if isinstance(err, UserError):
        return str(err)
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _permit(store: Store, actor: Actor, permission: str, action: str, target: str,
            doing: str) -> None:
    """Raise PermissionDenied unless the actor's role has the permission; a refusal is
    audited (outcome "refused") before it is raised."""
    try:
        require(actor, permission, doing)
    except PermissionDenied as err:
        audit.record(store, actor, action, target, "refused", str(err))
        raise


@contextlib.contextmanager
def _audited(store: Store, actor: Actor, permission: str, action: str, target: str,
             doing: str) -> Iterator[_Entry]:
    """Check the permission, run the block, and audit how it ended ("ok", or "failed" with
    the error's message). The block may set entry.target and entry.detail."""
    _permit(store, actor, permission, action, target, doing)
    entry = _Entry(target)
    try:
        yield entry
    except BaseException as err:
        audit.record(store, actor, action, entry.target, "failed", _summary(err))
        raise
    audit.record(store, actor, action, entry.target, "ok", entry.detail)


# ---------------------------------------------------------------------------- data


def _upload_detail(summary: UploadSummary, only_types: Any = None) -> str:
    s = summary
    if s.already_loaded:
        return f"{s.file_name} ({s.category}): loaded before as upload #{s.upload_id}; " \
               "nothing added"
    kept = f", keeping only the types {', '.join(map(repr, only_types))}" if only_types else ""
    return (f"{s.file_name} ({s.category}): {s.accepted:,} incidents added, "
            f"{s.duplicates:,} duplicates, {s.rejected:,} rows rejected{kept}")


def ingest(store: Store, actor: Actor, data: bytes, file_name: str, category: str,
           overrides: Any = None, settings: AccessSettings | None = None,
           earliest: Any = None, only_types: Any = None) -> UploadSummary:
    """Load a file's bytes (analyst). From the dashboard, a file above
    settings.max_upload_mb is refused before it is read. earliest, only_types: as ingest
    takes them."""
    from safety_models.data import ingest as raw

    settings = settings or AccessSettings.from_env()
    if actor.via == "dashboard" and len(data) > settings.max_upload_bytes:
        _permit(store, actor, "upload", "upload", file_name, "loading files")
        message = (f"{file_name} is {len(data) / 2**20:,.1f} MB; files above "
                   f"{settings.max_upload_mb:g} MB are refused here. Load it on the server "
                   f"with: python -m safety_models ingest FILE --category {category}")
        audit.record(store, actor, "upload", file_name, "refused", message)
        raise FileUnusable(message)
    with _audited(store, actor, "upload", "upload", file_name, "loading files") as entry:
        summary = raw.ingest_bytes(store, data, file_name, category, overrides=overrides,
                                   earliest=earliest, only_types=only_types)
        entry.target, entry.detail = f"upload #{summary.upload_id}", _upload_detail(summary, only_types)
    return summary


def ingest_path(store: Store, actor: Actor, path: str | Path, category: str,
                overrides: Any = None, earliest: Any = None,
                only_types: Any = None) -> UploadSummary:
    """Load a file on disk (the command line; no size limit)."""
    from safety_models.data import ingest as raw

    with _audited(store, actor, "upload", "upload", Path(path).name, "loading files") as entry:
        summary = raw.ingest_path(store, path, category, overrides, earliest=earliest,
                                  only_types=only_types)
        entry.target, entry.detail = f"upload #{summary.upload_id}", _upload_detail(summary, only_types)
    return summary


def load_demo(store: Store, actor: Actor,
              on_progress: ProgressFn | None = None) -> list[UploadSummary]:
    from safety_models.data import demo

    with _audited(store, actor, "upload", "demo.load", "demo data",
                  "loading the demo data") as entry:
        summaries = demo.load_demo(store, on_progress=on_progress)
        entry.detail = "; ".join(_upload_detail(s) for s in summaries)
    return summaries


def remove_upload(store: Store, actor: Actor, upload_id: int) -> int:
    """Remove an upload and its incidents (admin); returns the incidents removed."""
    with _audited(store, actor, "remove_upload", "upload.remove", f"upload #{int(upload_id)}",
                  "removing uploads") as entry:
        upload = store.upload(upload_id)
        removed = store.remove_upload(upload_id)
        entry.detail = f"{upload.file_name} ({upload.category}): {removed:,} incidents removed"
    return removed


def remove_demo(store: Store, actor: Actor) -> int:
    with _audited(store, actor, "remove_demo", "demo.remove", "demo data",
                  "removing the demo data") as entry:
        removed = store.remove_demo()
        entry.detail = f"{removed:,} incidents removed"
    return removed


def set_boundary(store: Store, actor: Actor, scope: str, geojson: dict,
                 source_name: str = "") -> None:
    """District outlines for a category, or "*" for every category (admin)."""
    target = "outlines for every category" if scope == "*" else f"outlines for {scope}"
    with _audited(store, actor, "boundary", "boundary.set", target,
                  "changing district outlines") as entry:
        store.set_boundary(scope, geojson)
        shapes = len(geojson.get("features", [])) if isinstance(geojson, dict) else 0
        entry.detail = f"{shapes} shapes" + (f" from {source_name}" if source_name else "")


# ---------------------------------------------------------------------------- jobs, models


def _job_what(kind: str, config: Mapping[str, Any]) -> str:
    category = config.get("category")
    return kind + (f" {category}" if category else "") + (
        f", base {config['base']}" if config.get("base") else "") + (
        f", frozen to {config['freeze_up_to']}" if config.get("freeze_up_to") else "") + (
        f", {config['epochs']} epochs" if config.get("epochs") else "")


def start_training(store: Store, actor: Actor, config: Mapping[str, Any],
                   kind: str = "train", via_queue: bool | None = None) -> int:
    """Start a background job (analyst): a process on this machine, or, via_queue, an entry
    in the task queue that a worker on any machine runs (`python -m safety_models worker`;
    PostgreSQL only). via_queue None: as the home is configured
    (queue.QueueSettings.queues: SAFETY_MODELS_WORKERS=queue on PostgreSQL). Its
    train.start row is written once the job has an id and before its process or worker runs
    it, so the job's own train.end row (written in the starter's name) always follows it."""
    from safety_models.service import jobs

    if via_queue is None:
        begin = functools.partial(jobs.begin_job, store)   # as the home is configured
    else:
        begin = functools.partial(jobs.queue_job if via_queue else jobs.start_job, store)
    return _audited_job(store, actor, kind, config, background=True,
                        run=lambda cfg, started: begin(kind, cfg, on_created=started))


def run_training(store: Store, actor: Actor, kind: str, config: Mapping[str, Any],
                 on_progress: ProgressFn | None = None) -> dict:
    """Run a job in this process (the command line), recorded and audited like a
    background one (train.start here, train.end by the job runner); returns the final job
    dict, or raises what ended a failed or cancelled job (see jobs.run_job_inline)."""
    from safety_models.service import jobs

    return _audited_job(store, actor, kind, config, background=False,
                        run=lambda cfg, started: jobs.run_job_inline(
                            store, kind, cfg, on_progress=on_progress, on_created=started))


def _audited_job(store: Store, actor: Actor, kind: str, config: Mapping[str, Any],
                 background: bool, run: Callable[[dict, Callable[[int], None]], Any]) -> Any:
    """Check the role, then run(config, started): `started(job_id)` writes the train.start
    row as soon as the job exists. A refusal before a job existed is a failed train.start;
    a background job whose process could not start ends here with a failed train.end (an
    inline job's runner writes its own train.end)."""
    config = dict(config)
    created: list[int] = []
    _permit(store, actor, "train", "train.start", config.get("category") or kind,
            "retraining models")

    def started(job_id: int) -> None:
        created.append(job_id)
        audit.record(store, actor, "train.start", audit.job_target(job_id), "ok",
                     _job_what(kind, config))

    try:
        return run(config, started)
    except BaseException as err:
        if not created:   # refused before a job existed (another one is running)
            audit.record(store, actor, "train.start", config.get("category") or kind,
                         "failed", _summary(err))
        elif background:  # the job exists but its process could not start: it ended here
            audit.record(store, actor, "train.end", audit.job_target(created[0]), "failed",
                         _summary(err))
        raise


def cancel_job(store: Store, actor: Actor, job_id: int) -> None:
    from safety_models.service import jobs

    with _audited(store, actor, "cancel", "train.cancel", audit.job_target(job_id),
                  "cancelling training jobs"):
        jobs.cancel_job(store, job_id)


def promote(store: Store, actor: Actor, model_id: str) -> None:
    """Make a model version the active one of its category (admin)."""
    from safety_models.modeling import registry

    with _audited(store, actor, "promote", "model.promote", f"model {model_id}",
                  "promoting models") as entry:
        category = registry.model_info(store, model_id).get("category")
        before = registry.active_model_id(store, category) if category else None
        registry.promote(store, model_id)
        entry.detail = f"{category}: in use before: {before or 'none'}"


def rollback(store: Store, actor: Actor, category: str) -> str:
    """Reactivate the category's previous model (admin); returns its id."""
    from safety_models.modeling import registry

    with _audited(store, actor, "rollback", "model.rollback", category,
                  "rolling back models") as entry:
        before = registry.active_model_id(store, category)
        model_id = registry.rollback(store, category)
        entry.detail = f"{before or 'none'} -> {model_id}"
    return model_id


def evaluate(store: Store, actor: Actor, category: str, model_id: str | None = None,
             on_progress: ProgressFn | None = None, device: str = "auto",
             flag_areas: Sequence[str] = (), horizon: str | None = None):
    """The backtest of a model (analyst); returns evaluation's BacktestResult. device,
    flag_areas and horizon: as backtest.evaluate_category takes them."""
    from safety_models.evaluation import backtest

    what = model_id or (f"({horizon} horizon)" if horizon else "(active)")
    with _audited(store, actor, "evaluate", "evaluate", f"model {what}",
                  "evaluating models") as entry:
        result = backtest.evaluate_category(store, category, model_id, on_progress=on_progress,
                                            device=device, flag_areas=flag_areas, horizon=horizon)
        entry.target = f"model {getattr(result, 'model_id', model_id)}"
        entry.detail = category
    return result


def run_study(store: Store, actor: Actor, category: str, quick: bool = False,
              on_progress: ProgressFn | None = None) -> pd.DataFrame:
    from safety_models.evaluation import study

    with _audited(store, actor, "study", "study", category,
                  "running the fine-tuning study") as entry:
        table = study.run_study(store, category, on_progress=on_progress, quick=quick)
        entry.detail = f"{len(table)} runs" + (" (quick)" if quick else "")
    return table


def restore_home(actor: Actor, archive: str | Path, on_progress: ProgressFn | None = None):
    """Put back a backup (admin; see service/backup.py). The restored database brings the
    audit trail as it was at the backup, so the restore itself is the first row written
    after it (with where the replaced state went); a refused or failed restore is a row of
    the trail it left in place. Returns backup's RestoreReport."""
    from safety_models.service import backup

    target = f"home from {Path(archive).name}"
    try:
        require(actor, "restore", "restoring a backup")
        report = backup.restore_home(archive)
    except BaseException as err:
        with contextlib.suppress(Exception), Store() as store:   # the home left as it was
            audit.record(store, actor, "home.restore", target,
                         "refused" if isinstance(err, PermissionDenied) else "failed",
                         _summary(err))
        raise
    with Store() as store:
        audit.record(store, actor, "home.restore", target, "ok",
                     f"backup of {report.created_at}; the replaced state is in "
                     f"{report.replaced or '(nothing was replaced)'}")
    return report


# ---------------------------------------------------------------------------- accounts


def list_accounts(store: Store, actor: Actor) -> pd.DataFrame:
    require(actor, "accounts", "seeing the accounts")
    return accounts.list_accounts(store)


def add_account(store: Store, actor: Actor, name: str, role: str, password: str) -> dict:
    with _audited(store, actor, "accounts", "account.add", f"account {name}",
                  "managing accounts") as entry:
        account = accounts.add_account(store, name, role, password, created_by=actor.name)
        entry.target, entry.detail = f"account {account['name']}", f"role {role}"
    return account


def set_role(store: Store, actor: Actor, name: str, role: str) -> dict:
    with _audited(store, actor, "accounts", "account.role", f"account {name}",
                  "managing accounts") as entry:
        before = accounts.get_account(store, name)
        account = accounts.set_role(store, name, role)
        entry.target = f"account {account['name']}"
        entry.detail = f"{before['role'] if before else '?'} -> {role}"
    return account


def set_disabled(store: Store, actor: Actor, name: str, disabled: bool = True) -> dict:
    action = "account.disable" if disabled else "account.enable"
    with _audited(store, actor, "accounts", action, f"account {name}",
                  "managing accounts") as entry:
        account = accounts.set_disabled(store, name, disabled)
        entry.target = f"account {account['name']}"
    return account


def reset_password(store: Store, actor: Actor, name: str, password: str) -> dict:
    with _audited(store, actor, "accounts", "account.password", f"account {name}",
                  "managing accounts") as entry:
        account = accounts.set_password(store, name, password)
        entry.target, entry.detail = f"account {account['name']}", "new password set"
    return account


def audit_trail(store: Store, actor: Actor, **filters: Any) -> pd.DataFrame:
    """The audit trail (admin); filters as audit.query takes them."""
    require(actor, "audit", "reading the audit trail")
    return audit.query(store, **filters)


# ---------------------------------------------------------------------------- signing in


def log_in(store: Store, name: str, password: str,
           settings: AccessSettings | None = None) -> Actor:
    """A dashboard sign-in with a local account: the Actor, or SignInRefused with a message
    for the person. Every attempt is audited; the failure that locks the account adds an
    account.lock row."""
    result = accounts.authenticate(store, name, password, settings)
    target = f"account {result.name}"
    if not result.ok:
        audit.record(store, result.name, "login", target, result.outcome, result.message,
                     via="dashboard")
        if result.locked_now:
            audit.record(store, result.name, "account.lock", target, "ok", result.message,
                         via="dashboard")
        raise SignInRefused(result.message)
    actor = Actor(result.name, result.role, "dashboard", method="password")
    audit.record(store, actor, "login", target, "ok", f"password; role {actor.role}")
    return actor


def log_in_sso(store: Store, claims: Mapping[str, Any], settings: SsoSettings) -> Actor:
    """A city sign-in (OpenID Connect claims, as st.user holds them): the Actor with the
    role the claims give, or SignInRefused when they give none or the name is disabled
    here. Audited like a password sign-in."""
    name = name_from_claims(claims, settings)
    role = role_from_claims(claims, settings)
    who = name or "(no name in the claims)"
    local = accounts.get_account(store, name) if name else None
    problem = None
    if name is None:
        problem = f"The city sign-in sent no {settings.name_claim!r} claim to name you by."
    elif role is None:
        problem = (f"Your city account {name} has no role in this dashboard (claim "
                   f"{settings.role_claim!r}). Ask an administrator to grant one.")
    elif local is not None and local["disabled"]:
        problem = f"The account {name} is disabled here. Ask an administrator."
    if problem:
        audit.record(store, who, "login", f"account {who}", "failed", "sso: " + problem,
                     via="dashboard")
        raise SignInRefused(problem)
    actor = Actor(name, role, "dashboard", method="sso")
    audit.record(store, actor, "login", f"account {name}", "ok", f"sso; role {role}")
    return actor


def log_out(store: Store, actor: Actor, expired: bool = False) -> None:
    audit.record(store, actor, "logout", f"account {actor.name}",
                 "expired" if expired else "ok",
                 "idle too long" if expired else "")


def recheck(store: Store, actor: Actor) -> Actor | None:
    """The actor as the accounts table says now: a changed role applies at once; None when
    the account was disabled or removed since it signed in (the session ends)."""
    account = accounts.get_account(store, actor.name)
    if actor.method == "sso":
        return None if account is not None and account["disabled"] else actor
    if account is None or account["disabled"]:
        return None
    if account["role"] == actor.role:
        return actor
    return Actor(actor.name, account["role"], actor.via, method=actor.method)

