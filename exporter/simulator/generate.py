"""Builds a plausible tenant from a few numbers, deterministically from a seed.

Users and devices get attributes drawn from small, skewed domains (departments, countries,
cost centres, rollout waves, OS versions); dynamic groups get rules from templates of the kind
real tenants have (`user.department -eq "Sales"`, `(device.deviceOSType -eq "Windows") -and
(device.deviceOwnership -eq "Company")`, a few with -contains and -match). Every rule goes
through the real parser.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.simulator.model import DEVICE, USER, Container, Directory, ObjectTable, parse_rule
from exporter.simulator.render import guid_from_int

DOMAIN = "contoso.example"

DEPARTMENTS = (
    "Sales", "Engineering", "Support", "Operations", "Marketing", "Finance", "IT",
    "Human Resources", "Legal", "Research", "Manufacturing", "Logistics", "Procurement",
    "Customer Success", "Facilities", "Security", "Product", "Design", "Data", "Quality",
)  # fmt: skip
COUNTRIES = {
    "US": ("Seattle", "New York", "Austin", "Chicago"),
    "GB": ("London", "Manchester", "Edinburgh"),
    "DE": ("Berlin", "Munich", "Hamburg"),
    "FR": ("Paris", "Lyon"),
    "NL": ("Amsterdam", "Rotterdam"),
    "IN": ("Bengaluru", "Hyderabad", "Pune"),
    "JP": ("Tokyo", "Osaka"),
    "BR": ("Sao Paulo",),
    "CA": ("Toronto", "Vancouver"),
    "AU": ("Sydney", "Melbourne"),
    "ES": ("Madrid", "Barcelona"),
    "PL": ("Warsaw", "Krakow"),
}
LEVELS = ("", "Senior ", "Lead ", "Principal ", "Junior ")
ROLES = (
    "Engineer", "Analyst", "Manager", "Consultant", "Designer", "Specialist",
    "Administrator", "Technician", "Representative", "Director",
)  # fmt: skip
COMPANIES = ("Contoso", "Fabrikam", "Northwind Traders", "Tailspin Toys")
LICENSES = ("E3", "E5", "F3")
WAVES = ("wave-1", "wave-2", "wave-3", "wave-4")
FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ana", "Ben", "Chen", "Chloe", "Dana", "David", "Elena", "Emil",
    "Fatima", "Grace", "Hana", "Ivan", "Jade", "Jonas", "Kai", "Lara", "Leo", "Maya", "Mohammed",
    "Nia", "Noah", "Olga", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Sofia", "Tariq", "Uma",
    "Victor", "Wen", "Yara", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Bauer", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jansen",
    "Kowalski", "Lopez", "Martin", "Nakamura", "Okafor", "Patel", "Rossi", "Schmidt", "Silva",
    "Tanaka", "Usman", "Varga", "Wagner", "Xu", "Yilmaz", "Zhang",
)  # fmt: skip
OS_VERSIONS = {
    "Windows": ("10.0.19045", "10.0.22621", "10.0.22631", "10.0.26100"),
    "iOS": ("17.5", "17.6", "18.0", "18.1"),
    "Android": ("13", "14", "15"),
    "MacMDM": ("14.6", "15.0", "15.1"),
}
MANUFACTURERS = {
    "Windows": ("Dell Inc.", "HP", "Lenovo", "Microsoft Corporation"),
    "iOS": ("Apple",),
    "Android": ("Samsung", "Google"),
    "MacMDM": ("Apple",),
}
JOB_TITLES = tuple(level + role for level in LEVELS for role in ROLES)
NAMED_ENROLLMENT_PROFILES = ("Autopilot-Standard", "Autopilot-Kiosk", "ADE-Corporate")
ENROLLMENT_PROFILES = ("Autopilot-Standard", "Autopilot-Kiosk", "ADE-Corporate", None)
SITES = tuple(f"SITE-{n:02d}" for n in range(1, 41))


def cost_centres(users: int) -> tuple[str, ...]:
    """About 40 people per cost centre (at least 200 of them)."""
    return tuple(f"CC{n}" for n in range(1000, 1000 + max(200, users // 40)))


def projects(users: int) -> tuple[str, ...]:
    """About 25 people per project code (at least 100)."""
    return tuple(f"PRJ-{n:05d}" for n in range(1, 1 + max(100, users // 25)))


CUSTOM_EXTENSION = "extension_b1f0c2d43e5a4b6c8d7e9f0a1b2c3d4e_costCenter"
"""A directory extension property (HR provisioning's app registered it), as rules name it."""
USER_ATTRIBUTES = (
    "accountEnabled", "city", "country", "companyName", "department", "displayName",
    "employeeId", "jobTitle", "mail", "mailNickName", "userPrincipalName", "userType",
    "usageLocation", "officeLocation", "mobilePhone",
    *(f"extensionAttribute{n}" for n in range(1, 16)),
    # Generated empty (so that seeds keep giving the same tenant); set by changes and tests.
    "otherMails", "proxyAddresses", CUSTOM_EXTENSION,
    "memberOf",  # ids of the assigned groups the user is a member of (kept by the tenant)
)  # fmt: skip
DEVICE_ATTRIBUTES = (
    "accountEnabled", "deviceCategory", "deviceId", "deviceManufacturer", "deviceModel",
    "displayName", "deviceOSType", "deviceOSVersion", "deviceOwnership", "deviceTrustType",
    "enrollmentProfileName", "isRooted", "managementType",
    *(f"extensionAttribute{n}" for n in range(1, 16)),
    "devicePhysicalIds", "systemLabels",
)  # fmt: skip


def _zipf_weights(count: int, skew: float = 0.9) -> list[float]:
    return [1.0 / (rank + 1) ** skew for rank in range(count)]


def new_guid(rng: random.Random) -> str:
    return guid_from_int(rng.getrandbits(128))


def generate_users(
    rng: random.Random, count: int, table: ObjectTable, start: int = 0, size: int | None = None
) -> None:
    """Append `count` users; `size` (default: count) scales the high-cardinality domains."""
    if "extensionAttribute1" not in table.value_domains:
        table.value_domains["extensionAttribute1"] = cost_centres(size or count)
        table.value_domains["extensionAttribute4"] = projects(size or count)
    centres = table.value_domains["extensionAttribute1"]
    project_codes = table.value_domains["extensionAttribute4"]
    countries = list(COUNTRIES)
    country = rng.choices(countries, _zipf_weights(len(countries), 0.7), k=count)
    city = [rng.choice(COUNTRIES[c]) for c in country]
    first = rng.choices(FIRST_NAMES, k=count)
    last = rng.choices(LAST_NAMES, k=count)
    numbers = range(start, start + count)
    upn = [
        f"{f.lower()}.{la.lower()}{n}@{DOMAIN}"
        for f, la, n in zip(first, last, numbers, strict=True)
    ]
    columns: dict[str, list[Any]] = {
        "accountEnabled": [rng.random() < 0.97 for _ in range(count)],
        "country": country,
        "usageLocation": country,
        "city": city,
        "companyName": rng.choices(COMPANIES, (8, 3, 2, 1), k=count),
        "department": rng.choices(DEPARTMENTS, _zipf_weights(len(DEPARTMENTS)), k=count),
        "displayName": [f"{f} {la}" for f, la in zip(first, last, strict=True)],
        "employeeId": [f"E{n:07d}" for n in numbers],
        "jobTitle": [
            level + role
            for level, role in zip(
                rng.choices(LEVELS, (6, 3, 1, 0.5, 2), k=count),
                rng.choices(ROLES, _zipf_weights(len(ROLES), 0.6), k=count),
                strict=True,
            )
        ],
        "mail": upn,
        "mailNickName": [u.split("@")[0] for u in upn],
        "userPrincipalName": upn,
        "userType": rng.choices(("Member", "Guest"), (19, 1), k=count),
        "officeLocation": rng.choices(SITES, k=count),
        "mobilePhone": [None] * count,
        "extensionAttribute1": rng.choices(centres, _zipf_weights(len(centres), 0.5), k=count),
        "extensionAttribute2": rng.choices(SITES, _zipf_weights(len(SITES), 0.5), k=count),
        "extensionAttribute3": rng.choices((*WAVES, None), (3, 3, 2, 1, 1), k=count),
        "extensionAttribute4": rng.choices(project_codes, k=count),
        "extensionAttribute5": rng.choices(LICENSES, (6, 2, 2), k=count),
    }
    ids = [new_guid(rng) for _ in range(count)]
    table.bulk_load(ids, columns)


def generate_devices(
    rng: random.Random, count: int, table: ObjectTable, start: int = 0, size: int | None = None
) -> None:
    if "extensionAttribute2" not in table.value_domains:
        table.value_domains["extensionAttribute2"] = cost_centres(size or count)
    centres = table.value_domains["extensionAttribute2"]
    os_types = rng.choices(list(OS_VERSIONS), (6, 1.5, 1.5, 1), k=count)
    columns: dict[str, list[Any]] = {
        "accountEnabled": [True] * count,
        "deviceCategory": rng.choices(
            ("Standard", "Kiosk", "Developer", None), (6, 1, 1, 2), k=count
        ),
        "deviceId": [new_guid(rng) for _ in range(count)],
        "deviceManufacturer": [rng.choice(MANUFACTURERS[os]) for os in os_types],
        "deviceModel": [f"Model-{rng.randint(1, 12)}" for _ in range(count)],
        "displayName": [
            f"{'DESKTOP' if os == 'Windows' else os.upper()}-{n:06d}"
            for os, n in zip(os_types, range(start, start + count), strict=True)
        ],
        "deviceOSType": os_types,
        "deviceOSVersion": [rng.choice(OS_VERSIONS[os]) for os in os_types],
        "deviceOwnership": rng.choices(("Company", "Personal"), (4, 1), k=count),
        "deviceTrustType": ["AzureAd" if os == "Windows" else "Workplace" for os in os_types],
        "enrollmentProfileName": [
            rng.choice(ENROLLMENT_PROFILES) if os == "Windows" else None for os in os_types
        ],
        "isRooted": [False] * count,
        "managementType": rng.choices(("MDM", "EAS", None), (8, 1, 1), k=count),
        "extensionAttribute1": rng.choices(SITES, _zipf_weights(len(SITES), 0.5), k=count),
        "extensionAttribute2": rng.choices(centres, k=count),
    }
    ids = [new_guid(rng) for _ in range(count)]
    table.bulk_load(ids, columns)


def _q(value: str) -> str:
    return '"' + value.replace('"', '`"') + '"'


Template = Callable[[random.Random], tuple[str, str]]


def _user_templates(users: ObjectTable) -> list[tuple[float, Template]]:
    countries = list(COUNTRIES)
    centres = users.value_domains["extensionAttribute1"]
    project_codes = users.value_domains["extensionAttribute4"]

    def department(r: random.Random) -> tuple[str, str]:
        d = r.choice(DEPARTMENTS)
        return f"{d}", f"user.department -eq {_q(d)}"

    def department_country(r: random.Random) -> tuple[str, str]:
        d, c = r.choice(DEPARTMENTS), r.choice(countries)
        return f"{d} {c}", f"(user.department -eq {_q(d)}) -and (user.country -eq {_q(c)})"

    def country(r: random.Random) -> tuple[str, str]:
        c = r.choice(countries)
        return f"Country {c}", f"user.country -eq {_q(c)}"

    def cities(r: random.Random) -> tuple[str, str]:
        c = r.choice(countries)
        chosen = r.sample(COUNTRIES[c], min(2, len(COUNTRIES[c])))
        return f"Offices {'+'.join(chosen)}", f"user.city -in [{', '.join(_q(x) for x in chosen)}]"

    def level(r: random.Random) -> tuple[str, str]:
        lv = r.choice(LEVELS[1:]).strip()
        return f"{lv} staff", f"user.jobTitle -startsWith {_q(lv)}"

    def company(r: random.Random) -> tuple[str, str]:
        co = r.choice(COMPANIES)
        return (
            f"{co} enabled",
            f"(user.companyName -eq {_q(co)}) -and (user.accountEnabled -eq true)",
        )

    def cost_centre(r: random.Random) -> tuple[str, str]:
        cc = r.choice(centres)
        return f"Cost centre {cc}", f"user.extensionAttribute1 -eq {_q(cc)}"

    def project(r: random.Random) -> tuple[str, str]:
        code = r.choice(project_codes)
        return f"Project {code}", f"user.extensionAttribute4 -eq {_q(code)}"

    def cost_centre_level(r: random.Random) -> tuple[str, str]:
        cc, lv = r.choice(centres), r.choice(LEVELS[1:]).strip()
        return (
            f"{lv} staff {cc}",
            f"(user.extensionAttribute1 -eq {_q(cc)}) -and (user.jobTitle -startsWith {_q(lv)})",
        )

    def wave(r: random.Random) -> tuple[str, str]:
        w = r.choice((*WAVES, "wave-5"))
        return f"Rollout {w}", f"user.extensionAttribute3 -eq {_q(w)}"

    def wave_department(r: random.Random) -> tuple[str, str]:
        w, d = r.choice(WAVES), r.choice(DEPARTMENTS)
        return (
            f"Rollout {w} {d}",
            f"(user.extensionAttribute3 -eq {_q(w)}) -and (user.department -eq {_q(d)})",
        )

    def role_contains(r: random.Random) -> tuple[str, str]:
        role = r.choice(ROLES)
        return f"{role}s", f"user.jobTitle -contains {_q(role)}"

    def department_match(r: random.Random) -> tuple[str, str]:
        d = r.choice(DEPARTMENTS)
        return f"{d} (regex)", f"user.department -match {_q('^' + d[:4])}"

    def licence(r: random.Random) -> tuple[str, str]:
        c, lic = r.choice(countries), r.choice(LICENSES)
        return (
            f"Licence {lic} {c}",
            f"(user.usageLocation -eq {_q(c)}) -and (user.extensionAttribute5 -eq {_q(lic)})",
        )

    def site(r: random.Random) -> tuple[str, str]:
        s = r.choice(SITES)
        return f"Site {s}", f"user.extensionAttribute2 -eq {_q(s)}"

    def guests(r: random.Random) -> tuple[str, str]:
        return "Guests", 'user.userType -eq "Guest"'

    return [
        (6, department), (8, department_country), (2, country), (3, cities), (2, level),
        (1, company), (14, cost_centre), (10, project), (5, cost_centre_level), (3, wave),
        (6, wave_department), (2, role_contains), (1, department_match), (4, licence),
        (6, site), (0.2, guests),
    ]  # fmt: skip


# Templates with room for thousands of distinct rules: where a large tenant's groups come from
# once the broad ones (a few per country, department, OS) are all taken.
NARROW_USER_TEMPLATES = ("cost_centre", "project", "cost_centre_level")
NARROW_DEVICE_TEMPLATES = ("device_cost_centre",)


def _device_templates(devices: ObjectTable) -> list[tuple[float, Template]]:
    centres = devices.value_domains.get("extensionAttribute2", ("CC1000",))

    def device_cost_centre(r: random.Random) -> tuple[str, str]:
        cc = r.choice(centres)
        return f"Devices {cc}", f"device.extensionAttribute2 -eq {_q(cc)}"

    def os_type(r: random.Random) -> tuple[str, str]:
        os = r.choice(list(OS_VERSIONS))
        return f"{os} devices", f"device.deviceOSType -eq {_q(os)}"

    def corporate(r: random.Random) -> tuple[str, str]:
        os = r.choice(list(OS_VERSIONS))
        return (
            f"Corporate {os}",
            f'(device.deviceOSType -eq {_q(os)}) -and (device.deviceOwnership -eq "Company")',
        )

    def version(r: random.Random) -> tuple[str, str]:
        os = r.choice(list(OS_VERSIONS))
        v = r.choice(OS_VERSIONS[os])
        return f"{os} {v}", f"device.deviceOSVersion -startsWith {_q(v)}"

    def manufacturer(r: random.Random) -> tuple[str, str]:
        m = r.choice([m for ms in MANUFACTURERS.values() for m in ms])
        return f"Made by {m}", f"device.deviceManufacturer -eq {_q(m)}"

    def profile(r: random.Random) -> tuple[str, str]:
        p = r.choice([p for p in ENROLLMENT_PROFILES if p])
        return f"Profile {p}", f"device.enrollmentProfileName -eq {_q(p)}"

    def site(r: random.Random) -> tuple[str, str]:
        s = r.choice(SITES)
        return f"Devices {s}", f"device.extensionAttribute1 -eq {_q(s)}"

    return [
        (3, os_type), (4, corporate), (4, version), (2, manufacturer), (2, profile), (5, site),
        (6, device_cost_centre),
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class GroupSpec:
    name: str
    rule: str
    critical: bool = False
    paused: bool = False
    administrative_unit: bool = False
    description: str | None = None


@dataclass(frozen=True, slots=True)
class TenantSpec:
    users: int = 2000
    devices: int = 500
    dynamic_groups: int = 60
    device_group_share: float = 0.2
    administrative_units: int = 4
    static_groups: int = 10
    critical_groups: int = 3
    paused_groups: int = 0
    groups: Sequence[GroupSpec] = field(default_factory=tuple)
    hygiene_examples: bool = True
    """Some of `dynamic_groups` are the dead weight and rule mix of a real tenant
    (`hygiene_examples`): -or chains, memberOf rules, duplicates, contradictions, an empty and
    a dormant group (when dynamic_groups >= HYGIENE_EXAMPLES_FROM)."""


def generate_directory(spec: TenantSpec, seed: int, created: float) -> Directory:
    rng = random.Random(f"tenant-{seed}")
    users = ObjectTable(USER, USER_ATTRIBUTES)
    devices = ObjectTable(DEVICE, DEVICE_ATTRIBUTES)
    devices.value_domains["extensionAttribute2"] = cost_centres(spec.users)
    generate_users(rng, spec.users, users)
    generate_devices(rng, spec.devices, devices)
    directory = Directory(users, devices)
    names: set[str] = set()

    def add(
        name: str,
        rule_text: str | None,
        *,
        kind: DirectoryObjectKind = DirectoryObjectKind.GROUP,
        critical: bool = False,
        paused: bool = False,
        description: str | None = None,
    ) -> Container:
        unique = name
        counter = 2
        while unique in names:
            unique = f"{name} ({counter})"
            counter += 1
        names.add(unique)
        container = Container(
            index=len(directory.containers),
            id=new_guid(rng),
            kind=kind,
            display_name=unique,
            created=created - rng.uniform(30, 900) * 86400,
            description=description,
            rule=None if rule_text is None else parse_rule(rule_text),
            state=ProcessingState.PAUSED if paused else ProcessingState.ON,
            critical=critical,
        )
        return directory.add_container(container)

    for group in spec.groups:
        add(
            group.name,
            group.rule,
            kind=(
                DirectoryObjectKind.ADMINISTRATIVE_UNIT
                if group.administrative_unit
                else DirectoryObjectKind.GROUP
            ),
            critical=group.critical,
            paused=group.paused,
            description=group.description,
        )
    user_templates = _user_templates(users)
    device_templates = _device_templates(devices)
    device_count = round(spec.dynamic_groups * spec.device_group_share) if spec.devices else 0
    rules_taken: set[str] = {g.rule for g in spec.groups}
    generated: list[Container] = []
    examples = (
        spec.hygiene_examples
        and spec.dynamic_groups >= HYGIENE_EXAMPLES_FROM
        and len(users) > 0
        and spec.static_groups >= 3  # the memberOf examples name three of them
    )
    templated = spec.dynamic_groups - (len(HYGIENE_EXAMPLES) if examples else 0)
    for number in range(templated):
        is_device = number < device_count
        templates = device_templates if is_device else user_templates
        narrow_names = NARROW_DEVICE_TEMPLATES if is_device else NARROW_USER_TEMPLATES
        narrow = [t for t in templates if t[1].__name__ in narrow_names]
        weights = [w for w, _ in templates]
        label, rule = "", ""
        # A tenant does not have two groups with one rule: retry, then fall back to templates
        # with room for many distinct rules.
        for attempt in range(40):
            pool = templates if attempt < 20 else narrow
            (_, template) = rng.choices(pool, [w for w, _ in pool] if attempt >= 20 else weights)[0]
            label, rule = template(rng)
            if rule not in rules_taken:
                break
        rules_taken.add(rule)
        prefix = "DEV" if is_device else "DG"
        generated.append(add(f"{prefix} {label}", rule, description=f"Dynamic: {label}"))
    # Critical and already-paused groups come from the user groups, largest rules first among
    # a deterministic shuffle, so that each scenario has a few to protect and a few to skip.
    user_generated = [g for g in generated if g.member_type == USER] or generated
    order = list(user_generated)
    rng.shuffle(order)
    for container in order[: spec.critical_groups]:
        container.critical = True
    for container in order[spec.critical_groups : spec.critical_groups + spec.paused_groups]:
        container.state = ProcessingState.PAUSED
    countries = list(COUNTRIES)
    for number in range(spec.administrative_units):
        c = countries[number % len(countries)]
        add(
            f"AU {c}",
            f"user.country -eq {_q(c)}",
            kind=DirectoryObjectKind.ADMINISTRATIVE_UNIT,
            description=f"Users in {c}",
        )
    for number in range(spec.static_groups):
        container = add(f"Team {number + 1:03d}", None, description="Assigned membership")
        if len(users):
            size = min(len(users), rng.randint(5, 60))
            container.members = set(rng.sample(range(len(users)), size))
            member_of = users.columns["memberOf"]
            for member in sorted(container.members):
                member_of[member] = [*(member_of[member] or ()), container.id]
    if examples:
        _add_hygiene_examples(directory, seed, created)
    dynamic = [c for c in directory.containers if c.rule is not None]
    for container_index, members in directory.evaluate_members(dynamic, created).items():
        container = directory.containers[container_index]
        container.members = members
        container.evaluated = True
        container.last_membership_updated = created - rng.uniform(600, 86400)
    return directory


# -- dead weight and the rule mix of a real tenant --------------------------------------------

HYGIENE_EXAMPLES_FROM = 30


@dataclass(frozen=True, slots=True)
class HygieneExample:
    name: str
    rule: str
    dormant: bool = False
    """No dynamic membership change in the pre-written history (nothing it reads changes)."""


# `{team1}`.. are the ids of the first assigned groups (memberOf rules name source groups).
HYGIENE_EXAMPLES: tuple[HygieneExample, ...] = (
    # -or chains, as real tenants write them; the second is the first's duplicate
    HygieneExample(
        "DG Sales or Marketing", 'user.department -eq "Sales" -or user.department -eq "Marketing"'
    ),
    HygieneExample("DG Marketing and Sales", 'user.department -in ["MARKETING", "sales"]'),
    HygieneExample(
        "DG Support GB or DE",
        '(user.department -eq "Support" -and user.country -eq "GB") -or '
        '(user.department -eq "Support" -and user.country -eq "DE")',
    ),
    # duplicates by case, whitespace and operand order
    HygieneExample(
        "DG Engineering Berlin", 'user.department -eq "Engineering" -and user.city -eq "Berlin"'
    ),
    HygieneExample(
        "DG Berlin engineers",
        '(user.city -eq "berlin")   -and  (user.department -eq "ENGINEERING")',
    ),
    # memberOf (preview): their members follow the named assigned groups (manual changes)
    HygieneExample(
        "DG Members of Team 001", 'user.memberOf -any (group.objectId -in ["{team1}"])', True
    ),
    HygieneExample(
        "DG Members of Teams 002-003",
        'user.memberOf -any (group.objectId -in ["{team2}", "{team3}"])',
        True,
    ),
    # contradictions: never match
    HygieneExample(
        "DG Sales in Finance",
        'user.department -eq "Sales" -and user.department -eq "Finance"',
        True,
    ),
    HygieneExample("DG Retired sites", "user.extensionAttribute2 -in []", True),
    # empty without a contradiction, and dormant with members
    HygieneExample("DG Decommissioned", 'user.department -eq "Decommissioned"', True),
    HygieneExample(
        "DG Tailspin guests",
        'user.companyName -eq "Tailspin Toys" -and user.userType -eq "Guest"',
        True,
    ),
)


def _add_hygiene_examples(directory: Directory, seed: int, created: float) -> None:
    """The HYGIENE_EXAMPLES, with their own random stream so the rest of the tenant is the one
    the seed always gave."""
    rng = random.Random(f"hygiene-{seed}")
    teams = [c.id for c in directory.containers if c.rule is None]
    names = {c.display_name for c in directory.containers}
    for example in HYGIENE_EXAMPLES:
        name = example.name
        while name in names:
            name += " (2)"
        container = Container(
            index=len(directory.containers),
            id=new_guid(rng),
            kind=DirectoryObjectKind.GROUP,
            display_name=name,
            created=created - rng.uniform(120, 900) * 86400,
            description="Dynamic: " + example.name.removeprefix("DG "),
            rule=parse_rule(example.rule.format(team1=teams[0], team2=teams[1], team3=teams[2])),
        )
        container.dormant = example.dormant
        directory.add_container(container)


# -- everyday changes -------------------------------------------------------------------------

# attribute -> weight, for the steady load's "Update user" (some no rule reads)
USER_UPDATE_WEIGHTS = {
    "jobTitle": 3.0,
    "department": 1.0,
    "city": 1.0,
    "extensionAttribute1": 2.0,
    "extensionAttribute2": 1.5,
    "officeLocation": 3.0,
    "mobilePhone": 3.0,
}
DEVICE_UPDATE_WEIGHTS = {
    "deviceOSVersion": 4.0,
    "extensionAttribute1": 1.0,
    "deviceCategory": 2.0,
    "enrollmentProfileName": 0.5,
}


def random_update(rng: random.Random, table: ObjectTable, index: int) -> tuple[str, Any]:
    """An everyday attribute change for one object: (attribute, new value)."""
    weights = USER_UPDATE_WEIGHTS if table.object_type == USER else DEVICE_UPDATE_WEIGHTS
    name = rng.choices(list(weights), list(weights.values()), k=1)[0]
    return name, new_value(rng, table, index, name)


def candidates_for(table: ObjectTable, index: int, name: str) -> Sequence[Any] | None:
    """Values an everyday change may set `name` to (None: free text, see `new_value`)."""
    if name == "jobTitle":
        return JOB_TITLES
    if name == "department":
        return DEPARTMENTS
    if name == "city":
        return COUNTRIES.get(str(table.get(index, "country")), ("Seattle",))
    if name in table.value_domains:
        return table.value_domains[name]
    if name in ("extensionAttribute2", "officeLocation", "extensionAttribute1"):
        return SITES
    if name == "deviceOSVersion":
        return OS_VERSIONS.get(str(table.get(index, "deviceOSType")), ("1.0",))
    if name == "deviceCategory":
        return ("Standard", "Kiosk", "Developer")
    if name == "enrollmentProfileName":
        return NAMED_ENROLLMENT_PROFILES
    return None


def new_value(rng: random.Random, table: ObjectTable, index: int, name: str) -> Any:
    current = table.get(index, name)
    candidates = candidates_for(table, index, name)
    if candidates is None:
        return f"+1 555 {rng.randint(1000000, 9999999)}" if name == "mobilePhone" else current
    options = [c for c in candidates if c != current] or list(candidates)
    return rng.choice(options)


def describe_change(
    table: ObjectTable,
    index: int,
    bits: int,
    read_by_rules: Callable[[str], bool] | None = None,
) -> tuple[str, Any, Any]:
    """A plausible everyday change of one object as a pure function of 64 random bits (for
    procedurally generated history): (attribute, old value, new value). With `read_by_rules`,
    only attributes it accepts are changed (when it accepts any)."""
    weights = USER_UPDATE_WEIGHTS if table.object_type == USER else DEVICE_UPDATE_WEIGHTS
    if read_by_rules is not None:
        read = {name: w for name, w in weights.items() if read_by_rules(name)}
        weights = read or weights
    point = (bits & 0xFFFF) / 0x10000 * sum(weights.values())
    name = next(iter(weights))
    for name, weight in weights.items():  # noqa: B007 (the last name is the fallback)
        if point < weight:
            break
        point -= weight
    current = table.get(index, name)
    candidates = candidates_for(table, index, name)
    if candidates is None:
        return name, current, f"+1 555 {1000000 + (bits >> 16) % 9000000}"
    choice = candidates[(bits >> 16) % len(candidates)]
    if choice == current and len(candidates) > 1:
        choice = candidates[((bits >> 16) + 1) % len(candidates)]
    return name, current, choice
