//! Memory readings of the memory benchmarks (`revocation_memory`, `ratelimit_memory`): the
//! live heap, exactly, from `stats_alloc`'s counting wrapper of the system allocator (which
//! the benchmark binary installs as its `#[global_allocator]`), and the resident set size,
//! coarsely (it includes malloc's per-block overhead, and glibc keeps freed memory for reuse).

use std::alloc::System;

use stats_alloc::StatsAlloc;

use crate::harness::BoxError;

/// The allocator's view: live bytes and live blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heap {
    /// Bytes allocated and not freed.
    pub bytes: usize,
    /// Blocks allocated and not freed.
    pub blocks: usize,
}

impl Heap {
    /// What `alloc` (the binary's global allocator) has handed out and not got back.
    pub fn live(alloc: &StatsAlloc<System>) -> Heap {
        let s = alloc.stats();
        Heap {
            bytes: s.bytes_allocated.saturating_sub(s.bytes_deallocated),
            blocks: s.allocations.saturating_sub(s.deallocations),
        }
    }
}

/// The resident set size of this process in bytes (`VmRSS` of `/proc/self/status`).
pub fn rss() -> Result<usize, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kib.trim().parse::<usize>()? * 1024)
}

/// `bytes` in MiB with one decimal.
pub fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings() {
        // Not this test binary's global allocator: nothing counted.
        let alloc = StatsAlloc::system();
        assert_eq!(
            Heap::live(&alloc),
            Heap {
                bytes: 0,
                blocks: 0
            }
        );
        assert!(rss().unwrap() > 0);
        assert_eq!(mib(3.5 * 1024.0 * 1024.0), "3.5");
    }
}
