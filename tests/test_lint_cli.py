"""`entra-dg-exporter lint-rules`: inputs, output forms and exit codes, through click."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from exporter.cli.lint_rules import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_UNUSABLE_INPUT,
    RuleRecord,
    RuleSourceError,
    parse_rules_text,
)
from exporter.cli.main import cli

CLEAN = 'user.department -eq "Sales"'
WARNING = 'user.city -match "^Lag"'
ERROR = 'user.city -eq "Lagos" -and device.deviceOSType -eq "iOS"'


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["lint-rules", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_listed_in_help() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "lint-rules" in result.stdout


def test_clean_rules_exit_0(tmp_path: Path) -> None:
    code, out, err = run("--rules-file", write(tmp_path, "r.txt", f"{CLEAN}\n\n# note\n"))
    assert code == EXIT_CLEAN, err
    assert out.strip().endswith("1 rule(s), 0 with findings: 0 error(s), 0 warning(s), 0 info")


def test_warnings_pass_by_default_and_fail_with_fail_on_warning(tmp_path: Path) -> None:
    rules = write(tmp_path, "r.txt", f"{CLEAN}\n{WARNING}\n")
    assert run("--rules-file", rules)[0] == EXIT_CLEAN
    assert run("--rules-file", rules, "--fail-on", "warning")[0] == EXIT_FINDINGS
    assert run("--rules-file", rules, "--fail-on", "info")[0] == EXIT_FINDINGS


def test_errors_exit_1(tmp_path: Path) -> None:
    code, out, _ = run("--rules-file", write(tmp_path, "r.txt", f"{ERROR}\n"))
    assert code == EXIT_FINDINGS
    assert "mixed-object-types" in out


def test_human_output_has_caret_and_rewrite_and_no_colour_off_a_terminal(tmp_path: Path) -> None:
    code, out, _ = run("--rules-file", write(tmp_path, "r.txt", f"{CLEAN}\n{WARNING}\n"))
    assert code == EXIT_CLEAN
    assert "\x1b[" not in out
    lines = out.splitlines()
    assert lines[0] == "line 2"
    assert lines[1].startswith("  1:11 warning match-operator: -match evaluates")
    assert lines[2] == f"    {WARNING}"
    assert lines[3] == "    " + " " * 10 + "^"
    assert lines[4] == '    rewrite: user.city -startsWith "Lag"'
    assert "rules using inefficient operators: match 1" in lines[-1]


def test_json_output(tmp_path: Path) -> None:
    rules = write(tmp_path, "r.txt", f"{CLEAN}\n{WARNING}\n{ERROR}\n")
    code, out, _ = run("--rules-file", rules, "--json")
    assert code == EXIT_FINDINGS
    document = json.loads(out)
    assert document["source"] == rules
    assert document["summary"] == {
        "rules": 3,
        "rules_with_findings": 2,
        "error": 1,
        "warning": 1,
        "info": 0,
    }
    assert document["operator_usage"] == {
        "match": 1,
        "contains": 0,
        "memberof": 0,
        "or_chain": 0,
        "ne_chain": 0,
    }
    clean, warning, error = document["rules"]
    assert clean == {"id": "line 1", "name": None, "rule": CLEAN, "findings": []}
    assert warning["findings"] == [
        {
            "code": "match-operator",
            "severity": "warning",
            "message": warning["findings"][0]["message"],
            "position": 10,
            "line": 1,
            "column": 11,
            "rewrite": 'user.city -startsWith "Lag"',
        }
    ]
    assert error["findings"][0]["position"] == ERROR.index("device.")


def test_yaml_list_of_records(tmp_path: Path) -> None:
    text = yaml.safe_dump(
        [
            {"id": "g1", "name": "Sales", "rule": CLEAN},
            {"id": "g2", "name": "Lagos staff", "rule": WARNING},
        ]
    )
    code, out, _ = run("--rules-file", write(tmp_path, "rules.yaml", text), "--json")
    assert code == EXIT_CLEAN
    names = [(r["id"], r["name"]) for r in json.loads(out)["rules"]]
    assert names == [("g1", "Sales"), ("g2", "Lagos staff")]


def test_graph_groups_response_from_stdin() -> None:
    body = {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#groups",
        "value": [
            {"id": "g1", "displayName": "All users", "membershipRule": "user.objectId -ne null"},
            {"id": "g2", "displayName": "Assigned", "membershipRule": None},
            {"id": "g3", "displayName": "Devices", "membershipRule": ERROR},
        ],
    }
    code, out, _ = run("--rules-file", "-", "--json", stdin=json.dumps(body))
    assert code == EXIT_FINDINGS
    assert [r["id"] for r in json.loads(out)["rules"]] == ["g1", "g3"]


def test_multi_line_rule_in_yaml_reports_line_and_column(tmp_path: Path) -> None:
    rule = '(user.city -eq "a") -or\n(user.city -match "^b")'
    text = yaml.safe_dump([{"id": "g", "rule": rule}])
    code, out, _ = run("--rules-file", write(tmp_path, "r.yml", text))
    assert code == EXIT_CLEAN
    assert "  2:12 warning match-operator" in out
    assert '    (user.city -match "^b")\n               ^' in out


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.txt", "\n# only a comment\n", "empty.txt: no rules found"),
        ("bad.json", '[{"rule": "x"', "bad.json: not valid JSON (line 1, column 14:"),
        ("bad.yaml", "- rule: [unclosed\n", "bad.yaml: not valid YAML (line 2)"),
        ("obj.json", '{"rules": []}', "obj.json: expected a list of rules"),
        ("num.json", "[1]", "num.json: item 1: expected a rule string or a mapping with 'rule'"),
        ("norule.json", '[{"id": "g1"}]', "norule.json: item 1: expected the rule text"),
    ],
)
def test_unusable_input_exits_2(tmp_path: Path, name: str, text: str, message: str) -> None:
    code, out, err = run("--rules-file", write(tmp_path, name, text))
    assert code == EXIT_UNUSABLE_INPUT
    assert out == ""
    assert err.startswith(f"lint-rules: {tmp_path / message}")
    assert err.count("\n") == 1


def test_missing_file_and_missing_option_exit_2(tmp_path: Path) -> None:
    code, _, err = run("--rules-file", str(tmp_path / "absent.txt"))
    assert (code, err) == (
        EXIT_UNUSABLE_INPUT,
        f"lint-rules: {tmp_path}/absent.txt: no such file\n",
    )
    code, _, err = run()
    assert code == EXIT_UNUSABLE_INPUT
    assert "pass --rules-file" in err
    assert run("--rules-file", str(tmp_path))[0] == EXIT_UNUSABLE_INPUT


def test_rules_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENTRA_DG_RULES_FILE", write(tmp_path, "r.txt", ERROR))
    assert run()[0] == EXIT_FINDINGS


def test_parse_rules_text_forms() -> None:
    assert parse_rules_text(f'["{WARNING.replace(chr(34), chr(92) + chr(34))}"]', "x") == [
        RuleRecord("item 1", None, WARNING)
    ]
    assert parse_rules_text(f"  {CLEAN}  \n", "x") == [RuleRecord("line 1", None, CLEAN)]
    with pytest.raises(RuleSourceError, match="no rules found"):
        parse_rules_text("[]", "x")
