//! Handing back the memory that start-up touched and idle work does not use.
//!
//! The principal links DuckDB statically, and opening a database registers DuckDB's whole
//! catalogue of built-in functions: start-up touches code all over a binary of tens of
//! megabytes, and every page of it the kernel mapped stays counted in the resident set
//! (`RssFile`) although nothing an idle principal does runs it again.

use std::io;
use std::path::Path;

/// Asks the kernel to reclaim the pages of this program's own machine code that are mapped
/// now (`MADV_PAGEOUT` on the executable's read-only, executable mappings, then
/// `MADV_RANDOM` so that code used again comes back a page at a time, not with the disk's
/// read-around), and returns the heap's free memory to the system (`malloc_trim`). Nothing is lost: the binary on disk backs
/// those pages, and a page used again is mapped again on its next use. Returns the bytes of
/// code advised.
pub fn release_code_pages() -> io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut released = 0;
    for (start, end) in maps.lines().filter_map(|line| code_range(line, &exe)) {
        // SAFETY: the range is a whole mapping of the executable's code, read-only and backed
        // by the file; MADV_PAGEOUT only drops its resident pages, which the kernel maps
        // again from the file on their next use. No memory is unmapped or changed.
        let rc = unsafe {
            nix::libc::madvise(
                start as *mut nix::libc::c_void,
                end - start,
                nix::libc::MADV_PAGEOUT,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above; MADV_RANDOM only tells the kernel not to read ahead around the
        // pages faulted in later (the large read-around of code would map much of it again).
        unsafe {
            nix::libc::madvise(
                start as *mut nix::libc::c_void,
                end - start,
                nix::libc::MADV_RANDOM,
            );
        }
        released += end - start;
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory of the heap to the system.
    unsafe {
        nix::libc::malloc_trim(0);
    }
    Ok(released)
}

/// The address range of one `/proc/self/maps` line when it maps code of `exe`
/// (`start-end r-xp offset dev inode path`).
fn code_range(line: &str, exe: &Path) -> Option<(usize, usize)> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let path = fields.nth(3)?.trim_start();
    if perms != "r-xp" || Path::new(path) != exe {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (end > start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_file_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("RssFile:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn code_ranges_are_only_the_executables_code() {
        let exe = Path::new("/usr/bin/cdktr-principal");
        let code = "55d0c0a00000-55d0c2e00000 r-xp 00200000 fd:01 1234   /usr/bin/cdktr-principal";
        assert_eq!(
            code_range(code, exe),
            Some((0x55d0c0a00000, 0x55d0c2e00000))
        );
        for other in [
            "55d0c0a00000-55d0c2e00000 r--p 00000000 fd:01 1234   /usr/bin/cdktr-principal",
            "55d0c0a00000-55d0c2e00000 rw-p 00000000 fd:01 1234   /usr/bin/cdktr-principal",
            "7f00a0000000-7f00a0200000 r-xp 00000000 fd:01 99     /usr/lib/libc.so.6",
            "7f00a0000000-7f00a0200000 r-xp 00000000 00:00 0 ",
            "7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0      [stack]",
            "garbage",
            "",
        ] {
            assert_eq!(code_range(other, exe), None, "{other}");
        }
    }

    /// Other tests of this binary run on other threads and map code back in while this one
    /// measures, and the kernel leaves alone pages that another process maps too: it runs
    /// alone, in a child process started from a copy of the test binary.
    #[test]
    fn releasing_code_pages_shrinks_the_resident_set_and_the_program_runs_on() {
        const ALONE: &str = "CDKTR_TEST_MEMORY_ALONE";
        if std::env::var_os(ALONE).is_none() {
            let dir = tempfile::tempdir().unwrap();
            let copy = dir.path().join("alone");
            std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
            let run = || {
                std::process::Command::new(&copy)
                    .args(["--exact", "--test-threads", "1", "--nocapture"])
                    .arg("runtime::memory::tests::releasing_code_pages_shrinks_the_resident_set_and_the_program_runs_on")
                    .env(ALONE, "1")
                    .output()
            };
            // A process another test forks at the same moment may still hold the copy open
            // for writing until it execs (ETXTBSY): try again until it has.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let out = loop {
                match run() {
                    Err(e)
                        if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::yield_now()
                    }
                    other => break other.unwrap(),
                }
            };
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
            return;
        }
        let before = rss_file_kb();
        let released = release_code_pages().expect("madvise on our own code");
        assert!(released > 0, "no code mapping of the test binary was found");
        let after = rss_file_kb();
        assert!(after < before, "RssFile {before} kB -> {after} kB");
        println!("RssFile {before} kB -> {after} kB");
        // The code comes back on use.
        assert_eq!(code_range("garbage", Path::new("/x")), None);
        assert!(format!("{:?}", std::collections::BTreeMap::from([(1, 2)])).contains("1: 2"));
    }
}
