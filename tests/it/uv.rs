//! `!UvPython` tasks with a real `uv`, offline: a plain script, one with a package from a
//! local wheel the test makes, and a script inside a uv project.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cdktr::model::{RunStatus, TaskStatus};

use crate::common::cluster::{agent_command, Api, Daemon, Principal};
use crate::common::Workspace;

/// Whether `uv` is installed. CI installs it (`pip install uv`) and sets CDKTR_REQUIRE_UV, so
/// there a missing uv fails instead of skipping.
fn has_uv() -> bool {
    let found = Command::new("uv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CDKTR_REQUIRE_UV").is_none(),
            "uv is required here but missing"
        );
        eprintln!("SKIPPED: uv is not installed (pip install uv)");
    }
    found
}

/// A pure-Python wheel of package `greet`, made by hand (a wheel is a zip file).
fn make_wheel(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("wheel-src");
    let info = src.join("greet-0.1.dist-info");
    std::fs::create_dir_all(src.join("greet")).unwrap();
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(
        src.join("greet/__init__.py"),
        "def hello(name):\n    return f\"hello {name} from a local wheel\"\n",
    )
    .unwrap();
    std::fs::write(
        info.join("METADATA"),
        "Metadata-Version: 2.1\nName: greet\nVersion: 0.1\n",
    )
    .unwrap();
    std::fs::write(
        info.join("WHEEL"),
        "Wheel-Version: 1.0\nGenerator: cdktr-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    )
    .unwrap();
    std::fs::write(
        info.join("RECORD"),
        "greet/__init__.py,,\ngreet-0.1.dist-info/METADATA,,\ngreet-0.1.dist-info/WHEEL,,\ngreet-0.1.dist-info/RECORD,,\n",
    )
    .unwrap();
    let wheel = dir.join("greet-0.1-py3-none-any.whl");
    let status = Command::new("python3")
        .current_dir(&src)
        .args(["-m", "zipfile", "-c"])
        .arg(&wheel)
        .args(["greet", "greet-0.1.dist-info"])
        .status()
        .unwrap();
    assert!(status.success());
    wheel
}

#[test]
fn uv_python_tasks_run_scripts_packages_and_projects() {
    if !has_uv() {
        return;
    }
    let ws = Workspace::new();
    let py = ws.path().join("py");
    std::fs::create_dir_all(py.join("proj")).unwrap();
    std::fs::write(
        py.join("plain.py"),
        "import sys\nprint('plain python', sys.version_info[0])\n",
    )
    .unwrap();
    std::fs::write(
        py.join("use.py"),
        "import greet\nprint(greet.hello('uv'))\n",
    )
    .unwrap();
    std::fs::write(
        py.join("proj/pyproject.toml"),
        "[project]\nname = \"proj\"\nversion = \"0.1\"\nrequires-python = \">=3.8\"\ndependencies = []\n",
    )
    .unwrap();
    std::fs::write(py.join("proj/main.py"), "print('inside the project')\n").unwrap();
    let wheel = make_wheel(ws.path());
    ws.write(
        "wf/uv.yml",
        &format!(
            r#"name: Uv
tasks:
  plain:
    name: Plain
    config: !UvPython {{script_path: "{py}/plain.py"}}
  wheel:
    name: With a package
    config: !UvPython {{script_path: "{py}/use.py", packages: ["{wheel}"]}}
  project:
    name: In a project
    config: !UvPython {{script_path: main.py, is_uv_project: true, working_directory: "{py}/proj"}}
"#,
            py = py.display(),
            wheel = wheel.display()
        ),
    );
    let p = Principal::start(&ws, &[], &[]);
    let mut cmd = agent_command(&ws, &p.api, "uv", 3, &[]);
    // No network: everything comes from the machine and the wheel.
    cmd.env("UV_OFFLINE", "1")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_CACHE_DIR", ws.path().join("uv-cache"));
    let _agent = Daemon::start(cmd, "cdktr-agent ready", ws.path().join("agent.stderr"));
    let api = Api::connect(&p.api);
    let run_id = api.trigger("uv");
    let run = api.wait_done(&run_id, Duration::from_secs(120));
    let lines: Vec<(String, String)> = api
        .logs(&run_id)
        .into_iter()
        .map(|l| (l.task_id.to_string(), l.line))
        .collect();
    assert_eq!(
        run.summary.status,
        RunStatus::Completed,
        "{run:#?}\n{lines:?}"
    );
    for t in &run.tasks {
        assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
    }
    let printed = |task: &str, text: &str| lines.iter().any(|(t, l)| t == task && l == text);
    assert!(printed("plain", "plain python 3"), "{lines:?}");
    assert!(printed("wheel", "hello uv from a local wheel"), "{lines:?}");
    assert!(printed("project", "inside the project"), "{lines:?}");
}
