//! Memory: the default `--memory-limit` (a quarter of the memory this process may use: the
//! machine's, or its container's cgroup limit when lower), and the one error every stage
//! reports when DataFusion runs out of it.

use std::path::Path;

use datafusion::error::DataFusionError;

use crate::error::Error;

/// A quarter of the memory available to this process, at least 256 MiB; 2 GiB when unknown.
/// The memory available is the machine's (`/proc/meminfo`), or the cgroup's limit (v2 or v1)
/// when that is lower: in a container, the machine's memory is not this process's.
pub fn default_memory_limit() -> u64 {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| meminfo_total(&m));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| cgroup_memory_limit(Path::new("/sys/fs/cgroup"), &c));
    match [machine, cgroup].into_iter().flatten().min() {
        Some(bytes) => (bytes / 4).max(256 << 20),
        None => 2 << 30,
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn meminfo_total(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// The memory limit of this process's cgroup, the lowest of its own and its ancestors' (a
/// limit applies to everything below it), from `/proc/self/cgroup`'s text and the cgroup
/// file system mounted at `root`: cgroup v2's `memory.max`, or v1's
/// `memory/…/memory.limit_in_bytes`. None when there is no limit.
pub fn cgroup_memory_limit(root: &Path, proc_self_cgroup: &str) -> Option<u64> {
    let parse = |text: String| -> Option<u64> {
        let t = text.trim();
        // v2 says "max"; v1 says a number near i64::MAX.
        t.parse::<u64>().ok().filter(|&b| b < (1 << 62))
    };
    let mut limits = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        let (base, file) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut dir = base.join(path);
        loop {
            if let Some(b) = std::fs::read_to_string(dir.join(file)).ok().and_then(parse) {
                limits.push(b);
            }
            if dir == base || !dir.pop() {
                break;
            }
        }
    }
    limits.into_iter().min()
}

/// The error for DataFusion running out of the memory pool, when `e` is that (found by its
/// kind, `ResourcesExhausted`, wherever it sits in the error's chain); else `e` unchanged.
pub fn memory_error(e: Error, limit: u64) -> Error {
    let exhausted = match &e {
        Error::DataFusion(df) => match df.find_root() {
            DataFusionError::ResourcesExhausted(detail) => Some(detail.clone()),
            _ => None,
        },
        _ => None,
    };
    match exhausted {
        Some(detail) => Error::MemoryLimit {
            limit: bytesize::ByteSize::b(limit).to_string(),
            detail,
        },
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_limits_v2_v1_and_none() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // v2: the lowest limit on the way up counts.
        std::fs::create_dir_all(root.join("user.slice/job.scope")).unwrap();
        std::fs::write(root.join("memory.max"), "max\n").unwrap();
        std::fs::write(root.join("user.slice/memory.max"), "1073741824\n").unwrap();
        std::fs::write(root.join("user.slice/job.scope/memory.max"), "max\n").unwrap();
        assert_eq!(
            cgroup_memory_limit(root, "0::/user.slice/job.scope\n"),
            Some(1 << 30)
        );
        std::fs::write(root.join("user.slice/memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_memory_limit(root, "0::/user.slice/job.scope\n"), None);
        // v1: the memory controller's folder; "no limit" is a number near i64::MAX.
        std::fs::create_dir_all(root.join("memory/docker/abc")).unwrap();
        std::fs::write(
            root.join("memory/docker/abc/memory.limit_in_bytes"),
            "536870912\n",
        )
        .unwrap();
        std::fs::write(root.join("memory/memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        let v1 = "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n";
        assert_eq!(cgroup_memory_limit(root, v1), Some(512 << 20));
        assert_eq!(
            meminfo_total("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            Some(16 << 20)
        );
    }

    #[test]
    fn resources_exhausted_is_the_memory_error_wherever_it_sits() {
        let inner = DataFusionError::ResourcesExhausted("pool full".into());
        let wrapped = DataFusionError::Context("in a sort".into(), Box::new(inner));
        match memory_error(Error::DataFusion(wrapped), 1 << 20) {
            Error::MemoryLimit { limit, detail } => {
                assert_eq!(detail, "pool full");
                assert!(limit.contains("1"), "{limit}");
            }
            other => panic!("{other}"),
        }
        let plan = Error::DataFusion(DataFusionError::Plan("Resources exhausted".into()));
        assert!(
            matches!(memory_error(plan, 1), Error::DataFusion(_)),
            "not by message text"
        );
    }
}
