//! Handing back the memory that start-up touched and idle work does not use.
//!
//! The principal links DuckDB statically, and opening a database registers DuckDB's whole
//! catalogue of built-in functions: start-up touches code all over a binary of tens of
//! megabytes, and every page of it the kernel mapped stays counted in the resident set
//! (`RssFile`) although nothing an idle principal does runs it again.

use std::io;
use std::path::Path;

/// How long the store must have written nothing before the principal counts as idle.
const IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(20);

/// Releases memory now (after start-up) and again each time the principal falls idle: the
/// store has written nothing for [`IDLE_AFTER`] since the last release. What a burst of work
/// touched (DuckDB's code, with this kernel's read-ahead of code, and the heap it freed) is
/// handed back instead of staying resident while nothing runs. Start-up code is evicted (it
/// is not needed again); the code of work is only unmapped and stays in the page cache, so the
/// first run after an idle spell pays minor faults, not disk reads (about 20 ms here: 63 ms
/// for `cdktr run --wait` against 45).
pub fn release_when_idle(progress: crate::store::Progress) {
    match release_code_pages() {
        Ok(bytes) => tracing::debug!(bytes, "start-up code pages released"),
        Err(e) => tracing::debug!(error = %e, "start-up code pages kept"),
    }
    let release = || match unmap_code_pages() {
        Ok(bytes) => tracing::debug!(bytes, "idle: code pages unmapped"),
        Err(e) => tracing::debug!(error = %e, "idle: code pages kept"),
    };
    let watch = move || {
        let (mut seen, mut released) = (progress.position(), progress.position());
        let mut since = std::time::Instant::now();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let now = progress.position();
            if now != seen {
                (seen, since) = (now, std::time::Instant::now());
            } else if now != released && since.elapsed() >= IDLE_AFTER {
                release();
                released = now;
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("cdktr-idle".into())
        .spawn(watch)
    {
        tracing::debug!(error = %e, "no idle memory release");
    }
}

/// Asks the kernel to reclaim the pages of this program's own machine code and read-only data
/// that are mapped now (`MADV_PAGEOUT` on the executable's read-only mappings, then
/// `MADV_RANDOM` so that code used again comes back a page at a time, not with the disk's
/// read-around), and returns the heap's free memory to the system (`malloc_trim`). Nothing is lost: the binary on disk backs
/// those pages, and a page used again is mapped again on its next use. Returns the bytes of
/// code advised.
pub fn release_code_pages() -> io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut released = 0;
    for (start, end) in maps.lines().filter_map(|line| code_range(line, &exe)) {
        // SAFETY: the range is a whole read-only mapping of the executable, backed by the
        // file; MADV_PAGEOUT only drops its resident pages, which the kernel maps again from
        // the file on their next use (pages the loader relocated are private copies, which it
        // leaves or swaps out). No memory is unmapped or changed.
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
    drop_cached_rest(&exe);
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory of the heap to the system.
    unsafe {
        nix::libc::malloc_trim(0);
    }
    Ok(released)
}

/// Unmaps the executable's code from this process without evicting it from the page cache
/// (`MADV_DONTNEED` on its `r-xp` mappings), and trims the heap: the resident set falls, and
/// code used again is mapped from the cache (a minor fault per page, no disk read). Returns
/// the bytes of code advised.
pub fn unmap_code_pages() -> io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut unmapped = 0;
    for (start, end) in maps
        .lines()
        .filter(|line| line.split(' ').nth(1) == Some("r-xp"))
        .filter_map(|line| code_range(line, &exe))
    {
        // SAFETY: the range is a whole executable mapping of the binary's code, which nothing
        // writes (no text relocations): its pages equal the file's, so MADV_DONTNEED drops
        // only this process's mapping of them and the next use maps the same bytes again.
        let rc = unsafe {
            nix::libc::madvise(
                start as *mut nix::libc::c_void,
                end - start,
                nix::libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        unmapped += end - start;
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory of the heap to the system.
    unsafe {
        nix::libc::malloc_trim(0);
    }
    Ok(unmapped)
}

/// Drops the binary's pages that no process maps from the page cache
/// (`POSIX_FADV_DONTNEED`; pages mapped anywhere stay). Otherwise each page the principal
/// touches again maps up to 64 KiB of its cached neighbours with it (the kernel's
/// fault-around), and a principal started after others, or after a build, counts much of its
/// binary resident again within seconds. Best effort: the binary may be gone (upgraded).
fn drop_cached_rest(exe: &Path) {
    let Ok(file) = std::fs::File::open(exe) else {
        return;
    };
    let advised = nix::fcntl::posix_fadvise(
        &file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
    if let Err(e) = advised {
        tracing::debug!(error = %e, "cannot drop the binary's cached pages");
    }
}

/// The address range of one `/proc/self/maps` line when it maps code or read-only data of
/// `exe` (`start-end r-xp offset dev inode path`, or `r--p`). The read-only data matters as
/// much as the code: without `MADV_RANDOM` there, one read of DuckDB's tables reads ahead
/// megabytes of the file, code included, which the next faults then map.
fn code_range(line: &str, exe: &Path) -> Option<(usize, usize)> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let path = fields.nth(3)?.trim_start();
    if !matches!(perms, "r-xp" | "r--p") || Path::new(path) != exe {
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

    /// How many pages of `path` are in the page cache (`mincore` on a fresh mapping).
    fn cached_pages(path: &Path) -> usize {
        use nix::libc;
        let file = std::fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: a new read-only shared mapping of a file we hold open, unmapped below; its
        // memory is never read, only asked about.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        let mut resident = vec![0u8; len.div_ceil(page)];
        // SAFETY: `resident` has one byte per page of the mapping, as mincore requires.
        let rc = unsafe { libc::mincore(map, len, resident.as_mut_ptr()) };
        // SAFETY: the mapping made above, not used after this.
        unsafe { libc::munmap(map, len) };
        assert_eq!(rc, 0);
        resident.iter().filter(|b| **b & 1 == 1).count()
    }

    #[test]
    fn code_ranges_are_only_the_executables_code() {
        let exe = Path::new("/usr/bin/cdktr-principal");
        let code = "55d0c0a00000-55d0c2e00000 r-xp 00200000 fd:01 1234   /usr/bin/cdktr-principal";
        assert_eq!(
            code_range(code, exe),
            Some((0x55d0c0a00000, 0x55d0c2e00000))
        );
        let data = "55d0c0a00000-55d0c2e00000 r--p 00000000 fd:01 1234   /usr/bin/cdktr-principal";
        assert_eq!(
            code_range(data, exe),
            Some((0x55d0c0a00000, 0x55d0c2e00000))
        );
        for other in [
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
            // Written back, so every page of the copy is cached and clean.
            std::fs::File::open(&copy).unwrap().sync_all().unwrap();
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
        let exe = std::env::current_exe().unwrap();
        let (before, cached_before) = (rss_file_kb(), cached_pages(&exe));
        let released = release_code_pages().expect("madvise on our own code");
        assert!(released > 0, "no code mapping of the test binary was found");
        let (after, cached_after) = (rss_file_kb(), cached_pages(&exe));
        assert!(after < before, "RssFile {before} kB -> {after} kB");
        // The pages nothing maps left the page cache too.
        assert!(
            cached_after < cached_before / 2,
            "cached pages of the binary: {cached_before} -> {cached_after}"
        );
        println!(
            "RssFile {before} kB -> {after} kB; cached pages {cached_before} -> {cached_after}"
        );
        // The code comes back on use.
        assert_eq!(code_range("garbage", Path::new("/x")), None);
        assert!(format!("{:?}", std::collections::BTreeMap::from([(1, 2)])).contains("1: 2"));

        // Unmapping when idle shrinks the resident set too, but leaves the page cache.
        let (before, cached_before) = (rss_file_kb(), cached_pages(&exe));
        let unmapped = unmap_code_pages().expect("madvise on our own code");
        assert!(unmapped > 0, "no code mapping of the test binary was found");
        let (after, cached_after) = (rss_file_kb(), cached_pages(&exe));
        assert!(after < before, "RssFile {before} kB -> {after} kB");
        assert!(
            cached_after >= cached_before,
            "cached pages of the binary: {cached_before} -> {cached_after}"
        );
        println!("unmapped: RssFile {before} kB -> {after} kB; cached pages {cached_before} -> {cached_after}");
        assert!(format!("{:?}", std::collections::BTreeSet::from([3, 4])).contains("3, 4"));
    }
}
