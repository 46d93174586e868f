//! Host memory, checked before it is taken: every large buffer seedvae allocates (frames, tile
//! accumulators, whole videos, tensors read from files) is sized against what the machine can
//! give first, and taken with a fallible allocation, so that too large an input is a clear error
//! ([`OutOfMemory`]: what, how much, how much there is) instead of an abort in the allocator.
//!
//! What the machine can give ([`available`]) is the least of: the memory the OS reports as
//! available (Linux `MemAvailable`, Windows `ullAvailPhys`), what an address-space limit leaves
//! (`ulimit -v`), and what the process's cgroup (a container's limit) leaves.

/// A buffer that does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} needs {} of memory, but {}", gb(*need), available.map_or_else(|| "the allocation failed".to_string(), |a| format!("only {} is available", gb(a))))]
pub struct OutOfMemory {
    /// What the memory was for ("the decoded video (5 frames of 16384×16384)").
    pub what: String,
    pub need: u64,
    pub available: Option<u64>,
}

fn gb(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", (b as f64 / (1u64 << 20) as f64).ceil())
    }
}

/// Bytes this process can still allocate, if the platform says.
pub fn available() -> Option<u64> {
    [os_available(), address_space_left(), cgroup_left()]
        .into_iter()
        .flatten()
        .min()
}

/// Is `need` bytes for `what` within [`available`]?
pub fn check(need: u64, what: impl FnOnce() -> String) -> Result<(), OutOfMemory> {
    match available() {
        Some(a) if need > a => Err(OutOfMemory {
            what: what(),
            need,
            available: Some(a),
        }),
        _ => Ok(()),
    }
}

/// `n` zeros, checked against [`available`] and allocated fallibly.
pub fn zeroed<T: Clone + Default>(
    n: usize,
    what: impl FnOnce() -> String,
) -> Result<Vec<T>, OutOfMemory> {
    let mut v = with_capacity(n, what)?;
    v.resize(n, T::default());
    Ok(v)
}

/// An empty vector with room for `n` values, checked and allocated like [`zeroed`].
pub fn with_capacity<T>(n: usize, what: impl FnOnce() -> String) -> Result<Vec<T>, OutOfMemory> {
    let need = (n as u64).saturating_mul(std::mem::size_of::<T>() as u64);
    let mut what = Some(what);
    let mut say = || what.take().map_or_else(String::new, |f| f());
    check(need, &mut say)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| OutOfMemory {
        what: say(),
        need,
        available: available(),
    })?;
    Ok(v)
}

#[cfg(target_os = "linux")]
fn os_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&s, "MemAvailable:")
}

#[cfg(windows)]
fn os_available() -> Option<u64> {
    #[repr(C)]
    struct MemoryStatusEx {
        length: u32,
        memory_load: u32,
        total_phys: u64,
        avail_phys: u64,
        total_page_file: u64,
        avail_page_file: u64,
        total_virtual: u64,
        avail_virtual: u64,
        avail_extended_virtual: u64,
    }
    #[link(name = "kernel32")]
    extern "system" {
        fn GlobalMemoryStatusEx(status: *mut MemoryStatusEx) -> i32;
    }
    let mut m = MemoryStatusEx {
        length: std::mem::size_of::<MemoryStatusEx>() as u32,
        memory_load: 0,
        total_phys: 0,
        avail_phys: 0,
        total_page_file: 0,
        avail_page_file: 0,
        total_virtual: 0,
        avail_virtual: 0,
        avail_extended_virtual: 0,
    };
    // SAFETY: a plain out-parameter of the documented size; `length` set as the API requires.
    (unsafe { GlobalMemoryStatusEx(&mut m) } != 0).then_some(m.avail_phys)
}

#[cfg(not(any(target_os = "linux", windows)))]
fn os_available() -> Option<u64> {
    None
}

/// `Name:   123 kB` in a /proc file, in bytes.
#[cfg(target_os = "linux")]
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// What `ulimit -v` leaves: the soft address-space limit less the address space in use.
#[cfg(target_os = "linux")]
fn address_space_left() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    let soft = line["Max address space".len()..]
        .split_whitespace()
        .next()?;
    let limit: u64 = soft.parse().ok()?; // "unlimited" does not parse: no limit
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let used = kib_field(&status, "VmSize:")?;
    Some(limit.saturating_sub(used))
}

#[cfg(not(target_os = "linux"))]
fn address_space_left() -> Option<u64> {
    None
}

/// What the process's cgroup (v2) limit leaves.
#[cfg(target_os = "linux")]
fn cgroup_left() -> Option<u64> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = std::path::Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let max: u64 = std::fs::read_to_string(dir.join("memory.max"))
        .ok()?
        .trim()
        .parse()
        .ok()?; // "max": no limit
    let current: u64 = std::fs::read_to_string(dir.join("memory.current"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(max.saturating_sub(current))
}

#[cfg(not(target_os = "linux"))]
fn cgroup_left() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_beyond_the_machine_is_an_error_not_an_abort() {
        let a = available().expect("this machine reports its memory");
        assert!(a > 0);
        let e = zeroed::<f32>(usize::MAX / 8, || "a test buffer".into()).unwrap_err();
        assert_eq!(e.what, "a test buffer");
        assert!(e.to_string().contains("a test buffer needs"), "{e}");
        let v = zeroed::<f32>(1000, || unreachable!("fits")).unwrap();
        assert_eq!(v.len(), 1000);
    }
}
