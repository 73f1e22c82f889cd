"""docs/alerts.yml and docs/operations.md against promtool and whiteboard/metrics.py.

promtool (Debian's `prometheus` package, scripts/system-deps.sh test) checks
the rules and runs their unit tests; a missing promtool fails, as any missing
tool does. The rules file is read here with a small parser of the YAML it is
written in (block mappings, lists, quoted and folded scalars): the project has
no YAML library, and promtool has already checked the file is valid.
"""

import re
import shutil
import subprocess

from prometheus_client.metrics import MetricWrapperBase

from tests.live import ROOT
from whiteboard import metrics

DOCS = ROOT / "docs"
RULES = DOCS / "alerts.yml"
RULE_TESTS = DOCS / "alerts.test.yml"
OPERATIONS = DOCS / "operations.md"
# Series the rules may use that the server does not define: Prometheus's own
# per target, and the blackbox exporter's probe result.
STANDARD_SERIES = {"up", "probe_success"}
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
PROMQL_WORDS |= {"bool", "and", "or", "unless", "offset"}


def promtool(*args):
    binary = shutil.which("promtool")
    assert binary, "promtool is required: apt-get install prometheus"
    return subprocess.run(
        [binary, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


# -- the server's metric families --------------------------------------------------


def families():
    """{name: type} of every metric whiteboard/metrics.py defines."""
    found = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                found[family.name] = family.type
    return found


def series_names():
    """Every series name the server exposes for its own families."""
    return {
        name + suffix for name, kind in families().items() for suffix in SUFFIXES[kind]
    }


# -- reading the rules file ----------------------------------------------------------


def scalar(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def parse_mapping(lines, start, indent):
    """A block mapping at `indent` from lines[start]: (dict, next index).
    Values are strings (plain, quoted or folded with >-), dicts or lists."""
    found = {}
    index = start
    while index < len(lines):
        line = lines[index]
        depth = len(line) - len(line.lstrip())
        if depth < indent or line.lstrip().startswith("- "):
            break
        key, _, rest = line.strip().partition(":")
        index += 1
        rest = rest.split(" #")[0].strip()
        if rest in (">-", ">", "|", "|-"):
            folded = []
            while index < len(lines) and indent_of(lines[index]) > depth:
                folded.append(lines[index].strip())
                index += 1
            found[key] = " ".join(folded) if rest.startswith(">") else "\n".join(folded)
        elif rest:
            found[key] = scalar(rest)
        elif index < len(lines) and indent_of(lines[index]) > depth:
            found[key], index = parse_value(lines, index)
        else:
            found[key] = None
    return found, index


def parse_list(lines, start, indent):
    items = []
    index = start
    while index < len(lines) and indent_of(lines[index]) == indent:
        line = lines[index]
        if not line.lstrip().startswith("- "):
            break
        # The item's first key sits two columns right of its dash.
        lines[index] = line.replace("- ", "  ", 1)
        if ":" in lines[index]:
            item, index = parse_mapping(lines, index, indent + 2)
        else:
            item, index = scalar(lines[index]), index + 1
        items.append(item)
    return items, index


def parse_value(lines, index):
    if lines[index].lstrip().startswith("- "):
        return parse_list(lines, index, indent_of(lines[index]))
    return parse_mapping(lines, index, indent_of(lines[index]))


def indent_of(line):
    return len(line) - len(line.lstrip())


def parse_yaml(text):
    lines = [
        line.rstrip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    found, index = parse_mapping(lines, 0, 0)
    assert index == len(lines), f"not read: {lines[index:]}"
    return found


def alert_rules():
    groups = parse_yaml(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def metric_names(expr):
    """The series names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr
    )
    expr = re.sub(r"\boffset\s+\w+", " ", expr)
    names = set()
    for word in re.finditer(r"[A-Za-z_:][\w:]*", expr):
        if word.group() in PROMQL_WORDS or expr[word.end() :].lstrip().startswith("("):
            continue
        names.add(word.group())
    return names


# -- reading docs/operations.md --------------------------------------------------------


def heading_anchors(markdown):
    """The anchors GitHub gives the headings of a Markdown page."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE):
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(anchor)
    return anchors


def yaml_blocks(markdown):
    return re.findall(r"^```yaml\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def docs_block(containing):
    """The one ```yaml block of docs/operations.md containing `containing`."""
    found = [b for b in yaml_blocks(OPERATIONS.read_text()) if containing in b]
    assert len(found) == 1, f"{len(found)} yaml blocks with {containing!r}"
    return found[0]


def docs_scrape_config():
    """The prometheus.yml part docs/operations.md tells the operator to use."""
    return docs_block("job_name: whiteboard\n")


# -- the tests -------------------------------------------------------------------------


def test_promtool_accepts_the_rules():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_every_alert_fires_and_stays_quiet_in_its_unit_tests():
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    tests = RULE_TESTS.read_text()
    for rule in alert_rules():
        assert f"alertname: {rule['alert']}\n" in tests, rule["alert"]


def test_the_parser_reads_the_rules_as_promtool_counts_them():
    rules = alert_rules()
    assert [rule["alert"] for rule in rules] == [
        "WhiteboardNotReady",
        "WhiteboardDown",
        "WhiteboardCommitSlow",
        "WhiteboardClosesRising",
        "WhiteboardChannelLayerErrors",
        "WhiteboardDatabaseErrors",
    ]
    assert rules[2]["expr"].startswith("histogram_quantile(0.99, sum by (instance, le)")
    assert (
        rules[3]["annotations"]["runbook"]
        == "docs/operations.md#whiteboardclosesrising"
    )


def test_every_alert_waits_has_a_severity_and_says_what_to_do():
    anchors = heading_anchors(OPERATIONS.read_text())
    for rule in alert_rules():
        name = rule["alert"]
        assert re.fullmatch(r"\d+m", rule.get("for") or ""), name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        notes = rule["annotations"]
        assert set(notes) >= {"summary", "description", "runbook"}, name
        assert all(notes[key].strip() for key in ("summary", "description")), name
        page, _, anchor = notes["runbook"].partition("#")
        assert page == "docs/operations.md", name
        assert anchor == name.lower() and anchor in anchors, name


def test_the_rules_use_only_series_that_exist():
    known = series_names() | STANDARD_SERIES
    used = set()
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, (rule["alert"], names - known)
        used |= names
    assert "whiteboard_commit_seconds_bucket" in used
    assert metric_names('sum by (le) (rate(a_b{c="d"}[5m])) > bool x') == {"a_b", "x"}


def test_the_operations_guide_names_every_family_and_alert():
    guide = OPERATIONS.read_text()
    assert len(families()) >= 10
    for name in families():
        assert f"`{name}" in guide, name
    # The table of alerts shows each expression whole (with | written \|).
    table = re.sub(r"\s+", "", guide.replace("\\|", "|"))
    for rule in alert_rules():
        assert f"### {rule['alert']}\n" in guide, rule["alert"]
        assert re.sub(r"\s+", "", rule["expr"]) in table, rule["alert"]


def test_the_guides_prometheus_configuration_is_valid(tmp_path):
    """The scrape jobs and rule_files of docs/operations.md, put together as
    an operator would, pass `promtool check config` with the real rules."""
    rule_files = docs_block("rule_files:")
    rule_files = rule_files.replace("/etc/prometheus/whiteboard-alerts.yml", str(RULES))
    readyz = docs_block("job_name: whiteboard-readyz")
    config = tmp_path / "prometheus.yml"
    config.write_text(rule_files + docs_scrape_config() + readyz)
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
    jobs = re.findall(r"job_name: (\S+)", config.read_text())
    assert jobs == ["whiteboard", "whiteboard-readyz"]
    for rule in alert_rules():
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs, rule["alert"]
