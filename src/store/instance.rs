//! The DuckDB database instance, opened through DuckDB's C API.
//!
//! The store's connections are made from it with duckdb-rs, and so is one raw connection the
//! query engine (`sql.rs`) prepares statements on to read their type: duckdb-rs does not
//! expose a prepared statement's type, and its `prepare` executes every statement of a
//! multi-statement string but the last, so it must never see a query before DuckDB has said
//! what the query is.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::path::Path;
use std::ptr;
use std::sync::Arc;

use duckdb::ffi;

/// An open database file (or `:memory:`). Connections made from it keep DuckDB's instance
/// alive on their own: the file is closed when the last of them and this handle are gone.
pub struct Instance {
    db: ffi::duckdb_database,
}

// The handle is an opaque pointer to a thread-safe DuckDB instance.
unsafe impl Send for Instance {}
unsafe impl Sync for Instance {}

/// How the file is opened.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    /// DuckDB's own read-only mode: nothing can write to the file through this instance.
    ReadOnly,
}

impl Instance {
    /// Opens (creating unless read-only) the database at `path`.
    pub fn open(path: &Path, access: Access) -> Result<Arc<Instance>, String> {
        use std::os::unix::ffi::OsStrExt;
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{}: the path contains a NUL byte", path.display()))?;
        let mut config: ffi::duckdb_config = ptr::null_mut();
        // SAFETY: every pointer handed to DuckDB is valid for the call; the config is
        // destroyed on every path after the open, which copies it.
        unsafe {
            if ffi::duckdb_create_config(&mut config) != ffi::DuckDBSuccess {
                return Err("cannot create a DuckDB configuration".into());
            }
            let mut settings = vec![("duckdb_api", "rust")];
            if access == Access::ReadOnly {
                settings.push(("access_mode", "READ_ONLY"));
            }
            for (name, value) in settings {
                let (n, v) = (CString::new(name), CString::new(value));
                let (Ok(n), Ok(v)) = (n, v) else { continue };
                if ffi::duckdb_set_config(config, n.as_ptr(), v.as_ptr()) != ffi::DuckDBSuccess {
                    ffi::duckdb_destroy_config(&mut config);
                    return Err(format!("cannot set DuckDB's {name}"));
                }
            }
            let mut db: ffi::duckdb_database = ptr::null_mut();
            let mut error: *mut c_char = ptr::null_mut();
            let rc = ffi::duckdb_open_ext(c_path.as_ptr(), &mut db, config, &mut error);
            ffi::duckdb_destroy_config(&mut config);
            if rc != ffi::DuckDBSuccess {
                let message = if error.is_null() {
                    "DuckDB could not open the file".to_owned()
                } else {
                    let text = CStr::from_ptr(error).to_string_lossy().into_owned();
                    ffi::duckdb_free(error.cast());
                    text
                };
                return Err(message);
            }
            Ok(Arc::new(Instance { db }))
        }
    }

    /// A duckdb-rs connection to this instance.
    pub fn connect(&self) -> duckdb::Result<duckdb::Connection> {
        // SAFETY: `db` is open until `self` drops, and the connection keeps DuckDB's
        // instance alive by itself after that.
        unsafe { duckdb::Connection::open_from_raw(self.db) }
    }

    /// A raw connection, to prepare statements on and read their type.
    pub fn raw_connection(&self) -> Result<RawConnection, String> {
        let mut con: ffi::duckdb_connection = ptr::null_mut();
        // SAFETY: as in `connect`.
        let rc = unsafe { ffi::duckdb_connect(self.db, &mut con) };
        if rc != ffi::DuckDBSuccess {
            return Err("cannot connect to the database".into());
        }
        Ok(RawConnection { con })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: `db` came from `duckdb_open_ext` and is closed once.
        unsafe { ffi::duckdb_close(&mut self.db) };
    }
}

/// What kind of statement a string is, as DuckDB's parser and binder see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementKind {
    Select,
    /// Anything else, with DuckDB's name for it (`DELETE`, `SET`, `COPY` ...).
    Other(&'static str),
}

pub struct RawConnection {
    con: ffi::duckdb_connection,
}

// A DuckDB connection may be used from any thread, one at a time (it is owned).
unsafe impl Send for RawConnection {}

impl RawConnection {
    /// Runs `sql` (one or more statements) and discards what it returns.
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        let c_sql = CString::new(sql).map_err(|_| "the SQL contains a NUL byte".to_owned())?;
        // SAFETY: `con` is open; the result is destroyed on every path.
        unsafe {
            let mut result: ffi::duckdb_result = std::mem::zeroed();
            let rc = ffi::duckdb_query(self.con, c_sql.as_ptr(), &mut result);
            let outcome = if rc == ffi::DuckDBSuccess {
                Ok(())
            } else {
                let error = ffi::duckdb_result_error(&mut result);
                Err(if error.is_null() {
                    "DuckDB cannot run the statement".to_owned()
                } else {
                    CStr::from_ptr(error).to_string_lossy().into_owned()
                })
            };
            ffi::duckdb_destroy_result(&mut result);
            outcome
        }
    }

    /// Prepares `sql` (executing nothing) and returns its statement type. A string holding
    /// more than one statement, or one DuckDB cannot bind, is an error with DuckDB's message.
    pub fn statement_kind(&self, sql: &str) -> Result<StatementKind, String> {
        let c_sql = CString::new(sql).map_err(|_| "the query contains a NUL byte".to_owned())?;
        let mut stmt: ffi::duckdb_prepared_statement = ptr::null_mut();
        // SAFETY: `con` is open; the statement is destroyed on every path.
        unsafe {
            let rc = ffi::duckdb_prepare(self.con, c_sql.as_ptr(), &mut stmt);
            let outcome = if rc == ffi::DuckDBSuccess {
                Ok(kind(ffi::duckdb_prepared_statement_type(stmt)))
            } else {
                let error = ffi::duckdb_prepare_error(stmt);
                Err(if error.is_null() {
                    "DuckDB cannot prepare the query".to_owned()
                } else {
                    CStr::from_ptr(error).to_string_lossy().into_owned()
                })
            };
            ffi::duckdb_destroy_prepare(&mut stmt);
            outcome
        }
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        // SAFETY: `con` came from `duckdb_connect` and is disconnected once.
        unsafe { ffi::duckdb_disconnect(&mut self.con) };
    }
}

fn kind(t: ffi::duckdb_statement_type) -> StatementKind {
    let name = match t {
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SELECT => return StatementKind::Select,
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_INSERT => "INSERT",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_UPDATE => "UPDATE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DELETE => "DELETE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXPLAIN => "EXPLAIN",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CREATE => "CREATE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DROP => "DROP",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ALTER => "ALTER",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_COPY => "COPY",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ATTACH => "ATTACH",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DETACH => "DETACH",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_LOAD => "LOAD or INSTALL",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SET => "SET",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_VARIABLE_SET => "SET VARIABLE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_PRAGMA => "PRAGMA",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CALL => "CALL",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_TRANSACTION => "a transaction statement",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXPORT => "EXPORT",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_VACUUM => "VACUUM",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_PREPARE => "PREPARE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXECUTE => "EXECUTE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ANALYZE => "ANALYZE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_MERGE_INTO => "MERGE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_COPY_DATABASE => "COPY FROM DATABASE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CREATE_FUNC => "CREATE FUNCTION",
        _ => "a statement that is not a SELECT",
    };
    StatementKind::Other(name)
}

/// Makes the database file owner-only (it holds every run's output and parameters), whatever
/// mode an older version or another tool created it with. Its directory is 0700 (0750 with a
/// group), so the files DuckDB adds beside it (the WAL) are out of others' reach too.
pub fn restrict(path: &Path, existed: bool) {
    match crate::runtime::files::without_bits(path, 0o077) {
        // DuckDB creates files 0644: a new file is simply made 0600.
        Ok(true) if existed => {
            tracing::info!(file = %path.display(), "database file made private (0600)");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot make the database file private")
        }
    }
}
