//! Each layer overriding the one below, the legacy variables, and errors naming key and source.

use std::path::Path;

use super::*;

fn inputs(dir: &Path) -> Inputs {
    Inputs {
        config_file: None,
        env: Vec::new(),
        flags: Vec::new(),
        cwd: dir.to_path_buf(),
        system_config: dir.join("no-such-system.toml"),
    }
}

fn env(mut i: Inputs, pairs: &[(&str, &str)]) -> Inputs {
    i.env
        .extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    i
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_without_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = resolve(&inputs(dir.path())).unwrap();
    assert_eq!(r.file, None);
    assert_eq!(r.config.principal.listen, "tcp://127.0.0.1:5561");
    assert_eq!(
        r.config.principal.workflow_dir,
        dir.path().join("workflows")
    );
    assert_eq!(
        r.config.principal.db_path,
        dir.path().join(".cdktr/cdktr.duckdb")
    );
    assert_eq!(
        r.config.principal.heartbeat_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(r.config.agent.max_concurrent_workflows, 5);
    assert_eq!(r.config.agent.heartbeat_interval, Duration::from_secs(5));
    assert!(r.sources.is_empty());
}

#[test]
fn file_overrides_defaults_env_overrides_file_flags_override_env() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "my.toml",
        "[principal]\nlisten = \"tcp://127.0.0.1:1001\"\nheartbeat_timeout = \"10s\"\n\
         [agent]\nmax_concurrent_workflows = 2\n",
    );
    let mut i = inputs(dir.path());
    i.config_file = Some(file.clone());
    let r = resolve(&i).unwrap();
    assert_eq!(r.config.principal.listen, "tcp://127.0.0.1:1001");
    assert_eq!(
        r.config.principal.heartbeat_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(r.config.agent.max_concurrent_workflows, 2);
    assert_eq!(r.sources["principal.listen"], Source::File(file.clone()));

    let i = env(i, &[("CDKTR_PRINCIPAL_LISTEN", "tcp://127.0.0.1:2002")]);
    let r = resolve(&i).unwrap();
    assert_eq!(r.config.principal.listen, "tcp://127.0.0.1:2002");
    assert_eq!(
        r.sources["principal.listen"],
        Source::Env("CDKTR_PRINCIPAL_LISTEN".into())
    );
    assert_eq!(
        r.config.principal.heartbeat_timeout,
        Duration::from_secs(10)
    );

    let i = i.flag("principal.listen", "tcp://127.0.0.1:3003", "--listen");
    let r = resolve(&i).unwrap();
    assert_eq!(r.config.principal.listen, "tcp://127.0.0.1:3003");
    assert_eq!(
        r.sources["principal.listen"],
        Source::Flag("--listen".into())
    );
}

#[test]
fn file_discovery_order() {
    let dir = tempfile::tempdir().unwrap();
    let system = write(dir.path(), "system.toml", "[client]\ntimeout = \"1s\"\n");
    let mut i = inputs(dir.path());
    i.system_config = system.clone();
    assert_eq!(resolve(&i).unwrap().file, Some(system));

    let local = write(dir.path(), "cdktr.toml", "[client]\ntimeout = \"2s\"\n");
    assert_eq!(resolve(&i).unwrap().file, Some(local));

    let named = write(dir.path(), "env.toml", "[client]\ntimeout = \"3s\"\n");
    let i = env(i, &[("CDKTR_CONFIG", named.to_str().unwrap())]);
    let r = resolve(&i).unwrap();
    assert_eq!(r.file, Some(named));
    assert_eq!(r.config.client.timeout, Duration::from_secs(3));

    let mut i = i;
    let flag = write(dir.path(), "flag.toml", "[client]\ntimeout = \"4s\"\n");
    i.config_file = Some(flag.clone());
    assert_eq!(resolve(&i).unwrap().file, Some(flag));

    i.config_file = Some(dir.path().join("missing.toml"));
    let err = resolve(&i).unwrap_err().to_string();
    assert!(err.starts_with("cannot read config file"), "{err}");
}

#[test]
fn relative_paths_follow_the_file_folder_or_the_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let file = write(&etc, "cdktr.toml", "[principal]\ndata_dir = \"state\"\n");
    let mut i = inputs(dir.path());
    i.config_file = Some(file);
    let r = resolve(&i).unwrap();
    assert_eq!(r.config.principal.data_dir, etc.join("state"));
    assert_eq!(r.config.principal.workflow_dir, etc.join("workflows"));
    assert_eq!(r.config.principal.db_path, etc.join("state/cdktr.duckdb"));

    let i = env(i, &[("CDKTR_PRINCIPAL_WORKFLOW_DIR", "wf")]);
    let r = resolve(&i).unwrap();
    assert_eq!(r.config.principal.workflow_dir, dir.path().join("wf"));
}

#[test]
fn legacy_variables_are_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let i = env(
        inputs(dir.path()),
        &[
            ("CDKTR_PRINCIPAL_HOST", "10.1.2.3"),
            ("CDKTR_PRINCIPAL_PORT", "6000"),
            ("CDKTR_LOGS_LISTENING_PORT", "6001"),
            ("CDKTR_LOGS_PUBLISHING_PORT", "6002"),
            ("CDKTR_WORKFLOW_DIR", "/srv/wf"),
            ("CDKTR_DB_PATH", "/srv/db/app.duckdb"),
            ("CDKTR_AGENT_MAX_CONCURRENCY", "9"),
            ("CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS", "1500"),
        ],
    );
    let r = resolve(&i).unwrap();
    let c = &r.config;
    assert_eq!(c.principal.listen, "tcp://10.1.2.3:6000");
    assert_eq!(c.agent.principal, "tcp://10.1.2.3:6000");
    assert_eq!(c.client.principal, "tcp://10.1.2.3:6000");
    assert_eq!(c.principal.logs_listen, "tcp://127.0.0.1:6001");
    assert_eq!(c.principal.logs_publish, "tcp://127.0.0.1:6002");
    assert_eq!(c.principal.workflow_dir, PathBuf::from("/srv/wf"));
    assert_eq!(c.principal.db_path, PathBuf::from("/srv/db/app.duckdb"));
    assert_eq!(c.agent.max_concurrent_workflows, 9);
    assert_eq!(c.principal.heartbeat_timeout, Duration::from_millis(1500));
    assert_eq!(
        r.sources["agent.max_concurrent_workflows"],
        Source::Env("CDKTR_AGENT_MAX_CONCURRENCY".into())
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);

    // The canonical variable wins over its legacy alias.
    let i = env(i, &[("CDKTR_AGENT_MAX_CONCURRENT_WORKFLOWS", "3")]);
    assert_eq!(
        resolve(&i).unwrap().config.agent.max_concurrent_workflows,
        3
    );
}

#[test]
fn bad_values_name_key_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let i = env(
        inputs(dir.path()),
        &[("CDKTR_AGENT_HEARTBEAT_INTERVAL", "often")],
    );
    let err = resolve(&i).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "agent.heartbeat_interval (from env CDKTR_AGENT_HEARTBEAT_INTERVAL): `often`"
        ),
        "{err}"
    );

    let file = write(
        dir.path(),
        "c.toml",
        "[agent]\nmax_concurrent_workflows = \"five\"\n",
    );
    let mut i = inputs(dir.path());
    i.config_file = Some(file.clone());
    let err = resolve(&i).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "agent.max_concurrent_workflows (from file {}): expected a whole number, found string",
            file.display()
        )
    );

    let i = inputs(dir.path()).flag("principal.listen", "localhost:1", "--listen");
    let err = resolve(&i).unwrap_err().to_string();
    assert!(
        err.starts_with("principal.listen (from flag --listen):"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_errors_with_suggestions() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.toml",
        "[principal]\nlisten_on = \"tcp://127.0.0.1:1\"\n",
    );
    let mut i = inputs(dir.path());
    i.config_file = Some(file);
    let err = resolve(&i).unwrap_err().to_string();
    assert!(
        err.starts_with("unknown key `principal.listen_on` in file"),
        "{err}"
    );
    assert!(err.ends_with("(did you mean `principal.listen`?)"), "{err}");

    let file = write(dir.path(), "d.toml", "[server]\nport = 1\n");
    i.config_file = Some(file);
    assert!(resolve(&i)
        .unwrap_err()
        .to_string()
        .contains("unknown key `server.port`"));

    let file = write(dir.path(), "e.toml", "[principal\n");
    i.config_file = Some(file);
    assert!(resolve(&i)
        .unwrap_err()
        .to_string()
        .starts_with("config file"));
}

#[test]
fn unknown_scoped_variables_warn_and_task_variables_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let i = env(
        inputs(dir.path()),
        &[
            ("CDKTR_AGENT_MAX_CONCURENCY", "3"),
            ("CDKTR_RUN_ID", "x"),
            ("CDKTR_PARAM_DAY", "1"),
        ],
    );
    let r = resolve(&i).unwrap();
    assert_eq!(
        r.warnings,
        ["ignoring unknown configuration variable CDKTR_AGENT_MAX_CONCURENCY"]
    );
}

#[test]
fn printed_toml_parses_back_to_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    let i = env(inputs(dir.path()), &[("CDKTR_CLIENT_TIMEOUT", "750ms")]);
    let r = resolve(&i).unwrap();
    let printed = r.to_toml(false);
    let file = write(dir.path(), "printed.toml", &printed);
    let mut again = inputs(dir.path());
    again.config_file = Some(file);
    assert_eq!(resolve(&again).unwrap().config, r.config);
    let with_sources = r.to_toml(true);
    assert!(
        with_sources.contains("timeout = \"750ms\"  # env CDKTR_CLIENT_TIMEOUT"),
        "{with_sources}"
    );
    assert!(with_sources.contains("listen = \"tcp://127.0.0.1:5561\"  # default"));
}
