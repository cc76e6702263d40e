"""The pause ledger: what this tool paused and resumed, for whom, when and why, in the store.

Microsoft's sample scripts keep no state; an incident response needs it. The ledger lives in the
exporter's SQLite database (its own tables, created on first use), so the exporter reads the
episodes it needs for the signals (`episodes()`, called through `store.call`) from the same
file the pause/resume commands write.

Tables:

* `ops_episodes`: one pause episode (an incident): when it began, who began it, why, how
  (`pause` or `adopt`), and when it ended (every object it paused is On again).
* `ops_episode_objects`: per episode, each object it **paused** (role `paused`; `pending` while
  this tool's PATCH has been sent but not confirmed) and each object that was **already
  paused** when the episode began (role `already_paused`: never resumed unless named). When
  each was paused and resumed, and by which run.
* `ops_runs`: one row per command that changed anything (`--apply`): command, selection,
  operator, reason, whether readiness was overridden (`--force`) and why, the readiness state
  it saw, the outcome.
* `ops_batches`: each resume batch of a run, with the readiness state seen before it.
* `ops_operations`: per run and object, the intended state and what became of it. The intent
  (`sending`) is committed **before** the PATCH and the outcome after, so that after a crash
  the next run knows exactly which requests may have reached Graph and checks those objects'
  actual state instead of guessing.

Every method is synchronous and must run on the store's thread:
`await store.call(ledger.episodes, tenant)`.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.groups import LedgerEpisode, LedgerObject
from exporter.store.database import Store


class Role(StrEnum):
    PAUSED = "paused"
    ALREADY_PAUSED = "already_paused"


class Origin(StrEnum):
    PAUSE = "pause"
    ADOPT = "adopt"


class Command(StrEnum):
    PAUSE = "pause"
    ADOPT = "adopt"
    RESUME = "resume"


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    """Finished, but some objects failed."""
    STOPPED = "stopped"
    """Stopped between batches: readiness no longer held."""
    INTERRUPTED = "interrupted"
    """Ctrl-C, or found still `running` by a later run (the process died)."""


class OpStatus(StrEnum):
    PLANNED = "planned"
    """Chosen for this run; nothing sent yet."""
    SENDING = "sending"
    """Intent committed: the PATCH is about to be sent or was sent; the outcome is unknown."""
    DONE = "done"
    """Graph confirmed it (204), or a later check found the target state after a `sending`."""
    UNCHANGED = "unchanged"
    """Already in the target state: nothing sent."""
    FAILED = "failed"
    SKIPPED = "skipped"
    """Not attempted (gone from the tenant, permission missing, run stopped)."""
    SUPERSEDED = "superseded"
    """An interrupted run's leftover, checked against Graph and left to a later run."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    id: str
    kind: DirectoryObjectKind
    name: str


@dataclass(frozen=True, slots=True)
class EpisodeObject:
    id: str
    kind: DirectoryObjectKind
    name: str
    role: Role
    pending: bool
    paused_at: float | None
    resumed_at: float | None
    resumed_by_run: str | None


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    id: str
    tenant: str
    started_at: float
    started_by: str
    reason: str
    origin: Origin
    ended_at: float | None
    end_note: str | None

    @property
    def open(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    tenant: str
    episode_id: str | None
    command: Command
    selection: Mapping[str, Any]
    operator: str
    reason: str | None
    forced: bool
    readiness: str | None
    continues: str | None
    started_at: float
    finished_at: float | None
    status: RunStatus
    note: str | None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    run_id: str
    number: int
    critical: bool
    objects: int
    readiness: str | None
    started_at: float
    finished_at: float | None
    status: str


@dataclass(frozen=True, slots=True)
class PlannedOperation:
    object: ObjectRef
    target: ProcessingState
    status: OpStatus = OpStatus.PLANNED
    batch: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class OperationRecord:
    run_id: str
    object: ObjectRef
    batch: int | None
    target: ProcessingState
    status: OpStatus
    attempts: int
    detail: str | None
    updated_at: float
    requests: int = 0
    """HTTP requests its attempts took (the Graph client's retries included)."""
    throttled: int = 0
    """Of those, answered 429."""


_RUN_COLUMNS = (
    "id, tenant, episode_id, command, selection, operator, reason, forced, readiness, continues, "
    "started_at, finished_at, status, note"
)
_EPISODE_COLUMNS = "id, tenant, started_at, started_by, reason, origin, ended_at, end_note"
_OP_COLUMNS = (
    "run_id, object_id, kind, name, batch, target, status, attempts, detail, updated_at, "
    "requests, throttled"
)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Ledger:
    """The ledger's tables in the store's database (exporter/store/schema.py creates them when
    the store opens). Construct it on the store, open or not."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._writes = 0
        self._cache: dict[tuple[str, int], tuple[tuple[int, int], tuple[LedgerEpisode, ...]]] = {}

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        return self._store.db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._writes += 1

    # -- what the exporter reads ------------------------------------------------------------------

    def episodes(self, tenant: str, *, ended_limit: int = 1) -> tuple[LedgerEpisode, ...]:
        """The tenant's open episodes, oldest first, then up to `ended_limit` most recently
        ended ones (the signals use the open ones; the last ended one is context).

        `paused` lists the objects each episode paused, including any whose PATCH outcome is
        not known yet (the exporter sees from the groups' state whether it took effect).
        Cached until the database changes, so the exporter may call it on every refresh."""
        db = self.db
        version = (int(db.execute("PRAGMA data_version").fetchone()[0]), self._writes)
        cached = self._cache.get((tenant, ended_limit))
        if cached is not None and cached[0] == version:
            return cached[1]
        rows = db.execute(
            f"SELECT {_EPISODE_COLUMNS} FROM ops_episodes WHERE tenant=? AND ended_at IS NULL "
            "ORDER BY started_at, id",
            (tenant,),
        ).fetchall()
        rows += db.execute(
            f"SELECT {_EPISODE_COLUMNS} FROM ops_episodes WHERE tenant=? AND ended_at IS NOT NULL "
            "ORDER BY ended_at DESC, id LIMIT ?",
            (tenant, ended_limit),
        ).fetchall()
        result: list[LedgerEpisode] = []
        for row in rows:
            episode = _episode(row)
            members: dict[str, list[str]] = {Role.PAUSED: [], Role.ALREADY_PAUSED: []}
            states: list[LedgerObject] = []
            for object_id, role, pending, paused_at, resumed_at in db.execute(
                "SELECT object_id, role, pending, paused_at, resumed_at FROM ops_episode_objects "
                "WHERE episode_id=? ORDER BY object_id",
                (episode.id,),
            ):
                members[role].append(object_id)
                state = _recorded_state(episode, role, bool(pending), paused_at, resumed_at)
                if state is not None:
                    states.append(LedgerObject(object_id, *state))
            result.append(
                LedgerEpisode(
                    id=episode.id,
                    started_at=episode.started_at,
                    started_by=episode.started_by,
                    reason=episode.reason,
                    paused=tuple(members[Role.PAUSED]),
                    already_paused=tuple(members[Role.ALREADY_PAUSED]),
                    ended_at=episode.ended_at,
                    objects=tuple(states),
                )
            )
        episodes = tuple(result)
        self._cache[(tenant, ended_limit)] = (version, episodes)
        return episodes

    def paused_in_open_episodes(self, tenant: str) -> int:
        """Objects the tenant's open episodes hold paused (paused by this tool or adopted, not
        resumed since; a PATCH whose outcome is unknown counts): what a resume would resume."""
        row = self.db.execute(
            "SELECT count(DISTINCT o.object_id) FROM ops_episode_objects o "
            "JOIN ops_episodes e ON e.id = o.episode_id WHERE e.tenant=? AND e.ended_at IS NULL "
            "AND o.role=? AND o.resumed_at IS NULL",
            (tenant, Role.PAUSED.value),
        ).fetchone()
        return int(row[0])

    # -- episodes ---------------------------------------------------------------------------------

    def open_episodes(self, tenant: str) -> list[EpisodeRecord]:
        rows = self.db.execute(
            f"SELECT {_EPISODE_COLUMNS} FROM ops_episodes WHERE tenant=? AND ended_at IS NULL "
            "ORDER BY started_at, id",
            (tenant,),
        )
        return [_episode(row) for row in rows]

    def episode(self, episode_id: str) -> EpisodeRecord | None:
        row = self.db.execute(
            f"SELECT {_EPISODE_COLUMNS} FROM ops_episodes WHERE id=?", (episode_id,)
        ).fetchone()
        return _episode(row) if row is not None else None

    def start_episode(
        self,
        tenant: str,
        *,
        at: float,
        by: str,
        reason: str,
        origin: Origin,
        already_paused: Iterable[ObjectRef],
        adopted: Iterable[tuple[ObjectRef, float | None]] = (),
    ) -> str:
        """A new open episode with the objects that were paused before it began, and (adopt)
        the objects it takes over as its own, with their pause times when known. One
        transaction: the snapshot of what was paused before is in place before any PATCH."""
        episode_id = new_id("ep")
        with self._transaction() as db:
            db.execute(
                "INSERT INTO ops_episodes (id, tenant, started_at, started_by, reason, origin) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (episode_id, tenant, at, by, reason, origin.value),
            )
            db.executemany(
                "INSERT INTO ops_episode_objects (episode_id, object_id, kind, name, role) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (episode_id, o.id, o.kind.value, o.name, Role.ALREADY_PAUSED.value)
                    for o in already_paused
                ],
            )
            db.executemany(
                "INSERT INTO ops_episode_objects (episode_id, object_id, kind, name, role, "
                "paused_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                "role = excluded.role, paused_at = excluded.paused_at",
                [
                    (episode_id, o.id, o.kind.value, o.name, Role.PAUSED.value, when)
                    for o, when in adopted
                ],
            )
        return episode_id

    def adopt_into(self, episode_id: str, objects: Iterable[tuple[ObjectRef, float | None]]) -> int:
        """Record paused objects as this open episode's own (an episode extended with pauses
        made elsewhere). Objects it already lists keep their role. Returns how many were new."""
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT INTO ops_episode_objects (episode_id, object_id, kind, name, role, "
                "paused_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    (episode_id, o.id, o.kind.value, o.name, Role.PAUSED.value, when)
                    for o, when in objects
                ],
            )
            return db.total_changes - before

    def episode_objects(self, episode_id: str) -> list[EpisodeObject]:
        rows = self.db.execute(
            "SELECT object_id, kind, name, role, pending, paused_at, resumed_at, resumed_by_run "
            "FROM ops_episode_objects WHERE episode_id=? ORDER BY object_id",
            (episode_id,),
        )
        return [
            EpisodeObject(
                id=object_id,
                kind=DirectoryObjectKind(kind),
                name=name,
                role=Role(role),
                pending=bool(pending),
                paused_at=paused_at,
                resumed_at=resumed_at,
                resumed_by_run=resumed_by_run,
            )
            for object_id, kind, name, role, pending, paused_at, resumed_at, resumed_by_run in rows
        ]

    def note_found_on(self, episode_id: str, object_ids: Iterable[str], *, at: float) -> None:
        """Objects the episode paused that are On again although no run of ours resumed them
        (someone used the portal or a script)."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE ops_episode_objects SET resumed_at=? WHERE episode_id=? AND object_id=? "
                "AND resumed_at IS NULL AND pending=0",
                [(at, episode_id, object_id) for object_id in object_ids],
            )

    def end_episode(self, episode_id: str, *, at: float, note: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE ops_episodes SET ended_at=?, end_note=? WHERE id=? AND ended_at IS NULL",
                (at, note, episode_id),
            )

    # -- runs, batches and operations ------------------------------------------------------------

    def start_run(
        self,
        tenant: str,
        *,
        command: Command,
        selection: Mapping[str, Any],
        operator: str,
        at: float,
        episode_id: str | None = None,
        reason: str | None = None,
        forced: bool = False,
        readiness: str | None = None,
        continues: str | None = None,
    ) -> str:
        run_id = new_id("run")
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO ops_runs ({_RUN_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL)",
                (
                    run_id,
                    tenant,
                    episode_id,
                    command.value,
                    orjson.dumps(dict(selection)).decode(),
                    operator,
                    reason,
                    int(forced),
                    readiness,
                    continues,
                    at,
                    RunStatus.RUNNING.value,
                ),
            )
        return run_id

    def finish_run(self, run_id: str, status: RunStatus, *, at: float, note: str | None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE ops_runs SET status=?, finished_at=?, note=? WHERE id=?",
                (status.value, at, note, run_id),
            )

    def run(self, run_id: str) -> RunRecord | None:
        row = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM ops_runs WHERE id=?", (run_id,))
        found = row.fetchone()
        return _run(found) if found is not None else None

    def runs(self, tenant: str, *, limit: int = 20) -> list[RunRecord]:
        rows = self.db.execute(
            f"SELECT {_RUN_COLUMNS} FROM ops_runs WHERE tenant=? "
            "ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (tenant, limit),
        )
        return [_run(row) for row in rows]

    def unfinished_runs(self, tenant: str) -> list[RunRecord]:
        """Runs still marked `running` (call this holding the tenant's ops lock: then none of
        them is alive), or interrupted with operations whose outcome is not settled."""
        rows = self.db.execute(
            f"SELECT {_RUN_COLUMNS} FROM ops_runs r WHERE tenant=? AND (status=? OR (status=? "
            "AND EXISTS (SELECT 1 FROM ops_operations o WHERE o.run_id = r.id "
            "AND o.status IN (?, ?)))) ORDER BY started_at, rowid",
            (
                tenant,
                RunStatus.RUNNING.value,
                RunStatus.INTERRUPTED.value,
                OpStatus.PLANNED.value,
                OpStatus.SENDING.value,
            ),
        )
        return [_run(row) for row in rows]

    def start_batch(
        self,
        run_id: str,
        number: int,
        *,
        critical: bool,
        objects: int,
        readiness: str | None,
        at: float,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO ops_batches (run_id, number, critical, objects, readiness, "
                "started_at, status) VALUES (?, ?, ?, ?, ?, ?, 'running')",
                (run_id, number, int(critical), objects, readiness, at),
            )

    def finish_batch(self, run_id: str, number: int, *, status: str, at: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE ops_batches SET status=?, finished_at=? WHERE run_id=? AND number=?",
                (status, at, run_id, number),
            )

    def batches(self, run_id: str) -> list[BatchRecord]:
        rows = self.db.execute(
            "SELECT run_id, number, critical, objects, readiness, started_at, finished_at, "
            "status FROM ops_batches WHERE run_id=? ORDER BY number",
            (run_id,),
        )
        return [
            BatchRecord(r[0], int(r[1]), bool(r[2]), int(r[3]), r[4], r[5], r[6], r[7])
            for r in rows
        ]

    def plan_operations(
        self, run_id: str, operations: Sequence[PlannedOperation], *, at: float
    ) -> None:
        """Record what a run (or one of its batches) is about to do, before it does any of it."""
        with self._transaction() as db:
            db.executemany(
                f"INSERT INTO ops_operations ({_OP_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 0, 0)",
                [
                    (
                        run_id,
                        op.object.id,
                        op.object.kind.value,
                        op.object.name,
                        op.batch,
                        op.target.value,
                        op.status.value,
                        op.detail,
                        at,
                    )
                    for op in operations
                ],
            )

    def intend(
        self,
        run_id: str,
        ref: ObjectRef,
        target: ProcessingState,
        *,
        at: float,
        episode_id: str | None,
    ) -> None:
        """Commit the intent before the PATCH. A pause within an episode lists the object as
        the episode's own (pending) at once, so that a crash right after the PATCH cannot
        leave a group paused by us but recorded nowhere."""
        with self._transaction() as db:
            db.execute(
                "UPDATE ops_operations SET status=?, attempts=attempts+1, updated_at=? "
                "WHERE run_id=? AND object_id=?",
                (OpStatus.SENDING.value, at, run_id, ref.id),
            )
            if target is ProcessingState.PAUSED and episode_id is not None:
                db.execute(
                    "INSERT INTO ops_episode_objects (episode_id, object_id, kind, name, role, "
                    "pending, paused_by_run) VALUES (?, ?, ?, ?, ?, 1, ?) "
                    "ON CONFLICT DO UPDATE SET pending = CASE WHEN role = ? AND paused_at IS "
                    "NULL THEN 1 ELSE pending END",
                    (
                        episode_id,
                        ref.id,
                        ref.kind.value,
                        ref.name,
                        Role.PAUSED.value,
                        run_id,
                        Role.PAUSED.value,
                    ),
                )

    def record_outcome(
        self,
        run_id: str,
        object_id: str,
        target: ProcessingState,
        status: OpStatus,
        *,
        at: float,
        detail: str | None = None,
        tenant: str,
        episode_id: str | None,
        requests: int = 0,
        throttled: int = 0,
    ) -> None:
        """The outcome of one operation, and what it means for the episodes: a confirmed pause
        belongs to the episode; a pause that did not happen leaves it; a confirmed resume is
        recorded on every open episode of the tenant that lists the object. `requests` and
        `throttled`: what the attempts cost (HTTP requests, 429s among them), added up."""
        applied = status in (OpStatus.DONE, OpStatus.UNCHANGED)
        with self._transaction() as db:
            db.execute(
                "UPDATE ops_operations SET status=?, detail=?, updated_at=?, "
                "requests=requests+?, throttled=throttled+? WHERE run_id=? AND object_id=?",
                (status.value, detail, at, requests, throttled, run_id, object_id),
            )
            if target is ProcessingState.PAUSED and episode_id is not None:
                if status is OpStatus.DONE:
                    db.execute(
                        "UPDATE ops_episode_objects SET pending=0, paused_at=?, "
                        "paused_by_run=?, resumed_at=NULL, resumed_by_run=NULL "
                        "WHERE episode_id=? AND object_id=? AND role=?",
                        (at, run_id, episode_id, object_id, Role.PAUSED.value),
                    )
                elif not applied:
                    db.execute(
                        "DELETE FROM ops_episode_objects WHERE episode_id=? AND object_id=? "
                        "AND role=? AND pending=1 AND paused_at IS NULL",
                        (episode_id, object_id, Role.PAUSED.value),
                    )
                    db.execute(
                        "UPDATE ops_episode_objects SET pending=0 WHERE episode_id=? "
                        "AND object_id=?",
                        (episode_id, object_id),
                    )
            elif target is ProcessingState.ON and applied:
                db.execute(
                    "UPDATE ops_episode_objects SET resumed_at=?, resumed_by_run=? "
                    "WHERE object_id=? AND resumed_at IS NULL AND episode_id IN "
                    "(SELECT id FROM ops_episodes WHERE tenant=? AND ended_at IS NULL)",
                    (at, run_id if status is OpStatus.DONE else None, object_id, tenant),
                )

    def supersede(self, run_id: str, *, at: float, note: str) -> int:
        """Close an interrupted run: its operations not settled become `superseded` (call after
        checking every `sending` one against Graph). Returns how many."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE ops_operations SET status=?, detail=?, updated_at=? WHERE run_id=? "
                "AND status IN (?, ?)",
                (
                    OpStatus.SUPERSEDED.value,
                    note,
                    at,
                    run_id,
                    OpStatus.PLANNED.value,
                    OpStatus.SENDING.value,
                ),
            )
            db.execute(
                "UPDATE ops_batches SET status='interrupted', finished_at=? WHERE run_id=? "
                "AND status='running'",
                (at, run_id),
            )
            db.execute(
                "UPDATE ops_runs SET status=?, finished_at=coalesce(finished_at, ?), "
                "note=coalesce(note, ?) WHERE id=? AND status IN (?, ?)",
                (
                    RunStatus.INTERRUPTED.value,
                    at,
                    note,
                    run_id,
                    RunStatus.RUNNING.value,
                    RunStatus.INTERRUPTED.value,
                ),
            )
            return cursor.rowcount

    def operations(
        self, run_id: str, statuses: Iterable[OpStatus] | None = None
    ) -> list[OperationRecord]:
        wanted = [s.value for s in statuses] if statuses is not None else None
        query = f"SELECT {_OP_COLUMNS} FROM ops_operations WHERE run_id=?"
        params: list[Any] = [run_id]
        if wanted is not None:
            query += f" AND status IN ({', '.join('?' * len(wanted))})"
            params += wanted
        rows = self.db.execute(query + " ORDER BY batch, name, object_id", params)
        return [_operation(row) for row in rows]


def _recorded_state(
    episode: EpisodeRecord,
    role: str,
    pending: bool,
    paused_at: float | None,
    resumed_at: float | None,
) -> tuple[ProcessingState, float, bool] | None:
    """An object's state as the ledger last recorded it, when, and whether that is when it
    changed: resumed (or found On); paused by this tool (confirmed); adopted or already paused
    when the episode began (seen paused then). None while a PATCH's outcome is unknown."""
    if resumed_at is not None:
        return ProcessingState.ON, resumed_at, True
    if pending:
        return None
    if role == Role.PAUSED and paused_at is not None:
        return ProcessingState.PAUSED, paused_at, True
    return ProcessingState.PAUSED, episode.started_at, False


def _episode(row: Sequence[Any]) -> EpisodeRecord:
    episode_id, tenant, started_at, started_by, reason, origin, ended_at, end_note = row
    return EpisodeRecord(
        episode_id, tenant, started_at, started_by, reason, Origin(origin), ended_at, end_note
    )


def _run(row: Sequence[Any]) -> RunRecord:
    (
        run_id,
        tenant,
        episode_id,
        command,
        selection,
        operator,
        reason,
        forced,
        readiness,
        continues,
        started_at,
        finished_at,
        status,
        note,
    ) = row
    return RunRecord(
        id=run_id,
        tenant=tenant,
        episode_id=episode_id,
        command=Command(command),
        selection=orjson.loads(selection),
        operator=operator,
        reason=reason,
        forced=bool(forced),
        readiness=readiness,
        continues=continues,
        started_at=started_at,
        finished_at=finished_at,
        status=RunStatus(status),
        note=note,
    )


def _operation(row: Sequence[Any]) -> OperationRecord:
    (
        run_id,
        object_id,
        kind,
        name,
        batch,
        target,
        status,
        attempts,
        detail,
        updated_at,
        requests,
        throttled,
    ) = row
    return OperationRecord(
        run_id=run_id,
        object=ObjectRef(object_id, DirectoryObjectKind(kind), name),
        batch=batch,
        target=ProcessingState(target),
        status=OpStatus(status),
        attempts=int(attempts),
        detail=detail,
        updated_at=updated_at,
        requests=int(requests),
        throttled=int(throttled),
    )


__all__ = [
    "BatchRecord",
    "Command",
    "EpisodeObject",
    "EpisodeRecord",
    "Ledger",
    "ObjectRef",
    "OpStatus",
    "OperationRecord",
    "Origin",
    "PlannedOperation",
    "Role",
    "RunRecord",
    "RunStatus",
]
