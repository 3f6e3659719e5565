//! `cdktr gc`: retention now, through the principal; `--compact` on a stopped principal's file.

use std::path::PathBuf;
use std::process::ExitCode;

use super::output::print_json;
use crate::config::Config;
use crate::protocol::query::GcReport;

pub fn print(report: &GcReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(report);
    }
    if !report.configured {
        println!(
            "no retention is configured ([retention] max_age, max_runs_per_workflow, \
             max_log_bytes): everything is kept, nothing was removed"
        );
        return Ok(());
    }
    let r = &report.removed;
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!(
        "{verb}: {} runs ({} task rows, {} transitions), {} log lines ({}), {} schedule slot \
         records, {} audit entries",
        r.runs,
        r.task_runs,
        r.transitions,
        r.log_lines,
        bytes(r.log_bytes),
        r.schedule_slots,
        r.audit_entries
    );
    println!(
        "database file: {} before, {} after ({} ms)",
        bytes(report.file_bytes_before),
        bytes(report.file_bytes_after),
        report.elapsed_ms
    );
    if !report.dry_run && report.file_bytes_after >= report.file_bytes_before {
        println!(
            "DuckDB reuses the freed space for new history; to shrink the file, stop the \
             principal and run `cdktr gc --compact`"
        );
    }
    Ok(())
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Retention and then compaction of a database file no principal has open (run in
/// `cdktr-principal`, which carries DuckDB).
pub fn offline(
    config: &Config,
    db: Option<PathBuf>,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let principal = &config.principal;
    let db = db.unwrap_or_else(|| principal.db_path.clone());
    if !db.is_file() {
        anyhow::bail!("no database file at {}", db.display());
    }
    // The principal's own lock, when this is its file: it cannot start while we copy.
    let stopped = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!("{e}\n(--compact needs the principal stopped: it copies the file)")
    };
    let _lock = if db.parent() == Some(principal.data_dir.as_path()) {
        Some(crate::runtime::files::lock_data_dir(&principal.data_dir).map_err(|e| stopped(&e))?)
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut report = rt.block_on(async {
        let (store, guard) = crate::store::Store::open_limited(&db, principal.store_memory_mb)
            .map_err(|e| stopped(&e))?;
        let report = store.gc(config.retention.policy(), dry_run).await;
        drop(store);
        tokio::task::spawn_blocking(move || guard.close()).await?;
        anyhow::Ok(report?)
    })?;
    if !dry_run {
        eprintln!("compacting {} ...", db.display());
        crate::store::compact(&db)?;
        report.file_bytes_after = crate::store::retention::file_bytes(&db);
    }
    print(&report, json)?;
    Ok(ExitCode::SUCCESS)
}
