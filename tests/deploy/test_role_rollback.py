"""Static checks of the role's model storage, automatic rollback and --check safety (issue 11, 13 and 14).

The behaviour itself is shown by .ci/deploy-gate.sh against a real Debian root and a live systemd
(stages 5a, 6a, 10b, 10c); these tests keep the shape that makes it work from drifting, without
root, network or Ansible. Plain text parsing, as in test_deploy_files.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance import words
from tests.helpers.paths import REPO

ROLE = REPO / "deploy" / "roles" / "leaf_appliance"
TASKS = ROLE / "tasks"
HANDLERS = ROLE / "handlers" / "main.yml"
ROLE_VARS = ROLE / "vars" / "main.yml"
REQUIREMENTS_TEMPLATE = ROLE / "templates" / "requirements.txt.j2"
TECHNICIAN_GUIDE = REPO / "deploy" / "TECHNICIAN.md"


def role_variable_text(path: Path, name: str) -> str:
    """The raw value of a top-level variable: one line, or a folded (>-) block joined by spaces."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"{name}:"):
            value = line.partition(":")[2].strip()
            if value not in (">-", ">"):
                return value.strip("\"'")
            block = []
            for follow in lines[index + 1 :]:
                if not follow.startswith("  "):
                    break
                block.append(follow.strip())
            return " ".join(block)
    raise AssertionError(f"{name} not in {path}")


def render(expression: str, **variables: str) -> str:
    """A role variable's Jinja expression rendered with the given variables (filters: basename, dirname)."""
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["basename"] = lambda p: Path(p).name
    env.filters["dirname"] = lambda p: str(Path(p).parent)
    return env.from_string(expression).render(**variables)


def tasks_of(path: Path) -> list[str]:
    """Each top-level task of a task or handler file, as text (nested block tasks stay inside theirs)."""
    return ["- name:" + block for block in path.read_text(encoding="utf-8").split("\n- name:")[1:]]


def nested_tasks_of(path: Path) -> list[str]:
    """Every task at any nesting depth, as text up to the next task name at the same or lower indent."""
    text = path.read_text(encoding="utf-8")
    starts = [(m.start(), len(m.group(1))) for m in re.finditer(r"^( *)- name:", text, re.MULTILINE)]
    tasks = []
    for number, (start, indent) in enumerate(starts):
        end = next((s for s, i in starts[number + 1 :] if i <= indent), len(text))
        tasks.append(text[start:end])
    return tasks


def test_each_model_is_kept_under_its_sha256_so_a_new_one_never_overwrites_it() -> None:
    """Issue 11.13: a new model under the same file name overwrote the previous one on the Pi."""
    expression = role_variable_text(ROLE_VARS, "leaf_appliance_model_file")
    paths = {
        sha: render(
            expression,
            leaf_appliance_model_dir="/opt/leaf-appliance/models",
            leaf_appliance_model_expected_sha256=sha,
            leaf_appliance_model_src="/controller/models/leafnet-int8.onnx",
        )
        for sha in ("ab" * 32, "cd" * 32)
    }
    assert paths["ab" * 32] == f"/opt/leaf-appliance/models/{'ab' * 32}/leafnet-int8.onnx"
    assert len(set(paths.values())) == 2, "two models of the same file name must land in two places"
    model_tasks = (TASKS / "model.yml").read_text(encoding="utf-8")
    assert 'dest: "{{ leaf_appliance_model_file }}"' in model_tasks
    template = (ROLE / "templates" / "config.toml.j2").read_text(encoding="utf-8")
    assert "path = {{ s(leaf_appliance_model_file) }}" in template


def test_each_app_wheel_is_kept_under_its_sha256() -> None:
    """A rebuilt wheel under the same file name must not replace the one a rollback reinstalls."""
    expression = role_variable_text(ROLE_VARS, "leaf_appliance_wheel_file")
    path = render(
        expression,
        leaf_appliance_wheel_target_dir="/opt/leaf-appliance/wheels",
        leaf_appliance_wheel_sha256="ef" * 32,
        leaf_appliance_wheel_name="leaf_appliance-0.1.0-py3-none-any.whl",
    )
    assert path == f"/opt/leaf-appliance/wheels/{'ef' * 32}/leaf_appliance-0.1.0-py3-none-any.whl"
    assert 'dest: "{{ leaf_appliance_wheel_file }}"' in (TASKS / "app.yml").read_text(encoding="utf-8")
    assert "@ file://{{ leaf_appliance_wheel_file }}" in REQUIREMENTS_TEMPLATE.read_text(encoding="utf-8")
    assert '"{{ leaf_appliance_wheel_file }}"' in HANDLERS.read_text(encoding="utf-8")


def test_what_runs_now_is_recorded_before_anything_changes() -> None:
    main = (TASKS / "main.yml").read_text(encoding="utf-8")
    imports = re.findall(r"import_tasks: (\w+)\.yml", main)
    assert imports[:2] == ["preflight", "record"], "record.yml must come before the first task that changes the host"
    record = (TASKS / "record.yml").read_text(encoding="utf-8")
    for fact in ("leaf_appliance_previous_config", "leaf_appliance_previous_requirements"):
        assert f"{fact}:" in record
    assert "ansible.builtin.slurp" in record and "ansible.builtin.copy" not in record, "record.yml only reads"


def test_a_deploy_that_does_not_reach_ready_is_rolled_back_and_stops_the_rollout() -> None:
    """Issue 11.13: a broken but checksummed model left the canary crash-looping."""
    verify = (TASKS / "verify.yml").read_text(encoding="utf-8")
    block, _, rescue = verify.partition("\n  rescue:\n")
    assert "state: restarted" in block and "selftest" in block, "the block restarts, waits for READY and self-tests"
    steps = [task.splitlines()[0].strip() for task in nested_tasks_of(TASKS / "verify.yml") if task in rescue]
    restore = next(i for i, s in enumerate(steps) if "previous config.toml back" in s)
    reinstall = next(i for i, s in enumerate(steps) if "previous app wheel" in s)
    restart = next(i for i, s in enumerate(steps) if "Restart the service on what ran before" in s)
    ready = next(i for i, s in enumerate(steps) if "rolled-back service to report READY" in s)
    stop = next(i for i, s in enumerate(steps) if "Stop the rollout" in s)
    assert restore < restart and reinstall < restart < ready < stop
    assert 'content: "{{ leaf_appliance_previous_config }}"' in rescue
    assert 'dest: "{{ leaf_appliance_config_file }}"' in rescue
    assert 'name: "{{ leaf_appliance_previous_wheel_file }}"' in rescue
    assert "ansible.builtin.fail:" in rescue.split("- name: Stop the rollout")[1]
    site = (REPO / "deploy" / "site.yml").read_text(encoding="utf-8")
    assert "any_errors_fatal: true" in site and "    - 1\n" in site, "the canary comes first and a failure stops all"


def test_the_wait_for_ready_stops_early_only_at_faults_the_daemon_cannot_recover_from() -> None:
    """A model that does not load keeps the daemon "activating" (no READY) until systemd's start timeout."""
    pattern = role_variable_text(ROLE_VARS, "leaf_appliance_fatal_status")
    daemon = (REPO / "appliance" / "daemon.py").read_text(encoding="utf-8")
    # The status line keeps the English title on a French or Hindi appliance (tests/core checks it runs so).
    assert 'self.notifier.status(f"fault: {fault.status_title}: {fault.detail}")' in daemon
    english = words.catalog()["en"]
    titles = {v for k, v in english.items() if k.startswith("fault.") and k.endswith("_title")}
    assert {"Model problem", "Configuration problem", "Storage problem", "Camera not working"} <= titles
    assert [t for t in sorted(titles) if re.match(pattern, f"fault: {t}: detail")] == [
        "Configuration problem",
        "Model problem",
    ], "storage and camera faults may clear on a retry: wait for READY"
    assert "leaf_appliance_fatal_status" in (TASKS / "verify.yml").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", sorted([*TASKS.glob("*.yml"), HANDLERS]), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_role_is_safe_in_check_mode(path: Path) -> None:
    """Issue 11.14: --check --diff failed on a fresh host (pip) and reported changed=1 on a converged one."""
    for task in nested_tasks_of(path):
        name = task.splitlines()[0]
        if "ansible.builtin.pip:" in task and path.name != "verify.yml":
            # The pip module reports "changed" in --check for any requirements file or extra_args.
            assert "not ansible_check_mode" in task, f"{path.name}: {name} runs pip in --check"
        if re.search(r"ansible\.builtin\.command:", task) and "changed_when: false" in task and "register:" in task:
            if path.name == "verify.yml":
                continue  # verify.yml as a whole is skipped in --check (tasks/main.yml)
            # A read-only command whose result later tasks read must run in --check too.
            assert "check_mode: false" in task, f"{path.name}: {name} is skipped in --check, its result is read"


def test_check_mode_does_not_restart_or_test_the_service() -> None:
    """--check changes nothing, so verify.yml (restart, READY, self-test, rollback) has nothing to check."""
    main = (TASKS / "main.yml").read_text(encoding="utf-8")
    verify_import = main[main.index("import_tasks: verify.yml") :]
    assert "not ansible_check_mode" in verify_import


def test_the_guide_says_where_models_live_and_how_to_roll_back_by_hand() -> None:
    guide = TECHNICIAN_GUIDE.read_text(encoding="utf-8")
    assert "/opt/leaf-appliance/models/<sha256>/" in guide
    assert "rolled back automatically" in guide
    assert "Roll back by hand" in guide
