"""Evaluation speed of exporter.domain.rules: `python bench/bench_rules.py [--users N]`.

Builds N synthetic users and evaluates a mix of typical rules (the shapes Microsoft documents)
over all of them, reporting evaluations per second per rule shape and overall. The simulator
evaluates ~15,000 rules over ~200,000 users, re-evaluating only the rules that read a changed
property, so this is the figure that bounds how fast it can process a bulk change.
"""

from __future__ import annotations

import argparse
import random
import time

from exporter.domain.rules import parse

RULES = {
    "eq": 'user.department -eq "Sales"',
    "and-eq": 'user.department -eq "Sales" -and user.country -eq "US"',
    "in-13": 'user.department -in ["50001","50002","50003","50005","50006","50007","50008",'
    '"50016","50020","50024","50038","50039","51100"]',
    "or-chain-5": " -or ".join(
        f'user.city -eq "{c}"' for c in ("Lagos", "Ibadan", "Kaduna", "Abuja", "Port Harcourt")
    ),
    "startsWith": 'user.jobTitle -startsWith "Sales"',
    "not+ne": 'user.accountEnabled -eq true -and -not (user.userType -eq "Guest")',
    "contains": 'user.mail -contains "contoso"',
    "match": 'user.displayName -match "^Da.*vid$"',
    "extensionAttribute": 'user.extensionAttribute3 -eq "FTE" -and '
    "user.extensionAttribute7 -ne null",
    "proxyAddresses-any": 'user.proxyAddresses -any (_ -startsWith "smtp:sales")',
    "assignedPlans-any": 'user.assignedPlans -any (assignedPlan.service -eq "SCO" -and '
    'assignedPlan.capabilityStatus -eq "Enabled")',
    "memberOf": "user.memberOf -any (group.objectId -in ['0b7a7a1e-0000-4000-8000-000000000001'])",
    "hire-date": "user.employeeHireDate -ge system.now -minus P30D -and "
    "user.employeeHireDate -le system.now",
}


def make_users(count: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    departments = ["Sales", "Marketing", "Engineering", "50001", "50039", "Finance", None]
    cities = ["Lagos", "Ibadan", "Seattle", "Paris", "Abuja", None]
    now = 1_750_000_000.0
    users: list[dict[str, object]] = []
    for i in range(count):
        users.append(
            {
                "objectId": f"00000000-0000-4000-8000-{i:012d}",
                "displayName": rng.choice(["David", "Dana", "Ada", "Bob"]) + f" {i}",
                "department": rng.choice(departments),
                "country": rng.choice(["US", "NG", "FR"]),
                "city": rng.choice(cities),
                "jobTitle": rng.choice(["Sales Manager", "Engineer", "SDE II", None]),
                "mail": f"user{i}@" + rng.choice(["contoso.com", "fabrikam.com"]),
                "accountEnabled": rng.random() < 0.95,
                "userType": rng.choice(["Member", "Member", "Guest"]),
                "extensionAttribute3": rng.choice(["FTE", "Contractor", None]),
                "extensionAttribute7": rng.choice(["x", None]),
                "proxyAddresses": [f"SMTP:user{i}@contoso.com", f"smtp:sales{i}@contoso.com"][
                    : rng.randint(0, 2)
                ],
                "assignedPlans": [
                    {"service": rng.choice(["SCO", "exchange"]), "capabilityStatus": "Enabled"}
                    for _ in range(rng.randint(0, 4))
                ],
                "memberOf": [f"0b7a7a1e-0000-4000-8000-{rng.randint(0, 30):012d}"],
                "employeeHireDate": now - rng.randint(0, 400) * 86400,
            }
        )
    return users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=200_000)
    args = parser.parse_args()
    users = make_users(args.users)
    now = 1_750_000_000.0
    total_evaluations = 0
    total_seconds = 0.0
    print(f"{'rule':<22}{'evals/s':>14}{'matched':>10}")
    for name, text in RULES.items():
        matches = parse(text).matches
        started = time.perf_counter()
        matched = sum(1 for user in users if matches(user, now))
        elapsed = time.perf_counter() - started
        total_evaluations += len(users)
        total_seconds += elapsed
        print(f"{name:<22}{len(users) / elapsed:>14,.0f}{matched:>10}")
    print(f"{'all shapes':<22}{total_evaluations / total_seconds:>14,.0f}")
    started = time.perf_counter()
    for _ in range(1000):
        for text in RULES.values():
            parse(text)
    parse_rate = 1000 * len(RULES) / (time.perf_counter() - started)
    print(f"parse+compile: {parse_rate:,.0f} rules/s")


if __name__ == "__main__":
    main()
