//! `cdktr config` as a user runs it: file, environment, legacy variables and flags.

use crate::common::Workspace;

#[test]
fn prints_resolved_toml_with_sources() {
    let ws = Workspace::new();
    ws.write("cdktr.toml", "[agent]\nmax_concurrent_workflows = 7\n");
    let run = ws
        .cdktr()
        .args(["config", "--sources"])
        .env("CDKTR_CLIENT_TIMEOUT", "2s")
        .env("CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS", "1200")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("max_concurrent_workflows = 7  # file "),
        "{stdout}"
    );
    assert!(
        stdout.contains("timeout = \"2s\"  # env CDKTR_CLIENT_TIMEOUT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("heartbeat_timeout = \"1s 200ms\"  # env CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("listen = \"tcp://127.0.0.1:5561\"  # default"),
        "{stdout}"
    );
}

#[test]
fn config_flag_names_the_file_and_json_has_sources() {
    let ws = Workspace::new();
    let file = ws.write(
        "etc/other.toml",
        "[principal]\ndata_dir = \"/var/lib/cdktr\"\n",
    );
    let run = ws.run(&[
        "config",
        "--config",
        file.to_str().unwrap(),
        "--json",
        "--sources",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc = run.json();
    assert_eq!(doc["file"], file.to_str().unwrap());
    assert_eq!(doc["config"]["principal"]["data_dir"], "/var/lib/cdktr");
    assert_eq!(
        doc["config"]["principal"]["db_path"],
        "/var/lib/cdktr/cdktr.duckdb"
    );
    assert_eq!(doc["sources"]["principal.data_dir"]["kind"], "file");
    assert_eq!(doc["sources"]["client.principal"]["kind"], "default");
}

#[test]
fn bad_values_exit_2_naming_key_and_source() {
    let ws = Workspace::new();
    let run = ws
        .cdktr()
        .args(["config"])
        .env("CDKTR_PRINCIPAL_HEARTBEAT_TIMEOUT", "forever")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.starts_with("error: principal.heartbeat_timeout (from env CDKTR_PRINCIPAL_HEARTBEAT_TIMEOUT): `forever`"),
        "{stderr}"
    );
    ws.write("cdktr.toml", "[agent]\nmax_concurent_workflows = 2\n");
    let run = ws.run(&["config"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("did you mean `agent.max_concurrent_workflows`?"),
        "{}",
        run.stderr
    );
}

/// The configuration file the package installs as /etc/cdktr/cdktr.toml: as shipped, and with
/// every commented-out setting switched on (what an operator does to it).
#[test]
fn the_packaged_config_file_resolves_as_shipped_and_with_every_example_uncommented() {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/cdktr.toml"),
    )
    .unwrap();
    let ws = Workspace::new();
    ws.write("shipped.toml", &shipped);
    let run = ws.run(&["--config", "shipped.toml", "config"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for line in [
        "workflow_dir = \"/etc/cdktr/workflows\"",
        "data_dir = \"/var/lib/cdktr\"",
        "control_socket = \"/run/cdktr/control.sock\"",
        "principal_key = \"/var/lib/cdktr/principal.key\"",
    ] {
        assert!(run.stdout.contains(line), "{line} missing:\n{}", run.stdout);
    }
    // `# key = value` lines are examples; switched on, each must be valid.
    let example = regex::Regex::new(r"^# ([a-z_]+ = .*)$").unwrap();
    let mut switched = 0;
    let everything: String = shipped
        .lines()
        .map(|l| match example.captures(l) {
            Some(c) => {
                switched += 1;
                c[1].to_owned()
            }
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(switched >= 15, "only {switched} examples");
    ws.write("everything.toml", &everything);
    let run = ws.run(&["--config", "everything.toml", "config"]);
    assert_eq!(run.code, Some(0), "{}\n{everything}", run.stderr);
    assert!(run.stdout.contains("shutdown = \"cancel\""));
    assert!(run.stdout.contains("listen = \"127.0.0.1:9464\""));
}

#[test]
fn init_writes_a_config_and_valid_examples_and_never_overwrites_without_force() {
    let ws = Workspace::new();
    let run = ws.run(&["init", "proj"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let proj = ws.path().join("proj");
    for file in [
        "cdktr.toml",
        "workflows/hello.yml",
        "workflows/etl/daily.yml",
        "workflows/python/uv_script.yml",
        "workflows/python/stats.py",
        "workflows/examples/retries.yml",
    ] {
        assert!(proj.join(file).is_file(), "{file} missing");
    }
    // Every example is valid, and the config points at the project's own folders.
    let in_proj = |args: &[&str]| {
        let out = ws.cdktr().current_dir(&proj).args(args).output().unwrap();
        crate::common::Run::from(out)
    };
    let valid = in_proj(&["workflow", "validate"]);
    assert_eq!(valid.code, Some(0), "{}{}", valid.stdout, valid.stderr);
    let config = in_proj(&["config"]);
    assert_eq!(config.code, Some(0), "{}", config.stderr);
    let expect = |key: &str, path: &str| {
        let line = format!("{key} = \"{}\"", proj.join(path).display());
        assert!(config.stdout.contains(&line), "{line}:\n{}", config.stdout);
    };
    expect("workflow_dir", "workflows");
    expect("data_dir", ".cdktr");
    // A second init refuses and writes nothing; --force overwrites.
    std::fs::write(proj.join("workflows/hello.yml"), "# mine\n").unwrap();
    let again = ws.run(&["init", "proj"]);
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    assert!(again.stderr.contains("hello.yml") && again.stderr.contains("--force"));
    let mine = std::fs::read_to_string(proj.join("workflows/hello.yml")).unwrap();
    assert_eq!(mine, "# mine\n");
    let forced = ws.run(&["init", "proj", "--force"]);
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    let back = std::fs::read_to_string(proj.join("workflows/hello.yml")).unwrap();
    assert!(back.contains("name: Hello"));
}
