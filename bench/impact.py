"""Impact preflight: how long `entra-dg-exporter impact` takes to predict a bulk change.

A simulated tenant (users, devices and dynamic groups from the simulator's rule templates, no
everyday load) is read once through the real Graph client (a full delta round with `$select`
of the properties the rules read) into the SQLite store; then the command's own code path
(`exporter.cli.impact.run_preflight`, from the stored objects) predicts a bulk-update file
setting `extensionAttribute3` (a rollout wave, read by many generated rules) on N users, for
several N. The prediction time is the change set's construction plus
`exporter.domain.impact.predict`. Finally the tenant applies the largest change and a second
preflight reads only that delta. Target: 30,000 changed users against 15,000 rules over
200,000 users and 50,000 devices in under 30 s.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Figure, Section
from exporter.cli.impact import ChangeRequest, Preflight, run_preflight
from exporter.config.loading import load_config
from exporter.ops.session import choose_tenant
from exporter.simulator.app import running_simulator
from exporter.simulator.exporter_config import simulated_tenant_config, write_config_file
from exporter.simulator.model import USER

TARGET_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class ImpactSize:
    users: int
    devices: int
    groups: int
    changed: tuple[int, ...]


FULL = ImpactSize(200_000, 50_000, 14_995, (3_000, 10_000, 30_000))
SMOKE = ImpactSize(2_000, 500, 300, (100, 300))
QUIET = dict.fromkeys(
    (
        "user_updates_per_hour",
        "device_updates_per_hour",
        "user_adds_per_hour",
        "device_adds_per_hour",
        "manual_changes_per_hour",
        "group_updates_per_hour",
    ),
    0,
)


def bulk_file(ids: list[str], value: str, column: str = "extensionAttribute3") -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", column])
    writer.writerows([object_id, value] for object_id in ids)
    return out.getvalue()


async def run(size: ImpactSize, runs: int, workdir: Path) -> Section:
    section = Section(
        "impact",
        "Impact preflight: a bulk change predicted",
        __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    )
    overrides = {
        "tenant": {
            "users": size.users,
            "devices": size.devices,
            "dynamic_groups": size.groups,
            # with the scenario's own group: 15,000 rules, Entra's limit
            "administrative_units": 4,
        },
        "load": QUIET,
    }
    built = time.perf_counter()
    async with running_simulator("steady", overrides=overrides, speed=0, history_days=0) as sim:
        section.notes.append(
            f"tenant of {size.users:,} users, {size.devices:,} devices, {size.groups:,} dynamic "
            f"groups built in {time.perf_counter() - built:.0f} s"
        )
        directory = workdir / "impact"
        directory.mkdir(exist_ok=True)
        path = write_config_file(
            directory / "config.yaml",
            simulated_tenant_config(
                sim.base_url, directory / "state.sqlite3", token="bench", tenant="bench"
            ),
        )
        config = load_config(path)
        tenant = choose_tenant(config, "bench")
        users = sim.tenant.directory.users
        # Every other user, so that the changed ones span departments, countries and waves.
        ids = users.ids[:: max(1, size.users // max(size.changed))][: max(size.changed)]
        first: Preflight = await run_preflight(
            config, tenant, ChangeRequest(csv_text=bulk_file(ids[:1], "wave-5"))
        )
        section.row(
            "full read of users (Graph requests, seconds)",
            f"{first.read.requests:,} requests, {first.read.seconds:.1f} s for "
            f"{first.read.objects:,} users ({len(first.read.properties)} properties)",
        )
        largest = None
        whole = Figure("s", digits=1)
        for changed in size.changed:
            figure = Figure("s", digits=2)
            result = first
            for _ in range(runs):
                started = time.perf_counter()
                result = await run_preflight(
                    config,
                    tenant,
                    ChangeRequest(csv_text=bulk_file(ids[:changed], "wave-5")),
                    refresh=False,
                )
                if changed == max(size.changed):
                    whole.add(time.perf_counter() - started)
                figure.add(result.predict_seconds)
            totals = result.impact.totals
            is_target = changed == 30_000 and size == FULL
            section.row(
                f"predict {changed:,} changed users against {size.groups:,} rules",
                figure,
                target=f"< {TARGET_SECONDS:.0f} s" if is_target else "",
                met=figure.median < TARGET_SECONDS if is_target else None,
            )
            section.notes.append(
                f"{changed:,} users: {totals.groups_reevaluated:,} groups re-evaluated, "
                f"{totals.groups_changed:,} change, {totals.membership_changes:,} membership "
                f"changes; pause warranted: {'yes' if result.impact.pause_warranted else 'no'}"
            )
            largest = changed
        assert largest is not None
        section.row(
            f"whole command for {largest:,} users, from the stored objects (list the rules "
            "through Graph, load the store, read the file, predict)",
            whole,
        )
        # The costly case: a property many rules read (a cost centre, one rule per centre).
        centre = str(users.get(0, "extensionAttribute1"))
        figure = Figure("s", digits=2)
        for _ in range(runs):
            result = await run_preflight(
                config,
                tenant,
                ChangeRequest(csv_text=bulk_file(ids[:largest], centre, "extensionAttribute1")),
                refresh=False,
            )
            figure.add(result.predict_seconds)
        totals = result.impact.totals
        section.row(
            f"predict {largest:,} users moved to one cost centre (extensionAttribute1, read by "
            f"{totals.groups_reevaluated:,} rules)",
            figure,
        )
        section.notes.append(
            f"cost centre change: {totals.groups_changed:,} groups change, "
            f"{totals.membership_changes:,} membership changes"
        )
        sim.tenant.apply_object_changes(
            USER, {object_id: {"extensionAttribute3": "wave-5"} for object_id in ids[:largest]}
        )
        delta = await run_preflight(
            config, tenant, ChangeRequest(csv_text=bulk_file(ids[:1], "wave-6"))
        )
        section.row(
            f"delta read after {largest:,} users changed",
            f"{delta.read.requests:,} requests, {delta.read.seconds:.1f} s ({delta.read.mode})",
        )
    return section
